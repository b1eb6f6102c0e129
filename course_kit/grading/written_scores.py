"""The written-answer scores file (``written-scores.csv``): reading it as TAs leave it, checking every line.

One line per student and question: ``student, question, points, comment``. A spreadsheet
may save it with ``;`` or ``,`` between cells, with a byte-order mark, with a decimal comma
(``1,5``) and with the ``'`` this kit puts before a cell that would start a formula; all
are read back as meant. Extra columns a TA adds are ignored.

:func:`read_lines` takes the file as it is (for a rerun of ``course answers collect`` to
carry every typed score over); :func:`checked_scores` refuses any line with a score outside
0..points, an unknown student or question, or a second line for one student and
question, each problem named by its line number, all of them at once.

Students may be named by id or, after an anonymous collection, by their opaque id
(``anon-...``: an HMAC of the id under the key in ``written/anonymous-key``).

Example:
    >>> lines = read_text("student;question;points;comment\\nana;q1;1,5;'=good\\n")
    >>> lines[0].line, lines[0].student, lines[0].points, lines[0].comment
    (2, 'ana', '1,5', "'=good")
    >>> parse_points("1,5"), parse_points(" 2 "), parse_points("")
    (1.5, 2, None)
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import secrets
from dataclasses import dataclass
from pathlib import Path

from .canvas import detect_separator
from .files import write_text

SCORES_CSV = "written-scores.csv"
REVIEW_DIR = "written"
KEY_FILE = "anonymous-key"
SCORE_COLUMNS = ["student", "question", "points", "comment"]


class ScoresError(ValueError):
    """The scores file cannot be used; the message names each bad line and what to fix."""


@dataclass(frozen=True)
class Line:
    """One line of the scores file as typed (``line`` is its number in the file, the header being 1)."""

    line: int
    student: str
    question: str
    points: str
    comment: str


@dataclass(frozen=True)
class Score:
    """One checked score: a known student (by id) and question, points in range (None: not scored yet)."""

    line: int
    student: str
    question: str
    points: float | None
    comment: str


# --------------------------------------------------------------------------- anonymous ids
def opaque_id(student: str, key: str) -> str:
    """A student's stable anonymous id under ``key`` (not derivable from the id without the key).

    Example:
        >>> opaque_id("ana", "k") == opaque_id("ana", "k") != opaque_id("ana", "another key")
        True
    """
    return "anon-" + hmac.new(key.encode(), student.encode(), hashlib.sha256).hexdigest()[:10]


def anonymous_key(grades_dir: Path, create: bool = False) -> str | None:
    """The gradebook's anonymisation key (made on first use when ``create``), or None when there is none."""
    path = Path(grades_dir) / REVIEW_DIR / KEY_FILE
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    if not create:
        return None
    key = secrets.token_hex(16)
    write_text(path, key + "\n")
    return key


def student_names(grades_dir: Path, students) -> dict[str, str]:
    """``{name a line may use: student}``: every id, and its opaque id once an anonymous collection ran."""
    names = {student: student for student in students}
    key = anonymous_key(grades_dir)
    if key:
        names.update({opaque_id(student, key): student for student in students})
    return names


# --------------------------------------------------------------------------- reading
def _plain(cell: str | None) -> str:
    """A cell as typed, without the ``'`` :func:`~course_kit.grading.files.spreadsheet_safe` put before a formula."""
    text = (cell or "").strip()
    return text[1:] if len(text) > 1 and text[0] == "'" and text[1] in "=+-@" else text


def read_text(text: str, source: str = "written-scores.csv") -> list[Line]:
    """The lines of a scores file's text (header checked, blank lines skipped).

    Raises:
        ScoresError: the header lacks ``student``, ``question`` or ``points``.
    """
    text = text.removeprefix("\ufeff")
    reader = csv.reader(io.StringIO(text), delimiter=detect_separator(text) if text.strip() else ",")
    rows = list(reader)
    header = [cell.strip().casefold() for cell in rows[0]] if rows else []
    missing = [column for column in SCORE_COLUMNS[:3] if column not in header]
    if missing:
        raise ScoresError(
            f"{source} line 1: the header needs the columns {', '.join(SCORE_COLUMNS)} "
            f"(missing: {', '.join(missing)}); write it again with course answers collect"
        )
    where = {column: header.index(column) for column in SCORE_COLUMNS if column in header}
    lines = []
    for number, cells in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in cells):
            continue
        value = {column: (cells[index] if index < len(cells) else "") for column, index in where.items()}
        lines.append(
            Line(
                number,
                _plain(value["student"]),
                _plain(value["question"]),
                value["points"].strip(),
                (value.get("comment") or "").strip(),
            )
        )
    return lines


def read_lines(path: Path) -> list[Line]:
    """The lines of the scores file at ``path`` (see :func:`read_text`)."""
    try:
        return read_text(Path(path).read_text(encoding="utf-8-sig"), str(path))
    except UnicodeDecodeError:
        raise ScoresError(f"{path} is not UTF-8 text: save it from the spreadsheet as CSV UTF-8") from None


def parse_points(text: str) -> float | int | None:
    """A typed score as a number (a decimal comma read as a point), None when empty.

    Raises:
        ValueError: the text is not a number.
    """
    text = text.strip().replace(",", ".")
    if not text:
        return None
    number = float(text)
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError(text)
    return int(number) if number.is_integer() and "." not in text else number


def checked_scores(
    lines: list[Line], names: dict[str, str], points: dict[str, float], source: str = "written-scores.csv"
) -> list[Score]:
    """The lines as :class:`Score` s, every line checked; all problems raised together by line number.

    Args:
        names: ``{name a line may use: student id}`` (see :func:`student_names`).
        points: ``{question id: its points}``.

    Raises:
        ScoresError: any line names an unknown student or question, repeats a student and
            question, or has a score that is not a number in 0..points.

    Example:
        >>> lines = read_text("student,question,points,comment\\nana,q1,3,\\nbo,q9,,\\nana,q1,1,")
        >>> checked_scores(lines, {"ana": "ana", "bo": "bo"}, {"q1": 2})
        Traceback (most recent call last):
        ...
        course_kit.grading.written_scores.ScoresError: written-scores.csv has 3 bad line(s), nothing was merged:
          line 2: score 3 for q1 is outside 0..2
          line 3: unknown question 'q9' (the questions: q1)
          line 4: a second line for ana and q1 (the first is line 2); keep one
    """
    problems, scores, first = [], [], {}
    for item in lines:
        student = names.get(item.student)
        problem = None
        if student is None:
            problem = f"unknown student {item.student!r} (not in the gradebook)"
        elif item.question not in points:
            problem = f"unknown question {item.question!r} (the questions: {', '.join(points)})"
        elif (student, item.question) in first:
            problem = (
                f"a second line for {item.student} and {item.question} (the first is line "
                f"{first[student, item.question]}); keep one"
            )
        if problem is None:
            first[student, item.question] = item.line
            try:
                value = parse_points(item.points)
            except ValueError:
                problem = f"score {item.points!r} for {item.question} is not a number"
            else:
                if value is not None and not 0 <= value <= points[item.question]:
                    problem = f"score {item.points} for {item.question} is outside 0..{points[item.question]:g}"
        if problem:
            problems.append(f"  line {item.line}: {problem}")
        else:
            scores.append(Score(item.line, student, item.question, value, item.comment))
    if problems:
        raise ScoresError(f"{source} has {len(problems)} bad line(s), nothing was merged:\n" + "\n".join(problems))
    return scores
