import pytest

import dopatut.study.budget as budget
import dopatut.study.compare as compare
from dopatut.study.budget import (BudgetRun, budget_name, budget_study, budget_words, flat_epoch, mean_curve,
                                  still_climbing, verdict_changes)
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


def _change(method, short, long, moves=(0.0, 0.0)):
    d = lambda x: paired_difference([x + 0.001 * i for i in range(3)], [0.0, 0.0005, 0.0])  # noqa: E731
    return budget.Change(method, d(short), d(long), moves)


def _run(*curves):
    return BudgetRun("x", tuple(range(len(curves))), curves, (0.9,) * len(curves), 0.0)


FROZEN = BudgetRun("frozen", (0,), ((),), (0.9,), 0.0)


def test_still_climbing_is_the_protocols_one_rule_after_the_budget():
    study = {"head": _run((0.90, 0.95, 0.951, 0.96, 0.961)), "lora": _run((0.9, 0.95, 0.951, 0.952, 0.953)),
             "bitfit": _run((0.9, 0.91, 0.92, 0.93), (0.9, 0.91, 0.92, 0.93)), "frozen": FROZEN}
    assert still_climbing(study, 2, margin=0.002) == {"head": 4, "bitfit": 4}
    assert still_climbing(study, 4, margin=0.002) == {}
    assert still_climbing(study, 2, margin=0.02) == {}
    # the words name the rule and the exceptions, whichever side is shorter
    assert budget._climb_words(study, 2, 0.002) == ("2 of 3 mean curves (all but LoRA's) still gain 0.2 points or "
                                                    "more in some epoch after epoch 2")
    assert budget._climb_words({"lora": study["lora"], "head": study["head"]}, 2, 0.002).startswith(
        "1 of 2 mean curves (head-only's)")
    assert budget._climb_words({"head": study["head"]}, 2, 0.002).startswith("all 1 mean curves")
    assert budget._climb_words(study, 2, 0.02) == ""
    curve = (0.970, 0.975, 0.976, 0.977, 0.978, 0.979)  # after epoch 2 each epoch adds 0.1 points: all flat
    assert budget.climbing_epochs(curve, margin=0.002) == [2] and budget.climbing_epochs(curve, 2) == []
    assert budget.epoch_gains((0.9, 0.91, 0.905)) == pytest.approx([0.01, -0.005])


def test_the_words_say_what_moves_what_does_not_and_why():
    flat = {"lora": _run((0.9, 0.95, 0.951, 0.952)), "dopamine": _run((0.9, 0.95, 0.951, 0.951)), "frozen": FROZEN}
    climbing = {"head": _run((0.8, 0.85, 0.9, 0.95)), "dopamine": _run((0.8, 0.9, 0.901, 0.902)), "frozen": FROZEN}
    studies = {"mixture": flat, "upright": climbing}
    moved = {"mixture": [_change("lora", 0.0, -0.02, (-0.002, 0.003)), _change("frozen", 0.01, 0.011)],
             "upright": [_change("head", -0.05, -0.052), _change("frozen", 0.4, 0.403)]}
    words = budget_words(studies, moved, 2, 4, margin=0.002)
    assert list(words) == ["moved", "mixture", "upright"]
    assert all(paragraph.count(". ") <= 1 for paragraph in words.values())  # two sentences at most
    text = " ".join(words.values())
    assert text.startswith("Between 2 and 4 epochs, 1 of the 4 verdicts changes: on the mixture foundation, "
                           "against LoRA (ties with → loses to). "), text
    assert "(r = 4)" not in text  # "LoRA's", not "LoRA (r = 4)'s"
    assert ("On the mixture foundation no later epoch adds 0.2 points to any mean curve, but the gaps that change "
            "were 0.08 points or less at 2 epochs.") in text
    assert "Dopamine's test accuracy by −0.20 points, LoRA's by +0.30." in text
    assert text.endswith("On the upright foundation no verdict changes: the longer budget moves each gap by 0.30 "
                         "points or less, and the clear gaps are 4.92 points or more. Yet 1 of 2 mean curves "
                         "(head-only's) still gain 0.2 points or more in some epoch after epoch 2."), text
    assert all(len(sentence) < 200 for sentence in text.split(". "))
    same = {"mixture": [_change("lora", -0.01, -0.02)], "upright": [_change("head", 0.01, 0.02)]}
    text = " ".join(budget_words(studies, same, 2, 4, margin=0.002).values())
    assert text == ("Between 2 and 4 epochs none of the 2 verdicts changes. On the mixture foundation the longer "
                    "budget moves each gap by 1.00 points or less, and the clear gaps are 0.92 points or more. On the "
                    "upright foundation the longer budget moves each gap by 1.00 points or less, and the clear gaps are "
                    "1.08 points or more. Yet 1 of 2 mean curves (head-only's) still gain 0.2 points or more in "
                    "some epoch after epoch 2."), text


