"""The cases of ``course bench``: the seed-style pipeline and the kit's, timed side by side, and their results.

This is the part of the benchmark that trains, so it imports torch and the student library;
:mod:`course_kit.bench` (the command line, the table, the JSON) imports it only when the
benchmark runs. What the cases measure is written there.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from course_utils import apply_strategy, build_model, fit, make_loader, trainable_parameters
from course_utils.models import IMAGENET_MEAN, IMAGENET_STD
from course_utils.train import Speedups
from course_utils.train.speedups import native_bf16

SEED_BATCH_SIZE = 64
SEED_WORKERS = 2
SEED_LR = 1e-3


# ----------------------------------------------------------------------------- data both sides read


class ArrayImages(Dataset):
    """uint8 images ``(N, H, W, 3)`` served as PIL images, the way torchvision's CIFAR10 serves them.

    The seed-style side reads items one by one (decoded to PIL, transformed per image);
    the kit's ``make_loader`` takes ``.data`` as a whole without decoding anything.
    """

    def __init__(self, data: np.ndarray, targets: list[int], transform=None):
        self.data, self.targets, self.transform = data, targets, transform
        self.classes = [str(c) for c in range(10)]

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int):
        from PIL import Image

        image = Image.fromarray(self.data[index])
        return (self.transform(image) if self.transform is not None else image), self.targets[index]


def random_cifar_like(count: int, seed: int = 0) -> ArrayImages:
    """``count`` random 32x32 RGB images with labels 0-9."""
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, size=(count, 32, 32, 3), dtype=np.uint8)
    return ArrayImages(data, rng.integers(0, 10, size=count).tolist())


def seed_style_loader(dataset: ArrayImages, image_size: int, augment: bool, shuffle: bool) -> DataLoader:
    """The COMP5541 notebook's pipeline: per-image PIL transforms in a DataLoader with 2 workers, batch 64.

    Workers stay alive between epochs (``persistent_workers``), which the seed's loader
    does not do: this only makes the seed-style side faster.
    """
    from torchvision import transforms as T

    steps = [T.Resize(image_size)]
    if augment:
        steps += [T.RandomCrop(image_size, padding=4), T.RandomHorizontalFlip()]
    steps += [T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    view = ArrayImages(dataset.data, dataset.targets, transform=T.Compose(steps))
    loader = DataLoader(
        view,
        batch_size=SEED_BATCH_SIZE,
        shuffle=shuffle,
        num_workers=SEED_WORKERS,
        persistent_workers=True,
        pin_memory=torch.cuda.is_available(),
    )
    return loader


class TensorImages(Dataset):
    """The same images as uint8 tensors ``(N, 3, H, W)``, each item through ``transform``: what transforms.v2 reads."""

    def __init__(self, dataset: ArrayImages, transform):
        self.images = torch.from_numpy(dataset.data).permute(0, 3, 1, 2).contiguous()
        self.targets, self.transform = torch.tensor(dataset.targets), transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        return self.transform(self.images[index]), self.targets[index]


def torchvision_loader(dataset: ArrayImages, image_size: int, augment: bool, shuffle: bool) -> DataLoader:
    """What a careful user writes with stock torchvision: ``transforms.v2`` on uint8 tensors (no PIL), resized
    with antialiasing and converted to float last, in a ``DataLoader`` with 2 persistent workers and
    pinned memory on CUDA; the same batch size, augmentation and normalization as the other sides."""
    from torchvision.transforms import v2

    steps = [v2.Resize(image_size, antialias=True)]
    if augment:
        steps += [v2.RandomCrop(image_size, padding=4), v2.RandomHorizontalFlip()]
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    return DataLoader(
        TensorImages(dataset, v2.Compose(steps)),
        batch_size=SEED_BATCH_SIZE,
        shuffle=shuffle,
        num_workers=SEED_WORKERS,
        persistent_workers=True,
        pin_memory=torch.cuda.is_available(),
    )


def kit_loader(dataset: ArrayImages, image_size: int, augment: bool, shuffle: bool, device: torch.device):
    return make_loader(
        dataset, batch_size=SEED_BATCH_SIZE, shuffle=shuffle, augment=augment, image_size=image_size, device=device
    )


SIDES = ("seed", "torchvision", "kit")


@dataclass
class CaseResult:
    """One comparison: seconds per round for each side, and what they mean.

    Sides: ``seed`` (the reference pipeline), ``torchvision`` (stock torchvision written with
    care) and ``kit``. ``ratio`` and the target are against the reference pipeline;
    ``torchvision_ratio`` is the kit against the careful baseline.
    """

    name: str
    description: str
    images: int  # images per round (training images x epochs for the training cases)
    image_size: int
    rounds: int
    target: float | None = None
    seed_seconds: list[float] = field(default_factory=list)
    kit_seconds: list[float] = field(default_factory=list)
    torchvision_seconds: list[float] = field(default_factory=list)
    per_epoch_of: int | None = None  # report seconds per epoch of this many images (CUDA cases)
    epoch_images: int | None = None

    @property
    def seed_images_per_second(self) -> float:
        return self.images / min(self.seed_seconds)

    @property
    def kit_images_per_second(self) -> float:
        return self.images / min(self.kit_seconds)

    @property
    def ratio(self) -> float:
        """How many times faster the kit's path is (fastest round of each side)."""
        return min(self.seed_seconds) / min(self.kit_seconds)

    @property
    def median_ratio(self) -> float:
        return statistics.median(self.seed_seconds) / statistics.median(self.kit_seconds)

    @property
    def torchvision_images_per_second(self) -> float | None:
        return self.images / min(self.torchvision_seconds) if self.torchvision_seconds else None

    @property
    def torchvision_ratio(self) -> float | None:
        """How many times faster the kit's path is than the careful torchvision baseline."""
        return min(self.torchvision_seconds) / min(self.kit_seconds) if self.torchvision_seconds else None

    def seconds_per_epoch(self, side: str) -> float | None:
        if self.per_epoch_of is None:
            return None
        rate = self.seed_images_per_second if side == "seed" else self.kit_images_per_second
        return self.per_epoch_of / rate

    def to_dict(self) -> dict:
        out = asdict(self)
        out.update(
            {
                "seed_images_per_second": self.seed_images_per_second,
                "kit_images_per_second": self.kit_images_per_second,
                "ratio": self.ratio,
                "median_ratio": self.median_ratio,
                "torchvision_images_per_second": self.torchvision_images_per_second,
                "torchvision_ratio": self.torchvision_ratio,
                "meets_target": None if self.target is None else self.ratio >= self.target,
            }
        )
        if self.per_epoch_of is not None:
            out["seed_seconds_per_epoch"] = self.seconds_per_epoch("seed")
            out["kit_seconds_per_epoch"] = self.seconds_per_epoch("kit")
        return out


