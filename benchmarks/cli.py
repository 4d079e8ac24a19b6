"""The ``tissuebench`` command line: one sub-command per job, each in its own module."""

from __future__ import annotations

import argparse
import sys

from benchmarks.data.registry import DataError
from benchmarks.suite import SuiteError
from tissuenet.registry import ModelOptionError, UnknownModelError


class UserError(Exception):
    """Bad input from the user: reported in one line, exit code 2, nothing stored is touched."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tissuebench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("describe", help="params, MACs and FLOPs of a model (the suite's counting convention)")
    p.add_argument("model")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="model option, repeatable (e.g. units=2-8-2)")
    p.add_argument("--num-classes", type=int, default=10)
    p.add_argument("--in-channels", type=int, default=3)
    p.add_argument("--input-size", type=int, default=None, help="default: the resolution the model is used at")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("list", help="list registered models, methods, datasets or suites")
    p.add_argument("what", choices=["models", "methods", "datasets", "suites"])
    p.add_argument("pattern", nargs="?", default="*")
    p = sub.add_parser("run", help="run a suite (resumable: finished jobs are skipped)")
    p.add_argument("suite", help="a shipped suite name (see `list suites`) or a .toml file")
    p.add_argument("--data-root", default=None, help="where datasets live (else $TISSUEBENCH_DATA, system paths)")
    p.add_argument("--download", action="store_true", help="allow torchvision downloads of missing datasets")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--results", default=None, help="results folder (default: runs/SUITE)")
    p.add_argument("--only", default=None, metavar="PATTERN", help="glob over job ids or labels")
    p.add_argument("--dry-run", action="store_true", help="print the job plan and exit")

    p = sub.add_parser("perf", help="training throughput: harness vs a standard DataLoader pipeline")
    p.add_argument("--model", default="resnet56")
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--steps", type=int, default=50, help="timed steps per pipeline (CPU: use a few)")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--workers", type=int, default=4, help="DataLoader worker processes")
    p.add_argument("--device", default="auto")
    p.add_argument("--data-root", default=None)
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--accuracy-epochs", type=int, default=0, help="also compare eager vs compiled accuracy")

    p = sub.add_parser("report", help="tables, figures and an index page from a results folder")
    p.add_argument("--results", default="runs/smoke")
    p.add_argument("--out", default=None, help="default: RESULTS/report")

    p = sub.add_parser("check", help="compare results with a committed reference; exit 1 on regression")
    p.add_argument("--results", default="runs/smoke")
    p.add_argument("--against", required=True, metavar="FILE", help="e.g. results/reference/smoke.csv")
    p.add_argument("--tolerance", type=float, default=None, help="top-1 points (default: the file's)")
    p.add_argument("--update", action="store_true", help="rewrite the reference from the results")
    p.add_argument(
        "--tolerance-from", default=None, metavar="DIR", help="with --update: derive it from a multi-seed run"
    )

    p = sub.add_parser("nightly", help="run suites, check them, regenerate reports, run and publish asv")
    p.add_argument("--suites", default="smoke,fashion-resnet56", help="comma-separated suite names")
    p.add_argument("--root", default="runs/nightly", help="results folder per suite under this root")
    p.add_argument("--device", default="auto")
    p.add_argument("--data-root", default=None)
    p.add_argument(
        "--asv",
        choices=["new", "same", "off"],
        default="new",
        help="new: benchmark unmeasured commits; same: the current environment; off",
    )
    p.add_argument("--asv-machine", default=None, help="pinned asv machine name (default $ASV_MACHINE or 'nightly')")
    p.add_argument("--asv-profile", choices=["fast", "nightly"], default="nightly")

    p = sub.add_parser("show", help="print the consolidated results table")
    p.add_argument("--results", default="runs/smoke")
    return parser


def _list(args) -> int:
    if args.what == "models":
        from tissuenet import get_entry, list_models

        for name in list_models(args.pattern):
            e = get_entry(name)
            print(f"{name:<24} {e.family:<16} {'tissuenet' if e.tissue else 'dense':<10} input {e.input_size}")
        print("(also: torchvision:NAME, timm:NAME)")
        return 0
    from benchmarks import catalog

    for line in catalog.describe_all(args.what, args.pattern):
        print(line)
    return 0


COMMANDS = {
    "describe": lambda a: __import__("benchmarks.cli_describe", fromlist=["run"]).run(a),
    "list": _list,
    "run": lambda a: __import__("benchmarks.cli_run", fromlist=["run"]).run(a),
    "perf": lambda a: __import__("benchmarks.perf", fromlist=["run"]).run(a),
    "report": lambda a: __import__("reports.build", fromlist=["run"]).run(a),
    "check": lambda a: __import__("benchmarks.check", fromlist=["run"]).run(a),
    "nightly": lambda a: __import__("benchmarks.nightly", fromlist=["run"]).run(a),
    "show": lambda a: __import__("benchmarks.cli_run", fromlist=["show"]).show(a),
}


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (
        UserError,
        UnknownModelError,
        ModelOptionError,
        SuiteError,
        DataError,
        ValueError,
        FileNotFoundError,
    ) as exc:
        print(f"tissuebench {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
