"""The kernel sandbox (course_kit/grading/sandbox.py): a kernel started through the real launcher,
under bubblewrap, tries what a hostile submission would, and the host checks what it achieved.

One kernel (started as ``runner.make_kernel_manager`` starts every graded kernel) serves the
probes; the process-cleanup and refusal tests run ``course grade`` itself.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "grading_toy"))
import crafted  # noqa: E402

from course_kit.grading import procs, runner, sandbox  # noqa: E402
from course_kit.repository import KIT_DIR, student_library_dir  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
needs_bwrap = pytest.mark.skipif(
    sandbox.bwrap_problem() is not None, reason=f"bubblewrap unusable here: {sandbox.bwrap_problem()}"
)


class Kernel:
    """A kernel in the grading sandbox, and a way to run code in it."""

    def __init__(self, private: Path, marker: str):
        self.private, self.work = private, private / "work"
        self.work.mkdir(mode=0o700)
        (self.work / ".tmp").mkdir()
        library = self.work / ".course-lib"
        library.mkdir()
        (library / "course_utils").symlink_to(student_library_dir(), target_is_directory=True)
        self.job = {
            "sandbox": "bwrap",
            "threads": 1,
            "marker": marker,
            "data_dir": None,
            "parameters": {},
            "memory_bytes": 2 * 1024**3,
            "file_size_bytes": 1024**3,
            "pythonpath": str(library),
        }
        self.loop = asyncio.new_event_loop()
        self.km = runner.make_kernel_manager(self.job, private, self.work)
        self.log = open(private / "kernel.log", "wb")
        self.loop.run_until_complete(
            self.km.start_kernel(
                cwd=str(self.work), stdout=self.log, stderr=self.log, env=runner.kernel_environment(self.job, self.work)
            )
        )
        self.kc = self.km.client()
        self.kc.start_channels()
        self.loop.run_until_complete(self.kc.wait_for_ready(timeout=120))
        self.run(ATTEMPT)

    def run(self, code: str) -> str:
        """Run ``code``; return what it printed (an error in it fails the test)."""
        printed, errors = [], []

        def hook(msg):
            if msg["msg_type"] == "stream":
                printed.append(msg["content"]["text"])
            elif msg["msg_type"] == "error":
                errors.append("\n".join(msg["content"]["traceback"]))

        self.loop.run_until_complete(self.kc.execute_interactive(code, output_hook=hook, timeout=120))
        assert not errors, errors
        return "".join(printed)

    def attempts(self, code: str) -> dict[str, str]:
        """Run probes written with ``attempt(name, action)``; ``{name: "succeeded: ..." | "blocked: Error"}``."""
        printed = self.run("attempts = {}\n" + code + "\nprint('ATTEMPTS ' + json.dumps(attempts))")
        return json.loads(printed.split("ATTEMPTS ", 1)[1])

    def close(self) -> None:
        self.kc.stop_channels()
        self.loop.run_until_complete(self.km.shutdown_kernel(now=True))
        self.loop.close()
        self.log.close()


ATTEMPT = """
import errno, json, os, socket
def attempt(name, action):
    try:
        attempts[name] = "succeeded: " + repr(action())[:200]
    except OSError as error:
        attempts[name] = "blocked: " + type(error).__name__ + " " + (errno.errorcode.get(error.errno) or "")
