"""Frozen-prefix feature caching: run the frozen front of a network once, train the rest on its outputs.

With ``last_only`` (feature extraction) every epoch pushes every image through the
whole frozen backbone only to train the last Linear layer. When the layers in front
of the first trainable one are fixed functions of the input, their outputs can be
computed once and reused every epoch:

* the model's forward pass is cut into its *stages* (from the architecture table's
  ``stages`` entry): ``model(x) == suffix(prefix(x))``;
* the *prefix* is the longest run of stages from the input that are fixed functions:
  no trainable parameter, no active Dropout, every BatchNorm pinned to its running
  statistics (``freezing`` pins those of frozen groups);
* the prefix runs once over the data in eval mode, without gradients; its outputs and
  the labels stay on the training device;
* the *suffix* (sharing its modules, hence its weights, with the model) trains on them.

The images must be the same every epoch, so the training loader may not augment
(random crops and flips would be frozen into the cache). Memory is checked after the
first batch, before the cache is allocated.

The step a notebook can show: ``features = extract_features(model, train_loader, val_loader)``,
then train ``features.head`` on ``features.train_loader``. ``fit(..., cache_features=True)``
is the same as a shortcut.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from course_utils.data import digits_dataset, make_loader
    >>> from course_utils.freezing import apply_strategy
    >>> from course_utils.models import build_model
    >>> model = build_model("resnet18", num_classes=10, pretrained=False)
    >>> apply_strategy(model, "last_only")
    >>> train_loader = make_loader(digits_dataset(train=True), 64, shuffle=True, image_size=32, device="cpu")
    >>> features = extract_features(model, train_loader)
    >>> features.split.suffix_names, tuple(features.train_loader.features.shape)
    (['fc'], (1348, 512))
"""

from __future__ import annotations

import contextlib
import copy
import os
import warnings
from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader, RandomSampler

from .._util import format_bytes
from ..data.batching import InMemoryBatches
from ..data.device_loader import DeviceImageLoader
from ..freezing import batchnorm_stats_frozen, is_batchnorm
from ..models.architectures import Stages, architecture_of
from ..models.multitask import is_multitask

# The cache may take at most this share of the device's currently free memory.
DEFAULT_MEMORY_FRACTION = 0.5
_DROPOUT = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)


class CannotCacheError(ValueError):
    """The model offers nothing to cache (no stages in its architecture entry, or no frozen front)."""


class FeatureCacheMemoryError(MemoryError):
    """The cached features would not fit in the memory that may be used for them."""


# ----------------------------------------------------------------------------- where to cut


class _Heads(nn.Module):
    """A multi-task model's heads as one stage: features ``(N, D)`` -> ``{task: logits}``."""

    def __init__(self, heads: nn.ModuleDict):
        super().__init__()
        self.heads = heads

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        return {task: head(features) for task, head in self.heads.items()}


def forward_stages(model: nn.Module) -> Stages:
    """The model's forward pass as ``[(name, module)]``, run in order, from the architecture table.

    Raises:
        CannotCacheError: the model's architecture entry has no ``stages``.
    """
    if is_multitask(model):
        return forward_stages(model.backbone) + [("heads", _Heads(model.heads))]
    arch = architecture_of(model)
    if arch.stages is None:
        raise CannotCacheError(
            f"{arch.name} has no 'stages' in its architecture table entry, so its frozen layers cannot be "
            "run separately from the trainable ones"
        )
    return arch.stages(model)


def _is_fixed_function(module: nn.Module) -> bool:
    """True when ``module`` computes the same output in training as in eval mode, and nothing in it trains."""
    for sub in module.modules():
        if any(p.requires_grad for p in sub.parameters(recurse=False)):
            return False
        if isinstance(sub, _DROPOUT) and sub.p > 0:
            return False
        # A BatchNorm whose statistics are not frozen normalizes with batch statistics while training.
        if is_batchnorm(sub) and not batchnorm_stats_frozen(sub):
            return False
    return True


