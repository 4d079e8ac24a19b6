"""Dataset registry: name -> where to find it, its shape, normalisation and augmentation.

``fashion-mnist`` is the embedded default: real data found at ``--data-root``, then
``$TISSUEBENCH_DATA``, then Debian's ``dataset-fashion-mnist`` files, then (only with
``download=True``) a torchvision download. ``synthetic`` exists for tests and must be named.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from benchmarks.data import sources
from tissuenet.registry import did_you_mean


class DataError(RuntimeError):
    """A dataset is missing or corrupt; the message says where we looked and how to get it."""


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    num_classes: int
    in_channels: int
    input_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_padding: int  # random crop with this zero padding (0: none)
    flip: bool
    how_to_get: str
    loader: Callable | None  # (roots, missing, download) -> arrays; None: ImageFolder streaming
    system_path: Path | None = None
    resident: bool = True  # small enough to keep on the device

    def missing(self, what: str) -> DataError:
        return DataError(f"dataset {self.name!r}: {what}. {self.how_to_get}")


_DATASETS: dict[str, DatasetInfo] = {}


def register_dataset(info: DatasetInfo) -> DatasetInfo:
    _DATASETS[info.name] = info
    return info


def list_datasets() -> list[str]:
    return sorted(_DATASETS)


def get_dataset(name: str) -> DatasetInfo:
    if name not in _DATASETS:
        raise DataError(f"unknown dataset {name!r}.{did_you_mean(name, _DATASETS)} Known: {', '.join(list_datasets())}")
    return _DATASETS[name]


def _idx_loader(subdirs, torchvision_cls):
    def load(info, roots, download):
        try:
            return sources.load_idx_set(roots, subdirs, info.missing)
        except DataError:
            if not download or not roots:
                raise
        import torchvision  # only with --download, where the network allows it

        getattr(torchvision.datasets, torchvision_cls)(str(roots[0]), download=True)
        return sources.load_idx_set(roots, subdirs, info.missing)

    return load


def _cifar_loader(folder, train, test, key):
    return lambda info, roots, download: sources.load_cifar(roots, folder, train, test, key, info.missing)


_MNIST_HOW = "Put the four IDX files (optionally .gz) in --data-root DIR (or DIR/{sub}), or pass --download"
register_dataset(
    DatasetInfo(
        "fashion-mnist",
        10,
        1,
        28,
        (0.2860,),
        (0.3530,),
        2,
        True,
        "Install them with `apt-get install dataset-fashion-mnist` (Debian), or "
        + _MNIST_HOW.format(sub="FashionMNIST/raw"),
        _idx_loader(("fashion-mnist", "FashionMNIST/raw"), "FashionMNIST"),
        sources.DEBIAN_FASHION,
    )
)
register_dataset(
    DatasetInfo(
        "mnist",
        10,
        1,
        28,
        (0.1307,),
        (0.3081,),
        2,
        False,
        _MNIST_HOW.format(sub="MNIST/raw"),
        _idx_loader(("mnist", "MNIST/raw"), "MNIST"),
    )
)
_CIFAR_HOW = "Extract the python version of {f} under --data-root DIR (torchvision layout: DIR/{d}/)"
register_dataset(
    DatasetInfo(
        "cifar10",
        10,
        3,
        32,
        (0.4914, 0.4822, 0.4465),
        (0.2470, 0.2435, 0.2616),
        4,
        True,
        _CIFAR_HOW.format(f="CIFAR-10", d="cifar-10-batches-py"),
        _cifar_loader("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], b"labels"),
    )
)
register_dataset(
    DatasetInfo(
        "cifar100",
        100,
        3,
        32,
        (0.5071, 0.4865, 0.4409),
        (0.2673, 0.2564, 0.2762),
        4,
        True,
        _CIFAR_HOW.format(f="CIFAR-100", d="cifar-100-python"),
        _cifar_loader("cifar-100-python", ["train"], ["test"], b"fine_labels"),
    )
)
_IMNET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
_FOLDER_HOW = "Arrange it in ImageFolder layout: DIR/{d}/train/CLASS/*.JPEG and DIR/{d}/val/CLASS/*.JPEG"
register_dataset(
    DatasetInfo(
        "tiny-imagenet",
        200,
        3,
        64,
        *_IMNET,
        4,
        True,
        _FOLDER_HOW.format(d="tiny-imagenet-200"),
        None,
        resident=False,
    )
)
register_dataset(
    DatasetInfo(
        "imagenet",
        1000,
        3,
        224,
        *_IMNET,
        0,
        True,
        _FOLDER_HOW.format(d="imagenet"),
        None,
        resident=False,
    )
)
register_dataset(
    DatasetInfo(
        "synthetic",
        10,
        1,
        28,
        (0.5,),
        (0.29,),
        0,
        False,
        "generated in memory; for tests only",
        lambda info, roots, download: sources.synthetic(),
    )
)

FOLDER_NAMES = {"tiny-imagenet": "tiny-imagenet-200", "imagenet": "imagenet"}

# one copy per process of each small dataset, per device: shared by every job of a sweep
_RESIDENT: dict[tuple, tuple[torch.Tensor, ...]] = {}


def load_arrays(name: str, data_root=None, download: bool = False) -> tuple[np.ndarray, ...]:
    info = get_dataset(name)
    roots = sources.candidate_roots(data_root, info.system_path)
    if info.loader is None:
        raise DataError(f"dataset {name!r} streams from disk (ImageFolder); it has no in-memory arrays")
    if not roots and name != "synthetic":
        raise info.missing("no --data-root given and $TISSUEBENCH_DATA is not set")
    return info.loader(info, roots, download)


def load_splits(name, *, data_root=None, device="cpu", download=False, train_limit=None, test_limit=None):
    """uint8 train/test tensors on ``device``, loaded once per process and then shared."""
    key = (name, str(data_root), str(device), train_limit, test_limit)
    if key not in _RESIDENT:
        tx, ty, vx, vy = load_arrays(name, data_root, download)
        tx, ty = tx[:train_limit], ty[:train_limit]
        vx, vy = vx[:test_limit], vy[:test_limit]
        _RESIDENT[key] = tuple(torch.from_numpy(np.array(a)).to(device) for a in (tx, ty, vx, vy))
    return _RESIDENT[key]


def make_loaders(
    name,
    *,
    batch_size,
    device="cpu",
    data_root=None,
    download=False,
    seed=0,
    train_limit=None,
    test_limit=None,
    channels_last=False,
    eval_batch_size=None,
    workers=4,
):
    """(train, test) loaders: device-resident for small sets, streaming for ImageFolder sets."""
    from benchmarks.data.device_loader import DeviceLoader
    from benchmarks.data.folder import StreamLoader, find_folder

    info = get_dataset(name)
    eval_bs = eval_batch_size or max(batch_size, 256)
    if info.resident:
        tx, ty, vx, vy = load_splits(
            name, data_root=data_root, device=device, download=download, train_limit=train_limit, test_limit=test_limit
        )
        common = dict(mean=info.mean, std=info.std, seed=seed, channels_last=channels_last)
        train = DeviceLoader(
            tx, ty, batch_size=batch_size, train=True, crop_padding=info.crop_padding, flip=info.flip, **common
        )
        test = DeviceLoader(vx, vy, batch_size=eval_bs, train=False, **common)
        return info, train, test
    roots = sources.candidate_roots(data_root, info.system_path)
    path = find_folder(info, roots, FOLDER_NAMES[name])
    common = dict(seed=seed, device=device, workers=workers, channels_last=channels_last)
    train = StreamLoader(path / "train", info, train=True, batch_size=batch_size, limit=train_limit, **common)
    test = StreamLoader(path / "val", info, train=False, batch_size=eval_bs, limit=test_limit, **common)
    return info, train, test
