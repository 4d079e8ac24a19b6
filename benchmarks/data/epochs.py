"""What every loader shares: batch counting, the epoch, and the seeded generator per epoch.

Batches depend only on (seed, epoch): a run resumed at epoch e sees the batches an
uninterrupted run would have seen.
"""

from __future__ import annotations

import torch


class EpochLoader:
    batch_size: int
    drop_last: bool
    seed: int = 0
    epoch: int = 0

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