@dataclass
class PrefixSplit:
    """A model cut in two: ``model(x) == suffix(prefix(x))``; both share the model's modules.

    Attributes:
        prefix: the fixed front (frozen, no Dropout, BatchNorm pinned), run once.
        suffix: the rest, trained on the prefix's outputs.
        prefix_names, suffix_names: stage names, for messages.
    """

    prefix: nn.Sequential
    suffix: nn.Sequential
    prefix_names: list[str]
    suffix_names: list[str]


def split_frozen_prefix(model: nn.Module) -> PrefixSplit:
    """Cut ``model`` after the longest front of stages that are fixed functions of the input.

    Raises:
        CannotCacheError: no stages are known for this architecture, or the very first
            stage already trains (nothing to cache), or nothing trains at all.

    Example:
        >>> from course_utils.freezing import apply_strategy, freeze_until
        >>> from course_utils.models import build_model
        >>> model = build_model("resnet18", num_classes=10, pretrained=False)
        >>> apply_strategy(model, "last_only")
        >>> split_frozen_prefix(model).suffix_names
        ['fc']
        >>> _ = freeze_until(model, "layer2")
        >>> split_frozen_prefix(model).suffix_names
        ['layer3', 'layer4', 'pool', 'fc']
    """
    stages = forward_stages(model)
    cut = 0
    while cut < len(stages) and _is_fixed_function(stages[cut][1]):
        cut += 1
    if cut == len(stages):
        raise CannotCacheError("nothing in the model trains (every parameter is frozen); unfreeze at least the head")
    if cut == 0:
        raise CannotCacheError(
            f"the first stage ('{stages[0][0]}') trains or has BatchNorm statistics that update, so there is no "
            "frozen front to cache; freeze the early layers first (e.g. apply_strategy(model, 'last_only') or "
            "freeze_until(model, 'layer3'))"
        )
    return PrefixSplit(
        prefix=nn.Sequential(OrderedDict(stages[:cut])),
        suffix=nn.Sequential(OrderedDict(stages[cut:])),
        prefix_names=[name for name, _ in stages[:cut]],
        suffix_names=[name for name, _ in stages[cut:]],
    )


# ----------------------------------------------------------------------------- memory


