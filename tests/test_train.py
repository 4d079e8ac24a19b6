"""The training loop: schedule, divergence, resume from a mid-run checkpoint."""

import os
import subprocess
import sys

import pytest
import torch

from benchmarks.data.datasets import make_loaders
from benchmarks.run.train import DivergedError, evaluate, lr_lambda, train
from benchmarks.suites.settings import SettingsError, TrainConfig
from tissuenet import create_model


def _setup(seed=0):
    torch.manual_seed(seed)
    model = create_model("mlp", in_channels=1)
    _, tr, te = make_loaders("synthetic", batch_size=64, seed=seed)
    return model, tr, te


def test_warmup_then_cosine():
    f = lr_lambda(TrainConfig(epochs=10, warmup_epochs=1), steps_per_epoch=10)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0) and f(55) == pytest.approx(0.5) and f(100) == pytest.approx(0.0)


def test_learns_the_synthetic_task():
    model, tr, te = _setup()
    before = evaluate(model, te)["top1"]
    result = train(model, tr, te, TrainConfig(epochs=3, lr=0.05))
    assert len(result.history) == 3 and result.history[-1]["test_top1"] > max(50, before + 30)
    assert {"train_loss", "test_loss", "test_top1", "test_top5"} <= set(result.history[0])


def test_divergence_raises():
    model, tr, te = _setup()
    with pytest.raises(DivergedError, match="nan|inf"):
        train(model, tr, te, TrainConfig(epochs=2, lr=1e12, weight_decay=0))


def test_resume_equals_uninterrupted(tmp_path):
    cfg = TrainConfig(epochs=3, lr=0.05)
    model, tr, te = _setup()
    reference = train(model, tr, te, cfg)

    class Killed(Exception):
        pass

    def kill_after_two(epoch, row):
        if epoch == 2:
            raise Killed

    model, tr, te = _setup()
    with pytest.raises(Killed):
        train(model, tr, te, cfg, checkpoint=tmp_path / "state.pt", progress=kill_after_two)
    model, tr, te = _setup(seed=0)
    torch.manual_seed(123)  # the resumed run must not depend on fresh initialisation
    resumed = train(model, tr, te, cfg, checkpoint=tmp_path / "state.pt")
    assert [r["test_top1"] for r in resumed.history] == [r["test_top1"] for r in reference.history]
    assert [r["train_loss"] for r in resumed.history] == [r["train_loss"] for r in reference.history]


@pytest.mark.parametrize(
    "bad,message",
    [
        ({"optimizer": "lion"}, "optimizer = 'lion': allowed one of 'sgd', 'adam'"),
        ({"lr": 0}, "lr = 0: allowed > 0"),
        ({"bogus": 1}, "unknown setting(s) ['bogus']"),
        ({"compile": "max"}, "compile = 'max'"),
        ({"momentum": 1.0}, "momentum = 1.0: allowed >= 0 and < 1"),
        ({"epochs": "abc"}, "epochs = 'abc': must be an integer"),
        ({"nesterov": True, "momentum": 0.0}, "nesterov = true needs momentum > 0"),
    ],
)
def test_bad_settings(bad, message):
    with pytest.raises(SettingsError) as info:
        TrainConfig.from_dict(bad)
    assert message in str(info.value) and str(info.value).startswith("[train]")


def test_the_last_epochs_checkpoint_holds_no_optimizer_state_and_resumes_without_training(tmp_path):
    """After the last epoch no step follows: the resume file keeps the model and the result, not the optimizer
    (Adam's state is twice the model); a job killed while it is measured resumes from it without training. A
    file of an unfinished run that lacks the optimizer's state is damaged: set aside, training starts over."""
    cfg = TrainConfig(epochs=2, lr=0.05)
    model, tr, te = _setup()
    reference = train(model, tr, te, cfg, checkpoint=tmp_path / "state.pt")
    state = torch.load(tmp_path / "state.pt", weights_only=True)
    assert set(state) == {"format", "model", "result", "hook"}
    resumed_model, tr, te = _setup(seed=1)
    resumed = train(resumed_model, tr, te, cfg, checkpoint=tmp_path / "state.pt")
    assert resumed.history == reference.history and resumed.wall_s == reference.wall_s  # nothing trained again
    assert all(torch.equal(a, b) for a, b in zip(resumed_model.state_dict().values(), model.state_dict().values()))

    longer = TrainConfig(epochs=3, lr=0.05)  # the same file read by a run with an epoch left: no optimizer state
    aside = []
    model, tr, te = _setup()
    result = train(model, tr, te, longer, checkpoint=tmp_path / "state.pt", set_aside=aside.append)
    assert len(aside) == 1 and "optimizer" in str(aside[0]) and len(result.history) == 3


NARROW_SHORTCUT = """
import sys, torch
from torch import nn
torch.set_num_threads(1)
from benchmarks.data.datasets import make_loaders
from benchmarks.run import train as training
from benchmarks.suites.settings import TrainConfig
if sys.argv[1] == "unguarded":
    training.guard_narrow_strided_1x1 = lambda model: []
torch.manual_seed(0)
# a ResNet stage pruned down to 3 channels, then its 1x1 stride-2 shortcut (the shape that was found)
model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(), nn.Conv2d(3, 16, 1, stride=2),
                      nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))
before = model[3].weight.detach().clone()
_, tr, te = make_loaders("synthetic", batch_size=8, train_limit=256, test_limit=64, channels_last=True)
training.train(model, tr, te, TrainConfig(epochs=2, batch_size=8, lr=0.05, channels_last=True))
assert not model[3]._forward_pre_hooks, "the guard outlived training"
assert not torch.equal(model[3].weight, before)
print("trained")
"""


def test_a_narrow_strided_1x1_convolution_trains_in_channels_last_on_one_thread():
    """oneDNN's strided 1x1 convolution corrupts the heap computing the weight gradient from a channels-last input
    with fewer input channels than its block (oneDNN issue 6035; torch 2.14): a pruned ResNet's 3-channel shortcut
    crashed CI's quick pass this way, and this script without the guard (``unguarded``) dies of SIGSEGV / SIGABRT
    on an AVX2 machine (AMD EPYC, measured). With the guard it trains, and the guard is gone afterwards. In a
    subprocess: heap corruption takes the process."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-c", NARROW_SHORTCUT, "guarded"], env=env, capture_output=True, text=True)
    assert run.returncode == 0 and "trained" in run.stdout, run.stderr[-2000:]
