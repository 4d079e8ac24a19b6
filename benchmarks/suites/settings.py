"""Every settings section of a suite as a typed dataclass: ``[train]`` (and ``[finetune]`` over it), ``[data]``,
``[budgets]``, ``[measure]``, ``[execution]``. Defaults, units, allowed values and validation live here only;
like airbench's one ``hyp`` dict, each value says its unit in its doc string.

A section is a frozen dataclass whose fields carry their rules in ``metadata``:
``check(field: rule)`` with ``min``/``max``/``choices``/``below`` and a one-line ``doc``.
``Section.from_dict(raw, where)`` rejects unknown keys, wrong types and values out of range with
one line naming the section, the field and what is allowed (:class:`SettingsError`). The
suite file's ``[train]``, ``[finetune]``, ``[data]``, ``[budgets]``, ``[measure]`` and
``[execution]`` tables all go through it, so "bad input stops before anything trains" holds
for every field.
"""

from __future__ import annotations

import math
import types
import typing
from dataclasses import MISSING, asdict, dataclass, field, fields


class SettingsError(ValueError):
    """A setting has the wrong type, is out of range, or does not exist."""


def setting(default=MISSING, *, doc: str, min=None, max=None, above=None, below=None, choices=None, item_min=None):  # noqa: A002
    """A dataclass field with its rule: ``min <= v <= max``, ``above < v < below``, ``v in choices``."""
    rule = {
        "doc": doc,
        "min": min,
        "max": max,
        "above": above,
        "below": below,
        "choices": choices,
        "item_min": item_min,
    }
    if isinstance(default, (list, dict, set)):
        raise TypeError("use tuples for sequence defaults (settings are frozen)")
    return field(default=default, metadata=rule)


def _type_ok(value, hint) -> bool:
    origin = typing.get_origin(hint)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint in (bool, str):
        return isinstance(value, hint)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if origin is tuple:
        (item, _ellipsis) = typing.get_args(hint)
        return isinstance(value, (list, tuple)) and all(_type_ok(v, item) for v in value)
    return True


def _type_name(hint) -> str:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(h) for h in typing.get_args(hint))
    if origin is tuple:
        return f"a list of {_type_name(typing.get_args(hint)[0])}"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string", type(None): "absent"}.get(
        hint, str(hint)
    )


def _allowed(rule: dict) -> str:
    parts = []
    if rule["choices"] is not None:
        parts.append("one of " + ", ".join(map(repr, rule["choices"])))
    if rule["min"] is not None:
        parts.append(f">= {rule['min']}")
    if rule["max"] is not None:
        parts.append(f"<= {rule['max']}")
    if rule["above"] is not None:
        parts.append(f"> {rule['above']}")
    if rule["below"] is not None:
        parts.append(f"< {rule['below']}")
    if rule["item_min"] is not None:
        parts.append(f"each >= {rule['item_min']}")
    return " and ".join(parts)


@dataclass(frozen=True)
class Section:
    """Base of every settings section (see the module docstring)."""

    SECTION: typing.ClassVar[str] = ""

    @classmethod
    def from_dict(cls, raw: dict | None, where: str | None = None):
        where = where or f"[{cls.SECTION}]"
        raw = {} if raw is None else raw
        if not isinstance(raw, dict):
            raise SettingsError(f"{where} must be a table of settings, got {raw!r}")
        hints = typing.get_type_hints(cls)
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(raw) - set(known))
        if unknown:
            raise SettingsError(f"{where}: unknown setting(s) {unknown}; known: {sorted(known)}")
        missing = [n for n, f in known.items() if f.default is MISSING and n not in raw]
        if missing:
            raise SettingsError(f"{where}: {', '.join(missing)} must be set")
        values = {}
        for name, value in raw.items():
            hint, rule = hints[name], known[name].metadata
            if not _type_ok(value, hint):
                raise SettingsError(f"{where} {name} = {value!r}: must be {_type_name(hint)}")
            if isinstance(value, list):
                value = tuple(value)
            _check_range(where, name, value, rule)
            values[name] = value
        obj = cls(**values)
        obj.validate(where)
        return obj

    def validate(self, where: str) -> None:
        """Cross-field rules of a section (override)."""

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def updated(self, changes: dict, where: str):
        """A copy with ``changes`` applied, validated like a parsed section."""
        return type(self).from_dict(self.to_dict() | dict(changes), where)

    @classmethod
    def describe(cls) -> list[tuple[str, object, str]]:
        """(name, default, doc) of every field: for the README and ``--help`` texts."""
        return [(f.name, None if f.default is MISSING else f.default, f.metadata.get("doc", "")) for f in fields(cls)]


