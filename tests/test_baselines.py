"""Baselines on tiny inputs: targets reached, models run, saved models re-measure identically,
criteria are what they say and distinct, budgets follow Liu et al."""

import pytest
import torch
from torch import nn

from baselines.contract import JobContext, MethodError, Target, get_method, list_methods
from baselines.criteria import CRITERIA
from baselines.unstructured import make_permanent, prunable_weights, sparsity_of
from benchmarks.data.datasets import make_loaders
from benchmarks.measure.cost import measure_cost
from benchmarks.run.train import train
from benchmarks.store.files import write_verified
from benchmarks.store.model_files import load_model, model_bytes
from benchmarks.suites.settings import BudgetConfig, TrainConfig
from tissuenet import list_models
from tissuenet.registry import create_model_for_input

SIZE = 16  # tiny inputs keep the grid fast on CI
BUDGETS = BudgetConfig(dense_epochs=4, finetune_epochs=2)


def _dense_factory(model_name, channels, size=SIZE):
    def build():
        torch.manual_seed(0)
        model = create_model_for_input(model_name, 10, channels, size)
        for m in model.modules():  # a trained checkpoint has distinct BN scales; fresh BN ties them all at 1
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.weight.data.uniform_(0.2, 1.0)
        return model

    return build


def make_ctx(model_name, target, options=None, channels=1, size=SIZE, budgets=BUDGETS, override=None):
    _, train_loader, _ = make_loaders("synthetic", batch_size=16)
    loader = _ResizedLoader(train_loader, size, channels)

    def train_phase(model, n, extra_loss=None):
        train(model, loader, loader, TrainConfig(epochs=n, lr=0.01), extra_loss=extra_loss)

    return JobContext(
        dataset="synthetic",
        model_name=model_name,
        num_classes=10,
        in_channels=channels,
        input_size=size,
        seed=0,
        options=options or {},
        target=target,
        budgets=budgets,
        device=torch.device("cpu"),
        dense_model=_dense_factory(model_name, channels, size),
        train_loader=loader,
        train=train_phase,
        epochs_override=override,
    )


class _ResizedLoader:
    """The synthetic 28x28 batches, resized to the grid's tiny input and channel count."""

    def __init__(self, loader, size, channels):
        self.loader, self.size, self.channels = loader, size, channels

    @property
    def num_items(self):
        return self.loader.num_items

    def set_epoch(self, e):
        self.loader.set_epoch(e)

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        for x, y in self.loader:
            x = nn.functional.interpolate(x, size=(self.size, self.size))
            yield x.expand(-1, self.channels, -1, -1).contiguous(), y


STRUCTURED = [f"prune_{c}" for c in CRITERIA] + ["prune_taylor", "prune_fpgm"]  # the last two: while training
DENSE_MODELS = list_models(tissue=False)
EXTERNAL = ["torchvision:resnet18", "timm:resnet18"]
# timm style: the grid is derived from the registry. Every criterion runs on one model of each
# structure Torch-Pruning must trace differently (CORE); every other registered model is pruned once,
# by prune_l1, because what depends on the model (tracing the coupled groups, removing channels) is the
# same code for every criterion. Each model kept out of the every-criterion grid says why.
CORE = {
    "resnet56": "residual stages: channels coupled across blocks",
    "mobilenetv2": "inverted residuals with depthwise convs: in and out channels coupled",
    "vgg16_bn": "plain conv-BN chain: no coupling",
    "mlp": "linear layers only, no BatchNorm (the BN criteria must refuse it)",
}
EXCLUDE = {
    "resnet20": "the BasicBlock stages of resnet56 (CORE), shallower",
    "resnet32": "the BasicBlock stages of resnet56 (CORE), shallower",
    "resnet44": "the BasicBlock stages of resnet56 (CORE), shallower",
    "resnet110": "the BasicBlock stages of resnet56 (CORE), deeper; 5x slower",
    "resnet18": "ImageNet BasicBlocks: the coupling of resnet56 (CORE) plus a 7x7 stem",
    "resnet34": "ImageNet BasicBlocks: the coupling of resnet56 (CORE) plus a 7x7 stem",
    "resnet20_paper": "ImageNet-style BasicBlocks at CIFAR width: the coupling of resnet56 (CORE)",
    "resnet50": "Bottleneck ImageNet ResNet: several seconds per criterion on CPU",
    "vgg19_bn": "the plain chain of vgg16_bn (CORE), deeper",
    "torchvision:resnet18": "an external model: what is tested is that it loads and prunes",
    "timm:resnet18": "the same architecture as torchvision:resnet18, from another library",
    "lenet5": "6- and 16-channel layers: one channel is about 11 % of the MACs (tolerance 0.15 below)",
}
SIZES = {"lenet5": 32, "resnet20_paper": 32}  # valid 5x5 convs; the 7x7/2 stem needs its design resolution
OPTIONS = {"lenet5": {"tolerance": 0.15}}  # see EXCLUDE
MODELS = DENSE_MODELS + EXTERNAL
assert set(CORE) | set(EXCLUDE) == set(MODELS), "a registered model is neither in CORE nor excluded with a reason"
GRID = [(m, b) for m in STRUCTURED for b in CORE] + [("prune_l1", b) for b in EXCLUDE]
FAST = {("prune_l1", "resnet20")} | {
    (m, "mlp") for m in ("prune_slimming", "prune_group", "prune_taylor", "prune_fpgm")
}


