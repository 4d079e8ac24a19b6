"""``tissuebench check``: exit 1 naming the regressed job, exit 0 when nothing got worse."""

import shutil

import pytest
import torch

from baselines import reference as methods
from benchmarks.gate.reference import read_reference
from benchmarks.store.results import ResultStore
from tests.helpers import record, write_suite
from tissuebench.cli import main


def _run(suite, results):
    return main(["run", str(suite), "--results", str(results), "--device", "cpu"])


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    root = tmp_path_factory.mktemp("check")
    suite = write_suite(root / "s.toml")
    assert _run(suite, root / "results") == 0
    ref = root / "reference.csv"
    assert main(["check", "--results", str(root / "results"), "--against", str(ref), "--update"]) == 0
    return suite, root / "results", ref


def test_reference_file_states_bounds_and_context(baseline):
    _, _, ref = baseline
    table, meta = read_reference(ref)
    assert len(table) == 2 and set(table["top1_rule"]) == {"tolerance"} and set(table["macs_rule"]) == {"exact"}
    assert (table["top1_bound"] == table["top1"] - 0.5).all()
    assert "not derived from seeds" in meta["bounds"] and meta["git_sha"] and meta["context_device_name"]
    assert meta["context_executor"] == "local" and meta["context_threads"] and meta["context_cpu_isa"]


def test_unchanged_rerun_passes(baseline, tmp_path, capsys):
    suite, _, ref = baseline
    assert _run(suite, tmp_path / "again") == 0
    capsys.readouterr()
    assert main(["check", "--results", str(tmp_path / "again"), "--against", str(ref)]) == 0
    assert "0 regressions" in capsys.readouterr().out


def test_edited_reference_fails_naming_the_job(baseline, tmp_path, capsys):
    _, results, ref = baseline
    table, _ = read_reference(ref)
    header = [line for line in ref.read_text().splitlines() if line.startswith("#")]
    job = table.iloc[1]
    table.loc[1, ["top1", "top1_bound"]] += 5  # the reference claims 5 points more
    edited = tmp_path / "ref.csv"
    edited.write_text("\n".join(header) + "\n" + table.to_csv(index=False))
    assert main(["check", "--results", str(results), "--against", str(edited)]) == 1
    out = capsys.readouterr().out
    assert "regressed" in out and job["job_id"] in out and "1 regressions" in out


def test_broken_model_fails(baseline, tmp_path, monkeypatch, capsys):
    """A TissueNet whose classifier is zeroed and frozen: worse accuracy, other params -> exit 1."""
    suite, _, ref = baseline
    original = methods.TissueNet.prepare

    def broken(self, ctx):
        prepared = original(self, ctx)
        last = [m for m in prepared.model.modules() if isinstance(m, torch.nn.Linear)][-1]
        torch.nn.init.zeros_(last.weight)
        last.weight.requires_grad_(False)
        return prepared

    monkeypatch.setattr(methods.TissueNet, "prepare", broken)
    assert _run(suite, tmp_path / "broken") == 0
    capsys.readouterr()
    assert main(["check", "--results", str(tmp_path / "broken"), "--against", str(ref)]) == 1
    out = capsys.readouterr().out
    assert "tissue-all" in out and "params" in out


def test_missing_job_fails(baseline, tmp_path, capsys):
    _, results, ref = baseline
    shutil.copytree(results, tmp_path / "r")
    victim = next((tmp_path / "r/records").glob("*tissue*.json"))
    victim.unlink()
    assert main(["check", "--results", str(tmp_path / "r"), "--against", str(ref)]) == 1
    assert "missing" in capsys.readouterr().out


def test_reference_from_other_settings_fails_and_says_so(baseline, tmp_path, capsys):
    """A reference made before the suite changed: same label and seed, another settings hash in the id."""
    _, results, ref = baseline
    table, _ = read_reference(ref)
    old_id = table.iloc[0]["job_id"]
    stale_id = old_id.rsplit(".", 1)[0] + ".0123456789"
    edited = tmp_path / "ref.csv"
    edited.write_text(ref.read_text().replace(old_id, stale_id))
    assert main(["check", "--results", str(results), "--against", str(edited)]) == 1
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if stale_id in x)
    assert line.split()[:2] == ["regressed", "settings"] and f"now .{old_id.rsplit('.', 1)[-1]}" in line
    assert "re-derive the reference" in out and "1 regressions" in out


def test_check_needs_existing_files(tmp_path, capsys):
    assert main(["check", "--results", str(tmp_path), "--against", "x.csv"]) == 2
    ResultStore(tmp_path).write(record("j"))
    assert main(["check", "--results", str(tmp_path), "--against", str(tmp_path / "none.csv")]) == 2
    assert "no reference file" in capsys.readouterr().err


def test_row_bounds_decide(baseline, tmp_path, capsys):
    """A reference row's own bound wins: the same measurement passes a wide band and fails a narrow one."""
    import json

    _, measured, ref = baseline
    table, meta = read_reference(ref)
    header = [line for line in ref.read_text().splitlines() if line.startswith("#")]
    results = tmp_path / "results"
    shutil.copytree(measured, results)
    path = results / "records" / f"{table.loc[0, 'job_id']}.json"
    rec = json.loads(path.read_text())
    rec["top1"] = table.loc[0, "top1"] - 2.0  # measured 2 points below the reference
    path.write_text(json.dumps(rec))
    for band, expected in ((3.0, 0), (1.0, 1)):
        table["top1_bound"] = table["top1"] - band
        path = tmp_path / f"ref{band}.csv"
        path.write_text("\n".join(header) + "\n" + table.to_csv(index=False))
        assert main(["check", "--results", str(results), "--against", str(path)]) == expected
    capsys.readouterr()


