"""Search, within the paper's description, for the TissueNet configuration of each published row.

    python -m benchmarks.paper.preset_search [--rows vgg-16,resnet-50] [--top 5]

For every published TissueNet row ("Ours", "Ours('r')") it enumerates the knobs the paper leaves
open: the unit's hidden width c_h (units 2-c_h-2), which stages are replaced, whether the first
block of each replaced stage stays dense, VGG's layout, and single convolutions as units beside
whole blocks (``convs``: the first 3x3 conv of a width-doubling ImageNet-style ResNet block as
2-c_h-4 units; MobileNetV2's 320 -> 1280 head conv as 2-c_h-8 units). Each candidate is built at the row's
dataset shape (classes, input size) and its FLOPs and parameter cuts are measured against the same
code's dense backbone. It prints the closest candidates per row (largest of the two errors first);
the choices, with their reasons, are kept in ``results/paper/presets.toml``.
"""

from __future__ import annotations

import argparse
import itertools

from benchmarks.paper.published import measured_cuts, tissuenet_rows
from tissuenet import get_entry
from tissuenet.registry import tissue_name

HIDDEN = (1, 2, 4, 8, 12, 16)


def candidates(backbone: str):
    family = get_entry(backbone).family
    stages = {"vgg": 5, "mobilenetv2": 7, "resnet_imagenet": 4, "resnet_cifar": 3}[family]
    subsets = [s for r in range(1, stages + 1) for s in itertools.combinations(range(1, stages + 1), r)]
    for subset, c_h, keep_first in itertools.product(subsets, HIDDEN, (False, True)):
        options = {"units": f"2-{c_h}-2", "replace": ",".join(map(str, subset)), "keep_first": keep_first}
        if family == "vgg":
            if keep_first:
                continue
            for layout in ("runs", "alternate"):
                yield options | {"layout": layout}
        else:
            yield options
            yield from (options | {"convs": convs} for convs in single_convs(family, subset))


def single_convs(family: str, replaced: tuple[int, ...]):
    """Single convolutions as units beside the replaced blocks (one at a time, or two for ResNets)."""
    if family == "resnet_imagenet":
        free = [s for s in (2, 3, 4) if s not in replaced]  # stages whose first block doubles the width
        for r in (1, 2):
            for stages in itertools.combinations(free, r):
                for c_h in (4, 8):
                    yield {f"{s}.0": f"2-{c_h}-4" for s in stages}
    elif family == "mobilenetv2":
        for c_h in (1, 2, 4, 8):
            yield {"head": f"2-{c_h}-8"}


def search(row: dict, top: int) -> list[tuple]:
    backbone = row["backbone"]
    found = []
    for options in candidates(backbone):
        try:
            flops_cut, params_cut = measured_cuts(backbone, tissue_name(backbone), options, row["dataset"])
        except Exception:  # noqa: BLE001 - a candidate the backbone cannot build (e.g. an empty stage)
            continue
        err = max(abs(flops_cut - row["flops_cut"]), abs(params_cut - row["params_cut"]))
        found.append((round(err, 2), round(flops_cut, 2), round(params_cut, 2), options))
    return sorted(found, key=lambda f: f[0])[:top]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", default=None, help="comma-separated paper model names (default: all)")
    ap.add_argument("--top", type=int, default=5)
    args = ap.parse_args(argv)
    for row in tissuenet_rows():
        if args.rows and row["paper_model"] not in args.rows.split(","):
            continue
        print(
            f"{row['dataset']} {row['paper_model']} {row['method']}: published FLOPs -{row['flops_cut']} %,"
            f" params -{row['params_cut']} %"
        )
        for err, f, p, options in search(row, args.top):
            print(f"  max error {err:5.2f}  FLOPs -{f:6.2f} %  params -{p:6.2f} %  {options}")


if __name__ == "__main__":
    main()
