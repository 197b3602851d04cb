"""Small-sample statistics for comparing methods across seeds, in plain Python.

    mean_std([0.97, 0.98, 0.975])                 # (mean, sample std with n - 1)
    paired_difference(dopamine_acc, frozen_acc)   # per-seed a - b, its mean and a Student-t CI

With n seeds, the mean of the paired differences d_i = a_i - b_i has the interval

    mean(d) +- t_{(1 + confidence) / 2, n - 1} * std(d) / sqrt(n)

The t quantile comes from the exact closed-form CDF of Student's t for integer degrees of
freedom (Abramowitz & Stegun 26.7.3-4), inverted by bisection: no scipy needed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass


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


def _check_df(df) -> int:
    if isinstance(df, bool) or not isinstance(df, int) or df < 1:
        raise ValueError(f"degrees of freedom must be an int >= 1, got {df!r}")
    return df


def t_cdf(t: float, df: int) -> float:
    """P(T <= t) for Student's t with integer `df` degrees of freedom (exact, closed form)."""
    df = _check_df(df)
    theta = math.atan(abs(t) / math.sqrt(df))
    s, c2 = math.sin(theta), math.cos(theta) ** 2
    if df % 2 == 1:  # A = (2/pi) [theta + sin cos (1 + 2/3 cos^2 + 2*4/(3*5) cos^4 + ...)]
        series, term = 0.0, 1.0
        for k in range(1, (df - 1) // 2 + 1):
            series += term
            term *= c2 * 2 * k / (2 * k + 1)
        inside = 2 / math.pi * (theta + s * math.cos(theta) * series)
    else:  # A = sin (1 + 1/2 cos^2 + 1*3/(2*4) cos^4 + ...)
        series, term = 0.0, 1.0
        for k in range(1, df // 2 + 1):
            series += term
            term *= c2 * (2 * k - 1) / (2 * k)
        inside = s * series
    return 0.5 + math.copysign(inside, t) / 2  # inside = P(|T| < |t|)


def t_quantile(p: float, df: int) -> float:
    """The t with P(T <= t) = p, for 0 < p < 1, found by bisection on `t_cdf`."""
    if not 0 < p < 1:
        raise ValueError(f"p must be strictly between 0 and 1, got {p!r}")
    df = _check_df(df)
    if p < 0.5:
        return -t_quantile(1 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        lo, hi = hi, hi * 2
    for _ in range(200):
        mid = (lo + hi) / 2
        if mid in (lo, hi):
            break
        lo, hi = (mid, hi) if t_cdf(mid, df) < p else (lo, mid)
    return (lo + hi) / 2


@dataclass(frozen=True)
class PairedDifference:
    """a - b, paired by seed: the differences, their mean and a Student-t confidence interval."""

    differences: tuple[float, ...]
    mean: float
    std: float
    ci_low: float
    ci_high: float
    confidence: float

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
    half = t_quantile((1 + confidence) / 2, len(xs) - 1) * std / math.sqrt(len(xs))
    return mean, mean - half, mean + half


def paired_difference(a, b, confidence: float = 0.95) -> PairedDifference:
    """Differences a_i - b_i (same seed i in both), with the t interval of their mean."""
    a, b = _values(a, "a"), _values(b, "b")
    if len(a) != len(b):
        raise ValueError(f"paired values need equal lengths, got {len(a)} and {len(b)}")
    diffs = [x - y for x, y in zip(a, b)]
    mean, low, high = mean_ci(diffs, confidence)
    return PairedDifference(tuple(diffs), mean, mean_std(diffs)[1], low, high, confidence)
