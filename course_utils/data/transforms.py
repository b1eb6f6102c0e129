"""The per-image pipeline (resize, random crop and flip, normalize) and its inverse for display.

Images follow one convention everywhere: RGB, and after the transforms a float tensor
``(3, H, W)`` normalized with the mean/std that the chosen weights expect
(``models.normalization_for(model)`` tells).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from ..models.architectures import IMAGENET_MEAN, IMAGENET_STD


def image_transforms(
    image_size: int = 224,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    augment: bool = False,
    from_tensor: bool = False,
    flip: bool = True,
    border_value: int = 0,
) -> Callable:
    """The per-image pipeline: resize, (random crop with padding 4, horizontal flip), normalize.

    Args:
        image_size: output side length; images are resized so their shorter side is this.
        mean, std: per-channel normalization for the weights in use.
        augment: add the COMP5541 notebook's train augmentation (``RandomCrop(size, padding=4)`` + flip).
        from_tensor: inputs are uint8 tensors ``(3, H, W)`` instead of PIL images.
        flip: with ``augment``, also mirror half of the images (off for data whose mirror
            image is another class, such as digits).
        border_value: grey level 0-255 of the crop's padding (0 = black; 255 suits white pages).

    Returns:
        A callable ``image -> float tensor (3, image_size, image_size)``.
    """
    from torchvision import transforms as T

    steps: list = [T.ConvertImageDtype(torch.float32)] if from_tensor else []
    steps.append(T.Resize(image_size, antialias=True))
    steps.append(T.CenterCrop(image_size))
    if augment:
        steps.append(T.RandomCrop(image_size, padding=4, fill=border_value / 255 if from_tensor else border_value))
        if flip:
            steps.append(T.RandomHorizontalFlip())
    if not from_tensor:
        steps.append(T.ToTensor())
    steps.append(T.Normalize(mean, std))
    return T.Compose(steps)


def unnormalize(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Undo ``Normalize(mean, std)``: ``(…, 3, H, W)`` normalized -> RGB in [0, 1] (clamped)."""
    mean_t = torch.as_tensor(mean, dtype=images.dtype, device=images.device).view(-1, 1, 1)
    std_t = torch.as_tensor(std, dtype=images.dtype, device=images.device).view(-1, 1, 1)
    return (images * std_t + mean_t).clamp(0, 1)
