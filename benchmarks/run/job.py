"""One job, step by step, as in the README's data-flow diagram:

    prepare (method) -> train -> evaluate -> measure (cost, latency) -> compare (metric table) -> record

:func:`run_job` is what every executor runs (in this process, or on a Ray worker): it takes the
job, its suite and its dense checkpoints, writes nothing but its own resume state (when a results
folder is reachable), and returns the record and the bytes of the trained model's file. The
caller (the driver) is the only writer of records and model files.
"""

from __future__ import annotations

import copy
import traceback
from dataclasses import dataclass

import torch

from baselines.contract import JobContext, Prepared, get_method
from benchmarks.measure.cost import deploy_form, eager_form, measure_cost
from benchmarks.measure.speed import measure_pair, suspect
from benchmarks.run.checkpoints import DenseRef
from benchmarks.run.env import Env, identity, new_dense, shape_of
from benchmarks.run.train import check_finite, evaluate
from benchmarks.store.files import StorageError
from benchmarks.store.metric_table import derive
from benchmarks.store.model_files import model_bytes
from benchmarks.store.provenance import device_info, static_provenance, utc_now
from benchmarks.suites.phases import own_phases, phases_of, with_macs
from benchmarks.suites.suite import Job, Suite

EVAL_BATCH = 256  # test-set batch size (evaluation only; never changes a result)


@dataclass
class Outcome:
    record: dict
    model_file: bytes | None  # the trained model's file (written by the driver)


def run_job(suite: Suite, job: Job, start: DenseRef, reference: DenseRef, env: Env) -> Outcome:
    """Every step of one job; a failure anywhere becomes a failed record (the sweep goes on)."""
    base = (
        identity(job)
        | static_provenance()
        | device_info(env.device)
        | {"started_utc": utc_now(), "run_started_utc": env.run_started, "executor": env.executor}
        | ({"data_source": env.data_source(job.dataset)} if env.data_source else {})
    )
    try:
        body, file_bytes = _steps(suite, job, start, reference, env)
        record = base | body | {"status": "ok", "error": None}
    except StorageError:  # a full or read-only disk ends the sweep (nothing more can be stored)
        raise
    except Exception as exc:  # noqa: BLE001 - one job's failure must not end the sweep
        file_bytes = None
        record = base | {
            "status": "failed",
            "error": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exc(limit=6),
        }
    record["finished_utc"] = utc_now()
    return Outcome(record, file_bytes)


def prepare(suite: Suite, job: Job, start: DenseRef, shape: dict, env: Env) -> Prepared:
    """Step 1: the method turns the job into a model to train (from the dense checkpoint, or built)."""
    train_loader, _ = env.loaders(job, suite.train.batch_size, suite.train.channels_last)

    def train_phase(model, epochs, extra_loss=None):  # a method's own training (a plugin's extra phase)
        env.train(model, job, suite.phase_config("finetune", epochs, job.train_overrides), extra_loss=extra_loss)

    ctx = JobContext(
        dataset=job.dataset,
        model_name=job.model,
        num_classes=shape["num_classes"],
        in_channels=shape["in_channels"],
        input_size=shape["input_size"],
        seed=job.seed,
        options=copy.deepcopy(job.options),
        target=job.target,
        budgets=suite.budgets,
        device=env.device,
        dense_model=lambda epochs=None: start.load_into(new_dense(shape, env.device)),
        train_loader=train_loader,
        epochs_override=job.epochs_override,
        train=train_phase,
    )
    torch.manual_seed(job.seed)
    prepared = get_method(job.method).prepare(ctx)
    prepared.model = prepared.model.to(env.device)
    return prepared


def train_step(suite: Suite, job: Job, prepared: Prepared, start: DenseRef, env: Env) -> dict:
    """Step 2: train through the method's phases (a dense row reports its checkpoint's own training)."""
    phases = [p for p in prepared.training_phases() if p.epochs > 0 or p.hook or p.finalize]
    if not any(p.epochs for p in phases):
        own = start.meta["train"] if prepared.phase == "dense" else {}
        prepared.without_training()
        return {
            "history": start.meta["history"] if prepared.phase == "dense" else [],
            "train_wall_s": own.get("wall_s", 0.0),
            "img_per_s": own.get("img_per_s"),
            "peak_mem_mb": own.get("peak_mem_mb"),
            "peak_mem_kind": own.get("peak_mem_kind"),
            "train_images": start.meta.get("train_images"),
            **{k: own.get(k) for k in ("world_size", "dist_backend", "per_worker_batch")},
        }
    history, wall, seen, peak = [], 0.0, 0, (0.0, "")
    for i, phase in enumerate(phases):
        cfg = suite.phase_config(phase.settings, phase.epochs, job.train_overrides | phase.overrides)
        state = None  # per-phase resume state: a later phase may train a pruned model
        if env.state_dir is not None:
            state = env.state_dir / (f"{job.job_id}.pt" if i == 0 else f"{job.job_id}.phase{i}.pt")
        result = env.train(
            prepared.model,
            job,
            cfg,
            checkpoint=state,
            extra_loss=prepared.extra_loss,
            progress=env.epoch_progress(job.job_id, cfg.epochs),
            set_aside=env.set_aside,
            hook=phase.hook,
        )
        if phase.finalize is not None:
            prepared.model = phase.finalize(prepared.model)
        history += [row | {"train_phase": phase.name, "epoch": len(history) + 1} for row in result.history]
        wall, seen = wall + result.wall_s, seen + result.train_samples
        peak = max(peak, (result.peak_mem_mb, result.peak_mem_kind))
    train_loader, _ = env.loaders(job, cfg.batch_size, cfg.channels_last)
    return {
        "history": history,
        "train_wall_s": wall,
        "img_per_s": seen / wall if wall else 0.0,
        "peak_mem_mb": peak[0],
        "peak_mem_kind": peak[1],
        "train_images": train_loader.num_items,
        **parallelism(result),
    }


