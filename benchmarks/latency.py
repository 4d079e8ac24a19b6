"""Forward latency with ``torch.utils.benchmark`` (median and IQR), always labelled.

Warm-up first (the first call can cost 100x a warm one), synchronised timing on CUDA, and an
optional CUDA-graph mode that removes launch overhead (compact CNNs on big GPUs are launch-bound).
"""

from __future__ import annotations

import torch
import torch.utils.benchmark as tb
from torch import nn


@torch.no_grad()
def measure_latency(
    model: nn.Module,
    example: torch.Tensor,
    *,
    min_run_time: float = 0.5,
    warmup: int = 5,
    channels_last: bool = False,
    cuda_graph: bool = False,
) -> dict:
    """Median / IQR forward time (ms) of ``model(example)`` in eval mode."""
    # one explicit memory format for every model: a trained model may be left in either
    fmt = torch.channels_last if channels_last and example.dim() == 4 else torch.contiguous_format
    model = model.eval().to(memory_format=fmt)
    example = example.contiguous(memory_format=fmt)
    fn = model
    mode = "eager"
    if cuda_graph:
        if example.device.type != "cuda":
            raise ValueError("CUDA-graph latency needs a CUDA device")
        fn, mode = _graphed(model, example), "cuda_graph"
    for _ in range(warmup):
        fn(example)
    if example.device.type == "cuda":
        torch.cuda.synchronize()
    m = tb.Timer("fn(x)", globals={"fn": fn, "x": example}, num_threads=torch.get_num_threads()).blocked_autorange(
        min_run_time=min_run_time
    )
    return {
        "latency_ms": m.median * 1e3,
        "latency_iqr_ms": m.iqr * 1e3,
        "latency_batch": example.shape[0],
        "latency_dtype": str(example.dtype).removeprefix("torch."),
        "latency_device": example.device.type,
        "latency_mode": mode + ("+channels_last" if channels_last else ""),
        "latency_threads": torch.get_num_threads(),
    }


def _graphed(model: nn.Module, example: torch.Tensor):
    static_in = example.clone()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            model(static_in)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_out = model(static_in)

    def run(x):
        static_in.copy_(x)
        graph.replay()
        return static_out

    return run
