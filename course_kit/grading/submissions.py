"""Finding the submissions in a folder and naming their students.

``SUBMISSIONS`` is a folder holding, per student, either

* ``<student id>.ipynb`` (a single notebook), or
* ``<student id>/`` (a folder): its notebook is ``<student id>/<NAME>.ipynb``, or the only
  ``.ipynb`` at the top of the folder; every other file in it (helper modules, small
  data) is copied next to the notebook, symbolic links excepted.

Hidden entries (``.ipynb_checkpoints``, ``.DS_Store``), ``__MACOSX`` and files of other
types are ignored. ``SUBMISSIONS`` may also be a single ``.ipynb`` file. A folder whose
notebook cannot be determined still becomes a submission, with the reason as its problem
(graded ``invalid-notebook``), so it shows up in the gradebook instead of vanishing.

Example:
    >>> student_id("Ana María (2).ipynb")
    'Ana_Mar_a__2_'
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

MAX_FOLDER_BYTES = 100 * 1024**2
_IGNORED = {"__MACOSX", "__pycache__"}


@dataclass
class Submission:
    """One student's work as bytes: the notebook and, for folder submissions, the other files."""

    student: str
    source: Path
    notebook_bytes: bytes | None = None
    files: dict[str, bytes] = field(default_factory=dict)
    problem: str | None = None


def student_id(name: str) -> str:
    """A file-name-safe student id from a file or folder name (extension ``.ipynb`` dropped).

    Example:
        >>> student_id("s1234567.ipynb"), student_id("jane.doe@uni")
        ('s1234567', 'jane.doe@uni')
    """
    stem = name[:-len(".ipynb")] if name.endswith(".ipynb") else name
    return re.sub(r"[^A-Za-z0-9._@+-]", "_", stem) or "_"


def _skip(path: Path) -> bool:
    return path.name.startswith(".") or path.name in _IGNORED or path.is_symlink()


def _from_folder(folder: Path, assignment: str) -> Submission:
    submission = Submission(student_id(folder.name), folder)
    notebooks = sorted(p for p in folder.glob("*.ipynb") if not _skip(p) and p.is_file())
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
    submission.notebook_bytes = chosen.read_bytes()
    total = len(submission.notebook_bytes)
    for directory, subdirectories, names in os.walk(folder, followlinks=False):
        # Hidden and bookkeeping folders are not part of the work; links are never followed.
        subdirectories[:] = sorted(d for d in subdirectories if not d.startswith(".") and d not in _IGNORED)
        for name in sorted(names):
            path = Path(directory) / name
            if path == chosen or name.startswith(".") or path.is_symlink() or not path.is_file():
                continue
            data = path.read_bytes()
            total += len(data)
            if total > MAX_FOLDER_BYTES:
                submission.problem = f"the folder {folder.name}/ is larger than {MAX_FOLDER_BYTES // 1024**2} MB"
                submission.notebook_bytes, submission.files = None, {}
                return submission
            submission.files[path.relative_to(folder).as_posix()] = data
    return submission


def discover(path: str | Path, assignment: str) -> list[Submission]:
    """All submissions under ``path`` (a folder, or one notebook), sorted by student id.

    Raises ``ValueError`` when ``path`` does not exist or two entries map to one student id.

    Example::

        for submission in discover("submissions/03_partial_freezing", "03_partial_freezing"):
            print(submission.student, submission.problem or "ok")
    """
    root = Path(path)
    if root.is_file() and root.suffix == ".ipynb":
        return [Submission(student_id(root.name), root, root.read_bytes())]
    if not root.is_dir():
        raise ValueError(f"submissions folder {root} does not exist (give a folder of <student>.ipynb files "
                         f"or <student>/ folders, or one .ipynb)")
    found: dict[str, Submission] = {}
    for entry in sorted(root.iterdir()):
        if _skip(entry):
            continue
        if entry.is_dir():
            submission = _from_folder(entry, assignment)
        elif entry.is_file() and entry.suffix == ".ipynb":
            submission = Submission(student_id(entry.name), entry, entry.read_bytes())
        else:
            continue
        if submission.student in found:
            raise ValueError(f"{found[submission.student].source.name} and {entry.name} both belong to student id "
                             f"{submission.student!r}: keep one of them")
        found[submission.student] = submission
    return [found[key] for key in sorted(found)]
