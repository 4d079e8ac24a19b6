"""The nightly trend page: each job's top-1, effective MACs and speed-up over nights, asv-style.

One figure per job (three panels), x = nights in order (date and commit under each tick), the
reference drawn as a band: its value (line) and its bound (dashed; the shaded side is allowed).
A night that falls outside the bound is a red cross. Written to ``<suite root>/trend/``.
"""

from __future__ import annotations

import html
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from benchmarks.gate.judge import judge, rule_of  # noqa: E402
from benchmarks.store.files import write_text_atomic  # noqa: E402
from benchmarks.store.metric_table import BY_NAME  # noqa: E402
from reports import plotting  # noqa: E402
from reports.data import safe_name  # noqa: E402

PANELS = tuple((m, BY_NAME[m].title, BY_NAME[m].scale) for m in ("top1", "macs_effective", "speedup_measured"))


def _ticks(nights: pd.DataFrame) -> list[str]:
    return [f"{d[4:6]}-{d[6:8]}\n{c[:7]}{'*' if dirty else ''}" for d, c, dirty in nights.itertuples(index=False)]


def _panel(ax, x, values, metric: str, title: str, scale: float, ref: dict | None) -> None:
    ys = [v * scale if v is not None and not (isinstance(v, float) and math.isnan(v)) else math.nan for v in values]
    ax.plot(x, ys, marker="o", color="#0072B2", lw=1.2, ms=4)
    if ref is not None and metric in ref and not pd.isna(ref[metric]):
        rule, bound = rule_of(ref, metric, None)
        value = float(ref[metric])
        ax.axhline(value * scale, color="#555555", lw=0.8)
        ax.axhline(bound * scale, color="#555555", lw=0.8, ls="--")
        lo, hi = sorted((value * scale, bound * scale))
        ax.axhspan(lo, hi, color="#999999", alpha=0.18, lw=0)
        bad = [(xi, yi) for xi, v, yi in zip(x, values, ys) if judge(metric, v, value, rule, bound) == "regressed"]
        if bad:
            ax.plot(*zip(*bad), ls="none", marker="x", color="#D55E00", ms=9, mew=2)
    ax.set_title(title, fontsize=9)
    ax.margins(x=0.15)


def write_trend(
    history: pd.DataFrame, reference: pd.DataFrame | None, out: Path, suite: str, overrides: str = ""
) -> Path:
    """``out/index.html`` and one PNG per job; returns the page's path. ``overrides``: the ``--set`` of a quick
    pass (the page says so, and why it has no reference band when there is no reference for that variant)."""
    out.mkdir(parents=True, exist_ok=True)
    refs = reference.set_index("job_id").to_dict("index") if reference is not None else {}
    history = history.sort_values(["started_utc", "night"], kind="stable")
    order = history[["night", "date", "commit", "dirty"]].drop_duplicates("night").reset_index(drop=True)
    position = {n: i for i, n in enumerate(order["night"])}
    sections = []
    with plt.style.context(str(plotting.STYLE)):
        for (dataset, model, label), rows in history.groupby(["dataset", "model", "label"], sort=True):
            rows = rows.sort_values(["started_utc", "night"])
            job_id = rows["job_id"].iloc[-1]
            ref = refs.get(job_id)
            fig, axes = plt.subplots(1, len(PANELS), figsize=(10, 2.6))
            x = [position[n] for n in rows["night"]]
            for ax, (metric, title, scale) in zip(axes, PANELS):
                _panel(
                    ax, x, rows[metric].tolist() if metric in rows else [None] * len(rows), metric, title, scale, ref
                )
                ax.set_xticks(range(len(order)), _ticks(order[["date", "commit", "dirty"]]), fontsize=7)
            fig.suptitle(f"{label} ({model} on {dataset})", fontsize=10)
            fig.tight_layout()
            stem = out / safe_name(f"{dataset}_{model}_{label}").replace(".", "_")
            files = plotting.save(fig, stem)
            png = next(f for f in files if f.endswith(".png"))
            sections.append(f"<h2>{html.escape(label)}</h2><img src='{html.escape(png)}' alt='{html.escape(label)}'>")
    nights = "".join(
        f"<tr><td>{html.escape(r.night)}</td><td>{html.escape(r.date)}</td><td><code>{html.escape(r.commit)}</code>"
        f"</td><td>{'yes' if r.dirty else ''}</td></tr>"
        for r in order.itertuples(index=False)
    )
    page = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>tissuebench nightly: "
        f"{html.escape(suite)}</title><style>body{{font-family:sans-serif;max-width:1100px;margin:auto}}"
        "img{max-width:100%}td,th{padding:2px 8px}</style></head><body>"
        f"<h1>Nightly trend: {html.escape(suite)}</h1><p>Each job's final top-1, effective MACs and measured speed-up,"
        " night by night (a night is one commit; * marks uncommitted code). Solid line: the reference value; dashed:"
        " its bound (the shaded side is allowed); a red cross: a night outside the bound. Bounds are the committed"
        " reference's (one-sided prediction intervals from its seeds, 99 % for a whole run; costs fixed by"
        " the architecture may not rise).</p>"
        + (
            f"<p class='gap'><b>A quick pass</b>, not the suite as written: every night ran with <code>--set "
            f"{html.escape(overrides)}</code>.</p>"
            if overrides
            else ""
        )
        + (
            f"<p class='gap'>No reference for {html.escape(suite)}: no band is drawn and no night is judged (make "
            "one with <code>tissuebench check --update --tolerance-from SEEDS</code>).</p>"
            if reference is None
            else ""
        )
        + f"<table><tr><th>night</th><th>date</th><th>commit</th><th>dirty</th></tr>{nights}</table>"
        + "".join(sections)
        + "</body></html>\n"
    )
    return write_text_atomic(out / "index.html", page)
