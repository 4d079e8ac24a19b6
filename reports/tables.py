"""Tables in the paper's form (journal Tables IV-VI), one per (dataset, model), four formats.

Columns come from the metric table (``report`` metrics, in their groups: accuracy, cost, speed,
budget, trade-off), each header with its unit and better direction. Measured rows show mean ± std
over seeds (a 95 % Student-t CI in the CSV and the HTML tooltip); published rows stand beside them,
marked, each against its own baseline. A published cell that contradicts its own row carries a
dagger and a footnote with the printed value. CSV keeps raw numbers (exact integers for counts).
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from benchmarks.store.files import write_text_atomic
from benchmarks.store.metric_table import BY_NAME, GROUPS
from benchmarks.store.text import markdown_table, spreadsheet_safe
from reports import stats
from reports.data import MEASURED, PUBLISHED, REPORTED, TRADEOFFS, safe_name

ALPHA = stats.ALPHA
IDENTITY = ("Method", "Source", "Seeds")


@dataclass
class Cell:
    text: str
    note: str = ""  # footnote marker target / tooltip
    mark: str = ""  # dagger, n.s.


@dataclass
class Table:
    dataset: str
    model: str
    groups: list[tuple[str, list[str]]]  # (group title, metric names)
    rows: list[list[Cell]]
    footnotes: list[str] = field(default_factory=list)
    has_published: bool = False
    seeds: int = 0

    @property
    def metrics(self) -> list[str]:
        return [m for _, ms in self.groups for m in ms]

    def header(self, metric: str) -> str:
        m = BY_NAME[metric]
        return f"{m.title} {m.arrow}".strip()


def _groups() -> list[tuple[str, list[str]]]:
    order = ["accuracy", "cost", "speed", "budget", "tradeoff"]
    return [(GROUPS[g], [m for m in REPORTED if BY_NAME[m].group == g]) for g in order]


EMPTY = "–"  # a cell without a value


def _fmt(value, metric: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return EMPTY
    m = BY_NAME[metric]
    return f"{value * m.scale:.{m.digits}f}"


def _measured_cell(row, metric: str, notes: dict) -> Cell:
    value = row.get(metric)
    if (value is None or (isinstance(value, float) and math.isnan(value))) and metric == "top1" and row["failed"]:
        return Cell("failed")
    text = _fmt(value, metric)
    std = row.get(f"{metric}_std")
    tip = ""
    if isinstance(std, float) and not math.isnan(std) and std > 0:  # no "± 0" for numbers every seed shares
        text += f" ± {_fmt(std, metric)}"
        lo, hi = row.get(f"{metric}_ci_low"), row.get(f"{metric}_ci_high")
        tip = f"95 % CI {_fmt(lo, metric)} – {_fmt(hi, metric)} (Student t, {row['seeds']} seeds)"
    mark = ""
    if metric == "speedup_theoretical" and row.get("masked"):
        mark = "§"
        notes["§"] = "masked (unstructured) rows: this speed-up needs sparse kernels; a dense runtime does not have it"
    if metric == "speedup_measured" and row.get("speedup_by_definition"):
        return Cell("1 (ref.)", "the dense row is the reference: its speed-up is 1 by definition, not measured")
    unreliable_speedup = row.get("speedup_suspect") or not row.get("speedup_reliable", True)
    if (metric == "speedup_measured" and unreliable_speedup) or (
        metric == "latency_ms" and not row.get("latency_reliable", True)
    ):
        mark = "‡"
        notes["‡"] = (
            "an unreliable timing: a speed-up above twice the theoretical one, paired ratios whose IQR exceeds a "
            "quarter of their median, or a latency whose own IQR does (noise, not a result; left out of the "
            "latency figure)"
        )
    if metric == "acc_drop" and row["seeds"] > 1 and row["method"] != "dense":
        p = row.get("p_vs_dense")
        missing = str(row.get("vs_dense") or "").endswith("(missing)")
        if missing:
            mark = "no ref."
            notes["no ref."] = (
                "no test: the equal-budget dense row this row must be compared with is missing from the results "
                "(a gap, listed below); it is never compared with a dense row of another budget instead"
            )
        elif p is None or (isinstance(p, float) and math.isnan(p)):
            mark = "no test"
            notes["no test"] = "no paired test: fewer than two seeds in common, or differences without spread"
        elif p >= ALPHA:
            mark = "n.s."
            notes["n.s."] = (
                f"not significant: the paired t-test over seeds against the equal-budget dense row gives p ≥ "
                f"{ALPHA} after Holm's correction over the rows of this table"
            )
    return Cell(text, tip, mark)


def _published_cell(row, metric: str, notes: dict) -> Cell:
    value = row.get(metric)
    if metric not in row or value is None or (isinstance(value, float) and math.isnan(value)):
        return Cell(EMPTY)
    other = (row.get("readings") or {}).get(metric)
    if other is not None:  # the paper contradicts itself: both readings, neither corrected
        key = f"⁂ {row['label']} {BY_NAME[metric].title}"
        notes[key] = (
            f"{row['label']}, {BY_NAME[metric].title}: the paper prints {value:g}, but the row's TSA cells "
            f"(as printed) imply {other:g}; both readings shown, neither corrected"
        )
        return Cell(f"{_fmt(value, metric)} / {_fmt(other, metric)}", notes[key], "⁂")
    printed = row["marks"].get(metric)
    if printed is None:
        return Cell(_fmt(value, metric))
    key = f"† {row['label']} {BY_NAME[metric].title}"
    notes[key] = f"{row['label']}, {BY_NAME[metric].title}: the paper prints {printed:g}; its own row gives {value:.2f}"
    return Cell(_fmt(value, metric), notes[key], "†")


def build(agg: pd.DataFrame, published: pd.DataFrame, dataset: str, model: str) -> Table:
    groups = _groups()
    metrics = [m for _, ms in groups for m in ms]
    rows, notes = [], {}
    for _, r in agg.iterrows():
        label = f"{r['family']} @ {r['target']}" if r["target"] else r["label"]
        cells = [
            Cell(label),
            Cell(MEASURED),
            Cell(str(int(r["seeds"]))),
        ]
        rows.append(cells + [_measured_cell(r, m, notes) for m in metrics])
    for _, r in published.iterrows():
        rows.append([Cell(r["label"]), Cell(PUBLISHED), Cell("")] + [_published_cell(r, m, notes) for m in metrics])
    seeds = int(agg["seeds"].max()) if len(agg) else 0
    return Table(
        dataset, model, groups, rows, [f"{k.split()[0]} {v}" for k, v in notes.items()], len(published) > 0, seeds
    )


# -- writers -------------------------------------------------------------------------------------
def to_markdown(t: Table) -> str:
    headers = list(IDENTITY) + [t.header(m) for m in t.metrics]
    rows = [[c.text + (f" {c.mark}" if c.mark else "") for c in row] for row in t.rows]
    return "\n".join(markdown_table(headers, rows, right_from=3) + [""] + [f"{n}  " for n in t.footnotes]) + "\n"


TEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "±": r"$\pm$",
    "–": "--",
    "↑": r"$\uparrow$",
    "↓": r"$\downarrow$",
    "†": r"$^\dagger$",
    "‡": r"$^\ddagger$",
    "⁂": r"$^\ast$",
    "§": r"\S{}",
    "≥": r"$\geq$",
    "·": r"$\cdot$",
}


def tex_escape(text: str) -> str:
    return "".join(TEX_SPECIAL.get(ch, ch) for ch in str(text))


def caption(t: Table) -> str:
    what = f"{t.model} on {t.dataset}: measured here"
    what += f" (mean ± std over {t.seeds} seeds)" if t.seeds > 1 else " (one seed)"
    if t.has_published:
        what += ", and the paper's published rows, each against its own baseline"
    return what + ". FLOPs = 2 x MACs; masked rows count effective FLOPs and nonzero parameters."


def to_latex(t: Table) -> str:
    """A full-width table (``table*``), scaled to the text width, with column groups."""
    n = len(t.metrics)
    lines = [
        r"\begin{table*}[t]",
        r"\centering",
        rf"\caption{{{tex_escape(caption(t))}}}",
        r"\resizebox{\textwidth}{!}{%",
        rf"\begin{{tabular}}{{lll{'r' * n}}}",
        r"\toprule",
    ]
    group_row, rules, col = ["", "", ""], [], 4
    for title, ms in t.groups:
        group_row.append(rf"\multicolumn{{{len(ms)}}}{{c}}{{{tex_escape(title)}}}")
        rules.append(rf"\cmidrule(lr){{{col}-{col + len(ms) - 1}}}")
        col += len(ms)
    lines += [" & ".join(group_row) + r" \\", " ".join(rules)]
    lines.append(" & ".join(tex_escape(h) for h in list(IDENTITY) + [t.header(m) for m in t.metrics]) + r" \\")
    lines.append(r"\midrule")
    previous = None
    for row in t.rows:
        if previous is not None and row[1].text != previous:
            lines.append(r"\midrule")
        previous = row[1].text
        lines.append(" & ".join(tex_escape(c.text + (f" {c.mark}" if c.mark else "")) for c in row) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}}"]
    if t.footnotes:
        lines.append(r"\par\footnotesize " + r" \\ ".join(tex_escape(n) for n in t.footnotes))
    lines.append(r"\end{table*}")
    return "\n".join(lines) + "\n"


def to_csv(agg: pd.DataFrame, published: pd.DataFrame) -> str:
    """Raw numbers: means, stds and CI bounds per metric; exact integers for counts."""
    cols = ["dataset", "model", "label", "target", "source", "seeds", "failed"]
    stat_cols = [f"{m}{s}" for m in REPORTED for s in ("", "_std", "_ci_low", "_ci_high")]
    both = pd.concat([agg.assign(source=MEASURED), published], ignore_index=True) if len(published) else agg
    flags = ["latency_reliable", "speedup_reliable", "speedup_suspect", "speedup_by_definition"]  # the ‡ of the page
    tests = ["vs_dense", "p_vs_dense", "p_vs_dense_raw", "vs_tissuenet", "p_vs_tissuenet", "p_vs_tissuenet_raw"]
    frame = both.reindex(columns=cols + stat_cols + tests + flags)
    for m in REPORTED:
        if BY_NAME[m].integer:
            whole = frame[m].dropna()
            if len(whole) and (whole == whole.round()).all():
                frame[m] = frame[m].round().astype("Int64")
    frame["seeds"] = pd.to_numeric(frame["seeds"], errors="coerce").astype("Int64")
    return spreadsheet_safe(frame).to_csv(index=False, float_format="%.10g")


HTML_COLUMNS = 10  # data columns per HTML table: beside Method, Source and Seeds, what fits a 1400 px page


def html_parts(groups: list[tuple[str, list[str]]]) -> list[list[tuple[str, list[str]]]]:
    """Column groups packed in order into tables of at most HTML_COLUMNS columns (a group is never split)."""
    parts: list[list] = []
    for group in groups:
        if parts and sum(len(ms) for _, ms in parts[-1]) + len(group[1]) <= HTML_COLUMNS:
            parts[-1].append(group)
        else:
            parts.append([group])
    return parts


def to_html(t: Table) -> str:
    """Grouped tables that fit a 1400 px page (accuracy, cost and speed; training; TCA/TSA). Sticky
    method column, aligned numbers, units and directions in the headers."""
    tables, first = [], 3
    for groups in html_parts([g for g in t.groups if g[1]]):
        count = sum(len(ms) for _, ms in groups)
        columns = range(first, first + count)
        if any(row[i].text != EMPTY for row in t.rows for i in columns):  # a block of dashes says nothing
            tables.append(_html_table(t, groups, columns))
        first += count
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in t.footnotes)
    return "".join(tables) + (f'<ul class="notes">{notes}</ul>' if notes else "")


def _html_table(t: Table, groups: list[tuple[str, list[str]]], columns: range) -> str:
    e = html.escape
    source = t.has_published  # without published rows every row is "measured here": the caption says so
    top = ['<th rowspan="2" class="sticky">Method</th>'] + (['<th rowspan="2">Source</th>'] if source else [])
    top.append('<th rowspan="2">Seeds</th>')
    top += [f'<th colspan="{len(ms)}" class="group">{e(title)}</th>' for title, ms in groups]
    second = [f'<th title="{e(BY_NAME[m].doc)}">{e(t.header(m))}</th>' for _, ms in groups for m in ms]
    body = []
    for row in t.rows:
        cls = "published" if row[1].text == PUBLISHED else "measured"
        cells = [f'<th class="sticky" scope="row">{e(row[0].text)}</th>']
        cells += [f"<td class='src'>{e(row[1].text)}</td>"] if source else []
        cells.append(f"<td class='num'>{e(row[2].text)}</td>")
        for c in (row[i] for i in columns):
            mark = f'<sup class="mark">{e(c.mark)}</sup>' if c.mark else ""
            title = f' title="{e(c.note)}"' if c.note else ""
            cells.append(f"<td class='num'{title}>{e(c.text)}{mark}</td>")
        body.append(f"<tr class='{cls}'>" + "".join(cells) + "</tr>")
    return (
        f'<div class="scroll"><table class="results"><thead><tr>{"".join(top)}</tr><tr>{"".join(second)}</tr>'
        f"</thead><tbody>{''.join(body)}</tbody></table></div>"
    )


def write_tables(agg: pd.DataFrame, published: pd.DataFrame, out: Path) -> list[dict]:
    """One table per (dataset, model) with measured rows; returns what was written (html for the index)."""
    written = []
    if agg.empty:
        return written
    for (dataset, model), rows in agg.groupby(["dataset", "model"], sort=True):
        paper = published[(published["dataset"] == dataset) & (published["model"] == model)]
        table = build(rows, paper, dataset, model)
        stem = out / f"table_{safe_name(dataset)}_{safe_name(model)}"
        write_text_atomic(stem.with_suffix(".md"), f"### {caption(table)}\n\n" + to_markdown(table))
        write_text_atomic(stem.with_suffix(".tex"), to_latex(table))
        write_text_atomic(stem.with_suffix(".csv"), to_csv(rows, paper))
        written.append(
            {
                "dataset": dataset,
                "model": model,
                "stem": stem.name,
                "rows": len(table.rows),
                "published_rows": len(paper),
                "html": to_html(table),
                "caption": caption(table),
            }
        )
    return written


__all__ = ["TRADEOFFS", "Table", "build", "caption", "tex_escape", "to_csv", "to_html", "to_latex", "write_tables"]


RUNTIME_HEADS = {  # the ONNX runtimes' columns say which file they time
    "onnxruntime": "onnxruntime<br>fastest exact form",
    "onnxruntime_plain": "onnxruntime<br>as exported plainly",
    "openvino": "openvino<br>fastest exact form",
    "openvino_plain": "openvino<br>as exported plainly",
}


def runtime_table(agg: pd.DataFrame) -> str:
    """Per runtime and batch: each row's speed-up over dense on that runtime and its latency (the dense row:
    its latency, the reference), ‡ where a timing was unreliable; the theoretical speed-up beside it."""
    rows = agg[agg["seeds"] > 0]
    if "runtime_cells" not in rows:
        return ""
    cells = {
        (r["label"], runtime, int(batch)): cell
        for _, r in rows.iterrows()
        for runtime, batches in (r["runtime_cells"] or {}).items()
        if "unavailable" not in batches
        for batch, cell in batches.items()
    }
    if not cells:
        return ""
    columns = sorted({(rt, b) for _, rt, b in cells}, key=lambda c: (c[1], c[0]))
    head = "".join(f"<th>{RUNTIME_HEADS.get(rt, html.escape(rt))}<br>batch {b}</th>" for rt, b in columns)

    def cell(r, rt, b) -> str:
        c = cells.get((r["label"], rt, b))
        if c is None:
            return "<td>–</td>"
        mark = "" if c["reliable"] else '<sup class="mark">‡</sup>'
        if r["method"] == "dense":
            return f"<td class='num'>1 (ref.), {c['ms']:.2f} ms{mark}</td>"
        forms = f"<br><span class='note'>{html.escape(c['forms'])}</span>" if c.get("forms") else ""
        return f"<td class='num'>{c['speedup']:.2f}x{mark}, {c['ms']:.2f} ms{forms}</td>"

    body = []
    for _, r in rows.iterrows():
        theory = r.get("speedup_theoretical")
        theory = f"{theory:.2f}x" if theory == theory and theory is not None else "–"
        values = "".join(cell(r, rt, b) for rt, b in columns)
        body.append(f"<tr><td>{html.escape(r['label'])}</td>{values}<td class='num'>{theory}</td></tr>")
    return (
        "<div class='scroll'><table class='results'><thead><tr><th>row</th>"
        f"{head}<th>theory</th></tr></thead><tbody>{''.join(body)}</tbody></table></div>"
    )