"""


@pytest.fixture(scope="module")
def kernel():
    if sandbox.bwrap_problem() is not None:
        pytest.skip(f"bubblewrap unusable here: {sandbox.bwrap_problem()}")
    marker = f"sandbox-test-{os.getpid()}"
    private = procs.private_folder(marker)
    started = Kernel(private, marker)
    try:
        yield started
    finally:
        started.close()
        procs.kill_tree(os.getpid(), marker=marker)
        import shutil

        shutil.rmtree(private, ignore_errors=True)


def test_the_kernel_talks_over_ipc_sockets_in_its_work_folder(kernel):
    info = json.loads((kernel.work / ".kernel-connection.json").read_text())
    assert info["transport"] == "ipc" and info["ip"] == str(kernel.work / ".kernel")
    assert all((kernel.work / f".kernel-{info[name]}").is_socket() for name in ("shell_port", "iopub_port", "hb_port"))
    listening = kernel.run("print(open('/proc/net/tcp').read().count(': 00000000:0000 0A'))")  # state 0A = LISTEN
    assert kernel.run("print(1 + 1)").strip() == "2" and listening.strip() == "0"


def test_the_kernel_reaches_no_address_outside_its_network_namespace(kernel):
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        tcp.bind(("127.0.0.1", 0))
        tcp.listen(4)
        tcp.settimeout(0)
        udp.bind(("127.0.0.1", 0))
        udp.settimeout(30)
        attempts = kernel.attempts(f"""
attempt("tcp_host_loopback", lambda: socket.create_connection(("127.0.0.1", {tcp.getsockname()[1]}), timeout=5).close())
attempt("tcp_outside", lambda: socket.create_connection(("1.1.1.1", 53), timeout=5).close())
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
attempt("udp_host_loopback", lambda: udp.sendto(b"from-the-kernel", ("127.0.0.1", {udp.getsockname()[1]})))
attempt("interfaces", lambda: sorted(name for _, name in socket.if_nameindex()))
""")
        # Delivery on loopback is immediate: had the kernel's datagram reached this socket, it would be first.
        udp.sendto(b"from-the-test", udp.getsockname())
        assert udp.recv(64) == b"from-the-test"
        with pytest.raises(BlockingIOError):
            tcp.accept()  # nobody connected
    finally:
        tcp.close()
        udp.close()
    assert attempts["tcp_host_loopback"] == "blocked: ConnectionRefusedError ECONNREFUSED", attempts
    assert attempts["tcp_outside"].startswith("blocked: OSError ENETUNREACH"), attempts
    assert attempts["udp_host_loopback"].startswith("succeeded"), attempts  # sent into its own, empty namespace
    # if_nameindex needs a netlink socket, which the sandbox does not open.
    assert attempts["interfaces"].startswith("blocked"), attempts


def test_the_kernel_can_open_no_raw_packet_or_netlink_socket(kernel):
    attempts = kernel.attempts("""
attempt("raw_icmp", lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP))
attempt("raw_ipv6", lambda: socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6))
attempt("packet", lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3)))
attempt("packet_dgram", lambda: socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(3)))
attempt("netlink_route", lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0))
attempt("netlink_audit", lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 9))
attempt("unix", lambda: socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).close())
attempt("tcp", lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM).close())
""")
    for name in ("raw_icmp", "raw_ipv6", "packet", "packet_dgram", "netlink_route", "netlink_audit"):
        assert (
            attempts[name].startswith("blocked: PermissionError")
            or attempts[name] == f"blocked: OSError {errno.errorcode[errno.EOPNOTSUPP]}"
        ), (name, attempts)
    assert attempts["unix"] == attempts["tcp"] == "succeeded: None", attempts  # what ZeroMQ and loopback need


def _victims() -> list[Path]:
    """Files the kernel sees read-only: one in the virtualenv's site-packages, one under /usr/local/share."""
    import nbformat

    found = [Path(nbformat.__file__)]
    for top in ("/usr/local/share", "/usr/share"):
        for folder, _, files in os.walk(top):
            if files:
                found.append(Path(folder) / sorted(files)[0])
                break
        if len(found) == 2:
            break
    return found


