"""Method registry: each method turns a job into a model to train, with one signature.

``prepare(ctx) -> Prepared``: the model (built, or derived from the shared dense checkpoint),
how many epochs the harness trains it and in which phase (``dense``, ``finetune``, ``scratch``),
and method-specific facts for the record. The runner never branches on method names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import nn

from tissuenet.registry import create_model_for_input, did_you_mean, list_models


class MethodError(ValueError):
    """A method cannot run this job (bad option, impossible target, unsupported model)."""


@dataclass
class Target:
    kind: str  # "none" | "macs_reduction" | "params_reduction" | "sparsity"
    value: float | None = None

    def label(self) -> str:
        return "" if self.kind == "none" else f"{self.kind}={self.value:g}"

    def slug(self) -> str:
        """Short form for labels and job ids: ``macs50``, ``params30``, ``sparsity90``."""
        short = {"macs_reduction": "macs", "params_reduction": "params"}.get(self.kind, self.kind)
        return "" if self.kind == "none" else f"{short}{100 * self.value:g}"


@dataclass
class JobContext:
    dataset: str
    model_name: str  # the dense backbone
    num_classes: int
    in_channels: int
    input_size: int
    seed: int
    options: dict
    target: Target
    budgets: dict  # dense_epochs, finetune_epochs, scratch_epochs
    device: torch.device
    dense_model: Callable[[], nn.Module]  # a fresh copy of the shared dense checkpoint
    dense_cost: dict  # params, macs, ... of the dense reference
    train_loader: object = None
    epochs_override: int | None = None
    # train(model, epochs, extra_loss): a method's own training phase (e.g. slimming's sparsity run)
    train: Callable | None = None

    def build(self, name: str, **options) -> nn.Module:
        return create_model_for_input(name, self.num_classes, self.in_channels, self.input_size, **options).to(
            self.device
        )

    def example(self, batch: int = 1) -> torch.Tensor:
        return torch.randn(batch, self.in_channels, self.input_size, self.input_size, device=self.device)

    def epochs(self, phase: str) -> int:
        return self.epochs_override if self.epochs_override is not None else self.budgets[f"{phase}_epochs"]


@dataclass
class Prepared:
    model: nn.Module
    phase: str  # which training settings and budget apply: "dense" | "finetune" | "scratch"
    epochs: int
    info: dict = field(default_factory=dict)
    extra_loss: Callable | None = None  # added to the training loss (e.g. BN-slimming sparsity)
    finalize: Callable | None = None  # applied after training (e.g. make pruning masks permanent)
    arch: dict | None = None  # {"model": registry name, "options": {...}} if not the dense backbone


class Method(Protocol):
    name: str
    phase: str  # the budget it trains under: "dense" (none), "finetune" or "scratch"
    targets: tuple[str, ...]  # accepted target kinds ("none" for none)

    def check(self, options: dict, target: Target) -> None: ...  # at suite validation, before training

    def estimate_macs(self, dense_macs: int, build: Callable, options: dict, target: Target) -> float: ...

    def prepare(self, ctx: JobContext) -> Prepared: ...


class BaseMethod:
    """Defaults for the Method protocol: no options, MACs estimated from the target."""

    name = "base"
    phase = "finetune"
    targets: tuple[str, ...] = ("none",)

    def check(self, options: dict, target: Target) -> None:
        if options:
            raise MethodError(f"method {self.name!r} takes no options, got {sorted(options)}")

    def estimate_macs(self, dense_macs, build, options, target) -> float:
        return dense_macs * (1 - target.value) if target.kind == "macs_reduction" else dense_macs


_METHODS: dict[str, Method] = {}


def register_method(cls):
    """Class decorator: instantiate and register under ``cls.name``."""
    _METHODS[cls.name] = cls()
    return cls


def _ensure_loaded() -> None:
    import baselines  # noqa: F401  (pruning and from-scratch baselines register themselves)


def get_method(name: str) -> Method:
    _ensure_loaded()
    if name not in _METHODS:
        raise MethodError(f"unknown method {name!r}.{did_you_mean(name, _METHODS)} Known: {', '.join(list_methods())}")
    return _METHODS[name]


def list_methods() -> list[str]:
    _ensure_loaded()
    return sorted(_METHODS)


def check_target(method: Method, target: Target) -> None:
    if target.kind not in method.targets:
        raise MethodError(f"method {method.name!r} takes targets {list(method.targets)}, got {target.kind!r}")
    if target.value is not None and not 0 < target.value < 1:
        raise MethodError(
            f"impossible target {target.label()}: a reduction or sparsity must lie strictly between 0 and 1"
        )


@register_method
class Dense(BaseMethod):
    """The dense backbone itself: the shared checkpoint, evaluated as the reference row."""

    name = "dense"
    phase = "dense"

    def prepare(self, ctx):
        return Prepared(ctx.dense_model(), "dense", 0)


@register_method
class TissueNet(BaseMethod):
    """The paper's method: the TissueNet form of the backbone, trained from scratch (SPEC 3)."""

    name = "tissuenet"
    phase = "scratch"

    def check(self, options, target):
        allowed = {"units", "replace", "seed", "plan", "keep_first"}
        if set(options) - allowed:
            raise MethodError(f"tissuenet options are {sorted(allowed)}, got {sorted(set(options) - allowed)}")

    def estimate_macs(self, dense_macs, build, options, target):
        from tissuenet.counting import count_macs

        model, shape = build(options)
        return count_macs(model, shape[0], shape[1])

    def check_model(self, model: str) -> None:
        if f"tissue_{model}" not in list_models():
            raise MethodError(f"model {model!r} has no TissueNet form (no 'tissue_{model}' in the registry)")

    def prepare(self, ctx):
        options = {"seed": ctx.seed} | ctx.options
        model = ctx.build(f"tissue_{ctx.model_name}", **options)
        arch = {"model": f"tissue_{ctx.model_name}", "options": options | {"plan": model.tissue_options["plan"]}}
        return Prepared(model, "scratch", ctx.epochs("scratch"), {"tissue_options": model.tissue_options}, arch=arch)
