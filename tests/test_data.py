"""Datasets: real Fashion-MNIST, sources on generated files, errors, and the device-resident loader."""

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks.data.datasets import _RESIDENT, DataError, load_splits, make_loaders
from benchmarks.data.device_loader import DeviceLoader, random_crop
from tests.helpers import write_mnist_like

DEBIAN = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(autouse=True)
def _fresh_cache(monkeypatch):
    monkeypatch.delenv("TISSUEBENCH_DATA", raising=False)
    _RESIDENT.clear()
    yield
    _RESIDENT.clear()


@pytest.mark.skipif(not DEBIAN.exists() and not os.environ.get("CI"), reason="dataset-fashion-mnist not installed")
def test_real_fashion_mnist_from_debian_package():
    tx, ty, vx, vy = load_splits("fashion-mnist")
    assert tx.shape == (60000, 1, 28, 28) and vx.shape == (10000, 1, 28, 28)
    assert tx.dtype == torch.uint8 and tx.numel() < 100 * 2**20  # under 100 MB on the device
    assert torch.bincount(ty).tolist() == [6000] * 10 and torch.bincount(vy).tolist() == [1000] * 10


@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize("layout", ["", "fashion-mnist", "FashionMNIST/raw"])
def test_idx_layouts_under_data_root(tmp_path, layout, compress):
    write_mnist_like(tmp_path / layout, compress=compress)
    tx, ty, vx, vy = load_splits("fashion-mnist", data_root=tmp_path)
    assert tx.shape == (40, 1, 28, 28) and vy.shape == (20,)


def test_env_var_is_searched(tmp_path, monkeypatch):
    write_mnist_like(tmp_path / "MNIST/raw")
    monkeypatch.setenv("TISSUEBENCH_DATA", str(tmp_path))
    assert load_splits("mnist")[0].shape[0] == 40


def test_missing_dataset_says_where_and_how(tmp_path):
    with pytest.raises(DataError) as info:
        load_splits("mnist", data_root=tmp_path)
    msg = str(info.value)
    assert str(tmp_path) in msg and "MNIST/raw" in msg and "--download" in msg


def test_truncated_file_is_reported(tmp_path):
    write_mnist_like(tmp_path, compress=False)
    f = tmp_path / "train-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:-100])
    with pytest.raises(DataError, match="truncated"):
        load_splits("fashion-mnist", data_root=tmp_path)


def test_corrupt_gzip_is_reported(tmp_path):
    write_mnist_like(tmp_path)
    f = tmp_path / "t10k-labels-idx1-ubyte.gz"
    f.write_bytes(f.read_bytes()[:10])
    with pytest.raises(DataError, match="corrupt dataset file"):
        load_splits("fashion-mnist", data_root=tmp_path)


def _write_cifar(root: Path, folder: str, files, key: bytes, n=6, classes=10):
    (root / folder).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in files:
        d = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), key: list(rng.integers(0, classes, n))}
        with open(root / folder / name, "wb") as f:
            pickle.dump(d, f)


def test_cifar10_and_100_torchvision_layout(tmp_path):
    _write_cifar(tmp_path, "cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"], b"labels")
    _write_cifar(tmp_path, "cifar-100-python", ["train", "test"], b"fine_labels", classes=100)
    tx, ty, vx, _ = load_splits("cifar10", data_root=tmp_path)
    assert tx.shape == (30, 3, 32, 32) and vx.shape == (6, 3, 32, 32)
    tx, ty, _, _ = load_splits("cifar100", data_root=tmp_path)
    assert tx.shape == (6, 3, 32, 32) and int(ty.max()) < 100


def test_imagefolder_streams(tmp_path):
    from PIL import Image

    for split in ("train", "val"):
        for cls in ("n01", "n02"):
            d = tmp_path / "tiny-imagenet-200" / split / cls
            d.mkdir(parents=True)
            for i in range(3):
                Image.fromarray(np.full((64, 64, 3), 40 * i, np.uint8)).save(d / f"{i}.JPEG", format="JPEG")
    info, train, test = make_loaders("tiny-imagenet", batch_size=2, data_root=tmp_path, workers=0)
    x, y = next(iter(train))
    assert x.shape == (2, 3, 64, 64) and x.dtype == torch.float32
    assert sum(len(b[1]) for b in test) == 6 and len(train) == 3


def test_imagefolder_missing(tmp_path):
    with pytest.raises(DataError, match=r"not found in: .*imagenet\. .*split=s"):
        make_loaders("imagenet", batch_size=2, data_root=tmp_path)


def test_unknown_dataset():
    with pytest.raises(DataError, match="unknown dataset 'cifar11'.*cifar10"):
        load_splits("cifar11")


# -- the device-resident loader (same code path on CPU as on GPU) ---------------------------------
def _loader(train=True, seed=0, **kw):
    images = torch.arange(10 * 3 * 4 * 4, dtype=torch.int64).remainder(256).to(torch.uint8).view(10, 3, 4, 4)
    return DeviceLoader(
        images, torch.arange(10), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), batch_size=4, train=train, seed=seed, **kw
    )


def test_device_loader_is_seeded_and_epoch_dependent():
    a = [y.tolist() for _, y in _loader(crop_padding=1, flip=True)]
    b = [y.tolist() for _, y in _loader(crop_padding=1, flip=True)]
    c = _loader(crop_padding=1, flip=True)
    c.set_epoch(1)
    assert a == b and a != [y.tolist() for _, y in c]
    assert len(a) == 2 and all(len(y) == 4 for y in a)  # drop_last for training


