"""Fast tests of the grading engine's parts: checks API, harness, preflight, submissions,
gradebook, judging, sandbox and process cleanup. The end-to-end runs are in test_grading_e2e.py."""
from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from contextlib import redirect_stdout
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

from course_kit.grading import checks, harness, procs, runner, sandbox
from course_kit.grading.cli import parse_size
from course_kit.parameters import parse_value as parameter_value
from course_kit.grading.gradebook import Gradebook, GradebookError, render_feedback
from course_kit.grading.job import GradingJob, Limits, SandboxOptions, judge_report, preflight_notebook
from course_kit.grading.submissions import discover, student_id

HERE = Path(__file__).resolve().parent
TOY_CHECKS = (HERE / "grading_toy" / "solutions" / "hidden_checks" / "00_toy.py").read_text()


# --------------------------------------------------------------------------- plain data
class Rigged:
    def __eq__(self, other):
        return True


class LiesAboutClass:
    @property
    def __class__(self):
        return int


class LoudInt(int):
    def __int__(self):
        return 999

    def __eq__(self, other):
        return True


class RiggedList(list):
    def __eq__(self, other):
        return True

    def __iter__(self):
        return iter([0, 1, 4])


def test_plain_rejects_objects_that_only_pretend():
    for impostor in (Rigged(), LiesAboutClass(), object(), lambda: 1):
        with pytest.raises(checks.CheckFailed, match="plain data"):
            checks.plain(impostor)


def test_plain_uses_base_methods_of_subclasses():
    assert checks.plain(LoudInt(3)) == 3 and type(checks.plain(LoudInt(3))) is int
    # The list's real content, not what the overridden __iter__ claims.
    assert checks.plain(RiggedList([7])) == [7]


def test_plain_converts_arrays_tensors_and_containers():
    assert checks.plain(np.arange(4).reshape(2, 2)) == [[0, 1], [2, 3]]
    assert checks.plain(np.float32(0.5)) == 0.5
    assert checks.plain(torch.tensor([1.0, 2.0])) == [1.0, 2.0]
    assert checks.plain(torch.Size([2, 3])) == [2, 3]
    assert checks.plain({"b": (1,), "a": {2, 1}}) == {"b": [1], "a": [1, 2]}
    assert checks.plain({1: "x"}) == [[1, "x"]]
    with pytest.raises(checks.CheckFailed, match="too large"):
        checks.plain(np.zeros(checks.MAX_PLAIN_ITEMS + 10))


def test_matchers_compare_plain_data_strictly():
    assert checks.equal(2).judge(2.0)[0]
    assert not checks.equal(1).judge(True)[0]
    assert not checks.equal([1, 2]).judge([1, 2, 3])[0]
    assert checks.equal([1, 2]).judge([1, 2, 3]) == (False, "got 3 items, expected 2")
    assert checks.close([0.1, 0.2], rel=1e-6).judge([0.1 + 1e-12, 0.2])[0]
    assert not checks.close(1.0, rel=1e-6).judge(1.1)[0]
    assert checks.close(float("nan")).judge(float("nan"))[0]
    assert checks.between(0.5, 1.0).judge(0.3) == (False, "got 0.3")
    assert checks.between(0.5, 1.0, reveal=True).judge(0.3) == (False, "got 0.3, expected a value between 0.5 and 1.0")
    assert checks.one_of("sgd", "adam").judge("adam")[0]
    assert not checks.satisfies(lambda v: v > 0, "positive").judge("text")[0]  # a crashing predicate fails


def test_judge_uses_parameters_and_treats_false_as_failure():
    @checks.check(expect=lambda params: checks.equal(params["epochs"] * 2))
    def doubled(ns):
        return 6

    @checks.check()
    def asserts(ns):
        return False

    assert checks.judge(doubled.__course_check__, {"ok": True, "observation": 6}, {"epochs": 3}) == (True, "correct")
    assert checks.judge(doubled.__course_check__, {"ok": True, "observation": 6}, {"epochs": 4})[0] is False
    assert checks.judge(asserts.__course_check__, {"ok": True, "observation": False}, {}) == (False, "failed")
    assert checks.judge(asserts.__course_check__, None, {})[0] is False


