"""The method contract: what the harness gives a method, what a method gives back, and the registry.

A leaf module: the harness (``benchmarks``) and every method (``baselines``) import it; it imports
neither. ``prepare(ctx) -> Prepared``: the model to train (built, or derived from the shared dense
checkpoint), its phase (``dense``, ``finetune``, ``scratch``), how many epochs the harness trains
it, and the epoch budget of the dense model it is compared with. The runner never branches on
method names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import nn

from tissuenet.names import check_name
from tissuenet.plugins import Registry
from tissuenet.registry import create_model_for_input

TARGET_KINDS = ("macs_reduction", "params_reduction", "sparsity")
PHASES = ("dense", "finetune", "scratch")


class MethodError(ValueError):
    """A method cannot run this job (bad option, impossible target, unsupported model)."""


@dataclass(frozen=True)
class Target:
    kind: str  # "none" | one of TARGET_KINDS
    value: float | None = None

    def label(self) -> str:
        return "" if self.kind == "none" else f"{self.kind}={self.value:g}"

    def slug(self) -> str:
        """Short form for labels and job ids: ``macs50``, ``params30``, ``sparsity90``."""
        short = {"macs_reduction": "macs", "params_reduction": "params"}.get(self.kind, self.kind)
        return "" if self.kind == "none" else f"{short}{100 * self.value:g}"

    def job_label(self, label: str) -> str:
        """A row's label with its target: ``prune_l1@macs50`` (the label alone without a target)."""
        return label + (f"@{self.slug()}" if self.kind != "none" else "")


class Budgets(Protocol):
    """The epoch budgets a method may read (the suite's ``[budgets]``, ``benchmarks.suites.settings.BudgetConfig``)."""

    dense_epochs: int

    def epochs(self, phase: str) -> int: ...  # "dense" | "finetune" | "scratch"


@dataclass(kw_only=True)
class JobContext:
    """Everything a method may use to prepare one job."""

    dataset: str
    model_name: str  # the dense backbone's registry name
    num_classes: int
    in_channels: int
    input_size: int
    seed: int
    options: dict
    target: Target
    budgets: Budgets
    device: torch.device
    dense_model: Callable[[], nn.Module]  # a fresh copy of the job's dense checkpoint (shared by its group)
    train_loader: object = None  # batches for methods that need data while pruning (Taylor)
    epochs_override: int | None = None  # the suite's per-method ``epochs``
    # train(model, epochs, extra_loss): a method's own training phase (e.g. slimming's sparsity run)
    train: Callable | None = None

    def build(self, name: str, **options) -> nn.Module:
        return create_model_for_input(name, self.num_classes, self.in_channels, self.input_size, **options).to(
            self.device
        )

    def example(self, batch: int = 1) -> torch.Tensor:
        return torch.randn(batch, self.in_channels, self.input_size, self.input_size, device=self.device)

    def epochs(self, phase: str) -> int:
        return self.epochs_override if self.epochs_override is not None else self.budgets.epochs(phase)


class TrainingHook:
    """What a method may do while the harness trains its model (every method is free to ignore it).

    ``after_backward`` sees the gradients of each step before the optimizer uses them (Taylor's scores);
    ``after_step`` follows the optimizer (masked channels set back to zero); ``end_epoch`` follows each
    epoch (FPGM's soft pruning). ``state_dict``/``load_state_dict`` travel in the resume checkpoint, so a
    killed phase resumes with its masks and scores.
    """

    def start(self, model: nn.Module, steps: int, epochs: int) -> None:  # the phase's optimizer steps and epochs
        return None

    def after_backward(self, model: nn.Module, step: int) -> None:
        return None

    def after_step(self, model: nn.Module, step: int) -> None:
        return None

    def end_epoch(self, model: nn.Module, epoch: int) -> None:
        return None

    def end(self, model: nn.Module) -> None:
        return None

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        return None


