"""Making a reference: bounds from independent seeds (Bonferroni over a run's bounds), the rows an update
writes, and the leave-one-out and held-out false-alarm counts."""

from __future__ import annotations

import fnmatch
import math
from pathlib import Path

import pandas as pd
from scipy.stats import t as student_t

from benchmarks.gate.judge import judge, rule_of
from benchmarks.gate.reference import (
    CONFIDENCE,
    IDENTITY,
    MIN_SEEDS,
    MIN_TOLERANCE,
    VALUES,
    CheckError,
    context_of,
    read_reference,
)
from benchmarks.store.files import write_text_atomic
from benchmarks.store.metric_table import BY_NAME


# -- writing ----------------------------------------------------------------------------------------------
def prediction_bound(
    values: list[float], higher_is_better: bool, floor: float = 0.0, confidence: float = CONFIDENCE
) -> tuple[float, float]:
    """(mean, one-sided prediction bound for one new run): mean -/+ t(confidence, n-1) s sqrt(1 + 1/n)."""
    n = len(values)
    mean = sum(values) / n
    s = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = max(float(student_t.ppf(confidence, n - 1)) * s * math.sqrt(1 + 1 / n), floor)
    return mean, (mean - half if higher_is_better else mean + half)


def _seeded_rule(metric: str, values: list[float]) -> str:
    """exact: an architecture cost identical in every run; pi99: anything training moves."""
    return "exact" if BY_NAME[metric].depends != "training" and len(set(values)) == 1 else "pi99"


def per_bound_confidence(family: int) -> float:
    """Each of a run's ``family`` prediction bounds at 1 - 0.01 / family: 99 % for the run (Bonferroni)."""
    return 1 - (1 - CONFIDENCE) / max(family, 1)


def derive_bounds(
    results: pd.DataFrame, seeds: pd.DataFrame | None, tolerance: float | None, family: int | None = None
) -> pd.DataFrame:
    """One reference row per ok job of ``results``; bounds from the seeds of its configuration in ``seeds``.
    ``family``: how many prediction bounds a run is judged on (default: those of these rows)."""
    ok = results[results["status"] == "ok"]
    recs = ok.to_dict("records")
    groups = [_seeds_of(seeds, rec) if seeds is not None else None for rec in recs]
    if family is None and seeds is not None:
        family = sum(_seeded_rule(m, [float(v) for v in g[m]]) == "pi99" for g in groups for m in VALUES)
    confidence = per_bound_confidence(family or 1)
    rows = []
    for rec, group in zip(recs, groups, strict=True):
        row = {k: rec.get(k) for k in IDENTITY}
        row["n_seeds"] = len(group) if group is not None else 1
        for metric in VALUES:
            depends, higher = BY_NAME[metric].depends, BY_NAME[metric].better == "higher"
            values = [float(v) for v in group[metric]] if group is not None else [float(rec[metric])]
            floor = MIN_TOLERANCE if metric == "top1" else 0.0
            if group is None:  # no seeds to derive from: exact costs, a fixed band for what training sets
                tol = (tolerance if tolerance is not None else MIN_TOLERANCE) if metric == "top1" else 0.0
                rule = "tolerance" if depends == "training" else "exact"
                value, bound = values[0], values[0] - tol if higher else values[0] + tol
            elif _seeded_rule(metric, values) == "exact":
                rule, value, bound = "exact", values[0], values[0]
            else:
                rule = "pi99"
                value, bound = prediction_bound(values, higher, floor, confidence)
            if BY_NAME[metric].integer and rule == "exact":
                value, bound = int(value), int(bound)
            row |= {metric: value, f"{metric}_bound": bound, f"{metric}_rule": rule}
        row["top1_std"] = float(pd.Series([float(v) for v in group["top1"]]).std()) if group is not None else None
        rows.append(row)
    return pd.DataFrame(rows).sort_values("job_id").reset_index(drop=True)


def same_training(table: pd.DataFrame, rec: dict) -> pd.Series:
    """Rows of ``table`` that are seeds of ``rec``'s training: equal train hashes (the settings without the seed
    and without ``--set measure.*``), or equal group hashes for records from before train hashes."""
    key = "train_hash" if _has(rec, "train_hash") and "train_hash" in table else "group_hash"
    return table[key] == rec[key]


