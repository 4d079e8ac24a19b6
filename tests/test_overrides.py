"""``--set SECTION.KEY=VALUE``: parsed as TOML, validated exactly like the file, part of the job ids."""

from __future__ import annotations

import json

import pytest

from benchmarks.suites.load import load_suite
from benchmarks.suites.overrides import OverrideError, apply, digest, parse
from benchmarks.suites.suite import SuiteError
from tests.helpers import write_suite
from tissuebench.cli import main


@pytest.mark.parametrize(
    "text, value",
    [
        ("3", 3),
        ("0.5", 0.5),
        ("true", True),
        ("[0, 1, 2]", [0, 1, 2]),
        ('"adam"', "adam"),
        ("adam", "adam"),  # a bare word is a string (the Hydra habit)
        ("2-4-2", "2-4-2"),
        ("{ macs_reduction = 0.5 }", {"macs_reduction": 0.5}),
    ],
)
def test_values_are_toml(text, value):
    assert parse([f"train.x={text}"]) == {"train.x": value}


@pytest.mark.parametrize("bad", ["train.lr", "=3", "train..lr=1", "train.lr=[1,", "a b=1", "x.=1"])
def test_malformed(bad):
    with pytest.raises(OverrideError):
        parse([bad])


def test_apply_sections_top_level_and_methods():
    raw = {"seeds": [0], "train": {"lr": 0.1}, "method": [{"name": "dense"}, {"name": "prune_l1", "label": "l1"}]}
    out = apply(raw, {"train.lr": 0.05, "seeds": [0, 1], "data.train_limit": 8, "method.l1.options.steps": 5})
    assert out["train"] == {"lr": 0.05} and out["seeds"] == [0, 1] and out["data"] == {"train_limit": 8}
    assert out["method"][1]["options"] == {"steps": 5} and "options" not in out["method"][0]
    assert raw["train"] == {"lr": 0.1}  # the file's table is not changed
    every = apply(raw, {"method.*.epochs": 2})
    assert [m["epochs"] for m in every["method"]] == [2, 2]
    with pytest.raises(OverrideError, match="no \\[\\[method\\]\\] labelled 'nope'; labels: dense, l1"):
        apply(raw, {"method.nope.epochs": 1})


def test_bad_value_gets_the_files_message(tmp_path):
    """The same wrong value in the file and on the command line: the same message."""
    plain = write_suite(tmp_path / "s.toml")
    with pytest.raises(SuiteError) as from_set:
        load_suite(str(plain), parse(["train.lr=-1"]))
    with pytest.raises(SuiteError) as from_file:
        load_suite(str(write_suite(tmp_path / "bad.toml", lr=-1)))
    assert str(from_set.value).endswith(str(from_file.value).split(": ", 1)[1])
    assert "with --set train.lr=-1" in str(from_set.value)


def test_overrides_enter_job_ids_but_job_selection_does_not(tmp_path):
    path = str(write_suite(tmp_path / "s.toml", seeds=(0,)))
    plain = {j.label: j.job_id for j in load_suite(path).jobs()}
    quick = load_suite(path, parse(["budgets.dense_epochs=1", "measure.latency=false"]))
    assert quick.plan_name == f"tiny+{digest(quick.overrides)}" and len(quick.variant) == 8
    assert not set(plain.values()) & {j.job_id for j in quick.jobs()}  # a quick pass never mixes with real results
    more_seeds = load_suite(path, parse(["seeds=[0,1,2]"]))
    assert more_seeds.variant == "" and more_seeds.plan_name == "tiny"
    seed0 = {j.label: j.job_id for j in more_seeds.jobs() if j.seed == 0}
    assert seed0 == plain  # seed 0 of a longer seed list is the suite's own seed-0 job
    assert len(more_seeds.jobs()) == 3 * len(plain)


def test_cli_dry_run_and_run_with_overrides(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    suite = write_suite(tmp_path / "s.toml", dense_epochs=3)
    assert main(["run", str(suite), "--dry-run", "--json", "--set", "budgets.dense_epochs=1"]) == 0
    plan = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {p["epochs"] for p in plan} == {1}
    assert main(["run", str(suite), "--dry-run", "--set", "budgets.dense_epochs=0"]) == 2
    assert "dense_epochs = 0: allowed >= 1" in capsys.readouterr().err

    assert main(["run", str(suite), "--device", "cpu", "--set", "budgets.dense_epochs=1"]) == 0
    captured = capsys.readouterr()
    (folder,) = (tmp_path / "runs").iterdir()
    assert folder.name.startswith("tiny+") and "results in runs/tiny+" in captured.err
    assert "run with --set budgets.dense_epochs=1" in captured.out  # show names the overrides
    job = json.loads(next((folder / "records").glob("*.dense.*.json")).read_text())
    assert job["overrides"] == {"budgets.dense_epochs": 1} and job["suite_variant"] == folder.name.split("+")[1]
    assert main(["show", job["job_id"], "--results", str(folder)]) == 0
    assert "overrides              budgets.dense_epochs=1" in capsys.readouterr().out
    assert main(["report", "--results", str(folder)]) == 0
    page = (folder / "report" / "index.html").read_text()
    assert "A quick pass" in page and "budgets.dense_epochs=1" in page
