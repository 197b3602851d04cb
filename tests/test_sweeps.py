import pytest
import torch

from dopatut.data import load_mnist, mode_data, rotate, to_inputs
from dopatut.model import FoundationMLP, MLPConfig, freeze
from dopatut.train import TrainConfig
from dopatut.attribution import firing
from dopatut.sweeps import adapt, mixed_slice, quick_foundation, recovered


def test_mixed_slice_turns_each_image_by_its_own_mode():
    x, y, mode = mixed_slice((0.0, 90.0), 200, seed=1)
    images = load_mnist(verbose=False).split("train")[0][:200]
    assert 0 < mode.sum() < 200
    for m, angle in enumerate((0.0, 90.0)):
        assert torch.equal(x[mode == m], to_inputs(rotate(images[mode == m], angle)))
    assert torch.equal(mixed_slice((0.0, 90.0), 200, seed=1)[2], mode)


def test_recovered_share():
    assert recovered(0.5, 0.5, 0.9) == 0 and recovered(0.9, 0.5, 0.9) == 1
    assert recovered(0.7, 0.5, 0.9) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="ceiling must exceed floor"):
        recovered(0.7, 0.9, 0.5)


def test_adapt_trains_only_the_method_and_reports_hard_and_soft_accuracy():
    base = freeze(FoundationMLP(MLPConfig(hidden=(16, 16))))
    before = {k: v.clone() for k, v in base.state_dict().items()}
    model, r = adapt(base, "dopamine", 45.0, 0, TrainConfig(epochs=1, lr=1e-2), train_limit=500)
    assert r.n_trainable == 64 and set(r.accuracy) == {"45"} and set(r.soft_accuracy) == {"45"}
    assert all(torch.equal(before[k], v) for k, v in base.state_dict().items())
    assert any((g.threshold != 0).any() for g in (l.gate for l in model.hidden_layers().values()))
    frozen_model, frozen = adapt(base, "frozen", 45.0, 0, TrainConfig())
    assert frozen.n_trainable == 0 and frozen.soft_accuracy == {}
    assert 0 <= firing(model, mode_data("train", 45.0, limit=100)[0], per="model") <= 1


def test_quick_foundation_learns_and_is_frozen():
    model = quick_foundation((16, 16), seed=0, train_limit=4000)
    assert all(not p.requires_grad for p in model.parameters())
    torch.manual_seed(0)
    untrained = FoundationMLP(MLPConfig(hidden=(16, 16)))
    x, y = mode_data("train", 0.0, limit=4000)
    accuracy = {name: (m(x).argmax(1) == y).float().mean().item() for name, m in (("trained", model), ("untrained", untrained))}
    assert accuracy["trained"] > accuracy["untrained"] + 0.3, accuracy
