"""``tissuebench perf``: training throughput of the harness against a standard input pipeline."""

from __future__ import annotations

from tissuebench.options import MAX_BATCH, add_device, int_in

NAME = "perf"
HELP = "training img/s: the harness's device-resident data vs a torchvision DataLoader vs compiled"


def add_arguments(p) -> None:
    p.add_argument("--model", default="resnet56", help="registry name")
    p.add_argument("--dataset", default="fashion-mnist", help="a device-resident dataset")
    p.add_argument("--batch-size", type=int_in(1, MAX_BATCH), default=256, help="images per step")
    p.add_argument("--steps", type=int_in(1, 100_000), default=50, help="timed steps per pipeline (CPU: use a few)")
    p.add_argument("--warmup", type=int_in(0, 100_000), default=10, help="untimed steps first")
    p.add_argument("--workers", type=int_in(0, 256), default=4, help="DataLoader worker processes")
    add_device(p)
    p.add_argument("--data-root", default=None, help="where datasets live")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast")
    p.add_argument("--accuracy-epochs", type=int_in(0, 1000), default=0, help="also compare eager vs compiled accuracy")


def run(args) -> int:
    from benchmarks.measure.perf import run_perf

    run_perf(
        args.model,
        args.dataset,
        args.batch_size,
        args.steps,
        args.warmup,
        args.workers,
        args.device,
        args.data_root,
        args.bf16,
        args.accuracy_epochs,
    )
    return 0
