"""Suites: shipped suites validate; job ids are stable; budgets are equal or get their own dense reference;
every malformed suite is one clear error before training (the wider table is in test_faults.py)."""

import pytest

from benchmarks.suites.load import list_suites, load_suite
from benchmarks.suites.suite import SuiteError
from tests.helpers import DEFAULT_METHODS, write_suite


@pytest.mark.parametrize("name", list_suites())
def test_shipped_suites_validate_with_equal_budgets(name):
    """Every shipped suite: unique ids, and every row compared with a dense model of its own budget."""
    from baselines.contract import get_method

    suite = load_suite(name)
    jobs = suite.jobs()
    assert jobs and len({j.job_id for j in jobs}) == len(jobs)
    dense_budgets = {j.epochs_override or suite.budgets.dense_epochs for j in jobs if j.method == "dense"}
    for job in jobs:
        reference = get_method(job.method).reference_epochs(suite.budgets, job.epochs_override)
        assert reference in dense_budgets, (job.label, reference)


def test_job_ids_are_stable_and_config_sensitive(tmp_path):
    a = load_suite(str(write_suite(tmp_path / "a.toml"))).jobs()
    b = load_suite(str(write_suite(tmp_path / "b.toml"))).jobs()
    c = load_suite(str(write_suite(tmp_path / "c.toml", lr=0.07))).jobs()
    assert [j.job_id for j in a] == [j.job_id for j in b]
    assert all(x.config_hash != y.config_hash and x.job_id != y.job_id for x, y in zip(a, c))
    assert all(j.job_id.endswith(j.config_hash[:10]) for j in a)


def test_dense_job_id_names_its_checkpoint(tmp_path):
    suite = load_suite(str(write_suite(tmp_path / "s.toml")))
    dense = [j for j in suite.jobs() if j.method == "dense"]
    assert len(dense) == 1 and dense[0].job_id == suite.dense_job("synthetic", "mlp", 0).job_id


def test_unequal_scratch_budget_adds_a_dense_reference(tmp_path):
    suite = load_suite(str(write_suite(tmp_path / "s.toml", dense_epochs=2, scratch_epochs=4)))
    labels = sorted(j.label for j in suite.jobs())
    assert labels == ["dense", "dense@e4", "tissue-all"]
    same = load_suite(str(write_suite(tmp_path / "t.toml", dense_epochs=2)))  # default: scratch = dense
    assert sorted(j.label for j in same.jobs()) == ["dense", "tissue-all"]


def test_budget_keys_are_documented_defaults(tmp_path):
    suite = load_suite(str(write_suite(tmp_path / "s.toml", dense_epochs=3)))
    assert suite.budgets.scratch == 3 and suite.budgets.epochs("finetune") == 1


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
    "duplicate labels": (
        dict(methods=DEFAULT_METHODS + '[[method]]\nname = "tissuenet"\nlabel = "tissue-all"\n'),
        "label 'tissue-all' is used by [[method]] #2 and #3",
    ),
    "same network twice": (
        dict(
            methods=DEFAULT_METHODS + '[[method]]\nname = "tissuenet"\nlabel = "again"\noptions = { replace = "all" }\n'
        ),
        "'tissue-all' and 'again' are the same architecture with the same training",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_suites(tmp_path, case):
    kwargs, message = BAD[case]
    path = write_suite(tmp_path / "s.toml", **kwargs)
    with pytest.raises(SuiteError) as info:
        load_suite(str(path))
    assert message in str(info.value) and str(path) in str(info.value)


def test_vgg_ours_and_ours_r_differ():
    """The presets that once built identical VGG-16 networks under two labels now differ."""
    from baselines.contract import Target, get_method
    from benchmarks.suites.checks import MethodSpec
    from benchmarks.suites.planning import plan_context

    suite = load_suite("paper-cifar10")
    keys = set()
    for options in ({"replace": "ours"}, {"replace": "ours_r"}):
        spec = MethodSpec("tissuenet", "x", options, (Target("none"),), None, {})
        keys.add(
            get_method("tissuenet").architecture_key(
                plan_context(suite, "cifar10", "vgg16_bn", 0, spec, Target("none"))
            )
        )
    assert len(keys) == 2


def test_malformed_toml(tmp_path):
    (tmp_path / "s.toml").write_text("name = 'x'\n[budgets\n")
    with pytest.raises(SuiteError, match="not valid TOML"):
        load_suite(str(tmp_path / "s.toml"))


def test_unknown_suite_name():
    with pytest.raises(SuiteError, match="unknown suite 'smok'.*smoke"):
        load_suite("smok")
