"""The training form of a stacked layer's convolutions on the CPU: small-group 3x3 convolutions on a C++ kernel
(``grouped_train.cpp``), forward and both gradients.

oneDNN runs a grouped convolution whose groups have 2-4 channels far below its dense rate, in the forward and in
both gradients: a TissueNet with every stage replaced (6x fewer MACs) trained slower per image than its dense
backbone. The kernel computes the same function and gradients (tested against ``F.conv2d`` within float32
tolerance). :func:`conv` runs it where it applies (:func:`applies`: CPU, float32, channels_last input, 3x3,
padding 1, stride 1 (at stride 2 oneDNN was as fast), no bias, no hook on the module, 1/2/4 input and 1/2/4/8
output channels per group, multiples of 8 channels, not traced or counted); elsewhere the module runs as before.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch
from torch import nn
from torch.utils._python_dispatch import is_in_torch_dispatch_mode

from tissuenet.kernels import build

SOURCE = Path(__file__).with_name("grouped_train.cpp")
WHAT = "the CPU training kernel for small-group convolutions"
ENABLED = True  # False: PyTorch's convolutions everywhere (benchmarks time the two forms against each other)


@functools.cache
def extension(isa: str | None = None):
    """The compiled kernel module, or None where it cannot be built (or ``TISSUEBENCH_KERNELS=grouped``)."""
    return build.torch_extension("grouped_train", SOURCE, None, isa, WHAT)


def applies(op: nn.Module, x: torch.Tensor) -> bool:
    """Whether :func:`conv` computes ``op(x)`` on the kernel."""
    if type(x) is not torch.Tensor or torch.jit.is_tracing() or torch.compiler.is_compiling():
        return False  # fx proxies, ONNX export, torch.compile: the module's own convolution
    if not ENABLED or is_in_torch_dispatch_mode():
        return False  # the MAC count (FlopCounterMode) and fake tensors see aten's convolution, not a kernel
    if not isinstance(op, nn.Conv2d) or op.bias is not None or op._forward_pre_hooks or op.groups == 1:
        return False
    if (op.kernel_size, op.padding, op.dilation, op.padding_mode) != ((3, 3), (1, 1), (1, 1), "zeros"):
        return False
    c, cout, groups = op.in_channels, op.out_channels, op.groups
    return (
        op.stride == (1, 1)
        and c // groups in (1, 2, 4)
        and cout // groups in (1, 2, 4, 8)
        and c % 8 == 0
        and cout % 8 == 0
        and x.device.type == "cpu"
        and x.dtype == op.weight.dtype == torch.float32
        and not torch.is_autocast_enabled("cpu")
        and x.dim() == 4
        and x.is_contiguous(memory_format=torch.channels_last)
        and extension() is not None
    )


def conv(op: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """``op(x)``, on the kernel where it applies."""
    return _SmallGroupConv.apply(x, op.weight, op.groups) if applies(op, x) else op(x)


class _SmallGroupConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, groups: int):
        ctx.save_for_backward(x, weight)
        ctx.groups = groups
        return extension().forward(x, _per_tap(weight), weight.shape[0], groups)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dy):
        x, weight = ctx.saved_tensors
        dy = dy.contiguous(memory_format=torch.channels_last)
        flipped = _flipped_per_tap(weight, ctx.groups)
        dx, dw = extension().backward(x, flipped, dy, ctx.groups, ctx.needs_input_grad[0])
        dw = dw.view(3, 3, weight.shape[1], weight.shape[0]).permute(3, 2, 0, 1)
        return (dx if ctx.needs_input_grad[0] else None), dw, None


def _per_tap(weight: torch.Tensor) -> torch.Tensor:
    """(C_out, c_in', 3, 3) -> [tap][i][output channel]: the forward's layout."""
    return weight.detach().permute(2, 3, 1, 0).reshape(9, weight.shape[1], weight.shape[0]).contiguous()


def _flipped_per_tap(weight: torch.Tensor, groups: int) -> torch.Tensor:
    """[8 - tap][o][input channel c] = weight[(c // c_in') * c_out' + o][c % c_in'][tap]: the input gradient's."""
    cout, cig = weight.shape[:2]
    w = weight.detach().flip(2, 3).reshape(groups, cout // groups, cig, 9)  # [group][o][i][flipped tap]
    return w.permute(3, 1, 0, 2).reshape(9, cout // groups, groups * cig).contiguous()
