"""The result store: one JSON record per job, written atomically, and a consolidated table.

Layout of a results folder::

    records/<job_id>.json     one per job (status ok or failed), the source of truth
    table.parquet, table.csv  all records, one row each, rebuilt from records/ (never appended)
    history.parquet           per-epoch rows (train loss, test loss, test accuracy) for plots
    checkpoints/              the shared dense checkpoints and resumable per-job state

Writers never share a file: a record is written to a temporary name and renamed into place, and
the table is rebuilt under an exclusive lock, so parallel workers and killed sweeps cannot leave
partial rows or duplicates.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
from contextlib import contextmanager
from pathlib import Path

SCHEMA_VERSION = 1
# column order of the consolidated table (records may carry more; they follow in sorted order)
# fmt: off
COLUMNS = [
    "schema_version", "suite", "job_id", "dataset", "model", "method", "label", "method_options",
    "target_kind", "target_value", "seed", "status", "error",
    "top1", "top5", "test_loss", "best_top1", "best_epoch", "base_top1", "acc_drop",
    "params", "params_nonzero", "macs", "macs_effective", "flops", "base_params", "base_macs",
    "params_reduction_pct", "params_nonzero_reduction_pct", "macs_reduction_pct", "flops_reduction_pct",
    "macs_effective_reduction_pct",
    "sparsity", "speedup_theoretical",
    "tca_1_1", "tsa_1_1", "tca_1_4", "tsa_1_4", "tca_4_1", "tsa_4_1", "tca_ratio", "tsa_ratio",
    "latency_ms", "latency_iqr_ms", "latency_batch", "throughput_latency_ms", "throughput_batch",
    "latency_graph_ms", "latency_dtype", "latency_device", "latency_mode", "latency_threads",
    "base_latency_ms", "speedup_measured",
    "phase", "epochs", "dense_epochs", "train_wall_s", "img_per_s", "peak_mem_mb", "peak_mem_kind",
    "dense_checkpoint", "dense_weights_sha256", "model_file", "tissue_options", "method_info",
    "git_sha", "git_dirty", "versions", "device", "device_name", "cuda", "driver", "threads", "host",
    "started_utc", "finished_utc", "config_hash", "command",
]
# fmt: on
JSON_COLUMNS = ("method_options", "tissue_options", "method_info", "versions")


class ResultStore:
    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self.records_dir = self.root / "records"
        self.checkpoints = self.root / "checkpoints"

    # -- records -------------------------------------------------------------------------------
    def path(self, job_id: str) -> Path:
        return self.records_dir / f"{job_id}.json"

    def get(self, job_id: str) -> dict | None:
        p = self.path(job_id)
        if not p.exists():
            return None
        try:
            return json.loads(p.read_text())
        except json.JSONDecodeError:
            return None  # unreadable: treated as not done (it is rewritten on rerun)

    def is_done(self, job_id: str) -> bool:
        rec = self.get(job_id)
        return rec is not None and rec.get("status") == "ok"

    def write(self, record: dict) -> Path:
        record = {"schema_version": SCHEMA_VERSION} | record
        path = self.path(record["job_id"])
        write_text_atomic(path, json.dumps(_finite(record), indent=1, sort_keys=True))
        return path

    def records(self) -> list[dict]:
        out = []
        for p in sorted(self.records_dir.glob("*.json")):
            try:
                out.append(json.loads(p.read_text()))
            except json.JSONDecodeError:
                continue
        return out

    # -- consolidated tables --------------------------------------------------------------------
    def consolidate(self):
        """Rebuild table.parquet / table.csv / history.parquet from every record (under a lock)."""
        import pandas as pd

        records = self.records()
        rows, history = [], []
        for rec in records:
            row = {k: v for k, v in rec.items() if k != "history"}
            for key in JSON_COLUMNS:
                if key in row and not isinstance(row[key], str):
                    row[key] = json.dumps(row[key], sort_keys=True)
            rows.append(row)
            for h in rec.get("history") or []:
                history.append(
                    {
                        "job_id": rec["job_id"],
                        "dataset": rec["dataset"],
                        "model": rec["model"],
                        "label": rec["label"],
                        "seed": rec["seed"],
                        "phase": rec.get("phase"),
                    }
                    | h
                )
        table = pd.DataFrame(rows)
        if len(table):
            ordered = [c for c in COLUMNS if c in table.columns]
            table = table[ordered + sorted(set(table.columns) - set(ordered))]
            table = table.sort_values(["dataset", "model", "seed", "label"], kind="stable").reset_index(drop=True)
        with self.lock():
            _write_frame_atomic(table, self.root / "table.parquet")
            tmp = self.root / ".table.csv.tmp"
            table.to_csv(tmp, index=False)
            os.replace(tmp, self.root / "table.csv")
            _write_frame_atomic(pd.DataFrame(history), self.root / "history.parquet")
        return table

    def table(self):
        import pandas as pd

        path = self.root / "table.parquet"
        return pd.read_parquet(path) if path.exists() else self.consolidate()

    @contextmanager
    def lock(self, name: str = "store"):
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / f".{name}.lock", "w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)


def write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _write_frame_atomic(frame, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)


def _finite(obj):
    """JSON has no NaN/inf: store them as null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj
