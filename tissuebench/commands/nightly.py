"""``tissuebench nightly``: run suites, check them, regenerate reports, run and publish asv."""

from __future__ import annotations

from pathlib import Path

from tissuebench.options import (
    add_device,
    add_plugins,
    add_suite_overrides,
    float_in,
    int_in,
    load_plugins,
    suite_overrides,
)

NAME = "nightly"
HELP = "the nightly job: run suites, check each against its reference, regenerate reports, run asv"


def add_arguments(p) -> None:
    add_plugins(p)
    p.add_argument("--suites", default="smoke,fashion-resnet56", help="comma-separated suite names")
    p.add_argument(
        "--root", default="runs/nightly", help="under it, per suite: one results folder per commit, history, trend page"
    )
    p.add_argument(
        "--references", default=None, metavar="DIR", help="reference CSVs (default: the shipped results/reference/)"
    )
    add_suite_overrides(p, results="ROOT/SUITE+DIGEST/NIGHT")
    add_device(p)
    p.add_argument("--data-root", default=None, help="where datasets live")
    p.add_argument(
        "--asv",
        choices=["new", "same", "off"],
        default="new",
        help="asv: 'new' benchmarks the commits not yet measured, 'same' the current environment, 'off' skips it",
    )
    p.add_argument("--asv-machine", default=None, help="pinned asv machine name (default $ASV_MACHINE or 'nightly')")
    p.add_argument("--asv-profile", choices=["fast", "nightly"], default="nightly", help="asv benchmark sizes")
    g = p.add_argument_group("execution (as for `run`)")
    g.add_argument("--executor", choices=("local", "ray"), default=None, help="local, or a Ray cluster")
    g.add_argument("--address", default=None, help="Ray address: auto or HOST:PORT")
    g.add_argument("--gpus-per-job", type=float_in(0, 8), default=None, help="GPUs per job")
    g.add_argument("--cpus-per-job", type=int_in(1, 256), default=None, help="CPU threads per job")
    g.add_argument("--max-concurrent", type=int_in(1, 100_000), default=None, help="jobs running at once")
    g.add_argument("--max-retries", type=int_in(0, 100), default=None, help="retries of a job whose worker died")


def run(args) -> int:
    load_plugins(args)
    from tissuebench.nightly import nightly

    changes = {
        k: getattr(args, k)
        for k in ("executor", "address", "gpus_per_job", "cpus_per_job", "max_concurrent", "max_retries")
        if getattr(args, k) is not None
    }
    return nightly(
        args.suites.split(","),
        root=Path(args.root),
        device=args.device,
        data_root=args.data_root,
        asv=args.asv,
        machine=args.asv_machine,
        profile=args.asv_profile,
        execution_changes=changes,
        overrides=suite_overrides(args),
        references=args.references,
    )