def test_the_keep_words_give_the_reason_the_study_gives():
    flat = {"lora": _run((0.9, 0.95, 0.951, 0.952)), "dopamine": _run((0.9, 0.95, 0.951, 0.951)), "frozen": FROZEN}
    climbing = {"head": _run((0.8, 0.85, 0.9, 0.95)), "dopamine": _run((0.8, 0.9, 0.901, 0.902)), "frozen": FROZEN}
    studies = {"mixture": flat, "upright": climbing}
    moved_on_flat = {"mixture": [_change("lora", 0.0, -0.02), _change("frozen", 0.01, 0.011)],
                     "upright": [_change("head", -0.05, -0.052)]}
    text = budget.keep_words(studies, moved_on_flat, 2, margin=0.002)
    assert text == ("On the mixture foundation every mean curve is flat after epoch 2, yet 1 verdict changes, on gaps "
                    "of 0.08 points or less; on the upright foundation 1 of 2 mean curves still climb after epoch 2, "
                    "yet no verdict changes. So the protocol keeps its budget of 2 epochs, though by the flat-curve "
                    "rule it is short on the upright foundation: more epochs change no verdict there, and its "
                    "verdicts are verdicts at that budget."), text
    moved_on_climbing = {"mixture": [_change("lora", -0.01, -0.02)], "upright": [_change("head", 0.0, 0.05)]}
    text = budget.keep_words(studies, moved_on_climbing, 2, margin=0.002)
    assert "on the upright foundation 1 of 2 mean curves still climb after epoch 2, and 1 verdict changes" in text
    assert "all the same, since moving it would retrain every result of the book" in text
    assert "more epochs change no verdict there" not in text  # not where one does
    all_flat = {"mixture": flat, "upright": flat}
    text = budget.keep_words(all_flat, {k: [_change("lora", -0.01, -0.02)] for k in all_flat}, 2, margin=0.002)
    assert "flat-curve rule" not in text and text.count("every mean curve is flat") == 2
    assert text.endswith("So the protocol keeps its budget of 2 epochs, and its verdicts are verdicts at that "
                         "budget."), text
    assert text.count(". ") == 1  # two sentences


def test_the_table_gives_each_rival_its_numbers():
    protocol = Protocol(seeds=(0, 1, 2))
    short = {"dopamine": (0.970, 0.971, 0.972), "lora": (0.969, 0.9722, 0.9712), "frozen": (0.96,) * 3}
    runs = {m: [Result(m, 0, {"45": a}) for a in accs] for m, accs in short.items()}
    long = {"dopamine": (0.968, 0.969, 0.970), "lora": (0.978, 0.979, 0.9785), "frozen": (0.96,) * 3}
    study = {m: BudgetRun(m, (0, 1, 2), ((),) * 3, accs, 0.0) for m, accs in long.items()}
    (lora, frozen) = verdict_changes(study, runs, protocol)
    assert lora.changed and lora.moves == pytest.approx((-0.002, (0.978 + 0.979 + 0.9785 - 0.969 - 0.9722
                                                                  - 0.9712) / 3))
    table = budget.verdict_table({"mixture": [lora, frozen]}, 2, 4).markdown()
    assert "| LoRA\u00a0(r\u00a0=\u00a04) |" in table and "**−0.95\u00a0loses\u00a0to**" in table
    assert "move" not in table and "| +0.02\u00a0ties\u00a0with |" in table  # unchanged verdicts not bold
    moved = budget.verdict_table({"mixture": [lora, frozen]}, 2, 4, moves=True)
    assert moved.rows[0][-1] == "+0.77" and moved.rows[1][-1] == "+0.00"
    assert moved.caption.endswith("Dopamine's own moves by −0.20"), moved.caption
    assert moved.header[0] == "Dopamine against" and moved.rows[0][0].startswith("LoRA")  # one foundation: no column
    assert "at 45° on the mixture foundation," in moved.caption
    two = budget.verdict_table({"mixture": [lora], "upright": [frozen]}, 2, 4, moves=True)
    assert two.caption.endswith("by −0.20 on the mixture foundation and −0.20 on the upright foundation"), two.caption
    assert two.header[0] == "foundation" and [r[0] for r in two.rows] == ["mixture", "upright"]