def test_the_kernel_cannot_change_file_metadata_outside_its_work_folder(kernel):
    victims = _victims()
    before = {path: os.stat(path) for path in victims}
    probes = ""
    for index, path in enumerate(victims):
        probes += f"""
path = {str(path)!r}
attempt("chmod_{index}", lambda: os.chmod(path, 0))
attempt("chmod_setuid_{index}", lambda: os.chmod(path, 0o4755))
attempt("chown_{index}", lambda: os.chown(path, 65534, 65534))
attempt("utime_{index}", lambda: os.utime(path, (0, 0)))
attempt("setxattr_user_{index}", lambda: os.setxattr(path, "user.course", b"x"))
attempt("setxattr_capability_{index}", lambda: os.setxattr(path, "security.capability", b"\\x01" * 20))
attempt("write_{index}", lambda: open(path, "ab").close())
"""
    probes += """
attempt("chmod_own_file", lambda: (open("mine.txt", "w").close(), os.chmod("mine.txt", 0o600)))
"""
    attempts = kernel.attempts(probes)
    assert attempts.pop("chmod_own_file").startswith("succeeded"), attempts  # the probes themselves work
    assert len(attempts) == 7 * len(victims) == 14
    for name, outcome in attempts.items():
        assert outcome in ("blocked: OSError EROFS", "blocked: PermissionError EPERM"), (name, attempts)
    for path, stat_before in before.items():
        after = os.stat(path)
        assert (after.st_mode, after.st_uid, after.st_gid, after.st_mtime_ns) == (
            stat_before.st_mode,
            stat_before.st_uid,
            stat_before.st_gid,
            stat_before.st_mtime_ns,
        )
        assert "user.course" not in os.listxattr(path)


def test_the_kernel_cannot_set_the_hosts_hostname(kernel):
    host = socket.gethostname()
    attempts = kernel.attempts("""
attempt("sethostname", lambda: socket.sethostname("taken-over"))
attempt("proc_hostname", lambda: open("/proc/sys/kernel/hostname", "w").write("taken-over"))
attempt("sysctl", lambda: open("/proc/sys/kernel/printk_ratelimit", "w").write("5"))
attempt("its_name", lambda: socket.gethostname())
""")
    assert attempts["sethostname"] == "blocked: PermissionError EPERM", attempts
    assert attempts["proc_hostname"].startswith("blocked") and attempts["sysctl"].startswith("blocked"), attempts
    assert attempts["its_name"] == "succeeded: 'course-kernel'"  # a UTS namespace of its own
    assert socket.gethostname() == host


def test_the_kernel_sees_no_other_process(kernel):
    seen = json.loads(
        kernel.run("""
import json, os
pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
print(json.dumps({"me": os.getpid(), "pids": pids,
                  "cmdlines": [open(f"/proc/{p}/cmdline", "rb").read().decode(errors="replace") for p in pids]}))
""")
    )
    assert seen["me"] < 10 and max(seen["pids"]) < 10, seen  # numbered in a PID namespace of its own
    assert not any("pytest" in line or "course_kit" in line for line in seen["cmdlines"]), seen
    attempts = kernel.attempts(f'attempt("signal_test", lambda: os.kill({os.getpid()}, 0))')
    assert attempts["signal_test"] == "blocked: ProcessLookupError ESRCH", attempts


def test_the_kernel_cannot_read_the_instructor_kit_or_the_hidden_checks(kernel):
    attempts = kernel.attempts(f"""
import importlib.util
attempt("kit_file", lambda: open({str(KIT_DIR / "grading" / "checks.py")!r}).read())
attempt("kit_folder", lambda: os.listdir({str(KIT_DIR)!r}))
attempt("hidden_checks", lambda: open({str(crafted.HIDDEN_CHECKS)!r}).read())
attempt("project", lambda: os.listdir({str(ROOT)!r}))
attempt("student_library", lambda: open(importlib.util.find_spec("course_utils").origin).read(10))
attempts["kit_import"] = repr(importlib.util.find_spec("course_kit"))
""")
    for name in ("kit_file", "kit_folder", "hidden_checks"):
        assert attempts[name] == "blocked: FileNotFoundError ENOENT", (name, attempts)
    assert attempts["project"].startswith("succeeded") and "course_kit" not in attempts["project"], attempts
    assert attempts["student_library"].startswith("succeeded"), attempts
    assert attempts["kit_import"] == "None", attempts


