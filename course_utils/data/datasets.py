"""Images in memory: ``TensorImageDataset``, scikit-learn's real handwritten digits, uint8 views of datasets.

Example:
    >>> train_set = digits_dataset(train=True)
    >>> train_set.images.shape[1:], train_set.images.dtype, len(train_set.classes)
    (torch.Size([3, 32, 32]), torch.uint8, 10)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from .subsets import _stratified_sample

# ----------------------------------------------------------------------------- transforms


# ----------------------------------------------------------------------------- in-memory images


class TensorImageDataset(Dataset):
    """Images kept in memory as uint8 ``(N, 3, H, W)`` with one or more label tensors.

    ``dataset[i]`` is ``(transform(image), label_1[i], ...)``; without a transform the image
    is returned as a float tensor in [0, 1].

    Args:
        images: uint8 tensor ``(N, 3, H, W)``.
        *targets: one or more integer tensors ``(N,)``; the first is ``.targets``.
        classes: names of the first target's classes.
        transform: per-image callable on a uint8 ``(3, H, W)`` tensor (``from_tensor=True`` pipelines).
        flip_keeps_label: whether a mirrored image keeps its class (photos: yes; digits: no, a
            mirrored 3 is not a 3). Loaders only flip when it does.
        border_value: grey level 0-255 that padding should use (the images' background).
    """

    def __init__(
        self,
        images: torch.Tensor,
        *targets: torch.Tensor,
        classes: Sequence[str] = (),
        transform=None,
        flip_keeps_label: bool = True,
        border_value: int = 0,
    ):
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be uint8 (N, 3, H, W), got {images.dtype} {tuple(images.shape)}")
        if not targets or any(len(t) != len(images) for t in targets):
            raise ValueError("give at least one target tensor with one label per image")
        self.images = images
        self.all_targets = [torch.as_tensor(t, dtype=torch.long) for t in targets]
        self.classes = list(classes)
        self.transform = transform
        self.flip_keeps_label = flip_keeps_label
        self.border_value = border_value

    @property
    def targets(self) -> torch.Tensor:
        return self.all_targets[0]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        image = self.images[index]
        image = self.transform(image) if self.transform is not None else image.float() / 255
        return (image, *(t[index] for t in self.all_targets))

    def with_transform(self, transform) -> TensorImageDataset:
        """The same images and labels (shared, not copied) with another transform."""
        return self._derived(self.images, self.all_targets, transform)

    def select(self, index: torch.Tensor) -> TensorImageDataset:
        """The images and labels at ``index`` (``(K,)`` long), untransformed, with the same data facts."""
        return self._derived(self.images[index], [t[index] for t in self.all_targets], None)

    def _derived(self, images, targets, transform) -> TensorImageDataset:
        # Class names, flip rule and border travel with the images, whatever is derived from them.
        return TensorImageDataset(
            images,
            *targets,
            classes=self.classes,
            transform=transform,
            flip_keeps_label=self.flip_keeps_label,
            border_value=self.border_value,
        )


# ----------------------------------------------------------------------------- digits


def digits_dataset(
    train: bool = True, test_fraction: float = 0.25, seed: int = 0, size: int = 32, transform=None
) -> TensorImageDataset:
    """scikit-learn's 1,797 real 8x8 handwritten digits as a 10-class RGB image dataset.

    The 16 grey levels become dark ink on a white page, upsampled (bilinear) to
    ``size`` x ``size`` and repeated over 3 channels. The train/test split is stratified
    and fixed by ``seed``, so every notebook sees the same test images.

    Args:
        train: the training split, else the test split.
        test_fraction: share of each class held out for testing.
        size: stored resolution (the transforms resize further as needed).
        transform: per-image transform for uint8 tensors (see ``image_transforms(from_tensor=True)``).
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    ink = torch.tensor(digits.images, dtype=torch.float32) / 16.0  # (N, 8, 8) in [0, 1]
    page = 1.0 - ink
    images = torch.nn.functional.interpolate(page[:, None], size=(size, size), mode="bilinear", align_corners=False)
    images = (images.clamp(0, 1) * 255).round().to(torch.uint8).repeat(1, 3, 1, 1)
    targets = torch.tensor(digits.target, dtype=torch.long)
    test_idx = _stratified_sample(targets.numpy(), round(test_fraction * len(targets)), seed)
    mask = np.zeros(len(targets), dtype=bool)
    mask[test_idx] = True
    keep = torch.from_numpy(~mask if train else mask)
    # Mirrored digits are other digits (or none), and padding should look like the page.
    return TensorImageDataset(
        images[keep],
        targets[keep],
        classes=[str(d) for d in range(10)],
        transform=transform,
        flip_keeps_label=False,
        border_value=255,
    )


# ----------------------------------------------------------------------------- CIFAR-10


def as_uint8_images(dataset) -> TensorImageDataset:
    """The images of CIFAR-10, digits or a ``Subset`` of them as an untransformed ``TensorImageDataset``.

    CIFAR-10's decoded arrays are already in memory (150 MB for the train split), so this
    copies no file and decodes nothing.
    """
    if isinstance(dataset, Subset):
        return as_uint8_images(dataset.dataset).select(torch.as_tensor(list(dataset.indices), dtype=torch.long))
    if isinstance(dataset, TensorImageDataset):
        return dataset.with_transform(None)
    data = getattr(dataset, "data", None)
    if isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 4:
        images = torch.from_numpy(data).permute(0, 3, 1, 2).contiguous()
        return TensorImageDataset(images, torch.as_tensor(dataset.targets), classes=getattr(dataset, "classes", ()))
    raise TypeError(f"Cannot take the images of a {type(dataset).__name__} without decoding them.")


# ----------------------------------------------------------------------------- subsets
