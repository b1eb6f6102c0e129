"""The four real assignments grade as they are shipped (the standing rule).

Each solution notebook gets ``ok`` and full points from ``course grade`` with every default
(solution check on, the ``grading`` profile, the default limits), and ``course autograder``
builds each Gradescope zip with its defaults. A notebook or hidden-check change that breaks
its grading fails here, in CI.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from course_kit.repository import SOLUTIONS

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(path.stem for path in SOLUTIONS.glob("0*.ipynb"))


def course(*arguments: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "course_kit.cli", *arguments], cwd=cwd, capture_output=True, text=True, timeout=1800
    )


def test_every_real_assignment_is_here():
    assert NOTEBOOKS == ["01_alexnet_data_fraction", "02_resnet_vs_vgg", "03_partial_freezing", "04_multitask_fruit"]


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_course_grade_gives_the_solution_full_points_with_its_defaults(name, tmp_path):
    submissions, out = tmp_path / "submissions", tmp_path / "out"
    submissions.mkdir()
    shutil.copy(SOLUTIONS / f"{name}.ipynb", submissions / "solution.ipynb")
    result = course("grade", str(submissions), "--assignment", name, "--out", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    [row] = json.loads((out / "grades.json").read_text())["rows"]
    assert (row["status"], row["points"]) == ("ok", row["max_points"]), row
    assert row["max_points"] > 0
    print(
        f"\n{name}: {row['points']}/{row['max_points']} in {row['runtime_s']:.0f} s, "
        f"kernel peak {row['kernel_peak_mb']} MB"
    )


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_course_autograder_builds_with_its_defaults(name, tmp_path):
    out = tmp_path / f"{name}.zip"
    result = course("autograder", name, "--out", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    with zipfile.ZipFile(out) as archive:
        names = set(archive.namelist())
    assert {"setup.sh", "run_autograder", "autograder.json", f"hidden_checks/{name}.py"} <= names
