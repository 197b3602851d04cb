from dataclasses import replace

import pytest
import torch

from dopatut.model import MLPConfig
from dopatut.pipeline import FoundationSpec, foundation, foundation_path, foundations, specialise, specialise_many
from dopatut.train import TrainConfig

SPEC = FoundationSpec(model=MLPConfig(hidden=(32, 32)), train=TrainConfig(epochs=1, batch_size=512))


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


def test_foundation_is_trained_once_then_loaded(cache, monkeypatch, capsys):
    monkeypatch.setenv("DOPATUT_CACHE", str(cache))
    first = foundation(0, SPEC, progress=False)
    assert foundation_path(SPEC, 0).exists()
    second = foundation(0, SPEC)
    assert "loaded from" in capsys.readouterr().out
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))
    assert not any(p.requires_grad for p in second.parameters())
    assert set(second.meta["accuracy"]) == {"0", "45"} and second.meta["accuracy"]["45"] > 0.8


def test_cache_key_separates_configurations_and_seeds():
    paths = {foundation_path(SPEC, 0), foundation_path(SPEC, 1),
             foundation_path(replace(SPEC, angles=(0.0,)), 0),
             foundation_path(replace(SPEC, train=TrainConfig(epochs=2, batch_size=512)), 0)}
    assert len(paths) == 4


def test_curves_can_be_turned_off_under_a_key_of_their_own(cache, monkeypatch):
    monkeypatch.setenv("DOPATUT_CACHE", str(cache))
    quiet = replace(SPEC, curves=False)
    assert "curves" not in SPEC.to_dict(0)  # foundations cached before the option keep their keys
    assert foundation_path(quiet, 0) != foundation_path(SPEC, 0)
    with_curves, without = foundations([0, 0], [SPEC, quiet], cache=False, progress=False)
    assert set(with_curves.meta["curves"]) == {"0", "45"} and without.meta["curves"] == {}
    assert without.meta["accuracy"] == with_curves.meta["accuracy"]  # curves are measured, never trained on


def test_corrupt_cache_is_retrained(cache, monkeypatch, capsys):
    monkeypatch.setenv("DOPATUT_CACHE", str(cache))
    foundation(0, SPEC, progress=False)
    foundation_path(SPEC, 0).write_bytes(b"garbage")
    model = foundation(0, SPEC, progress=False)
    assert "unusable, retraining" in capsys.readouterr().out
    assert model.meta["accuracy"]["45"] > 0.8


def test_specialise_reports_hard_and_soft_accuracy(cache, monkeypatch):
    monkeypatch.setenv("DOPATUT_CACHE", str(cache))
    base = foundation(0, SPEC, progress=False)
    model, result = specialise(base, "dopamine", 45, seed=0, config=TrainConfig(epochs=1, lr=1e-2, batch_size=512),
                               progress=False)
    assert result.n_trainable == 2 * (32 + 32)
    assert set(result.accuracy) == set(result.soft_accuracy) == {"0", "45"}
    _, frozen = specialise(base, "frozen", 45, progress=False)
    assert frozen.n_trainable == 0 and frozen.soft_accuracy == {}
    assert frozen.accuracy["45"] == pytest.approx(base.meta["accuracy"]["45"])


def test_foundations_train_together_as_they_would_alone(cache, monkeypatch):
    monkeypatch.setenv("DOPATUT_CACHE", str(cache))
    pair = foundations([3, 4], SPEC, progress=False)
    alone = foundation(4, SPEC, cache=False, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(pair[1].state_dict().values(), alone.state_dict().values()))
    assert not all(torch.equal(a, b) for a, b in zip(pair[0].state_dict().values(), alone.state_dict().values()))
    assert set(pair[0].meta["curves"]) == {"0", "45"} and len(pair[0].meta["curves"]["45"]) == 1  # validation


