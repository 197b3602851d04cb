import copy

import pytest
import torch

from dopatut.foundations.data import mixture, mode_data
from dopatut.methods.gate import gates_of, hardened
from dopatut.methods.builtin import apply_method
from dopatut.foundations.model import FoundationMLP, MLPConfig, base_state_dict, freeze
from dopatut.training.train import TrainConfig, adam, evaluate, fit, seed_everything

N_TRAIN, N_TEST = 12_000, 5_000


@pytest.fixture(scope="module")
def sliced():
    x, y, _ = mixture("train", (0, 45), seed=0, limit=N_TRAIN)
    return (x, y), mode_data("train", 45, limit=N_TRAIN), mode_data("test", 45, limit=N_TEST)


@pytest.fixture(scope="module")
def base(sliced):
    seed_everything(0)
    model = FoundationMLP(MLPConfig(hidden=(128, 128)))
    fit(model, *sliced[0], TrainConfig(epochs=2, seed=0), progress=False)
    return freeze(model)


def train_twice(base, data, method):
    runs = []
    for _ in range(2):
        seed_everything(0)
        model = apply_method(base, method, verbose=False)
        history = fit(model, *data, TrainConfig(epochs=1, lr=1e-2, seed=7), progress=False)
        runs.append((model.state_dict(), history.loss))
    return runs


@pytest.mark.parametrize("method", ["dopamine", "lora"])
def test_same_seed_same_numbers(base, sliced, method):
    (sd1, loss1), (sd2, loss2) = train_twice(base, sliced[1], method)
    assert loss1 == loss2
    assert all(torch.equal(sd1[k], sd2[k]) for k in sd1)


def test_dopamine_training_keeps_base_weights_bitwise_and_beats_frozen_at_45(base, sliced):
    frozen_acc = evaluate(base, *sliced[2])
    model = apply_method(base, "dopamine", verbose=False)
    before = {k: v.clone() for k, v in base_state_dict(model).items()}
    history = fit(model, *sliced[1], TrainConfig(epochs=2, lr=1e-2, seed=0), eval_sets={"45": sliced[2]},
                  progress=False)
    after = base_state_dict(model)
    assert all(torch.equal(before[k], after[k]) for k in before)
    with hardened(model):
        hard_acc = evaluate(model, *sliced[2])
    assert history.final("45") > frozen_acc + 0.005
    assert hard_acc > frozen_acc + 0.005
    assert len(history.loss) == 2 and history.loss[1] < history.loss[0]


def test_fit_refuses_a_model_with_nothing_to_train(base, sliced):
    with pytest.raises(ValueError, match="no trainable parameters"):
        fit(base, *sliced[1], progress=False)


@pytest.mark.parametrize("kwargs, message", [
    ({"epochs": 0}, "epochs must be an int >= 1, got 0"),
    ({"lr": -1.0}, "lr must be > 0"),
    ({"batch_size": 0}, "batch_size must be an int >= 1"),
    ({"fused": "yes"}, "fused must be True or False, got 'yes'"),
])
def test_bad_config_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs)


@pytest.mark.parametrize("name", ["temperature", "sparsity"])
def test_the_gates_settings_are_not_the_training_loops(name):
    with pytest.raises(TypeError, match=rf"TrainConfig has no {name} .*the gate method's setting now; give it to "
                                        rf"the method: apply_method\(base, \"dopamine\", {name}=...\)"):
        TrainConfig(epochs=1, **{name: 1.0})


def test_sparsity_penalty_lowers_gate_activity(base, sliced):
    x, y = sliced[1]
    activity = []
    for sparsity in (0.0, 1.0):
        model = apply_method(base, "dopamine", sparsity=sparsity, verbose=False)
        fit(model, x, y, TrainConfig(epochs=1, lr=1e-2, seed=0), progress=False)
        with hardened(model), torch.no_grad():
            model(x[:2000])
            activity.append(sum(g.last_gate.mean().item() for g in
                                (model.hidden["hidden1"].gate, model.hidden["hidden2"].gate)))
    assert activity[1] < activity[0]


def _temperatures_seen(model) -> list[float]:
    """The first gate's temperature at each training forward pass (recorded as training runs)."""
    gate, seen = model.hidden["hidden1"].gate, []
    gate.register_forward_pre_hook(lambda module, args: seen.append(module.temperature) if module.training else None)
    return seen


@pytest.mark.parametrize("temperature, expected", [
    ((2.0, 0.05), "annealed"), (0.5, "fixed"), ((0.3, 0.3), "fixed"), (None, "default")])
