"""``tissuebench paper-figures``: every table and figure the paper publishes, from its published rows alone, or
with measured rows beside them (``--results``), naming every published row that has no measured counterpart.

:data:`ITEMS` is the one list of what the paper publishes and where each part comes from here: the README's
"Regenerate the paper's figures and tables" table is generated from it (``scripts/readme_tables.py``). The
published numbers are those of ``results/paper/`` (the journal's comparison tables) and, for the MNIST table
and the LeNet toy, the values ``docs/method.md`` quotes; what the paper only draws (its curves, Fig. 7's
ResNet-18 points) or times on its own hardware (Table VII) is not transcribed, and the page says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from reports import data, figures, plotting, tables
from reports.data import safe_name

# published method name -> the method that runs it here (TissueNet rows: the preset built for that row)
COUNTERPARTS = {"FPGM": "prune_fpgm", "PFEC": "prune_pfec", "PFEC (L1-norm)": "prune_pfec", "Taylor": "prune_taylor"}
TISSUENET_ROWS = ("Ours", "Ours('r')")
# Table III (MNIST, 784-500-300-10 MLP), ratio form (docs/method.md §5): (method, TCA_ratio, TSA_ratio)
TABLE3 = (("SSL", 6.40, 6.10), ("CAC", 6.42, 6.12), ("BUnit-Net", 36.06, 27.29))
TABLE1_WEIGHTS = 1410  # the LeNet-5-like toy's TissueNet form (Table I)


@dataclass(frozen=True)
class Item:
    """One published table or figure and how this suite regenerates it."""

    name: str
    content: str
    suites: tuple[str, ...]  # the shipped suites whose runs measure it ((): computed, no training)
    published: str  # what of it is transcribed here


ITEMS = (
    Item("Table I", "the LeNet-5-like toy's weights (1,410)", (), "the weight count: compared with this code's count"),
    Item("Table III", "MNIST MLP against SSL and CAC, TCA/TSA in the ratio form", ("paper-mnist-mlp",), "3 rows"),
    Item(
        "Tables IV-VI",
        "CIFAR-10, CIFAR-100, Tiny-ImageNet and ImageNet: accuracy, FLOPs and params cuts, TCA/TSA, against 20 "
        "published methods",
        ("paper-cifar10", "paper-cifar100", "paper-tiny-imagenet", "paper-imagenet"),
        "56 rows (results/paper/bunitnet_tables.csv)",
    ),
    Item("Table VII", "latency of four networks", ("paper-cifar10",), "not transcribed (timed on the authors' GPU)"),
    Item(
        "Fig. 6",
        "test accuracy and loss per epoch, dense vs TissueNet",
        ("paper-cifar10", "paper-cifar100"),
        "not transcribed (drawn only); measured for each suite's models",
    ),
    Item(
        "Fig. 7",
        "top-1 drop against FLOPs cut at several operating points per method",
        ("paper-cifar10", "paper-cifar100"),
        "the table rows' points; the figure's ResNet-18 points are drawn only",
    ),
)
SUITE_FIGURES = {"Table VII": "latency", "Fig. 6": "curves", "Fig. 7": "tradeoff"}  # the report figure that draws it


def published_frame() -> pd.DataFrame:
    return data.published()


def measured_frame(folders: list[Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(aggregated measured rows, their per-epoch history) of every results folder given."""
    loaded = [data.load(Path(f)) for f in folders]
    rows = pd.concat([x.rows for x in loaded if len(x.rows)], ignore_index=True) if loaded else pd.DataFrame()
    history = pd.concat([x.history for x in loaded if len(x.history)], ignore_index=True) if loaded else pd.DataFrame()
    return (data.aggregate(rows) if len(rows) else pd.DataFrame()), history


def counterpart(row, measured: pd.DataFrame) -> tuple[str, bool]:
    """(the label of a published row's counterpart here, whether a measured row has it)."""
    if row["label"] in TISSUENET_ROWS:
        from baselines.reference import load_presets

        presets = [p.name for p in load_presets().values() if p.row == row["label"] and p.backbone == row["model"]]
        presets = [p for p in presets if p.split("-")[0] == row["dataset"]]
        name = f"tissuenet (preset {presets[0]})" if presets else "tissuenet (no preset)"
        found = len(measured) and presets and (measured.get("preset") == presets[0]).any()
        return name, bool(found)
    method = COUNTERPARTS.get(row["label"])
    if method is None:
        return "", False
    return method, bool(len(measured) and (measured["family"] == method).any())


