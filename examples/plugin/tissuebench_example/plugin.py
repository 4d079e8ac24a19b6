"""A pruning criterion and a model from outside tissuebench, registered through its public API.

* ``prune_activation``: structured pruning that removes, step by step, the channels with the
  smallest mean absolute activation on a calibration batch (a classic data-driven criterion), then
  fine-tunes under the suite's fine-tune budget like every built-in pruning baseline.
* ``tiny_cnn``: two conv-BN-ReLU layers, global pooling, a linear classifier.

Importing this module registers both; tissuebench imports it through the entry point in
``pyproject.toml`` (or ``tissuebench run SUITE -p tissuebench_example.plugin`` without installing).
"""

from __future__ import annotations

import torch
import torch_pruning as tp
from torch import nn
from torch_pruning.pruner import function

from tissuebench import BaseMethod, Criterion, Prepared, check_options, prune_to_target, register_method, register_model


class MeanActivation(tp.importance.Importance):
    """Mean |output| of the group's first conv, per channel, over the calibration batches (lower: pruned first)."""

    def __init__(self) -> None:
        self.means: dict[nn.Module, torch.Tensor] = {}

    @torch.no_grad()
    def accumulate(self, model: nn.Module, batches) -> None:
        """tissuebench calls this before every pruning step with ``calibration_batches`` training batches."""
        sums: dict[nn.Module, torch.Tensor] = {}

        def record(module, _inputs, output):
            per_channel = output.detach().abs().mean(dim=(0, 2, 3)).cpu()
            sums[module] = sums.get(module, 0) + per_channel

        hooks = [m.register_forward_hook(record) for m in model.modules() if isinstance(m, nn.Conv2d)]
        try:
            for x, _ in batches:
                model(x)
        finally:
            for h in hooks:
                h.remove()
        self.means = {m: s / len(batches) for m, s in sums.items()}

    def __call__(self, group) -> torch.Tensor:
        for dep, idxs in group:
            if dep.pruning_fn == function.prune_conv_out_channels and dep.layer in self.means:
                return self.means[dep.layer][idxs]
        return torch.zeros(len(group[0][1]))


ACTIVATION = Criterion(
    "mean_activation", MeanActivation, "mean |activation| on calibration batches", batches=1, global_pruning=False
)
OPTIONS = {"steps": int, "calibration_batches": int, "tolerance": float}


@register_method
class PruneActivation(BaseMethod):
    """Structured pruning by mean activation on a calibration batch (example plugin); then fine-tuning."""

    name = "prune_activation"
    phase = "finetune"  # trained under the suite's [finetune] settings for budgets.finetune_epochs
    targets = ("macs_reduction", "params_reduction")

    def check(self, options, target):
        check_options(self.name, options, OPTIONS)

    def prepare(self, ctx):
        model = ctx.dense_model()  # a fresh copy of the group's shared dense checkpoint
        info = prune_to_target(model, ctx, ACTIVATION, ctx.options)
        return Prepared(model, "finetune", ctx.epochs("finetune"), info)


@register_model(family="tiny", input_size=28, in_channels=1)
def tiny_cnn(num_classes: int = 10, in_channels: int = 1, width: int = 16) -> nn.Module:
    """conv 3x3 (width) - BN - ReLU - conv 3x3 (2 width) - BN - ReLU - global pool - linear."""
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 3, padding=1, bias=False),
        nn.BatchNorm2d(width),
        nn.ReLU(inplace=True),
        nn.Conv2d(width, 2 * width, 3, padding=1, bias=False),
        nn.BatchNorm2d(2 * width),
        nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(2 * width, num_classes),
    )
