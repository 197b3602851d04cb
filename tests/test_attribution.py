import pytest
import torch

from dopatut.analysis.attribution import (control_words, firing, gate_states, hidden_states, last_layer_contributions,
                                 logit_margins, selective_counts, threshold_correlation,
                                 silenced, strongly_active_fraction)
from dopatut.methods.gate import GateSet, attach, set_hard
from dopatut.methods.lora import LoRALinear
from dopatut.methods.builtin import apply_method


@pytest.mark.parametrize("method", ["frozen", "dopamine", "lora"])
def test_contributions_sum_to_the_logits(small_model, inputs, method):
    model = apply_method(small_model, method, verbose=False)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, LoRALinear):
                m.lora_B.normal_()
        for p in model.parameters():
            if p.requires_grad and p.dim() == 1:
                p.uniform_(0.5, 1.5)
    contributions, bias = last_layer_contributions(model, inputs)
    assert contributions.shape == (64, 16, 10)
    assert torch.allclose(contributions.sum(1) + bias, model(inputs), atol=1e-5)


def test_hidden_states_report_drive_output_and_gate(small_model, inputs):
    gates = GateSet.for_model(small_model, hard=True)
    with torch.no_grad():
        gates["hidden.hidden1.act"].threshold.fill_(0.5)
    attach(small_model, gates)
    states = hidden_states(small_model, inputs)
    assert list(states) == ["hidden1", "hidden2"]  # the hidden layers only
    s = states["hidden1"]
    assert torch.equal(s["gate"], (s["drive"] > 0.5).float())
    assert torch.equal(s["output"], s["gate"] * torch.relu(s["drive"]))
    again, logits = hidden_states(small_model, inputs, logits=True)
    assert list(again) == list(states) and torch.equal(logits, small_model(inputs))


def test_silenced_neurons_output_zero_and_change_logits(small_model, inputs):
    base = small_model(inputs)
    with silenced(small_model, {"hidden2": [0, 5]}):
        states = hidden_states(small_model, inputs)
        assert (states["hidden2"]["output"][:, [0, 5]] == 0).all()
        contributions, _ = last_layer_contributions(small_model, inputs)
        assert (contributions[:, [0, 5]] == 0).all()
        assert not torch.equal(small_model(inputs), base)
    assert torch.equal(small_model(inputs), base)
    with pytest.raises(ValueError, match=r"must be in \[0, 16\), got \[16\]"):
        with silenced(small_model, {"hidden2": [16]}):
            pass


def test_strong_fraction_is_at_most_the_firing_share(small_model, inputs):
    attach(small_model, GateSet.for_model(small_model))
    set_hard(small_model, True)
    shares = firing(small_model, inputs, per="input")
    strong = strongly_active_fraction(small_model, inputs, share=1.0)
    assert strong["hidden1"] == pytest.approx(shares["hidden1"].mean().item(), abs=1 / 32)
    assert strongly_active_fraction(small_model, inputs, share=0.5)["hidden1"] < strong["hidden1"]


@pytest.fixture
def gated(small_model):
    """Soft gates with random thresholds and gains, some gains zero: an open gate then outputs nothing."""
    gates = GateSet.for_model(small_model)
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for g in gates.values():
            g.threshold.copy_(torch.rand(g.width, generator=gen) - 0.5)
            g.gain.copy_(torch.rand(g.width, generator=gen) * 2 * (torch.rand(g.width, generator=gen) > 0.2))
    return attach(small_model, gates)


def by_hand(model, x):
    """Each hidden layer's drive z, hard gate 1[z > tau] and output g * gate * relu(z), from the weights."""
    layers, h = {}, x
    for name, layer in model.hidden_layers().items():
        z = h @ layer.linear.weight.t() + layer.linear.bias
        gate = (z > layer.gate.threshold).float() if layer.gate is not None else None
        h = torch.relu(z) * (1 if gate is None else gate * layer.gate.gain)
        layers[name] = (z.detach(), gate, h.detach())
    return layers


