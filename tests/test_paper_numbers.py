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
    """SPEC 7: MNIST MLP at -97 % FLOPs / -96 % params; ours: 392 FC 2-4-2 units then the classifier."""
    p_b, f_b = (count_params(m := create_model("mlp", 10, 1)), count_macs(m, 1, 28))
    p_n, f_n = (count_params(t := create_model("tissue_mlp", 10, 1)), count_macs(t, 1, 28))
    assert p_b == 784 * 500 + 500 + 500 * 300 + 300 + 300 * 10 + 10
    assert p_n == 392 * (2 * 4 + 4 * 2) + 2 * (392 * 4 + 784) + 784 * 10 + 10  # unit weights + BN + classifier
    assert f_n == 392 * (2 * 4 + 4 * 2) + 784 * 10
    assert abs(100 * (1 - f_n / f_b) - 97) < 1 and abs(100 * (1 - p_n / p_b) - 96) < 1  # 97.41, 96.55


# Cells the formula cannot reproduce because the journal's tables carry typos (SPEC section 5).
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
    """SPEC 5: VGG-16/CIFAR-10 'Ours', accuracy as percent or as fractions."""
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
    # cuts SPEC 7 quotes (-97 % FLOPs, -96 % params)
    implied_flops_cut = 1 - 1 / (36.06 * 92.65 / 91.95)
    implied_params_cut = 1 - 1 / (27.29 * 92.65 / 91.95)
    assert round(100 * implied_flops_cut) == 97 and round(100 * implied_params_cut) == 96
    assert tca_ratio(92.65, 91.95, 1, 1 - implied_flops_cut) == pytest.approx(36.06)


def test_metric_input_errors():
    with pytest.raises(ValueError):
        tca(0, 50, 1, 1)
