"""Fast tests of the grading engine's parts: checks API, probes, preflight, submissions,
gradebook, judging, sandbox and process cleanup. The end-to-end runs are in test_grading_e2e.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

from course_kit.grading import checks, probe, procs, runner
from course_kit.grading.cli import parse_size
from course_kit.grading.gradebook import Gradebook, GradebookError, render_feedback
from course_kit.grading.job import GradingJob, Limits, SandboxOptions, drawn_inputs, judge_report, preflight_notebook
from course_kit.grading.submissions import discover, student_id
from course_kit.parameters import parse_value as parameter_value

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


def _plain_failure(value) -> str:
    with pytest.raises(probe._Failure) as failure:
        probe.plain(value)
    return failure.value.code


def test_plain_rejects_objects_that_only_pretend():
    for impostor in (Rigged(), LiesAboutClass(), object(), lambda: 1):
        assert _plain_failure(impostor) == "not-plain"
    with pytest.raises(ValueError, match="not plain data"):  # the grader's side says what went wrong
        checks.plain(Rigged())


def test_plain_uses_base_methods_of_subclasses():
    assert probe.plain(LoudInt(3)) == 3 and type(probe.plain(LoudInt(3))) is int
    # The list's real content, not what the overridden __iter__ claims.
    assert probe.plain(RiggedList([7])) == [7]


def test_plain_converts_arrays_tensors_and_containers():
    assert probe.plain(np.arange(4).reshape(2, 2)) == [[0, 1], [2, 3]]
    assert probe.plain(np.float32(0.5)) == 0.5
    assert probe.plain(torch.tensor([1.0, 2.0])) == [1.0, 2.0]
    assert probe.plain(torch.Size([2, 3])) == [2, 3]
    assert probe.plain({"b": (1,), "a": {2, 1}}) == {"b": [1], "a": [1, 2]}
    assert probe.plain({1: "x"}) == [[1, "x"]]
    assert _plain_failure(np.zeros(probe.MAX_PLAIN_ITEMS + 10)) == "too-large"
    assert _plain_failure("x" * (probe.MAX_TEXT_CHARS + 1)) == "too-large"  # text is capped like anything else


def test_matchers_compare_plain_data_strictly_and_describe_only_kind_and_size():
    assert checks.equal(2).judge(2.0)[0]
    assert not checks.equal(1).judge(True)[0]
    assert checks.equal([1, 2]).judge([1, 2, 3]) == (False, "got a list of 3 items, expected 2")
    assert checks.equal({"a": 1, "b": 2}).judge({"a": 1}) == (
        False,
        "got a dict without the expected keys (missing: b)",
    )
    assert checks.close([0.1, 0.2], rel=1e-6).judge([0.1 + 1e-12, 0.2])[0]
    assert not checks.close(1.0, rel=1e-6).judge(1.1)[0]
    assert checks.close(float("nan")).judge(float("nan"))[0]
    assert checks.between(0.5, 1.0).judge(0.3) == (False, "got a number, not the expected value")
    assert checks.one_of("sgd", "adam").judge("adam")[0]
    assert not checks.satisfies(lambda v: v > 0, "positive").judge("text")[0]  # a crashing predicate fails
    # A student's text never reaches the message, however short and harmless it looks.
    assert checks.equal("layer4").judge("SECRET") == (False, "got text, not the expected value")


def test_judge_computes_the_expectation_from_the_inputs_and_parameters():
    @checks.check(
        inputs=lambda rng, params: rng.randint(1, 99), expect=lambda n, params: checks.equal(n * params["epochs"])
    )
    def scaled(ns, n):
        return ns.call("times_epochs", n)

    @checks.check()
    def asserts(ns):
        return False

    declared = scaled.__course_check__
    assert checks.judge(declared, {"ok": True, "observation": 21}, {"epochs": 3}, inputs=7) == (True, "correct")
    assert checks.judge(declared, {"ok": True, "observation": 21}, {"epochs": 4}, inputs=7)[0] is False
    assert checks.judge(asserts.__course_check__, {"ok": True, "observation": False}, {}) == (False, "failed")
    assert checks.judge(asserts.__course_check__, None, {})[0] is False
    # Inputs differ between submissions and repeat for one seed.
    draws = {checks.draw_inputs([declared], {}, seed)["scaled"] for seed in range(20)}
    assert len(draws) > 10 and checks.draw_inputs([declared], {}, 5) == checks.draw_inputs([declared], {}, 5)


def test_failure_messages_use_only_the_graders_words():
    @checks.check(timeout=2)
    def probe_it(ns):
        return ns.call("squares", 3)

    declared, words = (
        probe_it.__course_check__,
        checks.vocabulary("ns.call('squares', 3)\nraise CheckFailed('too few')"),
    )

    def message(failure, detail):
        return checks.failure_message({"ok": False, "failure": failure, "detail": detail}, declared, words)

    assert message("raised", ["squares", "ValueError"]) == "calling `squares` raised ValueError"
    # A student's exception class is a way to carry text out: its name is never repeated.
    assert message("raised", ["squares", "Leak_0x6b65795f"]) == "calling `squares` raised an exception"
    assert message("raised", ["smuggled", "KeyError"]) == "your code raised KeyError"
    assert message("undefined", "squares").startswith("`squares` is not defined")
    assert "smuggled" not in message("undefined", "smuggled")
    assert message("check-failed", "too few") == "too few"
    assert message("check-failed", "the hidden input was 42") == "failed"
    assert message("timeout", "") == "took longer than 2 s"
    assert message("made-up", "anything") == "failed"


def test_load_checks_reports_problems_with_the_fix():
    with pytest.raises(ValueError, match="declares no checks"):
        checks.load_checks("x = 1\n")
    duplicated = "from course_kit.grading.checks import check\n@check\ndef a(ns):\n    pass\na2 = a\n"
    with pytest.raises(ValueError, match="unique"):
        checks.load_checks(duplicated)
    with pytest.raises(ValueError, match="points"):
        checks.check(points=-1)


def test_kernel_source_keeps_no_expectations_inputs_or_references():
    kernel = checks.kernel_source(TOY_CHECKS)
    for grader_side in ("expect", "inputs=", "reference_squares", "reference_scaled_mean", "some_numbers", "rng"):
        assert grader_side not in kernel, grader_side
    assert "LIMIT = 3" in checks.kernel_source("LIMIT = 3\n@check()\ndef f(ns):\n    return LIMIT\n")  # a probe uses it
    full = [c.name for c in checks.load_checks(TOY_CHECKS)]
    assert [c.name for c in checks.load_checks(kernel)] == full
    assert all(c.expect is None and c.inputs is None for c in checks.load_checks(kernel))


# --------------------------------------------------------------------------- probes
def _run_probes(
    source: str, user_ns: dict, tmp_path: Path, inputs=None, parameter_names=(), declared=None
) -> list[dict]:
    declared = declared or checks.load_checks(source)
    drawn = inputs or {}
    report = tmp_path / ".course-report-test"
    args = {
        "report": str(report),
        "probes_source": checks.kernel_source(source),
        "probes_filename": "<hidden checks>",
        "checks": [
            {"name": c.name, "timeout": c.timeout, "has_inputs": c.name in drawn, "inputs": drawn.get(c.name)}
            for c in declared
        ],
        "parameter_names": list(parameter_names),
    }
    probe.run(args, user_ns)
    records, started, done = runner.read_probe_report(report)
    assert started and done
    return records


def test_probes_report_observations_and_structured_failures(tmp_path):
    source = textwrap.dedent("""
        from course_kit.grading.checks import check, equal, CheckFailed
        @check(inputs=lambda rng, params: 3, expect=lambda n, params: equal(list(range(n))))
        def observed(ns, n):
            return ns.call("f", n)
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
            return ns.call("odd")
        @check()
        def raising(ns):
            return ns.call("boom")
    """)

    class Leak_secret(Exception):
        pass

    def boom():
        raise Leak_secret("the hidden input")

    declared = checks.load_checks(source)
    sentinel, real = object(), sys.modules.get(probe.API_MODULE)
    sys.modules[probe.API_MODULE] = sentinel  # what a student might have planted
    try:
        records = _run_probes(
            source,
            {"f": lambda n: list(range(n)), "odd": object, "boom": boom, "epochs": 2},
            tmp_path,
            inputs={"observed": 3},
            parameter_names=["epochs", "gone"],
            declared=declared,
        )
        assert sys.modules[probe.API_MODULE] is sentinel  # put back as it was
    finally:
        sys.modules[probe.API_MODULE] = real
    # What this process's cu.load_parameters resolved depends on the tests run before: only its shape is fixed.
    assert records[0]["kind"] == "parameters" and records[0]["values"] == {"epochs": 2, "gone": None}
    assert isinstance(records[0]["resolved"], list)
    results = {r["name"]: r for r in records[1:]}
    assert results["observed"] == {"name": "observed", "ok": True, "observation": [0, 1, 2]}
    assert (
        results["failing"]["failure"] == "check-failed" and results["failing"]["detail"] == "a message for the student"
    )
    assert results["slow"]["failure"] == "timeout"
    assert results["missing"] == {"name": "missing", "ok": False, "failure": "undefined", "detail": "nope"}
    assert results["odd"]["failure"] == "not-plain"
    assert results["raising"]["detail"] == ["boom", "Leak_secret"]  # the kernel says it; the grader does not repeat it
    declared = {c.name: c for c in declared}
    words = checks.vocabulary(checks.kernel_source(source))
    assert checks.judge(declared["raising"], results["raising"], {}, None, words) == (
        False,
        "calling `boom` raised an exception",
    )
    assert checks.judge(declared["failing"], results["failing"], {}, None, words) == (
        False,
        "a message for the student",
    )


def test_probe_encoding_is_json():
    value = {"text": 'quote " backslash \\ newline \n snow \u2603 emoji \U0001f600', "n": [1, -2.5, None, True]}
    assert json.loads(probe.encode(value)) == value


def test_the_report_file_is_read_without_following_links_or_blocking(tmp_path):
    target = tmp_path / "elsewhere"
    target.write_text('started\n{"name": "a", "ok": true, "observation": 1}\ndone\n')
    (tmp_path / "linked").symlink_to(target)
    assert runner.read_probe_report(tmp_path / "linked") == ([], False, False)
    os.mkfifo(tmp_path / "fifo")
    assert runner.read_probe_report(tmp_path / "fifo") == ([], False, False)
    assert runner.read_probe_report(tmp_path / "absent") == ([], False, False)


# --------------------------------------------------------------------------- preflight and judging
def _notebook(*cells) -> bytes:
    return nbformat.writes(nbformat.v4.new_notebook(cells=list(cells))).encode()


def test_preflight_refuses_broken_notebooks():
    assert preflight_notebook(b'{"cells": [').status == "invalid-notebook"
    assert "not a Jupyter notebook" in preflight_notebook(b'{"hello": 1}').problem
    assert preflight_notebook(b"\xff\xfe").status == "invalid-notebook"
    assert preflight_notebook(_notebook(nbformat.v4.new_code_cell("x = 1"))).status == "parameters-missing"


def test_preflight_wants_the_parameters_cell_first_and_plain():
    """papermill injects after the tagged cell: a later tag, or code in that cell, runs before the grader's values."""

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
    sneaky = nbformat.v4.new_code_cell(
        "raise ValueError", metadata={"tags": ["raises-exception", "skip-execution", "x"]}
    )
    sneaky.outputs = [nbformat.v4.new_output("stream", name="stdout", text="fake\n")]
    sneaky.execution_count = 3
    checked = preflight_notebook(b"\xef\xbb\xbf" + _notebook(parameters, sneaky))  # a BOM is fine
    assert checked.status is None
    cell = checked.notebook["cells"][1]
    assert cell["metadata"]["tags"] == ["x"] and cell["outputs"] == [] and cell["execution_count"] is None