def test_load_checks_reports_problems_with_the_fix():
    with pytest.raises(ValueError, match="declares no checks"):
        checks.load_checks("x = 1\n")
    duplicated = "from course_kit.grading.checks import check\n@check\ndef a(ns):\n    pass\na2 = a\n"
    with pytest.raises(ValueError, match="unique"):
        checks.load_checks(duplicated)
    with pytest.raises(ValueError, match="points"):
        checks.check(points=-1)


def test_kernel_source_keeps_no_expectations():
    kernel = checks.kernel_source(TOY_CHECKS)
    assert "expect" not in kernel and "reference_squares" not in kernel and "17.5" not in kernel
    assert "HIDDEN_N = 7" in kernel  # used by a check in the kernel, so it stays
    full = [c.name for c in checks.load_checks(TOY_CHECKS)]
    assert [c.name for c in checks.load_checks(kernel)] == full
    assert all(c.expect is None for c in checks.load_checks(kernel))


# --------------------------------------------------------------------------- harness
def _listening_channel() -> runner.Channel:
    """A runner's channel in this process, already in its check phase (as if the kernel were us)."""
    channel = runner.Channel()
    channel.checks_started = True
    channel.thread.start()
    return channel


def _run_harness(source: str, user_ns: dict, parameter_names=()) -> list[dict]:
    channel = _listening_channel()
    args = {**channel.harness_args(), "api_source": (HERE.parent / "course_kit/grading/checks.py").read_text(),
            "checks_source": checks.kernel_source(source), "checks_filename": "<hidden checks test>",
            "parameter_names": list(parameter_names)}
    harness.run(args, user_ns)
    channel.wait_for_report(20, seconds=5)
    records, problems = channel.report()
    assert problems == []
    return records


def test_harness_reports_observations_failures_and_timeouts():
    source = textwrap.dedent('''
        from course_kit.grading.checks import check, equal, CheckFailed
        @check(expect=equal([0, 1]))
        def observed(ns):
            return ns.call("f", 2)
        @check()
        def failing(ns):
            raise CheckFailed("a message for the student")
        @check(timeout=0.3)
        def slow(ns):
            while True:
                pass
        @check()
        def missing(ns):
            return ns["nope"]
        @check()
        def odd(ns):
            return object()
    ''')
    sentinel, real = object(), sys.modules[harness.API_MODULE]
    sys.modules[harness.API_MODULE] = sentinel  # what a student might have planted
    try:
        records = _run_harness(source, {"f": lambda n: list(range(n)), "epochs": 2}, ["epochs", "gone"])
        assert sys.modules[harness.API_MODULE] is sentinel  # put back as it was
    finally:
        sys.modules[harness.API_MODULE] = real
    by_kind = {r["kind"] for r in records}
    assert by_kind == {"parameters", "check", "done"}
    assert records[0]["values"] == {"epochs": {"value": 2}, "gone": {"missing": True}}
    results = {r["name"]: r for r in records if r["kind"] == "check"}
    assert results["observed"] == {"kind": "check", "name": "observed", "ok": True, "observation": [0, 1]}
    assert results["failing"]["message"] == "a message for the student"
    assert results["slow"]["message"] == "took longer than 0.3 s"
    assert "`nope` is not defined" in results["missing"]["message"]
    assert "plain data" in results["odd"]["message"]


def test_harness_encoding_is_json():
    value = {"text": "quote \" backslash \\ newline \n snow \u2603 emoji \U0001F600", "n": [1, -2.5, None, True]}
    assert json.loads(harness.encode(value)) == value


def test_the_channel_accepts_only_the_harness_signed_records_in_order():
    channel = _listening_channel()
    os.write(channel.records_write, b'0 deadbeef {"kind":"done"}\n')
    channel.wait_for_report(0, seconds=2)
    records, problems = channel.report()
    assert records == [] and problems and "not signed" in problems[0]


def test_bytes_before_the_check_phase_are_tampering():
    channel = runner.Channel()
    channel.thread.start()
    os.write(channel.records_write, b"ready\n")  # student code, while its cells run
    time.sleep(0.3)
    channel.checks_started = True
    _, problems = channel.report()
    assert problems == ["6 byte(s) reached the grader's private channel before the checks ran"]


