from dataclasses import replace

import pytest
import torch

from dopatut.methods.gate import hardened
from dopatut.methods.lora import LoRAConfig
from dopatut.methods.builtin import (METHODS, BitFitConfig, DopamineConfig, FrozenConfig, FullConfig, GainOnlyConfig,
                             GateConfig, HeadConfig, ThresholdOnlyConfig, apply_method)
from dopatut.foundations.model import FoundationMLP, count_parameters


@pytest.fixture(scope="module")
def foundation():
    torch.manual_seed(0)
    return FoundationMLP()


@pytest.mark.parametrize("method, expected", [
    ("frozen", 0),
    ("dopamine", 2 * (256 + 256)),
    ("gain_only", 256 + 256),
    ("threshold_only", 256 + 256),
    ("bitfit", 256 + 256 + 10),
    ("head", 256 * 10 + 10),
    ("lora", 4 * (784 + 256) + 4 * (256 + 256) + 4 * (256 + 10)),
    ("full", 784 * 256 + 256 + 256 * 256 + 256 + 2570),
])
def test_trainable_counts_are_exact(foundation, method, expected):
    assert count_parameters(apply_method(foundation, method, verbose=False))[0] == expected


def test_methods_leave_the_foundation_untouched(foundation):
    before = {k: v.clone() for k, v in foundation.state_dict().items()}
    for method in METHODS:
        apply_method(foundation, method, verbose=False)
    assert all(torch.equal(before[k], v) for k, v in foundation.state_dict().items())
    assert all(p.requires_grad for p in foundation.parameters())


def test_unknown_method_lists_the_known_ones(foundation):
    with pytest.raises(ValueError, match="unknown method 'loRA'; expected one of frozen, dopamine"):
        apply_method(foundation, "loRA")


def test_lora_targets_are_checked(foundation):
    model = apply_method(foundation, "lora", rank=2, targets=["head"], verbose=False)
    assert count_parameters(model)[0] == 2 * (256 + 10)
    with pytest.raises(ValueError, match="target 'hidden9' matches no module; modules of the right kind \\(Linear, Conv2d(, Conv1D)?\\) are "
                                         "\\['hidden.hidden1.linear', 'hidden.hidden2.linear', 'head'\\]"):
        apply_method(foundation, "lora", targets=["hidden9"])


def test_summary_is_printed(foundation, capsys):
    apply_method(foundation, "dopamine")
    assert "dopamine: 1,024 trainable of" in capsys.readouterr().out


CONFIGS = {"frozen": FrozenConfig, "dopamine": DopamineConfig, "gain_only": GainOnlyConfig,
           "threshold_only": ThresholdOnlyConfig, "bitfit": BitFitConfig, "head": HeadConfig, "lora": LoRAConfig,
           "full": FullConfig}
SETTINGS = {"dopamine": {"temperature": 0.5, "threshold_init": 0.1}, "gain_only": {"gain_init": 1.5},
            "threshold_only": {"gain_init": 0.5, "temperature": 2.0}, "lora": {"rank": 2, "alpha": 8.0}}  # not the defaults
TARGETS = {"foundation MLP": {"dopamine": r"hidden\.hidden2\.act", "bitfit": ["hidden1"], "head": ["head"],
                              "lora": ["hidden2.linear", "head"]},
           "transformers BERT": {"gain_only": r".*intermediate\.intermediate_act_fn", "lora": ["query", "value"]}}


def _model(name):
    if name == "foundation MLP":
        torch.manual_seed(0)
        return FoundationMLP(), torch.randn(8, 784, generator=torch.Generator().manual_seed(1))
    pytest.importorskip("transformers")
    from zoo import ZOO
    entry = next(e for e in ZOO if e.name == name)
    return entry.build(), entry.inputs()


def _stepped(model, x):
    """One Adam step on a loss that every trainable parameter reaches, so settings that scale them show."""
    from zoo import call
    params = [p for p in model.parameters() if p.requires_grad]
    if params:
        optimiser = torch.optim.Adam(params, lr=1e-2)
        call(model.train(), x).float().square().mean().backward()
        optimiser.step()
    return model.eval()


@pytest.mark.parametrize("model_name", TARGETS)
@pytest.mark.parametrize("method", METHODS)
def test_a_config_and_its_keywords_make_the_same_model_bit_for_bit(method, model_name):
    base, x = _model(model_name)
    settings = SETTINGS.get(method, {})
    targets = TARGETS[model_name].get(method)
    torch.manual_seed(3)  # LoRA draws A here
    by_name = apply_method(base, method, targets=targets, verbose=False, **settings)
    torch.manual_seed(3)
    config = CONFIGS[method](**settings, **({"target_modules": targets} if targets is not None else {}))
    by_config = apply_method(base, config, verbose=False)
    assert by_name.method == by_config.method == method and by_name.method_config == by_config.method_config == config
    for model in (by_name, by_config):
        torch.manual_seed(4)
        _stepped(model, x)
    named = dict(by_name.named_parameters())
    assert [(n, p.requires_grad) for n, p in named.items()] == \
        [(n, p.requires_grad) for n, p in by_config.named_parameters()]
    assert all(torch.equal(named[n], p) for n, p in by_config.named_parameters())
    from zoo import call
    with torch.no_grad(), hardened(by_name), hardened(by_config):
        assert torch.equal(call(by_name, x), call(by_config, x))


