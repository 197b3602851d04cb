"""Chapter 9's helpers: arms by name, the grids and their widening, gate statistics."""

from dataclasses import replace

import pytest
import torch

from dopatut.study import beyond
from dopatut.methods.gate import GateSet
from dopatut.methods.builtin import apply_method
from dopatut.foundations.vit import VisionTransformer, ViTConfig


def small_vit():
    torch.manual_seed(0)
    return VisionTransformer(ViTConfig(width=16, depth=2, heads=2)).requires_grad_(False)


def test_unknown_arm_is_refused():
    with pytest.raises(ValueError, match="unknown arm .lora_everywhere.; expected one of dopamine, dopamine_at_0, gain_only"):
        beyond.run_arms(small_vit(), {"lora_everywhere": 1e-3})


def test_gate_movement_is_zero_at_init_and_sees_a_moved_threshold():
    model = apply_method(small_vit(), "dopamine", verbose=False)
    assert beyond.gate_movement([model]) == {"blocks.0.mlp.act": {"threshold": 0.0, "gain": 0.0},
                                              "blocks.1.mlp.act": {"threshold": 0.0, "gain": 0.0}}
    with torch.no_grad():
        GateSet.of(model)["blocks.1.mlp.act"].threshold[:16] += 2.0  # 16 of 64 neurons by 2: a mean of 0.5
    assert beyond.gate_movement([model])["blocks.1.mlp.act"]["threshold"] == pytest.approx(0.5)


def test_plot_arms_gives_each_foundation_its_own_panel_and_scale():
    from dopatut.study.pipeline import Result
    runs = {"mixture": {"frozen": [Result("frozen", 0, {"45": 0.944})] * 2,
                        "dopamine": [Result("dopamine", 768, {"45": a}) for a in (0.953, 0.954)]},
            "upright": {"frozen": [Result("frozen", 0, {"45": 0.5})] * 2,
                        "dopamine": [Result("dopamine", 768, {"45": a}) for a in (0.76, 0.78)]}}
    fig = beyond.plot_arms(runs)
    left, right = fig.axes
    assert left.get_title() == "mixture foundation" and right.get_title() == "upright foundation"
    assert left.get_ylim()[0] > 90 and right.get_ylim()[0] < 55  # not one shared scale


def test_grids_and_arms_are_one_job_per_model_each_as_trained_alone(monkeypatch):
    from dopatut.study.pipeline import specialise_many
    from dopatut.training.train import TrainConfig
    monkeypatch.setenv("DOPATUT_WORKERS", "1")  # in process; tests/test_workers.py checks a job's numbers in a worker
    study = replace(beyond.STUDY, adapt_images=500, epochs=1, grid_images=300, kept=("head",), widen=0,  # grids as given
                    lr_grid={**beyond.STUDY.lr_grid, "head": (1e-4, 3e-2)})
    base = small_vit()
    lrs = beyond.choose_lrs(base, arms=("head", "gain_only"), study=study, progress=False)
    assert list(lrs) == ["head", "gain_only"] and set(lrs["head"][1]) == {1e-4, 3e-2}
    assert lrs["head"][0] == max(lrs["head"][1], key=lrs["head"][1].get)
    runs, models = beyond.run_arms(base, lrs, seeds=(1, 0), study=study, progress=False)
    assert list(runs) == ["head", "gain_only"] and [r.method for r in runs["head"]] == ["head", "head"]
    assert list(models) == ["head"]  # the kept arms' models only
    alone, result = specialise_many([base], "head", [0], TrainConfig(epochs=1, lr=lrs["head"][0]), progress=False,
                                    train_limit=500, soft=False, stack=False)[0]
    same = lambda m, n: all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), n.state_dict().values()))
    assert same(models["head"][1], alone) and not same(models["head"][0], alone)  # in the order of the seeds
    assert runs["head"][1].accuracy == result.accuracy


