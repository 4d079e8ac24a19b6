"""Nightly history: every night's results of one suite, one folder per commit, and the table across them.

Layout (``tissuebench nightly``)::

    runs/nightly/<suite>/
        <YYYYMMDD>-<sha10>[-dirty-<diff8>]/   one night: a results folder (records, tables, report/, night.json)
        history.parquet                        every job's metrics per night (rebuilt from the folders)
        trend/index.html                       the metrics over nights, with the reference band

A night measures the code it runs on: a new commit gets a new folder, so nothing of last night's
records is reused. Dense checkpoints are reused only from an earlier night whose code fingerprint
(every source file that determines a result, ``provenance.code_fingerprint``) is the same.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from benchmarks.store.files import HASH_SUFFIX, DamagedFileError, read_json, write_text_atomic

NIGHT_FILE = "night.json"
HISTORY = "history.parquet"
METRICS = ("top1", "top5", "params", "params_nonzero", "macs", "macs_effective", "speedup_measured", "latency_ms")


def night_name(state: dict, date: str | None = None) -> str:
    """``20261130-0123456789`` (``-dirty-<diff8>`` for uncommitted code: the same edits, the same folder)."""
    date = date or datetime.now(UTC).strftime("%Y%m%d")
    name = f"{date}-{state['commit'][:10]}"
    return name + (f"-dirty-{state['diff_sha256'][:8]}" if state["dirty"] else "")


def nights(suite_root: Path) -> list[tuple[Path, dict]]:
    """Every night folder with its metadata, oldest first (damaged metadata: skipped, named)."""
    out = []
    for path in sorted(suite_root.glob(f"*/{NIGHT_FILE}")) if suite_root.is_dir() else []:
        try:
            meta = read_json(path)
        except DamagedFileError as exc:
            print(f"tissuebench: {exc}; that night is left out of the history")
            continue
        out.append((path.parent, meta))
    return sorted(out, key=lambda x: (x[1].get("started_utc", ""), x[0].name))


def write_night(folder: Path, meta: dict) -> None:
    write_text_atomic(folder / NIGHT_FILE, json.dumps(meta, indent=1, sort_keys=True) + "\n")


def reuse_dense(suite_root: Path, folder: Path, fingerprint: str) -> list[str]:
    """Link the dense checkpoints of the latest earlier night with the same code fingerprint into ``folder``."""
    for past, meta in reversed(nights(suite_root)):
        if past == folder or meta.get("fingerprint") != fingerprint:
            continue
        source = past / "checkpoints" / "dense"
        target = folder / "checkpoints" / "dense"
        reused = []
        for ckpt in sorted(source.glob("*.pt")) if source.is_dir() else []:
            digest = ckpt.with_name(ckpt.name + HASH_SUFFIX)  # without it the checkpoint cannot be verified
            if ckpt.name.endswith(".partial.pt") or (target / ckpt.name).exists() or not digest.is_file():
                continue
            target.mkdir(parents=True, exist_ok=True)
            for path in (digest, ckpt):  # the digest first: a checkpoint is never there without it
                try:
                    os.link(path, target / path.name)
                except OSError:  # another file system: copy
                    shutil.copy2(path, target / path.name)
            reused.append(ckpt.name)
        return reused
    return []


def build_history(suite_root: Path) -> pd.DataFrame:
    """One row per night and job of that night's current suite definition; written to ``history.parquet``."""
    from benchmarks.store.results import ResultStore

    rows = []
    for folder, meta in nights(suite_root):
        store = ResultStore(folder, log=lambda msg: None)
        for rec in store.scan().records:
            if rec.get("superseded"):
                continue
            rows.append(
                {
                    "night": folder.name,
                    "date": meta.get("date", ""),
                    "started_utc": meta.get("started_utc", ""),
                    "commit": meta.get("commit", ""),
                    "dirty": bool(meta.get("dirty")),
                    "fingerprint": meta.get("fingerprint", ""),
                    "job_id": rec["job_id"],
                    "dataset": rec["dataset"],
                    "model": rec["model"],
                    "label": rec["label"],
                    "seed": rec.get("seed"),
                    "status": rec["status"],
                }
                | {m: rec.get(m) for m in METRICS}
            )
    table = pd.DataFrame(rows, columns=["night", "date", "started_utc", "commit", "dirty", "job_id", "dataset"])
    if rows:  # nights in the order they ran (several commits can share a date)
        table = pd.DataFrame(rows).sort_values(["started_utc", "night", "job_id"], kind="stable").reset_index(drop=True)
    if suite_root.is_dir():
        import io

        from benchmarks.store.files import write_bytes_atomic

        buffer = io.BytesIO()
        table.to_parquet(buffer, index=False)
        write_bytes_atomic(suite_root / HISTORY, buffer.getvalue())
    return table