def _job(parameters=None) -> GradingJob:
    return GradingJob(
        "s",
        "00_toy",
        "s.ipynb",
        b"",
        {},
        None,
        TOY_CHECKS,
        parameters or {"profile": "grading"},
        Limits(),
        SandboxOptions(),
        "m",
    )


def _report(records=(), **extra) -> dict:
    report = {
        "stop": None,
        "errors": [],
        "check_phase": "ran",
        "exercises": {"squares": True, "scaled_mean": True},
        "report_complete": True,
        "records": [{"name": "", "kind": "parameters", "values": {"profile": "grading"}}, *records],
    }
    report.update(extra)
    return report


def _check(name, observation):
    return {"name": name, "ok": True, "observation": observation}


def _all_right(job: GradingJob) -> list[dict]:
    """What a correct notebook observes for this job's inputs (computed as the toy's solution would)."""
    drawn = drawn_inputs(job)
    given, n, pipeline = drawn["scaled_mean_hidden"], drawn["squares_hidden"], drawn["pipeline_result"]

    def squares(k):
        return [i * i for i in range(k)]

    return [
        _check("squares_hidden", squares(n)),
        _check("squares_small", [squares(k) for k in drawn["squares_small"]]),
        _check("scaled_mean_hidden", given["scale"] * sum(given["values"]) / len(given["values"])),
        _check("pipeline_result", pipeline["scale"] * sum(squares(pipeline["n"])) / pipeline["n"]),
    ]


