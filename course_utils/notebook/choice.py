"""What ``profile = "auto"`` picks: a pure function of the device, and the probe that reads the device.

:func:`choose_profile` decides from plain facts (CUDA or not, the GPU's memory and compute
capability, whether the ``laptop`` profile's data and weights are already on disk), so tests
can hand it any device without touching torch; :func:`probe_device` reads those facts from
torch, and :func:`laptop_assets_missing` from the data and weights folders.

* a large GPU (at least :data:`LARGE_GPU_GIB` GiB and compute capability 8.0, e.g. A100,
  H100, L40S): ``full``, the reference runs' settings;
* any other GPU (Colab's and Kaggle's T4, a 12 GB gaming card): ``colab``, sized for about
  15 minutes per notebook on a T4;
* a CPU: ``laptop`` when CIFAR-10 (or the fruit photos) and the torchvision weights it
  trains are already downloaded, else ``offline``, which needs no download at all. (Asking
  for ``laptop`` explicitly downloads what is missing.)

Example:
    >>> profile, reason = choose_profile(DeviceInfo(cuda=True, name="Tesla T4", memory_gib=15.0, capability=(7, 5)))
    >>> profile
    'colab'
    >>> print(reason)
    Tesla T4 (15 GiB, compute capability 7.5) is smaller than a large GPU (40 GiB, 8.0 or newer):
    the full reference runs would take hours
    >>> choose_profile(DeviceInfo(cuda=False), laptop_missing=[])[0]
    'laptop'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

LARGE_GPU_GIB = 40.0
LARGE_GPU_CAPABILITY = (8, 0)


@dataclass(frozen=True)
class DeviceInfo:
    """The facts ``auto`` decides on.

    Attributes:
        cuda: a CUDA GPU is usable.
        name: the GPU's name (``"cpu"`` without one).
        memory_gib: the GPU's memory in GiB (0 without one).
        capability: the GPU's CUDA compute capability, e.g. ``(7, 5)`` for a T4.
    """

    cuda: bool
    name: str = "cpu"
    memory_gib: float = 0.0
    capability: tuple[int, int] = field(default=(0, 0))

    def describe(self) -> str:
        """``Tesla T4 (15 GiB, compute capability 7.5)``, or ``no CUDA GPU``."""
        if not self.cuda:
            return "no CUDA GPU"
        return f"{self.name} ({self.memory_gib:.0f} GiB, compute capability {self.capability[0]}.{self.capability[1]})"


def choose_profile(device: DeviceInfo, laptop_missing: list[str] | None = None) -> tuple[str, str]:
    """``(profile, why)`` for ``auto`` on ``device``.

    Args:
        device: what :func:`probe_device` found (or a made-up device, in tests).
        laptop_missing: on a CPU, what the ``laptop`` profile would still have to download
            (from :func:`laptop_assets_missing`); empty means everything is there.

    Example:
        >>> choose_profile(DeviceInfo(True, "NVIDIA A100-SXM4-80GB", 80.0, (8, 0)))[0]
        'full'
        >>> print(choose_profile(DeviceInfo(cuda=False), laptop_missing=["CIFAR-10"])[1])
        no CUDA GPU, and CIFAR-10 is not downloaded yet: offline needs no download (profile = "laptop" downloads it)
    """
    if device.cuda:
        large = device.memory_gib >= LARGE_GPU_GIB and tuple(device.capability) >= LARGE_GPU_CAPABILITY
        if large:
            return "full", f"{device.describe()} is a large GPU: the reference runs' settings"
        return "colab", (
            f"{device.describe()} is smaller than a large GPU ({LARGE_GPU_GIB:.0f} GiB, "
            f"{LARGE_GPU_CAPABILITY[0]}.{LARGE_GPU_CAPABILITY[1]} or newer): "
            "the full reference runs would take hours"
        )
    missing = list(laptop_missing or [])
    if not missing:
        return "laptop", "no CUDA GPU; the laptop profile's data and weights are already downloaded"
    listed = ", ".join(missing)
    verb = "is" if len(missing) == 1 else "are"
    return "offline", (
        f"no CUDA GPU, and {listed} {verb} not downloaded yet: offline needs no download "
        f'(profile = "laptop" downloads {"it" if len(missing) == 1 else "them"})'
    )


def probe_device(device: str | None = None) -> DeviceInfo:
    """The facts of this machine's training device (``device``: a notebook's ``device`` knob, or ``None``).

    Example:
        >>> probe_device("cpu")
        DeviceInfo(cuda=False, name='cpu', memory_gib=0.0, capability=(0, 0))
    """
    import torch

    if device not in (None, "cuda") and not str(device).startswith("cuda"):
        return DeviceInfo(cuda=False)
    if not torch.cuda.is_available():
        return DeviceInfo(cuda=False)
    index = torch.device(device or "cuda").index or 0
    props = torch.cuda.get_device_properties(index)
    return DeviceInfo(
        cuda=True, name=props.name, memory_gib=props.total_memory / 1024**3, capability=(props.major, props.minor)
    )


def laptop_assets_missing(knobs: dict, data_root: Path | None = None) -> list[str]:
    """What the ``laptop`` profile's knobs need and this machine has not downloaded yet.

    Looks for the files only (CIFAR-10's batches, the fruit photos' ``train`` folder, the
    torchvision checkpoints in ``$TORCH_HOME``), never at the network.

    Example:
        >>> laptop_assets_missing({"dataset": "digits", "backbone": "efficientnet_lite0"})
        []
    """
    from .. import assets
    from ..models import available_models
    from ..models.weights import destination_of

    root = assets.data_dir(data_root)
    missing = []
    if knobs.get("dataset") == "cifar10":
        from ..data.cifar import _cifar_complete

        if not _cifar_complete(root / "cifar-10-batches-py"):
            missing.append("CIFAR-10")
    fruit = knobs.get("fruit_root")
    if fruit and fruit != "synthetic" and not (root / fruit / "train").is_dir():
        missing.append(f"the fruit photos ({root / fruit})")
    names = set(available_models())
    wanted: list[str] = []
    for value in knobs.values():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and item in names and item not in wanted:
                wanted.append(item)
    absent = [name for name in wanted if (path := destination_of(name)) is not None and not path.exists()]
    if absent:
        missing.append(f"the ImageNet weights of {', '.join(absent)}")
    return missing
