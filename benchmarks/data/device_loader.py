"""Batches from uint8 tensors that already live on the device (airbench-style shared GPU data).

Normalisation and augmentation (random crop with zero padding, horizontal flip; per sample)
run on the device, so the training loop never waits for CPU workers. Shuffling and
augmentation draw from one seeded generator: the same seed gives the same batches.
"""

from __future__ import annotations

import torch

from benchmarks.data.epochs import EpochLoader, Shard


class DeviceLoader(EpochLoader):
    def __init__(
        self,
        images: torch.Tensor,  # (N, C, H, W) uint8
        labels: torch.Tensor,  # (N,) int64
        mean,
        std,
        *,
        batch_size: int,
        train: bool,
        crop_padding: int = 0,
        flip: bool = False,
        seed: int = 0,
        drop_last: bool | None = None,
        channels_last: bool = False,
        shard: Shard = Shard(),
    ) -> None:
        self.images, self.labels = images, labels
        self.shard = shard
        self.device = images.device
        shape = (1, -1, 1, 1)
        self.mean = torch.tensor(mean, device=self.device).view(shape) * 255
        self.std = torch.tensor(std, device=self.device).view(shape) * 255
        self.batch_size, self.train = batch_size, train
        self.crop_padding, self.flip = (crop_padding, flip) if train else (0, False)
        self.drop_last = train if drop_last is None else drop_last
        self.channels_last = channels_last
        self.seed, self.epoch = seed, 0

    @property
    def num_items(self) -> int:
        return len(self.labels)

    def __iter__(self):
        n = len(self.labels)
        if self.train:
            g = self.generator(self.device)
            order = torch.randperm(n, device=self.device, generator=g)
        else:
            g, order = None, torch.arange(n, device=self.device)
        for i in range(len(self)):
            batch = order[i * self.batch_size : (i + 1) * self.batch_size]
            mine = self.shard.part(len(batch))  # the random draws are the whole batch's, then this shard's
            idx = batch[mine]
            x = self.images.index_select(0, idx)
            if self.crop_padding:
                x = random_crop(x, self.crop_padding, g, len(batch), mine)
            x = (x.float() - self.mean) / self.std
            if self.flip:
                flip = torch.rand(len(batch), device=self.device, generator=g)[mine] < 0.5
                x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, self.labels.index_select(0, idx)


def random_crop(
    x: torch.Tensor, pad: int, generator: torch.Generator, drawn: int | None = None, part: slice = slice(None)
) -> torch.Tensor:
    """Per-sample random crop of the zero-padded batch, back to the original size (one gather); the offsets are
    drawn for ``drawn`` images (the global batch) and ``part`` of them used (this shard's)."""
    n, c, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    drawn = n if drawn is None else drawn
    dy = torch.randint(0, 2 * pad + 1, (drawn, 1), device=x.device, generator=generator)[part]
    dx = torch.randint(0, 2 * pad + 1, (drawn, 1), device=x.device, generator=generator)[part]
    rows = (dy + torch.arange(h, device=x.device)).view(n, 1, h, 1)
    cols = (dx + torch.arange(w, device=x.device)).view(n, 1, 1, w)
    batch = torch.arange(n, device=x.device).view(n, 1, 1, 1)
    chan = torch.arange(c, device=x.device).view(1, c, 1, 1)
    return padded[batch, chan, rows, cols]
