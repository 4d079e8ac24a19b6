"""One job's training on several workers (data parallel), through Ray Train's ``TorchTrainer``.

``[execution] workers_per_job = N`` (``--workers-per-job N``) trains every phase of a job (dense checkpoint,
fine-tuning, a method's own phases, TissueNet from scratch) on N processes with one device each: GPUs with
NCCL, or CPU processes with gloo. Ray Train starts the workers and their process group, on this machine or
on a Ray cluster; the job itself (the method's preparation, evaluation, measurement) stays in its process.

The semantics are those of the single-device job:

- the suite's ``batch_size`` is the global batch: each worker takes its contiguous ``batch_size / N`` of every
  batch, drawn with its augmentation from (seed, epoch) as on one device (``benchmarks/data/epochs.py:Shard``);
  a batch that does not split evenly is refused before anything trains;
- the gradients are averaged over the workers (DDP), so the loss, the learning-rate schedule and a method's
  hook (Taylor's scores read averaged gradients: reduced over the workers) are the global batch's;
- BatchNorm normalises with the global batch's statistics: ``nn.SyncBatchNorm`` on GPUs; on CPUs, where
  PyTorch's SyncBatchNorm does not run, :class:`GlobalBatchNorm` (the same two reductions over gloo);
- the model is built once, by the job's process, and shipped to every worker: a pruned model is the same
  on all of them, and an unstructured method's masks travel as buffers (DDP broadcasts rank 0's);
- the test set is evaluated exactly once per epoch (each worker its part of every batch; the sums reduced);
- only rank 0 writes: the per-epoch resume file and the trained state the job's process loads back. Batches
  depend on (seed, epoch) only, so a killed job resumes from its last epoch on any number of workers.

What cannot be equal: the 2-worker run adds two half-batch gradients where one device adds one batch, so the
results match a 1-worker run with the same global batch and data order to float32 rounding, not bit for bit
(``tests/test_data_parallel.py`` checks the weights after two epochs).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import tempfile
import threading
import uuid
from dataclasses import asdict
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from benchmarks.store.files import DamagedFileError, load_torch
from benchmarks.suites.settings import SettingsError

FINAL = "final.pt"


class DataParallelError(RuntimeError):
    """A data-parallel training run failed (a worker died, the group could not start)."""


def check_split(batch_size: int, workers: int, where: str) -> None:
    if batch_size % workers:
        raise SettingsError(
            f"{where} batch_size = {batch_size} does not split over workers_per_job = {workers}: "
            f"use a multiple of {workers} (each worker takes batch_size / workers_per_job)"
        )


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm over the global batch on CPU workers (PyTorch's SyncBatchNorm runs on GPUs only).

    Training: the mean, then the biased variance about it, each summed over the workers with an autograd-aware
    all-reduce (two passes, as numerically stable as one device's); running statistics as ``F.batch_norm``
    keeps them (unbiased variance). Evaluation: the running statistics, no communication.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or dist.get_world_size() == 1:
            return nn.functional.batch_norm(
                x, self.running_mean, self.running_var, self.weight, self.bias, self.training, self.momentum, self.eps
            )
        dims = [d for d in range(x.dim()) if d != 1]
        shape = [1, -1] + [1] * (x.dim() - 2)
        count = x.numel() // x.shape[1] * dist.get_world_size()
        mean = _Summed.apply(x.sum(dims)) / count
        centred = x - mean.view(shape)
        var = _Summed.apply((centred * centred).sum(dims)) / count
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(var.detach() * count / max(count - 1, 1), alpha=m)
        y = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y


class _Summed(torch.autograd.Function):
    """A tensor summed over the workers; its gradient too (every worker's loss depends on every worker's part)."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        out = tensor.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        out = grad.contiguous().clone()
        dist.all_reduce(out)
        return out


def sync_batchnorm(model: nn.Module, device: torch.device) -> int:
    """Every BatchNorm of ``model`` normalises over the global batch; returns how many. The modules change class
    in place (not copies), so what a method holds on to (Taylor's gates, Slimming's scales) stays the model's."""
    converted = 0
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, nn.SyncBatchNorm):
            if device.type == "cuda":
                module.__class__ = nn.SyncBatchNorm
                module.process_group = None
            else:
                module.__class__ = GlobalBatchNorm
            converted += 1
    return converted


class Parallel:
    """What ``train`` needs to know in one worker of N: its rank, the model wrapped for DDP, and sums over all."""

    def __init__(self, rank: int, world: int, device: torch.device) -> None:
        self.rank, self.world, self.device = rank, world, device
        self.backend = dist.get_backend()

    def wrap(self, model: nn.Module) -> nn.Module:
        sync_batchnorm(model, self.device)
        ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def total(self, *values):
        """Each value summed over the workers (ints stay ints): a float64 all-reduce, once per epoch."""
        t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return [int(s) if isinstance(v, int) else s for v, s in zip(values, t.tolist(), strict=True)]


