"""Reports: byte-identical output, values equal to the records, every method in every legend."""

import hashlib
import json

import pandas as pd
import pytest

from benchmarks.store import ResultStore
from reports.build import build_report
from tests.helpers import DEFAULT_METHODS, write_suite
from tissuebench.cli import main

METHODS = (
    DEFAULT_METHODS
    + """
[[method]]
name = "prune_l1"
targets = [{ macs_reduction = 0.3 }, { macs_reduction = 0.6 }]

[[method]]
name = "sparse_global"
targets = [{ sparsity = 0.8 }]

[[method]]
name = "tissuenet"
label = "tissue-nan"
options = { replace = "1" }
train = { lr = 1e12 }
"""
)


pytestmark = pytest.mark.slow  # trains a 12-job suite once (25 s on CI's CPU)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("rep")
    suite = write_suite(root / "s.toml", seeds=(0, 1), methods=METHODS, latency=True)
    assert main(["run", str(suite), "--results", str(root / "results"), "--device", "cpu"]) == 1  # one diverges
    return root / "results"


def _hashes(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_report_is_byte_identical(results, tmp_path):
    build_report(results, tmp_path / "a")
    build_report(results, tmp_path / "b")
    a, b = _hashes(tmp_path / "a"), _hashes(tmp_path / "b")
    assert a == b and len(a) == 5 * 3 + 3 + 2  # 5 figures x 3 formats, md/csv/tex, index, manifest
    assert {n.rsplit(".", 1)[1] for n in a} == {"png", "svg", "pdf", "md", "csv", "tex", "html", "json"}


def test_table_values_equal_the_records(results, tmp_path):
    build_report(results, tmp_path)
    table = pd.read_csv(tmp_path / "table_synthetic_mlp.csv")
    records = pd.DataFrame(ResultStore(results).records())
    ok = records[records.status == "ok"]
    for label, group in ok.groupby("label"):
        row = table[table.label == label].iloc[0]
        assert row["seeds"] == len(group) == 2
        assert row["top1"] == pytest.approx(group["top1"].mean(), rel=1e-5)
        assert row["top1_std"] == pytest.approx(group["top1"].std(ddof=1), rel=1e-4, abs=1e-9)
        assert row["tca_1_1"] == pytest.approx(group["tca_1_1"].mean(), rel=1e-5)
        assert row["params_nonzero"] == pytest.approx(group["params_nonzero"].mean(), rel=1e-5)
    sparse = table[table.label == "sparse_global@sparsity80"].iloc[0]
    dense_flops = table[table.label == "dense"].iloc[0]["flops"]
    assert sparse["flops"] < 0.3 * dense_flops  # unstructured rows report effective FLOPs
    md = (tmp_path / "table_synthetic_mlp.md").read_text()
    assert "| tissue-nan | measured here | 0 |" in md and "failed" in md  # the gap is marked, not dropped
    assert "\\toprule" in (tmp_path / "table_synthetic_mlp.tex").read_text()


def test_every_method_in_every_figure(results, tmp_path):
    manifest = build_report(results, tmp_path)
    records = ResultStore(results).records()
    families = {r["label"].split("@")[0] for r in records if r["status"] == "ok"}
    labels = {r["label"] for r in records if r["status"] == "ok"}
    assert {f["kind"] for f in manifest["figures"]} == {
        "tradeoff",
        "accuracy_vs_params",
        "curves",
        "tca_tsa",
        "latency",
    }
    for fig in manifest["figures"]:
        shown = set(fig["legend"])
        expected = families if fig["kind"] in ("tradeoff", "accuracy_vs_params") else labels
        assert expected <= shown, (fig["kind"], expected - shown)


def test_gaps_are_listed(results, tmp_path):
    manifest = build_report(results, tmp_path)
    failed = [g for g in manifest["gaps"] if g["status"] == "failed"]
    assert len(failed) == 2 and all("DivergedError" in g["error"] for g in failed)
    html = (tmp_path / "index.html").read_text()
    assert "2 failed or missing jobs" in html and "tissue-nan" in html


def _fake_record(store, label, method, top1, macs, params, seed=0):
    base = {"top1": 95.0, "macs": 46_453_760, "params": 8_011_082}
    store.write(
        {
            "job_id": f"{label}.s{seed}",
            "suite": "fake",
            "dataset": "cifar10",
            "model": "resnet20_paper",
            "method": method,
            "label": label,
            "seed": seed,
            "status": "ok",
            "top1": top1,
            "base_top1": base["top1"],
            "acc_drop": base["top1"] - top1,
            "macs": macs,
            "macs_effective": macs,
            "params": params,
            "params_nonzero": params,
            "flops": 2 * macs,
            "macs_reduction_pct": 100 * (1 - macs / base["macs"]),
            "macs_effective_reduction_pct": 100 * (1 - macs / base["macs"]),
            "params_reduction_pct": 100 * (1 - params / base["params"]),
            "speedup_theoretical": base["macs"] / macs,
            "latency_ms": 1.0,
            "speedup_measured": 1.0,
            **{f"{m}_{a}_{b}": 1.0 for m in ("tca", "tsa") for a, b in ((1, 1), (1, 4), (4, 1))},
            "history": [{"epoch": 1, "test_top1": top1, "test_loss": 1.0, "train_loss": 1.0}],
        }
    )


def test_published_rows_are_marked(tmp_path):
    store = ResultStore(tmp_path / "results")
    _fake_record(store, "dense", "dense", 95.0, 46_453_760, 8_011_082)
    _fake_record(store, "tissuenet-ours", "tissuenet", 94.5, 21_109_760, 4_033_610)
    manifest = build_report(tmp_path / "results", tmp_path / "out")
    table = pd.read_csv(tmp_path / "out/table_cifar10_resnet20_paper.csv")
    published = table[table.source == "published (own baseline)"]
    assert set(published.label) == {"FPGM", "SRR-GR", "SFP", "VP", "Ours('r')", "Ours"}
    ours = published.set_index("label").loc["Ours"]
    assert ours["top1"] == 94.52 and ours["base_top1"] == 95.10 and ours["tca_1_1"] == 1.72
    assert set(table[table.source == "measured here"].label) == {"dense", "tissuenet-ours"}
    legend = next(f["legend"] for f in manifest["figures"] if f["kind"] == "tradeoff")
    assert "Ours (published)" in legend and "tissuenet-ours" in legend
    assert "published (own baseline)" in (tmp_path / "out/table_cifar10_resnet20_paper.md").read_text()


def test_report_cli(results, tmp_path, capsys):
    assert main(["report", "--results", str(results), "--out", str(tmp_path)]) == 0
    assert "1 tables, 5 figures" in capsys.readouterr().out
    assert json.loads((tmp_path / "manifest.json").read_text())["provenance"]["jobs"] == 12
    assert main(["report", "--results", str(tmp_path / "nothing")]) == 2
