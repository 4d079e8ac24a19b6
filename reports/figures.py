"""The paper's figures, from measured runs (journal Figs. 6-7; Tables IV-VII as charts).

One style file (``tissuebench.mplstyle``: Okabe-Ito colours, fonts readable at column width).
Every figure has one title, axis labels with units, says which way is better where it is a
trade-off, and shows error bars or bands only when a row has more than one seed (then mean ± std,
said in the caption). A method family keeps one colour; its targets get different markers.
Figures are saved as PNG, SVG and PDF with metadata pinned, so the same results give the same bytes.
Each function returns (figure, legend labels, caption).
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator

from reports.plotting import (
    MARKERS,
    PUBLISHED_MARKERS,
    colours,
    families,
    legend,
    legend_label,
    nothing_measured,
    reader,
    seeds_note,
)
from reports.tables import RUNTIME_HEADS

SPIKE = 4.0  # a test loss above 4x the median loss is clipped (and the figure says so)


def _target_points(ax, rows: pd.DataFrame, x: str, y: str, colour) -> list[str]:
    """One family's rows: its colour, one marker per target, mean ± std error bars only with several seeds."""
    labels = []
    for k, (_, r) in enumerate(rows.iterrows()):
        ax.errorbar(
            r[x],
            r[y],
            yerr=r[f"{y}_std"] if r["seeds"] > 1 else None,
            color=colour,
            marker=MARKERS[k % len(MARKERS)],
            ls="none",
            capsize=3,
            label=legend_label(r),
        )
        labels.append(legend_label(r))
    return labels


def tradeoff(agg: pd.DataFrame, published: pd.DataFrame, title: str):
    """Top-1 drop vs FLOPs cut (Fig. 7): each method's targets connected, published points hollow."""
    fig, ax = plt.subplots()
    ok = agg[agg["seeds"] > 0]
    fams = families(ok)
    colour = colours(families(agg))
    labels = []
    for fam in fams:
        rows = ok[ok["family"] == fam].sort_values("macs_effective_reduction_pct")
        ax.plot(rows["macs_effective_reduction_pct"], rows["acc_drop"], color=colour[fam], lw=1.2, alpha=0.8)
        labels += _target_points(ax, rows, "macs_effective_reduction_pct", "acc_drop", colour[fam])
        for _, r in rows.iterrows():  # the training compute each point cost, relative to its dense reference
            if not pd.isna(r.get("compute_vs_dense")):
                ax.annotate(
                    f"{r['compute_vs_dense']:.2f}x",
                    (r["macs_effective_reduction_pct"], r["acc_drop"]),
                    xytext=(4, 4),
                    textcoords="offset points",
                    fontsize=6,
                    color=colour[fam],
                )
    for i, (name, rows) in enumerate(published.groupby("label", sort=True)):
        ax.scatter(
            rows["macs_effective_reduction_pct"],
            rows["acc_drop"],
            facecolors="none",
            edgecolors="0.4",
            marker=PUBLISHED_MARKERS[i % len(PUBLISHED_MARKERS)],
            s=40,
            label=f"{name} (published)",
        )
        labels.append(f"{name} (published)")
    ax.axhline(0, color="0.5", lw=0.8)
    ax.set(xlabel="FLOPs cut, effective (%)", ylabel="top-1 drop vs dense (points)")
    ax.set_title(title)
    legend(ax, "better: ↘ (larger cut, smaller drop)", ncol=1 + len(labels) // 16)
    caption = (
        f"Top-1 accuracy drop against the FLOPs cut (the paper's Fig. 7); each method's targets are "
        f"connected; beside each point its training compute relative to its dense reference (all phases: a "
        f"fine-tuned row includes the dense training it starts from); hollow: published rows, each against its "
        f"own baseline; {seeds_note(ok)}."
    )
    return fig, labels, caption


def _si(value, _pos=None) -> str:
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:g}{suffix}"
    return f"{value:g}"