def fit(
    model: nn.Module,
    loaders,
    cfg,
    *,
    workers: int,
    cpus: int,
    device: torch.device,
    checkpoint=None,
    extra_loss=None,
    hook=None,
    set_aside=None,
    max_failures: int = 0,
    storage: Path | None = None,
    plugins=(),
    address: str | None = None,
):
    """Train ``model`` in place on ``workers`` workers; the same contract as ``train.train``.

    ``loaders(device, shard) -> (train, test)`` builds a worker's shards (on its device, from its own copy of
    the data). ``max_failures``: times Ray Train restarts the group after a worker died (each restart resumes
    from the last epoch's file); then :class:`DataParallelError`, one line.
    """
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig

    from benchmarks.run.ray_init import init_ray
    from benchmarks.run.train import CHECKPOINT_FORMAT, TrainResult

    check_split(cfg.batch_size, workers, "this phase's")
    if checkpoint is not None and Path(checkpoint).exists():  # a damaged resume file: set aside here, once
        try:
            if load_torch(checkpoint).get("format") != CHECKPOINT_FORMAT:
                raise DamagedFileError(Path(checkpoint), "not a training checkpoint")
        except DamagedFileError as exc:
            if set_aside is None:
                raise
            set_aside(exc)
    init_ray(address, lambda line: None)
    gpu = device.type == "cuda"
    from ray import cloudpickle

    home = model.parameters().__next__().device
    payload = cloudpickle.dumps((model.cpu(), hook, extra_loss, loaders, cfg, checkpoint, cpus, tuple(plugins)))
    model.to(home)
    storage = Path(storage or tempfile.gettempdir()) / "data-parallel"
    name = f"job-{uuid.uuid4().hex[:12]}"
    interrupted: list[int] = []
    trainer = _trainer_class(interrupted)(
        _worker,
        train_loop_config={"payload": payload},
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=gpu, resources_per_worker={"CPU": cpus}),
        torch_config=TorchConfig(backend="nccl" if gpu else "gloo"),
        run_config=RunConfig(
            storage_path=str(storage.resolve()),
            name=name,
            failure_config=FailureConfig(max_failures=max_failures),
        ),
    )
    previous = signal.getsignal(signal.SIGINT)
    try:
        try:
            outcome = trainer.fit()
        except Exception as exc:  # noqa: BLE001 - Ray wraps the worker's error: one line for the record
            if interrupted:
                raise KeyboardInterrupt from None
            raise DataParallelError(f"training on {workers} workers failed: {_cause(exc)}") from None
        finally:  # Ray Train leaves its own SIGINT handler installed: the rest of the run gets Ctrl-C back
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGINT, previous)
        if interrupted:  # the workers were stopped; the run ends as any interrupted run does (exit 130)
            raise KeyboardInterrupt
        if outcome.checkpoint is None:
            raise DataParallelError(f"training on {workers} workers ended without rank 0's result")
        with outcome.checkpoint.as_directory() as folder:
            final = torch.load(Path(folder) / FINAL, map_location=home, weights_only=False)
    finally:
        shutil.rmtree(storage / name, ignore_errors=True)
    model.load_state_dict(final["model"])
    if hook is not None:
        hook.load_state_dict(final["hook"])
    return TrainResult(**final["result"])


def _trainer_class(interrupted: list[int]):
    """Ray Train's ``TorchTrainer`` whose Ctrl-C stops the workers and then interrupts the job. Ray Train's own
    handler aborts the run "gracefully": ``fit`` returns as if training had ended and a Ctrl-C was lost (the
    suite finished, exit 0). Where a Ray release has no such hook, its handler runs and the handler is still
    restored after ``fit``."""
    import ray
    from ray.train.torch import TorchTrainer

    class Trainer(TorchTrainer):
        def _register_sigint_handler(self, controller) -> None:
            def on_sigint(signum, frame) -> None:
                interrupted.append(signum)
                try:
                    ray.get(controller.abort.remote())
                except Exception:  # noqa: BLE001 - the controller already gone: nothing left to stop
                    pass

            signal.signal(signal.SIGINT, on_sigint)

    return Trainer


def _worker(config: dict) -> None:
    """One Ray Train worker: its shard of the data, the shared training loop, rank 0's state reported back."""
    import ray.train
    import ray.train.torch
    from ray import cloudpickle

    from benchmarks.data.epochs import Shard
    from benchmarks.run.train import train
    from tissuenet import plugins

    model, hook, extra_loss, loaders, cfg, checkpoint, cpus, modules = cloudpickle.loads(config["payload"])
    plugins.load_in_worker(list(modules))
    torch.set_num_threads(cpus)
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    device = ray.train.torch.get_device()
    model.to(device)
    train_loader, test_loader = loaders(device, Shard(rank, world))
    result = train(
        model,
        train_loader,
        test_loader,
        cfg,
        checkpoint=checkpoint,
        extra_loss=extra_loss,
        hook=hook,
        progress=_epoch_line if rank == 0 else None,
        parallel=Parallel(rank, world, device),
    )
    if rank != 0:
        ray.train.report({"rank": rank})
        return
    folder = tempfile.mkdtemp(prefix="tissuebench-dp-")
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save(
        {"model": state, "hook": hook.state_dict() if hook else {}, "result": asdict(result)},
        os.path.join(folder, FINAL),
    )
    ray.train.report({"rank": rank}, checkpoint=ray.train.Checkpoint.from_directory(folder))


def _epoch_line(epoch: int, row: dict) -> None:
    print(
        f"epoch {epoch}: loss {row['train_loss']:.4f}, top-1 {row['test_top1']:.2f} %, "
        f"{row['img_per_s']:,.0f} img/s (all workers)",
        flush=True,
    )


def _cause(exc: BaseException) -> str:
    """What went wrong in a worker, on one line: the last exception line of the error Ray wrapped (a worker's
    traceback ends with it), with the ranks it names."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    ranks = next((line.strip("[]:") for line in lines if line.startswith("[Rank")), "")
    errors = [line for line in lines if re.match(r"^[\w.]+(Error|Exception|Exit|Interrupt)\b", line)]
    text = errors[-1] if errors else " ".join(lines) or type(exc).__name__
    return f"{ranks + ': ' if ranks else ''}{text[:300]}"
