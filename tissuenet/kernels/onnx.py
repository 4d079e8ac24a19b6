"""Exact ONNX forms of a deployed model's stacked layers, one form per site (a ResNet block, or a bare layer).

* ``grouped``: two grouped ``Conv`` nodes, what ``torch.onnx.export`` writes; every ONNX runtime runs it.
* ``fused_op``: one ``tissuenet::FusedStacked`` node (``FusedStackedResidual`` for a block, its residual add and
  ReLU inside) on the fused kernel, which ONNX Runtime runs with the custom-op library ``stacked_ort.cpp`` and
  OpenVINO with the extension ``stacked_openvino.cpp`` (``cpu.runtime_library(runtime)`` builds either). The
  node reads and writes NHWC between ``Transpose`` nodes, which the runtimes cancel between consecutive sites.
  Its weights are the folded convolutions' own, unpacked: one file serves AVX-512 and AVX2 machines.

The harness times both forms per site shape on each runtime and exports the model with the faster one at each
site (``benchmarks/measure/runtimes.py``); :func:`with_forms` builds that model. Both forms compute the function
of the BN-folded model (tested against the per-unit reference on both runtimes).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from tissuenet.stacked import StackedLayer

FORMS = ("grouped", "fused_op")


class _FusedNode(torch.autograd.Function):
    """The custom node in an export; in PyTorch, the same function from the folded weights (for the trace)."""

    @staticmethod
    def forward(ctx, x, w1, b1, w2, b2, residual, stride: int, relu: int):
        units = x.shape[3] // 2
        y = F.conv2d(x.permute(0, 3, 1, 2), w1, b1, stride, 1, groups=units)
        y = F.conv2d(F.relu(y), w2, b2, 1, 1, groups=units)
        if residual is not None:
            y = y + residual.permute(0, 3, 1, 2)
        if relu or residual is not None:
            y = F.relu(y)
        return y.permute(0, 2, 3, 1).contiguous()

    @staticmethod
    def symbolic(g, x, w1, b1, w2, b2, residual, stride: int, relu: int):
        if residual is None or residual.node().mustBeNone():
            return g.op("tissuenet::FusedStacked", x, w1, b1, w2, b2, stride_i=stride, relu_i=relu)
        return g.op("tissuenet::FusedStackedResidual", x, w1, b1, w2, b2, residual, stride_i=stride, relu_i=relu)


class FusedSite(nn.Module):
    """A site exported as one fused node: a bare stacked layer, or a block (``shortcut`` given) with its
    residual add and ReLU."""

    def __init__(self, layer: StackedLayer, shortcut: nn.Module | None = None) -> None:
        super().__init__()
        self.layer, self.shortcut = layer, shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grp = self.layer.groups[0]
        weights = (grp.op1.weight, grp.op1.bias, grp.op2.weight, grp.op2.bias)
        nhwc = x.permute(0, 2, 3, 1)
        residual = None if self.shortcut is None else self.shortcut(x).permute(0, 2, 3, 1)
        if isinstance(self.shortcut, nn.Identity):  # one Transpose of x, not two: runtimes then cancel the pairs
            residual = nhwc
        y = _FusedNode.apply(nhwc, *weights, residual, self.layer.stride, int(self.layer.final_relu))
        return y.permute(0, 3, 1, 2)


def sites(model: nn.Module, blocks: bool = True) -> dict[str, tuple[nn.Module, StackedLayer, bool]]:
    """{qualified name: (site module, its stacked layer, is a residual block)} of a BN-folded model.

    ``blocks=False``: bare layers only (a ``torch.fx``-folded model calls its blocks' parts by name, so only a
    stacked layer itself can be swapped there)."""
    from tissuenet.models.resnet_blocks import BasicBlock

    out: dict[str, tuple[nn.Module, StackedLayer, bool]] = {}
    inside = set()
    for name, m in model.named_modules():
        if blocks and isinstance(m, BasicBlock) and isinstance(m.body, StackedLayer):
            out[name] = (m, m.body, True)
            inside.add(id(m.body))
    for name, m in model.named_modules():
        if isinstance(m, StackedLayer) and m.kind == "conv" and id(m) not in inside:
            out[name] = (m, m, False)
    return out


def fused_op_supports(layer: StackedLayer) -> bool:
    """Can the fused node compute this (BN-folded) layer? The fused kernel's shapes, at any width."""
    from tissuenet.kernels import cpu

    return cpu.supported(layer)


def site_form(site: nn.Module, layer: StackedLayer, block: bool, form: str) -> nn.Module:
    """The site as a module in ``form`` (``grouped``: the site itself)."""
    return FusedSite(layer, site.shortcut if block else None) if form == "fused_op" else site


def with_forms(model: nn.Module, chosen: dict[str, str]) -> nn.Module:
    """A copy of the BN-folded ``model`` with every site in its chosen form ({site name: form}; default grouped)."""
    model = copy.deepcopy(model)
    for name, (site, layer, block) in sites(model).items():
        replaced = site_form(site, layer, block, chosen.get(name, "grouped"))
        if not name:
            return replaced
        parent_name, _, attr = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, attr, replaced)
    return model
