"""``tissuebench show``: the results table in the terminal (or CSV, Markdown, JSON), or one job's record."""

from __future__ import annotations

import fnmatch
import json
import operator
import re
import shutil
import sys

from tissuebench.options import UserError, add_results, existing_results

NAME = "show"
HELP = "print the results table (or one job's full record): sort, filter, choose columns and format"
IDENTITY = ["dataset", "model", "label", "seed", "status"]
FORMATS = ("table", "csv", "markdown", "json")
_FILTER = re.compile(r"^\s*([A-Za-z0-9_%]+)\s*(!=|>=|<=|=|>|<)\s*(.*?)\s*$")
_OPS = {"=": operator.eq, "!=": operator.ne, ">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt}


def add_arguments(p) -> None:
    p.add_argument("job_id", nargs="?", default=None, help="one job: print its whole record")
    add_results(p)
    p.add_argument("--sort", default=None, metavar="COLUMN", help="sort by a column (prefix '-' for descending)")
    p.add_argument(
        "--filter",
        action="append",
        default=[],
        metavar="EXPR",
        help="keep rows where EXPR holds: label=prune_*, top1>80, status!=ok (repeatable)",
    )
    p.add_argument("--columns", default=None, help="comma-separated columns (metric names or their short names)")
    p.add_argument("--format", choices=FORMATS, default="table", help="output format")
    p.add_argument("--include-superseded", action="store_true", help="also rows of an older definition of the suite")


def _columns(spec: str | None) -> list[str]:
    from benchmarks.store.metric_table import BY_NAME, METRICS, names

    if spec is None:
        return IDENTITY + names(where="show")
    short = {m.short: m.name for m in METRICS}
    out = []
    for c in (c.strip() for c in spec.split(",") if c.strip()):
        out.append(short.get(c, c))
    unknown = [
        c
        for c in out
        if c not in BY_NAME
        and c not in IDENTITY + ["job_id", "run", "method", "phase", "epochs", "target_kind", "target_value", "error"]
    ]
    if unknown:
        raise UserError(f"unknown column(s) {unknown}; metrics: {', '.join(m.name for m in METRICS)}")
    return out


def _apply_filter(table, expr: str):
    m = _FILTER.match(expr)
    if not m:
        raise UserError(f"--filter {expr!r}: write COLUMN=VALUE, COLUMN!=VALUE or COLUMN>NUMBER (also >=, <, <=)")
    col, op, value = m.groups()
    if col not in table.columns:
        raise UserError(f"--filter: no column {col!r} in the table")
    series = table[col]
    try:
        number = float(value)
    except ValueError:
        number = None
    if op in ("=", "!=") and number is None:
        hit = series.astype(str).map(lambda s: fnmatch.fnmatch(s, value))
        return table[hit if op == "=" else ~hit]
    if number is None:
        raise UserError(f"--filter {expr!r}: {op} needs a number")
    numeric = series.astype(float)
    return table[_OPS[op](numeric, number).fillna(False)]


def view(table, columns: list[str], scaled: bool):
    """The displayed frame: metric columns scaled to their units, headers with their units."""
    import pandas as pd

    from benchmarks.store.metric_table import BY_NAME

    out = pd.DataFrame(index=table.index)
    for c in columns:
        values = table[c] if c in table.columns else pd.Series([None] * len(table), index=table.index)
        m = BY_NAME.get(c)
        if m is None:
            out[c] = values
        elif scaled:
            out[m.short] = [m.display(v) for v in values]
        else:
            out[c] = values
    return out


def _fit(frame, width: int):
    """Drop trailing columns until the table fits the terminal; say how many were hidden."""
    hidden = 0
    while frame.shape[1] > 1:
        text = frame.to_string(index=False)
        if max(len(line) for line in text.splitlines()) <= width:
            break
        frame = frame.iloc[:, :-1]
        hidden += 1
    return frame, hidden


def overrides_in(table) -> list[tuple[str, bool]]:
    """The distinct ``--set`` overrides of the runs in a table, as (text, whether they change jobs)."""
    from benchmarks.suites.overrides import describe, identity_overrides

    if "overrides" not in table:
        return []
    out = set()
    for raw in table["overrides"].dropna():
        value = json.loads(raw) if isinstance(raw, str) else raw
        if value:
            out.add((describe(value), bool(identity_overrides(value))))
    return sorted(out)


def _with_variants(table, cols: list[str]):
    """A folder holding several ``--set`` variants of a suite (or several suites): a ``run`` column,
    ``SUITE`` or ``SUITE+VARIANT`` (the folder name ``--set`` gives), so their rows can be told apart."""
    from benchmarks.store.results import plan_name

    runs = [plan_name(r) for r in table.to_dict("records")]
    if len(set(runs)) > 1 and "run" not in cols:
        table = table.assign(run=runs)
        cols.insert(cols.index("label") + 1 if "label" in cols else 0, "run")
    return table


def load_table(store, include_superseded: bool):
    scan = store.scan()
    table, _ = store.consolidate(scan.records)
    if len(table) and not include_superseded and "superseded" in table:
        table = table[~table["superseded"].astype(bool)]
    return table, scan


def print_table(store, *, fmt="table", include_superseded=False, columns=None, sort=None, filters=()) -> None:
    table, scan = load_table(store, include_superseded)
    if table.empty:
        print(f"no results in {store.root}")
    else:
        for expr in filters:
            table = _apply_filter(table, expr)
        if sort:
            key = sort.lstrip("-")
            if key not in table.columns:
                raise UserError(f"--sort: no column {key!r}")
            table = table.sort_values(key, ascending=not sort.startswith("-"), kind="stable")
        cols = _columns(columns)
        table = _with_variants(table, cols)
        if fmt == "json":
            for row in table.to_dict("records"):
                print(json.dumps({c: row.get(c) for c in cols}, default=str))
        elif fmt == "csv":
            from benchmarks.store.text import spreadsheet_safe

            print(spreadsheet_safe(view(table, cols, scaled=False)).to_csv(index=False), end="")
        elif fmt == "markdown":
            from benchmarks.store.text import markdown_table

            frame = view(table, cols, scaled=True)
            print("\n".join(markdown_table(list(frame.columns), frame.itertuples(index=False))))
        else:
            frame, hidden = _fit(view(table, cols, scaled=True), shutil.get_terminal_size((160, 24)).columns)
            print(frame.to_string(index=False))
            if hidden:
                print(f"({hidden} more column(s) hidden to fit the terminal: --columns, or --format csv)")
            print(
                "units: M = millions; MACs_eff, params_nz: effective MACs and nonzero parameters (masked rows "
                "count only their nonzero weights); cut% vs the equal-budget dense row"
            )
            for text, changing in overrides_in(table):
                what = "a quick pass: its jobs are not the suite's own" if changing else "job selection only"
                print(f"run with --set {text} ({what})")
    for gap in scan.damaged:
        print(f"gap: damaged file {gap['file']}: {gap['reason']}", file=sys.stderr)


def show_record(store, job_id: str) -> None:
    from benchmarks.store.metric_table import GROUPS, METRICS
    from benchmarks.suites.overrides import describe

    rec = store.get(job_id)
    if rec is None:
        raise UserError(f"no record of job {job_id!r} in {store.root} (see `tissuebench show --columns job_id,label`)")
    print(f"{rec['job_id']}  [{rec['status']}]")
    for key in (
        "suite",
        "dataset",
        "model",
        "method",
        "label",
        "seed",
        "overrides",
        "target_kind",
        "target_value",
        "phase",
        "epochs",
        "reference_job",
        "error",
    ):
        if rec.get(key) not in (None, {}):
            value = describe(rec[key]) if key == "overrides" else rec[key]
            print(f"  {key:<22} {value}")
    for group, title in GROUPS.items():
        rows = [(m, rec.get(m.name)) for m in METRICS if m.group == group and rec.get(m.name) is not None]
        if rows:
            print(f"  {title}")
            for m, value in rows:
                print(f"    {m.title:<32} {m.display(value):>14}  {m.arrow}")
    for key in (
        "latency_mode",
        "latency_samples",
        "latency_iqr_ms",
        "latency_reliable",
        "speedup_iqr",
        "latency_allocator",
        "latency_threads",
        "method_info",
        "tissue_options",
        "dense_checkpoint",
        "dense_weights_sha256",
        "model_file",
        "git_sha",
        "git_dirty",
        "device_name",
        "host",
        "executor",
        "started_utc",
        "finished_utc",
        "command",
    ):
        if rec.get(key) is not None:
            value = rec[key]
            text = json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else str(value)
            print(f"  {key:<22} {text[:200]}")


def run(args) -> int:
    root = existing_results(args)  # before any heavy import: a missing folder is answered at once
    from benchmarks.store.results import ResultStore

    store = ResultStore(root)
    if args.job_id:
        show_record(store, args.job_id)
        return 0
    print_table(
        store,
        fmt=args.format,
        include_superseded=args.include_superseded,
        columns=args.columns,
        sort=args.sort,
        filters=args.filter,
    )
    return 0
