"""Backbones from other libraries by prefix: ``torchvision:NAME`` and ``timm:NAME`` (lazy imports).

Never downloads weights: models are built randomly initialised, as every baseline here trains
from scratch or from the suite's own dense checkpoint. An unknown name is a ``LookupError``, a bad option a
``TypeError``: the registry words them as its own errors.
"""

from __future__ import annotations

from torch import nn


def create_external(library: str, name: str, num_classes: int, in_channels: int, **options) -> nn.Module:
    if library == "timm":
        import timm

        if name not in timm.list_models():
            raise LookupError(f"unknown model 'timm:{name}' (see timm.list_models())")
        model = timm.create_model(name, pretrained=False, num_classes=num_classes, in_chans=in_channels, **options)
    else:
        import torchvision

        if name not in torchvision.models.list_models():
            raise LookupError(f"unknown model 'torchvision:{name}' (see torchvision.models.list_models())")
        model = torchvision.models.get_model(name, weights=None, num_classes=num_classes, **options)
        if in_channels != 3:
            _replace_first_conv(model, in_channels)
    model.model_name = f"{library}:{name}"
    model.tissue_options = None
    return model


def _replace_first_conv(model: nn.Module, in_channels: int) -> None:
    """torchvision models take RGB only: swap the first 3-channel conv for one of ``in_channels``."""
    for parent in model.modules():
        for child_name, child in parent.named_children():
            if isinstance(child, nn.Conv2d) and child.in_channels == 3:
                new = nn.Conv2d(
                    in_channels,
                    child.out_channels,
                    child.kernel_size,
                    child.stride,
                    child.padding,
                    child.dilation,
                    child.groups,
                    child.bias is not None,
                )
                setattr(parent, child_name, new)
                return
    raise TypeError(f"{type(model).__name__}: no 3-channel input conv to adapt to {in_channels} channels")
