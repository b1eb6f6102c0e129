"""Where data and weights live, offline mode, and verified loading of torchvision checkpoints.

Offline mode (``COURSE_OFFLINE=1`` or ``set_offline(True)``) means no network access is
ever attempted: a missing asset is an immediate ``FileNotFoundError`` naming the asset,
the path it was expected at and the ``course fetch`` command that provides it.

Torch does not re-check the hash of a checkpoint that is already in its cache, so a
truncated download would be loaded (or fail with an obscure unpickling error). The kit
checks the SHA-256 prefix torchvision puts in every file name before loading, once per
file version (a small ``.verified`` stamp remembers size and modification time).

Example:
    >>> from course_utils import assets
    >>> assets.data_dir("/tmp/my-data").name
    'my-data'
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import urllib.error
import warnings
from pathlib import Path

import torch

PROJECT_ROOT = Path(__file__).resolve().parent.parent
STANDIN_MANIFEST = "course-standins.json"
_offline_override: bool | None = None


class AssetUnavailableError(FileNotFoundError):
    """An asset is missing and cannot be downloaded (offline mode or no network)."""


def set_offline(offline: bool | None) -> None:
    """Force offline mode on or off for this process (``None`` = follow ``COURSE_OFFLINE``)."""
    global _offline_override
    _offline_override = offline


def is_offline() -> bool:
    """True when downloads are forbidden: ``set_offline(True)`` or ``COURSE_OFFLINE=1``."""
    if _offline_override is not None:
        return _offline_override
    return os.environ.get("COURSE_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def data_dir(root: str | os.PathLike | None = None) -> Path:
    """Where datasets live: ``root`` if given, else ``$COURSE_DATA_DIR``, else ``data/``.

    ``data/`` is the folder next to ``course_utils`` in a checkout of the kit (so notebooks
    executed from any working directory share one copy), or ``./data`` for an installed package.
    """
    if root is not None:
        return Path(root).expanduser()
    if os.environ.get("COURSE_DATA_DIR"):
        return Path(os.environ["COURSE_DATA_DIR"]).expanduser()
    if (PROJECT_ROOT / "pyproject.toml").exists():
        return PROJECT_ROOT / "data"
    return Path.cwd() / "data"


def checkpoint_dir() -> Path:
    """Torch's checkpoint cache: ``$TORCH_HOME/hub/checkpoints`` (torch's own rule)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def missing_asset_error(what: str, expected: Path, fetch_args: str, reason: str) -> AssetUnavailableError:
    return AssetUnavailableError(
        f"{what} is not available: {reason}.\n"
        f"  expected at: {expected}\n"
        f"  fix: on a machine with network access run `course fetch {fetch_args}` "
        f"(same data directory / TORCH_HOME), or copy the file to that path."
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def expected_hash_prefix(filename: str) -> str | None:
    """The SHA-256 prefix torchvision encodes in checkpoint names like ``resnet18-f37072fd.pth``."""
    match = re.search(r"-([a-f0-9]{8,})\.", filename)
    return match.group(1) if match else None


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
    entries[path.name] = _sha256(path)
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
    actual = _sha256(path)
    prefix = expected_hash_prefix(path.name)
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


def download_file(url: str, destination: Path, hash_prefix: str | None = None, progress: bool = True) -> Path:
    """Download ``url`` to ``destination`` through a temporary file; never leave a partial file.

    Raises ``AssetUnavailableError`` (not a raw ``URLError``) when the network is unreachable.
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    try:
        # torch writes to a temporary file and moves it into place only after the hash matched.
        torch.hub.download_url_to_file(url, str(destination), hash_prefix=hash_prefix, progress=progress)
    except (urllib.error.URLError, socket.timeout, ConnectionError, TimeoutError) as err:
        raise missing_asset_error(
            destination.name, destination, "", f"the download from {url} failed ({err})"
        ) from err
    except RuntimeError as err:  # torch raises RuntimeError on a hash mismatch
        destination.unlink(missing_ok=True)
        raise ValueError(f"Download of {url} is corrupt: {err}. Try `course fetch` again.") from err
    return destination


def load_torchvision_checkpoint(weights_name: str, progress: bool = True) -> dict[str, torch.Tensor]:
    """The state dict of a torchvision weights enum, downloaded if allowed, always hash-checked.

    Args:
        weights_name: e.g. ``"ResNet18_Weights.IMAGENET1K_V1"``.

    Raises:
        AssetUnavailableError: missing and offline (or the network is unreachable).
        ValueError: the cached file is corrupt and cannot be fetched again here.
    """
    weights = _weights_enum(weights_name)
    path = checkpoint_path(weights_name)
    fetch_args = f"weights {weights_name.split('_Weights')[0].lower()}"
    if path.exists():
        try:
            kind = verify_checkpoint(path)
        except ValueError as err:
            if is_offline():
                raise missing_asset_error(
                    f"ImageNet weights {weights_name}", path, fetch_args, f"the cached file is corrupt ({err})"
                ) from err
            warnings.warn(f"{err} Downloading it again.", stacklevel=2)
            path.unlink()
            kind = None
        if kind == "standin":
            warnings.warn(
                f"{path.name} is a synthetic stand-in (random weights) registered for tests/smoke runs, "
                "not the real ImageNet checkpoint.",
                stacklevel=2,
            )
    if not path.exists():
        if is_offline():
            raise missing_asset_error(f"ImageNet weights {weights_name}", path, fetch_args, "offline mode is on")
        download_file(weights.url, path, hash_prefix=expected_hash_prefix(path.name), progress=progress)
        verify_checkpoint(path)
    return torch.load(path, map_location="cpu", weights_only=True)