# --------------------------------------------------------------------------- preflight and judging
def _notebook(*cells) -> bytes:
    return nbformat.writes(nbformat.v4.new_notebook(cells=list(cells))).encode()


def test_preflight_refuses_broken_notebooks():
    assert preflight_notebook(b'{"cells": [').status == "invalid-notebook"
    assert "not a Jupyter notebook" in preflight_notebook(b'{"hello": 1}').problem
    assert preflight_notebook(b"\xff\xfe").status == "invalid-notebook"
    assert preflight_notebook(_notebook(nbformat.v4.new_code_cell("x = 1"))).status == "parameters-missing"


def test_preflight_wants_the_parameters_cell_first_and_plain():
    """papermill injects after the tagged cell: a later tag or code in that cell would run before the grader's values."""
    def tagged(source):
        return nbformat.v4.new_code_cell(source, metadata={"tags": ["parameters"]})

    first, work = nbformat.v4.new_code_cell("profile = 'auto'\nscale = None"), nbformat.v4.new_code_cell("y = 2")
    moved = preflight_notebook(_notebook(first, work, tagged("")))
    assert moved.status == "parameters-missing" and "code cell 3, not on the first" in moved.problem
    twice = preflight_notebook(_notebook(tagged("profile = 'auto'"), work, tagged("")))
    assert "more than one cell" in twice.problem
    for code in ("import os\nprofile = 'auto'", "profile = open('x').read()", "profile, scale = 'a', 1", "%env A=1"):
        assert preflight_notebook(_notebook(tagged(code), work)).status == "parameters-missing", code
    plain = '"""Knobs."""\nprofile = "auto"  # comment\nseeds: list = [0, -1]\nlr = 1e-3\nname = None'
    assert preflight_notebook(_notebook(nbformat.v4.new_markdown_cell("# T"), tagged(plain), work)).status is None


def test_preflight_neutralizes_execution_tags_and_outputs():
    parameters = nbformat.v4.new_code_cell("profile = 'auto'", metadata={"tags": ["parameters"]})
    sneaky = nbformat.v4.new_code_cell("raise ValueError", metadata={"tags": ["raises-exception", "skip-execution", "x"]})
    sneaky.outputs = [nbformat.v4.new_output("stream", name="stdout", text="fake\n")]
    sneaky.execution_count = 3
    checked = preflight_notebook(b"\xef\xbb\xbf" + _notebook(parameters, sneaky))  # a BOM is fine
    assert checked.status is None
    cell = checked.notebook["cells"][1]
    assert cell["metadata"]["tags"] == ["x"] and cell["outputs"] == [] and cell["execution_count"] is None


def _job(parameters=None) -> GradingJob:
    return GradingJob("s", "00_toy", "s.ipynb", b"", {}, None, TOY_CHECKS, parameters or {"profile": "grading"},
                      Limits(), SandboxOptions(), "m")


def _report(records=(), **extra) -> dict:
    report = {"stop": None, "errors": [], "check_phase": "ran", "exercises": {"squares": True, "scaled_mean": True},
              "records": [{"kind": "parameters", "values": {"profile": {"value": "grading"}}}, *records,
                          {"kind": "done"}]}
    report.update(extra)
    return report


def _check(name, observation):
    return {"kind": "check", "name": name, "ok": True, "observation": observation}


ALL_RIGHT = [_check("squares_hidden", [0, 1, 4, 9, 16, 25, 36]), _check("squares_empty", []),
             _check("scaled_mean_hidden", 8.0), _check("pipeline_result", 35.0)]


