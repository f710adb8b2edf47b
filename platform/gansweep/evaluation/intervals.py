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
