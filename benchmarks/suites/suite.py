"""Suites: TOML files that name datasets, models, methods with targets, seeds, budgets, settings.

A suite is validated completely (every dataset, model, method, option, target and setting, see
``checks.py``) before anything trains, then expanded into jobs with stable ids: the id
hashes everything that determines the job's result, so a rerun finds and skips finished jobs, and
a changed setting makes new jobs (the old records are then *superseded*, see ``store/results.py``).

Every group (dataset, model, seed) has a dense job at the dense budget; a from-scratch method
whose budget differs from it (``scratch_epochs``, or a method's own ``epochs``) brings a dense
reference job at its budget (label ``dense@eN``), so drops are always against an equal budget.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from baselines.contract import Target
from benchmarks.suites.overrides import digest, identity_overrides
from benchmarks.suites.settings import BudgetConfig, DataConfig, ExecutionConfig, MeasureConfig, TrainConfig

JOB_ID_SAFE = re.compile(r"[^A-Za-z0-9_.@+-]+")
HASH_CHARS = 10  # of the config hash in a job id
READABLE_MAX = 120  # characters of a job id's readable part: ids name files (lock, record, model, .sha256)
MEASURE_PREFIX = "measure."  # --set overrides of what is measured after training, not of what trains


class SuiteError(ValueError):
    """The suite file is malformed or names something that does not exist."""


@dataclass(frozen=True)
class MethodSpec:
    """One ``[[method]]`` entry, validated."""

    name: str
    label: str
    options: dict
    targets: tuple[Target, ...]
    epochs: int | None  # overrides the method's budget
    train: dict  # this method's own training settings over [train] (and [finetune])
    models: tuple[str, ...] | None = None  # only these of the suite's models (None: all)


@dataclass(frozen=True)
class Job:
    suite: str
    dataset: str
    model: str
    method: str
    label: str
    options: dict
    target: Target
    seed: int
    epochs_override: int | None
    config: dict = field(repr=False)  # everything else that determines the result
    train_overrides: dict = field(default_factory=dict)
    overrides: dict = field(default_factory=dict, repr=False, compare=False)  # the run's --set (provenance)
    # the train hash of the dense checkpoint it starts from: ``config["dense"]`` hashes ``--set measure.*`` too
    dense_train_hash: str = field(default="", repr=False, compare=False)

    @property
    def variant(self) -> str:
        """'' for the suite as written; else the digest of the ``--set`` overrides that change results."""
        return digest(self.overrides)

    def identity(self, *, with_seed: bool = True, with_measure: bool = True) -> dict:
        config = self.config
        if not with_measure:
            hashed = isinstance(config.get("dense"), str)  # a method's job names its dense checkpoint by hash
            config = _without_measure(config) | ({"dense": self.dense_train_hash} if hashed else {})
        out = {
            "dataset": self.dataset,
            "model": self.model,
            "method": self.method,
            "options": self.options,
            "target": [self.target.kind, self.target.value],
            "epochs": self.epochs_override,
            "config": config,
            "train": self.train_overrides,
        }
        return out | ({"seed": self.seed} if with_seed else {})

    @functools.cached_property
    def config_hash(self) -> str:
        return stable_hash(self.identity())

    @functools.cached_property
    def group_hash(self) -> str:
        """The configuration without the seed: rows with equal group hashes are seeds of one configuration."""
        return stable_hash(self.identity(with_seed=False))

    @functools.cached_property
    def train_hash(self) -> str:
        """The training configuration without the seed and without ``--set measure.*``: runs with equal train
        hashes are seeds of one training (the gate pools them, latency measured or not)."""
        return stable_hash(self.identity(with_seed=False, with_measure=False))

    @functools.cached_property
    def job_id(self) -> str:
        """Readable and file-name safe; the hash makes it unique and stable."""
        readable = JOB_ID_SAFE.sub("-", f"{self.dataset}.{self.model}.{self.label}.s{self.seed}")[:READABLE_MAX]
        return f"{readable}.{self.config_hash[:HASH_CHARS]}"


def _without_measure(config: dict) -> dict:
    """``config`` without ``--set measure.*`` at any depth (the dense checkpoint's config nests its own overrides):
    what training computes, whatever is measured after it."""
    out = {}
    for key, value in config.items():
        if key == "overrides" and isinstance(value, dict):
            value = {k: v for k, v in value.items() if not k.startswith(MEASURE_PREFIX)}
            if not value:
                continue
        elif isinstance(value, dict):
            value = _without_measure(value)
        out[key] = value
    return out


@dataclass
class Suite:
    name: str
    description: str
    datasets: list[str]
    models: list[str]
    seeds: list[int]
    data: DataConfig
    budgets: BudgetConfig
    train: TrainConfig
    finetune: dict  # overrides of [train] for the fine-tune phase (validated)
    measure: MeasureConfig
    execution: ExecutionConfig
    methods: list[MethodSpec]
    path: Path | None = None
    overrides: dict = field(default_factory=dict)  # ``--set`` on the command line (``overrides.py``)
    plugins: tuple = ()  # modules the suite file names (``plugins = [...]``), imported before validation
    _dense_configs: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def variant(self) -> str:
        """'' for the suite as written; else a digest of the overrides that change what jobs compute."""
        return digest(self.overrides)

    @property
    def plan_name(self) -> str:
        """The suite's name in a results folder: a quick pass with overrides is a plan of its own."""
        return f"{self.name}+{self.variant}" if self.variant else self.name

    def _with_overrides(self, config: dict) -> dict:
        changing = identity_overrides(self.overrides)
        return config | ({"overrides": changing} if changing else {})

    @staticmethod
    def origins(dataset: str, model: str, method: str) -> dict:
        """The plugins (module, distribution, version or source hash) a job's dataset, model and method
        come from: part of its settings hash and its record. Built-ins: nothing (ids stay as they were)."""
        from baselines.contract import method_origin
        from benchmarks.data.datasets import dataset_origin
        from tissuenet.registry import model_origin

        found = {
            "dataset": dataset_origin(dataset),
            "model": model_origin(model) if ":" not in model else None,
            "method": method_origin(method),
        }
        return {kind: origin.as_dict() for kind, origin in found.items() if origin is not None}

    def phase_settings(self, phase: str, overrides: dict | None = None) -> dict:
        """[train], then [finetune] for the fine-tune phase, then the method's own ``train`` (no epochs)."""
        merged = self.train.to_dict() | (self.finetune if phase == "finetune" else {}) | (overrides or {})
        return {k: v for k, v in merged.items() if k != "epochs"}

    def phase_config(self, phase: str, epochs: int, overrides: dict | None = None) -> TrainConfig:
        return TrainConfig.from_dict(self.phase_settings(phase, overrides) | {"epochs": epochs}, f"[train] ({phase})")

    def dense_config(self, epochs: int) -> dict:
        """What determines a dense checkpoint (shared by every job of a group)."""
        return self._with_overrides(
            {"train": self.phase_settings("dense"), "epochs": epochs, "data": self.data.to_dict()}
        )

    @property
    def suite_hash(self) -> str:
        return stable_hash(
            [
                self.datasets,
                self.models,
                self.seeds,
                self.data.to_dict(),
                self.budgets.to_dict(),
                self.train.to_dict(),
                self.finetune,
                [m.__dict__ | {"targets": [t.__dict__ for t in m.targets]} for m in self.methods],
                *([identity_overrides(self.overrides)] if identity_overrides(self.overrides) else []),
            ]
        )

    def dense_job(
        self, dataset: str, model: str, seed: int, epochs: int | None = None, start: dict | None = None
    ) -> Job:
        """The dense job of a group at a budget (default: the dense budget); with ``start`` (a method's own
        start, ``Method.start``), the dense training with that regularizer (Network Slimming's sparsity run)."""
        epochs = self.budgets.dense_epochs if epochs is None else epochs
        label = "dense" if epochs == self.budgets.dense_epochs else f"dense@e{epochs}"
        key = (dataset, model, epochs)
        if key not in self._dense_configs:  # the same for every seed: computed once (dry runs over 10,000 seeds)
            origins = self.origins(dataset, model, "dense")
            self._dense_configs[key] = {"dense": self.dense_config(epochs)} | ({"plugins": origins} if origins else {})
        config = self._dense_configs[key]
        if start is not None:
            label += f"+{start['name']}-{start['weight']:g}"
            config = config | {"start": start}
        override = None if epochs == self.budgets.dense_epochs else epochs
        return Job(
            self.name,
            dataset,
            model,
            "dense",
            label,
            dict(start or {}),
            Target("none"),
            seed,
            override,
            config,
            {},
            self.overrides,
        )

    def checkpoints(self, job: Job) -> tuple[Job, Job]:
        """(the dense job whose checkpoint ``job`` starts from, the equal-budget dense job it is compared with).
        A dense row starts from its own checkpoint; a method with its own start (``Method.start``) from that."""
        from baselines.contract import get_method

        method = get_method(job.method)
        epochs = method.reference_epochs(self.budgets, job.epochs_override)
        reference = self.dense_job(job.dataset, job.model, job.seed, epochs)
        if job.method == "dense":
            own = self.dense_job(job.dataset, job.model, job.seed, epochs, start=job.options or None)
            return own, reference
        start = self.dense_job(job.dataset, job.model, job.seed, start=method.start(job.options, job.model))
        return start, reference

    def jobs(self) -> list[Job]:
        from baselines.contract import get_method

        dense_hash = stable_hash(self.dense_config(self.budgets.dense_epochs))
        dense_train_hash = stable_hash(_without_measure(self.dense_config(self.budgets.dense_epochs)))
        budgets = self.budgets.to_dict()
        # per method: (spec, method, reference epochs, the job config without its plugins); the same for every seed
        specs = []
        for spec in self.methods:
            if spec.name == "dense":
                specs.append((spec, None, spec.epochs, None))
                continue
            method = get_method(spec.name)
            reference = method.reference_epochs(self.budgets, spec.epochs)
            config = {"dense": dense_hash, "budgets": budgets, "reference": reference}
            specs.append(
                (
                    spec,
                    method,
                    reference,
                    self._with_overrides(config | {"phase": self.phase_settings(method.phase, spec.train)}),
                )
            )
        out: list[Job] = []
        for dataset in self.datasets:
            for model in self.models:
                origins = {spec.name: self.origins(dataset, model, spec.name) for spec, *_ in specs}
                for seed in self.seeds:
                    group = [self.dense_job(dataset, model, seed)]
                    for spec, method, reference, config in specs:
                        if spec.models is not None and model not in spec.models:
                            continue
                        if method is None:  # the group's dense job is always there; epochs: another budget
                            if spec.epochs is not None:
                                group.append(self.dense_job(dataset, model, seed, spec.epochs))
                            continue
                        if reference != self.budgets.dense_epochs:
                            group.append(self.dense_job(dataset, model, seed, reference))
                        own_start = method.start(spec.options, model)
                        if own_start is not None:  # a shared checkpoint of its own (Network Slimming's sparsity run)
                            group.append(self.dense_job(dataset, model, seed, start=own_start))
                        job_config = config | ({"plugins": origins[spec.name]} if origins[spec.name] else {})
                        for target in spec.targets:
                            label = target.job_label(spec.label)
                            group.append(
                                Job(
                                    self.name,
                                    dataset,
                                    model,
                                    spec.name,
                                    label,
                                    spec.options,
                                    target,
                                    seed,
                                    spec.epochs,
                                    job_config,
                                    spec.train,
                                    self.overrides,
                                    dense_train_hash,
                                )
                            )
                    out += list({j.job_id: j for j in group}.values())  # a dense reference once per group
        return out


def stable_hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()
