"""The rows a report is made of: measured runs (aggregated over seeds, per configuration) and the
paper's published rows (each against its own baseline, self-contradictions marked, never fixed silently).
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.measure.timing import RELIABLE_SAMPLES, UNRELIABLE_SPREAD
from benchmarks.paper.published import PAPER_MODELS, published_rows
from benchmarks.store.metric_table import BY_NAME, names
from benchmarks.store.results import ResultStore
from reports import stats
from tissuenet.metrics import WEIGHTINGS, tca, tsa

# the report table's metrics, in the metric table's order, grouped as the metric table groups them
REPORTED = names(where="report")
TRADEOFFS = [f"{k}_{a}_{b}" for a, b in WEIGHTINGS for k in ("tca", "tsa")]
TISSUENET = "tissuenet"
PUBLISHED = "published (own baseline)"
MEASURED = "measured here"
# published cells that disagree with their own row by more than the printed precision allows
TOLERANCE = {"acc_drop": 0.005, "speedup_theoretical": 0.05, **{m: 0.015 for m in TRADEOFFS}}
IMPLIED_AGREEMENT = 0.5  # points: the three weightings' implied cuts agree within this (two-decimal cells)


@dataclass
class ReportData:
    rows: pd.DataFrame  # one row per current record (superseded ones left out unless asked for)
    history: pd.DataFrame  # per-epoch rows of those records
    damaged: list[dict] = field(default_factory=list)
    superseded: list[dict] = field(default_factory=list)


def family(label: str) -> str:
    """A method's curve: its label without the target (``prune_l1@macs50`` -> ``prune_l1``)."""
    return label.split("@")[0]


def target_label(kind, value) -> str:
    """For readers: ``-50 % MACs``, ``-30 % params``, ``90 % sparse`` ('' for none)."""
    if not isinstance(kind, str) or kind == "none" or value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    pct = f"{100 * float(value):g} %"
    return {"macs_reduction": f"-{pct} MACs", "params_reduction": f"-{pct} params"}.get(kind, f"{pct} sparse")


def load(results: Path, include_superseded: bool = False) -> ReportData:
    store = ResultStore(results)
    scan = store.scan()
    table, history = store.consolidate(scan.records)
    superseded = []
    if len(table):
        old = table["superseded"].astype(bool)
        superseded = table.loc[old, ["job_id", "label"]].to_dict("records")
        if not include_superseded:
            table = table[~old]
            if len(history):
                history = history[~history["superseded"].astype(bool)]
    if len(table):
        table = table.copy()
        table["family"] = table["label"].map(family)
        if "group_hash" not in table:
            table["group_hash"] = table["label"]
        table["group_hash"] = table["group_hash"].fillna(table["label"])
    return ReportData(table.reset_index(drop=True), history, scan.damaged, superseded)


def _display_labels(rows: pd.DataFrame) -> pd.Series:
    """The label, with a configuration tag where one label carries several configurations."""
    counts = rows.groupby(["dataset", "model", "label"])["group_hash"].transform("nunique")
    return rows["label"].where(counts == 1, rows["label"] + " [cfg " + rows["group_hash"].str[:6] + "]")