def test_the_noise_words_compare_the_wiggle_with_one_scores_noise():
    studies = {"mixture": {"head": _run((0.9, 0.901, 0.9), (0.9, 0.901, 0.9)), "frozen": FROZEN}}
    text = budget.noise_words(studies, "mixture", 0.0015)
    assert text == ("On the mixture foundation a mean of 2 seeds still moves by 0.10 points from one epoch to the "
                    "next on average, while one validation score is uncertain by about 0.15 points (its binomial "
                    "standard error on this validation set): steps that small say little about the true "
                    "accuracy."), text
    assert budget.noise_words(studies, "mixture", 0.0005).endswith("on this validation set).")


def test_the_caveat_names_the_verdicts_that_the_longer_budget_changes():
    moved = {"mixture": [_change("lora", 0.0, -0.02), _change("threshold_only", 0.02, 0.001),
                         _change("frozen", 0.01, 0.011)],
             "upright": [_change("head", -0.05, -0.052)]}
    text = budget.caveat(moved, 3, 10, "chapter 5")
    assert text == ("These verdicts are at the protocol's budget of 3 epochs; at 10 epochs, on 3 seeds, 2 of the 4 "
                    "verdicts change. Over those 3 seeds, Dopamine's gap to LoRA on the mixture foundation changes "
                    "sign from +0.08 points at 3 epochs to −1.92 at 10, and its interval lies below zero; "
                    "Dopamine's gap to threshold-only on the mixture foundation shrinks from +2.08 points at 3 "
                    "epochs to +0.18 at 10, and its interval holds zero (a tie on 3 seeds says little; "
                    "chapter 5)."), text
    assert text.count(". ") == 1, "two sentences"
    moved["upright"] = [_change("frozen", -0.05, 0.0)]
    assert ("; Dopamine's gap to the frozen foundation on the upright foundation changes sign from −4.92 points at "
            "3 epochs to +0.08 at 10, and its interval holds zero (a tie on 3 seeds") in budget.caveat(moved, 3, 10)
    assert "Dopamine's gap to head-only on the mixture foundation grows from +0.08 points" in budget.caveat(
        {"mixture": [_change("head", 0.0, 0.02)]}, 3, 10)
    # no tie among the changes: no word on ties, and the pointer alone
    assert budget.caveat({"mixture": moved["mixture"][:1]}, 3, 10, "chapter 5").endswith(
        "lies below zero (chapter 5).")
    assert budget.caveat({"mixture": moved["mixture"][:1]}, 3, 10).endswith("lies below zero.")
    # against the headline's verdicts: LoRA's change ends where the headline already is (loses to), so only
    # threshold-only's is spelled out, and LoRA's counted; the headline's own seeds are named beside the study's
    headline = {"mixture": {"lora": _change("lora", -0.02, -0.02).long,
                            "threshold_only": _change("threshold_only", 0.02, 0.02).long,
                            "frozen": _change("frozen", 0.01, 0.01).long},
                "upright": {"frozen": _change("frozen", -0.05, -0.05).long}}
    text = budget.caveat({"mixture": moved["mixture"]}, 3, 10, answer=headline)
    assert text == ("These verdicts are at the protocol's budget of 3 epochs; at 10 epochs, on 3 seeds, 2 of the 3 "
                    "verdicts change, and 1 of them no longer matches the table's 3-seed verdict. Over those 3 "
                    "seeds, Dopamine's gap to threshold-only on the mixture foundation shrinks from +2.08 points at "
                    "3 epochs to +0.18 at 10, and its interval holds zero (a tie on 3 seeds says little)."), text
    up = [0.02 + 0.001 * i for i in range(10)]  # a clear gap over 10 seeds: LoRA ahead, the others behind
    ten = {k: {m: paired_difference(*([[0.0] * 10, up] if m == "lora" else [up, [0.0] * 10])) for m in v}
           for k, v in headline.items()}
    text = budget.caveat({"mixture": moved["mixture"]}, 3, 10, "chapter 5", answer=ten)
    assert text.startswith("These verdicts are at the protocol's budget of 3 epochs; at 10 epochs, on 3 of the "
                           "table's 10 seeds, 2 of the 3 verdicts change, and 1 of them no longer matches the "
                           "table's 10-seed verdict. Over those 3 seeds, "), text
    headline["mixture"]["threshold_only"] = _change("threshold_only", 0.001, 0.001).long
    assert budget.caveat({"mixture": moved["mixture"]}, 3, 10, answer=headline).endswith(
        "at 10 epochs, on 3 seeds, 2 of the 3 change, each to the table's verdict.")
    same = {"mixture": [_change("lora", -0.01, -0.02)], "upright": [_change("head", 0.01, 0.02)]}
    assert budget.caveat(same, 2, 4) == ("These verdicts are at the protocol's budget of 2 epochs; at 4 epochs, "
                                         "on 3 seeds, none of them changes.")


