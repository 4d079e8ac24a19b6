"""The runner: a suite's jobs, in order, each ending in one stored record (ok or failed).

Resumable: a job whose record says ok is skipped; an interrupted job restarts from its last
epoch; a failed job (any exception, a diverged loss included) is recorded with its error and the
sweep goes on. Nothing here branches on method names: methods come from the registry.
"""

from __future__ import annotations

import copy
import fnmatch
import sys
import time
import traceback
from dataclasses import dataclass, field

import torch

from baselines.serialize import save_model
from benchmarks import dense_cache
from benchmarks.data.registry import get_dataset, make_loaders
from benchmarks.measure import compare_to_reference, measure_cost, measure_speed
from benchmarks.methods import JobContext, get_method
from benchmarks.provenance import device_info, static_provenance, utc_now
from benchmarks.store import ResultStore
from benchmarks.suite import Job, Suite
from benchmarks.train import evaluate, train
from tissuenet.registry import create_model_for_input


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but CUDA is not available here")
    return torch.device(name)


@dataclass
class RunSummary:
    ok: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    wall_s: float = 0.0


class Runner:
    def __init__(
        self,
        suite: Suite,
        store: ResultStore,
        *,
        device="auto",
        data_root=None,
        download=False,
        progress: bool | None = None,
        log=None,
    ) -> None:
        self.suite, self.store = suite, store
        self.device = resolve_device(device) if isinstance(device, str) else device
        self.data_root, self.download = data_root, download
        self.progress = sys.stderr.isatty() if progress is None else progress
        self.log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self._dense_latency: dict[str, float] = {}

    def plan(self, only: str | None = None) -> list[Job]:
        jobs = self.suite.jobs()
        if only:
            jobs = [j for j in jobs if fnmatch.fnmatch(j.job_id, only) or fnmatch.fnmatch(j.label, only)]
        return jobs

    def preflight(self, jobs: list[Job]) -> None:
        """Load every dataset the jobs need before anything trains (a missing one is one clear error)."""
        for dataset in dict.fromkeys(j.dataset for j in jobs):
            probe = Job(self.suite.name, dataset, jobs[0].model, "dense", "dense", {}, jobs[0].target, 0, None, {})
            self._loaders(probe, 8, False)

    def run(self, only: str | None = None) -> RunSummary:
        summary, start = RunSummary(), time.perf_counter()
        jobs = self.plan(only)
        bar = _bar(len(jobs), "sweep", self.progress)
        for i, job in enumerate(jobs, 1):
            if self.store.is_done(job.job_id):
                summary.skipped.append(job.job_id)
            else:
                self.log(f"[{i}/{len(jobs)}] {job.job_id}")
                record = self.run_job(job)
                (summary.ok if record["status"] == "ok" else summary.failed).append(job.job_id)
                if record["status"] != "ok":
                    self.log(f"  FAILED: {record['error']}")
                else:
                    self.log(
                        f"  top1 {record['top1']:.2f}  MACs {record['macs'] / 1e6:.2f}M  "
                        f"params {record['params'] / 1e6:.3f}M  ({record['train_wall_s']:.0f}s training)"
                    )
            bar.update(1)
        bar.close()
        if jobs:
            self.store.consolidate()
        summary.wall_s = time.perf_counter() - start
        return summary

    # -- one job -------------------------------------------------------------------------------
    def run_job(self, job: Job) -> dict:
        started = utc_now()
        base = self._identity(job) | static_provenance() | device_info(self.device) | {"started_utc": started}
        try:
            record = base | self._execute(job)
            record["status"], record["error"] = "ok", None
        except Exception as exc:  # noqa: BLE001 - one job's failure must not end the sweep
            record = base | {
                "status": "failed",
                "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(limit=6),
            }
        record["finished_utc"] = utc_now()
        self.store.write(record)
        return record

    def _identity(self, job: Job) -> dict:
        return {
            "suite": job.suite,
            "job_id": job.job_id,
            "dataset": job.dataset,
            "model": job.model,
            "method": job.method,
            "label": job.label,
            "method_options": job.options,
            "target_kind": job.target.kind,
            "target_value": job.target.value,
            "seed": job.seed,
            "config_hash": job.config_hash,
        }

    def _loaders(self, job: Job, batch_size: int, channels_last: bool):
        limits = {k: self.suite.data.get(k) for k in ("train_limit", "test_limit")}
        _, train_loader, test_loader = make_loaders(
            job.dataset,
            batch_size=batch_size,
            device=self.device,
            data_root=self.data_root,
            download=self.download,
            seed=job.seed,
            channels_last=channels_last,
            **limits,
        )
        return train_loader, test_loader

    def _dense(self, job: Job):
        info = get_dataset(job.dataset)
        shape = {
            "model": job.model,
            "num_classes": info.num_classes,
            "in_channels": info.in_channels,
            "input_size": info.input_size,
        }
        cfg = self.suite.phase_config("dense", self.suite.budgets["dense_epochs"])

        def build():
            torch.manual_seed(job.seed)
            return self._new_dense(shape), shape

        key = dense_cache.dense_key(job.dataset, job.model, job.seed, self.suite.dense_config())
        loaders = self._loaders(job, cfg.batch_size, cfg.channels_last)
        ref = dense_cache.get_or_train(self.store, key, build, loaders, cfg, self.log, self._epoch_bar(cfg.epochs))
        return ref, shape

    def _new_dense(self, shape: dict) -> torch.nn.Module:
        model = create_model_for_input(shape["model"], shape["num_classes"], shape["in_channels"], shape["input_size"])
        return model.to(self.device)

    def _execute(self, job: Job) -> dict:
        ref, shape = self._dense(job)
        _, test_loader = self._loaders(job, 256, False)
        method = get_method(job.method)
        cfg_for = self.suite.phase_config  # phase -> TrainConfig
        train_loader, _ = self._loaders(job, self.suite.train.batch_size, self.suite.train.channels_last)

        def train_phase(model, epochs, extra_loss=None):
            cfg = cfg_for("finetune", epochs, job.train_overrides)
            train(model, *self._loaders(job, cfg.batch_size, cfg.channels_last), cfg, extra_loss=extra_loss)

        ctx = JobContext(
            job.dataset,
            job.model,
            shape["num_classes"],
            shape["in_channels"],
            shape["input_size"],
            job.seed,
            copy.deepcopy(job.options),
            job.target,
            self.suite.budgets,
            self.device,
            dense_model=lambda: ref.load_into(self._new_dense(shape)),
            dense_cost=ref.meta,
            train_loader=train_loader,
            epochs_override=job.epochs_override,
            train=train_phase,
        )
        torch.manual_seed(job.seed)
        prepared = method.prepare(ctx)
        model = prepared.model.to(self.device)
        record = {
            "phase": prepared.phase,
            "epochs": prepared.epochs,
            "method_info": prepared.info,
            "tissue_options": getattr(model, "tissue_options", None) or prepared.info.get("tissue_options"),
            "dense_checkpoint": ref.path.name,
            "dense_weights_sha256": ref.sha256,
            "dense_epochs": ref.meta["train"]["epochs"],
        }
        if prepared.epochs > 0:
            cfg = cfg_for(prepared.phase, prepared.epochs, job.train_overrides)
            train_loader, test_loader = self._loaders(job, cfg.batch_size, cfg.channels_last)
            state = self.store.checkpoints / "jobs" / f"{job.job_id}.pt"
            result = train(
                model,
                train_loader,
                test_loader,
                cfg,
                checkpoint=state,
                extra_loss=prepared.extra_loss,
                progress=self._epoch_bar(cfg.epochs),
            )
            record |= {
                "history": result.history,
                "train_wall_s": result.wall_s,
                "img_per_s": result.img_per_s,
                "peak_mem_mb": result.peak_mem_mb,
                "peak_mem_kind": result.peak_mem_kind,
            }
            if prepared.finalize is not None:
                model = prepared.finalize(model)
        else:  # nothing to train: the dense row reports the dense checkpoint's own training
            dense_train = ref.meta["train"] if prepared.phase == "dense" else {}
            record["epochs"] = dense_train.get("epochs", 0)
            record |= {
                "history": ref.meta["history"] if prepared.phase == "dense" else [],
                "train_wall_s": dense_train.get("wall_s", 0.0),
                "img_per_s": dense_train.get("img_per_s"),
                "peak_mem_mb": dense_train.get("peak_mem_mb"),
                "peak_mem_kind": dense_train.get("peak_mem_kind"),
            }
        final = evaluate(model, test_loader)
        best = max(record["history"], key=lambda r: r["test_top1"]) if record["history"] else None
        record |= {
            "top1": final["top1"],
            "top5": final["top5"],
            "test_loss": final["loss"],
            "best_top1": best["test_top1"] if best else None,
            "best_epoch": best["epoch"] if best else None,
        }
        cost = measure_cost(model, shape["in_channels"], shape["input_size"])
        speed = measure_speed(model, shape["in_channels"], shape["input_size"], self.device, self._measure_cfg())
        if prepared.phase == "dense" and "latency_ms" in speed:  # the dense row is its own reference (speed-up 1)
            self._dense_latency[ref.sha256] = speed["latency_ms"]
        ref_meta = ref.meta | {"latency_ms": self._dense_latency_ms(ref, shape)}  # measured once per process
        record |= cost | speed | compare_to_reference(final["top1"], cost, ref_meta, speed.get("latency_ms"))
        arch = shape | {"options": {}} | (prepared.arch or {})
        model_file = save_model(model, self.store.root / "models" / f"{job.job_id}.pt", arch)
        record["model_file"] = str(model_file.relative_to(self.store.root))
        (self.store.checkpoints / "jobs" / f"{job.job_id}.pt").unlink(missing_ok=True)
        return record

    def _measure_cfg(self) -> dict:
        return self.suite.measure | {"channels_last": self.suite.train.channels_last}

    def _dense_latency_ms(self, ref, shape) -> float | None:
        """The dense model's batch-1 latency, measured once per process (timings compare within a run)."""
        if not self.suite.measure.get("latency", True):
            return None
        if ref.sha256 not in self._dense_latency:
            model = ref.load_into(self._new_dense(shape))
            speed = measure_speed(
                model,
                shape["in_channels"],
                shape["input_size"],
                self.device,
                self._measure_cfg() | {"latency_batches": self.suite.measure["latency_batches"][:1]},
            )
            self._dense_latency[ref.sha256] = speed["latency_ms"]
        return self._dense_latency[ref.sha256]

    def _epoch_bar(self, epochs: int):
        if not self.progress:
            return lambda epoch, row: self.log(
                f"    epoch {epoch}/{epochs}: train loss {row['train_loss']:.4f}, test top1 {row['test_top1']:.2f}"
            )
        bar = _bar(epochs, "epochs", True, leave=False)
        return lambda epoch, row: (bar.update(1), bar.set_postfix(top1=f"{row['test_top1']:.2f}"))


def _bar(total: int, desc: str, enabled: bool, leave: bool = True):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, leave=leave, file=sys.stderr, dynamic_ncols=True)