def aggregate(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration (dataset, model, label, config without seed): spread over its seeds.

    Columns: identity, ``seeds``, ``failed``, and per reported metric ``m`` (mean), ``m_std``,
    ``m_ci_low``, ``m_ci_high``; ``top1_by_seed`` keeps the per-seed values for paired tests.
    """
    if rows.empty:
        return pd.DataFrame()
    rows = rows.assign(display=_display_labels(rows))
    out = []
    for (dataset, model, display), group in rows.groupby(["dataset", "model", "display"], sort=True):
        ok = group[group["status"] == "ok"]
        first = group.iloc[0]
        row = {
            "dataset": dataset,
            "model": model,
            "label": display,
            "family": family(first["label"]),
            "method": first["method"],
            "target": target_label(first.get("target_kind"), first.get("target_value")),
            "source": MEASURED,
            "seeds": len(ok),
            "failed": int((group["status"] != "ok").sum()),
            "phase": first.get("phase"),
            "masked": bool((ok.get("sparsity", pd.Series(dtype=float)) > 0.05).any()),
            "top1_by_seed": dict(zip(ok["seed"].astype(int), ok["top1"].astype(float))),
            "preset": _preset_of(first.get("method_options")),
            "reference_label": _reference_label(first),
            "speedup_suspect": bool(ok.get("speedup_suspect", pd.Series(dtype=bool)).fillna(False).astype(bool).any()),
            "speedup_reliable": _speedup_reliable(ok),
            "runtime_speedups": runtime_speedups(ok),
            "runtime_cells": runtime_cells(ok),
            "latency_reliable": _latency_reliable(ok),
            "speedup_by_definition": bool(ok.get("speedup_by_definition", pd.Series(dtype=bool)).fillna(False).any())
            or first["method"] == "dense",
        }
        for metric in REPORTED + ["speedup_iqr", "latency_iqr_ms", "realized"]:
            values = pd.to_numeric(ok[metric], errors="coerce") if metric in ok else pd.Series(dtype=float)
            s = stats.spread(values.tolist())
            row |= {
                metric: s.mean,
                f"{metric}_std": s.std,
                f"{metric}_ci_low": s.ci_low,
                f"{metric}_ci_high": s.ci_high,
            }
        out.append(row)
    frame = pd.DataFrame(out)
    order = {"dense": 0, TISSUENET: 1}
    frame["_order"] = frame["method"].map(lambda m: order.get(m, 2))
    frame = frame.sort_values(
        ["dataset", "model", "_order", "family", "macs_effective_reduction_pct", "label"], kind="stable"
    ).drop(columns="_order")
    return _significance(frame.reset_index(drop=True))


def _reference_label(record) -> str:
    """The label of the equal-budget dense row a row is compared with (``dense`` or ``dense@eN``)."""
    ref, dense = record.get("reference_epochs"), record.get("dense_epochs")
    if ref is None or dense is None or pd.isna(ref) or pd.isna(dense) or int(ref) == int(dense):
        return "dense"
    return f"dense@e{int(ref)}"


def _preset_of(options) -> str | None:
    if isinstance(options, str):
        try:
            options = json.loads(options)
        except json.JSONDecodeError:
            return None
    return options.get("preset") if isinstance(options, dict) else None


def _significance(frame: pd.DataFrame) -> pd.DataFrame:
    """Paired t-tests over seeds: each row against its equal-budget dense reference (``dense@eN`` where the
    row trained for another budget) and against the TissueNet row of nearest cost; within each table
    (dataset, model) each family of p-values is adjusted by Holm's method (``p_vs_dense``, ``p_vs_tissuenet``
    hold the adjusted values, ``*_raw`` the unadjusted ones)."""
    frame = frame.copy()
    for col in ("p_vs_dense", "p_vs_tissuenet", "vs_tissuenet", "vs_dense", "p_vs_dense_raw", "p_vs_tissuenet_raw"):
        frame[col] = None
    for _, group in frame.groupby(["dataset", "model"]):
        dense = {r["label"]: r for _, r in group[group["method"] == "dense"].iterrows()}
        tissue = group[group["method"] == TISSUENET]
        raw_dense, raw_tissue = {}, {}
        for i, row in group.iterrows():
            if row["seeds"] < 2:
                continue
            wanted = row.get("reference_label") or "dense"
            reference = dense.get(wanted)
            if reference is None and row["method"] != "dense":  # never silently against another budget's row
                frame.at[i, "vs_dense"] = f"{wanted} (missing)"
            if reference is not None and row["method"] != "dense":
                frame.at[i, "vs_dense"] = reference["label"]
                raw_dense[i] = stats.paired_t_test(row["top1_by_seed"], reference["top1_by_seed"]).p_value
            if len(tissue) and row["method"] != TISSUENET:
                nearest = tissue.iloc[
                    (tissue["macs_effective_reduction_pct"] - row["macs_effective_reduction_pct"])
                    .abs()
                    .argsort()
                    .iloc[0]
                ]
                frame.at[i, "vs_tissuenet"] = nearest["label"]
                raw_tissue[i] = stats.paired_t_test(row["top1_by_seed"], nearest["top1_by_seed"]).p_value
        for raw, col in ((raw_dense, "p_vs_dense"), (raw_tissue, "p_vs_tissuenet")):
            for i, adjusted in zip(raw, stats.holm(list(raw.values()))):
                frame.at[i, f"{col}_raw"] = raw[i]
                frame.at[i, col] = adjusted
    return frame


def published() -> pd.DataFrame:
    """The paper's rows in this suite's columns; cells that contradict their own row are replaced by the
    consistent value and listed in ``marks`` ({column: printed value}), never corrected silently."""
    out = []
    for raw in published_rows():

        def num(key, raw=raw):
            return float(raw[key]) if raw.get(key, "") != "" else math.nan

        base, top1 = num("base_top1"), num("top1")
        f_cut, p_cut = num("flops_reduction_pct"), num("params_reduction_pct")
        row = {
            "dataset": raw["dataset"],
            "model": PAPER_MODELS.get(raw["model"], raw["model"]),
            "paper_model": raw["model"],
            "label": raw["method"],
            "family": raw["method"],
            "method": raw["method"],
            "target": "",
            "source": PUBLISHED,
            "seeds": math.nan,
            "failed": 0,
            "base_top1": base,
            "top1": top1,
            "acc_drop": num("acc_drop"),
            "flops_effective": num("base_flops_m") * 1e6 * (1 - f_cut / 100),
            "macs_effective_reduction_pct": f_cut,
            "params_nonzero": num("base_params_m") * 1e6 * (1 - p_cut / 100),
            "params_nonzero_reduction_pct": p_cut,
            "speedup_theoretical": num("speedup"),
            "marks": {},
        }
        consistent = {"acc_drop": base - top1}
        if not math.isnan(f_cut) and f_cut < 100:  # a printed speed-up against its own FLOPs cut
            consistent["speedup_theoretical"] = 100 / (100 - f_cut)
        for metric in TRADEOFFS:
            kind, w1, w2 = metric.split("_")
            cut = f_cut if kind == "tca" else p_cut
            fn = tca if kind == "tca" else tsa
            consistent[metric] = (
                fn(base, top1, 100.0, 100.0 - cut, int(w1), int(w2)) if not math.isnan(cut) else math.nan
            )
            row[metric] = num(metric)
        row["readings"] = {}
        implied = _implied_cut(row, base, top1, "tsa", p_cut)
        if implied is not None:  # every TSA cell says another params cut: a contradiction, not one typo
            row["readings"]["params_nonzero_reduction_pct"] = implied
            consistent = {k: v for k, v in consistent.items() if not k.startswith("tsa")}  # kept as printed
        for metric, value in consistent.items():
            printed = row[metric]
            if not math.isnan(printed) and not math.isnan(value) and abs(printed - value) > TOLERANCE[metric]:
                row["marks"][metric] = printed
                row[metric] = value
        out.append(row)
    return pd.DataFrame(out)


def _implied_cut(row: dict, base: float, top1: float, kind: str, printed_cut: float) -> float | None:
    """The cut (in %) that a row's TCA or TSA cells imply, when all of them agree on one that the printed
    column contradicts (MobileNetV2/CIFAR-100 "Ours": params -60.48 % printed, its TSA cells say -64.48 %).

    TSA(w1, w2) = exp(w1 cut) / exp(w2 drop / base), so cut = (ln TSA + w2 drop / base) / w1."""
    if math.isnan(printed_cut) or not base:
        return None
    cuts = []
    for w1, w2 in WEIGHTINGS:
        cell = row.get(f"{kind}_{w1}_{w2}")
        if cell is None or math.isnan(cell) or cell <= 0:
            return None
        cuts.append(100 * (math.log(cell) + w2 * (base - top1) / base) / w1)
    agree = max(cuts) - min(cuts) <= IMPLIED_AGREEMENT
    far = abs(sum(cuts) / len(cuts) - printed_cut) > 2 * IMPLIED_AGREEMENT
    return round(sum(cuts) / len(cuts), 2) if agree and far else None


def provenance(rows: pd.DataFrame) -> dict:
    """Git shas, devices and dates of the runs behind a report, and the ``--set`` overrides they ran with."""
    from benchmarks.suites.overrides import describe

    if rows.empty:
        return {}

    def distinct(col):
        return sorted({str(v) for v in rows[col].dropna()}) if col in rows else []

    versions = sorted({json.dumps(json.loads(v), sort_keys=True) for v in rows.get("versions", pd.Series()).dropna()})
    overrides = sorted(
        {describe(json.loads(v) if isinstance(v, str) else v) for v in rows.get("overrides", pd.Series()).dropna()}
        - {""}
    )
    return {
        "suites": distinct("suite"),
        "overrides": overrides,
        "git_sha": distinct("git_sha"),
        "git_dirty": distinct("git_dirty"),
        "devices": distinct("device_name"),
        "executors": distinct("executor"),
        # a run starts before its first job (its dense checkpoints train first): each record says when its run began
        "first_run_utc": min(distinct("run_started_utc") + distinct("started_utc"), default=""),
        "last_run_utc": max(distinct("finished_utc"), default=""),
        "seeds": sorted({int(s) for s in rows["seed"]}),
        "versions": [json.loads(v) for v in versions],
        "jobs": len(rows),
        "failed": int((rows["status"] != "ok").sum()),
    }


def runtime_cells(ok: pd.DataFrame) -> dict:
    """{runtime: {batch: {"speedup", "ms", "reliable", "forms"}}} over seeds (means; reliable only if every seed's
    is), or {runtime: {"unavailable": why}}: what the report's runtime table shows, unreliable cells marked."""
    out: dict = {}
    for raw in ok.get("runtimes", pd.Series(dtype=object)).dropna():
        table = json.loads(raw) if isinstance(raw, str) else raw
        for runtime, batches in (table or {}).items():
            if "unavailable" in batches:
                out.setdefault(runtime, {"unavailable": batches["unavailable"]})
                continue
            slot = out.setdefault(runtime, {})
            for batch, cell in ((b, c) for b, c in batches.items() if b.isdigit()):
                slot.setdefault(batch, []).append(cell | {"forms": form_summary(batches.get("forms", {}).get(batch))})
    return {
        r: v
        if "unavailable" in v
        else {
            b: {
                "speedup": float(np.mean([c["speedup"] for c in cells])),
                "ms": float(np.mean([c["median_ms"] for c in cells])),
                "reliable": all(c.get("reliable", True) for c in cells),
                "forms": cells[0]["forms"],
            }
            for b, cells in sorted(v.items(), key=lambda i: int(i[0]))
        }
        for r, v in out.items()
    }