@dataclass
class TrainPhase:
    """One training phase of a method's own (``Prepared.phases``); the harness runs them in order."""

    name: str  # as records and dry runs name it: "taylor-pruning", "soft-pruning", "finetune"
    epochs: int
    settings: str = "finetune"  # which settings it trains under: [train] over "dense", "finetune" or "scratch"
    dense_cost: bool = False  # it runs at the dense model's cost (masked channels are still computed)
    hook: TrainingHook | None = None
    finalize: Callable | None = None  # model -> model after the phase (masked channels removed for good)
    overrides: dict = field(default_factory=dict)  # settings over its section (a constant learning rate)


@dataclass
class Prepared:
    model: nn.Module
    phase: str  # which training settings apply: "dense" | "finetune" | "scratch"
    epochs: int  # epochs the harness trains it for (0: nothing to train)
    info: dict = field(default_factory=dict)
    extra_loss: Callable | None = None  # added to the training loss
    finalize: Callable | None = None  # applied after training (e.g. make pruning masks permanent)
    arch: dict | None = None  # {"model": registry name, "options": {...}} if not the dense backbone
    reference_epochs: int | None = None  # budget of the dense model it is compared with (None: dense_epochs)
    extra_epochs_at_dense_cost: int = 0  # training the method did itself at the dense model's cost
    extra_forward_images: int = 0  # forward passes (images) at the dense cost outside training (PFEC's sensitivity)
    phases: list[TrainPhase] | None = None  # several phases of its own (Taylor: prune while training, fine-tune)

    def training_phases(self) -> list[TrainPhase]:
        """The phases the harness trains, in order (one, ``phase`` for ``epochs``, unless ``phases`` says more)."""
        if self.phases is not None:
            return self.phases
        return [TrainPhase(self.phase, self.epochs, settings=self.phase, finalize=self.finalize)]

    def without_training(self) -> nn.Module:
        """The model as its phases leave it with nothing trained (a row of 0 epochs, asv, notebooks): every hook
        sees a phase of no steps, every finalizer runs."""
        for phase in self.training_phases():
            if phase.hook is not None:
                phase.hook.start(self.model, 0, 0)
                phase.hook.end(self.model)
            if phase.finalize is not None:
                self.model = phase.finalize(self.model)
        return self.model


@dataclass(frozen=True)
class Estimate:
    """What a dry run says before anything trains: the job's own epochs, and cost estimates.

    Its training compute (``benchmarks.suites.planning``) is ``images x 3 x (epochs x train_macs +
    extra_epochs_at_dense_cost x dense MACs) + extra_forward_images x dense MACs``: a masked model
    trains at its dense cost (``train_macs``), however sparse its result; Network Slimming's sparsity
    phase runs at the dense model's cost; PFEC's sensitivity analysis is forward passes.
    """

    epochs: int
    macs: float
    params: float
    reference_epochs: int
    extra_epochs_at_dense_cost: int = 0  # a method's own training at the dense model's cost (slimming)
    train_macs: float | None = None  # MACs per image while training (None: ``macs``)
    extra_forward_images: int = 0  # forward passes at the dense cost outside training (PFEC's sensitivity analysis)
    # the method's own training phases, (name, epochs, at the dense cost?), when there are several: they replace
    # ``epochs`` and ``extra_epochs_at_dense_cost`` (Taylor: ("taylor-pruning", 2, True), ("finetune", 3, False))
    phases: tuple[tuple[str, int, bool], ...] | None = None


@dataclass(kw_only=True)
class PlanContext:
    """What an estimate may use: budgets, options, target, the dense cost, and a model builder."""

    budgets: Budgets
    options: dict
    target: Target
    seed: int
    epochs_override: int | None
    dataset: str
    dense_cost: Callable[[], tuple[int, int]]  # (MACs, params) of the dense backbone, computed on demand
    build: Callable[[str, dict], nn.Module]  # (registry name, options) -> model at the job's input shape
    model_name: str
    in_channels: int
    input_size: int

    def epochs(self, phase: str) -> int:
        return self.epochs_override if self.epochs_override is not None else self.budgets.epochs(phase)

    @property
    def dense_macs(self) -> int:
        return self.dense_cost()[0]

    @property
    def dense_params(self) -> int:
        return self.dense_cost()[1]


