"""The latency columns of a record: the model and its dense reference timed in pairs (``timing.py``) on every
runtime of the suite's ``[measure]`` (``runtimes.py``), at every batch size."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from benchmarks.measure.allocator import tune_allocator
from benchmarks.measure.timing import RELIABLE_SAMPLES, PairedTiming, cuda_graph_latency, time_paired

SUSPECT_FACTOR = 2.0  # measured speed-up above this x theoretical: flagged, not trusted


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
    from benchmarks.measure import runtime_table
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
    names = list(dict.fromkeys(["deploy", *runtime_table.resolve(cfg.runtimes, device)]))
    for runtime in [n for n in names if n in rt.SESSIONS]:  # beside the fastest exact form, what a plain export gives
        names = [n for n in names if n != f"{runtime}_plain"]
        names.insert(names.index(runtime) + 1, f"{runtime}_plain")
    if eager_form is None:
        names = [n for n in names if n != "eager"]
    eager_form = eager_form or deploy_form
    forms = {"model": rt.RuntimeForms(model, threads, deploy_form, eager_form)}
    forms["dense"] = rt.RuntimeForms(dense, threads, deploy_form, eager_form)
    table: dict = {}
    pairs: dict = {}
    for name in names:
        why = runtime_table.RUNTIMES[name].unavailable(device)
        if why:
            table[name] = {"unavailable": why}
            continue
        chosen = name.removesuffix("_plain")
        if name.endswith("_plain") and chosen in table and not forms["model"].uses_fused_op(chosen):
            same = {k: v for k, v in table[chosen].items() if k != "forms"}
            table[name] = same | {"same_file_as": chosen}  # one form: one measurement
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
                pair = PairedTiming(pair.model, pair.model, 1.0, 0.0, False)
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
        if forms["model"].onnx_forms.get(name) and "unavailable" not in table[name]:
            table[name]["forms"] = forms["model"].onnx_forms[name]  # per batch: each site shape's form, timings
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
