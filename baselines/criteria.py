"""Importance criteria of Torch-Pruning 1.6, by name (a registry, not an if/elif chain).

Each entry says which paper it implements and the exact Torch-Pruning configuration (the
``global_pruning`` method option can switch ranking to within each layer). No two criteria give the same pruned network
from the same checkpoint (tested on ResNet-56 at -50 % MACs).

* ``l1``: PFEC (Li et al. 2017, "Pruning Filters for Efficient ConvNets"), the L1 norm of each
  filter's own weights: ``MagnitudeImportance(p=1, group_reduction="first", normalizer=None)``.
* ``l2``: PFEC with the L2 norm: ``MagnitudeImportance(p=2, group_reduction="first", normalizer=None)``.
* ``group``: DepGraph (Fang et al. 2023), L2 over every coupled layer, group mean, mean-normalised:
  ``GroupMagnitudeImportance(p=2)``.
* ``taylor``: Molchanov et al. 2019, first-order Taylor of the loss with a fresh gradient per
  step: ``TaylorImportance()``.
* ``slimming``: Network Slimming (Liu et al. 2017), BN scales after the L1 sparsity phase:
  ``BNScaleImportance()``.
* ``bnscale``: BN scales without the sparsity phase (not Network Slimming): ``BNScaleImportance()``.
* ``fpgm``: FPGM (He et al. 2019), distance to the geometric median: ``FPGMImportance()``.
* ``lamp``: LAMP (Lee et al. 2021), layer-adaptive magnitude scores: ``LAMPImportance()``.
* ``random``: random channels, a sanity baseline: ``RandomImportance()``.

Ranking: PFEC (``l1``, ``l2``) ranks filters within each layer and prunes every layer by the same
fraction, as its paper prunes fixed fractions per layer: raw norms are not comparable across
layers (a 1-channel stem's 9-weight filters would always rank lowest). Every other criterion
ranks globally, as its paper does. ``global_pruning`` overrides either.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch_pruning as tp


@dataclass(frozen=True)
class Criterion:
    name: str
    make: Callable[[], object]
    doc: str
    needs_grad: bool = False  # Taylor: a loss gradient on a training batch before every step
    needs_bn: bool = False  # BN-scale criteria cannot rank a model without BatchNorm
    global_pruning: bool = True  # rank channels across layers (False: within each layer)


CRITERIA = {
    c.name: c
    for c in (
        Criterion(
            "l1",
            lambda: tp.importance.MagnitudeImportance(p=1, group_reduction="first", normalizer=None),
            "L1 norm of each filter (PFEC, Li et al. 2017)",
            global_pruning=False,
        ),
        Criterion(
            "l2",
            lambda: tp.importance.MagnitudeImportance(p=2, group_reduction="first", normalizer=None),
            "L2 norm of each filter (PFEC with L2)",
            global_pruning=False,
        ),
        Criterion(
            "group",
            lambda: tp.importance.GroupMagnitudeImportance(p=2),
            "group L2 over coupled layers (DepGraph, Fang et al. 2023)",
        ),
        Criterion(
            "taylor",
            lambda: tp.importance.TaylorImportance(),
            "first-order Taylor (Molchanov et al. 2019)",
            needs_grad=True,
        ),
        Criterion(
            "slimming",
            lambda: tp.importance.BNScaleImportance(),
            "BN scale after an L1 sparsity phase (Network Slimming, Liu et al. 2017)",
            needs_bn=True,
        ),
        Criterion(
            "bnscale",
            lambda: tp.importance.BNScaleImportance(),
            "BN scale, no sparsity phase (not Network Slimming)",
            needs_bn=True,
        ),
        Criterion(
            "fpgm", lambda: tp.importance.FPGMImportance(), "distance to the geometric median (FPGM, He et al. 2019)"
        ),
        Criterion("lamp", lambda: tp.importance.LAMPImportance(), "layer-adaptive magnitude (LAMP, Lee et al. 2021)"),
        Criterion("random", lambda: tp.importance.RandomImportance(), "random channels (a sanity baseline)"),
    )
}


def get_criterion(name: str) -> Criterion:
    if name not in CRITERIA:
        raise ValueError(f"unknown importance criterion {name!r}; known: {', '.join(CRITERIA)}")
    return CRITERIA[name]
