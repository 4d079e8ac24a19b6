"""Figures of the paper, from measured runs (journal Figs. 6-7, Tables IV-VII as charts).

Every figure is drawn with one style file, saved as PNG, SVG and PDF with metadata pinned so
the same results give the same bytes, and returns the legend labels it shows (for tests and
the report manifest). Published points are hollow markers; measured ones are filled.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

STYLE = Path(__file__).with_name("tissuebench.mplstyle")
METADATA = {
    "png": {"Software": None},
    "svg": {"Date": None, "Creator": None},
    "pdf": {"CreationDate": None, "Producer": None, "Creator": None},
}
FORMATS = ("png", "svg", "pdf")


def save(fig, stem: Path) -> list[str]:
    files = []
    for ext in FORMATS:
        path = stem.with_suffix(f".{ext}")
        fig.savefig(path, format=ext, metadata=METADATA[ext])
        files.append(path.name)
    plt.close(fig)
    return files


def _legend(ax) -> list[str]:
    handles, labels = ax.get_legend_handles_labels()
    if labels:
        ax.legend(handles, labels, loc="best")
    return labels


def _styles(families) -> dict:
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    markers = "osD^v<>ph*"
    return {f: (colors[i % len(colors)], markers[(i // len(colors)) % len(markers)]) for i, f in enumerate(families)}


def tradeoff(rows: pd.DataFrame, published: pd.DataFrame, title: str):
    """Accuracy drop vs FLOPs reduction, a curve per method across its targets (Fig. 7 form)."""
    fig, ax = plt.subplots()
    ok = rows[rows["status"] == "ok"]
    style = _styles(sorted(ok["family"].unique()))
    for fam, group in ok.groupby("family", sort=True):
        stats = (
            group.groupby("label")
            .agg(x=("flops_reduction_pct", "mean"), y=("acc_drop", "mean"), yerr=("acc_drop", "std"))
            .sort_values("x")
        )
        color, marker = style[fam]
        ax.errorbar(
            stats["x"], stats["y"], yerr=stats["yerr"].fillna(0), color=color, marker=marker, capsize=2, label=fam
        )
    for i, (name, group) in enumerate(published.groupby("label", sort=True)):
        ax.scatter(
            group["flops_reduction_pct"],
            group["acc_drop"],
            facecolors="none",
            edgecolors=f"C{i % 10}",
            marker="o",
            s=36,
            label=f"{name} (published)",
        )
    ax.axhline(0, color="0.5", lw=0.6)
    ax.set(xlabel="FLOPs reduction (%)", ylabel="top-1 accuracy drop (points)", title=title)
    return fig, _legend(ax)


def accuracy_vs_params(rows: pd.DataFrame, title: str):
    """Top-1 vs nonzero parameters (log scale); the Pareto front (fewer params, higher accuracy)."""
    fig, ax = plt.subplots()
    ok = rows[rows["status"] == "ok"]
    style = _styles(sorted(ok["family"].unique()))
    for fam, group in ok.groupby("family", sort=True):
        color, marker = style[fam]
        ax.scatter(group["params_nonzero"], group["top1"], color=color, marker=marker, label=fam)
    front = pareto_front(ok["params_nonzero"].to_numpy(float), ok["top1"].to_numpy(float))
    if len(front):
        pts = ok.iloc[front].sort_values("params_nonzero")
        ax.step(pts["params_nonzero"], pts["top1"], where="post", color="k", lw=1, alpha=0.6)
        ax.scatter(
            pts["params_nonzero"], pts["top1"], s=140, facecolors="none", edgecolors="k", lw=1.2, label="Pareto front"
        )
    ax.set_xscale("log")
    ax.set(xlabel="nonzero parameters", ylabel="top-1 accuracy (%)", title=title)
    return fig, _legend(ax)


def pareto_front(cost: np.ndarray, acc: np.ndarray) -> list[int]:
    """Indices of points no other point beats on both (lower cost, higher accuracy)."""
    order = np.lexsort((-acc, cost))
    front, best = [], -np.inf
    for i in order:
        if acc[i] > best:
            front.append(int(i))
            best = acc[i]
    return front


def curves(history: pd.DataFrame, title: str):
    """Test accuracy and test loss per epoch (Fig. 6 form): dense and TissueNet bold, others thin."""
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.6))
    if history.empty:
        return fig, []
    history = history.assign(family=history["label"].str.split("@").str[0])
    style = _styles(sorted(history["family"].unique()))
    for label, group in history.groupby("label", sort=True):
        mean = group.groupby("epoch")[["test_top1", "test_loss"]].mean()
        fam = label.split("@")[0]
        bold = fam == "dense" or fam.startswith("tissue")
        kw = dict(color=style[fam][0], lw=1.8 if bold else 0.8, alpha=1 if bold else 0.7, marker="o" if bold else ".")
        a1.plot(mean.index, mean["test_top1"], label=label, **kw)
        a2.plot(mean.index, mean["test_loss"], **kw)
    a1.set(xlabel="epoch", ylabel="test top-1 (%)", title=title)
    a2.set(xlabel="epoch", ylabel="test loss")
    handles, labels = a1.get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=4)
    return fig, labels


def tca_tsa(agg: pd.DataFrame, title: str):
    """TCA and TSA per method at (1,1), (1,4), (4,1) (Tables IV-VI as charts); log scale."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    rows = agg[agg["seeds"].fillna(0) > 0]
    labels = list(rows["label"])
    x = np.arange(len(labels))
    for ax, metric in zip(axes, ("tca", "tsa")):
        for k, (w1, w2) in enumerate(((1, 1), (1, 4), (4, 1))):
            col = f"{metric}_{w1}_{w2}"
            ax.bar(x + (k - 1) * 0.27, rows[col], 0.27, yerr=rows[col + "_std"].fillna(0), label=f"({w1},{w2})")
        ax.axhline(1, color="0.3", lw=0.7)
        ax.set_xticks(x, labels, rotation=60, ha="right")
        ax.set_yscale("log")
        ax.set_title(f"{metric.upper()}: {title}")
    axes[0].legend(title="(w1, w2)")
    return fig, labels


def latency(agg: pd.DataFrame, title: str):
    """Measured speed-up (batch-1 latency) vs theoretical speed-up (MACs), with y = x."""
    fig, ax = plt.subplots()
    rows = agg[agg["seeds"].fillna(0) > 0]
    style = _styles(sorted(rows["family"].unique()))
    for _, r in rows.iterrows():
        color, marker = style[r["family"]]
        ax.scatter(r["speedup_theoretical"], r["speedup_measured"], color=color, marker=marker, label=r["label"])
    hi = float(np.nanmax(rows[["speedup_theoretical", "speedup_measured"]].to_numpy(float), initial=1.0)) * 1.1
    ax.plot([0, hi], [0, hi], color="0.5", lw=0.8, ls="--", label="y = x")
    ax.set(xlabel="theoretical speed-up (dense MACs / MACs)", ylabel="measured speed-up (latency)", title=title)
    return fig, _legend(ax)
