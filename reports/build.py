"""``tissuebench report``: tables, figures and a static index page from a results folder.

Fast (no training). Deterministic: the same results give byte-identical files (no timestamps;
matplotlib metadata and the SVG hash salt pinned). Failed,
missing, damaged and superseded jobs are reported as gaps, not hidden.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from benchmarks.store.files import PathError, StorageError, no_links, process_alive, write_text_atomic
from reports import data, figures, plotting, tables
from reports.data import safe_name
from reports.index import write_index

STORE_FOLDERS = ("records", "checkpoints", "models", "plans", "locks", "quarantine")
# Written into every report folder: only a folder holding it is ever replaced (a user's folder never is)
MARKER = ".tissuebench-report"
MARKER_TEXT = "written by `tissuebench report`; the next report replaces this whole folder\n"


def is_report_folder(folder: Path) -> bool:
    """A folder this tool wrote as a report (its marker is a regular file, not a planted link)."""
    marker = folder / MARKER
    return marker.is_file() and not marker.is_symlink()


def check_out_folder(results: Path, out: Path) -> None:
    """The report folder may not overlap the result store (it is rewritten on every report), nor be a link,
    nor hold anything this tool did not write: only an empty folder or an earlier report is replaced."""
    res, dst = results.resolve(), out.resolve()
    inside_store = any(dst == res / f or (res / f) in dst.parents for f in STORE_FOLDERS)
    if dst == res or dst in res.parents or inside_store:
        raise PathError(
            f"--out {out} overlaps the results folder {results}: give the report its own folder "
            f"(default: {results / 'report'})"
        )
    if out.is_relative_to(results):  # a planted link below the results folder must not redirect the report
        no_links(results, out)
    check_replaceable(out)


def check_replaceable(out: Path) -> None:
    """``out`` may become a report folder: absent, empty, or an earlier report (never a link or a user's folder)."""
    if out.is_symlink():
        raise PathError(
            f"{out} is a symbolic link (to {os.readlink(out)}): the report replaces the folder; give it a real one"
        )
    if out.exists() and not out.is_dir():
        raise PathError(f"--out {out} is a file, not a folder: give the report a folder of its own")
    if out.is_dir() and any(out.iterdir()) and not is_report_folder(out):
        raise PathError(
            f"--out {out} holds files that no report wrote (no {MARKER} marker): the report replaces its folder "
            "whole, so give it an empty or new folder"
        )


def _writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise StorageError(exc.errno, f"cannot write the report to {out} ({exc.strerror}); give --out DIR") from exc


def build_report(results: Path, out: Path, include_superseded: bool = False, paper_costs: bool = True) -> dict:
    """Write the report of a results folder into ``out`` (see :func:`write_folder`)."""
    results = Path(results)
    if not (results / "records").is_dir():
        raise FileNotFoundError(f"no results folder at {results} (expected {results}/records/)")
    return write_folder(out, lambda folder: _build(results, folder, include_superseded, paper_costs), results)


def write_folder(out: Path, fill, results: Path | None = None):
    """``fill(folder)`` writes a report into a new folder beside ``out``, which is then swapped in: a report killed
    half-way leaves the previous one whole, never new tables beside an old page. Only an empty folder or one this
    tool wrote (its marker) is ever replaced; ``results`` is the folder a report may not overlap."""
    out = Path(os.path.abspath(out))  # absolute: `--out .` has a parent and a name
    if results is not None:
        check_out_folder(Path(results), out)
    else:
        check_replaceable(out)
    _remove_stale(out)
    building = out.with_name(f".{out.name}.{os.getpid()}.building")
    _writable(building)
    write_text_atomic(building / MARKER, MARKER_TEXT)
    try:
        summary = fill(building)
        _swap(building, out)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return summary


def _swap(new: Path, out: Path) -> None:
    old = out.with_name(f".{out.name}.{os.getpid()}.old")
    try:
        if out.exists():
            os.rename(out, old)
        os.rename(new, out)
    except OSError as exc:
        raise StorageError(exc.errno, f"cannot put the report in place at {out} ({exc.strerror})") from exc
    shutil.rmtree(old, ignore_errors=True)


def _remove_stale(out: Path) -> None:
    """Report folders a killed report left beside ``out`` (a dead pid's ``.building`` / ``.old``, with the marker)."""
    if not out.parent.is_dir():
        return
    for suffix in ("building", "old"):
        for stale in out.parent.glob(f".{out.name}.*.{suffix}"):
            pid = stale.name.split(".")[-2]
            if pid.isdigit() and not stale.is_symlink() and is_report_folder(stale) and not process_alive(pid):
                shutil.rmtree(stale, ignore_errors=True)


def _build(results: Path, out: Path, include_superseded: bool, paper_costs: bool) -> dict:
    loaded = data.load(results, include_superseded)
    agg = data.aggregate(loaded.rows)
    published = data.published()
    written = {(t["dataset"], t["model"]): t for t in tables.write_tables(agg, published, out)}
    sections = []
    with plt.style.context(str(plotting.STYLE)):
        for (dataset, model), table in sorted(written.items()):
            sub = agg[(agg["dataset"] == dataset) & (agg["model"] == model)]
            pub = published[(published["dataset"] == dataset) & (published["model"] == model)]
            hist = loaded.history
            if len(hist):
                hist = hist[(hist["dataset"] == dataset) & (hist["model"] == model)]
            sections.append(_section(dataset, model, table, sub, pub, hist, out))
    empty = [
        {"job_id": f"figure '{f['title']}', {s['model']} on {s['dataset']}", "status": "not measured", "error": ""}
        for s in sections
        for f in s["figures"]
        if not f["legend"]
    ]
    manifest = {
        "sections": sections,
        "gaps": gaps(loaded.rows, results)
        + [{"job_id": d["file"], "status": "damaged", "error": d["reason"]} for d in loaded.damaged]
        + empty,
        "provenance": data.provenance(loaded.rows),
        "superseded": loaded.superseded,
        "latency": data.latency_settings(loaded.rows) if len(loaded.rows) else {},
        "seeds_max": int(agg["seeds"].max()) if len(agg) else 0,
        "paper_costs": _paper_costs() if paper_costs else [],
        "kernels": kernels(loaded.rows),
    }
    write_index(out / "index.html", manifest)
    write_text_atomic(
        out / "manifest.json", json.dumps(_summary(manifest), indent=1, sort_keys=True, default=str) + "\n"
    )
    return _summary(manifest) | {"html_sections": len(sections)}


def _section(dataset, model, table, sub, pub, hist, out: Path) -> dict:
    title = f"{model} on {dataset}"
    drawn = []
    for kind, (name, draw) in figures.FIGURES.items():
        fig, legend, caption = draw(sub, pub, hist, title)
        files = plotting.save(fig, out / f"fig_{kind}_{safe_name(dataset)}_{safe_name(model)}")
        drawn.append({"kind": kind, "title": name, "caption": caption, "files": files, "legend": legend})
    return {
        "dataset": dataset,
        "model": model,
        "anchor": f"{safe_name(dataset)}-{safe_name(model)}",
        "table": table,
        "figures": drawn,
        "published_rows": len(pub),
        "runtimes_html": tables.runtime_table(sub),
        "pairs": _pairs(sub, pub),
    }


def _pairs(sub: pd.DataFrame, pub: pd.DataFrame) -> list[dict]:
    """Measured rows built from a published row's preset, against that row: the differences."""
    out = []
    for _, r in sub[sub["preset"].notna()].iterrows():
        match = pub[pub["label"] == r["preset"]]
        if not len(match):
            from baselines.reference import load_presets

            preset = load_presets().get(r["preset"])
            match = pub[pub["label"] == preset.row] if preset else match
        if len(match):
            p = match.iloc[0]
            out.append(
                {
                    "label": r["label"],
                    "published": p["label"],
                    "drop": r["acc_drop"] - p["acc_drop"],
                    "flops": r["macs_effective_reduction_pct"] - p["macs_effective_reduction_pct"],
                    "params": r["params_nonzero_reduction_pct"] - p["params_nonzero_reduction_pct"],
                }
            )
    return out


def _paper_costs() -> list[dict]:
    from benchmarks.paper.published import paper_costs

    return paper_costs()


def kernels(rows: pd.DataFrame) -> list[dict]:
    """The stacked-layer kernel chosen per layer shape, with every candidate's time (from the records)."""
    seen = {}
    for value in rows.get("latency_kernels", pd.Series(dtype=object)).dropna():
        choices = json.loads(value) if isinstance(value, str) else value
        for shape, choice in (choices or {}).items():
            if isinstance(choice, dict):
                times = ", ".join(f"{k} {v:.3f}" for k, v in sorted(choice.get("candidates", {}).items()))
                seen[shape] = {"shape": shape, "chosen": choice.get("chosen", "?"), "candidates": times}
    return [seen[k] for k in sorted(seen)]


def gaps(rows: pd.DataFrame, results: Path) -> list[dict]:
    """Failed jobs (with their errors), rows whose dense weights differ from their group's, and jobs of the
    suite that have no record."""
    from benchmarks.gate.judge import inconsistent_dense

    out = [
        {
            "job_id": d.job_id,
            "status": "inconsistent",
            "error": f"dense checkpoint {d.reference} has other weights: {d.measured}",
        }
        for d in inconsistent_dense(rows)
    ]
    if len(rows):
        for _, r in rows[rows["status"] != "ok"].iterrows():
            out.append({"job_id": r["job_id"], "status": "failed", "error": str(r.get("error", ""))})
    from benchmarks.suites.load import list_suites, load_suite
    from benchmarks.suites.suite import SuiteError

    have = set(rows["job_id"]) if len(rows) else set()
    for name, overrides in _suites_run(rows):
        if name not in list_suites():
            continue
        try:
            expected = load_suite(name, overrides).jobs()
        except SuiteError:
            continue
        out += [{"job_id": j.job_id, "status": "missing", "error": ""} for j in expected if j.job_id not in have]
    return out


def _suites_run(rows: pd.DataFrame) -> list[tuple[str, dict]]:
    """(suite, its --set overrides) of every run whose records are in the table."""
    if not len(rows):
        return []
    overrides = rows["overrides"] if "overrides" in rows else pd.Series([None] * len(rows), index=rows.index)
    seen = {}
    for name, raw in zip(rows["suite"], overrides):
        if not isinstance(name, str):
            continue
        value = json.loads(raw) if isinstance(raw, str) else (raw or {})
        seen[(name, json.dumps(value, sort_keys=True))] = value
    return [(name, seen[(name, key)]) for name, key in sorted(seen)]


def _summary(manifest: dict) -> dict:
    """The manifest without HTML: tables and figures written, gaps, provenance."""
    return {
        "tables": [{k: v for k, v in s["table"].items() if k != "html"} for s in manifest["sections"]],
        "figures": [
            f | {"dataset": s["dataset"], "model": s["model"]} for s in manifest["sections"] for f in s["figures"]
        ],
        "gaps": manifest["gaps"],
        "provenance": manifest["provenance"],
        "superseded": manifest["superseded"],
    }
