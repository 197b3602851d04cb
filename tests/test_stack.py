import copy
import re

import pytest
import torch

from dopatut.foundations.data import mode_data
from dopatut.methods.builtin import apply_method
from dopatut.foundations.model import FoundationMLP, MLPConfig, base_state_dict
from dopatut.training.stack import PrecomputedLinear, fit_many, frozen_stem
from dopatut.training.train import TrainConfig, evaluate, fit, seed_everything

SMALL = MLPConfig(hidden=(32, 24))
STACKED = ("full", "dopamine", "gain_only", "threshold_only", "bitfit", "head", "lora")


@pytest.fixture(scope="module")
def data():
    x, y = mode_data("train", 45, limit=2048)
    return x, y, mode_data("test", 45, limit=2000)


def make(method, seed, base_seed=100):
    seed_everything(base_seed)
    base = FoundationMLP(SMALL)
    seed_everything(seed)
    return apply_method(base, method, verbose=False)


def trainable(model):
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def same(a, b):
    return all(torch.equal(a[n], b[n]) for n in a)


@pytest.mark.parametrize("method", STACKED)
def test_a_model_trains_bit_for_bit_the_same_in_any_stack_and_alone_to_the_rounding(data, method):
    x, y, _ = data
    configs = [TrainConfig(epochs=2, batch_size=256, lr=3e-3, seed=s) for s in (0, 1, 2)]
    alone, two, three = [make(method, 1)], [make(method, 1), make(method, 2)], [make(method, s) for s in (0, 1, 2)]
    for models, own in ((alone, configs[1:2]), (two, configs[1:]), (three, configs)):
        fit_many(models, x, y, own, progress=False)
    assert same(trainable(two[0]), trainable(three[1])), method  # whatever models stand beside it
    # alone, a product is one matrix multiply, which some BLAS round otherwise than a batch of them (MKL on
    # AVX-512: up to 5e-7 here after two epochs)
    a, b = trainable(alone[0]), trainable(three[1])
    assert all(torch.allclose(a[n], b[n], rtol=0, atol=1e-5) for n in a), method
    assert not torch.equal(trainable(three[0])[next(iter(a))], a[next(iter(a))])  # other seeds, other models


@pytest.mark.parametrize("method", ["dopamine", "lora", "head"])
def test_models_of_different_foundations_share_a_stack_each_as_with_its_own(data, method):
    """Frozen weights that all models share are given once; where the foundations differ, each keeps its own."""
    x, y, _ = data
    configs = [TrainConfig(epochs=1, batch_size=256, lr=3e-3, seed=s) for s in (0, 1)]
    own = [make(method, 1, base_seed=200), make(method, 0, base_seed=200)]  # one foundation: its weights shared
    mixed = [make(method, 0, base_seed=100), make(method, 1, base_seed=200)]  # two: each keeps its own
    fit_many(own, x, y, configs[::-1], progress=False)
    fit_many(mixed, x, y, configs, progress=False)
    assert same(trainable(own[0]), trainable(mixed[1])), method


@pytest.mark.parametrize("method", STACKED)
def test_stacked_training_follows_fit_to_float_rounding(data, method):
    """Same initialisation and data order as fit; after a few steps the weights agree to rounding."""
    x, y, _ = data
    config = TrainConfig(epochs=1, batch_size=512, lr=3e-3, seed=5, fused=False)
    single, stacked = make(method, 5), make(method, 5)
    assert all(torch.equal(p, q) for p, q in zip(single.parameters(), stacked.parameters()))
    start = trainable(single)
    fit(single, x, y, config, progress=False)
    fit_many([stacked], x, y, config, progress=False)
    a, b = trainable(single), trainable(stacked)
    moved = max((a[n] - start[n]).abs().max().item() for n in a)
    gap = max((a[n] - b[n]).abs().max().item() for n in a)
    assert moved > 1e-3 and gap < 0.01 * moved, (method, moved, gap)  # Adam magnifies rounding of tiny grads


def test_stacked_accuracy_matches_fit_after_a_longer_run(data):
    x, y, (xt, yt) = data
    config = TrainConfig(epochs=4, batch_size=128, lr=1e-3, seed=3)
    single, stacked = make("full", 3), make("full", 3)
    fit(single, x, y, config, progress=False)
    fit_many([stacked], x, y, config, progress=False)
    assert abs(evaluate(single, xt, yt) - evaluate(stacked, xt, yt)) <= 0.01  # 1 point: chaos amplifies rounding


def test_frozen_weights_stay_bitwise_and_each_model_keeps_its_learning_rate(data):
    x, y, _ = data
    models = [make("dopamine", 0), make("dopamine", 1)]
    before = [copy.deepcopy(base_state_dict(m)) for m in models]
    gates_before = trainable(models[1])
    fit_many(models, x, y, [TrainConfig(epochs=1, lr=1e-2, seed=0), TrainConfig(epochs=1, lr=1e-12, seed=1)],
             progress=False)
    for model, state in zip(models, before):
        assert all(torch.equal(state[k], v) for k, v in base_state_dict(model).items())
    assert max((trainable(models[1])[n] - gates_before[n]).abs().max() for n in gates_before) < 1e-9
    assert max((trainable(models[0])[n] - gates_before[n]).abs().max() for n in gates_before) > 1e-3


