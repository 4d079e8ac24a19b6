"""Every registered model, dense and TissueNet, builds, runs forward and backward, and records options."""

import pytest
import torch

from tissuenet import ModelOptionError, UnknownModelError, count_params, create_model, get_entry, list_models
from tissuenet.stacked import StackedLayer


# ImageNet-style ResNets also run at 32x32 (the paper's "ResNet-20" does); keeps CI fast.
def _size(name):
    return min(get_entry(name).input_size, 32)


# The fast set runs every model forward and backward on 1-channel input; RGB input runs with the slow
# tests (the ImageNet-size models take most of a second each).
@pytest.mark.parametrize("in_channels", [1, pytest.param(3, marks=pytest.mark.slow)])
@pytest.mark.parametrize("name", list_models())
def test_forward_backward(name, in_channels):
    sized = {"input_size": _size(name)} if "input_size" in get_entry(name).options() else {}
    model = create_model(name, num_classes=7, in_channels=in_channels, **sized)
    x = torch.randn(2, in_channels, _size(name), _size(name))
    out = model(x)
    assert out.shape == (2, 7)
    out.square().mean().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


def _imagenet_size_slow(names):
    """ImageNet-size models (three builds each here) run with the slow tests; the CIFAR ones stay fast."""
    return [pytest.param(n, marks=pytest.mark.slow) if get_entry(n).input_size >= 224 else n for n in names]


@pytest.mark.parametrize("name", _imagenet_size_slow(list_models(tissue=True)))
def test_tissue_variants_record_options_and_rebuild_exactly(name):
    model = create_model(name, seed=3)
    opts = model.tissue_options
    assert opts["seed"] == 3 and opts["plan"], "a TissueNet variant must record the units it drew"
    if get_entry(name).family == "mobilenetv2":  # units live inside inverted residuals: grouped pointwise convs
        n_stacked = sum(getattr(m, "groups", 1) > 1 and m.kernel_size == (1, 1) for m in model.modules()) // 2
    else:
        n_stacked = sum(isinstance(m, StackedLayer) for m in model.modules())
    assert n_stacked == len(opts["plan"]) > 0
    rebuilt = create_model(name, seed=99, plan=opts["plan"])
    assert rebuilt.tissue_options["plan"] == opts["plan"]
    assert count_params(rebuilt) == count_params(model)
    dense = create_model(name.removeprefix("tissue_"))
    assert dense.tissue_options is None
    assert count_params(model) < count_params(dense)


def test_hybrid_draws_are_seeded():
    a = create_model("tissue_resnet20", units="2-4-2,2-8-2,2-2-2", replace="all", seed=1)
    b = create_model("tissue_resnet20", units="2-4-2,2-8-2,2-2-2", replace="all", seed=1)
    c = create_model("tissue_resnet20", units="2-4-2,2-8-2,2-2-2", replace="all", seed=2)
    assert a.tissue_options["plan"] == b.tissue_options["plan"] != c.tissue_options["plan"]
    widening = a.tissue_options["plan"]["layer2.0"]
    assert {u.split("-")[2] for u in widening} == {"4"}  # 2-x-2 units widened to 2-x-4
    assert len(set(a.tissue_options["plan"]["layer1.0"])) > 1


@pytest.mark.parametrize(
    "replace,stages,keep_first",
    [
        ("ours", [2], False),
        ("ours_r", [2], True),
        ("all", [1, 2, 3], False),
        ("2-3", [2, 3], False),
        ("1,3", [1, 3], False),
    ],
)
def test_replacement_strategies(replace, stages, keep_first):
    opts = create_model("tissue_resnet20", replace=replace).tissue_options
    assert opts["stages"] == stages and opts["keep_first"] == keep_first
    layers = {k.split(".")[0] for k in opts["plan"]}
    assert layers == {f"layer{s}" for s in stages}
    assert ("layer2.0" in opts["plan"]) == (2 in stages and not keep_first)


def test_errors_are_clear():
    with pytest.raises(UnknownModelError, match="unknown model 'resnet57'.*resnet5"):
        create_model("resnet57")
    with pytest.raises(ModelOptionError, match="does not take option.*bogus.*it takes"):
        create_model("resnet20", bogus=1)
    with pytest.raises(ModelOptionError, match="stage"):
        create_model("tissue_resnet20", replace="5")
    with pytest.raises(ModelOptionError, match="unit spec"):
        create_model("tissue_resnet20", units="2-4")
    with pytest.raises(ModelOptionError, match="cannot fill"):
        create_model("tissue_resnet20", units="3-4-3")  # 16 channels are not a multiple of 3


@pytest.mark.parametrize("name", ["torchvision:resnet18", "timm:resnet18", "torchvision:mobilenet_v3_small"])
def test_external_backbones_by_prefix(name):
    model = create_model(name, num_classes=5, in_channels=1)
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 5)
    assert model.tissue_options is None


def test_unknown_external_model():
    with pytest.raises(UnknownModelError, match="torchvision:nonet"):
        create_model("torchvision:nonet")
