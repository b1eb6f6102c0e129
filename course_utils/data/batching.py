"""Batches cut from tensors already in memory, reshuffled every epoch: the base of the kit's fast loaders.

Two loaders work this way: ``DeviceImageLoader`` (uint8 images on the training device,
transformed a whole batch at a time) and ``train.features.FeatureLoader`` (outputs of a
frozen front, computed once). They share the epoch logic here: one random order per
epoch drawn up front from torch's global CPU generator (which ``fit`` stores in its
checkpoints, so a resumed run draws the same batches), then batches of ``batch_size``
indices into that order.

Example:
    >>> import torch
    >>> class Numbers(InMemoryBatches):
    ...     def _batch(self, index, positions, epoch):
    ...         return index.tolist()
    >>> list(Numbers(count=5, batch_size=2))
    [[0, 1], [2, 3], [4]]
    >>> len(Numbers(count=5, batch_size=2, drop_last=True))
    2
"""

from __future__ import annotations

import torch


class InMemoryBatches:
    """An iterable of batches over ``count`` items held in memory.

    Args:
        count: number of items.
        batch_size: items per batch.
        shuffle: a new random order every epoch.
        drop_last: leave out a last, smaller batch.
        device: where the index tensors (and the items) live.

    Subclasses implement ``_batch(index, positions, epoch)`` (``index``: long ``(B,)`` item
    indices on ``device``; ``positions``: the batch's slice of the epoch's order; ``epoch``:
    what ``_draw_epoch`` drew) and may draw per-epoch randomness in ``_draw_epoch(count)``.
    """

    augment = False  # whether batches differ from epoch to epoch beyond their order

    def __init__(
        self,
        count: int,
        batch_size: int,
        shuffle: bool = False,
        drop_last: bool = False,
        device: torch.device | str = "cpu",
    ):
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
        if count == 0:
            raise ValueError("The dataset is empty: check the subset you passed.")
        self.count, self.batch_size, self.shuffle, self.drop_last = count, batch_size, shuffle, drop_last
        self.device = torch.device(device)

    def __len__(self) -> int:
        full, rest = divmod(self.count, self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def __iter__(self):
        # All of the epoch's randomness comes from torch's global generator, drawn up front.
        order = torch.randperm(self.count) if self.shuffle else torch.arange(self.count)
        epoch = self._draw_epoch(self.count)
        order = order.to(self.device)
        for batch in range(len(self)):
            positions = slice(batch * self.batch_size, (batch + 1) * self.batch_size)
            yield self._batch(order[positions], positions, epoch)

    def _draw_epoch(self, count: int):
        """Per-epoch randomness beyond the order (augmentation); drawn after the order."""
        return None

    def _batch(self, index: torch.Tensor, positions: slice, epoch):
        raise NotImplementedError
