"""The plan before anything trains: per job its phase, epochs and cost estimates, and the suite's compute.

``tissuebench run SUITE --dry-run [--json]`` prints it. Estimates: TissueNet and dense models are
built and counted exactly; pruning and sparsity estimates follow the target (the achieved values
are measured when the job runs). Training compute = epochs x training images x 3 x MACs, the
same formula as the ``train_compute`` metric, summed over the jobs that train (a dense checkpoint
counts once, in its dense job).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from baselines.contract import PlanContext, get_method
from benchmarks.suites.phases import compute, own_phases, phases_of, with_macs
from benchmarks.suites.suite import Job, Suite
from tissuenet import count_macs, count_params
from tissuenet.registry import create_model_for_input


@dataclass
class PlannedJob:
    job: Job
    phase: str
    epochs: int  # the job's own training epochs, as it will run (dense: its checkpoint's)
    macs: float
    params: float
    reference_epochs: int
    done: bool = False
    train_macs: float = 0.0  # per image while training (masked models: dense)
    dense_macs: float = 0.0
    phases: list[dict] = field(default_factory=list)  # ``benchmarks/suites/phases.py``, each with its MACs

    @property
    def extra_epochs_at_dense_cost(self) -> int:
        """Epochs of its own phases that run at the dense model's cost (a masked model, a method's own phase)."""
        return sum(p["epochs"] for p in self.phases if p["at"] == "dense" and not p.get("shared"))

    def train_compute(self, train_images: int) -> float:
        """Every phase this job trains itself (a shared checkpoint counts once, in its own row)."""
        return compute(self.phases, train_images, shared=False)

    def as_json(self) -> dict:
        j = self.job
        return {
            "job_id": j.job_id,
            "dataset": j.dataset,
            "model": j.model,
            "method": j.method,
            "label": j.label,
            "target": j.target.label() or "none",
            "seed": j.seed,
            "phase": self.phase,
            "epochs": self.epochs,
            "macs": round(self.macs),
            "params": round(self.params),
            "train_macs": round(self.train_macs),
            "extra_epochs_at_dense_cost": self.extra_epochs_at_dense_cost,
            "phases": [
                {"name": p["phase"], "epochs": p["epochs"], "start": p["start"]}
                | ({"shared": True} if p.get("shared") else {})
                | ({"forward_images": p["forward_images"]} if p.get("forward_images") else {})
                for p in self.phases
            ],
        }


@functools.cache
def _shape(dataset: str, input_size: int | None = None) -> tuple[int, int, int]:
    from benchmarks.data.datasets import get_dataset

    info = get_dataset(dataset)
    return info.num_classes, info.in_channels, input_size if input_size and not info.resident else info.input_size


@functools.cache
def _dense_cost(model: str, dataset: str, input_size: int | None = None) -> tuple[int, int]:
    classes, channels, size = _shape(dataset, input_size)
    net = create_model_for_input(model, classes, channels, size)
    return count_macs(net, channels, size), count_params(net)


def plan_context(suite: Suite, dataset: str, model: str, seed: int, spec_or_job, target) -> PlanContext:
    classes, channels, size = _shape(dataset, suite.data.input_size)

    def build(name: str, options: dict):
        return create_model_for_input(name, classes, channels, size, **options)

    return PlanContext(
        budgets=suite.budgets,
        options=dict(spec_or_job.options),
        target=target,
        seed=seed,
        dataset=dataset,
        epochs_override=getattr(spec_or_job, "epochs_override", getattr(spec_or_job, "epochs", None)),
        dense_cost=lambda: _dense_cost(model, dataset, suite.data.input_size),
        build=build,
        model_name=model,
        in_channels=channels,
        input_size=size,
    )


def plan(suite: Suite, jobs: list[Job], is_done=lambda job_id: False) -> list[PlannedJob]:
    out = []
    for job in jobs:
        method = get_method(job.method)
        context = plan_context(suite, job.dataset, job.model, job.seed, job, job.target)
        est = method.estimate(context)
        own = own_phases(method.phase, est.epochs, est.extra_epochs_at_dense_cost, est.phases)
        start_epochs = est.epochs if job.method == "dense" else suite.budgets.dense_epochs
        phases = phases_of(suite, job, method, own, start_epochs=start_epochs, forward_images=est.extra_forward_images)
        train_macs = est.macs if est.train_macs is None else est.train_macs
        epochs = est.epochs if est.phases is None else sum(p[1] for p in est.phases)
        out.append(
            PlannedJob(
                job,
                method.phase,
                epochs,
                est.macs,
                est.params,
                est.reference_epochs,
                is_done(job.job_id),
                train_macs,
                context.dense_macs,
                with_macs(phases, context.dense_macs, train_macs),
            )
        )
    return out


def total_compute(planned: list[PlannedJob], train_images: dict[str, int]) -> float:
    return sum(p.train_compute(train_images[p.job.dataset]) for p in planned)
