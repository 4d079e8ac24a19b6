"""The runner end to end on tiny synthetic suites: records, table, determinism, failures, kills, two runs."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import REPO
from tests.helpers import DEFAULT_METHODS, write_suite
from tissuebench.cli import main


def _run(suite: Path, results: Path, *extra) -> int:
    return main(["run", str(suite), "--results", str(results), "--device", "cpu", *extra])


def _records(results: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in (results / "records").glob("*.json")}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One finished run of the tiny suite (dense + TissueNet on synthetic data, latency measured)."""
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
    assert dense["tca_1_1"] == pytest.approx(1.0) and dense["params_nonzero_reduction_pct"] == 0
    assert tissue["params"] < dense["params"] and tissue["base_params"] == dense["params"]
    assert tissue["flops"] == 2 * tissue["macs"]
    assert tissue["latency_ms"] > 0 and tissue["latency_batch"] == 1 and tissue["latency_device"] == "cpu"
    assert tissue["latency_samples"] >= 10 and "BN folded" in tissue["latency_mode"]
    assert json.loads(tissue["tissue_options"])["replace"] == "all"
    assert tissue["reference_job"] == dense["job_id"] == tissue["dense_checkpoint"]
    for col in ("git_sha", "versions", "device_name", "started_utc", "config_hash", "command", "executor"):
        assert col in table.columns
    history = pd.read_parquet(results / "history.parquet")
    assert set(history["job_id"]) == set(records) and {"train_loss", "test_loss", "test_top1"} <= set(history)


def test_budget_columns(finished):
    _, results = finished
    table = pd.read_parquet(results / "table.parquet").set_index("method")
    for method in ("dense", "tissuenet"):
        row = table.loc[method]
        assert row["epochs_total"] == 2  # equal budgets: both trained 2 epochs
        assert row["train_compute"] == 2 * row["train_images"] * 3 * row["macs"]


def test_dense_checkpoint_trained_once_and_hashed_in_every_row(finished):
    _, results = finished
    checkpoints = list((results / "checkpoints" / "dense").glob("*.pt"))
    records = _records(results)
    dense_id = next(k for k, r in records.items() if r["method"] == "dense")
    assert [p.stem for p in checkpoints] == [dense_id]  # the dense job and its checkpoint share one id
    shas = {r["dense_weights_sha256"] for r in records.values()}
    assert len(shas) == 1 and len(shas.pop()) == 64


def test_rerun_skips_finished_jobs(finished, capsys):
    suite, results = finished
    before = _records(results)
    assert _run(suite, results) == 0
    assert "0 ok, 0 failed, 2 already done" in capsys.readouterr().out
    assert _records(results) == before


@pytest.mark.slow
def test_same_seed_same_metrics(finished, tmp_path):
    suite, first = finished
    assert _run(suite, tmp_path / "again") == 0
    a, b = _records(first), _records(tmp_path / "again")
    for job_id in a:
        for key in ("top1", "top5", "test_loss", "params", "macs", "history", "dense_weights_sha256"):
            if key == "history":
                strip = [{k: v for k, v in r.items() if k not in ("epoch_s", "img_per_s")} for r in a[job_id][key]]
                assert strip == [
                    {k: v for k, v in r.items() if k not in ("epoch_s", "img_per_s")} for r in b[job_id][key]
                ]
            else:
                assert a[job_id][key] == b[job_id][key], (job_id, key)


def test_dry_run_json_has_the_plan_and_trains_nothing(tmp_path, capsys):
    suite = write_suite(tmp_path / "s.toml", scratch_epochs=3)
    assert _run(suite, tmp_path / "r", "--dry-run", "--json") == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    keys = {"job_id", "dataset", "model", "method", "label", "target", "seed", "phase", "epochs", "macs", "params"}
    keys |= {"train_macs", "extra_epochs_at_dense_cost", "train_compute", "phases"}  # the compute and its terms
    assert all(set(r) == keys for r in rows)
    by_label = {r["label"]: r for r in rows}
    assert set(by_label) == {"dense", "dense@e3", "tissue-all"}
    assert by_label["tissue-all"]["epochs"] == by_label["dense@e3"]["epochs"] == 3 and by_label["dense"]["epochs"] == 2
    assert by_label["dense"]["params"] == 784 * 500 + 500 + 500 * 300 + 300 + 300 * 10 + 10
    assert not (tmp_path / "r" / "records").exists()


def test_dry_run_text_ends_with_total_compute(tmp_path, capsys):
    suite = write_suite(tmp_path / "s.toml")
    assert _run(suite, tmp_path / "r", "--dry-run") == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("total training compute:") and "T MACs" in last


