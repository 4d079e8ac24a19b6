"""Dense checkpoints: trained once per (dataset, model, seed, settings), shared by every job.

Every baseline of a group starts from the same file; its SHA-256 goes into each row. Training
happens under a per-checkpoint file lock, so parallel workers wait instead of training twice, and
it resumes from its own per-epoch state if a sweep was killed mid-way.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch

from benchmarks.measure import measure_cost
from benchmarks.suite import stable_hash
from benchmarks.train import evaluate, save_atomic, train


@dataclass
class DenseRef:
    path: Path
    sha256: str
    meta: dict  # model, num_classes, in_channels, input_size, top1, top5, params, macs, history, train

    def load_into(self, model: torch.nn.Module) -> torch.nn.Module:
        state = torch.load(self.path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["state_dict"])
        return model


def weights_sha256(state_dict: dict) -> str:
    """SHA-256 of the weights themselves (names, shapes, bytes in key order): equal weights give
    equal hashes, whatever else the file holds (timings differ between identical runs)."""
    h = hashlib.sha256()
    for name in sorted(state_dict):
        t = state_dict[name].detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def dense_key(dataset: str, model: str, seed: int, dense_config: dict) -> str:
    return f"{dataset}.{model.replace(':', '-')}.s{seed}.{stable_hash([dataset, model, seed, dense_config])[:10]}"


def get_or_train(store, key: str, build, loaders, cfg, log=print, progress=None) -> DenseRef:
    """The dense checkpoint ``key``: loaded if present, otherwise trained now (once, under a lock)."""
    path = store.checkpoints / "dense" / f"{key}.pt"
    with store.lock(f"dense-{key}"):
        if not path.exists():
            model, info = build()
            train_loader, test_loader = loaders
            log(f"[dense] training {key} for {cfg.epochs} epochs")
            result = train(
                model, train_loader, test_loader, cfg, checkpoint=path.with_suffix(".partial.pt"), progress=progress
            )
            final = evaluate(model, test_loader, cfg.bf16)
            cost = measure_cost(model, info["in_channels"], info["input_size"])
            meta = info | {
                "top1": final["top1"],
                "top5": final["top5"],
                "test_loss": final["loss"],
                "params": cost["params"],
                "macs": cost["macs"],
                "history": result.history,
                "train": {
                    "epochs": cfg.epochs,
                    "wall_s": result.wall_s,
                    "img_per_s": result.img_per_s,
                    "peak_mem_mb": result.peak_mem_mb,
                    "peak_mem_kind": result.peak_mem_kind,
                },
            }
            state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
            save_atomic({"state_dict": state, "meta": meta}, path)
            path.with_suffix(".partial.pt").unlink(missing_ok=True)
    saved = torch.load(path, map_location="cpu", weights_only=True)
    return DenseRef(path, weights_sha256(saved["state_dict"]), saved["meta"])
