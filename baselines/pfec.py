"""PFEC, "Pruning Filters for Efficient ConvNets" (Li et al. 2017), as its paper prunes.

1. Prunable: the convolutions whose output channels no residual connection couples (each block's
   first conv in a ResNet, every conv of a VGG, MobileNetV2's expansions). The coupled channels (the
   stem, block outputs) are left alone, as the paper leaves them.
2. Sensitivity analysis: each prunable layer alone, its filters of smallest L1 norm removed at 10 %,
   20 %, ... 90 %, evaluated (no retraining) on ``sensitivity_images`` training images; the drop in
   top-1 per layer and ratio is recorded. (Removal is simulated by zeroing the channel's filter and
   everything downstream of it in its group, which gives the removed network's outputs.)
3. Per-layer rates: one tolerated drop delta for every layer; each layer takes the rate at which its
   drop reaches delta (its drops made monotone in the rate, linear between the measured rates, a
   1e-6 slope breaking ties). Delta is solved by bisection so that the measured MACs reduction
   reaches the target: insensitive layers are pruned hard, sensitive ones little or not at all (the
   paper chose them by hand from the same curves; this is that choice made by one rule).
4. One-shot pruning at those rates (smallest-L1 filters), then the suite's fine-tuning.

The analysis costs ``layers x 9 + 1`` forward passes over the images; that compute is counted in the
row's budget (a ``sensitivity`` phase) and in the dry run.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

import torch
from torch import nn

from baselines.contract import Estimate, MethodError, Prepared, register_method
from baselines.structured import DEFAULT_TOLERANCE, StructuredPruning, check_options, classifier_of
from tissuenet.counting import ShapeCounter

# Torch-Pruning's graph (and timm, torchvision behind it) is imported when a model is pruned, not when
# methods are listed.
if TYPE_CHECKING:
    from baselines.channels import ChannelGroups

RATIOS = tuple(i / 10 for i in range(1, 10))  # the sensitivity grid
PFEC_OPTIONS = {"sensitivity_images": int, "tolerance": float}
DEFAULT_SENSITIVITY_IMAGES = 1024
BISECTION_STEPS = 40


def channel_groups(model: nn.Module, example: torch.Tensor, in_channels: int, input_size: int) -> ChannelGroups:
    from baselines.channels import ChannelGroups

    return ChannelGroups(model, example, [classifier_of(model)], in_channels, input_size)


def uncoupled_layers(groups: ChannelGroups) -> list[tuple[str, int]]:
    """(conv name, group index) of every conv whose output channels no other layer produces, in model order."""
    from baselines.channels import OUT

    names = {m: n for n, m in groups.model.named_modules()}
    found = {}
    for g in range(len(groups.groups)):
        producers = [layer for layer, _, _ in groups.members(g, OUT) if not _depthwise(layer)]
        conv = producers[0] if len(producers) == 1 else None
        if isinstance(conv, nn.Conv2d) and conv.out_channels > 1:
            found[names[conv]] = g
    return [(name, found[name]) for name in names.values() if name in found]


def _depthwise(layer: nn.Module) -> bool:
    return isinstance(layer, nn.Conv2d) and layer.groups == layer.out_channels > 1


def _smallest_l1(conv: nn.Conv2d, k: int) -> list[int]:
    norms = conv.weight.detach().abs().flatten(1).sum(1)
    return norms.argsort()[:k].tolist()


@torch.no_grad()
def _accuracy(model: nn.Module, batches) -> float:
    correct = total = 0
    for x, y in batches:
        correct += int((model(x).argmax(1) == y).sum())
        total += len(y)
    return 100.0 * correct / max(total, 1)


def sensitivity(groups: ChannelGroups, layers, batches) -> dict[str, list[float]]:
    """{layer: top-1 drop at each rate of RATIOS}, each layer pruned alone (simulated by zeroing)."""
    model = groups.model
    model.eval()
    base = _accuracy(model, batches)
    drops = {}
    for name, g in layers:
        conv = model.get_submodule(name)
        order = groups.roots_of(g, conv, _smallest_l1(conv, conv.out_channels))
        drops[name] = []
        for ratio in RATIOS:
            with groups.zeroed(g, order[: _removed(ratio, conv.out_channels)]):
                drops[name].append(base - _accuracy(model, batches))
    return drops


TIE = 1e-6  # points per unit of rate: makes every sensitivity curve strictly increasing (ties, noise)


def envelope(drops: list[float], order: int = 0) -> list[float]:
    """A layer's drops as a strictly increasing curve of the rate: never below 0 or a smaller rate's drop;
    the tie-breaking slope differs per layer (``order``), so equal curves do not cross a channel together."""
    out, running = [], 0.0
    for rate, drop in zip(RATIOS, drops):
        running = max(running, drop)
        out.append(running + TIE * (1 + order) * rate)
    return out


def rate_for(drops: list[float], delta: float, order: int = 0) -> float:
    """The rate at which the layer's drop (its envelope, linear between the measured rates) reaches delta."""
    previous_rate, previous_drop = 0.0, 0.0
    for rate, drop in zip(RATIOS, envelope(drops, order)):
        if drop >= delta:
            return previous_rate + (rate - previous_rate) * max(0.0, delta - previous_drop) / (drop - previous_drop)
        previous_rate, previous_drop = rate, drop
    return RATIOS[-1]


