"""``--set SECTION.KEY=VALUE``: change any suite field from the command line (a quick pass of a long suite).

Overrides are applied to the suite file's TOML table *before* it is validated, so a bad value
gets exactly the message (and exit code) the same value gets in the file. Values are TOML
(``3``, ``0.5``, ``true``, ``[0, 1, 2]``, ``"adam"``); a bare word that is not TOML is taken as a
string (``train.optimizer=adam``), as Hydra does.

Paths: ``train.lr``, ``budgets.dense_epochs``, ``data.train_limit``, ``measure.latency``,
``seeds`` (a top-level key), and one method by its label: ``method.prune_slimming.options.slimming_epochs``
(``method.*.KEY`` sets it on every ``[[method]]``).

Overrides that change what a job computes enter every job's id (:func:`identity_overrides`), so a
quick pass never mixes with the real results; the ones that only select jobs (``seeds``,
``datasets``, ``models``) do not: seed 3 of a quick list of seeds is the suite's own seed-3 job.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import tomllib

SELECTION_KEYS = ("seeds", "datasets", "models")  # choose jobs; never change one job's result
_BARE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:+-]*$")
_PATH = re.compile(r"^[A-Za-z_*][A-Za-z0-9_*@.+-]*$")


MAX_DEPTH = 16  # of nested lists and tables in one value: a suite setting needs 3 at most


def nesting(value) -> int:
    """How deeply lists and tables nest in ``value`` (iteratively: no recursion on hostile input)."""
    deepest, todo = 0, [(value, 0)]
    while todo:
        item, depth = todo.pop()
        if isinstance(item, (list, dict)):
            depth += 1
            deepest = max(deepest, depth)
            if depth > MAX_DEPTH:
                break
            todo += [(v, depth) for v in (item.values() if isinstance(item, dict) else item)]
    return deepest


class OverrideError(ValueError):
    """A ``--set`` that is not ``PATH=VALUE`` or names no suite field."""


def parse_value(text: str):
    """A TOML value (``3``, ``[0, 1]``, ``true``, ``"x"``), or a bare word as a string."""
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except RecursionError:
        value = None
        depth = MAX_DEPTH + 1
    except tomllib.TOMLDecodeError:
        if _BARE.match(text):
            return text
        raise OverrideError(f"--set value {text!r} is not a TOML value (quote strings: '\"...\"')") from None
    else:
        depth = nesting(value)
    if depth > MAX_DEPTH:
        raise OverrideError(f"--set value {text[:40]!r}... nests deeper than {MAX_DEPTH} levels: not a suite setting")
    return value


def parse(pairs: list[str] | None) -> dict[str, object]:
    """``["train.lr=0.05", "seeds=[0,1]"]`` -> ``{"train.lr": 0.05, "seeds": [0, 1]}`` (later wins)."""
    out: dict[str, object] = {}
    for pair in pairs or []:
        path, sep, raw = pair.partition("=")
        path = path.strip()
        if not sep or not path or not _PATH.match(path) or ".." in path or path.endswith("."):
            raise OverrideError(f"--set expects SECTION.KEY=VALUE (for example train.lr=0.05), got {pair!r}")
        out[path] = parse_value(raw.strip())
    return out


def apply(raw: dict, overrides: dict[str, object]) -> dict:
    """A copy of the suite's TOML table with every override set (new keys are created; validation follows)."""
    raw = copy.deepcopy(raw)
    for path, value in overrides.items():
        parts = path.split(".")
        if parts[0] == "method":
            _apply_method(raw, path, parts[1:], value)
        else:
            _set(raw, parts, value, path)
    return raw


def _apply_method(raw: dict, path: str, parts: list[str], value) -> None:
    if len(parts) < 2:
        raise OverrideError(f"--set {path}: a method is changed as method.LABEL.KEY (or method.*.KEY)")
    label, keys = parts[0], parts[1:]
    methods = raw.get("method")
    if not isinstance(methods, list):
        raise OverrideError(f"--set {path}: the suite has no [[method]] entries")
    chosen = [m for m in methods if isinstance(m, dict) and (label == "*" or m.get("label", m.get("name")) == label)]
    if not chosen:
        labels = [m.get("label", m.get("name")) for m in methods if isinstance(m, dict)]
        raise OverrideError(f"--set {path}: no [[method]] labelled {label!r}; labels: {', '.join(map(str, labels))}")
    for m in chosen:
        _set(m, keys, value, path)


def _set(table: dict, keys: list[str], value, path: str) -> None:
    for key in keys[:-1]:
        child = table.setdefault(key, {})
        if not isinstance(child, dict):
            raise OverrideError(f"--set {path}: {key!r} is {child!r}, not a table")
        table = child
    table[keys[-1]] = copy.deepcopy(value)


def identity_overrides(overrides: dict[str, object]) -> dict[str, object]:
    """The overrides that change what a job computes (everything but the job selection)."""
    return {k: v for k, v in overrides.items() if k not in SELECTION_KEYS}


def digest(overrides: dict[str, object]) -> str:
    """A short, stable name for a set of overrides (empty: none that change a job)."""
    changing = identity_overrides(overrides)
    if not changing:
        return ""
    return hashlib.sha256(json.dumps(changing, sort_keys=True).encode()).hexdigest()[:8]


def describe(overrides: dict[str, object]) -> str:
    """``train.lr=0.05, seeds=[0, 1]`` for show/report lines."""
    return ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(overrides.items()))
