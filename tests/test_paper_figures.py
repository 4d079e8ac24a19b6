"""``tissuebench paper-figures``: every published table and figure from the published rows alone, and with
``--results`` the measured rows beside them, every published row without a counterpart named (issue 29)."""

from __future__ import annotations

import csv

import pytest

from reports.paper_figures import ITEMS, TABLE1_WEIGHTS, published_frame
from tests.test_reports import ROWS, _write_records
from tissuebench.cli import main


def _missing(out) -> list[dict]:
    with open(out / "missing.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_published_rows_alone_give_every_table_and_figure(tmp_path, capsys):
    published = published_frame()
    assert len(published) == 56  # Tables IV-VI as transcribed in results/paper/bunitnet_tables.csv
    assert any(item.published.startswith(f"{len(published)} rows") for item in ITEMS)  # the page says so
    out = tmp_path / "figs"
    assert main(["paper-figures", "--out", str(out)]) == 0
    pairs = published.groupby(["dataset", "model"]).ngroups
    assert len(list(out.glob("table_*.md"))) == pairs
    assert len(list(out.glob("fig_tradeoff_*.png"))) == len(list(out.glob("fig_tca_tsa_*.png"))) == pairs
    assert len(_missing(out)) == 56  # nothing measured: every published row is named
    page = (out / "index.html").read_text()
    assert all(f"<td>{item.name}</td>" in page for item in ITEMS)
    assert f"{TABLE1_WEIGHTS:,} weights published, 1,410 counted" in page  # Table I: counted on tissue_lenet5
    assert "Training: budget and speed" not in page  # published rows carry no budgets: no block of dashes
    assert f"{pairs} tables, {2 * pairs} figures (published rows only); 56 published rows" in capsys.readouterr().out


@pytest.mark.slow
def test_measured_rows_stand_beside_the_published_ones(tmp_path):
    """A cifar10 ResNet-20 run with the paper's TissueNet row and FPGM: those two published rows have a
    counterpart, the other 54 are named."""
    results = tmp_path / "runs" / "paper-cifar10"
    rows = [
        ROWS[0],
        ("tissuenet-ours", "tissuenet", {"preset": "cifar10-resnet20-ours"}) + ROWS[1][3:],
        ("prune_fpgm@macs50", "prune_fpgm", {}) + ROWS[3][3:],
    ]
    _write_records(results, rows=rows)
    out = tmp_path / "figs"
    assert main(["paper-figures", "--results", str(results), "--out", str(out)]) == 0
    missing = _missing(out)
    assert len(missing) == 54
    named = {(m["dataset"], m["method"]) for m in missing}
    assert ("cifar10", "FPGM") in named  # FPGM on the other cifar10 models is still missing
    resnet20 = [m for m in missing if m["dataset"] == "cifar10" and m["model"] == "resnet-20"]
    assert {m["method"] for m in resnet20} == {"SRR-GR", "SFP", "VP", "Ours('r')"}
    table = (out / "table_cifar10_resnet20_paper.md").read_text()
    assert "| prune_fpgm @ -50 % MACs | measured here | 2 |" in table and "| FPGM | published (own baseline) |" in table
    assert "Training: budget and speed" in (out / "index.html").read_text()
    assert (out / "fig_curves_cifar10_resnet20_paper.png").exists()  # measured: Fig. 6's form is drawn


def test_results_that_are_not_a_results_folder_are_one_line(tmp_path, capsys):
    from tissuebench.cli import main as cli

    assert cli(["paper-figures", "--results", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "no results folder there" in err and len(err.strip().splitlines()) == 1
