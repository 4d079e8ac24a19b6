"""``tissuebench check``: exit 1 naming the regressed job, exit 0 when nothing got worse."""

import shutil

import pytest
import torch

from baselines import reference as methods
from benchmarks.check import derive_tolerance, read_reference
from benchmarks.store import ResultStore
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


def test_reference_file_states_tolerance_and_provenance(baseline):
    _, _, ref = baseline
    table, meta = read_reference(ref)
    assert len(table) == 2 and float(meta["tolerance_top1"]) == 0.5
    assert "one seed per job" in meta["tolerance_derivation"] and meta["git_sha"] and meta["device"]


def test_unchanged_rerun_passes(baseline, tmp_path, capsys):
    suite, _, ref = baseline
    assert _run(suite, tmp_path / "again") == 0
    capsys.readouterr()
    assert main(["check", "--results", str(tmp_path / "again"), "--against", str(ref)]) == 0
    assert "0 regressions" in capsys.readouterr().out


def test_edited_reference_fails_naming_the_job(baseline, tmp_path, capsys):
    _, results, ref = baseline
    table, _ = read_reference(ref)
    edited = tmp_path / "ref.csv"
    text = ref.read_text()
    job = table.iloc[1]
    text = text.replace(f"{job['top1']:.6g}", f"{job['top1'] + 5:.6g}", 1)  # the reference claims 5 points more
    edited.write_text(text)
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


def test_tolerance_from_seed_spread():
    import pandas as pd

    table = pd.DataFrame(
        {
            "dataset": "d",
            "model": "m",
            "label": ["a"] * 3 + ["b"] * 3,
            "status": "ok",
            "seed": [0, 1, 2] * 2,
            "top1": [80.0, 81.0, 82.0, 70.0, 70.1, 70.2],
        }
    )
    tol, how = derive_tolerance(table)
    assert tol == 3.0 and "3 seeds" in how and "for a" in how  # 3 x std(80, 81, 82) = 3
    single = table[table["seed"] == 0]
    assert derive_tolerance(single) == (0.5, "floor 0.5 (one seed per job: no spread to derive from)")


def test_check_needs_existing_files(tmp_path, capsys):
    assert main(["check", "--results", str(tmp_path), "--against", "x.csv"]) == 2
    ResultStore(tmp_path).write(record("j"))
    assert main(["check", "--results", str(tmp_path), "--against", str(tmp_path / "none.csv")]) == 2
    assert "no reference file" in capsys.readouterr().err


def test_per_job_tolerance_column(baseline, tmp_path, capsys):
    """A reference row's own tolerance_top1 wins over the file's default."""
    _, results, ref = baseline
    table, meta = read_reference(ref)
    header = [line for line in ref.read_text().splitlines() if line.startswith("#")]
    table.loc[0, "top1"] += 2.0  # reference claims 2 points more for the first job
    for tol, expected in ((3.0, 0), (1.0, 1)):
        table["tolerance_top1"] = tol
        path = tmp_path / f"ref{tol}.csv"
        path.write_text("\n".join(header) + "\n" + table.to_csv(index=False))
        assert main(["check", "--results", str(results), "--against", str(path)]) == expected
    capsys.readouterr()


def test_reference_keeps_exact_counts(tmp_path):
    """Costs above a million survive the CSV round trip exactly (no rounding to 6 digits)."""
    import pandas as pd

    from benchmarks.check import compare, write_reference

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
    write_reference(table, tmp_path / "r.csv", 0.5, "test")
    assert "31021952," in (tmp_path / "r.csv").read_text()  # written as an exact integer
    reference, _ = read_reference(tmp_path / "r.csv")
    assert reference.loc[0, "macs_effective"] == row["macs_effective"] and reference.loc[0, "macs"] == 31021952
    assert compare(table, reference, 0.5) == []
