"""Histogram of |gamma| (every BN scale) of checkpoints or model files: a dense checkpoint beside Network
Slimming's sparsity-trained ones, as in the paper's Fig. 4 (docs/img/bn_gammas.png was drawn by this script).

    python scripts/plot_bn_gammas.py --out docs/img/bn_gammas.png \\
        dense=RESULTS/checkpoints/dense/DATASET.MODEL.dense.s0.ID.pt \\
        "lambda 1e-4=RESULTS/checkpoints/dense/DATASET.MODEL.dense+sparsity-0.0001.s0.ID.pt"
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from baselines.regularizers import SMALL_GAMMA  # noqa: E402
from benchmarks.store.files import load_torch  # noqa: E402


def gammas(path: Path) -> np.ndarray:
    """|gamma| of every BN layer of a stored state dict (a BN layer is the one with a running mean)."""
    state = load_torch(path)["state_dict"]
    names = [k[: -len(".running_mean")] for k in state if k.endswith(".running_mean")]
    return np.concatenate([state[f"{n}.weight"].abs().flatten().numpy() for n in names if f"{n}.weight" in state])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", metavar="LABEL=MODEL_FILE")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    fig, axes = plt.subplots(len(args.models), 1, figsize=(7, 1.9 * len(args.models)), sharex=True)
    bins = np.logspace(-4, 0.5, 46)
    for ax, item in zip(np.atleast_1d(axes), args.models, strict=True):
        label, _, path = item.partition("=")
        values = gammas(Path(path))
        ax.hist(np.clip(values, bins[0], bins[-1]), bins=bins, color="0.3")
        ax.axvline(SMALL_GAMMA, color="C3", lw=1)
        ax.set_xscale("log")
        small = float((values < SMALL_GAMMA).mean())
        title = f"{label}: {small:.1%} of {values.size} below {SMALL_GAMMA:g}, median {np.median(values):.3f}"
        ax.set_title(title, fontsize=9)
    np.atleast_1d(axes)[-1].set_xlabel("|gamma| (BN scale; below 1e-4 counted in the first bin)")
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
