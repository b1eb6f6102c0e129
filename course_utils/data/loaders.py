"""Batches for training and evaluation: one entry point, ``make_loader``.

Two paths give the same batches (same resizing, same augmentation distribution):

* the **fast path** (default): when the dataset holds its images as uint8 tensors, or
  can be turned into them without decoding (CIFAR-10, digits, ``TensorImageDataset``
  and ``Subset`` of them), the images move to the training device once and every batch
  is resized, cropped, flipped and normalized there as a whole
  (``device_loader.DeviceImageLoader``);
* the **per-image path** (``fast=False``, or datasets of image files such as the fruit
  folders): a ``DataLoader`` running the seed-style per-image transforms in workers.

Both loaders say whether they augment (``.augment``), so that feature caching can tell
whether the frozen layers' outputs may be computed once.

Example:
    >>> from course_utils.data import digits_dataset
    >>> from course_utils.models import normalization_for
    >>> mean, std = normalization_for("resnet18")
    >>> train_loader = make_loader(digits_dataset(train=True), batch_size=64, shuffle=True, augment=True,
    ...                            image_size=64, mean=mean, std=std, device="cpu")
    >>> images, labels = next(iter(train_loader))
    >>> type(train_loader).__name__, tuple(images.shape), train_loader.augment
    ('DeviceImageLoader', (64, 3, 64, 64), True)
"""

from __future__ import annotations

from collections.abc import Sequence

from torch.utils.data import DataLoader, Subset

from .._util import default_device
from ..models.architectures import IMAGENET_MEAN, IMAGENET_STD
from .datasets import TensorImageDataset, as_uint8_images
from .device_loader import DeviceImageLoader
from .transforms import image_transforms


class ImageFileLoader(DataLoader):
    """The per-image path: a ``DataLoader`` whose workers run the per-image transforms.

    It is a plain ``DataLoader`` that also says whether its transforms augment, which
    feature caching needs to know (random crops must not be frozen into a cache).
    """

    def __init__(self, dataset, *, augment: bool, **dataloader_options):
        super().__init__(dataset, **dataloader_options)
        self.augment = augment


def _with_transform(dataset, transform):
    """A view of ``dataset`` whose items go through ``transform`` (the originals are untouched)."""
    if isinstance(dataset, Subset):
        return Subset(_with_transform(dataset.dataset, transform), dataset.indices)
    if isinstance(dataset, TensorImageDataset):
        return dataset.with_transform(transform)
    if hasattr(dataset, "transform"):
        import copy

        view = copy.copy(dataset)
        view.transform = transform
        return view
    raise TypeError(f"Cannot attach a transform to a {type(dataset).__name__}.")


def _base_dataset(dataset):
    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    return dataset


def _holds_tensors(dataset) -> bool:
    return isinstance(_base_dataset(dataset), TensorImageDataset)


def _uint8_images_or_none(dataset) -> TensorImageDataset | None:
    """The dataset as in-memory uint8 images if that needs no decoding, else None."""
    try:
        return as_uint8_images(dataset)
    except TypeError:
        return None


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
    *,
    fast: bool = True,
    device=None,
):
    """Batches of ``(images (N, 3, image_size, image_size), labels (N,) [, more labels])``.

    Images are resized, optionally augmented (random crop with padding 4 + flip, as in the COMP5541 notebook)
    and normalized with ``mean``/``std`` (use ``normalization_for(model)``).

    Args:
        dataset: CIFAR-10, digits, fruit datasets, ``TensorImageDataset`` or ``Subset`` of them;
            their own transform is replaced, not modified.
        batch_size: images per batch.
        shuffle: reshuffle every epoch (training).
        augment: random crop with padding 4 + horizontal flip (training). The dataset decides
            what is label-preserving: digits are never mirrored and are padded with white.
        image_size: side length fed to the network.
        mean, std: normalization of the weights in use.
        num_workers: DataLoader worker processes (per-image path only; the fast path needs none).
        drop_last: drop a last, smaller batch.
        fast: use the on-device batched path when the dataset allows it (see the module notes);
            ``False`` always gives the per-image ``DataLoader``.
        device: the training device (default: CUDA if available, else CPU). The fast path keeps
            the images there; the per-image path pins its batches in memory for a GPU.

    Returns:
        A ``DeviceImageLoader`` (fast path) or an ``ImageFileLoader`` (a ``DataLoader``); both
        iterate the same way and have ``.augment``, ``.batch_size`` and ``.dataset``.

    Example:
        >>> from torch.utils.data import Subset
        >>> from course_utils.data import digits_dataset
        >>> test_loader = make_loader(Subset(digits_dataset(train=False), range(100)), batch_size=32,
        ...                           image_size=32, device="cpu")
        >>> len(test_loader), [tuple(t.shape) for t in next(iter(test_loader))]
        (4, [(32, 3, 32, 32), (32,)])
    """
    device = default_device(device)
    images = _uint8_images_or_none(dataset) if fast else None
    if images is not None:
        return DeviceImageLoader(
            images,
            batch_size=batch_size,
            shuffle=shuffle,
            augment=augment,
            image_size=image_size,
            mean=mean,
            std=std,
            device=device,
            drop_last=drop_last,
        )
    base = _base_dataset(dataset)
    transform = image_transforms(
        image_size,
        mean,
        std,
        augment=augment,
        from_tensor=_holds_tensors(dataset),
        flip=getattr(base, "flip_keeps_label", True),
        border_value=getattr(base, "border_value", 0),
    )
    return ImageFileLoader(
        _with_transform(dataset, transform),
        augment=augment,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=num_workers,
        drop_last=drop_last,
        persistent_workers=num_workers > 0,
        pin_memory=device.type == "cuda",
    )
