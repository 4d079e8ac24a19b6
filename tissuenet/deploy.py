"""The deployment form of a model: eval mode, BN folded into the preceding conv, fast stacked layers.

Every method is timed in this same form (docs/method.md, "Latency"), so a speed-up compares
networks, not training-time bookkeeping:

* each :class:`~tissuenet.stacked.StackedLayer` folds its BNs into its grouped convs itself
  (:meth:`StackedLayer.fold_bn`), and may then run on a fast kernel (``tissuenet.kernels``);
* every other conv followed only by a BN is folded through ``torch.fx`` (stacked layers are leaves
  of the trace); a model that fx cannot trace keeps its BNs, and the report says so.

The folded model computes the same function as the unfolded one in eval mode (tested).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import fx, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from tissuenet.stacked import StackedLayer

_CONV_BN = ((nn.Conv1d, nn.BatchNorm1d), (nn.Conv2d, nn.BatchNorm2d))


@dataclass
class DeployReport:
    bn_folded: int = 0  # BN layers folded into a conv
    bn_left: int = 0  # BN layers kept (not after a conv, or the model could not be traced)
    traced: bool = True
    kernels: dict = field(default_factory=dict)  # stacked-layer shape -> chosen implementation

    def label(self) -> str:
        kernel = ",".join(sorted(set(self.kernels.values()))) or "none"
        return f"deploy(bn-folded {self.bn_folded}, bn-left {self.bn_left}, kernels {kernel})"


class _Tracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, StackedLayer) or super().is_leaf_module(m, qualname)


def fold_bn(model: nn.Module) -> tuple[nn.Module, DeployReport]:
    """An eval-mode copy of ``model`` with every foldable BN folded into its conv."""
    model = copy.deepcopy(model).eval()
    report = DeployReport()
    for layer in model.modules():
        if isinstance(layer, StackedLayer):
            report.bn_folded += layer.fold_bn()
    try:
        graph = _Tracer().trace(model)
    except Exception:  # noqa: BLE001 - dynamic control flow: keep the model as it is
        report.traced = False
        report.bn_left = sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
        return model, report
    traced = fx.GraphModule(model, graph)
    modules = dict(traced.named_modules())
    for node in list(traced.graph.nodes):
        if node.op != "call_module" or not isinstance(modules.get(node.target), nn.modules.batchnorm._BatchNorm):
            continue
        parent = node.args[0]
        conv = modules.get(parent.target) if isinstance(parent, fx.Node) and parent.op == "call_module" else None
        pair_ok = any(isinstance(conv, c) and isinstance(modules[node.target], b) for c, b in _CONV_BN)
        if not pair_ok or len(parent.users) > 1 or not modules[node.target].track_running_stats:
            report.bn_left += 1
            continue
        fused = fuse_conv_bn_eval(conv, modules[node.target])
        _set_module(traced, parent.target, fused)
        node.replace_all_uses_with(parent)
        traced.graph.erase_node(node)
        report.bn_folded += 1
    traced.graph.lint()
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
