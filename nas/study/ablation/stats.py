"""The numbers of an ablation: mean and spread per arm, and paired differences to the baseline
over the seeds both share, with a 95 % confidence interval from Student's t distribution.

Pairing by seed removes what the seed does to both arms alike (the initial weights and the
batch order), so the interval is that of the mean of per-seed differences: mean ± t(0.975,
n-1) · sd / sqrt(n). An interval that contains 0 (or n < 2) does not resolve the difference.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass

LEVEL = 0.95


@dataclass(frozen=True)
class Spread:
    """Mean and sample standard deviation over seeds (sd 0 for one value)."""

    n: int
    mean: float | None
    sd: float | None


@dataclass(frozen=True)
class Paired:
    """The mean per-seed difference (arm - baseline), its 95 % t-interval and the pairs used."""

    n: int
    mean: float | None
    low: float | None
    high: float | None

    @property
    def resolved(self) -> bool:
        """True when the interval excludes 0: the sign of the difference is settled."""
        return self.low is not None and self.high is not None and (self.low > 0 or self.high < 0)


def spread(values: list[float]) -> Spread:
    if not values:
        return Spread(0, None, None)
    return Spread(len(values), statistics.fmean(values),
                  statistics.stdev(values) if len(values) > 1 else 0.0)


def t_quantile(n: int, level: float = LEVEL) -> float:
    """The two-sided t quantile for n paired values (n - 1 degrees of freedom)."""
    from scipy.stats import t

    return float(t.ppf(0.5 + level / 2, n - 1))


def paired(baseline: Mapping[int, float], arm: Mapping[int, float]) -> Paired:
    """Differences arm - baseline over the seeds both have; no interval below two pairs."""
    seeds = sorted(set(baseline) & set(arm))
    diffs = [arm[s] - baseline[s] for s in seeds]
    if not diffs:
        return Paired(0, None, None, None)
    mean = statistics.fmean(diffs)
    if len(diffs) < 2:
        return Paired(1, mean, None, None)
    half = t_quantile(len(diffs)) * statistics.stdev(diffs) / math.sqrt(len(diffs))
    return Paired(len(diffs), mean, mean - half, mean + half)
