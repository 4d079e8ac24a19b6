"""Loading a suite: a shipped name or a .toml path, read, ``--set`` overrides applied, plugins imported,
then validated whole (``checks.py``) into a :class:`~benchmarks.suites.suite.Suite`."""

from __future__ import annotations

import tomllib
from pathlib import Path

from benchmarks.suites.checks import parse_suite
from benchmarks.suites.overrides import MAX_DEPTH, OverrideError, apply, describe, nesting
from benchmarks.suites.settings import SettingsError
from benchmarks.suites.suite import Suite, SuiteError
from tissuenet import plugins

SUITES_DIR = Path(__file__).parent  # the shipped suite files live beside this module


def list_suites() -> list[str]:
    return sorted(p.stem for p in SUITES_DIR.glob("*.toml"))


def suite_path(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if not path.suffix:
        path = SUITES_DIR / f"{name_or_path}.toml"
        if not path.exists():
            raise SuiteError(
                f"unknown suite {name_or_path!r}; shipped suites: {', '.join(list_suites())}, or give a .toml path"
            )
    if not path.is_file():
        raise SuiteError(f"suite file {path} does not exist")
    return path


def read_suite_toml(path: Path) -> dict:
    """The suite file's table (errors name what is wrong; the caller names the file)."""
    try:
        raw = tomllib.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise SuiteError("not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise SuiteError(f"not valid TOML: {exc}") from exc
    except RecursionError:
        raw = None
    if raw is None or nesting(raw) > MAX_DEPTH:
        raise SuiteError(f"a value nests deeper than {MAX_DEPTH} levels: not a suite setting")
    return raw


def load_suite(name_or_path: str, overrides: dict | None = None) -> Suite:
    """A validated suite; ``overrides`` (``--set``, see ``overrides.py``) are applied before validation."""
    path = suite_path(name_or_path)
    overrides = dict(overrides or {})
    shown = describe(overrides)
    where = f"{path} with --set {shown if len(shown) <= 200 else shown[:200] + '...'}" if overrides else str(path)
    try:
        raw = apply(read_suite_toml(path), overrides)
        named = raw.get("plugins", [])
        if not isinstance(named, list):
            raise SuiteError(f"'plugins' must be a list of module names, got {named!r}")
        plugins.load(named, where=f"{path} plugins")  # before validation: the suite may name their methods
        suite = parse_suite(raw, overrides)
    except (SuiteError, SettingsError, OverrideError) as exc:
        raise SuiteError(f"{where}: {exc}") from exc
    suite.path = path
    suite.plugins = tuple(named)
    return suite
