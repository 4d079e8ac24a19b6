"""Structured pruning through Torch-Pruning 1.6: one method per importance criterion (``criteria.py``).

The target is a MACs (or parameter) reduction measured under the suite's counting convention.
Pruning runs in many small steps (``steps``: the schedule reaches ``max_ratio`` of every group
at the last step) and stops at the first step whose measured reduction reaches the target; the
achieved value must lie within ``tolerance`` (1 percentage point) of it, or the job fails
saying so. The classifier is never pruned. Fine-tuning follows under the suite's budget.

Network Slimming (``prune_slimming``, Liu et al. 2017) starts from its own shared checkpoint: the dense
training itself, with the same epochs, schedule and augmentation, run with an L1 penalty ``slimming_reg``
on every BN scale (``Method.start``; their lambda: 1e-4 for VGG, 1e-5 for ResNets), then one global
threshold on the raw |gamma|, then fine-tuning. Without that training the method is ``prune_bnscale``.
Taylor (``taylor.py``) and FPGM (``fpgm.py``) prune while the model trains: they have files of their own.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from baselines.contract import BaseMethod, MethodError, Prepared, register_method
from baselines.criteria import CRITERIA, get_criterion, load_tp
from tissuenet.counting import ShapeCounter, count_params

OPTIONS = {
    "global_pruning": bool,
    "round_to": int,
    "steps": int,
    "max_ratio": float,
    "ignore": list,
    "tolerance": float,
}
CALIBRATION_OPTIONS = {"calibration_batches": int}  # criteria that look at data before each step (a plugin's)
SLIMMING_OPTIONS = {"slimming_reg": float}
DEFAULT_STEPS = 200  # pruning steps from 0 to max_ratio: small steps land within the tolerance
DEFAULT_MAX_RATIO = 0.9  # of any group's channels, at most
DEFAULT_TOLERANCE = 0.01  # achieved reduction within 1 point of the target
# Network Slimming's lambda (Liu et al. 2017, Sec. 4.3): 1e-4 for VGG, 1e-5 for ResNet and DenseNet; we use
# 1e-5 for every non-VGG family (MobileNetV2, the MLP, timm/torchvision models) and say so in the record
SLIMMING_REG = {"vgg": 1e-4}
DEFAULT_SLIMMING_REG = 1e-5


def slimming_reg(model_name: str) -> float:
    """The paper's sparsity weight for a backbone's family (``slimming_reg`` in the options overrides it)."""
    from tissuenet.registry import get_entry

    family = get_entry(model_name).family if ":" not in model_name else model_name.split(":", 1)[1]
    return next((reg for key, reg in SLIMMING_REG.items() if family.lower().startswith(key)), DEFAULT_SLIMMING_REG)


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


def _cost(model: nn.Module, kind: str, in_channels: int, input_size: int):
    """A counter of the target's cost for ``model`` as it is pruned (MACs from layer shapes: no forward pass)."""
    if kind == "params_reduction":
        return lambda: count_params(model)
    return ShapeCounter(model, in_channels, input_size)


def prune_to_target(model, ctx, criterion, options: dict) -> dict:
    """Prune ``model`` in place until the measured reduction reaches ``ctx.target``.

    ``criterion``: a registered criterion's name (``baselines.criteria``) or a :class:`Criterion` (a plugin's).

    Whole steps of the schedule until the target is reached. When the last step jumps past it by
    more than the tolerance (residual networks remove a channel from every coupled layer at once),
    the schedule is replayed from the unpruned model (same seed, so the same steps) and its last
    step is taken channel by channel, least important first, stopping at the target.
    """
    crit = get_criterion(criterion) if isinstance(criterion, str) else criterion
    if crit.needs_bn and not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        raise MethodError(f"criterion {criterion!r} ranks channels by BN scales; {ctx.model_name} has no BatchNorm")
    tolerance = options.get("tolerance", DEFAULT_TOLERANCE)
    steps = options.get("steps", DEFAULT_STEPS)
    original = copy.deepcopy(model)
    info = _prune_once(model, ctx, crit, options, steps)
    if info["achieved"] - ctx.target.value > tolerance:  # the last step overshot: replay it channel by channel
        _restore(model, original)
        info = _prune_once(model, ctx, crit, options, steps, exact_step=info["steps_taken"])
    if abs(info["achieved"] - ctx.target.value) > tolerance:
        raise MethodError(
            f"{crit.name} pruning reached {ctx.target.kind} {info['achieved']:.4f} for target {ctx.target.value:.4f} "
            f"(tolerance {tolerance}); try more `steps`, a higher `max_ratio` or a smaller target"
        )
    return info


def _restore(model: nn.Module, original: nn.Module) -> None:
    """Put the unpruned modules back into ``model`` (pruning changed their shapes in place)."""
    for name, child in copy.deepcopy(original).named_children():
        setattr(model, name, child)


