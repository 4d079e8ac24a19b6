"""``--executor ray`` on a local Ray instance with the machine's 2 CPUs: the same results as a local run,
retried workers, a killed driver that resumes, failures that stay local to their job.

Each test drives ``tissuebench run`` in a subprocess (its own Ray instance, stopped with it).
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.helpers import DEFAULT_METHODS, write_suite

pytest.importorskip("ray")
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
ENV = os.environ | {"OMP_NUM_THREADS": "1", "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
VOLATILE = ("epoch_s", "img_per_s")


def _cmd(suite: Path, results: Path, *extra) -> list[str]:
    return [
        sys.executable,
        "-m",
        "tissuebench",
        "run",
        str(suite),
        "--results",
        str(results),
        "--device",
        "cpu",
        *extra,
    ]


def _records(results: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in (results / "records").glob("*.json")}


def _model_hashes(results: Path) -> dict[str, str]:
    from benchmarks.run.checkpoints import weights_sha256
    from benchmarks.store.files import load_torch

    return {p.stem: weights_sha256(load_torch(p)["state_dict"]) for p in (results / "models").glob("*.pt")}


METHODS = DEFAULT_METHODS + '[[method]]\nname = "prune_l1"\ntargets = [{ macs_reduction = 0.5 }]\n'


def test_ray_matches_local(tmp_path):
    suite = write_suite(tmp_path / "s.toml", methods=METHODS)
    local = subprocess.run(
        _cmd(suite, tmp_path / "local"), cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300
    )
    assert local.returncode == 0, local.stderr[-2000:]
    ray = subprocess.run(
        _cmd(suite, tmp_path / "ray", "--executor", "ray", "--cpus-per-job", "1"),
        cwd=REPO,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ray.returncode == 0, ray.stderr[-2000:]
    a, b = _records(tmp_path / "local"), _records(tmp_path / "ray")
    assert sorted(a) == sorted(b) and len(a) == 3
    for job_id in a:
        assert b[job_id]["executor"] == "ray" and a[job_id]["executor"] == "local"
        for key in (
            "status",
            "top1",
            "top5",
            "test_loss",
            "params",
            "macs",
            "macs_effective",
            "dense_weights_sha256",
            "tca_1_1",
        ):
            assert a[job_id][key] == b[job_id][key], (job_id, key)
        strip = [{k: v for k, v in row.items() if k not in VOLATILE} for row in a[job_id]["history"]]
        assert strip == [{k: v for k, v in row.items() if k not in VOLATILE} for row in b[job_id]["history"]]
        assert b[job_id]["host"] and b[job_id]["device_name"]
    assert _model_hashes(tmp_path / "local") == _model_hashes(tmp_path / "ray")


def _wait_for(predicate, timeout=240):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_a_killed_worker_is_retried(tmp_path):
    methods = DEFAULT_METHODS.replace('replace = "all"', 'replace = "1"')
    suite = write_suite(tmp_path / "s.toml", models=("resnet20",), methods=methods, dense_epochs=2)
    results = tmp_path / "r"
    proc = subprocess.Popen(
        _cmd(suite, results, "--executor", "ray", "--cpus-per-job", "1", "--max-retries", "2"),
        cwd=REPO,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        # the dense task trains first: kill its worker in the middle of training
        assert _wait_for(
            lambda: subprocess.run(["pgrep", "-f", "ray::dense_task"], capture_output=True).returncode == 0
        )
        time.sleep(1.0)
        killed = subprocess.run(["pkill", "-9", "-f", "ray::dense_task"], capture_output=True)
        assert killed.returncode == 0
        out, err = proc.communicate(timeout=500)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, err[-3000:]
    records = _records(results)
    assert len(records) == 2 and all(r["status"] == "ok" for r in records.values())


def test_driver_killed_then_rerun_completes_only_the_rest(tmp_path):
    methods = DEFAULT_METHODS + "".join(
        f'[[method]]\nname = "tissuenet"\nlabel = "tissue-{s}"\noptions = {{ replace = "{s}" }}\n' for s in ("1", "2")
    )
    suite = write_suite(tmp_path / "s.toml", models=("resnet20",), methods=methods, dense_epochs=2)
    results = tmp_path / "r"
    cmd = _cmd(suite, results, "--executor", "ray", "--cpus-per-job", "1", "--max-concurrent", "1")
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        assert _wait_for(lambda: len(list((results / "records").glob("*.json"))) >= 1)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and the Ray instance it started
        proc.wait()
    first = _records(results)
    assert 1 <= len(first) < 4
    rerun = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=500)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"{len(first)} already done" in rerun.stdout
    after = _records(results)
    assert len(after) == 4 and all(r["status"] == "ok" for r in after.values())
    for job_id, rec in first.items():
        assert after[job_id] == rec  # finished jobs were not redone


def test_a_raising_job_leaves_the_others_ok(tmp_path):
    methods = (
        DEFAULT_METHODS + '[[method]]\nname = "tissuenet"\nlabel = "tissue-nan"\noptions = { replace = "1" }\n'
        "train = { lr = 1e12 }\n"
    )
    suite = write_suite(tmp_path / "s.toml", methods=methods)
    proc = subprocess.run(
        _cmd(suite, tmp_path / "r", "--executor", "ray", "--cpus-per-job", "1"),
        cwd=REPO,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1
    records = {r["label"]: r for r in _records(tmp_path / "r").values()}
    assert records["tissue-nan"]["status"] == "failed" and "DivergedError" in records["tissue-nan"]["error"]
    assert records["dense"]["status"] == records["tissue-all"]["status"] == "ok"


def test_local_runs_never_import_ray(tmp_path):
    code = (
        "import sys; from tissuebench.cli import main; "
        f"rc = main(['run', '{write_suite(tmp_path / 's.toml')}', '--results', '{tmp_path / 'r'}', '--device', "
        "'cpu']); print('ray' in sys.modules, rc)"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.stdout.strip().splitlines()[-1] == "False 0", proc.stderr[-2000:]
