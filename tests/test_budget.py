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
    assert verdict_sentence(same, 3, 10).startswith("Between 3 and 10 epochs no verdict changes, on the first 3 seeds")
    moved = {"mixture": [_change("lora", 0.0, -0.02)], "upright": [_change("head", 0.01, 0.02)]}
    text = verdict_sentence(moved, 3, 10)
    assert "1 verdict changes and 1 stay" in text and "Dopamine ties with LoRA (r = 4) after 3 epochs and loses to" in text
    run = lambda curve: BudgetRun("x", (0,), (curve,), (0.9,), 0.0)  # noqa: E731
    studies = {"mixture": {"head": run((0.9, 0.9, 0.9, 0.9)), "frozen": BudgetRun("frozen", (0,), ((),), (0.9,), 0)},
               "upright": {"head": run((0.8, 0.85, 0.9, 0.95)), "lora": run((0.8, 0.9, 0.95, 0.951))}}
    text = flat_sentence(studies, 2, margin=0.002)
    assert text.startswith("on the mixture foundation, every curve is flat by epoch 2; on the upright")
    assert "2 of 2 curves are not flat by epoch 2: head-only (still climbing at the last epoch), LoRA (r = 4) (flat from epoch 3)" in text