def accuracy_vs_params(agg: pd.DataFrame, title: str):
    """Top-1 vs nonzero parameters (log axis, readable ticks) and the Pareto front."""
    fig, ax = plt.subplots()
    ok = agg[(agg["seeds"] > 0) & agg["params_nonzero"].notna()]
    fams = families(ok)
    colour = colours(families(agg))
    labels = []
    for fam in fams:
        rows = ok[ok["family"] == fam].sort_values("params_nonzero")
        labels += _target_points(ax, rows, "params_nonzero", "top1", colour[fam])
    front = pareto_front(ok["params_nonzero"].to_numpy(float), ok["top1"].to_numpy(float))
    pts = ok.iloc[front].sort_values("params_nonzero")
    if len(front) > 1:  # one point is no line: the caption names the row that dominates the others
        ax.step(pts["params_nonzero"], pts["top1"], where="post", color="0.2", lw=1, alpha=0.6, label="Pareto front")
        labels.append("Pareto front")
        front_note = "the line is the Pareto front"
    else:
        front_note = f"{legend_label(pts.iloc[0])} has fewer parameters and higher accuracy than every other row"
    ax.set_xscale("log")
    ax.set_xlim(*_log_limits(ok["params_nonzero"].to_numpy(float)))
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(_si))
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, p: ""))
    ax.set(xlabel="nonzero parameters (log scale)", ylabel="top-1 accuracy (%)")
    ax.set_title(title)
    legend(ax, "better: ↖ (fewer parameters, higher accuracy)")
    return fig, labels, f"Top-1 accuracy against nonzero parameters; {front_note}; {seeds_note(ok)}."


def _log_limits(values: np.ndarray) -> tuple[float, float]:
    """From the 1-2-5 tick at or below the smallest value (so the leftmost point has a labelled tick to
    its left) to a little beyond the largest."""
    values = values[values > 0]
    if not len(values):
        return 1.0, 10.0
    low = values.min() / 1.1
    decade = 10 ** np.floor(np.log10(low))
    nice = max(s * decade for s in (1, 2, 5) if s * decade <= low)
    return float(nice), float(values.max() * 1.15)


def pareto_front(cost: np.ndarray, acc: np.ndarray) -> list[int]:
    """Indices of points no other point beats on both (lower cost, higher accuracy)."""
    order = np.lexsort((-acc, cost))
    front, best = [], -np.inf
    for i in order:
        if acc[i] > best:
            front.append(int(i))
            best = acc[i]
    return front


def curves(history: pd.DataFrame, agg: pd.DataFrame, title: str):
    """Test accuracy and loss per epoch (Fig. 6): dense and TissueNet bold; fine-tuning continues the dense curve."""
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.2))
    labels, note = [], ""
    if history.empty:
        for ax in (a1, a2):
            nothing_measured(ax, "no per-epoch history")
        fig.suptitle(title)
        return fig, labels, "Not measured: no per-epoch history."
    fams = families(agg) if len(agg) else sorted(history["label"].map(lambda s: s.split("@")[0]).unique())
    colour = colours(fams)
    dense_hist = history[history["phase"] == "dense"]
    dense_end = int(dense_hist["epoch"].max()) if len(dense_hist) else 0
    dense_last = dense_hist[dense_hist["epoch"] == dense_end][["test_top1", "test_loss"]].mean() if dense_end else None
    losses = []
    for label, group in history.groupby("label", sort=True):
        fam = label.split("@")[0]
        seeds = group["seed"].nunique()
        mean = group.groupby("epoch")[["test_top1", "test_loss"]].agg(["mean", "std"])
        x = mean.index.to_numpy()
        phase = group["phase"].iloc[0]
        if phase == "finetune" and dense_last is not None:  # a continuation of the dense curve
            x = np.concatenate([[dense_end], x + dense_end])
            mean = pd.concat(
                [
                    pd.DataFrame(
                        {
                            ("test_top1", "mean"): [dense_last["test_top1"]],
                            ("test_loss", "mean"): [dense_last["test_loss"]],
                            ("test_top1", "std"): [np.nan],
                            ("test_loss", "std"): [np.nan],
                        }
                    ),
                    mean.reset_index(drop=True),
                ],
                ignore_index=True,
            )
        bold = phase in ("dense", "scratch") and (fam == "dense" or fam.startswith("tissue"))
        style = dict(color=colour.get(fam, "0.5"), lw=2.2 if bold else 1.0, alpha=1.0 if bold else 0.75)
        for ax, key in ((a1, "test_top1"), (a2, "test_loss")):
            m, s = mean[(key, "mean")].to_numpy(float), mean[(key, "std")].to_numpy(float)
            ax.plot(
                x,
                m,
                marker="o" if len(x) < 15 else None,
                ms=3,
                label=reader(label) if key == "test_top1" else None,
                **style,
            )
            if seeds > 1:
                ax.fill_between(x, m - np.nan_to_num(s), m + np.nan_to_num(s), color=style["color"], alpha=0.15, lw=0)
        losses += list(mean[("test_loss", "mean")].dropna())
        labels.append(reader(label))
    if losses:
        median = float(np.median(losses))
        if max(losses) > SPIKE * median:
            top = SPIKE * median
            a2.set_ylim(bottom=0, top=top)
            note = f" Loss axis clipped at {top:.2f} (a spike reached {max(losses):.1f})."
            a2.text(
                0.98,
                0.97,
                f"clipped at {top:.2f}",
                transform=a2.transAxes,
                ha="right",
                va="top",
                fontsize=9,
                color="0.35",
            )
    for ax in (a1, a2):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
    a1.set_ylabel("test top-1 accuracy (%)")
    a2.set_ylabel("test loss (cross-entropy)")
    fig.suptitle(title)
    fig.legend(*a1.get_legend_handles_labels(), loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=4)
    bands = " Bands: mean ± std over seeds." if history["seed"].nunique() > 1 else ""
    caption = (
        f"Test accuracy and loss per epoch (the paper's Fig. 6); fine-tuning continues from the dense "
        f"model's last epoch ({dense_end}).{bands}{note}"
    )
    return fig, labels, caption


