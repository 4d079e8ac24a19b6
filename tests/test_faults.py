"""Fault injection, rounds 1 and 2: damaged, hostile and wrong inputs, full and read-only disks, interrupts.

Each case runs through ``tests/fault_harness.py`` (exit code, message, nothing stored damaged).
"""

from __future__ import annotations

import errno
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO
from tests.fault_harness import GOOD_REF, PWNED, Case, Ctx, Planted, plant, run_case
from tissuebench.cli import main


def _bad_suite(old: str, new: str, message: str) -> Case:
    return Case(["run", "{tmp}/bad.toml"], 2, message, setup=lambda c: c.replace_in_suite(old, new))


def _bad_extra(extra: str, message: str) -> Case:
    return Case(["run", "{tmp}/bad.toml"], 2, message, setup=lambda c: c.suite_with(extra=extra))


def _method_suite(methods: str, message: str) -> Case:
    return Case(["run", "{tmp}/bad.toml"], 2, message, setup=lambda c: c.suite_with(methods=methods))


def _write(path_fn, data: bytes):
    def setup(c: Ctx):
        path_fn(c).write_bytes(data)

    return setup


def _dense_ckpt(c: Ctx) -> Path:
    (path,) = [p for p in (c.results / "checkpoints" / "dense").glob("*.pt") if not p.name.endswith(".partial.pt")]
    return path


def _replace_dense_with_partial(c: Ctx) -> None:
    """A planted resume file instead of the finished checkpoint (the checkpoint's path is read once:
    after planting, a glob over the folder would also match the partial file)."""
    dense = _dense_ckpt(c)
    plant(dense.with_suffix(".partial.pt"), c.marker)
    dense.unlink()
    dense.with_name(dense.name + ".sha256").unlink()
    c.record().unlink()
    c.record("tissuenet").unlink()


def _no_code_ran(c: Ctx) -> None:
    assert not c.marker.exists(), "a planted pickle ran code"


def _redone(c: Ctx) -> None:
    """The run redid the damaged job: every job of the suite has an ok record again."""
    import json

    recs = [json.loads(p.read_text()) for p in (c.results / "records").glob("*.json")]
    assert len(recs) == 2 and all(r["status"] == "ok" for r in recs)
    _no_code_ran(c)


def _reference(c: Ctx, text: str) -> Path:
    path = c.tmp / "ref.csv"
    path.write_text(text)
    return path


def _ref(text: str):
    def setup(c: Ctx):
        job = c.record().stem
        _reference(c, text.format(job=job))

    return setup


def _no_tmp_left(c: Ctx) -> None:
    assert not [p for p in c.results.rglob("*.tmp")], "temporary files were left behind"


# -- issue 19: a results folder is input; silent corruption; quarantine under concurrency; data ------------
SECRET = "tissuebench-secret-do-not-publish"


def _victim(c: Ctx) -> Path:
    """A user's file outside the results folder that planted links point at."""
    path = c.tmp / "victim.txt"
    if not path.exists():
        path.write_text(SECRET + "\n")
    return path


def _victim_intact(c: Ctx) -> None:
    assert _victim(c).read_text() == SECRET + "\n", "a planted link let the tool write outside the results folder"


def _why_link_to_victim(c: Ctx) -> None:
    """A damaged record whose reason file name is already a link to the user's file."""
    record = c.record()
    record.write_bytes(b'{"job_id": "x')
    why = c.results / "quarantine" / "records" / (record.name + ".why.txt")
    why.parent.mkdir(parents=True)
    why.symlink_to(_victim(c))


def _leak_link(c: Ctx) -> None:
    (c.results / "quarantine").mkdir(exist_ok=True)
    (c.results / "quarantine" / "leak.why.txt").symlink_to(_victim(c))


def _not_leaked(c: Ctx) -> None:
    for path in c.results.rglob("*"):
        if path.is_file() and not path.is_symlink() and path.suffix in (".html", ".json", ".csv", ".md", ".txt"):
            assert SECRET not in path.read_text(errors="replace"), f"{path} publishes a file the tool did not write"
    for path in (c.tmp / "rep").rglob("*") if (c.tmp / "rep").exists() else []:
        if path.is_file() and path.suffix in (".html", ".json"):
            assert SECRET not in path.read_text(errors="replace"), f"{path} publishes a file the tool did not write"