def test_judging_statuses():
    assert judge_report(_job(), _report(ALL_RIGHT))["status"] == "ok"
    assert judge_report(_job(), _report(ALL_RIGHT))["points"] == 6
    # Two records for one check: the channel was written to by someone else, and nothing counts.
    doubled = judge_report(_job(), _report(ALL_RIGHT + [_check("squares_empty", [])]))
    assert doubled["status"] == "tampered" and doubled["points"] == 0
    assert judge_report(_job(), {**_report(ALL_RIGHT), "tampering": ["x"]})["status"] == "tampered"
    error = {"cell_index": 9, "execution_count": 8, "code_cell": 8, "ename": "MemoryError", "evalue": "", "exercise": None}
    assert judge_report(_job(), _report(ALL_RIGHT, errors=[error]))["status"] == "out-of-memory"
    placeholder = dict(error, ename="NotImplementedError", exercise="squares")
    verdict = judge_report(_job(), _report(ALL_RIGHT, errors=[placeholder]))
    assert verdict["status"] == "incomplete" and verdict["error_cell"] == 8 and verdict["points"] == 6
    assert judge_report(_job(), _report(ALL_RIGHT, exercises={"squares": True}))["status"] == "incomplete"
    mismatch = _report(ALL_RIGHT)
    mismatch["records"][0] = {"kind": "parameters", "values": {"profile": {"value": "full"}}}
    ignored = judge_report(_job(), mismatch)
    assert ignored["status"] == "parameters-ignored" and ignored["points"] == 0
    assert [c["passed"] for c in ignored["checks"]] == [True] * 4  # shown, never counted
    died = judge_report(_job(), _report((), stop={"reason": "kernel-died", "execution_count": 4}, kernel_exit=-9,
                                        check_phase="skipped: kernel-died"))
    assert died["status"] == "kernel-died" and "signal 9" in died["detail"] and died["points"] == 0
    assert judge_report(_job(), {"runner_error": "Traceback...\nBoom"})["status"] == "grader-error"
    assert judge_report(_job(), _report([{"kind": "load-error", "message": "x"}]))["status"] == "grader-error"
    assert judge_report(_job(), _report(ALL_RIGHT, check_phase="timeout: ran past 5 s"))["status"] == "timeout"


# --------------------------------------------------------------------------- submissions and gradebook
def test_discover_files_folders_and_problems(tmp_path):
    notebook = _notebook(nbformat.v4.new_code_cell("x = 1"))
    (tmp_path / "ana.ipynb").write_bytes(notebook)
    (tmp_path / "bo").mkdir()
    (tmp_path / "bo" / "00_toy.ipynb").write_bytes(notebook)
    (tmp_path / "bo" / "scratch.ipynb").write_bytes(notebook)
    (tmp_path / "bo" / "helper.py").write_text("X = 1\n")
    (tmp_path / "bo" / "link.py").symlink_to("/etc/hostname")
    (tmp_path / "bo" / ".ipynb_checkpoints").mkdir()
    (tmp_path / "bo" / ".ipynb_checkpoints" / "old.py").write_text("")
    (tmp_path / "cy").mkdir()
    (tmp_path / "cy" / "a.ipynb").write_bytes(notebook)
    (tmp_path / "cy" / "b.ipynb").write_bytes(notebook)
    (tmp_path / "dee").mkdir()
    (tmp_path / "readme.txt").write_text("")
    found = {s.student: s for s in discover(tmp_path, "00_toy")}
    assert sorted(found) == ["ana", "bo", "cy", "dee"]
    assert found["bo"].files.keys() == {"scratch.ipynb", "helper.py"}
    assert "several notebooks" in found["cy"].problem and "no .ipynb" in found["dee"].problem
    assert student_id("x y/z.ipynb") == "x_y_z"


def test_student_ids_are_unicode_aware_unique_and_nobody_vanishes(tmp_path):
    notebook = _notebook(nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]}))
    for name in ("José.ipynb", "Josè.ipynb", "Ana María.ipynb", "Ana_María.ipynb", ".bob.ipynb", "..ipynb"):
        (tmp_path / name).write_bytes(notebook)
    (tmp_path / ".ipynb_checkpoints").mkdir()
    (tmp_path / ".ipynb_checkpoints" / "José-checkpoint.ipynb").write_bytes(notebook)
    warnings = []
    found = {s.student: s for s in discover(tmp_path, "00_toy", warn=warnings.append)}
    # Two people whose names differ only in an accent are two students; a clash of ids is
    # resolved by a stable suffix, and everyone keeps their own file name.
    assert {s.file_name for s in found.values()} == {"José.ipynb", "Josè.ipynb", "Ana María.ipynb",
                                                      "Ana_María.ipynb", ".bob.ipynb", "..ipynb"}
    assert {"José", "Josè", "Ana_María", "bob"} <= set(found)
    renamed = found.keys() - {"José", "Josè", "Ana_María", "bob"}
    assert len(renamed) == 2 and any(key.startswith("Ana_María~") for key in renamed)
    assert sorted(discover(tmp_path, "00_toy")[i].student for i in range(6)) == sorted(found)  # stable
    assert any("both make the student id" in w for w in warnings) and any(".bob.ipynb" in w for w in warnings)


