"""solutions/ for review: each notebook's py:percent twin holds the same cells and tags; no outputs are committed."""

from __future__ import annotations

import shutil

import jupytext
import nbformat
import pytest

from course_kit import pairing
from course_kit.repository import SOLUTIONS

NOTEBOOKS = sorted(SOLUTIONS.glob("*.ipynb"))


def _cells(notebook) -> list[tuple]:
    return [(c.cell_type, c.source, c.metadata.get("tags", []), c.metadata.get("course")) for c in notebook.cells]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_each_solution_and_its_text_twin_hold_the_same_cells_and_tags(path):
    twin = pairing.pair_path(path)
    assert twin.exists(), f"{twin.name} is missing: run `course pair`"
    notebook, text = nbformat.read(path, as_version=4), jupytext.read(twin)
    assert _cells(text) == _cells(notebook), f"{twin.name} is out of sync with {path.name}: run `course pair`"
    tags = {tag for _, _, cell_tags, _ in _cells(text) for tag in cell_tags}
    assert {"parameters", "exercise", "self-check"} <= tags


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_solutions_carry_no_outputs_or_execution_counts(path):
    notebook = nbformat.read(path, as_version=4)
    dirty = [i for i, c in enumerate(notebook.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"{path.name}: cells {dirty} carry outputs or execution counts; clear them before committing"


def test_pair_check_finds_a_stale_twin_and_pair_rewrites_it(tmp_path):
    shutil.copy(NOTEBOOKS[0], tmp_path)
    assert pairing.pair(tmp_path, check_only=True) == [tmp_path / f"{NOTEBOOKS[0].stem}.py"]
    pairing.pair(tmp_path)
    assert pairing.pair(tmp_path, check_only=True) == []
    notebook = nbformat.read(tmp_path / NOTEBOOKS[0].name, as_version=4)
    notebook.cells[1].source += "\nextra = None"
    nbformat.write(notebook, tmp_path / NOTEBOOKS[0].name)
    assert pairing.pair(tmp_path, check_only=True) == [tmp_path / f"{NOTEBOOKS[0].stem}.py"]


def test_the_checker_sees_a_changed_tag():
    # The sync test must be able to fail: a dropped tag makes the cells differ.
    notebook = nbformat.read(NOTEBOOKS[0], as_version=4)
    text = jupytext.reads(
        pairing.pair_path(NOTEBOOKS[0]).read_text().replace('tags=["parameters"]', "", 1), fmt="py:percent"
    )
    assert _cells(text) != _cells(notebook)


def test_a_cell_the_text_form_would_change_is_named_not_paired(tmp_path):
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1\n\n")])
    nbformat.write(notebook, tmp_path / "01_x.ipynb")
    with pytest.raises(ValueError, match="cell 0 does not survive"):
        pairing.render(tmp_path / "01_x.ipynb")
