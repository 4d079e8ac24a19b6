"""The dry run counts every phase a job trains: the plan's compute equals what the records say was spent."""

from __future__ import annotations

import json

import pytest

from tests.helpers import write_suite
from tissuebench.cli import main

METHODS = """
[[method]]
name = "dense"

[[method]]
name = "tissuenet"
label = "tissue-all"
options = { replace = "all" }

[[method]]
name = "tissuenet_matched"
label = "tissue-all-matched"
options = { replace = "all" }

[[method]]
name = "prune_slimming"
options = { steps = 40 }
targets = [{ macs_reduction = 0.5 }]

[[method]]
name = "sparse_global"
targets = [{ sparsity = 0.7 }]
"""


def own_compute(record: dict) -> float:
    """The record's training compute without the shared checkpoint it starts from (counted once, in its own row)."""
    phases = [p for p in record["train_phases"] if not p.get("shared")]
    return sum(p["epochs"] * p["macs"] for p in phases) * record["train_images"] * 3


def plan_matches_records(suite: str, results, capsys, extra=()) -> dict:
    assert main(["run", suite, "--dry-run", "--json", "--results", str(results), *extra]) == 0
    plan = {p["job_id"]: p for p in map(json.loads, capsys.readouterr().out.splitlines())}
    records = {r["job_id"]: r for r in (json.loads(p.read_text()) for p in (results / "records").glob("*.json"))}
    assert set(plan) == set(records)
    for job_id, p in plan.items():
        measured = own_compute(records[job_id])
        # a pruned model's MACs are estimated from its target (achieved within 1 point of it)
        assert p["train_compute"] == pytest.approx(measured, rel=0.02), (job_id, p, records[job_id]["train_phases"])
    return plan


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_plan_counts_every_phase(tmp_path, capsys):
    suite = write_suite(
        tmp_path / "s.toml",
        models=("resnet20",),
        methods=METHODS,
        dense_epochs=1,
        extra="\n[data]\ntrain_limit = 128\ntest_limit = 64\n",
    )
    results = tmp_path / "r"
    assert main(["run", str(suite), "--results", str(results), "--device", "cpu"]) == 0
    capsys.readouterr()
    plan = plan_matches_records(str(suite), results, capsys)
    by_label = {p["label"]: p for p in plan.values()}
    sparse, slim = by_label["sparse_global@sparsity70"], by_label["prune_slimming@macs50"]
    assert sparse["train_macs"] > sparse["macs"]  # a masked model trains at its dense cost
    assert slim["extra_epochs_at_dense_cost"] == 0 and slim["phases"][0]["name"] == "sparsity"  # counted in its row
    assert by_label["dense+sparsity-1e-05"]["train_compute"] == pytest.approx(by_label["dense"]["train_compute"])
    matched = by_label["tissue-all-matched"]
    dense = by_label["dense"]
    assert matched["epochs"] * matched["macs"] == pytest.approx(
        dense["epochs"] * dense["macs"] + 1 * matched["macs"], rel=0.5 / matched["epochs"] + 1e-9
    )  # compute-matched: dense epochs x dense MACs (rounded to whole epochs) + one fine-tune epoch