# ----------------------------------------------------------------------------- sizes


@dataclass(frozen=True)
class Sizes:
    """How much work each case does (the printed table and the JSON state these)."""

    data_images: int = 1280
    data_rounds: int = 3
    finetune_images: int = 192
    finetune_rounds: int = 4
    last_only_images: int = 384
    last_only_val_images: int = 96
    last_only_epochs: int = 10
    last_only_rounds: int = 2
    small_size: int = 64
    large_size: int = 224
    cuda_images: int = 25_000
    cuda_rounds: int = 1


QUICK = Sizes(
    data_images=128,
    data_rounds=1,
    finetune_images=64,
    finetune_rounds=1,
    last_only_images=64,
    last_only_val_images=32,
    last_only_epochs=2,
    last_only_rounds=1,
    small_size=32,
    large_size=64,
    cuda_images=256,
    cuda_rounds=1,
)


# ----------------------------------------------------------------------------- timing


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(work: Callable[[], None], device: torch.device) -> float:
    _sync(device)
    started = time.perf_counter()
    work()
    _sync(device)
    return time.perf_counter() - started


def _alternate(
    case: CaseResult,
    seed_round: Callable,
    kit_round: Callable,
    device: torch.device,
    say: Callable[[str], None],
    make_model: Callable | None = None,
    torchvision_round: Callable | None = None,
) -> CaseResult:
    """Run the sides in the order seed, torchvision, kit, kit, torchvision, seed, ... for ``case.rounds`` rounds each.

    With ``make_model``, each round gets a freshly built model (same initial weights),
    built before its clock starts.
    """
    for round_index in range(case.rounds):
        order = [("seed", seed_round), ("torchvision", torchvision_round), ("kit", kit_round)]
        order = [(side, work) for side, work in order if work is not None]
        if round_index % 2:
            order.reverse()
        for side, work in order:
            if make_model is not None:
                seconds = _timed(partial(work, make_model()), device)
            else:
                seconds = _timed(work, device)
            getattr(case, f"{side}_seconds").append(seconds)
            say(f"  {case.name} round {round_index + 1}/{case.rounds} {side:<11} {seconds:7.2f} s")
    return case


