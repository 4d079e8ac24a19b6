"""The result store under concurrency: parallel writers and consolidators never corrupt it."""

import json
import multiprocessing as mp

import pandas as pd
import pytest

from benchmarks.store.results import ResultStore
from tests.helpers import record


def _writer(root, worker, n):
    store = ResultStore(root)
    for i in range(n):
        store.write(
            record(
                f"w{worker}-{i}",
                label=f"l{i}",
                seed=worker,
                top1=float(i),
                history=[{"epoch": 1, "test_top1": float(i)}],
            )
        )
        if i % 5 == 0:
            store.consolidate()


@pytest.mark.slow
def test_parallel_writers(tmp_path):
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), w, 20)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    store = ResultStore(tmp_path)
    assert len(store.records()) == 80
    assert all(json.loads(p.read_text()) for p in (tmp_path / "records").glob("*.json"))
    assert not list(tmp_path.rglob("*.tmp"))
    table, _ = store.consolidate()
    assert len(table) == 80 and table["job_id"].is_unique
    assert len(pd.read_parquet(tmp_path / "table.parquet")) == 80
    assert len(pd.read_parquet(tmp_path / "history.parquet")) == 80


def test_nan_is_stored_as_null(tmp_path):
    store = ResultStore(tmp_path)
    store.write(record("a", status="failed", top1=float("nan")))
    assert store.get("a")["top1"] is None and store.get("a")["schema_version"] == 2
