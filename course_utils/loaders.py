"""Batches for training and evaluation: one entry point, ``make_loader``.

Example:
    >>> mean, std = cu.normalization_for("resnet18")
    >>> train_loader = cu.make_loader(train_subset, batch_size=64, shuffle=True, augment=True,
    ...                               image_size=224, mean=mean, std=std)
"""
from __future__ import annotations

from typing import Sequence

from torch.utils.data import DataLoader, Subset

from .architectures import IMAGENET_MEAN, IMAGENET_STD
from .data import TensorImageDataset, image_transforms


def _with_transform(dataset, transform, from_tensor: bool):
    """A view of ``dataset`` whose items go through ``transform`` (the originals are untouched)."""
    if isinstance(dataset, Subset):
        return Subset(_with_transform(dataset.dataset, transform, from_tensor), dataset.indices)
    if isinstance(dataset, TensorImageDataset):
        return dataset.with_transform(transform)
    if hasattr(dataset, "transform"):
        import copy

        view = copy.copy(dataset)
        view.transform = transform
        return view
    raise TypeError(f"Cannot attach a transform to a {type(dataset).__name__}.")


def _holds_tensors(dataset) -> bool:
    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    return isinstance(dataset, TensorImageDataset)


def make_loader(
    dataset,
    batch_size: int = 64,
    shuffle: bool = False,
    augment: bool = False,
    image_size: int = 224,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    num_workers: int = 0,
    drop_last: bool = False,
):
    """Batches of ``(images (N, 3, image_size, image_size), labels (N,) [, more labels])``.

    Images are resized, optionally augmented (random crop with padding 4 + flip, seed 001)
    and normalized with ``mean``/``std`` (use ``normalization_for(model)``).

    Args:
        dataset: CIFAR-10, digits, fruit datasets, ``TensorImageDataset`` or ``Subset`` of them;
            their own transform is replaced, not modified.
        batch_size: images per batch.
        shuffle: reshuffle every epoch (training).
        augment: random crop + horizontal flip (training).
        image_size: side length fed to the network.
        mean, std: normalization of the weights in use.
        num_workers: DataLoader worker processes.
        drop_last: drop a last, smaller batch.
    """
    from_tensor = _holds_tensors(dataset)
    transform = image_transforms(image_size, mean, std, augment=augment, from_tensor=from_tensor)
    return DataLoader(_with_transform(dataset, transform, from_tensor), batch_size=batch_size, shuffle=shuffle,
                      num_workers=num_workers, drop_last=drop_last, persistent_workers=num_workers > 0)
