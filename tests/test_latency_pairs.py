"""The statistics of paired timings, on made-up samples (no timing loop: fast)."""

import pytest

from benchmarks.measure.timing import RELIABLE_SAMPLES, UNRELIABLE_SPREAD, paired


def test_load_that_hits_both_models_spreads_the_timings_not_the_ratio():
    """Samples drift 1x..3x (other processes' load); the model is always 4x faster: reliable, 4.0."""
    load = [1 + 2 * i / 99 for i in range(100)]
    pair = paired([1.0 * f for f in load], [4.0 * f for f in load])
    assert pair.model.iqr_ms / pair.model.median_ms > UNRELIABLE_SPREAD  # each timing alone is noisy
    assert pair.speedup == pytest.approx(4.0) and pair.speedup_iqr == pytest.approx(0.0, abs=1e-12)
    assert pair.reliable and pair.distinguishable


def test_ratios_that_scatter_are_unreliable():
    """Load that hits one model and not the other: the ratios scatter 1x..3x, and the speed-up is not a result."""
    pair = paired([1.0] * 100, [1 + 2 * i / 99 for i in range(100)])
    assert pair.speedup == pytest.approx(2.0)
    assert pair.speedup_iqr / pair.speedup > UNRELIABLE_SPREAD and not pair.reliable


def test_a_ratio_whose_iqr_contains_one_is_indistinguishable():
    pair = paired([1.0] * 10, [0.9, 0.95, 1.0, 1.02, 1.05, 1.1, 0.97, 1.01, 0.99, 1.03])
    assert not pair.distinguishable and pair.reliable


def test_too_few_samples_are_unreliable_however_tight():
    few = RELIABLE_SAMPLES - 1
    assert not paired([1.0] * few, [2.0] * few).reliable
    assert paired([1.0] * RELIABLE_SAMPLES, [2.0] * RELIABLE_SAMPLES).reliable
