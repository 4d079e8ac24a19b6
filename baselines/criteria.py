"""Importance criteria of Torch-Pruning 1.6, by name (a registry, not an if/elif chain).

Each entry builds a fresh ``tp.importance`` object; ``needs_grad`` criteria (Taylor) get a
loss gradient on a training batch before every pruning step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch_pruning as tp


@dataclass(frozen=True)
class Criterion:
    name: str
    make: Callable[[], object]
    needs_grad: bool = False
    doc: str = ""


CRITERIA = {
    c.name: c
    for c in (
        Criterion("l1", lambda: tp.importance.MagnitudeImportance(p=1), doc="L1 norm of filters (Li et al., PFEC)"),
        Criterion("l2", lambda: tp.importance.MagnitudeImportance(p=2), doc="L2 norm of filters"),
        Criterion("group", lambda: tp.importance.GroupMagnitudeImportance(p=2), doc="group L2 (DepGraph's default)"),
        Criterion("taylor", lambda: tp.importance.TaylorImportance(), True, "first-order Taylor (Molchanov et al.)"),
        Criterion("slimming", lambda: tp.importance.BNScaleImportance(), doc="BN scale (network slimming)"),
        Criterion("fpgm", lambda: tp.importance.FPGMImportance(), doc="geometric median (He et al., FPGM)"),
        Criterion("lamp", lambda: tp.importance.LAMPImportance(), doc="layer-adaptive magnitude (Lee et al., LAMP)"),
        Criterion("random", lambda: tp.importance.RandomImportance(), doc="random channels (a sanity baseline)"),
    )
}


def get_criterion(name: str) -> Criterion:
    if name not in CRITERIA:
        raise ValueError(f"unknown importance criterion {name!r}; known: {', '.join(CRITERIA)}")
    return CRITERIA[name]