class Method(Protocol):
    name: str
    phase: str  # the budget it trains under: "dense", "finetune" or "scratch"
    targets: tuple[str, ...]  # accepted target kinds ("none" for none)

    def check(self, options: dict, target: Target) -> None: ...  # at suite validation, before training

    def check_model(self, model: str) -> None: ...

    def reference_epochs(self, budgets: Budgets, epochs_override: int | None) -> int: ...

    def estimate(self, plan: PlanContext) -> Estimate: ...

    def architecture_key(self, plan: PlanContext) -> object: ...  # equal keys: the same network

    def start(self, options: dict, model_name: str) -> dict | None: ...  # its own shared start checkpoint

    def prepare(self, ctx: JobContext) -> Prepared: ...


class BaseMethod:
    """Defaults for the Method protocol: no options, any model, cost estimated from the target."""

    name = "base"
    phase = "finetune"
    targets: tuple[str, ...] = ("none",)
    example_options: dict = {}  # options that make a valid job (conformance checks use them; none needed: {})

    def check(self, options: dict, target: Target) -> None:
        if options:
            raise MethodError(f"method {self.name!r} takes no options, got {sorted(options)}")

    def check_model(self, model: str) -> None:
        return None

    def reference_epochs(self, budgets: Budgets, epochs_override: int | None) -> int:
        """The budget of the dense model this method's rows are compared with.

        Fine-tuned models start from the dense checkpoint: the dense budget. Models trained from
        scratch: a dense model trained for the same number of epochs.
        """
        if self.phase == "scratch":
            return epochs_override if epochs_override is not None else budgets.epochs("scratch")
        return budgets.dense_epochs

    def estimate(self, plan: PlanContext) -> Estimate:
        keep = 1 - plan.target.value if plan.target.kind != "none" else 1.0
        epochs = plan.epochs(self.phase)
        reference = self.reference_epochs(plan.budgets, plan.epochs_override)
        return Estimate(epochs, plan.dense_macs * keep, plan.dense_params * keep, reference)

    def architecture_key(self, plan: PlanContext) -> object:
        return (self.name, repr(sorted(plan.options.items())), plan.target)

    def start(self, options: dict, model_name: str) -> dict | None:
        """The shared checkpoint its rows start from when it is not the dense one: a dense training with a
        regularizer, ``{"name": ..., "regularizer": ..., "weight": ...}`` (Network Slimming's sparsity
        training); trained once per (dataset, model, seed, settings) and shared, like the dense checkpoint."""
        return None


def _unknown(name: str, registry: Registry) -> MethodError:
    return MethodError(f"unknown method {name!r}.{registry.suggest(name)} Known: {', '.join(registry.names())}")


METHODS: Registry[Method] = Registry("method", "baselines", _unknown)  # importing the package registers them


def register_method(cls):
    """Class decorator: instantiate and register under ``cls.name``."""
    check_name(cls.name, "method name")  # before instantiating it
    METHODS.add(cls.name, cls(), cls.__module__)
    return cls


def method_origin(name: str):
    """The plugin a method comes from (``plugins.Origin``), or None for a built-in."""
    return METHODS.origin(name)


def get_method(name: str) -> Method:
    return METHODS.get(name)


def list_methods() -> list[str]:
    return METHODS.names()


def check_target(method: Method, target: Target) -> None:
    if target.kind not in method.targets:
        raise MethodError(f"method {method.name!r} takes targets {list(method.targets)}, got {target.kind!r}")
    if target.value is not None and not 0 < target.value < 1:
        raise MethodError(
            f"impossible target {target.label()}: a reduction or sparsity must lie strictly between 0 and 1"
        )
