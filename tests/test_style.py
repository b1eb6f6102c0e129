"""Style: `ruff check` and `ruff format --check` pass on both packages and the tests, `ruff check` on the solutions.

The rules live under ``[tool.ruff]`` in pyproject.toml; ruff runs from the project root so that it reads them.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from course_kit.repository import PROJECT_ROOT, SOLUTIONS

# What the formatter and the linter cover; the solutions' notebooks are linted only (their layout is their own).
CODE = ["course_utils", "course_kit", "tests", "conftest.py", "quickstart.py"]


def ruff(*args: str) -> subprocess.CompletedProcess:
    """Run this interpreter's ruff in the project root, without a cache (other runs may share the folder)."""
    if importlib.util.find_spec("ruff") is None:
        pytest.fail(f"ruff is not installed for {sys.executable}: run pip install -e '.[dev]' (the dev extra has it)")
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args, "--no-cache"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


def assert_clean(result: subprocess.CompletedProcess, fix: str) -> None:
    """Fail with ruff's own report and the command that fixes what it can."""
    assert result.returncode == 0, f"ruff {' '.join(result.args[3:])} failed ({fix}):\n{result.stdout}{result.stderr}"


def test_the_code_passes_the_linter():
    result = ruff("check", "--output-format", "concise", *CODE)
    assert_clean(result, "`ruff check --fix` fixes the safe ones; fix the rest by hand")


def test_the_code_is_formatted():
    result = ruff("format", "--check", *CODE)
    assert_clean(result, "run `ruff format` on the files it names")


def test_the_solutions_code_cells_pass_the_linter():
    notebooks = sorted(path.relative_to(PROJECT_ROOT).as_posix() for path in SOLUTIONS.glob("*.ipynb"))
    assert notebooks, f"no solution notebooks in {SOLUTIONS}"
    result = ruff("check", "--output-format", "concise", *notebooks)
    assert_clean(result, "fix the solution notebook or its py:percent twin, then `course pair` and `course release`")
