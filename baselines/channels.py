"""A model's prunable channel groups, masked in place while it trains and removed for good at the end.

Torch-Pruning's dependency graph couples the channels that must go together: a conv's filters, its BN,
the next layers' inputs, every layer a residual connection adds to them. Methods that prune while the
model trains (Taylor's pruning schedule, FPGM's soft pruning) *mask* a group's channels instead of
removing them: the filters, biases and BN scale and shift of every layer that produces them are set to
zero, so the masked model computes exactly what the pruned one will (a zero channel contributes nothing
downstream) and the optimizer's state stays valid. The MACs of the pruned network are counted from layer
shapes without removing anything (:meth:`ChannelGroups.macs`); :meth:`ChannelGroups.remove` prunes the
masked channels out at the end.

Channels are addressed per group by their *root index* (Torch-Pruning's ``root_idxs``: the position in the
group's first layer).
"""

from __future__ import annotations

import contextlib
import math
from collections import Counter

import torch
import torch_pruning as tp
from torch import nn
from torch_pruning.pruner import function as fn

from tissuenet.counting import ShapeCounter

OUT = (fn.prune_conv_out_channels, fn.prune_linear_out_channels, fn.prune_depthwise_conv_out_channels)
IN = (fn.prune_conv_in_channels, fn.prune_linear_in_channels, fn.prune_depthwise_conv_in_channels)
BN_OUT = (fn.prune_batchnorm_out_channels,)
_BN = nn.modules.batchnorm._BatchNorm
_KINDS = (OUT, IN, BN_OUT, OUT + BN_OUT)  # every kind of member the methods ask for