def form_summary(forms: dict | None) -> str:
    """'fused_op 7 of 9 sites, grouped 2 of 9 sites': the forms an ONNX file runs its stacked layers in, then
    '; 7 consecutive fused blocks as 3 chain node(s)' where whole-model timing chose chains (no sites of their own)."""
    forms = forms or {}
    counts = Counter(f["chosen"] for f in forms.values() for _ in range(f.get("sites", 1)))
    chained = [label for label, f in forms.items() if f.get("sites") == 0 and f["chosen"] == "chained"]
    return "; ".join(
        [", ".join(f"{form} {n} of {counts.total()} sites" for form, n in sorted(counts.items())), *chained]
    )


def runtime_speedups(ok: pd.DataFrame) -> dict:
    """{runtime: {batch: mean paired speed-up over seeds, or NaN when a seed's timing was unreliable}} and
    {runtime: {"unavailable": why}}: what the runtime figure draws."""
    return {
        r: v if "unavailable" in v else {b: c["speedup"] if c["reliable"] else math.nan for b, c in v.items()}
        for r, v in runtime_cells(ok).items()
    }


def _tight(ok: pd.DataFrame, value: str, spread: str) -> bool | None:
    """Whether every known ``value`` has an IQR (``spread``) at most UNRELIABLE_SPREAD of it and at least
    RELIABLE_SAMPLES samples; None where no row knows both."""
    if value not in ok or spread not in ok:
        return None
    number, iqr = (pd.to_numeric(ok[col], errors="coerce") for col in (value, spread))
    samples = pd.to_numeric(ok.get("latency_samples", pd.Series(RELIABLE_SAMPLES, index=ok.index)))
    known = number.notna() & iqr.notna() & (number > 0)
    if not known.any():
        return None
    tight = iqr[known] / number[known] <= UNRELIABLE_SPREAD
    return bool((tight & (samples[known].fillna(RELIABLE_SAMPLES) >= RELIABLE_SAMPLES)).all())