@needs_bwrap
def test_a_kit_installed_inside_a_readable_folder_is_covered(tmp_path):
    site = tmp_path / "site-packages"
    for package in ("course_kit", "numpy_like"):
        (site / package).mkdir(parents=True)
        (site / package / "__init__.py").write_text(f"SECRET = 'inside {package}'\n")
    work = tmp_path / "work"
    work.mkdir()
    policy = {
        "mode": "bwrap",
        "read_only": sandbox.system_read_paths() + [str(site)],
        "hidden": [str(site / "course_kit")],
        "work": str(work),
        "env": {"PATH": "/usr/bin:/bin"},
    }
    (tmp_path / "policy.json").write_text(json.dumps(policy))
    done = subprocess.run(
        [
            sys.executable,
            sandbox.__file__,
            str(tmp_path / "policy.json"),
            "--",
            "/bin/sh",
            "-c",
            f"ls -A {site}/course_kit; echo ---; cat {site}/numpy_like/__init__.py; "
            f"cat {site}/course_kit/__init__.py; echo rc=$?",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("---\n") and "inside numpy_like" in done.stdout  # empty folder; others readable
    assert "inside course_kit" not in done.stdout and "rc=1" in done.stdout


# --------------------------------------------------------------------------- course grade end to end
SPAWNER = """
import os, subprocess, sys, time
# A daemon that leaves the kernel's session and process group: it must still not survive the run.
subprocess.Popen([sys.executable, "-c", "import os, time; os.fork() or time.sleep(600); time.sleep(600)"],
                 start_new_session=True)
with open("spawned.flag", "w") as handle:
    handle.write("yes")
time.sleep(600)
"""


def _grade_command(submissions: Path, out: Path, *extra: str) -> list[str]:
    return [
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
        "--timeout",
        "600",
        "--cell-timeout",
        "600",
        *extra,
    ]


@pytest.mark.slow
@needs_bwrap
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["killed", "terminated"])
def test_a_killed_or_interrupted_runner_leaves_no_process(tmp_path, how):
    import nbformat

    submissions, out = tmp_path / "submissions", tmp_path / "out"
    submissions.mkdir()
    nbformat.write(crafted._with({crafted.PIPELINE: SPAWNER}), submissions / "spawner.ipynb")
    scratch = tmp_path / "tmp"  # this run's private folders only
    scratch.mkdir()
    grader = subprocess.Popen(
        _grade_command(submissions, out),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ, TMPDIR=str(scratch)),
    )
    try:
        marker = None
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not list(scratch.glob("course-grade-*/work/spawned.flag")):
            time.sleep(0.2)
        assert list(scratch.glob("course-grade-*/work/spawned.flag")), "the notebook never started its daemon"
        marker = json.loads(next(scratch.glob(f"course-grade-*/{procs.OWNER_FILE}")).read_text())["marker"] + ":spawner"
        family = procs.processes_with_marker(marker)
        runners = [pid for pid in family if b"course_kit.grading.runner" in Path(f"/proc/{pid}/cmdline").read_bytes()]
        assert len(runners) == 1 and len(family) >= 4, family  # runner, bwrap, the kernel, the daemon ...
        os.kill(runners[0], how)
        deadline = time.monotonic() + 60
        while procs.processes_with_marker(marker) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert procs.processes_with_marker(marker) == []
        printed, _ = grader.communicate(timeout=120)
        assert "spawner" in printed
    finally:
        if grader.poll() is None:
            grader.kill()
            grader.wait()
        if marker:
            procs.kill_tree(os.getpid(), marker=marker)


def test_course_grade_refuses_without_bubblewrap_and_says_how_to_go_on(tmp_path):
    import nbformat

    submissions, out = tmp_path / "submissions", tmp_path / "out"
    submissions.mkdir()
    nbformat.write(crafted.solution(), submissions / "ana.ipynb")
    no_bwrap = dict(os.environ, **{sandbox.BWRAP_VARIABLE: str(tmp_path / "no-such-bwrap")})
    refused = subprocess.run(
        _grade_command(submissions, out), cwd=ROOT, capture_output=True, text=True, timeout=300, env=no_bwrap
    )
    assert refused.returncode == 2, refused.stdout + refused.stderr
    for fix in (
        "bubblewrap (bwrap) is not installed here",
        "apt-get install bubblewrap",
        "--container IMAGE",
        "--sandbox none",
    ):
        assert fix in refused.stderr, (fix, refused.stderr)
    assert not (out / "grades.csv").exists()


