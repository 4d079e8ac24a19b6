"""The fused CPU kernel of a stacked layer (``stacked_cpu.cpp``): weight packing, call.

The C++ source is compiled on first use for the best instruction set this CPU has (AVX-512, else AVX2 + FMA;
``build.py``); where it cannot be, :func:`extension` returns None and the caller keeps the grouped path.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import torch

from tissuenet.kernels import build

SOURCE = Path(__file__).with_name("stacked_cpu.cpp")  # binds the kernel (build.CORE) to PyTorch
LANES = {"avx512": 16, "avx2": 8}


@functools.cache
def extension(isa: str | None = None):
    """The compiled kernel module for ``isa`` (default: the best this CPU has), or None when unavailable."""
    return build.torch_extension("stacked", SOURCE, build.CORE, isa, build.FUSED)


def supported(layer) -> bool:
    """Does the fused kernel compute this (BN-folded, eval) stacked layer?"""
    from tissuenet.stacked import StackedLayer

    if not isinstance(layer, StackedLayer) or layer.kind != "conv" or layer.hybrid or layer.kernel_size != 3:
        return False
    spec = layer.group_specs[0]
    grp = layer.groups[0]
    folded = isinstance(grp.bn1, torch.nn.Identity) and isinstance(grp.bn2, torch.nn.Identity)
    return (
        folded
        and spec.c_in == 2
        and spec.c_h % 2 == 0
        and spec.c_h // 2 in (1, 2, 3, 4, 6, 8)
        and spec.c_out in (2, 4)
        and layer.stride in (1, 2)
        and layer.padding == 1
    )


def pack(layer, lanes: int, width: int, added_bias: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
    """Per-lane weights of a folded stacked layer (the layout ``stacked_cpu.cpp`` documents); ``added_bias``: a
    bias added to its output (a projection shortcut's, computed in the kernel)."""
    spec, grp = layer.group_specs[0], layer.groups[0]
    m, k, r = len(layer.units), spec.c_h // 2, spec.c_out // 2
    with torch.no_grad():
        w1 = grp.op1.weight.detach().float().reshape(m, k, 2, 2, 9)  # [unit][part][i][input i'][tap]
        b1 = grp.op1.bias.detach().float().reshape(m, k, 2)
        w2 = grp.op2.weight.detach().float().reshape(m, r, 2, k, 2, 9)  # [unit][out part][o][part][j][tap]
        b2 = grp.op2.bias.detach().float() + (0 if added_bias is None else added_bias.detach().float())
        b2 = b2.reshape(m, r, 2)
        idx = torch.arange(2)
        a1, s1 = w1[:, :, idx, idx], w1[:, :, idx, 1 - idx]  # (m, k, 2, 9): own-lane and swapped-lane weights
        a2, s2 = w2[:, :, idx, :, idx], w2[:, :, idx, :, 1 - idx]  # (2, m, r, k, 9): o first after advanced indexing
        packed1 = torch.stack([a1, s1], dim=3).permute(1, 4, 3, 0, 2).reshape(k, 9, 2, 2 * m)
        packed2 = torch.stack([a2, s2], dim=0).permute(3, 4, 5, 0, 2, 1).reshape(r, k, 9, 2, 2 * m)
        bias1 = b1.permute(1, 0, 2).reshape(k, 2 * m)
        bias2 = b2.permute(1, 0, 2).reshape(r, 2 * m)
    return tuple(_blocked(t, lanes, width) for t in (packed1, bias1, packed2, bias2))


def _blocked(t: torch.Tensor, lanes: int, width: int) -> torch.Tensor:
    """[..., lanes] -> [lane block][...][width]: each vector block's weights contiguous (the kernel's layout)."""
    t = torch.nn.functional.pad(t, (0, lanes - t.shape[-1]))
    blocks = lanes // width
    t = t.reshape(*t.shape[:-1], blocks, width)
    return t.movedim(-2, 0).contiguous()


class FusedStacked:
    """Callable: ``(x, residual=None) -> y``, the layer's output (plus the residual, then ReLU, if given).

    ``shortcut``: a block's shortcut; where it is one 1x1 convolution at the layer's stride (:func:`pointwise_conv`)
    the kernel computes it (``projects``: call with x alone), no convolution of PyTorch's own between kernels."""

    def __init__(self, layer, isa: str | None = None, shortcut: torch.nn.Module | None = None) -> None:
        self.ext = extension(isa)
        if self.ext is None or not supported(layer):
            raise ValueError("no fused CPU kernel for this layer")
        spec = layer.group_specs[0]
        self.c_h, self.c_out, self.stride, self.final_relu = spec.c_h, spec.c_out, layer.stride, layer.final_relu
        width = LANES[self.ext.isa()]
        conv = pointwise_conv(shortcut, layer.stride)
        self.projection = None if conv is None else conv.weight.detach().float().flatten(1).t().contiguous()
        self.projects = conv is not None
        added = None if conv is None else conv.bias
        self.weights = pack(layer, math.ceil(layer.in_channels / width) * width, width, added)

    def __call__(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)
        if residual is not None:
            residual = residual.contiguous(memory_format=torch.channels_last)
        relu = self.final_relu or residual is not None
        return self.ext.forward(x, *self.weights, self.c_h, self.c_out, self.stride, residual, relu, self.projection)


def pointwise_conv(module: torch.nn.Module | None, stride: int) -> torch.nn.Conv2d | None:
    """The module's only computation if it is one 1x1 convolution at ``stride``, without padding or groups (a
    folded projection shortcut), else None."""
    from torch import nn

    if module is None:
        return None
    layers = [m for m in (module if isinstance(module, nn.Sequential) else [module]) if not isinstance(m, nn.Identity)]
    conv = layers[0] if len(layers) == 1 else None
    if not isinstance(conv, nn.Conv2d) or conv.kernel_size != (1, 1) or conv.padding != (0, 0) or conv.groups != 1:
        return None
    return conv if conv.stride == (stride, stride) and conv.dilation == (1, 1) else None


class FusedChain(torch.nn.Module):
    """A run of identity-shortcut residual blocks on the fused kernel, one extension call for all of them."""

    def __init__(self, layers: list) -> None:
        super().__init__()
        first = FusedStacked(layers[0])
        self.ext, self.c_h = first.ext, first.c_h
        self.weights = [w for layer in layers for w in FusedStacked(layer).weights]
        self.blocks = len(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ext.chain(x.contiguous(memory_format=torch.channels_last), self.weights, self.c_h)

    def extra_repr(self) -> str:
        return f"blocks={self.blocks}, c_h={self.c_h}"
