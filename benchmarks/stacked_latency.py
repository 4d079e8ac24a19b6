"""Latency of one stacked layer in three implementations (issue: TissueNet method).

    python -m benchmarks.stacked_latency [--channels 64] [--size 32] [--device cpu]

Grouped fast path vs the per-unit reference (split / one module per unit / cat, as in the
paper's code) vs the dense pair of 3x3 convs it replaces; batch 1 and 64; contiguous and
channels_last. Prints a Markdown table and the MACs of each, so speed can be read against cost.
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

from benchmarks.latency import measure_latency
from tissuenet import StackedLayer, count_macs
from tissuenet.models._common import conv_bn


def implementations(channels: int, unit: str) -> dict[str, nn.Module]:
    layer = StackedLayer([unit] * (channels // int(unit.split("-")[0])))
    dense = nn.Sequential(conv_bn(channels, channels, 3), conv_bn(channels, channels, 3, act=None))
    return {"grouped": layer, "per-unit": layer.to_per_unit(), "dense": dense}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--channels", type=int, default=64)
    ap.add_argument("--unit", default="2-4-2")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--min-run-time", type=float, default=1.0)
    args = ap.parse_args(argv)
    impls = {k: v.to(args.device) for k, v in implementations(args.channels, args.unit).items()}
    macs = {k: count_macs(m, args.channels, args.size) for k, m in impls.items()}
    print(
        f"one stacked layer: {args.channels} channels, units {args.unit}, {args.size}x{args.size}, "
        f"device {args.device}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    )
    print("| impl | MACs (M) | batch | format | median ms | IQR ms | vs dense |")
    print("|---|---:|---:|---|---:|---:|---:|")
    for batch in args.batches:
        x = torch.randn(batch, args.channels, args.size, args.size, device=args.device)
        for cl in (False, True):
            times = {
                k: measure_latency(m, x, channels_last=cl, min_run_time=args.min_run_time) for k, m in impls.items()
            }
            for k, t in times.items():
                speed = times["dense"]["latency_ms"] / t["latency_ms"]
                print(
                    f"| {k} | {macs[k] / 1e6:.2f} | {batch} | {'channels_last' if cl else 'contiguous'} | "
                    f"{t['latency_ms']:.3f} | {t['latency_iqr_ms']:.3f} | {speed:.2f}x |"
                )


if __name__ == "__main__":
    main()