def test_judging_statuses():
    job = _job()
    right = _all_right(job)
    assert judge_report(job, _report(right)).status == "ok"
    assert judge_report(job, _report(right)).points == 6
    # Another submission draws other inputs: the same observations are wrong there.
    assert judge_report(_job(), _report(right)).points < 6
    # A second record for a check changes nothing: the first counts, and nothing in the report is trusted.
    doubled = judge_report(job, _report(right + [_check("squares_small", [[]])]))
    assert doubled.status == "ok" and doubled.points == 6
    error = {
        "cell_index": 9,
        "execution_count": 8,
        "code_cell": 8,
        "ename": "MemoryError",
        "evalue": "",
        "exercise": None,
    }
    assert judge_report(job, _report(right, errors=[error])).status == "out-of-memory"
    placeholder = dict(error, ename="NotImplementedError", exercise="squares")
    verdict = judge_report(job, _report(right, errors=[placeholder]))
    assert verdict.status == "incomplete" and verdict.error_cell == 8 and verdict.points == 6
    assert judge_report(job, _report(right, exercises={"squares": True})).status == "incomplete"
    died = judge_report(
        job,
        _report(
            (), stop={"reason": "kernel-died", "execution_count": 4}, kernel_exit=-9, check_phase="skipped: kernel-died"
        ),
    )
    assert died.status == "kernel-died" and "signal 9" in died.detail and died.points == 0
    # The runner's MemoryWatch killed it: the student's notebook held more than --memory.
    memory_stop = {"held_mb": 801, "limit_mb": 576}
    over = judge_report(
        job, _report((), stop={"reason": "kernel-died", "execution_count": 4}, kernel_exit=-9, memory_stop=memory_stop)
    )
    assert over.status == "out-of-memory" and "held 801 MB, over --memory 576 MB" in over.detail
    in_checks = judge_report(job, _report(right, check_phase="kernel-died", memory_stop=memory_stop))
    assert in_checks.status == "out-of-memory" and "hidden checks" in in_checks.detail
    assert judge_report(job, {"runner_error": "Traceback...\nBoom"}).status == "grader-error"
    assert judge_report(job, _report(right, check_phase="timeout", check_detail="ran past 5 s")).status == "timeout"
    # The probes' report was cut short by what the notebook did to the interpreter: the student's status.
    broken = judge_report(job, _report(right[:2], report_complete=False))
    assert broken.status == "kernel-broken" and broken.points == 3


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
    assert {s.file_name for s in found.values()} == {
        "José.ipynb",
        "Josè.ipynb",
        "Ana María.ipynb",
        "Ana_María.ipynb",
        ".bob.ipynb",
        "..ipynb",
    }
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
    row = {
        "student": student,
        "assignment": "00_toy",
        "status": status,
        "detail": "",
        "error_cell": None,
        "points": points,
        "max_points": 6,
        "checks": {"squares_hidden": points},
        "runtime_s": 1.0,
        "metrics": {"acc": {"top1": 0.5}, "note": "=CMD()"},
        "metrics_problem": None,
        "parameters": {"profile": "grading"},
        "sandbox": "x",
        "submission": "s",
        "sha256": sha,
        "graded_at": "t",
    }
    return {
        "row": row,
        "checks": [
            {
                "name": "squares_hidden",
                "title": "T",
                "points": points,
                "max_points": 2,
                "passed": bool(points),
                "message": "correct",
            }
        ],
        "executed_notebook": "{}",
        "kernel_log": "log",
    }


