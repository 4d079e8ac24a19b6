"""Tiny datasets written in each dataset's real on-disk layout (the one its users download).

* CIFAR-10 / CIFAR-100: torchvision's python-pickle folders (``cifar-10-batches-py``,
  ``cifar-100-python``), with the meta files the archives contain;
* MNIST / Fashion-MNIST: the four IDX files, gzipped or not, under ``MNIST/raw`` /
  ``FashionMNIST/raw`` (torchvision's download layout);
* Tiny-ImageNet as ``tiny-imagenet-200.zip`` unpacks: ``wnids.txt``, ``words.txt``,
  ``train/<wnid>/images/*.JPEG`` with ``<wnid>_boxes.txt``, ``val/images/*.JPEG`` with
  ``val/val_annotations.txt``, ``test/images/``;
* ImageNet as ImageFolder: ``imagenet/{train,val}/<wnid>/*.JPEG``.

Images are class-dependent (a per-class colour plus noise), so a few optimisation steps learn
something. :data:`WRITERS` maps each registered dataset name to its writer.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from tests.helpers import write_idx


def _images(rng, labels, channels: int, size: int, classes: int) -> np.ndarray:
    base = (np.arange(classes) * (200 // max(1, classes - 1) if classes > 1 else 0) + 20) % 256
    x = base[labels][:, None, None, None] + rng.integers(0, 50, (len(labels), channels, size, size))
    return x.clip(0, 255).astype(np.uint8)


def _labels(rng, n: int, classes: int) -> np.ndarray:
    """Every class at least once (when n allows), in random order."""
    y = np.arange(n) % classes
    rng.shuffle(y)
    return y


def write_cifar(root: Path, classes: int = 10, n_train: int = 300, n_test: int = 100) -> Path:
    """CIFAR-10 (``classes=10``, five training batches) or CIFAR-100 (``classes=100``)."""
    rng = np.random.default_rng(classes)
    if classes == 10:
        folder, train_files, test_files, key = (
            root / "cifar-10-batches-py",
            [f"data_batch_{i}" for i in range(1, 6)],
            ["test_batch"],
            b"labels",
        )
        meta = ("batches.meta", {b"label_names": [f"c{i}".encode() for i in range(10)], b"num_vis": 3072})
    else:
        folder, train_files, test_files, key = root / "cifar-100-python", ["train"], ["test"], b"fine_labels"
        meta = ("meta", {b"fine_label_names": [f"f{i}".encode() for i in range(100)]})
    folder.mkdir(parents=True, exist_ok=True)

    def write(names, n):
        for name in names:
            y = _labels(rng, n // len(names), classes)
            data = _images(rng, y, 3, 32, classes).reshape(len(y), 3072)
            batch = {b"batch_label": name.encode(), key: [int(v) for v in y], b"data": data}
            if classes == 100:
                batch[b"coarse_labels"] = [int(v) // 5 for v in y]
            (folder / name).write_bytes(pickle.dumps(batch, protocol=2))

    write(train_files, n_train)
    write(test_files, n_test)
    (folder / meta[0]).write_bytes(pickle.dumps(meta[1], protocol=2))
    return folder


def write_idx_set(folder: Path, n_train: int = 300, n_test: int = 100, compress: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        y = _labels(rng, n, 10)
        write_idx(folder / f"{prefix}-images-idx3-ubyte", _images(rng, y, 1, 28, 10)[:, 0], compress)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", y, compress)
    return folder


def _jpeg(path: Path, array: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.transpose(1, 2, 0)).save(path, format="JPEG", quality=90)


def write_tiny_imagenet(root: Path, classes: int = 4, per_class: int = 40, val_per_class: int = 3) -> Path:
    """``tiny-imagenet-200/`` as the official zip unpacks (val images flat, labels in a text file)."""
    rng = np.random.default_rng(2)
    top = root / "tiny-imagenet-200"
    wnids = [f"n{1440000 + i:08d}" for i in range(classes)]
    top.mkdir(parents=True, exist_ok=True)
    (top / "wnids.txt").write_text("".join(w + "\n" for w in wnids))
    (top / "words.txt").write_text("".join(f"{w}\tthing {i}\n" for i, w in enumerate(wnids)))
    for c, wnid in enumerate(wnids):
        boxes = []
        for k in range(per_class):
            name = f"{wnid}_{k}.JPEG"
            _jpeg(top / "train" / wnid / "images" / name, _images(rng, np.array([c]), 3, 64, classes)[0])
            boxes.append(f"{name}\t0\t0\t63\t63\n")
        (top / "train" / wnid / f"{wnid}_boxes.txt").write_text("".join(boxes))
    annotations, k = [], 0
    for _ in range(val_per_class):
        for c, wnid in enumerate(wnids):
            name = f"val_{k}.JPEG"
            _jpeg(top / "val" / "images" / name, _images(rng, np.array([c]), 3, 64, classes)[0])
            annotations.append(f"{name}\t{wnid}\t0\t0\t63\t63\n")
            k += 1
    (top / "val" / "val_annotations.txt").write_text("".join(annotations))
    for k in range(2):
        _jpeg(top / "test" / "images" / f"test_{k}.JPEG", _images(rng, np.array([0]), 3, 64, classes)[0])
    return top


def write_imagenet(root: Path, classes: int = 4, per_class: int = 36, val_per_class: int = 2, size: int = 80) -> Path:
    """``imagenet/{train,val}/<wnid>/*.JPEG`` (the ImageFolder layout torchvision's ImageNet prepares)."""
    rng = np.random.default_rng(3)
    top = root / "imagenet"
    for c in range(classes):
        wnid = f"n{1000000 + c:08d}"
        for split, n in (("train", per_class), ("val", val_per_class)):
            for k in range(n):
                _jpeg(top / split / wnid / f"{split}_{c}_{k}.JPEG", _images(rng, np.array([c]), 3, size, classes)[0])
    return top


WRITERS = {
    "cifar10": lambda root: write_cifar(root, 10),
    "cifar100": lambda root: write_cifar(root, 100, n_train=400, n_test=200),
    "mnist": lambda root: write_idx_set(root / "MNIST" / "raw", compress=True),
    "fashion-mnist": lambda root: write_idx_set(root / "FashionMNIST" / "raw", compress=False),
    "tiny-imagenet": write_tiny_imagenet,
    "imagenet": write_imagenet,
}