def test_the_recap_words_each_change_beside_the_protocols_verdict():
    changes = {"mixture": [_change("lora", 0.0, -0.02), _change("threshold_only", 0.02, 0.001),
                           _change("bitfit", 0.0, 0.0)],
               "upright": [_change("head", -0.05, -0.052)]}
    answer = {"mixture": {"lora": _change("lora", -0.02, -0.02).long,
                          "threshold_only": _change("threshold_only", 0.02, 0.02).long,
                          "bitfit": _change("bitfit", 0.0, 0.0).long},
              "upright": {"head": _change("head", -0.05, -0.05).long}}
    text = budget.recap_words(changes, 3, 10, answer)
    assert text == ("2 of 4 verdicts change between 3 and 10 epochs (3 seeds): on the mixture foundation, "
                    "Dopamine ties with LoRA at 3 epochs but loses to it at 10 (the 3-seed verdict: loses to) "
                    "and beats threshold-only at 3 epochs but ties with it at 10 (the 3-seed verdict: beats)."), text
    changes["upright"] = [_change("head", 0.0, -0.05)]
    text = budget.recap_words(changes, 3, 10, answer)
    assert text.startswith("3 of 4 verdicts change") and text.endswith(
        "; on the upright foundation, Dopamine ties with head-only at 3 epochs but loses to it at 10 "
        "(the 3-seed verdict: loses to)."), text
    same = {"mixture": [_change("lora", -0.01, -0.02)]}
    assert budget.recap_words(same, 3, 10, answer) == ("None of the 1 verdicts changes between 3 and 10 epochs "
                                                      "(3 seeds).")


def test_the_drift_words_appear_only_where_dopamine_falls():
    study = {"dopamine": _run((0.90, 0.95, 0.96, 0.958, 0.955), (0.90, 0.95, 0.96, 0.956, 0.955))}
    falls = [_change("lora", 0.0, -0.02, (-0.002, 0.003))]
    text = budget.drift_words(study, falls, 3)
    assert "why Dopamine's test accuracy falls" in text
    assert "peaks at epoch 3 and ends 0.50 points below its epoch-3 value" in text, text
    assert text.count(". ") <= 1
    assert budget.drift_words(study, [_change("lora", 0.0, -0.02, (0.002, 0.003))], 3) == ""
