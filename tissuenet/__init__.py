"""TissueNet / BUnit-Net: compact networks built by stacking small independent basic units.

Follows "Compact Neural Networks via Stacking Designed Basic Units" (arXiv 2205.01508) and its
journal version BUnit-Net (IEEE TPAMI 2024), as docs/method.md describes it; each module cites its section.

Names load on first use (``tissuenet.create_model`` imports torch then), so the standard-library
modules of this package (``tissuenet.names``, ``tissuenet.plugins``) stay cheap to import.
"""

from __future__ import annotations

import importlib

# public name -> the module that defines it
_API = {
    "TissueBuilder": "tissuenet.algorithm1",
    "draw_counts": "tissuenet.algorithm1",
    "draw_to_width": "tissuenet.algorithm1",
    "resolve_replacement": "tissuenet.algorithm1",
    "count_macs": "tissuenet.counting",
    "count_macs_effective": "tissuenet.counting",
    "count_params": "tissuenet.counting",
    "profile": "tissuenet.counting",
    "tca": "tissuenet.metrics",
    "tca_ratio": "tissuenet.metrics",
    "tsa": "tissuenet.metrics",
    "tsa_ratio": "tissuenet.metrics",
    "ModelOptionError": "tissuenet.registry",
    "UnknownModelError": "tissuenet.registry",
    "create_model": "tissuenet.registry",
    "get_entry": "tissuenet.registry",
    "list_models": "tissuenet.registry",
    "register_model": "tissuenet.registry",
    "PerUnitStack": "tissuenet.stacked",
    "StackedLayer": "tissuenet.stacked",
    "PAPER_UNITS": "tissuenet.units",
    "BasicUnit": "tissuenet.units",
    "UnitSpec": "tissuenet.units",
    "parse_units": "tissuenet.units",
}
__all__ = sorted(_API)


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module 'tissuenet' has no attribute {name!r}")
    value = getattr(importlib.import_module(_API[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
