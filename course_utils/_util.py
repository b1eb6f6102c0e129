"""Small helpers every part of the student library uses: the default device, sizes for people."""

from __future__ import annotations

import torch


def default_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` when given, else CUDA when there is a GPU, else the CPU.

    Example:
        >>> default_device("cpu")
        device(type='cpu')
        >>> default_device().type in ("cuda", "cpu")
        True
    """
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def format_bytes(count: float) -> str:
    """A size for people: bytes, then KiB, MiB, GiB with one decimal.

    Example:
        >>> [format_bytes(n) for n in (512, 1577, 170_498_071)]
        ['512 B', '1.5 KiB', '162.6 MiB']
    """
    if count < 1024:
        return f"{int(count)} B"
    for unit in ("KiB", "MiB", "GiB"):
        count /= 1024
        if count < 1024 or unit == "GiB":
            return f"{count:.1f} {unit}"
    raise AssertionError("unreachable")
