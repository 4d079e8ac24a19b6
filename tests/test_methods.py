"""Every registered method (built-in, or a plugin installed in this environment) passes the conformance
check plugin authors run (``tissuebench.testing.check_method``): it prepares on a tiny model, respects its
target, trains under its phase, saves and reloads with ``weights_only=True``, and estimates its cost."""

from __future__ import annotations

import pytest

from baselines.contract import MethodError, get_method, list_methods
from tissuebench.testing import ConformanceError, check_method, default_target

# fewer pruning steps, calibration batches and sensitivity images than a real run: the contract, not the numbers
FAST = {"steps": 20, "calibration_batches": 2, "sensitivity_images": 64}


def fast_options(name: str) -> dict:
    method = get_method(name)
    target = default_target(method)
    base = dict(getattr(method, "example_options", {}))
    out = {}
    for key, value in FAST.items():
        try:
            method.check(base | out | {key: value}, target)
        except MethodError:
            continue
        out[key] = value
    return out


@pytest.mark.timeout(180)
@pytest.mark.parametrize("name", list_methods())
def test_every_method_follows_the_contract(name):
    report = check_method(name, options=fast_options(name))
    assert report.estimate.macs > 0 and report.phase in ("dense", "finetune", "scratch")


def test_a_broken_method_is_caught():
    """The check can fail: a method whose model file does not reload to the same network."""
    from baselines.contract import METHODS, BaseMethod, Prepared

    class Broken(BaseMethod):
        name = "broken_for_test"
        phase = "scratch"

        def prepare(self, ctx):
            model = ctx.dense_model()
            return Prepared(model, "scratch", 1, arch={"model": "mlp", "options": {}})  # claims another architecture

    METHODS.add("broken_for_test", Broken(), __name__)
    try:
        with pytest.raises(ConformanceError, match="save and reload"):
            check_method("broken_for_test")
    finally:
        METHODS.remove("broken_for_test")
