"""The deployment form of a model: eval mode, BN folded into the preceding conv, fast stacked layers.

Every method is timed in this same form (docs/method.md, "Latency"), so a speed-up compares
networks, not training-time bookkeeping:

* each :class:`~tissuenet.stacked.StackedLayer` folds its BNs into its grouped convs itself
  (:meth:`StackedLayer.fold_bn`), and may then run on a fast kernel (``tissuenet.kernels``);
* (conv or linear, BN) pairs in ``nn.Sequential`` containers are folded in place, so the module
  tree stays and a kernel can replace a whole residual block;
* BNs left after that (other libraries' models) are folded through ``torch.fx`` when the model
  traces; a model that does not keeps them, and the report says so.

The folded model computes the same function as the unfolded one in eval mode (tested).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import fx, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

from tissuenet.stacked import StackedLayer

_CONV_BN = ((nn.Conv1d, nn.BatchNorm1d), (nn.Conv2d, nn.BatchNorm2d))
_BN = nn.modules.batchnorm._BatchNorm


@dataclass
class DeployReport:
    bn_folded: int = 0  # BN layers folded into a conv or linear layer
    bn_left: int = 0  # BN layers kept (not right after a conv or linear layer)
    traced: bool = False  # folded through torch.fx (models whose BNs are not in Sequentials)
    kernels: dict = field(default_factory=dict)  # stacked-layer shape -> chosen implementation and timings

    def label(self) -> str:
        chosen = sorted({k["chosen"] for k in self.kernels.values()}) or ["none"]
        return f"BN folded ({self.bn_folded}, {self.bn_left} kept), stacked-layer kernels: {', '.join(chosen)}"


class _Tracer(fx.Tracer):
    """Stacked layers stay whole in a trace (they fold their own BNs and may run on a kernel)."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, StackedLayer) or super().is_leaf_module(m, qualname)


def _fuse(first: nn.Module, bn: nn.Module) -> nn.Module | None:
    if not isinstance(bn, _BN) or not bn.track_running_stats:
        return None
    if any(isinstance(first, c) and isinstance(bn, b) for c, b in _CONV_BN):
        return fuse_conv_bn_eval(first.eval(), bn.eval())
    if isinstance(first, nn.Linear) and isinstance(bn, nn.BatchNorm1d):
        return fuse_linear_bn_eval(first.eval(), bn.eval())
    return None


def _fold_structure(model: nn.Module, report: DeployReport) -> None:
    """Fold BNs where the structure shows them: stacked layers, and (conv|linear, BN) pairs in Sequentials."""
    for module in model.modules():
        if isinstance(module, StackedLayer):
            report.bn_folded += module.fold_bn()
        elif isinstance(module, nn.Sequential):
            names = list(module._modules)
            for a, b in zip(names, names[1:]):
                fused = _fuse(module._modules[a], module._modules[b])
                if fused is not None:
                    module._modules[a], module._modules[b] = fused, nn.Identity()
                    report.bn_folded += 1


def fold_bn(model: nn.Module) -> tuple[nn.Module, DeployReport]:
    """An eval-mode copy of ``model`` with every foldable BN folded into the layer before it.

    Structure first (the module tree is kept, so kernels can replace its blocks); BNs left after
    that (e.g. torchvision's ``conv1``/``bn1`` attributes) are folded through a ``torch.fx`` trace when
    the model traces, with stacked layers as leaves.
    """
    model = copy.deepcopy(model).eval()
    report = DeployReport()
    _fold_structure(model, report)
    left = [m for m in model.modules() if isinstance(m, _BN)]
    if not left:
        return model, report
    try:
        graph = _Tracer().trace(model)
    except Exception:  # noqa: BLE001 - dynamic control flow: the remaining BNs stay
        report.bn_left = len(left)
        return model, report
    traced = fx.GraphModule(model, graph)
    report.traced = True
    modules = dict(traced.named_modules())
    for node in list(traced.graph.nodes):
        if node.op != "call_module" or not isinstance(modules.get(node.target), _BN):
            continue
        parent = node.args[0]
        first = modules.get(parent.target) if isinstance(parent, fx.Node) and parent.op == "call_module" else None
        fused = _fuse(first, modules[node.target]) if first is not None and len(parent.users) == 1 else None
        if fused is None:
            report.bn_left += 1
            continue
        _set_module(traced, parent.target, fused)
        node.replace_all_uses_with(parent)
        traced.graph.erase_node(node)
        report.bn_folded += 1
    traced.graph.lint()
    traced.delete_all_unused_submodules()
    traced.recompile()
    traced.tissue_options = getattr(model, "tissue_options", None)
    return traced, report


def _set_module(root: nn.Module, qualname: str, module: nn.Module) -> None:
    *parents, name = qualname.split(".")
    owner = root
    for p in parents:
        owner = getattr(owner, p)
    setattr(owner, name, module)


@torch.no_grad()
def deploy(model: nn.Module, example: torch.Tensor, *, channels_last: bool = True, kernels: str = "auto"):
    """The deployment form: BN folded, stacked layers on the fastest kernel, NHWC. Returns (model, report).

    ``kernels``: ``"auto"`` (measure the candidates per layer shape, cached), ``"grouped"`` (the
    PyTorch grouped-conv path) or a kernel name from ``tissuenet.kernels``.
    """
    from tissuenet.kernels import accelerate

    folded, report = fold_bn(model)
    fmt = torch.channels_last if channels_last and example.dim() == 4 else torch.contiguous_format
    folded = folded.to(memory_format=fmt)
    if kernels != "grouped":
        report.kernels = accelerate(folded, example.contiguous(memory_format=fmt), choice=kernels)
    return folded, report
