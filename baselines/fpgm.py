"""FPGM as its paper and its official code run it (He et al. 2019, "Filter Pruning via Geometric Median for
Deep Convolutional Neural Networks Acceleration", CVPR): soft filter pruning while the network fine-tunes.

* Score of a filter: its summed Euclidean distance to the other filters of its layer, between the filters'
  weights; the filters nearest the geometric median (smallest sum) are the most replaceable. A group that a
  residual connection ties across several convs is scored by the *sum* of the distances in each of them
  (the code scores every layer on its own; a tied channel must go from all of them at once).
* Soft pruning: at the start and at the end of every fine-tuning epoch, the ``rate`` lowest-scored filters
  of every group are zeroed (the filters only, as the code does: under a live BN a zeroed filter gets
  gradients); during the next epoch they train again and may regrow (a filter selected at one epoch's end
  and not at the next is a regrowth, counted in the record).
* The last epoch trains with the final selection removed: its filters and their BN's scale and shift held
  at zero, so the network it ends with is the network removal leaves. (The code keeps the last selection
  soft and reports the zeroed network, whose BNs still emit a constant per zeroed filter that no removed
  network can keep: removing them then costs far more than the reported accuracy shows.) With one
  fine-tuning epoch, that epoch is the last.
* ``rate``: one for every group (the paper's every-layer rate), solved so the final network meets the
  MACs target: the largest rate below it, plus one channel in the groups nearest their next one.
* The whole fine-tuning runs at the dense cost (zeroed filters are still computed), and is counted so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from baselines.contract import Estimate, MethodError, Prepared, TrainingHook, TrainPhase, register_method
from baselines.structured import DEFAULT_MAX_RATIO, DEFAULT_TOLERANCE, StructuredPruning, check_options, classifier_of

FPGM_OPTIONS = {"max_ratio": float, "tolerance": float}
BISECTION_STEPS = 30

# Torch-Pruning's graph (and timm, torchvision behind it) is imported when a model is pruned, not when
# methods are listed.
if TYPE_CHECKING:
    from baselines.channels import ChannelGroups


@torch.no_grad()
def median_distances(weight: torch.Tensor, idxs: list[int]) -> torch.Tensor:
    """For the filters ``idxs`` of a layer: the summed Euclidean distance to every filter of that layer."""
    flat = weight.detach().flatten(1).float()
    return torch.cdist(flat[idxs], flat, p=2).sum(1).cpu()


def group_distances(groups: ChannelGroups, g: int) -> torch.Tensor:
    """Per root channel of group ``g``: the summed distances over every conv or linear layer that produces it."""
    total = torch.zeros(groups.widths[g])
    from baselines.channels import OUT

    for layer, idxs, root_idxs in groups.members(g, OUT):
        total.index_add_(0, torch.tensor(root_idxs, dtype=torch.long), median_distances(layer.weight, idxs))
    return total


def pruned_per_group(groups: ChannelGroups, rate: float, max_ratio: float) -> list[int]:
    return [min(int(rate * n), n - groups.keep_at_least(g, max_ratio)) for g, n in enumerate(groups.widths)]


def solve_counts(groups: ChannelGroups, target: float, max_ratio: float) -> tuple[float, list[int], float]:
    """(the every-group rate, channels to prune per group, the reduction they give): the largest rate whose
    network stays below the MACs target, then one more channel in the groups nearest their next channel at
    that rate, until the target is met. (At the smallest rate that meets it, every group of one width takes
    its next channel at once: a residual network overshoots by several points.) The MACs depend only on
    how many channels each group loses, so no scores are needed."""

    def reduction(counts: list[int]) -> float:
        return groups.reduction([set(range(k)) for k in counts])

    most = pruned_per_group(groups, 1.0, max_ratio)
    if reduction(most) < target:
        raise MethodError(f"FPGM reaches at most -{100 * reduction(most):.1f} % MACs at max_ratio {max_ratio}")
    lo, hi = 0.0, 1.0
    for _ in range(BISECTION_STEPS):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if reduction(pruned_per_group(groups, mid, max_ratio)) >= target else (mid, hi)
    counts = pruned_per_group(groups, lo, max_ratio)
    nearest = sorted(range(len(counts)), key=lambda g: (-(lo * groups.widths[g] - int(lo * groups.widths[g])), g))
    for g in nearest:
        if reduction(counts) >= target:
            break
        counts[g] = min(counts[g] + 1, most[g])
    return lo, counts, reduction(counts)


class SoftFilterPruning(TrainingHook):
    """Zeroes every group's nearest-to-median filters at the start and after each epoch (module docstring)."""

    def __init__(self, groups: ChannelGroups, counts: list[int]) -> None:
        self.groups, self.counts = groups, counts
        self.regrown: list[int] = []  # per epoch: filters selected before it and not after
        self.epochs, self.final = 0, False

    def select(self) -> list[set[int]]:
        chosen = []
        for g, k in enumerate(self.counts):
            order = torch.argsort(group_distances(self.groups, g), stable=True)
            chosen.append({int(r) for r in order[:k]})
        return chosen

    def start(self, model, steps: int, epochs: int) -> None:
        self.epochs, self.final = epochs, epochs <= 1
        self.groups.masked = self.select()
        self._mask()

    def after_step(self, model, step: int) -> None:
        if self.final:  # the last epoch: the final selection stays removed
            self.groups.apply_masks()

    def end_epoch(self, model, epoch: int) -> None:
        if self.final:
            return
        before = self.groups.masked
        self.groups.masked = self.select()
        self.regrown.append(sum(len(b - a) for b, a in zip(before, self.groups.masked, strict=True)))
        self.final = epoch + 2 >= self.epochs  # the next epoch is the last
        self._mask()

    def _mask(self) -> None:
        from baselines.channels import OUT

        self.groups.apply_masks() if self.final else self.groups.apply_masks(OUT)

    def state_dict(self) -> dict:
        return self.groups.state_dict() | {"regrown": list(self.regrown), "final": self.final}

    def load_state_dict(self, state: dict) -> None:
        if state:
            self.groups.load_state_dict(state)
            self.regrown, self.final = list(state["regrown"]), bool(state["final"])


