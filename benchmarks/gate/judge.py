"""Judging a run against a reference: every compared number by its rule, the differences worded for a reader."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from benchmarks.gate.reference import MIN_TOLERANCE, VALUES, read_reference
from benchmarks.store.metric_table import BY_NAME


@dataclass
class Difference:
    job_id: str
    label: str
    field: str
    reference: object
    measured: object
    verdict: str  # "regressed" | "improved" | "within tolerance"
    bound: object = None

    @property
    def regressed(self) -> bool:
        return self.verdict == "regressed"


def rule_of(ref: dict, metric: str, tolerance: float | None) -> tuple[str, float]:
    """(rule, bound) of one reference cell; a reference without bound columns: exact costs, top-1 - tolerance."""
    value = float(ref[metric])
    if tolerance is not None and metric == "top1":  # --tolerance on the command line wins
        return "tolerance", value - tolerance
    rule = ref.get(f"{metric}_rule")
    bound = ref.get(f"{metric}_bound")
    if isinstance(rule, str) and bound is not None and not pd.isna(bound):
        return rule, float(bound)
    if metric == "top1":
        row_tol = ref.get("tolerance_top1")
        tol = MIN_TOLERANCE if row_tol is None or pd.isna(row_tol) else float(row_tol)
        return "tolerance", value - tol
    return "exact", value


# -- comparing --------------------------------------------------------------------------------------------
def compare(measured: pd.DataFrame, reference: pd.DataFrame, tolerance: float | None = None) -> list[Difference]:
    """Every reference job and metric judged by its rule (module docstring)."""
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
        for metric in VALUES:
            verdict = judge(metric, got.get(metric), float(ref[metric]), *rule_of(ref, metric, tolerance))
            if verdict:
                rule, bound = rule_of(ref, metric, tolerance)
                diffs.append(Difference(job, label, metric, ref[metric], got.get(metric), verdict, bound))
    return diffs


def inconsistent_dense(measured: pd.DataFrame) -> list[Difference]:
    """Rows that name one dense checkpoint but different weights (a checkpoint changed between their jobs)."""
    if not len(measured) or "dense_weights_sha256" not in measured or "dense_checkpoint" not in measured:
        return []
    ok = measured[(measured["status"] == "ok") & measured["dense_checkpoint"].notna()]
    out = []
    for checkpoint, rows in ok.groupby("dense_checkpoint"):
        hashes = rows["dense_weights_sha256"].dropna()
        if hashes.nunique() > 1:
            common = hashes.mode().iloc[0]
            for r in rows[rows["dense_weights_sha256"] != common].to_dict("records"):
                got = f"{str(r['dense_weights_sha256'])[:12]} (group: {common[:12]})"
                out.append(Difference(r["job_id"], r["label"], "dense weights", checkpoint, got, "regressed"))
    return out


def judge(metric: str, got, value: float, rule: str, bound: float) -> str | None:
    """'regressed', 'improved', 'within tolerance' or None (equal). A missing or NaN value regresses."""
    try:
        got = float(got)
    except (TypeError, ValueError):
        return "regressed"
    if not math.isfinite(got):
        return "regressed"
    sign = 1 if BY_NAME[metric].better == "higher" else -1  # compare as "higher is better"
    g, v, b = sign * got, sign * value, sign * bound
    if g < b or (rule == "exact" and g < v):
        return "regressed"
    if rule == "exact":
        return "improved" if g > v else None
    half = v - b
    if g > v + half:
        return "improved"
    return "within tolerance" if g != v else None


def _same_label_and_seed(measured: pd.DataFrame, ref: dict) -> str:
    """The id of a measured job with the reference row's dataset, model, label and seed ('' if none)."""
    keys = ("dataset", "model", "label", "seed")
    if not len(measured) or not all(k in measured.columns and k in ref for k in keys):
        return ""
    same = measured
    for k in keys:
        same = same[same[k].astype(str) == str(ref[k])]
    return str(same["job_id"].iloc[0]) if len(same) else ""


# -- the commit range of a move (nightly history) ----------------------------------------------------------
def moved_between(history: pd.DataFrame, reference: pd.DataFrame, diff: Difference) -> str | None:
    """'between SHA (DATE) and SHA (DATE)': the last night that passed and the first that regressed."""
    if history is None or not len(history) or diff.field not in VALUES:
        return None
    ref = reference.set_index("job_id").loc[diff.job_id].to_dict() | {"job_id": diff.job_id}
    rows = history[history["job_id"] == diff.job_id].sort_values(["started_utc", "night"])
    last_ok, first_bad = None, None
    for row in rows.to_dict("records"):
        bad = judge(diff.field, row.get(diff.field), float(ref[diff.field]), *rule_of(ref, diff.field, None))
        if bad == "regressed":
            first_bad = first_bad or row
        else:
            last_ok, first_bad = row, None
    if first_bad is None:
        return None
    start = f"{last_ok['commit'][:10]} ({last_ok['date']})" if last_ok else "the first night in the history"
    return f"moved between {start} and {first_bad['commit'][:10]} ({first_bad['date']})"


# -- the report of a check ---------------------------------------------------------------------------------
STALE_HINT = (
    "'settings' rows: the measured job has the reference job's label and seed but another settings hash, so the "
    "suite (or a method's configuration) changed since the reference was made. If the change is intended, "
    "re-derive the reference: tissuebench check --suite SUITE --results DIR --update --tolerance-from SEEDS_DIR"
)


def format_differences(diffs: list[Difference], moves: dict | None = None) -> str:
    if not diffs:
        return "no differences"
    lines = [f"{'verdict':<17} {'field':<15} {'reference':>14} {'bound':>14} {'measured':>14}  job (label)"]
    for d in sorted(diffs, key=lambda d: (not d.regressed, d.job_id, d.field)):
        ref, bound, got = (
            "" if v is None else f"{v:.6g}" if isinstance(v, float) else str(v)
            for v in (d.reference, d.bound, d.measured)
        )
        lines.append(f"{d.verdict:<17} {d.field:<15} {ref:>14} {bound:>14} {got[:40]:>14}  {d.job_id} ({d.label})")
        if moves and (d.job_id, d.field) in moves:
            lines.append(f"{'':<17} {moves[(d.job_id, d.field)]}")
    if any(d.field == "settings" for d in diffs):
        lines.append(STALE_HINT)
    return "\n".join(lines)


def check(measured: pd.DataFrame, against: Path, tolerance: float | None) -> tuple[list[Difference], dict, int]:
    """Compare a results table with a reference file; returns (differences, the reference's header, rows compared)."""
    reference, meta = read_reference(against)
    return compare(measured, reference, tolerance) + inconsistent_dense(measured), meta, len(reference)
