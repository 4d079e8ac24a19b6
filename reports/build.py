"""``tissuebench report``: tables, figures and a static index page from a results folder.

Fast (no training, seconds). Deterministic: the same results give byte-identical files (no
timestamps; matplotlib metadata and the SVG hash salt pinned). Failed or missing jobs are
reported as gaps, not hidden.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from benchmarks.files import PathError, StorageError
from reports import data, figures, tables
from reports.index import write_index

STORE_FOLDERS = ("records", "checkpoints", "models", "plans", "locks", "quarantine")


def check_out_folder(results: Path, out: Path) -> None:
    """The report folder may not overlap the result store (it is rewritten on every report)."""
    res, dst = results.resolve(), out.resolve()
    inside_store = any(dst == res / f or (res / f) in dst.parents for f in STORE_FOLDERS)
    if dst == res or dst in res.parents or inside_store:
        raise PathError(
            f"--out {out} overlaps the results folder {results}: give the report its own folder "
            f"(default: {results / 'report'})"
        )


def build_report(results: Path, out: Path, include_superseded: bool = False) -> dict:
    results, out = Path(results), Path(out)
    if not (results / "records").is_dir():
        raise FileNotFoundError(f"no results folder at {results} (expected {results}/records/)")
    check_out_folder(results, out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / ".write-test").write_text("")
        (out / ".write-test").unlink()
    except OSError as exc:
        raise StorageError(exc.errno, f"cannot write the report to {out} ({exc.strerror}); give --out DIR") from exc
    rows, damaged = data.measured(results, include_superseded)
    agg = data.aggregate(rows)
    published = data.published()
    history_path = results / "history.parquet"
    history = pd.read_parquet(history_path) if history_path.exists() else pd.DataFrame()
    manifest = {
        "tables": tables.write_tables(agg, published, out),
        "figures": [],
        "gaps": gaps(rows, results)
        + [{"job_id": d["file"], "status": "damaged", "error": d["reason"]} for d in damaged],
    }
    with plt.style.context(str(figures.STYLE)):
        for (dataset, model), group in rows.groupby(["dataset", "model"], sort=True) if len(rows) else []:
            title = f"{model} on {dataset}"
            sub_agg = agg[(agg["dataset"] == dataset) & (agg["model"] == model)]
            sub_pub = published[(published["dataset"] == dataset) & (published["model"] == model)]
            sub_hist = (
                history[(history["dataset"] == dataset) & (history["model"] == model)] if len(history) else history
            )
            drawn = {
                "tradeoff": figures.tradeoff(group, sub_pub, title),
                "accuracy_vs_params": figures.accuracy_vs_params(group, title),
                "curves": figures.curves(sub_hist, title),
                "tca_tsa": figures.tca_tsa(sub_agg, title),
                "latency": figures.latency(sub_agg, title),
            }
            for kind, (fig, legend) in drawn.items():
                files = figures.save(fig, out / f"fig_{kind}_{dataset}_{model}")
                manifest["figures"].append(
                    {"kind": kind, "dataset": dataset, "model": model, "files": files, "legend": legend}
                )
    manifest["provenance"] = data.provenance(rows)
    write_index(out / "index.html", manifest)
    (out / "manifest.json").write_text(
        json.dumps(_without_html(manifest), indent=1, sort_keys=True, default=str) + "\n"
    )
    return manifest


def gaps(rows: pd.DataFrame, results: Path) -> list[dict]:
    """Failed jobs (with their errors) and jobs of the suite that have no record."""
    out = []
    if len(rows):
        for _, r in rows[rows["status"] != "ok"].iterrows():
            out.append({"job_id": r["job_id"], "status": "failed", "error": str(r.get("error", ""))})
    from benchmarks.suite import SuiteError, list_suites, load_suite

    have = set(rows["job_id"]) if len(rows) else set()
    for name in sorted(set(rows["suite"].dropna()) if len(rows) else []):
        if name not in list_suites():
            continue
        try:
            expected = load_suite(name).jobs()
        except SuiteError:
            continue
        out += [{"job_id": j.job_id, "status": "missing", "error": ""} for j in expected if j.job_id not in have]
    return out


def _without_html(manifest: dict) -> dict:
    return manifest | {"tables": [{k: v for k, v in t.items() if k != "html"} for t in manifest["tables"]]}
