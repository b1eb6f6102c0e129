"""One submission in one process: papermill-parametrized execution in a sandboxed kernel, then the hidden checks.

The grader starts this module as its own process (``python -m course_kit.grading.runner``),
in a new session, so that it can be killed as a whole; like the rest of the instructor kit
it never imports torch or the student library. Protocol: the job arrives as one JSON object on stdin (see
:func:`course_kit.grading.job.build_runner_job`); the result is written to
``<private_dir>/result.json`` together with an HMAC made with the job's one-time key,
and the executed notebook to ``<private_dir>/executed.ipynb``. ``private_dir`` is made
by the caller and is not reachable from the sandboxed kernel.

What it does, in order:

1. becomes a *child subreaper* (every process the kernel starts stays in its tree) and
   non-dumpable; a watchdog thread kills everything when the grader that started it dies;
2. writes the submission into ``<private_dir>/work`` (the kernel's only writable place)
   and starts ``ipykernel`` through ``sandbox.py`` (bubblewrap, limits, clean environment);
3. runs the notebook with papermill (its parameter injection, metadata and saving) via
   the ``course-grading`` engine (engine.py). A cell that raises is recorded and the next cells
   still run (like nbgrader: a later, independent exercise still counts; ``stop_on_error``
   gives papermill's stop-at-first-error instead). A timeout, a dead kernel or a kernel
   that no longer speaks the Jupyter protocol halt execution;
4. unless the kernel died: interrupts a timed-out cell, then runs the hidden checks' probes
   (``probe.py``) in the same kernel as one extra cell that is never added to the executed
   notebook; they call the student's code on the inputs the grader drew and write what came
   back to a report file, which is read here and judged by the grader (nothing in it is trusted);
5. reads ``<NAME>.results.json`` (the notebook's metrics) without following links;
6. kills every remaining process in its tree, and reports.

Example (what :func:`course_kit.grading.job.grade_job` does)::

    subprocess.run([sys.executable, "-m", "course_kit.grading.runner"], input=json.dumps(job), text=True)
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import stat
import sys
import threading
import time
import traceback
from pathlib import Path

from ..repository import KIT_DIR, student_library_dir
from . import procs, sandbox

RESULT_FILE = "result.json"
# Names the runner makes in the kernel's work folder (a submission cannot bring them: submissions.RESERVED).
KERNEL_SOCKETS = ".kernel"
LIBRARY_LINK = ".course-lib"
EXECUTED_FILE = "executed.ipynb"
KERNEL_LOG = "kernel.log"
MAX_METRICS_BYTES = 1_000_000
MAX_METRICS_DEPTH = 20
MAX_RECORD_CHARS = 2_000_000
# What the executed notebook keeps of a student's outputs (a 100 MB print stays out of the
# gradebook folder); plots and the course's tables are far below these.
MAX_CELL_OUTPUT_BYTES = 2 * 1024**2
MAX_NOTEBOOK_OUTPUT_BYTES = 20 * 1024**2
# An error output's message and traceback: enough for any real traceback, never 60 MB.
MAX_ERROR_CHARS = 16 * 1024
# Blocks of this size or more are mmapped, and unmapped when freed (see kernel_environment).
MALLOC_MMAP_THRESHOLD = 128 * 1024
# How often MemoryWatch reads what the kernel holds.
MEMORY_POLL_S = 0.1
# RLIMIT_DATA is --memory plus this: writable memory a kernel reserves and never touches counts there
# (notebook 03's grading kernel: 757 MB writable while 459 MB was resident; twelve 8 MB thread stacks
# alone are 96 MB), so the resident limit decides, and RLIMIT_DATA only stops one huge allocation at once.
WRITABLE_HEADROOM = 512 * 1024**2


def capped_error(content: dict) -> dict:
    """An error output's content with its message and traceback cut to MAX_ERROR_CHARS in all.

    Example:
        >>> cut = capped_error({"ename": "ValueError", "evalue": "x" * 10**6, "traceback": ["y" * 10**6] * 3})
        >>> len(cut["evalue"]) + sum(map(len, cut["traceback"])) <= MAX_ERROR_CHARS + 200
        True
    """
    budget = MAX_ERROR_CHARS
    note = " [course grade: cut here]"
    evalue = str(content.get("evalue", ""))
    if len(evalue) > budget // 4:
        evalue = evalue[: budget // 4] + note
    budget -= len(evalue)
    lines = []
    for line in content.get("traceback") or []:
        line = str(line)
        if budget <= 0:
            lines.append(note.strip())
            break
        lines.append(line if len(line) <= budget else line[:budget] + note)
        budget -= len(lines[-1])
    return dict(content, ename=str(content.get("ename", ""))[:200], evalue=evalue, traceback=lines)


class Terminated(BaseException):
    """The grader asked this runner to stop (SIGTERM/SIGHUP): clean up and leave."""


def _on_terminate(signum, frame):
    raise Terminated(f"signal {signum}")


# --------------------------------------------------------------------------- the probes' report
MAX_REPORT_BYTES = 8 * 1024**2


def read_probe_report(path: Path) -> tuple[list[dict], bool, bool]:
    """``(records, started, done)`` from the report file the probes wrote in the kernel's work folder.

    The file is the student's (their code shares the kernel): it is opened without following
    links or blocking, read up to MAX_REPORT_BYTES, and any line that is not a JSON object is
    skipped. Nothing in it is trusted; the grader judges what it says.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> _ = (folder / "r").write_text('started\\n{"name": "a", "ok": true, "observation": 1}\\nnoise\\ndone\\n')
        >>> read_probe_report(folder / "r")
        ([{'name': 'a', 'ok': True, 'observation': 1}], True, True)
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return [], False, False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return [], False, False
        data = os.read(fd, MAX_REPORT_BYTES)
    finally:
        os.close(fd)
    lines = data.decode("utf-8", errors="replace").split("\n")
    records = []
    for line in lines:
        if line.startswith("{"):
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                records.append(record)
    return records, bool(lines) and lines[0] == "started", "done" in lines


