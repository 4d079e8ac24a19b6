"""The runner end to end on tiny synthetic suites: records, table, determinism, failures, kills."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from benchmarks.cli import main
from tests.conftest import REPO
from tests.helpers import DEFAULT_METHODS, write_mnist_like, write_suite


def _run(suite: Path, results: Path, *extra) -> int:
    return main(["run", str(suite), "--results", str(results), "--device", "cpu", *extra])


def _records(results: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in (results / "records").glob("*.json")}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One finished run of the tiny suite (dense + TissueNet on synthetic data)."""
    root = tmp_path_factory.mktemp("run")
    suite = write_suite(root / "tiny.toml", latency=True)
    assert _run(suite, root / "results") == 0
    return suite, root / "results"


def test_every_job_has_an_ok_record_and_a_row(finished):
    suite, results = finished
    records = _records(results)
    assert len(records) == 2 and all(r["status"] == "ok" for r in records.values())
    table = pd.read_parquet(results / "table.parquet")
    assert sorted(table["job_id"]) == sorted(records) and table["job_id"].is_unique
    assert (results / "table.csv").exists()
    dense = table[table.method == "dense"].iloc[0]
    tissue = table[table.method == "tissuenet"].iloc[0]
    assert dense["top1"] > 50 and tissue["top1"] > 30  # 10 classes: chance is 10 %
    assert dense["speedup_measured"] == 1.0  # the dense row is its own latency reference
    assert dense["tca_1_1"] == pytest.approx(1.0) and dense["params_reduction_pct"] == 0
    assert tissue["params"] < dense["params"] and tissue["base_params"] == dense["params"]
    assert tissue["flops"] == 2 * tissue["macs"]
    assert tissue["latency_ms"] > 0 and tissue["latency_batch"] == 1 and tissue["latency_device"] == "cpu"
    assert json.loads(tissue["tissue_options"])["replace"] == "all"
    for col in ("git_sha", "versions", "device_name", "started_utc", "config_hash", "command"):
        assert col in table.columns
    history = pd.read_parquet(results / "history.parquet")
    assert set(history["job_id"]) == set(records) and {"train_loss", "test_loss", "test_top1"} <= set(history)


def test_dense_checkpoint_trained_once_and_hashed_in_every_row(finished):
    _, results = finished
    checkpoints = list((results / "checkpoints" / "dense").glob("*.pt"))
    assert len(checkpoints) == 1
    shas = {r["dense_weights_sha256"] for r in _records(results).values()}
    assert len(shas) == 1 and len(shas.pop()) == 64


def test_rerun_skips_finished_jobs(finished, capsys):
    suite, results = finished
    before = _records(results)
    assert _run(suite, results) == 0
    assert "0 ok, 0 failed, 2 already done" in capsys.readouterr().out
    assert _records(results) == before


def test_same_seed_same_metrics(finished, tmp_path):
    suite, first = finished
    assert _run(suite, tmp_path / "again") == 0
    a, b = _records(first), _records(tmp_path / "again")
    for job_id in a:
        for key in ("top1", "top5", "test_loss", "params", "macs", "history", "dense_weights_sha256"):
            assert a[job_id][key] == b[job_id][key], (job_id, key)


def test_dry_run_prints_plan_and_trains_nothing(tmp_path, capsys):
    suite = write_suite(tmp_path / "s.toml")
    assert _run(suite, tmp_path / "r", "--dry-run") == 0
    out = capsys.readouterr().out
    assert "2 jobs" in out and "scratch" in out and "M" in out
    assert not (tmp_path / "r").exists()


# -- bad input: non-zero exit, one clear message, nothing already stored is lost --------------------
@pytest.fixture
def stored(finished, tmp_path):
    """A copy of a finished results folder, to run bad input against."""
    import shutil

    _, results = finished
    shutil.copytree(results, tmp_path / "results")
    return tmp_path / "results"


def _snapshot(results: Path) -> dict:
    return {p.relative_to(results): p.read_bytes() for p in results.rglob("*") if p.is_file() and ".lock" not in p.name}


