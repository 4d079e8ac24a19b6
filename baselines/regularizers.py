"""Regularizers a shared start checkpoint may train with (``Method.start``), by name.

* ``bn_l1``: Network Slimming's sparsity term (Liu et al. 2017, Sec. 3): ``weight x sum |gamma|`` over every
  BN scale, added to the loss of the whole (dense) training, so that unimportant channels' scales go to
  zero before one global threshold prunes them.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

_BN = nn.modules.batchnorm._BatchNorm
SMALL_GAMMA = 1e-2  # |gamma| below this: a channel the sparsity training has all but switched off


def bn_l1(weight: float) -> Callable[[nn.Module], torch.Tensor]:
    def loss(model: nn.Module) -> torch.Tensor:
        gammas = [m.weight.abs().sum() for m in model.modules() if isinstance(m, _BN) and m.affine]
        return weight * torch.stack(gammas).sum()

    return loss


REGULARIZERS = {"bn_l1": bn_l1}


def regularizer(start: dict) -> Callable[[nn.Module], torch.Tensor]:
    """The loss term of a start checkpoint's spec (``{"regularizer": "bn_l1", "weight": 1e-5, ...}``)."""
    if start.get("regularizer") not in REGULARIZERS:
        raise ValueError(f"unknown regularizer {start.get('regularizer')!r}; known: {', '.join(REGULARIZERS)}")
    return REGULARIZERS[start["regularizer"]](float(start["weight"]))


@torch.no_grad()
def bn_statistics(model: nn.Module) -> dict | None:
    """How many BN scales are near zero (the paper's Fig. 4: after sparsity training most are), or None."""
    gammas = [m.weight.detach().abs().flatten().cpu() for m in model.modules() if isinstance(m, _BN) and m.affine]
    if not gammas:
        return None
    values = torch.cat(gammas)
    return {
        "bn_gamma_small_fraction": float((values < SMALL_GAMMA).float().mean()),
        "bn_gamma_median": float(values.median()),
        "bn_channels": int(values.numel()),
    }