def test_a_foundations_grids_and_arms_are_cached_with_the_kept_models(monkeypatch, tmp_path):
    monkeypatch.setenv("DOPATUT_WORKERS", "1")
    monkeypatch.setenv("DOPATUT_CACHE", str(tmp_path))
    study = replace(beyond.STUDY, adapt_images=300, epochs=1, grid_images=200, widen=0, kept=("dopamine_at_0",),
                    lr_grid={**beyond.STUDY.lr_grid, "dopamine_at_0": (0.1, 0.3)})
    base = small_vit()
    base.foundation_key = {"a": "foundation"}  # as vit_foundations marks its own
    lrs = beyond.choose_lrs(base, arms=("dopamine_at_0", "head"), study=study, progress=False)
    runs, models = beyond.run_arms(base, lrs, seeds=(0, 1), study=study, progress=False)
    def trains(*args, **kwargs):
        raise AssertionError("should come from the cache")
    monkeypatch.setattr(beyond, "run_jobs", trains)
    assert beyond.choose_lrs(base, arms=("dopamine_at_0", "head"), study=study, progress=False) == lrs
    again, rebuilt = beyond.run_arms(base, lrs, seeds=(0, 1), study=study, progress=False)
    assert again == runs and list(rebuilt) == ["dopamine_at_0"]
    for m, n in zip(models["dopamine_at_0"], rebuilt["dopamine_at_0"]):
        assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), n.state_dict().values()))
    with pytest.raises(AssertionError, match="should come from the cache"):  # another budget: another key
        beyond.run_arms(base, lrs, seeds=(0, 1), study=replace(study, epochs=2), progress=False)


def test_a_study_that_names_an_arm_it_lacks_is_refused():
    with pytest.raises(ValueError, match=r"VitStudy.kept names \['lora_everywhere'\], which are not arms"):
        replace(beyond.STUDY, kept=("lora_everywhere",))
    with pytest.raises(ValueError, match=r"VitStudy.adapt_images must be an int >= 1 or None \(the whole split\), got 0"):
        replace(beyond.STUDY, adapt_images=0)
    with pytest.raises(ValueError, match="VitStudy.curve_epochs must be an int >= 2, got 1"):
        replace(beyond.STUDY, curve_epochs=1)


def test_the_chapter_trains_every_arm_on_the_whole_split_over_five_seeds_at_least():
    assert beyond.STUDY.adapt_images is None and len(beyond.STUDY.seeds) >= 5
    assert beyond.STUDY.curve_epochs > beyond.STUDY.epochs  # the curves look past the budget they choose


def test_the_epoch_budget_is_the_latest_epoch_from_which_no_curve_gains_the_margin():
    from dopatut.study.pipeline import Result
    flat_from_2 = [0.90, 0.95, 0.951, 0.9515]  # gains 5, 0.1, 0.05 points
    flat_from_1 = [0.95, 0.951, 0.9515, 0.952]
    curves = {"mixture": {"dopamine": flat_from_1, "full": Result("full", 1, {}, curve=flat_from_2)},
              "upright": {"dopamine": flat_from_1}}
    assert beyond.epoch_budget(curves) == 2
    assert beyond.epoch_budget(curves, margin=0.0008) == 3  # then 0.1 points gains it, 0.05 does not
    assert beyond.epoch_budget({"upright": {"dopamine": flat_from_1}}) == 1
    assert beyond.largest_gains(curves, 2)[0] == (pytest.approx(0.001), "mixture", "full")
    assert beyond.climbing(curves, 2) == [] and beyond.budget_sentence(curves) == (
        "In epoch 2, full fine-tuning on the mixture foundation (+5.00 points) still gains the protocol's margin of "
        "0.2 points, and no curve does after it. Here the largest gain after it is 0.10 points, by full fine-tuning "
        "on the mixture foundation")
    assert beyond.check_budget(curves, replace(beyond.STUDY, epochs=2)) == 2
    with pytest.raises(ValueError, match="curves choose 2 epochs, but VitStudy.epochs is 1; set epochs=2"):
        beyond.check_budget(curves, replace(beyond.STUDY, epochs=1))


