import pytest

import dopatut.study.budget as budget
import dopatut.study.compare as compare
from dopatut.study.budget import (BudgetRun, budget_name, budget_study, flat_epoch, flat_sentence, mean_curve,
                            verdict_changes, verdict_sentence)
from dopatut.foundations.model import MLPConfig
from dopatut.study.pipeline import FoundationSpec, Result
from dopatut.study.protocol import Protocol
from dopatut.analysis.stats import paired_difference, verdict
from dopatut.training.train import TrainConfig

TINY_SPEC = FoundationSpec(model=MLPConfig(hidden=(16, 16)), train=TrainConfig(epochs=1, batch_size=512))
TINY = Protocol(epochs=1, foundation_epochs=1, batch_size=512, seeds=(0, 1, 2),
                grids={"head": {"lr": (1e-2,)}, "dopamine": {"lr": (1e-2,), "temperature": ((1.0, 0.1),)}})


@pytest.fixture
def tiny(monkeypatch, tmp_path):
    monkeypatch.setenv("DOPATUT_CACHE", str(tmp_path))
    monkeypatch.setenv("DOPATUT_RECOMPUTE", "1")
    monkeypatch.setitem(compare.FOUNDATIONS, "mixture", TINY_SPEC)
    return TINY


def test_every_epoch_is_recorded_deterministically_and_cached(tiny, monkeypatch):
    study = budget_study("mixture", ("frozen", "head", "dopamine"), epochs=3, seeds=(0, 1), protocol=tiny,
                         progress=False)
    for method in ("head", "dopamine"):
        run = study[method]
        assert run.seeds == (0, 1) and len(run.curves) == 2 and all(len(c) == 3 for c in run.curves)
        assert all(0 <= a <= 1 for c in run.curves for a in c) and len(run.accuracy) == 2
    assert study["frozen"].curves == ((), ())  # it trains nothing: no curve, but a test accuracy to pair with
    monkeypatch.setattr(budget, "budget_job", lambda *a, **k: pytest.fail("cached: nothing should train"))
    assert budget_study("mixture", ("head",), epochs=3, seeds=(0, 1), protocol=tiny, progress=False) == \
        {"head": study["head"]}
    monkeypatch.undo()


def test_a_fresh_cache_trains_the_same_numbers(tiny, tmp_path, monkeypatch):
    first = budget_study("mixture", ("head",), epochs=2, seeds=(0, 1), protocol=tiny, progress=False)["head"]
    monkeypatch.setenv("DOPATUT_CACHE", str(tmp_path / "again"))
    again = budget_study("mixture", ("head",), epochs=2, seeds=(0, 1), protocol=tiny, progress=False)["head"]
    assert (first.curves, first.accuracy) == (again.curves, again.accuracy)


def test_the_key_is_its_own_and_names_the_budget():
    setting = {"lr": 0.01}
    names = {budget_name("head", "mixture", setting, epochs=e) for e in (5, 10)}
    assert len(names) == 2 and all(n.startswith("budget-mixture-head-") for n in names)
    assert compare.compare_name("head", "mixture", setting) not in names


def test_the_verdicts_come_from_the_protocols_function_over_the_same_seeds():
    protocol = Protocol(seeds=(0, 1, 2, 3))
    short = {"dopamine": (0.970, 0.971, 0.972, 0.9), "lora": (0.969, 0.9695, 0.9712, 0.99)}
    runs = {m: [Result(m, 0, {"45": a}) for a in accs] for m, accs in short.items()}
    long = {"dopamine": (0.972, 0.973, 0.974), "lora": (0.978, 0.979, 0.9785)}
    study = {m: BudgetRun(m, (0, 1, 2), ((),) * 3, accs, 0.0) for m, accs in long.items()}
    (change,) = verdict_changes(study, runs, protocol)
    assert change.method == "lora"
    assert change.short == compare.dopamine_minus({m: list(a[:3]) for m, a in short.items()}, ["lora"])["lora"]
    assert change.long == paired_difference(long["dopamine"], long["lora"])
    assert (verdict(change.short), verdict(change.long), change.changed) == ("beats", "loses to", True)
    with pytest.raises(ValueError, match="no 'dopamine' run"):
        verdict_changes({"lora": study["lora"]}, runs, protocol)


def test_flat_is_the_protocols_margin():
    assert flat_epoch([0.90, 0.95, 0.951, 0.952], margin=0.002) == 2
    assert flat_epoch([0.90, 0.901, 0.95, 0.951], margin=0.002) == 3
    assert flat_epoch([0.90, 0.95], margin=0.002) is None and flat_epoch([0.9]) is None
    assert flat_epoch([0.95, 0.94, 0.95], margin=0.002) is None  # its last epoch still adds 1 point
    run = BudgetRun("head", (0, 1), ((0.9, 0.92), (0.8, 0.84)), (0.9, 0.8), 0.0)
    assert mean_curve(run) == pytest.approx([0.85, 0.88])


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="epochs >= 2"):
        budget_study("mixture", ("head",), epochs=1)
    with pytest.raises(ValueError, match="not the protocol's"):
        budget_study("mixture", ("head",), seeds=(0, 11))
    with pytest.raises(ValueError, match="unknown foundation"):
        budget_study("sideways", ("head",))


def test_the_shipped_study_pairs_the_protocols_first_seeds():
    from dopatut.study.protocol import PROTOCOL

    assert budget.BUDGET_SEEDS == PROTOCOL.seeds[:len(budget.BUDGET_SEEDS)] and budget.BUDGET_EPOCHS > PROTOCOL.epochs


