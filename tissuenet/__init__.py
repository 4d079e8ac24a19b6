"""TissueNet / BUnit-Net: compact networks built by stacking small independent basic units.

Follows "Compact Neural Networks via Stacking Designed Basic Units" (arXiv 2205.01508) and its
journal version BUnit-Net (IEEE TPAMI 2024), as docs/method.md describes it; each module cites its section.
"""

from tissuenet.algorithm1 import TissueBuilder, draw_counts, draw_to_width, resolve_replacement
from tissuenet.counting import count_macs, count_macs_effective, count_params, profile
from tissuenet.metrics import tca, tca_ratio, tsa, tsa_ratio
from tissuenet.registry import (
    ModelOptionError,
    UnknownModelError,
    create_model,
    get_entry,
    list_models,
    register_model,
)
from tissuenet.stacked import PerUnitStack, StackedLayer
from tissuenet.units import PAPER_UNITS, BasicUnit, UnitSpec, parse_units

__all__ = [
    "PAPER_UNITS",
    "BasicUnit",
    "ModelOptionError",
    "PerUnitStack",
    "StackedLayer",
    "TissueBuilder",
    "UnitSpec",
    "UnknownModelError",
    "count_macs",
    "count_macs_effective",
    "count_params",
    "create_model",
    "draw_counts",
    "draw_to_width",
    "get_entry",
    "list_models",
    "parse_units",
    "profile",
    "register_model",
    "resolve_replacement",
    "tca",
    "tca_ratio",
    "tsa",
    "tsa_ratio",
]
