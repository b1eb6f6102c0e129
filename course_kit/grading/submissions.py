"""Finding the submissions in a folder and naming their students.

``SUBMISSIONS`` is a folder holding, per student, either

* ``<name>.ipynb`` (a single notebook), or
* ``<name>/`` (a folder): its notebook is ``<name>/<ASSIGNMENT>.ipynb``, or the only
  ``.ipynb`` at the top of the folder; every other file in it (helper modules, small
  data) is copied next to the notebook, symbolic links excepted.

Student ids come from the file or folder name (:func:`student_id`): Unicode letters and
digits are kept, so ``José.ipynb`` and ``Josè.ipynb`` are two students. When two names
still make the same id (``Ana María`` and ``Ana_María``), the first in sorted order keeps
it and the others get a short, stable suffix from their own name; nobody stops the class.
The original name is kept in every row (``file_name``).

Nothing vanishes: a notebook whose name starts with a dot (``.bob.ipynb``) or has no stem
(``..ipynb``) is graded too, with a warning; bookkeeping folders (``.ipynb_checkpoints``,
``__MACOSX``) and files of other types are skipped and, when they hold notebooks, named in
a warning. A folder whose notebook cannot be determined becomes a submission with the
reason as its problem (graded ``invalid-notebook``). Sizes are read from the file system
before any file is read, so an oversized submission is refused without loading it.

Example:
    >>> student_id("Ana María (2).ipynb"), student_id("José.ipynb") != student_id("Josè.ipynb")
    ('Ana_María__2_', True)
"""
from __future__ import annotations

import hashlib
import os
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

MAX_FOLDER_BYTES = 100 * 1024**2
MAX_NOTEBOOK_BYTES = 50 * 1024**2
_IGNORED = {"__MACOSX", "__pycache__", ".ipynb_checkpoints", ".git", ".DS_Store"}


@dataclass
class Submission:
    """One student's work as bytes: the notebook and, for folder submissions, the other files.

    Attributes:
        student: the unique student id (a safe file name).
        source: the file or folder it came from.
        file_name: that file's or folder's own name, as the student named it.
    """

    student: str
    source: Path
    notebook_bytes: bytes | None = None
    files: dict[str, bytes] = field(default_factory=dict)
    problem: str | None = None
    file_name: str = ""

    def __post_init__(self):
        self.file_name = self.file_name or Path(self.source).name


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
    stem = name[:-len(".ipynb")] if name.endswith(".ipynb") else name
    cleaned = "".join(c if c.isalnum() or c in "._@+-" else "_" for c in stem).lstrip(".")[:100]
    if not cleaned.strip("._"):
        return f"submission-{hashlib.sha1(name.encode('utf-8')).hexdigest()[:6]}"
    return cleaned


def _suffixed(student: str, name: str) -> str:
    """The id of a second name that makes ``student`` too: stable, from the name itself."""
    return f"{student}~{hashlib.sha1(unicodedata.normalize('NFC', name).encode('utf-8')).hexdigest()[:6]}"


def _bookkeeping(path: Path) -> bool:
    return path.name in _IGNORED or path.is_symlink()


def _folder_size(folder: Path) -> int:
    """Bytes of the regular files under ``folder`` (hidden and bookkeeping folders, links excluded), by stat only."""
    total = 0
    for directory, subdirectories, names in os.walk(folder, followlinks=False):
        subdirectories[:] = [d for d in subdirectories if not d.startswith(".") and d not in _IGNORED]
        for name in names:
            path = Path(directory) / name
            try:
                info = path.lstat()
            except OSError:
                continue
            if not name.startswith(".") and path.is_file() and not path.is_symlink():
                total += info.st_size
    return total


def _read_notebook(path: Path) -> tuple[bytes | None, str | None]:
    size = path.stat().st_size
    if size > MAX_NOTEBOOK_BYTES:
        return None, f"{path.name} is {size / 1024**2:.0f} MB, more than the {MAX_NOTEBOOK_BYTES // 1024**2} MB allowed"
    return path.read_bytes(), None


