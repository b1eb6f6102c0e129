"""Fruit multi-task dataset: both folder conventions, hidden folders, bad images, colour modes."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

import course_utils as cu
from course_utils.data.fruit import parse_class_folder, to_rgb


@pytest.mark.parametrize(
    "folder,expected",
    [
        ("freshapples", ("apple", "fresh")),
        ("rottenbanana", ("banana", "rotten")),
        ("freshoranges", ("orange", "fresh")),
        ("fresh_apple", ("apple", "fresh")),
        ("stale_apple", ("apple", "stale")),
        ("Rotten_Tomatoes", ("tomato", "rotten")),
        ("fresh_cherries", ("cherry", "fresh")),
    ],
)
def test_folder_name_conventions(folder, expected):
    assert parse_class_folder(folder) == expected


def test_unrecognised_folder_name_says_how_to_name_it():
    with pytest.raises(ValueError, match="freshapples.*fresh_apple"):
        parse_class_folder("apples")


@pytest.mark.parametrize("style,rotten_name", [("compact", "rotten"), ("underscore", "stale")])
def test_synthetic_tree_loads_with_both_conventions(tmp_path, style, rotten_name):
    root = cu.data.standins.write_synthetic_fruit(
        tmp_path, per_class_train=3, per_class_test=2, size=32, fruits=["apple", "banana", "lime"], style=style
    )
    (root / "train" / ".ipynb_checkpoints").mkdir()  # must never become a class
    (root / "train" / ".ipynb_checkpoints" / "junk.png").write_bytes(b"not an image")
    train = cu.data.FruitFreshnessDataset(root / "train")
    assert train.fruit_classes == ["apple", "banana", "lime"]
    assert train.freshness_classes == ["fresh", rotten_name]
    assert len(train) == 3 * 2 * 3
    image, fruit, freshness = train[0]
    assert isinstance(image, Image.Image) and image.mode == "RGB"
    path = train.samples[0][0]
    assert train.fruit_classes[fruit] in path.name and (freshness == 0) == path.parent.name.startswith("fresh")
    assert sorted(set(train.targets)) == [0, 1, 2]


def test_unreadable_images_are_named_before_training(tmp_path):
    root = cu.data.standins.write_synthetic_fruit(
        tmp_path, per_class_train=2, per_class_test=1, size=32, fruits=["apple"]
    )
    folder = root / "train" / "freshapples"
    good = folder / "apple_0000.png"
    truncated = folder / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:60])
    (folder / "empty.jpg").write_bytes(b"")
    with pytest.warns(UserWarning) as caught:
        dataset = cu.data.FruitFreshnessDataset(root / "train")
    message = str(caught[0].message)
    assert "Skipped 2 unreadable image(s)" in message and "truncated.png" in message and "empty.jpg" in message
    assert len(dataset) == 4 and len(dataset.bad_files) == 2
    with pytest.raises(ValueError, match="(?s)2 unreadable image.*truncated.png"):
        cu.data.FruitFreshnessDataset(root / "train", on_bad_image="raise")


def test_empty_class_folder_and_missing_root_raise(tmp_path):
    (tmp_path / "freshapples").mkdir()
    with pytest.raises(ValueError, match="freshapples contains no images"):
        cu.data.FruitFreshnessDataset(tmp_path)
    with pytest.raises(FileNotFoundError, match="write_synthetic_fruit"):
        cu.data.FruitFreshnessDataset(tmp_path / "nope")


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "CMYK", "LA", "I;16"])
def test_every_colour_mode_becomes_rgb(tmp_path, mode):
    rgb = Image.fromarray(np.random.default_rng(0).integers(0, 255, (16, 16, 3), dtype=np.uint8))
    if mode == "I;16":
        image = Image.fromarray(np.arange(256, dtype=np.uint16).reshape(16, 16) * 200)
    elif mode == "P":
        image = rgb.convert("P")
    else:
        image = rgb.convert(mode)
    converted = to_rgb(image)
    assert converted.mode == "RGB" and converted.size == (16, 16)
    if mode == "I;16":
        assert np.asarray(converted).max() == 255 and np.asarray(converted).min() == 0  # scaled, not clipped
    if mode in ("RGBA", "LA"):
        transparent = image.copy()
        transparent.putalpha(0)
        assert np.asarray(to_rgb(transparent)).min() == 255  # fully transparent -> white page


def test_files_in_any_colour_mode_load_as_rgb(tmp_path):
    folder = tmp_path / "fresh_apple"
    folder.mkdir()
    base = Image.new("RGB", (20, 20), (200, 30, 30))
    base.convert("L").save(folder / "grey.png")
    base.convert("P").save(folder / "palette.gif")
    base.convert("RGBA").save(folder / "alpha.png")
    base.convert("CMYK").save(folder / "cmyk.jpg")
    dataset = cu.data.FruitFreshnessDataset(tmp_path, transform=cu.data.image_transforms(24))
    assert len(dataset) == 4
    for i in range(4):
        image, fruit, freshness = dataset[i]
        assert image.shape == (3, 24, 24) and (fruit, freshness) == (0, 0)


def test_tensor_cache_matches_file_decoding(tmp_path):
    root = cu.data.standins.write_synthetic_fruit(
        tmp_path, per_class_train=2, per_class_test=1, size=40, fruits=["grape", "pear"]
    )
    dataset = cu.data.FruitFreshnessDataset(root / "test")
    cached = dataset.to_tensor_dataset(size=32)
    assert cached.images.shape == (len(dataset), 3, 32, 32)
    image, fruit, freshness = cached[1]
    assert (int(fruit), int(freshness)) == dataset.samples[1][1:]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert torch.is_tensor(image) and image.max() <= 1