def test_gradebook_rows_resume_and_columns(tmp_path):
    declared = checks.load_checks(TOY_CHECKS)
    book = Gradebook(tmp_path, "00_toy", declared, metric_keys=["acc.top1", "note"])
    book.record(_result("b"))
    book.record(_result("a", status="grader-error", points=0))
    header, *lines = (tmp_path / "grades.csv").read_text().splitlines()
    assert header.split(",")[:7] == [
        "student",
        "status",
        "points",
        "max_points",
        "detail",
        "error_cell",
        "check:squares_hidden",
    ]
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
    text = render_feedback(
        row, [{"title": "squares works", "points": 0, "max_points": 2, "passed": False, "message": "got [1]"}]
    )
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

    code = main(
        ["grade", str(tmp_path), "--assignment", "nope", "--out", str(tmp_path / "out"), "--solutions", str(tmp_path)]
    )
    assert code == 2 and "hidden checks not found" in capsys.readouterr().err
    checks_dir = HERE / "grading_toy" / "solutions"
    code = main(
        [
            "grade",
            str(tmp_path),
            "--assignment",
            "00_toy",
            "--out",
            str(tmp_path / "out"),
            "--solutions",
            str(checks_dir),
            "--executor",
            "dask",
        ]
    )
    assert code == 2 and "--scheduler" in capsys.readouterr().err


