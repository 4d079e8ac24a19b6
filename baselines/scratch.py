"""From-scratch baselines ("Rethinking the Value of Network Pruning", Liu et al. 2019).

* ``scratch_e``: the architecture a structured pruning run finds, re-initialised and trained
  for the suite's scratch budget (Scratch-E);
* ``scratch_b``: the same, with epochs scaled by dense MACs / pruned MACs (Scratch-B: the same
  computation budget as the dense model);
* ``uniform``: every prunable layer thinned by one ratio, solved by bisection to hit the MACs
  target, then re-initialised and trained from scratch (a uniform-width dense model).
"""

from __future__ import annotations

import torch_pruning as tp

from baselines.structured import OPTIONS, StructuredPruning, check_options, classifier_of, prune_to_target
from benchmarks.methods import MethodError, Prepared, register_method
from tissuenet.counting import count_macs
from tissuenet.models._common import init_weights

SCRATCH_OPTIONS = {"criterion": str} | {k: v for k, v in OPTIONS.items() if "slimming" not in k}


def reinitialise(model):
    for m in model.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    return init_weights(model)


class ScratchE(StructuredPruning):
    """Pruned architecture (structured, criterion option), re-initialised, trained from scratch."""

    phase = "scratch"
    scale_epochs = False

    def check(self, options, target):
        check_options(self.name, options, SCRATCH_OPTIONS)

    def prepare(self, ctx):
        model = ctx.dense_model()
        dense_macs = count_macs(model, ctx.in_channels, ctx.input_size)
        criterion = ctx.options.get("criterion", "l1")
        info = prune_to_target(model, ctx, criterion, {k: v for k, v in ctx.options.items() if k != "criterion"})
        ratio = dense_macs / count_macs(model, ctx.in_channels, ctx.input_size)
        epochs = ctx.epochs("scratch")
        if self.scale_epochs and ctx.epochs_override is None:
            epochs = round(epochs * ratio)
        return Prepared(reinitialise(model), "scratch", epochs, info | {"macs_ratio": ratio})


@register_method
class ScratchEMethod(ScratchE):
    """Scratch-E: the pruned architecture re-initialised, trained for the scratch budget."""

    name = "scratch_e"


@register_method
class ScratchBMethod(ScratchE):
    """Scratch-B: as scratch_e, with epochs x dense MACs / pruned MACs (same compute budget)."""

    name = "scratch_b"
    scale_epochs = True


@register_method
class Uniform(StructuredPruning):
    """Uniformly thinned dense model (one ratio for all layers, solved for the MACs target), from scratch."""

    name = "uniform"
    phase = "scratch"
    targets = ("macs_reduction",)

    def check(self, options, target):
        check_options(self.name, options, {"round_to": int, "tolerance": float})

    def prepare(self, ctx):
        lo, hi, best = 0.0, 0.95, None
        for _ in range(16):  # bisection on the per-layer channel ratio
            ratio = (lo + hi) / 2
            model = ctx.dense_model()
            reduction = self._thin(model, ctx, ratio)
            if best is None or abs(reduction - ctx.target.value) < abs(best[1] - ctx.target.value):
                best = (ratio, reduction, model)
            lo, hi = (ratio, hi) if reduction < ctx.target.value else (lo, ratio)
        ratio, reduction, model = best
        if abs(reduction - ctx.target.value) > ctx.options.get("tolerance", 0.01):
            raise MethodError(f"uniform thinning reached {reduction:.4f} for target {ctx.target.value}")
        info = {"width_ratio": 1 - ratio, "achieved": reduction, "target": ctx.target.value}
        return Prepared(reinitialise(model), "scratch", ctx.epochs("scratch"), info)

    def _thin(self, model, ctx, ratio: float) -> float:
        base = count_macs(model, ctx.in_channels, ctx.input_size)
        tp.pruner.BasePruner(model, ctx.example(1), importance=tp.importance.MagnitudeImportance(p=1),
                             pruning_ratio=ratio, ignored_layers=[classifier_of(model)],
                             round_to=ctx.options.get("round_to")).step()  # fmt: skip
        return 1 - count_macs(model, ctx.in_channels, ctx.input_size) / base
