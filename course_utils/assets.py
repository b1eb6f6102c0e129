"""Where data and weights live, offline mode, downloads, and verified loading of torchvision checkpoints.

Offline mode (``COURSE_OFFLINE=1``, ``set_offline(True)`` or ``with offline_mode():``) means no
network access is ever attempted: a missing asset is an immediate ``AssetUnavailableError``
(a ``FileNotFoundError``) naming the asset, the path it was expected at and the
``course fetch`` command that provides it. An unreachable network (DNS failure, refused
connection, timeout) gives the same kind of error, after at most the download timeout
(``COURSE_DOWNLOAD_TIMEOUT``, 30 s), never a hang or a raw ``URLError``.

Downloads go to a temporary file that is checked (announced size, MD5 or SHA-256) before
it is renamed into place, so an interrupted or damaged download never sits at the real path.
``COURSE_MIRROR_URL`` fetches the same file names from another server.

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

import contextlib
import hashlib
import http.client
import json
import os
import re
import urllib.error
import urllib.request
import warnings
from pathlib import Path

import torch
from tqdm.auto import tqdm

PROJECT_ROOT = Path(__file__).resolve().parent.parent
STANDIN_MANIFEST = "course-standins.json"
DEFAULT_TIMEOUT = 30.0
_offline_override: bool | None = None


class AssetUnavailableError(FileNotFoundError):
    """An asset is missing and cannot be downloaded (offline mode, no network, or not on the server)."""


class NetworkUnavailableError(AssetUnavailableError):
    """The download server could not be reached (DNS failure, refused connection, timeout)."""


class CorruptDownloadError(ValueError):
    """A download arrived truncated or with the wrong checksum (and was not kept)."""


def set_offline(offline: bool | None) -> None:
    """Force offline mode on or off for this process (``None`` = follow ``COURSE_OFFLINE``)."""
    global _offline_override
    _offline_override = offline


def is_offline() -> bool:
    """True when downloads are forbidden: ``set_offline(True)`` or ``COURSE_OFFLINE=1``."""
    if _offline_override is not None:
        return _offline_override
    return os.environ.get("COURSE_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


@contextlib.contextmanager
def offline_mode(offline: bool = True):
    """Context manager: offline mode on (or off) inside the ``with`` block, as before after it.

    Example:
        >>> with offline_mode():
        ...     is_offline()
        True
    """
    previous = _offline_override
    set_offline(offline)
    try:
        yield
    finally:
        set_offline(previous)


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


def _asset_message(what: str, expected: Path, fetch_args: str, reason: str) -> str:
    return (
        f"{what} is not available: {reason}.\n"
        f"  expected at: {expected}\n"
        f"  fix: on a machine with network access run `course fetch {fetch_args}` "
        f"(same data directory / TORCH_HOME), or copy the file to that path."
    )


def missing_asset_error(what: str, expected: Path, fetch_args: str, reason: str) -> AssetUnavailableError:
    """The error for an asset that is not there: names it, its expected path and the ``course fetch`` fix.

    Example:
        >>> raise missing_asset_error("CIFAR-10", data_dir() / "cifar-10-batches-py", "cifar10", "offline mode is on")
    """
    return AssetUnavailableError(_asset_message(what, expected, fetch_args, reason))


def network_unavailable_error(what: str, expected: Path, fetch_args: str, reason: str) -> NetworkUnavailableError:
    """Like ``missing_asset_error``, for a download server that could not be reached."""
    return NetworkUnavailableError(_asset_message(what, expected, fetch_args, reason))


def _file_digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    return _file_digest(Path(path), "sha256")


def file_md5(path: str | os.PathLike) -> str:
    """Hex MD5 of a file (the checksum torchvision publishes for datasets)."""
    return _file_digest(Path(path), "md5")


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
    entries[path.name] = file_sha256(path)
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
    actual = file_sha256(path)
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


def mirror_url(url: str, mirror: str | None = None) -> str:
    """``url`` itself, or the same file name under a mirror (``mirror`` or ``$COURSE_MIRROR_URL``).

    A mirror is a base URL serving the files under their original names, e.g. a
    department web server, a shared folder as ``file:///shared/course-assets/``, or a
    test server on 127.0.0.1.

    Example:
        >>> mirror_url("https://download.pytorch.org/models/resnet18-f37072fd.pth", "http://127.0.0.1:8000/assets")
        'http://127.0.0.1:8000/assets/resnet18-f37072fd.pth'
    """
    base = mirror if mirror is not None else os.environ.get("COURSE_MIRROR_URL", "")
    if not base:
        return url
    if "://" not in base:
        raise ValueError(
            f"The mirror {base!r} is not a URL. Give a base URL such as https://host/course-assets/ "
            "or file:///shared/course-assets/ (argument --mirror or COURSE_MIRROR_URL)."
        )
    return base.rstrip("/") + "/" + url.rsplit("/", 1)[-1]


def download_timeout(timeout: float | None = None) -> float:
    """Seconds to wait for a connection or for the next data: ``timeout``, ``$COURSE_DOWNLOAD_TIMEOUT`` or 30."""
    value = timeout if timeout is not None else os.environ.get("COURSE_DOWNLOAD_TIMEOUT", DEFAULT_TIMEOUT)
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise ValueError(
            f"The download timeout must be a positive number of seconds (COURSE_DOWNLOAD_TIMEOUT), got {value!r}."
        )
    return seconds


def download_file(
    url: str,
    destination: str | os.PathLike,
    *,
    what: str | None = None,
    fetch_args: str = "all",
    md5: str | None = None,
    sha256_prefix: str | None = None,
    timeout: float | None = None,
    progress: bool = True,
    attempts: int = 2,
) -> Path:
    """Download ``url`` to ``destination`` through a temporary file, checked before it is moved into place.

    A truncated or corrupt transfer is tried again (``attempts`` in all); a partial file is
    never left at ``destination``. Every network access of the kit goes through here,
    so offline mode is enforced here.

    Args:
        url: where the file comes from (apply ``mirror_url`` first to honour a mirror).
        destination: final path; its folder is created.
        what: the asset's name for error messages (default: the file name).
        fetch_args: the ``course fetch`` arguments that provide it, for error messages.
        md5, sha256_prefix: expected checksum(s) of the complete file.
        timeout: connect/read timeout in seconds (default ``download_timeout()``).
        progress: show a progress bar with the size (on stderr).
        attempts: downloads tried before a corrupt result is reported.

    Raises:
        AssetUnavailableError: offline mode is on, or the server has no such file.
        NetworkUnavailableError: no connection, DNS failure, refused or timed out.
        CorruptDownloadError: every attempt came back truncated or with the wrong checksum.

    Example:
        >>> download_file("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        ...               data_dir() / "cifar-10-python.tar.gz", md5="c58f30108f718f92721af3b95e74349a")
    """
    destination = Path(destination)
    what = what or destination.name
    if is_offline():
        reason = "offline mode is on (COURSE_OFFLINE=1 or --offline), so nothing is downloaded"
        raise missing_asset_error(what, destination, fetch_args, reason)
    seconds = download_timeout(timeout)
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(f".{destination.name}.partial-{os.getpid()}")
    try:
        for attempt in range(1, attempts + 1):
            try:
                _stream_to_file(url, partial, seconds, progress, what, destination, fetch_args)
                _check_download(partial, md5, sha256_prefix)
                break
            except CorruptDownloadError as err:
                if attempt == attempts:
                    raise CorruptDownloadError(
                        f"The download of {what} from {url} was corrupt {attempts} time(s): {err} "
                        f"Nothing was saved to {destination}. Run `course fetch {fetch_args}` again later; "
                        "if it keeps failing, the server (or mirror) serves a damaged file."
                    ) from err
                warnings.warn(f"The download of {what} was corrupt ({err}); trying again.", stacklevel=2)
        os.replace(partial, destination)
    finally:
        partial.unlink(missing_ok=True)
    return destination


def _stream_to_file(url: str, target: Path, timeout: float, progress: bool, what: str,
                    destination: Path, fetch_args: str) -> None:
    """Copy the body at ``url`` into ``target``, turning network failures into clear errors.

    Raises:
        CorruptDownloadError: fewer bytes arrived than the server announced.
    """
    request = urllib.request.Request(url, headers={"User-Agent": "course-utils"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response, open(target, "wb") as out:
            announced = int(response.headers.get("Content-Length") or 0) or None
            received = 0
            with tqdm(total=announced, unit="B", unit_scale=True, unit_divisor=1024, desc=what,
                      disable=not progress, leave=False) as bar:
                for chunk in iter(lambda: response.read(1 << 16), b""):
                    out.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as err:  # the server answered, but not with the file
        reason = f"{url} answered HTTP {err.code} {err.reason}"
        raise missing_asset_error(what, destination, fetch_args, reason) from err
    except (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException) as err:
        reason = getattr(err, "reason", err)  # URLError wraps the socket error in .reason
        if isinstance(reason, TimeoutError):
            reason = f"no answer within {timeout:g} s"
        raise network_unavailable_error(what, destination, fetch_args, f"{url} could not be reached: {reason}") from err
    # urllib does not complain when a connection closes early, so compare with the announced size.
    if announced is not None and received != announced:
        raise CorruptDownloadError(f"truncated: {received:,} of {announced:,} bytes arrived.")


def _check_download(path: Path, md5: str | None, sha256_prefix: str | None) -> None:
    """Raise ``CorruptDownloadError`` when ``path`` does not have the expected checksum(s)."""
    if md5 is not None and (actual := file_md5(path)) != md5:
        raise CorruptDownloadError(f"MD5 {actual}, expected {md5}.")
    if sha256_prefix is not None and not (actual := file_sha256(path)).startswith(sha256_prefix):
        raise CorruptDownloadError(f"SHA-256 starts with {actual[:len(sha256_prefix)]}, expected {sha256_prefix}.")


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
        if is_offline():
            raise missing_asset_error(what, path, fetch_args, f"{problem}, and offline mode is on")
        path.unlink()
        status = "replaced"
    download_file(mirror_url(weights.url, mirror), path, what=what, fetch_args=fetch_args,
                  sha256_prefix=expected_hash_prefix(path.name), timeout=timeout, progress=progress)
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

    Example:
        >>> state_dict = load_torchvision_checkpoint("ResNet18_Weights.IMAGENET1K_V1")
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
