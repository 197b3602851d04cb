"""Every method, with its defaults, on real architectures from torchvision, timm and transformers (tests/zoo.py).

For each model and method: it attaches; the trainable count is exact (gates: 2 per neuron at every place an
activation runs, counted here from the drives by hooks of the test's own); the model at init (gates hardened)
is the base bit for bit; a few optimiser steps change the method's tensors and nothing else; a mode saved and
loaded computes the same; a sibling of another size refuses it.
"""
import warnings

import pytest
import torch
from torch import nn

from dopatut.foundations.checkpoints import CheckpointError
from dopatut.methods.gate import GatedActivation, GateSet, Modes, hardened
from dopatut.methods.builtin import METHODS, apply_method

pytest.importorskip("timm")
pytest.importorskip("transformers")
from zoo import MORE, ZOO, FunctionalMLP, call  # noqa: E402

warnings.filterwarnings("ignore", message=".*(bos|eos|pad)_token_id.*")
GATES = ("dopamine", "gain_only", "threshold_only")
# the activation classes these models use, by name: the test's own list, independent of dopatut.methods.activations
ACTIVATION_NAMES = {"ReLU", "Hardswish", "SiLU", "GELU", "GELUActivation", "NewGELUActivation", "SiLUActivation",
                    "QuickGELUActivation"}
_BUILT: dict[str, nn.Module] = {}


def built(entry) -> nn.Module:
    if entry.name not in _BUILT:
        _BUILT[entry.name] = entry.build()
    return _BUILT[entry.name]


def drive_widths(model: nn.Module, x) -> list[int]:
    """The width of every call of every activation module, read from its input: channels of (N, C, H, W), else
    the last axis (none of these models computes a 4-d activation channels-last)."""
    widths, handles = [], []
    for m in model.modules():
        if type(m).__name__ in ACTIVATION_NAMES:
            handles.append(m.register_forward_pre_hook(
                lambda mod, args: widths.append(args[0].shape[1] if args[0].dim() == 4 else args[0].shape[-1])))
    with torch.no_grad():
        call(model, x)
    for h in handles:
        h.remove()
    return widths


def expected_count(entry, method: str, base: nn.Module) -> int:
    unique = {id(p): p for p in base.parameters()}.values()
    if method == "frozen":
        return 0
    if method == "full":
        return sum(p.numel() for p in unique)
    if method in GATES:
        return (2 if method == "dopamine" else 1) * sum(drive_widths(base, entry.inputs()))
    if method == "bitfit":
        return sum(p.numel() for n, p in base.named_parameters() if n.endswith("bias"))
    if method == "head":
        return sum(p.numel() for p in base.get_submodule(entry.head).parameters())
    tied = len(list(base.named_parameters(remove_duplicate=False))) != len(unique)
    count = 0
    for name, m in base.named_modules():
        weight = getattr(m, "weight", None)
        if isinstance(m, nn.Linear) and not (tied and name == entry.head):
            count += 4 * (m.in_features + m.out_features)
        elif isinstance(m, nn.Conv2d) and m.groups == 1:
            count += 4 * m.in_channels * m.kernel_size[0] * m.kernel_size[1] + m.out_channels * 4
        elif type(m).__name__ == "Conv1D":
            count += 4 * sum(weight.shape)
    return count


def adapted(entry, method):
    return apply_method(built(entry), method, verbose=False)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("entry", ZOO, ids=lambda e: e.name)
def test_every_method_attaches_with_its_defaults_counts_exactly_and_is_the_base_at_init(entry, method):
    base = built(entry)
    if method in GATES and entry.build is ZOO[-1].build:
        with pytest.raises(ValueError, match=r"computes activations as function calls \(relu in 'FunctionalMLP'\).*"
                                             r"self.act = nn.ReLU\(\)"):
            adapted(entry, method)
        return
    if method == "bitfit" and "Llama" in entry.name:  # Llama has no bias: refused, saying so
        with pytest.raises(ValueError, match="LlamaForCausalLM has no bias anywhere; BitFit trains biases only"):
            adapted(entry, method)
        return
    model = adapted(entry, method)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == expected_count(entry, method, base)
    x = entry.inputs()
    with torch.no_grad(), hardened(model):
        assert torch.equal(call(model.eval(), x), call(base, x))


