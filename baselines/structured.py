"""Structured pruning through Torch-Pruning 1.6: one method per importance criterion.

The target is a MACs (or parameter) reduction measured under the suite's counting convention.
Pruning runs in many small steps (``steps``: the schedule reaches ``max_ratio`` of every group
at the last step) and stops at the first step whose measured reduction reaches the target; the
achieved value must lie within ``tolerance`` (1 percentage point) of it, or the job fails
saying so. The classifier is never pruned. Fine-tuning follows under the suite's budget.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torch_pruning as tp
from torch import nn

from baselines.criteria import CRITERIA, get_criterion
from benchmarks.methods import BaseMethod, MethodError, Prepared, register_method
from tissuenet.counting import count_macs, count_params

OPTIONS = {"global_pruning": bool, "round_to": int, "steps": int, "max_ratio": float, "ignore": list,
           "tolerance": float, "slimming_epochs": int, "slimming_reg": float}  # fmt: skip


def classifier_of(model: nn.Module) -> nn.Module:
    """The output layer (the last Linear, or timm's classifier): never pruned."""
    if hasattr(model, "get_classifier") and isinstance(model.get_classifier(), nn.Module):
        return model.get_classifier()
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
        if not convs:
            raise MethodError(f"{type(model).__name__} has no linear or conv layer to keep as classifier")
        return convs[-1]
    return linears[-1]


def _cost(model: nn.Module, kind: str, in_channels: int, input_size: int) -> int:
    return count_params(model) if kind == "params_reduction" else count_macs(model, in_channels, input_size)


def prune_to_target(model, ctx, criterion: str, options: dict) -> dict:
    """Prune ``model`` in place until the measured reduction reaches ``ctx.target``."""
    crit = get_criterion(criterion)
    target, kind = ctx.target.value, ctx.target.kind
    shape = (ctx.in_channels, ctx.input_size)
    ignored = [classifier_of(model)] + [model.get_submodule(n) for n in options.get("ignore", [])]
    model.eval()
    base = _cost(model, kind, *shape)
    try:
        pruner = tp.pruner.BasePruner(
            model, ctx.example(1), importance=crit.make(), global_pruning=options.get("global_pruning", True),
            pruning_ratio=options.get("max_ratio", 0.9), iterative_steps=options.get("steps", 200),
            ignored_layers=ignored, round_to=options.get("round_to"),
        )  # fmt: skip
        achieved, batches = 0.0, _cycle(ctx.train_loader) if crit.needs_grad else None
        while achieved < target and pruner.current_step < pruner.iterative_steps:
            if crit.needs_grad:  # Taylor: a fresh loss gradient before each step
                model.zero_grad()
                x, y = next(batches)
                F.cross_entropy(model(x), y).backward()
            pruner.step()
            achieved = 1 - _cost(model, kind, *shape) / base
    except MethodError:
        raise
    except Exception as exc:  # Torch-Pruning cannot trace or prune this architecture
        raise MethodError(
            f"criterion {criterion!r} cannot prune {ctx.model_name}: {type(exc).__name__}: {exc}"
        ) from exc
    model.zero_grad(set_to_none=True)
    tolerance = options.get("tolerance", 0.01)
    if abs(achieved - target) > tolerance:
        raise MethodError(
            f"{criterion} pruning reached {kind} {achieved:.4f} for target {target:.4f} "
            f"(tolerance {tolerance}); try more `steps`, a higher `max_ratio` or a smaller target"
        )
    return {"criterion": criterion, "achieved": achieved, "target": target, "target_kind": kind,
            "steps_taken": pruner.current_step, "global_pruning": options.get("global_pruning", True)}  # fmt: skip


def _cycle(loader):
    while True:
        yield from loader


def check_options(method: str, options: dict, allowed: dict) -> None:
    for key, value in options.items():
        if key not in allowed:
            raise MethodError(f"method {method!r} does not take option {key!r}; it takes {sorted(allowed)}")
        typ = allowed[key]
        if not isinstance(value, typ) and not (typ is float and isinstance(value, int)):
            raise MethodError(f"option {key!r} of {method!r} must be {typ.__name__}, got {value!r}")


def bn_l1(reg: float):
    """Network slimming's sparsity term: reg x sum |gamma| over the BN layers."""

    def loss(model: nn.Module) -> torch.Tensor:
        gammas = [m.weight.abs().sum() for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        return reg * torch.stack(gammas).sum()

    return loss


class StructuredPruning(BaseMethod):
    phase = "finetune"
    targets = ("macs_reduction", "params_reduction")
    criterion = "l1"

    def check(self, options, target):
        allowed = OPTIONS if self.criterion == "slimming" else {k: v for k, v in OPTIONS.items() if "slimming" not in k}
        check_options(self.name, options, allowed)

    def prepare(self, ctx):
        model = ctx.dense_model()
        if self.criterion == "slimming" and not any(
            isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()
        ):
            raise MethodError(f"network slimming ranks channels by BN scales; {ctx.model_name} has no BatchNorm layer")
        info = {}
        epochs = ctx.options.get("slimming_epochs", 0)
        if epochs:  # the sparsity-regularised training phase of network slimming
            ctx.train(model, epochs, bn_l1(ctx.options.get("slimming_reg", 1e-5)))
            info["slimming_epochs"] = epochs
        info |= prune_to_target(model, ctx, self.criterion, ctx.options)
        return Prepared(model, "finetune", ctx.epochs("finetune"), info)


for _name, _crit in CRITERIA.items():
    register_method(type(f"Prune_{_name}", (StructuredPruning,), {
        "name": f"prune_{_name}", "criterion": _name,
        "__doc__": f"Structured pruning, Torch-Pruning, {_crit.doc}; then fine-tuning.",
    }))  # fmt: skip