def available_memory(device: torch.device) -> int:
    """Bytes that can still be allocated on ``device`` (CUDA: free GPU memory; CPU: available RAM)."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def check_cache_fits(
    num_images: int,
    feature_shape: tuple[int, ...],
    dtype: torch.dtype,
    device: torch.device,
    cut_after: str,
    memory_fraction: float = DEFAULT_MEMORY_FRACTION,
) -> int:
    """Raise ``FeatureCacheMemoryError`` unless ``num_images`` features fit in ``memory_fraction`` of free memory.

    Args:
        num_images: images to cache (train + validation).
        feature_shape: the prefix's output for one image, e.g. ``(512,)`` or ``(256, 4, 4)``.
        dtype: dtype of the features.
        device: where the cache would live.
        cut_after: name of the last cached stage (for the message).
        memory_fraction: share of the currently free memory the cache may take.

    Returns:
        The bytes the cache needs.
    """
    per_image = int(torch.Size(feature_shape).numel()) * torch.empty((), dtype=dtype).element_size()
    needed = num_images * per_image
    allowed = int(memory_fraction * available_memory(device))
    if needed > allowed:
        shape = "x".join(str(s) for s in feature_shape)
        raise FeatureCacheMemoryError(
            f"Caching the frozen layers' outputs (after '{cut_after}', {shape} {str(dtype).replace('torch.', '')} "
            f"per image) for {num_images:,} images needs {format_bytes(needed)}, but only {format_bytes(allowed)} "
            f"of {device.type.upper()} memory may be used ({memory_fraction:.0%} of what is free now). Use fewer "
            "images (subset_fraction), a smaller image_size, freeze more layers so that the cut comes later, "
            "where the outputs are smaller, or train without the cache (cache_features=False)."
        )
    return needed


# ----------------------------------------------------------------------------- cached batches


class FeatureLoader(InMemoryBatches):
    """Batches of cached features and their labels, reshuffled every epoch.

    The shuffle draws from torch's global generator (stored in ``fit``'s checkpoints), and
    every batch is a copy (``index_select``): a suffix that starts with an in-place
    operation (``ReLU(inplace=True)``) can never modify the cache.

    Args:
        features: ``(N, ...)`` outputs of the frozen prefix, on the training device.
        targets: label tensors ``(N,)``.
        batch_size, shuffle, drop_last: as for a ``DataLoader``.
    """

    def __init__(
        self,
        features: torch.Tensor,
        targets: list[torch.Tensor],
        batch_size: int,
        shuffle: bool = False,
        drop_last: bool = False,
    ):
        super().__init__(len(features), batch_size, shuffle=shuffle, drop_last=drop_last, device=features.device)
        self.features, self.targets = features, targets

    @property
    def dataset(self) -> torch.Tensor:
        """The cached features (so that ``len(loader.dataset)`` counts images, as for a DataLoader)."""
        return self.features

    def _batch(self, index: torch.Tensor, positions: slice, epoch):
        return (self.features.index_select(0, index), *(t.index_select(0, index) for t in self.targets))


def _loader_shuffles(loader) -> bool:
    if hasattr(loader, "shuffle"):
        return bool(loader.shuffle)
    return isinstance(getattr(loader, "sampler", None), RandomSampler)


def _in_dataset_order(loader):
    """The same batches without shuffling, so that cached item ``i`` is the dataset's item ``i``.

    Then the cached loader's shuffle picks exactly the batches the uncached loader would
    have picked from the same random numbers.
    """
    if isinstance(loader, DeviceImageLoader) and loader.shuffle:
        in_order = copy.copy(loader)
        in_order.shuffle = False
        return in_order
    if isinstance(loader, DataLoader) and isinstance(loader.sampler, RandomSampler):
        return DataLoader(
            loader.dataset,
            batch_size=loader.batch_size,
            shuffle=False,
            num_workers=loader.num_workers,
            collate_fn=loader.collate_fn,
            pin_memory=loader.pin_memory,
        )
    return loader


def _num_images(loader) -> int:
    dataset = getattr(loader, "dataset", None)
    if dataset is None:
        raise ValueError(
            f"Cannot tell how many images a {type(loader).__name__} holds: feature caching needs a "
            "loader with a .dataset (a DataLoader or one from make_loader)."
        )
    return len(dataset)


@contextlib.contextmanager
def _eval_mode(module: nn.Module):
    """Eval mode inside the block; every submodule's own mode restored afterwards."""
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training


