"""Saving and loading compressed models as registry name + options + state dict.

Pruned models have other channel counts than their registry definition. Instead of pickling
whole modules (which needs ``torch.load(weights_only=False)``), a file stores how to build the
original architecture and the state dict; loading builds it, resizes every conv / linear /
norm layer to the stored shapes, and loads the weights strictly. Files therefore load with
torch's default ``weights_only=True``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from tissuenet.registry import create_model_for_input

FORMAT = "tissuebench.model/1"


def save_model(model: nn.Module, path: Path, arch: dict) -> Path:
    """``arch``: model (registry name), num_classes, in_channels, input_size, options."""
    from benchmarks.train import save_atomic

    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    save_atomic({"format": FORMAT, "arch": arch, "state_dict": state}, Path(path))
    return Path(path)


def load_model(path: Path, device="cpu") -> tuple[nn.Module, dict]:
    saved = torch.load(path, map_location="cpu", weights_only=True)
    if saved.get("format") != FORMAT:
        raise ValueError(f"{path} is not a tissuebench model file (format {saved.get('format')!r})")
    arch = saved["arch"]
    model = create_model_for_input(arch["model"], arch["num_classes"], arch["in_channels"], arch["input_size"],
                                   **arch.get("options", {}))  # fmt: skip
    resize_to(model, saved["state_dict"])
    model.load_state_dict(saved["state_dict"])
    return model.to(device).eval(), arch


def resize_to(model: nn.Module, state: dict) -> None:
    """Give every layer the channel counts its stored weights have (undoing nothing else)."""
    for name, module in model.named_modules():
        key = f"{name}.weight" if name else "weight"
        if key not in state:
            continue
        shape = state[key].shape
        if isinstance(module, nn.modules.conv._ConvNd):
            depthwise = module.groups > 1 and module.groups == module.in_channels == module.out_channels
            module.out_channels = shape[0]
            module.groups = shape[0] if depthwise else module.groups
            module.in_channels = shape[1] * module.groups
        elif isinstance(module, nn.Linear):
            module.out_features, module.in_features = shape
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.num_features = shape[0]
        elif isinstance(module, nn.LayerNorm):
            module.normalized_shape = tuple(shape)
        else:
            continue
        for pname, tensor in list(module.named_parameters(recurse=False)):
            stored = state[f"{name}.{pname}" if name else pname]
            setattr(module, pname, nn.Parameter(torch.empty_like(stored), requires_grad=tensor.requires_grad))
        for bname, _ in list(module.named_buffers(recurse=False)):
            stored = state.get(f"{name}.{bname}" if name else bname)
            if stored is not None:
                module.register_buffer(bname, torch.empty_like(stored))
