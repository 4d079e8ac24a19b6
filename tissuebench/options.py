"""Shared command-line options and their validation (every numeric option is checked)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

DEFAULT_SUITE = "smoke"
RESULTS_ROOT = "runs"
MAX_INPUT_SIZE = 1024  # pixels: larger inputs would allocate tens of GB for one forward pass
MAX_CLASSES = 100_000
MAX_CHANNELS = 64
MAX_BATCH = 65_536


class UserError(Exception):
    """Bad input from the command line: one line, exit code 2."""


def int_in(lo: int, hi: int | None = None):
    """An argparse type: an integer in [lo, hi]."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < lo or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"{value} is out of range: allowed {lo}..{hi if hi else 'any'}")
        return value

    parse.__name__ = "integer"
    return parse


def float_in(lo: float, hi: float | None = None):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not (value >= lo and (hi is None or value <= hi)):
            raise argparse.ArgumentTypeError(f"{text} is out of range: allowed {lo}..{hi if hi is not None else 'any'}")
        return value

    parse.__name__ = "number"
    return parse


def add_section_options(group, section) -> None:
    """One ``--option`` per field of a settings section, its type, range, choices and help read from the field
    (the suite file and the command line check a value by the same rule). Unset: the suite's value."""
    import dataclasses
    import typing

    hints = typing.get_type_hints(section)
    for f in dataclasses.fields(section):
        rule, kinds = f.metadata, set(typing.get_args(hints[f.name])) or {hints[f.name]}
        lo = rule["min"] if rule["min"] is not None else -math.inf
        kwargs = {"default": None, "help": rule["doc"] + (f" (default: {f.default})" if f.default is not None else "")}
        if rule["choices"] is not None:
            kwargs["choices"] = rule["choices"]
        elif int in kinds:
            kwargs["type"] = int_in(lo, rule["max"])
        elif float in kinds:
            kwargs["type"] = float_in(lo, rule["max"])
        group.add_argument("--" + f.name.replace("_", "-"), **kwargs)


def section_options(args, section) -> dict:
    """The values of a section's options on the command line (None: not given)."""
    import dataclasses

    return {f.name: getattr(args, f.name, None) for f in dataclasses.fields(section)}


def suite_name(text: str) -> str:
    """An argparse type: a suite's name (``smoke``, ``smoke+e810ee19`` for a ``--set`` variant), never a path."""
    from tissuenet.names import check_name

    try:
        return check_name(text, "--suite")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_results(p: argparse.ArgumentParser, *, with_suite: bool = True) -> None:
    """``--results DIR`` (default runs/SUITE) and, for commands without a suite argument, ``--suite``."""
    if with_suite:
        p.add_argument(
            "--suite",
            type=suite_name,
            default=None,
            help=f"the suite whose results to read, SUITE or SUITE+VARIANT (default: the results folder's, "
            f"else {DEFAULT_SUITE}; sets the default --results)",
        )
    p.add_argument("--results", default=None, metavar="DIR", help="results folder (default: runs/SUITE)")


def results_dir(args, suite: str | None = None) -> Path:
    return Path(args.results) if args.results else Path(RESULTS_ROOT) / (suite or args.suite or DEFAULT_SUITE)


def existing_results(args) -> Path:
    """The results folder a reading command was pointed at; a missing one is one line naming the folders that
    exist for that suite (``--set`` runs land in ``runs/SUITE+DIGEST``)."""
    root = results_dir(args)
    if (root / "records").is_dir():
        return root
    hint = "run a suite first, or give --results DIR"
    where = f"{root}" if args.results else f"{root} (--suite {root.name})"
    if not args.results:
        variants = sorted(p.name for p in root.parent.glob(f"{root.name}+*") if (p / "records").is_dir())
        if variants:
            hint = f"this suite's runs with --set overrides are in: {', '.join(variants)} (--suite NAME+VARIANT)"
    raise UserError(f"no results folder at {where}: {hint}")


def add_suite_overrides(p: argparse.ArgumentParser, results: str = "runs/SUITE+DIGEST") -> None:
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        metavar="SECTION.KEY=VALUE",
        default=None,
        help="change a suite field, repeatable (TOML values): budgets.dense_epochs=1, data.train_limit=512, "
        f"seeds=[0,1,2], measure.latency=false, method.LABEL.options.KEY=V; results go to {results}",
    )


def add_plugins(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-p",
        "--plugin",
        dest="plugins",
        action="append",
        metavar="MODULE",
        default=None,
        help="import a plugin module first (its methods, models, datasets), repeatable; docs/plugins.md",
    )


def load_plugins(args) -> None:
    """Import the ``-p`` modules (installed plugins load on their own); a failure is one line, exit 2."""
    from tissuenet import plugins

    plugins.load(getattr(args, "plugins", None) or [])


def suite_overrides(args) -> dict:
    """The ``--set`` overrides of a suite command, parsed (bad syntax: one line, exit 2)."""
    from benchmarks.suites.overrides import OverrideError, parse

    try:
        return parse(getattr(args, "overrides", None))
    except OverrideError as exc:
        raise UserError(str(exc)) from None


def add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")


def add_model_shape(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        default=[],
        help="model option, repeatable (e.g. units=2-8-2, replace=all)",
    )
    p.add_argument("--dataset", default=None, help="take classes, channels and input size from this dataset")
    p.add_argument("--num-classes", type=int_in(1, MAX_CLASSES), default=None, help="default: the dataset's, else 10")
    p.add_argument(
        "--in-channels",
        type=int_in(1, MAX_CHANNELS),
        default=None,
        help="default: the dataset's, else the model's (1 for the MNIST models, 3 otherwise)",
    )
    p.add_argument(
        "--input-size",
        type=int_in(1, MAX_INPUT_SIZE),
        default=None,
        help="default: the dataset's, else the resolution the model is used at",
    )


def parse_sets(pairs: list[str]) -> dict:
    """``["units=2-8-2", "seed=3", "replace=[2,3]"]`` -> options; values parsed as Python literals."""
    import ast

    options = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise UserError(f"--set expects key=value, got {pair!r}")
        try:
            options[key] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            options[key] = raw  # plain strings such as 2-4-2 or ours_r
    return options


def model_shape(args, model: str) -> tuple[int, int, int]:
    """(classes, channels, input size) from --dataset, the explicit options, or the model's registration."""
    classes, channels, size = 10, None, None
    if args.dataset:
        from benchmarks.data.datasets import get_dataset

        info = get_dataset(args.dataset)
        classes, channels, size = info.num_classes, info.in_channels, info.input_size
    if ":" in model:
        channels, size = channels or 3, size or 224
    else:
        from tissuenet import get_entry

        entry = get_entry(model)
        channels, size = channels or entry.in_channels, size or entry.input_size
    return (args.num_classes or classes, args.in_channels or channels, args.input_size or size)
