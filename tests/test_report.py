import pytest

from dopatut.analysis.stats import paired_difference
from dopatut.study.report import (alone_words, curve_words, draw_words, findings, halves, seed_gap_words,
                                  twin_words)


def _d(mean, spread=0.001, n=5):
    """Dopamine - rival over n seeds, around `mean` (fractions)."""
    a = [0.9 + mean + spread * (i - n // 2) for i in range(n)]
    return paired_difference(a, [0.9] * n)


def test_curve_words_says_what_each_curve_does():
    words = curve_words([0.5, 0.3, 0.2], {"0": [0.95, 0.97, 0.96], "45": [0.90, 0.93, 0.94]})
    assert words == ("the loss falls every epoch; the 0° accuracy peaks at epoch 2 (97.0%) and ends at 96.0%; "
                     "the 45° accuracy rises every epoch, to 94.0% at epoch 3")


def test_curve_words_a_dip_before_the_best_last_epoch_and_a_loss_that_rises():
    words = curve_words([0.5, 0.3, 0.4], {"45": [0.90, 0.89, 0.95]})
    assert words == "the loss is lowest after epoch 2; the 45° accuracy ends at its highest, 95.0% at epoch 3"


def test_curve_words_a_peak_that_the_end_matches_at_its_precision_levels_off():
    words = curve_words([0.5, 0.3, 0.2], {"0": [0.95, 0.9674, 0.9672]})
    assert words.endswith("the 0° accuracy levels off at 96.7% from epoch 2")


def test_curve_words_refuses_curves_of_other_lengths():
    with pytest.raises(ValueError, match="one value per epoch"):
        curve_words([0.5, 0.3], {"45": [0.9]})


def test_alone_words_by_verdict():
    assert alone_words("gain_only", _d(0.0001)) == "gain-only alone ties with Dopamine (0.01 points apart)"
    assert alone_words("threshold_only", _d(0.0024, 0.0001)) == "threshold-only alone is 0.24 points behind"
    assert alone_words("lora", _d(-0.003, 0.0001)) == "LoRA (r = 4) alone is 0.30 points ahead"


def test_halves_names_the_half_whose_method_comes_closer():
    said = halves({"gain_only": _d(0.0001), "threshold_only": _d(0.0024, 0.0001)})
    assert said.startswith("The gain matters more: gain-only alone ties with Dopamine")
    said = halves({"gain_only": _d(0.01, 0.0001), "threshold_only": _d(0.002, 0.0001)})
    assert said.startswith("The threshold matters more")


def test_findings_lists_the_verdicts_per_foundation():
    answer = {"mixture": {"frozen": _d(0.01, 0.0001), "gain_only": _d(0.0), "lora": _d(-0.003, 0.0001)},
              "upright": {"frozen": _d(0.4, 0.001), "gain_only": _d(0.0), "lora": _d(-0.05, 0.001)}}
    assert findings(answer) == ("on the mixture foundation, Dopamine beats the frozen foundation, ties with "
                                "gain-only, and loses to LoRA (r = 4); on the upright foundation, it beats the "
                                "frozen foundation, ties with gain-only, and loses to LoRA (r = 4)")
    one = {"mixture": {"frozen": _d(0.01, 0.0001), "bitfit": _d(0.01, 0.0001)}}
    assert findings(one) == "on the mixture foundation, Dopamine beats the frozen foundation and BitFit"


def test_pairing_narrows_the_interval_only_where_the_two_move_together():
    from scipy import stats

    from dopatut.study.report import pairing

    base = [0.90, 0.93, 0.91, 0.95, 0.92]
    together = pairing(base, [x - 0.01 + 0.001 * (i % 2) for i, x in enumerate(base)])
    assert together.correlation > 0.9 and together.narrower
    assert together.paired_width == pytest.approx(
        100 * (lambda ci: ci.high - ci.low)(stats.ttest_rel(base, [x - 0.01 + 0.001 * (i % 2)
                                                                   for i, x in enumerate(base)]).confidence_interval()))
    assert together.words().startswith("they move together (correlation 1.00)")
    apart = pairing(base, [0.93, 0.90, 0.92, 0.90, 0.93])  # high where base is low
    assert apart.correlation < 0 and not apart.narrower
    assert apart.words().startswith("their accuracies do not move together (correlation −")
    with pytest.raises(ValueError, match="one value per seed"):
        pairing(base, base[:4])


def test_seed_gap_words_gives_the_gap_its_size_and_direction():
    assert seed_gap_words(0.9713, 0.9745, "head-only") == "0.32 points behind head-only's 97.45%"
    assert seed_gap_words(0.9755, 0.9745, "head-only") == "0.10 points ahead of head-only's 97.45%"
    assert seed_gap_words(0.97451, 0.9745, "head-only") == "level with head-only's 97.45%"


def test_draw_words_places_one_seed_among_the_seeds():
    d = paired_difference([0.01 * i for i in range(1, 10)], [0.0] * 9)  # gains of +1 to +9 points
    assert draw_words(0.09, d) == ("Seed 0 gained +9.00 points, the largest of the 9 draws: over the 9 seeds the "
                                   "gain runs from +1.00 to +9.00 points."), draw_words(0.09, d)
    assert draw_words(0.01 + 1e-5, d, "This seed").startswith("This seed gained +1.00 points, the smallest of the 9")
    assert "one of the larger draws" in draw_words(0.08, d)
    assert "one of the smaller draws" in draw_words(0.02, d)
    assert "a middling draw" in draw_words(0.05, d)


def test_twin_words_say_whether_the_twin_made_the_same_models():
    d = _d(0.0039, n=3)
    assert twin_words(d, _d(0.0039, n=3), "threshold-only", "in the budget table") == (
        "It matches threshold-only's gap on the same seeds in the budget table, +0.39: the same gate with the same "
        "learning rate trains the same models.")
    other = twin_words(d, _d(0.0020, n=3), "threshold-only")
    assert other.startswith("Threshold-only's gap on the same seeds is +0.20, not +0.39: its runs differ"), other
    with pytest.raises(ValueError, match="same seeds"):
        twin_words(d, _d(0.0039, n=5), "threshold-only")