def _removed(rate: float, width: int) -> int:
    return min(width - 1, int(rate * width))


def _batches(loader, images: int) -> list:
    out, seen = [], 0
    for x, y in loader:
        out.append((x, y))
        seen += len(y)
        if seen >= images:
            break
    return out


@register_method
class PFEC(StructuredPruning):
    """PFEC (Li et al. 2017): uncoupled convs only, per-layer rates from a sensitivity analysis; then fine-tuning."""

    name = "prune_pfec"
    criterion = "l1"
    targets = ("macs_reduction",)

    def check(self, options, target):
        check_options(self.name, options, PFEC_OPTIONS)

    def check_model(self, model: str) -> None:
        """PFEC prunes convolution filters: a model without a (non-depthwise) conv has none."""
        from tissuenet.registry import create_model

        if ":" in model:
            return
        built = create_model(model)
        if not any(isinstance(m, nn.Conv2d) and m.groups < m.out_channels for m in built.modules()):
            raise MethodError(f"prune_pfec prunes convolution filters; {model} has no convolution")

    def estimate(self, plan):
        model = plan.build(plan.model_name, {})
        example = torch.zeros(1, plan.in_channels, plan.input_size, plan.input_size)
        layers = uncoupled_layers(channel_groups(model, example, plan.in_channels, plan.input_size))
        images = plan.options.get("sensitivity_images", DEFAULT_SENSITIVITY_IMAGES)
        est = super().estimate(plan)
        return Estimate(
            est.epochs, est.macs, est.params, est.reference_epochs, extra_forward_images=(9 * len(layers) + 1) * images
        )

    def prepare(self, ctx):
        dense = ctx.dense_model()
        model = copy.deepcopy(dense)  # masked, then pruned; the dense model stays for the measurement below
        groups = channel_groups(model, ctx.example(1), ctx.in_channels, ctx.input_size)
        layers = uncoupled_layers(groups)
        if not layers:
            raise MethodError(f"PFEC finds no convolution of {ctx.model_name} whose channels no residual couples")
        images = ctx.options.get("sensitivity_images", DEFAULT_SENSITIVITY_IMAGES)
        batches = _batches(ctx.train_loader, images)
        seen = sum(len(y) for _, y in batches)
        drops = sensitivity(groups, layers, batches)
        smallest = {
            g: groups.roots_of(g, model.get_submodule(name), _smallest_l1(model.get_submodule(name), width))
            for name, g in layers
            for width in [model.get_submodule(name).out_channels]
        }

        def masks_at(rates: dict[str, float]) -> list[set[int]]:
            masked = [set() for _ in groups.groups]
            for name, g in layers:
                masked[g] = set(smallest[g][: _removed(rates[name], len(smallest[g]))])
            return masked

        def rates_at(delta: float) -> dict[str, float]:
            return {name: rate_for(drops[name], delta, k) for k, (name, _) in enumerate(layers)}

        def reduction(delta: float) -> float:
            return groups.reduction(masks_at(rates_at(delta)))

        target = ctx.target.value
        tolerance = ctx.options.get("tolerance", DEFAULT_TOLERANCE)
        lo, hi = 0.0, max(envelope(d, len(layers))[-1] for d in drops.values()) + 1.0
        if reduction(hi) < target - tolerance:
            raise MethodError(
                f"PFEC reaches at most -{100 * reduction(hi):.1f} % MACs on {ctx.model_name} by pruning only the "
                f"convolutions no residual couples (target -{100 * target:g} %)"
            )
        for _ in range(BISECTION_STEPS):  # the smallest tolerated drop that reaches the target
            mid = (lo + hi) / 2
            lo, hi = (lo, mid) if reduction(mid) >= target else (mid, hi)
        rates = rates_at(hi)
        groups.masked = masks_at(rates)
        pruned = groups.remove()
        most = (
            1
            - ShapeCounter(pruned, ctx.in_channels, ctx.input_size)()
            / ShapeCounter(dense, ctx.in_channels, ctx.input_size)()
        )  # measured on the pruned network (the prediction above only chose the rates)
        if abs(most - target) > tolerance:
            raise MethodError(
                f"PFEC reached macs_reduction {most:.4f} for target {target:.4f} (tolerance {tolerance}): "
                "one channel of a layer moves the MACs by more than the tolerance"
            )
        info = {
            "criterion": "pfec",
            "achieved": most,
            "target": target,
            "target_kind": ctx.target.kind,
            "tolerated_drop": hi,
            "rates": {k: round(v, 4) for k, v in rates.items()},
            "sensitivity": {k: [round(d, 3) for d in v] for k, v in drops.items()},
            "sensitivity_images": seen,
            "sensitivity_passes": 9 * len(layers) + 1,
        }
        prepared = Prepared(pruned.to(ctx.device), "finetune", ctx.epochs("finetune"), info)
        prepared.extra_forward_images = (9 * len(layers) + 1) * seen
        return prepared
