"""Conformance checks a plugin author calls from their own tests (and ``tests/test_methods.py`` runs over
every registered method, built-in or plugin)::

    from tissuebench.testing import check_method

    def test_my_method():
        check_method("prune_activation")

:func:`check_method` prepares the method on a tiny model and synthetic data, checks that it respects
its target within the tolerance, trains it for one epoch under its phase's settings, saves and reloads
the model file with ``weights_only=True`` (same outputs), and asks it for the dry run's estimate.
A failure raises :class:`ConformanceError` saying which step and why.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch

SYNTHETIC = ("synthetic", 10, 1, 28)  # dataset, classes, channels, input size
TOLERANCE = 0.02  # an achieved reduction or sparsity within 2 points of the target (or the options' tolerance)


class ConformanceError(AssertionError):
    """A method does not follow the contract (``docs/plugins.md``)."""


@dataclass
class Report:
    method: str
    model: str
    target: object
    phase: str
    epochs: int
    achieved: float | None
    estimate: object


def _fail(method: str, step: str, why: str) -> ConformanceError:
    return ConformanceError(f"method {method!r}, {step}: {why}")


def _train_briefly(model, train_loader, test_loader) -> None:
    from benchmarks.run.train import train
    from benchmarks.suites.settings import TrainConfig

    cfg = TrainConfig.from_dict({"epochs": 1, "batch_size": 64, "lr": 0.05, "warmup_epochs": 0})
    train(model, train_loader, test_loader, cfg)


def default_target(method):
    from baselines.contract import Target

    kind = next((k for k in method.targets if k != "none"), "none")
    return Target(kind, 0.5) if kind != "none" else Target("none")


def check_method(name: str, *, model: str = "resnet20", target=None, options: dict | None = None) -> Report:
    """Run the contract's steps on ``model`` (a registered dense backbone) with ``target`` (default: 50 % of
    the method's first target kind, or none) and ``options``; returns what it saw."""
    from baselines.contract import JobContext, MethodError, get_method, list_methods
    from benchmarks.data.datasets import make_loaders
    from benchmarks.run.train import train
    from benchmarks.store.model_files import load_model, model_bytes
    from benchmarks.suites.checks import parse_suite
    from benchmarks.suites.planning import plan_context
    from benchmarks.suites.settings import BudgetConfig
    from tissuenet.counting import count_macs, count_nonzero_params, count_params
    from tissuenet.registry import create_model_for_input

    if name not in list_methods():
        raise ConformanceError(f"method {name!r} is not registered (is its plugin loaded?)")
    method = get_method(name)
    target = target or default_target(method)
    options = dict(getattr(method, "example_options", {})) | dict(options or {})
    dataset, classes, channels, size = SYNTHETIC
    budgets = BudgetConfig.from_dict({"dense_epochs": 1, "finetune_epochs": 1})
    _, train_loader, test_loader = make_loaders(dataset, batch_size=64)
    torch.manual_seed(0)
    dense = create_model_for_input(model, classes, channels, size)
    _train_briefly(dense, train_loader, test_loader)  # methods receive a trained dense checkpoint
    try:
        method.check(options, target)
        method.check_model(model)
    except MethodError as exc:
        raise _fail(name, "validation", f"refuses a tiny {model} with target {target}: {exc}") from exc

    def phase_train(m, epochs, extra_loss=None):
        from benchmarks.suites.settings import TrainConfig

        cfg = TrainConfig.from_dict({"epochs": epochs, "batch_size": 64, "lr": 0.01, "warmup_epochs": 0})
        train(m, train_loader, test_loader, cfg, extra_loss=extra_loss)

    ctx = JobContext(
        dataset=dataset,
        model_name=model,
        num_classes=classes,
        in_channels=channels,
        input_size=size,
        seed=0,
        options=copy.deepcopy(options),
        target=target,
        budgets=budgets,
        device=torch.device("cpu"),
        dense_model=lambda epochs=None: copy.deepcopy(dense),
        train_loader=train_loader,
        train=phase_train,
    )
    try:
        prepared = method.prepare(ctx)
    except Exception as exc:  # noqa: BLE001 - any failure is the finding
        raise _fail(name, "prepare", f"{type(exc).__name__}: {exc}") from exc
    from baselines.contract import PHASES

    if prepared.phase not in PHASES or not isinstance(prepared.epochs, int) or prepared.epochs < 0:
        raise _fail(name, "prepare", f"phase {prepared.phase!r} / epochs {prepared.epochs!r}: phases are {PHASES}")

    # one epoch of each of its phases under the harness's own loop (hooks, finalizers), then the target
    from benchmarks.suites.settings import TrainConfig

    for phase in prepared.training_phases():
        if phase.epochs:
            cfg = TrainConfig.from_dict({"epochs": 1, "batch_size": 64, "lr": 0.01, "warmup_epochs": 0})
            result = train(
                prepared.model, train_loader, test_loader, cfg, extra_loss=prepared.extra_loss, hook=phase.hook
            )
            loss = result.history[-1]["train_loss"]
            if not math.isfinite(loss):
                raise _fail(name, "train", f"loss {loss} after one epoch of its {phase.name} phase")
        elif phase.hook is not None:
            phase.hook.start(prepared.model, 0, 0)
            phase.hook.end(prepared.model)
        if phase.finalize is not None:
            prepared.model = phase.finalize(prepared.model)

    # the target, measured (never copied from what the method says)
    model_ = prepared.model
    achieved = None
    if target.kind == "macs_reduction":
        achieved = 1 - count_macs(model_, channels, size) / count_macs(dense, channels, size)
    elif target.kind == "params_reduction":
        achieved = 1 - count_params(model_) / count_params(dense)
    elif target.kind == "sparsity":
        achieved = 1 - count_nonzero_params(model_) / count_params(model_)
    tolerance = max(TOLERANCE, options.get("tolerance", 0))
    if achieved is not None and abs(achieved - target.value) > tolerance and target.kind != "sparsity":
        raise _fail(name, "target", f"{target.kind} {achieved:.4f} for target {target.value} (tolerance {tolerance})")
    if target.kind == "sparsity" and achieved < target.value - TOLERANCE:  # biases and BN are never masked
        raise _fail(name, "target", f"sparsity {achieved:.4f} for target {target.value}")

    # saved and reloaded with weights_only=True: the same network
    import tempfile
    from pathlib import Path

    from benchmarks.store.files import write_verified

    arch = {"model": model, "num_classes": classes, "in_channels": channels, "input_size": size, "options": {}}
    arch |= prepared.arch or {}
    with tempfile.TemporaryDirectory() as tmp:
        path = write_verified(Path(tmp) / "m.pt", model_bytes(model_, arch))
        try:
            loaded, _ = load_model(path)
        except Exception as exc:  # noqa: BLE001
            raise _fail(name, "save and reload", f"{type(exc).__name__}: {exc}") from exc
    x = torch.randn(2, channels, size, size)
    model_.eval()
    with torch.no_grad():
        if not torch.allclose(model_(x), loaded(x), atol=1e-5):
            raise _fail(name, "save and reload", "the reloaded model computes something else")

    # the dry run's estimate
    suite = parse_suite(
        {
            "name": "conformance",
            "datasets": [dataset],
            "models": [model],
            "seeds": [0],
            "budgets": {"dense_epochs": 1, "finetune_epochs": 1},
            "method": [{"name": "dense"}],
        }
    )
    spec = type("Spec", (), {"options": options, "epochs": None})()
    estimate = method.estimate(plan_context(suite, dataset, model, 0, spec, target))
    if estimate.epochs < 0 or estimate.macs <= 0 or estimate.params <= 0 or estimate.reference_epochs < 1:
        raise _fail(name, "estimate", f"{estimate}: epochs >= 0, MACs and params > 0, reference epochs >= 1")
    return Report(name, model, target, prepared.phase, prepared.epochs, achieved, estimate)
