"""What every loader shares: batch counting, the epoch, and the seeded generator per epoch.

Batches depend only on (seed, epoch): a run resumed at epoch e sees the batches an
uninterrupted run would have seen.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Shard:
    """This process's part of every batch when one job trains on ``world`` workers (data parallel).

    Every worker draws the same global batch (and its augmentation) from (seed, epoch) and keeps its contiguous
    part: the union of the parts is the batch a single device sees, and a test batch is evaluated exactly once.
    """

    rank: int = 0
    world: int = 1

    def part(self, n: int) -> slice:
        return slice(n * self.rank // self.world, n * (self.rank + 1) // self.world)


class EpochLoader:
    batch_size: int  # the global batch: a shard's batches are parts of it
    drop_last: bool
    seed: int = 0
    epoch: int = 0
    shard: Shard = Shard()

    @property
    def num_items(self) -> int:
        """Images in the split (before batching)."""
        raise NotImplementedError

    def __len__(self) -> int:
        n = self.num_items
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def generator(self, device="cpu") -> torch.Generator:
        g = torch.Generator(device=device)
        g.manual_seed(self.seed * 100_003 + self.epoch)
        return g
