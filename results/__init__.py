"""Data, not code: the paper's published rows and presets (``paper/``) and the committed regression
references (``reference/``). A package only so that an installed copy (``pip install .``) carries
them: every reader goes through :func:`path`, which works from a checkout and from site-packages.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

PAPER_TABLES = ("paper", "bunitnet_tables.csv")
PRESETS = ("paper", "presets.toml")


def path(*parts: str) -> Path:
    """A shipped data file (``path("reference", "smoke.csv")``)."""
    return Path(str(files(__name__).joinpath(*parts)))


def reference(suite: str) -> Path:
    """The committed regression reference of a suite (it may not exist)."""
    return path("reference", f"{suite}.csv")


def in_checkout() -> bool:
    """True when these files are a source checkout's (so ``check --update`` may rewrite them)."""
    here = Path(__file__).resolve().parent
    return (here.parent / "pyproject.toml").is_file() and "site-packages" not in here.parts
