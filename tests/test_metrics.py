"""The metric table: one entry per metric, everything else derived from it."""

import pytest

from benchmarks.store.metric_table import BY_NAME, METRICS, derive, names
from tissuenet.metrics import WEIGHTINGS, tca, tsa


def test_names_are_unique():
    assert len({m.name for m in METRICS}) == len(METRICS) and len({m.short for m in METRICS}) == len(METRICS)


def test_every_metric_reaches_the_stored_table(tmp_path):
    """A record written through the store comes back in its table with every metric's column and value."""
    from benchmarks.store.results import ResultStore
    from tests.helpers import record

    raw = {"top1": 92.82, "base_top1": 93.25, "macs": 100, "macs_effective": 20.13, "base_macs": 100}
    raw |= {"params": 27, "params_nonzero": 27, "base_params": 100, "latency_ms": 2.0, "base_latency_ms": 5.0}
    derived = derive(raw)
    store = ResultStore(tmp_path)
    store.write(record("d.m.x.s0", **raw | derived))
    table, _ = store.consolidate()
    held = {n: v for n, v in (raw | derived).items() if v is not None and n in BY_NAME}
    assert len(held) == 25 and set(held) <= set(table.columns)  # every metric these inputs give
    row = table.iloc[0]
    for name, value in held.items():
        assert row[name] == pytest.approx(value), name
    assert row["tca_1_1"] == pytest.approx(2.21, abs=0.005)  # hand-computed below (test_derive_...)


def test_tradeoff_names_follow_the_weightings():
    assert {f"{k}_{a}_{b}" for k in ("tca", "tsa") for a, b in WEIGHTINGS} <= set(names(group="tradeoff"))
    assert BY_NAME["tsa_4_1"].title == "TSA(4,1)" and BY_NAME["tca_1_4"].better == "higher"


def test_asv_tracks_only_lower_is_better_numbers():
    assert names(where="asv") and all(BY_NAME[n].better == "lower" for n in names(where="asv"))


def test_check_kinds():
    assert names(check="exact") == ["params", "params_nonzero", "macs", "macs_effective"]
    assert names(check="tolerance") == ["top1"]


def test_derive_against_hand_computed_values():
    raw = {
        "top1": 92.82,
        "base_top1": 93.25,
        "macs": 100,
        "macs_effective": 20.13,
        "base_macs": 100,
        "params": 27.1,
        "params_nonzero": 27.1,
        "base_params": 100,
    }
    got = derive(raw)
    assert got["acc_drop"] == pytest.approx(0.43)
    assert got["flops"] == 200 and got["flops_effective"] == pytest.approx(40.26)
    assert got["macs_effective_reduction_pct"] == pytest.approx(79.87)
    assert got["tca_1_1"] == pytest.approx(tca(93.25, 92.82, 100, 20.13)) == pytest.approx(2.21, abs=0.005)
    assert got["tsa_4_1"] == pytest.approx(tsa(93.25, 92.82, 100, 27.1, 4, 1))
    assert got["speedup_theoretical"] == pytest.approx(100 / 20.13)


def test_missing_inputs_give_none_not_an_error():
    got = derive({"top1": 50.0})
    assert got["acc_drop"] is None and got["tca_1_1"] is None and got["top1_error"] == 50.0


def test_train_compute_sums_every_phase():
    """A fine-tuned row: 10 dense epochs at 100 MACs, 2 sparsity epochs at 100, 5 fine-tune epochs at 40."""
    phases = [
        {"phase": "dense", "epochs": 10, "macs": 100},
        {"phase": "method", "epochs": 2, "macs": 100},
        {"phase": "finetune", "epochs": 5, "macs": 40},
    ]
    got = derive({"train_phases": phases, "train_images": 1000})
    assert got["epochs_total"] == 17
    assert got["train_compute"] == (10 * 100 + 2 * 100 + 5 * 40) * 1000 * 3  # forward + backward: 3 passes
    assert BY_NAME["train_compute"].display(got["train_compute"]) == "0.00"  # shown in T MACs
    sensitivity = [{"phase": "sensitivity", "epochs": 0, "macs": 100, "forward_images": 50}]  # forward passes only
    assert derive({"train_phases": sensitivity, "train_images": 1000})["train_compute"] == 50 * 100


def test_display_uses_the_unit():
    assert BY_NAME["params_nonzero"].display(272186) == "0.272"
    assert BY_NAME["macs"].display(31021952) == "31.02"
    assert BY_NAME["top1"].display(None) == "–"


def test_tradeoffs_against_a_zero_accuracy_reference_are_undefined_not_an_error():
    """A quick pass can leave the dense model at 0 %: its rows still get a record, with TCA/TSA left empty."""
    raw = {"top1": 10.0, "base_top1": 0.0, "macs": 50, "macs_effective": 50.0, "base_macs": 100}
    raw |= {"params": 5, "params_nonzero": 5, "base_params": 10}
    out = derive(raw)
    assert all(out[n] is None for n in names(group="tradeoff"))
    assert out["acc_drop"] == -10.0 and out["macs_effective_reduction_pct"] == pytest.approx(50.0)
