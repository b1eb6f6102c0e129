"""A Gradescope autograder built with its defaults grades inside Gradescope's default limits.

``run_autograder`` from the built zip runs in a folder laid out like Gradescope's
``/autograder``, inside a cgroup v1 memory group limited to 768 MB (without swap) and a CPU
group limited to half a CPU, as Gradescope's default container is; the solution must get
full points in ``results.json``, and the group must not have hit its limit. The groups are
made for this test's own run (named after its temporary folder) and removed afterwards.
Where cgroups cannot be made (no v1 memory controller, not root), the test is skipped and
says why.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from course_kit.cli import main as course
from course_kit.grading import autograder

ROOT = Path(__file__).resolve().parent.parent
TOY = ROOT / "tests" / "grading_toy" / "solutions"
CGROUPS = Path("/sys/fs/cgroup")
LIMIT_BYTES = autograder.GRADESCOPE_MEMORY_MB * 1024**2
PERIOD_US = 100_000


def own_group(controller: str) -> Path:
    """This process's own cgroup v1 folder for ``controller`` (groups made below it nest in its limits)."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            folder = CGROUPS / controller / path.lstrip("/")
            if folder.is_dir():
                return folder
    return CGROUPS / controller


@pytest.fixture
def gradescope_limits(tmp_path):
    """Memory and CPU groups for this test's run: 768 MB without swap, half a CPU; removed afterwards."""
    if not (CGROUPS / "memory" / "memory.limit_in_bytes").is_file():
        pytest.skip(
            "no cgroup v1 memory controller at /sys/fs/cgroup/memory (cgroup v2 or none): "
            "the 768 MB limit cannot be set here"
        )
    name = f"course-gradescope-{os.getpid()}-{tmp_path.name}"
    groups = []
    try:
        memory = own_group("memory") / name
        memory.mkdir()
        groups.append(memory)
        (memory / "memory.limit_in_bytes").write_text(str(LIMIT_BYTES))
        if (memory / "memory.memsw.limit_in_bytes").exists():  # swap may not stretch the limit either
            (memory / "memory.memsw.limit_in_bytes").write_text(str(LIMIT_BYTES))
        if (CGROUPS / "cpu" / "cpu.cfs_quota_us").is_file():
            cpu = own_group("cpu") / name
            cpu.mkdir()
            groups.append(cpu)
            (cpu / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (cpu / "cpu.cfs_quota_us").write_text(str(int(autograder.GRADESCOPE_CPUS * PERIOD_US)))
    except OSError as error:
        for group in reversed(groups):
            group.rmdir()
        pytest.skip(
            f"cannot make a cgroup for the 768 MB limit here ({error}); run the tests as root on a "
            f"machine with a writable cgroup v1 memory controller"
        )
    yield groups
    for group in reversed(groups):
        deadline = time.monotonic() + 60
        while (group / "cgroup.procs").read_text().strip() and time.monotonic() < deadline:
            time.sleep(0.2)  # the run's last processes are still exiting
        group.rmdir()


def in_groups(groups: list[Path], command: list[str]) -> list[str]:
    """``command`` run by a shell that first moves itself into ``groups`` (its children stay there)."""
    joins = " && ".join(f"echo $$ > {group / 'cgroup.procs'}" for group in groups)
    return ["sh", "-c", f'{joins} && exec "$@"', "in-groups", *command]


@pytest.mark.slow
def test_run_autograder_grades_the_solution_within_768_mb_and_half_a_cpu(tmp_path, gradescope_limits):
    archive = tmp_path / "toy.zip"
    # The autograder's defaults (their memory and the grader's share fit Gradescope's 768 MB);
    # the run-as user is left out because this test does not run setup.sh (which makes that user).
    assert course(["autograder", "00_toy", "--solutions", str(TOY), "--out", str(archive), "--run-as", ""]) == 0
    root = tmp_path / "autograder"
    with zipfile.ZipFile(archive) as opened:
        opened.extractall(root / "source")
        readme = opened.read("README.txt").decode()
    assert "Memory: 768 MB" in readme and "Autograder timeout: 10 minutes" in readme
    (root / "submission").mkdir()
    (root / "results").mkdir()
    shutil.copy(TOY / "00_toy.ipynb", root / "submission" / "00_toy.ipynb")
    (root / "submission_metadata.json").write_text(json.dumps({"users": [{"email": "ana@uni.edu"}]}))
    env = dict(
        os.environ,
        COURSE_AUTOGRADER_ROOT=str(root),
        COURSE_AUTOGRADER_PYTHON=sys.executable,
        PYTHONPATH=str(root / "source" / "kit"),  # the kit packed in the zip
        COURSE_BWRAP=str(tmp_path / "no-bwrap-here"),
    )  # as in Docker without user namespaces
    done = subprocess.run(
        in_groups(gradescope_limits, ["bash", str(root / "source" / "run_autograder")]),
        env=env,
        capture_output=True,
        text=True,
        timeout=autograder.GRADESCOPE_SECONDS,
    )
    log = done.stdout + done.stderr
    memory = gradescope_limits[0]
    peak_mb = int((memory / "memory.max_usage_in_bytes").read_text()) / 1024**2
    print(f"\nrun_autograder: peak {peak_mb:.0f} MB of {autograder.GRADESCOPE_MEMORY_MB} MB\n{log[-2000:]}")
    assert done.returncode == 0, log
    results = json.loads((root / "results" / "results.json").read_text())
    assert autograder.validate_results(results) == []
    assert results["extra_data"]["status"] == "ok", results["output"]
    assert results["score"] == results["extra_data"]["max_points"] > 0
    assert all(test["status"] == "passed" for test in results["tests"])
    # The run's processes were in the group, and none of them was killed at the limit.
    assert peak_mb > 50, peak_mb
    oom = dict(line.split() for line in (memory / "memory.oom_control").read_text().splitlines())
    assert oom.get("oom_kill", "0") == "0", oom
    if len(gradescope_limits) == 2:  # half a CPU: kernels get one thread, from the group's quota
        assert "1 thread(s) per kernel" in log, log
