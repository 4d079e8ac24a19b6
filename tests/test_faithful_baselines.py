"""Network Slimming, Taylor and FPGM run as their papers run them, the gate's 99 % is what it computes, and the
smaller findings of the same audit (issue 28). Each test failed on the main branch before it."""

from __future__ import annotations

import json
import math
import random

import pandas as pd
import pytest
import torch
from torch import nn

from baselines.channels import ChannelGroups
from baselines.structured import classifier_of
from tests.helpers import record, write_suite
from tissuebench.cli import main
from tissuenet import create_model

METHODS = """
[[method]]
name = "dense"

[[method]]
name = "prune_slimming"
options = { slimming_reg = 1.0 }  # far above the paper's: a few steps show what 160 epochs do
targets = [{ macs_reduction = 0.3 }, { macs_reduction = 0.5 }]

[[method]]
name = "prune_taylor"
options = { every = 2 }
targets = [{ macs_reduction = 0.5 }]

[[method]]
name = "prune_fpgm"
targets = [{ macs_reduction = 0.5 }]
"""


def _suite(tmp_path, **kw):
    extra = "\n[data]\ntrain_limit = 256\ntest_limit = 64\n"
    path = write_suite(tmp_path / "s.toml", models=("resnet20",), methods=METHODS, dense_epochs=2, extra=extra, **kw)
    path.write_text(path.read_text().replace("finetune_epochs = 1", "finetune_epochs = 3"))
    return path


def _plan(suite, capsys) -> dict:
    assert main(["run", str(suite), "--dry-run", "--json"]) == 0
    return {p["label"]: p for p in map(json.loads, capsys.readouterr().out.splitlines())}


def test_dry_run_lists_each_methods_phases(tmp_path, capsys):
    """Slimming's sparsity phase is the dense training (from scratch, the dense epochs), shared by its rows;
    Taylor's pruning phase runs at the dense cost; FPGM's whole fine-tuning is a soft phase."""
    plan = _plan(_suite(tmp_path), capsys)
    start = "dense+sparsity-1"
    assert plan[start]["phases"] == [{"name": "sparsity", "epochs": 2, "start": "scratch"}]
    for label in ("prune_slimming@macs30", "prune_slimming@macs50"):  # one shared checkpoint, counted once
        assert plan[label]["phases"] == [
            {"name": "sparsity", "epochs": 2, "start": "scratch", "shared": True},
            {"name": "finetune", "epochs": 3, "start": start},
        ]
        assert plan[label]["extra_epochs_at_dense_cost"] == 0
    taylor = plan["prune_taylor@macs50"]
    assert [p["name"] for p in taylor["phases"]] == ["dense", "taylor-pruning", "finetune"]
    assert taylor["phases"][1]["epochs"] == 2 and taylor["extra_epochs_at_dense_cost"] == 2
    fpgm = plan["prune_fpgm@macs50"]
    assert fpgm["phases"][1] == {"name": "soft-pruning", "epochs": 3, "start": "dense"}
    assert fpgm["extra_epochs_at_dense_cost"] == 3
    dense = plan["dense"]["train_compute"]
    assert plan[start]["train_compute"] == pytest.approx(dense)  # it costs one dense training, in its own row


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_slimming_taylor_and_fpgm_run_as_their_papers(tmp_path, capsys):
    suite = _suite(tmp_path)
    results = tmp_path / "r"
    assert main(["run", str(suite), "--results", str(results), "--device", "cpu"]) == 0
    capsys.readouterr()
    recs = {r["label"]: r for r in (json.loads(p.read_text()) for p in (results / "records").glob("*.json"))}
    # Network Slimming: its rows start from the sparsity-trained checkpoint, whose BN scales the L1 term pushed
    # towards zero (the dense checkpoint's are not)
    slim = recs["prune_slimming@macs50"]
    assert slim["dense_checkpoint"] == recs["dense+sparsity-1"]["job_id"]
    bn = slim["checkpoint_bn"]
    assert bn["start"]["bn_gamma_median"] < 0.5 * bn["dense"]["bn_gamma_median"], bn
    assert [p["phase"] for p in slim["train_phases"]] == ["sparsity", "finetune"]
    # Taylor: pruned in several events while training, at the dense cost, then fine-tuned on the pruned network
    taylor = recs["prune_taylor@macs50"]
    info = taylor["method_info"]
    assert info["events"] > 1 and sum(info["masked_per_event"]) == info["channels_masked"] > 0
    phases = {p["phase"]: p for p in taylor["train_phases"]}
    assert phases["taylor-pruning"]["macs"] == phases["dense"]["macs"] > phases["finetune"]["macs"]
    assert abs(taylor["macs_reduction_pct"] - 50) <= 1
    # FPGM: soft pruning over the fine-tuning (regrowth counted per epoch but the last), removed at the end
    fpgm = recs["prune_fpgm@macs50"]
    assert len(fpgm["method_info"]["regrown"]) == 2 and abs(fpgm["macs_reduction_pct"] - 50) <= 1
    assert [p["phase"] for p in fpgm["train_phases"]] == ["dense", "soft-pruning"]
    assert all(r["status"] == "ok" for r in recs.values())


