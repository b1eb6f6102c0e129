"""Written answers: marking (release strips model answer and rubric), collecting, merging scores, PDFs.

A small class of crafted submissions of the toy assignment, each with its own written
answers, goes into a gradebook folder laid out as ``course grade --out`` writes it
(``grades.json`` and ``executed/<student>.ipynb``), so these tests need no kernel; one
slow test runs the real ``course grade`` on the toy first.
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
import sys
from pathlib import Path

import nbformat
import pytest

from course_kit import written
from course_kit.cli import main as course
from course_kit.release import student_version

sys.path.insert(0, str(Path(__file__).resolve().parent / "grading_toy"))
import crafted  # noqa: E402

SOLUTIONS = crafted.SOLUTION.parent
QUESTIONS = {"why_mean": 2, "predict_result": 1}
ANSWERS = {  # student: {question: answer}; each answer unique so it can be found where it belongs
    "ana": {"why_mean": "Ana: the denominator is the count; [1, 2, 3] has three values.", "predict_result": "35"},
    "bo": {"why_mean": "Bo says <script>alert('x')</script> & <b>bold</b>", "predict_result": "Bo guesses 17.5"},
    "cy": {"why_mean": "Cy: no idea", "predict_result": None},  # predict_result left as released
}


def _student_notebook(answers: dict[str, str | None]) -> nbformat.NotebookNode:
    """The released toy notebook with the student's answers typed over the placeholders."""
    notebook = student_version(crafted.solution(), name=crafted.ASSIGNMENT)
    for cell in notebook.cells:
        mark = written.mark(cell)
        if mark and answers.get(mark["question"]) is not None:
            cell.source = cell.source.replace(written.PLACEHOLDER, answers[mark["question"]])
    return notebook


def _row(student: str, points: int) -> dict:
    return {
        "student": student,
        "status": "ok",
        "points": points,
        "max_points": crafted.MAX_POINTS,
        "detail": "",
        "error_cell": None,
        "checks": {"squares_hidden": 2, "scaled": points - 2},
        "check_results": [
            {
                "name": "squares_hidden",
                "title": "squares",
                "points": 2,
                "max_points": 2,
                "passed": True,
                "message": "correct",
            }
        ],
        "file_name": f"{student}.ipynb",
        "submission": f"/submissions/{student}.ipynb",
        "sha256": "0" * 64,
        "assignment": crafted.ASSIGNMENT,
        "runtime_s": 1.0,
        "metrics": None,
    }


def make_gradebook(folder: Path) -> Path:
    """A gradebook folder as course grade writes it: three graded students and one unreadable hand-in."""
    (folder / "executed").mkdir(parents=True)
    rows = [_row("ana", 6), _row("bo", 4), _row("cy", 2), dict(_row("dee", 0), status="invalid-notebook", points=0)]
    for student, answers in ANSWERS.items():
        nbformat.write(_student_notebook(answers), folder / "executed" / f"{student}.ipynb")
    checks = [
        {"name": "squares_hidden", "title": "squares", "points": 2, "exercise": "squares"},
        {"name": "scaled", "title": "scaled mean", "points": 4, "exercise": "scaled_mean"},
    ]
    (folder / "grades.json").write_text(json.dumps({"assignment": crafted.ASSIGNMENT, "checks": checks, "rows": rows}))
    return folder


def collect(grades: Path, *options: str) -> int:
    return course(["answers", "collect", str(grades), "--solutions", str(SOLUTIONS), *options])


def read_scores(path: Path) -> list[dict]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))


