"""The grading commands' files: atomic replacement, spreadsheet-safe CSV, and reading the gradebook.

Every file ``course grade``, ``course export``, ``course feedback`` and ``course
autograder`` write goes through :func:`replacing` (or :func:`write_text` on top of it): the
new content is written to a temporary file next to the target, flushed to disk and renamed
over it, so a reader (or a run interrupted half-way) sees the old file or the new one,
never half of one.

Every CSV they write goes through :func:`csv_text` or :func:`csv_lines`, which pass each
cell through :func:`spreadsheet_safe`: student ids, file names, messages and roster fields
come from people, and a spreadsheet that opens the file must not run any of them as a
formula, whichever separator it splits the line at.

Example:
    >>> spreadsheet_safe("x;=1+1;y"), spreadsheet_safe(-1.5), spreadsheet_safe("-1.5")
    ("x;'=1+1;y", -1.5, '-1.5')
    >>> print(csv_text(["student", "points"], [{"student": "=HYPERLINK(1)", "points": 3}]), end="")
    student,points
    '=HYPERLINK(1),3
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

GRADES_JSON = "grades.json"
ROSTER_JSON = "roster-grades.json"

# A spreadsheet reads a cell starting with one of these as a formula (DDE included: =cmd|...).
_FORMULA_START = "=+-@"
# Where a spreadsheet may start a new cell when it splits a line its own way: a semicolon
# (many European locales), a comma, a tab, or a line break inside a quoted cell.
_SEPARATOR = re.compile(r"([,;\t\r\n])")
_NUMBER = re.compile(r"\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*")


class GradebookError(ValueError):
    """A gradebook file cannot be used (missing, unreadable, another assignment's); the message says why."""


# --------------------------------------------------------------------------- atomic files
def _umask() -> int:
    """The process's umask (reading it means setting it; it is set straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """A temporary path next to ``path``; what the block writes there replaces ``path`` when it ends.

    When the block raises, ``path`` is left as it was and the temporary file is removed.

    Example:
        >>> import tempfile
        >>> target = Path(tempfile.mkdtemp()) / "out.txt"
        >>> with replacing(target) as temporary:
        ...     _ = temporary.write_text("new")
        >>> target.read_text(), sorted(p.name for p in target.parent.iterdir())
        ('new', ['out.txt'])
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    temporary = Path(name)
    # mkstemp makes the file 0600; the result gets the mode of any file this user writes (0644 under
    # the usual umask), so a zip or a CSV can be copied, served or imported by another account.
    os.chmod(temporary, 0o666 & ~_umask())
    try:
        yield temporary
        with open(temporary, "rb+") as stream:  # on disk before the rename, so a crash never leaves an empty file
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str, encoding: str = "utf-8") -> None:
    """Replace ``path`` with ``text`` atomically (line endings written as they are in ``text``)."""
    with replacing(path) as temporary:
        with open(temporary, "w", encoding=encoding, newline="") as stream:
            stream.write(text)


# --------------------------------------------------------------------------- CSV
def spreadsheet_safe(value):
    """A CSV cell a spreadsheet will not run as a formula, wherever it splits the line.

    Numbers stay numbers (also as text: ``"-1.5"`` is a number, not a formula). In text, a
    ``'`` goes before every ``=``, ``+``, ``-`` or ``@`` that starts the text or follows a
    comma, semicolon, tab or line break (after optional spaces), since a spreadsheet set to
    another separator makes a new cell there. ``None`` is an empty cell.

    Example:
        >>> spreadsheet_safe("=1+1"), spreadsheet_safe("a,=cmd|' /C calc'!A0"), spreadsheet_safe(None)
        ("'=1+1", "a,'=cmd|' /C calc'!A0", '')
        >>> spreadsheet_safe("ok\\t@SUM(A1)"), spreadsheet_safe("x; -2"), spreadsheet_safe("a - b")
        ("ok\\t'@SUM(A1)", 'x; -2', 'a - b')
    """
    if value is None:
        return ""
    if not isinstance(value, str):
        return value
    return "".join(_safe_segment(part) for part in _SEPARATOR.split(value))


