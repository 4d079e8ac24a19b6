"""Dense checkpoints: trained once per dense job (dataset, model, seed, settings, budget), shared by every job.

Every baseline of a group starts from the same weights; their SHA-256 goes into each row. The
file is named after the dense job's id (``checkpoints/dense/<job_id>.pt``). Training happens
under a per-checkpoint lock, so two runs on one folder wait instead of training twice, and it
resumes from its own per-epoch state if a sweep was killed mid-way. A damaged checkpoint is set
aside (quarantine) and trained again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch

from benchmarks.measure.cost import measure_cost
from benchmarks.run.train import check_finite, evaluate, train
from benchmarks.store.files import DamagedFileError, load_torch, remove_verified, save_torch_atomic

DENSE_FORMAT = "tissuebench.dense/1"


@dataclass
class DenseRef:
    job_id: str  # the dense job whose checkpoint this is
    sha256: str
    meta: dict  # model, num_classes, in_channels, input_size, top1, top5, params, macs, history, train
    state_dict: dict  # on the CPU; every user gets a fresh copy

    def load_into(self, model: torch.nn.Module) -> torch.nn.Module:
        model.load_state_dict(self.state_dict)
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


def train_dense(model, info: dict, loaders, cfg, *, checkpoint=None, progress=None, set_aside=None, extra_loss=None):
    """Train and evaluate one dense model (``extra_loss``: a start checkpoint's regularizer); returns (CPU state
    dict, meta). Writes nothing but its resume state."""
    from baselines.regularizers import bn_statistics

    train_loader, test_loader = loaders
    result = train(
        model,
        train_loader,
        test_loader,
        cfg,
        checkpoint=checkpoint,
        progress=progress,
        set_aside=set_aside,
        extra_loss=extra_loss,
    )
    check_finite(model, "after dense training")
    final = evaluate(model, test_loader)
    cost = measure_cost(model, info["in_channels"], info["input_size"])
    meta = info | {
        "top1": final["top1"],
        "top5": final["top5"],
        "test_loss": final["loss"],
        "params": cost["params"],
        "params_nonzero": cost["params_nonzero"],
        "macs": cost["macs"],
        "history": result.history,
        "train_images": train_loader.num_items,
        "bn": bn_statistics(model),  # how many BN scales are near zero (sparsity training drives them there)
        "train": {
            "epochs": cfg.epochs,
            "wall_s": result.wall_s,
            "img_per_s": result.img_per_s,
            "peak_mem_mb": result.peak_mem_mb,
            "peak_mem_kind": result.peak_mem_kind,
        },
    }
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}, meta


def path_of(store, job_id: str):
    return store.checkpoints / "dense" / f"{job_id}.pt"


def load_dense(store, job_id: str) -> DenseRef | None:
    """The stored checkpoint, or None (absent, or damaged and set aside)."""
    path = path_of(store, job_id)
    if not path.exists():
        return None
    try:
        saved = load_torch(path)
        if saved.get("format") != DENSE_FORMAT or not isinstance(saved.get("meta"), dict):
            raise DamagedFileError(path, "not a tissuebench dense checkpoint")
        state = saved["state_dict"]
        return DenseRef(job_id, weights_sha256(state), saved["meta"], state)
    except DamagedFileError as exc:
        store._set_aside(exc)
        return None


def save_dense(store, job_id: str, state: dict, meta: dict) -> DenseRef:
    save_torch_atomic({"format": DENSE_FORMAT, "state_dict": state, "meta": meta}, path_of(store, job_id))
    return DenseRef(job_id, weights_sha256(state), meta, state)


def get_or_train(store, job_id: str, make, log) -> DenseRef:
    """The dense checkpoint of ``job_id``: loaded if present, else ``make()`` -> (state, meta), saved, once."""
    with store.lock(f"dense-{job_id}"):
        ref = load_dense(store, job_id)
        if ref is None:
            log(f"[dense] training {job_id}")
            state, meta = make(path_of(store, job_id).with_suffix(".partial.pt"))
            ref = save_dense(store, job_id, state, meta)
            remove_verified(path_of(store, job_id).with_suffix(".partial.pt"))
    return ref
