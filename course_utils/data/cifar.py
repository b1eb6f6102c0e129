"""CIFAR-10: loaded through torchvision's own ``CIFAR10`` class, fetched and checked by the kit.

``cifar10()`` is what a notebook calls. When the files are missing and downloads are
allowed it fetches them first with ``fetch_cifar10``: the kit's download, not torchvision's,
because it has a timeout (no hang on a dead network), checks the archive's and every batch
file's MD5, and never leaves a partial archive behind. ``course fetch cifar10`` calls the
same function ahead of an offline session.

A synthetic stand-in in the real python-batch format (``standins.write_synthetic_cifar10``)
is recognised by its manifest and read by the same torchvision class (``StandInCIFAR10``).

Example:
    >>> import tempfile
    >>> from course_utils.data.standins import write_synthetic_cifar10
    >>> root = tempfile.mkdtemp()
    >>> _ = write_synthetic_cifar10(root, per_class_train=2, per_class_test=1)
    >>> len(cifar10(train=True, root=root, image_size=32))
    20
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import tempfile
import warnings
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from torchvision.datasets import CIFAR10

from .. import assets
from ..assets import CorruptDownloadError, Fetched
from ..models.architectures import IMAGENET_MEAN, IMAGENET_STD
from .transforms import image_transforms

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


STANDIN_MANIFEST = "course-standin.json"


def cifar10(
    train: bool = True,
    root: str | os.PathLike | None = None,
    image_size: int = 224,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    augment: bool | None = None,
    download: bool | None = None,
):
    """CIFAR-10 through ``torchvision.datasets.CIFAR10``, with transforms for the chosen weights.

    Args:
        train: training split (50,000 images) or test split (10,000).
        root: data directory; default ``$COURSE_DATA_DIR`` or the kit's ``data/``.
        image_size: images are resized from 32 px to this (224 for the seeds' runs).
        mean, std: normalization of the weights in use (ImageNet for pretrained nets).
        augment: random crop (padding 4) + horizontal flip; default: on for ``train``.
        download: allow downloading; default: yes unless offline mode is on.

    Raises:
        FileNotFoundError: the data is missing or damaged (a truncated batch file) and may
            not be downloaded; the message names the folder, the damaged files and the
            ``course fetch cifar10`` command (``AssetUnavailableError``, as for weights).
    """
    root = assets.data_dir(root)
    augment = train if augment is None else augment
    transform = image_transforms(image_size, mean, std, augment=augment)
    folder = root / CIFAR10.base_folder
    if (folder / STANDIN_MANIFEST).exists():
        try:
            return StandInCIFAR10(str(root), train=train, transform=transform, download=False)
        except RuntimeError:  # torchvision: not found or corrupted; say which file, and the fix
            expected = json.loads((folder / STANDIN_MANIFEST).read_text())["md5"]
            problems = ", ".join(_file_problems(folder, expected)) or "its files fail their checksums"
            raise assets.AssetUnavailableError(
                f"The synthetic CIFAR-10 stand-in is damaged: {problems}.\n  at: {folder}\n"
                "  fix: delete that folder; the next smoke or offline run writes a new one."
            ) from None
    download = (not assets.is_offline()) if download is None else download
    if download and assets.is_offline():
        raise ValueError("download=True contradicts offline mode (COURSE_OFFLINE=1); fetch the data first.")
    if not download and not _cifar_complete(folder):
        raise assets.missing_asset_error(
            "CIFAR-10",
            folder,
            "cifar10",
            "offline mode is on" if assets.is_offline() else "download=False and the files are not there",
        )
    if download:
        # The kit's fetch, not torchvision's download: it has a timeout (no hang on a dead
        # network), checks the MD5s and never leaves a partial archive behind.
        fetch_cifar10(root)
    try:
        return CIFAR10(str(root), train=train, transform=transform, download=False)
    except RuntimeError:  # torchvision: not found or corrupted (its hint, download=True, is wrong offline)
        problems = ", ".join(folder_problems(folder, torchvision_cifar10())) or "its files fail their checksums"
        raise assets.missing_asset_error(
            "CIFAR-10",
            folder,
            "cifar10",
            problems + (" (offline mode is on)" if assets.is_offline() else " (truncated or edited?)"),
        ) from None


def _cifar_complete(folder: Path) -> bool:
    names = [name for name, _ in CIFAR10.train_list + CIFAR10.test_list] + [CIFAR10.meta["filename"]]
    return all((folder / name).exists() for name in names)


class StandInCIFAR10(CIFAR10):
    """torchvision's CIFAR10 reading a synthetic stand-in written by ``write_synthetic_cifar10``.

    The files are in the real python-batch format and torchvision's own code reads and
    md5-checks them; only the expected md5s differ: torchvision's list describes the real
    archive, so the stand-in's come from ``course-standin.json`` next to the files (a
    truncated or edited stand-in still fails the check).
    """

    def __init__(self, root: str, *args, **kwargs):
        expected = json.loads((Path(root) / self.base_folder / STANDIN_MANIFEST).read_text())["md5"]
        self.train_list = [[name, expected[name]] for name, _ in CIFAR10.train_list]
        self.test_list = [[name, expected[name]] for name, _ in CIFAR10.test_list]
        self.meta = {**CIFAR10.meta, "md5": expected[CIFAR10.meta["filename"]]}
        warnings.warn("Using a synthetic CIFAR-10 stand-in (smoke profile/tests), not the real data.", stacklevel=3)
        super().__init__(root, *args, **kwargs)


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


def torchvision_cifar10() -> ArchiveDataset:
    """CIFAR-10 as torchvision's ``CIFAR10`` class describes it (URL, archive MD5, batch-file MD5s)."""
    from torchvision.datasets import CIFAR10

    files = dict(CIFAR10.train_list + CIFAR10.test_list)
    files[CIFAR10.meta["filename"]] = CIFAR10.meta["md5"]
    return ArchiveDataset(
        name="CIFAR-10",
        fetch_args="cifar10",
        url=CIFAR10.url,
        archive=CIFAR10.filename,
        md5=CIFAR10.tgz_md5,
        folder=CIFAR10.base_folder,
        files=files,
    )


def folder_problems(folder: Path, dataset: ArchiveDataset) -> list[str]:
    """Files of ``dataset`` that are missing from ``folder`` or fail their MD5 (empty: all good)."""
    return _file_problems(folder, dataset.files)


def _file_problems(folder: Path, files: dict[str, str]) -> list[str]:
    problems = []
    for name, md5 in files.items():
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
        root: data directory (default ``assets.data_dir()``).
        dataset: what to fetch (default ``torchvision_cifar10()``; tests pass a small one).
        mirror, timeout, progress: see ``assets.mirror_url`` and ``assets.download_file``.

    Returns:
        ``Fetched`` for the unpacked folder.

    Raises:
        AssetUnavailableError: missing or damaged, and offline or the network is unreachable.
        CorruptDownloadError: the download or its contents keep failing their checksums.

    Example (offline, with nothing there yet: the error says what to run)::

        >>> with assets.offline_mode():
        ...     fetch_cifar10("empty-folder")
        Traceback (most recent call last):
        course_utils.assets.AssetUnavailableError: CIFAR-10 is not available: the folder does not exist,
            and offline mode is on. ...
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
        assets.download_file(
            assets.mirror_url(dataset.url, mirror),
            archive,
            what=f"{dataset.name} archive",
            fetch_args=dataset.fetch_args,
            md5=dataset.md5,
            timeout=timeout,
            progress=progress,
        )
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