def _check_range(where: str, name: str, value, rule: dict) -> None:
    if not rule:
        return
    bad = False
    if isinstance(value, float) and not math.isfinite(value):
        bad = True
    if rule.get("choices") is not None and value not in rule["choices"]:
        bad = True
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if rule.get("min") is not None and value < rule["min"]:
            bad = True
        if rule.get("max") is not None and value > rule["max"]:
            bad = True
        if rule.get("above") is not None and value <= rule["above"]:
            bad = True
        if rule.get("below") is not None and value >= rule["below"]:
            bad = True
    if isinstance(value, tuple) and rule.get("item_min") is not None:
        if not value or any(v < rule["item_min"] for v in value):
            bad = True
    if bad:
        raise SettingsError(f"{where} {name} = {value!r}: allowed {_allowed(rule) or 'finite values'}")


# Latency: a timing is trusted only with at least this many samples over at least this long.
MIN_LATENCY_SAMPLES = 10
MIN_LATENCY_SECONDS = 0.5


@dataclass(frozen=True)
class TrainConfig(Section):
    SECTION = "train"
    epochs: int = setting(10, min=0, doc="epochs of this phase (set by the budgets; 0: nothing to train)")
    batch_size: int = setting(128, min=1, doc="images per optimizer step")
    optimizer: str = setting("sgd", choices=("sgd", "adam"), doc="optimizer")
    lr: float = setting(0.1, above=0, doc="peak learning rate (per step, not scaled by batch size)")
    momentum: float = setting(0.9, min=0, below=1, doc="SGD momentum")
    nesterov: bool = setting(False, doc="Nesterov momentum (needs momentum > 0)")
    weight_decay: float = setting(5e-4, min=0, doc="L2 weight decay")
    adam_eps: float = setting(1e-8, above=0, doc="Adam epsilon")
    label_smoothing: float = setting(0.0, min=0, below=1, doc="label smoothing of the cross-entropy")
    warmup_epochs: float = setting(0.0, min=0, doc="epochs of linear warm-up, then cosine decay to zero")
    schedule: str = setting("cosine", choices=("cosine", "constant"), doc="learning-rate schedule after warm-up")
    bf16: bool = setting(False, doc="train under bfloat16 autocast (evaluation is always fp32)")
    channels_last: bool = setting(False, doc="NHWC memory format for training")
    compile: str = setting(
        "none", choices=("none", "default", "reduce-overhead"), doc="torch.compile mode (reduce-overhead: CUDA graphs)"
    )
    grad_clip: float = setting(0.0, min=0, doc="clip the gradient norm to this (0: off)")

    def validate(self, where: str) -> None:
        if self.nesterov and self.momentum == 0:
            raise SettingsError(f"{where} nesterov = true needs momentum > 0")
        if self.epochs and self.warmup_epochs > self.epochs:
            raise SettingsError(f"{where} warmup_epochs = {self.warmup_epochs} is longer than epochs = {self.epochs}")


@dataclass(frozen=True)
class DataConfig(Section):
    SECTION = "data"
    train_limit: int | None = setting(
        None, min=1, doc="use N training images (absent: all; image folders: N spread over the classes)"
    )
    test_limit: int | None = setting(None, min=1, doc="use the first N test images (absent: all)")
    input_size: int | None = setting(
        None,
        min=8,
        max=1024,
        doc="resolution (pixels) for streamed image-folder datasets, e.g. ImageNet at 64 for a quick pass "
        "(absent: the dataset's own)",
    )
    workers: int = setting(
        4, min=0, max=256, doc="DataLoader worker processes for streamed image folders (0: read in the main process)"
    )
    skip_unreadable: bool = setting(
        False,
        doc="image folders: leave out images that do not decode (each record counts them) instead of stopping "
        "before training with their list",
    )

    def size_of(self, info) -> int:
        """The resolution a dataset is trained and evaluated at under these settings."""
        return self.input_size if self.input_size and not info.resident else info.input_size


