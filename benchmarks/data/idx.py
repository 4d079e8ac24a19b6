"""Reader for the IDX files of MNIST and Fashion-MNIST (plain or gzip), with integrity checks."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np


class CorruptFileError(ValueError):
    pass


def read_idx(path: Path) -> np.ndarray:
    """The uint8 array in an IDX file; raises :class:`CorruptFileError` if it is not a whole one."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:  # a truncated .gz fails here
        raise CorruptFileError(f"{path} cannot be read ({exc})") from exc
    if len(raw) < 4 or raw[0] or raw[1] or raw[2] != 0x08:
        raise CorruptFileError(f"{path} is not an IDX file of uint8 data")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise CorruptFileError(f"{path} is truncated inside its header ({len(raw)} bytes, {ndim} dimensions)")
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    expected = 4 + 4 * ndim + int(np.prod(dims))
    if len(raw) != expected:
        raise CorruptFileError(f"{path} is truncated or padded: {len(raw)} bytes, expected {expected} for shape {dims}")
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)
