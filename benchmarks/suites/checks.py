"""Validation of a suite file, field by field, before anything trains.

Every problem is one :class:`~benchmarks.suites.suite.SuiteError` line naming the field and what is
allowed. Settings sections go through their typed dataclasses (``config.py``); this module checks
the rest: names that must exist, lists, targets, labels, and jobs that would duplicate each other.
Checks that need the data itself (a batch size larger than the training set) run in the runner's
preflight, also before anything trains.
"""

from __future__ import annotations

import collections

from baselines.contract import TARGET_KINDS, MethodError, PlanContext, Target, check_target, get_method
from benchmarks.store.text import clean_text
from benchmarks.suites.settings import (
    BudgetConfig,
    DataConfig,
    ExecutionConfig,
    MeasureConfig,
    SettingsError,
    TrainConfig,
)
from benchmarks.suites.suite import MethodSpec, Suite, SuiteError
from tissuenet.names import check_name

TOP_KEYS = {
    "plugins",
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
    "execution",
    "method",
}
METHOD_KEYS = {"name", "label", "options", "targets", "epochs", "train", "models"}


def _str_list(raw: dict, key: str) -> list[str]:
    value = raw.get(key)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise SuiteError(f"'{key}' must be a non-empty list of names, got {value!r}")
    if len(set(value)) != len(value):
        raise SuiteError(f"'{key}' lists a name twice: {value}")
    return value


def _seeds(raw: dict) -> list[int]:
    seeds = raw.get("seeds")
    ok = isinstance(seeds, list) and seeds and all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)
    if not ok or any(s < 0 for s in seeds):
        raise SuiteError(f"'seeds' must be a non-empty list of integers >= 0, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise SuiteError(f"'seeds' lists a seed twice: {seeds}")
    return seeds


def _name(raw: dict) -> str:
    try:
        return check_name(raw.get("name"), "suite 'name'")
    except ValueError as exc:
        raise SuiteError(clean_text(exc)) from None


def parse_target(t) -> Target:
    if t in ("none", {}):
        return Target("none")
    if not isinstance(t, dict) or len(t) != 1:
        raise SuiteError(f"a target is a one-key table like {{macs_reduction = 0.5}}, got {t!r}")
    ((kind, value),) = t.items()
    if kind not in TARGET_KINDS:
        raise SuiteError(f"unknown target kind {kind!r}; known: {list(TARGET_KINDS)}")
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise SuiteError(f"target {kind} must be a number, got {value!r}")
    return Target(kind, float(value))


def _method(i: int, m, train: TrainConfig, finetune: dict, models: list[str]) -> MethodSpec:
    where = f"[[method]] #{i}"
    if not isinstance(m, dict):
        raise SuiteError(f"{where} must be a table")
    unknown = sorted(set(m) - METHOD_KEYS)
    if unknown:
        raise SuiteError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(METHOD_KEYS)}")
    if not isinstance(m.get("name"), str):
        raise SuiteError(f"{where} needs a 'name' (a method; see `tissuebench list methods`)")
    where = f"{where} ({m['name']})"
    label = m.get("label", m["name"])
    try:
        check_name(label, "label")
    except ValueError as exc:
        raise SuiteError(f"{where} {clean_text(exc)}") from None
    options, targets_raw, epochs = m.get("options", {}), m.get("targets", ["none"]), m.get("epochs")
    if not isinstance(options, dict):
        raise SuiteError(f"{where} options must be a table, got {options!r}")
    if not isinstance(targets_raw, list) or not targets_raw:
        raise SuiteError(f"{where} targets must be a non-empty list, got {targets_raw!r}")
    if epochs is not None and (not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1):
        raise SuiteError(f"{where} epochs = {epochs!r}: allowed an integer >= 1")
    only = m.get("models")
    if only is not None and (not isinstance(only, list) or not only or not set(only) <= set(models)):
        raise SuiteError(f"{where} models must be a non-empty list of the suite's models {models}, got {only!r}")
    own_train = m.get("train", {})
    if not isinstance(own_train, dict) or "epochs" in own_train:
        raise SuiteError(f"{where} train must be a table of [train] settings (epochs come from the budgets)")
    try:
        method = get_method(m["name"])
        targets = tuple(parse_target(t) for t in targets_raw)
        if len(set(targets)) != len(targets):
            raise SuiteError(f"{where} lists a target twice")
        for t in targets:
            check_target(method, t)
            method.check(options, t)
        for model in only or models:
            method.check_model(model)
        if m["name"] == "dense" and (options or own_train or "label" in m or targets != (Target("none"),)):
            raise SuiteError(f"{where}: the dense reference takes only 'epochs' (its budget)")
        phase = "finetune" if method.phase == "finetune" else "train"
        base = train.to_dict() | (finetune if method.phase == "finetune" else {})
        TrainConfig.from_dict(base | own_train, f"{where} train (over [{phase}])")
    except (MethodError, SettingsError) as exc:
        raise SuiteError(f"{where}: {exc}") from exc
    return MethodSpec(m["name"], label, options, targets, epochs, own_train, tuple(only) if only else None)


