"""The one timing loop: paired, repeated timings of a model against its dense reference.

How a latency is measured (the report and README say the same):

* both models in their deployment form (``tissuenet.deploy``: eval, BN folded, channels_last,
  fast stacked-layer kernels), under ``torch.inference_mode``, after warm-up calls;
* the model and the dense reference are timed *alternately* (A/B/A/B) in one process with the
  same settings, so drift and other processes' load hit both alike;
* each sample is a block of calls long enough to time reliably (CUDA synchronised); at least
  ``min_samples`` samples and ``min_run_time`` seconds per model, whichever is longer;
* reported: median and IQR of each, the sample count, and the speed-up as the median of the
  paired ratios dense_i / model_i with its IQR. A speed-up whose IQR contains 1 is
  indistinguishable from 1. The speed-up is marked unreliable (and left out of the speed-up
  figure) with fewer than ``RELIABLE_SAMPLES`` pairs or when the relative IQR of the paired ratios
  is above ``UNRELIABLE_SPREAD``: load that
  slows both models alike spreads each timing but not their ratio, which is what is reported;
* on CPU, glibc's allocator is told to keep freed memory (see ``allocator.py``) for every model
  alike, and the setting is recorded.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from benchmarks.suites.settings import MIN_LATENCY_SAMPLES

UNRELIABLE_SPREAD = 0.25  # IQR / median of the paired ratios above this: too noisy to report as a result
RELIABLE_SAMPLES = MIN_LATENCY_SAMPLES  # fewer paired samples than this: too few to report
BLOCK_SECONDS = 0.002  # a sample is at least this long (tiny models run several calls per sample)
WARMUP_CALLS = 5  # the first calls pay one-off costs (allocation, autotuning, lazy init)


@dataclass
class Timing:
    median_ms: float
    iqr_ms: float
    samples: int

    @property
    def reliable(self) -> bool:
        return self.median_ms > 0 and self.iqr_ms / self.median_ms <= UNRELIABLE_SPREAD


@dataclass
class PairedTiming:
    model: Timing
    dense: Timing
    speedup: float  # median of dense_i / model_i
    speedup_iqr: float
    distinguishable: bool  # the IQR of the paired ratios excludes 1

    @property
    def reliable(self) -> bool:
        """The reported number is the paired ratio: judge its spread (not each timing's) and the sample count."""
        enough = min(self.model.samples, self.dense.samples) >= RELIABLE_SAMPLES
        return enough and self.speedup > 0 and self.speedup_iqr / self.speedup <= UNRELIABLE_SPREAD


def _quartiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) < 2:
        return values[0], values[0], values[0]
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


def _summary(times: list[float]) -> Timing:
    q1, q2, q3 = _quartiles(times)
    return Timing(q2 * 1e3, (q3 - q1) * 1e3, len(times))


@contextmanager
def threads(n: int | None):
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _calls_per_block(fn: Callable[[], object], sync: Callable[[], None]) -> int:
    sync()
    t0 = time.perf_counter()
    fn()
    sync()
    one = time.perf_counter() - t0
    return max(1, int(BLOCK_SECONDS / max(one, 1e-7)))


@torch.inference_mode()
def time_paired(
    model: nn.Module,
    dense: nn.Module,
    example: torch.Tensor,
    *,
    min_run_time: float,
    min_samples: int,
    thread_count: int | None = None,
) -> PairedTiming:
    """A/B/A/B timing of two models on one input (both already in the form to time)."""
    cuda = example.device.type == "cuda"

    def sync():
        if cuda:
            torch.cuda.synchronize(example.device)

    return time_paired_calls(
        lambda: model(example),
        lambda: dense(example),
        min_run_time=min_run_time,
        min_samples=min_samples,
        thread_count=thread_count,
        sync=sync,
    )


def time_paired_calls(
    model: Callable[[], object],
    dense: Callable[[], object],
    *,
    min_run_time: float,
    min_samples: int,
    thread_count: int | None = None,
    sync: Callable[[], None] = lambda: None,
) -> PairedTiming:
    """A/B/A/B timing of two calls (an inference, or a whole training step); ``sync`` waits for the device."""
    with threads(thread_count):
        for _ in range(WARMUP_CALLS):
            model()
            dense()
        calls = {"m": _calls_per_block(model, sync), "d": _calls_per_block(dense, sync)}
        times: dict[str, list[float]] = {"m": [], "d": []}
        spent = {"m": 0.0, "d": 0.0}
        while min(len(times["m"]), len(times["d"])) < min_samples or min(spent.values()) < min_run_time:
            for key, fn in (("m", model), ("d", dense)):
                n = calls[key]
                sync()
                t0 = time.perf_counter()
                for _ in range(n):
                    fn()
                sync()
                elapsed = time.perf_counter() - t0
                spent[key] += elapsed
                times[key].append(elapsed / n)
    return paired(times["m"], times["d"])


def paired(model_times: list[float], dense_times: list[float]) -> PairedTiming:
    """Summaries of alternating samples; the speed-up is the median of the paired ratios dense_i / model_i."""
    ratios = [d / m for m, d in zip(model_times, dense_times)]
    q1, median, q3 = _quartiles(ratios)
    return PairedTiming(_summary(model_times), _summary(dense_times), median, q3 - q1, not q1 <= 1 <= q3)


@torch.inference_mode()
def cuda_graph_latency(model: nn.Module, example: torch.Tensor, min_run_time: float) -> float:
    """Median ms of a CUDA-graph replay (no launch overhead: compact CNNs on big GPUs are launch-bound)."""
    static_in = example.clone()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            model(static_in)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        model(static_in)
    times, spent = [], 0.0
    while len(times) < MIN_LATENCY_SAMPLES or spent < min_run_time:
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        graph.replay()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
        spent += times[-1]
    return statistics.median(times) * 1e3
