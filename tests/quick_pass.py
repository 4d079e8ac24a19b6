"""The ``--set`` overrides that shrink any shipped suite to a few optimisation steps per job.

Derived from the suite file, so a new suite gets its quick pass the moment it is added: every
budget to one epoch, no warm-up, 16 training images in batches of 8 (two steps an epoch), 16 test
images, no latency, one epoch for a method's own ``epochs``, image folders at 32 px read in the main
process, 20 pruning steps instead of 200 (each still lands within the target's tolerance: a last
step that overshoots is replayed channel by channel), PFEC's sensitivity on 16 images. ``one_target``
keeps one target per method: every dataset, model and method of the suite still runs, in a time CI affords.
"""

from __future__ import annotations

import json

from baselines.contract import MethodError, get_method
from benchmarks.data.datasets import get_dataset
from benchmarks.suites.checks import parse_target
from benchmarks.suites.load import read_suite_toml, suite_path

BATCH, TRAIN_IMAGES, TEST_IMAGES, FOLDER_PX, PRUNING_STEPS = 8, 16, 16, 32, 20


def _accepts(method: dict, option: str, value) -> bool:
    """Whether the method validates ``option`` (the method's own rules decide, not a list here)."""
    target = parse_target((method.get("targets") or ["none"])[0])
    try:
        get_method(method["name"]).check(method.get("options", {}) | {option: value}, target)
    except MethodError:
        return False
    return True


def _toml(value) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(value)


def quick_overrides(name: str, *, one_target: bool = False) -> list[str]:
    raw = read_suite_toml(suite_path(name))
    sets = [
        "budgets.dense_epochs=1",
        "budgets.finetune_epochs=1",
        "train.warmup_epochs=0",
        f"train.batch_size={BATCH}",
        f"data.train_limit={TRAIN_IMAGES}",
        f"data.test_limit={TEST_IMAGES}",
        "measure.latency=false",
    ]
    if "scratch_epochs" in raw.get("budgets", {}):
        sets.append("budgets.scratch_epochs=1")
    if "warmup_epochs" in raw.get("finetune", {}):
        sets.append("finetune.warmup_epochs=0")
    if "batch_size" in raw.get("finetune", {}):
        sets.append(f"finetune.batch_size={BATCH}")
    if any(not get_dataset(d).resident for d in raw["datasets"]):
        sets += [f"data.input_size={FOLDER_PX}", "data.workers=0"]  # 16 images: a worker pool costs more than it saves
    for method in raw.get("method", []):
        label = method.get("label", method["name"])
        if "epochs" in method:
            sets.append(f"method.{label}.epochs=1")
        for key in ("warmup_epochs", "batch_size"):
            if key in method.get("train", {}):
                sets.append(f"method.{label}.train.{key}={0 if key == 'warmup_epochs' else BATCH}")
        for option, value in (
            ("steps", PRUNING_STEPS),
            ("sensitivity_images", TRAIN_IMAGES),
        ):
            if _accepts(method, option, value):
                sets.append(f"method.{label}.options.{option}={value}")
        if one_target and len(method.get("targets", [])) > 1:
            middle = method["targets"][len(method["targets"]) // 2]
            sets.append(f"method.{label}.targets=[{_toml(middle)}]")
    if one_target and len(raw["seeds"]) > 1:
        sets.append(f"seeds=[{raw['seeds'][0]}]")
    return [arg for s in sets for arg in ("--set", s)]
