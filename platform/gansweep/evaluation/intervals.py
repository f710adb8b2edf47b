"""A figure over seeds as a paper prints it: the mean, the half-width of its 95% confidence interval and n. The one
place the interval is computed (the report's trials table, its summary and the study table read it from here)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    mean: float
    half_width: float | None  # None for n = 1: one seed has no spread to estimate
    n: int

    def text(self, spec: str = ".4g") -> str:
        """'mean ± half-width', each in the format SPEC, or the mean alone for one seed (the caller says n)."""
        if self.half_width is None:
            return f"{self.mean:{spec}}"
        return f"{self.mean:{spec}} ± {self.half_width:{spec}}"


def interval(values: Iterable[float | None]) -> Interval | None:
    """The mean of VALUES (None left out) with the half-width of its Student-t 95% interval (n - 1 degrees of
    freedom: the seeds' spread is estimated from the seeds themselves, so a normal quantile would be too narrow at
    n = 3); None when no value is given. A non-finite value (a diverged seed) makes the mean non-finite, as it should:
    averaging it away would hide the divergence."""
    from scipy import stats

    kept = [float(v) for v in values if v is not None]
    if not kept:
        return None
    n = len(kept)
    mean = sum(kept) / n
    if n == 1 or not math.isfinite(mean):
        return Interval(mean, None, n)
    std = math.sqrt(sum((v - mean) ** 2 for v in kept) / (n - 1))
    return Interval(mean, float(stats.t.ppf(0.5 + LEVEL / 2, n - 1)) * std / math.sqrt(n), n)


@dataclass(frozen=True)
class RatioInterval:
    ratio: float  # the numerator's mean over the denominator's
    low: float | None  # the 95% interval's ends; None where a side has one seed (no spread to estimate)
    high: float | None
    n_numerator: int
    n_denominator: int

    def text(self, spec: str = ".2f") -> str:
        """'1.38x [1.11, 1.65]', or the ratio alone where there is no interval."""
        if self.low is None:
            return f"{self.ratio:{spec}}x"
        return f"{self.ratio:{spec}}x [{self.low:{spec}}, {self.high:{spec}}]"


def ratio_interval(numerator: Iterable[float | None], denominator: Iterable[float | None]) -> RatioInterval | None:
    """The ratio of two figures' means over independent seeds (ambient's FID over clean's) with its 95% interval: the
    delta method on the log of the ratio (so the interval stays positive and is symmetric in log, as a ratio's
    uncertainty is), Student t with Welch-Satterthwaite's degrees of freedom for the two sides' unequal spreads. None
    where a side has no value or a mean is not positive and finite. Written here because scipy and statsmodels give a
    difference of means' interval, not a ratio's."""
    from scipy import stats

    sides = [[float(v) for v in values if v is not None] for values in (numerator, denominator)]
    if not all(sides):
        return None
    means = [sum(side) / len(side) for side in sides]
    if not all(math.isfinite(m) and m > 0 for m in means):
        return None
    ratio = means[0] / means[1]
    n_num, n_den = len(sides[0]), len(sides[1])
    if min(n_num, n_den) == 1:
        return RatioInterval(ratio, None, None, n_num, n_den)
    # each side's variance of log(mean): (s / mean)^2 / n
    terms = [sum((v - m) ** 2 for v in side) / (len(side) - 1) / (m * m * len(side)) for side, m in zip(sides, means)]
    variance = sum(terms)
    if variance == 0:
        return RatioInterval(ratio, ratio, ratio, n_num, n_den)
    dof = variance ** 2 / sum(term ** 2 / (len(side) - 1) for term, side in zip(terms, sides))
    half = float(stats.t.ppf(0.5 + LEVEL / 2, dof)) * math.sqrt(variance)
    return RatioInterval(ratio, ratio * math.exp(-half), ratio * math.exp(half), n_num, n_den)