# ----------------------------------------------------------------------------- the cases


def bench_data_pipeline(count: int, image_size: int, rounds: int, device, say) -> CaseResult:
    """Iterate one augmented epoch of ``count`` images; nothing else."""
    dataset = random_cifar_like(count)
    seed = seed_style_loader(dataset, image_size, augment=True, shuffle=True)
    careful = torchvision_loader(dataset, image_size, augment=True, shuffle=True)
    kit = kit_loader(dataset, image_size, augment=True, shuffle=True, device=device)

    def epoch_of(loader):
        def epoch():
            for images, _labels in loader:
                images.to(device, non_blocking=True)  # the kit's batches are already there

        return epoch

    next(iter(seed)), next(iter(careful)), next(iter(kit))  # start the workers; first-call setup on every side
    case = CaseResult(
        f"data_{image_size}",
        f"data pipeline alone, {image_size} px, crop+flip augmentation",
        images=count,
        image_size=image_size,
        rounds=rounds,
        target=5.0,
    )
    return _alternate(case, epoch_of(seed), epoch_of(kit), device, say, torchvision_round=epoch_of(careful))


def _fresh_model(name: str, strategy: str = "none"):
    torch.manual_seed(0)
    model = build_model(name, num_classes=10, pretrained=False)
    apply_strategy(model, strategy)
    return model


def _sgd(model):
    """The COMP5541 notebook's optimizer, over the trainable parameters (both sides)."""
    return torch.optim.SGD(trainable_parameters(model), lr=SEED_LR, momentum=0.9)


def _seed_fit(model, loader, val_loader, epochs: int, device):
    # The seed-style side trains in float32 without any of the kit's speed-ups.
    fit(
        model,
        loader,
        val_loader,
        num_epochs=epochs,
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=_sgd,
        device=device,
        verbose=False,
        speedups=Speedups(device),
    )


def kit_speedups(device, compile_model: bool = False) -> Speedups:
    """The kit side's speed-ups: the defaults on CUDA; on a CPU that computes bfloat16, bf16 and channels-last.

    The CPU's are opt-in in the library because they slow EfficientNet-Lite down (see
    ``course_utils.train.speedups``); every CPU case here runs ResNet-18, where they pay.
    ``compile_model`` (``course bench --compile``) applies on CUDA only.
    """
    device = torch.device(device)
    if device.type != "cuda":
        if native_bf16(device):
            return Speedups.for_device(device, mixed_precision=True, channels_last=True)
        return Speedups.for_device(device)
    return Speedups.for_device(device, compile_model=compile_model)


def _kit_fit(model, loader, val_loader, epochs: int, device, cache: bool = False, compile_model: bool = False):
    fit(
        model,
        loader,
        val_loader,
        num_epochs=epochs,
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=_sgd,
        device=device,
        verbose=False,
        cache_features=cache,
        speedups=kit_speedups(device, compile_model),
    )


def _warm_up(name: str, image_size: int, device) -> None:
    """One training step at this size, so that one-time kernel setup is timed on neither side."""
    model = _fresh_model(name).to(device)
    images = torch.randn(SEED_BATCH_SIZE, 3, image_size, image_size, device=device)
    labels = torch.randint(0, 10, (SEED_BATCH_SIZE,), device=device)
    torch.nn.functional.cross_entropy(model(images), labels).backward()


