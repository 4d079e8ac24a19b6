"""The settings sections of a suite: ``[train]`` (and ``[finetune]`` over it), ``[data]``,
``[budgets]``, ``[measure]``, ``[execution]``. Defaults, units and allowed values live here only.

Like airbench's one ``hyp`` dict, each value says its unit in its doc string.
"""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks.suites.settings import Section, SettingsError, setting

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
        from benchmarks.measure.runtimes import RUNTIMES

        unknown = [r for r in self.runtimes if r != "auto" and r not in RUNTIMES]
        if unknown or not self.runtimes:
            raise SettingsError(f"{where} runtimes = {list(self.runtimes)}: allowed auto, {', '.join(RUNTIMES)}")


@dataclass(frozen=True)
class ExecutionConfig(Section):
    SECTION = "execution"
    executor: str = setting("local", choices=("local", "ray"), doc="local: one process, jobs in order; ray: a cluster")
    address: str | None = setting(None, doc="Ray address (auto, HOST:PORT); absent: start a local Ray instance")
    gpus_per_job: float = setting(0.0, min=0, max=8, doc="GPUs per job (fractions pack jobs onto one GPU)")
    cpus_per_job: int = setting(1, min=1, max=256, doc="CPU threads per job")
    max_concurrent: int | None = setting(None, min=1, doc="jobs running at once (absent: as resources allow)")
    max_retries: int = setting(2, min=0, max=100, doc="retries of a job whose worker died")


SECTIONS = {c.SECTION: c for c in (TrainConfig, DataConfig, BudgetConfig, MeasureConfig, ExecutionConfig)}
