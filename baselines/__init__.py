"""Compression methods, run by the harness from the same dense checkpoints with the same budgets.

Importing this package registers every method: ``dense``, ``tissuenet`` and ``tissuenet_matched``
(``reference.py``); ``prune_<criterion>`` (structured, ``structured.py`` + ``criteria.py``; Network
Slimming from its sparsity-trained checkpoint); ``prune_taylor`` and ``prune_fpgm`` (pruning while the
model trains, ``taylor.py``, ``fpgm.py``); ``prune_pfec`` (PFEC with its sensitivity analysis,
``pfec.py``); ``sparse_global`` / ``sparse_lamp`` / ``sparse_layer`` / ``sparse_random`` (unstructured);
``scratch_e``, ``scratch_b`` and ``uniform`` (from scratch). The contract they follow is
``baselines.contract``.
"""

from baselines import fpgm, pfec, reference, scratch, structured, taylor, unstructured  # noqa: F401
