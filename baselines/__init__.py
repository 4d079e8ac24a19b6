"""Compression baselines, run by the harness from the same dense checkpoints with the same budgets.

Importing this package registers the methods: ``prune_<criterion>`` (structured, Torch-Pruning),
``sparse_global`` / ``sparse_layer`` / ``sparse_random`` (unstructured), ``scratch_e``,
``scratch_b`` and ``uniform`` (from scratch).
"""

from baselines import scratch, structured, unstructured  # noqa: F401