def test_sizes_are_checked_before_anything_is_read(tmp_path, monkeypatch):
    from course_kit.grading import submissions

    student = tmp_path / "big"
    student.mkdir()
    (student / "00_toy.ipynb").write_bytes(_notebook(nbformat.v4.new_code_cell("x = 1")))
    with open(student / "data.bin", "wb") as handle:  # sparse: huge on paper, nothing on disk
        handle.truncate(3 * 1024**3)
    (tmp_path / "huge.ipynb").write_bytes(b"")
    os.truncate(tmp_path / "huge.ipynb", 2 * 1024**3)
    reads = []
    real = submissions.read_regular

    def reading(path, limit):  # records what was read, not what was opened and refused by its size
        data = real(path, limit)
        reads.append(path.name)
        return data

    monkeypatch.setattr(submissions, "read_regular", reading)
    found = {s.student: s for s in submissions.discover(tmp_path, "00_toy")}
    assert "more than the 100 MB allowed" in found["big"].problem and found["big"].notebook_bytes is None
    assert "more than the 50 MB allowed" in found["huge"].problem
    assert reads == []  # neither the 3 GiB file nor the 2 GiB notebook was read


def _result(student, status="ok", points=1, sha="a"):
    row = {"student": student, "assignment": "00_toy", "status": status, "detail": "", "error_cell": None,
           "points": points, "max_points": 6, "checks": {"squares_hidden": points}, "runtime_s": 1.0,
           "metrics": {"acc": {"top1": 0.5}, "note": "=CMD()"}, "metrics_problem": None,
           "parameters": {"profile": "grading"}, "sandbox": "x", "submission": "s", "sha256": sha, "graded_at": "t"}
    return {"row": row, "checks": [{"name": "squares_hidden", "title": "T", "points": points, "max_points": 2,
                                    "passed": bool(points), "message": "correct"}],
            "executed_notebook": "{}", "kernel_log": "log"}


def test_gradebook_rows_resume_and_columns(tmp_path):
    declared = checks.load_checks(TOY_CHECKS)
    book = Gradebook(tmp_path, "00_toy", declared, metric_keys=["acc.top1", "note"])
    book.record(_result("b"))
    book.record(_result("a", status="grader-error", points=0))
    header, *lines = (tmp_path / "grades.csv").read_text().splitlines()
    assert header.split(",")[:7] == ["student", "status", "points", "max_points", "detail", "error_cell",
                                     "check:squares_hidden"]
    assert "metric:acc.top1" in header and lines[0].startswith("a,") and "'=CMD()" in lines[1]
    assert (tmp_path / "executed" / "b.ipynb").exists() and (tmp_path / "feedback" / "b.md").exists()
    again = Gradebook(tmp_path, "00_toy", declared)
    assert again.should_grade("b", "a", force=False) == (False, "already graded")
    assert again.should_grade("b", "changed", force=False)[0]
    assert again.should_grade("b", "a", force=True)[0]
    assert again.should_grade("a", "a", force=False) == (True, "retrying a grader-error")
    with pytest.raises(GradebookError, match="holds grades for"):
        Gradebook(tmp_path, "03_partial_freezing", declared)


def test_only_declared_metrics_become_columns_and_the_rest_is_noted(tmp_path):
    """Class 12: a results record with 20,000 keys does not give every student 20,000 columns."""
    book = Gradebook(tmp_path, "00_toy", checks.load_checks(TOY_CHECKS), metric_keys=["acc.top1"])
    flood = _result("flood")
    flood["row"]["metrics"] = {"acc": {"top1": 0.5}, **{f"k{i}": i for i in range(20_000)}}
    book.record(flood)
    book.record(_result("calm"))
    header = (tmp_path / "grades.csv").read_text().splitlines()[0].split(",")
    assert [c for c in header if c.startswith("metric:")] == ["metric:acc.top1"]
    rows = {row["student"]: row for row in json.loads((tmp_path / "grades.json").read_text())["rows"]}
    assert rows["flood"]["metrics"] == {"acc.top1": 0.5}
    assert rows["flood"]["metrics_problem"].startswith("ignored 20000 undeclared metric key(s): k0, k1")
    assert rows["calm"]["metrics_problem"] == "ignored 1 undeclared metric key(s): note"
    assert (tmp_path / "grades.json").stat().st_size < 20_000


