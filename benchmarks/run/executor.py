"""What every executor shares: the plan, the data check before anything trains, the skeleton of a run (skip what
is done, run the rest, consolidate), and the driver's writing of what a job returned.

Data flow (README): suite -> jobs -> dense checkpoints -> a job's steps (``job.py``) -> records -> tables.
Executors differ only in how the jobs left to do are run: :class:`~benchmarks.run.local.LocalExecutor` one
after another in this process, :class:`~benchmarks.run.ray_cluster.RayExecutor` on a Ray cluster. The driver
is the only writer of records and model files; nothing here branches on method names.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import sys
import time
from dataclasses import dataclass, field

import torch

from benchmarks.run.data_parallel import check_split
from benchmarks.run.env import Env, data_source, job_loaders
from benchmarks.run.job import Outcome
from benchmarks.run.progress import SuiteProgress
from benchmarks.store.files import inside, remove_verified, write_verified
from benchmarks.store.results import ResultStore
from benchmarks.suites.settings import ExecutionConfig
from benchmarks.suites.suite import Job, Suite, SuiteError
from tissuenet import plugins


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


class Executor:
    """A suite's jobs, each ending in one stored record (ok or failed), resumable: a job whose record says ok is
    skipped, an interrupted one restarts from its last epoch, a failed one is recorded and the sweep goes on."""

    name = "local"

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
        execution: ExecutionConfig | None = None,
    ) -> None:
        self.suite, self.store = suite, store
        self.execution = execution or suite.execution
        self.device = resolve_device(device) if isinstance(device, str) else device
        self.data_root, self.download = data_root, download
        self.tty = sys.stderr.isatty() if progress is None else progress
        self.log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self.data_lines: list[str] = []  # what the preflight loaded, said when the first job starts
        self.progress: SuiteProgress | None = None
        self.started_utc: str | None = None

    # -- the plan -------------------------------------------------------------------------------------------
    def plan(self, only: str | None = None) -> list[Job]:
        jobs = self.suite.jobs()
        if only:
            jobs = [j for j in jobs if fnmatch.fnmatch(j.job_id, only) or fnmatch.fnmatch(j.label, only)]
        return jobs

    def preflight(self, jobs: list[Job]) -> dict[str, int]:
        """Load every dataset the jobs need and check the batch sizes fit it, before anything trains.

        Returns {dataset: training images}. Raises DataError (missing/corrupt data) or SuiteError.
        """
        loaders = job_loaders(self.suite, self.device, self.data_root, self.download)
        sizes = {}
        for dataset in dict.fromkeys(j.dataset for j in jobs):
            t0 = time.perf_counter()
            train_loader, test_loader = loaders(dataclasses.replace(jobs[0], dataset=dataset), 1, False)
            sizes[dataset] = train_loader.num_items
            where = data_source(self.data_root)(dataset).get("path") or "generated"
            self.data_lines.append(
                f"data: {dataset}, {train_loader.num_items:,} training and {test_loader.num_items:,} test images "
                f"({where}; {time.perf_counter() - t0:.1f} s)"
            )
            if test_loader.num_items == 0:
                raise SuiteError(f"dataset {dataset!r}: the test set is empty ([data] test_limit?)")
            for where, batch_size in self._batch_sizes():
                check_split(batch_size, self.execution.workers_per_job, where)
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

    def env(self) -> Env:
        """Where this process runs jobs: the run's device and data, its progress lines, its results folder."""
        return Env(
            self.device,
            job_loaders(self.suite, self.device, self.data_root, self.download),
            self.store.checkpoints / "jobs",
            self.progress.line,
            self.progress.epoch_callback,
            self.store._set_aside,
            self.name,
            data_source(self.data_root),
            self.started_utc,
            self.execution,
            tuple(plugins.modules_for_workers()),
        )

    # -- a run ----------------------------------------------------------------------------------------------
    def run(self, only: str | None = None) -> RunSummary:
        from benchmarks.store.provenance import utc_now

        self.started_utc = utc_now()
        summary, start = RunSummary(), time.perf_counter()
        with self.store.lock():  # what killed runs left: temporaries of dead processes, finished jobs' state
            removed = self.store.clean_stale()
        if removed:
            self.log(f"removed {len(removed)} leftover(s) of an interrupted run: {', '.join(removed[:5])}")
        self.store.write_plan(self.suite.plan_name, [j.job_id for j in self.suite.jobs()], self.suite.suite_hash)
        jobs = self.plan(only)
        self.progress = SuiteProgress(len(jobs), self.log, self.tty)
        todo = []
        for index, job in enumerate(jobs, 1):
            if self.store.is_done(job.job_id):
                summary.skipped.append(job.job_id)
                self.progress.skip()
            else:
                todo.append((index, job))
        try:
            if todo:
                self.execute(todo, summary)
        finally:
            self.progress.close()
            if jobs:
                self.store.consolidate()
        summary.wall_s = time.perf_counter() - start
        return summary

    def execute(self, todo: list[tuple[int, Job]], summary: RunSummary) -> None:
        """Run the (index, job) pairs not done yet, each ending in :meth:`finish`."""
        raise NotImplementedError

    def say_data(self) -> None:
        while self.data_lines:  # what the preflight loaded, said once the first job starts
            self.progress.line(self.data_lines.pop(0))

    def finish(self, outcome: Outcome, t0: float, summary: RunSummary, who: str = "") -> None:
        """The driver writes what a job returned (its model file, then its record: the record marks it done) and
        says how it went; ``who``: the job and its host, where jobs run at once."""
        rec = outcome.record
        if outcome.model_file is not None:
            write_verified(inside(self.store.root, "models", f"{rec['job_id']}.pt"), outcome.model_file)
            rec["model_sha256"] = hashlib.sha256(outcome.model_file).hexdigest()
        self.store.write(rec)
        jobs = self.store.checkpoints / "jobs"
        for state in [jobs / f"{rec['job_id']}.pt", *jobs.glob(f"{rec['job_id']}.phase*.pt")]:
            remove_verified(state)  # its resume state, phase by phase
        ok = rec["status"] == "ok"
        (summary.ok if ok else summary.failed).append(rec["job_id"])
        self.progress.finish(ok, time.perf_counter() - t0)
        if not ok:
            self.progress.line(f"  FAILED{who}: {rec['error']}")
            return
        training = "" if who else f", {rec.get('train_wall_s') or 0:.0f} s training"
        params = "" if who else f", params (nonzero) {rec['params_nonzero'] / 1e6:.3f} M"
        self.progress.line(
            f"  ok{who}: top-1 {rec['top1']:.2f} %, MACs (effective) {rec['macs_effective'] / 1e6:.2f} M{params}"
            f"{training}"
        )
