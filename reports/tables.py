"""Tables in the paper's form (journal Tables IV-VI), one per (dataset, model), three formats.

Measured rows (mean ± std over seeds) and published rows (each with its own baseline) stand
side by side, the ``Source`` column telling them apart. The CSV keeps raw numbers (means and
``_std`` columns); Markdown and LaTeX (booktabs) show rounded ``mean ± std``.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

# (column in the data, header, scale, decimals)
COLUMNS = [
    ("base_top1", "Base top-1", 1, 2),
    ("top1", "Top-1", 1, 2),
    ("acc_drop", "Drop", 1, 2),
    ("flops", "FLOPs (M)", 1e-6, 2),
    ("flops_reduction_pct", "FLOPs cut %", 1, 2),
    ("params_nonzero", "Params (M)", 1e-6, 3),
    ("params_reduction_pct", "Params cut %", 1, 2),
    ("speedup_theoretical", "Speed-up (theory)", 1, 2),
    ("latency_ms", "Latency (ms)", 1, 3),
    ("speedup_measured", "Speed-up (measured)", 1, 2),
    ("tca_1_1", "TCA(1,1)", 1, 2),
    ("tsa_1_1", "TSA(1,1)", 1, 2),
    ("tca_1_4", "TCA(1,4)", 1, 2),
    ("tsa_1_4", "TSA(1,4)", 1, 2),
    ("tca_4_1", "TCA(4,1)", 1, 2),
    ("tsa_4_1", "TSA(4,1)", 1, 2),
]


def _cell(row, col, scale, digits) -> str:
    value = row.get(col)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "failed" if col == "top1" and row.get("failed") and not row.get("seeds") else "–"
    text = f"{value * scale:.{digits}f}"
    std = row.get(col + "_std")
    if std is not None and isinstance(std, float) and not math.isnan(std):
        text += f" ± {std * scale:.{digits}f}"
    return text


def display_frame(rows: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(
        {
            "Method": rows["label"],
            "Source": rows["source"],
            "Seeds": [("" if pd.isna(s) else str(int(s))) for s in rows["seeds"]],
        }
    )
    records = rows.to_dict("records")
    for col, header, scale, digits in COLUMNS:
        out[header] = [_cell(r, col, scale, digits) for r in records]
    return out


def to_markdown(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "|".join("---" if i < 3 else "---:" for i in range(len(frame.columns))) + "|"
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body]) + "\n"


def _tex_escape(text: str) -> str:
    for a, b in (
        ("\\", r"\textbackslash{}"),
        ("&", r"\&"),
        ("%", r"\%"),
        ("_", r"\_"),
        ("#", r"\#"),
        ("±", r"$\pm$"),
        ("–", "--"),
    ):
        text = text.replace(a, b)
    return text


def to_latex(frame: pd.DataFrame, caption: str) -> str:
    cols = "ll" + "r" * (len(frame.columns) - 2)
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        r"\scriptsize",
        rf"\caption{{{_tex_escape(caption)}}}",
        rf"\begin{{tabular}}{{{cols}}}",
        r"\toprule",
        " & ".join(_tex_escape(c) for c in frame.columns) + r" \\",
        r"\midrule",
    ]
    previous = None
    for row in frame.itertuples(index=False):
        if previous is not None and row[1] != previous:
            lines.append(r"\midrule")
        previous = row[1]
        lines.append(" & ".join(_tex_escape(str(v)) for v in row) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def write_tables(measured: pd.DataFrame, published: pd.DataFrame, out: Path) -> list[dict]:
    """One table per (dataset, model) that has measured rows; returns what was written."""
    written = []
    if measured.empty:
        return written
    for (dataset, model), rows in measured.groupby(["dataset", "model"], sort=True):
        paper = published[(published["dataset"] == dataset) & (published["model"] == model)]
        both = pd.concat([rows, paper], ignore_index=True) if len(paper) else rows
        stem = out / f"table_{dataset}_{model}"
        frame = display_frame(both)
        caption = f"{model} on {dataset}: measured here vs published (each published row has its own baseline)"
        stem.with_suffix(".md").write_text(f"### {model} on {dataset}\n\n" + to_markdown(frame))
        stem.with_suffix(".tex").write_text(to_latex(frame, caption))
        raw_cols = ["dataset", "model", "label", "source", "seeds", "failed"] + [
            c for c in both.columns if c.split("_std")[0] in {k for k, *_ in COLUMNS}
        ]
        both[raw_cols].to_csv(stem.with_suffix(".csv"), index=False, float_format="%.6g")
        written.append(
            {
                "dataset": dataset,
                "model": model,
                "stem": stem.name,
                "rows": len(both),
                "published_rows": len(paper),
                "html": frame.to_html(index=False, border=0),
            }
        )
    return written
