"""Every settings section of a suite as a typed dataclass: defaults and validation in one place.

A section is a frozen dataclass whose fields carry their rules in ``metadata``:
``check(field: rule)`` with ``min``/``max``/``choices``/``below`` and a one-line ``doc``.
``Section.from_dict(raw, where)`` rejects unknown keys, wrong types and values out of range with
one line naming the section, the field and what is allowed (:class:`SettingsError`). The
suite file's ``[train]``, ``[finetune]``, ``[data]``, ``[budgets]``, ``[measure]`` and
``[execution]`` tables all go through it, so "bad input stops before anything trains" holds
for every field.
"""

from __future__ import annotations

import math
import types
import typing
from dataclasses import MISSING, asdict, dataclass, field, fields, replace


class SettingsError(ValueError):
    """A setting has the wrong type, is out of range, or does not exist."""


def setting(default=MISSING, *, doc: str, min=None, max=None, above=None, below=None, choices=None, item_min=None):  # noqa: A002
    """A dataclass field with its rule: ``min <= v <= max``, ``above < v < below``, ``v in choices``."""
    rule = {
        "doc": doc,
        "min": min,
        "max": max,
        "above": above,
        "below": below,
        "choices": choices,
        "item_min": item_min,
    }
    if isinstance(default, (list, dict, set)):
        raise TypeError("use tuples for sequence defaults (settings are frozen)")
    return field(default=default, metadata=rule)


def _type_ok(value, hint) -> bool:
    origin = typing.get_origin(hint)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint in (bool, str):
        return isinstance(value, hint)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if origin is tuple:
        (item, _ellipsis) = typing.get_args(hint)
        return isinstance(value, (list, tuple)) and all(_type_ok(v, item) for v in value)
    return True


def _type_name(hint) -> str:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(h) for h in typing.get_args(hint))
    if origin is tuple:
        return f"a list of {_type_name(typing.get_args(hint)[0])}"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string", type(None): "absent"}.get(
        hint, str(hint)
    )


def _allowed(rule: dict) -> str:
    parts = []
    if rule["choices"] is not None:
        parts.append("one of " + ", ".join(map(repr, rule["choices"])))
    if rule["min"] is not None:
        parts.append(f">= {rule['min']}")
    if rule["max"] is not None:
        parts.append(f"<= {rule['max']}")
    if rule["above"] is not None:
        parts.append(f"> {rule['above']}")
    if rule["below"] is not None:
        parts.append(f"< {rule['below']}")
    if rule["item_min"] is not None:
        parts.append(f"each >= {rule['item_min']}")
    return " and ".join(parts)


@dataclass(frozen=True)
class Section:
    """Base of every settings section (see the module docstring)."""

    SECTION: typing.ClassVar[str] = ""

    @classmethod
    def from_dict(cls, raw: dict | None, where: str | None = None):
        where = where or f"[{cls.SECTION}]"
        raw = {} if raw is None else raw
        if not isinstance(raw, dict):
            raise SettingsError(f"{where} must be a table of settings, got {raw!r}")
        hints = typing.get_type_hints(cls)
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(raw) - set(known))
        if unknown:
            raise SettingsError(f"{where}: unknown setting(s) {unknown}; known: {sorted(known)}")
        missing = [n for n, f in known.items() if f.default is MISSING and n not in raw]
        if missing:
            raise SettingsError(f"{where}: {', '.join(missing)} must be set")
        values = {}
        for name, value in raw.items():
            hint, rule = hints[name], known[name].metadata
            if not _type_ok(value, hint):
                raise SettingsError(f"{where} {name} = {value!r}: must be {_type_name(hint)}")
            if isinstance(value, list):
                value = tuple(value)
            _check_range(where, name, value, rule)
            values[name] = value
        obj = cls(**values)
        obj.validate(where)
        return obj

    def validate(self, where: str) -> None:
        """Cross-field rules of a section (override)."""

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def updated(self, changes: dict, where: str):
        """A copy with ``changes`` applied, validated like a parsed section."""
        return type(self).from_dict(self.to_dict() | dict(changes), where)

    @classmethod
    def describe(cls) -> list[tuple[str, object, str]]:
        """(name, default, doc) of every field: for the README and ``--help`` texts."""
        return [(f.name, None if f.default is MISSING else f.default, f.metadata.get("doc", "")) for f in fields(cls)]


def _check_range(where: str, name: str, value, rule: dict) -> None:
    if not rule:
        return
    bad = False
    if isinstance(value, float) and not math.isfinite(value):
        bad = True
    if rule.get("choices") is not None and value not in rule["choices"]:
        bad = True
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if rule.get("min") is not None and value < rule["min"]:
            bad = True
        if rule.get("max") is not None and value > rule["max"]:
            bad = True
        if rule.get("above") is not None and value <= rule["above"]:
            bad = True
        if rule.get("below") is not None and value >= rule["below"]:
            bad = True
    if isinstance(value, tuple) and rule.get("item_min") is not None:
        if not value or any(v < rule["item_min"] for v in value):
            bad = True
    if bad:
        raise SettingsError(f"{where} {name} = {value!r}: allowed {_allowed(rule) or 'finite values'}")


__all__ = ["Section", "SettingsError", "replace", "setting"]
