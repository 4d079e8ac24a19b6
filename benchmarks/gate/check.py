"""``tissuebench check``: fail (exit 1) when a measured number got worse than the committed reference.

A reference is a CSV under ``results/reference/`` with ``# key: value`` header lines (how its
bounds were derived, and the execution context and provenance of the runs behind it) and one row
per job. It is validated like a suite: required columns, finite numbers, every row compared;
anything else is an error (exit 2), never a pass.

Every compared metric of a row has a value, a bound and a rule (columns ``m``, ``m_bound``,
``m_rule``), decided by what the metric depends on (the metric table's ``depends``):

* ``exact``: fixed by the architecture (MACs and params of dense, TissueNet and structured models;
  effective MACs and nonzero params of unmasked ones), the same in every seed of the reference
  runs. A cost may not rise; a fall is an improvement.
* ``pi99``: set by training (top-1; effective MACs and nonzero params of masked models, and
  any architecture metric that did vary over the reference seeds): a one-sided prediction interval
  for one new run from n >= 8 seeds, ``mean -/+ t(q, n-1) s sqrt(1 + 1/n)``; top-1's half-width is
  at least :data:`MIN_TOLERANCE` points. 99 % holds for the whole run, not for each bound: a run is
  judged on k such bounds at once (6 in ``smoke``), and k bounds at 99 % each would fail a
  legitimate run about k % of the time. Each bound is at ``q = 1 - 0.01 / k`` (Bonferroni).

A missing job, a failed job, and a missing or NaN value fail. When tonight's execution context
(threads, executor, CPU, ISA, torch, device) differs from the reference's, ``check`` says so in one
line and judges by the bounds all the same. ``--update`` rewrites the reference, deliberately.
"""

from __future__ import annotations

import fnmatch
import io
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from benchmarks.gate.student import t_quantile
from benchmarks.store.files import DamagedFileError, write_text_atomic
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


# -- writing ----------------------------------------------------------------------------------------------
def prediction_bound(
    values: list[float], higher_is_better: bool, floor: float = 0.0, confidence: float = CONFIDENCE
) -> tuple[float, float]:
    """(mean, one-sided prediction bound for one new run): mean -/+ t(confidence, n-1) s sqrt(1 + 1/n)."""
    n = len(values)
    mean = sum(values) / n
    s = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = max(t_quantile(confidence, n - 1) * s * math.sqrt(1 + 1 / n), floor)
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


def context_differences(meta: dict, measured: pd.DataFrame) -> list[str]:
    """'threads 1 (reference 2)' for each context key that differs between the reference and tonight."""
    now = context_of(measured[measured["status"] == "ok"]) if len(measured) else {}
    out = []
    for key in CONTEXT:
        then = meta.get(f"context_{key}")
        if then is not None and now.get(key) and not set(now[key].split(", ")) <= set(then.split(", ")):
            out.append(f"{key} {now[key]} (reference {then or '?'})")
    return out


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


__all__ = ["CheckError", "DamagedFileError", "check", "compare", "derive_bounds", "read_reference"]
