"""``course bench``: the seed-style pipeline against the kit's path, side by side in one process.

Both sides do the same work: the same model (same initial weights), the same number of
images at the same resolution, the same augmentation (random crop with padding 4 and
horizontal flip, or none on both sides), batch 64, SGD lr 1e-3 momentum 0.9. Only the
way the work is done differs:

* **seed-style**: per-image PIL transforms ``Resize -> RandomCrop(padding=4) ->
  RandomHorizontalFlip -> ToTensor -> Normalize`` in a ``DataLoader`` with 2 workers,
  float32, the whole network run every epoch (as seed 001 does);
* **kit**: ``make_loader`` (uint8 images on the device, batched transforms) and ``fit``
  (feature caching where asked for; bf16, channels-last on CUDA).

The sides alternate (seed, kit, kit, seed, ...) so that a machine that gets busier or
quieter during the run affects both alike. Each side is reported by its fastest round
(other work on the machine can only add time, so the fastest round is the one closest
to the undisturbed cost; the JSON keeps every round and the medians too), with images
per second and the ratio kit / seed-style.

Cases on every machine: the data pipeline alone at 224 px; ResNet18 full fine-tune at
64 px (one epoch); ResNet18 ``last_only`` for a 10-epoch run at 64 px end to end
(training and validation every epoch; no augmentation on either side, which feature
caching needs). On CUDA additionally the seeds' settings at 224 px for AlexNet,
ResNet18 and VGG16 full fine-tuning, as seconds per epoch of 25,000 images.

Images are random uint8 tensors shaped like CIFAR-10 (32x32 RGB, 10 classes), held the
way torchvision's CIFAR10 holds them, and models use random weights: speed does not
depend on either.

Example:
    $ course bench                   # full run, prints a table, writes bench-results/bench-<time>.json
    $ course bench --quick           # seconds: proves the command works
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .architectures import IMAGENET_MEAN, IMAGENET_STD
from .freezing import apply_strategy
from .loaders import make_loader
from .models import build_model
from .training import fit

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
    """Seed 001's pipeline: per-image PIL transforms in a DataLoader with 2 workers, batch 64.

    Workers stay alive between epochs (``persistent_workers``), which the seed's loader
    does not do: this only makes the seed-style side faster.
    """
    from torchvision import transforms as T

    steps = [T.Resize(image_size)]
    if augment:
        steps += [T.RandomCrop(image_size, padding=4), T.RandomHorizontalFlip()]
    steps += [T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    view = ArrayImages(dataset.data, dataset.targets, transform=T.Compose(steps))
    loader = DataLoader(view, batch_size=SEED_BATCH_SIZE, shuffle=shuffle, num_workers=SEED_WORKERS,
                        persistent_workers=True, pin_memory=torch.cuda.is_available())
    loader.augment = augment
    return loader


def kit_loader(dataset: ArrayImages, image_size: int, augment: bool, shuffle: bool, device: torch.device):
    return make_loader(dataset, batch_size=SEED_BATCH_SIZE, shuffle=shuffle, augment=augment,
                       image_size=image_size, device=device)


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


@dataclass
class CaseResult:
    """One comparison: seconds per round for each side, and what they mean."""

    name: str
    description: str
    images: int  # images per round (training images x epochs for the training cases)
    image_size: int
    rounds: int
    target: float | None = None
    seed_seconds: list[float] = field(default_factory=list)
    kit_seconds: list[float] = field(default_factory=list)
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

    def seconds_per_epoch(self, side: str) -> float | None:
        if self.per_epoch_of is None:
            return None
        rate = self.seed_images_per_second if side == "seed" else self.kit_images_per_second
        return self.per_epoch_of / rate

    def to_dict(self) -> dict:
        out = asdict(self)
        out.update({
            "seed_images_per_second": self.seed_images_per_second,
            "kit_images_per_second": self.kit_images_per_second,
            "ratio": self.ratio,
            "median_ratio": self.median_ratio,
            "meets_target": None if self.target is None else self.ratio >= self.target,
        })
        if self.per_epoch_of is not None:
            out["seed_seconds_per_epoch"] = self.seconds_per_epoch("seed")
            out["kit_seconds_per_epoch"] = self.seconds_per_epoch("kit")
        return out


def _alternate(case: CaseResult, seed_round: Callable, kit_round: Callable, device: torch.device,
               say: Callable[[str], None], make_model: Callable | None = None) -> CaseResult:
    """Run the sides in the order seed, kit, kit, seed, ... for ``case.rounds`` rounds each.

    With ``make_model``, each round gets a freshly built model (same initial weights),
    built before its clock starts.
    """
    for round_index in range(case.rounds):
        order = [("seed", seed_round), ("kit", kit_round)]
        if round_index % 2:
            order.reverse()
        for side, work in order:
            if make_model is not None:
                model = make_model()
                seconds = _timed(lambda: work(model), device)
            else:
                seconds = _timed(work, device)
            (case.seed_seconds if side == "seed" else case.kit_seconds).append(seconds)
            say(f"  {case.name} round {round_index + 1}/{case.rounds} {side:<4} {seconds:7.2f} s")
    return case


# ----------------------------------------------------------------------------- the cases


def bench_data_pipeline(count: int, image_size: int, rounds: int, device, say) -> CaseResult:
    """Iterate one augmented epoch of ``count`` images; nothing else."""
    dataset = random_cifar_like(count)
    seed = seed_style_loader(dataset, image_size, augment=True, shuffle=True)
    kit = kit_loader(dataset, image_size, augment=True, shuffle=True, device=device)

    def seed_epoch():
        for images, labels in seed:
            images.to(device, non_blocking=True)  # the kit's batches are already there

    def kit_epoch():
        for images, labels in kit:
            pass

    next(iter(seed)), next(iter(kit))  # start the workers; first-call setup on both sides
    case = CaseResult(f"data_{image_size}", f"data pipeline alone, {image_size} px, crop+flip augmentation",
                      images=count, image_size=image_size, rounds=rounds, target=3.0)
    return _alternate(case, seed_epoch, kit_epoch, device, say)


def _fresh_model(name: str, strategy: str = "none"):
    torch.manual_seed(0)
    model = build_model(name, num_classes=10, pretrained=False)
    apply_strategy(model, strategy)
    return model


def _seed_fit(model, loader, val_loader, epochs: int, device):
    # The seed-style side trains in float32 without any of the kit's speed-ups.
    fit(model, loader, val_loader, num_epochs=epochs, lr=SEED_LR, device=device, verbose=False,
        mixed_precision=False if device.type == "cuda" else None,
        channels_last=False if device.type == "cuda" else None, restore_best=False)


def _kit_fit(model, loader, val_loader, epochs: int, device, cache: bool = False, compile_model: bool = False):
    fit(model, loader, val_loader, num_epochs=epochs, lr=SEED_LR, device=device, verbose=False,
        cache_features=cache, compile_model=compile_model, restore_best=False)


def _warm_up(name: str, image_size: int, device) -> None:
    """One training step at this size, so that one-time kernel setup is timed on neither side."""
    model = _fresh_model(name).to(device)
    images = torch.randn(SEED_BATCH_SIZE, 3, image_size, image_size, device=device)
    labels = torch.randint(0, 10, (SEED_BATCH_SIZE,), device=device)
    torch.nn.functional.cross_entropy(model(images), labels).backward()


def bench_fine_tune(model_name: str, count: int, image_size: int, rounds: int, device, say,
                    name: str, target: float | None = None, per_epoch_of: int | None = None,
                    compile_model: bool = False) -> CaseResult:
    """One epoch of full fine-tuning (augmentation on) of ``count`` images."""
    dataset = random_cifar_like(count)
    seed = seed_style_loader(dataset, image_size, augment=True, shuffle=True)
    kit = kit_loader(dataset, image_size, augment=True, shuffle=True, device=device)
    next(iter(seed))
    _warm_up(model_name, image_size, device)
    if compile_model:
        # Compilation happens in the first batches; do it before the timed rounds, on a few images.
        few = kit_loader(random_cifar_like(4 * SEED_BATCH_SIZE), image_size, augment=True, shuffle=True,
                         device=device)
        _kit_fit(_fresh_model(model_name), few, None, 1, device, compile_model=True)
    case = CaseResult(name, f"{model_name} full fine-tune, {image_size} px, 1 epoch, crop+flip augmentation",
                      images=count, image_size=image_size, rounds=rounds, target=target,
                      per_epoch_of=per_epoch_of, epoch_images=count)
    return _alternate(case,
                      lambda model: _seed_fit(model, seed, None, 1, device),
                      lambda model: _kit_fit(model, kit, None, 1, device, compile_model=compile_model),
                      device, say, make_model=lambda: _fresh_model(model_name))


def bench_last_only(count: int, val_count: int, epochs: int, image_size: int, rounds: int, device, say) -> CaseResult:
    """A whole ``last_only`` run: ``epochs`` epochs of training plus validation after each."""
    train, val = random_cifar_like(count, seed=0), random_cifar_like(val_count, seed=1)
    seed_train = seed_style_loader(train, image_size, augment=False, shuffle=True)
    seed_val = seed_style_loader(val, image_size, augment=False, shuffle=False)
    kit_train = kit_loader(train, image_size, augment=False, shuffle=True, device=device)
    kit_val = kit_loader(val, image_size, augment=False, shuffle=False, device=device)
    next(iter(seed_train)), next(iter(seed_val))
    _warm_up("resnet18", image_size, device)
    case = CaseResult(
        f"last_only_{image_size}", f"resnet18 last_only, {image_size} px, {epochs} epochs end to end "
        f"(+ validation of {val_count} images each epoch), no augmentation on either side",
        images=count * epochs, image_size=image_size, rounds=rounds, target=6.0, epoch_images=count)
    return _alternate(case,
                      lambda model: _seed_fit(model, seed_train, seed_val, epochs, device),
                      lambda model: _kit_fit(model, kit_train, kit_val, epochs, device, cache=True),
                      device, say, make_model=lambda: _fresh_model("resnet18", "last_only"))


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


QUICK = Sizes(data_images=128, data_rounds=1, finetune_images=64, finetune_rounds=1, last_only_images=64,
              last_only_val_images=32, last_only_epochs=2, last_only_rounds=1, small_size=32, large_size=64,
              cuda_images=256, cuda_rounds=1)


def _load_average() -> list[float] | None:
    """1, 5 and 15-minute load averages: other work on the machine slows both sides."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def machine_description(device: torch.device) -> dict:
    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
    }
    info["load_average_at_start"] = _load_average()
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def run_benchmark(sizes: Sizes, device: torch.device, compile_model: bool = False, say=print) -> list[CaseResult]:
    """Run every case for ``device`` and return the results (see the module notes)."""
    results = [
        bench_data_pipeline(sizes.data_images, sizes.large_size, sizes.data_rounds, device, say),
        bench_fine_tune("resnet18", sizes.finetune_images, sizes.small_size, sizes.finetune_rounds, device, say,
                        name=f"finetune_{sizes.small_size}", target=0.95),
        bench_last_only(sizes.last_only_images, sizes.last_only_val_images, sizes.last_only_epochs,
                        sizes.small_size, sizes.last_only_rounds, device, say),
    ]
    if device.type == "cuda":
        for model_name in ("alexnet", "resnet18", "vgg16"):
            results.append(bench_fine_tune(model_name, sizes.cuda_images, sizes.large_size, sizes.cuda_rounds,
                                           device, say, name=f"seed_{model_name}_{sizes.large_size}",
                                           per_epoch_of=25_000, compile_model=compile_model))
    return results


