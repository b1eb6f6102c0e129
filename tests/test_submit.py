"""``cu.submit`` / ``course submit``: a fresh run in the grading profile, its failures, a folder course grade reads."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "grading_toy"))
import crafted  # noqa: E402

from course_kit.grading.runner import write_submission  # noqa: E402
from course_utils.notebook import handin as submitting  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow  # each test starts a kernel


def toy(tmp_path: Path, change=None) -> Path:
    notebook = nbformat.read(crafted.SOLUTION, as_version=4)
    if change:
        change(notebook)
    path = tmp_path / "work" / f"{crafted.ASSIGNMENT}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, path)
    return path


def test_a_solved_notebook_is_written_as_the_folder_and_zip_course_grade_reads(tmp_path, capsys):
    path = toy(tmp_path)
    report = submitting.submit("s1234567", path=path, out=tmp_path / "out")
    assert report.ok and report.failures == []
    assert sorted(p.name for p in report.folder.iterdir()) == ["00_toy.ipynb", "00_toy.results.json"]
    # The fresh run was the grading profile's (n_points 8, scale 2.0), not the notebook's own default.
    assert json.loads((report.folder / "00_toy.results.json").read_text())["n_points"] == 8
    assert nbformat.read(report.folder / "00_toy.ipynb", as_version=4) == nbformat.read(path, as_version=4)
    with zipfile.ZipFile(report.archive) as bundle:
        assert sorted(bundle.namelist()) == ["s1234567/00_toy.ipynb", "s1234567/00_toy.results.json"]
    assert "ran top to bottom in a fresh kernel" in capsys.readouterr().out


def test_a_broken_notebook_reports_each_failing_cell_and_is_still_written(tmp_path):
    def break_it(notebook):
        notebook.cells[crafted.SQUARES].source = "def squares(n):\n    raise NotImplementedError()\n"
        notebook.cells[crafted.SCALED_MEAN].source = "def scaled_mean(values, scale):\n    return sum(values)\n"
        # Worked in the student's kernel only: `offset` was defined in a cell deleted since.
        notebook.cells[crafted.RESULTS].source = "print(offset)\n" + notebook.cells[crafted.RESULTS].source

    report = submitting.submit("s7", path=toy(tmp_path, break_it), out=tmp_path / "out", verbose=False)
    assert not report.ok
    # Cells are numbered from the top of the student's notebook (Markdown included), 1 first.
    kinds = {failure.cell: failure.kind for failure in report.failures}
    assert kinds == {
        crafted.SQUARES + 2: "exercise not done",
        crafted.SCALED_MEAN + 2: "self-check failed",
        crafted.PIPELINE + 1: "exercise not done",
        crafted.RESULTS + 1: "NameError",
    }, report.failures
    assert "scaled_mean([1, 2, 3], 2.0) should be 4.0" in str(report)
    assert (report.folder / "00_toy.ipynb").exists() and report.archive.exists()


def test_course_submit_exit_status_and_bad_ids(tmp_path):
    from course_kit.cli import main

    assert main(["submit", str(toy(tmp_path)), "--student", "bad id/..", "--out", str(tmp_path / "o")]) == 2
    with pytest.raises(ValueError, match="letters, digits"):
        submitting.submit("a b", path=toy(tmp_path))
    with pytest.raises(FileNotFoundError, match="path='03_partial_freezing.ipynb'"):
        submitting.find_notebook(None) if "JPY_SESSION_NAME" not in os.environ else submitting.find_notebook("/nope")


def test_course_grade_accepts_the_zip_and_the_unzipped_submission(tmp_path):
    report = submitting.submit("s1234567", path=toy(tmp_path), out=tmp_path / "out", verbose=False)
    submissions = tmp_path / "submissions"
    with zipfile.ZipFile(report.archive) as bundle:
        bundle.extractall(submissions)  # what an instructor may do with each downloaded zip ...
    shutil.copy(report.archive, submissions / "s7654321.zip")  # ... or not: the zip as it was handed in
    shutil.copy(report.archive, submissions)  # next to its own folder: that folder is graded, once
    out = tmp_path / "grades"
    command = [
        sys.executable,
        "-m",
        "course_kit.cli",
        "grade",
        str(submissions),
        "--assignment",
        crafted.ASSIGNMENT,
        "--out",
        str(out),
        "--solutions",
        str(crafted.SOLUTION.parent),
        "--timeout",
        "60",
        "--cell-timeout",
        "20",
        "--memory",
        "1G",
    ]
    result = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=420, env=dict(os.environ, TMPDIR=str(tmp_path))
    )
    assert result.returncode == 0, result.stdout + result.stderr
    rows = {row["student"]: row for row in json.loads((out / "grades.json").read_text())["rows"]}
    assert sorted(rows) == ["s1234567", "s7654321"]
    for row in rows.values():
        assert row["status"] == "ok" and row["points"] == row["max_points"], row
    assert rows["s7654321"]["file_name"] == "s7654321.zip"
    assert "not graded: s1234567.zip: the folder s1234567/ next to it is graded instead" in result.stdout


def test_a_submitted_results_record_never_stands_in_for_the_graders_run(tmp_path):
    job = {
        "assignment": "00_toy",
        "notebook": nbformat.v4.new_notebook(),
        "results_name": "00_toy.results.json",
        "files": {"00_toy.results.json": "e30=", "helper.py": "eD0x"},
    }
    write_submission(job, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["00_toy.ipynb", "helper.py"]
