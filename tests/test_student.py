"""``benchmarks.gate.student`` (Student's t without SciPy at run time) against ``scipy.stats.t`` on fixed inputs."""

import pytest
from scipy import stats

from benchmarks.gate.student import t_cdf, t_quantile, t_two_sided_p


@pytest.mark.parametrize("dof", [1, 2, 3, 7, 19, 100])
@pytest.mark.parametrize("t", [-4.0, -1.3, 0.0, 0.7, 2.5, 9.0])
def test_cdf_and_two_sided_p(t, dof):
    assert t_cdf(t, dof) == pytest.approx(stats.t.cdf(t, dof), abs=1e-10)
    assert t_two_sided_p(t, dof) == pytest.approx(2 * stats.t.sf(abs(t), dof), abs=1e-10)


@pytest.mark.parametrize("dof", [1, 2, 4, 7, 29])
@pytest.mark.parametrize("p", [0.005, 0.5, 0.9, 0.975, 0.99])
def test_quantile(p, dof):
    assert t_quantile(p, dof) == pytest.approx(stats.t.ppf(p, dof), rel=1e-8, abs=1e-9)


def test_quantile_needs_a_probability():
    with pytest.raises(ValueError):
        t_quantile(1.0, 3)
