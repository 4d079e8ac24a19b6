"""The rows a report is made of: measured runs (aggregated over seeds) and published rows.

Measured rows come from a results folder's records; published rows from the paper's tables
(``results/paper/bunitnet_tables.csv``), each against its own baseline, never mixed with ours.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.paper import PAPER_CSV, PAPER_MODELS
from benchmarks.store import ResultStore

METRICS = [
    "base_top1",
    "top1",
    "acc_drop",
    "flops",
    "flops_reduction_pct",
    "params_nonzero",
    "params_reduction_pct",
    "speedup_theoretical",
    "latency_ms",
    "speedup_measured",
    "tca_1_1",
    "tsa_1_1",
    "tca_1_4",
    "tsa_1_4",
    "tca_4_1",
    "tsa_4_1",
]


def family(label: str) -> str:
    """A method's curve: its label without the target (``prune_l1@macs50`` -> ``prune_l1``)."""
    return label.split("@")[0]


def measured(results: Path, include_superseded: bool = False) -> tuple[pd.DataFrame, list[dict]]:
    """Every current record as one row (and the damaged files); unstructured cost as effective FLOPs."""
    store = ResultStore(results)
    scan = store.scan()
    table, _ = store.consolidate(scan.records)
    if len(table) and not include_superseded:
        table = table[~table["superseded"].astype(bool)]
    if table.empty:
        return table, scan.damaged
    table = table.copy()
    table["family"] = table["label"].map(family)
    if "macs_effective" in table:  # the honest cost of a masked model
        table["flops"] = 2 * table["macs_effective"]
        table["flops_reduction_pct"] = table.get("macs_effective_reduction_pct", table.get("flops_reduction_pct"))
    if "params_nonzero_reduction_pct" in table:  # params shown are nonzero params: cut likewise
        table["params_reduction_pct"] = table["params_nonzero_reduction_pct"].fillna(table["params_reduction_pct"])
    table["source"] = "measured here"
    for col in METRICS:  # e.g. latency off: the column exists, empty, and the report marks it "–"
        if col not in table:
            table[col] = np.nan
    return table, scan.damaged


def aggregate(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds per (dataset, model, label); failed jobs kept as gaps."""
    if table.empty:
        return table
    keys = ["dataset", "model", "label"]
    ok = table[table["status"] == "ok"]
    cols = [c for c in METRICS if c in table.columns]
    rows = []
    for key, group in table.groupby(keys, sort=True):
        good = ok[(ok[keys] == pd.Series(key, index=keys)).all(axis=1)]
        row = dict(zip(keys, key)) | {
            "family": family(key[2]),
            "method": group["method"].iloc[0],
            "source": "measured here",
            "seeds": len(good),
            "failed": int((group["status"] != "ok").sum()),
        }
        for c in cols:
            values = pd.to_numeric(good[c], errors="coerce").dropna()
            row[c] = values.mean() if len(values) else np.nan
            row[c + "_std"] = values.std(ddof=1) if len(values) > 1 else np.nan
        rows.append(row)
    out = pd.DataFrame(rows)
    order = {"dense": 0, "tissuenet": 1}
    out["_order"] = out["method"].map(lambda m: order.get(m, 2))
    return (
        out.sort_values(["dataset", "model", "_order", "label"], kind="stable")
        .drop(columns="_order")
        .reset_index(drop=True)
    )


def published(path: Path = PAPER_CSV) -> pd.DataFrame:
    """The paper's table rows in this suite's column names, marked as published."""
    raw = pd.read_csv(path)
    out = pd.DataFrame(
        {
            "dataset": raw["dataset"],
            "model": raw["model"].map(PAPER_MODELS).fillna(raw["model"]),
            "label": raw["method"],
            "family": raw["method"],
            "method": raw["method"],
            "source": "published (own baseline)",
            "seeds": np.nan,
            "failed": 0,
            "base_top1": raw["base_top1"],
            "top1": raw["top1"],
            "acc_drop": raw["acc_drop"],
            "flops": raw["base_flops_m"] * 1e6 * (1 - raw["flops_reduction_pct"] / 100),
            "flops_reduction_pct": raw["flops_reduction_pct"],
            "params_nonzero": raw["base_params_m"] * 1e6 * (1 - raw["params_reduction_pct"] / 100),
            "params_reduction_pct": raw["params_reduction_pct"],
            "speedup_theoretical": raw["speedup"],
        }
    )
    for col in ("tca_1_1", "tsa_1_1", "tca_1_4", "tsa_1_4", "tca_4_1", "tsa_4_1"):
        out[col] = raw[col]
    return out


def provenance(table: pd.DataFrame) -> dict:
    """Git shas, devices and dates of the runs behind a report."""
    if table.empty:
        return {}

    def distinct(col):
        return sorted({str(v) for v in table[col].dropna()}) if col in table else []

    versions = sorted({json.dumps(json.loads(v), sort_keys=True) for v in table.get("versions", pd.Series()).dropna()})
    return {
        "git_sha": distinct("git_sha"),
        "git_dirty": distinct("git_dirty"),
        "devices": distinct("device_name"),
        "first_run_utc": min(distinct("started_utc"), default=""),
        "last_run_utc": max(distinct("finished_utc"), default=""),
        "suites": distinct("suite"),
        "versions": [json.loads(v) for v in versions],
        "jobs": len(table),
        "failed": int((table["status"] != "ok").sum()),
    }
