"""PEFT's layout for every method: save_pretrained and from_pretrained round trips, refusals, and IA3's twin."""
import json
import warnings

import pytest
import torch
from torch import nn

from dopatut.foundations.checkpoints import CheckpointError
from dopatut.methods.gate import GateSet, hardened
from dopatut.methods.lora import LoRAConfig
from dopatut.methods.builtin import METHODS, DopamineConfig, GainOnlyConfig, apply_method
from dopatut.methods.pretrained import from_pretrained, print_trainable_parameters, save_pretrained

pytest.importorskip("transformers")
from zoo import ZOO, call  # noqa: E402

warnings.filterwarnings("ignore", message=".*(bos|eos|pad)_token_id.*")
MODELS = {e.name: e for e in ZOO if e.name in ("torchvision resnet18", "transformers BERT", "transformers GPT-2",
                                               "an MLP of nn.ReLU modules")}


def trained_a_little(model, x):
    optimiser = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(2):
        optimiser.zero_grad()
        (call(model.train(), x).float() - 1).square().mean().backward()
        optimiser.step()
    return model.eval()


@pytest.mark.parametrize("method", [m for m in METHODS if m != "frozen"])
@pytest.mark.parametrize("name", MODELS)
def test_every_method_round_trips_exactly_and_a_sibling_refuses_it(name, method, tmp_path):
    entry = MODELS[name]
    if method == "full" and "resnet" in name:
        pytest.skip("11.7 million weights: the same path as the small models, only slower")
    base, x = entry.build(), entry.inputs()
    model = trained_a_little(apply_method(base, method, verbose=False), x)
    folder = save_pretrained(model, tmp_path / "adapter")
    assert sorted(p.name for p in folder.iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]
    again = from_pretrained(entry.build(), folder)
    with torch.no_grad(), hardened(model), hardened(again):
        assert torch.equal(call(model, x), call(again, x))
    from safetensors.torch import load_file
    saved = set(load_file(folder / "adapter_model.safetensors"))
    assert saved == {n for n, p in model.named_parameters() if p.requires_grad or ".gates." in n}  # the method's alone
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad and ".gates." not in n}
    assert not saved & frozen and (method != "full" or not frozen)
    with pytest.raises(CheckpointError, match="adapter for another .*: this one's parameters have other names"):
        from_pretrained(entry.sibling(), folder)


def test_a_torn_or_foreign_adapter_is_refused(tmp_path):
    entry = MODELS["an MLP of nn.ReLU modules"]
    folder = save_pretrained(apply_method(entry.build(), "lora", verbose=False), tmp_path / "a")
    config = json.loads((folder / "adapter_config.json").read_text())
    config["base_model"] = "ResNet"
    (folder / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="holds a 'lora' adapter for a ResNet, not a Sequential"):
        from_pretrained(entry.build(), folder)
    (folder / "adapter_model.safetensors").write_bytes(b"not tensors")
    with pytest.raises(CheckpointError, match="does not match the checksum"):
        from_pretrained(entry.build(), folder)
    with pytest.raises(ValueError, match="cannot be written as JSON: give targets as a list of names or a pattern"):
        save_pretrained(apply_method(entry.build(), "dopamine", targets=nn.ReLU, verbose=False), tmp_path / "b")


def test_print_trainable_parameters_in_peft_s_words(capsys):
    print_trainable_parameters(apply_method(MODELS["an MLP of nn.ReLU modules"].build(), "dopamine", verbose=False))
    assert capsys.readouterr().out == "trainable params: 72 || all params: 719 || trainable%: 10.0139\n"


@pytest.mark.parametrize("name, down", [("transformers BERT", r".*layer\.\d+\.output\.dense"),
                                        ("transformers GPT-2", r".*mlp\.c_proj")])
def test_gain_only_on_a_transformer_mlp_is_peft_s_ia3_on_its_down_projection(name, down):
    """Hardened, with every drive above its threshold, gain-only computes g * act(z): PEFT's IA3 scales the same
    activations, as the input of the MLP's down-projection (a feed-forward module)."""
    import copy
    peft = pytest.importorskip("peft")
    entry = MODELS[name]
    base, x = entry.build(), entry.inputs()
    ours = apply_method(base, "gain_only", verbose=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = peft.get_peft_model(copy.deepcopy(base), peft.IA3Config(
            target_modules=down, feedforward_modules=down, fan_in_fan_out="GPT" in name)).base_model.model
    scaled = [m for n, m in theirs.named_modules() if hasattr(m, "ia3_l")]
    gates = list(GateSet.of(ours).values())
    assert len(scaled) == len(gates) == 2
    with torch.no_grad():
        for gate, layer in zip(gates, scaled):
            gate.gain.uniform_(0.5, 1.5)
            layer.ia3_l["default"].copy_(gate.gain.view_as(layer.ia3_l["default"]))
        with hardened(ours):
            assert torch.allclose(call(ours.eval(), x), call(theirs.eval(), x), atol=1e-5)
    assert sum(p.numel() for p in ours.parameters() if p.requires_grad) == \
        sum(p.numel() for p in theirs.parameters() if p.requires_grad)


@pytest.mark.parametrize("config, fields", [
    (LoRAConfig(rank=2, alpha=8.0, target_modules=["0", "4"]), {"rank": 2, "alpha": 8.0, "target_modules": ["0", "4"]}),
    (DopamineConfig(target_modules=r"[13]", threshold_init=0.1, temperature=(2.0, 0.05), sparsity=0.5),
     {"target_modules": "[13]", "temperature": [2.0, 0.05], "sparsity": 0.5, "hard": False, "threshold_init": 0.1,
      "gain_init": 1.0}),
    (GainOnlyConfig(temperature=0.5),  # one temperature, held fixed: written as its schedule
     {"target_modules": None, "temperature": [0.5, 0.5], "sparsity": 0.0, "hard": False, "threshold_init": None,
      "gain_init": 1.0}),
])
def test_the_config_is_written_field_by_field_and_read_back(config, fields, tmp_path):
    entry = MODELS["an MLP of nn.ReLU modules"]
    x = entry.inputs()
    model = trained_a_little(apply_method(entry.build(), config, verbose=False), x)
    folder = save_pretrained(model, tmp_path / "adapter")
    assert json.loads((folder / "adapter_config.json").read_text())["config"] == fields
    again = from_pretrained(entry.build(), folder)
    assert again.method_config == config and type(again.method_config) is type(config)
    with torch.no_grad():
        assert torch.equal(call(model, x), call(again, x))


@pytest.mark.parametrize("edit, message", [
    (lambda c: c.update(rnak=2), r"adapter_config.json, method 'lora': LoRAConfig has no field 'rnak'; its fields "
                                 r"are rank, alpha, target_modules"),
    (lambda c: c.update(rank="2"), r"adapter_config.json, method 'lora': LoRAConfig.rank must be an int >= 1, got '2'"),
    (lambda c: c.update(target_modules=3), r"LoRAConfig.target_modules must be None .* got 3"),
])
def test_an_unknown_field_or_a_value_of_the_wrong_type_is_refused_by_name(edit, message, tmp_path):
    entry = MODELS["an MLP of nn.ReLU modules"]
    folder = save_pretrained(apply_method(entry.build(), "lora", rank=2, verbose=False), tmp_path / "a")
    saved = json.loads((folder / "adapter_config.json").read_text())
    edit(saved["config"])
    (folder / "adapter_config.json").write_text(json.dumps(saved))
    with pytest.raises(CheckpointError, match=message):
        from_pretrained(entry.build(), folder)
