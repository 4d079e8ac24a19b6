"""Basic units (docs/method.md §1): the tiny independent networks a stacked layer is made of.

A unit is written ``c_in'-c_h-c_out'`` (input, hidden and output channels). Its two weight layers
are ``conv(d x d, c_in' -> c_h) -> BN -> ReLU -> conv(d x d, c_h -> c_out') -> BN (-> ReLU)``, or
the same with fully connected layers (``kind="fc"``). :class:`BasicUnit` is the literal, one
module per unit form used as the reference implementation; the fast paths live in ``stacked.py``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from torch import nn

# The six units the journal explores (its Fig. 3); the main experiments use 2-c_h-2 / 2-c_h-4.
PAPER_UNITS = {"A": "1-2-1", "B": "1-2-2", "C": "1-2-3", "D": "2-1-2", "E": "2-1-1", "F": "3-2-1"}

_SPEC_RE = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*-\s*(\d+)\s*$")


@dataclass(frozen=True, order=True)
class UnitSpec:
    """Channel widths of one basic unit: ``c_in'-c_h-c_out'``."""

    c_in: int
    c_h: int
    c_out: int

    def __post_init__(self) -> None:
        if min(self.c_in, self.c_h, self.c_out) < 1:
            raise ValueError(f"unit widths must be positive, got {self}")

    @classmethod
    def parse(cls, spec: str | UnitSpec) -> UnitSpec:
        """Parse ``"2-4-2"`` (or a paper letter ``"A"``..``"F"``) into a spec."""
        if isinstance(spec, UnitSpec):
            return spec
        text = PAPER_UNITS.get(str(spec).strip().upper(), str(spec))
        match = _SPEC_RE.match(text)
        if not match:
            raise ValueError(f"unit spec must look like 'c_in-c_h-c_out' (e.g. '2-4-2'), got {spec!r}")
        return cls(*(int(g) for g in match.groups()))

    def with_ratio(self, ratio: int) -> UnitSpec:
        """The same unit with ``c_out' = ratio * c_in'`` (the 2-4-2 -> 2-4-4 rule of widening blocks)."""
        return UnitSpec(self.c_in, self.c_h, self.c_in * ratio)

    def __str__(self) -> str:
        return f"{self.c_in}-{self.c_h}-{self.c_out}"


def parse_units(specs) -> tuple[UnitSpec, ...]:
    """Parse a design set given as ``"2-4-2,2-8-2"``, a list of strings, or specs."""
    if isinstance(specs, (str, UnitSpec)):
        specs = [s for s in str(specs).split(",") if s.strip()] if isinstance(specs, str) else [specs]
    parsed = tuple(UnitSpec.parse(s) for s in specs)
    if not parsed:
        raise ValueError("a unit design set needs at least one unit spec")
    return parsed


class BasicUnit(nn.Module):
    """One unit as its own small network (the reference form, one module per unit)."""

    def __init__(
        self,
        spec: UnitSpec,
        kind: str = "conv",
        kernel_size: int = 3,
        stride: int = 1,
        final_relu: bool = False,
        padding: int | None = None,
    ) -> None:
        super().__init__()
        self.spec = spec
        if kind == "conv":
            pad = kernel_size // 2
            first_pad = pad if padding is None else padding
            self.op1 = nn.Conv2d(spec.c_in, spec.c_h, kernel_size, stride, first_pad, bias=False)
            self.op2 = nn.Conv2d(spec.c_h, spec.c_out, kernel_size, 1, pad, bias=False)
            self.bn1, self.bn2 = nn.BatchNorm2d(spec.c_h), nn.BatchNorm2d(spec.c_out)
        elif kind == "fc":
            self.op1 = nn.Linear(spec.c_in, spec.c_h, bias=False)
            self.op2 = nn.Linear(spec.c_h, spec.c_out, bias=False)
            self.bn1, self.bn2 = nn.BatchNorm1d(spec.c_h), nn.BatchNorm1d(spec.c_out)
        else:
            raise ValueError(f"unit kind must be 'conv' or 'fc', got {kind!r}")
        self.relu = nn.ReLU(inplace=False)
        self.final_relu = final_relu

    def forward(self, x):
        x = self.bn2(self.op2(self.relu(self.bn1(self.op1(x)))))
        return self.relu(x) if self.final_relu else x