def _check_saved_model_remeasures(prepared, ctx, tmp_path):
    model = prepared.without_training()  # a method that prunes while training: its phases with no steps
    cost = measure_cost(model, ctx.in_channels, ctx.input_size)
    arch = {
        "model": ctx.model_name,
        "num_classes": 10,
        "in_channels": ctx.in_channels,
        "input_size": ctx.input_size,
        "options": {},
    }
    path = write_verified(tmp_path / "m.pt", model_bytes(model, arch))  # as the driver writes it
    reloaded, _ = load_model(path)  # weights_only=True
    assert measure_cost(reloaded, ctx.in_channels, ctx.input_size) == cost
    x = torch.randn(2, ctx.in_channels, ctx.input_size, ctx.input_size)
    torch.testing.assert_close(model.eval()(x), reloaded(x))
    return cost


def _options(method):
    """50 pruning steps (not 200): the same properties in a fraction of the time (Taylor and FPGM have none)."""
    return {} if method in ("prune_taylor", "prune_fpgm") else {"steps": 50}


@pytest.mark.parametrize(
    "method,backbone", [pytest.param(*g, marks=() if g in FAST else pytest.mark.slow) for g in GRID]
)
def test_structured_reaches_macs_target(method, backbone, tmp_path):
    channels = 3 if ":" in backbone else 1
    size = SIZES.get(backbone, SIZE)
    options = _options(method) | OPTIONS.get(backbone, {})
    ctx = make_ctx(backbone, Target("macs_reduction", 0.4), options, channels=channels, size=size)
    if method in ("prune_slimming", "prune_bnscale") and backbone in ("mlp", "lenet5"):
        with pytest.raises(MethodError, match="no BatchNorm"):
            get_method(method).prepare(ctx)
        return
    dense_cost = measure_cost(ctx.dense_model(), channels, size)
    prepared = get_method(method).prepare(ctx)
    cost = _check_saved_model_remeasures(prepared, ctx, tmp_path)
    assert abs(prepared.info["achieved"] - 0.4) <= options.get("tolerance", 0.01)
    measured = 1 - cost["macs"] / dense_cost["macs"]
    assert measured == pytest.approx(prepared.info["achieved"])  # recorded = measured, never the target
    assert prepared.model(torch.randn(2, channels, size, size)).shape == (2, 10)


def _kept_channels(model) -> tuple:
    """Which output channels of every conv survived, by the surviving weights' identity (their norms)."""
    return tuple(
        (name, tuple(torch.round(m.weight.detach().flatten(1).norm(dim=1), decimals=5).tolist()))
        for name, m in model.named_modules()
        if isinstance(m, nn.Conv2d)
    )


