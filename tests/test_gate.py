"""The regression gate holds on another execution context and fails on a real regression.

The committed ``results/reference/smoke.csv`` was derived from 10 seeds with two threads per job
(README, "Regression checks"). Here the smoke suite runs with one thread per job (other float
summation orders, other trained weights), locally and under Ray: ``check`` must pass, saying that
the context differs. Then a deliberate regression (the TissueNet model's classifier damaged after
training, re-evaluated) must fail it.
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
@pytest.mark.parametrize("executor", ["local", "ray"])
def test_smoke_with_one_thread_per_job_passes_the_committed_reference(executor, tmp_path_factory):
    if executor == "ray":
        pytest.importorskip("ray")
    results = tmp_path_factory.mktemp(f"gate-{executor}") / "smoke"
    env = os.environ | {"OMP_NUM_THREADS": "1", "RAY_AUTH_MODE": "disabled"}
    extra = ["--executor", "ray", "--cpus-per-job", "1"] if executor == "ray" else []
    run = _tissuebench("run", "smoke", "--results", str(results), "--device", "cpu", *extra, env=env)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    threads = {json.loads(p.read_text()).get("threads") for p in (results / "records").glob("*.json")}
    assert threads == {1}
    check = _tissuebench("check", "--suite", "smoke", "--results", str(results))
    assert check.returncode == 0, check.stdout
    assert "0 regressions" in check.stdout and "context differs from the reference's: threads 1" in check.stdout
    if executor == "local":
        damaged_weight_fails(results, tmp_path_factory.mktemp("damaged") / "smoke")


def damaged_weight_fails(run: Path, results: Path) -> None:
    """The same run with the TissueNet classifier's weights damaged after training and re-evaluated."""
    from benchmarks.files import load_model
    from benchmarks.job import EVAL_BATCH
    from benchmarks.suite import load_suite
    from benchmarks.train import evaluate

    shutil.copytree(run, results)
    (record_path,) = [p for p in (results / "records").glob("*.json") if ".tissuenet-all." in p.name]
    record = json.loads(record_path.read_text())
    model, _ = load_model(results / record["model_file"])
    classifier = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        classifier.weight[: classifier.weight.shape[0] // 2] = 0  # half the classes can no longer win
    suite = load_suite("smoke")
    from benchmarks.data.registry import make_loaders

    _, _, test = make_loaders(
        "fashion-mnist", batch_size=EVAL_BATCH, test_limit=suite.data.test_limit, train_limit=suite.data.train_limit
    )
    record["top1"] = evaluate(model, test)["top1"]
    record_path.write_text(json.dumps(record))
    check = _tissuebench("check", "--suite", "smoke", "--results", str(results))
    assert check.returncode == 1, check.stdout
    line = next(x for x in check.stdout.splitlines() if x.startswith("regressed"))
    assert "top1" in line and record["job_id"] in line and "1 regressions" in check.stdout
