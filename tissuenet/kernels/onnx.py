"""Exact ONNX forms of a deployed model's stacked layers, one form per site (a ResNet block, or a bare layer).

* ``grouped``: two grouped ``Conv`` nodes, what ``torch.onnx.export`` writes; every ONNX runtime runs it.
* ``fused_op``: one ``tissuenet::FusedStacked`` node (``FusedStackedResidual`` for a block, its residual add and
  ReLU inside; ``FusedStackedProjected`` for a block whose shortcut is a 1x1 convolution, computed inside too)
  on the fused kernel, which ONNX Runtime runs with the custom-op library ``stacked_ort.cpp`` and
  OpenVINO with the extension ``stacked_openvino.cpp`` (``build.runtime_library(runtime)`` builds either). The
  node reads and writes NHWC between ``Transpose`` nodes, which the runtimes cancel between consecutive sites.
  Its weights are the folded convolutions' own, unpacked: one file serves AVX-512 and AVX2 machines.

On OpenVINO, consecutive fused ResNet blocks with identity shortcuts and 2-x-2 units (a stage's) can also run as
one ``tissuenet::FusedStackedChain`` node (:func:`with_chains`): the same kernel, block after block, in one parallel
region. The harness times the whole model with and without chains and keeps the faster.

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
    def forward(ctx, x, w1, b1, w2, b2, residual, projection, stride: int, relu: int):
        units = x.shape[3] // 2
        if projection is not None:  # the block's 1x1 shortcut convolution, at the layer's stride
            residual = x[:, ::stride, ::stride, :] @ projection
        y = F.conv2d(x.permute(0, 3, 1, 2), w1, b1, stride, 1, groups=units)
        y = F.conv2d(F.relu(y), w2, b2, 1, 1, groups=units)
        if residual is not None:
            y = y + residual.permute(0, 3, 1, 2)
        if relu or residual is not None:
            y = F.relu(y)
        return y.permute(0, 2, 3, 1).contiguous()

    @staticmethod
    def symbolic(g, x, w1, b1, w2, b2, residual, projection, stride: int, relu: int):
        def given(v):
            return v is not None and not v.node().mustBeNone()

        inputs, op = (x, w1, b1, w2, b2), "FusedStacked"
        if given(projection):
            inputs, op = (*inputs, projection), "FusedStackedProjected"
        elif given(residual):
            inputs, op = (*inputs, residual), "FusedStackedResidual"
        y = g.op(f"tissuenet::{op}", *inputs, stride_i=stride, relu_i=relu)
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
        grp = layer.groups[0]
        b2, projection = grp.op2.bias.detach(), None
        from tissuenet.kernels.cpu import pointwise_conv

        conv = pointwise_conv(shortcut, layer.stride)
        if conv is not None:  # computed in the node: no Conv between layout changes, no op of the runtime's own
            projection = conv.weight.detach().flatten(1).t().contiguous()
            if conv.bias is not None:  # joins the layer's last bias
                b2 = b2 + conv.bias.detach()
        for name, value in (("w1", grp.op1.weight), ("b1", grp.op1.bias), ("w2", grp.op2.weight), ("b2", b2)):
            self.register_buffer(name, value.detach().clone())  # the file's initializers, as the node reads them
        self.register_buffer("projection", projection)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nhwc = x.permute(0, 2, 3, 1)
        residual = None  # none, the projection (in the node), or:
        if self.projection is None and isinstance(self.shortcut, nn.Identity):  # the same Transpose of x, so
            residual = nhwc  # runtimes cancel the pairs between sites
        elif self.projection is None and self.shortcut is not None:
            residual = self.shortcut(x).permute(0, 2, 3, 1)
        weights = (self.w1, self.b1, self.w2, self.b2)
        y = _FusedNode.apply(nhwc, *weights, residual, self.projection, self.layer.stride, int(self.layer.final_relu))
        return y.permute(0, 3, 1, 2)


class _ChainNode(torch.autograd.Function):
    """Consecutive chainable blocks as one ``tissuenet::FusedStackedChain`` node (OpenVINO's extension)."""

    @staticmethod
    def forward(ctx, x, *weights):
        for w1, b1, w2, b2 in zip(*[iter(weights)] * 4):
            x = _FusedNode.forward(ctx, x, w1, b1, w2, b2, x, None, 1, 1)
        return x

    @staticmethod
    def symbolic(g, x, *weights):
        y = g.op("tissuenet::FusedStackedChain", x, *weights)
        y.setType(x.type())
        return y


def chainable(site: nn.Module) -> bool:
    """Is this fused site a block the chain node computes: 2-x-2 units at stride 1, identity shortcut? (A unit's
    output channels are then its input channels, so each lane block runs through the chain on its own.)"""
    if not isinstance(site, FusedSite) or site.projection is not None or not isinstance(site.shortcut, nn.Identity):
        return False
    spec = site.layer.group_specs[0]
    return site.layer.stride == 1 and spec.c_in == 2 and spec.c_out == 2 and len(site.layer.group_specs) == 1


class FusedChain(nn.Module):
    """Consecutive chainable fused sites (same units) exported as one chain node."""

    def __init__(self, sites: list[FusedSite]) -> None:
        super().__init__()
        self.sites = nn.ModuleList(sites)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = [w for s in self.sites for w in (s.w1, s.b1, s.w2, s.b2)]
        return _ChainNode.apply(x.permute(0, 2, 3, 1), *weights).permute(0, 3, 1, 2)


def with_chains(model: nn.Module) -> nn.Module:
    """``model`` (a :func:`with_forms` copy) with each run of two or more consecutive chainable fused sites of one
    ``nn.Sequential`` (a ResNet stage) as one :class:`FusedChain` (the others become ``nn.Identity``)."""
    for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        runs, run = [], []
        for name, site in seq.named_children():
            if run and chainable(site) and site.layer.units == seq._modules[run[0]].layer.units:
                run.append(name)
            else:
                runs.append(run)
                run = [name] if chainable(site) else []
        for names in (r for r in [*runs, run] if len(r) >= 2):
            seq._modules[names[0]] = FusedChain([seq._modules[n] for n in names])
            for n in names[1:]:
                seq._modules[n] = nn.Identity()
    return model


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