def _records_link(c: Ctx) -> None:
    """records/ replaced by a link to a user's folder holding a JSON file the tool would call damaged."""
    user = c.tmp / "user-folder"
    user.mkdir()
    (user / "notes.json").write_text("[1, 2, 3]")
    shutil.rmtree(c.results / "records")
    (c.results / "records").symlink_to(user)


def _user_folder_intact(c: Ctx) -> None:
    assert (c.tmp / "user-folder" / "notes.json").read_text() == "[1, 2, 3]"


def _report_link(c: Ctx) -> None:
    user = c.tmp / "user-site"
    user.mkdir()
    (user / "index.html").write_text("<p>my page</p>")
    (c.results / "report").symlink_to(user)


def _site_intact(c: Ctx) -> None:
    assert (c.tmp / "user-site" / "index.html").read_text() == "<p>my page</p>"


def _flip_one_byte(path_fn):
    def setup(c: Ctx):
        path = path_fn(c)
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01  # inside a tensor's bytes: torch.load alone would not notice
        path.write_bytes(bytes(data))

    return setup


def _other_dense_weights(c: Ctx) -> None:
    import json

    path = c.record("tissuenet")
    rec = json.loads(path.read_text())
    rec["dense_weights_sha256"] = "0" * 64
    path.write_text(json.dumps(rec))


def _bad_why_files(c: Ctx) -> None:
    folder = c.results / "quarantine" / "records"
    folder.mkdir(parents=True)
    (folder / "a.json").write_text("{}")
    (folder / "a.json.why.txt").write_bytes(b"\xff\xfe\x1b[31m not UTF-8 \x00")
    (folder / "b.json").write_text("{}")
    (folder / "b.json.why.txt").mkdir()  # a folder with a reason file's name


def _stale_leftovers(c: Ctx) -> None:
    """What a SIGKILL at a rename point leaves: a temporary of a dead process, a finished job's resume state."""
    (c.results / "records" / ".x.json.999999999.tmp").write_text("{")
    jobs = c.results / "checkpoints" / "jobs"
    jobs.mkdir(parents=True, exist_ok=True)
    (jobs / (c.record().stem + ".pt")).write_bytes(b"resume state of a finished job")


def _leftovers_gone(c: Ctx) -> None:
    assert not (c.results / "records" / ".x.json.999999999.tmp").exists()
    assert not list((c.results / "checkpoints" / "jobs").glob("*.pt"))


def _idx_data(c: Ctx, **change) -> None:
    from tests.helpers import write_idx, write_mnist_like

    folder = c.tmp / "data"
    write_mnist_like(folder, n_train=128, n_test=32, compress=False)
    for name, array in change.items():
        write_idx(folder / name, array, compress=False)


def _truncated_header(c: Ctx) -> None:
    _idx_data(c)
    (c.tmp / "data" / "t10k-labels-idx1-ubyte").write_bytes(bytes([0, 0, 8, 1, 0, 0]))