def test_a_curve_still_climbing_at_its_end_caps_the_budget_one_epoch_before_and_is_named():
    still = [0.70, 0.71, 0.72, 0.73]  # a point an epoch, to the last
    curves = {"mixture": {"dopamine": [0.95, 0.951, 0.9515, 0.952]}, "upright": {"full": still}}
    assert beyond.epoch_budget(curves) == 3  # the last epoch the curves see a later one after
    assert beyond.climbing(curves, 3) == [(pytest.approx(0.01), "upright", "full")]
    said = beyond.budget_sentence(curves)
    assert said == ("By the protocol's margin of 0.2 points, 1 of the 2 curves still climbs after epoch 3: full "
                    "fine-tuning on the upright foundation (+1.00 points). Its own budget lies past the 4 epochs "
                    "measured"), said
    assert said.count(". ") == 1 and "((" not in said  # two short sentences, no nested parentheses


def test_the_climbing_sentence_says_whether_a_longer_budget_could_move_a_verdict():
    from dopatut.study.pipeline import Result
    curves = {"mixture": {"dopamine": [0.95, 0.96, 0.961, 0.9612], "full": [0.95, 0.96, 0.965, 0.97]}}
    runs = lambda full: {"mixture": {"dopamine": [Result("dopamine", 1, {"45": a}) for a in (0.95, 0.951, 0.952)],
                                     "full": [Result("full", 1, {"45": a}) for a in full]}}
    said = beyond.climbing_sentence(curves, runs((0.97, 0.972, 0.971)))
    assert said == ("Dopamine already loses to the one still climbing after 3 epochs, and its own curves are "
                    "flat from epoch 2. A longer budget would widen that gap, not close it"), said
    assert beyond.longer_budget_answer(curves, runs((0.97, 0.972, 0.971))).startswith("None, here: Dopamine already "
                                                                                       "loses to every arm")
    two = {"mixture": {**curves["mixture"], "lora": [0.95, 0.96, 0.965, 0.97]}}
    with_lora = runs((0.97, 0.972, 0.971))
    with_lora["mixture"]["lora"] = [Result("lora", 1, {"45": a}) for a in (0.97, 0.972, 0.971)]
    said = beyond.climbing_sentence(two, with_lora)
    assert said.startswith("Dopamine already loses to the two still climbing after 3 epochs") and said.endswith(
        "widen those gaps, not close them"), said
    said = beyond.climbing_sentence(curves, runs((0.96, 0.94, 0.952)))  # a tie: more epochs could move it
    assert said == ("The arms still climbing after epoch 3 are full fine-tuning on the mixture foundation (Dopamine "
                    "ties with it). Dopamine's own curves are flat from epoch 2, so a longer budget could move the "
                    "verdicts of those Dopamine does not already lose to"), said
    assert beyond.longer_budget_answer(curves, runs((0.96, 0.94, 0.952))) == (
        "Those of full fine-tuning on the mixture foundation: still climbing after epoch 3, and not yet ahead of "
        "Dopamine")
    climbing_dopamine = {"mixture": {**curves["mixture"], "dopamine": [0.95, 0.96, 0.965, 0.97]}}
    # Dopamine itself still climbs: even an arm it loses to could be caught
    assert "Those of full fine-tuning" in beyond.longer_budget_answer(climbing_dopamine, runs((0.97, 0.972, 0.971)))
    flat = {"mixture": {"dopamine": [0.95, 0.951, 0.9512], "full": [0.95, 0.951, 0.9512]}}
    assert beyond.climbing_sentence(flat, {}) == "No curve still climbs after epoch 1, so a longer budget would move little"
    assert beyond.longer_budget_answer(flat, {}) == "None, here: no curve still climbs after epoch 1"


