"""Large datasets (Tiny-ImageNet, ImageNet) stream from image folders through a DataLoader.

Layouts read as they come:

* ``train/<class>/**/*.JPEG`` (ImageFolder; Tiny-ImageNet's ``train/<wnid>/images/`` included);
* ``val/<class>/*.JPEG`` (ImageNet as torchvision's ``ImageNet`` prepares it), or Tiny-ImageNet's
  flat ``val/images/*.JPEG`` with labels in ``val/val_annotations.txt`` (read directly: nobody
  rearranges 10,000 files by hand).

``limit`` takes a class-stratified subset (the first images of every class in turn), not the first
images of a class-sorted folder, which would keep only the first classes.
"""

from __future__ import annotations

from pathlib import Path

import torch

from benchmarks.data.epochs import EpochLoader, Shard
from benchmarks.data.images import check_images

ANNOTATIONS = "val_annotations.txt"


class AnnotatedImages(torch.utils.data.Dataset):
    """Tiny-ImageNet's validation split: flat ``images/`` plus a tab-separated file -> wnid list."""

    def __init__(self, folder: Path, class_to_idx: dict[str, int], transform, missing) -> None:
        from torchvision.datasets.folder import default_loader

        self.loader, self.transform = default_loader, transform
        self.samples = []
        for n, line in enumerate((folder / ANNOTATIONS).read_text().splitlines(), 1):
            if not line.strip():
                continue
            parts = line.split("\t")
            if len(parts) < 2 or parts[1] not in class_to_idx:
                raise missing(f"{folder / ANNOTATIONS} line {n}: expected 'FILE<TAB>WNID' with a class of train/")
            path = folder / "images" / parts[0]
            if not path.is_file():
                raise missing(f"{folder / ANNOTATIONS} line {n}: {path} does not exist")
            self.samples.append((str(path), class_to_idx[parts[1]]))
        self.targets = [t for _, t in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        path, target = self.samples[i]
        return self.transform(self.loader(path)), target


def image_split(root: Path, split: str, transform, missing) -> torch.utils.data.Dataset:
    """``train`` or ``val`` of an image-folder dataset (class indices always those of ``train/``)."""
    from torchvision.datasets import ImageFolder

    train = ImageFolder(str(root / "train"), transform=transform)
    if split == "train":
        return train
    if (root / "val" / ANNOTATIONS).is_file():
        return AnnotatedImages(root / "val", train.class_to_idx, transform, missing)
    val = ImageFolder(str(root / "val"), transform=transform)
    if val.class_to_idx != {c: train.class_to_idx[c] for c in val.classes if c in train.class_to_idx}:
        raise missing(f"{root / 'val'}: its class folders are not classes of {root / 'train'}")
    return val


def stratified(targets: list[int], limit: int) -> list[int]:
    """The first ``limit`` indices taking every class in turn (round robin over classes, in file order)."""
    rank, seen = [], {}
    for i, t in enumerate(targets):
        rank.append((seen.get(t, 0), t, i))
        seen[t] = seen.get(t, 0) + 1
    return sorted(i for _, _, i in sorted(rank)[:limit])


class StreamLoader(EpochLoader):
    """A DataLoader over an image folder with the loader interface of :class:`DeviceLoader`."""

    def __init__(
        self,
        root: Path,
        split: str,
        info,
        *,
        train: bool,
        batch_size: int,
        seed: int,
        device,
        workers: int = 4,
        limit: int | None = None,
        channels_last: bool = False,
        size: int | None = None,
        skip_unreadable: bool = False,
        shard: Shard = Shard(),
    ) -> None:
        import torchvision.transforms as T

        size = size or info.input_size
        if train:
            crop = T.RandomResizedCrop(size) if size >= 128 else T.RandomCrop(size, padding=info.crop_padding)
            tfm = [crop] + ([T.RandomHorizontalFlip()] if info.flip else [])
        else:
            tfm = (
                [T.Resize(int(size * 1.14)), T.CenterCrop(size)]
                if size >= 128
                else [T.Resize(size), T.CenterCrop(size)]
            )
        tfm += [T.ToTensor(), T.Normalize(info.mean, info.std)]
        self.dataset = image_split(Path(root), split, T.Compose(tfm), info.missing)
        if self.dataset.targets and max(self.dataset.targets) >= info.num_classes:
            raise info.missing(
                f"{root}/{split} has {max(self.dataset.targets) + 1} classes, more than {info.num_classes}"
            )
        chosen = stratified(self.dataset.targets, limit) if limit and limit < len(self.dataset) else None
        indices = chosen if chosen is not None else range(len(self.dataset))
        samples = self.dataset.samples
        left_out = check_images(root, split, [samples[i][0] for i in indices], skip_unreadable, info.missing)
        if left_out:
            chosen = [i for i in indices if samples[i][0] not in left_out]
        if chosen is not None:
            self.dataset = torch.utils.data.Subset(self.dataset, chosen)
        self.train, self.batch_size, self.seed, self.epoch = train, batch_size, seed, 0
        self.drop_last, self.shard = train, shard
        self.device, self.workers, self.channels_last = torch.device(device), workers, channels_last

    @property
    def num_items(self) -> int:
        return len(self.dataset)

    def __iter__(self):
        g = self.generator()
        batching = dict(batch_size=self.batch_size, shuffle=self.train, drop_last=self.train)
        if self.shard.world > 1:  # a distributed sampler: this worker's part of every global batch
            batching = dict(batch_sampler=ShardedBatches(len(self.dataset), self.batch_size, self.train, g, self.shard))
        loader = torch.utils.data.DataLoader(
            self.dataset,
            **batching,
            generator=g,
            num_workers=self.workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
        )
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        for x, y in loader:
            yield (
                x.to(self.device, non_blocking=True, memory_format=memory_format),
                y.to(self.device, non_blocking=True),
            )


class ShardedBatches(torch.utils.data.Sampler):
    """The indices of one worker's part of every global batch of an epoch (all workers draw the same order)."""

    def __init__(self, n: int, batch_size: int, train: bool, generator: torch.Generator, shard: Shard) -> None:
        self.n, self.batch_size, self.train, self.generator, self.shard = n, batch_size, train, generator, shard

    def __len__(self) -> int:
        return self.n // self.batch_size if self.train else -(-self.n // self.batch_size)

    def __iter__(self):
        order = torch.randperm(self.n, generator=self.generator) if self.train else torch.arange(self.n)
        for i in range(len(self)):
            batch = order[i * self.batch_size : (i + 1) * self.batch_size]
            yield batch[self.shard.part(len(batch))].tolist()


def find_folder(roots, folder_name: str) -> tuple[Path | None, list[str]]:
    """The first ``root/folder_name`` with ``train/`` and ``val/``; else (None, where it looked)."""
    looked = []
    for root in roots:
        path = Path(root) / folder_name
        looked.append(str(path))
        if (path / "train").is_dir() and (path / "val").is_dir():
            return path, looked
    return None, looked