def _has(rec: dict, key: str) -> bool:
    return isinstance(rec.get(key), str) and bool(rec[key])


def _seeds_of(seeds: pd.DataFrame, rec: dict) -> pd.DataFrame:
    """The ok runs of ``rec``'s training (any seed but its own), at least MIN_SEEDS, each seed once: reference
    runs are independent draws (thread counts may vary across them; a seed twice is a twin, not a draw)."""
    same = seeds[same_training(seeds, rec) & (seeds["status"] == "ok")]
    twins = sorted(int(v) for v in same["seed"][same["seed"].duplicated()].unique())
    if twins:
        raise CheckError(
            f"{rec['label']}: seed(s) {twins[:5]} appear more than once among the reference runs (another thread "
            "count?): reference runs must be independent draws; give every run its own seed"
        )
    if int(rec["seed"]) in set(same["seed"].astype(int)):
        raise CheckError(
            f"{rec['label']}: the run being judged (seed {int(rec['seed'])}) is among the reference runs; derive "
            "the bounds from other seeds (--set seeds=[100,...,119] into the seeds folder)"
        )
    if len(same) < MIN_SEEDS:
        raise CheckError(
            f"{rec['label']}: {len(same)} seed(s) of its configuration in the seeds folder; the bounds need at "
            f"least {MIN_SEEDS} (run the suite with --set seeds=[0,1,...,{MIN_SEEDS - 1}] into that folder)"
        )
    return same


def _matches(rec: dict, patterns) -> bool:
    return any(fnmatch.fnmatch(str(rec.get(key)), p) for p in patterns for key in ("job_id", "label"))


def rows_for_update(
    measured: pd.DataFrame, path: Path, suite: str, expected: set[str] | None, leave_out=()
) -> pd.DataFrame:
    """The results a new reference of ``suite`` is made from, after the refusals that keep ``--update`` from
    losing anything: the file at ``path`` must be this suite's (or absent); every job of the suite's plan
    (``expected``) must be there and ok; no row of the old reference may vanish. ``leave_out`` (globs over job
    ids and labels) names jobs to leave out deliberately. CheckError (one line) otherwise."""
    leave_out = tuple(leave_out or ())
    records = measured.to_dict("records") if len(measured) else []
    kept = measured[[not _matches(r, leave_out) for r in records]] if records else measured
    failed = sorted(kept.loc[kept["status"] != "ok", "job_id"]) if len(kept) else []
    have = {r["job_id"] for r in records}
    absent = sorted(j for j in (expected or set()) if j not in have and not _matches({"job_id": j}, leave_out))
    if failed or absent:
        named = [f"{j} (failed)" for j in failed] + [f"{j} (missing)" for j in absent]
        raise CheckError(
            f"--update refused: {len(named)} job(s) of {suite} are not ok: {', '.join(named[:4])}"
            f"{' ...' if len(named) > 4 else ''}; rerun them, or leave them out deliberately with --leave-out PATTERN"
        )
    if not len(kept):
        raise CheckError(f"--update refused: no ok job of {suite} to make a reference from")
    if Path(path).exists():
        try:
            old, meta = read_reference(path)
        except CheckError as exc:
            raise CheckError(f"--update refused: the existing {exc} (fix it, or move it away first)") from None
        if meta.get("suite") and meta["suite"] != suite:
            raise CheckError(
                f"--update refused: {path} is the reference of suite {meta['suite']!r}, not {suite!r}; "
                f"write {suite}'s elsewhere (--against FILE)"
            )
        keys = ("dataset", "model", "label", "seed")
        have = {tuple(str(r.get(k)) for k in keys) for r in kept.to_dict("records")}
        dropped = [
            r["job_id"]
            for r in old.to_dict("records")
            if tuple(str(r.get(k)) for k in keys) not in have and not _matches(r, leave_out)
        ]
        if dropped:
            raise CheckError(
                f"--update refused: it would drop {len(dropped)} row(s) of {path}: {', '.join(dropped[:4])}"
                f"{' ...' if len(dropped) > 4 else ''}; drop them deliberately with --leave-out PATTERN"
            )
    return kept


