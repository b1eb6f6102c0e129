"""Batches made on the training device from uint8 images kept there: the kit's fast data path.

The seed notebooks decode, resize, crop, flip and normalize every image on its own in
DataLoader workers (PIL, one image at a time). Here the whole dataset stays in memory
as one uint8 tensor ``(N, 3, H, W)`` on the training device (CIFAR-10's training split
is 150 MB), and each batch goes through the same steps as one tensor operation per step:

1. pick the batch's images (``index_select``);
2. mirror the flipped ones (at the stored, small resolution: cheap);
3. resize to ``image_size`` (bilinear, antialiased, like ``torchvision.transforms.Resize``)
   and take the centre square when the images are not square;
4. random crop with zero padding (``RandomCrop(size, padding=4)``): copy into a buffer
   with a black border, then read each image's window at its own offset;
5. convert to float and normalize with the weights' mean/std.

The order matters for speed. On the CPU the steps run on uint8 pixels in channels-last
layout and the float conversion comes last: a float image at 224 px is 600 KB, four
times its uint8 version, and every extra pass over float memory costs more than the
work itself. On CUDA bilinear resizing needs floats, so the small images are
normalized first (normalizing is per-channel affine, and bilinear weights sum to one,
so "normalize then resize" equals "resize then normalize") and the border is filled
with the normalized value of black. No step loops over images in Python.

Flipping first is the same augmentation: mirroring an image and then cropping at
column offset ``2 * padding - j`` gives exactly the mirror of the crop at ``j``, and the
offsets are uniform, so crops and flips have the distribution of
``RandomCrop(size, padding=4)`` followed by ``RandomHorizontalFlip()``.

Randomness (shuffling, crop offsets, flips) is drawn once per epoch from torch's global
CPU generator (see ``batching``), which ``fit`` stores in its checkpoints: a resumed run
draws the same batches as an uninterrupted one.

Example:
    >>> images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    >>> offsets, flips = random_crops_and_flips(len(images))
    >>> BatchTransform(64)(images, offsets, flips).shape
    torch.Size([2, 3, 64, 64])
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from .._util import default_device
from ..models.architectures import IMAGENET_MEAN, IMAGENET_STD
from .batching import InMemoryBatches
from .datasets import TensorImageDataset

# Images per step on the CPU. Working on a few images at a time keeps the uint8
# intermediates (2.4 MB for 16 images at 224 px) in the processor's cache.
CPU_CHUNK = 16
# Output buffers the CPU path keeps for reuse (see ``_ReusableBuffers``).
CPU_OUTPUT_BUFFERS = 4


# ----------------------------------------------------------------------------- geometry


def resized_size(height: int, width: int, image_size: int) -> tuple[int, int]:
    """``(height, width)`` after ``torchvision.transforms.Resize(image_size)``: shorter side = ``image_size``."""
    if height <= width:
        return image_size, int(image_size * width / height)
    return int(image_size * height / width), image_size


def center_offsets(height: int, width: int, image_size: int) -> tuple[int, int]:
    """Top-left corner of ``CenterCrop(image_size)`` in a ``height x width`` image (torchvision's rounding)."""
    return int(round((height - image_size) / 2.0)), int(round((width - image_size) / 2.0))


def random_crops_and_flips(count: int, padding: int = 4, generator: torch.Generator | None = None):
    """Draw crop offsets and flips for ``count`` images, as ``RandomCrop(padding)`` + ``RandomHorizontalFlip``.

    Args:
        count: number of images.
        padding: zero border around each image before cropping (4 in the COMP5541 notebook).
        generator: a ``torch.Generator``; default: torch's global CPU generator.

    Returns:
        ``offsets`` long ``(count, 2)``: top and left of each crop in the padded image,
        uniform in ``[0, 2 * padding]``; ``flips`` bool ``(count,)``, each true with probability 0.5.
    """
    offsets = torch.randint(0, 2 * padding + 1, (count, 2), generator=generator)
    flips = torch.rand(count, generator=generator) < 0.5
    return offsets, flips


# ----------------------------------------------------------------------------- CPU helpers


@contextmanager
def _one_cpu_thread(device: torch.device):
    """Run torch's CPU operations in this block on one thread.

    Why: each step here is a short pass over memory, and splitting such short passes over
    several threads makes every step wait for the slowest thread: when another process
    keeps a core busy, two threads measured 20x slower than one on the 2-core development
    machine. The session's own count stays readable inside as ``_session_threads()``, for
    the lanes (``_lanes``), which use the cores without that wait.
    """
    threads = torch.get_num_threads()
    if device.type != "cpu" or threads == 1:
        yield
        return
    torch.set_num_threads(1)
    previous, _outer.threads = getattr(_outer, "threads", None), threads
    try:
        yield
    finally:
        _outer.threads = previous
        torch.set_num_threads(threads)


_outer = threading.local()


def _session_threads() -> int:
    """torch's thread count outside any ``_one_cpu_thread`` block of this thread."""
    return getattr(_outer, "threads", None) or torch.get_num_threads()


_LANES: dict[int, ThreadPoolExecutor] = {}
_LANES_LOCK = threading.Lock()


def _lanes(count: int) -> ThreadPoolExecutor:
    """A pool of ``count`` threads ("lanes"), made once per count (the session's thread count).

    Why lanes and not torch's own threads: the chunks of a batch are independent, so each
    lane works through whole chunks and never waits for another, where torch's threads
    meet at the end of every short step. With a core taken by another process the lanes
    share the free one instead of stalling. 1.9x for 224 px batches on 2 cores (5,000 ->
    9,400 images/s). Each lane runs torch on one thread (``_in_lane``).
    """
    with _LANES_LOCK:
        pool = _LANES.get(count)
        if pool is None:
            pool = _LANES[count] = ThreadPoolExecutor(count, thread_name_prefix="course-data-lane")
        return pool


def _in_lane(work, inference: bool):
    """``work`` as a lane runs it: torch on one thread, in the caller's inference mode (a per-thread setting)."""

    def run(*args):
        if torch.get_num_threads() != 1:  # once per lane thread: setting it also resets torch's shared pools
            torch.set_num_threads(1)  # this thread's own count: the caller's stays as it is
        with torch.inference_mode(inference):
            return work(*args)

    return run


# A forked child (a DataLoader worker) has none of the parent's threads.
if hasattr(os, "register_at_fork"):  # not on Windows, which does not fork
    os.register_at_fork(after_in_child=_LANES.clear)


# ----------------------------------------------------------------------------- reusable buffers


def _storage_users(tensor: torch.Tensor) -> int | None:
    """How many tensors (and storage objects) share ``tensor``'s memory; None if torch can't tell."""
    count = getattr(torch._C, "_storage_Use_Count", None)
    if count is None:
        return None
    return count(tensor.untyped_storage()._cdata)


class _ReusableBuffers:
    """Output batches whose memory is reused once nothing refers to it any more.

    Why: a fresh float batch of 64 images at 224 px is 38 MB. Linux hands out memory of
    that size (above glibc's 32 MB ``mmap`` limit) as new pages on every allocation, and
    touching them for the first time costs more than the whole data pipeline. A buffer
    is handed out again only when the only references to its memory are the pool's own
    (no batch, view, or autograd graph still uses it), so reuse is never visible.
    """

    def __init__(self, limit: int = CPU_OUTPUT_BUFFERS):
        self.limit = limit
        self.buffers: list[tuple[torch.Tensor, int]] = []

    def get(self, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """A tensor of ``shape`` whose memory nothing else uses (contents undefined)."""
        for buffer, idle_users in self.buffers:
            if buffer.shape == shape and buffer.dtype == dtype and _storage_users(buffer) == idle_users:
                return buffer.view(shape)
        buffer = torch.empty(shape, dtype=dtype, device=device)
        idle_users = _storage_users(buffer)
        if idle_users is not None and len(self.buffers) < self.limit:
            self.buffers.append((buffer, idle_users))
        # Always a new view: the pool's own tensor never leaves, so every reference the
        # caller keeps (this view, or views of it) counts as a user of the memory.
        return buffer.view(shape)


# ----------------------------------------------------------------------------- the batch transform


class BatchTransform:
    """Resize, (random crop with padding + flip), normalize a batch of uint8 images in one go.

    The batched counterpart of ``image_transforms``; see the module notes for the order
    of the steps on each device.

    Args:
        image_size: output side length (shorter side resized to it, then centre square).
        mean, std: per-channel normalization of the weights in use.
        padding: border of the random crop (the COMP5541 notebook: 4).
        border_value: grey level 0-255 of that border (0, black, as ``RandomCrop``'s default).
        order: ``"pixels_first"`` (uint8 steps, float last: the CPU order) or
            ``"normalize_first"`` (float from the start: the CUDA order); default by device.
        channels_last: memory layout of the output batches; default: channels-last, on CUDA
            (what its tensor-core kernels want) and on the CPU, where oneDNN's convolutions run
            faster on it too (EfficientNet-Lite0 trains 1.3x faster at 48 px on 2 cores: 225 vs
            173 images/s on an AMD EPYC, 208 vs 157 on an Intel Xeon) and the pixels are already in that layout here.

    Call: ``transform(images, offsets=None, flips=None)`` with ``images`` uint8 ``(B, 3, H, W)``,
    ``offsets`` long ``(B, 2)`` and ``flips`` bool ``(B,)`` from ``random_crops_and_flips``
    (both None: no augmentation). Returns float ``(B, 3, image_size, image_size)``.

    Example:
        >>> images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
        >>> transform = BatchTransform(64, mean=IMAGENET_MEAN, std=IMAGENET_STD)
        >>> offsets, flips = random_crops_and_flips(len(images))
        >>> batch = transform(images, offsets, flips)
        >>> batch.shape, batch.dtype
        (torch.Size([4, 3, 64, 64]), torch.float32)
    """

    def __init__(
        self,
        image_size: int,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        padding: int = 4,
        order: str | None = None,
        channels_last: bool | None = None,
        border_value: int = 0,
    ):
        if not isinstance(image_size, int) or image_size < 1:
            raise ValueError(f"image_size must be a positive integer, got {image_size!r}.")
        if len(mean) != 3 or len(std) != 3 or any(s <= 0 for s in std):
            raise ValueError(f"mean and std need 3 values each (RGB) and std > 0; got mean={mean}, std={std}.")
        if order not in (None, "pixels_first", "normalize_first"):
            raise ValueError(f"order must be None, 'pixels_first' or 'normalize_first', got {order!r}.")
        if not 0 <= border_value <= 255:
            raise ValueError(f"border_value is a grey level in 0..255, got {border_value!r}.")
        self.image_size, self.padding, self.order = image_size, padding, order
        self.channels_last, self.border_value = channels_last, border_value
        self.mean = torch.tensor(mean, dtype=torch.float32)
        self.std = torch.tensor(std, dtype=torch.float32)
        self._constants: dict[torch.device, dict[str, torch.Tensor]] = {}
        self._scratch: dict[tuple, torch.Tensor] = {}
        self._outputs = _ReusableBuffers()

    def __call__(
        self, images: torch.Tensor, offsets: torch.Tensor | None = None, flips: torch.Tensor | None = None
    ) -> torch.Tensor:
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be uint8 (B, 3, H, W), got {images.dtype} {tuple(images.shape)}.")
        if (offsets is None) != (flips is None):
            raise ValueError("Give both offsets and flips (augmentation) or neither.")
        lanes = _session_threads() if images.device.type == "cpu" else 1  # one lane per thread
        with _one_cpu_thread(images.device):
            return self._transform(images, offsets, flips, lanes)

    def _transform(
        self, images: torch.Tensor, offsets: torch.Tensor | None, flips: torch.Tensor | None, lanes: int = 1
    ):
        if flips is not None:
            # Mirror first (cheap at the stored size) and mirror the column offset to match.
            mirrored_left = 2 * self.padding - offsets[:, 1]
            offsets = torch.stack([offsets[:, 0], torch.where(flips, mirrored_left, offsets[:, 1])], dim=1)
            images = torch.where(flips.view(-1, 1, 1, 1), images.flip(3), images)
        cuda = images.device.type == "cuda"
        order = self.order or ("normalize_first" if cuda else "pixels_first")
        channels_last = True if self.channels_last is None else self.channels_last
        if order == "normalize_first":
            batch = self._normalize_first(images, offsets)
            return batch if channels_last else batch.contiguous()
        return self._pixels_first(images, offsets, channels_last, lanes)

    # -- shared steps

    def _normalization(self, device: torch.device) -> dict[str, torch.Tensor]:
        """``Normalize`` as ``pixel * scale + shift`` (pixels 0-255), and mean/std, on ``device``.

        Made once per device: copying them to a GPU for every batch would stall it.
        """
        if device not in self._constants:
            self._constants[device] = {
                "scale": (1.0 / (255.0 * self.std)).to(device),
                "shift": (-self.mean / self.std).to(device),
                "mean": self.mean.to(device),
                "std": self.std.to(device),
            }
        return self._constants[device]

    def _resize_and_center(self, images: torch.Tensor) -> torch.Tensor:
        """``(b, 3, H, W)`` -> channels-last ``(b, 3, S, S)``: resize the shorter side to S, centre square.

        Resizing works in channels-last layout: torch's uint8 resize is 4x faster there
        than on planes, more than a planar output later pays for transposing.
        """
        height, width = images.shape[-2:]
        size = resized_size(height, width, self.image_size)
        images = images.contiguous(memory_format=torch.channels_last)
        if (height, width) != size:
            images = F.interpolate(images, size=size, mode="bilinear", antialias=True, align_corners=False)
        top, left = center_offsets(*size, self.image_size)
        return images[:, :, top : top + self.image_size, left : left + self.image_size]

    def _buffer(self, name: str, shape: tuple[int, ...], dtype: torch.dtype, device, fill=None) -> torch.Tensor:
        """A scratch tensor of ``shape`` kept between batches; ``fill`` initializes it when it is made.

        The stored buffer may hold more images than asked for (a last, smaller chunk or
        batch); the first ``shape[0]`` of them are returned.
        """
        # One set per thread: lanes work on different chunks at the same time.
        key = (name, shape[1:], dtype, torch.device(device), threading.get_ident())
        buffer = self._scratch.get(key)
        if buffer is None or buffer.shape[0] < shape[0]:
            buffer = torch.empty(shape, dtype=dtype, device=device)
            if fill is not None:
                buffer[...] = fill
            self._scratch[key] = buffer
        return buffer[: shape[0]]

    def _images_buffer(
        self,
        name: str,
        count: int,
        dtype: torch.dtype,
        device,
        channels_last: bool,
        border: float | torch.Tensor | None = None,
        padding: int = 0,
    ) -> torch.Tensor:
        """A scratch batch ``(count, 3, S + 2p, S + 2p)`` in the given memory layout, border filled once."""
        width = self.image_size + 2 * padding
        if channels_last:
            fill = border
            return self._buffer(name + "-nhwc", (count, width, width, 3), dtype, device, fill).permute(0, 3, 1, 2)
        fill = border.view(3, 1, 1) if torch.is_tensor(border) else border
        return self._buffer(name + "-nchw", (count, 3, width, width), dtype, device, fill)

    def _pad_and_crop(
        self, pixels: torch.Tensor, offsets: torch.Tensor, border, channels_last: bool, fresh: bool = False
    ) -> torch.Tensor:
        """Random crops with padding: ``pixels`` ``(b, 3, S, S)`` -> crops ``(b, 3, S, S)`` in the given layout.

        The images are copied into a buffer with a ``border`` of ``padding`` pixels
        (``W = S + 2 * padding`` wide). In that buffer every output row is one contiguous
        run of values: ``S * 3`` of them starting at ``image * W*W*3 + (top + y) * W*3 +
        left * 3`` in channels-last layout, ``S`` of them starting at ``image * 3*W*W +
        channel * W*W + (top + y) * W + left`` in planar layout. One ``index_select``, over
        a view of the buffer whose rows start at every position, reads all crops at once.
        The crops land in a scratch buffer, or in new memory when ``fresh``.
        """
        count, size, pad = pixels.shape[0], self.image_size, self.padding
        width, device = size + 2 * pad, pixels.device
        # The border is written once when the buffer is made; only the inside changes.
        padded = self._images_buffer(
            f"padded-{pixels.dtype}", count, pixels.dtype, device, channels_last, border=border, padding=pad
        )
        padded[:, :, pad : pad + size, pad : pad + size].copy_(pixels)
        if fresh:
            crops = torch.empty(
                (count, 3, size, size),
                dtype=pixels.dtype,
                device=device,
                memory_format=torch.channels_last if channels_last else torch.contiguous_format,
            )
        else:
            crops = self._images_buffer(f"crops-{pixels.dtype}", count, pixels.dtype, device, channels_last)
        if channels_last:
            planes, plane_stride, row_stride, pixel_stride, row_length = 1, 0, width * 3, 3, size * 3
            flat, crop_rows = padded.permute(0, 2, 3, 1).reshape(-1), crops.permute(0, 2, 3, 1)
        else:
            planes, plane_stride, row_stride, pixel_stride, row_length = 3, width * width, width, 1, size
            flat, crop_rows = padded.reshape(-1), crops
        windows = flat.as_strided((flat.numel() - row_length + 1, row_length), (1, 1))
        offsets = offsets.to(device)
        top, left = offsets[:, 0].view(-1, 1, 1), offsets[:, 1].view(-1, 1, 1)
        starts = (
            torch.arange(count, device=device).view(-1, 1, 1) * (3 * width * width)
            + torch.arange(planes, device=device).view(1, -1, 1) * plane_stride
            + (top + torch.arange(size, device=device).view(1, 1, -1)) * row_stride
            + left * pixel_stride
        )
        torch.index_select(windows, 0, starts.reshape(-1), out=crop_rows.reshape(-1, row_length))
        return crops

    # -- the two orders

    def _pixels_first(
        self, images: torch.Tensor, offsets: torch.Tensor | None, channels_last: bool, lanes: int = 1
    ) -> torch.Tensor:
        count, size, device = images.shape[0], self.image_size, images.device
        constants = self._normalization(device)
        scale, shift = constants["scale"], constants["shift"]
        shape = (count, size, size, 3) if channels_last else (count, 3, size, size)
        out = (
            self._outputs.get(shape, torch.float32, device)
            if device.type == "cpu"
            else torch.empty(shape, dtype=torch.float32, device=device)
        )
        out = out.permute(0, 3, 1, 2) if channels_last else out

        def chunk(start: int) -> None:
            part = slice(start, start + CPU_CHUNK)
            pixels = self._resize_and_center(images[part])  # (b, 3, S, S) uint8, channels-last
            if offsets is not None:
                pixels = self._pad_and_crop(pixels, offsets[part], self.border_value, channels_last)
            out[part].copy_(pixels)  # uint8 -> float32 (and to planes when the output is planar)
            if channels_last:
                # Per-channel constants repeated along a row of S pixels: the float pass then
                # runs over long contiguous rows instead of innermost runs of 3 values.
                rows = out[part].permute(0, 2, 3, 1).view(-1, size, size * 3)
                torch.addcmul(shift.repeat(size), rows, scale.repeat(size), out=rows)
            else:
                # Two passes, each with one value per plane, run faster than one addcmul here.
                planes = out[part].view(-1, 3, size * size)
                planes.mul_(scale.view(3, 1)).add_(shift.view(3, 1))

        starts = range(0, count, CPU_CHUNK)
        if lanes > 1 and len(starts) > 1:
            # Each chunk writes its own rows of ``out``; the results are the same as in one lane.
            list(_lanes(lanes).map(_in_lane(chunk, torch.is_inference_mode_enabled()), starts))
        else:
            for start in starts:
                chunk(start)
        return out

    def _normalize_first(self, images: torch.Tensor, offsets: torch.Tensor | None) -> torch.Tensor:
        device = images.device
        constants = self._normalization(device)
        mean, std = constants["mean"].view(1, 3, 1, 1), constants["std"].view(1, 3, 1, 1)
        floats = (images.float() / 255.0 - mean) / std
        pixels = self._resize_and_center(floats)  # (B, 3, S, S) float, channels-last
        if offsets is None:
            return pixels.contiguous(memory_format=torch.channels_last)
        # What a border pixel becomes after Normalize.
        border = constants["shift"] + self.border_value * constants["scale"]
        # Each batch in its own memory (the CUDA allocator reuses freed memory cheaply).
        return self._pad_and_crop(pixels, offsets, border, channels_last=True, fresh=True)


# ----------------------------------------------------------------------------- the loader


class DeviceImageLoader(InMemoryBatches):
    """An iterable of ``(images, labels, ...)`` batches made on the device from in-memory uint8 images.

    Drop-in for a ``DataLoader`` in ``fit``/``evaluate``; ``make_loader`` returns one
    whenever the dataset holds (or cheaply becomes) uint8 tensors.

    Args:
        dataset: ``TensorImageDataset`` (its transform is ignored), e.g. from ``as_uint8_images``.
        batch_size: images per batch.
        shuffle: a new random order every epoch.
        augment: random crop with padding ``padding`` + horizontal flip (the COMP5541 notebook's
            augmentation); the flip only where ``dataset.flip_keeps_label``, the border in
            ``dataset.border_value``.
        image_size: side length of the batches.
        mean, std: normalization of the weights in use.
        device: where images live and batches are made; default CUDA if available, else CPU.
        drop_last: leave out a last, smaller batch.
        padding: border of the random crop.
        channels_last: layout of the image batches (default: channels-last).

    Yields:
        float ``(B, 3, image_size, image_size)`` images and the dataset's label tensors
        ``(B,)``, all on ``device``.

    Example:
        >>> from course_utils.data.datasets import digits_dataset
        >>> loader = DeviceImageLoader(digits_dataset(train=True), batch_size=64, shuffle=True, augment=True,
        ...                            image_size=64, device="cpu")
        >>> images, labels = next(iter(loader))
        >>> images.shape, images.dtype, labels.shape
        (torch.Size([64, 3, 64, 64]), torch.float32, torch.Size([64]))
    """

    def __init__(
        self,
        dataset: TensorImageDataset,
        batch_size: int = 64,
        shuffle: bool = False,
        augment: bool = False,
        image_size: int = 224,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        device=None,
        drop_last: bool = False,
        padding: int = 4,
        channels_last: bool | None = None,
    ):
        if not isinstance(dataset, TensorImageDataset):
            raise TypeError(
                f"DeviceImageLoader needs a TensorImageDataset, got {type(dataset).__name__}; "
                "convert it with course_utils.data.as_uint8_images(dataset)."
            )
        super().__init__(len(dataset), batch_size, shuffle=shuffle, drop_last=drop_last, device=default_device(device))
        self.dataset = dataset
        self.images = dataset.images.to(self.device)
        self.targets = [t.to(self.device) for t in dataset.all_targets]
        self.augment, self.padding, self.image_size = augment, padding, image_size
        # Data facts decide what "augment" may do: no mirrored digits, borders like the page.
        self.flip = dataset.flip_keeps_label
        self.transform = BatchTransform(
            image_size, mean, std, padding=padding, channels_last=channels_last, border_value=dataset.border_value
        )

    def _draw_epoch(self, count: int):
        if not self.augment:
            return None
        offsets, flips = random_crops_and_flips(count, self.padding)
        if not self.flip:
            flips = torch.zeros_like(flips)  # drawn anyway, so the random stream does not depend on the data
        return offsets.to(self.device), flips.to(self.device)

    def _batch(self, index: torch.Tensor, positions: slice, epoch):
        with _one_cpu_thread(self.device):
            images = self.images.index_select(0, index)
            if epoch is None:
                batch_images = self.transform(images)
            else:
                offsets, flips = epoch
                batch_images = self.transform(images, offsets[positions], flips[positions])
            labels = [t.index_select(0, index) for t in self.targets]
        return (batch_images, *labels)

    def __repr__(self) -> str:
        return (
            f"DeviceImageLoader({len(self.images)} images on {self.device}, batch_size={self.batch_size}, "
            f"shuffle={self.shuffle}, augment={self.augment}, image_size={self.image_size})"
        )
