"""``tissuebench nightly``: the whole nightly job in one command (cron it; see README).

Each night measures the code it runs on. For each suite:

1. a fresh results folder per commit, ``ROOT/<suite>/<YYYYMMDD>-<sha10>`` (``-dirty-<diff8>`` for
   uncommitted code); a rerun of the same commit the same day resumes it. Dense checkpoints are
   linked in from an earlier night only when the code fingerprint (every source file that
   determines a result) is the same (``benchmarks/store/history.py``);
2. run the suite there; check it against its reference (the shipped ``results/reference/<suite>.csv``,
   or ``--references DIR``), naming the commit range where a metric moved;
3. the night's report, the history table across nights (``ROOT/<suite>/history.parquet``) and the
   trend page (``ROOT/<suite>/trend/index.html``).

Then asv: benchmark the commits not yet measured (``asv run NEW``; HEAD alone on a machine without
asv results; ``--asv same`` measures the current environment instead) and publish the asv site.
Prints one summary; exits 1 if any job failed, any check regressed, a report failed or asv failed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.gate.judge import check, moved_between
from benchmarks.gate.reference import CheckError, read_reference
from benchmarks.store.history import build_history, night_name, reuse_dense, write_night
from benchmarks.store.provenance import REPO, code_state, utc_now
from benchmarks.store.results import ResultStore
from benchmarks.suites.load import load_suite
from results import reference as shipped_reference


def asv_range(machine: str, results: Path | None = None) -> str:
    """The commits asv measures tonight: those after the newest one measured on this machine (``NEW``), or,
    on a machine with no results yet, HEAD alone: asv's NEW would otherwise walk the whole history, about
    five minutes a commit."""
    folder = (results or REPO / ".asv" / "results") / machine
    measured = any(p.name != "machine.json" for p in folder.glob("*.json")) if folder.is_dir() else False
    return "NEW" if measured else "HEAD^!"


def run_asv(mode: str, machine: str, profile: str, log) -> tuple[bool, str]:
    env = os.environ | {"TISSUEBENCH_ASV_PROFILE": profile}
    asv = [sys.executable, "-m", "asv"]
    steps = [asv + ["machine", "--yes", "--machine", machine]]
    if mode == "same":
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
        steps.append(asv + ["run", "--python=same", "--machine", machine, "--set-commit-hash", sha])
    else:
        steps.append(asv + ["run", asv_range(machine), "--machine", machine, "--skip-existing-commits"])
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
        from benchmarks.run.ray_cluster import RayExecutor

        return RayExecutor(suite, store, execution, device=device, data_root=data_root)
    from benchmarks.run.local import LocalExecutor

    return LocalExecutor(suite, store, device=device, data_root=data_root, execution=execution)


def _check(store: ResultStore, reference: Path, history, log, suite) -> tuple[str, bool]:
    """(verdict line, regressed?) of tonight's folder against the reference of its suite or ``--set`` variant
    (a quick pass is never judged against the full suite's bounds), with commit ranges."""
    if not reference.exists():
        if suite.variant:
            return (
                f"no reference for the --set variant {suite.plan_name} ({reference.name}): not judged "
                f"(the bounds of {suite.name} are for its own settings)",
                False,
            )
        return f"no reference ({reference.name})", False
    table, _ = store.consolidate()
    table = table[~table["superseded"].astype(bool)] if len(table) else table
    try:
        diffs, _, compared = check(table, reference, None)
        ref_table, _ = read_reference(reference)
    except CheckError as exc:
        log(f"  check: {exc}")
        return "check: unusable reference", True
    regressed = [d for d in diffs if d.regressed]
    for d in regressed:
        move = moved_between(history, ref_table, d) or ""
        log(f"  REGRESSED {d.job_id} {d.field}: {d.reference} -> {d.measured} (bound {d.bound}) {move}".rstrip())
    return f"check: {compared} jobs, {len(regressed)} regressions" + (" FAIL" if regressed else " ok"), bool(regressed)


def nightly_suite(name, *, root: Path, state: dict, device, data_root, execution_changes, overrides, references, log):
    """One suite's night; returns (summary line, failed?)."""
    from reports.build import build_report
    from reports.trend import write_trend

    t0 = time.perf_counter()
    suite = load_suite(name, overrides)
    suite_root = root / suite.plan_name
    started = utc_now()
    date = started[:10].replace("-", "")
    folder = suite_root / night_name(state, date)
    reused = reuse_dense(suite_root, folder, state["fingerprint"])
    if reused:
        log(f"[nightly] {suite.name}: {len(reused)} dense checkpoint(s) reused (same code fingerprint)")
    meta = state | {"suite": suite.name, "night": folder.name, "date": date}
    meta |= {"started_utc": started, "reused_dense": reused, "overrides": suite.overrides}
    store = ResultStore(folder)
    write_night(folder, meta)
    runner = make_runner(
        suite, store, suite.execution.updated(execution_changes or {}, "execution options"), device, data_root
    )
    runner.preflight(runner.plan())
    summary = runner.run()
    history = build_history(suite_root)
    reference = (Path(references) if references else shipped_reference(suite.name).parent) / f"{suite.plan_name}.csv"
    verdict, regressed = _check(store, reference, history, log, suite)
    failed = regressed or bool(summary.failed)
    report_note = ""
    try:
        manifest = build_report(store.root, store.root / "report")
        ref_table = read_reference(reference)[0] if reference.exists() else None
        from benchmarks.suites.overrides import describe

        trend = write_trend(history, ref_table, suite_root / "trend", suite.plan_name, describe(suite.overrides))
        report_note = (
            f"report {store.root / 'report' / 'index.html'} ({len(manifest['figures'])} figures); trend {trend}"
        )
    except Exception as exc:  # noqa: BLE001 - a report that fails must not hide tonight's verdict
        report_note = f"REPORT FAILED: {type(exc).__name__}: {exc}"
        failed = True
    write_night(folder, meta | {"finished_utc": utc_now(), "verdict": verdict, "failed_jobs": summary.failed})
    line = (
        f"{suite.name} @ {folder.name}: {len(summary.ok)} ok, {len(summary.failed)} failed, "
        f"{len(summary.skipped)} already done; {verdict}; {report_note}; {time.perf_counter() - t0:.0f}s"
    )
    return line, failed


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
    overrides=None,
    references=None,
) -> int:
    start, lines, failed = time.perf_counter(), [], False
    state = code_state()
    log(f"[nightly] commit {state['commit'][:10]}{' (uncommitted changes)' if state['dirty'] else ''}")
    for name in suites:
        line, suite_failed = nightly_suite(
            name,
            root=root,
            state=state,
            device=device,
            data_root=data_root,
            execution_changes=execution_changes,
            overrides=overrides,
            references=references,
            log=log,
        )
        lines.append(line)
        failed |= suite_failed
    if asv != "off":
        ok, message = run_asv(asv, machine or os.environ.get("ASV_MACHINE", "nightly"), profile, log)
        lines.append(message)
        failed |= not ok
    log("nightly summary:")
    for line in lines:
        log("  " + line)
    log(f"nightly {'FAILED' if failed else 'ok'} in {time.perf_counter() - start:.0f}s")
    return 1 if failed else 0
