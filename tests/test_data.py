"""Data: CIFAR-10 through torchvision, subsets, digits, transforms."""

from __future__ import annotations

import pickle
from collections import Counter

import numpy as np
import pytest
import torch
from torch.utils.data import Subset, TensorDataset
from torchvision.datasets import CIFAR10

import course_utils as cu


class Labels:
    """A dataset stand-in that only has targets: subsets must never need the images."""

    def __init__(self, targets):
        self.targets = list(targets)

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, index):
        raise AssertionError("subsets must not decode images")


@pytest.fixture
def imbalanced():
    # 10 classes with 50..500 items: stratification has something to get wrong.
    rng = np.random.default_rng(3)
    return Labels(rng.permutation(np.repeat(np.arange(10), np.arange(1, 11) * 50)))


@pytest.mark.parametrize("fraction", [0.1, 0.2, 0.5, 1.0])
def test_subset_fraction_stratified_exact_and_reproducible(imbalanced, fraction):
    subset = cu.subset_fraction(imbalanced, fraction, seed=7)
    assert len(subset) == round(fraction * len(imbalanced))
    full, part = Counter(imbalanced.targets), cu.class_counts(subset)
    for cls, count in full.items():
        assert abs(part[cls] - fraction * count) <= 1, (cls, part[cls], fraction * count)
    again = cu.subset_fraction(imbalanced, fraction, seed=7)
    assert again.indices == subset.indices
    assert len(set(subset.indices)) == len(subset.indices)


def test_subset_fraction_seed_changes_selection_and_unstratified_mode(imbalanced):
    a = cu.subset_fraction(imbalanced, 0.2, seed=1)
    b = cu.subset_fraction(imbalanced, 0.2, seed=2)
    assert a.indices != b.indices
    plain = cu.subset_fraction(imbalanced, 0.2, seed=1, stratified=False)
    assert len(plain) == len(a) and plain.indices != a.indices


@pytest.mark.parametrize("bad", [0, -0.1, 1.5, "10%", None])
def test_subset_fraction_rejects_bad_fractions(imbalanced, bad):
    with pytest.raises(ValueError, match=r"fraction must be in \(0, 1\]"):
        cu.subset_fraction(imbalanced, bad)


def test_subset_per_class_disjoint_train_and_val(imbalanced):
    train = cu.subset_per_class(imbalanced, 25, seed=0)
    val = cu.subset_per_class(imbalanced, 25, seed=0, exclude=train)
    assert cu.class_counts(train) == {c: 25 for c in range(10)} == cu.class_counts(val)
    assert not set(train.indices) & set(val.indices)
    assert cu.subset_per_class(imbalanced, 25, seed=0).indices == train.indices


def test_subset_per_class_too_many_names_the_class(imbalanced):
    with pytest.raises(ValueError, match="Class 0 has only 50 items.*n_per_class=60"):
        cu.subset_per_class(imbalanced, 60)
    train = cu.subset_per_class(imbalanced, 30)
    with pytest.raises(ValueError, match="only 20 items available after exclusions"):
        cu.subset_per_class(imbalanced, 30, exclude=train.indices)


def test_targets_of_nested_subsets_and_tensor_datasets(imbalanced):
    inner = Subset(imbalanced, list(range(100, 300)))
    outer = Subset(inner, [0, 5, 10])
    assert cu.get_targets(outer).tolist() == [imbalanced.targets[i] for i in (100, 105, 110)]
    tensors = TensorDataset(torch.zeros(4, 1), torch.tensor([3, 1, 3, 0]))
    assert cu.get_targets(tensors).tolist() == [3, 1, 3, 0]
    with pytest.raises(TypeError, match="targets"):
        cu.get_targets([1, 2, 3])


def test_synthetic_cifar10_read_by_torchvisions_own_class(isolated_assets):
    root = isolated_assets / "data"
    folder = cu.data.standins.write_synthetic_cifar10(root, per_class_train=6, per_class_test=3)
    # The files are real python batches: plain pickle reads them the way torchvision does.
    with open(folder / "data_batch_1", "rb") as f:
        batch = pickle.load(f, encoding="latin1")
    assert batch["data"].dtype == np.uint8 and batch["data"].shape[1] == 3072
    with pytest.warns(UserWarning, match="synthetic CIFAR-10 stand-in"):
        train = cu.data.cifar10(train=True, image_size=40)
    assert isinstance(train, CIFAR10)
    assert len(train) == 60 and train.data.shape == (60, 32, 32, 3)
    assert train.classes == list(cu.data.CIFAR10_CLASSES)
    image, label = train[0]
    assert image.shape == (3, 40, 40) and image.dtype == torch.float32 and 0 <= label < 10
    with pytest.warns(UserWarning):
        test = cu.data.cifar10(train=False, image_size=32)
    assert len(test) == 30 and cu.class_counts(test) == {c: 3 for c in range(10)}


def test_corrupt_standin_fails_torchvisions_integrity_check_with_the_kits_message(isolated_assets):
    folder = cu.data.standins.write_synthetic_cifar10(isolated_assets / "data", per_class_train=2, per_class_test=1)
    path = folder / "data_batch_3"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(cu.assets.AssetUnavailableError) as info, pytest.warns(UserWarning):
        cu.data.cifar10(train=True)
    assert "data_batch_3 damaged" in str(info.value) and str(folder) in str(info.value)
    assert "delete that folder" in str(info.value) and "download=True" not in str(info.value)


