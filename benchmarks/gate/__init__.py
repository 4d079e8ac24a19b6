"""The regression gate (``tissuebench check``): fail (exit 1) when a measured number got worse than the committed
reference.

A reference is a CSV under ``results/reference/`` with ``# key: value`` header lines (how its
bounds were derived, and the execution context and provenance of the runs behind it) and one row
per job. It is validated like a suite: required columns, finite numbers, every row compared;
anything else is an error (exit 2), never a pass.

Every compared metric of a row has a value, a bound and a rule (columns ``m``, ``m_bound``,
``m_rule``), decided by what the metric depends on (the metric table's ``depends``):

* ``exact``: fixed by the architecture (MACs and params of dense, TissueNet and structured models;
  effective MACs and nonzero params of unmasked ones), the same in every seed of the reference
  runs. A cost may not rise; a fall is an improvement.
* ``pi99``: set by training (top-1; effective MACs and nonzero params of masked models, and
  any architecture metric that did vary over the reference seeds): a one-sided prediction interval
  for one new run from n >= 8 seeds, ``mean -/+ t(q, n-1) s sqrt(1 + 1/n)``; top-1's half-width is
  at least :data:`MIN_TOLERANCE` points. 99 % holds for the whole run, not for each bound: a run is
  judged on k such bounds at once (6 in ``smoke``), and k bounds at 99 % each would fail a
  legitimate run about k % of the time. Each bound is at ``q = 1 - 0.01 / k`` (Bonferroni).

A missing job, a failed job, and a missing or NaN value fail. When tonight's execution context
(threads, executor, CPU, ISA, torch, device) differs from the reference's, ``check`` says so in one
line and judges by the bounds all the same. ``--update`` rewrites the reference, deliberately.

Modules: ``reference.py`` reads and validates a reference, ``judge.py`` judges a run against it, ``bounds.py``
makes one from independent seeds.
"""
