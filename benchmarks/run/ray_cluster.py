"""Run a suite on a Ray cluster: dense checkpoints first, each dependent job as soon as its checkpoint
exists, several jobs per GPU (fractional GPUs), the driver the only writer.

* Job graph: one dense task per dense job without a stored checkpoint; every other job is submitted
  at once with the ObjectRefs of its dense checkpoints as arguments, so Ray starts it when they
  exist. Independent groups run at the same time; ``max_concurrent`` caps what runs.
* No shared filesystem is needed: workers receive dense weights through the object store (put once)
  and return records and model-file bytes; the driver writes records, checkpoints and models. When
  the workers can see the results folder (a shared mount, detected by a marker file, not assumed),
  they keep per-epoch resume checkpoints there, as local runs do.
* Failures: a job that raises comes back as a failed record (the sweep goes on); a worker that dies
  is retried ``max_retries`` times, then its job is recorded as failed with the cause. A killed
  driver loses only what was in flight: rerunning skips every job with an ok record.
* Threads per job follow ``cpus_per_job``; a worker process loads each dataset once and keeps it
  for every job it runs (the same per-process cache as local runs).

Ray is imported only here, and only when ``--executor ray`` is used.
"""

from __future__ import annotations

import secrets
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.run.checkpoints import DenseRef, load_dense, save_dense, train_dense, weights_sha256
from benchmarks.run.env import Env, data_source, failed_record, job_loaders
from benchmarks.run.executor import Executor, RunSummary
from benchmarks.run.job import Outcome, run_job
from benchmarks.run.ray_init import init_ray
from benchmarks.suites.settings import ExecutionConfig
from benchmarks.suites.suite import Job, Suite, SuiteError
from tissuenet import plugins

MARKER = ".ray-shared-marker"
POLL_S = 0.5  # how often the driver drains progress lines while it waits for results


@dataclass(frozen=True)
class WorkerSettings:
    """What every task needs besides its job: where data is, which device, threads, shared folder."""

    device: str
    data_root: str | None
    download: bool
    cpus: int
    results: str
    marker: str  # token in the results folder's marker file: seen by a worker = shared filesystem
    plugins: tuple = ()  # (module, folder) of the plugins the driver loaded by name: workers import them too
    run_started: str | None = None  # UTC time the driver began the run
    execution: ExecutionConfig = ExecutionConfig()  # workers_per_job: a job's own data-parallel workers


def _worker_env(suite: Suite, settings: WorkerSettings, progress) -> Env:
    import torch

    from benchmarks.run.executor import resolve_device
    from tissuenet import plugins

    plugins.load_in_worker(list(settings.plugins))  # a fresh worker process knows no plugin yet

    torch.set_num_threads(settings.cpus)  # a reused worker keeps its first task's count otherwise
    device = resolve_device(settings.device)
    state_dir = Path(settings.results) / "checkpoints" / "jobs" if _sees_marker(settings) else None

    def epochs(job_id: str, total: int):
        def on_epoch(epoch: int, row: dict) -> None:
            progress.put(
                f"    {job_id} epoch {epoch}/{total}: loss {row['train_loss']:.4f}, top-1 "
                f"{row['test_top1']:.2f} %, {row.get('epoch_s', 0):.1f} s, {row.get('img_per_s', 0):,.0f} "
                f"img/s, lr {row['lr']:.4g}"
            )

        return on_epoch

    loaders = job_loaders(suite, device, settings.data_root, settings.download)
    return Env(
        device,
        loaders,
        state_dir,
        print,
        epochs,
        None,
        "ray",
        data_source(settings.data_root),
        settings.run_started,
        settings.execution,
        settings.plugins,
    )


def _sees_marker(settings: WorkerSettings) -> bool:
    try:
        return (Path(settings.results) / MARKER).read_text().strip() == settings.marker
    except OSError:
        return False