@pytest.mark.slow
def test_sandbox_none_is_graded_and_says_so_in_the_row(tmp_path):
    import nbformat

    submissions, out = tmp_path / "submissions", tmp_path / "out"
    submissions.mkdir()
    nbformat.write(crafted.solution(), submissions / "ana.ipynb")
    no_bwrap = dict(os.environ, **{sandbox.BWRAP_VARIABLE: str(tmp_path / "no-such-bwrap")})
    done = subprocess.run(
        _grade_command(submissions, out, "--sandbox", "none"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=no_bwrap,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARNING: --sandbox none" in done.stdout
    row = json.loads((out / "grades.json").read_text())["rows"][0]
    assert (row["status"], row["points"]) == ("ok", crafted.MAX_POINTS)
    assert re.match(r"none \(--sandbox none", row["sandbox"]), row["sandbox"]


@pytest.mark.slow
@needs_bwrap
@pytest.mark.skipif(os.geteuid() != 0, reason="--run-as needs the grader to run as root")
def test_run_as_starts_the_sandbox_as_an_unprivileged_user(tmp_path):
    import pwd

    import nbformat

    try:
        uid = pwd.getpwnam("nobody").pw_uid
    except KeyError:
        pytest.skip("no user nobody here")
    import shutil
    import tempfile

    submissions, out = tmp_path / "submissions", tmp_path / "out"
    submissions.mkdir()
    # This run's private folders, somewhere nobody can traverse to (pytest's own tmp_path is 0700 root).
    scratch = Path(tempfile.mkdtemp(prefix="course-sandbox-test-", dir="/tmp"))
    scratch.chmod(0o711)
    # The kernel says it is running, then waits until the test has looked at it from outside.
    wait = (
        "\nimport os, time\nopen('ready.flag', 'w').close()\nfor _ in range(1200):\n"
        "    if os.path.exists('go.flag'):\n        break\n    time.sleep(0.1)\n"
    )
    nbformat.write(
        crafted._with({crafted.RESULTS: crafted.solution().cells[crafted.RESULTS].source + wait}),
        submissions / "ana.ipynb",
    )
    grader = subprocess.Popen(
        _grade_command(submissions, out, "--run-as", "nobody"),
        cwd=ROOT,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(os.environ, TMPDIR=str(scratch)),
    )
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and grader.poll() is None and not list(scratch.glob("*/work/ready.flag")):
            time.sleep(0.2)
        if grader.poll() == 2:
            pytest.skip(f"--run-as nobody refused here: {grader.stderr.read().strip()[-300:]}")
        ready = next(scratch.glob("*/work/ready.flag"))
        marker = json.loads((ready.parent.parent / procs.OWNER_FILE).read_text())["marker"] + ":ana"
        kernels = [
            pid
            for pid in procs.processes_with_marker(marker)
            if b"ipykernel_launcher" in Path(f"/proc/{pid}/cmdline").read_bytes()
        ]
        uids = {tuple(Path(f"/proc/{pid}/status").read_text().split("\nUid:")[1].split()[:4]) for pid in kernels}
        (ready.parent / "go.flag").touch()
        printed, errors = grader.communicate(timeout=300)
    finally:
        if grader.poll() is None:
            grader.kill()
            grader.wait()
        shutil.rmtree(scratch, ignore_errors=True)
    assert kernels and uids == {(str(uid),) * 4}, (kernels, uids)  # real, effective, saved, filesystem uid
    assert grader.returncode == 0, printed + errors
    row = json.loads((out / "grades.json").read_text())["rows"][0]
    assert (row["status"], row["points"]) == ("ok", crafted.MAX_POINTS), row
    assert row["sandbox"].startswith("bwrap (") and row["sandbox"].endswith("user nobody)"), row["sandbox"]