class ChannelGroups:
    """The prunable channel groups of ``model`` (the ``ignored`` layers, e.g. the classifier, kept whole)."""

    def __init__(self, model: nn.Module, example: torch.Tensor, ignored, in_channels: int, input_size: int) -> None:
        self.model = model
        self.graph = tp.DependencyGraph().build_dependency(model, example_inputs=example)
        types = (nn.Conv1d, nn.Conv2d, nn.Linear)
        self.groups = list(self.graph.get_all_groups(ignored_layers=list(ignored), root_module_types=types))
        self.widths = [len(g[0][1]) for g in self.groups]
        self.masked: list[set[int]] = [set() for _ in self.groups]
        self._members: dict[tuple, list] = {}
        self._tables: dict[tuple, list] | None = {} if self._tables_are_exact() else None
        self.counter = ShapeCounter(model, in_channels, input_size)
        self.base = self.macs()

    # -- what a group holds -------------------------------------------------------------------------------
    def members(self, g: int, kinds) -> list[tuple[nn.Module, list[int], list[int]]]:
        """(layer, its channel indices, their root indices) of group ``g``'s dependencies of ``kinds``."""
        if (g, kinds) not in self._members:
            group = self.groups[g]
            self._members[(g, kinds)] = [
                (dep.layer, list(idxs), list(group[i].root_idxs))
                for i, (dep, idxs) in enumerate(group)
                if dep.pruning_fn in kinds
            ]
        return self._members[(g, kinds)]

    def gates(self, g: int) -> list[tuple[nn.Module, list[int], list[int]]]:
        """Where group ``g``'s channels can be switched off: its BN layers (the gate after BN), or, in a group
        without BN, the layers that produce the channels."""
        bns = [m for m in self.members(g, BN_OUT) if isinstance(m[0], _BN) and m[0].affine]
        return bns or self.members(g, OUT)

    def roots_of(self, g: int, layer: nn.Module, idxs: list[int]) -> list[int]:
        """The root indices of ``layer``'s output channels ``idxs`` in group ``g``."""
        for member, member_idxs, root_idxs in self.members(g, OUT):
            if member is layer:
                root = dict(zip(member_idxs, root_idxs))
                return [root[i] for i in idxs]
        raise KeyError(f"{type(layer).__name__} produces no channel of group {g}")

    def alive(self, g: int) -> list[int]:
        return [r for r in range(self.widths[g]) if r not in self.masked[g]]

    # -- cost --------------------------------------------------------------------------------------------
    def macs(self, masked: list[set[int]] | None = None) -> int:
        """MACs of the network with the ``masked`` channels (default: the current masks) removed."""
        gone_out, gone_in = self._gone(self.masked if masked is None else masked)
        total = 0
        for module, positions in self.counter.positions.items():
            linear = isinstance(module, nn.Linear)
            c_out = module.out_features if linear else module.out_channels
            c_in = module.in_features if linear else module.in_channels
            groups = 1 if linear else module.groups
            depthwise = groups > 1 and groups == c_in == c_out
            c_out -= gone_out[module]
            c_in = c_out if depthwise else c_in - gone_in[module]
            kernel = 1 if linear else math.prod(module.kernel_size)
            total += positions * kernel * (1 if depthwise else c_in // groups) * c_out
        return total

    def _gone(self, masked: list[set[int]]) -> tuple[Counter, Counter]:
        """How many output and input channels of each layer the masks remove. Taylor's schedule asks after every
        channel it masks (8,843 times in a test's quick pass, where testing each channel of each member took 55 s
        of its 520): counted from per-group tables, or channel by channel where a channel sits in two places."""
        if self._tables is None:  # channel by channel, each channel once
            channels: tuple[dict, dict] = ({}, {})
            for g, roots in enumerate(masked):
                for kinds, chosen in ((OUT, channels[0]), (IN, channels[1])):
                    for layer, idxs, root_idxs in self.members(g, kinds) if roots else ():
                        chosen.setdefault(layer, set()).update(i for i, r in zip(idxs, root_idxs) if r in roots)
            return tuple(Counter({layer: len(c) for layer, c in chosen.items()}) for chosen in channels)
        gone_out, gone_in = Counter(), Counter()
        for g, roots in enumerate(masked):
            for kinds, gone in ((OUT, gone_out), (IN, gone_in)):
                for layer, per_root in self._table(g, kinds) if roots else ():
                    gone[layer] += len(roots) if per_root is None else sum(per_root.get(r, 0) for r in roots)
        return gone_out, gone_in

    def _table(self, g: int, kinds) -> list[tuple[nn.Module, dict[int, int] | None]]:
        """(layer, {root index: how many of its channels that root holds}) of group ``g``'s members of ``kinds``,
        None for "each root exactly one" (a member's usual shape: its count is the number of roots masked)."""
        if (g, kinds) not in self._tables:
            roots_of: dict[nn.Module, dict[int, int]] = {}
            for layer, idxs, root_idxs in self.members(g, kinds):
                roots_of.setdefault(layer, {}).update(zip(idxs, root_idxs))
            table = []
            for layer, roots in roots_of.items():
                per_root = Counter(roots.values())
                once = len(per_root) == self.widths[g] and len(roots) == self.widths[g]
                table.append((layer, None if once else dict(per_root)))
            self._tables[(g, kinds)] = table
        return self._tables[(g, kinds)]

    def _tables_are_exact(self) -> bool:
        """Whether every channel of a layer has one root in one group (Torch-Pruning's usual coupling): then the
        per-group tables count each removed channel exactly once."""
        seen: dict[tuple, tuple[int, int]] = {}
        for g in range(len(self.widths)):
            for k, kinds in enumerate((OUT, IN)):
                for layer, idxs, root_idxs in self.members(g, kinds):
                    for i, r in zip(idxs, root_idxs):
                        if seen.setdefault((k, id(layer), i), (g, r)) != (g, r):
                            return False
        return True

    def reduction(self, masked: list[set[int]] | None = None) -> float:
        return 1 - self.macs(masked) / self.base

    # -- masking and removal ---------------------------------------------------------------------------------
    @torch.no_grad()
    def apply_masks(self, kinds=OUT + BN_OUT) -> None:
        """Zero every masked channel's filters, biases and BN scale and shift (``kinds=OUT``: the filters and
        biases only, as soft filter pruning does: a zeroed filter under a live BN gets gradients and regrows)."""
        for g, roots in enumerate(self.masked):
            if not roots:
                continue
            for layer, idxs, root_idxs in self.members(g, kinds):
                chosen = [i for i, r in zip(idxs, root_idxs) if r in roots]
                for param in (getattr(layer, "weight", None), getattr(layer, "bias", None)):
                    if isinstance(param, torch.Tensor):
                        param[chosen] = 0

    @contextlib.contextmanager
    @torch.no_grad()
    def zeroed(self, g: int, roots: list[int]):
        """Group ``g``'s channels ``roots`` zeroed (filters, biases, BN scale and shift) inside the block, then
        restored: the network's outputs as if they were removed, without removing them."""
        saved = []
        for layer, idxs, root_idxs in self.members(g, OUT + BN_OUT):
            chosen = [i for i, r in zip(idxs, root_idxs) if r in set(roots)]
            for param in (getattr(layer, "weight", None), getattr(layer, "bias", None)):
                if isinstance(param, torch.Tensor) and chosen:
                    saved.append((param, chosen, param[chosen].clone()))
                    param[chosen] = 0
        try:
            yield
        finally:
            for param, chosen, values in saved:
                param[chosen] = values

    def remove(self) -> nn.Module:
        """Prune the masked channels out of the model for good (exact: they were zero)."""
        if self.graph is None:
            raise RuntimeError("a worker's copy of the channel groups cannot remove channels; the job's process does")
        for g, roots in enumerate(self.masked):
            if roots:
                dep, idxs = self.groups[g][0]
                root = [idxs[r] for r in sorted(roots)]
                self.graph.get_pruning_group(dep.target.module, dep.handler, idxs=root).prune()
        self.masked = [set() for _ in self.groups]
        self._members = {}  # the layers changed shape: what they held is gone
        self._tables = None if self._tables is None else {}
        return self.model

    # -- travelling to data-parallel workers ----------------------------------------------------------------
    def __getstate__(self) -> dict:
        """What a worker needs to score, mask and count (every group's members, resolved here); the dependency
        graph holds autograd nodes that do not pickle, and removal stays with the job's own process."""
        members = {(g, i): self.members(g, kinds) for g in range(len(self.groups)) for i, kinds in enumerate(_KINDS)}
        drop = (
            "graph",
            "groups",
            "_members",
            "_tables",
        )  # the kinds are bound methods: keyed by position, not identity
        return {k: v for k, v in self.__dict__.items() if k not in drop} | {"members_by_kind": members}

    def __setstate__(self, state: dict) -> None:
        members = {(g, _KINDS[i]): value for (g, i), value in state.pop("members_by_kind").items()}
        self.__dict__.update(state, graph=None, groups=[None] * len(state["widths"]), _members=members)
        self._tables = {} if self._tables_are_exact() else None

    def keep_at_least(self, g: int, max_ratio: float) -> int:
        """Channels of group ``g`` that must stay: never more than ``max_ratio`` of a group goes."""
        return max(1, math.ceil(self.widths[g] * (1 - max_ratio)))

    def state_dict(self) -> dict:
        return {"masked": [sorted(m) for m in self.masked]}

    def load_state_dict(self, state: dict) -> None:
        self.masked = [set(m) for m in state["masked"]]