def test_dry_run_without_the_data_plans_from_the_registry(tmp_path, capsys):
    """A user estimates compute before downloading; a real run still needs the data (exit 2)."""
    suite = write_suite(tmp_path / "s.toml", dataset="mnist")
    assert _run(suite, tmp_path / "r", "--dry-run", "--data-root", str(tmp_path)) == 0
    captured = capsys.readouterr()
    assert "planning without the data (mnist not found" in captured.err and "mnist 60,000" in captured.err
    assert "total training compute" in captured.out
    assert _run(suite, tmp_path / "r", "--data-root", str(tmp_path)) == 2
    assert "dataset 'mnist': not found in" in capsys.readouterr().err


def test_changed_suite_supersedes_older_records(tmp_path, capsys):
    results = tmp_path / "r"
    assert _run(write_suite(tmp_path / "a.toml", methods='[[method]]\nname = "dense"\n'), results) == 0
    assert _run(write_suite(tmp_path / "b.toml", lr=0.07, methods='[[method]]\nname = "dense"\n'), results) == 0
    capsys.readouterr()
    assert main(["show", "--results", str(results), "--format", "json"]) == 0
    shown = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(shown) == 1  # the older dense row is superseded, not averaged in
    assert main(["show", "--results", str(results), "--format", "json", "--include-superseded"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2


def test_diverging_job_fails_alone(finished, tmp_path, capsys):
    import shutil

    _, results = finished
    shutil.copytree(results, tmp_path / "r")
    methods = (
        DEFAULT_METHODS
        + '[[method]]\nname = "tissuenet"\nlabel = "tissue-nan"\noptions = { replace = "1" }\ntrain = { lr = 1e12 }\n'
    )
    before = {p: p.read_bytes() for p in (tmp_path / "r/records").glob("*.json")}
    assert _run(write_suite(tmp_path / "s.toml", methods=methods, latency=True), tmp_path / "r") == 1
    captured = capsys.readouterr()
    assert "DivergedError" in captured.err and "1 failed" in captured.out and "2 already done" in captured.out
    for path, content in before.items():  # earlier records untouched; the table is rebuilt with one row more
        assert path.read_bytes() == content
    table = pd.read_parquet(tmp_path / "r/table.parquet")
    assert len(table) == 3 and table.set_index("label").loc["tissue-nan", "status"] == "failed"


def _cli(*args):
    return [sys.executable, "-m", "tissuebench", *args]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_sigkill_mid_sweep_then_resume(tmp_path):
    """Kill the sweep process hard during its second job; the rerun keeps the first and finishes."""
    methods = DEFAULT_METHODS + "".join(
        f'[[method]]\nname = "tissuenet"\nlabel = "tissue-{s.replace(",", "-")}"\noptions = {{ replace = "{s}" }}\n'
        for s in ("1", "2,3")
    )
    suite = write_suite(tmp_path / "s.toml", models=("resnet20",), methods=methods, dense_epochs=2)
    results = tmp_path / "results"
    cmd = _cli("run", str(suite), "--results", str(results), "--device", "cpu")
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


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_two_runs_on_one_folder_train_each_job_once(tmp_path):
    methods = DEFAULT_METHODS + '[[method]]\nname = "tissuenet"\nlabel = "tissue-1"\noptions = { replace = "1" }\n'
    suite = write_suite(tmp_path / "s.toml", models=("resnet20",), methods=methods, dense_epochs=1)
    results = tmp_path / "results"
    cmd = _cli("run", str(suite), "--results", str(results), "--device", "cpu")
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    trained = sum(err.count("[dense] training") for _, err in outs)
    started = sum(err.count("] synthetic.resnet20.tissue-") for _, err in outs)
    assert trained == 1  # the dense checkpoint once
    assert started == 2  # each TissueNet job started once, by one of the two processes
    assert len(_records(results)) == 3


def test_bf16_training_evaluates_like_everything_else(tmp_path):
    """Evaluation is fp32 for every row: with bf16 training the dense row has no drop against itself."""
    suite = write_suite(tmp_path / "s.toml", extra="", methods='[[method]]\nname = "dense"\n')
    suite.write_text(suite.read_text().replace("warmup_epochs = 0", "warmup_epochs = 0\nbf16 = true"))
    assert _run(suite, tmp_path / "r") == 0
    (rec,) = _records(tmp_path / "r").values()
    assert rec["acc_drop"] == 0 and rec["top1"] == rec["base_top1"] and rec["tca_1_1"] == 1