@pytest.mark.slow
def test_criteria_give_distinct_networks():
    """From one checkpoint, at -50 % MACs, no two registered criteria keep the same channels (ResNet-20: the
    coupling of ResNet-56 in a third of the layers, so the test fits in seconds on a busy machine)."""
    kept = {}
    for name in set(CRITERIA) - {"slimming"}:  # bnscale's criterion: Slimming differs by its start checkpoint
        ctx = make_ctx("resnet20", Target("macs_reduction", 0.5), _options(f"prune_{name}") | {"steps": 100})
        prepared = get_method(f"prune_{name}").prepare(ctx)
        kept[name] = _kept_channels(prepared.model)
    same = [(a, b) for a in kept for b in kept if a < b and kept[a] == kept[b]]
    assert not same, f"criteria giving identical networks: {same}"


@pytest.mark.slow
def test_l1_is_pfec_per_filter_norm():
    """prune_l1 ranks each conv's filters by the L1 norm of that filter's own weights (Li et al. 2017)."""
    ctx = make_ctx("resnet20", Target("macs_reduction", 0.5))
    dense = ctx.dense_model()
    prepared = get_method("prune_l1").prepare(ctx)
    conv0, pruned0 = dense.stem[0], prepared.model.stem[0]
    norms = conv0.weight.detach().abs().flatten(1).sum(1)
    keep = pruned0.out_channels
    assert keep < conv0.out_channels  # the first conv was pruned: the kept filters are its largest-L1 ones
    expected = set(torch.topk(norms, keep).indices.tolist())
    kept = {int((conv0.weight - w).abs().flatten(1).sum(1).argmin()) for w in pruned0.weight.detach()}
    assert kept == expected


@pytest.mark.parametrize("method", ["prune_l1", "prune_group"])
def test_params_target(method):
    ctx = make_ctx("resnet20", Target("params_reduction", 0.5))
    dense_params = measure_cost(ctx.dense_model(), 1, SIZE)["params"]
    prepared = get_method(method).prepare(ctx)
    assert abs(1 - measure_cost(prepared.model, 1, SIZE)["params"] / dense_params - 0.5) <= 0.01


def test_unreachable_target_is_a_clear_error():
    ctx = make_ctx("resnet20", Target("macs_reduction", 0.99), options={"max_ratio": 0.5, "steps": 10})
    with pytest.raises(MethodError, match="reached macs_reduction .* for target 0.9900"):
        get_method("prune_l1").prepare(ctx)


@pytest.mark.parametrize("method", ["sparse_global", "sparse_layer", "sparse_random"])
# the fast set covers every method on the MLP; the conv backbones run with the slow tests
@pytest.mark.parametrize(
    "backbone",
    ["mlp", pytest.param("resnet20", marks=pytest.mark.slow), pytest.param("mobilenetv2", marks=pytest.mark.slow)],
)
def test_unstructured_exact_sparsity_and_masks_hold(method, backbone, tmp_path):
    ctx = make_ctx(backbone, Target("sparsity", 0.7))
    prepared = get_method(method).prepare(ctx)
    params = prunable_weights(prepared.model)
    total = sum(m.weight.numel() for m, _ in params)
    zeros = sum(int((m.weight == 0).sum()) for m, _ in params)
    if method == "sparse_global":
        assert zeros == round(0.7 * total)
    else:  # each layer rounds its own share
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
    model = make_permanent(get_method("sparse_layer").prepare(ctx).model)
    cost = measure_cost(model, 1, SIZE)
    # every linear layer at density 0.5 (to rounding): effective MACs are half the dense MACs
    assert cost["macs_effective"] == pytest.approx(0.5 * cost["macs"], rel=1e-3)


