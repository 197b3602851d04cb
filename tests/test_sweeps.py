import pytest
import torch

from dopatut.foundations.data import load_mnist, mode_data, rotate, to_inputs
from dopatut.foundations.model import FoundationMLP, MLPConfig, freeze
from dopatut.training.train import TrainConfig
from dopatut.analysis.attribution import firing
from dopatut.study.sweeps import adapt, mixed_slice, quick_foundation, recovered


def test_mixed_slice_turns_each_image_by_its_own_mode():
    x, y, mode = mixed_slice((0.0, 90.0), 200, seed=1)
    images = load_mnist(verbose=False).split("train")[0][:200]
    assert 0 < mode.sum() < 200
    for m, angle in enumerate((0.0, 90.0)):
        assert torch.equal(x[mode == m], to_inputs(rotate(images[mode == m], angle)))
    assert torch.equal(mixed_slice((0.0, 90.0), 200, seed=1)[2], mode)


def test_mixed_slice_is_data_mixture_for_the_same_seed():
    from dopatut.foundations.data import mixture

    for angles, seed in (((0.0, 45.0), 0), ((0.0, 30.0, 60.0, 90.0), 3)):
        got, want = mixed_slice(angles, 500, seed=seed), mixture("train", angles, seed=seed, limit=500)
        assert all(torch.equal(a, b) for a, b in zip(got, want)), (angles, seed)


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


def test_chapter_sevens_sweeps_are_cached_by_foundation_and_settings(monkeypatch, tmp_path):
    from dopatut.study import search
    from dopatut.study import sweeps
    from dopatut.study.pipeline import FoundationSpec

    spec = FoundationSpec(model=MLPConfig(hidden=(16, 16)), train=TrainConfig(epochs=1, batch_size=512))
    monkeypatch.setenv("DOPATUT_CACHE", str(tmp_path))
    monkeypatch.setitem(search.FOUNDATIONS, "mixture", spec)
    monkeypatch.setitem(search.FOUNDATIONS, "upright", FoundationSpec(spec.model, (0.0,), train=spec.train))
    swept = sweeps.angle_sweep("frozen", (0, 90))
    assert list(swept) == [0.0, 90.0] and swept[0.0].accuracy["0"] > swept[90.0].accuracy["90"] + 0.2
    result, fire = sweeps.variant("frozen", {"lr": 0.1}, kind="upright")
    assert set(result.accuracy) == {"45"} and 0 < fire <= 1

    def fail(*args, **kwargs):
        raise AssertionError("trained although the cache has it")
    monkeypatch.setattr(sweeps, "specialise", fail)
    monkeypatch.setattr(sweeps, "specialise_many", fail)
    assert sweeps.angle_sweep("frozen", (0, 90)) == swept
    assert sweeps.variant("frozen", {"lr": 0.1}, kind="upright") == (result, fire)
    with pytest.raises(AssertionError, match="trained although"):  # other settings: another key
        sweeps.variant("frozen", {"lr": 0.3}, kind="upright")


@pytest.mark.parametrize("changes, config, options", [
    ({"temperature": (1.0, 1.0)}, {}, {"temperature": (1.0, 1.0)}),
    ({"sparsity": 2.0}, {}, {"temperature": (1.0, 0.01), "sparsity": 2.0}),
    ({"lr": 0.1, "sparsity": 0.5}, {"lr": 0.1}, {"temperature": (1.0, 0.01), "sparsity": 0.5})])
def test_a_variant_changes_the_training_or_the_method_s_settings(monkeypatch, tmp_path, changes, config, options):
    """A variant's changes go where they live: the TrainConfig's fields to it, the gates' settings to the method."""
    from dataclasses import replace

    from dopatut.study import pipeline, sweeps

    class Trained(Exception):
        pass

    def specialise(base, method, angle_deg, seed, config, eval_angles, progress, **kwargs):
        raise Trained(config, kwargs)
    chosen = TrainConfig(epochs=3, lr=0.03)
    monkeypatch.setenv("DOPATUT_CACHE", str(tmp_path))
    monkeypatch.setattr(pipeline, "foundation", lambda *args, **kwargs: None)
    monkeypatch.setattr(sweeps, "protocol_config", lambda *args, **kwargs: (chosen, {"temperature": (1.0, 0.01)}))
    monkeypatch.setattr(sweeps, "specialise", specialise)
    with pytest.raises(Trained) as trained:
        sweeps.variant("dopamine", changes)
    assert trained.value.args == (replace(chosen, **config), options)


