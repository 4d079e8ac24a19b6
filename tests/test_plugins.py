"""Plugins (docs/plugins.md): discovery by entry point, by a suite's ``plugins`` and by ``-p``; origins in
the job ids, the records and ``list``; clear errors; Ray workers import them too; the worked example
(``examples/plugin``) installed and run next to ``prune_l1``, locally and under Ray, into a report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "plugin"

MY_METHOD = '''
from tissuebench import BaseMethod, Prepared, register_method


@register_method
class KeepDense(BaseMethod):
    """Fine-tunes the dense checkpoint as it is (a method a plugin adds)."""

    name = "{name}"

    def prepare(self, ctx):
        return Prepared(ctx.dense_model(), "finetune", ctx.epochs("finetune"))
'''

SUITE = """
name = "plugin-suite"
{plugins}
datasets = ["synthetic"]
models = ["mlp"]
seeds = [0]
[budgets]
dense_epochs = 1
finetune_epochs = 1
[train]
batch_size = 64
lr = 0.05
[measure]
latency = false
[[method]]
name = "dense"
[[method]]
name = "{method}"
"""


def _cli(args, cwd, env=None, timeout=600) -> subprocess.CompletedProcess:
    env = (env or os.environ) | {"OMP_NUM_THREADS": "1", "RAY_AUTH_MODE": "disabled"}
    return subprocess.run(
        [sys.executable, "-m", "tissuebench", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def _project(tmp_path: Path, name="keep_dense", module="mylab_prune", plugins_line="") -> Path:
    (tmp_path / f"{module}.py").write_text(MY_METHOD.format(name=name))
    (tmp_path / "suite.toml").write_text(SUITE.format(plugins=plugins_line, method=name))
    return tmp_path


@pytest.mark.timeout(300)
def test_unpackaged_module_by_p_and_by_the_suite(tmp_path):
    """`-p module` from the working directory; the same through `plugins = [...]`; the origin (file hash)
    enters the job id and the record; editing the plugin's file makes new jobs."""
    project = _project(tmp_path)
    env = os.environ | {"PYTHONPATH": str(REPO)}
    missing = _cli(["run", "suite.toml", "--results", "r", "--device", "cpu"], project, env)
    assert missing.returncode == 2 and "unknown method 'keep_dense'" in missing.stderr
    ran = _cli(["run", "suite.toml", "-p", "mylab_prune", "--results", "r", "--device", "cpu"], project, env)
    assert ran.returncode == 0, ran.stderr[-2000:]
    record = next(json.loads(p.read_text()) for p in (project / "r/records").glob("*keep_dense*.json"))
    assert record["plugins"]["method"]["module"] == "mylab_prune" and len(record["plugins"]["method"]["sha256"]) == 64
    listed = _cli(["list", "methods", "keep*", "-p", "mylab_prune"], project, env)
    assert "[plugin mylab_prune (file mylab_prune.py, sha256 " in listed.stdout

    (project / "suite.toml").write_text(SUITE.format(plugins='plugins = ["mylab_prune"]', method="keep_dense"))
    again = _cli(["run", "suite.toml", "--results", "r", "--device", "cpu"], project, env)
    assert again.returncode == 0 and "0 ok, 0 failed, 2 already done" in again.stdout  # the same jobs
    (project / "mylab_prune.py").write_text(MY_METHOD.format(name="keep_dense") + "\n# edited\n")
    edited = _cli(["run", "suite.toml", "--results", "r", "--device", "cpu"], project, env)
    assert "1 ok, 0 failed, 1 already done" in edited.stdout  # the plugin changed: its job is new; dense is not


@pytest.mark.timeout(120)
def test_a_plugin_that_fails_to_import_is_one_line(tmp_path):
    (tmp_path / "broken.py").write_text("import nothing_by_this_name\n")
    out = _cli(["list", "methods", "-p", "broken"], tmp_path, os.environ | {"PYTHONPATH": str(REPO)})
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert "plugin 'broken' failed to import: ModuleNotFoundError" in out.stderr
    out = _cli(["list", "methods", "-p", "no_such_plugin"], tmp_path, os.environ | {"PYTHONPATH": str(REPO)})
    assert out.returncode == 2 and "plugin 'no_such_plugin' cannot be found" in out.stderr


@pytest.mark.timeout(120)
def test_a_name_taken_twice_names_both_origins(tmp_path):
    _project(tmp_path, name="prune_l1", module="clash")
    env = os.environ | {"PYTHONPATH": str(REPO)}
    out = _cli(["list", "methods", "-p", "clash"], tmp_path, env)
    assert out.returncode == 2
    assert "method 'prune_l1' is registered by built-in and again by plugin clash (file clash.py" in out.stderr
    _project(tmp_path, name="twice", module="first")
    _project(tmp_path, name="twice", module="second")
    out = _cli(["list", "methods", "-p", "first", "-p", "second"], tmp_path, env)
    assert "method 'twice' is registered by plugin first (file first.py" in out.stderr
    assert "again by plugin second (file second.py" in out.stderr


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The worked example installed (not editable) into a folder of its own, on PYTHONPATH."""
    site = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(site)]
        + [str(EXAMPLE)],
        check=True,
        capture_output=True,
    )
    return site


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("executor", ["local", "ray"])
def test_the_example_plugin_runs_next_to_prune_l1(installed, executor, tmp_path):
    if executor == "ray":
        pytest.importorskip("ray")
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(installed), str(REPO)])}
    listed = _cli(["list", "methods", "prune_a*"], tmp_path, env)
    assert "[plugin tissuebench_example.plugin (tissuebench-example-plugin 0.1.0)]" in listed.stdout
    extra = ["--executor", "ray", "--cpus-per-job", "1"] if executor == "ray" else []
    ran = _cli(["run", str(EXAMPLE / "suite.toml"), "--results", "r", "--device", "cpu", *extra], tmp_path, env, 900)
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-3000:]
    records = {
        json.loads(p.read_text())["label"]: json.loads(p.read_text()) for p in (tmp_path / "r/records").iterdir()
    }
    assert set(records) == {"dense", "prune_l1@macs50", "prune_activation@macs50"}
    plugin_row = records["prune_activation@macs50"]
    assert plugin_row["status"] == "ok" and abs(plugin_row["method_info"]["achieved"] - 0.5) <= 0.03
    assert plugin_row["plugins"]["method"]["distribution"] == "tissuebench-example-plugin"
    assert plugin_row["plugins"]["model"]["module"] == "tissuebench_example.plugin"  # tiny_cnn comes from it too
    report = _cli(["report", "--results", "r"], tmp_path, env)
    assert report.returncode == 0, report.stderr
    page = (tmp_path / "r" / "report" / "index.html").read_text()
    assert "prune_activation" in page and "prune_l1" in page


@pytest.mark.timeout(600)
def test_the_example_plugins_own_conformance_test(installed):
    """What a plugin author runs: their test, calling tissuebench.testing.check_method."""
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(installed), str(REPO)]), "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLE / "tests")],
        cwd=EXAMPLE,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-3000:]
