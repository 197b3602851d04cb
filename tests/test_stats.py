import math

import pytest
import torch
from dopatut.analysis import stats
from dopatut.analysis.stats import PairedDifference, mean_ci, mean_std, paired_difference, t_quantile, verdict

# Two-sided 95% and 99% critical values from standard t tables.
T_TABLE = {(0.975, 1): 12.706, (0.975, 2): 4.303, (0.975, 4): 2.776, (0.975, 9): 2.262,
           (0.975, 30): 2.042, (0.995, 4): 4.604, (0.95, 10): 1.812}


@pytest.mark.parametrize(("p", "df"), list(T_TABLE))
def test_t_quantile_matches_tables(p, df):
    assert t_quantile(p, df) == pytest.approx(T_TABLE[(p, df)], abs=1e-3)


def test_t_quantile_is_symmetric():
    for df in (1, 2, 3, 7, 20):
        for p in (0.6, 0.9, 0.975, 0.999):
            assert t_quantile(1 - p, df) == pytest.approx(-t_quantile(p, df), abs=1e-9)


def test_paired_interval_is_scipys_paired_t_test():
    from scipy import stats
    a, b = [0.971, 0.98, 0.962, 0.975, 0.972, 0.969], [0.96, 0.975, 0.955, 0.97, 0.961, 0.97]
    d = paired_difference(a, b)
    ci = stats.ttest_rel(a, b).confidence_interval(0.95)
    assert (d.ci_low, d.ci_high) == (pytest.approx(ci.low), pytest.approx(ci.high))
    assert d.p_value == pytest.approx(stats.ttest_rel(a, b).pvalue)


def interval(low, high):
    return PairedDifference((low, high), (low + high) / 2, 0.1, low, high, 0.95)


@pytest.mark.parametrize("low, high, words", [
    (0.001, 0.004, "beats"), (-0.002, 0.003, "ties with"), (-0.004, -0.0005, "loses to"),
    (0.0, 0.002, "ties with"), (-0.002, 0.0, "ties with")])
def test_verdict_reads_the_interval(low, high, words):
    assert verdict(interval(low, high)) == words


def test_verdict_follows_real_differences():
    assert verdict(paired_difference([0.98, 0.97, 0.99], [0.96, 0.955, 0.97])) == "beats"
    assert verdict(paired_difference([0.96, 0.955, 0.97], [0.98, 0.97, 0.99])) == "loses to"
    assert verdict(paired_difference([0.97, 0.96, 0.98], [0.96, 0.97, 0.98])) == "ties with"
    with pytest.raises(TypeError, match="PairedDifference"):
        verdict(0.01)


def test_mean_std_uses_n_minus_one():
    mean, std = mean_std([1.0, 2.0, 3.0, 4.0])
    assert mean == 2.5 and std == pytest.approx(math.sqrt(5 / 3))
    assert math.isnan(mean_std([0.3])[1])


def test_mean_ci_widens_with_confidence_and_contains_mean():
    values = [0.1, 0.4, 0.35, 0.2, 0.3]
    mean, lo95, hi95 = mean_ci(values, 0.95)
    _, lo99, hi99 = mean_ci(values, 0.99)
    assert lo99 < lo95 < mean < hi95 < hi99
    half = 2.776445 * mean_std(values)[1] / math.sqrt(5)
    assert hi95 - mean == pytest.approx(half, rel=1e-5)


def test_paired_difference_pairs_by_position():
    a, b = [0.97, 0.98, 0.96, 0.975, 0.972], [0.96, 0.965, 0.955, 0.96, 0.961]
    diff = paired_difference(a, b)
    assert diff.differences == pytest.approx([x - y for x, y in zip(a, b)])
    assert diff.n == 5 and diff.ci_low < diff.mean < diff.ci_high and diff.excludes_zero()
    assert paired_difference(b, a).mean == pytest.approx(-diff.mean)
    # a shared per-seed offset cancels in a paired comparison
    assert paired_difference([x + s for x, s in zip(a, range(5))], [y + s for y, s in zip(b, range(5))]).std \
        == pytest.approx(diff.std)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="equal lengths, got 3 and 2"):
        paired_difference([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="at least 2 values, got 1"):
        mean_ci([1.0])
    with pytest.raises(ValueError, match="strictly between 0 and 1, got 1.5"):
        t_quantile(1.5, 3)
    with pytest.raises(ValueError, match="int >= 1, got 0"):
        t_quantile(0.9, 0)
    with pytest.raises(ValueError, match="finite"):
        mean_std([1.0, float("nan")])


def test_expected_max_normal_matches_closed_forms_and_a_simulation():
    assert abs(stats.expected_max_normal(1)) < 1e-9
    assert abs(stats.expected_max_normal(2) - 1 / math.sqrt(math.pi)) < 1e-6
    assert abs(stats.expected_max_normal(3) - 3 / (2 * math.sqrt(math.pi))) < 1e-6
    draws = torch.randn(200_000, 10, generator=torch.Generator().manual_seed(0)).max(1).values.mean()
    assert abs(stats.expected_max_normal(10) - float(draws)) < 0.01
    with pytest.raises(ValueError, match="k=0"):
        stats.expected_max_normal(0)
