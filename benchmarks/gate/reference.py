"""A reference file: its columns, rules and context, read and validated (a bad file is an error, never a pass)."""

from __future__ import annotations

import io
import math
from pathlib import Path

import pandas as pd

from benchmarks.store.metric_table import BY_NAME, names

VALUES = tuple(names(check="tolerance") + names(check="exact"))  # top1, params, params_nonzero, macs, macs_effective


REQUIRED = ("job_id", "label", *VALUES)


IDENTITY = ["job_id", "suite", "dataset", "model", "label", "seed", "group_hash", "train_hash"]


MIN_TOLERANCE = 0.5  # top-1 points: the narrowest band, so that a reference of identical seeds is not a knife edge


MIN_SEEDS = 8  # a prediction interval from fewer seeds is too wide to catch anything, or too unsure to trust


CONFIDENCE = 0.99  # for one new run, all its prediction-interval bounds together (Bonferroni over them)


CONTEXT = ("threads", "executor", "device_name", "cpu_isa", "torch", "device")


RULES = ("exact", "pi99", "tolerance")


EXTRA = ("n_seeds", "top1_std", "tolerance_top1")  # informative columns a reference may have


KNOWN_COLUMNS = {*IDENTITY, *VALUES, *EXTRA, *(f"{m}_{part}" for m in VALUES for part in ("bound", "rule"))}


# the widest band a bound may set: a real reference's top-1 band is 0.5 to a few points, its costs' a few percent
MAX_TOP1_BAND = 20.0  # points


MAX_COST_BAND = 0.5  # of the value


class CheckError(ValueError):
    """The reference file (or a tolerance) cannot be used: exit 2, never a pass."""


# -- reading ----------------------------------------------------------------------------------------------
def read_reference(path: Path) -> tuple[pd.DataFrame, dict]:
    """The reference rows and header, validated (CheckError names what is wrong)."""
    try:
        text = Path(path).read_bytes().decode("utf-8-sig")  # spreadsheet programs save CSV with a BOM
    except FileNotFoundError:
        raise CheckError(f"no reference file {path} (create one with --update)") from None
    except UnicodeDecodeError:
        raise CheckError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise CheckError(f"{path}: cannot be read ({exc.strerror})") from None
    meta = {}
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        key, _, value = line[1:].partition(":")
        meta[key.strip()] = value.strip()
    body = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    try:
        table = pd.read_csv(io.StringIO(body), keep_default_na=False, na_values=[""], dtype={"job_id": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise CheckError(f"{path}: not a CSV table ({str(exc).strip()[:120]})") from None
    missing = [c for c in REQUIRED if c not in table.columns]
    if missing:
        raise CheckError(f"{path}: required column(s) {missing} missing; a reference has {list(REQUIRED)}")
    unknown = [c for c in table.columns if c not in KNOWN_COLUMNS]
    if unknown:
        raise CheckError(f"{path}: unknown column(s) {unknown[:5]}; a reference's columns: {sorted(KNOWN_COLUMNS)}")
    if table.empty:
        raise CheckError(f"{path}: no reference rows")
    numeric = [*VALUES, *(f"{m}_bound" for m in VALUES if f"{m}_bound" in table), "tolerance_top1"]
    for col in (c for c in numeric if c in table):
        values = pd.to_numeric(table[col], errors="coerce").astype(float)
        bad = table.loc[~values.map(math.isfinite), "job_id"].tolist()
        if bad:
            raise CheckError(f"{path}: column {col} has an empty, non-numeric or infinite cell for {bad[:3]}")
        if col == "tolerance_top1" and (values < 0).any():
            raise CheckError(f"{path}: tolerance_top1 must be >= 0")
        table[col] = values
    for m in VALUES:
        if f"{m}_rule" in table:
            bad = table.loc[~table[f"{m}_rule"].isin(RULES), "job_id"].tolist()
            if bad:
                raise CheckError(f"{path}: column {m}_rule must be one of {RULES}; not so for {bad[:3]}")
    if table["job_id"].duplicated().any():
        raise CheckError(f"{path}: job {table.loc[table['job_id'].duplicated(), 'job_id'].iloc[0]!r} is listed twice")
    if "tolerance_top1" in meta:
        meta_tol = _number(meta["tolerance_top1"])
        if meta_tol is None or meta_tol < 0:
            raise CheckError(f"{path}: header tolerance_top1 must be a number >= 0, got {meta['tolerance_top1']!r}")
    for row in table.to_dict("records"):
        for metric in VALUES:
            why = implausible(row, metric)
            if why:
                raise CheckError(f"{path}: job {row['job_id']}: {why}")
    return table, meta


def implausible(row: dict, metric: str) -> str | None:
    """What is wrong with one reference cell's value and bound (None: plausible): a value outside its range, a
    bound on the wrong side of the value, or a band wider than any real reference has."""
    value = float(row[metric])
    if metric == "top1" and not 0 <= value <= 100:
        return f"top1 = {value:g} is not a percentage"
    if metric != "top1" and value < 0:
        return f"{metric} = {value:g} is negative"
    bound = row.get(f"{metric}_bound")
    if bound is None or pd.isna(bound):
        return None
    rule = row.get(f"{metric}_rule")
    higher = BY_NAME[metric].better == "higher"
    band = (value - bound) if higher else (bound - value)
    widest = MAX_TOP1_BAND if metric == "top1" else MAX_COST_BAND * value
    if band < 0:
        return f"{metric}_bound = {bound:g} lies on the wrong side of the value {value:g}"
    if rule == "exact" and band != 0:
        return f"{metric}_rule exact needs {metric}_bound = {metric} ({value:g}), got {bound:g}"
    if band > widest:
        return f"{metric}_bound = {bound:g} is {band:g} from the value {value:g} (at most {widest:g}): implausibly wide"
    return None


def _number(text) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def context_of(table: pd.DataFrame) -> dict[str, str]:
    """The execution context of the runs in a table: threads, executor, CPU, ISA, torch, device."""
    import json

    out = {}
    for key in CONTEXT:
        if key == "torch":
            versions = table["versions"].dropna() if "versions" in table else pd.Series(dtype=object)
            values = {str((json.loads(v) if isinstance(v, str) else v).get("torch")) for v in versions}
        else:
            values = {str(int(v)) if isinstance(v, float) and v.is_integer() else str(v) for v in table.get(key, [])}
            values -= {"None", "nan"}
        out[key] = ", ".join(sorted(values))
    return out


def context_differences(meta: dict, measured: pd.DataFrame) -> list[str]:
    """'threads 1 (reference 2)' for each context key that differs between the reference and tonight."""
    now = context_of(measured[measured["status"] == "ok"]) if len(measured) else {}
    out = []
    for key in CONTEXT:
        then = meta.get(f"context_{key}")
        if then is not None and now.get(key) and not set(now[key].split(", ")) <= set(then.split(", ")):
            out.append(f"{key} {now[key]} (reference {then or '?'})")
    return out
