"""What an installed copy (pip install ., tox, asv) needs beyond the Python files, and what asv collects."""

import importlib
import inspect
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ASV_PREFIXES = ("track_", "time_", "timeraw_", "peakmem_", "mem_")
NOT_SOURCE = (".git", ".venv", ".tox", ".asv", "build", "*.egg-info", "runs", "__pycache__", ".ruff_cache", "shared")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from a clean copy (a stale build/ folder in the checkout would hide a missing file)."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "src"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(*NOT_SOURCE))
    out = tmp / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(source)],
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("tissuebench-*.whl")
    return built


@pytest.mark.timeout(300)
def test_wheel_carries_kernel_source_suites_and_data(wheel):
    """The fused CPU kernel compiles from its .cpp on first use (without it an install falls back silently);
    the published rows, presets and references are read through importlib.resources."""
    names = set(zipfile.ZipFile(wheel).namelist())
    sources = ("stacked_core.h", "stacked_cpu.cpp", "stacked_ort.cpp", "stacked_openvino.cpp")
    kernel = {f"tissuenet/kernels/{n}" for n in sources}
    assert kernel <= names, sorted(kernel - names)
    assert "reports/tissuebench.mplstyle" in names
    shipped = {f"benchmarks/suites/{p.name}" for p in (REPO / "benchmarks/suites").glob("*.toml")}
    data = {f"results/{p.relative_to(REPO / 'results')}" for p in (REPO / "results").rglob("*.*") if p.suffix != ".py"}
    assert shipped and shipped <= names
    assert {"results/paper/presets.toml", "results/paper/bunitnet_tables.csv", "results/reference/smoke.csv"} <= data
    assert data <= names, sorted(data - names)


INSTALLED_SUITE = """
name = "installed"
datasets = ["cifar10"]
models = ["resnet20_paper"]
seeds = [0]
[data]
train_limit = 16
test_limit = 16
[budgets]
dense_epochs = 1
finetune_epochs = 1
[train]
batch_size = 8
[measure]
latency = false
[[method]]
name = "dense"
[[method]]
name = "tissuenet"
label = "tissuenet-ours"
options = { preset = "Ours" }
"""


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_installed_copy_works_from_any_directory(wheel, tmp_path):
    """`pip install .` (not editable) into a fresh venv: the paper's rows, presets and the default reference
    are found from another working directory (they used to be read relative to the source tree)."""
    from tests.layouts import write_cifar

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    site = next(venv.glob("lib/python*/site-packages"))
    deps = next(Path(sys.prefix).glob("lib/python*/site-packages"))  # torch & co. from the test environment
    (site / "deps.pth").write_text(f"{deps}\n")
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)]
    subprocess.run(pip, check=True, capture_output=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TISSUEBENCH_DATA")}

    def tb(*args, ok=(0,)):
        proc = subprocess.run(
            [str(venv / "bin" / "tissuebench"), *args], cwd=elsewhere, env=env, capture_output=True, text=True
        )
        assert proc.returncode in ok, proc.stdout[-2000:] + proc.stderr[-2000:]
        return proc.stdout + proc.stderr

    where = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import results, tissuebench; print(tissuebench.__file__, results.path())",
        ],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
    ).stdout
    assert str(REPO) not in where and str(site) in where  # the installed copy, not the checkout
    assert "cifar10-vgg16-ours" in tb("paper-costs")
    write_cifar(tmp_path / "data", 10, n_train=50, n_test=20)
    (elsewhere / "suite.toml").write_text(INSTALLED_SUITE)
    tb("run", "suite.toml", "--data-root", str(tmp_path / "data"), "--results", "r", "--device", "cpu")
    tb("report", "--results", "r")
    assert "published" in (elsewhere / "r" / "report" / "index.html").read_text()
    # the folder's own suite has no shipped reference: the command names where it looked, inside the install
    out = tb("check", "--results", "r", ok=(2,))
    assert "no reference for suite installed" in out and str(site / "results" / "reference") in out
    smoke = site / "results" / "reference" / "smoke.csv"  # the shipped one is there, and reads
    out = tb("check", "--results", "r", "--against", str(smoke), ok=(1,))
    assert "check: 5 reference jobs" in out


@pytest.mark.parametrize("module", sorted(p.stem for p in (REPO / "benchmarks/asv_bench").glob("*.py")))
def test_asv_collects_only_benchmarks(module):
    """asv runs every module-level function named like a benchmark: a helper called `track_*` fails the run."""
    mod = importlib.import_module(f"benchmarks.asv_bench.{module}")
    for name, obj in vars(mod).items():
        if name.startswith(ASV_PREFIXES) and inspect.isfunction(obj):
            required = [p for p in inspect.signature(obj).parameters.values() if p.default is inspect.Parameter.empty]
            assert not required, f"{module}.{name} looks like an asv benchmark but needs {[p.name for p in required]}"
