"""Numbers the paper publishes: the 'ResNet-20' cost, its TissueNet cuts, and the TCA/TSA tables."""

import csv

import pytest

from tests.conftest import REPO
from tissuenet import count_macs, count_params, create_model, tca, tca_ratio, tsa, tsa_ratio


def _cost(name, num_classes, **opts):
    model = create_model(name, num_classes=num_classes, **opts)
    return count_params(model), count_macs(model, 3, 32)


def test_resnet20_paper_cost_with_1000_classes():
    params, macs = _cost("resnet20_paper", 1000)
    # hand count: convs 7,996,608 + fc 513,000 + BN 9,344 = 8,518,952; conv+fc MACs 46,960,640
    assert params == 8_518_952
    assert macs == 46_960_640
    assert abs(params / 1e6 - 8.52) <= 0.01
    assert abs(2 * macs / 1e6 - 94.18) < 0.5  # published FLOPs (thop also counts BN/ReLU/pool)


@pytest.mark.parametrize(
    "replace,num_classes,params_cut,flops_cut,published",
    [
        ("ours", 10, 49.65, 54.56, (49.35, 55.02)),  # CIFAR-10 head: the row the paper publishes
        ("ours", 1000, 46.69, 53.97, (49.35, 55.02)),
        ("ours_r", 10, 36.10, 39.68, (32.67, 40.34)),
    ],
)
def test_resnet20_paper_tissue_cuts(replace, num_classes, params_cut, flops_cut, published):
    p_b, f_b = _cost("resnet20_paper", num_classes)
    p_n, f_n = _cost("tissue_resnet20_paper", num_classes, replace=replace)
    got_params, got_flops = 100 * (1 - p_n / p_b), 100 * (1 - f_n / f_b)
    assert got_params == pytest.approx(params_cut, abs=0.005)
    assert got_flops == pytest.approx(flops_cut, abs=0.005)
    if replace == "ours":  # the acceptance window: within 2 points of the paper
        assert abs(got_flops - published[1]) <= 2
        if num_classes == 10:
            assert abs(got_params - published[0]) <= 2


def test_mnist_mlp_cuts_match_the_paper_row():
    """docs/method.md §3: MNIST MLP at -97 % FLOPs / -96 % params; ours: 392 FC 2-4-2 units then the classifier."""
    p_b, f_b = (count_params(m := create_model("mlp", 10, 1)), count_macs(m, 1, 28))
    p_n, f_n = (count_params(t := create_model("tissue_mlp", 10, 1)), count_macs(t, 1, 28))
    assert p_b == 784 * 500 + 500 + 500 * 300 + 300 + 300 * 10 + 10
    assert p_n == 392 * (2 * 4 + 4 * 2) + 2 * (392 * 4 + 784) + 784 * 10 + 10  # unit weights + BN + classifier
    assert f_n == 392 * (2 * 4 + 4 * 2) + 784 * 10
    assert abs(100 * (1 - f_n / f_b) - 97) < 1 and abs(100 * (1 - p_n / p_b) - 96) < 1  # 97.41, 96.55


# Cells the formula cannot reproduce because the journal's tables carry typos (docs/method.md §6).
KNOWN_TYPOS = {
    ("cifar100", "mobilenetv2", "Ours", "tsa_1_1"),
    ("cifar100", "mobilenetv2", "Ours", "tsa_1_4"),
    ("cifar100", "mobilenetv2", "Ours", "tsa_4_1"),
    ("imagenet", "resnet-34", "NISP", "tsa_4_1"),
}
COLUMNS = [f"{m}_{w1}_{w2}" for m in ("tca", "tsa") for w1, w2 in ((1, 1), (1, 4), (4, 1))]


def _paper_rows():
    with open(REPO / "results/paper/bunitnet_tables.csv") as f:
        return list(csv.DictReader(f))


def test_tca_tsa_reproduce_published_tables():
    checked, wrong = 0, set()
    for row in _paper_rows():
        a_b, a_n = float(row["base_top1"]), float(row["top1"])
        for col in COLUMNS:
            if not row[col]:
                continue
            metric, w1, w2 = col.split("_")
            reduction = row["flops_reduction_pct" if metric == "tca" else "params_reduction_pct"]
            fn = tca if metric == "tca" else tsa
            value = fn(a_b, a_n, 100.0, 100.0 - float(reduction), int(w1), int(w2))
            checked += 1
            if abs(value - float(row[col])) > 0.015:
                wrong.add((row["dataset"], row["model"], row["method"], col))
    assert checked == 300
    assert wrong == KNOWN_TYPOS, f"unexpected mismatches: {sorted(wrong - KNOWN_TYPOS)}"
    assert checked - len(wrong) >= 296


def test_worked_example():
    """The paper's worked example (docs/method.md §6): VGG-16/CIFAR-10 'Ours', accuracy as percent or as fractions."""
    for scale in (1, 0.01):
        a_b, a_n = 93.25 * scale, 92.82 * scale
        assert tca(a_b, a_n, 1, 1 - 0.7987) == pytest.approx(2.21, abs=0.005)
        assert tsa(a_b, a_n, 1, 1 - 0.7290) == pytest.approx(2.06, abs=0.005)
        assert tca(a_b, a_n, 1, 1 - 0.7987, 1, 4) == pytest.approx(2.18, abs=0.005)
        assert tca(a_b, a_n, 1, 1 - 0.7987, 4, 1) == pytest.approx(24.29, abs=0.01)
        assert tsa(a_b, a_n, 1, 1 - 0.7290, 4, 1) == pytest.approx(18.38, abs=0.01)
    assert tca(90, 90, 5, 5) == 1 == tsa(90, 90, 7, 7)


