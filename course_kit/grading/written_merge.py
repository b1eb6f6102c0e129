"""Merging a filled ``written-scores.csv`` into the gradebook: per-question columns, totals, ``pending``.

Every line is checked first (:func:`~course_kit.grading.written_scores.checked_scores`);
one bad line and nothing is written. Then each gradebook row gets:

* ``written``: ``{question: {"points", "max_points", "comment"}}`` (``points`` None until scored),
  shown in ``grades.csv`` as one ``written:<question>`` column each;
* ``automatic_points`` / ``automatic_max_points``: what ``course grade`` gave, kept apart
  the first time, so merging again never adds the written points twice;
* ``points`` / ``max_points``: automatic + written, the fields every reader of the gradebook
  (``course export``, ``course feedback``) already uses;
* ``written_status``: ``pending`` while any question has no score, else ``complete``.

A merge only adds: a line left empty keeps the score merged before, so TAs may each merge
the file with their own questions filled in. A row ``course grade`` writes anew (a changed
submission) starts again from its new automatic points and gets its written scores at the
next merge.

Example:
    >>> row = {"student": "ana", "points": 4, "max_points": 6}
    >>> merged = merged_row(row, {"q1": 2, "q2": 3}, {"q1": (2, "clear")})
    >>> merged["points"], merged["max_points"], merged["written_status"], merged["written"]["q2"]["points"]
    (6, 11, 'pending', None)
    >>> merged_row(merged, {"q1": 2, "q2": 3}, {"q2": (3, "")})["points"]
    9
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from .files import GradebookError, read_gradebook, read_json, write_text
from .gradebook import Gradebook, render_feedback
from .written_scores import REVIEW_DIR, checked_scores, read_lines, student_names

PENDING, COMPLETE = "pending", "complete"


def merged_row(row: dict, points: dict[str, float], scores: dict[str, tuple]) -> dict:
    """A gradebook row with the written ``scores`` (``{question: (points or None, comment)}``) merged in.

    What was merged before stays wherever ``scores`` leaves the points (or the comment) empty.
    """
    automatic = row.get("automatic_points", row.get("points") or 0)
    automatic_max = row.get("automatic_max_points", row.get("max_points") or 0)
    before = row.get("written") or {}
    written = {}
    for qid, most in points.items():
        old = before.get(qid) or {}
        new_points, new_comment = scores.get(qid, (None, ""))  # an empty cell keeps what was merged before
        written[qid] = {
            "points": old.get("points") if new_points is None else new_points,
            "max_points": most,
            "comment": new_comment or old.get("comment") or "",
        }
    manual = sum(item["points"] for item in written.values() if item["points"] is not None)
    pending = any(item["points"] is None for item in written.values())
    return dict(
        row,
        automatic_points=automatic,
        automatic_max_points=automatic_max,
        written=written,
        written_status=PENDING if pending else COMPLETE,
        points=automatic + manual,
        max_points=automatic_max + sum(points.values()),
    )


def question_points(grades_dir: Path) -> dict[str, float]:
    """``{question: points}`` from ``written/questions.json``, written by ``course answers collect``."""
    data = read_json(
        Path(grades_dir) / REVIEW_DIR / "questions.json", "list of written questions (run course answers collect first)"
    )
    return {item["id"]: item["points"] for item in data.get("questions", [])}


def _metric_keys(grades_dir: Path) -> list[str]:
    """The metric columns ``grades.csv`` has (grades.json does not list them), so rewriting it keeps them."""
    path = Path(grades_dir) / "grades.csv"
    if not path.exists():
        return []
    header = path.read_text(encoding="utf-8").split("\n", 1)[0].split(",")
    return [column.removeprefix("metric:") for column in header if column.startswith("metric:")]


def merge(grades_dir: Path, scores_path: Path, say=print) -> dict[str, int]:
    """Check ``scores_path`` and merge it into ``GRADES_DIR``'s gradebook; returns counts for the summary.

    Raises:
        GradebookError: no gradebook, or no ``course answers collect`` before.
        ScoresError: a bad line (every one named by its number); nothing was written.
    """
    grades_dir = Path(grades_dir)
    data = read_gradebook(grades_dir)
    points = question_points(grades_dir)
    if not points:
        raise GradebookError(f"{grades_dir / REVIEW_DIR / 'questions.json'} lists no questions")
    rows = {row["student"]: row for row in data["rows"]}
    scores = checked_scores(read_lines(scores_path), student_names(grades_dir, rows), points, str(scores_path))
    given: dict[str, dict[str, tuple]] = {}
    for score in scores:
        if score.points is not None or score.comment:
            given.setdefault(score.student, {})[score.question] = (score.points, score.comment)
    merged = {student: merged_row(row, points, given.get(student, {})) for student, row in rows.items()}
    checks = [
        SimpleNamespace(**{key: item.get(key) for key in ("name", "title", "points", "exercise")})
        for item in data.get("checks", [])
    ]
    book = Gradebook(grades_dir, data["assignment"], checks, _metric_keys(grades_dir))
    book.rows = merged
    book.save()
    for student, row in merged.items():  # feedback/<student>.md, as course grade writes it, now with the scores
        write_text(grades_dir / "feedback" / f"{student}.md", render_feedback(row, row.get("check_results") or []))
    pending = sum(1 for row in merged.values() if row["written_status"] == PENDING)
    say(
        f"merged {sum(len(v) for v in given.values())} score(s) into {grades_dir / 'grades.json'}: "
        f"{len(merged) - pending} student(s) complete, {pending} pending"
    )
    if (grades_dir / "roster-grades.json").exists():
        say("roster-grades.json predates these scores: pass --roster ROSTER.csv to course export to apply it again")
    return {"scores": sum(len(v) for v in given.values()), "pending": pending, "students": len(merged)}
