"""Datasets and subsets: CIFAR-10, scikit-learn's digits, in-memory image tensors, transforms.

Images follow one convention everywhere: RGB, and after the transforms a float tensor
``(3, H, W)`` normalized with the mean/std that the chosen weights expect (ImageNet
statistics for torchvision's pretrained nets; ``normalization_for(model)`` tells).

Example:
    >>> import course_utils as cu
    >>> train_set = cu.digits_dataset(train=True)
    >>> subset = cu.subset_fraction(train_set, 0.1, seed=0)
    >>> len(subset) == round(0.1 * len(train_set))
    True
"""
from __future__ import annotations

import json
import os
import warnings
from collections import Counter
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Subset
from torchvision.datasets import CIFAR10

from . import assets
from .architectures import IMAGENET_MEAN, IMAGENET_STD

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
STANDIN_MANIFEST = "course-standin.json"


# ----------------------------------------------------------------------------- transforms


def image_transforms(
    image_size: int = 224,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    augment: bool = False,
    from_tensor: bool = False,
    flip: bool = True,
    border_value: int = 0,
) -> Callable:
    """The per-image pipeline: resize, (random crop with padding 4, horizontal flip), normalize.

    Args:
        image_size: output side length; images are resized so their shorter side is this.
        mean, std: per-channel normalization for the weights in use.
        augment: add seed 001's train augmentation (``RandomCrop(size, padding=4)`` + flip).
        from_tensor: inputs are uint8 tensors ``(3, H, W)`` instead of PIL images.
        flip: with ``augment``, also mirror half of the images (off for data whose mirror
            image is another class, such as digits).
        border_value: grey level 0-255 of the crop's padding (0 = black; 255 suits white pages).

    Returns:
        A callable ``image -> float tensor (3, image_size, image_size)``.
    """
    from torchvision import transforms as T

    steps: list = [T.ConvertImageDtype(torch.float32)] if from_tensor else []
    steps.append(T.Resize(image_size, antialias=True))
    steps.append(T.CenterCrop(image_size))
    if augment:
        steps.append(T.RandomCrop(image_size, padding=4, fill=border_value / 255 if from_tensor else border_value))
        if flip:
            steps.append(T.RandomHorizontalFlip())
    if not from_tensor:
        steps.append(T.ToTensor())
    steps.append(T.Normalize(mean, std))
    return T.Compose(steps)


