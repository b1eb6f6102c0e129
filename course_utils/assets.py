"""Where data lives, offline mode, and checked downloads: what every asset of the kit goes through.

Offline mode (``COURSE_OFFLINE=1``, ``set_offline(True)`` or ``with offline_mode():``) means no
network access is ever attempted: a missing asset is an immediate ``AssetUnavailableError``
(a ``FileNotFoundError``) naming the asset, the path it was expected at and the
``course fetch`` command that provides it. An unreachable network (DNS failure, refused
connection, timeout) gives the same kind of error, after at most the download timeout
(``COURSE_DOWNLOAD_TIMEOUT``, 30 s), never a hang or a raw ``URLError``.

Downloads go to a temporary file that is checked (announced size, MD5 or SHA-256) before
it is renamed into place, so an interrupted or damaged download never sits at the real path.
``COURSE_MIRROR_URL`` fetches the same file names from another server. What is fetched,
and how it is checked, lives with its kind: ``data.cifar`` for CIFAR-10,
``models.weights`` for ImageNet weights.

Example:
    >>> from course_utils import assets
    >>> assets.data_dir("/tmp/my-data").name
    'my-data'
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import re
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

DEFAULT_TIMEOUT = 30.0
_offline_override: bool | None = None


class AssetUnavailableError(FileNotFoundError):
    """An asset is missing and cannot be downloaded (offline mode, no network, or not on the server)."""


class NetworkUnavailableError(AssetUnavailableError):
    """The download server could not be reached (DNS failure, refused connection, timeout)."""


class CorruptDownloadError(ValueError):
    """A download arrived truncated or with the wrong checksum (and was not kept)."""


@dataclass(frozen=True)
class Fetched:
    """What fetching one asset did: what it is, where it is, what happened, and its size."""

    what: str
    path: Path
    status: str
    size_bytes: int


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
    """Where datasets live: ``root`` if given, else ``$COURSE_DATA_DIR``, else a per-user cache.

    The cache is ``$XDG_CACHE_HOME/course-kit/data`` (``~/.cache/course-kit/data``), like
    torch's own ``~/.cache/torch``: every notebook, whatever folder it runs in, and
    ``course fetch`` share one copy. Set ``COURSE_DATA_DIR`` to keep the data elsewhere (a
    shared folder on a cluster, ``/content/...`` on Colab, a checkout's ``data/``).

    Example:
        >>> data_dir("/tmp/my-data").name
        'my-data'
    """
    if root is not None:
        return Path(root).expanduser()
    if os.environ.get("COURSE_DATA_DIR"):
        return Path(os.environ["COURSE_DATA_DIR"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "course-kit" / "data"


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
        >>> error = missing_asset_error("CIFAR-10", Path("/data/cifar-10-batches-py"), "cifar10", "offline mode is on")
        >>> print(error)
        CIFAR-10 is not available: offline mode is on.
          expected at: /data/cifar-10-batches-py
          fix: on a machine with network access run `course fetch cifar10` (same data directory / TORCH_HOME),
          or copy the file to that path.
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


# SHA-256 of files already hashed in this process, by file version (see ``file_sha256_once``).
_sha256_of_version: dict[tuple, str] = {}


def file_sha256_once(path: str | os.PathLike) -> str:
    """``file_sha256``, computed once per process for each version of the file.

    A notebook builds its backbone a dozen times (every seed, fraction and strategy): hashing
    the same 20-100 MB weight file before each build is repeated work. A version is the
    file's resolved path, size, modification and change times and inode: a replaced,
    truncated, rewritten or touched file is hashed again. Downloads are checked with ``file_sha256``,
    always in full.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = Path(folder) / "weights.pth"
        ...     _ = path.write_bytes(b"abc")
        ...     file_sha256_once(path) == file_sha256_once(path) == file_sha256(path)
        True
    """
    resolved = Path(path).resolve()
    stat = resolved.stat()
    version = (str(resolved), stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino)
    if version not in _sha256_of_version:
        _sha256_of_version[version] = file_sha256(resolved)
    return _sha256_of_version[version]


def file_md5(path: str | os.PathLike) -> str:
    """Hex MD5 of a file (the checksum torchvision publishes for datasets)."""
    return _file_digest(Path(path), "md5")


def expected_hash_prefix(filename: str) -> str | None:
    """The SHA-256 prefix torchvision encodes in checkpoint names like ``resnet18-f37072fd.pth``."""
    match = re.search(r"-([a-f0-9]{8,})\.", filename)
    return match.group(1) if match else None


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

    Example (offline mode: the error names the asset, where it belongs and the fix)::

        >>> with offline_mode():
        ...     download_file("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        ...                   Path("/data/cifar-10-python.tar.gz"), fetch_args="cifar10")
        Traceback (most recent call last):
        course_utils.assets.AssetUnavailableError: cifar-10-python.tar.gz is not available: offline mode is on ...
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


def _stream_to_file(
    url: str, target: Path, timeout: float, progress: bool, what: str, destination: Path, fetch_args: str
) -> None:
    """Copy the body at ``url`` into ``target``, turning network failures into clear errors.

    Raises:
        CorruptDownloadError: fewer bytes arrived than the server announced.
    """
    request = urllib.request.Request(url, headers={"User-Agent": "course-utils"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response, open(target, "wb") as out:
            announced = int(response.headers.get("Content-Length") or 0) or None
            received = 0
            with tqdm(
                total=announced,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=what,
                disable=not progress,
                leave=False,
            ) as bar:
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
        raise CorruptDownloadError(f"SHA-256 starts with {actual[: len(sha256_prefix)]}, expected {sha256_prefix}.")