def without_counterpart(published: pd.DataFrame, measured: pd.DataFrame) -> list[dict]:
    """Every published row with no measured row here: not implemented, or not run yet."""
    out = []
    for _, row in published.iterrows():
        mine = measured[(measured["dataset"] == row["dataset"]) & (measured["model"] == row["model"])] if len(
            measured
        ) else measured  # fmt: skip
        name, found = counterpart(row, mine)
        if not found:
            why = f"{name}: no measured row yet" if name else "not implemented in this suite"
            out.append({"dataset": row["dataset"], "model": row["paper_model"], "method": row["label"], "why": why})
    return out


def _chart_rows(agg: pd.DataFrame, published: pd.DataFrame) -> pd.DataFrame:
    """Measured and published rows in the columns the TCA/TSA chart reads (published: one 'seed', no spread)."""
    pub = published.assign(seeds=1, target="", label=published["label"] + " (published)")
    for col in tables.TRADEOFFS:
        pub[f"{col}_std"] = 0.0
    return pd.concat([agg, pub], ignore_index=True) if len(agg) else pub


def _empty_measured() -> pd.DataFrame:
    columns = ["dataset", "model", "label", "family", "method", "target", "seeds", "macs_effective_reduction_pct",
               "acc_drop", "acc_drop_std", "compute_vs_dense"]  # fmt: skip
    return pd.DataFrame(columns=columns)


def write(out: Path, folders: list[Path]) -> dict:
    """Every table and figure in ``out`` (its own folder, replaced whole like a report); returns a summary."""
    from reports.build import write_folder

    return write_folder(out, lambda folder: _write_into(folder, [Path(f) for f in folders]))


def _write_into(out: Path, folders: list[Path]) -> dict:
    summary = build(out, folders)
    summary |= {"table1": table1(), "table3": table3(summary["measured"])}
    write_page(out / "index.html", summary)
    return summary


def table1() -> dict:
    """The LeNet-5-like toy's TissueNet weights: published, and counted on this code's model."""
    from tissuenet import create_model

    model = create_model("tissue_lenet5")
    weights = sum(p.numel() for n, p in model.named_parameters() if n.endswith("weight") and p.dim() > 1)
    return {"published": TABLE1_WEIGHTS, "measured": int(weights)}


def table3(measured: pd.DataFrame) -> list[dict]:
    """Table III's rows (ratio-form TCA/TSA), each with the measured TissueNet MLP's where runs hold it."""
    mlp = measured[(measured["dataset"] == "mnist") & (measured["family"] == "tissuenet")] if len(measured) else None
    out = []
    for method, tca, tsa in TABLE3:
        row = {"method": method, "tca_ratio": tca, "tsa_ratio": tsa, "measured_tca": None, "measured_tsa": None}
        if method == "BUnit-Net" and mlp is not None and len(mlp) and "tca_ratio" in mlp:
            row |= {"measured_tca": float(mlp["tca_ratio"].iloc[0]), "measured_tsa": float(mlp["tsa_ratio"].iloc[0])}
        out.append(row)
    return out


def build(out: Path, folders: list[Path]) -> dict:
    """Write every table and figure of the comparison tables into ``out``."""
    published = published_frame()
    measured, history = measured_frame(folders) if folders else (pd.DataFrame(), pd.DataFrame())
    sections = []
    with plt.style.context(str(plotting.STYLE)):
        for (dataset, model), pub in published.groupby(["dataset", "model"], sort=True):
            mine = measured[(measured["dataset"] == dataset) & (measured["model"] == model)] if len(measured) else None
            agg = mine if mine is not None and len(mine) else _empty_measured()
            title = f"{pub['paper_model'].iloc[0]} on {dataset}"
            stem = f"{safe_name(dataset)}_{safe_name(model)}"
            drawn = []
            fig, _, caption = figures.tradeoff(agg, pub, title)
            drawn.append(("Fig. 7 form", caption, plotting.save(fig, out / f"fig_tradeoff_{stem}")))
            fig, _, caption = figures.tca_tsa(_chart_rows(agg if len(agg) else pd.DataFrame(), pub), title)
            drawn.append(("Tables IV-VI as charts", caption, plotting.save(fig, out / f"fig_tca_tsa_{stem}")))
            if len(history) and mine is not None and len(mine):
                hist = history[(history["dataset"] == dataset) & (history["model"] == model)]
                fig, _, caption = figures.curves(hist, agg, title)
                drawn.append(("Fig. 6 form", caption, plotting.save(fig, out / f"fig_curves_{stem}")))
            table = tables.build(agg if len(agg) and "top1" in agg else pd.DataFrame(), pub, dataset, model)
            (out / f"table_{stem}.md").write_text(f"### {tables.caption(table)}\n\n" + tables.to_markdown(table))
            sections.append({"dataset": dataset, "model": model, "title": title, "table": table, "figures": drawn})
    missing = without_counterpart(published, measured)
    pd.DataFrame(missing, columns=["dataset", "model", "method", "why"]).to_csv(out / "missing.csv", index=False)
    return {"sections": sections, "missing": missing, "measured": measured, "folders": folders}