# --------------------------------------------------------------------------- session state
class Session:
    """Deadlines and everything observed while one notebook runs."""

    def __init__(self, job: dict, work: Path):
        self.job = job
        self.work = work
        self.started = time.monotonic()
        self.notebook_deadline = None  # set when the kernel is up: startup is not the student's time
        self.phase = "cells"
        self.check_deadline = None
        self.stop: dict | None = None  # why execution halted: timeout, kernel-died, kernel-broken
        self.errors: list[dict] = []  # every cell that raised, in order
        self.errors_dropped = 0
        # What became of the check phase: its state (see job.CheckPhase) and, where useful, why.
        self.check_phase, self.check_detail = "not run", ""
        self.kernel_exit = None
        # The probes' report file, named for this run only (see probe.py).
        self.report_path = work / f".course-report-{os.urandom(8).hex()}"
        self.records: list[dict] = []
        self.report_complete = False
        self.peak_memory = 0
        self.memory_stop: dict | None = None  # MemoryWatch stopped the kernel: what it held, the limit
        self.job_kernel_kwargs: dict = {}

    def kernel_started(self) -> None:
        self.notebook_deadline = time.monotonic() + float(self.job["timeout"])

    def timeout_for(self, cell) -> float:
        """nbclient's per-cell timeout: the cell limit, cut to what is left of the overall budget."""
        now = time.monotonic()
        if self.phase == "checks":
            return max(1.0, self.check_deadline - now)
        return max(1.0, min(float(self.job["cell_timeout"]), self.notebook_deadline - now))

    def which_limit(self) -> str:
        """Name the limit a timed-out cell ran into, for the gradebook."""
        if self.notebook_deadline is not None and time.monotonic() >= self.notebook_deadline - 0.5:
            return f"the notebook ran past --timeout {self.job['timeout']:g} s"
        return f"a cell ran past --cell-timeout {self.job['cell_timeout']:g} s"

    def check_cell_source(self) -> str:
        """The one cell that runs the probes: probe.py's source, the probes and each check's inputs."""
        args = {
            "report": str(self.report_path),
            "probes_source": self.job["probes_source"],
            # Tracebacks name this file; nothing depends on it being secret.
            "probes_filename": "<hidden checks>",
            "checks": self.job["checks"],
            "parameter_names": sorted(self.job["parameters"]),
        }
        # repr() of plain strings/lists is a Python literal: the compiler parses it, no
        # (patchable) json module is involved in the kernel.
        return (
            f"exec(compile({self.job['probe_source']!r}, '<course-grading>', 'exec'), "
            f"{{'__name__': '__course_grading__', 'USER_NS': globals(), 'ARGS': {args!r}}})"
        )


