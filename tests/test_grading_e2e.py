"""End-to-end grading of crafted submissions with ``course grade``: local pool, Dask, interruption.

The toy assignment (tests/grading_toy) takes a second per notebook, so these tests
measure the grader, not training. Every crafted submission is described in
tests/grading_toy/crafted.py with the status and points it must get.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "grading_toy"))
import crafted  # noqa: E402
from process_support import default_sigint  # noqa: E402

from course_kit.grading import procs, sandbox  # noqa: E402

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
# Generous for a busy machine (a DataLoader with worker processes must start inside a cell);
# the infinite loop still stops at the cell limit.
LIMITS = ["--timeout", "150", "--cell-timeout", "20", "--check-timeout", "60", "--memory", "1G", "-p", "scale", "3.0"]
VOLATILE = {"runtime_s", "graded_at", "check_results", "kernel_peak_mb", "inputs_seed"}


def grade(
    submissions: Path, out: Path, *extra: str, timeout: float = 420, tmp: Path | None = None
) -> subprocess.CompletedProcess:
    """Run course grade; its private folders go under ``tmp`` (this test's own) when given."""
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
        *LIMITS,
        *extra,
    ]
    env = dict(os.environ, **({"TMPDIR": str(tmp)} if tmp else {}))
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)


def run_marker(text: str) -> str:
    """The run marker course grade prints on its first line (``...; run grade-<id>``)."""
    found = re.search(r"; run (grade-[0-9a-f]{12})$", text, re.MULTILINE)
    assert found, text
    return found.group(1)


def grading_processes(marker: str) -> list[int]:
    """Live processes of one `course grade` run: its kernels and what they started carry its marker.

    Only this run's: other runs on the machine (another test, an instructor's real grading) are not counted.
    """
    return [pid for pid in procs.processes_with_marker(marker) if procs._alive(pid)]


