"""One training loop for every method: the hyper-parameters are one typed dict (``config.TrainConfig``).

Final-epoch accuracy is what results report; the best epoch is kept only as an extra, labelled
column (the paper's code reports the best test accuracy over all epochs; we do not). Evaluation
is always fp32, whatever the training precision, so every row is evaluated the same way. A loss
that turns NaN/inf raises :class:`DivergedError`, which fails that job only; so does an epoch
without a single optimizer step. With a checkpoint path, the state (tensors and plain numbers
only: it loads with ``weights_only=True``) is saved atomically after every epoch (after the last without
the optimizer's: no step follows) and a rerun resumes from it: batches depend only on (seed, epoch), so a
resumed run matches an uninterrupted one. A damaged resume file is set aside and the job starts over.

On several workers (``parallel``: ``data_parallel.py``) the same loop runs in every worker on its shard of each
batch; sums (loss, images, test counts) are reduced over the workers, and only rank 0 writes the resume file.
"""

from __future__ import annotations

import math
import resource
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.store.files import DamagedFileError, load_torch, save_torch_atomic
from benchmarks.suites.settings import TrainConfig

CHECKPOINT_FORMAT = "tissuebench.train-state/1"


class DivergedError(RuntimeError):
    """The training loss became NaN or infinite."""


def check_finite(model: nn.Module, when: str) -> None:
    """Every weight and buffer finite, or :class:`DivergedError` naming the first that is not (a method or a
    plugin that hands back NaN weights fails its job; it is never stored as ok with chance-level accuracy)."""
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise DivergedError(f"{name} holds NaN or infinite values {when}")


class NoStepsError(RuntimeError):
    """An epoch ran no optimizer step (the training set is smaller than one batch)."""


@dataclass
class TrainResult:
    history: list[dict] = field(default_factory=list)  # one row per epoch
    wall_s: float = 0.0
    train_samples: int = 0
    peak_mem_mb: float = 0.0
    peak_mem_kind: str = ""
    world_size: int = 1  # workers the job trained on (data parallel); train_samples counts all of them
    dist_backend: str | None = None  # gloo | nccl (None: one process)
    per_worker_batch: int | None = None

    @property
    def img_per_s(self) -> float:
        return self.train_samples / self.wall_s if self.wall_s else 0.0


def compiled(model: nn.Module, mode: str):
    """The model itself, or ``torch.compile``d in ``mode`` ("default" | "reduce-overhead")."""
    return model if mode == "none" else torch.compile(model, mode=None if mode == "default" else mode)


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, eps=cfg.adam_eps, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(
        params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov, weight_decay=cfg.weight_decay
    )


def lr_lambda(cfg: TrainConfig, steps_per_epoch: int) -> Callable[[int], float]:
    total, warm = max(1, cfg.epochs * steps_per_epoch), int(cfg.warmup_epochs * steps_per_epoch)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        if cfg.schedule == "constant":
            return 1.0
        return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))

    return factor


@torch.no_grad()
def evaluate(model: nn.Module, loader, parallel=None) -> dict:
    """Top-1 / top-5 accuracy (percent) and mean cross-entropy on a loader, always in fp32: the record's (and a
    dense checkpoint's) ``top1``, ``top5`` and ``test_loss``; with ``parallel``, over every worker's shard."""
    model.eval()
    correct1 = correct5 = loss_sum = 0.0
    n = 0
    for x, y in loader:
        logits = model(x).float()
        if not bool(torch.isfinite(logits).all()):
            raise DivergedError("the model's outputs are NaN or infinite")
        loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
        top = logits.topk(min(5, logits.shape[1]), dim=1).indices
        correct1 += (top[:, 0] == y).sum().item()
        correct5 += (top == y[:, None]).any(dim=1).sum().item()
        n += len(y)
    if parallel is not None:
        correct1, correct5, loss_sum, n = parallel.total(correct1, correct5, loss_sum, n)
    if n == 0:
        raise NoStepsError("the test set is empty")
    return {"top1": 100 * correct1 / n, "top5": 100 * correct5 / n, "test_loss": loss_sum / n}