def test_width_gains_lists_each_methods_gain_over_frozen_per_width():
    from dopatut.study.sweeps import width_gains

    acc = {"frozen": [0.80, 0.85, 0.90], "dopamine": [0.82, 0.86, 0.89], "lora": [0.81, 0.87, 0.93]}
    assert width_gains((64, 256, 1024), acc) == (
        "Over the frozen foundation, Dopamine gains +2.0, +1.0 and −1.0 points at widths 64, 256 and 1024; "
        "LoRA (r = 4) +1.0, +2.0 and +3.0.")


def test_width_order_follows_who_leads():
    from dopatut.study.sweeps import width_order

    lr = {"dopamine": 0.01, "lora": 0.001}
    both = {"dopamine": [0.9, 0.9], "lora": [0.8, 0.95]}
    assert width_order({"dopamine": [0.8, 0.8], "lora": [0.9, 0.9]}, lr, 3) == (
        "LoRA leads at every width, as in chapter 5.")
    ahead = width_order({"dopamine": [0.9, 0.9], "lora": [0.8, 0.9]}, lr, 3)
    assert ahead.startswith("Under this shortcut Dopamine matches or edges LoRA at every width")
    assert "3 epochs" in ahead and "(0.001, against Dopamine's 0.01)" in ahead
    assert "changes with the width" in width_order(both, {"dopamine": 0.001, "lora": 0.01}, 3)
    assert "moves fastest" in width_order(both, {"dopamine": 0.001, "lora": 0.01}, 3)


def test_anneal_words_compare_the_gain_with_the_seed_spread():
    from dopatut.study.sweeps import anneal_words

    assert anneal_words(0.002, 0.005).startswith("what annealing adds over a fixed T = 0.1 (+0.2 points")
    assert anneal_words(-0.02, 0.005).startswith("annealing adds -2.0 points over a fixed T = 0.1")


def test_sparsity_words_find_the_largest_free_penalty():
    import pytest

    from dopatut.study.sweeps import sparsity_words

    lambdas = (0, 0.5, 2, 10)
    assert sparsity_words(lambdas, [0.90, 0.899, 0.897, 0.80], [0.5, 0.4, 0.3, 0.1]) == (
        "Up to λ = 2 silence is nearly free: 30% of the neurons fire, at 89.7%")
    assert sparsity_words(lambdas, [0.90, 0.88, 0.85, 0.80], [0.5, 0.4, 0.3, 0.1]) == (
        "Even the smallest penalty, λ = 0.5, costs 2.0 points on this hard case")
    with pytest.raises(ValueError):
        sparsity_words((0.5, 2), [0.9, 0.8], [0.4, 0.3])


def test_shortcut_costs_gives_each_methods_cost_and_whether_the_order_flips():
    from dopatut.methods.names import display
    from dopatut.study.sweeps import shortcut_costs

    full, quick = {"dopamine": 0.975, "lora": 0.976}, {"dopamine": 0.890, "lora": 0.883}
    words = shortcut_costs(full, quick)
    lora = display("lora")
    assert words.startswith(f"The shortcut costs Dopamine 8.5 points and {lora} 9.3.")
    assert f"flips: {lora} leads at the full recipe, Dopamine under the shortcut" in words
    kept = shortcut_costs(full, {"dopamine": 0.880, "lora": 0.883})
    assert f"The order stays: {lora} leads under both." in kept and "Dopamine 9.5 points" in kept
    tied = shortcut_costs(full, {"dopamine": 0.883, "lora": 0.883})
    assert f"not settled: at the full recipe {lora} leads, under the shortcut Dopamine and {lora} tie." in tied
