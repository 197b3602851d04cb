import pytest
import torch

from dopatut.methods.gate import (DopamineGate, GateSet, Modes, attach, detach, gate_activity, hardened,
                          set_hard, temperature_at)


def test_hard_gate_at_zero_threshold_unit_gain_is_exactly_the_base(small_model, inputs):
    before = small_model(inputs)
    attach(small_model, GateSet.for_model(small_model, hard=True))
    assert torch.equal(small_model(inputs), before)


def test_soft_and_hard_formulas():
    gate = DopamineGate(3, temperature=0.5)
    with torch.no_grad():
        gate.threshold.copy_(torch.tensor([0.0, 1.0, -1.0]))
        gate.gain.copy_(torch.tensor([1.0, 2.0, 0.5]))
    z = torch.tensor([[0.5, 0.5, 2.0]])
    a = torch.relu(z)
    soft = torch.sigmoid((z - gate.threshold) / 0.5) * gate.gain * a
    assert torch.allclose(gate(z, a), soft)
    gate.hard = True
    assert torch.equal(gate(z, a), torch.tensor([[0.5, 0.0, 1.0]]))
    assert torch.equal(gate.last_gate, torch.tensor([[1.0, 0.0, 1.0]]))


def test_hard_gate_gives_the_formula_bit_for_bit_and_its_mask_as_floats():
    g = torch.Generator().manual_seed(0)
    gate = DopamineGate(64, hard=True)
    with torch.no_grad():
        gate.threshold.copy_(torch.randn(64, generator=g))
        gate.gain.copy_(torch.rand(64, generator=g) * 2)
    z = torch.randn(32, 64, generator=g)
    a = torch.nn.functional.gelu(z)
    mask = (z > gate.threshold).float()
    assert torch.equal(gate(z, a), mask * gate.gain * a)
    assert gate.last_gate.dtype == torch.float32 and torch.equal(gate.last_gate, mask)
    assert 0 < gate.last_gate.mean() < 1


def test_raising_a_threshold_silences_a_neuron_under_the_hard_gate(small_model, inputs):
    gates = GateSet.for_model(small_model, hard=True)
    attach(small_model, gates)
    with torch.no_grad():
        gates["hidden.hidden2.act"].threshold[3] = 1e9
    out = small_model.hidden["hidden2"](small_model.hidden["hidden1"](inputs))
    assert (out[:, 3] == 0).all() and (out[:, :3] != 0).any()


def test_gate_on_layer_of_wrong_size_is_refused(small_model):
    wrong = GateSet({"hidden.hidden1.act": DopamineGate(99)})
    with pytest.raises(ValueError, match="gate for .hidden.hidden1.act. has 99 neurons on axis -1, but the activation.s input there has 32 on axis -1"):
        attach(small_model, wrong)
    with pytest.raises(ValueError, match="gate for 'hidden1', but FoundationMLP has no module of that name"):
        attach(small_model, GateSet({"hidden1": DopamineGate(32)}))
    with pytest.raises(ValueError, match="target 'hidden7' matches no module"):
        GateSet.for_model(small_model, targets=["hidden7"])
    with pytest.raises(ValueError, match=r"gate has 5 neurons on axis -1, but the layer gives a tensor of shape \(1, 3\)"):
        DopamineGate(5)(torch.zeros(1, 3), torch.zeros(1, 3))


def test_attaching_gates_never_changes_base_weights(small_model):
    before = {k: v.clone() for k, v in small_model.state_dict().items()}
    attach(small_model, GateSet.for_model(small_model))
    detach(small_model)
    after = small_model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def test_modes_switch_and_restore_exact_outputs(small_model, inputs):
    base_out = small_model(inputs)
    modes = Modes(small_model)
    for name, shift in (("a", 0.3), ("b", -0.2)):
        gates = GateSet.for_model(small_model, hard=True)
        with torch.no_grad():
            for g in gates.values():
                g.threshold.add_(shift)
                g.gain.mul_(1 + shift)
        modes.add(name, gates)
    out_a = modes.use("a")(inputs)
    out_b = modes.use("b")(inputs)
    assert not torch.equal(out_a, out_b)
    assert torch.equal(modes.use("a")(inputs), out_a)
    assert torch.equal(modes.off()(inputs), base_out) and modes.active is None
    with pytest.raises(KeyError, match="no mode named 'c'; modes are \\['a', 'b'\\]"):
        modes.use("c")


def test_hardened_restores_previous_setting(small_model):
    attach(small_model, GateSet.for_model(small_model))
    with hardened(small_model):
        assert all(g.hard for g in small_model.modules() if isinstance(g, DopamineGate))
    assert not any(g.hard for g in small_model.modules() if isinstance(g, DopamineGate))
    set_hard(small_model, True)
    assert all(g.hard for g in small_model.modules() if isinstance(g, DopamineGate))


def test_temperature_schedule_and_validation():
    assert temperature_at(0, 1.0, 0.1) == 1.0 and abs(temperature_at(1, 1.0, 0.1) - 0.1) < 1e-12
    assert abs(temperature_at(0.5, 1.0, 0.01) - 0.1) < 1e-12
    with pytest.raises(ValueError, match="temperature must be a positive"):
        DopamineGate(4, temperature=0)


def test_gate_activity_is_mean_gate_value(small_model, inputs):
    with pytest.raises(RuntimeError, match="no gate has run"):
        gate_activity(small_model)
    attach(small_model, GateSet.for_model(small_model))
    small_model(inputs)
    gates = [small_model.hidden[n].gate.last_gate.mean() for n in ("hidden1", "hidden2")]
    assert torch.allclose(gate_activity(small_model), torch.stack(gates).mean())


def test_a_trained_gated_model_can_be_copied(small_model, inputs):
    import copy

    attach(small_model, GateSet.for_model(small_model))
    small_model(inputs).sum().backward()  # last_gate now holds a graph
    twin = copy.deepcopy(small_model)
    assert twin.hidden["hidden1"].gate.last_gate is None
    assert torch.equal(twin(inputs), small_model(inputs))


def test_shifted_drive_check_measures_the_open_thresholds_bound_where_drives_fall_below_it():
    from torch import nn
    from dopatut.methods.activations import OPEN_TOL
    from dopatut.methods.builtin import apply_method
    from dopatut.methods.gate import shifted_drive_check
    torch.manual_seed(0)
    base = nn.Sequential(nn.Linear(8, 64), nn.GELU(), nn.Linear(64, 3)).eval()
    x = torch.randn(32, 8)
    before = base(x)
    gated = apply_method(base, "dopamine", verbose=False)  # τ₀ = −4 on GELU
    assert shifted_drive_check(base, gated, x, 0.0) == {"below": 0.0, "act": 0.0, "output": 0.0}
    moved = shifted_drive_check(base, gated, x, -4.5)
    assert 0.1 < moved["below"] < 0.9 and 0 < moved["act"] < OPEN_TOL and moved["output"] > 0, moved
    assert torch.equal(base(x), before)  # the hooks are gone
    at_0 = apply_method(base, "dopamine", threshold_init=0.0, verbose=False)  # cuts GELU's lobe: over the bound
    assert shifted_drive_check(base, at_0, x, -4.5)["act"] > OPEN_TOL