def test_foundations_of_different_modes_train_in_one_stack_as_they_would_alone(cache, monkeypatch):
    monkeypatch.setenv("DOPATUT_CACHE", str(cache))
    upright = replace(SPEC, angles=(0.0,))
    both = foundations([5, 5], [SPEC, upright], progress=False)
    assert both[0].meta["stacked"] == both[1].meta["stacked"] == 2
    for spec, model in zip((SPEC, upright), both):
        alone = foundation(5, spec, cache=False, progress=False)
        assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), alone.state_dict().values()))
        assert model.meta["curves"] == alone.meta["curves"] and model.meta["accuracy"] == alone.meta["accuracy"]
        assert foundation_path(spec, 5).exists()
    assert set(both[1].meta["accuracy"]) == set(both[1].meta["curves"]) == {"0"}  # only its own mode
    with pytest.raises(ValueError, match="one FoundationSpec per seed: 1 seeds"):
        foundations([5], [SPEC, upright], progress=False)
    with pytest.raises(ValueError, match="asked for once"):
        foundations([5, 5], [SPEC, SPEC], progress=False)


def test_specialise_many_trains_each_model_on_its_own_angle(cache, monkeypatch):
    monkeypatch.setenv("DOPATUT_CACHE", str(cache))
    base = foundation(0, SPEC, progress=False)
    config = TrainConfig(epochs=1, lr=1e-2, batch_size=512)
    pairs = specialise_many([base, base], "dopamine", [0, 0], config, angle_deg=[45.0, 90.0], eval_angles=None,
                            progress=False, train_limit=4000)
    (m45, r45), (m90, r90) = pairs
    assert set(r45.accuracy) == {"45"} and set(r90.accuracy) == {"90"}
    alone = specialise(base, "dopamine", 90.0, 0, config, eval_angles=(90.0,), progress=False, train_limit=4000)[1]
    assert alone.accuracy == r90.accuracy
    with pytest.raises(ValueError, match="one base and one angle per seed"):
        specialise_many([base], "dopamine", [0, 1], config, progress=False)


def test_a_transformer_foundation_is_cached_under_its_own_name_and_soft_can_be_skipped(cache, monkeypatch):
    from dopatut.vit import VisionTransformer, ViTConfig
    monkeypatch.setenv("DOPATUT_CACHE", str(cache))
    spec = FoundationSpec(model=ViTConfig(width=16, depth=1, heads=2), train=TrainConfig(epochs=1, batch_size=512))
    assert "foundation-vit-p7-w16-d1-h2-r4-a0_45-s0-" in foundation_path(spec, 0).name
    base = foundation(0, spec, progress=False)
    assert isinstance(base, VisionTransformer) and foundation_path(spec, 0).exists()
    again = foundation(0, spec, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(base.state_dict().values(), again.state_dict().values()))
    _, result = specialise_many([base], "dopamine", [0], TrainConfig(epochs=1, lr=1e-2, batch_size=512),
                                progress=False, train_limit=2000, soft=False)[0]
    assert result.soft_accuracy == {} and set(result.accuracy) == {"0", "45"}
    with pytest.raises(ValueError, match="a foundation's model is an MLPConfig or a ViTConfig, got 'mlp'"):
        foundation(0, replace(spec, model="mlp"), cache=False, progress=False)


def test_foundations_side_by_side_in_workers_are_cached_as_trained_alone(cache, monkeypatch, tmp_path):
    from dopatut import workers
    monkeypatch.setenv("DOPATUT_CACHE", str(tmp_path))
    monkeypatch.setenv("DOPATUT_WORKERS", "2")
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        pair = foundations([0, 1], SPEC, progress=False, side_by_side=True)  # two jobs, two workers
        alone = foundations([1], SPEC, cache=False, progress=False, side_by_side=True)[0]  # one job, here
    finally:
        workers._shutdown()
        torch.set_num_threads(threads)
    assert all(torch.equal(a, b) for a, b in zip(pair[1].state_dict().values(), alone.state_dict().values()))
    assert not torch.equal(pair[0].state_dict()["head.weight"], pair[1].state_dict()["head.weight"])
    loaded = foundations([0, 1], SPEC, progress=False)
    assert all(torch.equal(a, b) for m, n in zip(pair, loaded) for a, b in zip(m.state_dict().values(),
                                                                                n.state_dict().values()))
    assert pair[1].meta["accuracy"] == alone.meta["accuracy"] and pair[1].meta["accuracy"]["45"] > 0.5
    monkeypatch.setenv("DOPATUT_WORKERS", "1")  # one worker: a stack, as a model trains the same alone or stacked
    stacked = foundations([0, 1], SPEC, cache=False, progress=False, side_by_side=True)
    assert stacked[0].meta["stacked"] == 2 and pair[0].meta["stacked"] == 1
