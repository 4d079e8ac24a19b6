"""Baselines on tiny inputs: targets reached, models run, saved models re-measure identically."""

import pytest
import torch
from torch import nn

from baselines.serialize import load_model, save_model
from baselines.unstructured import make_permanent, prunable_weights, sparsity_of
from benchmarks.data.registry import make_loaders
from benchmarks.measure import measure_cost
from benchmarks.methods import JobContext, MethodError, Target, get_method, list_methods
from benchmarks.train import TrainConfig, train
from tissuenet.registry import create_model_for_input

SIZE = 16  # tiny inputs keep the grid fast on CI


def _dense_factory(model_name, channels):
    def build():
        torch.manual_seed(0)
        model = create_model_for_input(model_name, 10, channels, SIZE)
        for m in model.modules():  # a trained checkpoint has distinct BN scales; fresh BN ties them all at 1
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.weight.data.uniform_(0.2, 1.0)
        return model

    return build


def make_ctx(model_name, target, options=None, channels=1, epochs=0):
    _, train_loader, _ = make_loaders("synthetic", batch_size=16)

    def train_phase(model, n, extra_loss=None):
        loader = _ResizedLoader(train_loader, SIZE, channels)
        train(model, loader, loader, TrainConfig(epochs=n, lr=0.01), extra_loss=extra_loss)

    return JobContext("synthetic", model_name, 10, channels, SIZE, 0, options or {}, target,
                      {"dense_epochs": 1, "finetune_epochs": epochs, "scratch_epochs": 4}, torch.device("cpu"),
                      _dense_factory(model_name, channels), {}, _ResizedLoader(train_loader, SIZE, channels),
                      train=train_phase)  # fmt: skip


class _ResizedLoader:
    """The synthetic 28x28 batches, resized to the grid's tiny input and channel count."""

    def __init__(self, loader, size, channels):
        self.loader, self.size, self.channels = loader, size, channels

    def set_epoch(self, e):
        self.loader.set_epoch(e)

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        for x, y in self.loader:
            x = nn.functional.interpolate(x, size=(self.size, self.size))
            yield x.expand(-1, self.channels, -1, -1).contiguous(), y


STRUCTURED = [m for m in list_methods() if m.startswith("prune_")]
# every criterion on four backbones; the slower backbones with two criteria (keeps CI in minutes)
GRID = [(m, b) for m in STRUCTURED for b in ("resnet20", "vgg16_bn", "mlp", "timm:resnet18")] + [
    (m, b) for m in ("prune_l1", "prune_group") for b in ("mobilenetv2", "resnet20_paper", "torchvision:resnet18")
]


def _check_saved_model_remeasures(prepared, ctx, tmp_path):
    model = prepared.model
    if prepared.finalize:
        model = prepared.finalize(model)
    cost = measure_cost(model, ctx.in_channels, ctx.input_size)
    arch = {"model": ctx.model_name, "num_classes": 10, "in_channels": ctx.in_channels, "input_size": ctx.input_size,
            "options": {}}  # fmt: skip
    path = save_model(model, tmp_path / "m.pt", arch)
    reloaded, _ = load_model(path)  # torch.load's default weights_only=True
    assert measure_cost(reloaded, ctx.in_channels, ctx.input_size) == cost
    x = torch.randn(2, ctx.in_channels, SIZE, SIZE)
    torch.testing.assert_close(model.eval()(x), reloaded(x))
    return cost


@pytest.mark.parametrize("method,backbone", GRID)
def test_structured_reaches_macs_target(method, backbone, tmp_path):
    channels = 3 if ":" in backbone else 1
    ctx = make_ctx(backbone, Target("macs_reduction", 0.4), channels=channels)
    if method == "prune_slimming" and backbone == "mlp":
        with pytest.raises(MethodError, match="no BatchNorm"):
            get_method(method).prepare(ctx)
        return
    dense = ctx.dense_model()
    dense_cost = measure_cost(dense, channels, SIZE)
    prepared = get_method(method).prepare(ctx)
    assert abs(prepared.info["achieved"] - 0.4) <= 0.01
    cost = _check_saved_model_remeasures(prepared, ctx, tmp_path)
    measured = 1 - cost["macs"] / dense_cost["macs"]
    assert measured == pytest.approx(prepared.info["achieved"])  # recorded = measured, never the target
    assert prepared.model(torch.randn(2, channels, SIZE, SIZE)).shape == (2, 10)


@pytest.mark.parametrize("method", ["prune_l1", "prune_group"])
def test_params_target(method, tmp_path):
    ctx = make_ctx("resnet20", Target("params_reduction", 0.5))
    dense_params = measure_cost(ctx.dense_model(), 1, SIZE)["params"]
    prepared = get_method(method).prepare(ctx)
    assert abs(1 - measure_cost(prepared.model, 1, SIZE)["params"] / dense_params - 0.5) <= 0.01


