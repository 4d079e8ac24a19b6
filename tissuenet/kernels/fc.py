"""Fully connected units (the MLP's stacked layers) as one batched contraction per weight layer.

A stacked layer of ``m`` identical FC units is a block-diagonal linear map; as a grouped 1x1 Conv1d
it runs ``m`` tiny products. Viewing the input as (N, m, c_in') and the weights as (m, c_h, c_in')
makes it one ``einsum`` per layer, which both CPUs and GPUs run as a single batched matmul.
"""

from __future__ import annotations

import torch
from torch import nn


class EinsumUnits:
    """Callable ``x -> y`` for a BN-folded, eval-mode stacked layer of identical FC units."""

    @staticmethod
    def supports(layer) -> bool:
        grp = layer.groups[0]
        return (
            layer.kind == "fc"
            and not layer.hybrid
            and isinstance(grp.bn1, nn.Identity)
            and isinstance(grp.bn2, nn.Identity)
        )

    def __init__(self, layer) -> None:
        spec, grp = layer.group_specs[0], layer.groups[0]
        m = len(layer.units)
        self.m, self.c_in, self.final_relu = m, spec.c_in, layer.final_relu
        self.w1 = grp.op1.weight.detach().reshape(m, spec.c_h, spec.c_in)
        self.b1 = grp.op1.bias.detach().reshape(m, spec.c_h)
        self.w2 = grp.op2.weight.detach().reshape(m, spec.c_out, spec.c_h)
        self.b2 = grp.op2.bias.detach().reshape(m, spec.c_out)

    def __call__(self, x: torch.Tensor, residual=None) -> torch.Tensor:
        h = torch.relu(torch.einsum("nmi,mhi->nmh", x.reshape(x.shape[0], self.m, self.c_in), self.w1) + self.b1)
        y = (torch.einsum("nmh,moh->nmo", h, self.w2) + self.b2).reshape(x.shape[0], -1)
        return torch.relu(y) if self.final_relu else y
