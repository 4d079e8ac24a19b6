"""The result store: one JSON record per job, written atomically, and a consolidated table.

Layout of a results folder::

    records/<job_id>.json     one per job (status ok or failed), the source of truth
    table.parquet, table.csv  all records, one row each, rebuilt from records/ (never appended)
    history.parquet           per-epoch rows (train loss, test loss, test accuracy) for plots
    plans/<suite>.json        the job ids of the suite's latest definition (older ones: superseded)
    checkpoints/              dense checkpoints and resumable per-job state
    models/<job_id>.pt        every job's trained model (registry name + options + weights)
    quarantine/               damaged files, moved aside with a ``.why.txt`` (never deleted)
    locks/                    per-job and per-checkpoint locks (two runs never train one job twice)

A damaged record (any bytes: truncated, not UTF-8, JSON of the wrong shape, a copy under another
job's name) never blocks a command: it is named in one line, moved to ``quarantine/``, counted as
not done (the next ``run`` redoes it) and listed as a gap by ``show``, ``report`` and ``check``.
A read-only folder is read as it is: tables are rebuilt in memory.
"""

from __future__ import annotations

import errno
import fcntl
import json
import math
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.store import record as schema
from benchmarks.store.files import (
    ALREADY_MOVED,
    QUARANTINE,
    DamagedFileError,
    PathError,
    StorageError,
    inside,
    no_links,
    process_alive,
    quarantine,
    read_json,
    read_reason,
    remove_verified,
    temporary_pid,
    write_text_atomic,
)
from benchmarks.store.text import spreadsheet_safe


@dataclass
class Scan:
    """What a folder holds: readable records, and the damaged files set aside (gaps)."""

    records: list[dict] = field(default_factory=list)
    damaged: list[dict] = field(default_factory=list)  # {"file", "reason", "moved_to"}


