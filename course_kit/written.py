"""Written questions: Markdown cells a person grades, marked in the notebooks by their metadata.

A written answer is a Markdown cell whose metadata says which question it answers and
what it is worth (like nbgrader's manually graded answer cells, with the kit's own key)::

    {"course": {"question": "budget_gap", "points": 2}}                  # an explanation
    {"course": {"question": "predict_gap", "points": 1, "kind": "prediction"}}

In the *solution* notebook the cell holds the question, then a model answer between
``### BEGIN SOLUTION`` / ``### END SOLUTION`` and what earns each point between
``### BEGIN RUBRIC`` / ``### END RUBRIC``. ``course release`` turns the model answer into
``YOUR ANSWER HERE`` (as for every Markdown solution) and drops the rubric whole, so the
student notebook holds the question and the placeholder only. A ``prediction`` is asked
before an experiment runs; the review page says so.

Grading reads the same metadata in a submitted notebook (:func:`answers_in`), and takes as
the student's answer what the cell holds beyond the released question text.

Example:
    >>> import nbformat
    >>> cell = nbformat.v4.new_markdown_cell(
    ...     "**Q1.** Why?\\n### BEGIN SOLUTION\\nBecause.\\n### END SOLUTION\\n"
    ...     "### BEGIN RUBRIC\\n1 point: says because.\\n### END RUBRIC",
    ...     metadata={"course": {"question": "q1", "points": 1}})
    >>> [question] = questions_in(nbformat.v4.new_notebook(cells=[cell]))
    >>> question.id, question.points, question.prompt, question.model_answer, question.rubric
    ('q1', 1, '**Q1.** Why?', 'Because.', '1 point: says because.')
    >>> strip_rubric(cell.source)
    '**Q1.** Why?\\n### BEGIN SOLUTION\\nBecause.\\n### END SOLUTION'
    >>> answer_text("**Q1.** Why?\\nIt overfits.", question)
    'It overfits.'
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SOLUTION_BEGIN, SOLUTION_END = "### BEGIN SOLUTION", "### END SOLUTION"
RUBRIC_BEGIN, RUBRIC_END = "### BEGIN RUBRIC", "### END RUBRIC"
PLACEHOLDER = "YOUR ANSWER HERE"
KINDS = ("explanation", "prediction")
# Question ids name files (review pages) and gradebook columns (written:<id>): keep them plain.
_QUESTION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_REGION = re.compile(r"^\s*(### (?:BEGIN|END) (?:SOLUTION|RUBRIC))\s*$")


class WrittenError(ValueError):
    """A written question is marked wrongly (the message names the notebook, the cell and the fix)."""


@dataclass(frozen=True)
class Question:
    """One written question of a solution notebook: its mark, the question's text, model answer and rubric."""

    id: str
    points: float
    kind: str
    prompt: str  # the cell's text before the model answer (what the student sees above the placeholder)
    model_answer: str
    rubric: str
    after: str = ""  # released text after the placeholder, if the question continues below it
    cell: int = -1


def mark(cell) -> dict | None:
    """The ``course`` metadata of a written-answer cell, or None for any other cell.

    Example:
        >>> import nbformat
        >>> mark(nbformat.v4.new_markdown_cell("x", metadata={"course": {"question": "q", "points": 2}}))
        {'question': 'q', 'points': 2}
        >>> mark(nbformat.v4.new_code_cell("x", metadata={"course": {"exercise": "squares"}})) is None
        True
    """
    course = cell.get("metadata", {}).get("course")
    if not isinstance(course, dict) or "question" not in course:
        return None
    return course


def _regions(source: str, where: str) -> dict[str, list[str]]:
    """The cell's lines sorted into ``before`` (the question), ``solution``, ``rubric`` and ``after``."""
    parts: dict[str, list[str]] = {"before": [], "solution": [], "rubric": [], "after": []}
    state, seen = "before", set()
    for number, line in enumerate(source.splitlines(), start=1):
        match = _REGION.match(line)
        if not match:
            parts[state].append(line)
            continue
        marker = match.group(1)
        region = "solution" if marker.endswith("SOLUTION") else "rubric"
        opening = "BEGIN" in marker
        if opening and state in ("solution", "rubric"):
            raise WrittenError(f"{where} line {number}: '{marker}' inside the {state} region; close it first.")
        if opening and region in seen:
            raise WrittenError(f"{where} line {number}: a second {region} region; a question has one of each.")
        if not opening and state != region:
            raise WrittenError(f"{where} line {number}: '{marker}' without its BEGIN line.")
        seen.add(region)
        state = region if opening else "after"
    if state in ("solution", "rubric"):
        raise WrittenError(f"{where}: the {state} region is never closed (add '### END {state.upper()}').")
    return parts


def _text(lines: list[str]) -> str:
    return "\n".join(lines).strip("\n")