def unnormalize(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Undo ``Normalize(mean, std)``: ``(…, 3, H, W)`` normalized -> RGB in [0, 1] (clamped)."""
    mean_t = torch.as_tensor(mean, dtype=images.dtype, device=images.device).view(-1, 1, 1)
    std_t = torch.as_tensor(std, dtype=images.dtype, device=images.device).view(-1, 1, 1)
    return (images * std_t + mean_t).clamp(0, 1)


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

    def __init__(self, images: torch.Tensor, *targets: torch.Tensor, classes: Sequence[str] = (), transform=None,
                 flip_keeps_label: bool = True, border_value: int = 0):
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

    def with_transform(self, transform) -> "TensorImageDataset":
        """The same images and labels (shared, not copied) with another transform."""
        return self._derived(self.images, self.all_targets, transform)

    def select(self, index: torch.Tensor) -> "TensorImageDataset":
        """The images and labels at ``index`` (``(K,)`` long), untransformed, with the same data facts."""
        return self._derived(self.images[index], [t[index] for t in self.all_targets], None)

    def _derived(self, images, targets, transform) -> "TensorImageDataset":
        # Class names, flip rule and border travel with the images, whatever is derived from them.
        return TensorImageDataset(images, *targets, classes=self.classes, transform=transform,
                                  flip_keeps_label=self.flip_keeps_label, border_value=self.border_value)


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
    test_idx = _stratified_pick(targets.numpy(), test_fraction, np.random.default_rng(seed))
    mask = np.zeros(len(targets), dtype=bool)
    mask[test_idx] = True
    keep = torch.from_numpy(~mask if train else mask)
    # Mirrored digits are other digits (or none), and padding should look like the page.
    return TensorImageDataset(images[keep], targets[keep], classes=[str(d) for d in range(10)], transform=transform,
                              flip_keeps_label=False, border_value=255)


# ----------------------------------------------------------------------------- CIFAR-10


def cifar10(
    train: bool = True,
    root: str | os.PathLike | None = None,
    image_size: int = 224,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    augment: bool | None = None,
    download: bool | None = None,
):
    """CIFAR-10 through ``torchvision.datasets.CIFAR10``, with transforms for the chosen weights.

    Args:
        train: training split (50,000 images) or test split (10,000).
        root: data directory; default ``$COURSE_DATA_DIR`` or the kit's ``data/``.
        image_size: images are resized from 32 px to this (224 for the seeds' runs).
        mean, std: normalization of the weights in use (ImageNet for pretrained nets).
        augment: random crop (padding 4) + horizontal flip; default: on for ``train``.
        download: allow downloading; default: yes unless offline mode is on.

    Raises:
        FileNotFoundError: the data is missing and may not be downloaded; the message
            names the expected folder and the ``course fetch cifar10`` command.
    """
    root = assets.data_dir(root)
    augment = train if augment is None else augment
    transform = image_transforms(image_size, mean, std, augment=augment)
    folder = root / CIFAR10.base_folder
    if (folder / STANDIN_MANIFEST).exists():
        return StandInCIFAR10(str(root), train=train, transform=transform, download=False)
    download = (not assets.is_offline()) if download is None else download
    if download and assets.is_offline():
        raise ValueError("download=True contradicts offline mode (COURSE_OFFLINE=1); fetch the data first.")
    if not download and not _cifar_complete(folder):
        raise assets.missing_asset_error(
            "CIFAR-10", folder, "cifar10",
            "offline mode is on" if assets.is_offline() else "download=False and the files are not there",
        )
    if download:
        # The kit's fetch, not torchvision's download: it has a timeout (no hang on a dead
        # network), checks the MD5s and never leaves a partial archive behind.
        from .fetch import fetch_cifar10

        fetch_cifar10(root)
    return CIFAR10(str(root), train=train, transform=transform, download=False)


def _cifar_complete(folder: Path) -> bool:
    names = [name for name, _ in CIFAR10.train_list + CIFAR10.test_list] + [CIFAR10.meta["filename"]]
    return all((folder / name).exists() for name in names)


class StandInCIFAR10(CIFAR10):
    """torchvision's CIFAR10 reading a synthetic stand-in written by ``write_synthetic_cifar10``.

    The files are in the real python-batch format and torchvision's own code reads and
    md5-checks them; only the expected md5s differ: torchvision's list describes the real
    archive, so the stand-in's come from ``course-standin.json`` next to the files (a
    truncated or edited stand-in still fails the check).
    """

    def __init__(self, root: str, *args, **kwargs):
        expected = json.loads((Path(root) / self.base_folder / STANDIN_MANIFEST).read_text())["md5"]
        self.train_list = [[name, expected[name]] for name, _ in CIFAR10.train_list]
        self.test_list = [[name, expected[name]] for name, _ in CIFAR10.test_list]
        self.meta = {**CIFAR10.meta, "md5": expected[CIFAR10.meta["filename"]]}
        warnings.warn("Using a synthetic CIFAR-10 stand-in (smoke profile/tests), not the real data.", stacklevel=3)
        super().__init__(root, *args, **kwargs)


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


def get_targets(dataset) -> np.ndarray:
    """Class labels of a dataset without decoding any image.

    Works for datasets with a ``targets`` attribute (CIFAR10, ImageFolder, the kit's own),
    ``Subset`` chains of them, and ``TensorDataset`` (second tensor).
    """
    if isinstance(dataset, Subset):
        return get_targets(dataset.dataset)[np.asarray(dataset.indices, dtype=np.int64)]
    if hasattr(dataset, "targets"):
        return np.asarray(torch.as_tensor(dataset.targets)).astype(np.int64)
    tensors = getattr(dataset, "tensors", None)
    if tensors is not None and len(tensors) >= 2:
        return tensors[1].numpy().astype(np.int64)
    raise TypeError(
        f"{type(dataset).__name__} has no 'targets'. Give it a 'targets' attribute (one label per item) "
        "so subsets can be drawn without decoding every image."
    )


def _stratified_pick(targets: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``round(fraction * N)`` items with each class represented in proportion.

    Per-class quotas use the largest-remainder rule, so the total is exact and no class
    is more than one item away from its exact proportional share.
    """
    classes, counts = np.unique(targets, return_counts=True)
    total = int(round(fraction * len(targets)))
    exact = counts * total / len(targets)
    quotas = np.floor(exact).astype(int)
    short = total - quotas.sum()
    # Ties broken by class order, so the result depends only on the data and the seed.
    for i in np.argsort(-(exact - quotas), kind="stable")[:short]:
        quotas[i] += 1
    picked = [rng.permutation(np.flatnonzero(targets == c))[:q] for c, q in zip(classes, quotas)]
    return np.sort(np.concatenate(picked)) if picked else np.array([], dtype=np.int64)


def subset_fraction(dataset, fraction: float, seed: int = 0, stratified: bool = True) -> Subset:
    """A reproducible random ``fraction`` of ``dataset`` (seed 001: 10 %, 20 %, 50 % of CIFAR-10).

    Args:
        dataset: any dataset whose labels ``get_targets`` can read.
        fraction: share of the items to keep, in (0, 1].
        seed: the same seed always gives the same subset.
        stratified: keep every class's share (largest-remainder quotas); otherwise a plain
            random sample like the reference notebook's ``randperm``.

    Returns:
        ``torch.utils.data.Subset`` with sorted indices.

    Example:
        >>> subset = subset_fraction(train_set, 0.2, seed=1)
    """
    if not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], e.g. 0.1 for 10 %; got {fraction!r}.")
    rng = np.random.default_rng(seed)
    if stratified:
        indices = _stratified_pick(get_targets(dataset), fraction, rng)
    else:
        n = int(round(fraction * len(dataset)))
        indices = np.sort(rng.permutation(len(dataset))[:n])
    if len(indices) == 0:
        raise ValueError(f"fraction={fraction} of {len(dataset)} items is an empty subset; use a larger fraction.")
    return Subset(dataset, indices.tolist())


def subset_per_class(dataset, n_per_class: int, seed: int = 0, exclude=None) -> Subset:
    """``n_per_class`` random items of every class (seed 000: 100 train + 100 validation per class).

    Args:
        dataset: any dataset whose labels ``get_targets`` can read.
        n_per_class: items to draw from each class.
        seed: the same seed always gives the same subset.
        exclude: indices into ``dataset`` (or a ``Subset`` of it) that must not be drawn,
            e.g. the training subset when drawing a disjoint validation subset.

    Example:
        >>> train = subset_per_class(cifar_train, 100, seed=0)
        >>> val = subset_per_class(cifar_train, 100, seed=0, exclude=train)
    """
    if not isinstance(n_per_class, int) or n_per_class < 1:
        raise ValueError(f"n_per_class must be a positive integer, got {n_per_class!r}.")
    targets = get_targets(dataset)
    allowed = np.ones(len(targets), dtype=bool)
    if exclude is not None:
        excluded = exclude.indices if isinstance(exclude, Subset) else exclude
        allowed[np.asarray(list(excluded), dtype=np.int64)] = False
    rng = np.random.default_rng(seed)
    picked = []
    counts = Counter(targets[allowed].tolist())
    for cls in np.unique(targets):
        if counts.get(int(cls), 0) < n_per_class:
            raise ValueError(
                f"Class {int(cls)} has only {counts.get(int(cls), 0)} items available"
                f"{' after exclusions' if exclude is not None else ''}, fewer than n_per_class={n_per_class}. "
                "Use a smaller n_per_class."
            )
        candidates = np.flatnonzero((targets == cls) & allowed)
        picked.append(rng.permutation(candidates)[:n_per_class])
    return Subset(dataset, np.sort(np.concatenate(picked)).tolist())


def class_counts(dataset) -> dict[int, int]:
    """``{class_index: count}`` of a dataset or subset, from its targets."""
    return dict(sorted(Counter(get_targets(dataset).tolist()).items()))