def _prune_once(model, ctx, crit, options: dict, steps: int, exact_step: int | None = None) -> dict:
    """One pass of the schedule; step ``exact_step`` (if given) is taken channel by channel."""
    target, kind = ctx.target.value, ctx.target.kind
    torch.manual_seed(ctx.seed)  # a replay takes the same steps (random and Taylor criteria included)
    shape = (ctx.in_channels, ctx.input_size)
    try:
        ignored = [classifier_of(model)] + [model.get_submodule(n) for n in options.get("ignore", [])]
    except AttributeError as exc:
        raise MethodError(f"option ignore: {exc}") from exc
    global_pruning = options.get("global_pruning", crit.global_pruning)
    model.eval()
    cost = _cost(model, kind, *shape)
    base = cost()
    try:
        pruner = load_tp().pruner.BasePruner(
            model,
            ctx.example(1),
            importance=crit.make(),
            global_pruning=global_pruning,
            pruning_ratio=options.get("max_ratio", DEFAULT_MAX_RATIO),
            iterative_steps=steps,
            ignored_layers=ignored,
            round_to=options.get("round_to"),
        )
        achieved, batches = 0.0, _cycle(ctx.train_loader) if crit.batches else None
        measure = lambda: 1 - cost() / base  # noqa: E731
        while achieved < target and pruner.current_step < pruner.iterative_steps:
            if crit.batches:  # Taylor: fresh gradients of several mini-batches before each step
                n = options.get("calibration_batches", crit.batches)
                pruner.importance.accumulate(model, [next(batches) for _ in range(n)])
            if pruner.current_step + 1 != exact_step:
                pruner.step()
                achieved = measure()
                continue
            for group in pruner.step(interactive=True):
                achieved = _prune_channels(group, pruner, measure, target)
                if achieved >= target:
                    break
    except MethodError:
        raise
    except Exception as exc:  # Torch-Pruning cannot trace or prune this architecture
        raise MethodError(
            f"criterion {crit.name!r} cannot prune {ctx.model_name}: {type(exc).__name__}: {exc}"
        ) from exc
    model.zero_grad(set_to_none=True)
    return {
        "criterion": crit.name,
        "achieved": achieved,
        "target": target,
        "target_kind": kind,
        "steps_taken": pruner.current_step,
        "steps": steps,
        "global_pruning": global_pruning,
    }


def _prune_channels(group, pruner, measure, target: float) -> float:
    """Prune one group's channels one at a time (least important first) until ``measure()`` reaches ``target``."""
    dep, idxs = group[0]
    try:
        scores = pruner.importance(group)
        order = [i for _, i in sorted(zip(scores.tolist(), idxs))]
    except Exception:  # noqa: BLE001 - a criterion that cannot score a partial group: index order
        order = list(idxs)
    module, handler = dep.target.module, dep.handler
    achieved = measure()
    for i, idx in enumerate(order):
        if achieved >= target:
            break
        pruner.DG.get_pruning_group(module, handler, [_shifted(idx, order[:i])]).prune()
        achieved = measure()
    return achieved


def _shifted(idx: int, removed: list[int]) -> int:
    """Channel ``idx`` of the original layer, after the channels in ``removed`` were taken out."""
    return idx - sum(r < idx for r in removed)


def _cycle(loader):
    while True:
        yield from loader


# option -> (lowest allowed, highest allowed, lowest excluded?)
RANGES = {
    "steps": (1, None, False),
    "round_to": (1, None, False),
    "max_ratio": (0, 1, True),
    "tolerance": (0, 1, False),
    "calibration_batches": (1, None, False),
    "slimming_reg": (0, None, True),
}


def _type_ok(value, typ) -> bool:
    if typ is bool or isinstance(value, bool):
        return typ is bool and isinstance(value, bool)
    return isinstance(value, (int, float)) if typ is float else isinstance(value, typ)


def check_options(method: str, options: dict, allowed: dict) -> None:
    for key, value in options.items():
        if key not in allowed:
            raise MethodError(f"method {method!r} does not take option {key!r}; it takes {sorted(allowed)}")
        if not _type_ok(value, allowed[key]):
            raise MethodError(f"option {key!r} of {method!r} must be {allowed[key].__name__}, got {value!r}")
        if key in RANGES:
            lo, hi, open_lo = RANGES[key]
            if value < lo or (open_lo and value == lo) or (hi is not None and value > hi):
                limits = f"{'>' if open_lo else '>='} {lo}" + (f" and <= {hi}" if hi is not None else "")
                raise MethodError(f"option {key} = {value!r} of {method!r}: allowed {limits}")
    if "ignore" in options and not all(isinstance(n, str) for n in options["ignore"]):
        raise MethodError(f"option ignore of {method!r} must be a list of module names")


class StructuredPruning(BaseMethod):
    phase = "finetune"
    targets = ("macs_reduction", "params_reduction")
    criterion = "l1"

    @property
    def sparsity_training(self) -> bool:
        return self.criterion == "slimming"

    def check(self, options, target):
        calibrates = get_criterion(self.criterion).batches > 0
        own = (SLIMMING_OPTIONS if self.sparsity_training else {}) | (CALIBRATION_OPTIONS if calibrates else {})
        check_options(self.name, options, OPTIONS | own)

    def start(self, options, model_name):
        """Network Slimming starts from the dense training run with its L1 penalty on the BN scales."""
        if not self.sparsity_training:
            return None
        return {
            "name": "sparsity",
            "regularizer": "bn_l1",
            "weight": options.get("slimming_reg", slimming_reg(model_name)),
        }

    def prepare(self, ctx):
        model = ctx.dense_model()  # Network Slimming: its sparsity-trained checkpoint
        crit = get_criterion(self.criterion)
        if crit.needs_bn and not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
            raise MethodError(f"{self.name} ranks channels by BN scales; {ctx.model_name} has no BatchNorm")
        info = prune_to_target(model, ctx, self.criterion, ctx.options)
        if self.sparsity_training:
            info["slimming_reg"] = self.start(ctx.options, ctx.model_name)["weight"]
        return Prepared(model, "finetune", ctx.epochs("finetune"), info)


for _name, _crit in CRITERIA.items():
    register_method(
        type(
            f"Prune_{_name}",
            (StructuredPruning,),
            {
                "name": f"prune_{_name}",
                "criterion": _name,
                "__doc__": f"Structured pruning, Torch-Pruning, {_crit.doc}; then fine-tuning.",
            },
        )
    )
