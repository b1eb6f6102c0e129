"""The fruit multi-task dataset (the multi-task fruit article): one image, two labels (fruit type and freshness).

Class folders follow either public convention:
  * ``freshapples``, ``rottenbanana``, ``freshoranges`` (fresh/rotten prefix, no separator);
  * ``fresh_apple``, ``stale_apple``, ``rotten_tomato`` (prefix and underscore).

Plural fruit names are folded (``apples`` -> ``apple``). Hidden folders such as
``.ipynb_checkpoints`` are never classes. Every image is opened once when the dataset is
built, so an unreadable or truncated file is reported there (skipped with one warning
that lists them all, or an error), not deep inside a DataLoader worker mid-epoch.

Example:
    >>> from course_utils.data.standins import write_synthetic_fruit
    >>> _ = write_synthetic_fruit("fruit", per_class_train=2, per_class_test=1, size=32)
    >>> train = FruitFreshnessDataset("fruit/train")
    >>> image, fruit_index, freshness_index = train[0]
    >>> train.fruit_classes, train.freshness_classes
    (['apple', 'banana', 'grape', 'lime', 'orange', 'pear'], ['fresh', 'rotten'])
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFile
from torch.utils.data import Dataset

from .datasets import TensorImageDataset

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
_FOLDER = re.compile(r"^(fresh|rotten|stale)[_\- ]?([a-z][a-z_\- ]*)$")


def parse_class_folder(name: str) -> tuple[str, str]:
    """``"freshapples"`` -> ``("apple", "fresh")``; ``"stale_banana"`` -> ``("banana", "stale")``.

    Raises:
        ValueError: the name follows neither convention.
    """
    match = _FOLDER.match(name.strip().lower())
    if not match:
        raise ValueError(
            f"Folder {name!r} is not a fruit class folder. Name class folders like 'freshapples' / "
            "'rottenbanana' or 'fresh_apple' / 'stale_apple' (freshness prefix + fruit name)."
        )
    state, fruit = match.group(1), match.group(2).strip("_- ")
    return singular(fruit), state


def singular(word: str) -> str:
    """Fold simple English plurals: apples -> apple, tomatoes -> tomato, cherries -> cherry."""
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("oes"):
        return word[:-2]
    if word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def to_rgb(image: Image.Image, background=(255, 255, 255)) -> Image.Image:
    """Any PIL image as RGB: grayscale, palette, RGBA/LA (over a white page), CMYK, 16-bit."""
    if image.mode == "RGB":
        return image
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA"):
        rgba = image.convert("RGBA")
        page = Image.new("RGB", rgba.size, background)
        page.paste(rgba, mask=rgba.getchannel("A"))
        return page
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit grey: scale to 8 bits instead of letting PIL clip everything to white.
        array = np.asarray(image, dtype=np.float32)
        scaled = np.round(array / max(float(array.max()), 1.0) * 255).astype(np.uint8)
        return Image.fromarray(scaled).convert("RGB")
    return image.convert("RGB")


def load_rgb(path: str | os.PathLike) -> Image.Image:
    """Open and fully decode an image file as RGB (truncated files raise ``OSError``)."""
    previous = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with Image.open(path) as image:
            image.load()
            return to_rgb(image)
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous


class FruitFreshnessDataset(Dataset):
    """Fruit photos in class folders, yielding ``(image, fruit_index, freshness_index)``.

    Args:
        root: folder holding one sub-folder per class (e.g. ``data/fruit/train``).
        transform: per-image callable on a PIL RGB image (see ``image_transforms``).
        on_bad_image: ``"skip"`` (default: leave unreadable files out, one warning lists them)
            or ``"raise"`` (stop with an error listing them).

    Attributes:
        fruit_classes, freshness_classes: index -> name lists; ``fruit_to_idx``,
            ``freshness_to_idx`` the reverse maps. Freshness 0 is always ``fresh``.
        samples: ``[(path, fruit_index, freshness_index), ...]``.
        bad_files: ``[(path, reason), ...]`` that were skipped.
        targets: fruit indices (for stratified subsets).
    """

    def __init__(self, root: str | os.PathLike, transform=None, on_bad_image: str = "skip"):
        if on_bad_image not in ("skip", "raise"):
            raise ValueError(f"on_bad_image must be 'skip' or 'raise', got {on_bad_image!r}.")
        self.root = Path(root)
        self.transform = transform
        if not self.root.is_dir():
            raise FileNotFoundError(
                f"Fruit data folder {self.root} does not exist. Put one folder per class there "
                "(e.g. freshapples/, rottenapples/) or write the synthetic stand-in with "
                "course_utils.write_synthetic_fruit(root)."
            )
        folders = sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))
        if not folders:
            raise FileNotFoundError(f"{self.root} has no class folders (hidden folders are ignored).")
        parsed = {folder: parse_class_folder(folder.name) for folder in folders}
        self.fruit_classes = sorted({fruit for fruit, _ in parsed.values()})
        states = sorted({state for _, state in parsed.values()} - {"fresh"})
        self.freshness_classes = ["fresh", "/".join(states) if states else "rotten"]
        self.fruit_to_idx = {name: i for i, name in enumerate(self.fruit_classes)}
        self.freshness_to_idx = {name: i for i, name in enumerate(self.freshness_classes)}

        candidates = []
        for folder, (fruit, state) in parsed.items():
            files = sorted(
                p
                for p in folder.rglob("*")
                if p.suffix.lower() in IMAGE_EXTENSIONS
                and not any(part.startswith(".") for part in p.relative_to(folder).parts)
            )
            if not files:
                raise ValueError(
                    f"Class folder {folder} contains no images ({', '.join(sorted(IMAGE_EXTENSIONS))}). "
                    "Add images or remove the folder."
                )
            candidates += [(f, self.fruit_to_idx[fruit], 0 if state == "fresh" else 1) for f in files]

        self.samples, self.bad_files = [], []
        for path, fruit, freshness in candidates:
            try:
                load_rgb(path)
            except (OSError, ValueError, Image.DecompressionBombError) as err:
                self.bad_files.append((path, f"{type(err).__name__}: {err}"))
                continue
            self.samples.append((path, fruit, freshness))
        if self.bad_files:
            listing = "\n".join(f"  {p}: {why}" for p, why in self.bad_files)
            if on_bad_image == "raise":
                raise ValueError(f"{len(self.bad_files)} unreadable image(s) under {self.root}:\n{listing}")
            warnings.warn(
                f"Skipped {len(self.bad_files)} unreadable image(s) under {self.root}:\n{listing}", stacklevel=2
            )
        self.targets = [fruit for _, fruit, _ in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        path, fruit, freshness = self.samples[index]
        image = load_rgb(path)
        if self.transform is not None:
            image = self.transform(image)
        return image, fruit, freshness

    def to_tensor_dataset(self, size: int, transform=None) -> TensorImageDataset:
        """Decode every image once to uint8 ``(N, 3, size, size)`` (resized, centre-cropped) in memory.

        Training then never touches the files again; ``transform`` works on uint8 tensors.
        """
        from torchvision.transforms import functional as F

        images = torch.empty((len(self), 3, size, size), dtype=torch.uint8)
        for i, (path, _, _) in enumerate(self.samples):
            image = F.center_crop(F.resize(load_rgb(path), size, antialias=True), [size, size])
            images[i] = F.pil_to_tensor(image)
        fruit = torch.tensor([s[1] for s in self.samples])
        freshness = torch.tensor([s[2] for s in self.samples])
        return TensorImageDataset(images, fruit, freshness, classes=self.fruit_classes, transform=transform)
