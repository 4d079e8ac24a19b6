"""A researcher's first hour (issue 29): the CLI answers at once, plugins fail in one line, a folder's suite is
known, Ctrl-C never crashes, output fits 100 columns. Each test failed on the main branch before it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO
from tests.helpers import write_suite
from tissuebench.cli import main

LIGHT = (["--help"], ["list"], ["show", "--results", "no-such-folder"], ["run", "--help"], ["check", "--results", "x"])
HEAVY = ("torch", "pandas", "matplotlib", "numpy")


def _loaded_by(args: list[str], modules: tuple[str, ...], cwd) -> list[str]:
    """Which of ``modules`` the command ``tissuebench ARGS`` imported (a fresh interpreter)."""
    code = (
        "import sys\nfrom tissuebench.cli import main\ncode = main(sys.argv[1:])\n"
        f"print('LOADED', *sorted(m for m in {modules!r} if m in sys.modules))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True, timeout=120,
        env=os.environ | {"PYTHONPATH": str(REPO)},
    )  # fmt: skip
    loaded = [line for line in proc.stdout.splitlines() if line.startswith("LOADED")]
    assert loaded, (args, proc.stderr[-500:])
    return loaded[0].split()[1:]


@pytest.mark.parametrize("args", LIGHT, ids=" ".join)
def test_light_commands_import_nothing_heavy(args, tmp_path):
    """`--help`, bare `list`, `show` of a missing folder: answered before torch, pandas or matplotlib load (main:
    loading plugins imported torch, 15-52 s on a busy machine)."""
    assert _loaded_by(args, HEAVY, tmp_path) == []


@pytest.mark.parametrize("args", (["list", "methods"], ["list", "models"]), ids=" ".join)
def test_listing_the_registries_imports_no_pruning_library(args, tmp_path):
    """`list methods` and `list models` load torch but not Torch-Pruning (with timm and torchvision behind it:
    5.9 s for `list methods` on main, 2.6 s without it, idle machine)."""
    assert _loaded_by(args, ("torch_pruning", "timm", "torchvision"), tmp_path) == []


def _folder_of_plugin(tmp_path, name: str, body: str | None):
    """A plugin module named ``name`` in ``tmp_path`` (``body`` None: a bare folder of that name)."""
    if body is None:
        (tmp_path / name).mkdir()
    else:
        (tmp_path / f"{name}.py").write_text(body)


@pytest.mark.parametrize(
    "body,message",
    [
        ("import torch\n", "registers no method, model or dataset"),
        (None, "is a folder, not a Python module"),
    ],
    ids=["registers nothing", "an empty folder of that name"],
)
def test_a_plugin_that_registers_nothing_is_one_line(body, message, tmp_path, monkeypatch, capsys):
    """main: the run went on and said `unknown model 'my_cnn'` (a folder imported as an empty package)."""
    name = f"plugin_29_{abs(hash(message)) % 10**6}"
    _folder_of_plugin(tmp_path, name, body)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["list", "methods", "-p", name]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err


def test_report_names_the_set_variants_of_a_missing_suite_folder(tmp_path, monkeypatch, capsys):
    """`report --suite paper-cifar10` after a --set run: the variants that exist are named (main: only 'no results
    folder at runs/paper-cifar10')."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "paper-cifar10+e810ee19" / "records").mkdir(parents=True)
    assert main(["report", "--suite", "paper-cifar10"]) == 2
    err = capsys.readouterr().err
    assert "paper-cifar10+e810ee19" in err and "--suite NAME+VARIANT" in err


@pytest.mark.parametrize(
    "args",
    [["list", "methods"], ["list", "models"], ["list", "datasets"], ["list", "suites"], ["paper-costs"],
     ["run", "smoke", "--dry-run"], ["run", "paper-cifar10", "--dry-run"], ["--help"]],
    ids=" ".join,
)  # fmt: skip
def test_output_fits_100_columns(args, tmp_path, monkeypatch, capsys):
    """main: `list methods` 226 columns, `list suites` 234, the paper suites' dry run 338."""
    monkeypatch.chdir(tmp_path)
    main(args)
    out, err = capsys.readouterr()
    widest = max((out + err).splitlines(), key=len)
    assert len(widest) <= 100, widest


def _sigint_when(proc, marker: str, timeout: float) -> bool:
    """Send SIGINT once ``marker`` appears in the process's stderr (read line by line)."""
    deadline = time.monotonic() + timeout
    for line in proc.stderr:
        if marker in line:
            proc.send_signal(signal.SIGINT)
            return True
        if time.monotonic() > deadline:
            break
    return False


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize(
    "moment,marker",
    [
        ("kernel build", "building the fused CPU kernel"),
        ("training after OpenVINO timed the dense job", "[2/"),
        ("latency timing", "latency: deploy"),
        ("ONNX export", "latency: onnxruntime"),
    ],
)
def test_ctrl_c_exits_130_at_any_moment(moment, marker, tmp_path):
    """SIGINT during the kernel's build, training, latency timing and the runtimes' ONNX export: exit 130, one
    line, the finished records intact (main: a segmentation fault, exit 139, whenever the signal landed on one of
    the worker threads OpenVINO had started while timing the dense job, as during TissueNet's first epoch)."""
    suite = write_suite(tmp_path / "s.toml", models=("resnet20",), latency=True, dense_epochs=2)
    runtimes = 'latency_batches = [1, 8]\nruntimes = ["eager", "deploy", "onnxruntime", "openvino"]'
    suite.write_text(suite.read_text().replace("latency_batches = [1, 8]", runtimes))
    env = os.environ | {"PYTHONPATH": str(REPO)}
    if moment == "kernel build":  # a cache of its own: the kernel is built in this run
        env["TORCH_EXTENSIONS_DIR"] = str(tmp_path / "extensions")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tissuebench", "run", str(suite), "--results", str(tmp_path / "r"), "--device", "cpu"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    sent = _sigint_when(proc, marker, 600)
    _, err = proc.communicate(timeout=300)
    assert sent, f"never reached {marker!r}"
    assert proc.returncode == 130, (proc.returncode, err[-2000:])
    assert err.strip().splitlines()[-1] == "tissuebench run: interrupted; rerunning resumes"
    records = tmp_path / "r" / "records"
    for path in records.glob("*.json") if records.exists() else []:
        assert json.loads(path.read_text())["status"] == "ok"


def test_openvino_leaves_no_signal_stack_behind():
    """OpenVINO installs an alternate signal stack on the thread that runs a model and may free it still
    registered; Python's handlers run on it (SA_ONSTACK), so the next Ctrl-C found no stack: SIGSEGV, exit 139.
    After timing, the thread has none."""
    import ctypes

    import torch

    pytest.importorskip("openvino")
    from benchmarks.measure import runtimes as rt
    from tissuenet import create_model

    class StackT(ctypes.Structure):
        _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]

    def alt_stack() -> StackT:
        st = StackT()
        ctypes.CDLL(None).sigaltstack(None, ctypes.byref(st))
        return st

    model, x = create_model("resnet20", in_channels=1).eval(), torch.randn(1, 1, 28, 28)
    run = rt._openvino(rt.onnx_bytes(model, x), 1)
    run(x.numpy())
    assert not alt_stack().ss_flags & rt.SS_DISABLE  # OpenVINO put one on this thread
    rt.release_alt_stack()
    assert alt_stack().ss_flags & rt.SS_DISABLE