def write_reference(
    results: pd.DataFrame,
    path: Path,
    seeds: pd.DataFrame | None = None,
    tolerance: float | None = None,
    seeds_from: str = "",
    suite: str | None = None,
) -> pd.DataFrame:
    rows = derive_bounds(results, seeds, tolerance)
    ok = results[results["status"] == "ok"]
    if seeds is not None:
        n = int(rows["n_seeds"].min())
        k = int(sum((rows[f"{m}_rule"] == "pi99").sum() for m in VALUES))
        how = (
            f"per job and metric from its {n}+ runs (seeds, and the execution contexts below) in {seeds_from}: costs "
            f"fixed by the architecture (identical in every run) are exact and may not rise; the rest ({k} bounds): "
            f"one-sided prediction intervals for one new run, {CONFIDENCE:.0%} for the whole run (Bonferroni: each "
            f"at q = 1 - {1 - CONFIDENCE:.2f}/{k} = {per_bound_confidence(k):.5f}), mean -/+ t(q, n-1) x s x "
            f"sqrt(1 + 1/n), top-1 at least {MIN_TOLERANCE} points"
        )
    else:
        tol = tolerance if tolerance is not None else MIN_TOLERANCE
        how = f"not derived from seeds: top-1 may fall {tol:g} points; costs exact (they may not rise)"
    context = context_of(seeds if seeds is not None else ok)
    header = {
        "bounds": how,
        "produced_by": "tissuebench check --update" + (f" --tolerance-from {seeds_from}" if seeds_from else ""),
        **{f"context_{k}": v for k, v in context.items()},
        "git_sha": ", ".join(sorted({str(v) for v in ok.get("git_sha", pd.Series()).dropna()})),
        "runs_finished_utc": str(ok["finished_utc"].max()) if "finished_utc" in ok else "",
        "suite": suite or ", ".join(sorted({str(v) for v in ok.get("suite", pd.Series()).dropna()})),
    }
    if seeds is not None:
        used = seeds[seeds["status"] == "ok"]["seed"].dropna().astype(int)
        header["reference_seeds"] = ", ".join(str(v) for v in sorted(set(used)))
    text = "".join(f"# {k}: {v}\n" for k, v in header.items()) + rows.to_csv(index=False)
    write_text_atomic(Path(path), text)  # full precision: exact costs are compared exactly
    return rows


def leave_one_out(seeds: pd.DataFrame, jobs: pd.DataFrame) -> tuple[int, int, list[str]]:
    """The gate's false alarms on the reference's own runs: each run (a seed) is judged against bounds derived
    from all the other seeds of its training; returns (runs flagged on any job or metric, runs, what flagged
    them). Every run is a legitimate one, so each flag is false."""
    ok = seeds[seeds["status"] == "ok"]
    reference = derive_bounds(jobs, ok, None)
    family = int(sum((reference[f"{m}_rule"] == "pi99").sum() for m in VALUES))  # as the gate judges a run
    flagged, reasons = set(), []
    for rec in jobs[jobs["status"] == "ok"].to_dict("records"):
        group = ok[same_training(ok, rec)]
        for seed, row in group.groupby("seed"):
            others = group[group["seed"] != seed]
            if len(others) < MIN_SEEDS:
                continue
            bounds = derive_bounds(pd.DataFrame([rec]), others, None, family).iloc[0].to_dict()
            for metric in VALUES:
                got = row.iloc[0][metric]
                if judge(metric, got, float(bounds[metric]), *rule_of(bounds, metric, None)) == "regressed":
                    flagged.add(seed)
                    reasons.append(f"{rec['label']} {metric} {got:g} (seed {seed})")
    return len(flagged), ok["seed"].nunique(), reasons


def held_out(reference: pd.DataFrame, runs: pd.DataFrame) -> tuple[int, int, list[str]]:
    """The gate's measured false-alarm rate: every run in ``runs`` (new seeds, none of them the reference's) is
    judged against the reference's bounds, as a night is; returns (runs that would fail, runs, why)."""
    ok = runs[runs["status"] == "ok"]
    flagged, reasons = set(), []
    for ref in reference.to_dict("records"):
        for seed, row in ok[same_training(ok, ref)].groupby("seed"):
            got = row.iloc[0]
            for metric in VALUES:
                verdict = judge(metric, got[metric], float(ref[metric]), *rule_of(ref, metric, None))
                if verdict == "regressed":
                    flagged.add(seed)
                    reasons.append(f"{ref['label']} {metric} {got[metric]:g} (seed {seed})")
    return len(flagged), ok["seed"].nunique(), reasons
