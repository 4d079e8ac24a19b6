"""``tissuebench report``: tables, figures and an index page from a results folder."""

from __future__ import annotations

from pathlib import Path

from tissuebench.options import add_results, existing_results

NAME = "report"
HELP = "tables (Markdown, CSV, LaTeX), figures (PNG, SVG, PDF) and index.html from a results folder"


def add_arguments(p) -> None:
    add_results(p)
    p.add_argument("--out", default=None, metavar="DIR", help="output folder (default: RESULTS/report)")
    p.add_argument("--include-superseded", action="store_true", help="also rows of older suite definitions")


def run(args) -> int:
    from reports.build import build_report

    results = existing_results(args)
    out = Path(args.out) if args.out else results / "report"
    manifest = build_report(results, out, include_superseded=args.include_superseded)
    n_files = sum(len(f["files"]) for f in manifest["figures"]) + 3 * len(manifest["tables"]) + 2
    print(
        f"report: {len(manifest['tables'])} tables, {len(manifest['figures'])} figures ({n_files} files), "
        f"{len(manifest['gaps'])} gaps -> {out / 'index.html'}"
    )
    return 0
