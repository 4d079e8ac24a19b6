"""What a run prints while it works: one line per job and epoch (kept, never erased), with ETAs.

* suite: ``[3/39] job_id  (2 done, 0 failed, 1 running; ETA 12 min)``, the ETA from the jobs
  finished in this run;
* epoch: ``  job_id epoch 4/10: loss 0.4123, top-1 88.31 %, 12.3 s, 4,812 img/s, lr 0.0412, ETA 74 s``;
* with a terminal, a one-line suite bar stays at the bottom while the lines above scroll.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

from benchmarks.store.text import clean_text


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


HEARTBEAT_S = 30.0  # seconds between progress lines inside one epoch (a first epoch on a busy CPU takes minutes)


@dataclass
class SuiteProgress:
    total: int
    log: object = None
    tty: bool | None = None
    done: int = 0
    failed: int = 0
    skipped: int = 0
    running: int = 0
    started: float = field(default_factory=time.perf_counter)
    finished_times: list[float] = field(default_factory=list)
    parallel: int = 1  # jobs that run at once (the ETA divides by it)

    def __post_init__(self) -> None:
        self.log = self.log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self.tty = sys.stderr.isatty() if self.tty is None else self.tty
        self._bar = None
        if self.tty:
            from tqdm import tqdm

            # the bar needs carriage returns: it writes to the raw stream (the command line's stream escapes
            # control characters) and cleans every message itself
            self._raw = getattr(sys.stderr, "raw", sys.stderr)
            self._bar = tqdm(total=self.total, desc="suite", file=self._raw, dynamic_ncols=True, leave=True)

    def eta(self) -> float | None:
        left = self.total - self.done - self.failed - self.skipped
        if not self.finished_times:
            return None
        return left * sum(self.finished_times) / len(self.finished_times) / max(1, self.parallel)

    def status(self) -> str:
        return (
            f"{self.done} done, {self.failed} failed, {self.skipped} already done, {self.running} running; "
            f"ETA {duration(self.eta())}"
        )

    def line(self, msg: str) -> None:
        msg = clean_text(msg)  # a job's error comes from a plugin: it may hold escape sequences
        if self._bar is not None:
            self._bar.write(msg, file=self._raw)
        else:
            self.log(msg)

    def start(self, index: int, job_id: str) -> None:
        self.running += 1
        self.line(f"[{index}/{self.total}] {job_id}  ({self.status()})")
        self._refresh()

    def finish(self, ok: bool, seconds: float) -> None:
        self.running = max(0, self.running - 1)
        self.done += ok
        self.failed += not ok
        self.finished_times.append(seconds)
        self._refresh(1)

    def skip(self) -> None:
        self.skipped += 1
        self._refresh(1)

    def _refresh(self, advance: int = 0) -> None:
        if self._bar is not None:
            self._bar.update(advance)
            self._bar.set_postfix_str(self.status(), refresh=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def epoch_callback(self, job_id: str, epochs: int, prefix: bool = False):
        """A per-epoch printer for one job: time, img/s, lr and the job's ETA."""
        spent: list[float] = []

        def on_epoch(epoch: int, row: dict) -> None:
            spent.append(row.get("epoch_s", 0.0))
            eta = sum(spent) / len(spent) * (epochs - epoch)
            who = f"{job_id} " if prefix else ""
            self.line(
                f"    {who}epoch {epoch}/{epochs}: loss {row['train_loss']:.4f}, top-1 {row['test_top1']:.2f} %, "
                f"{row.get('epoch_s', 0):.1f} s, {row.get('img_per_s', 0):,.0f} img/s, lr {row['lr']:.4g}, "
                f"ETA {duration(eta)}"
            )

        last = [time.perf_counter()]

        def step(epoch: int, seen: int, total: int) -> None:  # a line every HEARTBEAT_S within a long epoch
            now = time.perf_counter()
            if now - last[0] >= HEARTBEAT_S:
                last[0] = now
                who = f"{job_id} " if prefix else ""
                self.line(
                    f"    {who}epoch {epoch + 1}/{epochs}: {seen:,} of {total:,} images ({100 * seen / total:.0f} %)"
                )

        on_epoch.step = step
        return on_epoch