def tca_tsa(agg: pd.DataFrame, title: str):
    """TCA and TSA per method at the three weightings (Tables IV-VI as charts), linear axes, dense = 1."""
    from tissuenet.metrics import WEIGHTINGS

    rows = agg[(agg["seeds"] > 0) & (agg["method"] != "dense")]
    fig, axes = plt.subplots(
        1, len(WEIGHTINGS), figsize=(12, 0.45 * max(len(rows), 3) + 2.0), sharey=True, layout="constrained"
    )
    names = [legend_label(r) for _, r in rows.iterrows()]
    y = np.arange(len(rows))
    shades = (("tca", "0.25"), ("tsa", "0.62"))  # greys: the palette's colours mean method families elsewhere
    for ax, (w1, w2) in zip(axes, WEIGHTINGS):
        for k, (metric, colour) in enumerate(shades):
            col = f"{metric}_{w1}_{w2}"
            err = rows[f"{col}_std"].where(rows["seeds"] > 1).fillna(0).to_numpy()
            ax.barh(
                y + (k - 0.5) * 0.4,
                rows[col],
                0.4,
                xerr=err if err.any() else None,
                color=colour,
                label=metric.upper(),
                capsize=2,
            )
        ax.axvline(1, color="0.3", lw=0.9, ls="--")
        ax.set_title(f"(w1, w2) = ({w1}, {w2})")
        ax.set_xlabel("score (dense = 1; higher is better →)")
    axes[0].set_yticks(y, names)
    axes[0].invert_yaxis()
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncol=2)
    fig.suptitle(title)
    caption = (
        "TCA (FLOPs) and TSA (parameters) per method at the paper's three weightings; the dashed line is "
        f"the dense model (1); linear axes; {seeds_note(rows)}."
    )
    return fig, names, caption


def latency(agg: pd.DataFrame, title: str):
    """Realized fraction of the theoretical speed-up (measured / theory) per method, IQR error bars."""
    rows = agg[(agg["seeds"] > 0) & (agg["method"] != "dense") & agg["speedup_measured"].notna()]
    trusted = rows[rows["speedup_reliable"] & ~rows["speedup_suspect"]]
    left_out = [legend_label(r) for _, r in rows.iterrows() if r.name not in trusted.index]
    fig, ax = plt.subplots(figsize=(6.4, 0.45 * max(len(trusted), 3) + 1.4))
    names = [legend_label(r) for _, r in trusted.iterrows()]
    if len(trusted):
        realized = trusted["speedup_measured"] / trusted["speedup_theoretical"]
        err = (trusted["speedup_iqr"] / 2 / trusted["speedup_theoretical"]).fillna(0)
        y = np.arange(len(trusted))
        colour = colours(families(agg))  # every figure gives a family the same colour
        ax.barh(y, realized, xerr=err, color=[colour[f] for f in trusted["family"]], capsize=3)
        right = max(1.0, float((realized + err).max())) * 1.03
        for yi, r in enumerate(trusted.to_dict("records")):  # the speed-ups themselves, beside the plot
            text = f"{r['speedup_measured']:.2f}x of {r['speedup_theoretical']:.2f}x"
            ax.text(right, yi, text, va="center", fontsize=9, color="0.25")
        ax.set_xlim(0, right * 1.4)
        ax.set_yticks(y, names)
        ax.invert_yaxis()
    else:
        why = "latency off ([measure] latency = false)" if rows.empty else "no reliable timing"
        nothing_measured(ax, why)
        ax.set_title(title)
        return fig, [], f"Not measured: {why}."
    ax.axvline(1, color="0.3", lw=0.9, ls="--")
    ax.set_xticks([t for t in ax.get_xticks() if t <= 1.0 + 1e-9])
    ax.set_xlabel("measured / theoretical speed-up (1 = the MAC cut in full; higher is better)")
    ax.set_title(title)
    note = f" Left out (unreliable timing or implausible speed-up): {', '.join(left_out)}." if left_out else ""
    caption = (
        "How much of the theoretical speed-up (dense MACs / effective MACs) the measured latency realizes, in "
        "the deployment form (BN folded, fast kernels); error bars: half the IQR of the paired speed-up "
        f"ratios.{note}"
    )
    return fig, names, caption


