"""``tissuebench run`` and ``tissuebench show``."""

from __future__ import annotations

import sys
from pathlib import Path

from benchmarks.data.registry import get_dataset
from benchmarks.methods import get_method
from benchmarks.runner import Runner
from benchmarks.store import ResultStore
from benchmarks.suite import load_suite
from tissuenet import count_macs
from tissuenet.registry import create_model_for_input

DEFAULT_RESULTS = "runs/{suite}"


def results_dir(args, suite_name: str) -> Path:
    return Path(args.results or DEFAULT_RESULTS.format(suite=suite_name))


def dry_run(runner: Runner, only) -> int:
    jobs = runner.plan(only)
    suite = runner.suite
    print(f"suite {suite.name}: {len(jobs)} jobs -> {runner.store.root}  (device {runner.device})")
    print(f"{'job_id':<64} {'phase epochs':>12} {'est. MACs':>11} {'done':>5}")
    for job in jobs:
        info = get_dataset(job.dataset)
        shape = (info.in_channels, info.input_size)

        def build(options, prefix="tissue_", job=job, info=info, shape=shape):
            name = prefix + job.model
            return create_model_for_input(name, info.num_classes, info.in_channels, info.input_size, **options), shape

        dense_macs = count_macs(build({}, "")[0], *shape)
        method = get_method(job.method)
        macs = method.estimate_macs(dense_macs, build, {"seed": job.seed} | job.options, job.target)
        epochs = job.epochs_override if job.epochs_override is not None else suite.budgets.get(f"{method.phase}_epochs")
        done = "yes" if runner.store.is_done(job.job_id) else ""
        print(f"{job.job_id:<64} {method.phase:>8} {epochs!s:>3} {macs / 1e6:>10.2f}M {done:>5}")
    print(f"budgets: {suite.budgets}; dense checkpoints are trained once per (dataset, model, seed)")
    return 0


def run(args) -> int:
    suite = load_suite(args.suite)
    store = ResultStore(results_dir(args, suite.name))
    runner = Runner(suite, store, device=args.device, data_root=args.data_root, download=args.download)
    if args.dry_run:
        return dry_run(runner, args.only)
    jobs = runner.plan(args.only)
    if not jobs:
        print(f"tissuebench run: error: no job of suite {suite.name!r} matches --only {args.only!r}", file=sys.stderr)
        return 2
    runner.preflight(jobs)
    summary = runner.run(args.only)
    print(
        f"suite {suite.name}: {len(summary.ok)} ok, {len(summary.failed)} failed, "
        f"{len(summary.skipped)} already done; {summary.wall_s:.0f}s; results in {store.root}"
    )
    if summary.failed:
        print("failed jobs: " + ", ".join(summary.failed), file=sys.stderr)
    show_table(store)
    return 1 if summary.failed else 0


# effective MACs and nonzero params: the honest cost of masked (unstructured) models too
SHOW_COLUMNS = [
    "dataset",
    "model",
    "label",
    "seed",
    "status",
    "top1",
    "acc_drop",
    "params_nonzero",
    "macs_effective",
    "params_nonzero_reduction_pct",
    "macs_effective_reduction_pct",
    "tca_1_1",
    "tsa_1_1",
    "latency_ms",
    "epochs",
]


def show_table(store: ResultStore) -> None:
    import pandas as pd

    table = store.table()
    if table.empty:
        print(f"no results in {store.root}")
        return
    cols = [c for c in SHOW_COLUMNS if c in table.columns]
    view = table[cols].copy()
    for c in ("params_nonzero", "macs_effective"):
        if c in view:
            view[c] = view[c] / 1e6
    view = view.rename(
        columns={
            "params_nonzero": "params_M",
            "macs_effective": "MACs_M",
            "params_nonzero_reduction_pct": "params_cut%",
            "macs_effective_reduction_pct": "MACs_cut%",
            "latency_ms": "lat_ms",
        }
    )
    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.float_format", "{:.3f}".format):
        print(view.to_string(index=False))


def show(args) -> int:
    root = Path(args.results)
    if not (root / "records").is_dir():
        print(f"tissuebench show: error: no results folder at {root} (expected {root}/records/)", file=sys.stderr)
        return 2
    store = ResultStore(root)
    store.consolidate()
    show_table(store)
    return 0