def test_versus_thresholds_and_peft_words_are_short_and_say_agree_exactly_at_a_zero_gap():
    from dopatut.analysis.stats import paired_difference
    d = paired_difference([0.951, 0.953, 0.952], [0.950, 0.951, 0.950])
    said = beyond.versus("Dopamine", "gain-only", d)
    assert said.startswith("Dopamine beats gain-only: +0.17 points (95% interval +") and " to +" in said, said
    tie = paired_difference([0.951, 0.949, 0.950], [0.950, 0.950, 0.950])
    assert "interval −" in beyond.versus("Dopamine", "gain-only", tie)  # a minus sign, not a hyphen
    assert beyond.thresholds_words(tie)[0] == "Dopamine's thresholds move, but add nothing measurable to its gains"
    assert beyond.peft_words({"dopatut": 0.954, "peft": 0.954}) == (
        "dopatut's LoRA and PEFT's agree to the printed precision: both read 95.40% at 45°")
    assert beyond.peft_words({"dopatut": 0.9540, "peft": 0.9528}).endswith("0.12 points apart")


def test_verdict_table_gives_each_arm_once_against_dopamine_with_true_minus_signs():
    acc = {"frozen": [0.90, 0.90, 0.90], "dopamine": [0.951, 0.953, 0.952], "head": [0.960, 0.961, 0.962],
           "gain_only": [0.951, 0.949, 0.950]}
    table = beyond.verdict_table(acc, {"dopamine": 768, "head": 490, "gain_only": 384})
    # the book's convention (chapters 5 and 7): Dopamine - arm, read "Dopamine beats it"
    assert table.header[0] == "Dopamine against" and table.header[2] == "Dopamine − it (points)"
    assert table.header[-1] == "verdict: Dopamine …"
    assert [row[0] for row in table.rows] == ["frozen foundation", "head-only", "gain-only"]  # not Dopamine itself
    assert all(" " not in row[3] + row[4] for row in table.rows)  # no-break spaces: each stays on one line
    frozen, head, gain = ([c.replace("\u00a0", " ") for c in row] for row in table.rows)
    assert frozen[1] == "0" and frozen[2] == "+5.20" and frozen[4] == "beats it"
    assert head[1] == "490" and head[2] == "−0.90" and head[4] == "loses to it"
    assert gain[2] == "+0.20" and gain[3].startswith("−") and " to +" in gain[3] and gain[4] == "ties with it", gain
    assert "-" not in "".join(c for row in table.rows for c in row[2:4])  # minus signs, not hyphens


def test_head_words_follow_the_verdict_and_the_count():
    from dopatut.analysis.stats import paired_difference
    ahead = paired_difference([0.951, 0.953, 0.952], [0.960, 0.961, 0.962])  # Dopamine - head-only
    assert beyond.head_words(ahead, 490, 768) == (
        "Retraining only the output layer, with fewer numbers than the gates, does better than Dopamine here")
    behind = paired_difference([0.960, 0.961, 0.962], [0.951, 0.953, 0.952])
    assert beyond.head_words(behind, 1000, 768).endswith("with more numbers than the gates, does worse than "
                                                         "Dopamine here")


def test_plot_blocks_draws_each_gate_arm_in_its_own_colour():
    from matplotlib.colors import to_rgba
    from dopatut.methods.names import colour
    firing = {"dopamine": {"blocks.0.mlp.act": 0.99, "blocks.1.mlp.act": 0.98},
              "dopamine_at_0": {"blocks.0.mlp.act": 0.4, "blocks.1.mlp.act": 0.3}}
    moved = {arm: {b: {"threshold": 0.1, "gain": 0.0} for b in blocks} for arm, blocks in firing.items()}
    fig = beyond.plot_blocks(firing, moved)
    for ax in fig.axes:
        colours = [p.get_facecolor() for p in ax.patches]
        assert colours == [to_rgba(colour(arm)) for arm in firing for _ in range(2)]
    assert "mixture foundation" in fig._suptitle.get_text()
    assert "upright" in beyond.plot_blocks(firing, moved, "upright")._suptitle.get_text()
    fig = beyond.plot_blocks(firing, moved, starts={"dopamine": -4.0, "dopamine_at_0": 0.0})
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["Dopamine: τ₀ = −4", "Dopamine (τ from 0): τ₀ = 0"], labels