def test_unreachable_target_is_a_clear_error():
    ctx = make_ctx("resnet20", Target("macs_reduction", 0.99), options={"max_ratio": 0.5})
    with pytest.raises(MethodError, match="reached macs_reduction .* for target 0.9900"):
        get_method("prune_l1").prepare(ctx)


@pytest.mark.parametrize("method", ["sparse_global", "sparse_layer", "sparse_random"])
@pytest.mark.parametrize("backbone", ["resnet20", "mlp", "mobilenetv2"])
def test_unstructured_exact_sparsity_and_masks_hold(method, backbone, tmp_path):
    ctx = make_ctx(backbone, Target("sparsity", 0.7))
    prepared = get_method(method).prepare(ctx)
    params = prunable_weights(prepared.model)
    total = sum(m.weight.numel() for m, _ in params)
    zeros = sum(int((m.weight == 0).sum()) for m, _ in params)
    if method == "sparse_global":
        assert zeros == round(0.7 * total)
    else:  # each layer rounds its own share
        assert abs(zeros - 0.7 * total) <= len(params)
        for m, _ in params:
            assert int((m.weight == 0).sum()) == round(0.7 * m.weight.numel())
    masks = {id(m): m.weight_mask.clone() for m, _ in params}
    ctx.train(prepared.model, 1)  # fine-tuning: the masks hold
    for m, _ in params:
        assert torch.equal(m.weight_mask, masks[id(m)]) and torch.all(m.weight[m.weight_mask == 0] == 0)
    model = make_permanent(prepared.model)
    assert sparsity_of(prunable_weights(model)) == pytest.approx(zeros / total)
    cost = _check_saved_model_remeasures(prepared, ctx, tmp_path)
    assert cost["params_nonzero"] < cost["params"] and cost["macs_effective"] < cost["macs"]


def test_macs_effective_is_density_weighted():
    ctx = make_ctx("mlp", Target("sparsity", 0.5))
    prepared = get_method("sparse_layer").prepare(ctx)
    model = make_permanent(prepared.model)
    cost = measure_cost(model, 1, SIZE)
    # every linear layer at density 0.5 (to rounding): effective MACs are half the dense MACs
    assert cost["macs_effective"] == pytest.approx(0.5 * cost["macs"], rel=1e-3)


def test_scratch_baselines_reinitialise_and_scale_epochs():
    ctx = make_ctx("resnet20", Target("macs_reduction", 0.5))
    e = get_method("scratch_e").prepare(ctx)
    b = get_method("scratch_b").prepare(make_ctx("resnet20", Target("macs_reduction", 0.5)))
    assert e.epochs == 4 and b.epochs == round(4 * b.info["macs_ratio"]) and b.epochs > e.epochs
    pruned = get_method("prune_l1").prepare(make_ctx("resnet20", Target("macs_reduction", 0.5)))
    shapes = [p.shape for p in e.model.parameters()]
    assert shapes == [p.shape for p in pruned.model.parameters()]  # the same architecture ...
    assert not all(
        torch.equal(a, b) for a, b in zip(e.model.parameters(), pruned.model.parameters())
    )  # ... new weights


def test_uniform_width_hits_target():
    prepared = get_method("uniform").prepare(make_ctx("vgg16_bn", Target("macs_reduction", 0.5)))
    assert abs(prepared.info["achieved"] - 0.5) <= 0.01 and 0.6 < prepared.info["width_ratio"] < 0.8


def test_slimming_sparsity_phase_runs():
    ctx = make_ctx("resnet20", Target("macs_reduction", 0.3), options={"slimming_epochs": 1, "slimming_reg": 1e-4})
    prepared = get_method("prune_slimming").prepare(ctx)
    assert prepared.info["slimming_epochs"] == 1 and abs(prepared.info["achieved"] - 0.3) <= 0.01


def test_bad_options_are_rejected():
    from benchmarks.suite import SuiteError, parse_suite

    with pytest.raises(MethodError, match="does not take option 'speed'"):
        get_method("prune_l1").check({"speed": 2}, Target("macs_reduction", 0.5))
    with pytest.raises(MethodError, match="must be bool"):
        get_method("prune_l1").check({"global_pruning": "yes"}, Target("macs_reduction", 0.5))
    raw = {"name": "x", "datasets": ["synthetic"], "models": ["resnet20"], "seeds": [0],
           "budgets": {"dense_epochs": 1, "finetune_epochs": 1, "scratch_epochs": 1},
           "method": [{"name": "prune_l1", "targets": [{"macs_reduction": 1.2}]}]}  # fmt: skip
    with pytest.raises(SuiteError, match="impossible target macs_reduction=1.2"):
        parse_suite(raw)
