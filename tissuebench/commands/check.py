"""``tissuebench check``: compare results with a committed reference; exit 1 on a regression."""

from __future__ import annotations

from pathlib import Path

from tissuebench.options import UserError, add_results, float_in, results_dir

NAME = "check"
HELP = "compare results with a committed reference (exit 1 when something got worse)"


def add_arguments(p) -> None:
    add_results(p)
    p.add_argument(
        "--against", default=None, metavar="FILE", help="reference CSV (default: results/reference/SUITE.csv)"
    )
    p.add_argument("--tolerance", type=float_in(0, 100), default=None, help="top-1 points (default: the file's)")
    p.add_argument("--update", action="store_true", help="rewrite the reference from the results, deliberately")
    p.add_argument(
        "--tolerance-from",
        default=None,
        metavar="DIR",
        help="with --update: derive tolerances from a multi-seed run in DIR",
    )
    p.add_argument("--include-superseded", action="store_true", help="also compare rows of older suite definitions")


def _measured(root: Path, include_superseded: bool):
    from benchmarks.store import ResultStore

    store = ResultStore(root)
    scan = store.scan()
    table, _ = store.consolidate(scan.records)
    if len(table) and not include_superseded:
        table = table[~table["superseded"].astype(bool)]
    return table, scan


def _update(args, measured, against: Path) -> int:
    from benchmarks.check import MIN_TOLERANCE, derive_tolerance, per_job_tolerance, read_reference, write_reference

    per_job = None
    if args.tolerance is not None:
        tol, how = args.tolerance, "given on the command line (tissuebench check --update --tolerance)"
    elif args.tolerance_from:
        seeds, _ = _measured(Path(args.tolerance_from), False)
        tol, how = derive_tolerance(seeds)
        per_job = per_job_tolerance(seeds)
        how += f"; per job: 3 x its own std (column tolerance_top1); from the runs in {Path(args.tolerance_from).name}"
    elif against.exists():
        _, meta = read_reference(against)
        tol, how = float(meta.get("tolerance_top1", MIN_TOLERANCE)), meta.get("tolerance_derivation", "kept")
    else:
        tol, how = derive_tolerance(measured)
    rows = write_reference(measured, against, tol, how, per_job)
    print(f"reference {against} rewritten: {len(rows)} jobs, top-1 tolerance {tol:g} ({how})")
    return 0


def run(args) -> int:
    from benchmarks.check import CheckError, check, format_differences

    root = results_dir(args)
    if not (root / "records").is_dir():
        raise UserError(f"no results folder at {root} (expected {root}/records/)")
    measured, scan = _measured(root, args.include_superseded)
    from results import in_checkout, reference

    against = Path(args.against) if args.against else reference(args.suite)
    if args.update and not args.against and not in_checkout():
        raise UserError(f"--update would rewrite the installed copy {against}; name the file to write with --against")
    if args.update:
        return _update(args, measured, against)
    try:
        diffs, tolerance, compared = check(measured, against, args.tolerance)
    except CheckError as exc:
        raise UserError(str(exc)) from exc
    print(format_differences(diffs, tolerance))
    for gap in scan.damaged:
        print(f"gap: damaged file {gap['file']}: {gap['reason']}")
    regressed = [d for d in diffs if d.regressed]
    improved = sum(d.verdict == "improved" for d in diffs)
    print(
        f"check: {compared} reference jobs, {len(regressed)} regressions, {improved} improvements"
        f"{f', {len(scan.damaged)} damaged files' if scan.damaged else ''} -> {'FAIL' if regressed else 'ok'}"
    )
    return 1 if regressed else 0
