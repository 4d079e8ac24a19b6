"""The stacked ("tissue") layer (docs/method.md §2).

The input channels are split into consecutive pieces, piece i goes through unit U_i, and the
outputs are concatenated. Three implementations of that one function:

* :class:`StackedLayer`, fast path: units with the same spec form one *group*, computed by two
  grouped convolutions (``groups = number of units in the group``). With identical units
  (the paper's main setting) there is a single group and no channel shuffling at all. With
  hybrid units, each group gathers its input channels with ``index_select`` and the outputs are
  put back in unit order by one inverse permutation: one grouped pair per *distinct* spec, not
  one module per unit, and the weights stay small and dense (no masks, no block-diagonal copies).
* :class:`PerUnitStack`, reference: one :class:`~tissuenet.units.BasicUnit` per unit, split/cat,
  as in the paper's code. Used by tests (equivalence) and benchmarks (latency).
* convolutional units on a channels_last CPU tensor train on a small-group convolution kernel
  (``kernels/grouped_train.py``): the same function and gradients, faster than oneDNN's grouped convolutions.
* fully connected units (``kind="fc"``) keep their weights as grouped 1x1 ``Conv1d`` on ``(N, C, 1)`` and are
  computed as one batched matmul per weight layer (``einsum`` over a ``(N, units, channels)`` view): the same
  function and gradients, and per step as fast as the dense MLP, where the grouped convolution was 17x slower.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from tissuenet.units import BasicUnit, UnitSpec


class _GroupedPair(nn.Module):
    """``n`` identical units as two grouped convolutions with BN between and after."""

    def __init__(self, spec: UnitSpec, n: int, kind: str, kernel_size: int, stride: int, padding: int) -> None:
        super().__init__()
        if kind == "conv":
            pad = kernel_size // 2
            self.op1 = nn.Conv2d(n * spec.c_in, n * spec.c_h, kernel_size, stride, padding, groups=n, bias=False)
            self.op2 = nn.Conv2d(n * spec.c_h, n * spec.c_out, kernel_size, 1, pad, groups=n, bias=False)
            self.bn1, self.bn2 = nn.BatchNorm2d(n * spec.c_h), nn.BatchNorm2d(n * spec.c_out)
        else:  # "fc": a grouped linear is a grouped 1x1 Conv1d over a length-1 axis
            self.op1 = nn.Conv1d(n * spec.c_in, n * spec.c_h, 1, groups=n, bias=False)
            self.op2 = nn.Conv1d(n * spec.c_h, n * spec.c_out, 1, groups=n, bias=False)
            self.bn1, self.bn2 = nn.BatchNorm1d(n * spec.c_h), nn.BatchNorm1d(n * spec.c_out)
        self.relu = nn.ReLU(inplace=True)
        self.units_ = n if kind == "fc" else 0  # fc units run as batched matmuls (``_units_product``)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.units_ and not (self.op1._forward_pre_hooks or self.op2._forward_pre_hooks or _exporting()):
            h = self.relu(self.bn1(_units_product(x, self.op1, self.units_)))
            return self.bn2(_units_product(h, self.op2, self.units_))
        return self.bn2(_conv(self.op2, self.relu(self.bn1(_conv(self.op1, x)))))

    @torch.no_grad()
    def fold_bn(self) -> int:
        """Fold both BNs (eval statistics) into the convs; returns how many were folded."""
        folded = 0
        for op_name, bn_name in (("op1", "bn1"), ("op2", "bn2")):
            bn = getattr(self, bn_name)
            if isinstance(bn, nn.Identity):
                continue
            setattr(self, op_name, nn.utils.fusion.fuse_conv_bn_eval(getattr(self, op_name).eval(), bn.eval()))
            setattr(self, bn_name, nn.Identity())
            folded += 1
        return folded


def _exporting() -> bool:
    """Traced for ONNX or OpenVINO: the runtimes run the grouped ``Conv1d`` 3x faster than an ``Einsum`` node
    (ONNX Runtime, batch 1, 2 threads: 0.054 against 0.168 ms), so exports keep it."""
    return torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()


def _conv(op: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``op(x)``; a small-group 3x3 convolution on a channels_last CPU tensor runs on the training kernel (the same
    function and gradients; the grouped convolution made a TissueNet train slower than its dense backbone)."""
    from tissuenet.kernels.grouped_train import conv  # lazy: kernels/ imports this module

    return conv(op, x)


