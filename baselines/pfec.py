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

import torch
import torch_pruning as tp
from torch import nn
from torch_pruning.pruner import function as fn

from baselines.contract import Estimate, MethodError, Prepared, register_method
from baselines.structured import DEFAULT_TOLERANCE, StructuredPruning, check_options, classifier_of
from tissuenet.counting import ShapeCounter

RATIOS = tuple(i / 10 for i in range(1, 10))  # the sensitivity grid
PFEC_OPTIONS = {"sensitivity_images": int, "tolerance": float}
DEFAULT_SENSITIVITY_IMAGES = 1024
BISECTION_STEPS = 40
OUT = (fn.prune_conv_out_channels, fn.prune_linear_out_channels)
ZEROED = OUT + (fn.prune_batchnorm_out_channels, fn.prune_depthwise_conv_out_channels)


def uncoupled_groups(model: nn.Module, example: torch.Tensor) -> list[tuple[str, int]]:
    """(conv name, its output channels) of every conv whose output channels no other conv shares."""
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=example)
    names = {m: n for n, m in model.named_modules()}
    keep = classifier_of(model)
    out = []
    for name, conv in model.named_modules():
        if not isinstance(conv, nn.Conv2d) or conv is keep or conv.groups == conv.out_channels > 1:
            continue
        group = graph.get_pruning_group(conv, fn.prune_conv_out_channels, idxs=list(range(conv.out_channels)))
        producers = [d for d, _ in group if d.pruning_fn in OUT]
        if len(producers) == 1 and conv.out_channels > 1 and names.get(producers[0].layer) == name:
            out.append((name, conv.out_channels))
    return out


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


def sensitivity(model: nn.Module, layers, batches, example) -> dict[str, list[float]]:
    """{layer: top-1 drop at each rate of RATIOS}, each layer pruned alone (simulated by zeroing)."""
    model.eval()
    base = _accuracy(model, batches)
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=example)
    drops = {}
    for name, width in layers:
        conv = model.get_submodule(name)
        order = _smallest_l1(conv, width)
        drops[name] = []
        for ratio in RATIOS:
            k = min(width - 1, int(ratio * width))
            group = graph.get_pruning_group(conv, fn.prune_conv_out_channels, idxs=order[:k])
            with _zeroed(group):
                drops[name].append(base - _accuracy(model, batches))
    return drops


class _zeroed:
    """Zero a group's channels (filters, biases, BN scale and shift, depthwise filters) and restore them."""

    def __init__(self, group) -> None:
        self.saved = []
        for dep, idxs in group:
            if dep.pruning_fn in ZEROED and idxs:
                for p in (getattr(dep.layer, "weight", None), getattr(dep.layer, "bias", None)):
                    if isinstance(p, torch.Tensor):
                        self.saved.append((p, list(idxs), p.data[idxs].clone()))

    def __enter__(self):
        for p, idxs, _ in self.saved:
            p.data[idxs] = 0
        return self

    def __exit__(self, *exc):
        for p, idxs, values in self.saved:
            p.data[idxs] = values


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


class MacsOfRates:
    """MACs of the model with each layer's smallest filters removed at given rates, without pruning it:
    one forward pass records every conv/linear layer's output positions (``ShapeCounter``), the
    dependency graph which layer's input and output widths each prunable layer's group changes."""

    IN = (fn.prune_conv_in_channels, fn.prune_linear_in_channels, fn.prune_depthwise_conv_in_channels)
    OUT = OUT + (fn.prune_depthwise_conv_out_channels,)

    def __init__(self, model: nn.Module, layers, example, in_channels: int, input_size: int) -> None:
        self.layers = dict(layers)
        self.counter = ShapeCounter(model, in_channels, input_size)
        graph = tp.DependencyGraph().build_dependency(model, example_inputs=example)
        self.out_of, self.in_of = {}, {}
        for name, width in layers:
            group = graph.get_pruning_group(
                model.get_submodule(name), fn.prune_conv_out_channels, idxs=list(range(width))
            )
            for dep, _ in group:
                if dep.pruning_fn in self.OUT:
                    self.out_of[dep.layer] = name
                if dep.pruning_fn in self.IN:
                    self.in_of[dep.layer] = name

    def __call__(self, rates: dict[str, float]) -> int:
        kept = {name: width - _removed(rates[name], width) for name, width in self.layers.items()}
        total = 0
        for module, positions in self.counter.positions.items():
            linear = isinstance(module, nn.Linear)
            c_out = module.out_features if linear else module.out_channels
            c_in = module.in_features if linear else module.in_channels
            groups = 1 if linear else module.groups
            depthwise = groups > 1 and groups == c_in == c_out
            c_out = kept.get(self.out_of.get(module), c_out)
            c_in = c_out if depthwise else kept.get(self.in_of.get(module), c_in)
            per_group_in = 1 if depthwise else c_in // groups
            kernel = 1 if linear else int(torch.tensor(module.kernel_size).prod())
            total += positions * kernel * per_group_in * c_out
        return total


def prune_at(model: nn.Module, rates: dict[str, float], example) -> nn.Module:
    """A pruned copy: each layer's smallest-L1 filters removed at its rate."""
    pruned = copy.deepcopy(model)
    graph = tp.DependencyGraph().build_dependency(pruned, example_inputs=example)
    for name, rate in rates.items():
        conv = pruned.get_submodule(name)
        k = _removed(rate, conv.out_channels)
        if k > 0:
            graph.get_pruning_group(conv, fn.prune_conv_out_channels, idxs=_smallest_l1(conv, k)).prune()
    return pruned


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
        layers = uncoupled_groups(model, example)
        images = plan.options.get("sensitivity_images", DEFAULT_SENSITIVITY_IMAGES)
        est = super().estimate(plan)
        return Estimate(
            est.epochs, est.macs, est.params, est.reference_epochs, extra_forward_images=(9 * len(layers) + 1) * images
        )

    def prepare(self, ctx):
        model = ctx.dense_model()
        example = ctx.example(1)
        layers = uncoupled_groups(model, example)
        if not layers:
            raise MethodError(f"PFEC finds no convolution of {ctx.model_name} whose channels no residual couples")
        images = ctx.options.get("sensitivity_images", DEFAULT_SENSITIVITY_IMAGES)
        batches = _batches(ctx.train_loader, images)
        seen = sum(len(y) for _, y in batches)
        drops = sensitivity(model, layers, batches, example)
        macs_of = MacsOfRates(model, layers, example, ctx.in_channels, ctx.input_size)
        base = macs_of({name: 0.0 for name, _ in layers})

        def rates_at(delta: float) -> dict[str, float]:
            return {name: rate_for(drops[name], delta, k) for k, (name, _) in enumerate(layers)}

        def reduction(delta: float) -> float:
            return 1 - macs_of(rates_at(delta)) / base

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
        pruned = prune_at(model, rates, example)
        most = (
            1
            - ShapeCounter(pruned, ctx.in_channels, ctx.input_size)()
            / ShapeCounter(model, ctx.in_channels, ctx.input_size)()
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
