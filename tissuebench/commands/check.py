"""``tissuebench check``: compare results with a committed reference; exit 1 on a regression."""

from __future__ import annotations

from pathlib import Path

from tissuebench.options import UserError, add_results, existing_results, float_in

NAME = "check"
HELP = "compare results with a committed reference (exit 1 when something got worse)"


def add_arguments(p) -> None:
    add_results(p)
    p.add_argument(
        "--against",
        default=None,
        metavar="FILE",
        help="reference CSV (default: the shipped results/reference/SUITE.csv)",
    )
    p.add_argument(
        "--tolerance", type=float_in(0, 100), default=None, help="top-1 points it may fall (default: the file's bounds)"
    )
    p.add_argument("--update", action="store_true", help="rewrite the reference from the results, deliberately")
    p.add_argument(
        "--tolerance-from",
        action="append",
        default=None,
        metavar="DIR",
        help="with --update: derive the bounds from >= 8 runs of every job in DIR (run with --set seeds=[0,...,9]); "
        "repeatable: runs in other execution contexts (thread counts) widen the bounds to cover them",
    )
    p.add_argument(
        "--history",
        default=None,
        metavar="FILE",
        help="nightly history (default: history.parquet beside a nightly folder): the commits where a metric moved",
    )
    p.add_argument(
        "--held-out",
        action="append",
        default=None,
        metavar="DIR",
        help="with --update: runs of other new seeds (none of the reference's) judged against the new bounds, as a "
        "night is: the gate's measured false-alarm rate; repeatable",
    )
    p.add_argument(
        "--leave-out",
        action="append",
        default=None,
        metavar="PATTERN",
        help="with --update: leave these jobs (glob over job ids and labels) out of the new reference deliberately: "
        "failed or missing ones, or rows of the old reference to drop",
    )
    p.add_argument("--include-superseded", action="store_true", help="also compare rows of older suite definitions")


def _measured(root: Path, include_superseded: bool):
    from benchmarks.store.results import ResultStore

    store = ResultStore(root)
    scan = store.scan()
    table, _ = store.consolidate(scan.records)
    if len(table) and not include_superseded:
        table = table[~table["superseded"].astype(bool)]
    return table, scan, store


def suite_of(args, measured, root: Path) -> str:
    """The suite (``SUITE`` or ``SUITE+VARIANT``) whose results are checked: ``--suite``, else the folder's own."""
    from benchmarks.store.results import plan_name

    found = sorted({plan_name(r) for r in measured.to_dict("records")}) if len(measured) else []
    if args.suite:
        if found and args.suite not in found:
            raise UserError(f"{root} holds results of {', '.join(found)}, not of --suite {args.suite}")
        return args.suite
    if not found:
        raise UserError(f"{root} holds no results to check")
    if len(found) > 1:
        raise UserError(f"{root} holds results of several suites ({', '.join(found)}): name one with --suite")
    return found[0]


def _update(args, measured, against: Path, suite: str, store) -> int:
    import pandas as pd

    from benchmarks.gate.bounds import rows_for_update, write_reference
    from benchmarks.gate.reference import CheckError

    seeds = None
    if args.tolerance_from:
        tables = []
        for folder in args.tolerance_from:
            tables.append(_measured(_folder(folder), False)[0])
        seeds = pd.concat(tables, ignore_index=True)
    names = ", ".join(Path(f).name for f in args.tolerance_from or [])
    expected = store.current_plans().get(suite)
    try:
        kept = rows_for_update(measured, against, suite, expected, args.leave_out)
        rows = write_reference(kept, against, seeds, args.tolerance, names, suite=suite)
    except CheckError as exc:
        raise UserError(str(exc)) from exc
    how = f"bounds from {int(rows['n_seeds'].min())}+ runs" if seeds is not None else "fixed bounds (no seeds)"
    print(f"reference {against} rewritten: {len(rows)} jobs, {how}")
    if seeds is not None:
        from benchmarks.gate.bounds import leave_one_out

        flagged, runs, reasons = leave_one_out(seeds, kept)
        print(
            f"leave-one-out: {flagged} of {runs} reference runs (seeds) would fail this gate against bounds from "
            f"the other runs{': ' + '; '.join(reasons) if reasons else ''}"
        )
    if args.held_out:
        from benchmarks.gate.bounds import held_out

        runs_table = pd.concat([_measured(_folder(f), False)[0] for f in args.held_out], ignore_index=True)
        overlap = set(runs_table["seed"]) & set(seeds["seed"] if seeds is not None else [])
        if overlap:
            raise UserError(f"--held-out shares seed(s) {sorted(overlap)[:5]} with the reference runs: held-out runs "
                            "must be new draws")  # fmt: skip
        flagged, runs, reasons = held_out(rows, runs_table)
        print(
            f"held-out: {flagged} of {runs} new runs (seeds {_span(runs_table)}) would fail this gate (design: "
            f"1 in 100){': ' + '; '.join(reasons) if reasons else ''}"
        )
    return 0


