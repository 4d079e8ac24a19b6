"""What every figure shares: the style, the files it is saved as, colours per method, legends and the
'not measured' panel."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window (before pyplot is imported)

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from reports.data import TISSUENET, target_label  # noqa: E402

STYLE = Path(__file__).with_name("tissuebench.mplstyle")
METADATA = {
    "png": {"Software": None},
    "svg": {"Date": None, "Creator": None},
    "pdf": {"CreationDate": None, "Producer": None, "Creator": None},
}
FORMATS = ("png", "svg", "pdf")
MARKERS = "osD^vP*Xph<>"
PUBLISHED_MARKERS = "osD^vP*Xph<>"


def save(fig, stem: Path) -> list[str]:
    files = []
    for ext in FORMATS:
        path = stem.with_suffix(f".{ext}")
        try:
            fig.savefig(path, format=ext, metadata=METADATA[ext])
        except OSError as exc:
            from benchmarks.store.files import StorageError

            plt.close(fig)
            raise StorageError(exc.errno, f"cannot write {path} ({exc.strerror})") from exc
        files.append(path.name)
    plt.close(fig)
    return files


def colours(families) -> dict:
    """Family -> colour, from the (dataset, model)'s full list of families, so that every figure agrees."""
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return {f: palette[i % len(palette)] for i, f in enumerate(families)}


def families(agg: pd.DataFrame) -> list[str]:
    order = {"dense": 0, TISSUENET: 1}
    return sorted(
        agg["family"].unique(), key=lambda f: (order.get(agg.loc[agg["family"] == f, "method"].iloc[0], 2), f)
    )


def nothing_measured(ax, why: str) -> None:
    """An empty figure says so on its face (never blank axes)."""
    ax.text(0.5, 0.5, f"not measured: {why}", transform=ax.transAxes, ha="center", va="center", color="0.35")
    ax.set_axis_off()


def legend_label(row) -> str:
    return f"{row['family']} @ {row['target']}" if row["target"] else row["label"]


def reader(label: str) -> str:
    """``prune_l1@macs50`` -> ``prune_l1 @ -50 % MACs`` (a record label, for a legend)."""
    fam, _, slug = label.partition("@")
    for prefix, kind in (("macs", "macs_reduction"), ("params", "params_reduction"), ("sparsity", "sparsity")):
        if slug.startswith(prefix):
            try:
                return f"{fam} @ {target_label(kind, float(slug[len(prefix) :]) / 100)}"
            except ValueError:
                break
    return label


def legend(ax, better: str, ncol: int = 1) -> None:
    """The legend, outside the axes on the right, titled with which way is better (never on the data)."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), ncol=ncol, title=better, title_fontsize=9, alignment="left")


def seeds_note(agg: pd.DataFrame) -> str:
    most = int(agg["seeds"].max()) if len(agg) else 0
    return f"bars: mean ± std over {most} seeds" if most > 1 else "one seed per row: no error bars"
