"""The fault-injection harness: a case runs one command against a copy of a finished tiny results folder.

It asserts three things: the exit code, the message (one line for the project's own errors), and that every
stored file is byte-for-byte unchanged, apart from the files the command moved to ``quarantine/`` (which must
arrive there unchanged) and files it wrote anew (a redone job). The derived tables (``table.*``,
``history.parquet``) are rebuilt from the records and are not compared. The cases live in ``test_faults*.py``.
"""

from __future__ import annotations

import builtins
import errno
import hashlib
import json
import os
import pickle
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.helpers import write_suite
from tissuebench.cli import main

PWNED = "tissuebench-fault-test-pwned"
GOOD_REF = "job_id,label,top1,params,params_nonzero,macs,macs_effective\n{job},dense,1.0,1,1,1,1\n"
DERIVED = ("table.parquet", "table.csv", "history.parquet")


class Planted:
    """A pickle that, if ever unpickled, creates a marker file: loading it must never run it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def plant(path: Path, marker: Path) -> None:
    """A planted pickle with a matching recorded SHA-256 (whoever can write one can write both):
    the hash check passes, so this exercises the loader's refusal to unpickle code."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = pickle.dumps({"state_dict": Planted(marker)})
    path.write_bytes(data)
    path.with_name(path.name + ".sha256").write_text(f"{hashlib.sha256(data).hexdigest()}  {path.name}\n")


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    methods = '[[method]]\nname = "dense"\n\n[[method]]\nname = "tissuenet"\nlabel = "tissue-all"\n'
    suite = write_suite(root / "tiny.toml", methods=methods + 'options = { replace = "all" }\n')
    assert main(["run", str(suite), "--results", str(root / "results"), "--device", "cpu"]) == 0
    return suite, root / "results"


