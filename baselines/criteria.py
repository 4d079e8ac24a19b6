"""Importance criteria for structured pruning, by name (a registry, not an if/elif chain).

Each entry says which paper it implements and how; where Torch-Pruning 1.6.1's criterion is not
the paper's, ours is (``baselines/importance.py``, each tested against a hand-computed score), or
the name says it is an adaptation. The ``global_pruning`` method option can switch the ranking. Taylor
and FPGM prune while the model trains and are methods of their own (``taylor.py``, ``fpgm.py``).

* ``l1``: **L1, uniform** (not PFEC): each filter's own L1 norm, every prunable group (stem and
  residual-coupled block outputs included) at one rate: ``MagnitudeImportance(p=1,
  group_reduction="first", normalizer=None)``, ranked within each layer; a group that a residual couples
  is ranked by its first conv (Torch-Pruning's ``first`` reduction: the 1x1 shortcut in ResNet-20's
  stages 2-3, the stem in stage 1). PFEC itself (block-first
  convs only, per-layer rates from a sensitivity analysis) is ``prune_pfec`` (``baselines/pfec.py``).
* ``l2``: the same with the L2 norm (uniform).
* ``group``: DepGraph (Fang et al. 2023), L2 over every coupled layer, group mean, mean-normalised:
  ``GroupMagnitudeImportance(p=2)``, global.
* ``slimming``: Network Slimming (Liu et al. 2017), raw BN |gamma| of the sparsity-trained checkpoint,
  one global threshold: ``baselines.importance.BNScale``.
* ``bnscale``: the same raw |gamma| without the sparsity phase (not Network Slimming).
* ``lamp_channel``: LAMP's score adapted to channels (Torch-Pruning's ``LAMPImportance``), global.
  LAMP itself (Lee et al. 2021) scores weights: ``sparse_lamp`` (unstructured).
* ``random``: random channels (a sanity baseline): ``RandomImportance()``, global.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


def load_tp():
    # Torch-Pruning (and timm, torchvision behind it) is imported when a criterion is made, not when
    # methods are listed
    import torch_pruning

    return torch_pruning


def _bn_scale():
    from baselines.importance import BNScale

    return BNScale()


@dataclass(frozen=True)
class Criterion:
    name: str
    make: Callable[[], object]
    doc: str
    # mini-batches the importance sees before every pruning step (0: none): it then has
    # ``accumulate(model, batches)`` (Taylor: gradients; a plugin's: activations); ``calibration_batches`` overrides
    batches: int = 0
    needs_bn: bool = False  # BN-scale criteria cannot rank a model without BatchNorm
    global_pruning: bool = True  # rank channels across layers (False: within each layer)


CRITERIA = {
    c.name: c
    for c in (
        Criterion(
            "l1",
            lambda: load_tp().importance.MagnitudeImportance(p=1, group_reduction="first", normalizer=None),
            "L1, uniform: each filter's L1 norm (a coupled group ranked by its first conv), every group at one rate",
            global_pruning=False,
        ),
        Criterion(
            "l2",
            lambda: load_tp().importance.MagnitudeImportance(p=2, group_reduction="first", normalizer=None),
            "L2, uniform: each filter's L2 norm (a coupled group ranked by its first conv), every group at one rate",
            global_pruning=False,
        ),
        Criterion(
            "group",
            lambda: load_tp().importance.GroupMagnitudeImportance(p=2),
            "group L2 over coupled layers (DepGraph, Fang et al. 2023)",
        ),
        Criterion(
            "slimming",
            _bn_scale,
            "raw BN |gamma| of its L1-sparsity-trained checkpoint, one global threshold (Network Slimming, Liu 2017)",
            needs_bn=True,
        ),
        Criterion(
            "bnscale",
            _bn_scale,
            "raw BN |gamma|, one global threshold, no sparsity phase (not Network Slimming)",
            needs_bn=True,
        ),
        Criterion(
            "lamp_channel",
            lambda: load_tp().importance.LAMPImportance(),
            "LAMP's score adapted to channels (an adaptation; LAMP itself is sparse_lamp)",
        ),
        Criterion("random", lambda: load_tp().importance.RandomImportance(), "random channels (a sanity baseline)"),
    )
}


def get_criterion(name: str) -> Criterion:
    if name not in CRITERIA:
        raise ValueError(f"unknown importance criterion {name!r}; known: {', '.join(CRITERIA)}")
    return CRITERIA[name]