def test_ratio_forms():
    assert tca_ratio(50, 45, 400, 100) == pytest.approx(3.6)  # (400/100) * (45/50)
    assert tsa_ratio(80, 80, 4, 2) == pytest.approx(2.0)
    # journal Table III, BUnit-Net MNIST MLP (92.65 -> 91.95): the published ratios imply the
    # cuts the paper quotes (-97 % FLOPs, -96 % params)
    implied_flops_cut = 1 - 1 / (36.06 * 92.65 / 91.95)
    implied_params_cut = 1 - 1 / (27.29 * 92.65 / 91.95)
    assert round(100 * implied_flops_cut) == 97 and round(100 * implied_params_cut) == 96
    assert tca_ratio(92.65, 91.95, 1, 1 - implied_flops_cut) == pytest.approx(36.06)


def test_metric_input_errors():
    with pytest.raises(ValueError):
        tca(0, 50, 1, 1)


# -- the paper's architectures (results/paper/presets.toml) -------------------------------------------
@pytest.mark.slow
def test_presets_reproduce_the_published_cuts():
    """Each preset flagged `match` is within 3 points of its row on both cuts; the others are not (and say so)."""
    from baselines.reference import load_presets
    from benchmarks.paper.published import paper_costs

    rows = paper_costs()
    assert len(rows) == 11 and all(r["preset"] for r in rows)
    presets = load_presets()
    for r in rows:
        off = max(abs(r["flops_cut"] - r["published_flops_cut"]), abs(r["params_cut"] - r["published_params_cut"]))
        assert (off <= 3) == presets[r["preset"]].match, (r, off)
    assert sum(p.match for p in presets.values()) == 10  # single convolutions as units reach two more rows


def test_paper_costs_json_keys(capsys, monkeypatch):
    import json

    from benchmarks.paper import published as paper
    from tissuebench.cli import main

    monkeypatch.setattr(paper, "measured_cuts", lambda *a: (10.0, 20.0))  # the keys, not the (slow) counts
    assert main(["paper-costs", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    keys = {
        "dataset",
        "model",
        "method",
        "preset",
        "published_flops_cut",
        "published_params_cut",
        "flops_cut",
        "params_cut",
    }
    assert len(rows) == 11 and all(set(r) == keys for r in rows)
    ours = next(r for r in rows if (r["dataset"], r["model"], r["method"]) == ("cifar10", "vgg-16", "Ours"))
    assert ours["published_flops_cut"] == 79.87 and ours["preset"] == "cifar10-vgg16-ours"


def test_lenet_toy_follows_table_one():
    """conv 5x5 1->6 (150) + six 1-1-1 units of 5x5 (6 x 25 x 1 x 2 = 300) + classifier 96 -> 10 (960)."""
    model = create_model("tissue_lenet5")
    weights = sum(p.numel() for n, p in model.named_parameters() if p.dim() > 1)
    assert weights == 150 + 300 + 960 == 1410
    bias_and_bn = 6 + 2 * (6 + 6) + 10  # conv1 bias, two BNs of 6 channels (weight + bias), classifier bias
    assert count_params(model) == 1410 + bias_and_bn


def test_stacked_mlp_layers_are_separated_by_normal_layers():
    import torch

    from tissuenet import StackedLayer

    model = create_model("tissue_mlp", unit_counts=(392, 392))
    kinds = [type(m).__name__ for m in model]
    first, second = [i for i, k in enumerate(kinds) if k == "StackedLayer"]
    assert "Linear" in kinds[first + 1 : second]  # a normal layer mixes the channel pairs between them
    assert isinstance(model[second], StackedLayer) and model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_mobilenetv2_dense_cost_documented():
    """docs/method.md §4: 175.95M FLOPs at 32x32 (the paper: 134.95M), 2.24M params (the paper: 2.25M)."""
    m = create_model("mobilenetv2", 10, 3)
    assert round(2 * count_macs(m, 3, 32) / 1e6, 2) == 175.95 and round(count_params(m) / 1e6, 2) == 2.24


def test_published_contradictions_are_shown_not_corrected():
    """MobileNetV2/CIFAR-100 "Ours": params -60.48 % printed, its three TSA cells imply -64.48 %: both
    readings, TSA cells as printed. Tiny-ImageNet VGG-19 "Ours": 2.8x printed, 2.73x from its FLOPs cut."""
    from reports.data import published

    rows = published()
    mnv2 = rows[(rows.dataset == "cifar100") & (rows.model == "mobilenetv2") & (rows.label == "Ours")].iloc[0]
    assert mnv2["params_nonzero_reduction_pct"] == 60.48 and mnv2["tsa_1_1"] == 1.88  # nothing corrected
    assert mnv2["readings"]["params_nonzero_reduction_pct"] == pytest.approx(64.48, abs=0.1)
    assert not mnv2["marks"]
    vgg = rows[(rows.dataset == "tiny-imagenet") & (rows.label == "Ours")].iloc[0]
    assert vgg["marks"] == {"speedup_theoretical": 2.8} and vgg["speedup_theoretical"] == pytest.approx(
        2.7337, abs=1e-3
    )
    flagged = rows[rows.readings.map(bool) | rows.marks.map(lambda m: "speedup_theoretical" in m)]
    assert len(flagged) == 2  # no other row's speed-up or TSA cells contradict their own cuts
