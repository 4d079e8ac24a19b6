"""Large datasets (Tiny-ImageNet, ImageNet) stream from an ImageFolder tree through a DataLoader."""

from __future__ import annotations

from pathlib import Path

import torch

from benchmarks.data.epochs import EpochLoader


class StreamLoader(EpochLoader):
    """A DataLoader over ImageFolder with the loader interface of :class:`DeviceLoader`."""

    def __init__(
        self,
        root: Path,
        info,
        *,
        train: bool,
        batch_size: int,
        seed: int,
        device,
        workers: int = 4,
        limit: int | None = None,
        channels_last: bool = False,
    ) -> None:
        import torchvision.transforms as T
        from torchvision.datasets import ImageFolder

        size = info.input_size
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
        self.dataset = ImageFolder(str(root), transform=T.Compose(tfm))
        if limit:
            self.dataset = torch.utils.data.Subset(self.dataset, range(min(limit, len(self.dataset))))
        self.train, self.batch_size, self.seed, self.epoch = train, batch_size, seed, 0
        self.drop_last = train
        self.device, self.workers, self.channels_last = torch.device(device), workers, channels_last

    @property
    def num_items(self) -> int:
        return len(self.dataset)

    def __iter__(self):
        g = self.generator()
        loader = torch.utils.data.DataLoader(
            self.dataset,
            batch_size=self.batch_size,
            shuffle=self.train,
            drop_last=self.train,
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


def find_folder(info, roots, folder_name: str) -> Path:
    looked = []
    for root in roots:
        path = Path(root) / folder_name
        looked.append(str(path))
        if (path / "train").is_dir() and (path / "val").is_dir():
            return path
    raise info.missing("no train/ and val/ folders in: " + ", ".join(looked))