def test_truncated_cifar_batch_offline_names_the_file_and_course_fetch(isolated_assets):
    """Every file is there, one is cut short: the kit's message, not torchvision's "use download=True"."""
    from torchvision.datasets import CIFAR10

    folder = isolated_assets / "data" / CIFAR10.base_folder
    folder.mkdir(parents=True)
    for name, _ in CIFAR10.train_list + CIFAR10.test_list + [(CIFAR10.meta["filename"], None)]:
        (folder / name).write_bytes(b"\x80\x04 truncated")
    with cu.assets.offline_mode(), pytest.raises(FileNotFoundError) as info:
        cu.data.cifar10(train=True)
    message = str(info.value)
    assert "data_batch_3 damaged" in message and str(folder) in message and "course fetch cifar10" in message
    assert "offline mode is on" in message and "download=True" not in message


def test_missing_cifar_offline_names_folder_and_fix(isolated_assets):
    with pytest.raises(FileNotFoundError) as info:
        cu.data.cifar10(train=True)
    assert str(isolated_assets / "data" / "cifar-10-batches-py") in str(info.value)
    assert "course fetch cifar10" in str(info.value)


def test_cifar_root_argument_wins_over_environment(tmp_path, isolated_assets):
    cu.data.standins.write_synthetic_cifar10(tmp_path, per_class_train=2, per_class_test=1)
    with pytest.warns(UserWarning):
        dataset = cu.data.cifar10(train=False, root=tmp_path, image_size=32)
    assert len(dataset) == 10
    assert cu.assets.data_dir() == isolated_assets / "data"


def test_digits_are_real_stratified_and_disjoint():
    train, test = cu.data.digits_dataset(train=True), cu.data.digits_dataset(train=False)
    assert len(train) + len(test) == 1797
    assert train.images.shape[1:] == (3, 32, 32) and train.images.dtype == torch.uint8
    counts = cu.class_counts(test)
    assert set(counts) == set(range(10)) and all(40 <= c <= 50 for c in counts.values())
    # Dark ink on a white page; a zero has ink around a blank centre.
    assert train.images.float().mean() > 150
    train_keys = {img.numpy().tobytes() for img in train.images}
    overlap = sum(img.numpy().tobytes() in train_keys for img in test.images)
    assert overlap <= 5  # a handful of byte-identical digits exist in the source data


def test_transforms_resize_augment_and_normalize():
    digits = cu.data.digits_dataset(train=True)
    plain = digits.with_transform(cu.data.image_transforms(48, augment=False, from_tensor=True))
    image, _ = plain[0]
    assert image.shape == (3, 48, 48)
    expected = (torch.ones(3) - torch.tensor(cu.models.IMAGENET_MEAN)) / torch.tensor(cu.models.IMAGENET_STD)
    assert torch.allclose(image[:, 0, 0], expected, atol=0.02)  # white corner -> (1 - mean) / std
    back = cu.data.unnormalize(image, cu.models.IMAGENET_MEAN, cu.models.IMAGENET_STD)
    assert torch.allclose(back[:, 0, 0], torch.ones(3), atol=0.02)
    augmented = digits.with_transform(cu.data.image_transforms(48, augment=True, from_tensor=True))
    torch.manual_seed(0)
    samples = torch.stack([augmented[0][0] for _ in range(20)])
    assert samples.shape == (20, 3, 48, 48) and samples.std(0).max() > 0.1  # crops/flips vary


def test_as_uint8_images_of_subset_keeps_labels():
    digits = cu.data.digits_dataset(train=True)
    subset = cu.subset_fraction(digits, 0.1, seed=0)
    tensors = cu.data.as_uint8_images(subset)
    assert len(tensors) == len(subset)
    assert torch.equal(tensors.targets, torch.as_tensor(cu.get_targets(subset)))
    assert torch.equal(tensors.images[3], digits.images[subset.indices[3]])


@pytest.mark.parametrize("fast", [True, False])
def test_augmentation_respects_what_keeps_the_label(fast):
    # Left half black, right half white: a mirrored image is easy to spot.
    images = torch.zeros(64, 3, 32, 32, dtype=torch.uint8)
    images[..., 16:] = 255
    labels = torch.zeros(64, dtype=torch.long)
    mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    for keeps_label, border in ((False, 255), (True, 0)):
        dataset = cu.data.TensorImageDataset(images, labels, flip_keeps_label=keeps_label, border_value=border)
        loader = cu.make_loader(dataset, batch_size=64, augment=True, image_size=32, mean=mean, std=std, fast=fast)
        torch.manual_seed(0)
        batch = next(iter(loader))[0]
        mirrored = batch[:, :, 8:24, 9:13].mean(dim=(1, 2, 3)) > 0.5  # left-middle columns turned white
        if keeps_label:
            assert 10 < int(mirrored.sum()) < 54  # about half mirrored
        else:
            assert not mirrored.any(), "digits-like data must never be mirrored"
            top_rows = batch[:, :, :4, 4:12]  # left half: black inside, so any white here is border
            assert top_rows.max() == 1.0 and batch[:, :, 8:24, 4:12].max() == 0.0


def test_digits_declare_their_augmentation_facts():
    digits = cu.data.digits_dataset(train=True)
    assert digits.flip_keeps_label is False and digits.border_value == 255
    subset_images = cu.data.as_uint8_images(cu.subset_fraction(digits, 0.1))
    assert subset_images.flip_keeps_label is False and subset_images.border_value == 255
