"""Taylor pruning as its paper's best variant runs (Molchanov et al. 2019, "Importance Estimation for Neural
Network Pruning", CVPR): the gate after BN, channels removed while the network fine-tunes.

* Score of a channel: the first-order Taylor estimate of the loss change when the gate after its BN is
  switched off, ``(gamma x dL/dgamma + beta x dL/dbeta)^2``, per mini-batch, from the training step's own
  gradients (BN in training mode: scoring is the ordinary training step, no extra pass). A channel that a
  residual connection ties across several BNs is scored by the mean of their gates' scores (the authors'
  code divides the skip connections' summed score by their count). A group without BN (the MLP) is gated after the
  layer that produces it: ``(sum of w x dL/dw + b x dL/db)^2``.
* Scores are averaged over the mini-batches between two pruning events and, across events, with momentum
  0.9 (the paper's averaging).
* Every ``every`` mini-batches (30, as the paper) the lowest-scored channels are masked (zeroed, kept at
  zero) until the MACs reduction reaches the schedule: the target spread evenly over the pruning phase's
  events (the paper removes a fixed number of neurons per event; a MACs target needs the schedule). No
  group loses more than ``max_ratio`` of its channels.
* Phases: ``taylor-pruning`` for ``pruning_epochs`` (default: half the fine-tune budget, at least one) at
  the fine-tune learning rate held constant. Masked channels are still computed, so it runs at the dense
  cost and is counted so. Then the masked channels are removed for good and ``finetune`` trains the
  remaining epochs of the budget.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import nn

from baselines.contract import Estimate, MethodError, Prepared, TrainingHook, TrainPhase, register_method
from baselines.structured import DEFAULT_MAX_RATIO, DEFAULT_TOLERANCE, StructuredPruning, check_options, classifier_of

# Torch-Pruning's graph (and timm, torchvision behind it) is imported when a model is pruned, not when
# methods are listed.
if TYPE_CHECKING:
    from baselines.channels import ChannelGroups

TAYLOR_OPTIONS = {"every": int, "pruning_epochs": int, "momentum": float, "max_ratio": float, "tolerance": float}
EVERY = 30  # mini-batches between pruning events (the paper's frequency)
MOMENTUM = 0.9  # of the score average across events (the paper)
_BN = nn.modules.batchnorm._BatchNorm


@torch.no_grad()
def gate_contribution(layer: nn.Module) -> torch.Tensor | None:
    """sum over the gate of (parameter x its gradient), per channel: gamma g + beta g of a BN; of a conv or
    linear layer that produces the channel, the sum over its filter (and bias)."""
    if layer.weight.grad is None:
        return None
    if isinstance(layer, _BN):
        return (layer.weight * layer.weight.grad + layer.bias * layer.bias.grad).float()
    out = (layer.weight * layer.weight.grad).flatten(1).sum(1)
    if layer.bias is not None and layer.bias.grad is not None:
        out = out + layer.bias * layer.bias.grad
    return out.float()


def gate_scores(groups: ChannelGroups) -> list[torch.Tensor]:
    """Per group, per root channel: this step's squared Taylor estimate of its gate (the mean over the group's
    gates where a residual ties several)."""
    out = []
    for g in range(len(groups.groups)):
        total = torch.zeros(groups.widths[g])
        count = torch.zeros(groups.widths[g])
        for layer, idxs, root_idxs in groups.gates(g):
            contribution = gate_contribution(layer)
            if contribution is None:
                continue
            index = torch.tensor(root_idxs, dtype=torch.long)
            total.index_add_(0, index, contribution[idxs].cpu() ** 2)
            count.index_add_(0, index, torch.ones(len(index)))
        out.append(total / count.clamp(min=1))
    return out


class TaylorSchedule(TrainingHook):
    """Scores every step, masks the lowest-scored channels every ``every`` steps (module docstring)."""

    def __init__(self, groups: ChannelGroups, target: float, every: int, momentum: float, max_ratio: float) -> None:
        self.groups, self.target, self.every, self.momentum, self.max_ratio = groups, target, every, momentum, max_ratio
        self.scores = [torch.zeros(n) for n in groups.widths]
        self.summed = [torch.zeros(n) for n in groups.widths]
        self.batches = self.events = self.planned = 0
        self.masked_per_event: list[int] = []

    def start(self, model, steps: int, epochs: int) -> None:
        self.planned = max(1, steps // self.every)

    def after_backward(self, model, step: int) -> None:
        for total, now in zip(self.summed, gate_scores(self.groups), strict=True):
            total += now
        self.batches += 1
        if (step + 1) % self.every == 0 and self.events < self.planned:
            self.event()

    def after_step(self, model, step: int) -> None:
        self.groups.apply_masks()  # the optimizer moved the masked gates: back to zero

    def end(self, model) -> None:
        if self.events < self.planned or self.groups.reduction() < self.target:
            self.event(final=True)  # a short phase: its last event reaches the whole target

    def event(self, final: bool = False) -> None:
        mean = [s / max(self.batches, 1) for s in self.summed]
        m = self.momentum if self.events else 0.0
        self.scores = [m * old + (1 - m) * new for old, new in zip(self.scores, mean, strict=True)]
        self.summed = [torch.zeros_like(s) for s in self.summed]
        self.batches = 0
        self.events += 1
        goal = self.target if final else self.target * min(1.0, self.events / self.planned)
        before = sum(len(m) for m in self.groups.masked)
        candidates = sorted(
            (float(self.scores[g][r]), g, r) for g in range(len(self.groups.groups)) for r in self.groups.alive(g)
        )
        reduction = self.groups.reduction()
        for _, g, r in candidates:
            if reduction >= goal:
                break
            if len(self.groups.alive(g)) <= self.groups.keep_at_least(g, self.max_ratio):
                continue
            self.groups.masked[g].add(r)
            reduction = self.groups.reduction()
        self.groups.apply_masks()
        self.masked_per_event.append(sum(len(m) for m in self.groups.masked) - before)

    def state_dict(self) -> dict:
        return self.groups.state_dict() | {
            "scores": self.scores,
            "summed": self.summed,
            "counts": [self.batches, self.events, self.planned],
            "masked_per_event": list(self.masked_per_event),
        }

    def load_state_dict(self, state: dict) -> None:
        if state:
            self.groups.load_state_dict(state)
            self.scores, self.summed = list(state["scores"]), list(state["summed"])
            self.batches, self.events, self.planned = state["counts"]
            self.masked_per_event = list(state["masked_per_event"])


def pruning_epochs(options: dict, finetune: int) -> int:
    return min(finetune, options.get("pruning_epochs", max(1, math.ceil(finetune / 2))))


@register_method
class TaylorPruning(StructuredPruning):
    """Taylor FO on the gate after BN, pruned while fine-tuning (Molchanov et al. 2019); then fine-tuning."""

    name = "prune_taylor"
    criterion = "l1"  # unused: the scores are Taylor's own (module docstring)
    targets = ("macs_reduction",)

    def check(self, options, target):
        check_options(self.name, options, TAYLOR_OPTIONS)

    def estimate(self, plan):
        est = super().estimate(plan)
        finetune = plan.epochs("finetune")
        pruning = pruning_epochs(plan.options, finetune)
        phases = (("taylor-pruning", pruning, True), ("finetune", finetune - pruning, False))
        return Estimate(est.epochs, est.macs, est.params, est.reference_epochs, phases=phases)

    def prepare(self, ctx):
        model = ctx.dense_model()
        options = ctx.options
        from baselines.channels import ChannelGroups

        groups = ChannelGroups(model, ctx.example(1), [classifier_of(model)], ctx.in_channels, ctx.input_size)
        schedule = TaylorSchedule(
            groups,
            ctx.target.value,
            options.get("every", EVERY),
            options.get("momentum", MOMENTUM),
            options.get("max_ratio", DEFAULT_MAX_RATIO),
        )
        finetune = ctx.epochs("finetune")
        pruning = pruning_epochs(options, finetune)
        tolerance = options.get("tolerance", DEFAULT_TOLERANCE)
        info = {"criterion": "taylor-gate", "target": ctx.target.value, "target_kind": ctx.target.kind}

        def remove(model: nn.Module) -> nn.Module:
            achieved = groups.reduction()
            if abs(achieved - ctx.target.value) > tolerance:
                raise MethodError(
                    f"Taylor pruning reached macs_reduction {achieved:.4f} for target {ctx.target.value:.4f} "
                    f"(tolerance {tolerance}): a group's last channel moves the MACs by more"
                )
            info.update(
                achieved=achieved,
                events=schedule.events,
                channels_masked=sum(len(m) for m in groups.masked),
                masked_per_event=schedule.masked_per_event,
            )
            return groups.remove()

        phases = [
            TrainPhase(
                "taylor-pruning",
                pruning,
                dense_cost=True,
                hook=schedule,
                finalize=remove,
                overrides={"schedule": "constant", "warmup_epochs": 0},
            ),
            TrainPhase("finetune", finetune - pruning),
        ]
        return Prepared(model, "finetune", finetune - pruning, info, phases=phases)
