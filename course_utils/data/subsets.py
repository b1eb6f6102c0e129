"""Subsets drawn by seed: a fraction of the data, or n images per class; labels read without decoding.

Example:
    >>> from course_utils.data import digits_dataset
    >>> train_set = digits_dataset(train=True)
    >>> subset = subset_fraction(train_set, 0.1, seed=0)
    >>> len(subset) == round(0.1 * len(train_set))
    True
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import torch
from torch.utils.data import Subset


def get_targets(dataset) -> np.ndarray:
    """Class labels of a dataset without decoding any image.

    Works for datasets with a ``targets`` attribute (CIFAR10, ImageFolder, the kit's own),
    ``Subset`` chains of them, and ``TensorDataset`` (second tensor).

    Example:
        >>> import torch
        >>> from torch.utils.data import Subset, TensorDataset
        >>> get_targets(Subset(TensorDataset(torch.zeros(4, 2), torch.tensor([3, 1, 4, 1])), [1, 2]))
        array([1, 4])
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


def _stratified_sample(targets: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Sorted indices of ``size`` items in which every class keeps its share (scikit-learn's stratified split).

    Example:
        >>> _stratified_sample(np.array([0] * 6 + [1] * 4), 5, seed=0).size
        5
    """
    from sklearn.model_selection import train_test_split

    if size >= len(targets):
        return np.arange(len(targets))
    try:
        picked, _ = train_test_split(np.arange(len(targets)), train_size=size, stratify=targets, random_state=seed)
    except ValueError as err:  # a class with one item, or fewer items asked for than there are classes
        raise ValueError(
            f"Cannot draw a stratified sample of {size} from {len(targets)} items: {err} "
            "Use a larger fraction, or stratified=False."
        ) from err
    return np.sort(picked)


def subset_fraction(dataset, fraction: float, seed: int = 0, stratified: bool = True) -> Subset:
    """A reproducible random ``fraction`` of ``dataset`` (the COMP5541 notebook: 10 %, 20 %, 50 % of CIFAR-10).

    Args:
        dataset: any dataset whose labels ``get_targets`` can read.
        fraction: share of the items to keep, in (0, 1].
        seed: the same seed always gives the same subset.
        stratified: keep every class's share (scikit-learn's stratified split); otherwise a plain
            random sample like the reference notebook's ``randperm``.

    Returns:
        ``torch.utils.data.Subset`` with sorted indices.

    Example:
        >>> from course_utils.data import digits_dataset
        >>> train_set = digits_dataset(train=True)
        >>> subset = subset_fraction(train_set, 0.2, seed=1)
        >>> len(subset), subset.indices == subset_fraction(train_set, 0.2, seed=1).indices
        (270, True)
    """
    if not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], e.g. 0.1 for 10 %; got {fraction!r}.")
    n = int(round(fraction * len(dataset)))
    if n == 0:
        raise ValueError(f"fraction={fraction} of {len(dataset)} items is an empty subset; use a larger fraction.")
    if stratified:
        indices = _stratified_sample(get_targets(dataset), n, seed)
    else:
        indices = np.sort(np.random.default_rng(seed).permutation(len(dataset))[:n])
    return Subset(dataset, indices.tolist())


def subset_per_class(dataset, n_per_class: int, seed: int = 0, exclude=None) -> Subset:
    """``n_per_class`` random items of every class (the trainable-layers write-up draws 100 train + 100 validation).

    Args:
        dataset: any dataset whose labels ``get_targets`` can read.
        n_per_class: items to draw from each class.
        seed: the same seed always gives the same subset.
        exclude: indices into ``dataset`` (or a ``Subset`` of it) that must not be drawn,
            e.g. the training subset when drawing a disjoint validation subset.

    Example:
        >>> from course_utils.data import digits_dataset
        >>> train_set = digits_dataset(train=True)
        >>> train = subset_per_class(train_set, 20, seed=0)
        >>> val = subset_per_class(train_set, 20, seed=0, exclude=train)
        >>> len(train), len(val), set(train.indices) & set(val.indices)
        (200, 200, set())
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
    """``{class_index: count}`` of a dataset or subset, from its targets.

    Example:
        >>> from course_utils.data import digits_dataset
        >>> class_counts(subset_per_class(digits_dataset(train=True), 5, seed=0))[3]
        5
    """
    return dict(sorted(Counter(get_targets(dataset).tolist()).items()))