def format_table(results: list[CaseResult]) -> str:
    """The results as an aligned text table (fastest round per side; the median ratio alongside)."""
    lines = [f"{'case':<18} {'images':>7} {'px':>4}  {'seed-style img/s':>16}  {'kit img/s':>10}  "
             f"{'ratio':>7}  {'(median)':>8}  {'target':>7}"]
    for r in results:
        target = f">= {r.target:g}x" if r.target is not None else ""
        lines.append(f"{r.name:<18} {r.images:>7,} {r.image_size:>4}  {r.seed_images_per_second:>16,.0f}  "
                     f"{r.kit_images_per_second:>10,.0f}  {r.ratio:>6.2f}x  {r.median_ratio:>7.2f}x  {target:>7}")
        if r.per_epoch_of is not None:
            lines.append(f"{'':<18} seconds per epoch of {r.per_epoch_of:,} images: "
                         f"seed-style {r.seconds_per_epoch('seed'):.1f} s, kit {r.seconds_per_epoch('kit'):.2f} s")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes (seconds): proves the command works, numbers mean little")
    parser.add_argument("--output", default="bench-results", help="folder for the JSON (default: bench-results)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    parser.add_argument("--compile", action="store_true", help="CUDA cases: torch.compile on the kit's side")
    parser.add_argument("--cuda-images", type=int, default=None,
                        help="images per CUDA epoch measurement (default 25,000; fewer are scaled to 25,000)")


def main(args: argparse.Namespace) -> int:
    started_at = datetime.now()
    started = time.perf_counter()
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    sizes = QUICK if args.quick else Sizes()
    if args.cuda_images is not None:
        sizes = Sizes(**{**asdict(sizes), "cuda_images": args.cuda_images})
    os.environ.setdefault("COURSE_PROGRESS", "off")
    machine = machine_description(device)
    print(f"course bench on {device} ({'quick' if args.quick else 'full'} sizes): {sizes}")
    results = run_benchmark(sizes, device, compile_model=args.compile)
    wall = time.perf_counter() - started
    table = format_table(results)
    print()
    print(table)
    print(f"\nwall time {wall:.0f} s")

    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    path = output / f"bench-{started_at:%Y%m%d-%H%M%S}.json"
    path.write_text(json.dumps({
        "command": "course bench" + (" --quick" if args.quick else "") + (" --compile" if args.compile else ""),
        "started": started_at.isoformat(timespec="seconds"),
        "wall_seconds": wall,
        "machine": {**machine, "load_average_at_end": _load_average()},
        "sizes": asdict(sizes),
        "cases": [r.to_dict() for r in results],
        "table": table,
    }, indent=2))
    print(f"written {path}")
    return 0