CASES = {
    # -- 1. settings: every field checked before anything trains ---------------------------------------
    "epochs -1": _bad_suite("dense_epochs = 2", "dense_epochs = -1", "[budgets] dense_epochs = -1: allowed >= 1"),
    "epochs abc": _bad_suite("dense_epochs = 2", 'dense_epochs = "abc"', "dense_epochs = 'abc': must be an integer"),
    "finetune epochs 0": _bad_suite("finetune_epochs = 1", "finetune_epochs = 0", "finetune_epochs = 0: allowed >= 1"),
    "scratch epochs 0": _bad_suite(
        "finetune_epochs = 1", "finetune_epochs = 1\nscratch_epochs = 0", "scratch_epochs = 0: allowed >= 1"
    ),
    "batch larger than the data": _bad_suite(
        "batch_size = 64", "batch_size = 100000", "batch_size = 100000 is larger than the 512 training images"
    ),
    "train_limit 0": _bad_extra("\n[data]\ntrain_limit = 0\n", "[data] train_limit = 0: allowed >= 1"),
    "train_limit -100": _bad_extra("\n[data]\ntrain_limit = -100\n", "[data] train_limit = -100: allowed >= 1"),
    "test_limit 0": _bad_extra("\n[data]\ntest_limit = 0\n", "[data] test_limit = 0: allowed >= 1"),
    "latency batches empty": _bad_suite(
        "latency_batches = [1, 8]", "latency_batches = []", "[measure] latency_batches = (): allowed each >= 1"
    ),
    "latency batch 0": _bad_suite("latency_batches = [1, 8]", "latency_batches = [0]", "latency_batches = (0,)"),
    "latency too short": _bad_suite(
        "latency_batches = [1, 8]", "min_run_time = 0.01", "min_run_time = 0.01: allowed >= 0.5"
    ),
    "momentum 1": _bad_suite("lr = 0.05", "lr = 0.05\nmomentum = 1.0", "[train] momentum = 1.0: allowed >= 0 and < 1"),
    "momentum negative": _bad_suite("lr = 0.05", "lr = 0.05\nmomentum = -0.1", "momentum = -0.1"),
    "lr 0": _bad_suite("lr = 0.05", "lr = 0", "[train] lr = 0: allowed > 0"),
    "lr text": _bad_suite("lr = 0.05", 'lr = "fast"', "lr = 'fast': must be a number"),
    "optimizer": _bad_suite("lr = 0.05", 'lr = 0.05\noptimizer = "lion"', "optimizer = 'lion': allowed one of"),
    "weight decay negative": _bad_suite("lr = 0.05", "lr = 0.05\nweight_decay = -1", "weight_decay = -1"),
    "warm-up longer than training": _bad_suite(
        "warmup_epochs = 0", "warmup_epochs = 10", "warmup_epochs = 10 is longer than epochs"
    ),
    "label smoothing": _bad_suite("lr = 0.05", "lr = 0.05\nlabel_smoothing = 1.5", "label_smoothing = 1.5"),
    "nesterov without momentum": _bad_suite(
        "lr = 0.05", "lr = 0.05\nnesterov = true\nmomentum = 0.0", "nesterov = true needs momentum > 0"
    ),
    "no seeds": _bad_suite("seeds = [0]", "seeds = []", "'seeds' must be a non-empty list of integers >= 0"),
    "negative seed": _bad_suite("seeds = [0]", "seeds = [-1]", "'seeds' must be a non-empty list of integers >= 0"),
    "seed twice": _bad_suite("seeds = [0]", "seeds = [0, 0]", "'seeds' lists a seed twice"),
    "models not a list": _bad_suite('models = ["mlp"]', 'models = "mlp"', "'models' must be a non-empty list"),
    "unknown train key": _bad_suite(
        "lr = 0.05", "lr = 0.05\nlearning_rate = 3", "unknown setting(s) ['learning_rate']"
    ),
    "unknown section": _bad_extra("\n[training]\nlr = 1\n", "unknown key(s) ['training']"),
    "suite name escapes": _bad_suite('name = "tiny"', 'name = "../evil"', "suite 'name' '../evil': a name is"),
    "execution cpus 0": _bad_extra("\n[execution]\ncpus_per_job = 0\n", "[execution] cpus_per_job = 0: allowed >= 1"),
    "method epochs 0": _method_suite(
        '[[method]]\nname = "tissuenet"\nepochs = 0\n', "epochs = 0: allowed an integer >= 1"
    ),
    "method epochs 1.5": _method_suite('[[method]]\nname = "tissuenet"\nepochs = 1.5\n', "epochs = 1.5"),
    "label with @": _method_suite('[[method]]\nname = "tissuenet"\nlabel = "a@b"\n', "label 'a@b': a name is"),
    # -- labels travel into files, CSV, legends and terminals: one alphabet, refused at load (issue 19.3)
    **{
        f"label {what}": _method_suite(f'[[method]]\nname = "tissuenet"\nlabel = {label}\n', "a name is a letter")
        for what, label in {
            "mathtext": '"$\\\\mathrm{TN}_{\\\\alpha$"',
            "hash": '"tn#1"',
            "400 characters": '"' + "t" * 400 + '"',
            "210 characters": '"' + "t" * 210 + '"',
            "formula =": '"=1+1"',
            "formula +": '"+cmd"',
            "formula -": '"-2"',
            "formula @": '"@sum"',
            "NUL": '"a\\u0000b"',
            "ESC": '"a\\u001b[31mred"',
            "BEL": '"a\\u0007"',
            "space": '"two words"',
            "empty": '""',
        }.items()
    },
    "sparsity 1.5": _method_suite(
        '[[method]]\nname = "sparse_global"\ntargets = [{ sparsity = 1.5 }]\n', "impossible target sparsity=1.5"
    ),
    "target on dense": _method_suite(
        '[[method]]\nname = "dense"\ntargets = [{ sparsity = 0.5 }]\n', "takes targets ['none']"
    ),
    "unknown option": _method_suite('[[method]]\nname = "tissuenet"\noptions = { widht = 2 }\n', "widht"),
    "suite not UTF-8": Case(
        ["run", "{tmp}/bad.toml"],
        2,
        "not UTF-8 text",
        setup=lambda c: (c.tmp / "bad.toml").write_bytes(b'name = "\xff\xfe"\n'),
    ),
    # -- 2. damaged records: named, set aside, redone, listed as gaps ---------------------------------------
    "record truncated, show": Case(
        ["show"], 0, "damaged file", setup=_write(lambda c: c.record(), b'{"job_id": "x'), quarantines=1, one_line=False
    ),
    "record not UTF-8, report": Case(
        ["report", "--out", "{tmp}/rep"],
        0,
        "damaged file",
        quarantines=1,
        setup=_write(lambda c: c.record(), b"\xff\xfe\x00garbage"),
        one_line=False,
    ),
    "record [], check": Case(
        ["check", "--against", "{tmp}/ref.csv"],
        1,
        "damaged file",
        quarantines=1,
        setup=lambda c: (_ref(GOOD_REF)(c), _write(lambda c: c.record(), b"[]")(c)),
        one_line=False,
    ),
    "record null, run redoes it": Case(
        ["run", "{suite}"],
        0,
        "damaged file",
        quarantines=1,
        after=_redone,
        setup=_write(lambda c: c.record(), b"null"),
        one_line=False,
    ),
    "record {}, run redoes it": Case(
        ["run", "{suite}"],
        0,
        "not a result record",
        quarantines=1,
        after=_redone,
        setup=_write(lambda c: c.record("tissuenet"), b"{}"),
        one_line=False,
    ),
    "record copy under another name": Case(
        ["show"],
        0,
        "a copy under another name",
        quarantines=1,
        one_line=False,
        setup=lambda c: shutil.copy(c.record(), c.results / "records" / "copy.json"),
    ),
    "plan damaged": Case(
        ["show"],
        0,
        "damaged file",
        quarantines=1,
        one_line=False,
        setup=_write(lambda c: next((c.results / "plans").glob("*.json")), b"\x00\x01"),
    ),
    # -- 3. damaged and hostile checkpoints and model files ------------------------------------------------
    "dense checkpoint corrupt": Case(
        ["run", "{suite}"],
        0,
        "its bytes changed since written",
        quarantines=1,
        setup=lambda c: (_dense_ckpt(c).write_bytes(b"\x00" * 100), c.record().unlink()),
        after=_redone,
        one_line=False,
    ),
    "dense checkpoint planted pickle": Case(
        ["run", "{suite}"],
        0,
        "not a readable torch file",
        quarantines=1,
        after=_redone,
        one_line=False,
        setup=lambda c: (plant(_dense_ckpt(c), c.marker), c.record().unlink()),
    ),
    "dense partial planted pickle": Case(
        ["run", "{suite}"],
        0,
        "not a readable torch file",
        quarantines=1,
        after=_redone,
        one_line=False,
        setup=lambda c: _replace_dense_with_partial(c),
    ),
    "job resume planted pickle": Case(
        ["run", "{suite}"],
        0,
        "not a readable torch file",
        quarantines=1,
        after=_redone,
        one_line=False,
        setup=lambda c: (
            plant(c.results / "checkpoints" / "jobs" / f"{c.record('tissuenet').stem}.pt", c.marker),
            c.record("tissuenet").unlink(),
        ),
    ),
    "cifar batch planted pickle": Case(
        ["run", "{tmp}/bad.toml", "--data-root", "{tmp}/data"],
        2,
        "refusing to load posix.system",
        setup=lambda c: (_cifar_with_planted_batch(c), c.suite_with(dataset="cifar10", models=("resnet20",))),
        after=_no_code_ran,
    ),
    # -- 4. reference files: validated like a suite ----------------------------------------------------------
    "reference without job_id": Case(
        ["check", "--against", "{tmp}/ref.csv"],
        2,
        "required column(s) ['job_id']",
        setup=_ref("label,top1,params,params_nonzero,macs,macs_effective\nx,1,1,1,1,1\n"),
    ),
    "reference NaN": Case(
        ["check", "--against", "{tmp}/ref.csv"],
        2,
        "column top1 has an empty",
        setup=_ref(GOOD_REF.replace(",1.0,", ",nan,")),
    ),
    "reference empty cell": Case(
        ["check", "--against", "{tmp}/ref.csv"],
        2,
        "column macs has an empty",
        setup=_ref(GOOD_REF.replace(",1,1,1,1\n", ",1,1,,1\n")),
    ),
    "reference not UTF-8": Case(
        ["check", "--against", "{tmp}/ref.csv"],
        2,
        "not UTF-8",
        setup=lambda c: (c.tmp / "ref.csv").write_bytes(b"\xff\xfe"),
    ),
    "reference job twice": Case(
        ["check", "--against", "{tmp}/ref.csv"],
        2,
        "is listed twice",
        setup=lambda c: _ref(GOOD_REF + GOOD_REF.splitlines()[1] + "\n")(c),
    ),
    "tolerance negative": Case(
        ["check", "--against", "{tmp}/ref.csv", "--tolerance", "-1"], 2, "out of range", setup=_ref(GOOD_REF)
    ),
    "tolerance nan": Case(
        ["check", "--against", "{tmp}/ref.csv", "--tolerance", "nan"], 2, "out of range", setup=_ref(GOOD_REF)
    ),
    # -- 5. command-line values --------------------------------------------------------------------------------
    "input size 0": Case(["describe", "resnet20", "--input-size", "0"], 2, "0 is out of range"),
    "input size huge": Case(["describe", "resnet20", "--input-size", "100000"], 2, "100000 is out of range"),
    "classes 0": Case(["describe", "resnet20", "--num-classes", "0"], 2, "0 is out of range"),
    "channels 0": Case(["describe", "resnet20", "--in-channels", "0"], 2, "0 is out of range"),
    "perf steps 0": Case(["perf", "--steps", "0"], 2, "0 is out of range"),
    "perf batch 0": Case(["perf", "--batch-size", "0"], 2, "0 is out of range"),
    "device tpu": Case(["run", "{suite}", "--device", "tpu"], 2, "--device must be auto, cpu, cuda or cuda:N"),
    "device cuda without one": Case(["run", "{suite}", "--device", "cuda"], 2, "CUDA is not available here"),
    "job id escapes": Case(["show", "../../etc/passwd"], 2, "would leave"),
    "report over the results": Case(["report", "--out", "{results}"], 2, "overlaps the results folder"),
    "report into records": Case(["report", "--out", "{results}/records"], 2, "overlaps the results folder"),
    "unknown model": Case(["describe", "resnet57"], 2, "unknown model 'resnet57'"),
    "unknown suite": Case(["run", "smok"], 2, "unknown suite 'smok'"),
    # -- 6. storage: full and read-only -------------------------------------------------------------------------
    "disk full during run": Case(
        ["run", "{tmp}/more.toml"],
        1,
        "no space left on the device; nothing stored was damaged",
        setup=lambda c: _more_jobs(c),
        after=_no_tmp_left,
    ),
    "read-only: show": Case(["show"], 0, "dense", in_stdout=True, one_line=False),
    "read-only: check": Case(
        ["check", "--against", "{tmp}/ref.csv"], 1, "regressed", setup=_ref(GOOD_REF), in_stdout=True, one_line=False
    ),
    "read-only: report elsewhere": Case(["report", "--out", "{tmp}/rep"], 0, "report:", in_stdout=True),
    "read-only: report in place": Case(["report"], 1, "cannot write the report"),
    # -- 7. issue 19: a results folder is input, not trusted ground ----------------------------------------
    "planted why link, show": Case(
        ["show"], 0, "damaged file", setup=_why_link_to_victim, quarantines=1, one_line=False, after=_victim_intact
    ),
    "why link to a secret, show and report": Case(
        ["report", "--out", "{tmp}/rep"], 0, "report:", setup=_leak_link, in_stdout=True, after=_not_leaked
    ),
    "records is a link, show": Case(
        ["show"], 2, "records is a symbolic link", setup=_records_link, after=_user_folder_intact
    ),
    "records is a link, run": Case(
        ["run", "{suite}"], 2, "records is a symbolic link", setup=_records_link, after=_user_folder_intact
    ),
    "report is a link": Case(["report"], 2, "is a symbolic link", setup=_report_link, after=_site_intact),
    # -- 8. issue 19: silent corruption must not pass ---------------------------------------------------------
    "dense checkpoint one byte flipped": Case(
        ["run", "{suite}"],
        0,
        "its bytes changed since written",
        setup=lambda c: (_flip_one_byte(_dense_ckpt)(c), c.record().unlink()),
        quarantines=1,
        one_line=False,
        after=_redone,
    ),
    "rows name other dense weights, check": Case(
        ["check", "--against", "{tmp}/ref.csv"],
        1,
        "dense weights",
        setup=lambda c: (_ref(GOOD_REF)(c), _other_dense_weights(c)),
        in_stdout=True,
        one_line=False,
    ),
    # -- 9. issue 19: quarantine and the store -----------------------------------------------------------------
    "reason not UTF-8 or a folder, show": Case(
        ["show"], 0, "dense", setup=_bad_why_files, in_stdout=True, quarantines=2
    ),
    "reason not UTF-8 or a folder, check": Case(
        ["check", "--against", "{tmp}/ref.csv"],
        1,
        "gap: damaged file quarantine/records/a.json",
        setup=lambda c: (_bad_why_files(c), _ref(GOOD_REF)(c)),
        in_stdout=True,
        one_line=False,
        quarantines=2,
    ),
    "reason not UTF-8 or a folder, report": Case(
        ["report", "--out", "{tmp}/rep"], 0, "report:", setup=_bad_why_files, in_stdout=True, quarantines=2
    ),
    "disk full while quarantining": Case(
        ["show"],
        0,
        "left in place (the folder cannot be written)",
        setup=_write(lambda c: c.record(), b"{"),
        one_line=False,
    ),
    "leftovers of a killed run": Case(
        ["run", "{suite}"],
        0,
        "removed 2 leftover(s) of an interrupted run",
        setup=_stale_leftovers,
        one_line=False,
        after=_leftovers_gone,
        may_remove=("records/.x.json", "checkpoints/jobs/"),
    ),  # fmt: skip
    # -- 10. issue 19: data problems before training -----------------------------------------------------------
    "labels out of range": Case(
        ["run", "{tmp}/bad.toml", "--data-root", "{tmp}/data"],
        2,
        "test labels lie in 0..200, outside 0..9",
        setup=lambda c: (
            _idx_data(c, **{"t10k-labels-idx1-ubyte": np.r_[np.zeros(31), 200]}),
            c.suite_with(dataset="fashion-mnist"),
        ),
    ),
    "images of the wrong shape": Case(
        ["run", "{tmp}/bad.toml", "--data-root", "{tmp}/data"],
        2,
        "training images have shape (1, 32, 32), expected (1, 28, 28)",
        setup=lambda c: (
            _idx_data(c, **{"train-images-idx3-ubyte": np.zeros((128, 32, 32))}),
            c.suite_with(dataset="fashion-mnist"),
        ),
    ),
    "IDX header truncated": Case(
        ["run", "{tmp}/bad.toml", "--data-root", "{tmp}/data"],
        2,
        "truncated inside its header",
        setup=lambda c: (_truncated_header(c), c.suite_with(dataset="fashion-mnist")),
    ),
    "data root typo": Case(
        ["run", "{tmp}/bad.toml", "--data-root", "{tmp}/typo"],
        2,
        "--data-root",
        setup=lambda c: c.suite_with(dataset="fashion-mnist"),
    ),
}
for _name, _case in CASES.items():  # these run with every write under the results folder refused
    if _name.startswith("read-only:"):
        _case.disk = errno.EROFS
    elif _name in ("disk full during run", "disk full while quarantining"):
        _case.disk = errno.ENOSPC