def test_the_settings_reach_the_model():
    base, x = _model("foundation MLP")
    gates = apply_method(base, DopamineConfig(target_modules=r"hidden\.hidden2\.act", threshold_init=0.1,
                                              temperature=0.5), verbose=False).hidden.hidden2.act.gate
    assert gates.temperature == 0.5 and torch.all(gates.threshold == 0.1)
    assert not hasattr(apply_method(base, "dopamine", targets=r"hidden\.hidden2\.act", verbose=False).hidden.hidden1.act,
                       "gate")
    assert apply_method(base, GainOnlyConfig(), verbose=False).hidden.hidden1.act.gate.threshold.requires_grad is False
    lora = apply_method(base, LoRAConfig(rank=2, alpha=8.0, target_modules=["head"]), verbose=False).head
    assert lora.lora_A.shape == (2, 256) and lora.scaling == 4.0


@pytest.mark.parametrize("make, error, message", [
    (lambda: LoRAConfig(rank=0), ValueError, "LoRAConfig.rank must be an int >= 1, got 0"),
    (lambda: LoRAConfig(alpha="16"), ValueError, r"LoRAConfig.alpha must be a number > 0 \(or None.*got '16'"),
    (lambda: DopamineConfig(temperature=-1.0), ValueError,
     r"DopamineConfig.temperature must be a positive finite number \(held fixed\) or a pair \(start, end\) of them "
     r"\(annealed geometrically over training\), got -1.0"),
    (lambda: DopamineConfig(temperature=(1.0, 0.1, 0.01)), ValueError,
     r"DopamineConfig.temperature must be .* a pair \(start, end\) .*got \(1.0, 0.1, 0.01\)"),
    (lambda: GainOnlyConfig(temperature=(1.0, 0.0)), ValueError,
     r"GainOnlyConfig.temperature must be a positive finite number .*got \(1.0, 0.0\)"),
    (lambda: ThresholdOnlyConfig(sparsity=-0.1), ValueError,
     r"ThresholdOnlyConfig.sparsity must be >= 0 \(the weight of the mean gate value in the loss; 0: no penalty\), "
     r"got -0.1"),
    (lambda: DopamineConfig(sparsity="1"), ValueError, "DopamineConfig.sparsity must be a finite number, got '1'"),
    (lambda: GainOnlyConfig(hard="yes"), ValueError, "GainOnlyConfig.hard must be True or False, got 'yes'"),
    (lambda: ThresholdOnlyConfig(threshold_init=float("nan")), ValueError,
     "ThresholdOnlyConfig.threshold_init must be a finite number or None, got nan"),
    (lambda: BitFitConfig(target_modules=5), ValueError, "BitFitConfig.target_modules must be None .* got 5"),
    (lambda: HeadConfig(target_modules=[]), ValueError, r"HeadConfig.target_modules must be None .* got \[\]"),
    # the keyword form's errors are the config's
    (lambda: apply_method(FoundationMLP(), "dopamine", temperature=0), ValueError,
     r"DopamineConfig.temperature must be a positive finite number \(held fixed\) .*got 0"),
    (lambda: apply_method(FoundationMLP(), "lora", rank=1.5), ValueError, "LoRAConfig.rank must be an int >= 1, got 1.5"),
    (lambda: apply_method(FoundationMLP(), "lora", targets=["head"], target_modules=["head"]), TypeError,
     "LoRAConfig: give targets or target_modules"),
    (lambda: apply_method(FoundationMLP(), "full", target_modules=["head"]), TypeError,
     "target_modules applies only to dopamine, .*, not to 'full'"),
    (lambda: apply_method(FoundationMLP(), DopamineConfig(), temperature=0.5), TypeError,
     r"apply_method got a DopamineConfig and the keywords temperature: put them in the config"),
    (lambda: apply_method(FoundationMLP(), GateConfig()), ValueError,
     "no registered method takes a GateConfig; expected a config of one of FrozenConfig, DopamineConfig"),
])
def test_a_bad_setting_is_named_by_its_config(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_a_config_is_frozen_and_replaced_as_a_dataclass():
    config = LoRAConfig(rank=2)
    with pytest.raises(AttributeError):
        config.rank = 3
    assert replace(config, alpha=4.0).scaling == 2.0
    with pytest.raises(ValueError, match="LoRAConfig.rank must be an int >= 1, got 0"):
        replace(config, rank=0)
