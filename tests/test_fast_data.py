"""The on-device batched data path: augmentation semantics, exact crops, loader behaviour, make_loader."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from torch.utils.data import DataLoader, Dataset, Subset

import course_utils as cu
from course_utils.data.device_loader import BatchTransform, DeviceImageLoader, random_crops_and_flips
from course_utils.train.loop import TIMING_COLUMNS

MEAN, STD = cu.models.IMAGENET_MEAN, cu.models.IMAGENET_STD


def position_coded_images(count: int, size: int = 32) -> torch.Tensor:
    """uint8 images whose red value tells the row (8r + 4), green the column (8c + 4); blue 255.

    Zero is never a pixel value, so the black padding of a crop is recognizable too.
    """
    rows = (torch.arange(size) * 8 + 4).view(size, 1).expand(size, size)
    cols = (torch.arange(size) * 8 + 4).view(1, size).expand(size, size)
    image = torch.stack([rows, cols, torch.full((size, size), 255)]).to(torch.uint8)
    return image.unsqueeze(0).repeat(count, 1, 1, 1)


def decode_crop_and_flip(batch: torch.Tensor, size: int = 32, padding: int = 4):
    """Recover (top, left, flipped) of each crop from position-coded, normalized outputs ``(N, 3, S, S)``.

    Output pixel (y, x) shows source pixel (y + top - p, x' + left - p), x' = x or S-1-x if flipped.
    """
    pixels = (cu.data.unnormalize(batch, MEAN, STD) * 255).round().long()
    y = size // 2
    row = (pixels[:, 0, y, y] - 4) // 8
    col_here, col_next = (pixels[:, 1, y, y] - 4) // 8, (pixels[:, 1, y, y + 1] - 4) // 8
    flipped = col_next < col_here
    top = row - y + padding
    left = torch.where(flipped, col_here - (size - 1 - y) + padding, col_here - y + padding)
    return top, left, flipped


def per_image_reference(images, offsets, flips, size, padding=4):
    """torchvision per image: float resize (antialiased), centre crop, zero pad, crop, flip, normalize."""
    out = []
    for image, (top, left), flip in zip(images, offsets.tolist(), flips.tolist()):
        x = TF.center_crop(TF.resize(image.float() / 255, [size], antialias=True), [size, size])
        x = F.pad(x, (padding,) * 4)[:, top : top + size, left : left + size]
        out.append(TF.normalize(x.flip(-1) if flip else x, MEAN, STD))
    return torch.stack(out)


def test_crop_offsets_and_flips_have_the_seed_pipelines_distribution():
    count = 3000
    images = position_coded_images(count)
    dataset = cu.data.TensorImageDataset(images, torch.zeros(count, dtype=torch.long))
    torch.manual_seed(0)
    fast = torch.cat(
        [b for b, _ in DeviceImageLoader(dataset, batch_size=500, augment=True, image_size=32, device="cpu")]
    )
    seed_style = cu.data.image_transforms(32, augment=True, from_tensor=True)
    reference = torch.stack([seed_style(image) for image in images])
    for batch in (fast, reference):
        top, left, flipped = decode_crop_and_flip(batch)
        # 9 equally likely offsets per axis: 333 expected, sd ~17; 90 is > 5 sd.
        for offsets in (top, left):
            counts = torch.bincount(offsets, minlength=9)
            assert len(counts) == 9 and offsets.min() >= 0
            assert (counts - count / 9).abs().max() < 90, counts.tolist()
        assert abs(flipped.float().mean().item() - 0.5) < 0.05
        # Independent: the top offset tells nothing about the left one or the flip.
        assert abs(np.corrcoef(top.numpy(), left.numpy())[0, 1]) < 0.08
        assert abs(np.corrcoef(top.numpy(), flipped.numpy())[0, 1]) < 0.08


def test_decoder_reads_back_the_offsets_it_was_given():
    images = position_coded_images(40)
    offsets, flips = random_crops_and_flips(40, generator=torch.Generator().manual_seed(1))
    batch = BatchTransform(32)(images, offsets, flips)
    top, left, flipped = decode_crop_and_flip(batch)
    assert torch.equal(top, offsets[:, 0]) and torch.equal(left, offsets[:, 1]) and torch.equal(flipped, flips)


@pytest.mark.parametrize("height,width,size", [(32, 32, 64), (32, 32, 32), (40, 30, 24)])
@pytest.mark.parametrize("order", ["pixels_first", "normalize_first"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_batched_crops_equal_per_image_crops(height, width, size, order, channels_last):
    torch.manual_seed(0)
    images = torch.randint(0, 256, (21, 3, height, width), dtype=torch.uint8)
    offsets, flips = random_crops_and_flips(len(images))
    batch = BatchTransform(size, MEAN, STD, order=order, channels_last=channels_last)(images, offsets, flips)
    reference = per_image_reference(images, offsets, flips, size)
    assert batch.shape == (21, 3, size, size) and batch.dtype == torch.float32
    assert batch.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    # The CPU order resizes uint8 pixels (rounded, as PIL does): at most one level apart.
    level = 1 / (255 * min(STD))
    tolerance = 1.05 * level if order == "pixels_first" else 1e-4
    assert (batch - reference).abs().max() <= tolerance


def test_without_augmentation_fast_and_per_image_loaders_agree():
    digits = cu.data.digits_dataset(train=False)
    fast = cu.make_loader(digits, batch_size=100, image_size=48, device="cpu")
    slow = cu.make_loader(digits, batch_size=100, image_size=48, fast=False)
    assert isinstance(fast, DeviceImageLoader) and isinstance(slow, DataLoader)
    for (a, ya), (b, yb) in zip(fast, slow):
        assert torch.equal(ya, yb)
        assert (a - b).abs().max() <= 1.05 / (255 * min(STD))


def test_make_loader_uses_the_fast_path_only_where_it_can():
    digits = cu.data.digits_dataset(train=True)
    subset = Subset(digits, list(range(10, 70)))
    loader = cu.make_loader(subset, batch_size=16, augment=True, image_size=32, device="cpu")
    assert isinstance(loader, DeviceImageLoader) and loader.augment and len(loader) == 4
    labels = torch.cat([y for _, y in loader])
    assert torch.equal(labels, digits.targets[10:70])

    class PILOnly(Dataset):  # images only reachable one by one (like image folders)
        transform = None
        targets = [0, 1]

        def __len__(self):
            return 2

        def __getitem__(self, i):
            from PIL import Image

            image = Image.new("RGB", (20, 20), (i * 100, 0, 0))
            return (self.transform(image) if self.transform else image), i

    fallback = cu.make_loader(PILOnly(), batch_size=2, image_size=16)
    assert isinstance(fallback, DataLoader) and fallback.augment is False
    images, labels = next(iter(fallback))
    assert images.shape == (2, 3, 16, 16)
    assert isinstance(cu.make_loader(digits, batch_size=8, fast=False), DataLoader)


def test_epochs_cover_every_image_once_and_drop_last_works():
    count = 50
    images = torch.randint(0, 256, (count, 3, 8, 8), dtype=torch.uint8)
    dataset = cu.data.TensorImageDataset(images, torch.arange(count), torch.arange(count) % 2)
    loader = DeviceImageLoader(dataset, batch_size=16, shuffle=True, augment=True, image_size=8, device="cpu")
    batches = list(loader)
    assert len(batches) == len(loader) == 4 and [len(b[0]) for b in batches] == [16, 16, 16, 2]
    seen = torch.cat([b[1] for b in batches])
    assert sorted(seen.tolist()) == list(range(count)) and not torch.equal(seen, torch.arange(count))
    assert all(torch.equal(b[2], b[1] % 2) for b in batches)  # second label follows its image
    dropping = DeviceImageLoader(dataset, batch_size=16, drop_last=True, image_size=8, device="cpu")
    assert len(dropping) == 3 and len(list(dropping)) == 3


def test_batches_kept_by_the_caller_are_never_overwritten():
    # The CPU path reuses output memory only when nothing refers to it any more.
    digits = cu.data.digits_dataset(train=False)
    loader = cu.make_loader(digits, batch_size=64, image_size=64, device="cpu")
    kept = [images for images, _ in loader]
    again = [images.clone() for images, _ in loader]
    assert all(torch.equal(a, b) for a, b in zip(kept, again))
    pointers = {images.data_ptr() for images in kept}
    assert len(pointers) == len(kept)
    transform = BatchTransform(32)
    first_images, second_images = (torch.randint(0, 256, (8, 3, 16, 16), dtype=torch.uint8) for _ in range(2))
    first = transform(first_images)
    copy = first.clone()
    transform(second_images)
    assert torch.equal(first, copy)


@pytest.mark.parametrize("channels_last", [True, False])
def test_lanes_give_the_batches_one_thread_gives(monkeypatch, channels_last):
    # On several CPU threads, the chunks of a batch go to parallel lanes; nothing may change but the speed.
    import course_utils.data.device_loader as device_loader

    images = torch.randint(0, 256, (70, 3, 32, 40), dtype=torch.uint8)  # 5 chunks, the last one short
    offsets, flips = random_crops_and_flips(len(images))
    transform = BatchTransform(48, channels_last=channels_last)
    one_lane = transform._transform(images, offsets, flips, lanes=1).clone()
    used = []
    real_lanes = device_loader._lanes
    monkeypatch.setattr(device_loader, "_lanes", lambda count: used.append(count) or real_lanes(count))
    monkeypatch.setattr(device_loader, "_session_threads", lambda: 2)
    assert torch.equal(transform(images, offsets, flips), one_lane)
    with torch.inference_mode():  # a per-thread mode the lanes must take over from the caller
        assert torch.equal(transform(images, offsets, flips), one_lane)
    assert used == [2, 2]
    monkeypatch.undo()
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with device_loader._one_cpu_thread(torch.device("cpu")):
            # torch's steps run on one thread here; the lanes still see the session's two
            assert (torch.get_num_threads(), device_loader._session_threads()) == (1, 2)
        assert (torch.get_num_threads(), device_loader._session_threads()) == (2, 2)
        device_loader.BatchTransform(48)(images, offsets, flips)  # on two real lanes
        seen = []  # a thread started afterwards gets the session's count, not a lane's 1
        fresh = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
        fresh.start(), fresh.join()
        assert seen == [2] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)


def test_randomness_comes_from_torchs_global_generator():
    digits = cu.data.digits_dataset(train=False)
    loader = cu.make_loader(digits, batch_size=32, shuffle=True, augment=True, image_size=32, device="cpu")
    torch.manual_seed(7)
    before = torch.get_rng_state()
    first = next(iter(loader))
    assert not torch.equal(torch.get_rng_state(), before)  # the epoch drew from it...
    torch.set_rng_state(before)
    again = next(iter(loader))  # ...so restoring it (as resuming from a checkpoint does) repeats the epoch
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])


def _digits_run(tmp_path, stop_after=None, resume=False):
    torch.manual_seed(3)
    model = cu.build_model("resnet18", num_classes=10, pretrained=False)
    cu.freeze_until(model, "layer2")
    train_set = cu.data.digits_dataset(train=True)
    train = cu.make_loader(
        Subset(train_set, list(range(96))), batch_size=32, shuffle=True, augment=True, image_size=32, device="cpu"
    )
    val = cu.make_loader(
        Subset(cu.data.digits_dataset(train=False), list(range(64))), batch_size=64, image_size=32, device="cpu"
    )
    history = cu.fit(
        model,
        train,
        val,
        num_epochs=2,
        loss_fn=torch.nn.CrossEntropyLoss(),
        optimizer=lambda m: torch.optim.SGD(cu.trainable_parameters(m), lr=0.05, momentum=0.9),
        early_stopping="best",
        checkpoint=cu.Checkpoint(tmp_path / "run.pt", resume=resume, stop_after_epoch=stop_after),
        verbose=False,
    )
    return model, [{k: v for k, v in r.items() if k not in TIMING_COLUMNS} for r in history.records]


def test_fit_with_the_fast_loader_is_deterministic_and_resumes_exactly(tmp_path):
    model_a, history_a = _digits_run(tmp_path / "a")
    model_b, history_b = _digits_run(tmp_path / "b")
    assert history_a == history_b
    _digits_run(tmp_path / "c", stop_after=1)
    torch.manual_seed(99)  # a new process would start elsewhere
    model_c, history_c = _digits_run(tmp_path / "c", resume=True)
    assert history_c == history_a
    for key, value in model_a.state_dict().items():
        assert torch.equal(model_b.state_dict()[key], value) and torch.equal(model_c.state_dict()[key], value), key


def test_bad_inputs_name_the_fix():
    with pytest.raises(TypeError, match="as_uint8_images"):
        DeviceImageLoader(list(range(3)))
    with pytest.raises(ValueError, match="uint8"):
        BatchTransform(32)(torch.zeros(2, 3, 8, 8))
    with pytest.raises(ValueError, match="both offsets and flips"):
        BatchTransform(32)(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="batch_size"):
        cu.make_loader(cu.data.digits_dataset(train=False), batch_size=0, device="cpu")
