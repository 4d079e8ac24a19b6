"""Dense checkpoints: trained once per dense job (dataset, model, seed, settings, budget), shared by every job.

Every baseline of a group starts from the same weights; their SHA-256 goes into each row. The
file is named after the dense job's id (``checkpoints/dense/<job_id>.pt``). Training happens
under a per-checkpoint lock, so two runs on one folder wait instead of training twice, and it
resumes from its own per-epoch state if a sweep was killed mid-way. A damaged checkpoint is set
aside (quarantine) and trained again. A start checkpoint of its own (Network Slimming's sparsity
training) is a dense job with a regularizer, trained and shared the same way.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch

from benchmarks.data.errors import DataError
from benchmarks.measure.cost import measure_cost
from benchmarks.run.env import Env, new_dense, shape_of
from benchmarks.run.train import check_finite, evaluate
from benchmarks.store.files import DamagedFileError, load_torch, remove_verified, save_torch_atomic
from benchmarks.suites.suite import Job, Suite

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


def train_dense(suite: Suite, dense_job: Job, env: Env, checkpoint=None) -> tuple[dict, dict]:
    """Train, evaluate and cost one dense job's model; returns (CPU state dict, meta). Writes nothing but its
    resume state (``checkpoint``)."""
    from baselines.regularizers import bn_statistics, regularizer

    shape = shape_of(suite, dense_job)
    epochs = dense_job.epochs_override or suite.budgets.dense_epochs
    cfg = suite.phase_config("dense", epochs)
    torch.manual_seed(dense_job.seed)
    model = new_dense(shape, env.device)
    result = env.train(
        model,
        dense_job,
        cfg,
        checkpoint=checkpoint,
        progress=env.epoch_progress(dense_job.job_id, epochs),
        set_aside=env.set_aside,
        extra_loss=regularizer(dense_job.options) if dense_job.options else None,  # a method's own start
    )
    check_finite(model, "after dense training")
    train_loader, test_loader = env.loaders(dense_job, cfg.batch_size, cfg.channels_last)
    accuracy = evaluate(model, test_loader)
    cost = measure_cost(model, shape["in_channels"], shape["input_size"])
    meta = (
        shape
        | accuracy
        | {
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
                "world_size": result.world_size,
                "dist_backend": result.dist_backend,
                "per_worker_batch": result.per_worker_batch,
            },
        }
    )
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


class DenseCheckpoints:
    """The dense checkpoints of one run: each loaded, or trained once under its lock and saved; one that could
    not be trained fails its dependents at once (with the cause) instead of training again for each."""

    def __init__(self, suite: Suite, store, env: Env) -> None:
        self.suite, self.store, self.env = suite, store, env
        self._refs: dict[str, DenseRef] = {}
        self._failed: dict[str, str] = {}

    def get(self, dense_job: Job) -> DenseRef:
        key = dense_job.job_id
        if key in self._failed:
            raise RuntimeError(f"its dense checkpoint {key} could not be trained: {self._failed[key]}")
        if key not in self._refs:
            try:
                self._refs[key] = self._load_or_train(dense_job)
            except DataError:
                raise
            except Exception as exc:
                self._failed[key] = f"{type(exc).__name__}: {exc}"
                raise
        return self._refs[key]

    def refs(self, job: Job) -> tuple[DenseRef, DenseRef]:
        """(the checkpoint the job starts from, the equal-budget dense reference it is compared with)."""
        start, reference = self.suite.checkpoints(job)
        return self.get(start), self.get(reference)

    def _load_or_train(self, dense_job: Job) -> DenseRef:
        job_id = dense_job.job_id
        with self.store.lock(f"dense-{job_id}"):
            ref = load_dense(self.store, job_id)
            if ref is None:
                self.env.log(f"[dense] training {job_id}")
                partial = path_of(self.store, job_id).with_suffix(".partial.pt")
                state, meta = train_dense(self.suite, dense_job, self.env, partial)
                ref = save_dense(self.store, job_id, state, meta)
                remove_verified(partial)
        return ref
