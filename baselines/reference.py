"""The two reference methods: the dense backbone itself, and TissueNet trained from scratch.

``dense`` is the row every other row of its group is compared with. ``tissuenet`` builds the
TissueNet form of the backbone (docs/method.md) and trains it from scratch for the scratch budget,
which equals the dense budget unless a suite says otherwise (then the suite also gets a dense
reference at that budget, so accuracy drops are always against an equal-budget dense model).

Presets: the named TissueNet architectures of the paper's published rows (``results/paper/presets.toml``),
each a registry name + options found by ``python -m benchmarks.paper.preset_search`` within the paper's
description and recorded with the reason for the choice. A suite names one with ``options = { preset =
"Ours" }`` (the paper's row label, resolved for each job's dataset and backbone) or by its unique name
(``options = { preset = "cifar10-vgg16-ours" }``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path

from baselines.contract import BaseMethod, Estimate, MethodError, Prepared, register_method
from results import PRESETS
from results import path as shipped_path
from tissuenet.algorithm1 import seed_free
from tissuenet.counting import count_macs, count_params
from tissuenet.registry import get_entry, tissue_name

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


TISSUE_OPTIONS = {"units", "replace", "seed", "plan", "keep_first", "layout", "preset"}
_COSTS: dict[tuple, tuple[int, int]] = {}  # (registry name, options, dataset, input shape) -> (MACs, params)


@register_method
class Dense(BaseMethod):
    """The dense backbone itself: the shared checkpoint, evaluated as the reference row."""

    name = "dense"
    phase = "dense"

    def reference_epochs(self, budgets, epochs_override):
        return budgets.dense_epochs if epochs_override is None else epochs_override

    def estimate(self, plan):
        epochs = plan.epochs("dense")
        return Estimate(epochs, plan.dense_macs, plan.dense_params, epochs)

    def prepare(self, ctx):
        epochs = ctx.epochs("dense")  # the runner hands this job the checkpoint of its own budget
        return Prepared(ctx.dense_model(), "dense", 0, reference_epochs=epochs)


@register_method
class TissueNet(BaseMethod):
    """The paper's method: the TissueNet form of the backbone, trained from scratch (docs/method.md)."""

    name = "tissuenet"
    phase = "scratch"

    def check(self, options, target):
        unknown = set(options) - TISSUE_OPTIONS
        if unknown:
            raise MethodError(f"tissuenet options are {sorted(TISSUE_OPTIONS)}, got {sorted(unknown)}")
        if "preset" in options:
            if set(options) - {"preset", "seed"}:
                raise MethodError("a tissuenet preset fixes the architecture: give 'preset' alone (or with 'seed')")
            if options["preset"] not in preset_labels():
                raise MethodError(f"unknown preset {options['preset']!r}; known: {', '.join(preset_labels())}")

    def check_model(self, model: str) -> None:
        if ":" in model or tissue_name(model) is None:
            raise MethodError(f"model {model!r} has no TissueNet form in the registry")

    def resolve(self, dataset: str, model: str, options: dict, seed: int) -> tuple[str, dict]:
        """(registry name, builder options) of a job, a preset expanded."""
        options = {"seed": seed} | dict(options)
        if "preset" in options:
            try:
                preset = resolve_preset(options.pop("preset"), dataset, model)
            except KeyError as exc:
                raise MethodError(str(exc.args[0])) from None
            if preset.backbone != model:
                raise MethodError(f"preset {preset.name!r} is a {preset.backbone} architecture, not {model}")
            return preset.model, preset.options | {"seed": options["seed"]}
        return tissue_name(model), options

    def _build(self, plan):
        name, options = self.resolve(plan.dataset, plan.model_name, plan.options, plan.seed)
        return plan.build(name, options)

    def cost(self, plan) -> tuple[int, int]:
        """(MACs, params) of the job's architecture, counted once per architecture: a dry run over 10,000 seeds
        builds one model, not 10,000 (the seed changes the architecture only where Algorithm 1 draws units)."""
        name, options = self.resolve(plan.dataset, plan.model_name, plan.options, plan.seed)
        default = get_entry(name).options().get("units", "2-4-2")
        shape = {k: v for k, v in options.items() if k != "seed" or not seed_free(options, default)}
        key = (name, json.dumps(shape, sort_keys=True), plan.dataset, plan.in_channels, plan.input_size)
        if key not in _COSTS:
            model = plan.build(name, options)
            _COSTS[key] = (count_macs(model, plan.in_channels, plan.input_size), count_params(model))
        return _COSTS[key]

    def estimate(self, plan):
        macs, params = self.cost(plan)
        return Estimate(plan.epochs("scratch"), macs, params, self.reference_epochs(plan.budgets, plan.epochs_override))

    def architecture_key(self, plan):
        model = self._build(plan)
        shapes = [(n, tuple(p.shape)) for n, p in model.named_parameters()]
        plan_json = json.dumps(model.tissue_options["plan"], sort_keys=True)
        return hashlib.sha256((json.dumps(shapes) + plan_json).encode()).hexdigest()

    def prepare(self, ctx):
        name, options = self.resolve(ctx.dataset, ctx.model_name, ctx.options, ctx.seed)
        model = ctx.build(name, **options)
        arch = {"model": name, "options": options | {"plan": model.tissue_options["plan"]}}
        epochs = ctx.epochs("scratch")
        info = {"tissue_options": model.tissue_options, "registry_name": name}
        return Prepared(model, "scratch", epochs, info, arch=arch, reference_epochs=epochs)


@register_method
class TissueNetMatched(TissueNet):
    """TissueNet trained for the compute of a fine-tuned row of its own MACs (dense epochs x dense MACs / its
    MACs, + the fine-tune epochs), compared with the dense model of the dense budget: the Scratch-B rule of
    Liu et al. 2019 applied to TissueNet, so it meets the pruned rows at equal training compute."""

    name = "tissuenet_matched"

    def reference_epochs(self, budgets, epochs_override):
        return budgets.dense_epochs

    @staticmethod
    def matched_epochs(budgets, dense_macs: float, macs: float) -> int:
        return max(1, round(budgets.dense_epochs * dense_macs / macs)) + budgets.epochs("finetune")

    def estimate(self, plan):
        macs, params = self.cost(plan)
        epochs = self.matched_epochs(plan.budgets, plan.dense_macs, macs)
        return Estimate(epochs, macs, params, plan.budgets.dense_epochs)

    def prepare(self, ctx):
        prepared = super().prepare(ctx)
        dense_macs = count_macs(ctx.dense_model(), ctx.in_channels, ctx.input_size)
        macs = count_macs(prepared.model, ctx.in_channels, ctx.input_size)
        prepared.epochs = self.matched_epochs(ctx.budgets, dense_macs, macs)
        prepared.reference_epochs = ctx.budgets.dense_epochs
        prepared.info["matched"] = {"dense_macs": dense_macs, "macs": macs, "epochs": prepared.epochs}
        return prepared