def _folder(folder: str) -> Path:
    if not (Path(folder) / "records").is_dir():
        raise UserError(f"{folder}: no results folder there (expected records/)")
    return Path(folder)


def _span(table) -> str:
    seeds = sorted(int(s) for s in table["seed"].dropna().unique())
    return f"{seeds[0]}-{seeds[-1]}" if seeds else "none"


def _history(args, root: Path):
    import pandas as pd

    path = Path(args.history) if args.history else root.parent / "history.parquet"
    if not path.is_file():
        if args.history:
            raise UserError(f"--history {path}: no such file")
        return None
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 - a damaged history names no commit range; the check still runs
        print(f"history {path} cannot be read ({type(exc).__name__}); no commit ranges")
        return None


def run(args) -> int:
    root = existing_results(args)  # before any heavy import: a missing folder is answered at once
    from benchmarks.gate.judge import check, format_differences, moved_between
    from benchmarks.gate.reference import CheckError, context_differences
    from benchmarks.store.results import plan_name
    from results import in_checkout, reference

    measured, scan, store = _measured(root, args.include_superseded)
    suite = suite_of(args, measured, root)
    if len(measured):
        measured = measured[[plan_name(r) == suite for r in measured.to_dict("records")]]
    against = Path(args.against) if args.against else reference(suite)
    if args.update and not args.against and not in_checkout():
        raise UserError(f"--update would rewrite the installed copy {against}; name the file to write with --against")
    if args.held_out and not args.update:
        raise UserError("--held-out goes with --update (it measures the false alarms of the reference it writes)")
    if args.update:
        return _update(args, measured, against, suite, store)
    if not args.against and not against.exists():
        raise UserError(
            f"no reference for suite {suite} ({against}); make one from >= 8 seeds: tissuebench check --results "
            f"{root} --update --tolerance-from SEEDS_DIR (README, 'Regression checks')"
        )
    try:
        diffs, meta, compared = check(measured, against, args.tolerance)
    except CheckError as exc:
        raise UserError(str(exc)) from exc
    regressed = [d for d in diffs if d.regressed]
    history = _history(args, root) if regressed else None
    moves = {}
    if history is not None:
        from benchmarks.gate.reference import read_reference

        table, _ = read_reference(against)
        moves = {(d.job_id, d.field): m for d in regressed if (m := moved_between(history, table, d))}
    print(format_differences(diffs, moves))
    context = context_differences(meta, measured)
    if context:
        print(f"context differs from the reference's: {'; '.join(context)} (judged by the bounds all the same)")
    for gap in scan.damaged:
        print(f"gap: damaged file {gap['file']}: {gap['reason']}")
    improved = sum(d.verdict == "improved" for d in diffs)
    print(
        f"check: {compared} reference jobs, {len(regressed)} regressions, {improved} improvements"
        f"{f', {len(scan.damaged)} damaged files' if scan.damaged else ''} -> {'FAIL' if regressed else 'ok'}"
    )
    return 1 if regressed else 0
