"""Hostile submissions, one class each, and the outcome `course grade` must give them.

Each test names the class of attack from the grading threat model (docs/grading.md):
forged observations, check code leaking through feedback, evaded or unknown parameters,
reruns mixing gradings, other processes' environment, UNIX sockets, shared memory, stale
temp folders, colliding student ids, oversized submissions, gradebook shape, student-caused
failures, damaged data and tests that assume they are alone. They grade the toy assignment
(tests/grading_toy), which takes a second or two per notebook.
"""

from __future__ import annotations

import csv
import json
import os
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path

import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "grading_toy"))
import crafted  # noqa: E402
from process_support import default_sigint  # noqa: E402

from course_kit.grading import sandbox  # noqa: E402

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
LIMITS = ["--timeout", "90", "--cell-timeout", "30", "--check-timeout", "30", "--memory", "2G"]
needs_bwrap = pytest.mark.skipif(sandbox.bwrap_problem() is not None, reason="bubblewrap unusable here")


def grade(submissions: Path, out: Path, *extra: str, env: dict | None = None) -> subprocess.CompletedProcess:
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
        *LIMITS,
        *extra,
    ]
    return subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=600, env=dict(os.environ, **(env or {}))
    )


def rows(out: Path) -> dict[str, dict]:
    return {row["student"]: row for row in json.loads((out / "grades.json").read_text())["rows"]}


