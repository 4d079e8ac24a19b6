"""Named TissueNet architectures of the paper's published rows (``results/paper/presets.toml``).

Each preset is registry name + options, found by ``python -m benchmarks.paper.preset_search`` within
the paper's description and recorded with the reason for the choice. A suite names one with
``options = { preset = "Ours" }`` (the paper's row label, resolved for each job's dataset and
backbone) or by its unique name (``options = { preset = "cifar10-vgg16-ours" }``).
"""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass
from pathlib import Path

from results import PRESETS
from results import path as shipped_path

PRESETS_FILE = shipped_path(*PRESETS)


@dataclass(frozen=True)
class Preset:
    name: str
    dataset: str  # the published row: dataset, paper model name, method label
    paper_model: str
    row: str
    backbone: str  # dense registry name
    model: str  # TissueNet registry name
    options: dict
    match: bool  # both cuts within 3 points of the published ones (else: the closest found)
    why: str


@functools.cache
def load_presets(path: Path = PRESETS_FILE) -> dict[str, Preset]:
    raw = tomllib.loads(path.read_text())
    presets = {}
    for entry in raw.get("preset", []):
        preset = Preset(
            entry["name"],
            entry["dataset"],
            entry["paper_model"],
            entry["row"],
            entry["backbone"],
            entry["model"],
            dict(entry.get("options", {})),
            bool(entry["match"]),
            entry.get("why", ""),
        )
        if preset.name in presets:
            raise ValueError(f"{path}: preset {preset.name!r} defined twice")
        presets[preset.name] = preset
    return presets


def preset_names() -> list[str]:
    return sorted(load_presets())


def get_preset(name: str) -> Preset:
    presets = load_presets()
    if name not in presets:
        raise KeyError(f"unknown preset {name!r}; known: {', '.join(sorted(presets))}")
    return presets[name]


def preset_labels() -> list[str]:
    """Everything ``options.preset`` may say: unique names and the paper's row labels."""
    presets = load_presets().values()
    return sorted({p.name for p in presets} | {p.row for p in presets})


def resolve_preset(value: str, dataset: str, backbone: str) -> Preset:
    """The preset a suite means for one job: by unique name, or by row label for (dataset, backbone)."""
    presets = load_presets()
    if value in presets:
        return presets[value]
    for p in presets.values():
        if p.row == value and p.dataset == dataset and p.backbone == backbone:
            return p
    rows = sorted(f"{p.row} ({p.name})" for p in presets.values() if p.dataset == dataset and p.backbone == backbone)
    raise KeyError(f"no preset {value!r} for {backbone} on {dataset}; there: {', '.join(rows) or 'none'}")