def test_grid_ties_name_the_rates_where_dopamine_and_gain_only_print_the_same():
    lrs = {"dopamine": (0.1, {0.03: 0.95221, 0.1: 0.9536, 0.3: 0.9498}),
           "gain_only": (0.1, {0.03: 0.95219, 0.1: 0.9536, 0.3: 0.9486})}
    assert beyond.grid_ties(lrs) == [0.03, 0.1]
    said = beyond.grid_ties_sentence(lrs)
    assert said.startswith("Dopamine and gain-only read the same at 0.03 and 0.1, and that is no copy error. "), said
    assert said.count(". ") == 1
    lrs["gain_only"][1][0.03] = lrs["gain_only"][1][0.1] = 0.94
    assert beyond.grid_ties(lrs) == [] and "differ at every rate" in beyond.grid_ties_sentence(lrs)


def test_a_curve_is_seed_0s_validation_accuracy_after_each_epoch_and_is_cached(monkeypatch, tmp_path):
    from dopatut.study.pipeline import specialise_many
    from dopatut.training.train import TrainConfig
    monkeypatch.setenv("DOPATUT_WORKERS", "1")
    monkeypatch.setenv("DOPATUT_CACHE", str(tmp_path))
    study = replace(beyond.STUDY, adapt_images=300, curve_epochs=2)
    base = small_vit()
    base.foundation_key = {"a": "foundation"}
    curves = beyond.arm_curves(base, {"head": 3e-3, "gain_only": 0.1}, study=study, progress=False)
    assert list(curves) == ["head", "gain_only"] and all(len(r.curve) == 2 for r in curves.values())
    _, two_epochs = specialise_many([base], "head", [0], TrainConfig(epochs=2, lr=3e-3), eval_angles=(45.0,),
                                    split="val", progress=False, train_limit=300, stack=False)[0]
    assert curves["head"].curve[-1] == two_epochs.accuracy["45"]  # after the last epoch, on the validation split
    monkeypatch.setattr(beyond, "run_jobs", lambda *a, **k: (_ for _ in ()).throw(AssertionError("trained")))
    assert beyond.arm_curves(base, {"head": 3e-3, "gain_only": 0.1}, study=study, progress=False) == curves
    with pytest.raises(AssertionError, match="trained"):  # a longer curve: another key
        beyond.arm_curves(base, {"head": 3e-3}, study=replace(study, curve_epochs=3), progress=False)


def test_run_chapter_checks_the_budget_before_any_arm_trains(monkeypatch):
    monkeypatch.setattr(beyond, "vit_foundations", lambda *a, **k: {"mixture": None, "upright": None})
    monkeypatch.setattr(beyond, "choose_lrs", lambda base, arms, *a, **k: {arm: (0.1, {0.1: 0.9}) for arm in arms})
    monkeypatch.setattr(beyond, "arm_curves", lambda base, lrs, **k: {arm: [0.9, 0.95, 0.951] for arm in lrs})
    monkeypatch.setattr(beyond, "run_arms", lambda *a, **k: pytest.fail("an arm trained before the budget was checked"))
    with pytest.raises(ValueError, match="curves choose 2 epochs, but VitStudy.epochs is 1"):
        beyond.run_chapter(replace(beyond.STUDY, epochs=1))


