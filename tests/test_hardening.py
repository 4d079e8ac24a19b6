"""Hardening, second round (issue 19) beyond the one-command fault table (``test_faults.py``):
processes racing on one folder, signals, a report killed half-way, a flipped bit in a model file,
and random valid labels through every command (Hypothesis).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.store.results import ResultStore
from tests.helpers import record, write_suite
from tissuebench.cli import main
from tissuenet.names import NAME_RE

REPO = Path(__file__).resolve().parents[1]


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "tissuebench", *args]


@pytest.mark.timeout(300)
def test_three_shows_race_over_400_damaged_records(tmp_path):
    """Each sets damaged records aside; a sibling moving a file first is not an error."""
    store = ResultStore(tmp_path)
    store.write(record("good"))
    for i in range(400):
        (tmp_path / "records" / f"bad{i:03d}.json").write_text('{"job_id": "x')
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            _cli("show", "--results", str(tmp_path)), cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(3)
    ]
    outs = [p.communicate(timeout=240) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err.decode()[-2000:] for _, err in outs]
    moved = [p for p in (tmp_path / "quarantine" / "records").glob("bad*.json")]
    assert len(moved) == 400 and not list((tmp_path / "records").glob("bad*"))
    assert all((p.parent / (p.name + ".why.txt")).read_text().strip() for p in moved)  # none without its reason


@pytest.mark.timeout(300)
def test_sigterm_is_one_line_and_exit_143(tmp_path):
    suite = write_suite(tmp_path / "s.toml", models=("resnet20",), dense_epochs=20)
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        _cli("run", str(suite), "--results", str(tmp_path / "r"), "--device", "cpu"),
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while time.time() < deadline and not list((tmp_path / "r" / "plans").glob("*.json")):
        time.sleep(0.1)
    time.sleep(1.0)  # inside the first job
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-2000:]
    assert err.strip().splitlines()[-1] == "tissuebench run: terminated (SIGTERM); rerunning resumes"
    assert "Traceback" not in err


def test_report_killed_half_way_keeps_the_previous_one(tmp_path, monkeypatch, capsys):
    from reports import build

    store = ResultStore(tmp_path / "r")
    store.write(record("j1", dataset="d", model="m"))
    assert main(["report", "--results", str(tmp_path / "r")]) == 0
    page = (tmp_path / "r" / "report" / "index.html").read_text()
    before = sorted(p.name for p in (tmp_path / "r" / "report").iterdir())
    store.write(record("j2", dataset="d2", model="m2", label="other"))

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # as far as the page is concerned, a kill after the tables were written

    monkeypatch.setattr(build, "write_index", killed)
    assert main(["report", "--results", str(tmp_path / "r")]) == 130
    assert (tmp_path / "r" / "report" / "index.html").read_text() == page
    assert sorted(p.name for p in (tmp_path / "r" / "report").iterdir()) == before  # no new tables beside it
    assert not [p for p in (tmp_path / "r").iterdir() if p.name.startswith(".report")]


def test_model_file_with_a_flipped_bit_is_refused(tmp_path):
    import torch

    from benchmarks.store.files import DamagedFileError, write_verified
    from benchmarks.store.model_files import load_model, model_bytes
    from tissuenet.registry import create_model_for_input

    model = create_model_for_input("mlp", 10, 1, 28)
    arch = {"model": "mlp", "num_classes": 10, "in_channels": 1, "input_size": 28}
    path = write_verified(tmp_path / "m.pt", model_bytes(model, arch))  # as the driver writes a job's model
    load_model(path)  # intact: loads
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))
    with pytest.raises(DamagedFileError, match="its bytes changed since written"):
        load_model(path)
    assert torch.load(path, weights_only=True)  # torch alone would have loaded the damaged weights


# -- labels travel: every label validation admits passes every consumer -------------------------------------
LABELS = st.from_regex(NAME_RE, fullmatch=True).filter(lambda s: s != "dense" and not s.startswith("dense@"))


@pytest.mark.slow
@pytest.mark.timeout(900)
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(label=LABELS)
def test_any_valid_label_goes_through_run_show_report_check(label, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("label")
    methods = f'[[method]]\nname = "dense"\n\n[[method]]\nname = "tissuenet"\nlabel = "{label}"\n'
    suite = write_suite(tmp / "s.toml", methods=methods + 'options = { replace = "all" }\n', dense_epochs=1)
    results = tmp / "r"
    assert main(["run", str(suite), "--results", str(results), "--device", "cpu"]) == 0
    assert main(["show", "--results", str(results), "--format", "csv"]) == 0
    assert main(["report", "--results", str(results)]) == 0
    page = (results / "report" / "index.html").read_text()
    assert label.replace("&", "&amp;") in page
    reference = tmp / "ref.csv"
    assert main(["check", "--results", str(results), "--update", "--against", str(reference)]) == 0
    assert main(["check", "--results", str(results), "--against", str(reference)]) == 0
    rows = [json.loads(p.read_text()) for p in (results / "records").glob("*.json")]
    assert {r["label"] for r in rows} == {"dense", label}
    assert all(len(p.name) < 200 for p in results.rglob("*"))
    shutil.rmtree(tmp)
