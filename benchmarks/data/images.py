"""Every image of a streamed dataset is decoded once before anything trains.

A truncated JPEG or a decompression bomb met in the middle of an epoch fails every job with
``OSError: Truncated File Read`` or ``DecompressionBombError`` and names no file. Decoding each image
first (JPEGs at a reduced scale: every byte is still parsed) names each file that does not decode; the
run then stops with the list, or, with ``[data] skip_unreadable = true``, leaves them out and every
record says how many. Files that decoded are remembered (path, size, modification time) in
``~/.cache/tissuebench/decoded/``, so ImageNet's 1.3 million files are decoded once per machine, not
once per run.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tissuebench" / "decoded"
DRAFT = (32, 32)  # JPEGs decode at 1/8 scale: the whole file is still read and parsed
SHOWN = 5  # files named in the error line

_GOOD: dict[str, set[str]] = {}  # folder -> "path\tsize\tmtime" of files that decoded (per process)
SKIPPED: dict[str, list[str]] = {}  # resolved folder -> files left out by skip_unreadable (for the records)


def _key(path: str) -> str:
    st = os.stat(path)
    return f"{path}\t{st.st_size}\t{st.st_mtime_ns}"


def _why(path: str) -> str | None:
    """None if the image decodes, else why not (one line)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.draft("RGB", DRAFT)
            image.load()
    except Exception as exc:  # noqa: BLE001 - whatever stops a decode stops a training epoch too
        return f"{type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}".rstrip(": ")
    return None


def _cache_file(folder: Path) -> Path:
    return CACHE / (hashlib.sha256(str(Path(folder).resolve()).encode()).hexdigest()[:16] + ".txt")


def _load_good(folder: Path) -> set[str]:
    name = str(folder)
    if name not in _GOOD:
        try:
            _GOOD[name] = set(_cache_file(folder).read_text().splitlines())
        except (OSError, UnicodeDecodeError):
            _GOOD[name] = set()
    return _GOOD[name]


def _save_good(folder: Path, good: set[str]) -> None:
    path = _cache_file(folder)
    try:  # a cache: a machine that cannot write it decodes again next time
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text("\n".join(sorted(good)) + "\n")
        os.replace(tmp, path)
    except OSError:
        pass


def unreadable(folder: Path, paths: list[str]) -> list[tuple[str, str]]:
    """(file, why) of every image among ``paths`` (below ``folder``) that does not decode."""
    good = _load_good(folder)
    keys = {p: _key(p) for p in paths}
    todo = [p for p in paths if keys[p] not in good]
    if not todo:
        return []
    with ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:  # PIL decodes without the GIL
        verdicts = list(pool.map(_why, todo))
    bad = [(p, why) for p, why in zip(todo, verdicts, strict=True) if why is not None]
    failed = {p for p, _ in bad}
    good |= {keys[p] for p in todo if p not in failed}
    _save_good(folder, good)
    return bad


def check_images(folder: Path, split: str, paths: list[str], skip: bool, missing) -> set[str]:
    """The files among ``paths`` to leave out (empty unless ``skip``); without ``skip`` a file that does not
    decode stops the run with ``missing(...)`` (a DataError) naming every such file."""
    bad = unreadable(folder, paths)
    if not bad:
        return set()
    if not skip:
        named = "; ".join(f"{p} ({why})" for p, why in bad[:SHOWN])
        more = f" and {len(bad) - SHOWN} more" if len(bad) > SHOWN else ""
        raise missing(
            f"{len(bad)} image(s) of {split}/ do not decode: {named}{more}; replace them, or set "
            "[data] skip_unreadable = true to leave them out (each record counts them)"
        )
    key = str(Path(folder).resolve())
    SKIPPED[key] = sorted(set(SKIPPED.get(key, [])) | {p for p, _ in bad})
    return {p for p, _ in bad}