def _change(method, short, long):
    d = lambda x: paired_difference([x + 0.001 * i for i in range(3)], [0.0, 0.0005, 0.0])  # noqa: E731
    return budget.Change(method, d(short), d(long))


def test_the_sentences_follow_the_verdicts_and_the_margin():
    same = {"mixture": [_change("lora", -0.01, -0.02)], "upright": [_change("head", 0.01, 0.02)]}
    assert verdict_sentence(same, 3, 10).startswith("Between 3 and 10 epochs, on the first 3 seeds, none of the 2")
    assert budget.moves_sentence(same, 3, 10) == ""
    moved = {"mixture": [_change("lora", 0.0, -0.02)], "upright": [_change("head", 0.01, 0.02)]}
    text = verdict_sentence(moved, 3, 10)
    assert "1 of Dopamine's 2 verdicts changes: on the mixture foundation, against LoRA (r = 4) (ties with → loses to)" \
        in text and text.count(".") == 1
    run = lambda curve: BudgetRun("x", (0,), (curve,), (0.9,), 0.0)  # noqa: E731
    studies = {"mixture": {"head": run((0.9, 0.9, 0.9, 0.9)), "frozen": BudgetRun("frozen", (0,), ((),), (0.9,), 0)},
               "upright": {"head": run((0.8, 0.85, 0.9, 0.95)), "lora": run((0.8, 0.9, 0.95, 0.951))}}
    text = flat_sentence(studies, 2, margin=0.002)
    assert text.startswith("on the mixture foundation no epoch after epoch 2 adds 0.2 points or more to any of the 1")
    assert ("on the upright foundation 2 of 2 curves still have an epoch after epoch 2 that adds 0.2 points or more "
            "(head-only and LoRA (r = 4)), the last at epoch 4") in text


def test_the_moves_say_both_sides_of_a_changed_verdict():
    protocol = Protocol(seeds=(0, 1, 2))
    short = {"dopamine": (0.970, 0.971, 0.972), "lora": (0.969, 0.9722, 0.9712)}
    runs = {m: [Result(m, 0, {"45": a}) for a in accs] for m, accs in short.items()}
    long = {"dopamine": (0.968, 0.969, 0.970), "lora": (0.978, 0.979, 0.9785)}
    study = {m: BudgetRun(m, (0, 1, 2), ((),) * 3, accs, 0.0) for m, accs in long.items()}
    (change,) = verdict_changes(study, runs, protocol)
    assert change.changed and change.moves == pytest.approx((-0.002, (0.978 + 0.979 + 0.9785 - 0.969 - 0.9722
                                                                      - 0.9712) / 3))
    text = budget.moves_sentence({"mixture": [change]}, 3, 10)
    assert text == ("From 3 to 10 epochs, on the mixture foundation, Dopamine's mean test accuracy at 45° "
                           "moves −0.20 points, LoRA (r = 4)'s +0.77: a verdict moves when either side does.")
    table = budget.verdict_table({"mixture": [change]}, 3, 10).markdown()
    assert "| mixture foundation | LoRA (r = 4) |" in table and "loses to (changed)" in table


def test_one_definition_of_flat_and_the_slow_climb_it_misses():
    curve = (0.970, 0.975, 0.976, 0.977, 0.978, 0.979)  # after epoch 2 each epoch adds 0.1 points: all flat
    assert budget.climbing_epochs(curve, margin=0.002) == [2] and budget.climbing_epochs(curve, 2) == []
    assert budget.epoch_gains((0.9, 0.91, 0.905)) == pytest.approx([0.01, -0.005])
    run = lambda c: BudgetRun("x", (0, 1), (c, c), (0.9, 0.9), 0.0)  # noqa: E731
    studies = {"mixture": {"lora": run(curve), "head": run((0.97,) * 6)}}
    (slow,) = budget.slow_climbs(studies, 2, margin=0.002)
    assert (slow.kind, slow.method, slow.epoch) == ("mixture", "lora", 6) and slow.gain == pytest.approx(0.004)
    assert budget.slow_climbs(studies, 2, margin=0.005) == []
    text = budget.slow_sentence(studies, 2, 0.002, {"mixture": [_change("lora", 0.0, -0.02)]})
    assert ("no epoch after epoch 2 adds 0.2 points to LoRA (r = 4)'s curve on the mixture foundation, yet it is "
            "0.40 points higher by epoch 6.") in text
    assert text.endswith("Dopamine's verdict against LoRA (r = 4) on the mixture foundation moves with the budget.")
    assert budget.slow_sentence(studies, 2, 0.005).startswith("No curve that is flat epoch by epoch")


def test_seed_zero_and_the_mean_are_compared_by_the_same_rule():
    run = lambda *cs: BudgetRun("x", tuple(range(len(cs))), cs, (0.9,) * len(cs), 0.0)  # noqa: E731
    studies = {"mixture": {"bitfit": run((0.970, 0.972, 0.975, 0.9), (0.970, 0.972, 0.971, 0.9)),
                           "head": run((0.97, 0.971, 0.972, 0.9), (0.97, 0.971, 0.972, 0.9))}}
    seed0 = {"mixture": {"bitfit": (0.970, 0.972, 0.975), "head": (0.97, 0.971, 0.972)}}
    text = budget.seed0_sentence(seed0, studies, 3, margin=0.002)
    assert text.startswith("Seed 0 and the mean of 2 seeds judge epoch 3 differently for BitFit (+0.30 and +0.10)"), text
    assert "head-only" not in text
    seed0["mixture"]["bitfit"] = (0.970, 0.972, 0.9735)
    assert budget.seed0_sentence(seed0, studies, 3, margin=0.002).startswith("Seed 0 and the mean of 2 seeds agree")
