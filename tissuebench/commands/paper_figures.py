"""``tissuebench paper-figures``: the paper's tables and figures, from its published rows (and measured runs)."""

from __future__ import annotations

from pathlib import Path

from tissuebench.options import RESULTS_ROOT

NAME = "paper-figures"
HELP = "the paper's tables and figures from its published rows alone, or with measured runs beside them"


def add_arguments(p) -> None:
    p.add_argument(
        "--results",
        action="append",
        default=None,
        metavar="DIR",
        help="a results folder of a paper suite (runs/paper-cifar10, ...), repeatable: its rows beside the "
        "published ones, and every published row without a measured counterpart named",
    )
    p.add_argument("--out", default=None, metavar="DIR", help=f"output folder (default: {RESULTS_ROOT}/paper-figures)")


def run(args) -> int:
    from tissuebench.options import UserError

    folders = [Path(f) for f in args.results or []]
    for folder in folders:
        if not (folder / "records").is_dir():
            raise UserError(f"--results {folder}: no results folder there (expected {folder}/records/)")
    from reports.paper_figures import write

    out = Path(args.out) if args.out else Path(RESULTS_ROOT) / "paper-figures"
    summary = write(out, folders)
    figures = sum(len(s["figures"]) for s in summary["sections"])
    measured = f"{len(summary['measured'])} measured rows" if folders else "published rows only"
    print(
        f"paper-figures: {len(summary['sections'])} tables, {figures} figures ({measured}); "
        f"{len(summary['missing'])} published rows without a measured counterpart -> {out / 'index.html'}"
    )
    return 0
