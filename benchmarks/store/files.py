"""Every file the project writes or reads back: atomic writes, safe loads, quarantine.

* Writes go to a temporary name in the same folder and are renamed into place, so a kill never
  leaves half a file; a full or read-only disk gives one :class:`StorageError` line and no
  temporary file left behind.
* Loads never unpickle code: torch files load with ``weights_only=True``; JSON is JSON. A file
  that cannot be read (truncated, wrong bytes, wrong shape, a planted pickle) raises
  :class:`DamagedFileError` naming it; callers move it to ``<results>/quarantine/`` and redo the
  work it held.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import re
import stat
from pathlib import Path

import torch

from benchmarks.store.text import clean_text

QUARANTINE = "quarantine"


class StorageError(OSError):
    """The disk is full, read-only or otherwise refuses a write (one line, nothing damaged)."""


class DamagedFileError(ValueError):
    """A stored file cannot be used: it is named, and the caller sets it aside."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = Path(path), reason


class PathError(ValueError):
    """A path derived from input would leave the folder it belongs to."""


def inside(root: Path, *parts: str) -> Path:
    """``root / parts`` after checking that it stays inside ``root`` (no ``..``, no absolute parts, no
    symbolic link on the way: a results folder is input, and a planted link must not redirect a write)."""
    root = Path(root)
    path = root.joinpath(*parts)
    no_links(root, path.parent)  # first: a planted link is named as such, not as the place it leads to
    resolved, base = path.resolve(), root.resolve()
    if resolved != base and base not in resolved.parents:
        raise PathError(f"{'/'.join(parts)!r} would leave {root}")
    return path


def no_links(root: Path, path: Path) -> Path:
    """``path`` after checking that no component of it below ``root`` is a symbolic link."""
    root, path = Path(root), Path(path)
    try:
        relative = path.relative_to(root)
    except ValueError:
        raise PathError(f"{path} is not inside {root}") from None
    current = root
    for part in relative.parts:
        current = current / part
        if current.is_symlink():
            raise PathError(
                f"{current} is a symbolic link (to {os.readlink(current)}): a results folder is read as input and "
                "its links are not followed; replace the link by a folder or a file"
            )
    return path


def make_dirs(root: Path, folder: Path) -> Path:
    """``folder`` (below ``root``) and its parents, created without following a planted link."""
    no_links(root, folder)
    folder.mkdir(parents=True, exist_ok=True)
    return no_links(root, folder)


def read_bytes(path: Path, limit: int | None = None) -> bytes:
    """A regular file's bytes, never through a symbolic link (O_NOFOLLOW); at most ``limit`` bytes."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise DamagedFileError(path, "a symbolic link (not followed)") from None
        raise
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise DamagedFileError(path, "not a regular file")
        return f.read() if limit is None else f.read(limit)


TMP_SUFFIX = ".tmp"
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.(?P<pid>[0-9]+)\.tmp$")


def temporary_pid(name: str) -> str | None:
    """The pid in a temporary file name this module gives (``.NAME.PID.tmp``), or None for any other name."""
    match = _TEMPORARY.match(name)
    return match["pid"] if match else None


def write_bytes_atomic(path: Path, data: bytes) -> Path:
    """Write to a new temporary file beside ``path`` (O_EXCL | O_NOFOLLOW), then rename it into place:
    a kill never leaves half a file, and a planted link at ``path`` is replaced, not written through."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}{TMP_SUFFIX}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_quietly(tmp)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        _remove_quietly(tmp)
        raise StorageError(exc.errno, f"cannot write {path}: {_why(exc)}") from exc
    return path


def write_text_atomic(path: Path, text: str) -> Path:
    return write_bytes_atomic(path, text.encode())


HASH_SUFFIX = ".sha256"


def hash_path(path: Path) -> Path:
    """The SHA-256 recorded when ``path`` was written (``sha256sum -c`` reads it)."""
    return Path(path).with_name(Path(path).name + HASH_SUFFIX)


def write_verified(path: Path, data: bytes) -> Path:
    """A torch file and, after it, its SHA-256: every later load checks the bytes against it."""
    write_bytes_atomic(path, data)
    write_text_atomic(hash_path(path), f"{hashlib.sha256(data).hexdigest()}  {Path(path).name}\n")
    return Path(path)


def remove_verified(path: Path) -> None:
    """A torch file and its recorded hash (a finished job's resume state)."""
    Path(path).unlink(missing_ok=True)
    hash_path(path).unlink(missing_ok=True)


