"""``tissuebench check``: fail (exit 1) when a measured number got worse than the committed reference.

A reference is a CSV under ``results/reference/`` with ``# key: value`` header lines (the
accuracy tolerance and how it was derived, the provenance of the runs that produced it) and
one row per job. The reference is validated like a suite: required columns, finite numbers,
every row compared; anything else is an error (exit 2), never a pass. Rules, per reference job:

* the job must be present in the results (its current definition) and ok;
* metrics the metric table marks ``exact`` (params, nonzero params, MACs, effective MACs) must
  match exactly: the same configuration must build the same network;
* metrics marked ``tolerance`` (top-1) may not get worse by more than the tolerance (the row's
  ``tolerance_top1``, else the file's, else ``--tolerance``).

``--update`` rewrites the reference from the results, deliberately.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from benchmarks.files import DamagedFileError, write_text_atomic
from benchmarks.metrics import BY_NAME, names

EXACT = tuple(names(check="exact"))
TOLERANT = tuple(names(check="tolerance"))
REQUIRED = ("job_id", "label", *TOLERANT, *EXACT)
KEEP = ["job_id", "suite", "dataset", "model", "label", "seed", *TOLERANT, "top5", *EXACT]
MIN_TOLERANCE = 0.5  # percentage points: a floor, so one lucky seed does not make the gate flaky
SPREAD_FACTOR = 3  # tolerance = 3 x the std of top-1 over seeds


class CheckError(ValueError):
    """The reference file (or a tolerance) cannot be used: exit 2, never a pass."""


@dataclass
class Difference:
    job_id: str
    label: str
    field: str
    reference: object
    measured: object
    verdict: str  # "regressed" | "improved" | "within tolerance"

    @property
    def regressed(self) -> bool:
        return self.verdict == "regressed"


def read_reference(path: Path) -> tuple[pd.DataFrame, dict]:
    """The reference rows and header, validated (CheckError names what is wrong)."""
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise CheckError(f"no reference file {path} (create one with --update)") from None
    except UnicodeDecodeError:
        raise CheckError(f"{path}: not UTF-8 text") from None
    meta = {}
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        key, _, value = line[1:].partition(":")
        meta[key.strip()] = value.strip()
    import io

    try:
        table = pd.read_csv(io.StringIO(text), comment="#")
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise CheckError(f"{path}: not a CSV table ({str(exc).strip()[:120]})") from None
    missing = [c for c in REQUIRED if c not in table.columns]
    if missing:
        raise CheckError(f"{path}: required column(s) {missing} missing; a reference has {list(REQUIRED)}")
    if table.empty:
        raise CheckError(f"{path}: no reference rows")
    for col in (*TOLERANT, *EXACT, *(["tolerance_top1"] if "tolerance_top1" in table else [])):
        values = pd.to_numeric(table[col], errors="coerce").astype(float)
        bad = table.loc[~values.map(math.isfinite), "job_id"].tolist()
        if bad:
            raise CheckError(f"{path}: column {col} has an empty, non-numeric or infinite cell for {bad[:3]}")
        if col == "tolerance_top1" and (values < 0).any():
            raise CheckError(f"{path}: tolerance_top1 must be >= 0")
    if table["job_id"].duplicated().any():
        raise CheckError(f"{path}: job {table.loc[table['job_id'].duplicated(), 'job_id'].iloc[0]!r} is listed twice")
    if "tolerance_top1" in meta:
        meta_tol = _number(meta["tolerance_top1"])
        if meta_tol is None or meta_tol < 0:
            raise CheckError(f"{path}: header tolerance_top1 must be a number >= 0, got {meta['tolerance_top1']!r}")
    return table, meta


def _number(text) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def per_job_tolerance(table: pd.DataFrame) -> dict[tuple, float]:
    """(dataset, model, label) -> 3 x its std of top-1 over seeds, at least MIN_TOLERANCE."""
    ok = table[table["status"] == "ok"]
    spread = ok.groupby(["dataset", "model", "label"])["top1"].std(ddof=1).dropna()
    return {key: max(MIN_TOLERANCE, round(SPREAD_FACTOR * float(std) * 20) / 20) for key, std in spread.items()}


def derive_tolerance(table: pd.DataFrame) -> tuple[float, str]:
    """3 x the largest std of top-1 over seeds (same label), at least MIN_TOLERANCE."""
    ok = table[table["status"] == "ok"]
    spread = ok.groupby(["dataset", "model", "label"])["top1"].std(ddof=1).dropna()
    if spread.empty:
        return MIN_TOLERANCE, f"floor {MIN_TOLERANCE} (one seed per job: no spread to derive from)"
    tol = max(MIN_TOLERANCE, round(SPREAD_FACTOR * float(spread.max()) * 20) / 20)
    worst = spread.idxmax()
    how = (
        f"{SPREAD_FACTOR} x max std of top-1 over {ok['seed'].nunique()} seeds ({spread.max():.3f} for {worst[2]}), "
        f"floor {MIN_TOLERANCE}"
    )
    return tol, how


def write_reference(
    results: pd.DataFrame, path: Path, tolerance: float, derivation: str, per_job: dict | None = None
) -> pd.DataFrame:
    """``per_job``: optional (dataset, model, label) -> tolerance, written as a column."""
    ok = results[results["status"] == "ok"]
    rows = ok[[c for c in KEEP if c in ok.columns]].sort_values("job_id").reset_index(drop=True)
    for col in EXACT:  # exact integers stay integers in the CSV
        if col in rows and BY_NAME[col].integer:
            rows[col] = rows[col].astype("int64")
    if per_job:
        keys = zip(rows["dataset"], rows["model"], rows["label"])
        rows["tolerance_top1"] = [per_job.get(k, tolerance) for k in keys]
    header = {
        "tolerance_top1": f"{tolerance:g}",
        "tolerance_derivation": derivation,
        "produced_by": "tissuebench check --update (from the suite's own runs)",
        "git_sha": ", ".join(sorted({str(v) for v in ok.get("git_sha", pd.Series()).dropna()})),
        "device": ", ".join(sorted({str(v) for v in ok.get("device_name", pd.Series()).dropna()})),
        "runs_finished_utc": str(ok["finished_utc"].max()) if "finished_utc" in ok else "",
        "suite": ", ".join(sorted({str(v) for v in ok.get("suite", pd.Series()).dropna()})),
    }
    text = "".join(f"# {k}: {v}\n" for k, v in header.items()) + rows.to_csv(index=False)
    write_text_atomic(Path(path), text)  # full precision: costs are compared exactly
    return rows


def compare(measured: pd.DataFrame, reference: pd.DataFrame, tolerance: float) -> list[Difference]:
    """``tolerance``: top-1 points, unless the reference row carries its own ``tolerance_top1``."""
    diffs = []
    by_id = measured.set_index("job_id") if len(measured) else pd.DataFrame()
    for ref in reference.to_dict("records"):
        job, label = ref["job_id"], ref.get("label", "")
        if job not in by_id.index:
            # same label and seed under another id: the suite's settings (hashed into the id) changed
            stale = _same_label_and_seed(measured, ref)
            measured_as = f"now .{stale.rsplit('.', 1)[-1]}" if stale else "missing"
            diffs.append(Difference(job, label, "settings" if stale else "job", "ok", measured_as, "regressed"))
            continue
        got = by_id.loc[job]
        if got["status"] != "ok":
            diffs.append(
                Difference(job, label, "status", "ok", f"{got['status']}: {got.get('error', '')}", "regressed")
            )
            continue
        for field in EXACT:
            value = got.get(field)
            if value is None or pd.isna(value) or float(value) != float(ref[field]):
                diffs.append(Difference(job, label, field, ref[field], value, "regressed"))
        row_tol = ref.get("tolerance_top1")
        tol = tolerance if row_tol is None or pd.isna(row_tol) else float(row_tol)
        for field in TOLERANT:
            sign = 1 if BY_NAME[field].better == "higher" else -1
            delta = sign * (float(got[field]) - float(ref[field]))
            verdict = (
                "regressed" if delta < -tol else "improved" if delta > 0 else "within tolerance" if delta < 0 else None
            )
            if verdict:
                diffs.append(Difference(job, label, field, ref[field], got[field], verdict))
    return diffs


def _same_label_and_seed(measured: pd.DataFrame, ref: dict) -> str:
    """The id of a measured job with the reference row's dataset, model, label and seed ('' if none)."""
    keys = ("dataset", "model", "label", "seed")
    if not len(measured) or not all(k in measured.columns and k in ref for k in keys):
        return ""
    same = measured
    for k in keys:
        same = same[same[k].astype(str) == str(ref[k])]
    return str(same["job_id"].iloc[0]) if len(same) else ""


