"""Helpers shared by the backbone files: layer shorthands, init, and dense/TissueNet registration."""

from __future__ import annotations

import inspect

from torch import nn

from tissuenet.algorithm1 import TissueBuilder, attach
from tissuenet.registry import register_model


def conv_bn(c_in: int, c_out: int, k: int = 3, stride: int = 1, groups: int = 1, act: type | None = nn.ReLU):
    layers = [nn.Conv2d(c_in, c_out, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(c_out)]
    if act is not None:
        layers.append(act(inplace=True))
    return nn.Sequential(*layers)


def init_weights(model: nn.Module) -> nn.Module:
    """He init for convs, unit BN; linears keep PyTorch's default (a tiny normal init starves
    the BN-free MLP / LeNet stacks)."""
    for m in model.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return model


def _kw(name, default):
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default)


def register_pair(
    name,
    build,
    *,
    family,
    num_stages,
    input_size=32,
    in_channels=3,
    units="2-4-2",
    extra=None,
    tags=(),
    tissue_extra=None,
):
    """Register ``name`` (dense) and ``tissue_<name>`` (TissueNet) built by one function.

    ``build(num_classes, in_channels, builder, **extra)`` gets ``builder=None`` for the dense
    model and a :class:`TissueBuilder` otherwise. ``extra`` maps further options (of both forms)
    to defaults; ``tissue_extra`` options of the TissueNet form only (e.g. VGG's ``layout``).
    """
    extra = dict(extra or {})
    tissue_extra = dict(tissue_extra or {})

    def dense(num_classes=10, in_channels=3, **kw):
        return attach(init_weights(build(num_classes, in_channels, None, **kw)), None)

    def tissue(
        num_classes=10,
        in_channels=3,
        *,
        units=units,
        replace="ours",
        seed=0,
        plan=None,
        keep_first=None,
        convs=None,
        **kw,
    ):
        builder = TissueBuilder(units, replace, seed, plan, keep_first, num_stages, convs)
        for key in tissue_extra:  # recorded with the other TissueNet options
            builder.extra[key] = kw.get(key, tissue_extra[key])
        model = build(num_classes, in_channels, builder, **kw)
        builder.check_convs_used()
        return attach(init_weights(model), builder)

    base = [
        inspect.Parameter("num_classes", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=10),
        inspect.Parameter("in_channels", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=in_channels),
    ]
    extras = [_kw(k, v) for k, v in extra.items()]
    tissue_extras = [_kw(k, v) for k, v in tissue_extra.items()]
    tissue_opts = [
        _kw("units", units),
        _kw("replace", "ours"),
        _kw("seed", 0),
        _kw("plan", None),
        _kw("keep_first", None),
        _kw("convs", None),
    ]
    dense.__signature__ = inspect.Signature(base + extras)
    tissue.__signature__ = inspect.Signature(base + tissue_opts + tissue_extras + extras)
    dense.__doc__ = f"Dense {name} ({family})."
    tissue.__doc__ = f"TissueNet {name}: stacked basic units in the replaced stages ({family})."
    common = {"family": family, "input_size": input_size, "in_channels": in_channels, "tags": tags}
    register_model(name=name, **common)(dense)
    register_model(name=f"tissue_{name}", dense_name=name, **common)(tissue)
