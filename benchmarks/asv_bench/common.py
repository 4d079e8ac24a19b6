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


def add_metric_tracks(cls, group: str):  # not `track_*`: asv would take a module-level one for a benchmark
    """Add a ``track_<metric>`` benchmark to ``cls`` for every asv metric of the metric table in ``group``.

    ``setup_cache`` returns {param: {metric: value}}; asv flags increases, so only lower-is-better
    metrics are marked ``asv`` in the table.
    """
    from benchmarks.store.metric_table import BY_NAME, names

    for metric in (n for n in names(where="asv") if BY_NAME[n].group == group):

        def track(self, cache, param, metric=metric):
            return cache[param][metric]

        track.unit = BY_NAME[metric].unit or BY_NAME[metric].title
        track.__name__ = f"track_{metric}"
        setattr(cls, track.__name__, track)
    return cls