def question(cell, index: int = -1, where: str = "notebook") -> Question:
    """The :class:`Question` a solution notebook's marked cell asks (its mark and its regions checked).

    Raises:
        WrittenError: the mark or the regions are wrong; the message names ``where`` and the cell.
    """
    where = f"{where} cell {index}"
    course = mark(cell)
    if cell.get("cell_type") != "markdown":
        raise WrittenError(
            f"{where}: a written question must be a Markdown cell (it is a {cell.get('cell_type')} "
            f"cell); put the question and its answer in Markdown."
        )
    qid, points, kind = course.get("question"), course.get("points"), course.get("kind", "explanation")
    if not isinstance(qid, str) or not _QUESTION_ID.fullmatch(qid):
        raise WrittenError(
            f"{where}: question id {qid!r} must be 1-64 letters, digits, '_', '.' or '-', "
            f"starting with a letter or digit."
        )
    if isinstance(points, bool) or not isinstance(points, (int, float)) or not 0 < points <= 1000:
        raise WrittenError(f"{where}: question {qid!r} needs 'points', a number above 0 (got {points!r}).")
    if kind not in KINDS:
        raise WrittenError(f"{where}: question {qid!r} has kind {kind!r}; use one of {', '.join(KINDS)}.")
    parts = _regions(cell.get("source", ""), where)
    if not _text(parts["solution"]) or not _text(parts["rubric"]):
        raise WrittenError(
            f"{where}: question {qid!r} needs a model answer ({SOLUTION_BEGIN} ... {SOLUTION_END}) "
            f"and a rubric ({RUBRIC_BEGIN} ... {RUBRIC_END}) in the solution notebook."
        )
    return Question(
        qid,
        points,
        kind,
        _text(parts["before"]),
        _text(parts["solution"]),
        _text(parts["rubric"]),
        _text(parts["after"]),
        index,
    )


def questions_in(notebook, name: str = "notebook") -> list[Question]:
    """Every written question of a solution notebook, in notebook order (ids unique).

    Raises:
        WrittenError: a marked cell is wrong, or two cells claim one question id.
    """
    found: list[Question] = []
    for index, cell in enumerate(notebook.cells):
        if mark(cell) is None:
            continue
        item = question(cell, index, name)
        clash = next((q for q in found if q.id == item.id), None)
        if clash:
            raise WrittenError(
                f"{name} cells {clash.cell} and {index} both mark question {item.id!r}; give each question its own id."
            )
        found.append(item)
    return found


def strip_rubric(source: str, where: str = "cell") -> str:
    """The cell's text without its rubric region (markers included); the rest unchanged.

    Example:
        >>> strip_rubric("Q?\\n### BEGIN RUBRIC\\n2: both\\n### END RUBRIC\\nmore")
        'Q?\\nmore'
    """
    if RUBRIC_BEGIN not in source:
        return source
    out, inside = [], False
    for number, line in enumerate(source.splitlines(), start=1):
        match = _REGION.match(line)
        if match and match.group(1) in (RUBRIC_BEGIN, RUBRIC_END):
            if (match.group(1) == RUBRIC_BEGIN) == inside:
                raise WrittenError(f"{where} line {number}: unpaired '{match.group(1)}'.")
            inside = not inside
        elif not inside:
            out.append(line)
    if inside:
        raise WrittenError(f"{where}: '{RUBRIC_BEGIN}' is never closed by '{RUBRIC_END}'.")
    return "\n".join(out)


def answer_text(source: str, asked: Question) -> str:
    """What a student wrote in a written-answer cell: the cell without the released question text.

    The released cell is the prompt, ``YOUR ANSWER HERE`` and any text after it; a student
    replaces the placeholder. The prompt and the trailing text are removed when the cell
    still starts (ends) with them; an untouched placeholder is no answer (``""``).

    Example:
        >>> q = Question("q", 1, "explanation", "Why?", "m", "r")
        >>> answer_text("Why?\\nYOUR ANSWER HERE", q), answer_text("Why? I think so.", q), answer_text("Because", q)
        ('', 'I think so.', 'Because')
    """
    text = source.strip()
    if asked.prompt and text.startswith(asked.prompt):
        text = text[len(asked.prompt) :]
    if asked.after and text.rstrip().endswith(asked.after):
        text = text.rstrip()[: -len(asked.after)]
    text = text.strip()
    return "" if text in ("", PLACEHOLDER) else text


def answers_in(notebook, asked: list[Question]) -> dict[str, str | None]:
    """``{question id: answer}`` of a submitted notebook; None where no cell carries the question's mark.

    A question marked in several cells (a student split or copied it) gets all their
    answers, in order, separated by a rule, so nothing a student wrote is left out. A
    ``prediction`` question's answer ends with what the student typed into the code cell
    tagged ``prediction`` right after it.

    Example:
        >>> import nbformat
        >>> q = Question("q", 1, "explanation", "Why?", "m", "r")
        >>> nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(
        ...     "Why? Because.", metadata={"course": {"question": "q", "points": 1}})])
        >>> answers_in(nb, [q]), answers_in(nbformat.v4.new_notebook(), [q])
        ({'q': 'Because.'}, {'q': None})
    """
    by_id = {q.id: q for q in asked}
    found: dict[str, list[str]] = {}
    previous = None  # the question of the cell before, for a prediction's typed-in value
    for cell in notebook.cells:
        course = mark(cell)
        typed = _typed_prediction(cell)
        if typed and previous is not None and by_id[previous].kind == "prediction":
            found.setdefault(previous, []).append(typed)
        previous = course.get("question") if course is not None and course.get("question") in by_id else None
        if course is None or course.get("question") not in by_id or not isinstance(cell.get("source"), str):
            continue
        qid = course["question"]
        text = answer_text(cell.source, by_id[qid])
        found.setdefault(qid, [])
        if text:
            found[qid].append(text)
    return {q.id: ("\n\n---\n\n".join(found[q.id]) if q.id in found else None) for q in asked}


def _typed_prediction(cell) -> str:
    """A ``prediction`` code cell's assignments as the answer's last line (``""`` for any other cell)."""
    tags = cell.get("metadata", {}).get("tags", [])
    if cell.get("cell_type") != "code" or "prediction" not in tags or not isinstance(cell.get("source"), str):
        return ""
    lines = [line.strip() for line in cell.source.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return ("typed in: `" + "; ".join(lines) + "`") if lines else ""