@dataclass(frozen=True)
class BudgetConfig(Section):
    SECTION = "budgets"
    dense_epochs: int = setting(doc="epochs of the dense model (the checkpoint every baseline starts from)")
    finetune_epochs: int = setting(doc="fine-tuning epochs after pruning (structured and unstructured)")
    scratch_epochs: int | None = setting(
        None, min=1, doc="epochs of TissueNet and other from-scratch models (absent: dense_epochs, equal budgets)"
    )

    def validate(self, where: str) -> None:
        for name in ("dense_epochs", "finetune_epochs"):
            if getattr(self, name) < 1:
                raise SettingsError(f"{where} {name} = {getattr(self, name)}: allowed >= 1")

    @property
    def scratch(self) -> int:
        return self.dense_epochs if self.scratch_epochs is None else self.scratch_epochs

    def epochs(self, phase: str) -> int:
        """The budget of a phase: ``dense``, ``finetune`` or ``scratch``."""
        return {"dense": self.dense_epochs, "finetune": self.finetune_epochs, "scratch": self.scratch}[phase]


@dataclass(frozen=True)
class MeasureConfig(Section):
    SECTION = "measure"
    latency: bool = setting(True, doc="measure latency (off: cost and accuracy only)")
    latency_batches: tuple[int, ...] = setting(
        (1, 64), item_min=1, doc="batch sizes timed: the first is the reported latency, the last the throughput batch"
    )
    min_run_time: float = setting(
        MIN_LATENCY_SECONDS, min=MIN_LATENCY_SECONDS, max=60, doc="seconds of timed runs per model and batch size"
    )
    min_samples: int = setting(
        MIN_LATENCY_SAMPLES, min=MIN_LATENCY_SAMPLES, max=10_000, doc="timed samples per model and batch size"
    )
    deploy: bool = setting(True, doc="time the deployment form (BN folded, channels_last, fast kernels)")
    threads: int | None = setting(None, min=1, doc="CPU threads while timing (absent: torch's current setting)")
    runtimes: tuple[str, ...] = setting(
        ("auto",),
        doc="runtimes each model is timed on, paired with the dense model on the same one: eager, deploy, "
        "onnxruntime, openvino (CPU), compile, tensorrt (CUDA); auto: the device's (benchmarks/measure/runtimes.py)",
    )

    def validate(self, where: str) -> None:
        if len(self.latency_batches) > 2:
            raise SettingsError(f"{where} latency_batches: at most two sizes (latency, throughput)")
        from benchmarks.measure.runtime_table import RUNTIMES

        unknown = [r for r in self.runtimes if r != "auto" and r not in RUNTIMES]
        if unknown or not self.runtimes:
            raise SettingsError(f"{where} runtimes = {list(self.runtimes)}: allowed auto, {', '.join(RUNTIMES)}")


@dataclass(frozen=True)
class ExecutionConfig(Section):
    SECTION = "execution"
    executor: str = setting("local", choices=("local", "ray"), doc="local: one process, jobs in order; ray: a cluster")
    address: str | None = setting(None, doc="Ray address (auto, HOST:PORT); absent: start a local Ray instance")
    gpus_per_job: float = setting(0.0, min=0, max=8, doc="GPUs per job (fractions pack jobs onto one GPU)")
    cpus_per_job: int = setting(1, min=1, max=256, doc="CPU threads per job (per worker, with workers_per_job)")
    workers_per_job: int = setting(
        1,
        min=1,
        max=1024,
        doc="workers one job trains on, data parallel through Ray Train (one device each; the batch is split)",
    )
    max_concurrent: int | None = setting(None, min=1, doc="jobs running at once (absent: as resources allow)")
    max_retries: int = setting(2, min=0, max=100, doc="retries of a job whose worker died")
