"""Algorithm 1 of the paper (docs/method.md §3): choose units, draw them at random, size the rest.

Two uses:

* :func:`draw_to_width` fills a fixed width with units drawn from a design set (backbones, where
  residual connections fix every width); only units whose ``c_out'/c_in'`` equals the layer's
  widening ratio are eligible, and a set without such a unit is adapted (2-4-2 -> 2-4-4).
* :func:`draw_counts` draws ``m_j`` units for each of ``J`` stacked layers (free-standing stacks
  such as the MLP and LeNet toys); the normal layers around them are then sized to fit.

Every draw goes through :class:`TissueBuilder`, which records the drawn units per layer name, so
``plan=model.tissue_options["plan"]`` rebuilds the exact same model.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from tissuenet.stacked import StackedLayer
from tissuenet.units import UnitSpec, parse_units


def draw_to_width(design_set: Sequence[UnitSpec], in_width: int, out_width: int, rng: random.Random):
    """Draw units (uniformly from the eligible set) until their inputs fill ``in_width`` exactly."""
    if out_width % in_width and in_width % out_width:
        raise ValueError(f"cannot stack units from width {in_width} to {out_width}")
    eligible = [u for u in design_set if u.c_out * in_width == u.c_in * out_width]
    if not eligible:
        if out_width % in_width:
            raise ValueError(f"no unit in {[str(u) for u in design_set]} maps width {in_width} to {out_width}")
        eligible = sorted({u.with_ratio(out_width // in_width) for u in design_set})
    drawn, left = [], in_width
    while left:
        fits = [u for u in eligible if u.c_in <= left]
        if not fits:
            raise ValueError(f"units {[str(u) for u in eligible]} cannot fill width {in_width} exactly ({left} left)")
        unit = fits[0] if len(fits) == 1 else rng.choice(fits)
        drawn.append(unit)
        left -= unit.c_in
    return tuple(drawn)


def draw_counts(design_set: Sequence[UnitSpec], counts: Sequence[int], rng: random.Random):
    """Draw ``counts[j]`` units for stacked layer ``j`` (Algorithm 1, lines 'for each layer')."""
    if any(m < 1 for m in counts):
        raise ValueError(f"unit counts must be positive, got {list(counts)}")
    return [tuple(rng.choice(design_set) for _ in range(m)) for m in counts]


# Replacement strategies (docs/method.md §4). Stages are numbered from 1.
PRESETS = ("ours", "ours_r", "all", "none")


def resolve_replacement(replace, num_stages: int, keep_first: bool | None = None) -> tuple[tuple[int, ...], bool]:
    """Turn a strategy into (replaced stages, keep the first block of each replaced stage dense).

    * ``"ours"``: every block of the middle stages (all but the first and the last).
    * ``"ours_r"``: the same stages, but the first block of each, the one that changes the
      width or resolution, stays dense. The journal does not define 'r' precisely; this choice
      reproduces the published ResNet-20 'r' FLOPs cut within one point (see README).
    * ``"all"`` / ``"none"``; or explicit stage numbers: ``"2,3"``, ``"2-3"``, ``[2, 3]``.
    """
    first = False
    if isinstance(replace, str) and replace in PRESETS:
        if replace in ("ours", "ours_r"):
            stages = tuple(range(2, num_stages)) if num_stages > 2 else tuple(range(1, num_stages + 1))
            first = replace == "ours_r"
        else:
            stages = tuple(range(1, num_stages + 1)) if replace == "all" else ()
    else:
        stages = _parse_stages(replace)
        bad = [s for s in stages if not 1 <= s <= num_stages]
        if bad:
            raise ValueError(f"stage(s) {bad} out of range: this backbone has stages 1..{num_stages}")
    return stages, first if keep_first is None else bool(keep_first)


def _parse_stages(replace) -> tuple[int, ...]:
    if isinstance(replace, int):
        return (replace,)
    if isinstance(replace, str):
        text = replace.replace(" ", "")
        try:
            if "-" in text and "," not in text:
                lo, hi = (int(v) for v in text.split("-"))
                return tuple(range(lo, hi + 1))
            return tuple(int(v) for v in text.split(",") if v)
        except ValueError:
            raise ValueError(
                f"replace must be one of {PRESETS} or stage numbers like '2,3' or '2-3', got {replace!r}"
            ) from None
    return tuple(int(v) for v in replace)


def seed_free(options: dict, default_units="2-4-2") -> bool:
    """True when the seed cannot change the architecture (only its weights): a fixed ``plan``, or one unit
    spec in every design set (Algorithm 1 draws units at random only from a set of several)."""
    if options.get("plan") is not None:
        return True
    sets = [options.get("units", default_units), *(options.get("convs") or {}).values()]
    return all(len(parse_units(u)) == 1 for u in sets)


@dataclass
class TissueBuilder:
    """Decides which blocks become stacked layers, draws their units, and records everything."""

    units: str | Sequence = "2-4-2"
    replace: object = "ours"
    seed: int = 0
    plan: dict | None = None
    keep_first: bool | None = None
    num_stages: int = 1
    # single convolutions as stacked layers, beyond whole blocks: {"4.0": "2-4-4"} (the first conv of
    # stage 4's block 0), {"head": "2-4-8"} (MobileNetV2's head conv); each with its own unit spec
    convs: dict | None = None
    design_set: tuple[UnitSpec, ...] = field(init=False)
    stages: tuple[int, ...] = field(init=False)
    drawn: dict[str, list[str]] = field(init=False, default_factory=dict)
    extra: dict = field(init=False, default_factory=dict)  # family-specific options (recorded)

    def __post_init__(self) -> None:
        self.design_set = parse_units(self.units)
        self.stages, self.keep_first = resolve_replacement(self.replace, self.num_stages, self.keep_first)
        self._rng = random.Random(self.seed)
        self.convs = dict(self.convs or {})
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in self.convs.items()):
            raise ValueError(f"convs maps 'stage.block' (or 'head') to a unit spec, got {self.convs!r}")
        self._conv_units = {k: parse_units(v) for k, v in self.convs.items()}
        self._used: set[str] = set()

    def conv_units(self, where: str) -> tuple[UnitSpec, ...] | None:
        """The design set of a single convolution replaced by units (``convs``), or None."""
        if where in self._conv_units:
            self._used.add(where)
        return self._conv_units.get(where)

    def check_convs_used(self) -> None:
        unused = sorted(set(self._conv_units) - self._used)
        if unused:
            raise ValueError(f"convs names {unused}: no such single convolution in this backbone")

    def replaces(self, stage: int, block: int) -> bool:
        """Is block ``block`` (0-based) of stage ``stage`` (1-based) a stacked layer?"""
        return stage in self.stages and not (self.keep_first and block == 0)

    def units_for(self, name: str, in_width: int, out_width: int, design_set=None) -> tuple[UnitSpec, ...]:
        if self.plan is not None:
            if name not in self.plan:
                raise ValueError(f"plan has no entry for layer {name!r}")
            units = tuple(UnitSpec.parse(u) for u in self.plan[name])
        else:
            units = draw_to_width(design_set or self.design_set, in_width, out_width, self._rng)
        self.drawn[name] = [str(u) for u in units]
        return units

    def units_counted(self, counts: Sequence[int]) -> list[tuple[UnitSpec, ...]]:
        """Units of stacked layers ``stack1..stackJ`` with ``m_j`` units each (or from the plan)."""
        if self.plan is not None:
            layers = [
                tuple(UnitSpec.parse(u) for u in self.plan[k]) for k in sorted(self.plan) if k.startswith("stack")
            ]
        else:
            layers = draw_counts(self.design_set, counts, self._rng)
        for j, units in enumerate(layers, start=1):
            self.drawn[f"stack{j}"] = [str(u) for u in units]
        return layers

    def stacked(self, name: str, in_width: int, out_width: int, design_set=None, **kwargs) -> StackedLayer:
        layer = StackedLayer(self.units_for(name, in_width, out_width, design_set), **kwargs)
        if layer.in_channels != in_width or layer.out_channels != out_width:
            raise ValueError(
                f"plan for {name!r} maps {layer.in_channels}->{layer.out_channels}, need {in_width}->{out_width}"
            )
        return layer

    def options(self) -> dict:
        """JSON-ready record of how the TissueNet variant was built (stored with every result)."""
        return {
            "units": [str(u) for u in self.design_set],
            "replace": self.replace if isinstance(self.replace, str) else list(self.replace),
            "stages": list(self.stages),
            "keep_first": self.keep_first,
            "seed": self.seed,
            **({"convs": dict(self.convs)} if self.convs else {}),
            **self.extra,
            "plan": dict(self.drawn),
        }


def attach(model, builder: TissueBuilder | None):
    """Record the TissueNet options on the model (``model.tissue_options``; None for dense)."""
    model.tissue_options = builder.options() if builder is not None else None
    return model