def by_runtime(agg: pd.DataFrame, title: str):
    """Measured speed-up per runtime (each paired with the dense model on the same runtime), at the latency
    and the throughput batch, theory beside it: where a MAC cut turns into speed, and where it does not."""
    rows = agg[(agg["seeds"] > 0) & (agg["method"] != "dense")]
    speedups = [d or {} for d in rows.get("runtime_speedups", pd.Series(dtype=object))]
    runtimes = sorted({r for d in speedups for r, v in d.items() if "unavailable" not in v})
    batches = sorted({int(b) for d in speedups for v in d.values() for b in v if b.isdigit()})
    names = [legend_label(r) for _, r in rows.iterrows()]
    fig, axes = plt.subplots(
        1,
        max(1, len(batches)),
        figsize=(6.4 * max(1, len(batches)) / 1.4, 0.5 * max(len(rows), 3) + 2.2),
        squeeze=False,
    )
    fig.suptitle(title)
    if not runtimes:
        nothing_measured(axes[0][0], "latency off ([measure] latency = false)")
        return fig, [], "Not measured: no runtime was timed."
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    height = 0.8 / max(1, len(runtimes) + 1)
    for ax, batch in zip(axes[0], batches):
        y = np.arange(len(rows))
        for k, runtime in enumerate(runtimes):
            values = [(d.get(runtime) or {}).get(str(batch), math.nan) for d in speedups]
            label = RUNTIME_HEADS.get(runtime, runtime).replace("<br>", ", ")
            ax.barh(y + k * height, values, height, color=palette[k % len(palette)], label=label)
        ax.scatter(rows["speedup_theoretical"], y + len(runtimes) * height, marker="|", s=120, color="0.2",
                   label="theory (dense / effective MACs)")  # fmt: skip
        ax.axvline(1, color="0.3", lw=0.9, ls="--")
        ax.set_yticks(y + height * len(runtimes) / 2, names)
        ax.invert_yaxis()
        ax.set_xlabel("speed-up over dense, same runtime (x)")  # short: side by side, long labels overlapped
        ax.set_title(f"batch {batch}", fontsize=10)
    # below the plots, never over a bar
    fig.legend(*axes[0][0].get_legend_handles_labels(), loc="lower center", ncol=4, fontsize=8)
    fig.tight_layout(rect=(0, 0.14, 1, 1))
    unavailable = sorted({f"{r}: {v['unavailable']}" for d in speedups for r, v in d.items() if "unavailable" in v})
    caption = (
        "Speed-up of each row over the dense model, timed paired on the same runtime (eager PyTorch, the "
        "deployment form with the fused kernel, ONNX Runtime and OpenVINO on the CPU: each in its fastest exact "
        "form and as exported plainly), at the latency and the throughput batch; the tick marks the theoretical "
        "speed-up. Masked rows run dense on every runtime (no sparse kernel)."
        + (f" Not measured: {'; '.join(unavailable)}." if unavailable else "")
    )
    return fig, names + runtimes, caption


FIGURES = {
    "tradeoff": ("Accuracy drop vs FLOPs cut (Fig. 7)", lambda agg, pub, hist, t: tradeoff(agg, pub, t)),
    "curves": ("Test accuracy and loss per epoch (Fig. 6)", lambda agg, pub, hist, t: curves(hist, agg, t)),
    "accuracy_vs_params": ("Accuracy vs parameters", lambda agg, pub, hist, t: accuracy_vs_params(agg, t)),
    "tca_tsa": ("TCA and TSA per method", lambda agg, pub, hist, t: tca_tsa(agg, t)),
    "latency": ("Realized speed-up", lambda agg, pub, hist, t: latency(agg, t)),
    "runtimes": ("Speed-up by runtime", lambda agg, pub, hist, t: by_runtime(agg, t)),
}