def _safe_segment(segment: str) -> str:
    stripped = segment.lstrip(" ")
    if not stripped or stripped[0] not in _FORMULA_START or _NUMBER.fullmatch(segment):
        return segment
    return segment[: len(segment) - len(stripped)] + "'" + stripped


def csv_text(columns: list[str], records: Iterable[dict], delimiter: str = ",") -> str:
    """A CSV file with a header and one line per record, its cells made :func:`spreadsheet_safe`.

    Keys of a record that are not in ``columns`` are ignored.
    ``delimiter`` separates the cells (``;`` where a locale's decimal mark is a comma); the
    cells are made safe for every separator all the same.

    Example:
        >>> print(csv_text(["a", "n"], [{"a": "@x", "n": -2, "b": 1}]), end="")
        a,n
        '@x,-2
    """
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n", delimiter=delimiter)
    writer.writeheader()
    for record in records:
        writer.writerow({key: spreadsheet_safe(value) for key, value in record.items()})
    return buffer.getvalue()


def csv_lines(rows: Iterable[Iterable], delimiter: str = ",") -> str:
    """A CSV file from lists of cells (the header is the first list), every cell made :func:`spreadsheet_safe`.

    ``delimiter`` separates the cells (Canvas's upload keeps its export's ``;``); the cells
    are made safe for every separator all the same.

    Example:
        >>> csv_lines([["email", "grade"], ["-bo@uni.edu", 5]])
        "email,grade\\n'-bo@uni.edu,5\\n"
        >>> csv_lines([["Student", "Lab"], ["Li, Bo", "6,67"], ["a,=1+1", "-1,5"]], delimiter=";")
        "Student;Lab\\nLi, Bo;6,67\\na,'=1+1;-1,5\\n"
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n", delimiter=delimiter)
    for row in rows:
        writer.writerow([spreadsheet_safe(cell) for cell in row])
    return buffer.getvalue()


# --------------------------------------------------------------------------- the gradebook
def read_json(path: Path, what: str) -> dict:
    """A JSON object from ``path``; :class:`GradebookError` naming ``what`` it should be when it is not one."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GradebookError(f"no {what} at {path}") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise GradebookError(f"{path} is not valid JSON ({error}); move it away or write it again") from None
    if not isinstance(data, dict):
        raise GradebookError(f"{path} is not a {what} (not a JSON object)")
    return data


def read_gradebook(out_dir: str | Path) -> dict:
    """``OUT_DIR/grades.json`` as written by ``course grade``: ``{"assignment", "checks", "rows"}``.

    Raises:
        GradebookError: the file is missing, not JSON, or has no list of rows.

    Example:
        >>> read_gradebook("/nonexistent")
        Traceback (most recent call last):
        ...
        course_kit.grading.files.GradebookError: no gradebook at /nonexistent/grades.json: run course grade ...
    """
    path = Path(out_dir) / GRADES_JSON
    if not path.exists():
        raise GradebookError(f"no gradebook at {path}: run course grade with --out {out_dir} first")
    data = read_json(path, "gradebook written by course grade")
    if not isinstance(data.get("rows"), list) or not all(isinstance(row, dict) for row in data["rows"]):
        raise GradebookError(f"{path} is not a gradebook written by course grade (no list of rows)")
    return data


def read_roster_view(out_dir: str | Path) -> dict | None:
    """``OUT_DIR/roster-grades.json`` (the gradebook matched to a roster), or None when there is none.

    Raises:
        GradebookError: the file exists but is not a roster view.
    """
    path = Path(out_dir) / ROSTER_JSON
    if not path.exists():
        return None
    data = read_json(path, "roster view written by --roster")
    if not isinstance(data.get("rows"), list):
        raise GradebookError(
            f"{path} is not a roster view written by --roster (no list of rows); apply the roster again"
        )
    return data
