"""Hostile submissions, one class each, and the outcome `course grade` must give them.

Each test names the class of attack from the grading threat model (docs/grading.md):
forged observations, check code leaking through feedback, evaded or unknown parameters,
reruns mixing gradings, other processes' environment, UNIX sockets, shared memory, stale
temp folders, colliding student ids, oversized submissions, gradebook shape, student-caused
failures, damaged data and tests that assume they are alone. They grade the toy assignment
(tests/grading_toy), which takes a second or two per notebook.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "grading_toy"))
import crafted  # noqa: E402

from course_kit.grading import sandbox  # noqa: E402

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
LIMITS = ["--timeout", "90", "--cell-timeout", "30", "--check-timeout", "30", "--memory", "2G"]
needs_landlock = pytest.mark.skipif(sandbox.landlock_abi() <= 0, reason="Landlock unavailable on this kernel")


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
parent = os.getppid()
def environ_of(pid):
    return open(f"/proc/{{pid}}/environ", "rb").read()
def grandparent():
    return int(open(f"/proc/{{parent}}/stat").read().rsplit(")", 1)[1].split()[1])
attempt("runner_environ", lambda: environ_of(parent))
attempt("grader_environ", lambda: environ_of(grandparent()))
attempt("init_environ", lambda: environ_of(1))
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
with open("00_toy.results.json", "w") as handle:
    json.dump({{"n_points": n_points, "scale": scale, "result": result, **attempts}}, handle)
'''


@needs_landlock
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
    attempts = row["metrics"]
    assert row["status"] == "ok", row
    for name in ("runner_environ", "grader_environ", "init_environ", "unix_socket"):
        assert attempts[name] in ("blocked: PermissionError", "blocked: FileNotFoundError"), (name, attempts)
    assert talked == []  # the listener never heard from the kernel
    # The kernel wrote to a /dev/shm of its own: the machine's never held the file, and it is gone.
    assert attempts["shm_write"].startswith("succeeded") and shm_name in attempts["shm_write"]
    assert not Path("/dev/shm", shm_name).exists()
    everything = json.dumps(rows(out)) + "".join(p.read_text(errors="replace") for p in out.rglob("*") if p.is_file())
    assert secret not in everything
