"""Shared test settings: CPU only, deterministic, few threads (CI has 2 cores)."""

import os
from pathlib import Path

import pytest
import torch

# Two threads on CI's two cores; under pytest-xdist the cores are shared among the workers (and the
# processes the tests start inherit the same budget through OMP_NUM_THREADS).
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
THREADS = max(1, min(2, (os.cpu_count() or 2) // WORKERS))
if WORKERS > 1:
    os.environ["OMP_NUM_THREADS"] = str(THREADS)
torch.set_num_threads(THREADS)
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
