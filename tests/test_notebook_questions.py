"""The course notebooks ask, the students answer: written questions, predictions, and no generated conclusions."""

from __future__ import annotations

import re

import nbformat
import pytest

from course_kit import written
from course_kit.repository import NOTEBOOKS as STUDENT
from course_kit.repository import SOLUTIONS

NAMES = sorted(p.stem for p in SOLUTIONS.glob("*.ipynb"))


def solution(name):
    return nbformat.read(SOLUTIONS / f"{name}.ipynb", as_version=4)


@pytest.mark.parametrize("name", NAMES)
def test_three_written_questions_and_a_prediction_shown_beside_its_result(name):
    notebook = solution(name)
    asked = written.questions_in(notebook, name)
    assert len(asked) >= 3, f"{name}: {len(asked)} written questions"
    predictions = [q for q in asked if q.kind == "prediction"]
    assert predictions, f"{name}: no prediction question"
    for question in predictions:
        typed = notebook.cells[question.cell + 1]
        assert typed.cell_type == "code" and "prediction" in typed.metadata.get("tags", []), (
            f"{name}: the cell after prediction {question.id!r} must be the code cell tagged 'prediction'"
        )
        variable = re.match(r"\s*(\w+)\s*=", typed.source).group(1)
        later = "\n".join(c.source for c in notebook.cells[question.cell + 2 :] if c.cell_type == "code")
        assert re.search(rf"compare_prediction\(\s*{variable}\b", later), (
            f"{name}: {variable} is never shown beside the run's value (cu.results.compare_prediction)"
        )
    for question in asked:
        assert question.model_answer and question.rubric


@pytest.mark.parametrize("name", NAMES)
def test_student_notebooks_hold_the_questions_but_no_model_answer_or_rubric(name):
    asked = written.questions_in(solution(name), name)
    student = nbformat.read(STUDENT / f"{name}.ipynb", as_version=4)
    text = "\n".join(c.source for c in student.cells)
    assert "BEGIN RUBRIC" not in text and "BEGIN SOLUTION" not in text
    for question in asked:
        [cell] = [c for c in student.cells if (written.mark(c) or {}).get("question") == question.id]
        assert question.prompt in cell.source and written.PLACEHOLDER in cell.source
        assert question.rubric not in text and question.model_answer not in cell.source


@pytest.mark.parametrize("name", NAMES)
def test_no_code_cell_writes_interpretation_as_sentences(name):
    # Conclusions are the student's: code shows numbers (tables, the findings' ✓/✗), never Markdown prose.
    for index, cell in enumerate(solution(name).cells):
        if cell.cell_type == "code":
            assert "Markdown(" not in cell.source, f"{name} cell {index} writes Markdown from code"
            assert "notes=" not in cell.source, f"{name} cell {index} records generated notes"


@pytest.mark.parametrize("name", NAMES)
def test_what_this_run_shows_is_at_most_40_lines_of_code(name):
    cells = solution(name).cells
    start = next(i for i, c in enumerate(cells) if c.cell_type == "markdown" and "What this run shows" in c.source)
    section = []
    for cell in cells[start + 1 :]:
        if cell.cell_type == "markdown" and re.match(r"#{1,2} ", cell.source):
            break
        if cell.cell_type == "code":
            section += [line for line in cell.source.splitlines() if line.strip()]
    assert len(section) <= 40, f"{name}: {len(section)} lines of code under 'What this run shows'"


@pytest.mark.parametrize("name", NAMES)
def test_the_opening_states_question_and_experiment_in_250_words(name):
    first = next(c for c in solution(name).cells if c.cell_type == "markdown")
    words = len(re.findall(r"\w+", re.sub(r"[|#*`_-]", " ", first.source)))
    assert words <= 250, f"{name}: the first Markdown cell has {words} words"
