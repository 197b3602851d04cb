import pytest
import torch

from dopatut.methods.gate import GateSet, Modes, attach, hardened
from dopatut.foundations.model import FoundationMLP, MLPConfig
from dopatut.study.perf import forward_flops, linear_shapes
from dopatut.analysis.attribution import firing
from dopatut.analysis.prune import drive_bounds, never_fire, pixel_box, prune, silent_on


@pytest.fixture
def gated(small_model):
    """A small model with hard gates whose thresholds silence a good share of neurons."""
    gates = GateSet.for_model(small_model, hard=True)
    gen = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for g in gates.values():
            g.threshold.copy_(torch.rand(g.width, generator=gen) * 3 - 0.5)
            g.gain.copy_(torch.rand(g.width, generator=gen) * 3 - 1)  # some gains negative
    return attach(small_model, gates)


def test_pruned_model_gives_the_gated_outputs_on_the_inputs_it_was_measured_on(gated, inputs):
    silent = silent_on(gated, inputs)
    assert sum(m.sum() for m in silent.values()) > 0, "the fixture should silence some neurons"
    small = prune(gated, silent)
    assert small.config.hidden == tuple(int((~m).sum()) for m in silent.values())
    with hardened(gated):
        dense = gated(inputs)
    assert torch.allclose(small(inputs), dense, atol=1e-5, rtol=0)
    assert torch.equal(small(inputs).argmax(1), dense.argmax(1))


def test_widths_rounded_up_to_a_multiple_keep_the_outputs(gated, inputs):
    silent = silent_on(gated, inputs)
    small = prune(gated, silent, multiple_of=8)
    for width, mask in zip(small.config.hidden, silent.values()):
        kept = int((~mask).sum())
        assert width % 8 == 0 or width == len(mask)
        assert kept <= width < kept + 8
    with hardened(gated):
        assert torch.allclose(small(inputs), gated(inputs), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="multiple_of"):
        prune(gated, silent, multiple_of=0)


def test_pruning_a_neuron_that_fires_changes_the_outputs(gated, inputs):
    silent = silent_on(gated, inputs)
    rates = firing(gated, inputs)
    busiest = int(rates["hidden2"].argmax())
    silent["hidden2"] = silent["hidden2"].clone()
    silent["hidden2"][busiest] = True
    with hardened(gated):
        dense = gated(inputs)
    assert not torch.allclose(prune(gated, silent)(inputs), dense, atol=1e-5)


def test_max_firing_rate_selects_the_rarely_firing_neurons(gated, inputs):
    rates = firing(gated, inputs)
    masks = silent_on(gated, inputs, max_firing_rate=0.1)
    for name, rate in rates.items():
        assert torch.equal(masks[name], rate <= 0.1)
    with pytest.raises(ValueError, match="max_firing_rate"):
        silent_on(gated, inputs, max_firing_rate=1.5)


def test_certified_neurons_never_fire_anywhere_in_the_box(gated):
    with torch.no_grad():  # make a few neurons certainly silent: a huge threshold, a zero gain
        gated.hidden["hidden1"].gate.threshold[:3] = 1e4
        gated.hidden["hidden2"].gate.gain[0] = 0.0
    certified = never_fire(gated)
    assert certified["hidden1"][:3].all() and certified["hidden2"][0]
    low, high = pixel_box()
    corners = torch.where(torch.rand(4000, 784, generator=torch.Generator().manual_seed(3)) < 0.5, low, high)
    x = torch.cat([corners, low + (high - low) * torch.rand(4000, 784)])
    fired = {k: ~m for k, m in silent_on(gated, x).items()}
    for name in certified:
        assert not (certified[name] & fired[name]).any()
    small = prune(gated, certified)
    with hardened(gated):
        assert torch.allclose(small(x), gated(x), atol=1e-5, rtol=0)


def test_drive_bounds_contain_every_drive(gated):
    low, high = pixel_box()
    x = low + (high - low) * torch.rand(2000, 784, generator=torch.Generator().manual_seed(4))
    bounds = drive_bounds(gated, low, high)
    with hardened(gated):
        h = x
        for name, layer in gated.hidden_layers().items():
            z = layer.linear(h)
            assert (z >= bounds[name][0] - 1e-4).all() and (z <= bounds[name][1] + 1e-4).all()
            h = layer(h)


def test_pruned_shapes_and_flops(gated, inputs):
    silent = silent_on(gated, inputs)
    small = prune(gated, silent)
    k1, k2 = small.config.hidden
    assert linear_shapes(small) == [(784, k1), (k1, k2), (k2, 10)]
    assert forward_flops(linear_shapes(small), 1) < forward_flops(linear_shapes(gated), 1)


def test_prune_rejects_wrong_masks_and_lora(gated, small_model):
    with pytest.raises(ValueError, match="expected \\(32,\\)"):
        prune(gated, {"hidden1": torch.zeros(5, dtype=torch.bool)})
    with pytest.raises(ValueError, match="hidden9"):
        prune(gated, {"hidden9": torch.zeros(5, dtype=torch.bool)})
    from dopatut.methods.builtin import apply_method
    with pytest.raises(TypeError, match="merge LoRA"):
        prune(apply_method(FoundationMLP(MLPConfig(hidden=(8,))), "lora", verbose=False), {})


def test_a_mode_switch_restores_exactly_the_earlier_outputs(small_model, inputs):
    modes = Modes(small_model)
    for name, shift in (("a", 0.3), ("b", -0.2)):
        gates = GateSet.for_model(small_model, hard=True)
        with torch.no_grad():
            for g in gates.values():
                g.threshold += shift
                g.gain *= 1 + shift
        modes.add(name, gates)
    first = modes.use("a")(inputs).clone()
    other = modes.use("b")(inputs)
    assert not torch.equal(first, other)
    modes.off()
    assert torch.equal(modes.use("a")(inputs), first)


def test_same_logits_words_say_exact_or_rounding():
    from dopatut.analysis.prune import same_logits_words

    assert same_logits_words(0.0) == "the logits are exactly equal"
    words = same_logits_words(3e-7)
    assert words.startswith("the logits differ only by float rounding (at most ") and "3" in words


def test_penalty_words_give_both_counts_and_say_which_kind_grew_more():
    from dopatut.analysis.prune import penalty_words

    plain = {"silent": 5, "rare": 120, "accuracy": 0.97}
    words = penalty_words(plain, {"silent": 52, "rare": 359, "accuracy": 0.956})
    assert words.startswith("With the penalty the count of neurons silent on every 45° test digit grows from 5 to "
                            "52, and of those firing on at most 5% of the training digits grows from 120 to 359, "
                            "at 95.6% accuracy against 97.0%. ")
    assert "mostly in rarely firing neurons" in words and words.count(". ") == 1
    assert "silences whole neurons" in penalty_words(plain, {"silent": 80, "rare": 130, "accuracy": 0.96})
    words = penalty_words(plain, {"silent": 5, "rare": 100, "accuracy": 0.96})
    assert "stays at 5" in words and "falls from 120 to 100" in words and "no more to remove" in words
