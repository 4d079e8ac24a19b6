"""The runner: a suite's jobs, each ending in one stored record (ok or failed), resumable.

Data flow (README): suite -> jobs -> dense checkpoints -> job steps (``job.py``) -> records ->
tables. This module is the local executor and the driver's bookkeeping shared with the Ray
executor (``executors/ray_executor.py``): dense checkpoints, locks, writing what jobs return.

* A job whose record says ok is skipped; an interrupted job restarts from its last epoch; a
  failed job (any exception, a diverged loss included) is recorded and the sweep goes on.
* Two ``run`` processes on one folder never train a job twice: each job runs under a lock; a job
  another process is running is skipped, then waited for at the end and reused.
* Nothing here branches on method names: methods come from the registry.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import sys
import time
from dataclasses import dataclass, field

import torch

from benchmarks.data.datasets import DataError
from benchmarks.run import checkpoints as dense_cache
from benchmarks.run.job import Env, Outcome, data_source, job_loaders, run_job, train_dense_job
from benchmarks.run.progress import SuiteProgress
from benchmarks.store.files import inside, remove_verified, write_verified
from benchmarks.store.results import ResultStore
from benchmarks.suites.suite import Job, Suite, SuiteError


class DeviceError(ValueError):
    """A --device this machine does not have."""


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise DeviceError(f"--device must be auto, cpu, cuda or cuda:N, got {name!r}") from None
    if device.type not in ("cpu", "cuda"):
        raise DeviceError(f"--device must be auto, cpu, cuda or cuda:N, got {name!r}")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError("--device cuda was asked for, but CUDA is not available here")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceError(f"--device {name}: this machine has {torch.cuda.device_count()} GPU(s)")
    return device


@dataclass
class RunSummary:
    ok: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    elsewhere: list[str] = field(default_factory=list)  # finished by another process on the same folder
    wall_s: float = 0.0


class Runner:
    executor = "local"

    def __init__(
        self,
        suite: Suite,
        store: ResultStore,
        *,
        device="auto",
        data_root=None,
        download=False,
        progress: bool | None = None,
        log=None,
    ) -> None:
        self.suite, self.store = suite, store
        self.device = resolve_device(device) if isinstance(device, str) else device
        self.data_root, self.download = data_root, download
        self.tty = sys.stderr.isatty() if progress is None else progress
        self.log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self._dense: dict[str, dense_cache.DenseRef] = {}
        self.data_lines: list[str] = []  # what the preflight loaded
        self._dense_failed: dict[str, str] = {}  # a dense checkpoint that failed fails its dependents at once

    # -- the plan --------------------------------------------------------------------------------
    def plan(self, only: str | None = None) -> list[Job]:
        jobs = self.suite.jobs()
        if only:
            jobs = [j for j in jobs if fnmatch.fnmatch(j.job_id, only) or fnmatch.fnmatch(j.label, only)]
        return jobs

    def preflight(self, jobs: list[Job]) -> dict[str, int]:
        """Load every dataset the jobs need and check the batch sizes fit it, before anything trains.

        Returns {dataset: training images}. Raises DataError (missing/corrupt data) or SuiteError.
        """
        sizes = {}
        for dataset in dict.fromkeys(j.dataset for j in jobs):
            t0 = time.perf_counter()
            train_loader, test_loader = self.loaders(dataclasses.replace(jobs[0], dataset=dataset), 1, False)
            sizes[dataset] = train_loader.num_items
            where = data_source(self.data_root)(dataset).get("path") or "generated"
            self.data_lines.append(  # said when the run starts: a problem found before is one line of its own
                f"data: {dataset}, {train_loader.num_items:,} training and {test_loader.num_items:,} test images "
                f"({where}; {time.perf_counter() - t0:.1f} s)"
            )
            if test_loader.num_items == 0:
                raise SuiteError(f"dataset {dataset!r}: the test set is empty ([data] test_limit?)")
            for where, batch_size in self._batch_sizes():
                if batch_size > sizes[dataset]:
                    raise SuiteError(
                        f"{where} batch_size = {batch_size} is larger than the {sizes[dataset]} "
                        f"training images of {dataset}: no optimizer step would run"
                    )
        return sizes

    def _batch_sizes(self):
        """(where, batch size) of every training phase. Read from the validated settings: the phases'
        epochs are not needed here (building phase configs with made-up epochs broke warm-up checks)."""
        from baselines.contract import get_method

        yield "[train]", self.suite.train.batch_size
        yield "[finetune]", self.suite.phase_settings("finetune")["batch_size"]
        for spec in self.suite.methods:
            phase = get_method(spec.name).phase
            yield f"[[method]] {spec.label} train", self.suite.phase_settings(phase, spec.train)["batch_size"]

    # -- data and dense checkpoints ----------------------------------------------------------------
    def loaders(self, job: Job, batch_size: int, channels_last: bool):
        return job_loaders(self.suite, self.device, self.data_root, self.download)(job, batch_size, channels_last)

    def dense_ref(self, dense_job: Job) -> dense_cache.DenseRef:
        """A dense job's checkpoint: loaded, or trained now (once, under a lock)."""
        key = dense_job.job_id
        if key in self._dense_failed:
            raise RuntimeError(f"its dense checkpoint {key} could not be trained: {self._dense_failed[key]}")
        if key not in self._dense:
            try:
                self._dense[key] = dense_cache.get_or_train(
                    self.store, key, lambda partial: self.train_dense(dense_job, partial), self.log
                )
            except DataError:
                raise
            except Exception as exc:
                self._dense_failed[key] = f"{type(exc).__name__}: {exc}"
                raise
        return self._dense[key]

    def train_dense(self, dense_job: Job, partial=None):
        return train_dense_job(self.suite, dense_job, self.env(), partial)

    def refs(self, job: Job) -> tuple[dense_cache.DenseRef, dense_cache.DenseRef]:
        """(the checkpoint the job starts from, the equal-budget dense reference it is compared with)."""
        start, reference = self.suite.checkpoints(job)
        return self.dense_ref(start), self.dense_ref(reference)

    # -- running ---------------------------------------------------------------------------------------
    def env(self) -> Env:
        return Env(
            self.device,
            self.loaders,
            self.store.checkpoints / "jobs",
            self._line,
            self._epochs,
            self.store._set_aside,
            self.executor,
            data_source(self.data_root),
            getattr(self, "started_utc", None),
        )

    def _line(self, msg: str) -> None:
        """A job's own line (latency, a kernel): through the progress bar when there is one."""
        (self.progress.line if hasattr(self, "progress") else self.log)(msg)

    def _epochs(self, job_id: str, epochs: int):
        return self.progress.epoch_callback(job_id, epochs) if hasattr(self, "progress") else (lambda e, r: None)

    def run(self, only: str | None = None) -> RunSummary:
        from benchmarks.store.provenance import utc_now

        self.started_utc = utc_now()
        summary, start = RunSummary(), time.perf_counter()
        self.clean_leftovers()
        all_jobs = self.suite.jobs()
        self.store.write_plan(self.suite.plan_name, [j.job_id for j in all_jobs], self.suite.suite_hash)
        jobs = self.plan(only)
        self.progress = SuiteProgress(len(jobs), self.log, self.tty)
        busy = []
        try:
            for i, job in enumerate(jobs, 1):
                if self.store.is_done(job.job_id):
                    summary.skipped.append(job.job_id)
                    self.progress.skip()
                    continue
                with self.store.lock(f"job-{job.job_id}", blocking=False) as mine:
                    if not mine:  # another process is running it: come back at the end
                        busy.append((i, job))
                        continue
                    self._run_one(i, job, summary)
            for i, job in busy:  # wait for the other process, then reuse its result (or run it)
                with self.store.lock(f"job-{job.job_id}"):
                    if self.store.is_done(job.job_id):
                        summary.elsewhere.append(job.job_id)
                        self.progress.skip()
                    else:
                        self._run_one(i, job, summary)
        finally:
            self.progress.close()
            if jobs:
                self.store.consolidate()
        summary.wall_s = time.perf_counter() - start
        return summary

    def clean_leftovers(self) -> None:
        """What killed runs left behind (temporaries of dead processes, resume state of finished jobs)."""
        with self.store.lock():
            removed = self.store.clean_stale()
        if removed:
            self.log(f"removed {len(removed)} leftover(s) of an interrupted run: {', '.join(removed[:5])}")

    def _run_one(self, index: int, job: Job, summary: RunSummary) -> None:
        if self.store.is_done(job.job_id):  # finished by another process meanwhile
            summary.elsewhere.append(job.job_id)
            self.progress.skip()
            return
        while self.data_lines:  # what the preflight loaded, said once the first job starts
            self.progress.line(self.data_lines.pop(0))
        self.progress.start(index, job.job_id)
        t0 = time.perf_counter()
        try:
            start, reference = self.refs(job)
        except DataError:
            raise
        except Exception as exc:  # noqa: BLE001 - a dense checkpoint that cannot be trained fails its jobs
            outcome = Outcome(_failed(job, exc), None)
        else:
            outcome = run_job(self.suite, job, start, reference, self.env())
        self.save(outcome)
        ok = outcome.record["status"] == "ok"
        (summary.ok if ok else summary.failed).append(job.job_id)
        self.progress.finish(ok, time.perf_counter() - t0)
        rec = outcome.record
        if ok:
            self.progress.line(
                f"  ok: top-1 {rec['top1']:.2f} %, MACs (effective) {rec['macs_effective'] / 1e6:.2f} M,"
                f" params (nonzero) {rec['params_nonzero'] / 1e6:.3f} M, "
                f"{rec.get('train_wall_s') or 0:.0f} s training"
            )
        else:
            self.progress.line(f"  FAILED: {rec['error']}")

    def save(self, outcome: Outcome) -> None:
        """The driver writes what a job returned: its model file, then its record (the record marks it done)."""
        rec = outcome.record
        if outcome.model_file is not None:
            write_verified(inside(self.store.root, "models", f"{rec['job_id']}.pt"), outcome.model_file)
            rec["model_sha256"] = hashlib.sha256(outcome.model_file).hexdigest()
        self.store.write(rec)
        jobs = self.store.checkpoints / "jobs"
        for state in [jobs / f"{rec['job_id']}.pt", *jobs.glob(f"{rec['job_id']}.phase*.pt")]:
            remove_verified(state)  # its resume state, phase by phase


def _failed(job: Job, exc: Exception) -> dict:
    from benchmarks.run.job import identity
    from benchmarks.store.provenance import static_provenance, utc_now

    return (
        identity(job)
        | static_provenance()
        | {
            "status": "failed",
            "error": f"{type(exc).__name__}: {exc}",
            "started_utc": utc_now(),
            "finished_utc": utc_now(),
        }
    )