def _number(value) -> str:
    return "–" if value is None else f"{value:.2f}"


def write_page(path: Path, summary: dict) -> None:
    """The index page: what the paper publishes, each part beside its measured counterpart or saying there is none."""
    import html

    from benchmarks.store.files import write_text_atomic
    from reports.index import CSS

    e = html.escape
    folders = summary["folders"]
    source = (
        f"measured rows from {e(', '.join(str(f) for f in folders))} beside the published ones"
        if folders
        else "the published rows alone (no --results: nothing measured is shown)"
    )
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>tissuebench: the paper's figures</title>",
        f"<style>{CSS}</style></head><body><h1>The paper's tables and figures</h1>",
        f"<p>BUnit-Net (IEEE TPAMI 2024), regenerated from {source}. Published rows are each against the baseline "
        "of the paper they were copied from; measured rows share one dense model.</p>",
        "<h2>What the paper publishes, and where it comes from here</h2>",
        "<table class='plain wrap'><thead><tr><th>item</th><th>content</th><th>transcribed here</th>"
        "<th>measured by</th></tr></thead><tbody>",
        *(
            f"<tr><td>{e(i.name)}</td><td>{e(i.content)}</td><td>{e(i.published)}</td>"
            f"<td>{e(', '.join(i.suites) or 'counted, no training')}</td></tr>"
            for i in ITEMS
        ),
        "</tbody></table>",
    ]
    t1 = summary["table1"]
    parts.append(
        f"<h2>Table I</h2><p>The LeNet-5-like toy's TissueNet form: {t1['published']:,} weights published, "
        f"{t1['measured']:,} counted on this code's <code>tissue_lenet5</code>.</p>"
    )
    rows3 = "".join(
        f"<tr><td>{e(r['method'])}</td>"
        + "".join(
            f"<td class='num'>{_number(r[k])}</td>" for k in ("tca_ratio", "tsa_ratio", "measured_tca", "measured_tsa")
        )
        + "</tr>"
        for r in summary["table3"]
    )
    parts.append(
        "<h2>Table III</h2><p>MNIST, the 784-500-300-10 MLP, TCA and TSA in the ratio form "
        "((f_b / f_n)(a_n / a_b)); measured: the TissueNet MLP of <code>paper-mnist-mlp</code>.</p>"
        "<table class='plain'><thead><tr><th>method</th><th>TCA, published</th><th>TSA, published</th>"
        f"<th>TCA, measured</th><th>TSA, measured</th></tr></thead><tbody>{rows3}</tbody></table>"
    )
    for section in summary["sections"]:
        parts.append(f"<h2>{e(section['title'])} (Tables IV-VI)</h2>{tables.to_html(section['table'])}")
        for name, caption, files in section["figures"]:
            png = next(x for x in files if x.endswith(".png"))
            parts.append(f"<figure><img src='{e(png)}' alt='{e(name)}'><figcaption><b>{e(name)}.</b> {e(caption)}"
                         "</figcaption></figure>")  # fmt: skip
    missing = summary["missing"]
    parts.append(f"<h2>Published rows without a measured counterpart</h2><p>{len(missing)} rows.</p><ul>")
    parts += [f"<li>{e(m['dataset'])} {e(m['model'])} <b>{e(m['method'])}</b>: {e(m['why'])}</li>" for m in missing]
    parts.append("</ul></body></html>\n")
    write_text_atomic(path, "\n".join(parts))