def test_firing_gives_what_each_old_copy_gave(gated, inputs, small_model):
    """The copies it replaces: per-input shares (attribution.firing_fraction, chapter 3), per-neuron rates
    (prune.firing_rates, widgets.firing_rates, chapters 6 and 8), the mean of the layers' shares (sweeps.firing,
    chapter 7), neurons firing per input (chapter 6), gated-off rates (chapter 6), and open gates per block
    (beyond.firing_by_block, chapter 9), each computed here from the weights, with hard gates."""
    hand = by_hand(gated, inputs)
    on = {n: (h != 0) for n, (_, _, h) in hand.items()}
    for name, (z, gate, h) in hand.items():
        assert torch.equal(firing(gated, inputs, per="input")[name], on[name].float().mean(1))
        assert torch.equal(firing(gated, inputs)[name], on[name].float().mean(0))
        assert torch.equal(firing(gated, inputs, per="neuron", count=True)[name], on[name].sum(0))
        assert torch.equal(firing(gated, inputs, measure="gated_off")[name], ((z > 0) & (gate == 0)).float().mean(0))
        assert firing(gated, inputs, per="layer", measure="gate")[name] == gate.mean().item()
        # an open gate with a zero gain or a negative drive is open but silent: the two measures differ
        assert not torch.equal(firing(gated, inputs, measure="gate")[name], firing(gated, inputs)[name])
    assert firing(gated, inputs, per="model") == torch.stack([o.float().mean(1).mean() for o in on.values()]
                                                             ).mean().item()
    counts = firing(gated, inputs, per="input", count=True)
    assert torch.equal(sum(counts.values()), sum(o.sum(1) for o in on.values()))
    assert not any(g.hard for g in GateSet.of(gated).values()), "the gates are soft again afterwards"


def test_firing_without_gates_and_on_any_gated_model(inputs):
    from dopatut.foundations.model import FoundationMLP, MLPConfig
    base = FoundationMLP(MLPConfig(hidden=(16, 16)))
    h1 = torch.relu(base.hidden["hidden1"].linear(inputs))
    assert torch.equal(firing(base, inputs, per="input")["hidden1"], (h1 != 0).float().mean(1))
    with pytest.raises(ValueError, match="'hidden1' has no gate"):
        firing(base, inputs, measure="gate")
    with pytest.raises(ValueError, match="per='block' is not one of"):
        firing(base, inputs, per="block")
    # a model that is no FoundationMLP: its gates, by place, read from the forward pass
    net = torch.nn.Sequential(torch.nn.Linear(784, 12), torch.nn.ReLU(), torch.nn.Linear(12, 3))
    gates = GateSet.for_model(net, example_input=inputs[:2])
    with torch.no_grad():
        next(iter(gates.values())).threshold.fill_(0.3)
    attach(net, gates)
    z = net[0](inputs)
    assert firing(net, inputs, per="layer", measure="gate") == {"1": (z > 0.3).float().mean().item()}
    assert set(gate_states(net, inputs)) == {"1"}
    with pytest.raises(ValueError, match="has no gates"):
        gate_states(torch.nn.Sequential(torch.nn.Linear(784, 3)), inputs)


def test_logit_margins_of_right_and_wrong_answers():
    logits = torch.tensor([[3.0, 1.0, 0.5],    # right (label 0): 3 - 1
                           [0.0, 2.0, 1.5],    # wrong (label 2, read as 1): 2 - 1.5
                           [1.0, 0.2, 4.0]])   # right (label 2): 4 - 1
    right, wrong = logit_margins(logits, torch.tensor([0, 2, 2]))
    assert torch.equal(right, torch.tensor([2.0, 3.0])) and torch.equal(wrong, torch.tensor([0.5]))
    with pytest.raises(ValueError, match=r"labels \(N,\), got \(3, 3\) and \(2,\)"):
        logit_margins(logits, torch.tensor([0, 1]))


