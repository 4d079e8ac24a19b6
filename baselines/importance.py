"""Channel importance as the papers define it, for Torch-Pruning's pruner (``tp.importance.Importance``).

Torch-Pruning 1.6.1's own criteria differ from their papers in ways a reviewer would notice
(issue 20; measured on small examples in ``tests/test_importance.py``), so these follow the papers:

* :class:`BNScale` (Network Slimming, Liu et al. 2017): the raw |gamma| of the channel's BN
  (the mean over BNs where a residual couples several), one global threshold: no per-layer
  normalisation (Torch-Pruning divides each group's |gamma| by its mean, which keeps every channel
  of a layer whose gammas are all small).

FPGM's distance and Taylor's gate score live with their methods (``fpgm.py``, ``taylor.py``): both prune
while the model trains.

Every score is indexed like the group's root channels (``root_idxs``), as Torch-Pruning expects.
"""

from __future__ import annotations

import torch
import torch_pruning as tp

from baselines.channels import _BN, BN_OUT


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