def save_torch_atomic(obj, path: Path) -> Path:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return write_verified(path, buffer.getvalue())


def load_torch(path: Path, map_location="cpu") -> dict:
    """A torch file of tensors and plain data (``weights_only=True``: no code can run), after checking
    its bytes against the SHA-256 recorded when it was written: a flipped bit is a damaged file."""
    path = Path(path)
    data = read_bytes(path)
    try:
        recorded = read_bytes(hash_path(path), 200).decode("ascii", errors="replace").split()[0]
    except (FileNotFoundError, IndexError, DamagedFileError):
        raise DamagedFileError(
            path, f"no SHA-256 recorded beside it ({hash_path(path).name}): it cannot be verified"
        ) from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != recorded:
        raise DamagedFileError(
            path, f"its bytes changed since written (SHA-256 {actual[:12]}, recorded {recorded[:12]})"
        )
    try:
        obj = torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure to read means the file is unusable
        raise DamagedFileError(path, f"not a readable torch file ({type(exc).__name__}: {first_line(exc)})") from exc
    if not isinstance(obj, dict):
        raise DamagedFileError(path, f"holds a {type(obj).__name__}, not a dict")
    return obj


def read_json(path: Path) -> dict:
    """A JSON object from a file (anything else is a :class:`DamagedFileError`)."""
    try:
        obj = json.loads(read_bytes(Path(path)).decode("utf-8"))
    except FileNotFoundError:
        raise
    except UnicodeDecodeError:
        raise DamagedFileError(path, "not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise DamagedFileError(path, f"not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except RecursionError:
        raise DamagedFileError(path, "JSON nested too deeply") from None
    except OSError as exc:
        raise DamagedFileError(path, f"cannot be read ({_why(exc)})") from None
    if not isinstance(obj, dict):
        raise DamagedFileError(path, f"holds JSON {type(obj).__name__}, not an object")
    return obj


REASON_LIMIT = 2000  # bytes of a reason file that are read back and published
ALREADY_MOVED = "already moved"


def quarantine(root: Path, path: Path, reason: str) -> Path | str | None:
    """Move a damaged file to ``<root>/quarantine/`` with a ``.why.txt`` (nothing is deleted).

    The reason is written first, so a file is never moved without one; returns the new path, None
    when it cannot move (a full or read-only disk: the file stays where it was), or
    :data:`ALREADY_MOVED` when another process moved it first.
    """
    root, path = Path(root), Path(path)
    try:
        no_links(root, path.parent)
        relative = path.relative_to(root)
    except (ValueError, PathError):
        relative = Path(path.name)
    target = root / QUARANTINE / relative
    n = 1
    while target.exists() or target.is_symlink():  # never overwrite an earlier quarantined copy
        target = target.with_name(f"{relative.name}.{n}")
        n += 1
    why = target.parent / f"{target.name}.why.txt"
    try:
        make_dirs(root, target.parent)
        write_text_atomic(why, clean_text(reason)[:REASON_LIMIT] + "\n")
    except (StorageError, PathError, OSError):
        return None
    try:
        os.rename(path, target)  # moves a link itself, never what it points to
    except FileNotFoundError:  # another process moved it first: to this target (keep the reason) or another
        if not target.exists():
            _remove_quietly(why)
        return ALREADY_MOVED
    except OSError:
        _remove_quietly(why)
        return None
    try:
        os.rename(hash_path(path), hash_path(target))  # its recorded hash goes with it
    except OSError:
        pass
    return target


def read_reason(why: Path) -> str:
    """A quarantine reason as published: no link followed, size-limited, printable (it is input)."""
    try:
        raw = read_bytes(why, REASON_LIMIT)
    except (DamagedFileError, OSError) as exc:
        return f"(reason unreadable: {exc.reason if isinstance(exc, DamagedFileError) else exc.strerror})"
    return clean_text(raw.decode("utf-8", errors="replace")).strip() or "(no reason given)"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def process_alive(pid: str) -> bool:
    """Whether process ``pid`` still runs (a temporary file or folder named after it is in use)."""
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def _why(exc: OSError) -> str:
    return {
        errno.ENOSPC: "no space left on the device",
        errno.EROFS: "the file system is read-only",
        errno.EACCES: "permission denied",
        errno.EDQUOT: "disk quota exceeded",
    }.get(exc.errno, exc.strerror or str(exc))


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _remove_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
