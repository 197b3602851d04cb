from dataclasses import replace

import pytest
import torch

from dopatut.foundations.model import MLPConfig
from dopatut.study.pipeline import FoundationSpec, foundation, foundation_path, foundations, specialise, specialise_many
from dopatut.training.train import TrainConfig

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


def same(m, n):
    return all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), n.state_dict().values()))


def test_foundations_train_together_as_in_any_stack_and_as_alone_to_the_rounding(cache, monkeypatch):
    monkeypatch.setenv("DOPATUT_CACHE", str(cache))
    pair = foundations([3, 4], SPEC, progress=False)
    assert same(pair[1], foundations([4, 6], SPEC, cache=False, progress=False)[0]) and not same(pair[0], pair[1])
    alone = foundation(4, SPEC, cache=False, progress=False)  # one matrix multiply, not a batch: see test_stack
    assert all(torch.allclose(a, b, rtol=0, atol=1e-5) for a, b in zip(pair[1].state_dict().values(),
                                                                        alone.state_dict().values()))
    assert set(pair[0].meta["curves"]) == {"0", "45"} and len(pair[0].meta["curves"]["45"]) == 1  # validation


def test_foundations_of_different_modes_train_in_one_stack_as_among_their_own(cache, monkeypatch):
    monkeypatch.setenv("DOPATUT_CACHE", str(cache))
    upright = replace(SPEC, angles=(0.0,))
    both = foundations([5, 5], [SPEC, upright], progress=False)
    assert both[0].meta["stacked"] == both[1].meta["stacked"] == 2
    for spec, model in zip((SPEC, upright), both):
        own = foundations([5, 6], spec, cache=False, progress=False)[0]
        assert same(model, own)
        assert model.meta["curves"] == own.meta["curves"] and model.meta["accuracy"] == own.meta["accuracy"]
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
    from dopatut.foundations.vit import VisionTransformer, ViTConfig
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


def test_foundations_of_stack_false_train_alone_side_by_side_and_are_cached_under_a_key_of_their_own(
        cache, monkeypatch, tmp_path):
    from dopatut.training import workers
    from dopatut.foundations.data import mixture
    from dopatut.study.pipeline import build
    from dopatut.training.train import fit, seed_everything
    alone_spec = replace(SPEC, stack=False)
    assert "stack" not in SPEC.to_dict(0)  # foundations cached before the option keep their keys
    assert foundation_path(alone_spec, 0) != foundation_path(SPEC, 0)  # the two loops round differently
    monkeypatch.setenv("DOPATUT_CACHE", str(tmp_path))
    monkeypatch.setenv("DOPATUT_WORKERS", "2")
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        pair = foundations([0, 1], alone_spec, progress=False)  # two jobs, two workers
        alone = foundations([1], alone_spec, cache=False, progress=False)[0]  # one job, here
        monkeypatch.setenv("DOPATUT_WORKERS", "1")  # one worker: one after another, here, on both threads
        in_turn = foundations([0, 1], alone_spec, cache=False, progress=False)
        seed_everything(0)
        by_hand = build(SPEC.model)
        fit(by_hand, *mixture("train", SPEC.angles, seed=0)[:2], replace(SPEC.train, seed=0), progress=False)
    finally:
        workers._shutdown()
        torch.set_num_threads(threads)
    assert same(pair[1], alone) and not same(pair[0], pair[1])
    assert same(in_turn[0], by_hand)  # trained by train.fit
    assert same(pair[0], foundations([0], alone_spec, progress=False)[0])  # cached as trained
    assert pair[1].meta["accuracy"] == alone.meta["accuracy"] and pair[1].meta["accuracy"]["45"] > 0.5
    assert {m.meta["stacked"] for m in (*pair, *in_turn)} == {1}


def test_specialise_many_without_a_stack_trains_each_model_by_train_fit(cache, monkeypatch):
    from dopatut.foundations.data import mode_data
    from dopatut.methods.builtin import apply_method
    from dopatut.training.train import evaluate, fit, seed_everything
    monkeypatch.setenv("DOPATUT_CACHE", str(cache))
    base = foundation(0, SPEC, progress=False)
    config = TrainConfig(epochs=1, lr=1e-2, batch_size=512)
    pairs = specialise_many([base] * 2, "lora", [3, 4], config, angle_deg=[45.0, 30.0], progress=False,
                            train_limit=2000, stack=False)  # each model its own angle, too
    seed_everything(4)
    by_hand = apply_method(base, "lora", verbose=False)
    fit(by_hand, *mode_data("train", 30.0, limit=2000), replace(config, seed=4), progress=False)
    assert same(pairs[1][0], by_hand) and not same(pairs[0][0], pairs[1][0])
    assert pairs[1][1].accuracy["45"] == evaluate(by_hand, *mode_data("test", 45.0))
    assert all(r.seconds > 0 for _, r in pairs)
