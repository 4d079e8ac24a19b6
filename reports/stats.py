"""Statistics over seeds, stated on the report page: mean ± std, a Student-t interval, paired t-tests
with Holm's correction within a table.

* **Spread**: mean ± sample standard deviation over seeds.
* **95 % CI**: the Student-t interval of the mean, ``mean ± t(0.975, n-1) s / sqrt(n)``. With the
  2-10 seeds a benchmark affords, a percentile bootstrap is not a 95 % interval (with 3 seeds it is
  the seeds' min-max: 74 % coverage in simulation; 50 % with 2).
* **Paired test**: two rows measured on the same seeds (each seed shares one dense checkpoint and
  one data order) are compared by a two-sided paired t-test on the per-seed differences. A seed
  whose value is missing or NaN in either row drops its pair. Fewer than two pairs, or differences
  with no spread at all (a t statistic of 0/0 or x/0), give no test: p is NaN, never "significant".
* **Multiple comparisons**: the p-values of one table (every row against its reference) are
  adjusted by Holm's step-down method before ``ALPHA = 0.05`` is applied.

Student's t is SciPy's (``scipy.stats.t``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import t as student_t

ALPHA = 0.05
CI_LEVEL = 0.95


@dataclass(frozen=True)
class Spread:
    n: int
    mean: float
    std: float  # nan for one seed
    ci_low: float  # nan for one seed
    ci_high: float


def _finite(values) -> np.ndarray:
    return np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)


def spread(values) -> Spread:
    x = _finite(values)
    if len(x) == 0:
        return Spread(0, math.nan, math.nan, math.nan, math.nan)
    if len(x) == 1:
        return Spread(1, float(x[0]), math.nan, math.nan, math.nan)
    low, high = t_interval(x)
    return Spread(len(x), float(x.mean()), float(x.std(ddof=1)), low, high)


def t_interval(x: np.ndarray, level: float = CI_LEVEL) -> tuple[float, float]:
    """Student-t confidence interval of the mean: mean ± t((1+level)/2, n-1) s / sqrt(n)."""
    n = len(x)
    half = float(student_t.ppf((1 + level) / 2, n - 1)) * float(x.std(ddof=1)) / math.sqrt(n)
    return float(x.mean()) - half, float(x.mean()) + half


@dataclass(frozen=True)
class PairedTest:
    n: int
    mean_difference: float  # a - b
    p_value: float  # nan: no test (fewer than two pairs, or differences without spread)

    @property
    def significant(self) -> bool:
        return not math.isnan(self.p_value) and self.p_value < ALPHA


DIFFERENCE_DIGITS = 9  # decimals a paired difference is rounded to before its spread is judged


def paired_t_test(a: dict, b: dict) -> PairedTest:
    """Two-sided paired t-test of ``a`` against ``b``, both {seed: value}, on the seeds both have a number for."""

    def ok(v) -> bool:
        return v is not None and not math.isnan(v)

    seeds = sorted(s for s in set(a) & set(b) if ok(a[s]) and ok(b[s]))
    # rounded: accuracies are 100 c / n, so rows exactly k images apart differ by float noise, not spread
    d = np.round(np.asarray([a[s] - b[s] for s in seeds], dtype=float), DIFFERENCE_DIGITS)
    if len(d) < 2:
        return PairedTest(len(d), float(d.mean()) if len(d) else math.nan, math.nan)
    sd = d.std(ddof=1)
    if sd == 0:  # identical differences on every seed: the t statistic is undefined; no test
        return PairedTest(len(d), float(d.mean()), math.nan)
    t = d.mean() / (sd / math.sqrt(len(d)))
    return PairedTest(len(d), float(d.mean()), float(2 * student_t.sf(abs(t), len(d) - 1)))


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment of the p-values of one family (NaN: no test, left out and kept NaN)."""
    tested = sorted((p, i) for i, p in enumerate(p_values) if not math.isnan(p))
    m = len(tested)
    adjusted = [math.nan] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(tested):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted
