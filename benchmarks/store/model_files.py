"""Model files: registry name + options + state dict (never a pickled module). Loading builds the architecture,
resizes pruned layers to the stored shapes (the one piece of model surgery) and loads the weights strictly."""

from __future__ import annotations

import io
from pathlib import Path

import torch
from torch import nn

from benchmarks.store.files import DamagedFileError, first_line, load_torch
from tissuenet.registry import create_model_for_input

MODEL_FORMAT = "tissuebench.model/1"


# -- model files -----------------------------------------------------------------------------
def model_bytes(model: nn.Module, arch: dict) -> bytes:
    """The bytes of a model file (workers send these to the driver, which writes them)."""
    buffer = io.BytesIO()
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({"format": MODEL_FORMAT, "arch": arch, "state_dict": state}, buffer)
    return buffer.getvalue()


def load_model(path: Path, device="cpu") -> tuple[nn.Module, dict]:
    saved = load_torch(path)
    if saved.get("format") != MODEL_FORMAT:
        raise DamagedFileError(path, f"not a tissuebench model file (format {saved.get('format')!r})")
    arch = saved["arch"]
    try:
        model = create_model_for_input(
            arch["model"], arch["num_classes"], arch["in_channels"], arch["input_size"], **arch.get("options", {})
        )
        resize_to(model, saved["state_dict"])
        model.load_state_dict(saved["state_dict"])
    except (KeyError, RuntimeError, TypeError, ValueError) as exc:
        raise DamagedFileError(path, f"does not match its architecture ({first_line(exc)})") from exc
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
