"""Student release: solution markers, generated notebooks up to date, notebook structure."""

from __future__ import annotations

import nbformat
import pytest

from course_kit import colab, release
from course_kit.repository import NOTEBOOKS as STUDENT_NOTEBOOKS
from course_kit.repository import PUBLIC_REPOSITORY, RELEASE_TAG, SOLUTIONS
from course_utils.notebook import parameters

NOTEBOOKS = sorted(p.stem for p in SOLUTIONS.glob("*.ipynb"))


def test_there_are_four_course_notebooks():
    assert [n[:2] for n in NOTEBOOKS] == ["01", "02", "03", "04"]


def test_strip_solution_keeps_indentation_and_code_around():
    source = "def f(x):\n    y = 1\n    ### BEGIN SOLUTION\n    return x + y\n    ### END SOLUTION\n\nprint(f)"
    assert release.strip_solution(source) == (
        "def f(x):\n    y = 1\n    # YOUR CODE HERE\n    raise NotImplementedError()\n\nprint(f)"
    )
    assert release.strip_solution("### BEGIN SOLUTION\nIt is 4.\n### END SOLUTION", markdown=True) == "YOUR ANSWER HERE"


@pytest.mark.parametrize(
    "source,message",
    [
        ("### BEGIN SOLUTION\nx = 1", "never closed"),
        ("x = 1\n### END SOLUTION", "without a"),
        ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", "nested"),
    ],
)
def test_malformed_markers_name_the_problem(source, message):
    with pytest.raises(release.ReleaseError, match=message):
        release.strip_solution(source, where="nb cell 3")


def test_exercise_without_markers_is_refused():
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["exercise"]})])
    with pytest.raises(release.ReleaseError, match="tagged 'exercise' but has no"):
        release.student_version(notebook, "toy")


def test_student_notebooks_are_up_to_date():
    stale = release.release(check_only=True)
    assert not stale, f"notebooks/ is out of date for {[p.name for p in stale]}: run `course release`"


def test_release_writes_only_stripped_notebooks(tmp_path):
    written = release.release(out=tmp_path)
    assert sorted(p.stem for p in written) == NOTEBOOKS
    for path in written:
        text = path.read_text()
        assert "BEGIN SOLUTION" not in text and "END SOLUTION" not in text
        notebook = nbformat.read(path, as_version=4)
        assert all(c.get("outputs", []) == [] for c in notebook.cells if c.cell_type == "code")
        assert notebook.metadata["course"]["generated_from"] == f"solutions/{path.name}"
    assert not (tmp_path / "hidden_checks").exists()


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_structure(name):
    notebook = nbformat.read(SOLUTIONS / f"{name}.ipynb", as_version=4)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and tagged[0] is code[0], "exactly one parameters cell, the first code cell"
    knobs = {}
    exec(tagged[0].source, {}, knobs)  # noqa: S102 - our own parameters cell
    assert knobs.pop("profile") == "auto"
    assert knobs and all(value is None for value in knobs.values()), "every knob defaults to None"

    exercises = [c for c in code if "exercise" in c.metadata.get("tags", [])]
    ids = [c.metadata["course"]["exercise"] for c in exercises]
    assert len(exercises) >= 3 and len(set(ids)) == len(ids)
    for cell in exercises:
        following = code[code.index(cell) + 1]
        assert "self-check" in following.metadata.get("tags", []), f"{cell.metadata['course']} lacks a self-check"

    # The parameters cell and the profile file name the same knobs, in the same order.
    assert list(knobs) == parameters.knob_names(name)
    for profile in parameters.profile_names():
        if profile != "auto":
            values, _ = parameters.read_profile(name, profile)
            assert list(values) == list(knobs), f"{profile} profile of {name}"


# --- one click to a running notebook: badges, install cell, README table (course_kit.colab) ---


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_student_notebooks_open_in_colab_and_install_the_kit_second(name):
    notebook = nbformat.read(STUDENT_NOTEBOOKS / f"{name}.ipynb", as_version=4)
    first_markdown = next(c for c in notebook.cells if c.cell_type == "markdown")
    assert colab.colab_url(name) in first_markdown.source and colab.binder_url(name) in first_markdown.source
    assert first_markdown.source.startswith("# "), "the title stays first"
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert "parameters" in code[0].metadata["tags"], "the parameters cell stays first"
    assert code[1].metadata["tags"] == [colab.INSTALL_CELL_TAG] and code[1].source == colab.install_cell_source()
    # One setting: the badges and the install cell name the same repository and tag.
    assert f"{PUBLIC_REPOSITORY}@{RELEASE_TAG}" in code[1].source
    assert f"/blob/{RELEASE_TAG}/" in first_markdown.source