def test_eval_loader_keeps_order_and_all_samples():
    loader = _loader(train=False, crop_padding=2, flip=True)  # no augmentation at evaluation
    xs, ys = zip(*loader)
    assert torch.cat(ys).tolist() == list(range(10))
    expected = (loader.images.float() - 127.5) / 63.75
    torch.testing.assert_close(torch.cat(xs), expected)


def test_random_crop_matches_slicing():
    x = torch.randint(0, 255, (5, 2, 6, 6), dtype=torch.uint8)
    g = torch.Generator().manual_seed(3)
    out = random_crop(x, 2, g)
    g = torch.Generator().manual_seed(3)
    dy = torch.randint(0, 5, (5, 1), generator=g)
    dx = torch.randint(0, 5, (5, 1), generator=g)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(5):
        ref = padded[i, :, dy[i, 0] : dy[i, 0] + 6, dx[i, 0] : dx[i, 0] + 6]
        assert torch.equal(out[i], ref)


def test_flip_and_channels_last():
    loader = _loader(flip=True, channels_last=True)
    x, _ = next(iter(loader))
    assert x.is_contiguous(memory_format=torch.channels_last) and x.shape == (4, 3, 4, 4)


# -- real layouts (tests/layouts.py) ------------------------------------------------------------------
def test_tiny_imagenet_as_unpacked(tmp_path):
    """val/images + val_annotations.txt, read directly; labels are the train folders' class indices."""
    from tests.layouts import write_tiny_imagenet

    write_tiny_imagenet(tmp_path, classes=4, per_class=3, val_per_class=2)
    info, train, test = make_loaders("tiny-imagenet", batch_size=4, data_root=tmp_path, workers=0)
    assert train.num_items == 12 and test.num_items == 8
    labels = [int(y) for _, ys in test for y in ys]
    assert sorted(labels) == [0, 0, 1, 1, 2, 2, 3, 3]
    x, _ = next(iter(test))
    assert x.shape[1:] == (3, 64, 64)
    # each val image is coloured by its class (tests/layouts.py): the annotation file decides the label
    means = {}
    for xs, ys in test:
        for xi, yi in zip(xs, ys):
            means.setdefault(int(yi), []).append(float(xi.mean()))
    assert all(max(means[c]) < min(means[c + 1]) for c in range(3))


def test_tiny_imagenet_bad_annotation_is_one_line(tmp_path):
    from tests.layouts import write_tiny_imagenet

    top = write_tiny_imagenet(tmp_path, classes=2, per_class=1, val_per_class=1)
    (top / "val" / "val_annotations.txt").write_text("val_0.JPEG\tn99999999\n")
    with pytest.raises(DataError, match=r"val_annotations.txt line 1: expected 'FILE<TAB>WNID'"):
        make_loaders("tiny-imagenet", batch_size=1, data_root=tmp_path, workers=0)


def test_folder_limit_is_class_stratified(tmp_path):
    """A class-sorted folder's first N images are one class; train_limit takes every class in turn."""
    from tests.layouts import write_imagenet

    write_imagenet(tmp_path, classes=4, per_class=5, val_per_class=3, size=40)
    _, train, test = make_loaders(
        "imagenet", batch_size=2, data_root=tmp_path, workers=0, train_limit=8, test_limit=5, input_size=32
    )
    targets = [train.dataset.dataset.targets[i] for i in train.dataset.indices]
    assert sorted(targets) == [0, 0, 1, 1, 2, 2, 3, 3]
    test_targets = [test.dataset.dataset.targets[i] for i in test.dataset.indices]
    assert sorted(test_targets) == [0, 0, 1, 2, 3]
    x, _ = next(iter(train))
    assert x.shape == (2, 3, 32, 32)  # data.input_size resizes image folders


def test_stratified_order():
    from benchmarks.data.folder import stratified

    assert stratified([0, 0, 0, 1, 1, 2], 4) == [0, 1, 3, 5]
    assert stratified([0, 0, 1], 10) == [0, 1, 2]


def test_named_data_root_must_exist(tmp_path, monkeypatch):
    """A typo must not fall back silently to the system copy of the data."""
    with pytest.raises(DataError, match=r"--data-root .*typo is not a folder"):
        load_splits("fashion-mnist", data_root=tmp_path / "typo")
    monkeypatch.setenv("TISSUEBENCH_DATA", str(tmp_path / "nope"))
    with pytest.raises(DataError, match=r"\$TISSUEBENCH_DATA .*nope is not a folder"):
        load_splits("fashion-mnist")


def test_labels_out_of_range_fail_before_training(tmp_path):
    from tests.helpers import write_idx

    write_mnist_like(tmp_path, compress=False)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.full(20, 200), compress=False)
    with pytest.raises(DataError, match=r"test labels lie in 200\.\.200, outside 0\.\.9"):
        load_splits("fashion-mnist", data_root=tmp_path)


def test_list_datasets_says_where(tmp_path, capsys):
    from tests.layouts import write_cifar
    from tissuebench.cli import main

    write_cifar(tmp_path, 10, n_train=10, n_test=5)
    assert main(["list", "datasets", "cifar*", "--data-root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"found: {tmp_path}/cifar-10-batches-py" in out.split("cifar100 ")[0]  # cifar10's entry
    assert "not found (--download fetches it)" in out.split("cifar100 ")[1] and "looked in" in out