def _more_jobs(c: Ctx) -> None:
    """The suite with its learning rate changed: every job is new, so the run has something to write."""
    (c.tmp / "more.toml").write_text(c.suite.read_text().replace("lr = 0.05", "lr = 0.04"))


def _cifar_with_planted_batch(c: Ctx) -> None:
    folder = c.tmp / "data" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    good = {b"data": np.zeros((4, 3072), np.uint8), b"labels": [0, 1, 2, 3]}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (folder / name).write_bytes(pickle.dumps(good))
    (folder / "data_batch_3").write_bytes(pickle.dumps({b"data": Planted(c.marker), b"labels": [0]}))


def test_at_least_forty_cases():
    assert len(CASES) >= 40


# building a report draws every figure (seconds each): those cases run with the slow tests
SLOW_CASES = {name for name, case in CASES.items() if case.args[0] == "report"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_CASES else n for n in CASES])
def test_fault(name, finished, tmp_path, capsys):
    run_case(CASES[name], finished, tmp_path, capsys)


def test_model_file_planted_pickle_is_refused(tmp_path):
    from benchmarks.store.files import DamagedFileError
    from benchmarks.store.model_files import load_model

    plant(tmp_path / "m.pt", tmp_path / PWNED)
    with pytest.raises(DamagedFileError, match="not a readable torch file"):
        load_model(tmp_path / "m.pt")
    assert not (tmp_path / PWNED).exists()