def parse_suite(raw: dict, overrides: dict | None = None) -> Suite:
    from benchmarks.data.datasets import get_dataset
    from tissuenet.registry import get_entry

    unknown = sorted(set(raw) - TOP_KEYS)
    if unknown:
        raise SuiteError(f"unknown key(s) {unknown} in the suite; allowed: {sorted(TOP_KEYS)}")
    name = _name(raw)
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise SuiteError("'description' must be a string")
    datasets, models, seeds = _str_list(raw, "datasets"), _str_list(raw, "models"), _seeds(raw)
    for d in datasets:
        try:
            get_dataset(d)
        except Exception as exc:  # noqa: BLE001 - the registry's message names the known datasets
            raise SuiteError(str(exc)) from exc
    for m in models:
        if ":" not in m:  # torchvision:/timm: models are checked when built
            try:
                get_entry(m)
            except KeyError as exc:
                raise SuiteError(str(exc)) from exc
    if isinstance(raw.get("train"), dict) and "epochs" in raw["train"]:
        raise SuiteError("[train] epochs: epochs come from [budgets] (dense_epochs, finetune_epochs, scratch_epochs)")
    train = TrainConfig.from_dict(raw.get("train", {}))
    finetune = raw.get("finetune", {})
    if not isinstance(finetune, dict) or "epochs" in finetune:
        raise SuiteError("[finetune] must be a table of [train] settings (epochs come from [budgets])")
    TrainConfig.from_dict(train.to_dict() | finetune, "[finetune]")
    budgets = BudgetConfig.from_dict(raw.get("budgets"), "[budgets]")
    if not isinstance(raw.get("method", []), list):
        raise SuiteError("[[method]] entries must be an array of tables")
    methods = [_method(i, m, train, finetune, models) for i, m in enumerate(raw.get("method", []), start=1)]
    if not methods:
        raise SuiteError("a suite needs at least one [[method]]")
    data = DataConfig.from_dict(raw.get("data"))
    if data.input_size is not None:
        stored = [d for d in datasets if get_dataset(d).resident]
        if stored:
            raise SuiteError(
                f"[data] input_size = {data.input_size}: only image-folder datasets are resized; {stored[0]} is "
                f"used at its stored {get_dataset(stored[0]).input_size} px"
            )
    suite = Suite(
        name,
        description,
        datasets,
        models,
        seeds,
        data,
        budgets,
        train,
        finetune,
        MeasureConfig.from_dict(raw.get("measure")),
        ExecutionConfig.from_dict(raw.get("execution")),
        methods,
        overrides=dict(overrides or {}),
    )
    check_jobs(suite)
    return suite


def check_jobs(suite: Suite) -> None:
    """Labels unique; warm-up within each phase; no two labels that are the same network and training."""
    try:
        suite.phase_config("dense", suite.budgets.dense_epochs)
    except SettingsError as exc:
        raise SuiteError(f"the dense phase: {exc}") from exc
    labels: dict[str, int] = {}
    for i, spec in enumerate(suite.methods, start=1):
        if spec.label in labels:
            raise SuiteError(
                f"label {spec.label!r} is used by [[method]] #{labels[spec.label]} and #{i}: "
                "give each method its own label"
            )
        labels[spec.label] = i
        method = get_method(spec.name)
        if method.phase != "dense":
            for epochs in {method.reference_epochs(suite.budgets, spec.epochs), spec.epochs or 0} - {0}:
                try:
                    suite.phase_config(method.phase, epochs, spec.train)
                except SettingsError as exc:
                    raise SuiteError(f"[[method]] #{i} ({spec.label}): {exc}") from exc
    counts = collections.Counter(j.job_id for j in suite.jobs())
    dup = sorted(i for i, n in counts.items() if n > 1)
    if dup:
        raise SuiteError(f"suite {suite.name!r} expands to duplicate jobs {dup}: give them distinct labels")
    _same_architecture(suite)


def _same_architecture(suite: Suite) -> None:
    """Two labels that build the same network with the same training are one job twice."""
    from benchmarks.suites.planning import plan_context

    for dataset in suite.datasets:
        for model in suite.models:
            seen: dict = {}
            for spec in suite.methods:
                if spec.models is not None and model not in spec.models:
                    continue
                method = get_method(spec.name)
                for target in spec.targets:
                    plan = plan_context(suite, dataset, model, suite.seeds[0], spec, target)
                    key = (method.name, _key(method, plan), spec.epochs, repr(sorted(spec.train.items())))
                    label = target.job_label(spec.label)
                    if key in seen:
                        raise SuiteError(
                            f"'{seen[key]}' and '{label}' are the same architecture with the same "
                            f"training on {model}: drop one or change it"
                        )
                    seen[key] = label


def _key(method, plan: PlanContext):
    try:
        return method.architecture_key(plan)
    except MethodError as exc:
        raise SuiteError(str(exc)) from exc
