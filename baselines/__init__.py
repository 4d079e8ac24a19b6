"""Compression methods, run by the harness from the same dense checkpoints with the same budgets.

Importing this package registers every method: ``dense`` and ``tissuenet`` (``reference.py``),
``prune_<criterion>`` (structured, Torch-Pruning), ``sparse_global`` / ``sparse_layer`` /
``sparse_random`` (unstructured), ``scratch_e``, ``scratch_b`` and ``uniform`` (from scratch).
The contract they follow is ``baselines.contract``.
"""

from baselines import reference, scratch, structured, unstructured  # noqa: F401
