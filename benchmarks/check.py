"""``tissuebench check``: fail (exit 1) when a measured number got worse than the committed reference.

A reference is a CSV under ``results/reference/`` with ``# key: value`` header lines (the
accuracy tolerance and how it was derived, the provenance of the runs that produced it) and
one row per job. Rules, per reference job:

* the job must be present in the results and ok;
* ``params``, ``params_nonzero``, ``macs`` and ``macs_effective`` must match exactly (the same
  configuration must build the same network);
* ``top1`` may not drop by more than the tolerance (default: the file's ``tolerance_top1``,
  derived from the spread over seeds).

``--update`` rewrites the reference from the results, deliberately.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from benchmarks.store import ResultStore

EXACT = ("params", "params_nonzero", "macs", "macs_effective")
KEEP = ["job_id", "suite", "dataset", "model", "label", "seed", "top1", "top5", *EXACT]
MIN_TOLERANCE = 0.5  # percentage points: a floor, so one lucky seed does not make the gate flaky


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
    meta = {}
    with open(path) as f:
        for line in f:
            if not line.startswith("#"):
                break
            key, _, value = line[1:].partition(":")
            meta[key.strip()] = value.strip()
    return pd.read_csv(path, comment="#"), meta


def per_job_tolerance(table: pd.DataFrame) -> dict[tuple, float]:
    """(dataset, model, label) -> 3 x its std of top-1 over seeds, at least MIN_TOLERANCE."""
    ok = table[table["status"] == "ok"]
    spread = ok.groupby(["dataset", "model", "label"])["top1"].std(ddof=1).dropna()
    return {key: max(MIN_TOLERANCE, round(3 * float(std) * 20) / 20) for key, std in spread.items()}


def derive_tolerance(table: pd.DataFrame) -> tuple[float, str]:
    """3 x the largest std of top-1 over seeds (same label), at least MIN_TOLERANCE."""
    ok = table[table["status"] == "ok"]
    spread = ok.groupby(["dataset", "model", "label"])["top1"].std(ddof=1).dropna()
    if spread.empty:
        return MIN_TOLERANCE, f"floor {MIN_TOLERANCE} (one seed per job: no spread to derive from)"
    tol = max(MIN_TOLERANCE, round(3 * float(spread.max()) * 20) / 20)
    worst = spread.idxmax()
    return tol, (f"3 x max std of top-1 over {ok['seed'].nunique()} seeds ({spread.max():.3f} for {worst[2]}), "
                 f"floor {MIN_TOLERANCE}")  # fmt: skip


def write_reference(results: pd.DataFrame, path: Path, tolerance: float, derivation: str,
                    per_job: dict | None = None) -> pd.DataFrame:  # fmt: skip
    """``per_job``: optional (dataset, model, label) -> tolerance, written as a column."""
    ok = results[results["status"] == "ok"]
    rows = ok[[c for c in KEEP if c in ok.columns]].sort_values("job_id").reset_index(drop=True)
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
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        for key, value in header.items():
            f.write(f"# {key}: {value}\n")
        rows.to_csv(f, index=False)  # full precision: costs are compared exactly
    return rows


def compare(measured: pd.DataFrame, reference: pd.DataFrame, tolerance: float) -> list[Difference]:
    """``tolerance``: top-1 points, unless the reference row carries its own ``tolerance_top1``."""
    diffs = []
    by_id = measured.set_index("job_id") if len(measured) else pd.DataFrame()
    for ref in reference.to_dict("records"):
        job, label = ref["job_id"], ref.get("label", "")
        if job not in by_id.index:
            diffs.append(Difference(job, label, "job", "ok", "missing", "regressed"))
            continue
        got = by_id.loc[job]
        if got["status"] != "ok":
            diffs.append(
                Difference(job, label, "status", "ok", f"{got['status']}: {got.get('error', '')}", "regressed")
            )
            continue
        for field in EXACT:
            if field in ref and pd.notna(ref[field]) and float(got[field]) != float(ref[field]):
                diffs.append(Difference(job, label, field, ref[field], got[field], "regressed"))
        delta = float(got["top1"]) - float(ref["top1"])
        row_tol = ref.get("tolerance_top1")
        tol = tolerance if row_tol is None or pd.isna(row_tol) else float(row_tol)
        if delta < -tol:
            diffs.append(Difference(job, label, "top1", ref["top1"], got["top1"], "regressed"))
        elif delta > 0:
            diffs.append(Difference(job, label, "top1", ref["top1"], got["top1"], "improved"))
        elif delta < 0:
            diffs.append(Difference(job, label, "top1", ref["top1"], got["top1"], "within tolerance"))
    return diffs


def format_differences(diffs: list[Difference], tolerance: float) -> str:
    if not diffs:
        return "no differences"
    lines = [f"{'verdict':<17} {'field':<15} {'reference':>14} {'measured':>14}  job (label)"]
    for d in sorted(diffs, key=lambda d: (not d.regressed, d.job_id, d.field)):
        ref, got = (f"{v:.4g}" if isinstance(v, float) else str(v) for v in (d.reference, d.measured))
        lines.append(f"{d.verdict:<17} {d.field:<15} {ref:>14} {got[:40]:>14}  {d.job_id} ({d.label})")
    lines.append(f"(top-1 tolerance {tolerance:g} points unless the reference row states its own)")
    return "\n".join(lines)


def run(args) -> int:
    results = Path(args.results)
    if not (results / "records").is_dir():
        print(f"tissuebench check: error: no results folder at {results}", file=sys.stderr)
        return 2
    measured = ResultStore(results).consolidate()
    against = Path(args.against)
    if args.update:
        per_job = None
        if args.tolerance is not None:
            tol, how = args.tolerance, "given on the command line (tissuebench check --update --tolerance)"
        elif args.tolerance_from:
            seeds = ResultStore(args.tolerance_from).consolidate()
            tol, how = derive_tolerance(seeds)
            per_job = per_job_tolerance(seeds)
            how += (
                f"; per job: 3 x its own std (column tolerance_top1); from the runs in {Path(args.tolerance_from).name}"
            )
        elif against.exists():
            _, meta = read_reference(against)
            tol, how = float(meta.get("tolerance_top1", MIN_TOLERANCE)), meta.get("tolerance_derivation", "kept")
        else:
            tol, how = derive_tolerance(measured)
        rows = write_reference(measured, against, tol, how, per_job)
        print(f"reference {against} rewritten: {len(rows)} jobs, top-1 tolerance {tol:g} ({how})")
        return 0
    if not against.exists():
        print(f"tissuebench check: error: no reference file {against} (create one with --update)", file=sys.stderr)
        return 2
    reference, meta = read_reference(against)
    tolerance = args.tolerance if args.tolerance is not None else float(meta.get("tolerance_top1", MIN_TOLERANCE))
    diffs = compare(measured, reference, tolerance)
    print(format_differences(diffs, tolerance))
    regressed = [d for d in diffs if d.regressed]
    print(f"check: {len(reference)} reference jobs, {len(regressed)} regressions, "
          f"{sum(d.verdict == 'improved' for d in diffs)} improvements -> {'FAIL' if regressed else 'ok'}")  # fmt: skip
    return 1 if regressed else 0