def _direct_gate_scores(model: nn.Module, x, y) -> dict[nn.Module, torch.Tensor]:
    """The paper's score computed literally: a gate of ones after every BN, (dL/dgate)^2 per channel."""
    gates, hooks = {}, []
    for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
        gate = torch.ones(bn.num_features, requires_grad=True)
        gates[bn] = gate
        hooks.append(bn.register_forward_hook(lambda m, i, out, g=gate: out * g.view(1, -1, 1, 1)))
    model.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    for h in hooks:
        h.remove()
    return {bn: gate.grad.detach() ** 2 for bn, gate in gates.items()}


def test_taylor_scores_are_the_gate_after_bn():
    """Our scores (from the BN parameters' gradients) equal the paper's gate after BN computed with a real gate,
    channel by channel: Spearman 1 (main's score, conv w x g plus BN in eval mode, had 0.66)."""
    from baselines.taylor import gate_scores

    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=10, in_channels=1).train()
    x, y = torch.randn(16, 1, 28, 28), torch.randint(0, 10, (16,))
    groups = ChannelGroups(model, torch.randn(1, 1, 28, 28), [classifier_of(model)], 1, 28)
    model.train()  # building the dependency graph leaves BN in eval mode: the paper scores in training mode
    direct = _direct_gate_scores(model, x, y)
    model.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    ours = torch.cat(gate_scores(groups))
    expected = []
    for g in range(len(groups.groups)):  # the paper's per-gate score, averaged where a residual ties gates
        total, count = torch.zeros(groups.widths[g]), torch.zeros(groups.widths[g])
        for bn, idxs, roots in groups.gates(g):
            total.index_add_(0, torch.tensor(roots), direct[bn][idxs])
            count.index_add_(0, torch.tensor(roots), torch.ones(len(roots)))
        expected.append(total / count)
    expected = torch.cat(expected)
    assert torch.allclose(ours, expected, rtol=1e-4, atol=1e-12)
    assert pd.Series(ours.numpy()).corr(pd.Series(expected.numpy()), method="spearman") > 0.9999


def test_fpgm_scores_a_coupled_group_by_every_conv_it_ties():
    """ResNet-20's stage-2 residual group ties the 1x1 shortcut and three block convs: its distance is their sum
    (main ranked it by its first conv alone)."""
    from baselines.channels import OUT
    from baselines.fpgm import group_distances, median_distances

    model = create_model("resnet20", num_classes=10, in_channels=1)
    groups = ChannelGroups(model, torch.randn(1, 1, 28, 28), [classifier_of(model)], 1, 28)
    tied = [g for g in range(len(groups.groups)) if len(groups.members(g, OUT)) == 4]
    assert tied  # stages 2 and 3: shortcut + three blocks
    producers = groups.members(tied[0], OUT)
    expected = sum(median_distances(layer.weight, idxs) for layer, idxs, _ in producers)
    assert torch.allclose(group_distances(groups, tied[0]), expected)


