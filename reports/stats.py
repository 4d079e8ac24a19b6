"""Statistics over seeds, stated on the report page: mean ± std, a 95 % bootstrap CI, a paired t-test.

* **Spread**: mean ± sample standard deviation over seeds.
* **95 % CI**: percentile bootstrap of the mean, ``BOOTSTRAP_RESAMPLES`` resamples drawn with a
  fixed generator (so the same results give the same page).
* **Paired test**: two rows measured on the same seeds (each seed shares one dense checkpoint and
  one data order) are compared by a two-sided paired t-test on the per-seed differences;
  ``ALPHA = 0.05``. With one seed there is no test and no error bar.

No scipy: the Student t distribution comes from ``benchmarks.student``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from benchmarks.student import t_two_sided_p

BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
ALPHA = 0.05
CI_LEVEL = 0.95


@dataclass(frozen=True)
class Spread:
    n: int
    mean: float
    std: float  # nan for one seed
    ci_low: float  # nan for one seed
    ci_high: float


def spread(values) -> Spread:
    x = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if len(x) == 0:
        return Spread(0, math.nan, math.nan, math.nan, math.nan)
    if len(x) == 1:
        return Spread(1, float(x[0]), math.nan, math.nan, math.nan)
    low, high = bootstrap_ci(x)
    return Spread(len(x), float(x.mean()), float(x.std(ddof=1)), low, high)


def bootstrap_ci(x: np.ndarray, level: float = CI_LEVEL) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean (deterministic: a fixed generator)."""
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    means = x[rng.integers(0, len(x), size=(BOOTSTRAP_RESAMPLES, len(x)))].mean(axis=1)
    tail = (1 - level) / 2
    return float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


@dataclass(frozen=True)
class Paired:
    n: int
    mean_difference: float  # a - b
    p_value: float  # nan with fewer than two pairs or no spread in the differences

    @property
    def significant(self) -> bool:
        return not math.isnan(self.p_value) and self.p_value < ALPHA


def paired_t_test(a: dict, b: dict) -> Paired:
    """Two-sided paired t-test of ``a`` against ``b``, both {seed: value}, on the seeds they share."""
    seeds = sorted(set(a) & set(b))
    d = np.asarray([a[s] - b[s] for s in seeds], dtype=float)
    if len(d) < 2:
        return Paired(len(d), float(d.mean()) if len(d) else math.nan, math.nan)
    sd = d.std(ddof=1)
    if sd == 0:
        return Paired(len(d), float(d.mean()), 0.0 if d.mean() != 0 else 1.0)
    t = d.mean() / (sd / math.sqrt(len(d)))
    return Paired(len(d), float(d.mean()), t_two_sided_p(t, len(d) - 1))