def test_balance_words_follow_the_signs_and_sizes():
    from dopatut.analysis.attribution import balance_words

    assert balance_words(-0.5, 1.0, 8, 3).startswith("the strongest neurons, on balance, favour the true 3")
    assert balance_words(2.0, 0.5, 8, 3) == "the strongest neurons carry the wrong answer"
    assert balance_words(0.2, 0.5, 8, 3) == "the strongest neurons and the rest both push towards 8"
    assert balance_words(-0.2, -0.1, 8, 3).endswith("the head's bias decides")


def test_rest_words_follow_the_share_of_the_margin_and_the_largest_bar():
    from dopatut.analysis.attribution import rest_words

    parts = dict(values=[0.9, 0.5, -0.3], bias=0.1, n_rest=248, n_rest_firing=110, margin=4.0)
    assert rest_words({**parts, "rest": 2.8}) == (
        "the other 248 neurons, of which 110 fire, together are the largest bar, +2.80 of a margin of 4.00: "
        "the many small pushes of those 110 carry most of it")
    assert rest_words({**parts, "rest": 0.8}).endswith("together add +0.80 of a margin of 4.00: the named "
                                                       "neurons and the bias carry the larger part")
    assert rest_words({**parts, "rest": 4.5, "n_rest_firing": 7}).endswith("those 7 carry all of it, and more")
    assert rest_words({**parts, "rest": -0.4}).startswith("the other 248 neurons, of which 110 fire, together "
                                                          "push towards the rival (−0.40)")


def test_flip_words_say_the_count_or_that_it_did_not_turn():
    from dopatut.analysis.attribution import flip_words

    assert flip_words(3, True, 5, 9) == "the count is 3: then it reads 5"
    assert flip_words(50, False, 5, 9) == "even the top 50 do not turn it: it still reads 9"


def test_selective_counts_need_often_in_one_table_and_rare_in_the_other():
    a = {"h": torch.tensor([0.10, 0.10, 0.005, 0.03, 0.0])}
    b = {"h": torch.tensor([0.00, 0.02, 0.200, 0.00, 0.0])}
    assert selective_counts(a, b) == {"h": (1, 1)}
    assert selective_counts(a, b, active=0.03, silent=0.03) == {"h": (3, 1)}
    with pytest.raises(ValueError):
        selective_counts(a, {"g": b["h"]})
    with pytest.raises(ValueError):
        selective_counts(a, b, active=0.01, silent=0.05)


def test_threshold_correlation_leaves_out_thresholds_that_cannot_act():
    acting_a, acting_b = torch.tensor([0.5, 1.0, 2.0, 3.0]), torch.tensor([3.0, 2.5, 1.5, 0.5])
    inert_a, inert_b = torch.linspace(-2, -0.1, 20), torch.linspace(-2, -0.1, 20)
    r = threshold_correlation(torch.cat([acting_a, inert_a]), torch.cat([acting_b, inert_b]))
    assert r["n_acting"] == 4
    assert r["acting"] == pytest.approx(-1.0)
    assert r["all"] > 0.5  # the inert cloud alone makes them look alike
    assert threshold_correlation(acting_a, 2 * acting_a)["acting"] == pytest.approx(1.0)
    with pytest.raises(ValueError):
        threshold_correlation(acting_a, inert_a)


def test_control_words_follow_the_counts_and_the_correlations():
    assert "most of the selectivity is the mode's" in control_words(60, 20, -0.2, 0.6)
    assert "only part of it" in control_words(30, 20, -0.2, 0.6)
    assert "the count is seed noise" in control_words(20, 25, -0.2, 0.6)
    assert "far better" in control_words(60, 20, -0.2, 0.6)
    assert "about as well" in control_words(60, 20, 0.5, 0.6)
    assert "r = −0.20" in control_words(60, 20, -0.2, 0.6)
