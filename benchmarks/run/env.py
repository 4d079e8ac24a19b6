"""Where a job runs and what it is: the device, the data loaders and what the job may write (:class:`Env`), the
model's shape for the job's dataset, and the identity every record of the job starts with."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from benchmarks.suites.settings import ExecutionConfig
from benchmarks.suites.suite import Job, Suite
from tissuenet.registry import create_model_for_input


@dataclass
class Env:
    """Where a job runs: device, data, and what it may write."""

    device: torch.device
    loaders: Callable  # (job, batch_size, channels_last) -> (train_loader, test_loader)
    state_dir: Path | None  # per-epoch resume checkpoints (None: no shared folder)
    log: Callable[[str], None]
    epoch_progress: Callable[[str, int], Callable]  # (job_id, epochs) -> per-epoch callback
    set_aside: Callable | None = None  # damaged resume files
    executor: str = "local"
    data_source: Callable[[str], dict] | None = None  # dataset -> the copy used (path, file hashes)
    run_started: str | None = None  # UTC time the run (sweep) began: before its dense checkpoints trained
    execution: ExecutionConfig = ExecutionConfig()  # workers_per_job > 1: each phase trains data parallel
    plugins: tuple[str, ...] = ()  # modules a data-parallel worker loads first (plugins.modules_for_workers)

    def train(self, model: torch.nn.Module, job: Job, cfg, **kwargs):
        """Train ``model`` on the job's data under ``cfg`` (``train.train``'s keywords): in this process, or on
        ``execution.workers_per_job`` workers (``data_parallel.py``). Returns the ``TrainResult``."""
        from benchmarks.run.train import train

        workers = self.execution.workers_per_job
        if workers == 1:
            return train(model, *self.loaders(job, cfg.batch_size, cfg.channels_last), cfg, **kwargs)
        from benchmarks.run.data_parallel import fit

        loaders, size, last = self.loaders, cfg.batch_size, cfg.channels_last
        kwargs.pop("progress", None)  # a worker's lines reach this console through Ray, rank 0's only
        return fit(
            model,
            lambda device, shard: loaders(job, size, last, device=device, shard=shard),
            cfg,
            workers=workers,
            cpus=self.execution.cpus_per_job,
            device=self.device,
            max_failures=self.execution.max_retries,
            storage=self.state_dir,
            plugins=self.plugins,
            address=self.execution.address,
            **kwargs,
        )


def data_source(data_root=None) -> Callable[[str], dict]:
    from benchmarks.data.datasets import source_of

    return lambda dataset: source_of(dataset, data_root)


def job_loaders(suite: Suite, device, data_root=None, download: bool = False):
    """``(job, batch_size, channels_last) -> (train, test)`` loaders on ``device`` (datasets cached per process);
    a data-parallel worker names its own ``device`` and ``shard``."""
    from benchmarks.data.datasets import make_loaders

    def loaders(job: Job, batch_size: int, channels_last: bool, *, device=device, shard=None):
        _, train_loader, test_loader = make_loaders(
            job.dataset,
            batch_size=batch_size,
            device=device,
            shard=shard,
            data_root=data_root,
            download=download,
            seed=job.seed,
            channels_last=channels_last,
            train_limit=suite.data.train_limit,
            test_limit=suite.data.test_limit,
            input_size=suite.data.input_size,
            workers=suite.data.workers,
            skip_unreadable=suite.data.skip_unreadable,
        )
        return train_loader, test_loader

    return loaders


def shape_of(suite: Suite, job: Job) -> dict:
    from benchmarks.data.datasets import get_dataset

    info = get_dataset(job.dataset)
    return {
        "model": job.model,
        "num_classes": info.num_classes,
        "in_channels": info.in_channels,
        "input_size": suite.data.size_of(info),
    }


def new_dense(shape: dict, device) -> torch.nn.Module:
    model = create_model_for_input(shape["model"], shape["num_classes"], shape["in_channels"], shape["input_size"])
    return model.to(device)


def identity(job: Job) -> dict:
    return {
        "suite": job.suite,
        "job_id": job.job_id,
        "dataset": job.dataset,
        "model": job.model,
        "method": job.method,
        "label": job.label,
        "method_options": job.options,
        "target_kind": job.target.kind,
        "target_value": job.target.value,
        "seed": job.seed,
        "config_hash": job.config_hash,
        "group_hash": job.group_hash,
        "train_hash": job.train_hash,
        "suite_variant": job.variant,  # '' unless --set changed what the job computes
        "overrides": job.overrides,  # every --set of the run (provenance)
        "plugins": job.config.get("plugins", {}),  # where the job's dataset, model and method come from
    }


def failed_record(job: Job, exc: BaseException, **extra) -> dict:
    """The record of a job that failed before its steps ran (its dense checkpoint, a dead worker)."""
    from benchmarks.store.provenance import static_provenance, utc_now

    now = utc_now()
    error = {"status": "failed", "error": f"{type(exc).__name__}: {exc}", "started_utc": now, "finished_utc": now}
    return identity(job) | static_provenance() | error | extra