def test_other_context_is_named_and_still_judged(baseline, tmp_path, capsys):
    _, results, ref = baseline
    edited = tmp_path / "ref.csv"
    text = ref.read_text()
    threads = next(line for line in text.splitlines() if line.startswith("# context_threads:"))
    edited.write_text(text.replace(threads, "# context_threads: 7"))
    assert main(["check", "--results", str(results), "--against", str(edited)]) == 0
    out = capsys.readouterr().out
    assert "context differs from the reference's: threads" in out and "(reference 7)" in out


def test_reference_keeps_exact_counts(tmp_path):
    """Costs above a million survive the CSV round trip exactly (no rounding to 6 digits)."""
    import pandas as pd

    from benchmarks.gate.bounds import write_reference
    from benchmarks.gate.judge import compare

    row = {
        "job_id": "j",
        "suite": "s",
        "dataset": "d",
        "model": "m",
        "label": "l",
        "seed": 0,
        "status": "ok",
        "top1": 77.9,
        "top5": 99.65,
        "params": 272186,
        "params_nonzero": 82760,
        "macs": 31021952,
        "macs_effective": 12997512.345678,
    }
    table = pd.DataFrame([row])
    write_reference(table, tmp_path / "r.csv", tolerance=0.5)
    assert "31021952," in (tmp_path / "r.csv").read_text()  # written as an exact integer
    reference, _ = read_reference(tmp_path / "r.csv")
    assert reference.loc[0, "macs_effective"] == row["macs_effective"] and reference.loc[0, "macs"] == 31021952
    assert compare(table, reference) == []


# -- the rules, one by one -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "metric, got, value, rule, bound, verdict",
    [
        ("macs", 100, 100, "exact", 100, None),
        ("macs", 101, 100, "exact", 100, "regressed"),  # a cost that rises fails
        ("macs", 99, 100, "exact", 100, "improved"),  # a cost that falls is an improvement
        ("macs_effective", 103.0, 100.0, "pi99", 104.0, "within tolerance"),
        ("macs_effective", 105.0, 100.0, "pi99", 104.0, "regressed"),
        ("macs_effective", 95.0, 100.0, "pi99", 104.0, "improved"),
        ("top1", 78.0, 80.0, "pi99", 77.5, "within tolerance"),
        ("top1", 77.0, 80.0, "pi99", 77.5, "regressed"),
        ("top1", 83.0, 80.0, "pi99", 77.5, "improved"),
        ("top1", float("nan"), 80.0, "pi99", 77.5, "regressed"),  # NaN fails
        ("top1", None, 80.0, "pi99", 77.5, "regressed"),  # so does a missing value
        ("params", float("nan"), 10, "exact", 10, "regressed"),
    ],
)
def test_judge(metric, got, value, rule, bound, verdict):
    from benchmarks.gate.judge import judge

    assert judge(metric, got, value, rule, bound) == verdict


def _seed_rows(n: int, top1, macs_effective, macs=1000):
    import pandas as pd

    return pd.DataFrame(
        {
            "job_id": [f"j.s{i}" for i in range(1, n + 1)],
            "group_hash": "g",
            "status": "ok",
            "seed": range(1, n + 1),  # the reference's runs: never seed 0, the judged job's (``_job``)
            "dataset": "d",
            "model": "m",
            "label": "l",
            "top1": top1,
            "params": 10,
            "params_nonzero": 10,
            "macs": macs,
            "macs_effective": macs_effective,
        }
    )


def _job(seeds):
    """The suite's own job (seed 0), judged against bounds from the other seeds."""
    return seeds.iloc[:1].assign(seed=0, job_id="j.s0")


def test_bounds_from_eight_seeds_hand_computed():
    """top-1 80..87: mean 83.5, s = 2.44949. Two bounds move with training (top-1, effective MACs), so each is
    at q = 1 - 0.01 / 2 = 0.995 (99 % for the run): t(0.995, 7) = 3.499483; half-width = t s sqrt(1 + 1/8)."""
    from benchmarks.gate.bounds import derive_bounds

    seeds = _seed_rows(8, [80.0 + i for i in range(8)], [500.0 + i for i in range(8)])
    rows = derive_bounds(_job(seeds), seeds, None).iloc[0]
    half = 3.499483297 * 2.449489743 * (1 + 1 / 8) ** 0.5
    assert derive_bounds(_job(seeds), seeds, None, family=1).iloc[0]["top1_bound"] == pytest.approx(
        83.5 - 2.997951566 * 2.449489743 * (1 + 1 / 8) ** 0.5, abs=1e-6
    )  # one bound alone: t(0.99, 7) = 2.997952
    assert rows["top1"] == pytest.approx(83.5) and rows["top1_bound"] == pytest.approx(83.5 - half, abs=1e-6)
    assert rows["top1_rule"] == "pi99" and rows["n_seeds"] == 8
    assert rows["macs_effective_rule"] == "pi99" and rows["macs_effective_bound"] == pytest.approx(503.5 + half)
    assert rows["macs_rule"] == "exact" and rows["macs_bound"] == 1000  # identical in every seed: the architecture


def test_top1_band_has_a_floor_and_seeds_are_required():
    from benchmarks.gate.bounds import derive_bounds
    from benchmarks.gate.reference import CheckError

    same = _seed_rows(8, [80.0] * 8, [500.0] * 8)
    rows = derive_bounds(_job(same), same, None).iloc[0]
    assert rows["top1_bound"] == pytest.approx(79.5) and rows["macs_effective_rule"] == "exact"
    with pytest.raises(CheckError, match="7 seed\\(s\\).*at least 8"):
        derive_bounds(_job(same), same.iloc[:7], None)
