"""Suites: TOML files that name datasets, models, methods with targets, seeds, budgets, settings.

A suite is validated completely (every dataset, model, method, option, target and setting)
before anything trains, then expanded into jobs with stable ids: the id is a hash of
everything that determines the job's result, so a rerun finds and skips finished jobs.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.data.registry import get_dataset
from benchmarks.methods import Target, check_target, get_method
from benchmarks.train import TrainConfig
from tissuenet.registry import get_entry

SUITES_DIR = Path(__file__).parent / "suites"
TOP_KEYS = {
    "name",
    "description",
    "datasets",
    "models",
    "seeds",
    "data",
    "budgets",
    "train",
    "finetune",
    "measure",
    "method",
}
BUDGET_KEYS = {"dense_epochs", "finetune_epochs", "scratch_epochs"}
DATA_KEYS = {"train_limit", "test_limit"}
MEASURE_KEYS = {"latency", "latency_batches", "min_run_time"}
METHOD_KEYS = {"name", "label", "options", "targets", "epochs", "train"}
TARGET_KINDS = ("macs_reduction", "params_reduction", "sparsity")


class SuiteError(ValueError):
    """The suite file is malformed or names something that does not exist."""


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
    train_overrides: dict = field(default_factory=dict)  # this method's own training settings

    def identity(self) -> dict:
        return {
            "dataset": self.dataset,
            "model": self.model,
            "method": self.method,
            "options": self.options,
            "target": [self.target.kind, self.target.value],
            "seed": self.seed,
            "epochs": self.epochs_override,
            "config": self.config,
            "train": self.train_overrides,
        }

    @property
    def config_hash(self) -> str:
        return stable_hash(self.identity())

    @property
    def job_id(self) -> str:
        """Readable and file-name safe; the hash makes it unique and stable."""
        readable = re.sub(r"[^A-Za-z0-9_.@-]+", "-", f"{self.dataset}.{self.model}.{self.label}.s{self.seed}")
        return f"{readable}.{self.config_hash[:10]}"

    @property
    def group(self) -> tuple:
        """Jobs that share one dense checkpoint."""
        return (self.dataset, self.model, self.seed)


@dataclass
class Suite:
    name: str
    description: str
    datasets: list[str]
    models: list[str]
    seeds: list[int]
    data: dict
    budgets: dict
    train: TrainConfig
    finetune: dict
    measure: dict
    methods: list[dict]
    path: Path | None = None

    def phase_config(self, phase: str, epochs: int, overrides: dict | None = None) -> TrainConfig:
        """[train], then [finetune] for the fine-tune phase, then the method's own ``train``."""
        base = self.train.to_dict() | (self.finetune if phase == "finetune" else {}) | (overrides or {})
        return TrainConfig.from_dict(base | {"epochs": epochs})

    def dense_config(self) -> dict:
        """What determines a dense checkpoint (shared by every baseline of a group)."""
        return {"train": self.phase_config("dense", self.budgets["dense_epochs"]).to_dict(), "data": self.data}

    def jobs(self) -> list[Job]:
        common = {"budgets": self.budgets, "train": self.train.to_dict(), "finetune": self.finetune, "data": self.data}
        out = []
        for dataset in self.datasets:
            for model in self.models:
                for seed in self.seeds:
                    for m in self.methods:
                        for target in m["targets"]:
                            label = m["label"] + (f"@{target.slug()}" if target.kind != "none" else "")
                            job = Job(
                                self.name,
                                dataset,
                                model,
                                m["name"],
                                label,
                                m["options"],
                                target,
                                seed,
                                epochs_override=m.get("epochs"),
                                config=common,
                                train_overrides=m["train"],
                            )
                            out.append(job)
        ids = [j.job_id for j in out]
        dup = {i for i in ids if ids.count(i) > 1}
        if dup:
            raise SuiteError(f"suite {self.name!r} expands to duplicate jobs {sorted(dup)}: give them distinct labels")
        return out


def stable_hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def list_suites() -> list[str]:
    return sorted(p.stem for p in SUITES_DIR.glob("*.toml"))


def load_suite(name_or_path: str) -> Suite:
    path = Path(name_or_path)
    if not path.suffix:
        path = SUITES_DIR / f"{name_or_path}.toml"
        if not path.exists():
            raise SuiteError(
                f"unknown suite {name_or_path!r}; shipped suites: {', '.join(list_suites())}, or give a .toml path"
            )
    if not path.is_file():
        raise SuiteError(f"suite file {path} does not exist")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise SuiteError(f"{path}: not valid TOML: {exc}") from exc
    try:
        suite = parse_suite(raw)
    except SuiteError as exc:
        raise SuiteError(f"{path}: {exc}") from exc
    suite.path = path
    return suite


