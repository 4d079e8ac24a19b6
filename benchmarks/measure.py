"""Measurement of a trained model: cost under the counting convention, latency, and the
comparison columns against the dense reference of the same (dataset, model, seed)."""

from __future__ import annotations

import torch
from torch import nn

from benchmarks.latency import measure_latency
from tissuenet.counting import profile
from tissuenet.metrics import all_tradeoffs


def measure_cost(model: nn.Module, in_channels: int, input_size: int) -> dict:
    cost = profile(model, in_channels, input_size)
    prunable = [m.weight for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear, nn.Conv1d))]
    total = sum(w.numel() for w in prunable)
    zeros = sum(int((w.detach() == 0).sum()) for w in prunable)
    cost["sparsity"] = zeros / total if total else 0.0  # of conv/linear weights
    return cost


def measure_speed(model: nn.Module, in_channels: int, input_size: int, device, cfg: dict) -> dict:
    """Batch-1 latency, a throughput batch, and on CUDA the launch-overhead-free (graph) time."""
    """``cfg``: the suite's [measure] table plus ``channels_last`` (the suite's memory format)."""
    if not cfg.get("latency", True):
        return {}
    batches = cfg.get("latency_batches", [1, 64])
    out = {}
    for i, batch in enumerate(batches[:2]):
        x = torch.randn(batch, in_channels, input_size, input_size, device=device)
        t = measure_latency(
            model, x, min_run_time=cfg.get("min_run_time", 0.2), channels_last=cfg.get("channels_last", False)
        )
        if i == 0:
            out |= t
        else:
            out |= {"throughput_latency_ms": t["latency_ms"], "throughput_batch": batch}
    if torch.device(device).type == "cuda":
        x = torch.randn(batches[-1], in_channels, input_size, input_size, device=device)
        out["latency_graph_ms"] = measure_latency(model, x, cuda_graph=True, min_run_time=cfg.get("min_run_time", 0.2))[
            "latency_ms"
        ]
    return out


def compare_to_reference(top1: float, cost: dict, ref: dict, latency_ms: float | None = None) -> dict:
    """Reductions (percent), accuracy drop, theoretical / measured speed-up, TCA and TSA."""
    out = {
        "base_top1": ref["top1"],
        "acc_drop": ref["top1"] - top1,
        "base_params": ref["params"],
        "base_macs": ref["macs"],
        "params_reduction_pct": 100 * (1 - cost["params"] / ref["params"]),
        "params_nonzero_reduction_pct": 100 * (1 - cost["params_nonzero"] / ref["params"]),
        "macs_reduction_pct": 100 * (1 - cost["macs"] / ref["macs"]),
        "macs_effective_reduction_pct": 100 * (1 - cost["macs_effective"] / ref["macs"]),
        "speedup_theoretical": ref["macs"] / cost["macs_effective"] if cost["macs_effective"] else None,
    }
    out["flops_reduction_pct"] = out["macs_reduction_pct"]  # FLOPs = 2 x MACs: same ratio
    # structured/TissueNet: real MACs; unstructured: the effective MACs are the honest cost
    out |= all_tradeoffs(ref["top1"], top1, ref["macs"], cost["macs_effective"], ref["params"], cost["params_nonzero"])
    if latency_ms and ref.get("latency_ms"):
        out["base_latency_ms"] = ref["latency_ms"]
        out["speedup_measured"] = ref["latency_ms"] / latency_ms
    return out