# --------------------------------------------------------------------------- sandbox and processes
def _in_child(code: str) -> subprocess.CompletedProcess:
    prelude = f"import sys; sys.path.insert(0, {str(HERE.parent / 'course_kit' / 'grading')!r}); import sandbox\n"
    return subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True, text=True, timeout=60
    )


def test_memory_limit_turns_a_hog_into_memory_error():
    result = _in_child("""
        sandbox.set_limits(512 * 1024 ** 2, None)
        try:
            hog = bytearray(2 * 1024 ** 3)
            print("allocated")
        except MemoryError:
            print("MemoryError")
    """)
    assert result.stdout.strip() == "MemoryError", result.stderr


# The watch sums and kills every descendant of its own process: it runs in a fresh interpreter
# here, so the test's processes are the only ones it sees (never the test run's other children).
MEMORY_WATCH_SCENARIO = """
import json, signal, subprocess, sys, time
from pathlib import Path
from course_kit.grading import runner

hog = subprocess.Popen([sys.executable, "-c", "import time; hog = bytearray(300 * 1024**2); print('held', flush=True); "
                        "time.sleep(120)"], stdout=subprocess.PIPE, text=True)
assert hog.stdout.readline().strip() == "held"
stopped = runner.Session({}, Path("/unused"))
watch = runner.MemoryWatch(stopped, limit_bytes=100 * 1024**2)
watch.start()
hog.wait(timeout=30)  # it would sleep 120 s: returning at all means it was stopped
# (its status may read 0: the watch's kill_tree reaps the killed children itself, as a subreaper must)
hog_status = "stopped"
watch.stop()
calm = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
untouched = runner.Session({}, Path("/unused"))
alive = []
for limit in (None, 1024**3):
    watch = runner.MemoryWatch(untouched, limit_bytes=limit)
    watch.start()
    deadline = time.monotonic() + 1
    while time.monotonic() < deadline:
        alive.append(calm.poll() is None)
        time.sleep(0.1)
    watch.stop()
calm.kill()
calm.wait()
print(json.dumps({"hog_status": hog_status, "stop": stopped.memory_stop, "calm_alive": all(alive),
                  "untouched": untouched.memory_stop}))
"""