def test_feedback_shows_titles_and_messages_only():
    row = _result("s", status="error", points=0)["row"]
    row["detail"] = "cell In [8] raised ZeroDivisionError"
    text = render_feedback(row, [{"title": "squares works", "points": 0, "max_points": 2, "passed": False,
                                  "message": "got [1]"}])
    assert "squares works" in text and "failed: got [1]" in text and "In [8]" in text


# --------------------------------------------------------------------------- runner helpers
def test_read_metrics_never_follows_links_or_blocks(tmp_path):
    (tmp_path / "ok.json").write_text('{"acc": 0.5}')
    (tmp_path / "list.json").write_text("[1]")
    (tmp_path / "link.json").symlink_to("/etc/passwd")
    os.mkfifo(tmp_path / "fifo.json")
    assert runner.read_metrics(tmp_path, "ok.json") == ({"acc": 0.5}, None)
    assert "not a JSON object" in runner.read_metrics(tmp_path, "list.json")[1]
    assert "could not be opened" in runner.read_metrics(tmp_path, "link.json")[1]
    assert "not a regular file" in runner.read_metrics(tmp_path, "fifo.json")[1]
    (tmp_path / "deep.json").write_text('{"a": ' + "[" * 5000 + "]" * 5000 + "}")
    assert "nested" in runner.read_metrics(tmp_path, "deep.json")[1]  # a student problem, not a grader crash


def test_kernel_environment_is_built_from_scratch(monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "do-not-leak")
    env = runner.kernel_environment({"threads": 2, "marker": "run:s", "data_dir": None}, tmp_path)
    assert "AWS_SECRET_ACCESS_KEY" not in env and env["HOME"] == str(tmp_path)
    assert env["OMP_NUM_THREADS"] == "2" and env[procs.MARKER_VARIABLE] == "run:s"


def test_cli_value_parsing():
    assert parse_size("1G") == 1024**3 and parse_size("1.5M") == int(1.5 * 1024**2) and parse_size("0") is None
    assert parameter_value("True") is True and parameter_value("2") == 2 and parameter_value("x1") == "x1"


def test_cli_setup_errors_name_the_fix(tmp_path, capsys):
    from course_kit.cli import main

    code = main(["grade", str(tmp_path), "--assignment", "nope", "--out", str(tmp_path / "out"),
                 "--solutions", str(tmp_path)])
    assert code == 2 and "hidden checks not found" in capsys.readouterr().err
    checks_dir = HERE / "grading_toy" / "solutions"
    code = main(["grade", str(tmp_path), "--assignment", "00_toy", "--out", str(tmp_path / "out"),
                 "--solutions", str(checks_dir), "--executor", "dask"])
    assert code == 2 and "--scheduler" in capsys.readouterr().err


# --------------------------------------------------------------------------- sandbox and processes
def _in_child(code: str) -> subprocess.CompletedProcess:
    prelude = f"import sys; sys.path.insert(0, {str(HERE.parent / 'course_kit' / 'grading')!r}); import sandbox\n"
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=60)


def test_memory_limit_turns_a_hog_into_memory_error():
    result = _in_child('''
        sandbox.set_limits(512 * 1024 ** 2, None)
        try:
            hog = bytearray(2 * 1024 ** 3)
            print("allocated")
        except MemoryError:
            print("MemoryError")
    ''')
    assert result.stdout.strip() == "MemoryError", result.stderr


def test_kill_tree_reaches_processes_that_left_the_group():
    # A child that starts a grandchild in its own session (the usual escape from killpg).
    code = ("import subprocess, sys, time\n"
            "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'], start_new_session=True)\n"
            "time.sleep(120)\n")
    child = subprocess.Popen([sys.executable, "-c", code], env=dict(os.environ, **{procs.MARKER_VARIABLE: "unit:x"}))
    deadline = time.monotonic() + 20
    while len(procs.descendants(child.pid)) < 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    family = [child.pid, *procs.descendants(child.pid)]
    assert len(family) == 2 and set(procs.processes_with_marker("unit")) >= set(family)
    procs.kill_tree(child.pid, include_root=True)
    assert child.wait(timeout=10) == -signal.SIGKILL
    time.sleep(0.2)
    assert procs.processes_with_marker("unit") == []