def fill(path: Path, scores: dict[tuple[str, str], tuple[str, str]]) -> None:
    """Type scores into the scores file as a TA would (other lines as they are)."""
    lines = read_scores(path)
    for line in lines:
        line["points"], line["comment"] = scores.get(
            (line["student"], line["question"]), (line["points"], line["comment"])
        )
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["student", "question", "points", "comment"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(lines)
    path.write_text(buffer.getvalue(), encoding="utf-8")


# --------------------------------------------------------------------------- marking
def test_release_keeps_the_question_and_drops_model_answer_and_rubric():
    solution = crafted.solution()
    asked = written.questions_in(solution, crafted.ASSIGNMENT)
    assert {q.id: q.points for q in asked} == QUESTIONS
    assert [q.kind for q in asked] == ["explanation", "prediction"]
    released = [c for c in student_version(solution, name=crafted.ASSIGNMENT).cells if written.mark(c)]
    assert len(released) == 2
    for question, cell in zip(asked, released):
        solution_cell = solution.cells[question.cell].source
        assert question.model_answer in solution_cell and question.rubric in solution_cell
        assert question.model_answer not in cell.source and question.rubric not in cell.source
        assert "RUBRIC" not in cell.source and "SOLUTION" not in cell.source
        assert cell.source.startswith(question.prompt) and written.PLACEHOLDER in cell.source


def test_a_written_question_without_rubric_or_points_is_refused_by_cell():
    notebook = crafted.solution()
    cell = notebook.cells[-1]
    cell.source = re.sub(r"### BEGIN RUBRIC.*### END RUBRIC", "", cell.source, flags=re.S)
    with pytest.raises(written.WrittenError, match=r"00_toy cell \d+: .*rubric"):
        student_version(notebook, name=crafted.ASSIGNMENT)
    notebook = crafted.solution()
    notebook.cells[-1].metadata["course"]["points"] = 0
    with pytest.raises(written.WrittenError, match="needs 'points'"):
        written.questions_in(notebook, crafted.ASSIGNMENT)


# --------------------------------------------------------------------------- collecting
def test_each_answer_is_on_its_question_page_escaped_beside_rubric_and_model_answer(tmp_path):
    grades = make_gradebook(tmp_path / "grades")
    assert collect(grades) == 0
    asked = {q.id: q for q in written.questions_in(crafted.solution())}
    pages = {qid: (grades / "written" / f"{qid}.html").read_text(encoding="utf-8") for qid in QUESTIONS}
    for answers in ANSWERS.values():
        for qid, answer in answers.items():
            others = [q for q in QUESTIONS if q != qid]
            if answer is None:
                continue
            escaped = html.escape(answer)
            assert escaped in pages[qid] and all(escaped not in pages[q] for q in others)
    assert "<script>" not in pages["why_mean"] and "&lt;script&gt;" in pages["why_mean"]
    for qid, page in pages.items():
        assert html.escape(asked[qid].rubric) in page and html.escape(asked[qid].model_answer) in page
        assert "Content-Security-Policy" in page and "dee" in page  # the unreadable hand-in is listed, not dropped
    assert "(left blank)" in pages["predict_result"]
    lines = read_scores(grades / "written-scores.csv")
    assert {(r["student"], r["question"]) for r in lines} == {
        (s, q) for s in ("ana", "bo", "cy", "dee") for q in QUESTIONS
    }
    assert all(r["points"] == "" and r["comment"] == "" for r in lines)


def test_anonymous_pages_hide_names_with_stable_ids_and_a_rerun_keeps_typed_scores(tmp_path):
    grades = make_gradebook(tmp_path / "grades")
    assert collect(grades, "--anonymous", "--seed", "3") == 0
    page = (grades / "written" / "why_mean.html").read_text(encoding="utf-8")
    labels = re.findall(r'class="who">(anon-[0-9a-f]{10})<', page)
    assert len(set(labels)) == 4
    assert all(f">{name}<" not in page for name in ("ana", "bo", "cy", "dee"))
    scores = grades / "written-scores.csv"
    first = read_scores(scores)
    assert {r["student"] for r in first} == set(labels)
    ana = next(
        r["student"]
        for r in first
        if r["question"] == "why_mean"
        and r["student"] in page.split("Ana: the denominator")[0].rsplit('class="who">', 1)[1]
    )
    fill(scores, {(ana, "why_mean"): ("1,5", "=clear but brief")})
    assert collect(grades, "--anonymous", "--seed", "3") == 0
    again = read_scores(scores)
    assert {r["student"] for r in again} == set(labels)  # the same ids on a rerun
    kept = next(r for r in again if (r["student"], r["question"]) == (ana, "why_mean"))
    assert (kept["points"], kept["comment"]) == ("1,5", "'=clear but brief")
    assert re.findall(r'class="who">(anon-[0-9a-f]{10})<', (grades / "written" / "why_mean.html").read_text()) == labels


def test_a_rerun_refuses_to_drop_a_score_it_cannot_place(tmp_path, capsys):
    grades = make_gradebook(tmp_path / "grades")
    assert collect(grades) == 0
    scores = grades / "written-scores.csv"
    scores.write_text(scores.read_text() + "zed,why_mean,2,typed by a TA\n")
    before = scores.read_text()
    assert collect(grades) == 2
    assert "line 10: zed / why_mean is not in this collection" in capsys.readouterr().err
    assert scores.read_text() == before


# --------------------------------------------------------------------------- merging
def merged(grades: Path) -> dict:
    return {row["student"]: row for row in json.loads((grades / "grades.json").read_text())["rows"]}


def test_filled_scores_give_columns_totals_and_pending(tmp_path):
    grades = make_gradebook(tmp_path / "grades")
    assert collect(grades) == 0
    scores = grades / "written-scores.csv"
    fill(
        scores,
        {
            ("ana", "why_mean"): ("2", "complete"),
            ("ana", "predict_result"): ("1", ""),
            ("bo", "why_mean"): ("0.5", "no reason given"),
            ("bo", "predict_result"): ("0", ""),
        },
    )
    assert course(["answers", "merge", str(grades), str(scores)]) == 0
    rows = merged(grades)
    assert (rows["ana"]["points"], rows["ana"]["max_points"], rows["ana"]["written_status"]) == (9, 9, "complete")
    assert (rows["bo"]["points"], rows["bo"]["written_status"]) == (4.5, "complete")
    assert (rows["cy"]["points"], rows["cy"]["written_status"]) == (2, "pending")
    table = {r["student"]: r for r in csv.DictReader(io.StringIO((grades / "grades.csv").read_text()))}
    assert (table["ana"]["written:why_mean"], table["ana"]["written:predict_result"]) == ("2", "1")
    assert (table["cy"]["written:why_mean"], table["cy"]["written_status"]) == ("pending", "pending")
    assert (table["bo"]["points"], table["bo"]["automatic_points"]) == ("4.5", "4")
    # Merging again adds nothing twice; a later file with one more score keeps the earlier ones.
    fill(scores, {("cy", "why_mean"): ("1", ""), ("ana", "why_mean"): ("", "")})
    assert course(["answers", "merge", str(grades), str(scores)]) == 0
    rows = merged(grades)
    assert (rows["ana"]["points"], rows["cy"]["points"], rows["cy"]["written_status"]) == (9, 3, "pending")


def test_bad_score_lines_are_refused_by_line_and_nothing_is_written(tmp_path, capsys):
    grades = make_gradebook(tmp_path / "grades")
    assert collect(grades) == 0
    scores = grades / "written-scores.csv"
    fill(
        scores, {("ana", "why_mean"): ("3", ""), ("bo", "predict_result"): ("-1", ""), ("cy", "why_mean"): ("lots", "")}
    )
    scores.write_text(scores.read_text() + "zed,why_mean,1,\nana,essay,1,\nbo,why_mean,1,\n")
    before = (grades / "grades.json").read_text()
    assert course(["answers", "merge", str(grades), str(scores)]) == 2
    error = capsys.readouterr().err
    lines = {int(n): text for n, text in re.findall(r"line (\d+): (.*)", error)}
    by_line = {(r["student"], r["question"]): n for n, r in enumerate(read_scores(scores), start=2)}
    assert "outside 0..2" in lines[by_line["ana", "why_mean"]]
    assert "outside 0..1" in lines[by_line["bo", "predict_result"]]
    assert "not a number" in lines[by_line["cy", "why_mean"]]
    assert "unknown student 'zed'" in lines[10] and "unknown question 'essay'" in lines[11]
    assert "a second line for bo and why_mean" in lines[12]
    assert (grades / "grades.json").read_text() == before


# --------------------------------------------------------------------------- readers of the gradebook
CANVAS = """Student,ID,SIS User ID,SIS Login ID,Section,00_toy (4242)
    Points Possible,,,,,9.00
"A, Ana",1,S1,ana,A,
"B, Bo",2,S2,bo,A,
"C, Cy",3,S3,cy,A,
"""


def test_canvas_export_and_feedback_include_the_written_points(tmp_path):
    grades = make_gradebook(tmp_path / "grades")
    assert collect(grades) == 0
    scores = grades / "written-scores.csv"
    fill(
        scores,
        {
            ("ana", "why_mean"): ("2", "complete & <clear>"),
            ("ana", "predict_result"): ("1", ""),
            ("bo", "why_mean"): ("1", ""),
        },
    )
    assert course(["answers", "merge", str(grades), str(scores)]) == 0
    canvas = tmp_path / "canvas.csv"
    canvas.write_text(CANVAS, encoding="utf-8")
    course(["export", "canvas", str(grades), "--canvas-export", str(canvas)])
    upload = list(csv.reader(io.StringIO((grades / "canvas-upload.csv").read_text(encoding="utf-8-sig"))))
    assert {r[0]: r[-1] for r in upload[2:]} == {"A, Ana": "9", "B, Bo": "5", "C, Cy": "2"}
    assert course(["feedback", str(grades)]) == 0
    page = (grades / "feedback-html" / "ana.html").read_text(encoding="utf-8")
    assert "9 / 9 points" in page and "complete &amp; &lt;clear&gt;" in page and "why_mean" in page
    assert "pending" in (grades / "feedback-html" / "bo.html").read_text(encoding="utf-8")
    markdown = (grades / "feedback" / "ana.md").read_text(encoding="utf-8")
    assert "**9 / 9 points**" in markdown and "| why_mean | 2 / 2 | complete & <clear> |" in markdown


# --------------------------------------------------------------------------- Gradescope PDFs
def test_each_pdf_has_one_page_per_question_holding_the_students_answer(tmp_path):
    pypdf = pytest.importorskip("pypdf")
    grades = make_gradebook(tmp_path / "grades")
    assert course(["answers", "pdf", str(grades), "--solutions", str(SOLUTIONS)]) == 0
    for student, answers in ANSWERS.items():
        pages = pypdf.PdfReader(grades / "written-pdf" / f"{student}.pdf").pages
        assert len(pages) == len(QUESTIONS)
        for page, qid in zip(pages, QUESTIONS):
            text = " ".join(page.extract_text().split())
            assert f"Question {qid}" in text
            expected = answers[qid] if answers[qid] is not None else "(left blank)"
            assert " ".join(expected.split()) in text
    long_answer = {"why_mean": "a long answer line\n" * 400, "predict_result": "35"}
    nbformat.write(_student_notebook(long_answer), grades / "executed" / "ana.ipynb")
    assert course(["answers", "pdf", str(grades), "--solutions", str(SOLUTIONS)]) == 0
    pages = pypdf.PdfReader(grades / "written-pdf" / "ana.pdf").pages
    assert len(pages) == 2 and "continues beyond this page" in pages[0].extract_text()


# --------------------------------------------------------------------------- the real course grade (slow)
@pytest.mark.timeout(600)
def test_course_grade_then_collect_finds_the_answers_in_the_executed_notebook(tmp_path):
    submissions = tmp_path / "submissions"
    submissions.mkdir()
    nbformat.write(_student_notebook(ANSWERS["ana"]), submissions / "ana.ipynb")
    grades = tmp_path / "grades"
    assert (
        course(
            [
                "grade",
                str(submissions),
                "--assignment",
                crafted.ASSIGNMENT,
                "--out",
                str(grades),
                "--solutions",
                str(SOLUTIONS),
                "--no-solution-check",
                "--timeout",
                "300",
            ]
        )
        == 0
    )
    assert collect(grades) == 0
    assert ANSWERS["ana"]["why_mean"] in (grades / "written" / "why_mean.html").read_text(encoding="utf-8")


def test_a_prediction_answer_ends_with_the_value_typed_into_the_cell_after_it():
    asked = [
        written.Question("predict_gap", 1, "prediction", "**Predict.** The gap?", "About 20.", "1: a number"),
        written.Question("why", 1, "explanation", "**Why?**", "m", "r"),
    ]
    submitted = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell(
                "**Predict.** The gap?\nFeatures transfer.", metadata={"course": {"question": "predict_gap"}}
            ),
            nbformat.v4.new_code_cell("# your prediction\npredicted_gap = 35", metadata={"tags": ["prediction"]}),
            nbformat.v4.new_markdown_cell("**Why?**\nBecause.", metadata={"course": {"question": "why"}}),
            # a prediction cell after an explanation belongs to no question
            nbformat.v4.new_code_cell("stray = 1", metadata={"tags": ["prediction"]}),
        ]
    )
    answers = written.answers_in(submitted, asked)
    assert answers == {"predict_gap": "Features transfer.\n\n---\n\ntyped in: `predicted_gap = 35`", "why": "Because."}
