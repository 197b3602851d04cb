"""Methods by target on any nn.Module: a Linear->ReLU stack, a CNN (per channel), the transformer, the MLP."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dopatut.foundations.checkpoints import CheckpointError
from dopatut.methods.gate import OPEN_AT, GatedActivation, GateSet, Modes, attach, detach, hardened
from dopatut.methods.builtin import METHODS, apply_method
from dopatut.foundations.model import FoundationMLP, MLPConfig, count_parameters
from dopatut.training.stack import fit_many
from dopatut.training.train import TrainConfig, fit
from dopatut.foundations.vit import VisionTransformer, ViTConfig


def stack():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(12, 20), nn.ReLU(), nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 3))


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(6, 8, 3, padding=1), nn.BatchNorm2d(8), nn.SiLU())
        self.head = nn.Linear(8 * 4 * 4, 3)

    def forward(self, x):
        return self.head(self.features(x.view(-1, 1, 8, 8)).flatten(1))


def cnn():
    torch.manual_seed(0)
    return SmallCNN().eval()


def train_a_little(model, x, y):
    fit(model, x, y, TrainConfig(epochs=2, batch_size=16, lr=0.05), progress=False)


@pytest.mark.parametrize("make, x", [(stack, torch.randn(64, 12)), (cnn, torch.randn(64, 64))])
def test_gates_by_target_are_the_identity_at_init_and_never_touch_base_weights(make, x):
    base = make()
    with torch.no_grad():
        before = base(x)
    gated = apply_method(base, "dopamine", verbose=False)
    with torch.no_grad(), hardened(gated):
        at_init = gated(x)
    if make is stack:
        assert torch.equal(at_init, before)  # ReLU: exact
    else:  # the SiLU's gate opens at OPEN_AT: exact where drives are above it, within 5e-4 below
        assert (at_init - before).abs().max() < 5e-3
    gates = GateSet.of(gated)
    start = [g.threshold.clone() for g in gates.values()]
    train_a_little(gated, x, torch.randint(0, 3, (len(x),)))
    assert all(not torch.equal(g.threshold, s) for g, s in zip(gates.values(), start))  # the gates trained
    trained = dict(gated.named_parameters())
    for name, weight in base.named_parameters():  # the copy's base weights, by the same names, bit for bit
        assert torch.equal(trained[name], weight) and not trained[name].requires_grad, name


def test_a_cnn_gets_one_gate_per_channel():
    model = apply_method(cnn(), "dopamine", verbose=False)
    gates = GateSet.of(model)
    assert [(n, g.width, g.feature_dim) for n, g in gates.items()] == [("features.1", 6, 1), ("features.5", 8, 1)]
    assert gates["features.5"].threshold[0].item() == OPEN_AT[nn.SiLU]
    x = torch.randn(5, 64)
    with torch.no_grad(), hardened(model):
        gates["features.1"].threshold[2] = 1e9  # silence channel 2 of the first convolution
        silenced = model.features[:2](x.view(-1, 1, 8, 8))
    assert (silenced[:, 2] == 0).all() and (silenced[:, [0, 1, 3]] != 0).any()


def test_every_method_goes_on_a_cnn_by_target_with_exact_counts():
    counts = {m: sum(p.numel() for p in apply_method(cnn(), m, verbose=False).parameters() if p.requires_grad)
              for m in METHODS}
    conv_lora = (4 * 1 * 9 + 6 * 4) + (4 * 6 * 9 + 8 * 4)  # A: rank x in x 3 x 3, B: out x rank, per convolution
    assert counts == {"frozen": 0, "dopamine": 2 * (6 + 8), "gain_only": 6 + 8, "threshold_only": 6 + 8,
                      "bitfit": 6 + 8 + 8 + 3,  # both convolutions' biases, BatchNorm's shift, the head's bias
                      "head": 128 * 3 + 3, "lora": conv_lora + 4 * (128 + 3),  # rank 4 on the convolutions and head
                      "full": (6 * 9 + 6) + (8 * 6 * 9 + 8) + 2 * 8 + (128 * 3 + 3)}
    only_convs = apply_method(cnn(), "lora", targets=nn.Conv2d, verbose=False)
    assert sum(p.numel() for p in only_convs.parameters() if p.requires_grad) == conv_lora


def test_lora_on_a_cnn_trains_stacked_and_leaves_the_convolutions_bitwise_alone():
    base, x = cnn(), torch.randn(64, 64)
    models = [apply_method(base, "lora", verbose=False) for _ in range(2)]
    fit_many(models, x, torch.randint(0, 3, (64,)), [TrainConfig(epochs=2, batch_size=16, lr=0.05, seed=s)
                                                        for s in (0, 1)], progress=False)
    for model in models:
        layer = model.features[3]
        assert layer.lora_B.abs().sum() > 0  # B moved from zero
        assert torch.equal(layer.base.weight, base.features[3].weight) and not layer.base.weight.requires_grad


@pytest.mark.parametrize("method", ["dopamine", "bitfit", "lora", "full"])
def test_batchnorm_statistics_stay_the_foundations_unless_everything_trains(method):
    base, x = cnn(), torch.randn(64, 64)
    model = apply_method(base, method, verbose=False)
    train_a_little(model, x, torch.randint(0, 3, (64,)))  # fit trains in train mode: BatchNorm sees batch statistics
    same = [torch.equal(getattr(model.features[4], s), getattr(base.features[4], s)) for s in ("running_mean", "running_var")]
    assert same == ([False, False] if method == "full" else [True, True]), method
    if method == "dopamine":  # gates off: the foundation again, BatchNorm included
        detach(model)
        with torch.no_grad():
            assert torch.equal(model.eval()(x), base(x))


@pytest.mark.parametrize("act", [nn.GELU, nn.SiLU])
def test_the_open_threshold_rule_for_activations_that_are_not_zero_below_zero(act):
    """Hard gate at init: exactly the activation where z > OPEN_AT, within 5e-4 of it below (where it is ~0)."""
    z = torch.linspace(-30, 6, 10_001).unsqueeze(0)
    model = nn.Sequential(nn.Identity(), act())
    model[0] = nn.Linear(1, 1)  # the width is read from the layer registered before the activation
    gates = GateSet.for_model(model)
    gate = gates["1"]
    assert gate.threshold.item() == OPEN_AT[act] < 0
    attach(model, gates)
    gate.hard = True
    with torch.no_grad():
        out = model[1](z.t()).t()
    base = act()(z)
    above = z > OPEN_AT[act]
    assert torch.equal(out[above], base[above])
    assert (out[~above] - base[~above]).abs().max() < 5e-4
    # a step at 0 instead would cut the negative lobe: that is why the threshold does not start there
    assert base[(z < 0)].abs().max() > 0.15


def test_gelu_transformer_gates_are_the_identity_on_its_inputs_at_init():
    torch.manual_seed(0)
    vit = VisionTransformer(ViTConfig(width=16, depth=2, heads=2))
    x = torch.randn(32, 784)
    model = apply_method(vit, "dopamine", verbose=False)
    assert list(GateSet.of(model)) == ["blocks.0.mlp.act", "blocks.1.mlp.act"]
    drives = [b.mlp.fc1(b.ln2(torch.zeros(1, 16))) for b in vit.blocks]
    assert all(d.min() > OPEN_AT[nn.GELU] for d in drives)
    with torch.no_grad(), hardened(model):
        assert torch.equal(model(x), vit(x))  # every drive is above -4, so the gates are exactly open
    weights = {k: v.clone() for k, v in vit.state_dict().items()}
    train_a_little(model, x, torch.randint(0, 10, (32,)))
    for name, p in vit.named_parameters():
        assert torch.equal(p, weights[name])


def test_the_mlp_goes_through_the_same_path_and_computes_the_gate_formula_bit_for_bit(small_model):
    model = apply_method(small_model, "dopamine", verbose=False)
    assert isinstance(model.hidden["hidden1"].act, GatedActivation)
    assert list(GateSet.of(model)) == ["hidden.hidden1.act", "hidden.hidden2.act"]
    gates = GateSet.of(model)
    with torch.no_grad():
        for g in gates.values():
            g.threshold.uniform_(-0.5, 0.5)
            g.gain.uniform_(0.5, 1.5)
    x = torch.randn(8, 784)

    def by_hand(hard):
        h = x
        for name, layer in small_model.hidden_layers().items():
            z = F.linear(h, layer.linear.weight, layer.linear.bias)
            g = gates[f"hidden.{name}.act"]
            s = (z > g.threshold).to(z.dtype) if hard else torch.sigmoid((z - g.threshold) / g.temperature)
            h = s * g.gain * torch.relu(z)
        return F.linear(h, small_model.head.weight, small_model.head.bias)
    with torch.no_grad():
        assert torch.equal(model(x), by_hand(False))
        with hardened(model):
            assert torch.equal(model(x), by_hand(True))


def test_lora_bitfit_head_and_gain_by_target_on_the_transformer_count_exactly():
    vit = VisionTransformer(ViTConfig())  # width 48, depth 2, 4 heads, MLP 192
    w, h, d = 48, 192, 2
    total = count_parameters(vit)[1]
    assert total == (49 * w + w) + w + 17 * w + d * (4 * w + (w * 3 * w + 3 * w) + (w * w + w) + (w * h + h)
                                                      + (h * w + w)) + 2 * w + (w * 10 + 10)
    counts = {
        ("dopamine", None): d * 2 * h,
        ("gain_only", None): d * h,
        ("lora", ("qkv", "proj")): d * 4 * ((w + 3 * w) + (w + w)),
        ("lora", ("fc1", "fc2")): d * 4 * ((w + h) + (h + w)),
        ("bitfit", None): sum(p.numel() for n, p in vit.named_parameters() if n.endswith("bias")),
        ("head", None): w * 10 + 10,
        ("full", None): total,
    }
    for (method, targets), expected in counts.items():
        kwargs = {} if targets is None else {"targets": list(targets)}
        assert count_parameters(apply_method(vit, method, verbose=False, **kwargs))[0] == expected, method
    only_attention = apply_method(vit, "bitfit", targets=r"blocks\.\d+\.attn\.(qkv|proj)", verbose=False)
    assert count_parameters(only_attention)[0] == d * (3 * w + w)


def test_lora_on_a_regex_target_equals_the_base_at_init_and_merges():
    base = stack()
    model = apply_method(base, "lora", targets=r"[02]", verbose=False)
    x = torch.randn(4, 12)
    assert torch.equal(model(x), base(x))
    assert count_parameters(model)[0] == 4 * (12 + 20) + 4 * (20 + 16)


@pytest.mark.parametrize("targets, message", [
    (["nothing"], r"target 'nothing' matches no module; modules of the right kind \(ReLU, ReLU6, LeakyReLU, "
                  r"\.\.\. \(\d+ classes\)\) are \['1', '3'\]"),
    (r"\d", r"Dopamine gates go on activations \(an output the shape of the input\), but '0' \(Linear\) maps "
            r"\(2, 12\) to \(2, 20\)"),
    (["1", "1"], r"targets '1' and '1' both match '1'"),
    (nn.Tanh, r"targets Tanh match no module of Sequential"),
    ("", "target_modules is an empty pattern"),
    ("(", r"targets '\(' is not a valid regular expression"),
    (42, r"target_modules must be None \(the method's default places\), a regular expression \(str\).*got 42"),
])
def test_bad_targets_say_what_they_found(targets, message):
    with pytest.raises(ValueError, match=message):
        apply_method(stack(), "dopamine", targets=targets, verbose=False)


def test_lora_on_an_activation_and_shared_activations_are_refused():
    with pytest.raises(ValueError, match=r"LoRA cannot wrap '1': it is a ReLU; LoRA wraps Linear, Conv2d and "
                                         r"transformers' Conv1D"):
        apply_method(stack(), "lora", targets=["1"], verbose=False)
    relu = nn.ReLU()
    shared = nn.Sequential(nn.Linear(4, 4), relu, nn.Linear(4, 4), relu)
    with pytest.raises(ValueError, match=r"module '1' is the same object as \['3'\]"):
        apply_method(shared, "dopamine", targets=["1"], verbose=False)
    # the width comes from the drive, whatever is registered before the activation (here nothing)
    first = apply_method(nn.Sequential(nn.ReLU(), nn.Linear(3, 3)), "dopamine", verbose=False)
    assert GateSet.of(first)["0"].width == 3
    # head-only without a module named head: the last Linear that runs
    head = apply_method(stack(), "head", verbose=False)
    assert [n for n, p in head.named_parameters() if p.requires_grad] == ["4.weight", "4.bias"]


def test_a_mode_saves_alone_loads_into_its_model_and_is_refused_by_another(tmp_path):
    torch.manual_seed(0)
    vit = VisionTransformer(ViTConfig(width=16, depth=2, heads=2))
    modes = Modes(vit)
    gates = GateSet.for_model(vit)
    with torch.no_grad():
        gates["blocks.1.mlp.act"].threshold.uniform_()
    modes.add("45deg", gates)
    path = modes.save("45deg", tmp_path / "m.pt")
    assert path.stat().st_size < 10_000
    again = Modes(vit)
    loaded = again.load("45deg", path)
    assert torch.equal(loaded["blocks.1.mlp.act"].threshold, gates["blocks.1.mlp.act"].threshold)
    x = torch.randn(3, 784)
    with torch.no_grad():
        assert torch.equal(modes.use("45deg")(x), again.use("45deg")(x))
    assert "'45deg' (active): 256 gate numbers on 2 activations" in modes.summary()
    detach(vit)
    for other, found in [(VisionTransformer(ViTConfig(width=16, depth=2, heads=2, mlp_ratio=2)),
                          "blocks.0.mlp.act: width 64 in the mode's model, 32 here"),
                         (VisionTransformer(ViTConfig(width=16, depth=1, heads=2)),
                          "blocks.1.mlp.act: in the mode's model, not in this one"),
                         (FoundationMLP(MLPConfig(hidden=(8,))), "hidden.hidden1.act: in this model")]:
        with pytest.raises(CheckpointError, match=f"holds a mode for another model \\(VisionTransformer\\); the "
                                                  f"activations differ \\(\\d\\):\n(.*\n)*  {found}"):
            Modes(other).load("45deg", path)