def _units_product(x: torch.Tensor, conv: nn.Conv1d, n: int) -> torch.Tensor:
    """A grouped kernel-1 ``Conv1d`` over ``(N, n*c, 1)`` as one batched matmul over its ``n`` units: the same
    function and gradients, where the grouped convolution runs ``n`` tiny products (13x slower per MLP step on
    a CPU). A module whose weight is computed by a hook (pruning masks) keeps the convolution."""
    w = conv.weight.view(n, conv.out_channels // n, conv.in_channels // n)
    y = torch.einsum("bnc,nhc->bnh", x.reshape(x.shape[0], n, -1), w).reshape(x.shape[0], -1, 1)
    return y if conv.bias is None else y + conv.bias.view(1, -1, 1)


class StackedLayer(nn.Module):
    """Units side by side on consecutive channel pieces (fast path for identical and hybrid units).

    Args:
        units: the unit specs in channel order (``m`` entries; repeats allowed).
        kind: ``"conv"`` (2-d convolutions, kernel ``kernel_size``) or ``"fc"``.
        stride: stride of each unit's first convolution (downsampling blocks).
        padding: padding of each unit's first convolution (default ``kernel_size // 2``, "same");
            the first conv copies the geometry of the conv it replaces, the second keeps the size.
        final_relu: apply ReLU after the last BN (off inside residual blocks, where the ReLU
            comes after the shortcut is added).
    """

    def __init__(
        self,
        units: Sequence[UnitSpec | str],
        kind: str = "conv",
        kernel_size: int = 3,
        stride: int = 1,
        final_relu: bool = False,
        padding: int | None = None,
    ) -> None:
        super().__init__()
        if kind not in ("conv", "fc"):
            raise ValueError(f"stacked layer kind must be 'conv' or 'fc', got {kind!r}")
        self.units = tuple(UnitSpec.parse(u) for u in units)
        if not self.units:
            raise ValueError("a stacked layer needs at least one unit")
        self.kind, self.kernel_size, self.stride, self.final_relu = kind, kernel_size, stride, final_relu
        self.padding = kernel_size // 2 if padding is None else padding
        self.in_channels = sum(u.c_in for u in self.units)
        self.out_channels = sum(u.c_out for u in self.units)

        # Group units by spec, in order of first appearance; remember each unit's place.
        self.group_specs: list[UnitSpec] = list(dict.fromkeys(self.units))
        members = {s: [i for i, u in enumerate(self.units) if u == s] for s in self.group_specs}
        self.groups = nn.ModuleList(
            _GroupedPair(s, len(members[s]), kind, kernel_size, stride, self.padding) for s in self.group_specs
        )
        self._place = {}  # unit index -> (group index, position inside the group)
        for g, s in enumerate(self.group_specs):
            for pos, i in enumerate(members[s]):
                self._place[i] = (g, pos)

        self.fast = None  # an inference kernel (tissuenet.kernels), set on a deployed, BN-folded layer
        self.hybrid = len(self.group_specs) > 1
        if self.hybrid:
            in_start = _offsets([u.c_in for u in self.units])
            out_start = _offsets([u.c_out for u in self.units])
            gather_out = []
            for g, s in enumerate(self.group_specs):
                idx = [c for i in members[s] for c in range(in_start[i], in_start[i] + s.c_in)]
                self.register_buffer(f"in_index{g}", torch.tensor(idx), persistent=False)
                gather_out += [c for i in members[s] for c in range(out_start[i], out_start[i] + s.c_out)]
            # concat(groups) holds channels in `gather_out` order; invert it to restore unit order.
            inverse = torch.empty(len(gather_out), dtype=torch.long)
            inverse[torch.tensor(gather_out)] = torch.arange(len(gather_out))
            self.register_buffer("out_index", inverse, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fast is not None and not self.training:
            return self.fast(x)
        flat = self.kind == "fc"
        if flat:
            x = x.unsqueeze(-1)
        if not self.hybrid:
            y = self.groups[0](x)
        else:
            parts = [grp(x.index_select(1, getattr(self, f"in_index{g}"))) for g, grp in enumerate(self.groups)]
            y = torch.cat(parts, 1).index_select(1, self.out_index)
        if self.final_relu:
            y = torch.relu(y)
        return y.squeeze(-1) if flat else y

    def fold_bn(self) -> int:
        """Fold every BN into its conv (deployment form, eval statistics); returns how many were folded."""
        return sum(g.fold_bn() for g in self.groups)

    def extra_repr(self) -> str:
        counts = {str(s): self.units.count(s) for s in self.group_specs}
        return f"units={counts}, kind={self.kind}, k={self.kernel_size}, stride={self.stride}"

    # -- mapping to the per-unit reference (tests, benchmarks) -------------------------------
    def unit_tensors(self, i: int) -> dict[str, torch.Tensor]:
        """Views of unit ``i``'s parameters and BN buffers inside the grouped tensors."""
        g, pos = self._place[i]
        spec, grp = self.group_specs[g], self.groups[g]
        h, o = slice(pos * spec.c_h, (pos + 1) * spec.c_h), slice(pos * spec.c_out, (pos + 1) * spec.c_out)
        out = {"op1.weight": grp.op1.weight[h], "op2.weight": grp.op2.weight[o]}
        for name in ("weight", "bias", "running_mean", "running_var"):
            out[f"bn1.{name}"] = getattr(grp.bn1, name)[h]
            out[f"bn2.{name}"] = getattr(grp.bn2, name)[o]
        return out

    def to_per_unit(self) -> PerUnitStack:
        """A :class:`PerUnitStack` computing the same function (weights copied)."""
        ref = PerUnitStack(self.units, self.kind, self.kernel_size, self.stride, self.final_relu, self.padding)
        with torch.no_grad():
            for i, unit in enumerate(ref.units_):
                own = dict(unit.named_parameters()) | dict(unit.named_buffers())
                for name, t in self.unit_tensors(i).items():
                    own[name].copy_(t.reshape(own[name].shape))
        return ref.train(self.training)


class PerUnitStack(nn.Module):
    """Reference stacked layer: split, one module per unit, concatenate (the paper's code path)."""

    def __init__(self, units, kind="conv", kernel_size=3, stride=1, final_relu=False, padding=None) -> None:
        super().__init__()
        self.units = tuple(UnitSpec.parse(u) for u in units)
        self.units_ = nn.ModuleList(BasicUnit(u, kind, kernel_size, stride, padding=padding) for u in self.units)
        self.final_relu = final_relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pieces = torch.split(x, [u.c_in for u in self.units], dim=1)
        y = torch.cat([unit(p) for unit, p in zip(self.units_, pieces)], 1)
        return torch.relu(y) if self.final_relu else y


def _offsets(widths: Sequence[int]) -> list[int]:
    out, acc = [], 0
    for w in widths:
        out.append(acc)
        acc += w
    return out
