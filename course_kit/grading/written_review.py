"""Collecting written answers after ``course grade``: review pages per question and a scores file for TAs.

Reads ``GRADES_DIR/grades.json`` and each student's executed notebook
(``executed/<student>.ipynb``), finds the cells marked as written answers
(:mod:`course_kit.written`) and writes, under ``GRADES_DIR/written/``:

* ``<question>.html``: every student's answer to that question side by side, with the
  question, its rubric and the model answer beside them. Student text is shown as escaped
  text (never rendered), and the page carries a policy that runs no script and loads
  nothing, so an answer can hold any characters at all.
* ``questions.json``: the questions with their points (what ``course answers merge`` checks
  scores against).
* ``GRADES_DIR/written-scores.csv``: one line per student and question (``student,
  question, points, comment``, points empty) for TAs to fill in a spreadsheet. A rerun
  keeps every score and comment already in it (and those already merged into the
  gradebook); a filled line it cannot place any more stops the run instead of being lost.

With ``anonymous`` the pages and the scores file name students by opaque ids
(``anon-<10 hex>``, an HMAC of the student id under a key kept in ``written/anonymous-key``,
so they stay the same on every rerun) and each page lists answers in an order shuffled
with ``seed``.

Example::

    course answers collect grades/00 --assignment 00_toy --anonymous --seed 7
"""

from __future__ import annotations

import html
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from ..written import Question, WrittenError, answers_in, questions_in
from .feedback import POLICY, safe_file_name
from .files import GradebookError, csv_text, read_gradebook, write_text
from .written_scores import (
    REVIEW_DIR,
    SCORE_COLUMNS,
    SCORES_CSV,
    ScoresError,
    anonymous_key,
    opaque_id,
    read_lines,
    student_names,
)

