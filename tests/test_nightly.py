"""``tissuebench nightly`` end to end on a tiny suite (asv off: it has its own check in CI docs)."""

import pytest

from tests.helpers import write_suite
from tissuebench import nightly as nightly_mod
from tissuebench.cli import main


@pytest.mark.slow
def test_nightly_runs_checks_and_reports(tmp_path, monkeypatch, capsys):
    suite = write_suite(tmp_path / "tiny.toml", name="tiny-nightly")
    reference_dir = tmp_path / "repo" / "results" / "reference"
    monkeypatch.setattr(nightly_mod, "REPO", tmp_path / "repo")
    args = ["nightly", "--suites", str(suite), "--root", str(tmp_path / "runs"), "--device", "cpu", "--asv", "off"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "tiny-nightly: 2 ok, 0 failed" in out and "no reference" in out and "nightly ok" in out
    assert (tmp_path / "runs/tiny-nightly/report/index.html").exists()

    # with a reference that expects more accuracy than measured, the nightly run fails
    assert (
        main(
            [
                "check",
                "--results",
                str(tmp_path / "runs/tiny-nightly"),
                "--update",
                "--against",
                str(reference_dir / "tiny-nightly.csv"),
            ]
        )
        == 0
    )
    text = (reference_dir / "tiny-nightly.csv").read_text().splitlines()
    header = [line for line in text if line.startswith("#")]
    rows = [line for line in text if not line.startswith("#")]
    cols = rows[0].split(",")
    i = cols.index("top1")
    fields = rows[1].split(",")
    fields[i] = str(float(fields[i]) + 10)
    (reference_dir / "tiny-nightly.csv").write_text("\n".join(header + [rows[0], ",".join(fields), *rows[2:]]) + "\n")
    capsys.readouterr()
    assert main(args) == 1
    out = capsys.readouterr().out
    assert "1 regressions FAIL" in out and "2 already done" in out and "nightly FAILED" in out