@pytest.mark.slow
def test_scratch_budgets_follow_liu_et_al():
    """Scratch-E: the dense epochs; Scratch-B: dense epochs x dense MACs / pruned MACs; both vs the dense model."""
    budgets = BudgetConfig(dense_epochs=4, finetune_epochs=1, scratch_epochs=9)  # scratch_epochs is not theirs
    e = get_method("scratch_e").prepare(make_ctx("resnet20", Target("macs_reduction", 0.5), budgets=budgets))
    b = get_method("scratch_b").prepare(make_ctx("resnet20", Target("macs_reduction", 0.5), budgets=budgets))
    assert e.epochs == 4 and e.reference_epochs == 4
    assert b.epochs == round(4 * b.info["macs_ratio"]) == 8 and b.reference_epochs == 4
    pruned = get_method("prune_l1").prepare(make_ctx("resnet20", Target("macs_reduction", 0.5)))
    assert [p.shape for p in e.model.parameters()] == [p.shape for p in pruned.model.parameters()]  # same network
    assert not all(torch.equal(a, c) for a, c in zip(e.model.parameters(), pruned.model.parameters()))  # new weights


def test_tissuenet_and_uniform_compare_with_an_equal_budget():
    budgets = BudgetConfig(dense_epochs=4, finetune_epochs=1, scratch_epochs=9)
    t = get_method("tissuenet").prepare(make_ctx("resnet20", Target("none"), {"replace": "all"}, budgets=budgets))
    assert t.epochs == 9 and t.reference_epochs == 9
    assert get_method("tissuenet").reference_epochs(BudgetConfig(dense_epochs=4, finetune_epochs=1), None) == 4
    u = get_method("uniform").prepare(make_ctx("resnet20", Target("macs_reduction", 0.5), budgets=budgets))
    assert abs(u.info["achieved"] - 0.5) <= 0.01 and 0.6 < u.info["width_ratio"] < 0.8 and u.reference_epochs == 9


def test_slimming_starts_from_its_sparsity_trained_checkpoint():
    """Network Slimming's start is the dense training with lambda x sum |gamma| (1e-5 for ResNets, 1e-4 for VGG,
    or the suite's value): a shared checkpoint of its own, not a phase after the dense one."""
    from baselines.regularizers import regularizer

    slimming = get_method("prune_slimming")
    start = slimming.start({}, "resnet20")
    assert start == {"name": "sparsity", "regularizer": "bn_l1", "weight": 1e-5}
    assert (
        slimming.start({}, "vgg16_bn")["weight"] == 1e-4
        and slimming.start({"slimming_reg": 3e-5}, "mlp")["weight"] == 3e-5
    )
    model = make_ctx("resnet20", Target("macs_reduction", 0.3)).dense_model()
    gammas = sum(m.weight.abs().sum().item() for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert regularizer(start)(model).item() == pytest.approx(1e-5 * gammas, rel=1e-5)  # lambda x sum |gamma|
    assert get_method("prune_bnscale").start({}, "resnet20") is None  # without the sparsity training: its own name
    with pytest.raises(MethodError, match="does not take option 'slimming_epochs'"):
        slimming.check({"slimming_epochs": 30}, Target("macs_reduction", 0.3))  # main ran a phase after dense


@pytest.mark.parametrize(
    "method,options,message",
    [
        ("prune_l1", {"speed": 2}, "does not take option 'speed'"),
        ("prune_l1", {"global_pruning": "yes"}, "must be bool"),
        ("prune_l1", {"steps": 0}, "steps = 0"),
        ("prune_l1", {"max_ratio": 1.5}, "max_ratio = 1.5"),
        ("prune_l1", {"steps": True}, "must be int"),
        ("sparse_global", {"include_classifier": 1}, "must be bool"),
        ("tissuenet", {"widht": 2}, "widht"),
        ("tissuenet", {"preset": "nope"}, "unknown preset 'nope'"),
    ],
)
def test_bad_options_are_rejected(method, options, message):
    target = (
        Target("sparsity", 0.5)
        if method.startswith("sparse")
        else Target("none" if method == "tissuenet" else "macs_reduction", None if method == "tissuenet" else 0.5)
    )
    with pytest.raises(MethodError) as info:
        get_method(method).check(options, target)
    assert message in str(info.value)


def test_every_method_is_registered_once():
    assert {
        "dense",
        "tissuenet",
        "prune_l1",
        "prune_slimming",
        "prune_bnscale",
        "sparse_global",
        "scratch_b",
        "uniform",
    } <= set(list_methods())
