"""Builders for the tests: tiny suites on the synthetic dataset, tiny dataset files on disk."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

TINY_SUITE = """
name = "{name}"
description = "test suite on synthetic data"
datasets = ["{dataset}"]
models = [{models}]
seeds = [{seeds}]

[budgets]
dense_epochs = {dense_epochs}
finetune_epochs = 1
{scratch_line}

[train]
batch_size = 64
lr = {lr}
warmup_epochs = 0

[finetune]
lr = 0.01

[measure]
latency = {latency}
latency_batches = [1, 8]

{methods}
"""

DEFAULT_METHODS = """
[[method]]
name = "dense"

[[method]]
name = "tissuenet"
label = "tissue-all"
options = {{ replace = "all" }}
"""


def write_suite(
    path: Path,
    *,
    name="tiny",
    dataset="synthetic",
    models=("mlp",),
    seeds=(0,),
    dense_epochs=2,
    scratch_epochs=None,
    lr=0.05,
    latency=False,
    methods=DEFAULT_METHODS,
    extra="",
) -> Path:
    text = (
        TINY_SUITE.format(
            name=name,
            dataset=dataset,
            models=", ".join(f'"{m}"' for m in models),
            seeds=", ".join(map(str, seeds)),
            dense_epochs=dense_epochs,
            scratch_line="" if scratch_epochs is None else f"scratch_epochs = {scratch_epochs}",
            lr=lr,
            latency=str(latency).lower(),
            methods=methods.replace("{{", "{").replace("}}", "}"),
        )
        + extra
    )
    path.write_text(text)
    return path


def write_idx(path: Path, array: np.ndarray, compress: bool = True) -> Path:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def write_mnist_like(folder: Path, n_train=40, n_test=20, compress=True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)), compress)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 10, (n,)), compress)
    return folder


def record(job_id: str, **fields) -> dict:
    """A minimal valid ok record (for store, report and check tests that need no training)."""
    base = {
        "job_id": job_id,
        "suite": "fake",
        "dataset": "d",
        "model": "m",
        "method": "dense",
        "label": "l",
        "seed": 0,
        "status": "ok",
        "top1": 50.0,
        "params": 1000,
        "params_nonzero": 1000,
        "macs": 10_000,
        "macs_effective": 10_000.0,
    }
    return base | fields