@pytest.mark.parametrize("method", ["dopamine", "bitfit", "head", "lora", "full"])
@pytest.mark.parametrize("entry", ZOO[:-1], ids=lambda e: e.name)
def test_training_changes_the_methods_tensors_and_nothing_else(entry, method):
    if method == "bitfit" and "Llama" in entry.name:
        pytest.skip("Llama has no bias")
    model = adapted(entry, method).train()
    before = {k: v.clone() for k, v in model.state_dict(keep_vars=False).items()}
    trainable = {n for n, p in model.named_parameters(remove_duplicate=False) if p.requires_grad}
    optimiser = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    x = entry.inputs()
    for _ in range(3):
        optimiser.zero_grad()
        (call(model, x).float() - 1).square().mean().backward()  # torchvision zero-inits its ViT head: not 0 at 0
        optimiser.step()
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    buffers = {k for k in before if k not in dict(model.named_parameters(remove_duplicate=False))}
    assert changed - trainable <= (buffers if method == "full" else set()), changed - trainable
    assert changed & trainable, "no trainable tensor moved"


@pytest.mark.parametrize("entry", ZOO[:-1], ids=lambda e: e.name)
def test_a_mode_round_trips_exactly_and_a_sibling_refuses_it(entry, tmp_path):
    model = adapted(entry, "dopamine")
    gates = GateSet.of(model)
    with torch.no_grad():
        for i, g in enumerate(gates.values()):
            g.threshold.add_(0.01 * i)
            g.gain.mul_(1 + 0.01 * i)
    modes = Modes(apply_method(built(entry), "frozen", verbose=False))
    modes.add("m", gates)
    path = modes.save("m", tmp_path / "m.pt")
    again = Modes(apply_method(built(entry), "frozen", verbose=False))
    loaded = again.load("m", path)
    assert list(loaded) == list(gates)
    x = entry.inputs()
    with torch.no_grad():
        assert torch.equal(call(modes.use("m"), x), call(again.use("m"), x))
    with pytest.raises(CheckpointError, match=r"holds a mode for another model .*; the activations differ"):
        Modes(entry.sibling()).load("m", path)


def test_one_gate_per_call_on_torchvisions_resnet_in_call_order():
    entry = ZOO[0]
    model = adapted(entry, "dopamine")
    block = model.layer1[0]
    assert isinstance(block.relu, GatedActivation) and len(block.relu.gates) == 2
    gates = GateSet.of(model)
    assert ["layer1.0.relu[0]", "layer1.0.relu[1]"] == [k for k in gates if k.startswith("layer1.0.relu")]
    assert len(gates) == 1 + 2 * 8  # the stem's relu once, each of the eight blocks' relu twice
    x = entry.inputs()
    seen = []
    handle = model.layer1[0].register_forward_hook(lambda m, args, out: seen.append((args[0].clone(), out.clone())))
    with torch.no_grad(), hardened(model):
        gates["layer1.0.relu[1]"].threshold.fill_(1e9)  # the second call only: the block's output (after the sum) is 0
        call(model, x)
        gates["layer1.0.relu[1]"].threshold.fill_(0.0)
        gates["layer1.0.relu[0]"].threshold.fill_(1e9)  # the first call only: the block passes its shortcut, relu'd
        call(model, x)
    handle.remove()
    assert (seen[0][1] == 0).all()
    shortcut, out = seen[1]
    assert shortcut.abs().sum() > 0 and torch.equal(out, torch.relu(shortcut))


def test_a_module_that_runs_a_different_number_of_times_than_when_gated_is_refused():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.act, self.times = nn.Linear(4, 4), nn.ReLU(), 2

        def forward(self, x):
            for _ in range(self.times):
                x = self.act(self.fc(x))
            return x
    model = apply_method(Twice(), "dopamine", verbose=False)
    assert len(GateSet.of(model)) == 2
    model.times = 3
    with pytest.raises(RuntimeError, match=r"'act' ran 3 times in this forward pass, but it has gates for the 2 places"):
        model(torch.zeros(1, 4))


def test_an_in_place_activation_gates_the_same_bitwise_as_its_out_of_place_twin():
    torch.manual_seed(0)
    inplace = nn.Sequential(nn.Linear(6, 32), nn.SiLU(inplace=True), nn.Linear(32, 2))
    plain = nn.Sequential(inplace[0], nn.SiLU(), inplace[2])
    x = torch.randn(64, 6) * 5
    models = [apply_method(m, "dopamine", verbose=False) for m in (inplace, plain)]
    for model in models:
        with torch.no_grad():
            g = GateSet.of(model)["1"]
            g.threshold.copy_(torch.linspace(-1, 1, 32))
            g.gain.copy_(torch.linspace(0.5, 1.5, 32))
    for hard in (False, True):
        with torch.no_grad(), hardened(models[0], hard), hardened(models[1], hard):
            a, b = models[0](x), models[1](x)
            assert torch.equal(a, b)
            assert torch.equal(GateSet.of(models[0])["1"].last_gate, GateSet.of(models[1])["1"].last_gate)


