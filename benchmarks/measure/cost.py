"""Measurement of a trained model: cost under the counting convention, and latency against the dense
reference in the deployment form (``latency.py``). Comparisons and trade-offs come from the metric
table (``metrics.derive``)."""

from __future__ import annotations

import torch
from torch import nn

from tissuenet.counting import profile


def measure_cost(model: nn.Module, in_channels: int, input_size: int) -> dict:
    cost = profile(model, in_channels, input_size)
    prunable = [m.weight for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear, nn.Conv1d))]
    total = sum(w.numel() for w in prunable)
    zeros = sum(int((w.detach() == 0).sum()) for w in prunable)
    cost["sparsity"] = zeros / total if total else 0.0  # of conv/linear weights
    return cost


def deploy_form(channels_last: bool = True, kernels: str = "auto"):
    """``(model, example) -> (deployed model, label, kernel choices)``: the one form every method is timed in."""
    from tissuenet.deploy import deploy

    def form(model: nn.Module, example: torch.Tensor):
        deployed, report = deploy(model, example, channels_last=channels_last, kernels=kernels)
        return deployed, report.label() + (", channels_last" if channels_last else ""), report.kernels

    return form


def eager_form(channels_last: bool = True):
    """The training-time form (eval mode, BN unfolded, grouped convs): the 'eager' latency."""

    def form(model: nn.Module, example: torch.Tensor):
        fmt = torch.channels_last if channels_last and example.dim() == 4 else torch.contiguous_format
        return model.eval().to(memory_format=fmt), "eager" + (", channels_last" if channels_last else ""), {}

    return form
