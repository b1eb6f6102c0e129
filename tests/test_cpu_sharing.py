"""OpenMP threads that spin only briefly: kernels of `course run` and `course grade`, and `import course_utils`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from course_kit import runner
from course_kit.grading.runner import kernel_environment

SPIN = {"GOMP_SPINCOUNT": "300"}


def test_course_run_kernels_spin_briefly_unless_the_caller_chose(monkeypatch):
    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert runner.cpu_sharing_env() == SPIN
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")  # an instructor timing with spinning threads keeps them
    assert runner.cpu_sharing_env() == {}
    monkeypatch.delenv("OMP_WAIT_POLICY")
    monkeypatch.setenv("GOMP_SPINCOUNT", "0")
    assert runner.cpu_sharing_env() == {}


def test_grading_kernels_spin_briefly():
    env = kernel_environment({"threads": 1, "marker": "m", "data_dir": None}, Path("/w"))
    assert env["GOMP_SPINCOUNT"] == "300" and "OMP_WAIT_POLICY" not in env


def test_importing_the_student_library_sets_the_spin_count_unless_one_was_chosen():
    code = (
        "import os, sys; import course_utils; "
        "print(os.environ.get('GOMP_SPINCOUNT'), os.environ.get('OMP_WAIT_POLICY'))"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    shown = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert shown.stdout.split() == ["300", "None"]
    env["OMP_WAIT_POLICY"] = "PASSIVE"  # the test suite's own choice (conftest.py) wins
    shown = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert shown.stdout.split() == ["None", "PASSIVE"]
