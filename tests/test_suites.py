"""Every shipped suite (``benchmarks/suites/*.toml``, read from the folder: a new suite is tested the
moment it is added) on data in its real on-disk layout (``tests/layouts.py``):

* ``run SUITE --dry-run --json`` plans exactly the jobs the suite file names;
* a quick pass (``tests/quick_pass.py``: ``--set`` overrides down to a few optimisation steps per
  job, one target per method) trains every dataset x model x method of the suite, every job ok,
  then ``report`` and ``check --update`` / ``check`` work on the results.
"""

from __future__ import annotations

import json

import pytest

from baselines.contract import get_method
from benchmarks.data.datasets import get_dataset
from benchmarks.suites.checks import parse_target
from benchmarks.suites.load import list_suites, load_suite, read_suite_toml, suite_path
from tests.layouts import WRITERS
from tests.quick_pass import quick_overrides
from tissuebench.cli import main

SUITES = list_suites()


def test_every_shipped_suite_has_a_real_layout_here():
    """A suite on a dataset without a layout writer would go untested: add one to tests/layouts.py."""
    needed = {d for name in SUITES for d in read_suite_toml(suite_path(name))["datasets"]}
    assert needed <= set(WRITERS), sorted(needed - set(WRITERS))


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    for write in WRITERS.values():
        write(root)
    return root


def _named_jobs(name: str) -> set[tuple]:
    """(dataset, model, seed, label) of every job the suite file names, read from the TOML itself."""
    raw = read_suite_toml(suite_path(name))
    out = set()
    for dataset in raw["datasets"]:
        for model in raw["models"]:
            for seed in raw["seeds"]:
                out.add((dataset, model, seed, "dense"))
                for m in raw["method"]:
                    if m["name"] == "dense" or model not in m.get("models", [model]):
                        continue
                    for t in m.get("targets", ["none"]):
                        target = parse_target(t)
                        slug = f"@{target.slug()}" if target.kind != "none" else ""
                        out.add((dataset, model, seed, m.get("label", m["name"]) + slug))
    return out


@pytest.mark.parametrize("name", SUITES)
def test_dry_run_plans_what_the_suite_says(name, data_root, tmp_path, capsys):
    args = ["run", name, "--dry-run", "--json", "--data-root", str(data_root), "--results", str(tmp_path / "r")]
    assert main(args) == 0, capsys.readouterr().err
    plan = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    planned = {(p["dataset"], p["model"], p["seed"], p["label"]) for p in plan}
    # equal-budget dense references and a method's own shared start (Network Slimming's sparsity-trained dense run)
    references = {p for p in planned if p[3].startswith(("dense@e", "dense+"))}
    assert planned - references == _named_jobs(name)
    suite = load_suite(name)
    budgets = suite.budgets
    dense_macs = {(p["dataset"], p["model"]): p["macs"] for p in plan if p["method"] == "dense"}
    for p, job in zip(plan, suite.jobs(), strict=True):
        assert p["job_id"] == job.job_id
        phase = get_method(p["method"]).phase
        expected = job.epochs_override or budgets.epochs(phase)
        if p["method"] == "scratch_b":  # Liu et al.: the dense budget x dense MACs / pruned MACs (estimated)
            expected = round(budgets.dense_epochs / (1 - job.target.value))
        if p["method"] == "tissuenet_matched":  # dense epochs x dense MACs / its MACs + the fine-tune epochs
            ratio = dense_macs[p["dataset"], p["model"]] / p["macs"]
            expected = max(1, round(budgets.dense_epochs * ratio)) + budgets.finetune_epochs
            assert expected > budgets.finetune_epochs + budgets.dense_epochs, p  # a compact net: more epochs
        assert p["epochs"] == expected, p
        assert p["macs"] > 0 and p["params"] > 0
    assert not (tmp_path / "r").exists()  # a dry run writes nothing


@pytest.mark.slow
@pytest.mark.timeout(1200)
@pytest.mark.parametrize("name", SUITES)
def test_quick_pass_of_every_suite_on_its_real_layout(name, data_root, tmp_path, capsys):
    results = tmp_path / "results"
    overrides = quick_overrides(name, one_target=True)
    args = ["run", name, "--data-root", str(data_root), "--results", str(results), "--device", "cpu", *overrides]
    code = main(args)
    captured = capsys.readouterr()
    assert code == 0, captured.err[-3000:]
    records = [json.loads(p.read_text()) for p in (results / "records").glob("*.json")]
    assert records and all(r["status"] == "ok" for r in records), [r.get("error") for r in records]
    ran = {(r["dataset"], r["model"], r["label"].split("@")[0]) for r in records}
    named = {(d, m, label.split("@")[0]) for d, m, _, label in _named_jobs(name)}
    assert named <= ran  # every dataset x model x method of the suite trained and was measured
    dense_macs = {(r["dataset"], r["model"]): r["macs"] for r in records if r["method"] == "dense"}
    for r in records:
        info = get_dataset(r["dataset"])
        epochs = 2 if r["method"] == "scratch_b" else 1  # Scratch-B: dense epochs x dense / pruned MACs
        if r["method"] == "tissuenet_matched":  # 1 dense epoch x dense MACs / its MACs + 1 fine-tune epoch
            epochs = max(1, round(dense_macs[r["dataset"], r["model"]] / r["macs"])) + 1
        assert r["overrides"] and r["epochs"] <= epochs and r["train_images"] <= 16, r["job_id"]
        assert r["macs"] > 0 and info.name == r["dataset"]

    assert main(["report", "--results", str(results)]) == 0
    manifest = json.loads((results / "report" / "manifest.json").read_text())
    # the quick pass switches latency off: its two speed figures are "not measured" gaps, and nothing else is
    missing = [g for g in manifest["gaps"] if g["status"] != "not measured" or "speed-up" not in g["job_id"].lower()]
    assert missing == [], missing
    reference = tmp_path / "reference.csv"
    assert main(["check", "--results", str(results), "--update", "--against", str(reference)]) == 0
    assert main(["check", "--results", str(results), "--against", str(reference)]) == 0
    assert "0 regressions" in capsys.readouterr().out