class MemoryWatch:
    """Stops the kernel when the memory it holds passes ``--memory``: what a container's limit counts.

    Every MEMORY_POLL_S it sums the resident anonymous and shared memory of every process this
    runner started (the kernel, its DataLoader workers, whatever they started;
    :func:`procs.unreclaimable_bytes`). Above the limit it records how much and kills them all,
    and the run ends ``out-of-memory``. RLIMIT_DATA (--memory + WRITABLE_HEADROOM, set by the
    sandbox) still turns one huge allocation into a MemoryError at once.

    Example:
        >>> watch = MemoryWatch(Session({}, Path("/w")), limit_bytes=None)
        >>> watch.start(); watch.stop(); watch.session.memory_stop is None
        True
    """

    def __init__(self, session: Session, limit_bytes: int | None):
        self.session, self.limit = session, limit_bytes
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-watch", daemon=True)

    def start(self) -> None:
        if self.limit:
            self._thread.start()

    def stop(self) -> None:
        self._done.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        runner = os.getpid()
        while not self._done.wait(MEMORY_POLL_S):
            held = procs.unreclaimable_bytes(procs.descendants(runner))
            if held > self.limit:
                self.session.memory_stop = {"held_mb": round(held / 1024**2), "limit_mb": round(self.limit / 1024**2)}
                procs.kill_tree(runner)
                return


# --------------------------------------------------------------------------- kernel setup
def kernel_environment(job: dict, work: Path) -> dict:
    """The kernel's whole environment: nothing from the grader's except what is listed here.

    Example:
        >>> env = kernel_environment({"threads": 1, "marker": "m", "data_dir": None}, Path("/w"))
        >>> env["HOME"], "AWS_SECRET_ACCESS_KEY" in env
        ('/w', False)
    """
    threads = str(job["threads"])
    env = {
        "PATH": os.pathsep.join([os.path.dirname(sys.executable), "/usr/local/bin", "/usr/bin", "/bin"]),
        "HOME": str(work),
        "TMPDIR": str(work / ".tmp"),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONNOUSERSITE": "1",
        "PYTHONHASHSEED": "0",  # identical runs grade identically
        "MPLBACKEND": "agg",
        "MPLCONFIGDIR": str(work / ".config" / "matplotlib"),
        "IPYTHONDIR": str(work / ".ipython"),
        "JUPYTER_CONFIG_DIR": str(work / ".jupyter"),
        "JUPYTER_DATA_DIR": str(work / ".local" / "share" / "jupyter"),
        "XDG_CACHE_HOME": str(work / ".cache"),
        "XDG_CONFIG_HOME": str(work / ".config"),
        "TORCH_HOME": str(work / ".torch"),
        "COURSE_DATA_DIR": job["data_dir"] or str(work / "data"),
        "COURSE_OFFLINE": "1",
        "COURSE_PROGRESS": "off",
        "OMP_NUM_THREADS": threads,
        "GOMP_SPINCOUNT": "300",  # a waiting thread soon sleeps: the CPU share goes to work (docs/speed.md)
        "MKL_NUM_THREADS": threads,
        "OPENBLAS_NUM_THREADS": threads,
        "NUMEXPR_NUM_THREADS": threads,
        "CUDA_VISIBLE_DEVICES": "",
        # glibc raises its mmap threshold (up to 32 MB) each time a large block is freed, so later
        # tensors land on the heap, which it rarely gives back: a kernel training one model after
        # another grew from 763 to 1162 MB resident (notebook 04, ResNet18). A fixed threshold (glibc's
        # own starting value) returns every tensor of 128 kB or more to the system when it is freed.
        "MALLOC_MMAP_THRESHOLD_": str(MALLOC_MMAP_THRESHOLD),
        procs.MARKER_VARIABLE: job["marker"],
        # cu.load_parameters compares what the notebook passes it with these, where the knobs are used.
        "COURSE_INJECTED_PARAMETERS": json.dumps(job.get("parameters") or {}),
    }
    if job.get("pythonpath"):
        env["PYTHONPATH"] = job["pythonpath"]
    return env


