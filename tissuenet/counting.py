"""The suite's one counting convention (docs/method.md §5), used by ``describe``, results and reports.

* ``macs``: multiply-accumulates of convolutions and matmuls (conv, linear, grouped 1x1 Conv1d)
  per image, forward pass, at evaluation resolution, batch 1. BN, activations, pooling, bias,
  additions are excluded. Counted at dispatch level by ``torch.utils.flop_counter`` (which
  reports 2 x MACs), so custom modules are covered.
* ``flops = 2 x macs`` (the paper's convention: thop MACs x 2).
* ``params``: every trainable parameter (BN affine and biases included);
  ``params_nonzero``: those not exactly zero (after masking, for unstructured pruning).
* ``macs_effective``: each weight layer's MACs scaled by its weight density, so unstructured
  sparsity shows; equal to ``macs`` for dense models.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def count_nonzero_params(model: nn.Module) -> int:
    """Nonzero entries of every parameter, reading masked weights where pruning masks exist."""
    total = 0
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if name.endswith("_orig") and hasattr(module, name[: -len("_orig")]):
                p = getattr(module, name[: -len("_orig")])  # the masked weight
            total += int(torch.count_nonzero(p.detach()))
    return total


def _example(model: nn.Module, in_channels: int, input_size: int) -> torch.Tensor:
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    return torch.zeros(1, in_channels, input_size, input_size, device=device)


@torch.no_grad()
def count_macs(model: nn.Module, in_channels: int = 3, input_size: int = 32, *, per_module: bool = False):
    """MACs of one forward pass at batch 1; with ``per_module``, also a {module name: MACs} dict."""
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    try:
        with counter:
            model(_example(model, in_channels, input_size))
    finally:
        model.train(was_training)
    total = counter.get_total_flops() // 2
    if not per_module:
        return total
    counts = counter.get_flop_counts()
    return total, {name: sum(ops.values()) // 2 for name, ops in counts.items() if name != "Global"}


def weight_density(module: nn.Module) -> float:
    weight = getattr(module, "weight", None)
    if not isinstance(weight, torch.Tensor) or weight.numel() == 0:
        return 1.0
    return float(torch.count_nonzero(weight.detach())) / weight.numel()


def count_macs_effective(model: nn.Module, in_channels: int = 3, input_size: int = 32) -> float:
    """MACs with each conv/linear layer scaled by the density of its (possibly masked) weight."""
    return _effective(model, *count_macs(model, in_channels, input_size, per_module=True))


def _effective(model: nn.Module, total: int, by_name: dict[str, int]) -> float:
    leaf_types = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
    prefix = type(model).__name__
    effective, covered = 0.0, 0
    for name, module in model.named_modules():
        if isinstance(module, leaf_types):
            macs = by_name.get(f"{prefix}.{name}", 0)
            effective += macs * weight_density(module)
            covered += macs
    return effective + (total - covered)  # ops outside weight layers (e.g. functional matmuls) as dense


def profile(model: nn.Module, in_channels: int = 3, input_size: int = 32) -> dict[str, float]:
    """The cost columns of a result record for one model."""
    macs, by_name = count_macs(model, in_channels, input_size, per_module=True)  # one forward pass counts both
    return {
        "params": count_params(model),
        "params_nonzero": count_nonzero_params(model),
        "macs": macs,
        "macs_effective": _effective(model, macs, by_name),
        "flops": 2 * macs,
    }


class ShapeCounter:
    """MACs from layer shapes, for loops that count after every small change (pruning schedules).

    Channel pruning changes layer widths, never spatial sizes, so one forward pass records each
    conv/linear layer's output positions and later counts need no forward pass:
    conv MACs = positions x k_h x k_w x (in / groups) x out; linear MACs = positions x in x out.
    The first count is checked against :func:`count_macs`; a model with MACs outside conv/linear
    modules (functional matmuls, custom ops) is counted by :func:`count_macs` every time.
    """

    LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)

    def __init__(self, model: nn.Module, in_channels: int, input_size: int) -> None:
        self.model, self.shape = model, (in_channels, input_size)
        self.positions: dict[nn.Module, int] = {}

        def record(module, _inputs, output):
            out = output[0] if isinstance(output, tuple) else output
            if isinstance(module, nn.Linear):
                self.positions[module] = out.numel() // out.shape[-1]
            else:
                self.positions[module] = out[0, 0].numel()

        hooks = [m.register_forward_hook(record) for m in model.modules() if isinstance(m, self.LAYERS)]
        try:
            reference = count_macs(model, in_channels, input_size)
        finally:
            for h in hooks:
                h.remove()
        self.exact = self._from_shapes() == reference

    def _from_shapes(self) -> int:
        total = 0
        for module, positions in self.positions.items():
            if isinstance(module, nn.Linear):
                total += positions * module.in_features * module.out_features
            else:
                kernel = 1
                for k in module.kernel_size:
                    kernel *= k
                total += positions * kernel * (module.in_channels // module.groups) * module.out_channels
        return total

    def __call__(self) -> int:
        return self._from_shapes() if self.exact else count_macs(self.model, *self.shape)
