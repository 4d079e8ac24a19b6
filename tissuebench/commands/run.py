"""``tissuebench run``: run a suite (resumable), or print its plan with ``--dry-run``."""

from __future__ import annotations

import json
import sys

from tissuebench.options import (
    add_device,
    add_plugins,
    add_section_options,
    add_suite_overrides,
    load_plugins,
    results_dir,
    section_options,
    suite_overrides,
)
from tissuebench.terminal import clip

NAME = "run"
HELP = "run a suite: train and measure every job (finished jobs are skipped; a killed run resumes)"


def add_arguments(p) -> None:
    add_plugins(p)
    p.add_argument("suite", help="a shipped suite (see `tissuebench list suites`) or a .toml file")
    p.add_argument("--results", default=None, metavar="DIR", help="results folder (default: runs/SUITE)")
    p.add_argument("--data-root", default=None, help="where datasets live (else $TISSUEBENCH_DATA, system paths)")
    p.add_argument("--download", action="store_true", help="allow torchvision downloads of missing datasets")
    add_device(p)
    p.add_argument("--only", default=None, metavar="PATTERN", help="glob over job ids or labels")
    add_suite_overrides(p)
    p.add_argument("--dry-run", action="store_true", help="print the plan (phases, epochs, cost, compute) and exit")
    p.add_argument("--json", action="store_true", help="with --dry-run: one JSON object per job")
    g = p.add_argument_group("execution (default: the suite's [execution]: local, one job at a time)")
    from benchmarks.suites.settings import ExecutionConfig

    add_section_options(g, ExecutionConfig)


def execution(args, suite):
    """The suite's [execution] section with the command line's options over it (validated)."""
    from benchmarks.suites.settings import ExecutionConfig

    changes = {k: v for k, v in section_options(args, ExecutionConfig).items() if v is not None}
    return suite.execution.updated(changes, "execution options")


def dry_run(runner, only, as_json: bool) -> int:
    from benchmarks.suites.planning import plan, total_compute

    jobs = runner.plan(only)
    train_images = _sizes_for_plan(runner, jobs)
    planned = plan(runner.suite, jobs, runner.store.is_done)
    if as_json:
        for p in planned:
            print(json.dumps(p.as_json() | {"train_compute": p.train_compute(train_images[p.job.dataset])}))
        return 0
    suite = runner.suite
    print(f"suite {suite.name}: {len(jobs)} jobs -> {runner.store.root}  (device {runner.device})")
    header = f"  {'label':<32} {'seed':>4} {'phase':>8} {'epochs':>6} {'est. MACs':>10} {'ref':>5} " + (
        f"{'compute':>12} {'done':>4}"
    )
    group = None
    for p in planned:
        if (p.job.dataset, p.job.model) != group:
            group = (p.job.dataset, p.job.model)
            print(f"{p.job.dataset} / {p.job.model}\n{header}")
        compute = p.train_compute(train_images[p.job.dataset]) / 1e12
        print(
            f"  {clip(p.job.label, 32):<32} {p.job.seed:>4} {p.phase:>8} {p.epochs:>6} {p.macs / 1e6:>9.2f}M "
            f"{p.reference_epochs:>5} {compute:>10,.2f} T {'yes' if p.done else '':>4}"
        )
    b = suite.budgets
    print(
        f"budgets: dense {b.dense_epochs}, fine-tune {b.finetune_epochs}, scratch {b.scratch} epochs;\n'ref': the "
        "dense budget a row is compared with; job ids and phases: --json"
    )
    total = total_compute(planned, train_images)
    print(
        f"total training compute: {total / 1e12:,.2f} T MACs (epochs x images x 3 x MACs; "
        f"{sum(not p.done for p in planned)} jobs to run)"
    )
    return 0


def _sizes_for_plan(runner, jobs) -> dict[str, int]:
    """Training images per dataset: counted on disk, or (data absent) the registry's nominal size, said so."""
    from benchmarks.data.datasets import DataError, get_dataset

    try:
        return runner.preflight(jobs)
    except DataError:
        sizes = {}
        for dataset in dict.fromkeys(j.dataset for j in jobs):
            nominal = get_dataset(dataset).train_images or 0
            limit = runner.suite.data.train_limit
            sizes[dataset] = min(limit, nominal) if limit else nominal
        missing = ", ".join(sizes)
        print(
            f"planning without the data ({missing} not found: `tissuebench list datasets` says where it looked);\n"
            "training images from the registry: " + ", ".join(f"{d} {n:,}" for d, n in sizes.items()),
            file=sys.stderr,
        )
        return sizes


def run(args) -> int:
    load_plugins(args)
    from benchmarks.run.local import LocalExecutor
    from benchmarks.store.results import ResultStore
    from benchmarks.suites.load import load_suite
    from benchmarks.suites.overrides import describe
    from tissuebench.options import UserError

    suite = load_suite(args.suite, suite_overrides(args))
    exe = execution(args, suite)
    if args.json and not args.dry_run:
        raise UserError("--json goes with --dry-run")
    store = ResultStore(results_dir(args, suite.plan_name))
    if suite.overrides and not args.json:
        print(f"overrides: {describe(suite.overrides)} (results in {store.root})", file=sys.stderr)
    if exe.executor == "ray" and not args.dry_run:
        from benchmarks.run.ray_cluster import RayExecutor

        runner = RayExecutor(suite, store, exe, device=args.device, data_root=args.data_root, download=args.download)
    else:
        runner = LocalExecutor(
            suite, store, device=args.device, data_root=args.data_root, download=args.download, execution=exe
        )
    if args.dry_run:
        return dry_run(runner, args.only, args.json)
    jobs = runner.plan(args.only)
    if not jobs:
        raise UserError(f"no job of suite {suite.name!r} matches --only {args.only!r}")
    runner.preflight(jobs)
    summary = runner.run(args.only)
    elsewhere = f", {len(summary.elsewhere)} finished by another run" if summary.elsewhere else ""
    print(
        f"suite {suite.name}: {len(summary.ok)} ok, {len(summary.failed)} failed, {len(summary.skipped)} already "
        f"done{elsewhere}; {summary.wall_s:.0f} s; results in {store.root}"
    )
    if summary.failed:
        print("failed jobs: " + ", ".join(summary.failed), file=sys.stderr)
    from tissuebench.commands.show import print_table

    print_table(store, fmt="table", include_superseded=False)
    return 1 if summary.failed else 0