def sandbox_policy(job: dict, private: Path, work: Path) -> dict:
    """What the launcher applies to the kernel (see sandbox.py).

    The kernel sees the system, the Python installation and the student library read-only,
    and not the instructor kit (grading code, checks API, references), wherever the kit is
    installed: a kit inside a bound folder (site-packages) is covered by an empty one.

    Example:
        >>> policy = sandbox_policy({"sandbox": "bwrap", "threads": 1, "marker": "m", "data_dir": None},
        ...                         Path("/p"), Path("/p/work"))
        >>> policy["mode"], policy["work"], str(KIT_DIR) in policy["hidden"]
        ('bwrap', '/p/work', True)
    """
    read_only = sandbox.python_read_paths() + sandbox.system_read_paths() + [str(student_library_dir())]
    read_only += list(job.get("read_paths") or [])
    if job.get("data_dir"):
        read_only.append(job["data_dir"])
    memory = job.get("memory_bytes") or 1024**3
    return {
        "mode": job.get("sandbox", "bwrap"),
        "parent_pid": os.getpid(),
        # RLIMIT_DATA: the resident limit is MemoryWatch's (see WRITABLE_HEADROOM).
        "memory_bytes": job["memory_bytes"] + WRITABLE_HEADROOM if job.get("memory_bytes") else None,
        "file_size_bytes": job.get("file_size_bytes"),
        "run_as": job.get("run_as"),
        "read_only": read_only,
        "hidden": [str(KIT_DIR)],
        "work": str(work),
        "network": not job.get("restrict_network", True),
        "env": kernel_environment(job, work),
        # /dev/shm (DataLoader workers share tensors there) and /tmp are tmpfs: memory, so capped.
        "shm_bytes": min(int(memory), 1024**3),
        "tmp_bytes": min(int(job.get("file_size_bytes") or 1024**3), 1024**3),
    }


def make_kernel_manager(job: dict, private: Path, work: Path):
    """An AsyncKernelManager whose kernel starts through the sandbox launcher and listens on
    ZeroMQ ``ipc`` sockets in its work folder: no TCP port (under bubblewrap it has no network)."""
    from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager

    socket_prefix = work / KERNEL_SOCKETS  # the sockets are .kernel-1 ... .kernel-5
    if len(os.fsencode(f"{socket_prefix}-99")) > sandbox.MAX_SOCKET_PATH:
        raise RuntimeError(
            f"the kernel's socket path {socket_prefix}-N is longer than a UNIX socket allows "
            f"({sandbox.MAX_SOCKET_PATH} bytes): set TMPDIR to a shorter folder, e.g. /tmp"
        )
    policy_file = private / "sandbox.json"
    policy_file.write_text(json.dumps(sandbox_policy(job, private, work)))
    # By path, not with -m: -m would put the kernel's working folder (the student's files) first
    # on the launcher's sys.path, and the launcher runs before the sandbox is applied.
    launcher = Path(sandbox.__file__).resolve()
    spec = KernelSpec(
        argv=[
            sys.executable,
            str(launcher),
            str(policy_file),
            "--connection-file",
            "{connection_file}",
            "--",
            sys.executable,
            "-m",
            "ipykernel_launcher",
            "-f",
            "{connection_file}",
        ],
        # A signal would reach bwrap, not the kernel in its own PID namespace: interrupt by message.
        display_name="course grading (sandboxed)",
        language="python",
        interrupt_mode="message",
    )

    class OneSpec(KernelSpecManager):
        def get_kernel_spec(self, kernel_name):
            return spec

    return AsyncKernelManager(
        kernel_name="course-grading",
        kernel_spec_manager=OneSpec(),
        transport="ipc",
        ip=str(socket_prefix),
        connection_file=str(work / ".kernel-connection.json"),
    )


