"""From-scratch baselines ("Rethinking the Value of Network Pruning", Liu et al. 2019).

* ``scratch_e``: the architecture a structured pruning run finds (``criterion``, default l1),
  re-initialised and trained for the dense model's epochs (Scratch-E: same epochs);
* ``scratch_b``: the same, trained for ``dense_epochs x dense MACs / pruned MACs`` epochs
  (Scratch-B: the same computation budget as the dense model); compared with the dense model;
* ``uniform``: every prunable layer thinned by one ratio, solved by bisection to hit the MACs
  target, re-initialised and trained from scratch for the scratch budget.

A model trained from scratch is compared with a dense model trained for the same number of epochs
(Scratch-E, uniform); Scratch-B, whose budget is the dense model's compute, with the dense model.
"""

from __future__ import annotations

import copy

from baselines.contract import Estimate, MethodError, Prepared, register_method
from baselines.structured import OPTIONS, StructuredPruning, check_options, classifier_of, prune_to_target
from tissuenet.counting import count_macs
from tissuenet.models._common import init_weights

SCRATCH_OPTIONS = {"criterion": str} | OPTIONS
# Liu et al. 2019 cap Scratch-B on ImageNet at twice the dense epochs ("at most 2x"); elsewhere no cap
BUDGET_CAP = {"imagenet": 2.0}
BISECTION_STEPS = 16  # on the channel ratio: 2^-16 resolution, far below one channel
MAX_THINNING = 0.95


def reinitialise(model):
    for m in model.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    return init_weights(model)


class ScratchE(StructuredPruning):
    """Pruned architecture (structured, criterion option), re-initialised, trained from scratch."""

    phase = "scratch"
    compute_matched = False  # Scratch-B: epochs x dense MACs / pruned MACs

    def check(self, options, target):
        allowed = SCRATCH_OPTIONS | ({"max_budget_factor": float} if self.compute_matched else {})
        check_options(self.name, options, allowed)
        if options.get("max_budget_factor", 1.0) < 1.0:
            raise MethodError(f"option max_budget_factor of {self.name!r} must be >= 1 (the dense budget at least)")

    def _epochs(self, budgets, override, macs_ratio: float, cap: float | None = None) -> int:
        """Scratch-E: the dense epochs; Scratch-B: dense epochs x dense MACs / pruned MACs, at most ``cap`` x the
        dense epochs (``max_budget_factor``, default 2 on ImageNet as Liu et al. 2019)."""
        if override is not None:
            return override
        if not self.compute_matched:
            return budgets.dense_epochs
        return round(budgets.dense_epochs * (macs_ratio if cap is None else min(macs_ratio, cap)))

    @staticmethod
    def cap(options: dict, dataset: str) -> float | None:
        return options.get("max_budget_factor", BUDGET_CAP.get(dataset))

    def reference_epochs(self, budgets, epochs_override):
        return budgets.dense_epochs if self.compute_matched else self._epochs(budgets, epochs_override, 1.0)

    def estimate(self, plan):
        keep = 1 - plan.target.value if plan.target.kind == "macs_reduction" else 1.0
        epochs = self._epochs(plan.budgets, plan.epochs_override, 1 / keep, self.cap(plan.options, plan.dataset))
        return Estimate(
            epochs,
            plan.dense_macs * keep,
            plan.dense_params * keep,
            self.reference_epochs(plan.budgets, plan.epochs_override),
        )

    def prepare(self, ctx):
        model = ctx.dense_model()
        dense_macs = count_macs(model, ctx.in_channels, ctx.input_size)
        criterion = ctx.options.get("criterion", "l1")
        own = ("criterion", "max_budget_factor")
        info = prune_to_target(model, ctx, criterion, {k: v for k, v in ctx.options.items() if k not in own})
        ratio = dense_macs / count_macs(model, ctx.in_channels, ctx.input_size)
        cap = self.cap(ctx.options, ctx.dataset)
        epochs = self._epochs(ctx.budgets, ctx.epochs_override, ratio, cap)
        if self.compute_matched:
            info["budget_cap"] = cap
        reference = self.reference_epochs(ctx.budgets, ctx.epochs_override)
        return Prepared(
            reinitialise(model), "scratch", epochs, info | {"macs_ratio": ratio}, reference_epochs=reference
        )


@register_method
class ScratchEMethod(ScratchE):
    """Scratch-E: the pruned architecture re-initialised, trained for the dense model's epochs."""

    name = "scratch_e"


@register_method
class ScratchBMethod(ScratchE):
    """Scratch-B: as scratch_e, for dense epochs x dense MACs / pruned MACs (the dense model's compute)."""

    name = "scratch_b"
    compute_matched = True


@register_method
class Uniform(StructuredPruning):
    """Uniformly thinned dense model (one ratio for all layers, solved for the MACs target), from scratch."""

    name = "uniform"
    phase = "scratch"
    targets = ("macs_reduction",)

    def check(self, options, target):
        check_options(self.name, options, {"round_to": int, "tolerance": float})

    def estimate(self, plan):
        return super(StructuredPruning, self).estimate(plan)

    def prepare(self, ctx):
        lo, hi, best = 0.0, MAX_THINNING, None
        template = ctx.dense_model()  # built once: a copy per step costs a fraction of building a ResNet-50
        for _ in range(BISECTION_STEPS):  # bisection on the per-layer channel ratio
            ratio = (lo + hi) / 2
            model = copy.deepcopy(template)
            reduction = self._thin(model, ctx, ratio)
            if best is None or abs(reduction - ctx.target.value) < abs(best[1] - ctx.target.value):
                best = (ratio, reduction, model)
            lo, hi = (ratio, hi) if reduction < ctx.target.value else (lo, ratio)
        ratio, reduction, model = best
        if abs(reduction - ctx.target.value) > ctx.options.get("tolerance", 0.01):
            raise MethodError(f"uniform thinning reached {reduction:.4f} for target {ctx.target.value}")
        info = {"width_ratio": 1 - ratio, "achieved": reduction, "target": ctx.target.value}
        epochs = ctx.epochs("scratch")
        return Prepared(reinitialise(model), "scratch", epochs, info, reference_epochs=epochs)

    def _thin(self, model, ctx, ratio: float) -> float:
        import torch_pruning as tp  # not at the top: listing methods stays light

        base = count_macs(model, ctx.in_channels, ctx.input_size)
        importance = tp.importance.MagnitudeImportance(p=1, group_reduction="first", normalizer=None)
        tp.pruner.BasePruner(
            model,
            ctx.example(1),
            importance=importance,
            pruning_ratio=ratio,
            ignored_layers=[classifier_of(model)],
            round_to=ctx.options.get("round_to"),
        ).step()
        return 1 - count_macs(model, ctx.in_channels, ctx.input_size) / base
