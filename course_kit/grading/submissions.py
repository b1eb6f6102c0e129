"""Finding the submissions in a folder, reading them safely, and naming their students.

``SUBMISSIONS`` is a folder holding, per student, one of

* ``<name>.ipynb``: a single notebook;
* ``<name>/``: a folder; its notebook is ``<name>/<ASSIGNMENT>.ipynb``, or the only
  ``.ipynb`` at the top of the folder, and every other file in it (helper modules, small
  data, dot files too) is copied next to the notebook;
* ``<name>.zip``: the zip ``cu.submit()`` writes (or any zip of such a folder), read like
  the folder it holds; when every entry lies in one top folder (``s1/...``), that folder
  is the submission. A ``<name>/`` folder next to a ``<name>.zip`` (``cu.submit()``
  writes both) is graded and the zip is reported as not graded.

Nothing from a submission is trusted, and one bad submission never stops the class: what
cannot be read becomes that student's problem (graded ``invalid-notebook``, the detail
saying what was wrong), never an exception. Sizes are read from the file system or the
zip's directory before any content, so an oversized submission is refused without
loading it. Within a submission:

* links are never followed: a symbolic link, a file with other hard links (a hard link
  into the hidden checks would carry their content), a pipe or a device is left out;
* a folder is walked without recursion, at most :data:`MAX_DEPTH` levels deep and
  :data:`MAX_ENTRIES` entries; deeper or larger is the student's problem;
* a zip entry with an absolute path, ``..``, a drive letter or backslashes, a link or
  device mode, encryption, or a duplicate name makes the zip invalid; so do more than
  :data:`MAX_ENTRIES` entries, and contents larger than :data:`MAX_FOLDER_BYTES` as
  declared *or* as actually inflated (zip bombs);
* Jupyter's and macOS's bookkeeping (``.ipynb_checkpoints``, ``__MACOSX``...) and the
  names the grader gives the kernel's own configuration (``.ipython``, ``.jupyter``,
  ``.config``...: a student's file there would run or configure code before the notebook)
  are left out.

Everything left out is named in the submission's ``notes`` (the gradebook row's detail
ends with them), and every entry of ``SUBMISSIONS`` that is not graded is returned with
the reason (:class:`Skipped`; ``course grade`` prints them and writes ``not-graded.csv``).

Student ids come from the file or folder name (:func:`student_id`): Unicode letters and
digits are kept, so ``José.ipynb`` and ``Josè.ipynb`` are two students. When two names
still make the same id (``Ana María`` and ``Ana_María``), the first in sorted order keeps
it and the others get a short, stable suffix from their own name. The original name is
kept in every row (``file_name``).

Example:
    >>> student_id("Ana María (2).ipynb"), student_id("José.ipynb") != student_id("Josè.ipynb")
    ('Ana_María__2_', True)
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import struct
import unicodedata
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

MAX_FOLDER_BYTES = 100 * 1024**2
MAX_NOTEBOOK_BYTES = 50 * 1024**2
MAX_ENTRIES = 2000  # files and folders in one submission
MAX_DEPTH = 32  # folder levels inside one submission
MAX_PATH_CHARS = 1024
BOOKKEEPING = {"__MACOSX", "__pycache__", ".ipynb_checkpoints", ".git", ".DS_Store"}
# Folders and files the grader makes in the kernel's work folder (its HOME): IPython runs
# startup files from .ipython, Jupyter and matplotlib read configuration from the others.
RESERVED = {
    ".ipython",
    ".jupyter",
    ".config",
    ".local",
    ".cache",
    ".tmp",
    ".torch",
    ".kernel-connection.json",
    ".course-lib",
    *(f".kernel-{n}" for n in range(1, 6)),
}
_MAX_NOTES = 8
_CHUNK = 1024**2


@dataclass
class Submission:
    """One student's work as bytes: the notebook and, for folder and zip submissions, the other files.

    Attributes:
        student: the unique student id (a safe file name).
        source: the file or folder it came from.
        notebook_bytes: the notebook's bytes (None when there is a ``problem``).
        files: the other files by relative POSIX path.
        problem: why it cannot be graded (graded ``invalid-notebook`` with this detail).
        file_name: that file's or folder's own name, as the student named it.
        notes: what was left out of it, and why (the gradebook row's detail reports them).
    """

    student: str
    source: Path
    notebook_bytes: bytes | None = None
    files: dict[str, bytes] = field(default_factory=dict)
    problem: str | None = None
    file_name: str = ""
    notes: list[str] = field(default_factory=list)

    def __post_init__(self):
        self.file_name = self.file_name or Path(self.source).name

    @property
    def notes_text(self) -> str:
        """The notes as one line, at most a few named.

        Example:
            >>> Submission("a", Path("a"), notes=[f"f{i}: a symbolic link" for i in range(10)]).notes_text
            'left out f0: a symbolic link; ...; f7: a symbolic link; and 2 more'
        """
        if not self.notes:
            return ""
        more = len(self.notes) - _MAX_NOTES
        return "left out " + "; ".join(self.notes[:_MAX_NOTES])[:600] + (f"; and {more} more" if more > 0 else "")


@dataclass
class Skipped:
    """An entry of the submissions folder that is not graded, and why."""

    name: str
    reason: str


class _Refused(Exception):
    """A submission that cannot be read; the message is the student's problem."""


def student_id(name: str) -> str:
    """A file-name-safe student id from a file or folder name (extension ``.ipynb`` dropped).

    Letters and digits of any script are kept (after Unicode NFC normalisation, so the same
    name typed on two systems gives one id); other characters become ``_``; leading dots
    are dropped. A name with nothing left gets an id made from its own hash.

    Example:
        >>> student_id("s1234567.ipynb"), student_id("jane.doe@uni"), student_id(".bob.ipynb")
        ('s1234567', 'jane.doe@uni', 'bob')
        >>> student_id("..ipynb")
        'submission-886061'
    """
    name = unicodedata.normalize("NFC", name)
    stem = name[: -len(".ipynb")] if name.endswith(".ipynb") else name
    cleaned = "".join(c if c.isalnum() or c in "._@+-" else "_" for c in stem).lstrip(".")[:100]
    if not cleaned.strip("._"):
        return f"submission-{hashlib.sha1(name.encode('utf-8')).hexdigest()[:6]}"
    return cleaned


def _suffixed(student: str, name: str) -> str:
    """The id of a second name that makes ``student`` too: stable, from the name itself."""
    return f"{student}~{hashlib.sha1(unicodedata.normalize('NFC', name).encode('utf-8')).hexdigest()[:6]}"


def _mb(size: int) -> str:
    return f"{size / 1024**2:.0f} MB"


# --------------------------------------------------------------------------- reading one file
def read_regular(path: Path, limit: int) -> bytes:
    """The bytes of ``path`` if it is a regular file with no other hard link and at most ``limit`` bytes.

    Opened without following a link, and checked on the open file, so what is read is
    what was checked.

    Raises:
        _Refused: it is a link, has other hard links, is not a regular file, or is too large.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as error:
        raise _Refused(f"{path.name} could not be opened ({error.strerror or error})") from None
    with os.fdopen(fd, "rb") as stream:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _Refused(f"{path.name} is not a regular file")
        if info.st_nlink > 1:
            raise _Refused(f"{path.name} is a hard link ({info.st_nlink} names for one file); hand in a copy")
        if info.st_size > limit:
            raise _Refused(f"{path.name} is {_mb(info.st_size)}, more than the {_mb(limit)} allowed")
        data = stream.read(limit + 1)
    if len(data) > limit:  # it grew since it was checked
        raise _Refused(f"{path.name} is more than the {_mb(limit)} allowed")
    return data


# --------------------------------------------------------------------------- folders
@dataclass
class _Entry:
    """One file of a submission: its relative path, its size as declared, and how to read it."""

    path: str
    size: int
    read: Callable[[], bytes]


def _left_out(name: str, depth: int) -> str | None:
    """Why a folder entry named ``name`` at ``depth`` (0 = the submission's top) is left out, if it is."""
    if name in BOOKKEEPING:
        return "bookkeeping, not part of the work"
    if depth == 0 and name in RESERVED:
        return "the grader's own name for the kernel's configuration"
    return None


def _walk_folder(folder: Path, notes: list[str]) -> list[_Entry]:
    """The regular files under ``folder``, walked without recursion and without following links.

    Raises:
        _Refused: more than :data:`MAX_DEPTH` levels or :data:`MAX_ENTRIES` entries.
    """
    found: list[_Entry] = []
    pending = [(folder, "", 0)]
    seen = 0
    while pending:
        directory, prefix, depth = pending.pop()
        try:
            with os.scandir(directory) as listing:
                children = sorted(listing, key=lambda item: item.name)
        except OSError as error:
            notes.append(f"{prefix or './'}: could not be listed ({error.strerror or error})")
            continue
        for child in children:
            seen += 1
            if seen > MAX_ENTRIES:
                raise _Refused(f"the folder {folder.name}/ holds more than {MAX_ENTRIES} files and folders")
            relative = prefix + child.name
            reason = _left_out(child.name, depth)
            if reason:
                notes.append(f"{relative}: {reason}")
            elif child.is_symlink():
                notes.append(f"{relative}: a symbolic link (never followed)")
            elif child.is_dir(follow_symlinks=False):
                if depth + 1 > MAX_DEPTH:
                    raise _Refused(
                        f"the folder {folder.name}/ nests folders more than {MAX_DEPTH} levels deep "
                        f"(at {relative[:200]}/...); hand in a flatter folder"
                    )
                pending.append((Path(child.path), relative + "/", depth + 1))
            else:
                info = child.stat(follow_symlinks=False)
                if not stat.S_ISREG(info.st_mode):
                    notes.append(f"{relative}: not a regular file")
                elif info.st_nlink > 1:
                    notes.append(f"{relative}: a hard link ({info.st_nlink} names for one file; hand in a copy)")
                else:
                    found.append(
                        _Entry(relative, info.st_size, lambda p=Path(child.path): read_regular(p, MAX_FOLDER_BYTES))
                    )
    return found


def read_folder(folder: Path, assignment: str, student: str) -> Submission:
    """A folder submission: its notebook and other files, read safely (see the module's rules).

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp()) / "ana"
        >>> (folder / ".ipynb_checkpoints").mkdir(parents=True)
        >>> _ = (folder / "00_toy.ipynb").write_text("{}"), (folder / ".env").write_text("X=1")
        >>> found = read_folder(folder, "00_toy", "ana")
        >>> found.notebook_bytes, sorted(found.files), found.notes
        (b'{}', ['.env'], ['.ipynb_checkpoints: bookkeeping, not part of the work'])
    """
    submission = Submission(student, folder)
    try:
        entries = _walk_folder(folder, submission.notes)
        _assemble(submission, entries, assignment, f"the folder {folder.name}/", strict=False)
    except _Refused as refused:
        submission.problem = str(refused)
    return submission


def _assemble(submission: Submission, entries: list[_Entry], assignment: str, label: str, strict: bool) -> None:
    """Choose the notebook among ``entries``, check the sizes, and read everything into ``submission``.

    With ``strict`` (zips) a file that cannot be read refuses the whole submission; without
    (folders, whose files may change while they are read) it is left out and noted.

    Raises:
        _Refused: no notebook, several and none named for the assignment, too large, unreadable.
    """
    notebooks = [e for e in entries if "/" not in e.path and e.path.endswith(".ipynb")]
    chosen = next((e for e in notebooks if e.path == f"{assignment}.ipynb"), None)
    if chosen is None and len(notebooks) == 1:
        chosen = notebooks[0]
    if chosen is None and not notebooks:
        raise _Refused(f"{label} contains no .ipynb notebook")
    if chosen is None:
        names = ", ".join(e.path for e in notebooks[:10])
        raise _Refused(f"{label} contains several notebooks ({names}) and none is named {assignment}.ipynb")
    if chosen.size > MAX_NOTEBOOK_BYTES:
        raise _Refused(f"{chosen.path} is {_mb(chosen.size)}, more than the {_mb(MAX_NOTEBOOK_BYTES)} allowed")
    total = sum(e.size for e in entries)
    if total > MAX_FOLDER_BYTES:  # measured before anything is read
        raise _Refused(f"{label} holds {_mb(total)}, more than the {_mb(MAX_FOLDER_BYTES)} allowed")
    submission.notebook_bytes = chosen.read()
    for entry in entries:
        if entry is not chosen:
            try:
                submission.files[entry.path] = entry.read()
            except _Refused as refused:
                if strict:
                    raise
                submission.notes.append(f"{entry.path}: {refused}")  # changed since it was listed


# --------------------------------------------------------------------------- zips
def _zip_directory_size(path: Path) -> int | None:
    """The size of a zip's central directory from its end record, read before the zip is opened.

    The central directory is what opening a zip loads into memory, one object per entry:
    a huge one is refused before that. None when no end record is found (not a zip).
    """
    with open(path, "rb") as stream:
        stream.seek(0, os.SEEK_END)
        size = stream.tell()
        tail_start = max(0, size - (22 + 65535))
        stream.seek(tail_start)
        tail = stream.read()
        at = tail.rfind(b"PK\x05\x06")
        if at < 0 or len(tail) < at + 22:
            return None
        directory_size = struct.unpack("<L", tail[at + 12 : at + 16])[0]
        locator = tail[at - 20 : at] if at >= 20 else b""
        if directory_size == 0xFFFFFFFF and locator[:4] == b"PK\x06\x07":  # ZIP64: the size is in another record
            stream.seek(struct.unpack("<Q", locator[8:16])[0])
            record = stream.read(56)
            if record[:4] == b"PK\x06\x06" and len(record) == 56:
                directory_size = struct.unpack("<Q", record[40:48])[0]
        return directory_size


def _zip_name_problem(name: str) -> str | None:
    """What is wrong with a zip entry's name, if anything.

    Example:
        >>> [_zip_name_problem(n) for n in ("s1/a.py", "../x", "/etc/x", "C:x", "a\\\\b")]
        [None, 'leads out of its folder (..)', 'is an absolute path', 'starts with a drive letter', 'uses backslashes']
    """
    parts = name.rstrip("/").split("/")
    if "\\" in name:
        return "uses backslashes"
    if name.startswith("/"):
        return "is an absolute path"
    if re.match(r"[A-Za-z]:", name):
        return "starts with a drive letter"
    if ".." in parts:
        return "leads out of its folder (..)"
    if any(part in ("", ".") for part in parts) or any(ord(c) < 32 for c in name):
        return "has an empty part, '.' or a control character"
    if len(name) > MAX_PATH_CHARS or len(parts) > MAX_DEPTH + 1:
        return f"is longer than {MAX_PATH_CHARS} characters or more than {MAX_DEPTH} folders deep"
    return None


def _zip_mode_problem(info: zipfile.ZipInfo) -> str | None:
    """A link or device by the entry's Unix mode, or encryption."""
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        return "is a symbolic link"
    if mode and stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        return "is not a regular file or folder"
    if info.flag_bits & 0x1:
        return "is encrypted"
    return None


def _zip_entries(archive: zipfile.ZipFile, label: str, notes: list[str]) -> list[_Entry]:
    """The zip's files as entries, its layout checked, one top folder removed.

    Raises:
        _Refused: too many entries, a bad name or mode, duplicates, too large as declared.
    """
    infos = archive.infolist()
    if len(infos) > MAX_ENTRIES:
        raise _Refused(f"{label} holds {len(infos)} entries, more than the {MAX_ENTRIES} allowed")
    names: set[str] = set()
    files = []
    for info in infos:
        problem = _zip_name_problem(info.filename) or _zip_mode_problem(info)
        if problem:
            raise _Refused(f"{label} is refused: its entry {info.filename[:200]!r} {problem}")
        name = info.filename.rstrip("/")
        if name in names:
            raise _Refused(f"{label} is refused: it holds {name[:200]!r} twice")
        names.add(name)
        if not info.is_dir():
            files.append(info)
    file_names = {info.filename for info in files}
    for name in names:  # a file that is also a folder of another entry cannot be written out
        parts = name.split("/")
        clash = next((a for a in ("/".join(parts[:k]) for k in range(1, len(parts))) if a in file_names), None)
        if clash:
            raise _Refused(f"{label} is refused: {clash[:200]!r} is both a file and a folder")
    declared = sum(info.file_size for info in files)
    if declared > MAX_FOLDER_BYTES:
        raise _Refused(f"{label} unpacks to {_mb(declared)}, more than the {_mb(MAX_FOLDER_BYTES)} allowed")
    kept = [info for info in files if not _left_out_of_zip(info.filename, notes)]
    tops = {info.filename.split("/", 1)[0] for info in kept}
    strip = len(tops) == 1 and all("/" in info.filename for info in kept)
    budget = _Budget(MAX_FOLDER_BYTES)
    entries = []
    for info in kept:
        relative = info.filename.split("/", 1)[1] if strip else info.filename
        reason = _left_out(relative.split("/", 1)[0], 0)
        if reason:
            notes.append(f"{relative}: {reason}")
            continue
        entries.append(_Entry(relative, info.file_size, lambda i=info: _inflate(archive, i, budget, label)))
    return entries


def _left_out_of_zip(name: str, notes: list[str]) -> bool:
    """Bookkeeping anywhere in a zip path (``__MACOSX/...``) is left out; named once per folder."""
    parts = name.split("/")
    for index, part in enumerate(parts):
        if part in BOOKKEEPING:
            note = (
                f"{'/'.join(parts[: index + 1])}{'/' if index + 1 < len(parts) else ''}: bookkeeping, not part "
                f"of the work"
            )
            if note not in notes:
                notes.append(note)
            return True
    return False


@dataclass
class _Budget:
    """Bytes a zip may still inflate to, counted as they come out (its declared sizes may lie)."""

    left: int


def _inflate(archive: zipfile.ZipFile, info: zipfile.ZipInfo, budget: _Budget, label: str) -> bytes:
    chunks, size = [], 0
    try:
        with archive.open(info) as stream:
            while chunk := stream.read(_CHUNK):
                size += len(chunk)
                budget.left -= len(chunk)
                if size > info.file_size or budget.left < 0:
                    raise _Refused(
                        f"{label} is refused: {info.filename[:200]!r} inflates to more than it declares (a zip bomb?)"
                    )
                chunks.append(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError) as error:
        raise _Refused(f"{label} is damaged: {info.filename[:200]!r} cannot be unpacked ({error})") from None
    return b"".join(chunks)


def read_zip(path: Path, assignment: str, student: str) -> Submission:
    """A zip submission (as ``cu.submit()`` writes it), read in memory like the folder it holds.

    Nothing is unpacked to disk; see the module's rules for what makes a zip invalid.
    """
    submission = Submission(student, path)
    label = f"the zip {path.name}"
    try:
        size = path.lstat().st_size
        if size > MAX_FOLDER_BYTES:
            raise _Refused(f"{label} is {_mb(size)}, more than the {_mb(MAX_FOLDER_BYTES)} allowed")
        directory = _zip_directory_size(path)
        if directory is not None and directory > MAX_ENTRIES * (46 + MAX_PATH_CHARS):
            raise _Refused(f"{label} lists more than the {MAX_ENTRIES} entries allowed")
        with zipfile.ZipFile(path) as archive:
            entries = _zip_entries(archive, label, submission.notes)
            _assemble(submission, entries, assignment, label, strict=True)
    except _Refused as refused:
        submission.problem, submission.notebook_bytes, submission.files = str(refused), None, {}
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError) as error:
        submission.problem, submission.notebook_bytes, submission.files = (
            f"{label} cannot be read as a zip ({error}); hand in the zip cu.submit() writes",
            None,
            {},
        )
    return submission


def read_notebook(path: Path, student: str) -> Submission:
    """A single-notebook submission, read without following a link."""
    try:
        return Submission(student, path, read_regular(path, MAX_NOTEBOOK_BYTES))
    except _Refused as refused:
        return Submission(student, path, problem=str(refused))


# --------------------------------------------------------------------------- the submissions folder
def _kind(entry: Path) -> tuple[str | None, str]:
    """``(kind, reason)``: ``"notebook"``, ``"folder"`` or ``"zip"``, or None and why it is not graded."""
    if entry.name in BOOKKEEPING:
        return None, "bookkeeping (Jupyter's or the operating system's), not a submission"
    if entry.is_symlink():
        return None, "a symbolic link (never followed); copy the submission itself here"
    if entry.is_dir():
        if entry.name.startswith("."):
            return None, "a hidden folder; rename it (without the leading dot) to grade it"
        return "folder", ""
    if not entry.is_file():
        return None, "not a regular file or folder"
    if entry.suffix == ".ipynb":
        return "notebook", ""
    if entry.suffix.lower() == ".zip":
        return "zip", ""
    return None, "not a notebook (.ipynb), a folder or a .zip"


def scan(
    path: str | Path, assignment: str, warn: Callable[[str], None] | None = None
) -> tuple[list[Submission], list[Skipped]]:
    """``(submissions, skipped)`` under ``path`` (a folder, or one notebook or zip), submissions sorted by id.

    Args:
        path: the submissions folder, or one ``.ipynb`` or ``.zip``.
        assignment: the notebook name a folder or zip submission should contain.
        warn: receives one line per renamed duplicate id or hidden notebook.

    Raises:
        ValueError: ``path`` does not exist.

    Example::

        submissions, skipped = scan("submissions/03_partial_freezing", "03_partial_freezing", warn=print)
        for entry in skipped:
            print(f"not graded: {entry.name}: {entry.reason}")
    """
    warn = warn or (lambda message: None)
    root = Path(path)
    if root.is_file() and root.suffix == ".ipynb":
        return [read_notebook(root, student_id(root.name))], []
    if root.is_file() and root.suffix.lower() == ".zip":
        return [read_zip(root, assignment, student_id(root.stem))], []
    if not root.is_dir():
        raise ValueError(
            f"submissions folder {root} does not exist (give a folder of <student>.ipynb files, "
            f"<student>/ folders or <student>.zip files, or one .ipynb)"
        )
    entries = sorted(root.iterdir(), key=lambda p: unicodedata.normalize("NFC", p.name))
    folders = {unicodedata.normalize("NFC", p.name) for p in entries if p.is_dir() and not p.is_symlink()}
    found: dict[str, Submission] = {}
    skipped: list[Skipped] = []
    for entry in entries:
        kind, reason = _kind(entry)
        if kind == "zip" and unicodedata.normalize("NFC", entry.stem) in folders:
            kind, reason = None, f"the folder {entry.stem}/ next to it is graded instead (cu.submit() writes both)"
        if kind is None:
            skipped.append(Skipped(entry.name, reason))
            continue
        student = student_id(entry.stem if kind == "zip" else entry.name)
        if entry.name.startswith(".") or entry.name == ".ipynb":
            warn(f"{entry.name}: a hidden or nameless {kind}, graded as student {student!r}")
        if student in found:
            renamed = _suffixed(student, entry.name)
            warn(
                f"{entry.name} and {found[student].file_name} both make the student id {student!r}: "
                f"{entry.name} is graded as {renamed!r}"
            )
            student = renamed
        if kind == "notebook":
            found[student] = read_notebook(entry, student)
        else:
            found[student] = (read_folder if kind == "folder" else read_zip)(entry, assignment, student)
    return [found[key] for key in sorted(found)], skipped


def discover(path: str | Path, assignment: str, warn: Callable[[str], None] | None = None) -> list[Submission]:
    """All submissions under ``path``, sorted by student id; what is not graded goes to ``warn`` too.

    Example::

        for submission in discover("submissions/03_partial_freezing", "03_partial_freezing", warn=print):
            print(submission.student, submission.file_name, submission.problem or "ok")
    """
    submissions, skipped = scan(path, assignment, warn)
    for entry in skipped:
        (warn or (lambda message: None))(f"not graded: {entry.name}: {entry.reason}")
    return submissions


def find_nested(folder: Path, assignment: str) -> list[Path]:
    """Folders under ``folder`` that hold ``ASSIGNMENT.ipynb`` (links not followed, at most :data:`MAX_DEPTH` deep).

    Walked without recursion; hidden and bookkeeping folders are not entered.

    Example:
        >>> import tempfile
        >>> base = Path(tempfile.mkdtemp())
        >>> (base / "repo" / "hw").mkdir(parents=True)
        >>> _ = (base / "repo" / "hw" / "00_toy.ipynb").write_text("{}")
        >>> [p.relative_to(base).as_posix() for p in find_nested(base, "00_toy")]
        ['repo/hw']
    """
    found, pending, seen = [], [(folder, 0)], 0
    while pending and seen < MAX_ENTRIES:
        directory, depth = pending.pop()
        try:
            with os.scandir(directory) as listing:
                children = sorted(listing, key=lambda item: item.name)
        except OSError:
            continue
        for child in children:
            seen += 1
            if child.is_symlink():
                continue
            if child.is_dir(follow_symlinks=False):
                if depth < MAX_DEPTH and not child.name.startswith(".") and child.name not in BOOKKEEPING:
                    pending.append((Path(child.path), depth + 1))
            elif child.name == f"{assignment}.ipynb":
                found.append(Path(directory))
    return sorted(found)
