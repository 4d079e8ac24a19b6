"""Docs that are tested: the README's generated tables are current, and docs/plugins.md's code blocks, laid out as
a reader would (each block in the file its first line names), are a working plugin, its test and its suite."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

FENCE = re.compile(r"```(\w+)\n(.*?)```", re.S)


def blocks(page: Path) -> list[tuple[str, str]]:
    """(language, code) of every fenced block of a Markdown page."""
    return [(lang, code) for lang, code in FENCE.findall(page.read_text())]


def lay_out(page: Path, folder: Path) -> dict[str, Path]:
    """Write every block whose first line names a file (``# mylab_prune.py``) into that file, in page order."""
    files: dict[str, list[str]] = {}
    for _, code in blocks(page):
        first, _, rest = code.partition("\n")
        name = first.removeprefix("#").strip()
        if first.startswith("#") and re.fullmatch(r"[\w.-]+\.(py|toml)", name):
            files.setdefault(name, []).append(rest)
    out = {}
    for name, parts in files.items():
        out[name] = folder / name
        out[name].write_text("\n\n\n".join(p.strip("\n") for p in parts) + "\n")  # two blank lines apart
    return out


def _ruff(*args: str) -> subprocess.CompletedProcess:
    ruff = Path(sys.executable).with_name("ruff")
    return subprocess.run([str(ruff), *args], cwd=REPO, capture_output=True, text=True, timeout=60)


def test_plugin_page_blocks_are_formatted_and_lint_clean(tmp_path):
    """What a reader copies is held to the code's own lint and format rules (main: `ruff format` failed)."""
    files = lay_out(REPO / "docs" / "plugins.md", tmp_path)
    assert {"mylab_prune.py", "test_mylab_prune.py", "mylab_suite.toml"} <= set(files)
    py = [str(p) for p in files.values() if p.suffix == ".py"]
    for check in (("format", "--check", *py), ("check", *py)):
        proc = _ruff(*check)
        assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_plugin_page_is_a_working_plugin(tmp_path):
    """The page's plugin passes its own test, and its suite runs with `-p` from the plugin's folder (main: the
    method example used an undefined ACTIVATION, and the test never imported the plugin)."""
    files = lay_out(REPO / "docs" / "plugins.md", tmp_path)
    env = {"PYTHONPATH": str(REPO)} | {k: v for k, v in __import__("os").environ.items() if k != "PYTHONPATH"}
    test = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(files["test_mylab_prune.py"])],
        cwd=tmp_path, capture_output=True, text=True, timeout=500, env=env,
    )  # fmt: skip
    assert test.returncode == 0, test.stdout[-3000:] + test.stderr[-3000:]
    run = subprocess.run(
        [sys.executable, "-m", "tissuebench", "run", "mylab_suite.toml", "-p", "mylab_prune", "--results", "r",
         "--device", "cpu", "--data-root", "."],
        cwd=tmp_path, capture_output=True, text=True, timeout=500, env=env,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    assert "prune_activation@macs50" in run.stdout


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_readme_tables_are_generated_from_the_code():
    """The suites' job counts and compute, and the paper table, come from the code (main: 39 jobs written where
    51 were planned, 1,885 T where 3,413 T was printed)."""
    sys.path.insert(0, str(REPO / "scripts"))
    import readme_tables

    assert readme_tables.main(["--check"]) == 0, "README.md is out of date: run python scripts/readme_tables.py"
