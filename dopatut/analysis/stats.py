"""Small-sample statistics for comparing methods across seeds, with scipy's Student t.

    mean_std([0.97, 0.98, 0.975])                 # (mean, sample std with n - 1)
    d = paired_difference(dopamine_acc, frozen_acc)   # per-seed a - b, its mean and a t interval
    verdict(d)                                    # "beats", "ties with" or "loses to", read off the interval

With n seeds, the mean of the paired differences d_i = a_i - b_i has the interval

    mean(d) +- t_{(1 + confidence) / 2, n - 1} * std(d) / sqrt(n)

the interval of scipy.stats.ttest_rel(a, b).confidence_interval().
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats as _scipy


def _values(values, name: str = "values") -> list[float]:
    out = [float(v) for v in values]
    if not all(math.isfinite(v) for v in out):
        raise ValueError(f"{name} must be finite numbers, got {out}")
    return out


def mean_std(values) -> tuple[float, float]:
    """Mean and sample standard deviation (divisor n - 1); std is nan for a single value."""
    xs = _values(values)
    if not xs:
        raise ValueError("mean_std needs at least one value, got none")
    mean = sum(xs) / len(xs)
    if len(xs) == 1:
        return mean, math.nan
    return mean, math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1))


def t_quantile(p: float, df: int) -> float:
    """The t with P(T <= t) = p for Student's t with `df` degrees of freedom (scipy.stats.t.ppf)."""
    if not 0 < p < 1:
        raise ValueError(f"p must be strictly between 0 and 1, got {p!r}")
    if isinstance(df, bool) or not isinstance(df, int) or df < 1:
        raise ValueError(f"degrees of freedom must be an int >= 1, got {df!r}")
    return float(_scipy.t.ppf(p, df))


@dataclass(frozen=True)
class PairedDifference:
    """a - b, paired by seed: the differences, their mean and a Student-t confidence interval."""

    differences: tuple[float, ...]
    mean: float
    std: float
    ci_low: float
    ci_high: float
    confidence: float
    p_value: float = math.nan  # two-sided paired t test of mean 0

    @property
    def n(self) -> int:
        return len(self.differences)

    @property
    def half_width(self) -> float:
        return (self.ci_high - self.ci_low) / 2

    def excludes_zero(self) -> bool:
        return self.ci_low > 0 or self.ci_high < 0

    def __str__(self) -> str:
        return (f"{self.mean:+.4f} (std {self.std:.4f}, n={self.n}), "
                f"{self.confidence:.0%} CI [{self.ci_low:+.4f}, {self.ci_high:+.4f}]")


def mean_ci(values, confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): the Student-t confidence interval of the mean of `values` (n >= 2)."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence!r}")
    xs = _values(values)
    if len(xs) < 2:
        raise ValueError(f"a confidence interval needs at least 2 values, got {len(xs)}")
    mean, std = mean_std(xs)
    if std == 0:
        return mean, mean, mean
    low, high = _scipy.t.interval(confidence, len(xs) - 1, loc=mean, scale=std / math.sqrt(len(xs)))
    return mean, float(low), float(high)


def expected_max_normal(k: int) -> float:
    """E[max of k independent standard normals]: how far, in standard errors, the best of k equally good settings
    scores above their common true accuracy when each is scored once (0 for k = 1, 1/sqrt(pi) for k = 2)."""
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"expected_max_normal: k={k!r}; expected a whole number of settings, 1 or more")
    from scipy import integrate

    density = lambda x: x * k * _scipy.norm.pdf(x) * _scipy.norm.cdf(x) ** (k - 1)  # noqa: E731
    return float(integrate.quad(density, -12, 12)[0])


def paired_difference(a, b, confidence: float = 0.95) -> PairedDifference:
    """Differences a_i - b_i (same seed i in both), with the t interval of their mean and the paired t test."""
    a, b = _values(a, "a"), _values(b, "b")
    if len(a) != len(b):
        raise ValueError(f"paired values need equal lengths, got {len(a)} and {len(b)}")
    diffs = [x - y for x, y in zip(a, b)]
    mean, low, high = mean_ci(diffs, confidence)
    std = mean_std(diffs)[1]
    p_value = float(_scipy.ttest_rel(a, b).pvalue) if std > 0 else (1.0 if mean == 0 else 0.0)
    return PairedDifference(tuple(diffs), mean, std, low, high, confidence, p_value)


def verdict(d: PairedDifference) -> str:
    """What the interval of a - b says of a against b: "beats" (above 0), "loses to" (below 0), else "ties with"."""
    if not isinstance(d, PairedDifference):
        raise TypeError(f"verdict reads a PairedDifference, got {type(d).__name__}")
    return "beats" if d.ci_low > 0 else "loses to" if d.ci_high < 0 else "ties with"
