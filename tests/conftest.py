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
pytest_plugins = ("tests.fault_harness",)  # its `finished` fixture serves every fault table


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# Seconds the longest tests took in a CI-like run (2 cores, two workers). Only the order depends on
# them: pytest-xdist hands tests to its workers in collection order, so the longest go first,
# largest first, and the two workers finish together instead of one idling through a long tail.
LONGEST = {
    "test_quick_pass_of_every_suite_on_its_real_layout[paper-imagenet]": 300,
    "test_smoke_with_one_thread_per_job_locally_and_under_ray": 270,
    "test_quick_pass_of_every_suite_on_its_real_layout[paper-cifar10]": 230,
    "test_quick_pass_of_every_suite_on_its_real_layout[paper-cifar100]": 200,
    "test_quick_pass_of_every_suite_on_its_real_layout[paper-tiny-imagenet]": 140,
    "test_driver_killed_then_rerun_completes_only_the_rest": 53,
    "test_quick_pass_of_every_suite_on_its_real_layout[fashion-resnet56]": 52,
    "test_the_example_plugin_runs_next_to_prune_l1[ray]": 52,
    "test_each_night_measures_its_own_commit": 50,
    "test_sigkill_mid_sweep_then_resume": 48,
}


def _expected_seconds(item) -> float:
    return next((s for name, s in LONGEST.items() if item.name.startswith(name)), 0.0)


def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: -_expected_seconds(item))  # stable: the rest keep their order
