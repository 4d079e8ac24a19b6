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

from benchmarks.check import compare, read_reference
from benchmarks.provenance import REPO
from benchmarks.runner import Runner
from benchmarks.store import ResultStore
from benchmarks.suite import load_suite
from reports.build import build_report


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


def nightly(suites, *, root: Path, device="auto", data_root=None, asv="new", machine=None, profile="nightly",
            log=print) -> int:  # fmt: skip
    start, lines, failed = time.perf_counter(), [], False
    for name in suites:
        t0 = time.perf_counter()
        suite = load_suite(name)
        store = ResultStore(root / suite.name)
        runner = Runner(suite, store, device=device, data_root=data_root)
        runner.preflight(runner.plan())
        summary = runner.run()
        reference = REPO / "results" / "reference" / f"{suite.name}.csv"
        verdict = "no reference"
        if reference.exists():
            ref, meta = read_reference(reference)
            diffs = compare(store.consolidate(), ref, float(meta.get("tolerance_top1", 0.5)))
            regressed = [d for d in diffs if d.regressed]
            verdict = f"check: {len(regressed)} regressions" + (" FAIL" if regressed else " ok")
            for d in regressed:
                log(f"  REGRESSED {d.job_id} {d.field}: {d.reference} -> {d.measured}")
            failed |= bool(regressed)
        manifest = build_report(store.root, store.root / "report")
        failed |= bool(summary.failed)
        lines.append(f"{suite.name}: {len(summary.ok)} ok, {len(summary.failed)} failed, {len(summary.skipped)} "
                     f"already done; {verdict}; report {store.root / 'report' / 'index.html'} "
                     f"({len(manifest['figures'])} figures); {time.perf_counter() - t0:.0f}s")  # fmt: skip
    if asv != "off":
        ok, message = run_asv(asv, machine or os.environ.get("ASV_MACHINE", "nightly"), profile, log)
        lines.append(message)
        failed |= not ok
    log("nightly summary:")
    for line in lines:
        log("  " + line)
    log(f"nightly {'FAILED' if failed else 'ok'} in {time.perf_counter() - start:.0f}s")
    return 1 if failed else 0


def run(args) -> int:
    return nightly(args.suites.split(","), root=Path(args.root), device=args.device, data_root=args.data_root,
                   asv=args.asv, machine=args.asv_machine, profile=args.asv_profile)  # fmt: skip