STALE_HINT = (
    "'settings' rows: the measured job has the reference job's label and seed but another settings hash, so the "
    "suite (or a method's configuration) changed since the reference was made. If the change is intended, "
    "re-derive the reference: tissuebench check --suite SUITE --results DIR --update --tolerance-from SEEDS_DIR"
)


def format_differences(diffs: list[Difference], tolerance: float) -> str:
    if not diffs:
        return "no differences"
    lines = [f"{'verdict':<17} {'field':<15} {'reference':>14} {'measured':>14}  job (label)"]
    for d in sorted(diffs, key=lambda d: (not d.regressed, d.job_id, d.field)):
        ref, got = (f"{v:.4g}" if isinstance(v, float) else str(v) for v in (d.reference, d.measured))
        lines.append(f"{d.verdict:<17} {d.field:<15} {ref:>14} {got[:40]:>14}  {d.job_id} ({d.label})")
    lines.append(f"(top-1 tolerance {tolerance:g} points unless the reference row states its own)")
    if any(d.field == "settings" for d in diffs):
        lines.append(STALE_HINT)
    return "\n".join(lines)


def check(measured: pd.DataFrame, against: Path, tolerance: float | None) -> tuple[list[Difference], float, int]:
    """Compare a results table with a reference file; returns (differences, tolerance used, rows compared)."""
    reference, meta = read_reference(against)
    if tolerance is None:
        tolerance = _number(meta.get("tolerance_top1", MIN_TOLERANCE))
    diffs = compare(measured, reference, tolerance)
    return diffs, tolerance, len(reference)


__all__ = ["CheckError", "DamagedFileError", "check", "compare", "derive_tolerance", "read_reference"]