def test_explicit_targets_that_lora_cannot_wrap_are_refused_by_name():
    mobilenet = built(ZOO[1])
    depthwise = "features.1.block.0.0"
    assert mobilenet.get_submodule(depthwise).groups > 1
    with pytest.raises(ValueError, match=f"LoRA cannot wrap '{depthwise}': it is a Conv2d with groups=16 .* depthwise"):
        apply_method(mobilenet, "lora", targets=[depthwise], verbose=False)
    with pytest.raises(ValueError, match="LoRA cannot wrap 'lm_head': its weight is tied to 'transformer.wte'"):
        apply_method(built(ZOO[7]), "lora", targets=["lm_head"], verbose=False)


def test_head_only_on_a_tied_head_trains_an_untied_copy_and_leaves_the_embedding(capsys):
    gpt2 = built(ZOO[7])
    model = apply_method(gpt2, "head")
    assert "'lm_head' was tied to 'transformer.wte'; head-only trains an untied copy" in capsys.readouterr().out
    assert model.lm_head.weight is not model.transformer.wte.weight
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["lm_head.weight"]


def test_lora_on_gpt2s_conv1d_merges_into_the_transposed_weight():
    model = adapted(ZOO[7], "lora")
    layer = model.transformer.h[0].mlp.c_fc
    with torch.no_grad():
        layer.lora_B.normal_()
    x = ZOO[7].inputs()
    with torch.no_grad():
        before = call(model, x)
        for m in model.modules():
            if hasattr(m, "lora_B"):
                m.merge()
        assert torch.allclose(call(model, x), before, atol=1e-5)
        assert not torch.equal(layer.base.weight, built(ZOO[7]).transformer.h[0].mlp.c_fc.weight)


def test_a_functional_activation_can_be_gated_once_it_is_a_module():
    class Fixed(FunctionalMLP):
        def __init__(self):
            super().__init__()
            self.act = nn.ReLU()

        def forward(self, x):
            return self.fc2(self.act(self.fc1(x)))
    assert list(GateSet.of(apply_method(Fixed(), "dopamine", verbose=False))) == ["act"]


@pytest.mark.parametrize("entry", MORE, ids=lambda e: e.name)
def test_more_architectures_of_the_same_families(entry):
    base = built(entry)
    for method in ("dopamine", "lora", "head"):
        model = adapted(entry, method)
        if method == "dopamine":  # ConvNeXt computes its MLP channels-last: the width is the last axis there
            widths = [g.width for g in GateSet.of(model).values()]
            assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 2 * sum(widths) > 0
        if method == "head":
            assert {n.rpartition(".")[0] for n, p in model.named_parameters() if p.requires_grad} == {entry.head}
        with torch.no_grad(), hardened(model):
            assert torch.equal(call(model.eval(), entry.inputs()), call(base, entry.inputs()))


def test_lora_on_gpt2_computes_what_peft_computes_from_the_same_factors():
    import copy
    peft = pytest.importorskip("peft")
    gpt2 = built(ZOO[7])
    ours = apply_method(gpt2, "lora", verbose=False)
    ours_layers = {n: m for n, m in ours.named_modules() if hasattr(m, "lora_B")}
    config = peft.LoraConfig(r=4, lora_alpha=4, lora_dropout=0.0, target_modules=["c_attn", "c_proj", "c_fc"],
                             fan_in_fan_out=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = peft.get_peft_model(copy.deepcopy(gpt2), config).base_model.model
    with torch.no_grad():
        for name, layer in ours_layers.items():
            layer.lora_B.normal_(std=0.1)
            twin = theirs.get_submodule(name)
            twin.lora_A["default"].weight.copy_(layer.lora_A)
            twin.lora_B["default"].weight.copy_(layer.lora_B)
    assert sum(p.numel() for p in ours.parameters() if p.requires_grad) == \
        sum(p.numel() for p in theirs.parameters() if p.requires_grad)
    x = ZOO[7].inputs()
    with torch.no_grad():
        assert torch.allclose(call(ours.eval(), x), call(theirs.eval(), x), atol=1e-5)
