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
            y = g.op("tissuenet::FusedStacked", x, w1, b1, w2, b2, stride_i=stride, relu_i=relu)
        else:
            y = g.op("tissuenet::FusedStackedResidual", x, w1, b1, w2, b2, residual, stride_i=stride, relu_i=relu)
        # the output's type and shape, which the exporter cannot infer for a custom node (it warned once per node)
        n, h, w, _ = x.type().varyingSizes()
        spatial = [None if d is None else (d - 1) // stride + 1 for d in (h, w)]
        y.setType(x.type().with_sizes([n, *spatial, w2.type().varyingSizes()[0]]))
        return y


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
        residual, bias = self._residual(x, nhwc)
        if bias is not None:  # the shortcut's bias joins the layer's last bias (one add fewer; constant-folded)
            weights = (*weights[:3], weights[3] + bias)
        y = _FusedNode.apply(nhwc, *weights, residual, self.layer.stride, int(self.layer.final_relu))
        return y.permute(0, 3, 1, 2)

    def _residual(self, x: torch.Tensor, nhwc: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The shortcut in NHWC, and a bias to add to the layer's output. Identity: the same Transpose of x
        (runtimes then cancel the pairs between sites); a 1x1 conv: a strided Slice and a MatMul on NHWC, not a
        Conv between layout changes (ONNX Runtime reordered to and from its blocked layout around each Conv)."""
        if self.shortcut is None or isinstance(self.shortcut, nn.Identity):
            return (None if self.shortcut is None else nhwc), None
        conv = _pointwise_conv(self.shortcut)
        if conv is None:
            return self.shortcut(x).permute(0, 2, 3, 1), None
        return _StridedRows.apply(nhwc, conv.stride[0]) @ conv.weight.flatten(1).t(), conv.bias


class _StridedRows(torch.autograd.Function):
    """``x[:, ::s, ::s, :]`` exported as one ``Slice`` node (indexing exports one per axis)."""

    @staticmethod
    def forward(ctx, x, s: int):
        return x[:, ::s, ::s, :]

    @staticmethod
    def symbolic(g, x, s: int):
        def const(values):
            return g.op("Constant", value_t=torch.tensor(values, dtype=torch.int64))

        y = g.op("Slice", x, const([0, 0]), const([2**62, 2**62]), const([1, 2]), const([s, s]))
        n, h, w, c = x.type().varyingSizes()
        y.setType(x.type().with_sizes([n, *(None if d is None else (d - 1) // s + 1 for d in (h, w)), c]))
        return y


class BetweenFusedSites(nn.Module):
    """A site as it runs between fused sites: NHWC in and out, so the Transposes around its node meet their
    inverses, which the runtimes cancel. A form is timed this way to be timed as it runs in the model (exported
    alone in NCHW, one fused site paid two layout changes that the model does not: OpenVINO then chose the grouped
    form at sites where the fused node was faster in the model)."""

    def __init__(self, site: nn.Module) -> None:
        super().__init__()
        self.site = site

    def forward(self, nhwc: torch.Tensor) -> torch.Tensor:
        return self.site(nhwc.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


def _pointwise_conv(module: nn.Module) -> nn.Conv2d | None:
    """The module's only computation if it is one 1x1 convolution without padding or groups (a folded shortcut)."""
    layers = [m for m in (module if isinstance(module, nn.Sequential) else [module]) if not isinstance(m, nn.Identity)]
    conv = layers[0] if len(layers) == 1 else None
    if not isinstance(conv, nn.Conv2d) or conv.kernel_size != (1, 1) or conv.padding != (0, 0) or conv.groups != 1:
        return None
    return conv if conv.stride[0] == conv.stride[1] and conv.dilation == (1, 1) else None


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
