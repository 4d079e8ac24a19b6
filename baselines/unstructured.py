"""Unstructured pruning through ``torch.nn.utils.prune``: weights zeroed, shapes unchanged.

Prunable weights: every conv and linear weight (the classifier too, unless
``include_classifier = false``). ``sparse_global``: the smallest-magnitude weights across all
layers (exactly round(s x N) of them); ``sparse_lamp``: the smallest LAMP scores across all layers
(Lee et al. 2021: w^2 over the sum of the squares of the layer's weights at least as large, which
makes scores comparable between layers); ``sparse_layer`` and ``sparse_random``: the same fraction in
each layer. Masks are forward pre-hooks, so they hold during fine-tuning; afterwards they are
made permanent. Results record nonzero params and ``macs_effective`` (layer MACs x density): the
cost with sparse kernels, which a dense runtime does not have (the latency shows it).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import prune

from baselines.contract import BaseMethod, Estimate, Prepared, register_method
from baselines.structured import check_options, classifier_of

PRUNABLE = (nn.Conv1d, nn.Conv2d, nn.Linear)


def lamp_scores(weight: torch.Tensor) -> torch.Tensor:
    """LAMP (Lee et al. 2021), per weight of one layer: w_u^2 / sum of w_v^2 over the weights v at least as large.

    Sorted ascending by w^2, weight u's score is its square over the sum of the squares from u to the
    largest; comparable across layers, so one global threshold prunes them all.
    """
    squares = weight.detach().flatten().float() ** 2
    order = torch.argsort(squares, stable=True)
    ranked = squares[order]
    suffix = torch.flip(torch.cumsum(torch.flip(ranked, [0]), 0), [0])
    scores = torch.empty_like(squares)
    scores[order] = ranked / suffix.clamp(min=torch.finfo(squares.dtype).tiny)
    return scores.view_as(weight)


def prunable_weights(model: nn.Module, include_classifier: bool = True) -> list[tuple[nn.Module, str]]:
    skip = None if include_classifier else classifier_of(model)
    return [(m, "weight") for m in model.modules() if isinstance(m, PRUNABLE) and m is not skip]


def sparsity_of(params: list[tuple[nn.Module, str]]) -> float:
    total = sum(getattr(m, n).numel() for m, n in params)
    return sum(int((getattr(m, n) == 0).sum()) for m, n in params) / total


def make_permanent(model: nn.Module) -> nn.Module:
    for m in model.modules():
        if prune.is_pruned(m) and hasattr(m, "weight_mask"):
            prune.remove(m, "weight")
    return model


class Unstructured(BaseMethod):
    phase = "finetune"
    targets = ("sparsity",)
    scope, pruning = "global", prune.L1Unstructured
    score = None  # per-weight importance for the global threshold (None: |w|)

    def check(self, options, target):
        check_options(self.name, options, {"include_classifier": bool})

    def estimate(self, plan):
        """Effective cost (1 - sparsity) x dense; training runs dense (masks zero weights, not work)."""
        est = super().estimate(plan)
        return Estimate(est.epochs, est.macs, est.params, est.reference_epochs, train_macs=plan.dense_macs)

    def prepare(self, ctx):
        model = ctx.dense_model()
        params = prunable_weights(model, ctx.options.get("include_classifier", True))
        s = ctx.target.value
        if self.scope == "global":
            total = sum(m.weight.numel() for m, _ in params)
            scores = {(m, n): self.score(getattr(m, n)) for m, n in params} if self.score else None
            prune.global_unstructured(
                params, pruning_method=self.pruning, importance_scores=scores, amount=round(s * total)
            )
        else:
            for m, name in params:
                self.pruning.apply(m, name, amount=round(s * m.weight.numel()))
        info = {"achieved": sparsity_of(params), "target": s, "scope": self.scope, "pruning": self.pruning.__name__}
        return Prepared(model, "finetune", ctx.epochs("finetune"), info, finalize=make_permanent)


@register_method
class SparseGlobal(Unstructured):
    """Unstructured, global magnitude (smallest |w| across all layers); then fine-tuning."""

    name = "sparse_global"


@register_method
class SparseLamp(Unstructured):
    """Unstructured, global LAMP scores (Lee et al. 2021: layer-adaptive magnitude); then fine-tuning."""

    name = "sparse_lamp"
    score = staticmethod(lamp_scores)


@register_method
class SparseLayer(Unstructured):
    """Unstructured, per-layer magnitude (the same sparsity in every layer); then fine-tuning."""

    name, scope = "sparse_layer", "layer"


@register_method
class SparseRandom(Unstructured):
    """Unstructured, random weights per layer (a sanity baseline); then fine-tuning."""

    name, scope, pruning = "sparse_random", "layer", prune.RandomUnstructured