class ResultStore:
    def __init__(self, root: str | os.PathLike, log=None) -> None:
        self.root = Path(root)
        self.records_dir = self.root / "records"
        self.checkpoints = self.root / "checkpoints"
        self.models = self.root / "models"
        self.log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))

    # -- records -------------------------------------------------------------------------------
    def path(self, job_id: str) -> Path:
        return inside(self.root, "records", f"{job_id}.json")

    def get(self, job_id: str) -> dict | None:
        """The record of a job, or None (absent or damaged: a damaged one is set aside)."""
        path = self.path(job_id)
        try:
            return read_record(path)
        except FileNotFoundError:  # absent, or set aside by another process a moment ago
            return None
        except DamagedFileError as exc:
            self._set_aside(exc)
            return None

    def is_done(self, job_id: str) -> bool:
        rec = self.get(job_id)
        return rec is not None and rec.get("status") == "ok"

    def write(self, record: dict) -> Path:
        """Store a job's record; one that does not fit the schema (``record.py``) is a bug, never written."""
        record = _finite({"schema_version": schema.SCHEMA_VERSION} | record)
        text = json.dumps(schema.check(record), indent=1, sort_keys=True)
        if len(text.encode()) > schema.MAX_BYTES:
            raise schema.RecordError(f"record of {record['job_id']} is {len(text.encode()):,} bytes, over the limit")
        return write_text_atomic(self.path(record["job_id"]), text)

    def scan(self) -> Scan:
        """Every readable record; damaged ones are moved to quarantine and reported."""
        scan = Scan(damaged=self.quarantined())
        no_links(self.root, self.records_dir)
        for path in sorted(self.records_dir.glob("*.json")) if self.records_dir.is_dir() else []:
            try:
                scan.records.append(read_record(path))
            except FileNotFoundError:  # another process set it aside meanwhile
                continue
            except DamagedFileError as exc:
                scan.damaged.append(self._set_aside(exc))
        current = self.current_plans()
        for rec in scan.records:
            plan = current.get(plan_name(rec))
            rec["superseded"] = plan is not None and rec["job_id"] not in plan
        return scan

    def records(self) -> list[dict]:
        return self.scan().records

    def quarantined(self) -> list[dict]:
        """Files set aside by earlier commands, each with its reason (read as input: no link followed)."""
        folder = self.root / QUARANTINE
        out = []
        if not folder.is_dir():
            return out
        no_links(self.root, folder)
        for parent, dirs, files in os.walk(folder):  # never into a linked folder
            for name in sorted(f for f in files + dirs if f.endswith(".why.txt")):
                why = Path(parent) / name
                moved = why.with_name(name.removesuffix(".why.txt"))
                out.append(
                    {"file": str(moved.relative_to(self.root)), "reason": read_reason(why), "moved_to": str(moved)}
                )
        return sorted(out, key=lambda d: d["file"])

    def _set_aside(self, exc: DamagedFileError) -> dict:
        moved = quarantine(self.root, exc.path, exc.reason)
        if moved == ALREADY_MOVED:
            where, moved = "already set aside by another process", None
        else:
            where = f"moved to {moved}" if moved else "left in place (the folder cannot be written)"
        self.log(f"tissuebench: damaged file {exc.path}: {exc.reason}; {where}; its job counts as not done")
        return {"file": str(exc.path), "reason": exc.reason, "moved_to": str(moved) if moved else None}

    # -- leftovers of killed runs ------------------------------------------------------------------
    # the folders this store's writer writes temporaries in (``files.write_bytes_atomic``); nowhere else
    WRITES_IN = ("", "records", "plans", "models", "checkpoints/dense", "checkpoints/jobs")

    def clean_stale(self) -> list[str]:
        """Remove what a killed run left and nothing needs: the writer's temporaries of dead processes (only
        names it gives, ``.NAME.PID.tmp``, only in the folders it writes), resume state of jobs that finished,
        partial dense checkpoints whose final one exists. Returns what was removed."""
        removed = []
        if not self.root.is_dir():
            return removed
        for sub in self.WRITES_IN:
            folder = self.root / sub
            if folder.is_symlink() or not folder.is_dir():
                continue
            for path in sorted(folder.iterdir()):
                pid = temporary_pid(path.name)
                if pid is not None and path.is_file() and not path.is_symlink() and not process_alive(pid):
                    path.unlink(missing_ok=True)
                    removed.append(str(path.relative_to(self.root)))
        jobs = self.checkpoints / "jobs"
        for state in sorted(jobs.glob("*.pt")) if jobs.is_dir() and not jobs.is_symlink() else []:
            if self.is_done(re.sub(r"\.phase[0-9]+$", "", state.stem)):  # a later phase's state is named .phaseN
                remove_verified(state)
                removed.append(str(state.relative_to(self.root)))
        dense = self.checkpoints / "dense"
        for partial in sorted(dense.glob("*.partial.pt")) if dense.is_dir() and not dense.is_symlink() else []:
            if partial.with_name(partial.name.replace(".partial.pt", ".pt")).exists():
                remove_verified(partial)
                removed.append(str(partial.relative_to(self.root)))
        return removed

    # -- plans: which records belong to a suite's latest definition ------------------------------
    def write_plan(self, suite: str, job_ids: list[str], suite_hash: str) -> None:
        path = inside(self.root, "plans", f"{suite}.json")
        write_text_atomic(
            path, json.dumps({"suite": suite, "suite_hash": suite_hash, "jobs": sorted(job_ids)}, indent=1)
        )

    def current_plans(self) -> dict[str, set[str]]:
        plans = {}
        folder = no_links(self.root, self.root / "plans")
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            try:
                data = read_json(path)
                if not isinstance(data.get("jobs"), list) or not isinstance(data.get("suite"), str):
                    raise DamagedFileError(path, "a plan needs 'suite' and a 'jobs' list")
                plans[data["suite"]] = set(data["jobs"])
            except DamagedFileError as exc:
                self._set_aside(exc)
        return plans

    # -- consolidated tables --------------------------------------------------------------------
    def consolidate(self, records: list[dict] | None = None, *, write: bool = True):
        """The table of every record (and the per-epoch history); written unless the folder is read-only."""
        import pandas as pd

        records = self.records() if records is None else records
        rows, history = [], []
        for rec in records:
            row = {k: v for k, v in rec.items() if k != "history"}
            for key, value in row.items():  # nested values (options, versions, data source) as JSON text
                if key in schema.JSON_COLUMNS and value is not None:
                    row[key] = json.dumps(value, sort_keys=True)
            rows.append(row)
            for h in rec.get("history") or []:
                if isinstance(h, dict):
                    history.append(
                        {
                            "job_id": rec["job_id"],
                            "dataset": rec["dataset"],
                            "model": rec["model"],
                            "label": rec["label"],
                            "seed": rec.get("seed"),
                            "phase": rec.get("phase"),
                            "superseded": rec.get("superseded", False),
                        }
                        | h
                    )
        table = pd.DataFrame(rows)
        if len(table):
            table = table[[c for c in schema.COLUMNS if c in table.columns]]
            table = table.sort_values(["dataset", "model", "seed", "label", "job_id"], kind="stable")
            table = table.reset_index(drop=True)
        history = pd.DataFrame(history)
        if write:
            try:
                with self.lock():
                    _write_frame(table, self.root / "table.parquet", "parquet")
                    _write_frame(table, self.root / "table.csv", "csv")
                    _write_frame(history, self.root / "history.parquet", "parquet")
            except StorageError as exc:
                self.log(f"tissuebench: tables not written ({exc.strerror}); using them in memory")
        return table, history

    @contextmanager
    def lock(self, name: str = "store", *, blocking: bool = True) -> Iterator[bool]:
        """An exclusive file lock; with ``blocking=False`` yields False when another process holds it."""
        path = inside(self.root, "locks", f"{name}.lock")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o644)
            handle = os.fdopen(fd, "a")
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise PathError(f"{path} is a symbolic link: a results folder's links are not followed") from None
            yield True  # a read-only folder: nothing can be written, so nothing needs a lock
            return
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def plan_name(record: dict) -> str:
    """The plan a record belongs to: its suite, or ``suite+variant`` for a run with ``--set`` overrides."""
    variant = record.get("suite_variant")
    return f"{record.get('suite')}+{variant}" if isinstance(variant, str) and variant else str(record.get("suite"))


def read_record(path: Path) -> dict:
    """A stored record that fits the schema, or :class:`DamagedFileError` naming what is wrong with it."""
    try:
        size = os.lstat(path).st_size
    except FileNotFoundError:
        raise
    except OSError:
        size = 0
    if size > schema.MAX_BYTES:
        raise DamagedFileError(path, f"{size:,} bytes, over the {schema.MAX_BYTES:,}-byte limit of a record")
    try:
        return schema.check(read_json(path), path)
    except schema.RecordError as exc:
        raise DamagedFileError(path, str(exc)) from None


def _write_frame(frame, path: Path, kind: str) -> None:
    import io

    from benchmarks.store.files import write_bytes_atomic

    buffer = io.BytesIO()
    if kind == "parquet":
        frame.to_parquet(buffer, index=False)
        write_bytes_atomic(path, buffer.getvalue())
    else:
        write_text_atomic(path, spreadsheet_safe(frame).to_csv(index=False))


def _finite(obj):
    """JSON has no NaN/inf: store them as null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj
