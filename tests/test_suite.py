"""Suites: shipped suites validate; every malformed suite is one clear error before training."""

import pytest

from benchmarks.suite import SuiteError, list_suites, load_suite
from tests.helpers import DEFAULT_METHODS, write_suite


@pytest.mark.parametrize("name", list_suites())
def test_shipped_suites_validate(name):
    suite = load_suite(name)
    jobs = suite.jobs()
    assert jobs and len({j.job_id for j in jobs}) == len(jobs)
    assert all(suite.budgets[k] >= 0 for k in ("dense_epochs", "finetune_epochs", "scratch_epochs"))


def test_job_ids_are_stable_and_config_sensitive(tmp_path):
    a = load_suite(str(write_suite(tmp_path / "a.toml"))).jobs()
    b = load_suite(str(write_suite(tmp_path / "b.toml"))).jobs()
    c = load_suite(str(write_suite(tmp_path / "c.toml", scratch_epochs=3))).jobs()
    assert [j.job_id for j in a] == [j.job_id for j in b]
    assert a[0].job_id == c[0].job_id or a[0].config_hash != c[0].config_hash
    assert a[1].job_id != c[1].job_id  # a different budget is a different job


BAD = {
    "unknown dataset": (dict(dataset="cifar11"), "unknown dataset 'cifar11'"),
    "unknown model": (dict(models=("resnet57",)), "unknown model 'resnet57'"),
    "unknown method": (dict(methods='[[method]]\nname = "prune-magic"\n'), "unknown method 'prune-magic'"),
    "impossible target": (
        dict(methods='[[method]]\nname = "tissuenet"\ntargets = [{ macs_reduction = 0.5 }]\n'),
        "takes targets ['none']",
    ),
    "bad option": (dict(methods='[[method]]\nname = "tissuenet"\noptions = { widht = 2 }\n'), "widht"),
    "no methods": (dict(methods=""), "at least one [[method]]"),
    "unknown key": (dict(extra="\nlearning_rate = 3\n"), "unknown key(s) ['learning_rate']"),
    "duplicate labels": (dict(methods=DEFAULT_METHODS + '[[method]]\nname = "dense"\n'), "duplicate jobs"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_suites(tmp_path, case):
    kwargs, message = BAD[case]
    path = write_suite(tmp_path / "s.toml", **kwargs)
    with pytest.raises(SuiteError) as info:
        load_suite(str(path))
    assert message in str(info.value)


def test_malformed_toml(tmp_path):
    (tmp_path / "s.toml").write_text("name = 'x'\n[budgets\n")
    with pytest.raises(SuiteError, match="not valid TOML"):
        load_suite(str(tmp_path / "s.toml"))


def test_missing_budgets(tmp_path):
    path = write_suite(tmp_path / "s.toml")
    path.write_text(path.read_text().replace("finetune_epochs = 1\n", ""))
    with pytest.raises(SuiteError, match="explicit budgets"):
        load_suite(str(path))


def test_unknown_suite_name():
    with pytest.raises(SuiteError, match="unknown suite 'smok'.*smoke"):
        load_suite("smok")
