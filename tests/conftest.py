"""Shared test settings: CPU only, deterministic, few threads (CI has 2 cores)."""

from pathlib import Path

import pytest
import torch

torch.set_num_threads(2)
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