def test_plot_curves_draws_each_foundations_curves_and_the_chosen_budget():
    from dopatut.course.figcheck import figure_problems
    curves = {"mixture": {arm: [0.95, 0.955, 0.956] for arm in beyond.STUDY.arms},
              "upright": {arm: [0.7, 0.75, 0.76] for arm in beyond.STUDY.upright_arms}}
    fig = beyond.plot_curves(curves, epochs=2)
    left, right = fig.axes
    assert left.get_title() == "mixture foundation" and len(left.lines) == len(beyond.STUDY.arms) + 1
    assert right.lines[-1].get_xdata()[0] == 2  # the budget's line
    assert figure_problems(fig) == []


def test_the_study_keeps_the_foundations_of_the_shipped_bundle():
    from dopatut.foundations.bundle import bundled
    from dopatut.study.pipeline import foundation_path
    for spec in beyond.STUDY.specs.values():
        assert bundled(f"foundations/{foundation_path(spec, 0, 'cpu').name}") is not None


def test_choose_lrs_widens_a_grid_past_its_edge_until_the_best_is_inside_or_widen_runs_out(monkeypatch):
    calls = []

    def score(base, arm, method, options, lr, angle_deg, train_limit):  # peaks at 0.03 for head, rises for full
        calls.append((arm, lr))
        return -abs(lr - 0.03) if arm == "head" else lr
    monkeypatch.setenv("DOPATUT_WORKERS", "1")
    monkeypatch.setattr(beyond, "_grid_point", score)
    study = replace(beyond.STUDY, lr_grid={**beyond.STUDY.lr_grid, "head": (1e-3, 3e-3, 1e-2),
                                           "full": (1e-3, 3e-3, 1e-2)})
    lrs = beyond.choose_lrs(small_vit(), arms=("head", "full"), study=study, progress=False)
    assert lrs["head"][0] == 0.03 and list(lrs["head"][1]) == [0.001, 0.003, 0.01, 0.03, 0.09]  # inside after two
    assert lrs["head"][1] == pytest.approx({0.001: -0.029, 0.003: -0.027, 0.01: -0.02, 0.03: 0.0, 0.09: -0.06})
    assert list(lrs["full"][1]) == [0.001, 0.003, 0.01, 0.03, 0.09] and lrs["full"][0] == 0.09  # widen = 2: stops
    assert len(calls) == 3 + 3 + 2 + 2
    table = beyond.grid_table(lrs)
    assert "0.09\u00a0(9.00%)" in table and "<b>0.09\u00a0(9.00%)</b>" in table  # full's choice, in bold
    assert "<b>0.03\u00a0(" in table and "0.001\u00a0(-2.90%) · 0.003" in table  # head's


def test_widened_and_at_edge_name_the_grids_widened_and_the_choices_left_at_an_edge():
    chosen = {"mixture": {"head": (0.01, {0.001: 0.9, 0.003: 0.91, 0.01: 0.93, 0.03: 0.92}),
                          "full": (0.001, {0.0003: 0.9, 0.001: 0.95, 0.003: 0.94})},
              "upright": {"full": (0.027, {0.0003: 0.1, 0.001: 0.2, 0.003: 0.3, 0.009: 0.4, 0.027: 0.5})}}
    assert beyond.widened_and_at_edge(chosen) == (["head-only (mixture)", "full fine-tuning (upright)"],
                                                   ["full fine-tuning (upright, 0.027)"])


def test_foundations_words_say_trained_here_or_loaded_with_their_training_seconds():
    from types import SimpleNamespace
    bases = {"mixture": SimpleNamespace(meta={"seconds": 40.0}), "upright": SimpleNamespace(meta={"seconds": 30.0})}
    assert beyond.foundations_words(bases, 35.0) == "here the two trained side by side in 35 s"
    said = beyond.foundations_words(bases, 0.5)
    assert said.startswith("here they were loaded from ") and said.endswith("they trained in 40 s and 30 s on "
                                                                          + said.rsplit(" on ", 1)[1]), said
    bases["upright"].meta["seconds"] = 39.8
    assert " they trained in 40 s each on " in beyond.foundations_words(bases, 0.5)