def test_the_gates_train_at_the_temperatures_their_config_gives(base, sliced, temperature, expected):
    x, y = (t[:1280] for t in sliced[1])  # 10 steps
    if temperature is None:  # gates attached by hand: no method config, GateConfig's defaults
        from dopatut.methods.gate import GateSet, attach
        model = freeze(copy.deepcopy(base))
        attach(model, GateSet.for_model(model))
    else:
        model = apply_method(base, "dopamine", temperature=temperature, verbose=False)
    seen = _temperatures_seen(model)
    fit(model, x, y, TrainConfig(epochs=1, lr=1e-2, seed=0), progress=False)
    start, end = {"annealed": (2.0, 0.05), "fixed": (0.5, 0.5) if temperature == 0.5 else (0.3, 0.3),
                  "default": (1.0, 0.1)}[expected]
    assert len(seen) == 10 and seen[0] == start and seen[-1] == pytest.approx(end, rel=1e-12)
    assert all(g.temperature == seen[-1] for g in gates_of(model))  # they end soft at the schedule's end
    if expected == "fixed":
        assert set(seen) == {start}
    else:
        ratios = [b / a for a, b in zip(seen, seen[1:])]
        assert ratios == pytest.approx([(end / start) ** (1 / 9)] * 9)  # geometric, from start to end


def test_the_config_s_sparsity_reaches_the_loss(base, sliced):
    x, y = (t[:1280] for t in sliced[1])
    trained = []
    for sparsity in (0.0, 0.0, 5.0):
        model = apply_method(base, "dopamine", sparsity=sparsity, verbose=False)
        trained.append(fit(model, x, y, TrainConfig(epochs=1, lr=1e-2, seed=0), progress=False).loss[0])
    assert trained[0] == trained[1] and trained[2] > trained[0]  # the penalty is in the loss


def test_fused_and_plain_adam_apply_the_same_update():
    weights = []
    for fused in (True, False):
        torch.manual_seed(0)
        model = FoundationMLP(MLPConfig(hidden=(32,)))
        optimizer = adam(model.parameters(), lr=1e-2, fused=fused)
        assert bool(optimizer.defaults["fused"]) == fused  # this torch has a fused Adam on the CPU
        x, y = torch.randn(64, 784), torch.randint(0, 10, (64,))
        for _ in range(5):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
        weights.append(torch.cat([p.flatten() for p in model.parameters()]).detach())
    assert torch.allclose(weights[0], weights[1], atol=1e-6)  # float rounding apart, not a different rule
    torch.manual_seed(0)
    start = torch.cat([p.flatten() for p in FoundationMLP(MLPConfig(hidden=(32,))).parameters()]).detach()
    assert (weights[0] - start).abs().max() > 1e-3  # and the weights did move


def test_adam_falls_back_to_plain_where_fused_is_missing(monkeypatch):
    real = torch.optim.Adam

    def no_fused(params, fused=None, **kwargs):
        if fused:
            raise RuntimeError("`fused=True` requires all the params to be floating point Tensors of supported devices")
        return real(params, **kwargs)
    monkeypatch.setattr(torch.optim, "Adam", no_fused)
    optimizer = adam([torch.nn.Parameter(torch.zeros(3))], lr=1e-3, fused=True)
    assert not optimizer.defaults.get("fused")


def test_a_run_that_blows_up_is_stopped_naming_its_learning_rate_and_step(small_model):
    from dopatut.methods.builtin import apply_method
    from dopatut.training.train import DivergedError
    x, y = torch.randn(256, 784), torch.randint(0, 10, (256,))
    with pytest.raises(DivergedError, match=r"diverged: the loss was not finite, or above 1000, at step \d+ of 4 "
                                            r"with lr 1e\+06; try a smaller learning rate"):
        fit(apply_method(small_model, "full", verbose=False), x, y, TrainConfig(epochs=2, batch_size=128, lr=1e6),
            progress=False)


def test_a_stack_marks_a_blown_model_and_the_others_train_as_without_it(small_model):
    from dopatut.methods.builtin import apply_method
    from dopatut.training.stack import fit_many
    from dopatut.training.train import DivergedError
    x, y = torch.randn(256, 784), torch.randint(0, 10, (256,))
    configs = [TrainConfig(epochs=2, batch_size=128, lr=lr, seed=0) for lr in (1e-3, 1e6, 1e-2)]
    models = [apply_method(small_model, "full", verbose=False) for _ in configs]
    with pytest.raises(DivergedError, match="training of model 1 of the stack diverged"):
        fit_many(models, x, y, configs, progress=False)
    models = [apply_method(small_model, "full", verbose=False) for _ in configs]
    histories = fit_many(models, x, y, configs, progress=False, diverged="mark")
    assert [h.diverged_at is not None for h in histories] == [False, True, False]
    alone = [apply_method(small_model, "full", verbose=False) for _ in (0, 2)]
    fit_many(alone, x, y, [configs[0], configs[2]], progress=False)
    for model, twin in zip((models[0], models[2]), alone):  # a blown neighbour changes nothing, bit for bit
        assert all(torch.equal(a, b) for a, b in zip(model.parameters(), twin.parameters()))
