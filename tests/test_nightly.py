"""``tissuebench nightly`` measures tonight's code: a copy of this repository, nights on three commits.

Night 1 makes the reference. Commit 2 changes the evaluation transform (test images negated): night 2
gets a folder of its own, retrains, and its check fails naming the commit range. Commit 3 changes
only the README: a new folder again, but the dense checkpoint is reused (same code fingerprint).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers import write_suite

REPO = Path(__file__).resolve().parents[1]
SKIP = (".git", ".venv", ".tox", ".asv", "build", "*.egg-info", "runs", "__pycache__", ".ruff_cache", "*.pt")
EVAL_LINE = "            x = (x.float() - self.mean) / self.std\n"


def _git(repo: Path, *args: str) -> str:
    env = os.environ | {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t"}
    env |= {"GIT_COMMITTER_EMAIL": "t@t"}
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True).stdout


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_each_night_measures_its_own_commit(tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(REPO, repo, ignore=shutil.ignore_patterns(*SKIP))
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "night 1")
    suite = write_suite(tmp_path / "tiny.toml", name="tiny-nightly", dense_epochs=3)
    runs, refs = tmp_path / "runs", tmp_path / "refs"
    env = os.environ | {"PYTHONPATH": str(repo)}

    def tissuebench(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "tissuebench", *args], cwd=repo, env=env, capture_output=True, text=True
        )

    def night() -> subprocess.CompletedProcess:
        return tissuebench(
            "nightly", "--suites", str(suite), "--root", str(runs), "--device", "cpu", "--asv", "off",
            "--references", str(refs),
        )  # fmt: skip

    first = night()
    assert first.returncode == 0, first.stdout + first.stderr
    assert "2 ok, 0 failed" in first.stdout and "no reference" in first.stdout
    (night1,) = (runs / "tiny-nightly").glob("*-*")
    sha1 = _git(repo, "rev-parse", "HEAD").strip()
    assert night1.name.endswith(sha1[:10]) and (night1 / "report" / "index.html").is_file()
    made = tissuebench("check", "--results", str(night1), "--update", "--against", str(refs / "tiny-nightly.csv"))
    assert made.returncode == 0, made.stderr
    assert "2 already done" in night().stdout  # the same commit again: resumed, nothing retrained

    loader = repo / "benchmarks" / "data" / "device_loader.py"
    assert EVAL_LINE in loader.read_text()
    loader.write_text(
        loader.read_text().replace(EVAL_LINE, EVAL_LINE.replace("/ self.std", "/ self.std * (1 if self.train else -1)"))
    )
    _git(repo, "commit", "-qam", "night 2: the evaluation transform negates the test images")
    sha2 = _git(repo, "rev-parse", "HEAD").strip()
    second = night()
    assert second.returncode == 1, second.stdout + second.stderr
    assert "2 ok, 0 failed, 0 already done" in second.stdout  # tonight's code retrained everything
    regressed = [line for line in second.stdout.splitlines() if "REGRESSED" in line and " top1:" in line]
    assert regressed and all(f"moved between {sha1[:10]}" in line and sha2[:10] in line for line in regressed)
    assert "reused" not in second.stdout

    (repo / "README.md").write_text((repo / "README.md").read_text() + "\nA line.\n")
    _git(repo, "commit", "-qam", "night 3: documentation only")
    third = night()
    assert "1 dense checkpoint(s) reused (same code fingerprint)" in third.stdout
    assert "[dense] training" not in third.stdout and "damaged" not in third.stdout + third.stderr  # used as is

    history = pd.read_parquet(runs / "tiny-nightly" / "history.parquet")
    assert history["commit"].nunique() == 3 and len(history) == 6
    dense = history[history["label"] == "dense"].sort_values("started_utc")
    assert dense["top1"].iloc[1] < dense["top1"].iloc[0] - 5  # the regression, visible in the history
    trend = (runs / "tiny-nightly" / "trend" / "index.html").read_text()
    assert all(sha[:7] in trend or sha[:10] in trend for sha in (sha1, sha2)) and "tissue-all" in trend
    assert len(list((runs / "tiny-nightly" / "trend").glob("*.png"))) == 2


def test_asv_measures_head_alone_on_a_machine_without_results(tmp_path):
    """asv's NEW on a machine that has measured nothing walks the whole history (minutes per commit)."""
    from tissuebench.nightly import asv_range

    assert asv_range("box", tmp_path) == "HEAD^!"
    (tmp_path / "box").mkdir()
    (tmp_path / "box" / "machine.json").write_text("{}")
    assert asv_range("box", tmp_path) == "HEAD^!"  # the machine file alone is no measurement
    (tmp_path / "box" / "6dd5a684-virtualenv-py3.11.json").write_text("{}")
    assert asv_range("box", tmp_path) == "NEW"