@register_method
class FPGM(StructuredPruning):
    """FPGM's soft pruning while fine-tuning (He et al. 2019): filters nearest the geometric median zeroed after
    every epoch (they may regrow), every group at one rate, removed for good at the end."""

    name = "prune_fpgm"
    criterion = "l1"  # unused: the scores are FPGM's own (module docstring)
    targets = ("macs_reduction",)

    def check(self, options, target):
        check_options(self.name, options, FPGM_OPTIONS)

    def estimate(self, plan):
        est = super().estimate(plan)
        phases = (("soft-pruning", plan.epochs("finetune"), True),)
        return Estimate(est.epochs, est.macs, est.params, est.reference_epochs, phases=phases)

    def prepare(self, ctx):
        model = ctx.dense_model()
        max_ratio = ctx.options.get("max_ratio", DEFAULT_MAX_RATIO)
        tolerance = ctx.options.get("tolerance", DEFAULT_TOLERANCE)
        from baselines.channels import ChannelGroups

        groups = ChannelGroups(model, ctx.example(1), [classifier_of(model)], ctx.in_channels, ctx.input_size)
        rate, counts, achieved = solve_counts(groups, ctx.target.value, max_ratio)
        if abs(achieved - ctx.target.value) > tolerance:
            raise MethodError(
                f"FPGM reached macs_reduction {achieved:.4f} for target {ctx.target.value:.4f} at one rate for "
                f"every group (tolerance {tolerance}): one channel of a group moves the MACs by more"
            )
        soft = SoftFilterPruning(groups, counts)
        info = {"criterion": "fpgm-soft", "rate": rate, "achieved": achieved, "target": ctx.target.value}
        info["target_kind"] = ctx.target.kind

        def remove(model: nn.Module) -> nn.Module:
            info.update(regrown=list(soft.regrown), regrown_total=sum(soft.regrown))
            return groups.remove()  # the last selection, filters and what depends on them

        epochs = ctx.epochs("finetune")
        phase = TrainPhase("soft-pruning", epochs, dense_cost=True, hook=soft, finalize=remove)
        return Prepared(model, "finetune", epochs, info, phases=[phase])