def dense_task(suite: Suite, dense_job: Job, settings: WorkerSettings, progress) -> tuple:
    """On a worker: train one dense checkpoint; returns (job id, state dict, meta, host)."""
    env = _worker_env(suite, settings, progress)
    checkpoint = None
    if env.state_dir is not None:
        checkpoint = env.state_dir.parent / "dense" / f"{dense_job.job_id}.partial.pt"
    state, meta = train_dense(suite, dense_job, env, checkpoint)
    return dense_job.job_id, state, meta, socket.gethostname()


def job_task(suite: Suite, job: Job, start: tuple, reference: tuple, settings: WorkerSettings, progress) -> Outcome:
    """On a worker: every step of one job; ``start``/``reference`` are its checkpoints (id, state, meta, host)."""
    env = _worker_env(suite, settings, progress)
    return run_job(suite, job, _ref(*start[:3]), _ref(*reference[:3]), env)


def _ref(job_id: str, state: dict, meta: dict) -> DenseRef:
    return DenseRef(job_id, weights_sha256(state), meta, state)


class RayExecutor(Executor):
    name = "ray"

    def __init__(
        self,
        suite: Suite,
        store,
        execution: ExecutionConfig,
        *,
        device="auto",
        data_root=None,
        download=False,
        progress=None,
        log=None,
    ) -> None:
        # the workers pick their device; the driver only checks data and writes files
        super().__init__(suite, store, device="cpu", data_root=data_root, download=download, progress=progress, log=log)
        self.execution = execution
        self.worker_device = "cuda" if execution.gpus_per_job > 0 else device

    def execute(self, todo: list[tuple[int, Job]], summary: RunSummary) -> None:
        try:
            self._run_on_ray([job for _, job in todo], summary)
        except KeyboardInterrupt:  # Ctrl-C ends the process at once: a local instance this run started goes first
            if self._own_ray:
                import ray

                ray.shutdown()
            raise

    def _settings(self) -> WorkerSettings:
        token = secrets.token_hex(8)
        try:
            self.store.root.mkdir(parents=True, exist_ok=True)
            (self.store.root / MARKER).write_text(token)
        except OSError:
            token = "unwritable"
        return WorkerSettings(
            self.worker_device,
            str(self.data_root) if self.data_root else None,
            self.download,
            self.execution.cpus_per_job,
            str(self.store.root.resolve()),
            token,
            tuple(plugins.modules_for_workers()),
            self.started_utc,
            self.execution,
        )

    _own_ray = False  # this run started the Ray instance it uses

    def _run_on_ray(self, todo: list[Job], summary: RunSummary) -> None:
        import ray as ray_module

        self._own_ray = not ray_module.is_initialized()
        ray = init_ray(self.execution.address, self.log)
        from ray.util.queue import Queue

        progress = Queue(actor_options={"num_cpus": 0})
        slots = int(ray.cluster_resources().get("CPU", 1) // self.execution.cpus_per_job)
        if self.execution.gpus_per_job > 0:
            slots = int(ray.cluster_resources().get("GPU", 0) // self.execution.gpus_per_job) or 1
        self.progress.parallel = max(1, min(slots, self.execution.max_concurrent or slots))
        self._check_room(ray.cluster_resources())
        settings = self._settings()
        exe = self.execution
        options = {
            "num_cpus": exe.cpus_per_job,
            "num_gpus": exe.gpus_per_job,
            "max_retries": exe.max_retries,
            "retry_exceptions": False,
        }
        if exe.gpus_per_job > 0:
            options["max_calls"] = 0  # GPU workers default to one task per process: keep them (and their data)
        remote_dense = ray.remote(dense_task).options(**options)
        remote_job = ray.remote(job_task).options(**options)
        dense_refs: dict[str, object] = {}  # dense job id -> ObjectRef of (job id, state, meta, host)
        training: dict = {}  # ObjectRef of a dense task -> its dense job
        for job in todo:
            for dense_job in self._dense_jobs(job):
                if dense_job.job_id in dense_refs:
                    continue
                stored = load_dense(self.store, dense_job.job_id)
                if stored is not None:  # put once: every dependent job reads it from the object store
                    dense_refs[dense_job.job_id] = ray.put((stored.job_id, stored.state_dict, stored.meta, None))
                else:
                    self.log(f"[dense] training {dense_job.job_id} (ray)")
                    ref = remote_dense.remote(self.suite, dense_job, settings, progress)
                    training[ref] = dense_job
                    dense_refs[dense_job.job_id] = ref
        waiting = list(todo)
        running: dict = {}  # ObjectRef -> (index, job, start time)
        limit = exe.max_concurrent or 10**9
        index = {job.job_id: i for i, job in enumerate(todo, start=1)}
        while waiting or running or training:
            while waiting and len(running) < limit:
                job = waiting.pop(0)
                start, reference = (dense_refs[d.job_id] for d in self._dense_jobs(job, pair=True))
                ref = remote_job.remote(self.suite, job, start, reference, settings, progress)
                running[ref] = (index[job.job_id], job, time.perf_counter())
                self.progress.start(index[job.job_id], job.job_id)
            ready, _ = ray.wait(list(running) + list(training), num_returns=1, timeout=POLL_S)
            self._drain(progress)
            for ref in ready:
                if ref in training:
                    self._store_dense(ray, ref, training.pop(ref), dense_refs)
                else:
                    _, job, t0 = running.pop(ref)
                    self._finish(ray, ref, job, t0, summary)
        self._drain(progress)

    def _check_room(self, resources: dict) -> None:
        """A job's data-parallel workers ask the cluster for theirs on top of the job's own task: refuse, in one
        line, what could never start (Ray would wait for it for ever)."""
        exe = self.execution
        if exe.workers_per_job == 1:
            return
        cpus = exe.cpus_per_job * (exe.workers_per_job + 1)
        gpus = exe.gpus_per_job + exe.workers_per_job if self.worker_device == "cuda" else 0
        if cpus > resources.get("CPU", 0) or gpus > resources.get("GPU", 0):
            raise SuiteError(
                f"--workers-per-job {exe.workers_per_job} under the Ray executor needs {cpus} CPUs"
                f"{f' and {gpus:g} GPUs' if gpus else ''} at once (the job's task and its workers); this cluster "
                f"has {resources.get('CPU', 0):g} CPUs and {resources.get('GPU', 0):g} GPUs: run the local "
                "executor (its workers still come from Ray, --address for a cluster), or fewer workers"
            )

    def _dense_jobs(self, job: Job, pair: bool = False) -> list[Job]:
        """The dense jobs a job needs: (start, reference) with ``pair``, else the distinct ones."""
        start, reference = self.suite.checkpoints(job)
        return [start, reference] if pair else list({j.job_id: j for j in (start, reference)}.values())

    def _store_dense(self, ray, ref, dense_job: Job, dense_refs: dict) -> None:
        """The driver writes a finished dense checkpoint (its only writer)."""
        try:
            _, state, meta, host = ray.get(ref)
        except Exception as exc:  # noqa: BLE001 - its dependents fail with the cause
            self.log(f"  FAILED dense {dense_job.job_id}: {type(exc).__name__}: {_cause(exc)}")
            return
        save_dense(self.store, dense_job.job_id, state, meta)
        self.log(f"[dense] {dense_job.job_id} trained on {host}")

    def _finish(self, ray, ref, job: Job, t0: float, summary: RunSummary) -> None:
        try:
            outcome = ray.get(ref)
        except Exception as exc:  # noqa: BLE001 - a dead worker after its retries, or a failed dependency
            outcome = Outcome(failed_record(job, RuntimeError(_cause(exc)), executor="ray"), None)
        host = outcome.record.get("host")
        self.finish(outcome, t0, summary, who=f" {job.job_id}" + (f" on {host}" if host else ""))

    def _drain(self, progress) -> None:
        while not progress.empty():
            try:
                self.progress.line(progress.get_nowait())
            except Exception:  # noqa: BLE001 - the queue emptied meanwhile
                break


def _cause(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None)
    text = f"{type(cause).__name__}: {cause}" if cause is not None else str(exc)
    return text.strip().splitlines()[-1][:400] if text.strip() else type(exc).__name__