def test_interrupt_exits_130(monkeypatch, capsys):
    """Ctrl-C is one line and exit 130; only a run (not a dry run, not a reading command) says it resumes."""
    from tissuebench.commands import list as list_command
    from tissuebench.commands import run as run_command

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(list_command, "run", interrupted)
    monkeypatch.setattr(run_command, "run", interrupted)
    assert main(["list"]) == 130
    assert capsys.readouterr().err.strip() == "tissuebench list: interrupted"
    assert main(["run", "smoke"]) == 130
    assert capsys.readouterr().err.strip() == "tissuebench run: interrupted; rerunning resumes"
    assert main(["run", "smoke", "--dry-run"]) == 130
    assert capsys.readouterr().err.strip() == "tissuebench run: interrupted"


def test_a_bug_exits_3_with_its_traceback(monkeypatch, capsys):
    from tissuebench.commands import list as list_command

    monkeypatch.setattr(list_command, "run", lambda args: 1 / 0)
    assert main(["list"]) == 3
    err = capsys.readouterr().err
    assert "Traceback" in err and "ZeroDivisionError" in err and "internal error" in err


@pytest.mark.slow
def test_closed_pipe_is_quiet(finished):
    _, results = finished
    shell = f"{sys.executable} -m tissuebench show --results {results} --format csv | head -c 10 >/dev/null"
    proc = subprocess.run(
        ["bash", "-o", "pipefail", "-c", shell], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert proc.stderr == "" and proc.returncode in (0, 141)


def test_version():
    proc = subprocess.run([sys.executable, "-m", "tissuebench", "--version"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.startswith("tissuebench ")