def test_install_cell_is_plain_python_that_does_nothing_where_the_kit_is_installed(capsys):
    import ast
    import subprocess
    import sys

    ast.parse(colab.install_cell_source())  # tools that parse cells (the grader, jupytext) can read it
    namespace: dict = {}
    calls = []
    real = subprocess.check_call
    subprocess.check_call = lambda *a, **k: calls.append(a)  # must not be reached here
    try:
        exec(colab.install_cell_source(), namespace)  # noqa: S102 - our own cell
    finally:
        subprocess.check_call = real
    assert calls == [] and capsys.readouterr().out == ""
    assert "google.colab" not in sys.modules


def test_a_solution_carrying_the_install_cell_gets_the_current_text_once(tmp_path):
    solution = nbformat.read(SOLUTIONS / f"{NOTEBOOKS[0]}.ipynb", as_version=4)
    plain = release.student_version(solution, NOTEBOOKS[0])
    carrying = nbformat.from_dict(solution)
    stale = colab.install_cell()
    stale.source = "# an older install cell"
    parameters = next(i for i, c in enumerate(carrying.cells) if "parameters" in c.metadata.get("tags", []))
    carrying.cells.insert(parameters + 1, stale)
    carrying.cells[0].source = colab.with_badges(carrying.cells[0].source, NOTEBOOKS[0], "github.com/old/place", "v0")
    assert nbformat.writes(release.student_version(carrying, NOTEBOOKS[0])) == nbformat.writes(plain)


def test_readme_badge_table_comes_from_the_same_setting_and_check_finds_it_stale(tmp_path):
    readme = (release.README).read_text()
    for name in NOTEBOOKS:
        assert colab.colab_url(name) in readme
    copy = tmp_path / "README.md"
    copy.write_text(readme.replace(colab.colab_url(NOTEBOOKS[1]), "https://example.org/old"))
    assert release.release(check_only=True, readme=copy) == [copy]
    release.release(out=tmp_path / "nb", readme=copy)
    assert copy.read_text() == readme
    no_markers = tmp_path / "plain.md"
    no_markers.write_text("# no table here\n")
    with pytest.raises(ValueError, match="colab-badges:begin"):
        release.release(out=tmp_path / "nb", readme=no_markers)


def test_a_repository_setting_that_is_not_a_github_path_is_refused():
    with pytest.raises(ValueError, match="github.com/OWNER/NAME"):
        colab.colab_url("01_x", "https://gitlab.com/a/b")


def test_binder_installs_cpu_torch_and_the_kit_with_the_offline_extra():
    from course_kit.repository import PROJECT_ROOT

    requirements = (PROJECT_ROOT / "binder" / "requirements.txt").read_text()
    post_build = PROJECT_ROOT / "binder" / "postBuild"
    assert "download.pytorch.org/whl/cpu" in requirements and "torch" in requirements
    assert '".[offline]"' in post_build.read_text() and post_build.stat().st_mode & 0o111


@pytest.mark.parametrize("name", sorted(p.stem for p in SOLUTIONS.glob("*.ipynb")))
def test_every_code_cell_reads_in_a_minute(name):
    # Long helpers that are not the lesson belong in the library or in several short cells.
    cells = nbformat.read(SOLUTIONS / f"{name}.ipynb", as_version=4).cells
    long = {
        i: len(c.source.splitlines())
        for i, c in enumerate(cells)
        if c.cell_type == "code" and len(c.source.splitlines()) > 30
    }
    assert not long, f"{name}: cells over 30 lines (index: lines): {long}"


def test_a_prediction_cell_keeps_the_students_line_and_drops_the_model_value():
    solution = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell('profile = "auto"', metadata={"tags": ["parameters"]}),
            nbformat.v4.new_code_cell(
                "predicted_gap = None  # your prediction\n### BEGIN SOLUTION\npredicted_gap = 25\n### END SOLUTION",
                metadata={"tags": ["prediction"]},
            ),
        ]
    )
    cell = release.student_version(solution, "nb").cells[-1]
    assert cell.source == "predicted_gap = None  # your prediction"
    solution.cells[-1] = nbformat.v4.new_markdown_cell("predicted: 25", metadata={"tags": ["prediction"]})
    with pytest.raises(release.ReleaseError, match="tagged 'prediction' but is not a code cell"):
        release.student_version(solution, "nb")