def train(
    model: nn.Module,
    train_loader,
    test_loader,
    cfg: TrainConfig,
    *,
    checkpoint: Path | None = None,
    extra_loss: Callable[[nn.Module], torch.Tensor] | None = None,
    progress: Callable[[int, dict], None] | None = None,
    set_aside: Callable[[DamagedFileError], None] | None = None,
    hook=None,
    parallel=None,
) -> TrainResult:
    """Train ``model`` in place for ``cfg.epochs``; evaluate after every epoch.

    ``set_aside`` is called with a damaged resume checkpoint (which is then ignored). ``hook`` (a method's
    ``TrainingHook``) sees every step's gradients, every step and every epoch's end; its state is saved with
    the resume checkpoint. ``parallel``: this process is one worker of a data-parallel job (the loaders are
    its shards); the hook then sees the gradients already averaged over the workers.
    """
    device = next(model.parameters()).device
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    guards = guard_narrow_strided_1x1(model)
    optimizer = make_optimizer(model, cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg, len(train_loader)))
    result, start_epoch = TrainResult(), 0
    if len(train_loader) == 0:
        raise NoStepsError(f"batch size {cfg.batch_size} is larger than the training set: no optimizer step")
    if hook is not None:
        hook.start(model, cfg.epochs * len(train_loader), cfg.epochs)
    if checkpoint is not None and Path(checkpoint).exists():
        result = _resume(checkpoint, cfg.epochs, model, optimizer, scheduler, device, set_aside, hook)
        start_epoch = len(result.history)
    step_fn = compiled(model if parallel is None else parallel.wrap(model), cfg.compile)
    writer = parallel is None or parallel.rank == 0
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        train_loader.set_epoch(epoch)
        t0 = time.perf_counter()
        loss_sum = torch.zeros((), device=device)
        seen = 0
        step = epoch * len(train_loader)
        beat = getattr(progress, "step", None)  # progress inside the epoch, when the caller wants it
        for x, y in train_loader:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
                loss = F.cross_entropy(step_fn(x), y, label_smoothing=cfg.label_smoothing)
                if extra_loss is not None:
                    loss = loss + extra_loss(model)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if hook is not None:
                hook.after_backward(model, step)
            if cfg.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            scheduler.step()
            if hook is not None:
                hook.after_step(model, step)
            step += 1
            if beat is not None:
                beat(epoch, seen + len(y), train_loader.num_items)
            loss_sum += loss.detach() * len(y)
            seen += len(y)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if parallel is not None:
            loss_sum, seen = parallel.total(loss_sum, seen)
        result.wall_s += time.perf_counter() - t0
        result.train_samples += seen
        train_loss = float(loss_sum / max(seen, 1))  # one sync per epoch, not per step
        if not math.isfinite(train_loss):
            raise DivergedError(f"training loss became {train_loss} in epoch {epoch + 1} (lr {cfg.lr})")
        if hook is not None:
            hook.end_epoch(model, epoch)
        test = evaluate(model, test_loader, parallel)
        row = {
            "epoch": epoch + 1,
            "train_loss": train_loss,
            "test_loss": test["test_loss"],
            "test_top1": test["top1"],
            "test_top5": test["top5"],
            "lr": optimizer.param_groups[0]["lr"],
            "epoch_s": time.perf_counter() - t0,
            "img_per_s": seen / max(time.perf_counter() - t0, 1e-9),
        }
        result.history.append(row)
        if checkpoint is not None and writer:
            state = {"format": CHECKPOINT_FORMAT, "model": model.state_dict(), "result": asdict(result)}
            state["hook"] = hook.state_dict() if hook is not None else {}
            if epoch + 1 < cfg.epochs:  # after the last epoch no step follows: Adam's state alone is 2x the model
                state |= {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
            save_torch_atomic(state, Path(checkpoint))
        if progress is not None:
            progress(epoch + 1, row)
    if hook is not None:
        hook.end(model)
    for guard in guards:  # training's alone: a measured model runs as it is
        guard.remove()
    result.peak_mem_mb, result.peak_mem_kind = peak_memory_mb(device)
    if parallel is not None:
        result.world_size, result.dist_backend = parallel.world, parallel.backend
        result.per_worker_batch = cfg.batch_size // parallel.world
    return result


def guard_narrow_strided_1x1(model: nn.Module) -> list:
    """oneDNN's strided 1x1 convolution writes past its workspace computing the weight gradient from a channels-last
    input with fewer input channels than its block (8 with AVX2, 16 with AVX-512; oneDNN issue 6035, open; torch
    2.14): heap corruption, then SIGSEGV or SIGABRT. Pruning can narrow a ResNet stage that far (a shortcut of 3
    channels crashed CI's quick pass on an AVX2 machine; ``tests/test_train.py``; an AVX-512 Xeon ran the same
    script for 2-15 channels without a crash and with correct gradients, but the guard is cheap and kept for every
    CPU). Such a convolution trains in the contiguous format, its weight and its input (tiny tensors): that path
    is not affected. Returns the hooks."""
    guards = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) and max(m.stride) > 1 and m.in_channels < 16:
            # a clone: .contiguous() keeps a 1x1 weight's channels-last strides (it counts as contiguous already)
            m.weight.data = m.weight.data.clone(memory_format=torch.contiguous_format)
            guards.append(m.register_forward_pre_hook(_contiguous_input))
    return guards


def _contiguous_input(module: nn.Module, args: tuple) -> tuple:
    return (args[0].contiguous(), *args[1:])


def peak_memory_mb(device: torch.device) -> tuple[float, str]:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "cuda_max_allocated"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "process_max_rss"


def _resume(path: Path, epochs: int, model, optimizer, scheduler, device, set_aside, hook=None) -> TrainResult:
    """Load a resume checkpoint (and the hook's state); a damaged one is set aside and training starts over."""
    try:
        state = load_torch(path, map_location=device)
        if state.get("format") != CHECKPOINT_FORMAT:
            raise DamagedFileError(path, f"not a training checkpoint (format {state.get('format')!r})")
        try:
            result = TrainResult(**state["result"])
            # steps follow: the optimizer's state must be there (saved with every epoch but the last), checked first
            steps = (state["optimizer"], state["scheduler"]) if len(result.history) < epochs else None
            model.load_state_dict(state["model"])
            if steps is not None:
                optimizer.load_state_dict(steps[0])
                scheduler.load_state_dict(steps[1])
            if hook is not None:
                hook.load_state_dict(state.get("hook") or {})
            return result
        except (KeyError, RuntimeError, TypeError, ValueError) as exc:
            raise DamagedFileError(path, f"does not match this model ({str(exc).splitlines()[0][:160]})") from exc
    except DamagedFileError as exc:
        if set_aside is None:
            raise
        set_aside(exc)
        return TrainResult()