def _keys(section: dict, allowed: set, where: str) -> None:
    if not isinstance(section, dict):
        raise SuiteError(f"[{where}] must be a table")
    unknown = sorted(set(section) - allowed)
    if unknown:
        raise SuiteError(f"unknown key(s) {unknown} in {where}; allowed: {sorted(allowed)}")


def _list(raw, key, typ) -> list:
    value = raw.get(key)
    if not isinstance(value, list) or not value or not all(isinstance(v, typ) for v in value):
        raise SuiteError(f"'{key}' must be a non-empty list of {typ.__name__}")
    return value


def parse_target(t) -> Target:
    if t in ("none", {}):
        return Target("none")
    if not isinstance(t, dict) or len(t) != 1:
        raise SuiteError(f"a target is a one-key table like {{macs_reduction = 0.5}}, got {t!r}")
    ((kind, value),) = t.items()
    if kind not in TARGET_KINDS:
        raise SuiteError(f"unknown target kind {kind!r}; known: {list(TARGET_KINDS)}")
    if not isinstance(value, (int, float)):
        raise SuiteError(f"target {kind} must be a number, got {value!r}")
    return Target(kind, float(value))


def parse_suite(raw: dict) -> Suite:
    _keys(raw, TOP_KEYS, "the suite")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise SuiteError("'name' (a string) is required")
    datasets, models = _list(raw, "datasets", str), _list(raw, "models", str)
    seeds = _list(raw, "seeds", int)
    for d in datasets:
        try:
            get_dataset(d)
        except Exception as exc:
            raise SuiteError(str(exc)) from exc
    for m in models:
        if ":" in m:  # torchvision:/timm: models are checked when built
            continue
        try:
            get_entry(m)
        except KeyError as exc:
            raise SuiteError(str(exc)) from exc
    data = raw.get("data", {})
    _keys(data, DATA_KEYS, "[data]")
    budgets = raw.get("budgets", {})
    _keys(budgets, BUDGET_KEYS, "[budgets]")
    if set(budgets) != BUDGET_KEYS or not all(isinstance(v, int) and v >= 0 for v in budgets.values()):
        raise SuiteError(f"[budgets] must set {sorted(BUDGET_KEYS)} to integers >= 0 (explicit budgets, always)")
    try:
        train = TrainConfig.from_dict(raw.get("train", {}))
        finetune = raw.get("finetune", {})
        TrainConfig.from_dict(train.to_dict() | finetune)
    except (TypeError, ValueError) as exc:
        raise SuiteError(f"[train]/[finetune]: {exc}") from exc
    measure = {"latency": True, "latency_batches": [1, 64], "min_run_time": 0.2} | raw.get("measure", {})
    _keys(measure, MEASURE_KEYS, "[measure]")
    methods = []
    for i, m in enumerate(raw.get("method", [])):
        _keys(m, METHOD_KEYS, f"[[method]] #{i + 1}")
        if "name" not in m:
            raise SuiteError(f"[[method]] #{i + 1} needs a 'name'")
        try:
            method = get_method(m["name"])
            targets = [parse_target(t) for t in m.get("targets", ["none"])]
            for t in targets:
                check_target(method, t)
                method.check(m.get("options", {}), t)
            for model in models:
                if hasattr(method, "check_model"):
                    method.check_model(model)
        except ValueError as exc:
            raise SuiteError(f"[[method]] #{i + 1} ({m['name']}): {exc}") from exc
        try:
            TrainConfig.from_dict(train.to_dict() | m.get("train", {}))
        except (TypeError, ValueError) as exc:
            raise SuiteError(f"[[method]] #{i + 1} ({m['name']}) train: {exc}") from exc
        methods.append(
            {
                "name": m["name"],
                "label": m.get("label", m["name"]),
                "options": m.get("options", {}),
                "targets": targets,
                "epochs": m.get("epochs"),
                "train": m.get("train", {}),
            }
        )
    if not methods:
        raise SuiteError("a suite needs at least one [[method]]")
    suite = Suite(
        name, raw.get("description", ""), datasets, models, seeds, data, budgets, train, finetune, measure, methods
    )
    suite.jobs()  # duplicate ids are a suite error too
    return suite
