"""Profiles and fixed configurations shared by the asv benchmark modules."""

from __future__ import annotations

import os

PROFILE = os.environ.get("TISSUEBENCH_ASV_PROFILE", "fast")
if PROFILE not in ("fast", "nightly"):
    raise ValueError(f"TISSUEBENCH_ASV_PROFILE must be 'fast' or 'nightly', got {PROFILE!r}")

FAST = PROFILE == "fast"
COST_MODEL = "resnet20" if FAST else "resnet56"
INPUT = (1, 28)  # channels, size: Fashion-MNIST
TRAIN = {"model": "mlp", "train_limit": 4000 if FAST else None, "epochs": 1 if FAST else 5, "seed": 0}
METHODS = {  # name -> (method, target kind, target value, options)
    "dense": ("dense", "none", None, {}),
    "tissuenet_ours": ("tissuenet", "none", None, {"replace": "ours"}),
    "tissuenet_all": ("tissuenet", "none", None, {"replace": "all"}),
    "prune_l1_macs50": ("prune_l1", "macs_reduction", 0.5, {}),
    "prune_group_macs50": ("prune_group", "macs_reduction", 0.5, {}),
    "sparse_global_70": ("sparse_global", "sparsity", 0.7, {}),
}