def test_container_command_limits_the_whole_submission(tmp_path):
    from course_kit.grading.job import container_name, runner_command

    box = SandboxOptions(container="course-grader:1", data_dir="/srv/data")
    job = GradingJob("ana", "00_toy", "", b"", {}, None, TOY_CHECKS, {}, Limits(memory_bytes=2 * 1024**3, threads=2),
                     box, "grade-abc")
    command = runner_command(job, tmp_path)
    joined = " ".join(command)
    assert command[:2] == ["docker", "run"] and container_name(job) == "course-grade-abc-ana"
    for flag in ("--network none", f"--memory {2 * 1024**3 + 512 * 1024**2}", "--read-only", "--pids-limit 1024",
                 f"-v {tmp_path}:{tmp_path}", "-v /srv/data:/srv/data:ro", "course-grader:1 python -m course_kit.grading.runner"):
        assert flag in joined, flag
    assert runner_command(_job(), tmp_path)[0] == sys.executable  # no image: the local runner


def test_a_runner_that_dies_costs_one_grader_error_row(monkeypatch, tmp_path):
    from course_kit.grading import job as job_module

    broken = tmp_path / "runner.py"
    broken.write_text("import sys\nsys.exit(3)\n")  # ends without writing a report
    monkeypatch.setattr(job_module, "runner_command", lambda job, private: [sys.executable, str(broken)])
    parameters = nbformat.v4.new_code_cell("profile = 'auto'", metadata={"tags": ["parameters"]})
    job = GradingJob("s", "00_toy", "s.ipynb", _notebook(parameters), {}, None, TOY_CHECKS, {"profile": "grading"},
                     Limits(), SandboxOptions(), "grade-unit")
    row = job_module.grade_job(job)["row"]
    assert row["status"] == "grader-error" and "without a report" in row["detail"] and row["max_points"] == 6

    def explode(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(job_module, "run_runner", explode)
    result = job_module.grade_job(job)
    assert result["row"]["status"] == "grader-error" and result["row"]["detail"] == "OSError: disk full"
    assert "Traceback" in result["kernel_log"]


def test_judging_checks_what_load_parameters_resolved():
    """Values must be the injected ones where cu.load_parameters used them, not only at the end."""
    final = {"profile": {"value": "grading"}, "scale": {"value": 2.0}}

    def with_resolved(resolved):
        report = _report(ALL_RIGHT)
        report["records"][0].update(values=final, resolved=resolved)
        return report

    def call(profile, scale):
        return {"requested_profile": profile, "values": {"profile": profile, "scale": scale}}

    job = _job({"profile": "grading", "scale": 2.0})
    job.uses_load_parameters = True
    assert judge_report(job, with_resolved([call("grading", 2.0)]))["status"] == "ok"
    verdict = judge_report(job, with_resolved([call("grading", 1.0)]))  # set back before the end: still seen
    assert verdict["status"] == "parameters-ignored" and "`scale` = 1.0, not the injected 2.0" in verdict["detail"]
    assert "profile 'smoke'" in judge_report(job, with_resolved([call("smoke", 2.0)]))["detail"]
    assert "never ran" in judge_report(job, with_resolved([]))["detail"]
    assert judge_report(job, with_resolved([{"unreadable": True}]))["status"] == "parameters-ignored"
    job.uses_load_parameters = False  # the toy itself takes its knobs without it
    assert judge_report(job, with_resolved([]))["status"] == "ok"


def test_the_process_map_skips_a_process_whose_stat_file_is_read_empty_as_it_exits(monkeypatch):
    """On a busy machine /proc/<pid>/stat of an exiting process can read as empty: that must not stop a grading run."""
    from course_kit.grading import procs

    real_read = Path.read_text

    def read(path, *args, **kwargs):
        if path.name == "stat" and path.parent.name == str(os.getpid()):
            return ""  # this process, caught exiting
        return real_read(path, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", read)
    parents = procs._parent_map()
    assert os.getpid() not in parents and os.getppid() in parents