BAD_SUITES = {
    "unknown dataset": (dict(dataset="cifar11"), "unknown dataset 'cifar11'"),
    "unknown model": (dict(models=("resnet57",)), "unknown model 'resnet57'"),
    "unknown method": (dict(methods='[[method]]\nname = "l0-magic"\n'), "unknown method 'l0-magic'"),
    "impossible target": (
        dict(methods='[[method]]\nname = "dense"\ntargets = [{ sparsity = 1.5 }]\n'),
        "takes targets ['none']",
    ),
    "malformed suite": (dict(extra="[budgets\n"), "not valid TOML"),
}


@pytest.mark.parametrize("case", list(BAD_SUITES))
def test_bad_suite_exits_2_and_keeps_results(stored, tmp_path, capsys, case):
    kwargs, message = BAD_SUITES[case]
    before = _snapshot(stored)
    assert _run(write_suite(tmp_path / "bad.toml", **kwargs), stored) == 2
    err = capsys.readouterr().err
    assert message in err and err.strip().count("\n") == 0
    assert _snapshot(stored) == before


def test_missing_dataset_exits_2(stored, tmp_path, capsys):
    before = _snapshot(stored)
    assert _run(write_suite(tmp_path / "s.toml", dataset="mnist"), stored, "--data-root", str(tmp_path)) == 2
    err = capsys.readouterr().err
    assert "dataset 'mnist'" in err and str(tmp_path) in err and err.strip().count("\n") == 0
    assert _snapshot(stored) == before


def test_truncated_dataset_exits_2(stored, tmp_path, capsys):
    write_mnist_like(tmp_path / "data", compress=False)
    f = tmp_path / "data/train-labels-idx1-ubyte"
    f.write_bytes(f.read_bytes()[:-3])
    before = _snapshot(stored)
    assert _run(write_suite(tmp_path / "s.toml", dataset="mnist"), stored, "--data-root", str(tmp_path / "data")) == 2
    assert "truncated" in capsys.readouterr().err
    assert _snapshot(stored) == before


def test_diverging_job_fails_alone(stored, tmp_path, capsys):
    methods = DEFAULT_METHODS + '[[method]]\nname = "tissuenet"\nlabel = "tissue-nan"\ntrain = { lr = 1e12 }\n'
    before = _snapshot(stored)
    assert _run(write_suite(tmp_path / "s.toml", methods=methods), stored) == 1
    captured = capsys.readouterr()
    assert "DivergedError" in captured.err and "1 failed" in captured.out and "2 already done" in captured.out
    for path, content in before.items():  # earlier records untouched; the table is rebuilt with one row more
        if path.parts[0] == "records":
            assert (stored / path).read_bytes() == content
    table = pd.read_parquet(stored / "table.parquet")
    assert len(table) == 3 and table.set_index("label").loc["tissue-nan", "status"] == "failed"


def test_sigkill_mid_sweep_then_resume(tmp_path):
    """Kill the sweep process hard during its second job; the rerun keeps the first and finishes."""
    methods = DEFAULT_METHODS + "".join(
        f'[[method]]\nname = "tissuenet"\nlabel = "tissue-{s}"\noptions = {{ replace = "{s}" }}\n' for s in ("1", "2,3")
    )
    suite = write_suite(tmp_path / "s.toml", models=("resnet20",), methods=methods, dense_epochs=2, scratch_epochs=2)
    results = tmp_path / "results"
    cmd = [sys.executable, "-m", "benchmarks.cli", "run", str(suite), "--results", str(results), "--device", "cpu"]
    env = os.environ | {"OMP_NUM_THREADS": "2"}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and not list((results / "records").glob("*.json")):
        time.sleep(0.05)
    assert proc.poll() is None, "the sweep finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = _records(results)
    assert len(first) == 1 and not (results / "table.parquet").exists()
    assert [r["status"] for r in first.values()] == ["ok"]

    subprocess.run(cmd, cwd=REPO, env=env, check=True, capture_output=True, timeout=600)
    after = _records(results)
    assert len(after) == 4 and all(r["status"] == "ok" for r in after.values())
    for job_id, rec in first.items():
        assert after[job_id] == rec  # the finished job was not recomputed
    table = pd.read_parquet(results / "table.parquet")
    assert len(table) == 4 and table["job_id"].is_unique
    assert len(list((results / "checkpoints" / "dense").glob("*.pt"))) == 1
