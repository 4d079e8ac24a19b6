"""What an installed copy (pip install ., tox, asv) needs beyond the Python files, and what asv collects."""

import importlib
import inspect
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ASV_PREFIXES = ("track_", "time_", "timeraw_", "peakmem_", "mem_")
NOT_SOURCE = (".git", ".venv", ".tox", ".asv", "build", "*.egg-info", "runs", "__pycache__", ".ruff_cache", "shared")


@pytest.mark.timeout(300)
def test_wheel_carries_kernel_source_and_suites(tmp_path):
    """The fused CPU kernel compiles from its .cpp on first use; an install without it falls back silently."""
    source = tmp_path / "src"  # a clean copy: a stale build/ folder in the checkout would hide a missing file
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(*NOT_SOURCE))
    out = tmp_path / "wheel"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(source)],
        check=True,
        capture_output=True,
    )
    (wheel,) = out.glob("tissuebench-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "tissuenet/kernels/stacked_cpu.cpp" in names
    shipped = {f"benchmarks/suites/{p.name}" for p in (REPO / "benchmarks/suites").glob("*.toml")}
    assert shipped and shipped <= names


@pytest.mark.parametrize("module", sorted(p.stem for p in (REPO / "benchmarks/asv_bench").glob("*.py")))
def test_asv_collects_only_benchmarks(module):
    """asv runs every module-level function named like a benchmark: a helper called `track_*` fails the run."""
    mod = importlib.import_module(f"benchmarks.asv_bench.{module}")
    for name, obj in vars(mod).items():
        if name.startswith(ASV_PREFIXES) and inspect.isfunction(obj):
            required = [p for p in inspect.signature(obj).parameters.values() if p.default is inspect.Parameter.empty]
            assert not required, f"{module}.{name} looks like an asv benchmark but needs {[p.name for p in required]}"
