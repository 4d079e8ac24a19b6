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
# them: pytest-xdist hands tests to its workers in collection order (one at a time: scripts/test.sh), so the
# longest go first, largest first, and the two workers finish together instead of one idling through a long tail.
LONGEST = {  # the fresh-clone CI run of 2026-12-06 (`--durations=25`)
    "test_quick_pass_of_every_suite_on_its_real_layout[paper-imagenet]": 346,
    "test_smoke_with_one_thread_per_job_locally_and_under_ray": 299,
    "test_quick_pass_of_every_suite_on_its_real_layout[paper-cifar10]": 285,
    "test_quick_pass_of_every_suite_on_its_real_layout[paper-cifar100]": 270,
    "test_one_and_two_workers_train_the_same_jobs": 240,  # measured alone, 2026-12-06
    "test_quick_pass_of_every_suite_on_its_real_layout[paper-tiny-imagenet]": 168,
    "test_each_night_measures_its_own_commit": 71,
    "test_driver_killed_then_rerun_completes_only_the_rest": 64,
    "test_quick_pass_of_every_suite_on_its_real_layout[fashion-resnet56]": 54,
    "test_a_dead_worker_fails_the_job_in_one_line_and_it_resumes_on_any_world_size": 60,
    "test_a_killed_worker_is_retried": 48,
    "test_ctrl_c_during_a_data_parallel_phase_exits_130": 55,
    "test_any_valid_label_goes_through_run_show_report_check": 42,
    "test_the_example_plugin_runs_next_to_prune_l1[ray]": 41,
    "test_installed_copy_works_from_any_directory": 36,
    "test_ray_matches_local": 33,
    "test_sigkill_mid_sweep_then_resume": 29,
    "test_ctrl_c_exits_130_at_any_moment": 28,
}


def _expected_seconds(item) -> float:
    return next((s for name, s in LONGEST.items() if item.name.startswith(name)), 0.0)


def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: -_expected_seconds(item))  # stable: the rest keep their order
