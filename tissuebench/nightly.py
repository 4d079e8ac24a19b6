"""``tissuebench nightly``: the whole nightly job in one command (cron it; see README).

For each suite: run it (resumable), consolidate, check against ``results/reference/<suite>.csv``
when one exists, and regenerate its report. Then asv: benchmark the commits not yet measured
(``asv run NEW``; ``--asv same`` measures the current environment instead) and publish the asv
site. Prints one summary; exits 1 if any job failed, any check regressed or asv failed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.check import check
from benchmarks.provenance import REPO
from benchmarks.store import ResultStore
from benchmarks.suite import load_suite
from reports.build import build_report
from results import reference as shipped_reference


def run_asv(mode: str, machine: str, profile: str, log) -> tuple[bool, str]:
    env = os.environ | {"TISSUEBENCH_ASV_PROFILE": profile}
    asv = [sys.executable, "-m", "asv"]
    steps = [asv + ["machine", "--yes", "--machine", machine]]
    if mode == "same":
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
        steps.append(asv + ["run", "--python=same", "--machine", machine, "--set-commit-hash", sha])
    else:
        steps.append(asv + ["run", "NEW", "--machine", machine, "--skip-existing-commits"])
    steps.append(asv + ["publish"])
    for cmd in steps:
        log("$ " + " ".join(cmd[2:]))
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            return False, f"asv {cmd[3]} failed (exit {proc.returncode}): {proc.stderr.strip()[-400:]}"
    return True, f"asv site: {REPO / '.asv' / 'html' / 'index.html'}"


def make_runner(suite, store, execution, device, data_root):
    """The local runner, or the Ray runner when ``execution.executor == "ray"``."""
    if execution.executor == "ray":
        from benchmarks.executors.ray_executor import RayRunner

        return RayRunner(suite, store, execution, device=device, data_root=data_root)
    from benchmarks.runner import Runner

    return Runner(suite, store, device=device, data_root=data_root)


def nightly(
    suites,
    *,
    root: Path,
    device="auto",
    data_root=None,
    asv="new",
    machine=None,
    profile="nightly",
    log=print,
    execution_changes=None,
) -> int:
    start, lines, failed = time.perf_counter(), [], False
    for name in suites:
        t0 = time.perf_counter()
        suite = load_suite(name)
        store = ResultStore(root / suite.name)
        runner = make_runner(
            suite, store, suite.execution.updated(execution_changes or {}, "execution options"), device, data_root
        )
        runner.preflight(runner.plan())
        summary = runner.run()
        reference = shipped_reference(suite.name)
        verdict = "no reference"
        if reference.exists():
            table, _ = store.consolidate()
            diffs, _, _ = check(table[~table["superseded"].astype(bool)], reference, None)
            regressed = [d for d in diffs if d.regressed]
            verdict = f"check: {len(regressed)} regressions" + (" FAIL" if regressed else " ok")
            for d in regressed:
                log(f"  REGRESSED {d.job_id} {d.field}: {d.reference} -> {d.measured}")
            failed |= bool(regressed)
        manifest = build_report(store.root, store.root / "report")
        failed |= bool(summary.failed)
        lines.append(
            f"{suite.name}: {len(summary.ok)} ok, {len(summary.failed)} failed, {len(summary.skipped)} "
            f"already done; {verdict}; report {store.root / 'report' / 'index.html'} "
            f"({len(manifest['figures'])} figures); {time.perf_counter() - t0:.0f}s"
        )
    if asv != "off":
        ok, message = run_asv(asv, machine or os.environ.get("ASV_MACHINE", "nightly"), profile, log)
        lines.append(message)
        failed |= not ok
    log("nightly summary:")
    for line in lines:
        log("  " + line)
    log(f"nightly {'FAILED' if failed else 'ok'} in {time.perf_counter() - start:.0f}s")
    return 1 if failed else 0
