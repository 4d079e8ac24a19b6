"""The local executor: the jobs one after another in this process.

Two ``run`` processes on one folder never train a job twice: each job runs under a lock; a job another
process is running is skipped, then waited for at the end and reused.
"""

from __future__ import annotations

import time

from benchmarks.data.errors import DataError
from benchmarks.run.checkpoints import DenseCheckpoints
from benchmarks.run.env import failed_record
from benchmarks.run.executor import Executor, RunSummary
from benchmarks.run.job import Outcome, run_job
from benchmarks.suites.suite import Job


class LocalExecutor(Executor):
    name = "local"

    def execute(self, todo: list[tuple[int, Job]], summary: RunSummary) -> None:
        env = self.env()
        dense = DenseCheckpoints(self.suite, self.store, env)
        busy = []
        for index, job in todo:
            with self.store.lock(f"job-{job.job_id}", blocking=False) as mine:
                if not mine:  # another process is running it: come back at the end
                    busy.append((index, job))
                    continue
                self._run_one(index, job, summary, env, dense)
        for index, job in busy:  # wait for the other process, then reuse its result (or run it)
            with self.store.lock(f"job-{job.job_id}"):
                self._run_one(index, job, summary, env, dense)

    def _run_one(self, index: int, job: Job, summary: RunSummary, env, dense: DenseCheckpoints) -> None:
        if self.store.is_done(job.job_id):  # finished by another process meanwhile
            summary.elsewhere.append(job.job_id)
            self.progress.skip()
            return
        self.say_data()
        self.progress.start(index, job.job_id)
        t0 = time.perf_counter()
        try:
            start, reference = dense.refs(job)  # plan -> dense checkpoints -> the job's steps -> the store
        except DataError:
            raise
        except Exception as exc:  # noqa: BLE001 - a dense checkpoint that cannot be trained fails its jobs
            outcome = Outcome(failed_record(job, exc), None)
        else:
            outcome = run_job(self.suite, job, start, reference, env)
        self.finish(outcome, t0, summary)
