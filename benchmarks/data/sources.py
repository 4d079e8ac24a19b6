"""Where each dataset's files are found and how they are read into uint8 arrays.

Every source returns ``(train_x, train_y, test_x, test_y)`` as numpy arrays, images
``(N, C, H, W)`` uint8, labels int64, or raises :class:`~benchmarks.data.datasets.DataError`
saying where it looked and how to get the data. ImageFolder sets stream from disk instead.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np

from benchmarks.data.errors import DataError
from benchmarks.data.idx import CorruptFileError, read_idx

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def candidate_roots(
    data_root: str | os.PathLike | None, system: Path | None = None, *, create: bool = False
) -> list[Path]:
    """Search order: ``--data-root``, then ``$TISSUEBENCH_DATA``, then a system location.

    A folder the user named must exist (a typo must not fall back silently to the system copy);
    ``create`` makes it (``--download`` puts the data there).
    """

    named = [
        (Path(p), what) for p, what in ((data_root, "--data-root"), (os.environ.get("TISSUEBENCH_DATA"), None)) if p
    ]
    for path, what in named:
        if create and what == "--data-root":
            path.mkdir(parents=True, exist_ok=True)
        if not path.is_dir():
            source = what or "$TISSUEBENCH_DATA"
            raise DataError(
                f"{source} {path} is not a folder (check the path; nothing else is searched when one is named)"
            )
    return [p for p, _ in named] + ([system] if system else [])


def _find_file(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def find_idx(roots: list[Path], subdirs: tuple[str, ...]) -> tuple[Path | None, list[str]]:
    """The first root (or root/subdir) that holds all four IDX files; else (None, where it looked)."""
    looked = []
    for root in roots:
        for folder in [root, *(root / s for s in subdirs)]:
            looked.append(str(folder))
            if all(_find_file(folder, stem) for stem in IDX_FILES):
                return folder, looked
    return None, looked


def read_idx_set(folder: Path, missing) -> tuple[np.ndarray, ...]:
    """MNIST-style IDX files (plain or .gz) of one folder, checked for consistency."""
    files = [_find_file(folder, stem) for stem in IDX_FILES]
    try:
        tx, ty, vx, vy = (read_idx(f) for f in files)
    except CorruptFileError as exc:
        raise missing(f"corrupt dataset file: {exc}") from exc
    if len(tx) != len(ty) or len(vx) != len(vy):
        raise missing(f"image and label counts differ in {folder}")
    if tx.ndim != 3 or vx.ndim != 3 or ty.ndim != 1 or vy.ndim != 1:
        raise missing(f"{folder}: images must be (N, H, W) and labels (N,), got {tx.shape} / {ty.shape}")
    return tx[:, None], ty.astype(np.int64), vx[:, None], vy.astype(np.int64)


def find_cifar(roots: list[Path], folder_name: str, files) -> tuple[Path | None, list[str]]:
    looked = []
    for root in roots:
        folder = root / folder_name
        looked.append(str(folder))
        if all((folder / f).is_file() for f in files):
            return folder, looked
    return None, looked


def read_cifar(folder: Path, train_files, test_files, label_key: bytes, missing):
    """CIFAR-10/100 in torchvision's python-pickle layout (``cifar-10-batches-py`` etc.)."""

    def read(names):
        xs, ys = [], []
        for name in names:
            try:
                with open(folder / name, "rb") as f:
                    d = safe_unpickle(f)
                xs.append(np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
                ys.append(np.asarray(d[label_key], dtype=np.int64))
            except Exception as exc:  # noqa: BLE001 - any unpickling failure means a bad file
                raise missing(f"corrupt dataset file {folder / name}: {exc}") from exc
            if len(xs[-1]) != len(ys[-1]):
                raise missing(f"corrupt dataset file {folder / name}: {len(xs[-1])} images, {len(ys[-1])} labels")
        return np.concatenate(xs), np.concatenate(ys)

    return (*read(train_files), *read(test_files))


class _ArraysOnly(pickle.Unpickler):
    """Unpickles plain data and numpy arrays only: a planted pickle cannot run code."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} (only arrays and plain data)")
        return super().find_class(module, name)


def safe_unpickle(f) -> dict:
    """CIFAR's python batches are pickles: read them without letting them import anything else."""
    obj = _ArraysOnly(f, encoding="bytes").load()
    if not isinstance(obj, dict):
        raise pickle.UnpicklingError(f"a CIFAR batch is a dict, got {type(obj).__name__}")
    return obj


def synthetic(num_classes=10, in_channels=1, size=28, n_train=512, n_test=256, seed=0):
    """Class-conditional random patterns plus noise: learnable, tiny, for tests only."""
    rng = np.random.default_rng(seed)
    protos = rng.integers(0, 256, size=(num_classes, in_channels, size, size)).astype(np.float32)

    def make(n):
        y = rng.integers(0, num_classes, size=n)
        x = 0.6 * protos[y] + 0.4 * rng.integers(0, 256, size=(n, in_channels, size, size))
        return x.clip(0, 255).astype(np.uint8), y.astype(np.int64)

    return (*make(n_train), *make(n_test))
