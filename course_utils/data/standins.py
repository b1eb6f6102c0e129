"""Synthetic stand-ins in the real on-disk formats, for tests and the ``smoke`` profile.

* ``write_synthetic_cifar10``: a small CIFAR-10 in the real python-batch format, read by
  torchvision's own ``CIFAR10`` class (see ``data.StandInCIFAR10`` for the md5 manifest).
* ``write_synthetic_fruit``: a fruit folder tree whose images carry a learnable signal:
  the fruit is told by shape and colour, freshness by brown blemishes.
* ``write_standin_checkpoints``: random weights saved under torchvision's real checkpoint
  file names in a torch cache, so ``build_model(pretrained=True)`` runs its real loading path.

Nothing here pretends to be real data: loading any of it prints a warning saying so.

Example:
    >>> folder = write_synthetic_cifar10("smoke-data", per_class_train=2, per_class_test=1)
    >>> folder.name, sorted(p.name for p in folder.iterdir())[:3]
    ('cifar-10-batches-py', ['batches.meta', 'course-standin.json', 'data_batch_1'])
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .cifar import CIFAR10_CLASSES, STANDIN_MANIFEST

# ----------------------------------------------------------------------------- CIFAR-10


def _cifar_pattern_images(labels: np.ndarray, rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """32x32 RGB images whose class shows in a colour and a stripe orientation, plus noise."""
    n = len(labels)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    hues = np.linspace(0, 1, 10, endpoint=False)
    images = np.empty((n, size, size, 3), dtype=np.float32)
    for i, label in enumerate(labels):
        angle = np.pi * label / 10
        stripes = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * (np.cos(angle) * xx + np.sin(angle) * yy) + rng.uniform(0, 6.3))
        base = 0.5 + 0.4 * np.cos(2 * np.pi * (hues[label] + np.array([0, 1 / 3, 2 / 3])))
        images[i] = base[None, None, :] * (0.55 + 0.45 * stripes[..., None])
    images += rng.normal(0, 0.08, images.shape).astype(np.float32)
    return (np.clip(images, 0, 1) * 255).round().astype(np.uint8)


def write_synthetic_cifar10(
    root: str | os.PathLike, per_class_train: int = 20, per_class_test: int = 10, seed: int = 0
) -> Path:
    """Write a small CIFAR-10 stand-in (5 train batches, test batch, meta) under ``root/cifar-10-batches-py``.

    Args:
        root: the data directory you will pass to ``cifar10(root=...)``.
        per_class_train, per_class_test: images per class in each split.

    Returns:
        The ``cifar-10-batches-py`` folder.
    """
    rng = np.random.default_rng(seed)
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)

    def batch(labels: np.ndarray, name: str) -> dict:
        images = _cifar_pattern_images(labels, rng)
        return {
            "batch_label": name,
            "labels": labels.tolist(),
            "data": images.transpose(0, 3, 1, 2).reshape(len(labels), -1),  # rows of R, G, B planes
            "filenames": [f"synthetic_{name.replace(' ', '_')}_{i}.png" for i in range(len(labels))],
        }

    train_labels = rng.permutation(np.repeat(np.arange(10), per_class_train))
    pieces = np.array_split(train_labels, 5)
    files = {f"data_batch_{i + 1}": batch(p, f"training batch {i + 1} of 5") for i, p in enumerate(pieces)}
    files["test_batch"] = batch(rng.permutation(np.repeat(np.arange(10), per_class_test)), "testing batch 1 of 1")
    files["batches.meta"] = {
        "label_names": list(CIFAR10_CLASSES),
        "num_cases_per_batch": len(pieces[0]),
        "num_vis": 3072,
    }
    md5 = {}
    for name, content in files.items():
        path = folder / name
        with open(path, "wb") as f:
            pickle.dump(content, f, protocol=2)
        md5[name] = hashlib.md5(path.read_bytes()).hexdigest()
    (folder / STANDIN_MANIFEST).write_text(json.dumps({"synthetic": True, "md5": md5}, indent=1))
    return folder


# ----------------------------------------------------------------------------- fruit

FRUIT_LOOKS = {
    # name: (RGB colour, shape)
    "apple": ((200, 30, 35), "round"),
    "banana": ((235, 205, 50), "long"),
    "orange": ((245, 140, 20), "round"),
    "lime": ((90, 180, 40), "small"),
    "grape": ((110, 40, 120), "cluster"),
    "pear": ((170, 200, 70), "drop"),
}


def _draw_fruit(fruit: str, rotten: bool, size: int, rng: np.random.Generator) -> Image.Image:
    colour, shape = FRUIT_LOOKS[fruit]
    background = tuple(int(v) for v in rng.integers(200, 256, 3))
    image = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(image)
    c = size / 2 + rng.uniform(-0.08, 0.08, 2) * size
    r = size * rng.uniform(0.28, 0.36)
    jitter = tuple(int(np.clip(v + rng.integers(-20, 21), 0, 255)) for v in colour)
    if shape == "round":
        draw.ellipse([c[0] - r, c[1] - r, c[0] + r, c[1] + r], fill=jitter)
    elif shape == "small":
        draw.ellipse([c[0] - 0.7 * r, c[1] - 0.7 * r, c[0] + 0.7 * r, c[1] + 0.7 * r], fill=jitter)
    elif shape == "long":
        draw.ellipse([c[0] - 1.4 * r, c[1] - 0.45 * r, c[0] + 1.4 * r, c[1] + 0.45 * r], fill=jitter)
    elif shape == "drop":
        draw.ellipse([c[0] - 0.8 * r, c[1] - 0.1 * r, c[0] + 0.8 * r, c[1] + 1.0 * r], fill=jitter)
        draw.ellipse([c[0] - 0.5 * r, c[1] - 0.9 * r, c[0] + 0.5 * r, c[1] + 0.3 * r], fill=jitter)
    else:  # cluster
        for dx, dy in [(-0.5, -0.5), (0.5, -0.5), (0, 0), (-0.5, 0.5), (0.5, 0.5), (0, -1), (0, 1)]:
            x, y, s = c[0] + dx * r, c[1] + dy * r * 0.8, 0.38 * r
            draw.ellipse([x - s, y - s, x + s, y + s], fill=jitter)
    if rotten:
        for _ in range(int(rng.integers(3, 7))):
            a, d = rng.uniform(0, 2 * np.pi), rng.uniform(0, 0.6 * r)
            x, y, s = c[0] + d * np.cos(a), c[1] + d * np.sin(a), rng.uniform(0.1, 0.22) * r
            draw.ellipse([x - s, y - s, x + s, y + s], fill=(int(rng.integers(70, 100)), int(rng.integers(45, 65)), 20))
    return image.filter(ImageFilter.GaussianBlur(radius=size / 128))


def write_synthetic_fruit(
    root: str | os.PathLike,
    per_class_train: int = 12,
    per_class_test: int = 6,
    size: int = 64,
    fruits=None,
    style: str = "compact",
    seed: int = 0,
) -> Path:
    """Write ``root/train`` and ``root/test`` fruit class folders of synthetic PNG photos.

    Args:
        root: output folder.
        per_class_train, per_class_test: images per (fruit, freshness) folder and split.
        size: image side in pixels.
        fruits: fruit names from ``FRUIT_LOOKS`` (default: all six).
        style: ``"compact"`` folder names (``freshapples``/``rottenapples``) or
            ``"underscore"`` (``fresh_apple``/``stale_apple``).

    Returns:
        ``root``.
    """
    if style not in ("compact", "underscore"):
        raise ValueError("style must be 'compact' or 'underscore'")
    rng = np.random.default_rng(seed)
    root = Path(root)
    for split, count in (("train", per_class_train), ("test", per_class_test)):
        for fruit in fruits or FRUIT_LOOKS:
            for rotten in (False, True):
                if style == "compact":
                    name = f"{'rotten' if rotten else 'fresh'}{fruit}s"
                else:
                    name = f"{'stale' if rotten else 'fresh'}_{fruit}"
                folder = root / split / name
                folder.mkdir(parents=True, exist_ok=True)
                for i in range(count):
                    _draw_fruit(fruit, rotten, size, rng).save(folder / f"{fruit}_{i:04d}.png")
    (root / STANDIN_MANIFEST).write_text(json.dumps({"synthetic": True}))
    return root


# ----------------------------------------------------------------------------- weights
