"""The paper's published rows (``results/paper/bunitnet_tables.csv``) and the presets' measured cuts.

One reader for the published numbers, used by the reports, ``tissuebench paper-costs`` and the
preset search. Cuts are measured here against the same code's dense backbone, at the dataset's
shape (classes, channels, input size) from the dataset registry.
"""

from __future__ import annotations

import csv
from pathlib import Path

import torch

from baselines.reference import load_presets
from benchmarks.data.datasets import get_dataset
from results import PAPER_TABLES
from results import path as shipped_path
from tissuenet import count_macs, count_params, create_model

PAPER_CSV = shipped_path(*PAPER_TABLES)
# the paper's model names -> this suite's registry names
PAPER_MODELS = {
    "vgg-16": "vgg16_bn",
    "vgg-19": "vgg19_bn",
    "resnet-20": "resnet20_paper",
    "mobilenetv2": "mobilenetv2",
    "resnet-34": "resnet34",
    "resnet-50": "resnet50",
}
TISSUENET_ROWS = ("Ours", "Ours('r')")  # the paper's labels for its own method


def published_rows(path: Path = PAPER_CSV) -> list[dict]:
    """Every published row as a dict of strings (empty cells stay '')."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def tissuenet_rows() -> list[dict]:
    """The published TissueNet rows with their cuts as numbers and the backbone's registry name."""
    out = []
    for row in published_rows():
        if row["method"] in TISSUENET_ROWS:
            out.append(
                {
                    "dataset": row["dataset"],
                    "paper_model": row["model"],
                    "method": row["method"],
                    "backbone": PAPER_MODELS[row["model"]],
                    "flops_cut": float(row["flops_reduction_pct"]),
                    "params_cut": float(row["params_reduction_pct"]),
                }
            )
    return out


def shape_of(dataset: str) -> tuple[int, int, int]:
    """(classes, channels, input size) of a dataset."""
    info = get_dataset(dataset)
    return info.num_classes, info.in_channels, info.input_size


def measured_cuts(backbone: str, model: str, options: dict, dataset: str) -> tuple[float, float]:
    """(FLOPs cut %, params cut %) of a TissueNet model against its dense backbone, at the dataset's shape.

    Built on the meta device: counting needs shapes only, so ImageNet-size models count in milliseconds.
    """
    classes, channels, size = shape_of(dataset)
    with torch.device("meta"):
        dense = create_model(backbone, classes, channels)
        tissue = create_model(model, classes, channels, **options)
    flops = 100 * (1 - count_macs(tissue, channels, size) / count_macs(dense, channels, size))
    params = 100 * (1 - count_params(tissue) / count_params(dense))
    return flops, params


def paper_costs() -> list[dict]:
    """One row per published TissueNet row: its preset and the published and measured cuts."""
    presets = {(p.dataset, p.paper_model, p.row): p for p in load_presets().values()}
    out = []
    for row in tissuenet_rows():
        preset = presets.get((row["dataset"], row["paper_model"], row["method"]))
        flops = params = None
        if preset is not None:
            flops, params = measured_cuts(preset.backbone, preset.model, preset.options, preset.dataset)
        out.append(
            {
                "dataset": row["dataset"],
                "model": row["paper_model"],
                "method": row["method"],
                "preset": preset.name if preset else None,
                "published_flops_cut": row["flops_cut"],
                "published_params_cut": row["params_cut"],
                "flops_cut": None if flops is None else round(flops, 2),
                "params_cut": None if params is None else round(params, 2),
            }
        )
    return out
