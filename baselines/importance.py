"""Channel importance as the papers define it, for Torch-Pruning's pruner (``tp.importance.Importance``).

Torch-Pruning 1.6.1's own criteria differ from their papers in ways a reviewer would notice
(issue 20; measured on small examples in ``tests/test_importance.py``), so these follow the papers:

* :class:`GeometricMedian` (FPGM, He et al. 2019): a filter's summed Euclidean distance to the other
  filters of its layer; the filters nearest the geometric median (smallest sum) are redundant. The
  distance is between the filters' weights (Torch-Pruning measures it between |w|^2 vectors, so a
  filter and its negative are at distance 0). Ranked within each layer, every layer at one rate.
* :class:`BNScale` (Network Slimming, Liu et al. 2017): the raw |gamma| of the channel's BN
  (the mean over BNs where a residual couples several), one global threshold: no per-layer
  normalisation (Torch-Pruning divides each group's |gamma| by its mean, which keeps every channel
  of a layer whose gammas are all small).
* :class:`Taylor` (Molchanov et al. 2019): ``(sum over the channel's parameters of w x dL/dw)^2``,
  BN scale and shift included, per mini-batch, summed over ``batches`` mini-batches before each
  pruning step (Torch-Pruning sums |w x g| of one batch and ignores BN).

Every score is indexed like the group's root channels (``root_idxs``), as Torch-Pruning expects.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torch_pruning as tp
from torch import nn
from torch_pruning.pruner import function as fn

OUT_CHANNELS = (fn.prune_conv_out_channels, fn.prune_linear_out_channels)
BN_OUT = (fn.prune_batchnorm_out_channels,)
_BN = nn.modules.batchnorm._BatchNorm


def _width(group) -> int:
    return len(group[0][1])


def _scatter(n: int, parts: list[tuple[torch.Tensor, list]], reduce: str = "sum") -> torch.Tensor:
    """Per-layer scores into the group's root positions, summed (or averaged) over the layers that have them."""
    total, count = torch.zeros(n), torch.zeros(n)
    for scores, root_idxs in parts:
        if any(r is None for r in root_idxs):
            continue
        index = torch.tensor(root_idxs, dtype=torch.long)
        total.index_add_(0, index, scores.detach().float().cpu())
        count.index_add_(0, index, torch.ones(len(index)))
    return total / count.clamp(min=1) if reduce == "mean" else total


class GeometricMedian(tp.importance.Importance):
    """FPGM: summed distance of each filter of the group's first conv/linear to that layer's other filters."""

    @torch.no_grad()
    def __call__(self, group) -> torch.Tensor:
        for i, (dep, idxs) in enumerate(group):
            if dep.pruning_fn in OUT_CHANNELS:
                weights = dep.layer.weight.detach().flatten(1)  # every filter of the layer, pruned ones included
                distances = torch.cdist(weights[idxs].float(), weights.float(), p=2).sum(1)
                return _scatter(_width(group), [(distances, group[i].root_idxs)])
        return torch.zeros(_width(group))


class BNScale(tp.importance.Importance):
    """Network Slimming: raw |gamma| of the channel's batch norm (mean over coupled BNs), never normalised."""

    @torch.no_grad()
    def __call__(self, group) -> torch.Tensor:
        parts = [
            (dep.layer.weight.detach().abs()[idxs], group[i].root_idxs)
            for i, (dep, idxs) in enumerate(group)
            if dep.pruning_fn in BN_OUT and isinstance(dep.layer, _BN) and dep.layer.affine
        ]
        return _scatter(_width(group), parts, reduce="mean")


class Taylor(tp.importance.Importance):
    """Molchanov et al. 2019: (sum of w x g over the channel's parameters)^2 per batch, summed over batches.

    :meth:`accumulate` runs the batches (a fresh gradient each) before every pruning step; the
    scores of a step come from the model as it is at that step.
    """

    def __init__(self) -> None:
        self.per_batch: dict[nn.Module, list[torch.Tensor]] = {}

    def accumulate(self, model: nn.Module, batches) -> None:
        self.per_batch = {}
        for x, y in batches:
            model.zero_grad()
            F.cross_entropy(model(x), y).backward()
            for module in model.modules():
                contribution = _channel_contribution(module)
                if contribution is not None:
                    self.per_batch.setdefault(module, []).append(contribution)
        model.zero_grad(set_to_none=True)

    @torch.no_grad()
    def __call__(self, group) -> torch.Tensor:
        n = _width(group)
        batches = max((len(v) for v in self.per_batch.values()), default=0)
        if batches == 0:
            raise RuntimeError("Taylor importance needs accumulate(model, batches) before a pruning step")
        score = torch.zeros(n)
        for b in range(batches):  # the sum over the channel's parameters first, then the square, per batch
            parts = [
                (self.per_batch[dep.layer][b][idxs], group[i].root_idxs)
                for i, (dep, idxs) in enumerate(group)
                if dep.pruning_fn in OUT_CHANNELS + BN_OUT and dep.layer in self.per_batch
            ]
            score += _scatter(n, parts) ** 2
        return score


def _channel_contribution(module: nn.Module) -> torch.Tensor | None:
    """sum of w x dL/dw per output channel of a conv/linear (bias included), or gamma g + beta g of a BN."""
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
        if module.weight.grad is None:
            return None
        out = (module.weight * module.weight.grad).flatten(1).sum(1)
        if module.bias is not None and module.bias.grad is not None:
            out = out + module.bias * module.bias.grad
        return out.detach().cpu()
    if isinstance(module, _BN) and module.affine and module.weight.grad is not None:
        return (module.weight * module.weight.grad + module.bias * module.bias.grad).detach().cpu()
    return None


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