def test_masking_is_removal():
    """A masked group computes exactly what the pruned network does, and its MACs are counted without pruning."""
    from tissuenet.counting import count_macs

    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=10, in_channels=1).eval()
    groups = ChannelGroups(model, torch.randn(1, 1, 28, 28), [classifier_of(model)], 1, 28)
    groups.masked = [set(range(0, n, 3)) for n in groups.widths]
    predicted = groups.macs()
    groups.apply_masks()
    x = torch.randn(2, 1, 28, 28)
    masked = model(x)
    groups.remove()
    assert torch.allclose(model(x), masked, atol=1e-5) and count_macs(model, 1, 28) == predicted


class _Split(nn.Module):
    """A stem whose halves feed two convs: each of them holds half of the stem group's channels."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.a, self.b = (nn.Conv2d(i, o, 3, padding=1) for i, o in ((1, 16), (8, 8), (8, 8)))
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        left, right = torch.split(torch.relu(self.stem(x)), 8, dim=1)
        return self.fc(torch.cat([self.a(left), self.b(right)], 1).mean((2, 3)))


@pytest.mark.parametrize("name", ["resnet20", "mobilenetv2", "vgg16_bn", "resnet50", "split"])
def test_macs_from_group_tables_equal_the_channel_by_channel_count(name):
    """The per-group tables behind ``macs`` (Taylor's schedule asks after every channel it masks) count what the
    channel-by-channel union counts, for any masks: residual groups, depthwise convs, bottlenecks, and layers
    that hold part of a group's channels (the split)."""
    model = (_Split() if name == "split" else create_model(name, num_classes=10, in_channels=1)).eval()
    groups = ChannelGroups(model, torch.randn(1, 1, 32, 32), [classifier_of(model)], 1, 32)
    assert groups._tables is not None  # each channel is coupled once here: the tables are what counts
    rng = random.Random(0)
    masks = [[set(rng.sample(range(n), rng.randint(0, n - 1))) for n in groups.widths] for _ in range(5)]
    from_tables = [groups.macs(m) for m in masks]
    partial = [layer for table in groups._tables.values() for layer, per_root in table if per_root is not None]
    assert len(partial) == (2 if name == "split" else 0)  # a and b: 8 of the stem's 16 roots each
    groups._tables = None
    assert from_tables == [groups.macs(m) for m in masks] and len(set(from_tables)) == len(masks)


# -- the gate: independent draws, its own seed outside them, a measured false-alarm rate ------------------------
def _runs(seeds, *, threads=2, top1=80.0, spread=0.3):
    rows = []
    for i, seed in enumerate(seeds):
        rows.append(
            record(
                f"j.s{seed}", seed=seed, group_hash="g", train_hash="t", threads=threads, top1=top1 + spread * (i % 5)
            )
        )
    return pd.DataFrame(rows)


def test_reference_runs_must_be_independent_draws():
    from benchmarks.gate.bounds import derive_bounds
    from benchmarks.gate.reference import CheckError

    job = _runs([0])
    twins = pd.concat([_runs(range(10, 20), threads=2), _runs(range(10, 20), threads=1)], ignore_index=True)
    with pytest.raises(CheckError, match="more than once"):  # main treated a seed at two thread counts as two draws
        derive_bounds(job, twins, None)
    with pytest.raises(CheckError, match="among the reference runs"):  # the judged run inside its own bounds
        derive_bounds(job, _runs(range(0, 10)), None)
    assert len(derive_bounds(job, _runs(range(10, 20)), None)) == 1


def test_held_out_runs_measure_the_false_alarm_rate():
    from benchmarks.gate.bounds import derive_bounds, held_out

    job = _runs([0])
    reference = derive_bounds(job, _runs(range(10, 30)), None)
    flagged, runs, _ = held_out(reference, _runs(range(30, 50)))
    assert (flagged, runs) == (0, 20)
    low = _runs(range(30, 40)).assign(top1=60.0)
    assert held_out(reference, low)[:2] == (10, 10)


def test_shipped_reference_names_seeds_apart_from_the_suites_own():
    from benchmarks.gate.reference import read_reference
    from benchmarks.suites.load import load_suite
    from results import reference

    _, meta = read_reference(reference("smoke"))
    seeds = {int(s) for s in meta["reference_seeds"].split(",")}
    assert len(seeds) >= 8 and not seeds & set(load_suite("smoke").seeds)


def test_equal_differences_get_no_test():
    """Accuracies are 100 c / n: a row exactly k images behind on every seed differs by float noise, never a
    spread (main: p around 1e-27)."""
    from reports.stats import paired_t_test

    n = 2000
    a = {s: 100 * c / n for s, c in enumerate((1501, 1533, 1487, 1520, 1511))}
    b = {s: 100 * (c - 7) / n for s, c in enumerate((1501, 1533, 1487, 1520, 1511))}
    assert math.isnan(paired_t_test(a, b).p_value)


def test_a_missing_equal_budget_row_is_named_not_replaced():
    from reports.data import _significance

    rows = []
    for label, method, ref in (("dense", "dense", None), ("tissuenet", "tissuenet", "dense@e5")):
        rows.append(
            {"dataset": "d", "model": "m", "label": label, "method": method, "seeds": 3, "reference_label": ref,
             "top1_by_seed": {0: 90.0, 1: 91.0, 2: 89.5}, "macs_effective_reduction_pct": 50.0}
        )  # fmt: skip
    frame = _significance(pd.DataFrame(rows))
    row = frame[frame["label"] == "tissuenet"].iloc[0]
    assert row["vs_dense"] == "dense@e5 (missing)" and row["p_vs_dense"] is None


def test_scratch_b_is_capped_at_twice_the_dense_epochs_on_imagenet():
    from baselines.contract import get_method
    from benchmarks.suites.settings import BudgetConfig

    method, budgets = get_method("scratch_b"), BudgetConfig.from_dict({"dense_epochs": 90, "finetune_epochs": 10})
    assert method._epochs(budgets, None, 4.0, method.cap({}, "imagenet")) == 180  # Liu et al.: at most 2x
    assert method._epochs(budgets, None, 4.0, method.cap({}, "cifar10")) == 360
    assert method._epochs(budgets, None, 4.0, method.cap({"max_budget_factor": 3.0}, "imagenet")) == 270


def test_torch_pruning_is_pinned_to_the_tested_version():
    import importlib.metadata
    import tomllib

    from tests.conftest import REPO

    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    pinned = next(d for d in deps if d.startswith("torch-pruning"))
    assert pinned == f"torch-pruning=={importlib.metadata.version('torch-pruning')}"


def test_bottleneck_feeds_conv1s_output_to_its_units_and_says_the_authors_code_does_not():
    """The stacked layer of a bottleneck sees conv1's output (the authors' code feeds it the block input)."""
    from tests.conftest import REPO

    model = create_model("tissue_resnet50", num_classes=10, replace="all").eval()
    block = model.layer1[0]
    seen = {}
    block.body[1].register_forward_hook(lambda m, i, o: seen.setdefault("in", i[0]))
    x = torch.randn(1, 64, 8, 8)
    with torch.no_grad():
        block(x)
        assert torch.equal(seen["in"], block.body[0](x))
    assert "BunitBottleneck.forward" in (REPO / "docs" / "method.md").read_text()


def test_measurement_overrides_share_the_train_hash_of_every_job():
    """Seeds run with ``--set measure.latency=false`` pool with the suite's own run, dense and method jobs alike (the
    dense checkpoint's config nests the overrides and a method's job names it by hash: both missed before); a
    training override does not pool."""
    from benchmarks.suites.load import load_suite

    plain = load_suite("smoke").jobs()
    untimed = load_suite("smoke", overrides={"measure.latency": False, "seeds": [7]}).jobs()
    other = load_suite("smoke", overrides={"train.lr": 0.05}).jobs()
    assert [j.train_hash for j in plain] == [j.train_hash for j in untimed]
    assert all(a.job_id != b.job_id for a, b in zip(plain, untimed, strict=True))  # ids still name the measurement
    assert not {j.train_hash for j in plain} & {j.train_hash for j in other}
