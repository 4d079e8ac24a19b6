"""The regression gate holds on another execution context and fails on a real regression.

The committed ``results/reference/smoke.csv`` was derived from 20 runs: seeds 0-9 with two threads
per job and with one (README, "Regression checks"), all with the local executor. Here the smoke
suite runs with one thread per job, its jobs split between the two executors: the TissueNet jobs
locally, then dense and the pruned jobs under Ray (one CPU each) into the same folder. Ray is
another execution context for the reference; ``check`` must pass and say so in one line. (Ray and
local give identical results for the same job and thread count, ``tests/test_ray.py``; the split
runs every job of the suite once, in the time of one smoke run.) Then a deliberate regression (the
TissueNet model's classifier damaged after training, re-evaluated) must fail it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def _tissuebench(*args, env=None, timeout=1500) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tissuebench", *args],
        cwd=REPO,
        env=env or os.environ,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_smoke_with_one_thread_per_job_locally_and_under_ray_passes_the_committed_reference(tmp_path_factory):
    pytest.importorskip("ray")
    results = tmp_path_factory.mktemp("gate") / "smoke"
    env = os.environ | {"OMP_NUM_THREADS": "1", "RAY_AUTH_MODE": "disabled"}
    common = ["run", "smoke", "--results", str(results), "--device", "cpu"]
    local = _tissuebench(*common, "--only", "tissuenet-*", env=env)
    assert local.returncode == 0, local.stdout[-2000:] + local.stderr[-3000:]
    ray = _tissuebench(*common, "--executor", "ray", "--cpus-per-job", "1", env=env)  # the three jobs left
    assert ray.returncode == 0, ray.stdout[-2000:] + ray.stderr[-3000:]
    records = [json.loads(p.read_text()) for p in (results / "records").glob("*.json")]
    assert {r["threads"] for r in records} == {1} and len(records) == 5
    executors = {r["label"]: r["executor"] for r in records}
    assert executors == {
        "tissuenet-all": "local",
        "tissuenet-ours": "local",
        "dense": "ray",
        "prune_l1@macs50": "ray",
        "sparse_global@sparsity70": "ray",
    }
    check = _tissuebench("check", "--suite", "smoke", "--results", str(results))
    assert check.returncode == 0, check.stdout
    assert "0 regressions" in check.stdout and "context differs from the reference's: executor" in check.stdout
    damaged_weight_fails(results, tmp_path_factory.mktemp("damaged") / "smoke")


def damaged_weight_fails(run: Path, results: Path) -> None:
    """The same run with the TissueNet classifier's weights damaged after training and re-evaluated."""
    from benchmarks.run.job import EVAL_BATCH
    from benchmarks.run.train import evaluate
    from benchmarks.store.model_files import load_model
    from benchmarks.suites.load import load_suite

    shutil.copytree(run, results)
    (record_path,) = [p for p in (results / "records").glob("*.json") if ".tissuenet-all." in p.name]
    record = json.loads(record_path.read_text())
    model, _ = load_model(results / record["model_file"])
    classifier = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        classifier.weight[: classifier.weight.shape[0] // 2] = 0  # half the classes can no longer win
    suite = load_suite("smoke")
    from benchmarks.data.datasets import make_loaders

    _, _, test = make_loaders(
        "fashion-mnist", batch_size=EVAL_BATCH, test_limit=suite.data.test_limit, train_limit=suite.data.train_limit
    )
    record["top1"] = evaluate(model, test)["top1"]
    record_path.write_text(json.dumps(record))
    check = _tissuebench("check", "--suite", "smoke", "--results", str(results))
    assert check.returncode == 1, check.stdout
    line = next(x for x in check.stdout.splitlines() if x.startswith("regressed"))
    assert "top1" in line and record["job_id"] in line and "1 regressions" in check.stdout
