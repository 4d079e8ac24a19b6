"""One training loop for every method: the hyper-parameters are one dict (airbench style).

Final-epoch accuracy is what results report; the best epoch is kept only as an extra, labelled
column (the paper's code reports the best test accuracy over all epochs; we do not). A loss
that turns NaN/inf raises :class:`DivergedError`, which fails that job only. With a checkpoint
path, the state is saved atomically after every epoch and a rerun resumes from it: batches
depend only on (seed, epoch), so a resumed run matches an uninterrupted one.
"""

from __future__ import annotations

import math
import os
import resource
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


class DivergedError(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "sgd"  # "sgd" | "adam"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    adam_eps: float = 1e-8
    label_smoothing: float = 0.0
    warmup_epochs: float = 0.0  # linear warm-up, then cosine decay to zero
    schedule: str = "cosine"  # "cosine" | "constant"
    bf16: bool = False  # autocast to bfloat16
    channels_last: bool = False
    compile: str = "none"  # "none" | "default" | "reduce-overhead" (CUDA graphs: no launch overhead)
    grad_clip: float = 0.0

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown training setting(s) {unknown}; known: {sorted(known)}")
        cfg = cls(**d)
        if cfg.optimizer not in ("sgd", "adam"):
            raise ValueError(f"optimizer must be 'sgd' or 'adam', got {cfg.optimizer!r}")
        if cfg.schedule not in ("cosine", "constant"):
            raise ValueError(f"schedule must be 'cosine' or 'constant', got {cfg.schedule!r}")
        if cfg.compile not in ("none", "default", "reduce-overhead"):
            raise ValueError(f"compile must be none, default or reduce-overhead, got {cfg.compile!r}")
        if cfg.epochs < 0 or cfg.batch_size < 1 or cfg.lr <= 0:
            raise ValueError("epochs must be >= 0, batch_size >= 1 and lr > 0")
        return cfg

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainResult:
    history: list[dict] = field(default_factory=list)  # one row per epoch
    wall_s: float = 0.0
    train_samples: int = 0
    peak_mem_mb: float = 0.0
    peak_mem_kind: str = ""

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
def evaluate(model: nn.Module, loader, bf16: bool = False) -> dict:
    """Top-1 / top-5 accuracy (percent) and mean cross-entropy on a loader."""
    model.eval()
    correct1 = correct5 = loss_sum = 0.0
    n = 0
    for x, y in loader:
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(x)
        logits = logits.float()
        loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
        top = logits.topk(min(5, logits.shape[1]), dim=1).indices
        correct1 += (top[:, 0] == y).sum().item()
        correct5 += (top == y[:, None]).any(dim=1).sum().item()
        n += len(y)
    return {"top1": 100 * correct1 / n, "top5": 100 * correct5 / n, "loss": loss_sum / n}


def train(
    model: nn.Module,
    train_loader,
    test_loader,
    cfg: TrainConfig,
    *,
    checkpoint: Path | None = None,
    extra_loss: Callable[[nn.Module], torch.Tensor] | None = None,
    progress: Callable[[int, dict], None] | None = None,
) -> TrainResult:
    """Train ``model`` in place for ``cfg.epochs``; evaluate after every epoch."""
    device = next(model.parameters()).device
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg, len(train_loader)))
    result, start_epoch = TrainResult(), 0
    if checkpoint is not None and Path(checkpoint).exists():
        state = torch.load(checkpoint, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        result = state["result"]
        start_epoch = len(result.history)
    step_fn = compiled(model, cfg.compile)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        train_loader.set_epoch(epoch)
        t0 = time.perf_counter()
        loss_sum = torch.zeros((), device=device)
        seen = 0
        for x, y in train_loader:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
                loss = F.cross_entropy(step_fn(x), y, label_smoothing=cfg.label_smoothing)
                if extra_loss is not None:
                    loss = loss + extra_loss(model)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            scheduler.step()
            loss_sum += loss.detach() * len(y)
            seen += len(y)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        result.wall_s += time.perf_counter() - t0
        result.train_samples += seen
        train_loss = (loss_sum / max(seen, 1)).item()  # one sync per epoch, not per step
        if not math.isfinite(train_loss):
            raise DivergedError(f"training loss became {train_loss} in epoch {epoch + 1} (lr {cfg.lr})")
        test = evaluate(model, test_loader, cfg.bf16)
        row = {
            "epoch": epoch + 1,
            "train_loss": train_loss,
            "test_loss": test["loss"],
            "test_top1": test["top1"],
            "test_top5": test["top5"],
            "lr": optimizer.param_groups[0]["lr"],
        }
        result.history.append(row)
        if checkpoint is not None:
            save_atomic(
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "result": result,
                },
                Path(checkpoint),
            )
        if progress is not None:
            progress(epoch + 1, row)
    result.peak_mem_mb, result.peak_mem_kind = peak_memory_mb(device)
    return result


def peak_memory_mb(device: torch.device) -> tuple[float, str]:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "cuda_max_allocated"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "process_max_rss"


def save_atomic(obj, path: Path) -> None:
    """torch.save to a temporary file, then rename: a kill never leaves half a checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)