def _from_folder(folder: Path, assignment: str, student: str) -> Submission:
    submission = Submission(student, folder)
    notebooks = sorted(p for p in folder.glob("*.ipynb") if p.is_file() and not p.is_symlink())
    preferred = folder / f"{assignment}.ipynb"
    if preferred in notebooks:
        chosen = preferred
    elif len(notebooks) == 1:
        chosen = notebooks[0]
    elif not notebooks:
        submission.problem = f"the folder {folder.name}/ contains no .ipynb notebook"
        return submission
    else:
        names = ", ".join(p.name for p in notebooks)
        submission.problem = (f"the folder {folder.name}/ contains several notebooks ({names}) and none is "
                              f"named {assignment}.ipynb")
        return submission
    size = _folder_size(folder)
    if size > MAX_FOLDER_BYTES:  # measured before anything is read
        submission.problem = (f"the folder {folder.name}/ holds {size / 1024**2:.0f} MB, more than the "
                              f"{MAX_FOLDER_BYTES // 1024**2} MB allowed")
        return submission
    submission.notebook_bytes, submission.problem = _read_notebook(chosen)
    if submission.problem:
        return submission
    for directory, subdirectories, names in os.walk(folder, followlinks=False):
        # Hidden and bookkeeping folders are not part of the work; links are never followed.
        subdirectories[:] = sorted(d for d in subdirectories if not d.startswith(".") and d not in _IGNORED)
        for name in sorted(names):
            path = Path(directory) / name
            if path == chosen or name.startswith(".") or path.is_symlink() or not path.is_file():
                continue
            submission.files[path.relative_to(folder).as_posix()] = path.read_bytes()
    return submission


def discover(path: str | Path, assignment: str, warn: Callable[[str], None] | None = None) -> list[Submission]:
    """All submissions under ``path`` (a folder, or one notebook), sorted by student id.

    Args:
        path: the submissions folder, or one ``.ipynb``.
        assignment: the notebook name a folder submission should contain.
        warn: receives one line per thing worth a look (renamed duplicates, hidden notebooks,
            skipped folders holding notebooks).

    Raises:
        ValueError: ``path`` does not exist.

    Example::

        for submission in discover("submissions/03_partial_freezing", "03_partial_freezing", warn=print):
            print(submission.student, submission.file_name, submission.problem or "ok")
    """
    warn = warn or (lambda message: None)
    root = Path(path)
    if root.is_file() and root.suffix == ".ipynb":
        data, problem = _read_notebook(root)
        return [Submission(student_id(root.name), root, data, problem=problem)]
    if not root.is_dir():
        raise ValueError(f"submissions folder {root} does not exist (give a folder of <student>.ipynb files "
                         f"or <student>/ folders, or one .ipynb)")
    found: dict[str, Submission] = {}
    for entry in sorted(root.iterdir(), key=lambda p: unicodedata.normalize("NFC", p.name)):
        if _bookkeeping(entry):
            continue
        is_notebook = entry.is_file() and entry.suffix == ".ipynb"
        if not (entry.is_dir() or is_notebook):
            continue
        if entry.is_dir() and entry.name.startswith("."):
            if any(entry.glob("*.ipynb")):
                warn(f"skipped the hidden folder {entry.name}/ although it holds notebooks; rename it to grade it")
            continue
        student = student_id(entry.name)
        if entry.name.startswith(".") or entry.name == ".ipynb":
            warn(f"{entry.name}: a hidden or nameless notebook, graded as student {student!r}")
        if student in found:
            renamed = _suffixed(student, entry.name)
            warn(f"{entry.name} and {found[student].file_name} both make the student id {student!r}: "
                 f"{entry.name} is graded as {renamed!r}")
            student = renamed
        if entry.is_dir():
            submission = _from_folder(entry, assignment, student)
        else:
            data, problem = _read_notebook(entry)
            submission = Submission(student, entry, data, problem=problem)
        found[student] = submission
    return [found[key] for key in sorted(found)]
