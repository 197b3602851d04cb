import math

import pytest
import torch

from dopatut.stats import mean_ci, mean_std, paired_difference, t_cdf, t_quantile

# Two-sided 95% and 99% critical values from standard t tables.
T_TABLE = {(0.975, 1): 12.706, (0.975, 2): 4.303, (0.975, 4): 2.776, (0.975, 9): 2.262,
           (0.975, 30): 2.042, (0.995, 4): 4.604, (0.95, 10): 1.812}


@pytest.mark.parametrize(("p", "df"), list(T_TABLE))
def test_t_quantile_matches_tables(p, df):
    assert t_quantile(p, df) == pytest.approx(T_TABLE[(p, df)], abs=1e-3)


def test_t_quantile_inverts_the_cdf_and_is_symmetric():
    for df in (1, 2, 3, 7, 20):
        for p in (0.6, 0.9, 0.975, 0.999):
            assert t_cdf(t_quantile(p, df), df) == pytest.approx(p, abs=1e-10)
            assert t_quantile(1 - p, df) == pytest.approx(-t_quantile(p, df), abs=1e-9)


def test_t_cdf_special_cases():
    assert t_cdf(0.0, 5) == 0.5
    assert t_cdf(1.7, 1) == pytest.approx(0.5 + math.atan(1.7) / math.pi)  # Cauchy
    assert t_cdf(1.7, 2) == pytest.approx(0.5 + 1.7 / (2 * math.sqrt(2 + 1.7 ** 2)))  # closed form, df = 2
    normal = 0.5 * (1 + math.erf(1.96 / math.sqrt(2)))
    assert t_cdf(1.96, 2000) == pytest.approx(normal, abs=1e-4)  # t tends to the normal


@pytest.mark.parametrize("df", [3, 4, 11])
def test_t_cdf_agrees_with_integrating_torchs_density(df):
    grid = torch.linspace(0, 2.5, 20001, dtype=torch.float64)
    pdf = torch.distributions.StudentT(torch.tensor(float(df), dtype=torch.float64)).log_prob(grid).exp()
    integral = torch.trapezoid(pdf, grid).item()
    assert t_cdf(2.5, df) == pytest.approx(0.5 + integral, abs=1e-7)


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
        t_cdf(1.0, 0)
    with pytest.raises(ValueError, match="finite"):
        mean_std([1.0, float("nan")])
