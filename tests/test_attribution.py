import pytest
import torch

from dopatut.attribution import (firing_fraction, hidden_states, last_layer_contributions, logit_margins, silenced,
                                 strongly_active_fraction)
from dopatut.gate import GateSet, attach, set_hard
from dopatut.lora import LoRALinear
from dopatut.methods import apply_method


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
    s = states["hidden1"]
    assert torch.equal(s["gate"], (s["drive"] > 0.5).float())
    assert torch.equal(s["output"], s["gate"] * torch.relu(s["drive"]))
    assert torch.equal(states["logits"]["output"], small_model(inputs))


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


def test_firing_and_strong_fractions(small_model, inputs):
    attach(small_model, GateSet.for_model(small_model))
    set_hard(small_model, True)
    fractions = firing_fraction(small_model, inputs)
    h = hidden_states(small_model, inputs)["hidden1"]["output"]
    assert torch.equal(fractions["hidden1"], (h > 0).float().mean(1))
    strong = strongly_active_fraction(small_model, inputs, share=1.0)
    assert strong["hidden1"] == pytest.approx(fractions["hidden1"].mean().item(), abs=1 / 32)
    assert strongly_active_fraction(small_model, inputs, share=0.5)["hidden1"] < strong["hidden1"]


def test_logit_margins_of_right_and_wrong_answers():
    logits = torch.tensor([[3.0, 1.0, 0.5],    # right (label 0): 3 - 1
                           [0.0, 2.0, 1.5],    # wrong (label 2, read as 1): 2 - 1.5
                           [1.0, 0.2, 4.0]])   # right (label 2): 4 - 1
    right, wrong = logit_margins(logits, torch.tensor([0, 2, 2]))
    assert torch.equal(right, torch.tensor([2.0, 3.0])) and torch.equal(wrong, torch.tensor([0.5]))
    with pytest.raises(ValueError, match=r"labels \(N,\), got \(3, 3\) and \(2,\)"):
        logit_margins(logits, torch.tensor([0, 1]))
