"""Dataset registry: name -> where to find it, its shape, normalisation and augmentation.

``fashion-mnist`` is the embedded default: real data found at ``--data-root``, then
``$TISSUEBENCH_DATA``, then Debian's ``dataset-fashion-mnist`` files, then (only with
``download=True``) a torchvision download. ``synthetic`` exists for tests and must be named.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from benchmarks.data import sources
from benchmarks.data.errors import DataError
from benchmarks.data.images import SKIPPED
from benchmarks.store.files import sha256_file
from tissuenet import plugins
from tissuenet.plugins import Registry


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
    # where it is: roots -> (its folder or None, the places looked at)
    locate: Callable[[list[Path]], tuple[Path | None, list[str]]]
    # the located folder -> (train_x, train_y, test_x, test_y) uint8/int64 arrays; None: streamed from disk
    read: Callable[[DatasetInfo, Path], tuple[np.ndarray, ...]] | None
    system_path: Path | None = None
    resident: bool = True  # small enough to keep on the device
    downloadable: bool = False  # --download fetches it (benchmarks/data/download.py)
    train_images: int | None = None  # in the full training split: a dry run plans with it when the data is absent

    def missing(self, what: str) -> DataError:
        return DataError(f"dataset {self.name!r}: {what}. {self.how_to_get}")


def _unknown(name: str, registry: Registry) -> DataError:
    return DataError(f"unknown dataset {name!r}.{registry.suggest(name)} Known: {', '.join(registry.names())}")


DATASETS: Registry[DatasetInfo] = Registry("dataset", __name__, _unknown)  # built-ins: registered below


def register_dataset(info: DatasetInfo) -> DatasetInfo:
    return DATASETS.add(info.name, info, plugins.caller_module())


def list_datasets() -> list[str]:
    return DATASETS.names()


def dataset_origin(name: str):
    """The plugin a dataset comes from (``plugins.Origin``), or None for a built-in."""
    return DATASETS.origin(name)


def get_dataset(name: str) -> DatasetInfo:
    return DATASETS.get(name)


def _idx(subdirs):
    return (
        lambda roots: sources.find_idx(roots, subdirs),
        lambda info, folder: sources.read_idx_set(folder, info.missing),
    )


def _cifar(folder, train, test, key):
    return (
        lambda roots: sources.find_cifar(roots, folder, (*train, *test)),
        lambda info, path: sources.read_cifar(path, train, test, key, info.missing),
    )


def _folder(folder_name):
    from benchmarks.data.folder import find_folder

    return (lambda roots: find_folder(roots, folder_name), None)


_MNIST_HOW = (
    "Put the four IDX files (optionally .gz) in --data-root DIR (or DIR/{sub}), or pass --download "
    "with --data-root DIR (torchvision's mirrors, checksums verified)"
)
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
        *_idx(("fashion-mnist", "FashionMNIST/raw")),
        system_path=sources.DEBIAN_FASHION,
        downloadable=True,
        train_images=60_000,
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
        *_idx(("mnist", "MNIST/raw")),
        downloadable=True,
        train_images=60_000,
    )
)
_CIFAR_HOW = (
    "Pass --download with --data-root DIR, or extract the python version of {f} there yourself "
    "(`tar -xzf {archive} -C DIR`, torchvision's layout: DIR/{d}/)"
)
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
        _CIFAR_HOW.format(f="CIFAR-10", archive="cifar-10-python.tar.gz", d="cifar-10-batches-py"),
        *_cifar("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], b"labels"),
        downloadable=True,
        train_images=50_000,
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
        _CIFAR_HOW.format(f="CIFAR-100", archive="cifar-100-python.tar.gz", d="cifar-100-python"),
        *_cifar("cifar-100-python", ["train"], ["test"], b"fine_labels"),
        downloadable=True,
        train_images=50_000,
    )
)
_IMNET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
register_dataset(
    DatasetInfo(
        "tiny-imagenet",
        200,
        3,
        64,
        *_IMNET,
        4,
        True,
        "Get it with: `wget http://cs231n.stanford.edu/tiny-imagenet-200.zip && "
        "unzip -q tiny-imagenet-200.zip -d DIR`, then pass --data-root DIR (read as unpacked: "
        "train/<wnid>/images/, val/images/ + val/val_annotations.txt)",
        *_folder("tiny-imagenet-200"),
        resident=False,
        train_images=100_000,
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
        "ImageNet needs an account at image-net.org: download ILSVRC2012_img_train.tar, ILSVRC2012_img_val.tar and "
        'ILSVRC2012_devkit_t12.tar.gz into DIR/imagenet, then run `python -c "import torchvision.datasets as d; '
        "[d.ImageNet('DIR/imagenet', split=s) for s in ('train', 'val')]\"` (it unpacks both splits into "
        "DIR/imagenet/{train,val}/<wnid>/), and pass --data-root DIR",
        *_folder("imagenet"),
        resident=False,
        train_images=1_281_167,
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
        lambda roots: (Path("(generated in memory)"), []),
        lambda info, folder: sources.synthetic(),
        train_images=512,
    )
)

# one copy per process of each small dataset, per device: shared by every job of a sweep
_RESIDENT: dict[tuple, tuple[torch.Tensor, ...]] = {}


def locate(name: str, data_root=None, *, create: bool = False) -> tuple[Path | None, list[str]]:
    """Where dataset ``name`` is (or None) and every place looked at, in search order."""
    info = get_dataset(name)
    return info.locate(sources.candidate_roots(data_root, info.system_path, create=create))


def find(name: str, data_root=None, download: bool = False, log=None) -> Path:
    """The dataset's folder; with ``download``, fetched into the first named root when absent."""
    info = get_dataset(name)
    roots = sources.candidate_roots(data_root, info.system_path, create=download)
    folder, looked = info.locate(roots)
    if folder is not None:
        return folder
    if download and info.downloadable:
        from benchmarks.data.download import DownloadError
        from benchmarks.data.download import download as fetch

        named = [r for r in roots if r != info.system_path]
        if not named:
            raise info.missing("--download needs --data-root DIR (or $TISSUEBENCH_DATA): where to put the files")
        try:
            fetch(name, named[0], log or (lambda msg: print(msg, flush=True)))
        except DownloadError as exc:
            raise info.missing(f"download failed: {exc}") from exc
        folder, looked = info.locate([named[0]])
        if folder is not None:
            return folder
    if not looked:
        raise info.missing("no --data-root given and $TISSUEBENCH_DATA is not set")
    raise info.missing("not found in: " + ", ".join(looked))


