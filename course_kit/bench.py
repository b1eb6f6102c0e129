"""``course bench``: the seed-style pipeline, stock torchvision and the kit's path, side by side in one process.

Every side does the same work: the same model (same initial weights), the same number of
images at the same resolution, the same augmentation (random crop with padding 4 and
horizontal flip, or none on both sides), batch 64, SGD lr 1e-3 momentum 0.9. Only the
way the work is done differs:

* **seed-style**: per-image PIL transforms ``Resize -> RandomCrop(padding=4) ->
  RandomHorizontalFlip -> ToTensor -> Normalize`` in a ``DataLoader`` with 2 workers,
  float32, the whole network run every epoch (as the COMP5541 notebook does);
* **torchvision** (the careful baseline): what a user who knows stock torchvision writes:
  ``transforms.v2`` on uint8 tensors (no PIL; antialiased resize, float conversion last),
  2 persistent workers, pinned memory on CUDA; the same float32 network as seed-style;
* **kit**: ``make_loader`` (uint8 images on the device, batched transforms, channels-last
  batches) and ``fit`` (feature caching where asked for; bf16 and channels-last on CUDA,
  and on a CPU that computes bfloat16 in hardware, where they pay for ResNet-18; the
  command prints which it used).

Targets are against the reference pipeline (CPU: data >= 5x, full fine-tune >= 1.3x,
``last_only`` run >= 15x); the table prints the ratio against torchvision beside it.

The sides alternate (seed, torchvision, kit, kit, torchvision, seed, ...) so that a machine that gets busier or
quieter during the run affects both alike. Each side is reported by its fastest round
(other work on the machine can only add time, so the fastest round is the one closest
to the undisturbed cost; the JSON keeps every round and the medians too), with images
per second and the ratios kit / seed-style and kit / torchvision.

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
import time
from dataclasses import asdict
from datetime import datetime
from pathlib import Path


def _load_average() -> list[float] | None:
    """1, 5 and 15-minute load averages: other work on the machine slows both sides."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def machine_description(device) -> dict:
    import torch

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


def format_table(results: list) -> str:
    """The results as an aligned text table (fastest round per side; the median ratio alongside).

    ``vs seed`` is the kit against the reference pipeline (what the target is for), ``vs tv``
    against stock torchvision written with care.
    """
    lines = [
        f"{'case':<16} {'images':>7} {'px':>4}  {'seed img/s':>10}  {'tv img/s':>8}  {'kit img/s':>9}  "
        f"{'vs seed':>7}  {'(median)':>8}  {'vs tv':>6}  {'target':>7}"
    ]
    for r in results:
        target = f">= {r.target:g}x" if r.target is not None else ""
        met = "" if r.target is None else (" met" if r.ratio >= r.target else " MISSED")
        tv_rate = f"{r.torchvision_images_per_second:>8,.0f}" if r.torchvision_seconds else f"{'-':>8}"
        tv_ratio = f"{r.torchvision_ratio:>5.2f}x" if r.torchvision_seconds else f"{'-':>6}"
        lines.append(
            f"{r.name:<16} {r.images:>7,} {r.image_size:>4}  {r.seed_images_per_second:>10,.0f}  {tv_rate}  "
            f"{r.kit_images_per_second:>9,.0f}  {r.ratio:>6.2f}x  {r.median_ratio:>7.2f}x  {tv_ratio}  "
            f"{target:>7}{met}"
        )
        if r.per_epoch_of is not None:
            lines.append(
                f"{'':<16} seconds per epoch of {r.per_epoch_of:,} images: "
                f"seed-style {r.seconds_per_epoch('seed'):.1f} s, kit {r.seconds_per_epoch('kit'):.2f} s"
            )
    return "\n".join(lines)


# ----------------------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes (seconds): proves the command works, numbers mean little"
    )
    parser.add_argument("--output", default="bench-results", help="folder for the JSON (default: bench-results)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    parser.add_argument("--compile", action="store_true", help="CUDA cases: torch.compile on the kit's side")
    parser.add_argument(
        "--cuda-images",
        type=int,
        default=None,
        help="images per CUDA epoch measurement (default 25,000; fewer are scaled to 25,000)",
    )


def main(args: argparse.Namespace) -> int:
    from course_utils import default_device

    from .bench_cases import QUICK, Sizes, kit_speedups, run_benchmark

    started_at = datetime.now()
    started = time.perf_counter()
    device = default_device(args.device)
    sizes = QUICK if args.quick else Sizes()
    if args.cuda_images is not None:
        sizes = Sizes(**{**asdict(sizes), "cuda_images": args.cuda_images})
    os.environ.setdefault("COURSE_PROGRESS", "off")
    machine = machine_description(device)
    speed = kit_speedups(device)
    kit_side = {
        "mixed_precision": speed.mixed_precision,
        "channels_last": speed.channels_last,
        # torch.compile only in the CUDA cases at the seeds' settings (seed_*)
        "compile_seed_cases": bool(args.compile and device.type == "cuda"),
    }
    print(f"course bench on {device} ({'quick' if args.quick else 'full'} sizes): {sizes}")
    print("kit side's training speed-ups: " + ", ".join(f"{k}={v}" for k, v in kit_side.items()))
    if args.compile and device.type != "cuda":
        print(f"--compile applies to the CUDA cases only; this run on {device} has none, so nothing is compiled.")
    results = run_benchmark(sizes, device, compile_model=args.compile)
    wall = time.perf_counter() - started
    table = format_table(results)
    print()
    print(table)
    print(f"\nwall time {wall:.0f} s")

    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    path = output / f"bench-{started_at:%Y%m%d-%H%M%S}.json"
    path.write_text(
        json.dumps(
            {
                "command": "course bench" + (" --quick" if args.quick else "") + (" --compile" if args.compile else ""),
                "started": started_at.isoformat(timespec="seconds"),
                "wall_seconds": wall,
                "machine": {**machine, "load_average_at_end": _load_average()},
                "sizes": asdict(sizes),
                "kit_speedups": kit_side,
                "cases": [r.to_dict() for r in results],
                "table": table,
            },
            indent=2,
        )
    )
    print(f"written {path}")
    return 0