def write(folder: Path, student: str, changes: dict[int, str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(crafted._with(changes), folder / f"{student}.ipynb")


PROBE = """
import json, os, socket
attempts = {{}}
def attempt(name, action):
    try:
        attempts[name] = "succeeded: " + repr(action())[:200]
    except Exception as error:
        attempts[name] = "blocked: " + type(error).__name__
def find(needle):  # a process by its command line, among those the kernel can see
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if needle in open(f"/proc/{{pid}}/cmdline", "rb").read():
                return int(pid)
        except OSError:
            pass
    raise ProcessLookupError(needle)
def token_of(pid):
    found = [item for item in open(f"/proc/{{pid}}/environ", "rb").read().split(b"\\0")
             if item.startswith(b"INSTRUCTOR_API_TOKEN=")]
    if not found:
        raise LookupError("no token in its environment")
    return found
attempt("runner_environ", lambda: open(f"/proc/{{find(b'course_kit.grading.runner')}}/environ", "rb").read())
attempt("grader_environ", lambda: token_of(find(b"course_kit.cli")))
attempt("init_environ", lambda: token_of(1))  # the machine's init, or (in a PID namespace) the sandbox's own
def unix():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect({socket_path!r})
    s.sendall(b"hello")
    return s.recv(64)
attempt("unix_socket", unix)
def shm():
    with open("/dev/shm/{shm_name}", "wb") as handle:
        handle.write(b"x" * 1024 * 1024)
    return os.listdir("/dev/shm")
attempt("shm_write", shm)
print("attempts:", json.dumps(attempts))
with open("00_toy.results.json", "w") as handle:
    json.dump({{"n_points": n_points, "scale": scale, "result": result, **attempts}}, handle)
"""


@needs_bwrap
def test_the_kernel_cannot_reach_other_processes_sockets_or_the_machines_shared_memory(tmp_path):
    """Classes 6 (environment of other processes), 7 (UNIX sockets), 8 (shared memory)."""
    secret = f"do-not-leak-{os.getpid()}"
    socket_path = str(tmp_path / "outside.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(socket_path)
    listener.listen(4)
    talked = []

    def serve():
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            talked.append(connection.recv(64))
            connection.sendall(secret.encode())
            connection.close()

    threading.Thread(target=serve, daemon=True).start()
    shm_name = f"course-test-{os.getpid()}-{tmp_path.name}"
    submissions, out = tmp_path / "submissions", tmp_path / "out"
    write(submissions, "prober", {crafted.RESULTS: PROBE.format(socket_path=socket_path, shm_name=shm_name)})
    try:
        result = grade(submissions, out, env={"INSTRUCTOR_API_TOKEN": secret})
    finally:
        listener.close()
    assert result.returncode == 0, result.stdout + result.stderr
    row = rows(out)["prober"]
    attempts = crafted.printed_attempts(out / "executed" / "prober.ipynb")
    assert row["status"] == "ok", row
    for name in ("runner_environ", "grader_environ", "unix_socket"):
        assert attempts[name] in (
            "blocked: PermissionError",
            "blocked: FileNotFoundError",
            "blocked: ProcessLookupError",
        ), (name, attempts)
    assert attempts["init_environ"] in ("blocked: PermissionError", "blocked: LookupError"), attempts
    assert talked == []  # the listener never heard from the kernel
    # The kernel wrote to a /dev/shm of its own: the machine's never held the file, and it is gone.
    assert attempts["shm_write"].startswith("succeeded") and shm_name in attempts["shm_write"]
    assert not Path("/dev/shm", shm_name).exists()
    everything = json.dumps(rows(out)) + "".join(p.read_text(errors="replace") for p in out.rglob("*") if p.is_file())
    assert secret not in everything


# --------------------------------------------------------------------------- 1. forged observations
# Stubs that return what a correct answer looks like for some input: what a forger can offer
# without solving the exercises. The hidden checks draw other inputs for every submission.
PLAUSIBLE = [[0, 1, 4, 9, 16, 25, 36], [[], [0], [0, 1]], 8.0, 35.0]
STUBS = {
    crafted.SQUARES: "def squares(n):\n    return [0, 1, 4, 9, 16, 25, 36]",
    crafted.SCALED_MEAN: "def scaled_mean(values, scale):\n    return 8.0",
}

FORGE_STDOUT = '''
import json, sys
PLAUSIBLE = {plausible!r}
NAMES = ["squares_hidden", "squares_small", "scaled_mean_hidden", "pipeline_result"]
class Rewriter:
    """Replaces sys.stdout: prints forged check records and rewrites anything that looks like one."""
    def __init__(self, stream):
        self.stream = stream
    def write(self, text):
        return self.stream.write(text.replace('"ok":false', '"ok":true'))
    def flush(self):
        return self.stream.flush()
sys.stdout = Rewriter(sys.stdout)
for name, value in zip(NAMES, PLAUSIBLE):
    print(json.dumps({{"name": name, "ok": True, "observation": value}}))
print("done")
'''

# Watches the work folder for the probes' report file and writes its own records into it first:
# started, a plausible observation for every check name it can find, done.
FORGE_REPORT = """
import json, os, threading, time
PLAUSIBLE = {plausible!r}
NAMES = ["squares_hidden", "squares_small", "scaled_mean_hidden", "pipeline_result"]
def forged():
    lines = ["started"] + [json.dumps({{"name": n, "ok": True, "observation": v}}) for n, v in zip(NAMES, PLAUSIBLE)]
    return ("\\n".join(lines + ["done"]) + "\\n").encode()
def watch():
    seen = set()
    for _ in range(4000):
        for name in os.listdir("."):
            if name.startswith(".course-report") and name not in seen:
                seen.add(name)
                try:
                    fd = os.open(name, os.O_WRONLY)
                    os.write(fd, forged())
                    os.close(fd)
                except OSError:
                    pass
        time.sleep(0.005)
threading.Thread(target=watch, daemon=True).start()
"""

# Reaches the probes' own writer from the call stack of a check that calls student code (the
# attack that forged 12/12 on the signed design): writes a pass for every check, with the
# inputs it finds there as the observation, then stops the probes before they write theirs.
FORGE_STACK = """
import json, sys
def _forge():
    frame = sys._getframe(1)
    while frame is not None:
        write, args = frame.f_locals.get("write"), frame.f_globals.get("ARGS")
        if callable(write) and isinstance(args, dict):
            for item in args["checks"]:
                write(json.dumps({{"name": item["name"], "ok": True, "observation": item.get("inputs")}}))
            write("done")
            raise SystemExit
        frame = frame.f_back
def squares(n):
    _forge()
def scaled_mean(values, scale):
    _forge()
"""


@needs_bwrap
def test_forgers_score_no_more_than_an_unsolved_notebook(tmp_path):
    """Class 1: forged output, a forged report file, the probes' writer reached from the stack, stubs."""
    submissions, out = tmp_path / "submissions", tmp_path / "out"
    unsolved = {index: f"{source.split(':')[0]}:\n    raise NotImplementedError()" for index, source in STUBS.items()}
    write(submissions, "h0_unsolved", unsolved)
    write(submissions, "h1_stubs", STUBS)
    write(submissions, "h2_stdout", {**STUBS, crafted.RESULTS: FORGE_STDOUT.format(plausible=PLAUSIBLE)})
    write(submissions, "h3_report_file", {**STUBS, crafted.RESULTS: FORGE_REPORT.format(plausible=PLAUSIBLE)})
    write(submissions, "h4_stack", {crafted.SQUARES: FORGE_STACK, crafted.SCALED_MEAN: "pass"})
    result = grade(submissions, out, "-j", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    book = rows(out)
    floor = book["h0_unsolved"]["points"]
    assert floor == 0
    for student in ("h1_stubs", "h2_stdout", "h3_report_file", "h4_stack"):
        assert book[student]["points"] <= floor, (student, book[student])
        assert book[student]["status"] != "grader-error", (student, book[student])


# --------------------------------------------------------------------------- 2. check code leaking through feedback
STEAL = '''
import gc, sys
def _stolen():
    pieces, frame = [], sys._getframe(1)
    while frame is not None:
        pieces.append(repr(frame.f_locals)[:300])
        pieces.append(repr(frame.f_code.co_consts)[:300])
        frame = frame.f_back
    return " | ".join(pieces)[:2000]
def _named(text):
    """A class whose name carries what the code read: the channel type names used to open."""
    return "Stolen_" + "".join(c for c in text if c.isalnum())[:60]
'''


@needs_bwrap
def test_student_code_cannot_carry_the_checks_out_through_feedback(tmp_path):
    """Class 2: values, messages and type names made from what student code read while a check ran."""
    submissions, out = tmp_path / "submissions", tmp_path / "out"
    write(
        submissions,
        "leaker",
        {
            crafted.SQUARES: STEAL + "def squares(n):\n    raise ValueError(_stolen())",
            crafted.SCALED_MEAN: STEAL + "def scaled_mean(values, scale):\n    return _stolen()",
        },
    )
    write(
        submissions,
        "type_name_leaker",
        {
            crafted.SQUARES: STEAL + "def squares(n):\n    raise type(_named(_stolen()), (Exception,), {})()",
            crafted.SCALED_MEAN: STEAL
            + "def scaled_mean(values, scale):\n    return type(_named(_stolen()), (), {})()",
        },
    )
    write(
        submissions,
        "number_leaker",
        {
            crafted.SQUARES: "import sys\ndef squares(n):\n    return [n, *sys._getframe(1).f_code.co_code[:6]]",
            crafted.SCALED_MEAN: "def scaled_mean(values, scale):\n    return float(len(values) * 1000 + values[0])",
        },
    )
    result = grade(submissions, out)
    assert result.returncode == 0, result.stdout + result.stderr
    for student in ("leaker", "type_name_leaker", "number_leaker"):
        feedback = (out / "feedback" / f"{student}.md").read_text()
        # What the checks said: the feedback's table and the row's check results. (The row's
        # `detail` names the notebook's own first failing cell, from before any check code
        # was in the kernel: the student's own error, with nothing of the checks to carry.)
        table = [line for line in feedback.splitlines() if line.startswith("|")]
        shown = "\n".join(table) + json.dumps(rows(out)[student]["check_results"])
        for secret in ("Stolen_", "f_locals", "ns.call", "reference_squares", "co_consts", "__course", "4001"):
            assert secret not in shown, (student, secret)
    feedback = (out / "feedback" / "leaker.md").read_text()
    assert "calling `squares` raised ValueError" in feedback  # Python's own exception types are named
    assert "got text, expected a number" in feedback  # the kind of value, not its content
    named = (out / "feedback" / "type_name_leaker.md").read_text()
    assert "calling `squares` raised an exception" in named and "not plain data" in named
    numbers = (out / "feedback" / "number_leaker.md").read_text()
    assert "got a number, not the expected value" in numbers


# --------------------------------------------------------------------------- 3. parameters evaded
EVADE_PARAMETERS = """
import os, sys
os.environ.pop("COURSE_INJECTED_PARAMETERS", None)
library = sys.modules.get("course_utils.notebook.parameters")
if library is not None:
    library.RESOLVED[:] = [{{"requested_profile": "grading", "values": {{"profile": "grading", "scale": 3.0}}}}]
scale = 1.0  # trains with its own, cheaper setting ...
data = squares(n_points)
result = scaled_mean(data, scale)
scale = 3.0  # ... and puts the grader's value back before the end
"""


@needs_bwrap
def test_parameters_are_reported_and_never_decide_the_grade(tmp_path):
    """Class 3: injection after everything ran or code before it are refused; evasion changes nothing graded."""
    submissions, out = tmp_path / "submissions", tmp_path / "out"
    moved = crafted.solution()
    moved.cells[1].metadata["tags"] = []
    moved.cells.append(nbformat.v4.new_code_cell("", metadata={"tags": ["parameters"]}))  # papermill injects last
    submissions.mkdir()
    nbformat.write(moved, submissions / "moved_tag.ipynb")
    early = crafted.solution()
    early.cells[1].source += "\nexec(open('00_toy.ipynb').read()[:0])  # runs before the injection"
    nbformat.write(early, submissions / "code_in_parameters.ipynb")
    write(submissions, "evades_parameters", {crafted.PIPELINE: EVADE_PARAMETERS})
    write(submissions, "stubbed_but_evading", {**STUBS, crafted.PIPELINE: EVADE_PARAMETERS})
    write(submissions, "honest", {})
    result = grade(submissions, out, "-p", "scale", "3.0")
    assert result.returncode == 0, result.stdout + result.stderr
    book = rows(out)
    assert book["honest"]["status"] == "ok" and book["honest"]["points"] == 6
    for student, where in (("moved_tag", "not on the first code cell"), ("code_in_parameters", "runs code")):
        assert (book[student]["status"], book[student]["points"]) == ("parameters-missing", 0), book[student]
        assert where in book[student]["detail"]
    # The checks call the functions with the grader's inputs: what the run used does not matter to them.
    assert (book["evades_parameters"]["status"], book["evades_parameters"]["points"]) == ("ok", 6)
    assert book["stubbed_but_evading"]["points"] == 0
    # Its result was computed with scale 1.0: 3x smaller than an honest run's, whatever it reported.
    assert book["evades_parameters"]["metrics"]["result"] * 3 == pytest.approx(book["honest"]["metrics"]["result"])


# --------------------------------------------------------------------------- 5. reruns mixing old and new grading
def test_a_rerun_regrades_rows_graded_with_other_checks_parameters_or_kit(tmp_path):
    """Class 5: one gradebook never holds rows graded under two sets of checks, parameters or kits."""
    import shutil

    solutions, submissions, out = tmp_path / "solutions", tmp_path / "submissions", tmp_path / "out"
    shutil.copytree(crafted.SOLUTION.parent, solutions)
    write(submissions, "ana", {})
    write(submissions, "bo", {crafted.SQUARES: "def squares(n):\n    return [i * i for i in range(n)][1:]"})

    def grade_here(*extra):
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
            str(solutions),
            "--no-solution-check",
            *LIMITS,
            *extra,
        ]
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout, rows(out)

    _, first = grade_here()
    assert first["bo"]["points"] == 2 and first["ana"]["graded_with"]["parameters"] == {"profile": "grading"}
    printed, _ = grade_here()
    assert "skip ana: already graded" in printed and "skip bo: already graded" in printed
    # The instructor fixes a check: the small sizes are now worth 2 points.
    checks = solutions / "hidden_checks" / f"{crafted.ASSIGNMENT}.py"
    title = '"squares() of 0, 1 and a small drawn n (the empty list first)",\n    points='
    assert title + "1" in checks.read_text()
    checks.write_text(checks.read_text().replace(title + "1", title + "2"))
    printed, after_checks = grade_here()
    assert "regrade bo: the hidden checks changed since it was graded" in printed
    assert {row["max_points"] for row in after_checks.values()} == {7}  # nobody left under the old checks
    assert after_checks["ana"]["graded_with"]["checks_sha256"] != first["ana"]["graded_with"]["checks_sha256"]
    printed, after_parameters = grade_here("-p", "scale", "3.0")
    assert "regrade ana: it was graded with parameters {'profile': 'grading'}" in printed
    assert {json.dumps(row["parameters"]) for row in after_parameters.values()} == {
        '{"profile": "grading", "scale": 3.0}'
    }
    csv_header = (out / "grades.csv").read_text().splitlines()[0].split(",")
    assert {"checks_sha256", "kit_version", "parameters"} <= set(csv_header)
    # A row written by another kit version (here: edited to say so) is regraded too.
    book = json.loads((out / "grades.json").read_text())
    book["rows"][0]["graded_with"]["kit_version"] = "0.2.0"
    (out / "grades.json").write_text(json.dumps(book))
    printed, _ = grade_here("-p", "scale", "3.0")
    assert f"regrade {book['rows'][0]['student']}: it was graded by kit 0.2.0, this is" in printed
    assert "skip" in printed  # the other row stays


# --------------------------------------------------------------------------- 9. temp folders after a crash
SLEEPER = """
import time
with open("ballast.bin", "wb") as handle:
    handle.write(b"0" * 20 * 1024 * 1024)
time.sleep(300)
"""


def test_the_next_run_removes_what_a_killed_run_left_and_nothing_else(tmp_path):
    """Class 9: after kill -9 of course grade, its folders (and orphaned processes) go at the next start."""
    import signal
    import time

    from course_kit.grading import procs

    scratch = tmp_path / "tmp"  # this test's own temp root: other runs on the machine are not looked at
    scratch.mkdir()
    env = {"TMPDIR": str(scratch)}
    # Not the kit's to remove: a folder without an owner record, and one whose owner is alive (this test).
    (scratch / "course-grade-no-owner").mkdir()
    alive = scratch / "course-grade-live-owner"
    alive.mkdir()
    (alive / procs.OWNER_FILE).write_text(
        json.dumps({"kit": "course_kit", "pid": os.getpid(), "started": procs._start_time(os.getpid()), "marker": "x"})
    )
    write(tmp_path / "first", "sleeper", {crafted.PIPELINE: SLEEPER})
    command = [
        sys.executable,
        "-m",
        "course_kit.cli",
        "grade",
        str(tmp_path / "first"),
        "--assignment",
        crafted.ASSIGNMENT,
        "--out",
        str(tmp_path / "out1"),
        "--solutions",
        str(crafted.SOLUTION.parent),
        "--no-solution-check",
        *LIMITS,
    ]
    grader = subprocess.Popen(
        command,
        cwd=ROOT,
        env=dict(os.environ, **env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline, left = time.monotonic() + 120, None
    while time.monotonic() < deadline and left is None:
        left = next(
            (path for path in scratch.glob("course-grade-*/**/ballast.bin") if path.stat().st_size == 20 * 1024 * 1024),
            None,
        )
        time.sleep(0.5)
    assert left is not None, "the sleeper never started"
    stale = next(p for p in scratch.glob("course-grade-*") if p in left.parents)
    marker = json.loads((stale / procs.OWNER_FILE).read_text())["marker"]
    os.kill(grader.pid, signal.SIGKILL)  # only course grade itself
    grader.wait()
    deadline = time.monotonic() + 30  # its runner notices the lost parent and ends its kernel ...
    while procs.processes_with_marker(marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert stale.exists() and left.exists()  # ... but nobody is left to remove the folder: what the issue saw

    write(tmp_path / "second", "honest", {})
    result = grade(tmp_path / "second", tmp_path / "out2", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "removed 1 private folder(s) of earlier runs that did not finish" in result.stdout
    assert str(stale) in result.stdout and not stale.exists()
    assert procs.processes_with_marker(marker) == []
    assert (scratch / "course-grade-no-owner").is_dir() and alive.is_dir()
    assert rows(tmp_path / "out2")["honest"]["status"] == "ok"


# --------------------------------------------------------------------------- 12. gradebook shape
FLOOD = """
import csv
import json
print("x" * (30 * 1024 * 1024))  # one 30 MB message: above the cell and notebook caps
for line in range(5000):
    print("line", line, "." * 1000)  # many small ones: the cell cap cuts them
with open("00_toy.results.json", "w") as handle:
    json.dump({"n_points": n_points, "scale": scale, "result": result, **{f"k{i}": i for i in range(20000)}}, handle)
"""


@needs_bwrap
def test_one_student_cannot_reshape_the_gradebook_or_flood_the_executed_notebook(tmp_path):
    """Class 12: 20,000 results keys and a 30 MB print: declared columns only, capped outputs, a note each."""
    submissions, out = tmp_path / "submissions", tmp_path / "out"
    write(submissions, "flood", {crafted.RESULTS: FLOOD})
    write(submissions, "calm", {})
    result = grade(submissions, out)
    assert result.returncode == 0, result.stdout + result.stderr
    header = (out / "grades.csv").read_text().splitlines()[0].split(",")
    assert [c for c in header if c.startswith("metric:")] == ["metric:n_points", "metric:scale", "metric:result"]
    book = rows(out)
    assert book["flood"]["status"] == "ok" and book["flood"]["points"] == 6
    assert book["flood"]["metrics"] == book["calm"]["metrics"] == {"n_points": 8, "scale": 2.0, "result": 35.0}
    assert book["flood"]["metrics_problem"].startswith("ignored 20000 undeclared metric key(s): k0, k1")
    assert book["calm"]["metrics_problem"] is None
    executed = out / "executed" / "flood.ipynb"
    assert executed.stat().st_size < 3 * 1024**2
    assert (
        "[course grade: output cut here: this cell's output passed 2 MB; the rest was not kept]" in executed.read_text()
    )


# --------------------------------------------------------------------------- 13. student-caused failures
SILENCERS = {
    "stdout_none": "import sys\nsys.stdout = None\nsys.stderr = None",
    "stdout_devnull": "import os, sys\nsys.stdout = open(os.devnull, 'w')\nos.dup2(sys.stdout.fileno(), 1)\n"
    "os.dup2(sys.stdout.fileno(), 2)",
    "fds_closed": "import os\nfor fd in (0, 1, 2):\n    os.close(fd)",
    "cwd_gone": "import os, shutil\nos.chdir('/')\nshutil.rmtree(os.environ['HOME'], ignore_errors=True)",
    "results_nested": "with open('00_toy.results.json', 'w') as handle:\n"
    "    handle.write('{\"a\": ' + '[' * 100000 + ']' * 100000 + '}')",
    "results_fifo": "import os\nos.remove('00_toy.results.json')\nos.mkfifo('00_toy.results.json')",
    "disk_full": "with open('filler.bin', 'wb') as handle:\n    handle.write(b'0' * (1024 ** 3 + 1))",
}


@needs_bwrap
def test_what_student_code_does_gives_a_student_status_never_grader_error(tmp_path):
    """Class 13: silenced or closed output, a removed work folder, hostile results files, a full disk."""
    submissions, out = tmp_path / "submissions", tmp_path / "out"
    for name, code in SILENCERS.items():
        write(submissions, name, {crafted.RESULTS: crafted.solution().cells[crafted.RESULTS].source + "\n" + code})
    result = grade(submissions, out, "-j", "2", "--max-file-size", "1G")
    assert result.returncode == 0, result.stdout + result.stderr  # 1 would mean a grader-error row
    book = rows(out)
    assert sorted(book) == sorted(SILENCERS)
    for name, row in book.items():
        assert row["status"] not in ("grader-error",), (name, row)
        feedback = (out / "feedback" / f"{name}.md").read_text()
        assert "unrelated to your work" not in feedback, name
    # Output silenced after the work was done: the work counts.
    for name in ("stdout_devnull", "fds_closed", "cwd_gone", "results_nested", "results_fifo"):
        assert (book[name]["status"], book[name]["points"]) == ("ok", 6), book[name]
    # IPython cannot start another cell once sys.stdout is None: the student broke the kernel, and is told so.
    assert (book["stdout_none"]["status"], book["stdout_none"]["points"]) == ("kernel-broken", 0)
    assert "sys.stdout" in (out / "feedback" / "stdout_none.md").read_text()
    assert "nested" in book["results_nested"]["metrics_problem"]
    assert "not a regular file" in book["results_fifo"]["metrics_problem"]
    assert book["disk_full"]["status"] == "error" and "File too large" in book["disk_full"]["detail"]


# --------------------------------------------------------------------------- 14. data errors
READ_CIFAR = """
from course_utils.data.cifar import cifar10
train_set = cifar10(train=True)
"""


@needs_bwrap
def test_damaged_data_gives_the_kits_message_naming_the_file_and_the_fetch(tmp_path):
    """Class 14: a truncated CIFAR-10 batch offline is named, with `course fetch cifar10`, not torchvision's hint."""
    from torchvision.datasets import CIFAR10

    data = tmp_path / "data"
    folder = data / CIFAR10.base_folder
    folder.mkdir(parents=True)
    for name, _ in CIFAR10.train_list + CIFAR10.test_list + [(CIFAR10.meta["filename"], None)]:
        (folder / name).write_bytes(b"\x80\x04 truncated")
    submissions, out = tmp_path / "submissions", tmp_path / "out"
    write(
        submissions, "reads_cifar", {crafted.PIPELINE: READ_CIFAR + crafted.solution().cells[crafted.PIPELINE].source}
    )
    result = grade(submissions, out, "--data-dir", str(data))
    assert result.returncode == 0, result.stdout + result.stderr
    row = rows(out)["reads_cifar"]
    assert (
        row["status"] == "error"
        and "AssetUnavailableError: CIFAR-10 is not available: data_batch_1 damaged" in row["detail"]
    ), row
    shown = (out / "executed" / "reads_cifar.ipynb").read_text()
    assert "course fetch cifar10" in shown and str(folder) in shown and "You can use download=True" not in shown


# --------------------------------------------------------------------------- 15. tests that assume they are alone
@needs_bwrap
def test_a_run_sees_and_sweeps_only_its_own_processes_and_folders(tmp_path):
    """Class 15: another course grade on the machine keeps its kernel and folder while this one runs and ends."""
    import signal
    import time

    from course_kit.grading import procs

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {"TMPDIR": str(scratch)}  # shared by both runs, as /tmp is on a real server
    write(tmp_path / "other", "sleeper", {crafted.PIPELINE: SLEEPER})
    other_out = tmp_path / "other_out"
    command = [
        sys.executable,
        "-m",
        "course_kit.cli",
        "grade",
        str(tmp_path / "other"),
        "--assignment",
        crafted.ASSIGNMENT,
        "--out",
        str(other_out),
        "--solutions",
        str(crafted.SOLUTION.parent),
        "--no-solution-check",
        *LIMITS,
        "--cell-timeout",
        "600",
        "--timeout",
        "900",
    ]
    # (Long limits, the last of each flag counting: the other run must still be running when this test
    # interrupts it, however long this run takes on a busy machine; with LIMITS' 30 s it could finish first.)
    other = subprocess.Popen(
        command,
        cwd=ROOT,
        env=dict(os.environ, **env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=default_sigint,
    )
    try:
        deadline, other_marker = time.monotonic() + 120, None
        while time.monotonic() < deadline and not (
            other_marker
            and procs.processes_with_marker(other_marker)
            and list(scratch.glob("course-grade-*/**/ballast.bin"))
        ):
            log = other_out / "grading.log"
            found = re.search(r"; run (grade-[0-9a-f]{12})$", log.read_text() if log.exists() else "", re.M)
            other_marker = found.group(1) if found else None
            time.sleep(0.5)
        assert other_marker and procs.processes_with_marker(other_marker), "the other run never started"
        other_folders = set(scratch.glob("course-grade-*"))

        write(tmp_path / "mine", "honest", {})
        mine = grade(tmp_path / "mine", tmp_path / "mine_out", env=env)
        assert mine.returncode == 0, mine.stdout + mine.stderr
        my_marker = re.search(r"; run (grade-[0-9a-f]{12})$", mine.stdout, re.M).group(1)
        assert my_marker != other_marker
        assert procs.processes_with_marker(my_marker) == []  # mine are gone ...
        assert procs.processes_with_marker(other_marker)  # ... the other run's kernel was left alone
        assert set(scratch.glob("course-grade-*")) == other_folders  # and so were its folders
        assert "removed" not in mine.stdout
    finally:
        other.send_signal(signal.SIGINT)
        try:
            other.wait(timeout=60)
        except subprocess.TimeoutExpired:
            other.kill()
    assert other.returncode == 130


# --------------------------------------------------------------------------- 16. hand-ins as students make them
LOOK_AROUND = """
import json, os
seen = {"own_dot_file": open(".scale_note").read().strip() if os.path.exists(".scale_note") else None,
        "hard_link": os.path.exists("checks_copy.py"),
        "startup_file": os.path.exists(".ipython/profile_default/startup/00.py")}
# The line leaves in two messages (as a print() can when the kernel's flush timer fires mid-line);
# the executed notebook must still hold it as one line.
print("attempts:", end=" ", flush=True)
print(json.dumps(seen))
"""


def test_hand_ins_as_students_make_them_are_graded_and_hostile_ones_are_their_own_status(tmp_path):
    """Class 16: the zip cu.submit() writes is graded; dot files reach the notebook; a hard link into the
    hidden checks does not; a hostile zip and a folder 1,100 levels deep are those students' statuses, and
    every other entry of the folder is reported in not-graded.csv."""
    import shutil
    import zipfile

    solutions, submissions, out = tmp_path / "solutions", tmp_path / "submissions", tmp_path / "out"
    shutil.copytree(crafted.SOLUTION.parent, solutions)
    submissions.mkdir()
    solved = nbformat.writes(
        crafted._with({crafted.RESULTS: crafted.solution().cells[crafted.RESULTS].source + "\n" + LOOK_AROUND})
    ).encode()
    crafted.handin_zip(submissions / "zipped.zip", "zipped", {"00_toy.ipynb": solved, ".scale_note": b"mine\n"})
    folder = submissions / "folder"
    (folder / ".ipython" / "profile_default" / "startup").mkdir(parents=True)
    (folder / ".ipython" / "profile_default" / "startup" / "00.py").write_text("squares = None\n")
    (folder / "00_toy.ipynb").write_bytes(solved)
    (folder / ".scale_note").write_text("folder's own\n")
    os.link(solutions / "hidden_checks" / f"{crafted.ASSIGNMENT}.py", folder / "checks_copy.py")
    with zipfile.ZipFile(submissions / "zipslip.zip", "w") as bundle:
        bundle.writestr("zipslip/00_toy.ipynb", solved)
        bundle.writestr("zipslip/../../../escaped.py", "x = 1\n")
    (submissions / "deep").mkdir()
    (submissions / "deep" / "00_toy.ipynb").write_bytes(solved)
    (submissions / "notes.pdf").write_bytes(b"%PDF-1.4")
    (submissions / "elsewhere.ipynb").symlink_to(crafted.SOLUTION)
    try:
        crafted.make_deep(submissions / "deep", 1100)
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
            str(solutions),
            "--no-solution-check",
            *LIMITS,
            "-j",
            "2",
        ]
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    finally:
        crafted.remove_deep(submissions / "deep")
    assert result.returncode == 0, result.stdout + result.stderr
    book = rows(out)
    assert sorted(book) == ["deep", "folder", "zipped", "zipslip"]
    assert (book["zipped"]["status"], book["zipped"]["points"], book["zipped"]["file_name"]) == ("ok", 6, "zipped.zip")
    assert crafted.printed_attempts(out / "executed" / "zipped.ipynb")["own_dot_file"] == "mine"
    assert (book["folder"]["status"], book["folder"]["points"]) == ("ok", 6), book["folder"]
    seen = crafted.printed_attempts(out / "executed" / "folder.ipynb")
    assert seen == {"own_dot_file": "folder's own", "hard_link": False, "startup_file": False}
    assert "checks_copy.py: a hard link" in book["folder"]["detail"] and ".ipython: " in book["folder"]["detail"]
    feedback = (out / "feedback" / "folder.md").read_text()
    assert "Not given to your notebook: " in feedback and "checks_copy.py" in feedback
    for student, why in (("zipslip", "leads out of its folder"), ("deep", "more than 32 levels deep")):
        assert (book[student]["status"], book[student]["points"]) == ("invalid-notebook", 0), book[student]
        assert why in book[student]["detail"] and why in (out / "feedback" / f"{student}.md").read_text()
    assert not list(tmp_path.rglob("escaped.py"))
    not_graded = {line["entry"]: line["reason"] for line in csv.DictReader((out / "not-graded.csv").open())}
    assert set(not_graded) == {"notes.pdf", "elsewhere.ipynb"}
    assert "symbolic link" in not_graded["elsewhere.ipynb"] and "not graded: notes.pdf" in result.stdout


# ---------------------------------------------------------------------- 17. malformed, huge or self-breaking notebooks
PATCH_IMPORT = """
import builtins
def _no_imports(*args, **kwargs):
    raise ImportError("imports are off")
builtins.__import__ = _no_imports
"""
HUGE_ERRORS = """
for _ in range(3):
    try:
        raise ValueError("x" * 5_000_000)
    except ValueError as error:
        from IPython.core.getipython import get_ipython
        get_ipython().showtraceback()
raise ValueError("y" * 5_000_000)
"""


@needs_bwrap
def test_malformed_huge_or_self_breaking_notebooks_are_the_students_status(tmp_path):
    """Class 17: JSON 5,000 deep, metadata of the wrong shape, 100,000 cells, patched builtins, huge errors."""
    submissions, out = tmp_path / "submissions", tmp_path / "out"
    submissions.mkdir()
    (submissions / "deep_json.ipynb").write_text('{"cells": [], "metadata": ' + '{"a": ' * 5000 + "1" + "}" * 5001)
    odd_tags = crafted.solution()
    odd_tags.cells[crafted.SQUARES].metadata["tags"] = 5
    odd_tags.cells[crafted.SCALED_MEAN].metadata["course"] = "x"
    (submissions / "odd_metadata.ipynb").write_text(json.dumps(odd_tags))  # as written, not as nbformat validates
    many = crafted.solution()
    many.cells += [nbformat.v4.new_markdown_cell("x") for _ in range(100_000)]
    nbformat.write(many, submissions / "many_cells.ipynb")
    write(
        submissions,
        "patched_import",
        {crafted.RESULTS: crafted.solution().cells[crafted.RESULTS].source + PATCH_IMPORT},
    )
    write(submissions, "huge_errors", {crafted.RESULTS: crafted.solution().cells[crafted.RESULTS].source + HUGE_ERRORS})
    write(submissions, "fine", {})
    result = grade(submissions, out, "-j", "2")
    assert result.returncode == 0, result.stdout + result.stderr  # 1 would mean a grader-error row
    book = rows(out)
    assert book["fine"]["status"] == "ok" and book["fine"]["points"] == 6
    assert book["deep_json"]["status"] == "invalid-notebook" and "nested" in book["deep_json"]["detail"]
    assert book["many_cells"]["status"] == "invalid-notebook" and "100" in book["many_cells"]["detail"]
    # Tags that are not a list and a `course` entry that is not a table are dropped: graded as usual,
    # and the exercise whose marker was damaged counts as missing.
    assert book["odd_metadata"]["status"] == "incomplete" and "scaled_mean" in book["odd_metadata"]["detail"]
    assert book["odd_metadata"]["points"] == 6
    # Imports broken after the work was done: IPython itself cannot finish the cell, and the probes
    # cannot run in that interpreter. The student's status, with what happened in the feedback.
    patched = book["patched_import"]
    assert (patched["status"], patched["points"]) in (("timeout", 0), ("kernel-broken", 0)), patched
    assert "unrelated to your work" not in (out / "feedback" / "patched_import.md").read_text()
    assert book["huge_errors"]["status"] == "error" and book["huge_errors"]["points"] == 6
    assert (out / "executed" / "huge_errors.ipynb").stat().st_size < 1024**2