def _latency_reliable(ok: pd.DataFrame) -> bool:
    """A latency is trusted when its own timings are tight (IQR at most a quarter of the median) and many."""
    return _tight(ok, "latency_ms", "latency_iqr_ms") is not False


def _speedup_reliable(ok: pd.DataFrame) -> bool:
    """The rule of ``benchmarks.measure.speed.Paired.reliable``, applied to the stored ratio and its IQR (so records
    written under an older rule are judged by today's); records without them keep their stored flag."""
    tight = _tight(ok, "speedup_measured", "speedup_iqr")
    if tight is not None:
        return tight
    return bool(ok.get("latency_reliable", pd.Series([True])).fillna(True).astype(bool).all())


def safe_name(text: str) -> str:
    """A file-name-safe form of a dataset or model name (they come from records: never trusted as paths)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", str(text)).strip(".-") or "unnamed"


def latency_settings(rows: pd.DataFrame) -> dict:
    """How the latencies were measured (distinct values of the labelled columns)."""
    cols = (
        "latency_mode latency_device latency_threads latency_batch throughput_batch latency_allocator latency_samples"
    )

    def text(v) -> str:  # 2.0 -> "2": counts read back as floats
        return str(int(v)) if isinstance(v, (float, np.floating)) and float(v).is_integer() else str(v)

    return {col: sorted({text(v) for v in rows[col].dropna()}) for col in cols.split() if col in rows}


__all__ = ["BY_NAME", "REPORTED", "ReportData", "aggregate", "load", "published", "provenance"]