def bench_fine_tune(
    model_name: str,
    count: int,
    image_size: int,
    rounds: int,
    device,
    say,
    name: str,
    target: float | None = None,
    per_epoch_of: int | None = None,
    compile_model: bool = False,
) -> CaseResult:
    """One epoch of full fine-tuning (augmentation on) of ``count`` images."""
    dataset = random_cifar_like(count)
    seed = seed_style_loader(dataset, image_size, augment=True, shuffle=True)
    careful = torchvision_loader(dataset, image_size, augment=True, shuffle=True)
    kit = kit_loader(dataset, image_size, augment=True, shuffle=True, device=device)
    next(iter(seed)), next(iter(careful))
    _warm_up(model_name, image_size, device)
    if compile_model:
        # Compilation happens in the first batches; do it before the timed rounds, on a few images.
        few = kit_loader(random_cifar_like(4 * SEED_BATCH_SIZE), image_size, augment=True, shuffle=True, device=device)
        _kit_fit(_fresh_model(model_name), few, None, 1, device, compile_model=True)
    case = CaseResult(
        name,
        f"{model_name} full fine-tune, {image_size} px, 1 epoch, crop+flip augmentation",
        images=count,
        image_size=image_size,
        rounds=rounds,
        target=target,
        per_epoch_of=per_epoch_of,
        epoch_images=count,
    )
    return _alternate(
        case,
        lambda model: _seed_fit(model, seed, None, 1, device),
        lambda model: _kit_fit(model, kit, None, 1, device, compile_model=compile_model),
        device,
        say,
        make_model=lambda: _fresh_model(model_name),
        torchvision_round=lambda model: _seed_fit(model, careful, None, 1, device),
    )


def bench_last_only(count: int, val_count: int, epochs: int, image_size: int, rounds: int, device, say) -> CaseResult:
    """A whole ``last_only`` run: ``epochs`` epochs of training plus validation after each."""
    train, val = random_cifar_like(count, seed=0), random_cifar_like(val_count, seed=1)
    seed_train = seed_style_loader(train, image_size, augment=False, shuffle=True)
    seed_val = seed_style_loader(val, image_size, augment=False, shuffle=False)
    careful_train = torchvision_loader(train, image_size, augment=False, shuffle=True)
    careful_val = torchvision_loader(val, image_size, augment=False, shuffle=False)
    kit_train = kit_loader(train, image_size, augment=False, shuffle=True, device=device)
    kit_val = kit_loader(val, image_size, augment=False, shuffle=False, device=device)
    next(iter(seed_train)), next(iter(seed_val)), next(iter(careful_train)), next(iter(careful_val))
    _warm_up("resnet18", image_size, device)
    case = CaseResult(
        f"last_only_{image_size}",
        f"resnet18 last_only, {image_size} px, {epochs} epochs end to end "
        f"(+ validation of {val_count} images each epoch), no augmentation on either side",
        images=count * epochs,
        image_size=image_size,
        rounds=rounds,
        target=15.0,
        epoch_images=count,
    )
    return _alternate(
        case,
        lambda model: _seed_fit(model, seed_train, seed_val, epochs, device),
        lambda model: _kit_fit(model, kit_train, kit_val, epochs, device, cache=True),
        device,
        say,
        make_model=lambda: _fresh_model("resnet18", "last_only"),
        torchvision_round=lambda model: _seed_fit(model, careful_train, careful_val, epochs, device),
    )


def run_benchmark(sizes: Sizes, device: torch.device, compile_model: bool = False, say=print) -> list[CaseResult]:
    """Run every case for ``device`` and return the results (see the module notes)."""
    results = [
        bench_data_pipeline(sizes.data_images, sizes.large_size, sizes.data_rounds, device, say),
        bench_fine_tune(
            "resnet18",
            sizes.finetune_images,
            sizes.small_size,
            sizes.finetune_rounds,
            device,
            say,
            name=f"finetune_{sizes.small_size}",
            target=1.3,
        ),
        bench_last_only(
            sizes.last_only_images,
            sizes.last_only_val_images,
            sizes.last_only_epochs,
            sizes.small_size,
            sizes.last_only_rounds,
            device,
            say,
        ),
    ]
    if device.type == "cuda":
        for model_name in ("alexnet", "resnet18", "vgg16"):
            results.append(
                bench_fine_tune(
                    model_name,
                    sizes.cuda_images,
                    sizes.large_size,
                    sizes.cuda_rounds,
                    device,
                    say,
                    name=f"seed_{model_name}_{sizes.large_size}",
                    per_epoch_of=25_000,
                    compile_model=compile_model,
                )
            )
    return results