def rows(out: Path) -> dict[str, dict]:
    return {row["student"]: row for row in json.loads((out / "grades.json").read_text())["rows"]}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Grade the crafted folder once with the local pool (-j 2); the tests below read the result."""
    base = tmp_path_factory.mktemp("grading")
    submissions, out = base / "submissions", base / "out"
    expected = crafted.write_submissions(submissions, out)
    scratch = base / "tmp"  # this run's temp root: what other runs leave in /tmp is not looked at
    scratch.mkdir()
    started = time.monotonic()
    result = grade(submissions, out, "-j", "2", tmp=scratch)
    seconds = time.monotonic() - started
    print(f"\nlocal pool -j 2: {len(expected)} submissions graded in {seconds:.1f} s (incl. solution check)")
    assert result.returncode == 0, result.stdout + result.stderr
    return {
        "submissions": submissions,
        "out": out,
        "expected": expected,
        "stdout": result.stdout,
        "seconds": seconds,
        "scratch": scratch,
        "marker": run_marker(result.stdout),
    }


def test_every_row_has_the_expected_status_and_points(graded):
    book = rows(graded["out"])
    assert sorted(book) == sorted(graded["expected"])
    got = {student: (row["status"], row["points"]) for student, row in book.items()}
    assert got == graded["expected"]
    assert all(row["max_points"] == crafted.MAX_POINTS for row in book.values())
    # Where it happened: the pipeline cell runs as In [8] (papermill's cell is In [2]).
    assert book["s03_raising"]["error_cell"] == 8 and "ZeroDivisionError" in book["s03_raising"]["detail"]
    assert "SystemExit" in book["s05_sys_exit"]["detail"]  # papermill alone would call this run a success
    assert "--cell-timeout 20" in book["s04_infinite_loop"]["detail"]
    assert "signal 9" in book["s06_kernel_killed"]["detail"]
    # Reported, not scored: the checks called its functions with the grader's own inputs.
    assert "`scale` = 1.0 at the end (injected 3.0)" in book["s14_own_parameters"]["parameters_note"]
    assert book["s01_correct"]["parameters_note"] == ""
    assert book["s13_deleted_exercise"]["detail"].endswith("scaled_mean")
    # Per check: forged records and a rigged __eq__ earn nothing; real work still counts.
    assert book["s10_forging"]["checks"] == {
        "squares_hidden": 0,
        "squares_small": 0,
        "scaled_mean_hidden": 2,
        "pipeline_result": 0,
    }
    # The checks call the functions on their own inputs: a pipeline cell that never finished costs nothing.
    assert book["s04_infinite_loop"]["checks"]["pipeline_result"] == 1
    assert book["s01_correct"]["metrics"] == {"n_points": 8, "scale": 3.0, "result": 52.5}


def test_student_code_could_not_reach_the_gradebook_or_the_checks(graded):
    out = graded["out"]
    attack = crafted.printed_attempts(out / "executed" / "s11_gradebook_attack.ipynb")
    if sandbox.bwrap_problem() is None:
        # Not even there in the kernel's own filesystem view, or refused (read-only, other namespaces).
        for attempt in (
            "gradebook_csv_write",
            "gradebook_json_write",
            "hidden_checks_read",
            "network_connect",
            "signal_runner",
            "instructor_kit_read",
            "solutions_read",
        ):
            assert attack[attempt] in (
                "blocked: PermissionError",
                "blocked: FileNotFoundError",
                "blocked: ProcessLookupError",
                "blocked: ConnectionRefusedError",
            ), (attempt, attack)
        # Only the student library is importable in a graded kernel: no grading code, no checks API.
        assert attack["student_library_import"] == "succeeded", attack
        for attempt in ("instructor_kit_import", "grading_import"):
            assert attack[attempt] in ("blocked: PermissionError", "blocked: ModuleNotFoundError"), (attempt, attack)
    else:  # without bubblewrap only the gradebook's own integrity below is guaranteed
        pytest.skip("bubblewrap unusable here: file access is not confined")
    assert "s11_gradebook_attack,ok,100" not in (out / "grades.csv").read_text()


def test_outputs_kept_and_feedback_reveals_no_check_code(graded):
    out, book = graded["out"], rows(graded["out"])
    hidden = crafted.HIDDEN_CHECKS.read_text()
    secrets = ["some_numbers", "reference_squares", "reference_scaled_mean", "ns.call", "grader_only"]
    assert all(secret in hidden for secret in secrets)
    for student in book:
        feedback = (out / "feedback" / f"{student}.md").read_text()
        assert f"status: `{book[student]['status']}`" in feedback
        for secret in secrets:
            assert secret not in feedback, (student, secret)
        executed = out / "executed" / f"{student}.ipynb"
        if book[student]["status"] in ("invalid-notebook", "parameters-missing"):
            assert not executed.exists()
            continue
        text = executed.read_text()
        # The check cell never enters the kept notebook; papermill's parameters do.
        assert "__course_grading__" not in text and "reference_squares" not in text
        assert "injected-parameters" in text
    partly_wrong = (out / "feedback" / "s02_partly_wrong.md").read_text()
    # Its function ran while the checks were in the kernel: only the kind of value it gave is shown.
    assert (
        "| scaled_mean() on numbers drawn for this submission | 0 / 2 | failed: got a number, not the expected "
        "value |" in partly_wrong
    )


def test_nothing_left_running_or_on_disk(graded):
    assert grading_processes(graded["marker"]) == []
    assert list(graded["scratch"].iterdir()) == []


def test_force_regrades_only_the_named_student(graded):
    # (Plain reruns skipping graded rows are exercised by the interruption test below.)
    out = graded["out"]
    before = rows(out)
    forced = grade(graded["submissions"], out, "--no-solution-check", "--force", "--only", "s01_correct")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    after = rows(out)
    assert after["s01_correct"]["graded_at"] >= before["s01_correct"]["graded_at"]
    # Graded again (its progress line), not skipped; equal runtimes can happen by chance, so they prove nothing.
    assert "[1/1] s01_correct" in forced.stdout and "skip s01_correct" not in forced.stdout
    assert {k: v for k, v in after.items() if k != "s01_correct"} == {
        k: v for k, v in before.items() if k != "s01_correct"
    }


def test_dask_executor_gives_the_same_gradebook(graded, tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None, silence_logs=40
    ) as cluster:
        started = time.monotonic()
        result = grade(
            graded["submissions"], tmp_path / "out", "--executor", "dask", "--scheduler", cluster.scheduler_address
        )
        seconds = time.monotonic() - started
    print(f"\nDask LocalCluster (2 workers): graded in {seconds:.1f} s; local pool -j 2: {graded['seconds']:.1f} s")
    assert result.returncode == 0, result.stdout + result.stderr
    local, remote = rows(graded["out"]), rows(tmp_path / "out")

    def stable(book):
        return {student: {k: v for k, v in row.items() if k not in VOLATILE} for student, row in book.items()}

    # The local gradebook's s01 row may have been regraded by the test above: same content either way.
    assert stable(remote) == stable(local)
    assert grading_processes(run_marker(result.stdout)) == []


def test_interrupt_keeps_finished_rows_and_leaves_nothing_running(tmp_path):
    submissions = tmp_path / "submissions"
    submissions.mkdir()
    crafted._write(submissions, "a_correct", crafted.solution())
    # A loop that also keeps DataLoader workers alive and starts a daemon in its own
    # session: all of them must be found and killed.
    loop = (
        "import subprocess, sys, torch\n"
        "from torch.utils.data import DataLoader, TensorDataset\n"
        "loader = DataLoader(TensorDataset(torch.arange(64.0)), batch_size=8, num_workers=2, persistent_workers=True)\n"
        "batches = iter(loader)\n"
        "next(batches)\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'], start_new_session=True)\n"
        "while True:\n    pass"
    )
    crafted._write(submissions, "b_loop", crafted._with({crafted.PIPELINE: loop}))
    crafted._write(submissions, "c_loop", crafted._with({crafted.PIPELINE: loop}))
    out = tmp_path / "out"
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
        "-j",
        "2",
        "--no-solution-check",
        "--cell-timeout",
        "300",
        "--timeout",
        "300",
        "-p",
        "scale",
        "3.0",
    ]  # the rerun's parameters
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, preexec_fn=default_sigint
    )
    try:
        deadline = time.monotonic() + 120
        # Wait until a_correct has its row and both loops' kernels are spinning.
        while time.monotonic() < deadline:
            done = (out / "grades.json").exists() and "a_correct" in rows(out)
            log = (out / "grading.log").read_text() if (out / "grading.log").exists() else ""
            marker = run_marker(log) if "; run grade-" in log else None
            if done and marker and len(grading_processes(marker)) >= 8:  # 2 kernels, 4 DataLoader workers, 2 daemons
                break
            time.sleep(0.5)
        else:
            pytest.fail("the grader never reached the state to interrupt")
        process.send_signal(signal.SIGINT)
        try:
            output, _ = process.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGUSR1)  # the grader prints where each of its threads waits
            time.sleep(3)
            process.kill()
            pytest.fail("the grader did not stop within 90 s of Ctrl-C:\n" + process.communicate()[0])
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, output
    assert "interrupted" in output
    time.sleep(0.5)
    assert grading_processes(marker) == []
    assert list(rows(out)) == ["a_correct"]
    # Running the same command again grades only the rest.
    rerun = grade(submissions, out, "-j", "2", "--no-solution-check")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "skip a_correct: already graded" in rerun.stdout
    assert {s: r["status"] for s, r in rows(out).items()} == {
        "a_correct": "ok",
        "b_loop": "timeout",
        "c_loop": "timeout",
    }
    assert grading_processes(run_marker(rerun.stdout)) == []


def test_usr1_prints_where_a_running_grader_waits_and_the_run_goes_on(tmp_path):
    submissions = tmp_path / "submissions"
    submissions.mkdir()
    crafted._write(submissions, "sleeper", crafted._with({crafted.PIPELINE: "import time\ntime.sleep(600)"}))
    out = tmp_path / "out"
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
        "--no-solution-check",
        "--cell-timeout",
        "300",
        "--timeout",
        "300",
    ]
    errors_file = tmp_path / "stderr.txt"
    with open(errors_file, "w") as errors_stream:
        process = subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.PIPE, stderr=errors_stream, text=True, preexec_fn=default_sigint
        )
    try:
        # Wait for the state the test is about: this run's runner process exists, so the worker
        # thread has started it and waits in run_runner (not still importing or checking the notebook).
        deadline = time.monotonic() + 300
        marker = None
        while time.monotonic() < deadline:
            log = (out / "grading.log").read_text() if (out / "grading.log").exists() else ""
            found = re.search(r"; run (grade-[0-9a-f]{12})$", log, re.MULTILINE)
            marker = found.group(1) if found else None
            if marker and any("course_kit.grading.runner" in _command_line(pid) for pid in grading_processes(marker)):
                break
            time.sleep(0.2)
        assert marker, "the grader never started a runner"
        process.send_signal(signal.SIGUSR1)
        while time.monotonic() < deadline and "run_runner" not in errors_file.read_text():
            time.sleep(0.2)
        assert process.poll() is None  # still grading
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    errors = errors_file.read_text()
    assert process.returncode == 130, output + errors
    assert "most recent call first" in errors and "run_runner" in errors, errors


def _command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def test_stop_on_error_runs_nothing_after_the_first_failure():
    from course_kit.grading.job import GradingJob, Limits, SandboxOptions, grade_job

    nb = crafted._with({crafted.PIPELINE: "result = 1 / 0"})
    job = GradingJob(
        "raising",
        crafted.ASSIGNMENT,
        "raising.ipynb",
        nbformat.writes(nb).encode(),
        {},
        None,
        crafted.HIDDEN_CHECKS.read_text(),
        {"profile": "grading"},
        Limits(timeout=60, cell_timeout=20),
        SandboxOptions(),
        f"grade-{uuid.uuid4().hex[:12]}",
        stop_on_error=True,
    )
    row = grade_job(job)["row"]
    assert row["status"] == "error" and row["detail"] == "cell In [8] raised ZeroDivisionError: division by zero"
    assert row["metrics"] is None  # the results cell after it never ran
    assert row["points"] == 6  # the checks call the functions, which are right: the pipeline cell does not matter