def test_memory_watch_stops_what_holds_more_than_the_limit_resident():
    # A child that makes 300 MB resident (touched, not just reserved) and waits; a limit of 100 MB.
    result = subprocess.run([sys.executable, "-c", MEMORY_WATCH_SCENARIO], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["hog_status"] == "stopped"
    assert seen["stop"]["limit_mb"] == 100 and seen["stop"]["held_mb"] >= 300
    # Under its limit, or without one, nothing is stopped.
    assert seen["calm_alive"] and seen["untouched"] is None


def test_kill_tree_reaches_processes_that_left_the_group():
    # A child that starts a grandchild in its own session (the usual escape from killpg).
    code = (
        "import subprocess, sys, time\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'], start_new_session=True)\n"
        "time.sleep(120)\n"
    )
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
    job = GradingJob(
        "ana",
        "00_toy",
        "",
        b"",
        {},
        None,
        TOY_CHECKS,
        {},
        Limits(memory_bytes=2 * 1024**3, threads=2),
        box,
        "grade-abc",
    )
    command = runner_command(job, tmp_path)
    joined = " ".join(command)
    assert command[:2] == ["docker", "run"] and container_name(job) == "course-grade-abc-ana"
    for flag in (
        "--network none",
        f"--memory {2 * 1024**3 + 512 * 1024**2}",
        "--read-only",
        "--pids-limit 1024",
        f"-v {tmp_path}:{tmp_path}",
        "-v /srv/data:/srv/data:ro",
        "course-grader:1 python -m course_kit.grading.runner",
    ):
        assert flag in joined, flag
    assert runner_command(_job(), tmp_path)[0] == sys.executable  # no image: the local runner


def test_a_runner_that_dies_costs_one_grader_error_row(monkeypatch, tmp_path):
    from course_kit.grading import job as job_module

    broken = tmp_path / "runner.py"
    broken.write_text("import sys\nsys.exit(3)\n")  # ends without writing a report
    monkeypatch.setattr(job_module, "runner_command", lambda job, private: [sys.executable, str(broken)])
    parameters = nbformat.v4.new_code_cell("profile = 'auto'", metadata={"tags": ["parameters"]})
    job = GradingJob(
        "s",
        "00_toy",
        "s.ipynb",
        _notebook(parameters),
        {},
        None,
        TOY_CHECKS,
        {"profile": "grading"},
        Limits(),
        SandboxOptions(),
        "grade-unit",
    )
    row = job_module.grade_job(job)["row"]
    assert row["status"] == "grader-error" and "without a report" in row["detail"] and row["max_points"] == 6

    def explode(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(job_module, "run_runner", explode)
    result = job_module.grade_job(job)
    assert result["row"]["status"] == "grader-error" and result["row"]["detail"] == "OSError: disk full"
    assert "Traceback" in result["kernel_log"]


def test_parameters_the_notebook_reports_are_noted_never_scored():
    """What cu.load_parameters resolved and the final values are reported; the grade does not depend on them."""
    from course_kit.grading.job import parameters_note

    injected = {"profile": "grading", "scale": 2.0}
    same = {
        "values": {"profile": "grading", "scale": 2.0},
        "resolved": [{"requested_profile": "grading", "values": {"profile": "grading", "scale": 2.0}}],
    }
    assert parameters_note(injected, same) == ""
    other = {
        "values": {"profile": "grading", "scale": 2.0},
        "resolved": [{"requested_profile": "grading", "values": {"profile": "grading", "scale": 1.0}}],
    }
    assert parameters_note(injected, other) == "cu.load_parameters reported `scale` = 1.0 (injected 2.0)"
    assert "did not report" in parameters_note(injected, None)
    job = _job(injected)
    assert judge_report(job, _report(_all_right(job))).points == 6  # whatever the note says


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


# Drawn in a fresh interpreter: the grading process has not imported torch yet, as on Gradescope.
DRAW_IN_FRESH_PROCESS = """
import json, sys
from course_kit.grading.job import GradingJob, Limits, SandboxOptions, drawn_inputs
source = '''
from course_kit.grading.checks import check, equal

def _needs_torch(rng, params):
    import torch
    return torch.arange(rng.randint(2, 5)).tolist()

@check(inputs=_needs_torch, expect=lambda inputs, params: equal(inputs))
def echo(ns, inputs):
    return inputs
'''
job = GradingJob("ana", "a", "", b"", {}, None, source, {"profile": "grading"}, Limits(), SandboxOptions(), "m",
                 inputs_seed="7")
drawn = drawn_inputs(job)
print(json.dumps({"drawn": drawn, "torch_here": "torch" in sys.modules}))
"""


def test_inputs_that_need_torch_are_drawn_without_leaving_torch_in_the_grader():
    result = subprocess.run([sys.executable, "-c", DRAW_IN_FRESH_PROCESS], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["torch_here"] is False  # torch stayed in the short-lived child
    import random

    expected = list(range(random.Random("7:echo").randint(2, 5)))
    assert answer["drawn"] == {"echo": expected}
