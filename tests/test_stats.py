"""The report's statistics (``reports/stats.py``) against SciPy on fixed inputs (SciPy: tests only)."""

import math

import numpy as np
import pytest
from scipy import stats as sp

from reports import stats


@pytest.mark.parametrize("values", [[80.0, 81.0, 82.5], [70.1, 70.4], [1.0, 2.0, 4.0, 8.0, 16.0, 3.0]])
def test_student_t_interval(values):
    s = stats.spread(values)
    low, high = sp.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=sp.sem(values))
    assert (s.ci_low, s.ci_high) == (pytest.approx(low), pytest.approx(high))
    assert s.std == pytest.approx(np.std(values, ddof=1))


def test_three_seeds_interval_is_wider_than_their_range():
    """A percentile bootstrap of 3 seeds is their min-max (74 % coverage); the t interval is much wider."""
    s = stats.spread([80.0, 81.0, 82.0])
    assert s.ci_low < 80.0 - 1 and s.ci_high > 82.0 + 1


@pytest.mark.parametrize(
    "a, b", [([80.0, 81.0, 79.0, 82.0], [78.0, 80.5, 78.5, 79.0]), ([1.0, 2.0, 3.0], [1.5, 2.0, 2.0])]
)
def test_paired_t_test(a, b):
    got = stats.paired_t_test(dict(enumerate(a)), dict(enumerate(b)))
    assert got.p_value == pytest.approx(sp.ttest_rel(a, b).pvalue)
    assert got.mean_difference == pytest.approx(np.mean(np.subtract(a, b)))


def test_no_test_without_spread_or_pairs():
    same_shift = stats.paired_t_test({0: 1.0, 1: 2.0, 2: 3.0}, {0: 0.0, 1: 1.0, 2: 2.0})
    assert math.isnan(same_shift.p_value) and not same_shift.significant  # zero variance: no test, not p = 0
    assert math.isnan(stats.paired_t_test({0: 1.0}, {0: 0.5}).p_value)


def test_a_nan_seed_drops_its_pair():
    a, b = {0: 80.0, 1: float("nan"), 2: 79.0, 3: 82.0}, {0: 78.0, 1: 80.0, 2: 78.5, 3: 79.0}
    got = stats.paired_t_test(a, b)
    assert got.n == 3 and got.p_value == pytest.approx(sp.ttest_rel([80.0, 79.0, 82.0], [78.0, 78.5, 79.0]).pvalue)


def test_holm_against_statsmodels_formula():
    """Holm: sorted p_(i) x (m - i + 1), running maximum, capped at 1; NaN stays NaN and is not counted."""
    p = [0.01, 0.04, float("nan"), 0.03, 0.005]
    adjusted = stats.holm(p)
    # by hand: sorted 0.005, 0.01, 0.03, 0.04 (m = 4) -> 0.02, 0.03, 0.06, max(0.06, 0.04) = 0.06
    assert adjusted[4] == pytest.approx(0.02) and adjusted[0] == pytest.approx(0.03)
    assert adjusted[3] == pytest.approx(0.06) and adjusted[1] == pytest.approx(0.06) and math.isnan(adjusted[2])
    rng = np.random.default_rng(0)
    ps = list(rng.uniform(0, 0.2, 12))
    order = np.argsort(ps)
    expected = np.maximum.accumulate([(len(ps) - k) * ps[i] for k, i in enumerate(order)]).clip(max=1)
    assert [stats.holm(ps)[i] for i in order] == pytest.approx(list(expected))


def test_rows_are_tested_against_their_equal_budget_reference_with_holm():
    import pandas as pd

    from reports.data import _significance

    def row(label, method, values, reference="dense", cut=0.0):
        return {
            "dataset": "d", "model": "m", "label": label, "method": method, "seeds": len(values),
            "top1_by_seed": dict(enumerate(values)), "reference_label": reference,
            "macs_effective_reduction_pct": cut,
        }  # fmt: skip

    frame = pd.DataFrame(
        [
            row("dense", "dense", [80.0, 81.0, 82.0]),
            row("dense@e5", "dense", [70.0, 71.0, 72.5]),
            row("tissuenet", "tissuenet", [70.2, 71.5, 72.4], reference="dense@e5", cut=50),
            row("prune_l1@macs50", "prune_l1", [79.0, 80.5, 80.9], cut=50),
        ]
    )
    out = _significance(frame).set_index("label")
    assert out.loc["tissuenet", "vs_dense"] == "dense@e5"  # not the first dense row
    raw = sp.ttest_rel([70.2, 71.5, 72.4], [70.0, 71.0, 72.5]).pvalue
    assert out.loc["tissuenet", "p_vs_dense_raw"] == pytest.approx(raw)
    other = out.loc["prune_l1@macs50", "p_vs_dense_raw"]
    assert out.loc["tissuenet", "p_vs_dense"] == pytest.approx(stats.holm([raw, other])[0])