def test_per_model_data_and_eval_sets(data):
    x, y, (xt, yt) = data
    models = [make("head", 0), make("head", 1)]
    xs, ys = torch.stack([x, x.flip(0)]), torch.stack([y, y.flip(0)])
    histories = fit_many(models, xs, ys, TrainConfig(epochs=2, seed=0), {"test": (xt, yt)}, progress=False)
    assert [len(h.accuracy["test"]) for h in histories] == [2, 2] and len(histories[0].loss) == 2
    assert histories[0].accuracy["test"][-1] == evaluate(models[0], xt, yt)


def test_stem_is_precomputed_only_when_its_weight_is_frozen():
    assert frozen_stem(make("dopamine", 0)) == "hidden.hidden1.linear"
    assert frozen_stem(make("bitfit", 0)) == "hidden.hidden1.linear"  # the bias trains, the product does not
    assert frozen_stem(make("full", 0)) is None and frozen_stem(make("lora", 0)) is None
    linear = torch.nn.Linear(6, 4)
    x = torch.randn(3, 6)
    assert torch.allclose(PrecomputedLinear(linear)(x @ linear.weight.t()), linear(x), atol=1e-6)


@pytest.mark.parametrize("kwargs, message", [
    ({"models": []}, "at least one model"),
    ({"configs": [TrainConfig(epochs=1), TrainConfig(epochs=2)]}, "may differ only in lr and seed"),
    ({"configs": [TrainConfig()]}, "one TrainConfig per model"),
    ({"y": "three"}, "data for 3 models, but there are 2"),
    ({"y": "short"}, "disagree"),
])
def test_bad_stacks_are_refused(data, kwargs, message):
    x, y, _ = data
    args = {"models": [make("head", 0), make("head", 1)], "configs": TrainConfig(), "y": None, **kwargs}
    xs, ys = {None: (x, y), "three": (torch.stack([x] * 3), torch.stack([y] * 3)), "short": (x, y[:-1])}[args["y"]]
    with pytest.raises(ValueError, match=message):
        fit_many(args["models"], xs, ys, args["configs"], progress=False)


def test_models_of_another_shape_cannot_share_a_stack(data):
    x, y, _ = data
    with pytest.raises(ValueError, match="does not have the parameters of model 0"):
        fit_many([make("head", 0), make("bitfit", 0)], x, y, TrainConfig(), progress=False)


def make_gates(seed, **options):
    seed_everything(100)
    base = FoundationMLP(SMALL)
    seed_everything(seed)
    return apply_method(base, "dopamine", verbose=False, **options)


@pytest.mark.parametrize("options, differing", [
    ({"temperature": (1.0, 0.01)}, {"temperature": (1.0, 0.01), "sparsity": 0.0}),
    ({"sparsity": 0.5}, {"temperature": (1.0, 0.1), "sparsity": 0.5}),
    ({"temperature": 0.5, "sparsity": 2.0}, {"temperature": (0.5, 0.5), "sparsity": 2.0})])
def test_a_stack_of_gates_trains_at_one_schedule_and_sparsity(data, options, differing):
    x, y, _ = data
    with pytest.raises(ValueError, match=re.escape(f"model 1 of the stack trains with {differing}, model 0 with "
                                                   f"{{'temperature': (1.0, 0.1), 'sparsity': 0.0}} (its method's "
                                                   f"config): a stack trains as one")):
        fit_many([make_gates(0), make_gates(1, **options)], x, y, TrainConfig(epochs=1), progress=False)
    models = [make_gates(0, **options), make_gates(1, **options)]  # the same settings stack
    fit_many(models, x, y, TrainConfig(epochs=1, batch_size=256), progress=False)
    end = models[0].method_config.temperature[1]
    assert all(g.temperature == pytest.approx(end, rel=1e-12) for m in models for g in m.hidden.modules()
               if hasattr(g, "_temperature"))  # the stack's gates end at their schedule's end


def test_a_stack_trains_with_its_models_settings_as_fit_does(data):
    """fit_many reads the schedule and the sparsity from the models' config, as fit does (to float rounding)."""
    x, y, _ = data
    options = {"temperature": (2.0, 0.05), "sparsity": 1.0}
    stacked, alone, plain = make_gates(0, **options), make_gates(0, **options), make_gates(0)
    config = TrainConfig(epochs=1, batch_size=256, lr=1e-2)
    fit_many([stacked, make_gates(1, **options)], x, y, config, progress=False)
    fit(alone, x, y, config, progress=False)
    fit_many([plain, make_gates(1)], x, y, config, progress=False)
    a, b, c = trainable(stacked), trainable(alone), trainable(plain)
    assert all(torch.allclose(a[n], b[n], rtol=0, atol=1e-5) for n in a)
    assert not all(torch.allclose(a[n], c[n], rtol=0, atol=1e-3) for n in a)  # the settings did change training