def snapshot(root: Path) -> dict[str, str]:
    out = {}
    for p in root.rglob("*"):
        rel = p.relative_to(root)
        if p.is_file() and rel.parts[0] not in ("locks", "quarantine") and p.name not in DERIVED:
            out[str(rel)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def quarantined(root: Path) -> dict[str, str]:
    folder = root / "quarantine"
    return (
        {
            str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in folder.rglob("*")
            if p.is_file() and not p.name.endswith(".why.txt")
        }
        if folder.is_dir()
        else {}
    )


@dataclass
class Case:
    args: list[str]  # the command; {results}, {suite}, {tmp} are filled in
    code: int
    message: str  # in stderr (or stdout where said)
    setup: object = None  # f(ctx) -> None: inject the fault
    in_stdout: bool = False
    one_line: bool = True  # the project's own errors: one line
    quarantines: int = 0  # files it must move to quarantine
    after: object = None  # f(ctx) -> None: further checks
    marks: list = field(default_factory=list)
    may_remove: tuple = ()  # stored files (path prefixes) the command may delete: leftovers nothing needs
    disk: int | None = None  # errno every write under the results folder fails with (EROFS, ENOSPC)


@dataclass
class Ctx:
    tmp: Path
    results: Path
    suite: Path
    marker: Path

    def suite_with(self, *, extra="", **kwargs) -> Path:
        return write_suite(self.tmp / "bad.toml", extra=extra, **kwargs)

    def replace_in_suite(self, old: str, new: str) -> Path:
        text = self.suite.read_text()
        assert old in text, old
        path = self.tmp / "bad.toml"
        path.write_text(text.replace(old, new, 1))
        return path

    def record(self, method: str = "dense") -> Path:
        import json

        return next(
            p
            for p in sorted((self.results / "records").glob("*.json"))
            if json.loads(p.read_text())["method"] == method
        )


@contextmanager
def refuse_writes(root: Path, code: int):
    """Every write under ``root`` fails with ``code`` (EROFS: a read-only folder; ENOSPC: a full disk).

    A full disk lets the file be created and half written first, as a real one does. Simulated
    (tests run as root, for whom permissions do not stop writes).
    """
    root = str(root.resolve())
    real_open, real_replace, real_mkdir, real_unlink, real_move, real_os_open, real_rename = (
        builtins.open,
        os.replace,
        os.mkdir,
        os.unlink,
        shutil.move,
        os.open,
        os.rename,
    )

    def under(path) -> bool:
        try:
            return str(Path(path).resolve()).startswith(root)
        except (TypeError, ValueError):
            return False

    def fail(path):
        raise OSError(code, os.strerror(code), str(path))

    class HalfWritten:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            self.f.write(data[: len(data) // 2])
            fail(self.f.name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def __getattr__(self, name):
            return getattr(self.f, name)

    def guarded_open(file, mode="r", *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and any(c in mode for c in "wax+") and under(file):
            if code == errno.ENOSPC:
                return HalfWritten(real_open(file, mode, *args, **kwargs))
            fail(file)
        return real_open(file, mode, *args, **kwargs)

    def guard(real):
        def wrapped(*args, **kwargs):
            if any(under(a) for a in args[:2] if isinstance(a, (str, os.PathLike))):
                fail(args[0])
            return real(*args, **kwargs)

        return wrapped

    def guarded_os_open(path, flags, *args, **kwargs):  # O_EXCL / O_NOFOLLOW writes go through os.open
        writes = flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND)
        if writes and under(path):
            if code == errno.ENOSPC and flags & os.O_CREAT:
                real_os_open(path, flags, *args, **kwargs)  # created, then the disk is full
            fail(path)
        return real_os_open(path, flags, *args, **kwargs)

    builtins.open, os.replace, os.mkdir = guarded_open, guard(real_replace), guard(real_mkdir)
    os.open = guarded_os_open
    if code == errno.EROFS:
        os.unlink, shutil.move, os.rename = guard(real_unlink), guard(real_move), guard(real_rename)
    try:
        yield
    finally:
        builtins.open, os.replace, os.mkdir, os.unlink, shutil.move, os.open, os.rename = (
            real_open,
            real_replace,
            real_mkdir,
            real_unlink,
            real_move,
            real_os_open,
            real_rename,
        )


def run_case(case: Case, finished, tmp_path: Path, capsys) -> Ctx:
    """Run one case (see the module docstring); returns its context for further checks."""
    suite, results = finished
    shutil.copytree(results, tmp_path / "results")
    ctx = Ctx(tmp_path, tmp_path / "results", suite, tmp_path / PWNED)
    if case.setup is not None:
        case.setup(ctx)
    before = snapshot(ctx.results)
    fill = {"results": str(ctx.results), "suite": str(suite), "tmp": str(tmp_path)}
    args = [a.format(**fill) for a in case.args]
    if args[0] in ("run", "show", "report", "check") and "--results" not in args:
        args += ["--results", str(ctx.results)]
    if args[0] == "run" and "--device" not in args:
        args += ["--device", "cpu"]
    capsys.readouterr()
    if case.disk is not None:
        with refuse_writes(ctx.results, case.disk):
            code = main(args)
    else:
        code = main(args)
    out, err = capsys.readouterr()
    text = out if case.in_stdout else err
    if os.environ.get("TISSUEBENCH_FAULT_LOG"):  # a table of what each case printed, for a closing note
        line = next((x for x in text.splitlines() if case.message in x), text.strip().splitlines()[-1:] or [""])
        with open(os.environ["TISSUEBENCH_FAULT_LOG"], "a") as log:
            log.write(json.dumps({"args": case.args, "code": code, "line": line}) + "\n")
    assert code == case.code, (out, err)
    assert case.message in text, (out, err)
    if case.one_line and code == 2:
        assert err.strip().count("\n") == 0 and "Traceback" not in err, err
    moved = quarantined(ctx.results)
    assert len([m for m in moved if not m.endswith(".sha256")]) == case.quarantines, moved  # hashes go along
    after = snapshot(ctx.results)
    moved_hashes = set(moved.values())
    for path, digest in before.items():
        if path in after and after[path] == digest or path.startswith(case.may_remove or ("\0",)):
            continue
        assert digest in moved_hashes, f"{path} changed or vanished without being quarantined"
    assert not ctx.marker.exists()
    if case.after is not None:
        case.after(ctx)
    return ctx