@torch.no_grad()
def compute_features(
    prefix: nn.Module,
    loader,
    device: torch.device,
    *,
    cut_after: str = "prefix",
    extra_images: int = 0,
    memory_fraction: float = DEFAULT_MEMORY_FRACTION,
    autocast=contextlib.nullcontext,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Run ``prefix`` (in eval mode) once over ``loader``; keep outputs and labels on ``device``.

    Args:
        prefix: the frozen front of the model.
        loader: yields ``(images, labels, ...)`` without augmentation; read in dataset order.
        device: training device; the cache lives there.
        cut_after: name of the last prefix stage, for the memory message.
        extra_images: images that will be cached besides these (validation), counted in the memory check.
        memory_fraction: share of free memory the cache may take.
        autocast: context manager factory for mixed precision (bf16 when ``Speedups`` asks for it).

    Returns:
        ``features`` ``(N, ...)`` and the label tensors ``(N,)``, in the dataset's order.

    Raises:
        FeatureCacheMemoryError: after the first batch, when all features would not fit.
    """
    total = _num_images(loader)
    features, targets, filled = None, [], 0
    # Building the cache must not use up random numbers: with or without the cache, the
    # training epochs then draw the same shuffles (and resumed runs stay identical).
    with torch.random.fork_rng(devices=[]), _eval_mode(prefix):
        for batch in _in_dataset_order(loader):
            images, *labels = batch
            images = images.to(device, non_blocking=True)
            with autocast():
                outputs = prefix(images)
            if features is None:
                check_cache_fits(
                    total + extra_images, tuple(outputs.shape[1:]), outputs.dtype, device, cut_after, memory_fraction
                )
                features = torch.empty((total, *outputs.shape[1:]), dtype=outputs.dtype, device=device)
                targets = [torch.empty(total, dtype=torch.long, device=device) for _ in labels]
            count = len(outputs)
            if filled + count > total:
                raise ValueError(f"The loader yielded more than the {total} images of its dataset.")
            features[filled : filled + count] = outputs
            for store, y in zip(targets, labels):
                store[filled : filled + count] = y.to(device, non_blocking=True)
            filled += count
    if features is None:
        raise ValueError("The data loader yielded no batches: is the dataset or subset empty?")
    return features[:filled], [t[:filled] for t in targets]


# ----------------------------------------------------------------------------- all together


@dataclass
class FeatureCache:
    """Everything needed to train on cached features.

    Attributes:
        split: the prefix (cached) and suffix (trained) of the model.
        train_loader: ``FeatureLoader`` over the cached training features.
        val_loader: ``FeatureLoader`` over cached validation features, or the original
            validation loader when it could not be cached (then run ``val_model`` on it).
        val_model: what to evaluate ``val_loader`` with: the suffix, or the whole model.
        num_bytes: memory taken by the cache.
    """

    split: PrefixSplit
    train_loader: FeatureLoader
    val_loader: object
    val_model: nn.Module
    num_bytes: int

    @property
    def head(self) -> nn.Sequential:
        """What trains on the cached features: the model's trainable suffix (sharing its weights)."""
        return self.split.suffix

    def describe(self) -> str:
        images = len(self.train_loader.features)
        if isinstance(self.val_loader, FeatureLoader):
            images += len(self.val_loader.features)
        return (
            f"feature cache: ran {', '.join(self.split.prefix_names)} once for {images:,} images "
            f"({format_bytes(self.num_bytes)}); training {', '.join(self.split.suffix_names)}"
        )


def _require_no_augmentation(loader, role: str) -> None:
    augment = getattr(loader, "augment", None)
    if augment is None:
        raise ValueError(
            f"cache_features=True cannot tell whether the {role} loader augments its images. Build it with "
            f"make_loader(..., augment=False), or set `{role}_loader.augment = False` if it does not augment."
        )
    if augment:
        raise ValueError(
            f"cache_features=True needs a {role} loader without augmentation: random crops and flips would be "
            "frozen into the cache. Use make_loader(..., augment=False), or cache_features=False to keep augmenting."
        )


def extract_features(
    model: nn.Module,
    train_loader,
    val_loader=None,
    *,
    device=None,
    memory_fraction: float = DEFAULT_MEMORY_FRACTION,
    autocast=contextlib.nullcontext,
) -> FeatureCache:
    """Cut ``model`` after its frozen front, run that front once over the data, and return cached loaders.

    Args:
        model: a model from ``build_model`` or a multi-task model, frozen at the front
            (``last_only``, ``freeze_until``, ``set_trainable_layers``...), on ``device``.
        train_loader: training batches without augmentation (``make_loader(..., augment=False)``).
        val_loader: optional validation batches; cached when known to be unaugmented,
            otherwise evaluated through the whole model.
        device: the training device (default: where the model's parameters are).
        memory_fraction: share of currently free memory the cache may take.
        autocast: mixed-precision context factory (``fit`` passes ``Speedups.autocast``).

    Returns:
        A ``FeatureCache``: train ``cache.head`` on ``cache.train_loader`` and evaluate
        ``cache.val_model`` on ``cache.val_loader``; the model's own weights change with it
        (the modules are shared).

    Raises:
        CannotCacheError: nothing to cache (see ``split_frozen_prefix``).
        ValueError: the training loader augments (or cannot say whether it does).
        FeatureCacheMemoryError: the features would not fit.

    Example:
        >>> from course_utils.data import digits_dataset, make_loader
        >>> from course_utils.freezing import apply_strategy, trainable_parameters
        >>> from course_utils.models import build_model
        >>> from course_utils.train import fit
        >>> model = build_model("resnet18", num_classes=10, pretrained=False)
        >>> apply_strategy(model, "last_only")
        >>> options = dict(batch_size=128, image_size=32, device="cpu")
        >>> train_loader = make_loader(digits_dataset(train=True), shuffle=True, **options)
        >>> val_loader = make_loader(digits_dataset(train=False), **options)
        >>> features = extract_features(model, train_loader, val_loader)
        >>> print(features.describe())
        feature cache: ran stem, layer1, layer2, layer3, layer4, pool once for 1,797 images (3.5 MiB); training fc
        >>> history = fit(features.head, features.train_loader, features.val_loader, num_epochs=2,
        ...               loss_fn=nn.CrossEntropyLoss(), verbose=False,
        ...               optimizer=lambda m: torch.optim.Adam(trainable_parameters(m), lr=1e-3))
        >>> len(history)
        2
    """
    _require_no_augmentation(train_loader, "train")
    if device is None:
        device = next(model.parameters()).device
    device = torch.device(device)
    split = split_frozen_prefix(model)
    cut_after = split.prefix_names[-1]
    cache_val = val_loader is not None and getattr(val_loader, "augment", None) is False
    val_images = _num_images(val_loader) if cache_val else 0
    train_features, train_targets = compute_features(
        split.prefix,
        train_loader,
        device,
        cut_after=cut_after,
        extra_images=val_images,
        memory_fraction=memory_fraction,
        autocast=autocast,
    )
    num_bytes = train_features.numel() * train_features.element_size()
    batch_size = getattr(train_loader, "batch_size", None) or 64
    cached_train = FeatureLoader(
        train_features,
        train_targets,
        batch_size,
        shuffle=_loader_shuffles(train_loader),
        drop_last=bool(getattr(train_loader, "drop_last", False)),
    )
    cached_val, val_model = val_loader, model
    if cache_val:
        # The memory check above already counted these images.
        val_features, val_targets = compute_features(
            split.prefix, val_loader, device, cut_after=cut_after, memory_fraction=1.0, autocast=autocast
        )
        num_bytes += val_features.numel() * val_features.element_size()
        cached_val = FeatureLoader(val_features, val_targets, getattr(val_loader, "batch_size", None) or 256)
        val_model = split.suffix
    return FeatureCache(
        split=split, train_loader=cached_train, val_loader=cached_val, val_model=val_model, num_bytes=num_bytes
    )


def cached_networks(model: nn.Module, train_loader, val_loader, speed, verbose: bool, label: str, cache: bool):
    """What ``fit`` trains and evaluates each epoch: ``(train_net, val_net, train_loader, val_loader)``.

    Normally the model itself on the given loaders. With ``cache``, the model's trainable
    suffix on cached outputs of its frozen front (``extract_features``); when the model has no
    frozen front to cache, a warning says why and the model trains whole. Either network is
    wrapped in ``torch.compile`` when ``speed`` asks for it.
    """
    train_net, val_net = model, model
    if cache:
        try:
            features = extract_features(model, train_loader, val_loader, device=speed.device, autocast=speed.autocast)
        except CannotCacheError as reason:
            warnings.warn(f"cache_features=True: {reason}. Training the whole model every epoch instead.", stacklevel=3)
        else:
            if verbose:
                print(f"{label}{features.describe()}")
            train_net, val_net = features.head, features.val_model
            train_loader, val_loader = features.train_loader, features.val_loader
    compiled = speed.compiled(train_net)
    return compiled, (compiled if val_net is train_net else speed.compiled(val_net)), train_loader, val_loader