_SOURCES: dict[tuple, dict] = {}


def source_of(name: str, data_root=None) -> dict:
    """Which copy of a dataset a run used: its folder and a SHA-256 per file (image folders: of the
    sorted list of files and sizes). Computed once per process; stored in every record."""
    key = (name, str(data_root), os.environ.get("TISSUEBENCH_DATA"))
    if key not in _SOURCES:
        folder, _ = locate(name, data_root)
        info = get_dataset(name)
        if folder is None or not folder.exists():
            _SOURCES[key] = {"path": str(folder) if folder else None, "files": {}}
        elif info.resident:
            files = sorted(p for p in folder.iterdir() if p.is_file())
            _SOURCES[key] = {"path": str(folder), "files": {p.name: sha256_file(p) for p in files}}
        else:
            h, count = hashlib.sha256(), 0
            for split in ("train", "val"):
                for p in sorted((folder / split).rglob("*")):
                    if p.is_file():
                        h.update(f"{p.relative_to(folder)}:{p.stat().st_size}\n".encode())
                        count += 1
            _SOURCES[key] = {"path": str(folder), "files": {"listing": h.hexdigest()}, "file_count": count}
    path = _SOURCES[key]["path"]
    skipped = SKIPPED.get(str(Path(path).resolve())) if path else None
    return _SOURCES[key] | ({"unreadable_skipped": len(skipped), "unreadable_files": skipped[:20]} if skipped else {})


def load_arrays(name: str, data_root=None, download: bool = False) -> tuple[np.ndarray, ...]:
    info = get_dataset(name)
    if info.read is None:
        raise DataError(f"dataset {name!r} streams from disk (ImageFolder); it has no in-memory arrays")
    arrays = info.read(info, find(name, data_root, download))
    check_arrays(info, arrays)
    return arrays


def check_arrays(info: DatasetInfo, arrays) -> None:
    """Shapes and labels as registered: caught before anything trains, not in the first epoch."""
    tx, ty, vx, vy = arrays
    shape = (info.in_channels, info.input_size, info.input_size)
    for split, x, y in (("training", tx, ty), ("test", vx, vy)):
        if tuple(x.shape[1:]) != shape:
            raise info.missing(f"{split} images have shape {tuple(x.shape[1:])}, expected {shape}")
        if len(y) and (int(y.min()) < 0 or int(y.max()) >= info.num_classes):
            raise info.missing(
                f"{split} labels lie in {int(y.min())}..{int(y.max())}, outside 0..{info.num_classes - 1} "
                "(a damaged label file, or another dataset under this name)"
            )


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
    input_size=None,
    skip_unreadable=False,
    shard=None,
):
    """(train, test) loaders: device-resident for small sets, streaming for ImageFolder sets; with ``shard``, one
    data-parallel worker's part of every batch (``batch_size`` stays the global batch)."""
    from benchmarks.data.device_loader import DeviceLoader
    from benchmarks.data.folder import StreamLoader

    info = get_dataset(name)
    eval_bs = eval_batch_size or max(batch_size, 256)
    shard_arg = {} if shard is None else {"shard": shard}
    if info.resident:
        tx, ty, vx, vy = load_splits(
            name, data_root=data_root, device=device, download=download, train_limit=train_limit, test_limit=test_limit
        )
        common = dict(mean=info.mean, std=info.std, seed=seed, channels_last=channels_last, **shard_arg)
        train = DeviceLoader(
            tx, ty, batch_size=batch_size, train=True, crop_padding=info.crop_padding, flip=info.flip, **common
        )
        test = DeviceLoader(vx, vy, batch_size=eval_bs, train=False, **common)
        return info, train, test
    path = find(name, data_root)
    common = dict(
        seed=seed,
        device=device,
        workers=workers,
        channels_last=channels_last,
        size=input_size,
        skip_unreadable=skip_unreadable,
        **shard_arg,
    )
    train = StreamLoader(path, "train", info, train=True, batch_size=batch_size, limit=train_limit, **common)
    test = StreamLoader(path, "val", info, train=False, batch_size=eval_bs, limit=test_limit, **common)
    return info, train, test
