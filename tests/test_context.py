import pytest
import torch

from dopatut.study.context import ConditionedModel, ContextGate, embed, gates_at, train_conditioned, with_angle
from dopatut.methods.gate import Modes, hardened
from dopatut.foundations.model import FoundationMLP, MLPConfig, count_parameters
from dopatut.training.train import TrainConfig, evaluate
from dopatut.foundations.data import mode_data


def test_embedding_and_angle_column():
    e = embed(torch.tensor([0.0, 90.0, 180.0]))
    assert torch.allclose(e, torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]), atol=1e-6)
    x = torch.zeros(3, 4)
    assert torch.equal(with_angle(x, 30.0)[:, -1], torch.full((3,), 30.0))
    assert torch.equal(with_angle(x, torch.tensor([1.0, 2.0, 3.0]))[:, -1], torch.tensor([1.0, 2.0, 3.0]))


def test_conditioned_model_starts_as_the_identity_and_leaves_the_base_alone(small_model, inputs):
    before = {k: v.clone() for k, v in small_model.state_dict().items()}
    model = ConditionedModel(small_model)
    with hardened(model):  # like the Dopamine gate, the hard gate at tau = 0, g = 1 is the identity
        assert torch.equal(model(with_angle(inputs, 37.0)), small_model(inputs))
    assert count_parameters(model)[0] == 6 * (32 + 16)
    assert all(torch.equal(before[k], v) for k, v in small_model.state_dict().items())


def test_thresholds_and_gains_depend_on_the_angle(small_model, inputs):
    model = ConditionedModel(small_model)
    with torch.no_grad():
        for g in model.gates.values():
            g.threshold_map.normal_(generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(model(with_angle(inputs, 0.0)), model(with_angle(inputs, 90.0)))
    with pytest.raises(RuntimeError, match="no context"):
        ContextGate(4)(torch.zeros(2, 4), torch.zeros(2, 4))


@pytest.mark.parametrize("hard", [False, True])
def test_exported_gates_at_an_angle_give_exactly_the_conditioned_outputs(small_model, inputs, hard):
    model = ConditionedModel(small_model)
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for g in model.gates.values():
            g.threshold_map.normal_(generator=gen)
            g.gain_map.normal_(generator=gen)
            g.hard = hard
    modes = Modes(small_model)
    for angle in (0.0, 30.0, 75.0):
        modes.add(f"{angle:g}", gates_at(model, angle))
    for angle in (0.0, 30.0, 75.0):
        assert torch.equal(modes.use(f"{angle:g}")(inputs), model(with_angle(inputs, angle)))


def test_training_is_deterministic_and_the_exported_gates_reproduce_its_accuracy():
    torch.manual_seed(0)
    base = FoundationMLP(MLPConfig(hidden=(32, 32)))
    config = TrainConfig(epochs=1, lr=1e-2, seed=3)
    a, history = train_conditioned(base, (0.0, 90.0), seed=3, config=config, limit=2000)
    b, _ = train_conditioned(base, (0.0, 90.0), seed=3, config=config, limit=2000)
    assert history.loss[0] > 0
    for (name, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        assert torch.equal(p, q), name
    assert any(g.threshold_map.abs().sum() > 0 for g in a.gates.values()), "training should move the maps"
    x, y = mode_data("test", 90.0, limit=1000)
    with hardened(a):
        conditioned = evaluate(a, with_angle(x, 90.0), y)
        modes = Modes(base)
        modes.add("90", gates_at(a, 90.0))
        assert evaluate(modes.use("90"), x, y) == conditioned


def test_the_context_gates_train_with_the_gate_settings_they_are_given():
    torch.manual_seed(0)
    base = FoundationMLP(MLPConfig(hidden=(32, 32)))
    config = TrainConfig(epochs=1, lr=1e-2, seed=3)
    fixed, _ = train_conditioned(base, (0.0, 90.0), seed=3, config=config, limit=1000, temperature=0.5)
    annealed, _ = train_conditioned(base, (0.0, 90.0), seed=3, config=config, limit=1000, temperature=(2.0, 0.05))
    assert {g.temperature for g in fixed.gates.values()} == {0.5}
    assert all(g.temperature == pytest.approx(0.05, rel=1e-12) for g in annealed.gates.values())
    with pytest.raises(ValueError, match="DopamineConfig.sparsity must be >= 0"):
        train_conditioned(base, (0.0, 90.0), config=config, limit=1000, sparsity=-1.0)


def test_above_or_below_reads_the_sign():
    from dopatut.study.context import above_or_below

    assert above_or_below(0.34) == "0.3 points above"
    assert above_or_below(-1.26) == "1.3 points below"


def test_overlap_words_place_each_pair_against_the_seed_yardstick():
    from dopatut.study.context import overlap_words

    mixed = overlap_words({"0°–45°": 0.97, "0°–90°": 0.89}, 0.95)
    assert "the pair 0°–45° (0.97) overlaps as much as two seeds" in mixed
    assert "the pair 0°–90° (0.89) overlaps less" in mixed
    assert "no more than seed noise" in overlap_words({"a": 0.9}, 0.9)  # as large as the yardstick
    assert "more than seed noise" in overlap_words({"a": 0.8, "b": 0.85}, 0.9)
    assert "the pairs a (0.80) and b (0.85) all overlap less" in overlap_words({"a": 0.8, "b": 0.85}, 0.9)
    # compared as printed: 0.954 and 0.951 both read 0.95
    assert "no more than seed noise" in overlap_words({"a": 0.951}, 0.954)
    assert "more than seed noise" not in overlap_words({"a": 0.951}, 0.954).replace("no more", "")
    with pytest.raises(ValueError, match="at least one pair"):
        overlap_words({}, 0.9)
