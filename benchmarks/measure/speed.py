"""Latency you can trust: paired, repeated, labelled timings of a model against its dense reference.

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

from benchmarks.measure.allocator import tune_allocator

UNRELIABLE_SPREAD = 0.25  # IQR / median of the paired ratios above this: too noisy to report as a result
RELIABLE_SAMPLES = 10  # fewer paired samples than this: too few to report (the "at least 10 samples")
BLOCK_SECONDS = 0.002  # a sample is at least this long (tiny models run several calls per sample)
WARMUP_CALLS = 5  # the first calls pay one-off costs (allocation, autotuning, lazy init)
SUSPECT_FACTOR = 2.0  # measured speed-up above this x theoretical: flagged, not trusted


@dataclass
class Timing:
    median_ms: float
    iqr_ms: float
    samples: int

    @property
    def reliable(self) -> bool:
        return self.median_ms > 0 and self.iqr_ms / self.median_ms <= UNRELIABLE_SPREAD


@dataclass
class Paired:
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
) -> Paired:
    """A/B/A/B timing of two models on one input (both already in the form to time)."""
    cuda = example.device.type == "cuda"

    def sync():
        if cuda:
            torch.cuda.synchronize(example.device)

    with threads(thread_count):
        for _ in range(WARMUP_CALLS):
            model(example)
            dense(example)
        calls = {
            "m": _calls_per_block(lambda: model(example), sync),
            "d": _calls_per_block(lambda: dense(example), sync),
        }
        times: dict[str, list[float]] = {"m": [], "d": []}
        spent = {"m": 0.0, "d": 0.0}
        while min(len(times["m"]), len(times["d"])) < min_samples or min(spent.values()) < min_run_time:
            for key, fn in (("m", model), ("d", dense)):
                n = calls[key]
                sync()
                t0 = time.perf_counter()
                for _ in range(n):
                    fn(example)
                sync()
                elapsed = time.perf_counter() - t0
                spent[key] += elapsed
                times[key].append(elapsed / n)
    return paired(times["m"], times["d"])


def paired(model_times: list[float], dense_times: list[float]) -> Paired:
    """Summaries of alternating samples; the speed-up is the median of the paired ratios dense_i / model_i."""
    ratios = [d / m for m, d in zip(model_times, dense_times)]
    q1, median, q3 = _quartiles(ratios)
    return Paired(_summary(model_times), _summary(dense_times), median, q3 - q1, not q1 <= 1 <= q3)


def measure_pair(
    model: nn.Module,
    dense: nn.Module,
    in_channels: int,
    input_size: int,
    device,
    cfg,
    *,
    deploy_form: Callable,
    eager_form: Callable | None = None,
    identical: bool = False,
    log: Callable[[str], None] | None = None,
) -> dict:
    """The latency columns of a record: ``cfg`` is the suite's ``MeasureConfig``.

    Every runtime of ``cfg.runtimes`` (``benchmarks/measure/runtimes.py``; the deployment form always) is timed
    at every batch size, each paired with the dense model on the same runtime. The deployment form's
    numbers fill the main columns (``latency_ms``, ``speedup_measured``, ...); every runtime's go to
    ``runtimes`` ({runtime: {batch: median, IQR, pairs, speed-up, ...}} or {"unavailable": why}).
    ``identical``: the model is the dense reference itself (the dense row), whose speed-up is 1 by
    definition: timing a model against itself measures only noise (on a busy machine, a "4.38x").
    """
    from benchmarks.measure import runtimes as rt

    if not cfg.latency:
        return {}
    device = torch.device(device)
    threads = cfg.threads or torch.get_num_threads()
    allocator = tune_allocator() if device.type == "cpu" else "cuda caching allocator"
    out: dict = {
        "latency_allocator": allocator,
        "latency_device": device.type,
        "latency_dtype": "float32",
        "latency_threads": threads,
    }
    batches = list(cfg.latency_batches)
    names = list(dict.fromkeys(["deploy", *rt.resolve(cfg.runtimes, device)]))
    if eager_form is None:
        names = [n for n in names if n != "eager"]
    eager_form = eager_form or deploy_form
    forms = {"model": rt.Prepared(model, threads, deploy_form, eager_form)}
    forms["dense"] = rt.Prepared(dense, threads, deploy_form, eager_form)
    table: dict = {}
    pairs: dict = {}
    for name in names:
        why = rt.RUNTIMES[name].unavailable(device)
        if why:
            table[name] = {"unavailable": why}
            continue
        if log is not None:  # a runtime can take a while (an ONNX export, OpenVINO's compile): say which
            log(f"    latency: {name}, batch {', '.join(map(str, batches))}")
        table[name] = {}
        for batch in batches:
            x = torch.randn(batch, in_channels, input_size, input_size, device=device)
            try:
                fast, ref = forms["model"].target(name, x), forms["dense"].target(name, x)
                pair = time_paired(
                    fast, ref, x, min_run_time=cfg.min_run_time, min_samples=cfg.min_samples, thread_count=cfg.threads
                )
            except Exception as exc:  # noqa: BLE001 - a runtime that cannot run this model is a finding, not a crash
                table[name] = {"unavailable": f"{name} could not run this model: {type(exc).__name__}: {exc}"[:300]}
                break
            if identical:  # one model timed against itself: its latency is real, its "speed-up" is 1 by definition
                pair = Paired(pair.model, pair.model, 1.0, 0.0, False)
            pairs[(name, batch)] = pair
            table[name][str(batch)] = {
                "median_ms": pair.model.median_ms,
                "iqr_ms": pair.model.iqr_ms,
                "dense_median_ms": pair.dense.median_ms,
                "pairs": min(pair.model.samples, pair.dense.samples),
                "speedup": pair.speedup,
                "speedup_iqr": pair.speedup_iqr,
                "reliable": True if identical else pair.reliable,
            }
        check = forms["model"].checks.get(name)
        if check is not None and table[name] and "unavailable" not in table[name]:
            table[name]["export_check"] = check
    mode, kernels = forms["model"].labels.get("deploy", "deploy"), forms["model"].kernels
    del forms  # the runtimes' sessions go now, and what they left on this thread with them
    rt.release_alt_stack()
    first, last = batches[0], batches[-1]
    deploy = pairs[("deploy", first)]
    out |= {
        "latency_ms": deploy.model.median_ms,
        "latency_iqr_ms": deploy.model.iqr_ms,
        "latency_samples": deploy.model.samples,
        "latency_batch": first,
        "base_latency_ms": deploy.dense.median_ms,
        "speedup_measured": deploy.speedup,
        "speedup_iqr": deploy.speedup_iqr,
        "speedup_distinguishable": deploy.distinguishable,
        "speedup_reliable": True if identical else deploy.reliable,
        "speedup_by_definition": identical,
        "latency_reliable": deploy.model.reliable and deploy.model.samples >= RELIABLE_SAMPLES,
        "latency_mode": mode,
        "latency_kernels": kernels,
        "runtimes": table,
    }
    if len(batches) > 1:
        throughput = pairs[("deploy", last)]
        out |= {
            "throughput_latency_ms": throughput.model.median_ms,
            "throughput_batch": last,
            "throughput_speedup": throughput.speedup,
        }
    if ("eager", first) in pairs:
        out |= {
            "latency_eager_ms": pairs[("eager", first)].model.median_ms,
            "speedup_eager": pairs[("eager", first)].speedup,
        }
    if device.type == "cuda":
        x = torch.randn(last, in_channels, input_size, input_size, device=device)
        fast, _, _ = deploy_form(model, x)
        out["latency_graph_ms"] = cuda_graph_latency(fast, x, cfg.min_run_time)
    return out


def suspect(speedup_measured: float | None, speedup_theoretical: float | None) -> bool:
    """A measured speed-up far above what the MACs allow is noise or a bug, never a result."""
    return bool(speedup_measured and speedup_theoretical and speedup_measured > SUSPECT_FACTOR * speedup_theoretical)


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
    while len(times) < 10 or spent < min_run_time:
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        graph.replay()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
        spent += times[-1]
    return statistics.median(times) * 1e3
