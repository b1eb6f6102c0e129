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
    command = [sys.executable, "-m", "course_kit.cli", "grade", str(submissions), "--assignment", crafted.ASSIGNMENT,
               "--out", str(out), "--solutions", str(crafted.SOLUTION.parent), "--no-solution-check", *LIMITS,
               *extra]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, **(env or {})))


def rows(out: Path) -> dict[str, dict]:
    return {row["student"]: row for row in json.loads((out / "grades.json").read_text())["rows"]}


def write(folder: Path, student: str, changes: dict[int, str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(crafted._with(changes), folder / f"{student}.ipynb")


PROBE = '''
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
'''


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
        assert attempts[name] in ("blocked: PermissionError", "blocked: FileNotFoundError",
                                  "blocked: ProcessLookupError"), (name, attempts)
    assert attempts["init_environ"] in ("blocked: PermissionError", "blocked: LookupError"), attempts
    assert talked == []  # the listener never heard from the kernel
    # The kernel wrote to a /dev/shm of its own: the machine's never held the file, and it is gone.
    assert attempts["shm_write"].startswith("succeeded") and shm_name in attempts["shm_write"]
    assert not Path("/dev/shm", shm_name).exists()
    everything = json.dumps(rows(out)) + "".join(p.read_text(errors="replace") for p in out.rglob("*") if p.is_file())
    assert secret not in everything


# --------------------------------------------------------------------------- 1. forged observations
# The strongest forger: it knows every expected value of the toy's hidden checks.
KNOWN_ANSWERS = {"squares_hidden": [0, 1, 4, 9, 16, 25, 36], "squares_empty": [], "scaled_mean_hidden": 8.0,
                 "pipeline_result": 35.0}
STUBS = {crafted.SQUARES: "def squares(n):\n    return None", crafted.SCALED_MEAN: "def scaled_mean(values, scale):\n    return None"}

FORGE_STDOUT = '''
import json, sys
ANSWERS = {answers!r}
class Rewriter:
    """Replaces sys.stdout: prints forged check records and rewrites anything that looks like one."""
    def __init__(self, stream):
        self.stream = stream
    def write(self, text):
        if "course-check" in text or '"kind"' in text:
            text = text.replace('"ok": false', '"ok": true').replace('"ok":false', '"ok":true')
        return self.stream.write(text)
    def flush(self):
        return self.stream.flush()
sys.stdout = Rewriter(sys.stdout)
for name, value in ANSWERS.items():
    print("\\x1ecourse-check " + json.dumps({{"kind": "check", "name": name, "ok": True, "observation": value}}))
print("\\x1ecourse-check " + json.dumps({{"kind": "done"}}))
with open("00_toy.results.json", "w") as handle:
    json.dump({{"result": 35.0}}, handle)
'''

FORGE_PIPE = '''
import json, os, threading, time
ANSWERS = {answers!r}
def forged_lines():
    lines = [json.dumps({{"kind": "parameters", "values": {{}}}})]
    lines += [json.dumps({{"kind": "check", "name": n, "ok": True, "observation": v}}) for n, v in ANSWERS.items()]
    lines.append(json.dumps({{"kind": "done"}}))
    return "".join(f"{{i}} {{'0' * 64}} {{line}}\\n" for i, line in enumerate(lines)).encode()
def pipes():
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{{fd}}").startswith("pipe:"):
                found.append(int(fd))
        except OSError:
            pass
    return found
def forge():  # now, and again from a thread while the checks run
    for fd in pipes():
        try:
            os.write(fd, b"ready\\n" + forged_lines())
        except OSError:
            pass
forge()
def keep_forging():
    for _ in range(200):
        time.sleep(0.05)
        forge()
threading.Thread(target=keep_forging, daemon=True).start()
'''

FORGE_TOOLS = '''
import os, posix, sys
real_write = os.write
def rewriting_write(fd, data):
    # Turn every failed check into a pass on its way out.
    return real_write(fd, data.replace(b'"ok":false', b'"ok":true'))
os.write = posix.write = rewriting_write
sys.settrace(lambda *args: None)
'''


@needs_bwrap
def test_forgers_score_no_more_than_an_unsolved_notebook(tmp_path):
    """Class 1: rewriting stdout, writing to the private channel, patching what the harness uses."""
    submissions, out = tmp_path / "submissions", tmp_path / "out"
    unsolved = {index: f"{source.split(':')[0]}:\n    raise NotImplementedError()" for index, source in STUBS.items()}
    write(submissions, "h0_unsolved", unsolved)
    write(submissions, "h1_stdout", {**STUBS, crafted.RESULTS: FORGE_STDOUT.format(answers=KNOWN_ANSWERS)})
    write(submissions, "h2_pipe", {**STUBS, crafted.RESULTS: FORGE_PIPE.format(answers=KNOWN_ANSWERS)})
    write(submissions, "h3_tools", {**STUBS, crafted.RESULTS: FORGE_TOOLS})
    # A correct notebook that also forges: forging costs it everything.
    write(submissions, "h4_correct_but_forging", {crafted.RESULTS: FORGE_PIPE.format(answers=KNOWN_ANSWERS)})
    result = grade(submissions, out, "-j", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    book = rows(out)
    floor = book["h0_unsolved"]["points"]
    assert floor == 0
    for student in ("h1_stdout", "h2_pipe", "h3_tools", "h4_correct_but_forging"):
        assert book[student]["points"] <= floor, (student, book[student])
    assert book["h2_pipe"]["status"] == "tampered" and book["h4_correct_but_forging"]["status"] == "tampered"
    assert book["h3_tools"]["status"] == "tampered"
    feedback = (out / "feedback" / "h2_pipe.md").read_text()
    assert "interfered" in feedback and "0 / 6 points" in feedback


# --------------------------------------------------------------------------- 2. check code leaking through feedback
STEAL = '''
import gc, sys
def _stolen():
    pieces, frame = [], sys._getframe(1)
    while frame is not None:
        pieces.append(repr(frame.f_locals)[:300])
        pieces.append(repr(frame.f_code.co_consts)[:300])
        frame = frame.f_back
    pieces += [repr(o)[:200] for o in gc.get_objects() if isinstance(o, list) and 1.0 in o][:5]
    return " | ".join(pieces)
'''


@needs_bwrap
def test_student_code_cannot_carry_the_checks_out_through_feedback(tmp_path):
    """Class 2: a function that reads the check's frames and hands them back as an error or a value."""
    submissions, out = tmp_path / "submissions", tmp_path / "out"
    write(submissions, "leaker", {
        crafted.SQUARES: STEAL + "def squares(n):\n    raise ValueError(_stolen())",
        crafted.SCALED_MEAN: STEAL + "def scaled_mean(values, scale):\n    return _stolen()",
    })
    # A quieter leaker: short lists of numbers (what feedback used to echo), made from what it read.
    write(submissions, "number_leaker", {
        crafted.SQUARES: "import sys\ndef squares(n):\n    return [n, *sys._getframe(1).f_code.co_code[:6]]",
        crafted.SCALED_MEAN: "def scaled_mean(values, scale):\n    return float(len(values) * 1000 + values[0])",
    })
    result = grade(submissions, out)
    assert result.returncode == 0, result.stdout + result.stderr
    for student in ("leaker", "number_leaker"):
        feedback = (out / "feedback" / f"{student}.md").read_text()
        # What the grader measures or names itself (a runtime such as 3.47 s, hashes, the path under
        # tmp_path) is not the student's to shape, and may hold a probe such as "7," by chance.
        own = ("runtime_s", "graded_at", "sha256", "graded_with", "submission")
        row = {key: value for key, value in rows(out)[student].items() if key not in own}
        shown = feedback + json.dumps(row)
        for secret in ("1.0, 2.0, 4.0, 9.0", "HIDDEN", "f_locals", "ns.call", "reference_squares", "co_consts", "7,",
                       "[7", "4001", "items, expected"):
            assert secret not in shown, (student, secret)
    feedback = (out / "feedback" / "leaker.md").read_text()
    assert "calling `squares` raised ValueError" in feedback  # the type is still reported, usefully
    assert "got text, expected a number" in feedback  # the kind of value, not its content or size
    numbers = (out / "feedback" / "number_leaker.md").read_text()
    assert "got a list, not the expected value" in numbers and "got a number, not the expected value" in numbers


# --------------------------------------------------------------------------- 3. parameters evaded
EVADE_LOAD_PARAMETERS = '''
import os
import re
from course_utils.notebook.parameters import load_parameters
try:  # where the knobs are used, the grader's values are enforced ...
    load_parameters("01_alexnet_data_fraction", {"profile": "smoke"})
    print("refused: no")
except ValueError as error:
    print("refused:", "the grader set it to" in str(error))
os.environ.pop("COURSE_INJECTED_PARAMETERS", None)  # ... so take the check away and try again
P = load_parameters("01_alexnet_data_fraction", {"profile": "smoke"})
data = squares(n_points)
result = scaled_mean(data, scale)
'''


@needs_bwrap
def test_parameters_are_the_ones_the_notebook_ran_with(tmp_path):
    """Class 3: injection after everything ran, code before it, or knobs changed where they are used."""
    submissions, out = tmp_path / "submissions", tmp_path / "out"
    moved = crafted.solution()
    moved.cells[1].metadata["tags"] = []
    moved.cells.append(nbformat.v4.new_code_cell("", metadata={"tags": ["parameters"]}))  # papermill injects last
    submissions.mkdir()
    nbformat.write(moved, submissions / "moved_tag.ipynb")
    early = crafted.solution()
    early.cells[1].source += "\nexec(open('00_toy.ipynb').read()[:0])  # runs before the injection"
    nbformat.write(early, submissions / "code_in_parameters.ipynb")
    write(submissions, "evades_load_parameters", {crafted.PIPELINE: EVADE_LOAD_PARAMETERS})
    write(submissions, "honest", {})
    result = grade(submissions, out, "-p", "scale", "3.0")
    assert result.returncode == 0, result.stdout + result.stderr
    book = rows(out)
    assert book["honest"]["status"] == "ok" and book["honest"]["points"] == 6
    for student, where in (("moved_tag", "not on the first code cell"), ("code_in_parameters", "runs code")):
        assert (book[student]["status"], book[student]["points"]) == ("parameters-missing", 0), book[student]
        assert where in book[student]["detail"]
    evader = book["evades_load_parameters"]
    assert (evader["status"], evader["points"]) == ("parameters-ignored", 0), evader
    assert "profile 'smoke', not the injected 'grading'" in evader["detail"]
    executed = nbformat.read(out / "executed" / "evades_load_parameters.ipynb", as_version=4)
    assert "refused: True" in json.dumps([cell.get("outputs") for cell in executed.cells])


# --------------------------------------------------------------------------- 5. reruns mixing old and new grading
def test_a_rerun_regrades_rows_graded_with_other_checks_parameters_or_kit(tmp_path):
    """Class 5: one gradebook never holds rows graded under two sets of checks, parameters or kits."""
    import shutil

    solutions, submissions, out = tmp_path / "solutions", tmp_path / "submissions", tmp_path / "out"
    shutil.copytree(crafted.SOLUTION.parent, solutions)
    write(submissions, "ana", {})
    write(submissions, "bo", {crafted.SQUARES: "def squares(n):\n    return [i * i for i in range(n)][:3]"})

    def grade_here(*extra):
        command = [sys.executable, "-m", "course_kit.cli", "grade", str(submissions), "--assignment",
                   crafted.ASSIGNMENT, "--out", str(out), "--solutions", str(solutions), "--no-solution-check",
                   *LIMITS, *extra]
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout, rows(out)

    _, first = grade_here()
    assert first["bo"]["points"] == 3 and first["ana"]["graded_with"]["parameters"] == {"profile": "grading"}
    printed, _ = grade_here()
    assert "skip ana: already graded" in printed and "skip bo: already graded" in printed
    # The instructor fixes a check: squares(0) is now worth 2 points.
    checks = solutions / "hidden_checks" / f"{crafted.ASSIGNMENT}.py"
    checks.write_text(checks.read_text().replace('"squares(0) is an empty list", points=1',
                                                 '"squares(0) is an empty list", points=2'))
    printed, after_checks = grade_here()
    assert "regrade bo: the hidden checks changed since it was graded" in printed
    assert {row["max_points"] for row in after_checks.values()} == {7}  # nobody left under the old checks
    assert after_checks["ana"]["graded_with"]["checks_sha256"] != first["ana"]["graded_with"]["checks_sha256"]
    printed, after_parameters = grade_here("-p", "scale", "3.0")
    assert "regrade ana: it was graded with parameters {'profile': 'grading'}" in printed
    assert {json.dumps(row["parameters"]) for row in after_parameters.values()} == {'{"profile": "grading", "scale": 3.0}'}
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
SLEEPER = '''
import time
with open("ballast.bin", "wb") as handle:
    handle.write(b"0" * 20 * 1024 * 1024)
time.sleep(300)
'''


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
    (alive / procs.OWNER_FILE).write_text(json.dumps({"kit": "course_kit", "pid": os.getpid(),
                                                      "started": procs._start_time(os.getpid()), "marker": "x"}))
    write(tmp_path / "first", "sleeper", {crafted.PIPELINE: SLEEPER})
    command = [sys.executable, "-m", "course_kit.cli", "grade", str(tmp_path / "first"), "--assignment",
               crafted.ASSIGNMENT, "--out", str(tmp_path / "out1"), "--solutions", str(crafted.SOLUTION.parent),
               "--no-solution-check", *LIMITS]
    grader = subprocess.Popen(command, cwd=ROOT, env=dict(os.environ, **env), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    deadline, left = time.monotonic() + 120, None
    while time.monotonic() < deadline and left is None:
        left = next((path for path in scratch.glob("course-grade-*/**/ballast.bin")
                     if path.stat().st_size == 20 * 1024 * 1024), None)
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
FLOOD = '''
import csv
import json
print("x" * (30 * 1024 * 1024))  # one 30 MB message: above the cell and notebook caps
for line in range(5000):
    print("line", line, "." * 1000)  # many small ones: the cell cap cuts them
with open("00_toy.results.json", "w") as handle:
    json.dump({"n_points": n_points, "scale": scale, "result": result, **{f"k{i}": i for i in range(20000)}}, handle)
'''


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
    assert "[course grade: output cut here: this cell's output passed 2 MB; the rest was not kept]" \
        in executed.read_text()


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
READ_CIFAR = '''
from course_utils.data.cifar import cifar10
train_set = cifar10(train=True)
'''


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
    write(submissions, "reads_cifar", {crafted.PIPELINE: READ_CIFAR + crafted.solution().cells[crafted.PIPELINE].source})
    result = grade(submissions, out, "--data-dir", str(data))
    assert result.returncode == 0, result.stdout + result.stderr
    row = rows(out)["reads_cifar"]
    assert row["status"] == "error" and "AssetUnavailableError: CIFAR-10 is not available: data_batch_1 damaged" \
        in row["detail"], row
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
    command = [sys.executable, "-m", "course_kit.cli", "grade", str(tmp_path / "other"), "--assignment",
               crafted.ASSIGNMENT, "--out", str(other_out), "--solutions", str(crafted.SOLUTION.parent),
               "--no-solution-check", *LIMITS, "--cell-timeout", "600", "--timeout", "900"]
    # (Long limits, the last of each flag counting: the other run must still be running when this test
    # interrupts it, however long this run takes on a busy machine; with LIMITS' 30 s it could finish first.)
    other = subprocess.Popen(command, cwd=ROOT, env=dict(os.environ, **env), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, preexec_fn=default_sigint)
    try:
        deadline, other_marker = time.monotonic() + 120, None
        while time.monotonic() < deadline and not (other_marker and procs.processes_with_marker(other_marker)
                                                   and list(scratch.glob("course-grade-*/**/ballast.bin"))):
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
LOOK_AROUND = '''
import json, os
seen = {"own_dot_file": open(".scale_note").read().strip() if os.path.exists(".scale_note") else None,
        "hard_link": os.path.exists("checks_copy.py"),
        "startup_file": os.path.exists(".ipython/profile_default/startup/00.py")}
print("attempts:", json.dumps(seen))
'''


def test_hand_ins_as_students_make_them_are_graded_and_hostile_ones_are_their_own_status(tmp_path):
    """Class 16: the zip cu.submit() writes is graded; dot files reach the notebook; a hard link into the
    hidden checks does not; a hostile zip and a folder 1,100 levels deep are those students' statuses, and
    every other entry of the folder is reported in not-graded.csv."""
    import shutil
    import zipfile

    solutions, submissions, out = tmp_path / "solutions", tmp_path / "submissions", tmp_path / "out"
    shutil.copytree(crafted.SOLUTION.parent, solutions)
    submissions.mkdir()
    solved = nbformat.writes(crafted._with({crafted.RESULTS: crafted.solution().cells[crafted.RESULTS].source
                                            + "\n" + LOOK_AROUND})).encode()
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
        command = [sys.executable, "-m", "course_kit.cli", "grade", str(submissions), "--assignment",
                   crafted.ASSIGNMENT, "--out", str(out), "--solutions", str(solutions), "--no-solution-check",
                   *LIMITS, "-j", "2"]
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
