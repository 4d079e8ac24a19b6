"""Stacked-layer speed, measured: one layer in each implementation, and the whole network target.

    python -m benchmarks.measure.stacked_speed [--threads 2] [--min-run-time 2] [--device cpu|cuda]
        [--only layers|network|training]

1. One stacked layer of 2-4-2 units against the dense pair of 3x3 convs it replaces (BN folded,
   channels_last, both), at ResNet-56's three shapes (16 ch 28x28, 32 ch 14x14, 64 ch 7x7), batch 1
   and 64: the grouped PyTorch path and the fused kernel (``cpu_fused`` on CPU, ``triton`` on CUDA).
2. ``tissue_resnet56 --set replace=all`` against ``resnet56`` at 1x28x28 in the deployment form
   (the issue's target: >= 3x at batch 64 on a 2-core CPU), batch 1 and 64.
3. Training: one SGD step at batch 128 (1x28x28, channels_last, as the suites train) of ``tissue_resnet20`` and
   ``tissue_resnet56`` with every stage replaced against their dense backbones, with PyTorch's grouped
   convolutions and with the training kernel (``tissuenet/kernels/grouped_train.py``); the speed-up is per image.

Every number is a median of paired A/B timings (``benchmarks.measure.timing``); the header
states the CPU or GPU, threads, allocator setting and instruction set. Prints Markdown.
"""

from __future__ import annotations

import argparse

import torch

from benchmarks.measure.allocator import tune_allocator
from benchmarks.measure.cost import deploy_form
from benchmarks.measure.timing import time_paired, time_paired_calls
from benchmarks.store.provenance import device_info
from benchmarks.suites.settings import MeasureConfig
from tissuenet import count_macs, create_model
from tissuenet.deploy import fold_bn
from tissuenet.kernels import grouped_train
from tissuenet.models._common import conv_bn
from tissuenet.stacked import StackedLayer

SHAPES = ((16, 28), (32, 14), (64, 7))
TIMING = MeasureConfig()  # the suites' timing settings
BATCHES = tuple(reversed(TIMING.latency_batches))  # the throughput batch first


def layers(channels: int, device) -> dict:
    """The dense pair, the grouped stacked layer and its fused kernel, all BN-folded and channels_last."""
    from tissuenet.kernels import _candidates

    dense, _ = fold_bn(torch.nn.Sequential(conv_bn(channels, channels, 3), conv_bn(channels, channels, 3, act=None)))
    layer = StackedLayer(["2-4-2"] * (channels // 2)).eval()
    layer.fold_bn()
    out = {"dense": dense.to(device, memory_format=torch.channels_last), "grouped": layer.to(device)}
    for name, make in _candidates(layer, torch.device(device)).items():
        if name != "grouped":
            out[name] = make()
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--min-run-time", type=float, default=2.0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--only", choices=("layers", "network", "training"), help="one section (default: all three)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    allocator = tune_allocator() if device.type == "cpu" else "cuda caching allocator"
    info = device_info(device)
    from tissuenet.kernels.cpu import extension

    ext = extension() if device.type == "cpu" else None
    print(
        f"device: {info['device_name']} ({device.type}), {args.threads} threads, allocator: {allocator}, "
        f"kernel ISA: {ext.isa() if ext else 'n/a'}, torch {torch.__version__}"
    )
    for section in ("layers", "network", "training"):
        if args.only in (None, section):
            SECTIONS[section](args, device)


def single_layers(args, device) -> None:
    print("\n### One stacked layer (2-4-2 units) vs the dense pair of 3x3 convs it replaces\n")
    print("| channels | size | batch | MACs dense / stacked | dense ms | implementation | ms | speed-up vs dense |")
    print("|---:|---:|---:|---:|---:|---|---:|---:|")
    with torch.inference_mode():
        for channels, size in SHAPES:
            impls = layers(channels, device)
            ratio = count_macs(impls["dense"], channels, size) / count_macs(impls["grouped"], channels, size)
            for batch in BATCHES:
                x = torch.randn(batch, channels, size, size, device=device).contiguous(
                    memory_format=torch.channels_last
                )
                for name, impl in impls.items():
                    if name == "dense":
                        continue
                    p = time_paired(
                        impl, impls["dense"], x, min_run_time=args.min_run_time, min_samples=TIMING.min_samples
                    )
                    print(
                        f"| {channels} | {size} | {batch} | {ratio:.1f}x | {p.dense.median_ms:.3f} | {name} | "
                        f"{p.model.median_ms:.3f} | {p.speedup:.2f}x (IQR {p.speedup_iqr:.2f}) |"
                    )


def network(args, device) -> None:
    print("\n### tissue_resnet56 (replace=all) vs resnet56, 1x28x28, deployment form\n")
    model = create_model("tissue_resnet56", in_channels=1, replace="all").to(device).eval()
    dense = create_model("resnet56", in_channels=1).to(device).eval()
    ratio = count_macs(dense, 1, 28) / count_macs(model, 1, 28)
    print(f"theoretical speed-up (dense MACs / MACs): {ratio:.2f}x\n")
    print("| batch | dense ms | TissueNet ms | speed-up | IQR | samples | kernels |")
    print("|---:|---:|---:|---:|---:|---:|---|")
    form = deploy_form()
    for batch in BATCHES:
        x = torch.randn(batch, 1, 28, 28, device=device)
        fast, _, kernels = form(model, x)
        ref, _, _ = form(dense, x)
        xc = x.contiguous(memory_format=torch.channels_last)
        p = time_paired(fast, ref, xc, min_run_time=args.min_run_time * 2, min_samples=TIMING.min_samples)
        chosen = ", ".join(sorted({k["chosen"] for k in kernels.values()}))
        print(
            f"| {batch} | {p.dense.median_ms:.2f} | {p.model.median_ms:.2f} | {p.speedup:.2f}x | "
            f"{p.speedup_iqr:.2f} | {p.model.samples} | {chosen} |"
        )


def training(args, device) -> None:
    print("\n### Training: one SGD step, batch 128, 1x28x28, channels_last (speed-up per image)\n")
    print("| network | dense ms | TissueNet form | TissueNet ms | speed-up | IQR | samples |")
    print("|---|---:|---|---:|---:|---:|---:|")
    for depth in (20, 56):
        dense = _training_step(create_model(f"resnet{depth}", in_channels=1), device)
        tissue = _training_step(create_model(f"tissue_resnet{depth}", in_channels=1, replace="all"), device)
        for form, kernel in (("grouped convolutions", False), ("training kernel", True)):
            p = time_paired_calls(
                _kernel(tissue, kernel), dense, min_run_time=args.min_run_time, min_samples=TIMING.min_samples
            )
            print(
                f"| resnet{depth} | {p.dense.median_ms:.1f} | {form} | {p.model.median_ms:.1f} | {p.speedup:.2f}x | "
                f"{p.speedup_iqr:.2f} | {p.model.samples} |"
            )


def _training_step(model: torch.nn.Module, device, batch: int = 128):
    model = model.to(device, memory_format=torch.channels_last).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 1, 28, 28, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,), device=device)

    def step():
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    return step


def _kernel(step, on: bool):
    """``step`` with the training kernel switched on or off for its duration."""

    def run():
        before, grouped_train.ENABLED = grouped_train.ENABLED, on
        try:
            step()
        finally:
            grouped_train.ENABLED = before

    return run


SECTIONS = {"layers": single_layers, "network": network, "training": training}


if __name__ == "__main__":
    main()
