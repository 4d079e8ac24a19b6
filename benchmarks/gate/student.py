"""Student's t distribution without SciPy (a run-time dependency it would otherwise be alone in needing).

The tail comes from the regularised incomplete beta function (Numerical Recipes' continued
fraction); quantiles by bisection on the CDF. Tested against ``scipy.stats.t`` (a test-only
dependency) in ``tests/test_student.py``. Used by ``check`` (prediction intervals) and by the
report's statistics.
"""

from __future__ import annotations

import math


def t_cdf(t: float, dof: float) -> float:
    """P(T <= t) for Student's t with ``dof`` degrees of freedom."""
    tail = 0.5 * betainc(dof / 2, 0.5, dof / (dof + t * t))
    return 1 - tail if t > 0 else tail


def t_two_sided_p(t: float, dof: float) -> float:
    """P(|T| >= |t|)."""
    return float(betainc(dof / 2, 0.5, dof / (dof + t * t)))


def t_quantile(p: float, dof: float) -> float:
    """The t with P(T <= t) = p (bisection to 1e-12)."""
    if not 0 < p < 1:
        raise ValueError(f"a quantile needs 0 < p < 1, got {p}")
    if p == 0.5:
        return 0.0
    if p < 0.5:  # symmetric: bisect in the upper half, where the CDF is computed without cancellation
        return -t_quantile(1 - p, dof)
    lo, hi = 0.0, 1e6
    while hi - lo > 1e-12 * max(1.0, abs(lo)):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if t_cdf(mid, dof) < p else (lo, mid)
    return (lo + hi) / 2


def betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta I_x(a, b)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log(1 - x))
    if x < (a + 1) / (a + b + 2):
        return front * _betacf(a, b, x) / a
    return 1 - front * _betacf(b, a, 1 - x) / b


def _betacf(a: float, b: float, x: float, iterations: int = 300, eps: float = 1e-15) -> float:
    tiny = 1e-300
    c, d = 1.0, 1 - (a + b) * x / (a + 1)
    d = 1 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, iterations + 1):
        for num in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1 + num * d
            d = 1 / (d if abs(d) > tiny else tiny)
            c = 1 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1) < eps:
            break
    return h
