"""Latency invariants: a model against itself is 1.0, a masked model runs at dense speed, an implausible
speed-up is flagged, and the latency command prints what it says."""

import json

import pytest
import torch

from baselines.unstructured import make_permanent, prunable_weights
from benchmarks.measure.cost import deploy_form, eager_form
from benchmarks.measure.speed import SUSPECT_FACTOR, measure_pair, suspect
from benchmarks.measure.timing import time_paired
from benchmarks.suites.settings import MeasureConfig
from tissuenet import create_model

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]  # timing loops: seconds each


def _model(name="resnet20", **options):
    torch.manual_seed(0)
    return create_model(name, num_classes=10, in_channels=1, **options).eval()


def test_dense_against_itself_is_one():
    model = _model()
    x = torch.randn(8, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    form = deploy_form()
    a, _, _ = form(model, x)
    b, _, _ = form(model, x)
    pair = time_paired(a, b, x, min_run_time=1.0, min_samples=20)
    assert abs(pair.speedup - 1.0) <= 0.15, pair
    assert pair.model.samples >= 20 and pair.dense.samples >= 20


def test_masked_model_runs_at_dense_speed():
    """70 % of the weights zeroed but stored dense: no faster (0.7-1.4x), whatever its effective MACs say."""
    from torch.nn.utils import prune

    dense = _model()
    masked = _model()
    prune.global_unstructured(prunable_weights(masked), pruning_method=prune.L1Unstructured, amount=0.7)
    make_permanent(masked)
    x = torch.randn(8, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    form = deploy_form()
    pair = time_paired(form(masked, x)[0], form(dense, x)[0], x, min_run_time=1.0, min_samples=20)
    assert 0.7 <= pair.speedup <= 1.4, pair


def test_implausible_speedups_are_flagged():
    assert suspect(5.0, 2.0) and not suspect(3.9, 2.0) and not suspect(None, 2.0)
    assert SUSPECT_FACTOR == 2.0


def test_measure_pair_records_both_forms_and_the_kernels():
    model, dense = _model("tissue_resnet20", replace="all"), _model()
    cfg = MeasureConfig(latency_batches=(1, 4))
    out = measure_pair(model, dense, 1, 28, "cpu", cfg, deploy_form=deploy_form(), eager_form=eager_form())
    assert out["latency_samples"] >= 10 and out["latency_batch"] == 1 and out["throughput_batch"] == 4
    assert out["latency_eager_ms"] > 0 and out["speedup_eager"] > 0
    assert "BN folded" in out["latency_mode"] and out["latency_allocator"].startswith(("glibc", "default"))
    assert all({"chosen", "candidates"} <= set(v) for v in out["latency_kernels"].values())


def test_latency_command_json(capsys):
    from tissuebench.cli import main

    assert (
        main(
            [
                "latency",
                "tissue_resnet20",
                "--set",
                "replace=all",
                "--dataset",
                "fashion-mnist",
                "--batch",
                "1,2",
                "--deploy",
                "--min-run-time",
                "0.5",
                "--json",
            ]
        )
        == 0
    )
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    from tissuebench.commands.latency import KEYS

    keys = set(KEYS)  # what --json promises, each row exactly that
    assert [r["batch"] for r in rows] == [1, 2] and all(set(r) == keys for r in rows)
    assert {r["runtime"] for r in rows} == {"deploy"}
    assert rows[0]["theoretical_speedup"] == pytest.approx(6.35, abs=0.01)  # resnet20, replace=all, 1x28x28
    assert main(["latency", "tissue_resnet20", "--min-run-time", "0.1"]) == 2