def write_submission(job: dict, work: Path) -> Path:
    """Write the (already sanitized) notebook and a folder submission's other files into ``work``."""
    import base64

    for relative, encoded in (job.get("files") or {}).items():
        if relative == job.get("results_name"):
            continue  # a submitted results record (cu.submit adds the student's) must not stand in for this run's
        target = (work / relative).resolve()
        if not str(target).startswith(str(work.resolve()) + os.sep):
            continue  # the job builder rejects these; never write outside the working dir
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(base64.b64decode(encoded))
    notebook_path = work / f"{job['assignment']}.ipynb"
    notebook_path.write_text(json.dumps(job["notebook"]), encoding="utf-8")
    return notebook_path


def read_metrics(work: Path, name: str) -> tuple[dict | None, str | None]:
    """``(metrics, problem)`` from the notebook's results file, opened without following links.

    Example:
        >>> read_metrics(Path("/nonexistent"), "x.results.json")
        (None, 'no x.results.json was written')
    """
    try:
        fd = os.open(work / name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None, f"no {name} was written"
    except OSError as error:
        return None, f"{name} could not be opened ({error.strerror})"
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None, f"{name} is not a regular file"
        if info.st_size > MAX_METRICS_BYTES:
            return None, f"{name} is larger than {MAX_METRICS_BYTES} bytes"
        data = os.read(fd, MAX_METRICS_BYTES + 1)
    finally:
        os.close(fd)
    try:
        metrics = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        return None, f"{name} is not valid JSON ({error})"
    except RecursionError:
        return None, f"{name} is nested too deeply to read"
    if not isinstance(metrics, dict):
        return None, f"{name} holds a {type(metrics).__name__}, not a JSON object"
    if _depth(metrics) > MAX_METRICS_DEPTH:
        return None, f"{name} is nested more than {MAX_METRICS_DEPTH} levels deep"
    return metrics, None


def _depth(value) -> int:
    """How deeply lists and objects nest in ``value`` (iteratively: a hostile record must not exhaust the stack)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def exercise_cells(nb) -> dict[str, bool]:
    """``{exercise id: did its cell run}`` for every cell carrying ``metadata.course.exercise``."""
    found: dict[str, bool] = {}
    for cell in nb.cells:
        exercise = (cell.get("metadata", {}).get("course") or {}).get("exercise")
        if cell.get("cell_type") == "code" and isinstance(exercise, str):
            found[exercise] = found.get(exercise, False) or cell.get("execution_count") is not None
    return found


# --------------------------------------------------------------------------- main
def grade(job: dict, private: Path) -> dict:
    """Run one submission end to end; the returned dict is the runner's report."""
    import nbformat
    import papermill
    from papermill.engines import papermill_engines
    from papermill.exceptions import PapermillExecutionError

    work = private / "work"
    work.mkdir(mode=0o700)
    (work / ".tmp").mkdir()
    if job.get("run_as"):
        uid, gid = job["run_as"]
        os.chmod(private, 0o711)  # the kernel user must traverse to work/, nothing more
        os.chown(work, uid, gid)
        os.chown(work / ".tmp", uid, gid)
    write_submission(job, work)
    # The kernel imports the student library through this link and nothing else of the
    # kit: not the instructor kit, not solutions/ or the hidden checks.
    library = work / LIBRARY_LINK
    library.mkdir()
    (library / "course_utils").symlink_to(student_library_dir(), target_is_directory=True)
    job = dict(job, pythonpath=str(library))
    nb = nbformat.from_dict(job["notebook"])
    session = Session(job, work)
    mode = job.get("sandbox", "bwrap")
    problem = sandbox.bwrap_problem(tuple(job["run_as"]) if job.get("run_as") else None) if mode == "bwrap" else None
    if problem:
        raise RuntimeError(sandbox.refusal(problem))
    report = {"sandbox": sandbox.describe(mode, not job.get("restrict_network", True), job.get("run_as"))}

    from .engine import GradingEngine

    papermill_engines.register("course-grading", GradingEngine)
    km = make_kernel_manager(job, private, work)
    log = open(private / KERNEL_LOG, "wb")
    session.job_kernel_kwargs = {"cwd": str(work), "env": kernel_environment(job, work), "stdout": log, "stderr": log}
    executed_path = private / EXECUTED_FILE
    watch = MemoryWatch(session, job.get("memory_bytes"))
    watch.start()
    try:
        papermill.execute_notebook(
            nb,
            str(executed_path),
            parameters=job["parameters"],
            engine_name="course-grading",
            kernel_name="python3",
            language="python",
            progress_bar=False,
            log_output=False,
            start_timeout=float(job["startup_timeout"]),
            cwd=str(work),
            km=km,
            session=session,
        )
    except PapermillExecutionError:
        pass  # the stop reason was recorded by the client; papermill only re-raises it
    finally:
        watch.stop()
        log.close()

    executed = nbformat.read(executed_path, as_version=4) if executed_path.exists() else nb
    metrics, metrics_problem = read_metrics(work, job["results_name"])
    report.update(
        {
            "stop": session.stop,
            "errors": session.errors,
            "errors_dropped": session.errors_dropped,
            "check_phase": session.check_phase,
            "check_detail": session.check_detail,
            "records": session.records,
            "report_complete": session.report_complete,
            "exercises": exercise_cells(executed),
            "metrics": metrics,
            "metrics_problem": metrics_problem,
            "kernel_exit": session.kernel_exit,
            "memory_stop": session.memory_stop,
            "kernel_peak_mb": round(session.peak_memory / 1024**2, 1),
            "seconds": round(time.monotonic() - session.started, 3),
        }
    )
    return report


def _tail(path: Path, limit: int = 6000) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(max(0, os.path.getsize(path) - limit))
            return handle.read().decode("utf-8", "replace")
    except OSError:
        return ""


def sign(key: bytes, body: str) -> str:
    """HMAC-SHA256 of the result body: the caller rejects a result.json it did not get from us."""
    return hmac.new(key, body.encode("utf-8"), hashlib.sha256).hexdigest()


def main() -> int:
    # nbformat imports jsonschema, whose optional IRI checker (rfc3987_syntax) builds a
    # grammar for ~3 s at import; notebooks never need it, and each submission pays it.
    sys.modules.setdefault("rfc3987_syntax", None)
    job = json.loads(sys.stdin.read())
    private = Path(job["private_dir"])
    key = bytes.fromhex(job["key"])
    procs.become_subreaper()
    procs.make_undumpable()
    parent = os.getppid()
    signal.signal(signal.SIGTERM, _on_terminate)
    signal.signal(signal.SIGHUP, _on_terminate)

    def watchdog():
        # The grader died (Ctrl-C'd hard, OOM-killed): nobody will collect us, so nothing we
        # started may survive either.
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                procs.kill_tree(os.getpid())
                os._exit(4)

    threading.Thread(target=watchdog, name="parent-watchdog", daemon=True).start()
    try:
        report = grade(job, private)
    except Terminated as stop:
        report = {"aborted": f"the grader stopped this run ({stop})"}
    except Exception:  # noqa: BLE001 - whatever broke, the grader must get a report
        report = {"runner_error": traceback.format_exc()[-4000:]}
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        procs.kill_tree(os.getpid())
    report["kernel_log"] = _tail(private / KERNEL_LOG)
    body = json.dumps(report, default=str)
    (private / RESULT_FILE).write_text(json.dumps({"hmac": sign(key, body), "body": body}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
