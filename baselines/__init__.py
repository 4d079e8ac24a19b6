"""Compression baselines, run by the harness from the same dense checkpoints with the same budgets."""