def parallelism(result) -> dict:
    """The record's word on how the job's (last) phase trained: workers, their backend, each one's batch."""
    return {
        "world_size": result.world_size,
        "dist_backend": result.dist_backend,
        "per_worker_batch": result.per_worker_batch,
    }


def evaluate_step(model, test_loader, history: list[dict]) -> dict:
    """Step 3: final-epoch accuracy, fp32, on the whole test set (the best epoch only as an extra)."""
    best = max(history, key=lambda r: r["test_top1"]) if history else None
    return evaluate(model, test_loader) | {
        "best_top1": best["test_top1"] if best else None,
        "best_epoch": best["epoch"] if best else None,
    }


def train_phases(suite: Suite, job: Job, prepared: Prepared, start: DenseRef, macs: int) -> list[dict]:
    """The phases this row's model trained through, each at the MACs it ran at (``benchmarks/suites/phases.py``)."""
    declared = None if prepared.phases is None else [(p.name, p.epochs, p.dense_cost) for p in prepared.phases]
    own = own_phases(prepared.phase, prepared.epochs, prepared.extra_epochs_at_dense_cost, declared)
    phases = phases_of(
        suite,
        job,
        get_method(job.method),
        own,
        start_epochs=start.meta["train"]["epochs"],
        forward_images=prepared.extra_forward_images,
    )
    return with_macs(phases, start.meta["macs"], macs)


def _steps(suite: Suite, job: Job, start: DenseRef, reference: DenseRef, env: Env) -> tuple[dict, bytes]:
    shape = shape_of(suite, job)
    prepared = prepare(suite, job, start, shape, env)  # 1. prepare
    check_finite(prepared.model, "after the method prepared the model")
    trained = train_step(suite, job, prepared, start, env)  # 2. train
    model = prepared.model
    check_finite(model, "after training")
    _, test_loader = env.loaders(job, EVAL_BATCH, False)
    accuracy = evaluate_step(model, test_loader, trained["history"])  # 3. evaluate
    cost = measure_cost(model, shape["in_channels"], shape["input_size"])  # 4. measure
    dense_model = start.load_into(new_dense(shape, env.device))
    speed = measure_pair(
        model,
        dense_model,
        shape["in_channels"],
        shape["input_size"],
        env.device,
        suite.measure,
        deploy_form=deploy_form(),
        eager_form=eager_form(suite.train.channels_last),
        identical=prepared.phase == "dense",  # the dense row is the reference: speed-up 1 by definition
        log=env.log,
    )
    ref = reference.meta
    raw = (
        accuracy
        | cost
        | speed
        | {
            "base_top1": ref["top1"],
            "base_params": ref["params"],
            "base_macs": ref["macs"],
            "base_epochs": ref["train"]["epochs"],
            "base_img_per_s": ref["train"].get("img_per_s"),
            "train_phases": train_phases(suite, job, prepared, start, cost["macs"]),
            "train_images": trained["train_images"],
        }
    )
    raw["img_per_s"] = trained["img_per_s"]  # the realized training speed-up compares it with the dense job's
    record = raw | derive(raw)  # 5. compare: every derived metric from the metric table
    record["speedup_suspect"] = suspect(record.get("speedup_measured"), record.get("speedup_theoretical"))
    record |= {k: v for k, v in trained.items() if k != "train_images"} | {
        "phase": prepared.phase,
        "epochs": prepared.epochs,
        "method_info": prepared.info,
        "tissue_options": getattr(model, "tissue_options", None) or prepared.info.get("tissue_options"),
        "dense_checkpoint": start.job_id,
        "dense_weights_sha256": start.sha256,
        "dense_epochs": start.meta["train"]["epochs"],
        "reference_job": reference.job_id,
        "reference_epochs": reference.meta["train"]["epochs"],
        "checkpoint_bn": {"start": start.meta.get("bn"), "dense": reference.meta.get("bn")},
        "model_file": f"models/{job.job_id}.pt",
    }
    arch = shape | {"options": {}} | (prepared.arch or {})
    return record, model_bytes(model, arch)  # 6. the record and the model file