QUESTIONS_JSON = "questions.json"
NO_CELL = "(no answer cell: the question's cell was deleted or its mark removed)"
NO_NOTEBOOK = "(no executed notebook: see the student's status in the gradebook)"
BLANK = "(left blank)"

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #222; }
.layout { display: grid; grid-template-columns: minmax(16rem, 1fr) 3fr; gap: 1.5rem; align-items: start; }
.key { position: sticky; top: 1rem; background: #f6f6f0; padding: .8rem; border-radius: .4rem; }
.answers { display: grid; grid-template-columns: repeat(auto-fill, minmax(22rem, 1fr)); gap: 1rem; }
.answer { border: 1px solid #ccc; border-radius: .4rem; padding: .6rem; }
.text { white-space: pre-wrap; overflow-wrap: anywhere; font-family: inherit; margin: .3rem 0; }
.who { font-weight: 600; font-family: monospace; } .none { color: #888; font-style: italic; }
.score { color: #17641b; font-size: .9rem; }
"""


@dataclass
class Collected:
    """The written answers of one gradebook: questions, and per student each answer (None: no cell)."""

    assignment: str
    questions: list[Question]
    answers: dict[str, dict[str, str | None]] = field(default_factory=dict)
    no_notebook: set[str] = field(default_factory=set)


def solution_questions(solution: Path) -> list[Question]:
    """The written questions of a solution notebook.

    Raises:
        WrittenError: the notebook is missing, has no written questions, or marks one wrongly.
    """
    import nbformat

    if not Path(solution).is_file():
        raise WrittenError(f"no solution notebook at {solution}: pass --solutions DIR (the folder holding it)")
    asked = questions_in(nbformat.read(str(solution), as_version=4), Path(solution).stem)
    if not asked:
        raise WrittenError(
            f"{solution} has no written questions (Markdown cells with metadata "
            f"course: {{question: ID, points: N}}); nothing to collect"
        )
    return asked


def collect(grades_dir: Path, solution: Path) -> Collected:
    """Every graded student's written answers, read from their executed notebooks.

    Raises:
        GradebookError: no gradebook, or one for another assignment.
        WrittenError: see :func:`solution_questions`.
    """
    import nbformat

    data = read_gradebook(grades_dir)
    name = Path(solution).stem
    if data.get("assignment") != name:
        raise GradebookError(
            f"{grades_dir} holds grades for {data.get('assignment')!r}, not {name!r}: "
            f"pass --assignment {data.get('assignment')}"
        )
    result = Collected(name, solution_questions(solution))
    for row in data["rows"]:
        student = row["student"]
        executed = Path(grades_dir) / "executed" / f"{student}.ipynb"
        try:
            notebook = nbformat.read(str(executed), as_version=4)
        except (OSError, ValueError):  # not executed (invalid, parameters missing) or unreadable
            result.no_notebook.add(student)
            notebook = nbformat.v4.new_notebook()
        result.answers[student] = answers_in(notebook, result.questions)
    return result


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _answer_html(collected: Collected, student: str, qid: str) -> str:
    answer = collected.answers[student][qid]
    if answer:
        return f'<div class="text">{_e(answer)}</div>'
    reason = NO_NOTEBOOK if student in collected.no_notebook else NO_CELL if answer is None else BLANK
    return f'<div class="none">{_e(reason)}</div>'


def review_page(
    collected: Collected, asked: Question, order: list[tuple[str, str]], scores: dict[tuple[str, str], tuple[str, str]]
) -> str:
    """One question's review page: the key (question, rubric, model answer) beside every answer.

    Args:
        order: ``(student, label)`` in the order to show them; ``label`` is what the page calls them.
        scores: ``{(student, question): (points, comment)}`` already filled in.
    """
    kind = "prediction, made before the run" if asked.kind == "prediction" else "explanation"
    cards = []
    for student, label in order:
        points, comment = scores.get((student, asked.id), ("", ""))
        given = (
            f'<div class="score">scored {_e(points)} / {asked.points:g}{": " + _e(comment) if comment else ""}</div>'
            if points
            else ""
        )
        cards.append(
            f'<section class="answer"><div class="who">{_e(label)}</div>'
            f"{_answer_html(collected, student, asked.id)}{given}</section>"
        )
    title = f"{collected.assignment}: {asked.id}"
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{POLICY}">',
            f"<title>{_e(title)}</title><style>{STYLE}</style></head><body>",
            f"<h1>{_e(title)} ({asked.points:g} points, {kind})</h1>",
            '<div class="layout"><aside class="key">',
            f'<h2>Question</h2><div class="text">{_e(asked.prompt)}</div>',
            f'<h2>Rubric</h2><div class="text">{_e(asked.rubric)}</div>',
            f'<h2>Model answer</h2><div class="text">{_e(asked.model_answer)}</div>',
            f"</aside><main><p>{len(order)} answer(s)</p>",
            '<div class="answers">',
            *cards,
            "</div></main></div></body></html>",
            "",
        ]
    )


def page_order(students: list[str], qid: str, key: str | None, seed: int) -> list[tuple[str, str]]:
    """``(student, label)`` for one page: by id, or (with a key) shuffled by ``seed`` under opaque labels.

    Example:
        >>> page_order(["b", "a"], "q1", None, 0)
        [('a', 'a'), ('b', 'b')]
        >>> sorted(label for _, label in page_order(["b", "a"], "q1", "k", 0)) == sorted(
        ...     [opaque_id("a", "k"), opaque_id("b", "k")])
        True
    """
    if key is None:
        return [(student, student) for student in sorted(students)]
    order = [(student, opaque_id(student, key)) for student in sorted(students)]
    random.Random(f"{seed}:{qid}").shuffle(order)  # its own order per question: no position to recognise
    return order


def _number(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def carried_scores(grades_dir: Path, students: list[str], asked: list[Question]) -> dict[tuple[str, str], tuple]:
    """``{(student, question): (points, comment)}`` already given: merged into the gradebook, then typed in the file.

    Raises:
        ScoresError: the scores file has a filled line for a student or question this
            collection does not have, or two different filled lines for one; nothing is lost.
    """
    qids = {q.id for q in asked}
    known: dict[tuple[str, str], tuple] = {}
    for row in read_gradebook(grades_dir)["rows"]:
        for qid, item in (row.get("written") or {}).items():
            if qid in qids and (item.get("points") is not None or item.get("comment")):
                given = "" if item.get("points") is None else _number(item["points"])
                known[row["student"], qid] = (given, item.get("comment") or "")
    path = Path(grades_dir) / SCORES_CSV
    if not path.exists():
        return known
    names, problems, typed = student_names(grades_dir, students), [], {}
    for line in read_lines(path):
        if not (line.points or line.comment):
            continue
        student = names.get(line.student)
        key = (student, line.question)
        if student is None or line.question not in qids:
            problems.append(f"line {line.line}: {line.student} / {line.question} is not in this collection")
        elif key in typed and typed[key][1] != (line.points, line.comment):
            problems.append(
                f"line {line.line}: a second, different score for {line.student} / {line.question} "
                f"(line {typed[key][0]})"
            )
        else:
            typed[key] = (line.line, (line.points, line.comment))
    if problems:
        raise ScoresError(
            f"{path} holds scores this collection cannot keep, so it was left as it is:\n  "
            + "\n  ".join(problems)
            + "\nfix those lines, or move the file away to start a new one"
        )
    known.update({key: value for key, (_, value) in typed.items()})
    return known


def write_review(grades_dir: Path, solution: Path, anonymous: bool = False, seed: int = 0, say=print) -> Collected:
    """Collect the written answers and write the review pages, ``questions.json`` and the scores file.

    Raises:
        GradebookError, WrittenError, ScoresError: nothing usable to collect, or a scores
            file whose typed scores would be lost (see :func:`carried_scores`).
    """
    grades_dir = Path(grades_dir)
    collected = collect(grades_dir, solution)
    students = sorted(collected.answers)
    scores = carried_scores(grades_dir, students, collected.questions)  # before anything is written
    key = anonymous_key(grades_dir, create=True) if anonymous else None
    out = grades_dir / REVIEW_DIR
    for asked in collected.questions:
        order = page_order(students, asked.id, key, seed)
        write_text(out / f"{safe_file_name(asked.id)}.html", review_page(collected, asked, order, scores))
    write_text(
        out / QUESTIONS_JSON,
        json.dumps(
            {
                "assignment": collected.assignment,
                "questions": [{"id": q.id, "points": q.points, "kind": q.kind} for q in collected.questions],
            },
            indent=1,
        )
        + "\n",
    )
    label = {student: opaque_id(student, key) if key else student for student in students}
    records = [
        {
            "student": label[student],
            "question": q.id,
            "points": scores.get((student, q.id), ("", ""))[0],
            "comment": scores.get((student, q.id), ("", ""))[1],
        }
        for student in sorted(students, key=label.get)
        for q in collected.questions
    ]
    write_text(grades_dir / SCORES_CSV, csv_text(SCORE_COLUMNS, records))
    say(
        f"wrote {len(collected.questions)} review page(s) to {out} and {grades_dir / SCORES_CSV} "
        f"({len(students)} student(s), {sum(1 for r in records if r['points'] != '')} score(s) kept)"
    )
    return collected
