"""One grading task: from a submission's bytes to a gradebook row, anywhere.

:func:`grade_job` is what both executors run (a thread of the local pool, or a task on
a Dask worker): it checks the notebook before anything executes, starts the runner
process (``runner.py``) with a job description on stdin, enforces a last-resort deadline,
kills the runner's whole process tree on cancellation, verifies the runner's signed
report (runner to grader; the kernel never sees that key), draws each check's inputs and
judges the probes' observations against expectations computed here, and returns
a plain-data result. It needs nothing from the machine that built the job except an
installed kit, so the same function runs on remote Dask workers.

Statuses (first that applies):

``invalid-notebook``   the file is not a readable Jupyter notebook (or a folder has none);
``parameters-missing`` no cell is tagged ``parameters``: not executed, since papermill would
                       only warn and the notebook would run with its own settings;
``grader-error``       the grading machinery failed (not the student's fault; rerun retries it);
``kernel-died``        the kernel process ended (crash, ``os.kill``, ``os._exit``, ``exit()``);
``kernel-broken``      the kernel stopped speaking the Jupyter protocol (student code patched
                       what the kernel uses to talk, e.g. ``json.dumps``); execution halts;
``timeout``            a cell ran past ``--cell-timeout``, the notebook past ``--timeout``,
                       or the hidden checks past ``--check-timeout``; execution halts;
``out-of-memory``      the kernel held more than ``--memory`` resident and was stopped, or the
                       first failing cell failed with MemoryError (one allocation past RLIMIT_DATA);
``incomplete``         the first failing cell raised the released placeholder's
                       ``NotImplementedError``, or an exercise cell a check grades is missing
                       or never ran (its checks are still judged on what the kernel holds);
``error``              a cell raised (``sys.exit()`` included: SystemExit is an error here,
                       though papermill itself lets ``sys.exit(0)`` pass); later cells still
                       ran, and the detail names the first failing cell;
``ok``                 everything ran and the checks were judged.

A notebook that changed the interpreter so that the hidden checks' probes could not run or
report is ``kernel-broken`` (the checks that did report still count). Nothing the kernel
reports is trusted: each check's inputs are drawn here for this submission and its expected
value computed here, so a forged report earns only what correct answers would. What the
notebook reports about the parameters it ran with goes into the row's ``parameters_note``
(never into the points: checks call the student's code with the grader's own inputs).

Cells after a failing cell still run (like nbgrader; ``--stop-on-error`` restores
papermill's stop-at-first-error). Points are the checks' points whenever the hidden checks
could run (after errors, and after a timeout once the kernel is interrupted, they run on
what the notebook computed), else 0.

Example:
    >>> preflight_notebook(b"{not json").problem
    'not valid JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)'
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import hashlib
import hmac
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from . import checks as checks_api
from . import procs
from .status import Status
from .submissions import MAX_NOTEBOOK_BYTES

# A course notebook has a few hundred cells and nests JSON about ten levels deep; far past
# that is a crafted file, refused before anything reads it further.
MAX_CELLS = 5_000
MAX_JSON_DEPTH = 64

HERE = Path(__file__).resolve().parent
# The runner is a module of this package, started as its own process (it never imports torch).
RUNNER_MODULE = "course_kit.grading.runner"
MEMORY_ERRORS = {"MemoryError", "_ArrayMemoryError", "OutOfMemoryError"}
# Tags that change how nbclient/papermill execute a cell: a student must not be able to
# skip a cell or make its errors pass by tagging it.
NEUTRALIZED_TAGS = {"skip-execution", "raises-exception", "injected-parameters", "papermill-error-cell-tag"}


@dataclass
class Limits:
    """Time, memory and size limits for one submission (seconds, bytes)."""

    timeout: float = 1800.0
    cell_timeout: float = 600.0
    check_timeout: float = 300.0
    startup_timeout: float = 60.0
    memory_bytes: int | None = 4 * 1024**3
    file_size_bytes: int | None = 1024**3
    threads: int = 1

    def hard_deadline(self) -> float:
        """Seconds after which the caller kills a runner that has not finished by itself."""
        return self.startup_timeout + self.timeout + self.check_timeout + 60.0


@dataclass
class SandboxOptions:
    """How the kernel is confined (see sandbox.py)."""

    mode: str = "bwrap"  # bwrap | user (no bubblewrap: a container is the sandbox) | none; see sandbox.py
    restrict_network: bool = True
    read_paths: list[str] = field(default_factory=list)
    data_dir: str | None = None
    run_as: tuple[int, int] | None = None
    container: str | None = None  # a Docker image: run each submission's runner in its own container


@dataclass
class GradingJob:
    """Everything needed to grade one submission; plain data, so it pickles to Dask workers."""

    student: str
    assignment: str
    source: str  # where the submission came from (for the gradebook)
    notebook_bytes: bytes | None
    files: dict[str, bytes]
    problem: str | None  # a problem found while collecting it (a folder without a notebook...)
    checks_source: str
    parameters: dict
    limits: Limits
    sandbox: SandboxOptions
    marker: str
    stop_on_error: bool = False
    file_name: str = ""  # the submission's own file or folder name, as the student named it
    # The seed the checks' inputs are drawn from: new for every grading unless given (to repeat
    # one). It stays in the grader: the kernel only ever sees the inputs, at check time.
    inputs_seed: str = field(default_factory=lambda: secrets.token_hex(16))
    notes: str = ""  # what was left out of the submission (links, bookkeeping): the row's detail ends with it

    @property
    def graded_with(self) -> dict:
        """What this grading depends on besides the submission: the checks, the parameters, the kit.

        A rerun regrades a row whose ``graded_with`` differs (``Gradebook.should_grade``).

        Example:
            >>> job = GradingJob("ana", "a", "", b"", {}, None, "x = 1", {"profile": "grading"}, Limits(),
            ...                  SandboxOptions(), "m")
            >>> sorted(job.graded_with), job.graded_with["checks_sha256"][:12]
            (['checks_sha256', 'kit_version', 'parameters'], '8ff436def145')
        """
        from .. import __version__

        return {
            "checks_sha256": hashlib.sha256(self.checks_source.encode("utf-8")).hexdigest(),
            "parameters": dict(self.parameters),
            "kit_version": __version__,
        }

    @property
    def sha256(self) -> str:
        digest = hashlib.sha256(self.notebook_bytes or b"")
        for name in sorted(self.files):
            digest.update(name.encode() + b"\0" + self.files[name])
        return digest.hexdigest()


@dataclass
class Preflight:
    """The notebook as it will be executed, or why it will not be."""

    notebook: dict | None = None
    problem: str | None = None
    status: Status | None = None  # INVALID_NOTEBOOK or PARAMETERS_MISSING: not run


def preflight_notebook(data: bytes) -> Preflight:
    """Parse and sanitize a submitted notebook before any of it runs.

    Outputs are dropped, tags that change execution are removed, and a notebook without a
    ``parameters`` cell is refused.

    Example:
        >>> import nbformat
        >>> nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
        >>> preflight_notebook(nbformat.writes(nb).encode()).status.value
        'parameters-missing'
    """
    import nbformat

    if len(data) > MAX_NOTEBOOK_BYTES:
        return Preflight(
            problem=f"the notebook is larger than {MAX_NOTEBOOK_BYTES // 1024**2} MB", status=Status.INVALID_NOTEBOOK
        )
    try:
        raw = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        return Preflight(problem="not a text file (not UTF-8)", status=Status.INVALID_NOTEBOOK)
    except ValueError as error:
        return Preflight(problem=f"not valid JSON: {error}", status=Status.INVALID_NOTEBOOK)
    except RecursionError:
        return Preflight(
            problem="its JSON is nested too deeply to read (a notebook is a few levels deep)",
            status=Status.INVALID_NOTEBOOK,
        )
    if not isinstance(raw, dict) or not isinstance(raw.get("cells", raw.get("worksheets")), list):
        return Preflight(
            problem="valid JSON, but not a Jupyter notebook (no list of cells)", status=Status.INVALID_NOTEBOOK
        )
    # Checked before nbformat reads it: its validation is slow and deeply recursive.
    if len(raw.get("cells") or []) > MAX_CELLS:
        return Preflight(
            problem=f"the notebook has {len(raw['cells'])} cells; at most {MAX_CELLS} are graded: "
            "start again from the released notebook",
            status=Status.INVALID_NOTEBOOK,
        )
    if json_depth(raw) > MAX_JSON_DEPTH:
        return Preflight(
            problem=f"its JSON is nested more than {MAX_JSON_DEPTH} levels deep", status=Status.INVALID_NOTEBOOK
        )
    try:
        nb = nbformat.reads(json.dumps(raw), as_version=4)
    except Exception as error:  # nbformat raises several kinds for broken structure
        return Preflight(
            problem=f"not a readable Jupyter notebook: {str(error).splitlines()[0][:300]}",
            status=Status.INVALID_NOTEBOOK,
        )
    for cell in nb.cells:
        if not isinstance(cell, dict) or cell.get("cell_type") not in ("code", "markdown", "raw"):
            return Preflight(problem="a cell has no valid cell_type", status=Status.INVALID_NOTEBOOK)
        if not isinstance(cell.get("source", ""), str):
            return Preflight(problem="a cell's source is not text", status=Status.INVALID_NOTEBOOK)
        metadata = cell.setdefault("metadata", {})
        metadata.pop("papermill", None)
        metadata.pop("execution", None)
        # Metadata of any other shape is the notebook's problem, never the grader's: tags that are
        # not a list of text, and a `course` entry that is not a table, are dropped.
        if "tags" in metadata:
            tags = metadata["tags"] if isinstance(metadata["tags"], list) else []
            metadata["tags"] = [t for t in tags if isinstance(t, str) and t not in NEUTRALIZED_TAGS]
        if "course" in metadata and not (
            isinstance(metadata["course"], dict) and isinstance(metadata["course"].get("exercise", ""), str)
        ):
            metadata.pop("course")
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
    if not any(c.get("cell_type") == "code" for c in nb.cells):
        return Preflight(problem="the notebook has no code cells", status=Status.INVALID_NOTEBOOK)
    problem = parameters_cell_problem(nb.cells)
    if problem:
        return Preflight(problem=problem + ": restore it from the released notebook", status=Status.PARAMETERS_MISSING)
    nb.metadata.pop("papermill", None)
    return Preflight(notebook=json.loads(nbformat.writes(nb)))


def json_depth(value, limit: int = 10_000) -> int:
    """How deeply ``value`` nests lists and dicts, walked without recursion (stops counting past ``limit``).

    Example:
        >>> json_depth({"a": [1, {"b": []}]}), json_depth(3)
        (4, 0)
    """
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            if depth < limit:
                stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def parameters_cell_problem(cells: list) -> str | None:
    """Why the cells' ``parameters`` cell cannot be trusted to run first with the grader's values, or None.

    papermill injects the grader's values right after the cell tagged ``parameters``, so
    that cell must be the first code cell (a tag on a later cell lets everything above it
    run with the notebook's own settings) and must only assign plain values (code in it
    would run before the injection).

    Example:
        >>> import nbformat
        >>> first = nbformat.v4.new_code_cell("profile = 'auto'\\nn = None  # a knob")
        >>> late = nbformat.v4.new_code_cell("", metadata={"tags": ["parameters"]})
        >>> parameters_cell_problem([first, late])
        'the `parameters` tag is on code cell 2, not on the first code cell'
        >>> first.metadata["tags"] = ["parameters"]
        >>> parameters_cell_problem([first]) is None
        True
    """
    import ast

    code = [c for c in cells if c.get("cell_type") == "code"]
    tagged = [i for i, c in enumerate(code, 1) if "parameters" in c.get("metadata", {}).get("tags", [])]
    if not tagged:
        return "no cell is tagged `parameters` (the first code cell, with `profile = ...`)"
    if tagged != [1]:
        where = ", ".join(str(i) for i in tagged)
        return (
            f"the `parameters` tag is on code cell {where}, not on the first code cell"
            if 1 not in tagged
            else f"more than one cell is tagged `parameters` (code cells {where})"
        )
    try:
        statements = ast.parse(code[0].get("source", "")).body
    except SyntaxError:
        return "the `parameters` cell is not valid Python"
    for statement in statements:
        targets = statement.targets if isinstance(statement, ast.Assign) else [getattr(statement, "target", None)]
        value = getattr(statement, "value", None)
        plain = (
            isinstance(statement, (ast.Assign, ast.AnnAssign))
            and value is not None
            and all(isinstance(t, ast.Name) for t in targets)
        )
        if plain:
            try:
                ast.literal_eval(value)
            except ValueError:
                plain = False
        docstring = isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant)
        if not (plain or docstring):
            return (
                f"the `parameters` cell runs code (line {statement.lineno}); it may only assign plain values "
                "such as `num_epochs = 3`"
            )
    return None


@functools.lru_cache(maxsize=8)
@functools.lru_cache(maxsize=8)
def declared_checks(source: str) -> tuple:
    """The hidden checks with their inputs and expectations (grader side), cached per source text."""
    return tuple(checks_api.load_checks(source, "<hidden checks>"))


@functools.lru_cache(maxsize=8)
def probe_words(source: str) -> frozenset:
    """The texts of the probes' source: the only names and messages from the kernel feedback may repeat."""
    return checks_api.vocabulary(checks_api.kernel_source(source))


@functools.lru_cache(maxsize=1)
def _probe_source() -> str:
    return (HERE / "probe.py").read_text(encoding="utf-8")


def drawn_inputs(job: GradingJob) -> dict:
    """The inputs each check's probe gets for this submission (drawn in the grader from ``job.inputs_seed``)."""
    return _drawn(job.checks_source, json.dumps(job.parameters, sort_keys=True), job.inputs_seed)


DRAW_TIMEOUT_S = 300


@functools.lru_cache(maxsize=64)
def _drawn(source: str, parameters: str, seed) -> dict:
    """Draw in a short-lived child process unless this one has torch already.

    An ``inputs=`` function may need torch to choose its inputs (01's reference passes reject
    draws where a likely mistake gives the right answer). Drawn here, torch's ~250 MB would stay
    in the grader while the student's kernel runs, and on Gradescope both share 768 MB. The
    child's data comes back as JSON, as the kernel receives it.
    """
    if "torch" in sys.modules:
        return json.loads(json.dumps(checks_api.draw_inputs(declared_checks(source), json.loads(parameters), seed)))
    code = (
        "import json, sys\n"
        "request = json.load(sys.stdin)\n"
        "sys.path[:0] = request['path']\n"
        "from course_kit.grading import checks\n"
        "declared = checks.load_checks(request['source'], '<hidden checks>')\n"
        "try:\n"
        "    drawn = checks.draw_inputs(declared, json.loads(request['parameters']), request['seed'])\n"
        "except checks.ExpectationError as error:\n"
        "    json.dump({'error': str(error)}, sys.stdout)\n"
        "else:\n"
        "    json.dump({'drawn': drawn}, sys.stdout)\n"
    )
    request = {"path": [p for p in sys.path if p], "source": source, "parameters": parameters, "seed": seed}
    try:
        child = subprocess.run(
            [sys.executable, "-c", code],
            input=json.dumps(request),
            capture_output=True,
            text=True,
            timeout=DRAW_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        raise checks_api.ExpectationError(f"drawing the checks' inputs took over {DRAW_TIMEOUT_S} s") from None
    try:
        answer = json.loads(child.stdout)
    except json.JSONDecodeError:
        last = (child.stderr.strip().splitlines() or ["no output"])[-1]
        raise checks_api.ExpectationError(f"drawing the checks' inputs failed: {last[:300]}") from None
    if "error" in answer:
        raise checks_api.ExpectationError(answer["error"])
    return answer["drawn"]


def build_runner_job(job: GradingJob, notebook: dict, private: Path, key: bytes) -> dict:
    """The JSON object ``runner.py`` reads on stdin."""
    limits, box = job.limits, job.sandbox
    inputs = drawn_inputs(job)
    return {
        "key": key.hex(),
        "private_dir": str(private),
        "assignment": job.assignment,
        "notebook": notebook,
        "files": {name: base64.b64encode(data).decode() for name, data in job.files.items()},
        "parameters": job.parameters,
        "probe_source": _probe_source(),
        "probes_source": checks_api.kernel_source(job.checks_source),
        "checks": [
            {"name": c.name, "timeout": c.timeout, "has_inputs": c.name in inputs, "inputs": inputs.get(c.name)}
            for c in declared_checks(job.checks_source)
        ],
        "timeout": limits.timeout,
        "cell_timeout": limits.cell_timeout,
        "check_timeout": limits.check_timeout,
        "startup_timeout": limits.startup_timeout,
        "memory_bytes": limits.memory_bytes,
        "file_size_bytes": limits.file_size_bytes,
        "threads": limits.threads,
        "sandbox": box.mode,
        "restrict_network": box.restrict_network,
        "read_paths": list(box.read_paths),
        "data_dir": box.data_dir,
        "run_as": list(box.run_as) if box.run_as else None,
        "marker": f"{job.marker}:{job.student}",
        "results_name": f"{job.assignment}.results.json",
        "stop_on_error": job.stop_on_error,
    }


# What the per-submission runner keeps of the grader's environment: what Python, locale and the
# kit need, never the rest (credentials, tokens, an instructor's own variables).
_RUNNER_VARIABLES = {
    "PATH",
    "HOME",
    "LANG",
    "LANGUAGE",
    "TZ",
    "TMPDIR",
    "PYTHONPATH",
    "VIRTUAL_ENV",
    "CONDA_PREFIX",
    "CUDA_VISIBLE_DEVICES",
    "DOCKER_HOST",
}
_RUNNER_PREFIXES = ("LC_", "COURSE_")


def runner_environment(environ) -> dict:
    """The runner's environment: the grader's, scrubbed to an allowlist.

    The kernel's own environment is built from nothing (``runner.kernel_environment``);
    this keeps secrets of the instructor's shell out of the runner too, so that neither
    process holds them for a kernel to find.

    Example:
        >>> sorted(runner_environment({"PATH": "/bin", "AWS_SECRET_ACCESS_KEY": "x", "LC_ALL": "C"}))
        ['LC_ALL', 'PATH']
    """
    return {
        key: value for key, value in environ.items() if key in _RUNNER_VARIABLES or key.startswith(_RUNNER_PREFIXES)
    }


def container_name(job: GradingJob) -> str:
    """The Docker container name of one submission's run (what ``docker kill`` needs).

    Example:
        >>> container_name(GradingJob("ana", "a", "", b"", {}, None, "", {}, Limits(), SandboxOptions(), "grade-1"))
        'course-grade-1-ana'
    """
    return f"course-{job.marker}-{job.student}"


def runner_command(job: GradingJob, private: Path) -> list[str]:
    """How to start the runner: this Python, or ``docker run`` of ``--container IMAGE``.

    In a container the submission also gets a cgroup memory limit covering all its
    processes, a process-count limit, no network (loopback only, which the kernel needs),
    a read-only root filesystem and only its own private folder mounted.

    Example:
        >>> box = SandboxOptions(container="course-grader:1")
        >>> limits = Limits(memory_bytes=2**30, threads=2)
        >>> job = GradingJob("ana", "a", "", b"", {}, None, "", {}, limits, box, "grade-1")
        >>> " ".join(runner_command(job, Path("/tmp/p"))[:6])
        'docker run --rm -i --init --name'
    """
    if not job.sandbox.container:
        return [sys.executable, "-m", RUNNER_MODULE]
    limits = job.limits
    command = [
        "docker",
        "run",
        "--rm",
        "-i",
        "--init",
        "--name",
        container_name(job),
        "--user",
        f"{os.getuid()}:{os.getgid()}",
        "--network",
        "none",
        "--pids-limit",
        "1024",
        "--cpus",
        str(max(1, limits.threads)),
        "--read-only",
        "--tmpfs",
        "/tmp:rw,size=1g",
        "--shm-size",
        "1g",
        "-e",
        "HOME=/tmp",
        "-e",
        "JUPYTER_RUNTIME_DIR=/tmp/jupyter",
        "-e",
        "PYTHONDONTWRITEBYTECODE=1",
        "-v",
        f"{private}:{private}",
        "--workdir",
        str(private),
    ]
    if limits.memory_bytes:
        # The whole container (kernel, DataLoader workers, runner) shares this, unlike RLIMIT_DATA.
        total = limits.memory_bytes + 512 * 1024**2  # the runner itself needs a little
        command += ["--memory", str(total), "--memory-swap", str(total)]
    for path in [*job.sandbox.read_paths, *([job.sandbox.data_dir] if job.sandbox.data_dir else [])]:
        command += ["-v", f"{path}:{path}:ro"]
    return command + [job.sandbox.container, "python", "-m", RUNNER_MODULE]


def _stop_runner(proc: subprocess.Popen, marker: str, container: str | None = None) -> None:
    """Ask the runner to clean up (SIGTERM); after a grace period kill its tree outright."""
    if container:
        # Killing the docker client does not stop the container; the engine must be asked.
        subprocess.run(["docker", "kill", container], capture_output=True, timeout=30, check=False)
    try:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=8)
    except subprocess.TimeoutExpired:
        pass
    except ProcessLookupError:
        pass
    procs.kill_tree(proc.pid, include_root=True, marker=marker)
    procs.kill_process_group(proc.pid)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


@functools.lru_cache(maxsize=1)
def _remove_stale_folders_once() -> list:
    return procs.remove_stale_folders()


def run_runner(job: GradingJob, notebook: dict, cancelled: Callable[[], bool]) -> tuple[dict, str | None]:
    """Start ``runner.py`` for this job and wait; return ``(report, executed notebook text)``."""
    _remove_stale_folders_once()  # a Dask worker's first job cleans up after its own crashed runs
    private = procs.private_folder(job.marker)
    key = secrets.token_bytes(32)
    runner_job = build_runner_job(job, notebook, private, key)
    log_path = private / "runner.log"
    try:
        with open(log_path, "wb") as log:
            # The runner carries the run's marker too: if this process dies, the next run finds it.
            proc = subprocess.Popen(
                runner_command(job, private),
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=log,
                cwd=private,
                start_new_session=True,
                env={**runner_environment(os.environ), procs.MARKER_VARIABLE: runner_job["marker"]},
            )
        container = container_name(job) if job.sandbox.container else None
        try:
            proc.stdin.write(json.dumps(runner_job).encode())
            proc.stdin.close()
            deadline = time.monotonic() + job.limits.hard_deadline()
            while proc.poll() is None:
                if cancelled():
                    _stop_runner(proc, runner_job["marker"], container)
                    return {"cancelled": True}, None
                if time.monotonic() > deadline:
                    _stop_runner(proc, runner_job["marker"], container)
                    break
                time.sleep(0.2)
        except BaseException:
            _stop_runner(proc, runner_job["marker"], container)
            raise
        finally:
            # Whatever happened, nothing this submission started may outlive this call.
            procs.kill_tree(proc.pid, marker=runner_job["marker"])
        report = _read_report(private, key, log_path)
        executed = private / "executed.ipynb"
        executed_text = executed.read_text(encoding="utf-8", errors="replace") if executed.exists() else None
        return report, executed_text
    finally:
        shutil.rmtree(private, ignore_errors=True)


def _read_report(private: Path, key: bytes, log_path: Path) -> dict:
    result = private / "result.json"
    runner_log = log_path.read_text(errors="replace")[-3000:] if log_path.exists() else ""
    if not result.exists():
        return {"runner_error": "the runner ended without a report (killed at the hard deadline?)\n" + runner_log}
    try:
        envelope = json.loads(result.read_text())
        body = envelope["body"]
        expected = hmac.new(key, body.encode("utf-8"), hashlib.sha256).hexdigest()
    except (ValueError, KeyError, TypeError):
        return {"runner_error": "the runner's report is unreadable\n" + runner_log}
    if not hmac.compare_digest(expected, str(envelope.get("hmac", ""))):
        return {"runner_error": "the runner's report failed its integrity check (was it overwritten?)"}
    return json.loads(body)


# --------------------------------------------------------------------------- judging
def parameters_note(expected: dict, record: dict | None) -> str:
    """Where the notebook says it ran with other values than the injected ones: reported, never scored.

    The grade does not depend on it: checks call the student's code with the grader's own
    inputs. It tells the instructor that the notebook's experiments (its results record, its
    metric columns) used other settings.

    Example:
        >>> parameters_note({"scale": 2.0}, {"values": {"scale": 1.0}, "resolved": []})
        'the notebook reported `scale` = 1.0 at the end (injected 2.0)'
    """
    if not isinstance(record, dict):
        return "the notebook did not report the parameters it ran with"
    values = record.get("values") if isinstance(record.get("values"), dict) else {}
    notes = []
    for name, injected in expected.items():
        seen = values.get(name)
        if not checks_api._same(checks_api.plain(injected), seen, 0, 0):
            notes.append(f"the notebook reported `{name}` = {str(seen)[:40]} at the end (injected {injected!r})")
    resolved = record.get("resolved") if isinstance(record.get("resolved"), list) else []
    for call in resolved:
        used = call.get("values") if isinstance(call, dict) else None
        for name, injected in expected.items():
            if (
                isinstance(used, dict)
                and name in used
                and name != "profile"
                and not checks_api._same(checks_api.plain(injected), used[name], 0, 0)
            ):
                notes.append(f"cu.load_parameters reported `{name}` = {str(used[name])[:40]} (injected {injected!r})")
    return "; ".join(dict.fromkeys(notes))[:300]


def _parameters_record(report: dict) -> dict | None:
    return next((r for r in report.get("records") or [] if isinstance(r, dict) and r.get("kind") == "parameters"), None)


@dataclass
class CheckResult:
    """One hidden check's outcome for one submission, as the gradebook and the feedback show it."""

    name: str
    title: str
    exercise: str | None
    max_points: float
    points: float
    passed: bool
    message: str


@dataclass
class Verdict:
    """What the grader concluded about one submission: status, why, and each check's result."""

    status: Status
    detail: str
    checks: list[CheckResult]
    max_points: float
    error_cell: int | None = None
    grader_detail: str = ""  # for the log, never the student: what the machinery said

    @property
    def points(self) -> float:
        return sum(c.points for c in self.checks)


@dataclass
class RunnerReport:
    """The runner's report (runner.py writes it as JSON), read in one place.

    ``check_phase`` is one of ``not run``, ``skipped``, ``ran``, ``timeout``, ``kernel-died``,
    ``kernel-broken`` or ``cannot-start`` (the kernel could not run the probes' cell at all).
    """

    stop: dict | None = None
    errors: list = field(default_factory=list)
    errors_dropped: int = 0
    check_phase: str = "not run"
    check_detail: str = ""
    records: list = field(default_factory=list)
    report_complete: bool = False
    exercises: dict = field(default_factory=dict)
    kernel_exit: int | None = None
    memory_stop: dict | None = None  # the runner stopped the kernel over --memory: {"held_mb", "limit_mb"}
    problem: str = ""  # the runner failed or was stopped: a grader-error

    @classmethod
    def from_json(cls, data: dict) -> RunnerReport:
        problem = data.get("runner_error") or data.get("aborted") or ""
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data and name != "problem"}
        return cls(**known, problem=str(problem))


def _verdict(status: Status, detail, declared, results, cell=None, grader_detail="") -> Verdict:
    """The one place a verdict is made: every declared check gets a result (``not run`` when it had none)."""
    checks = []
    for item in declared:
        passed, message = results.get(item.name, (False, "not run"))
        checks.append(
            CheckResult(
                item.name, item.title, item.exercise, item.points, item.points if passed else 0, bool(passed), message
            )
        )
    return Verdict(Status(status), detail or "", checks, sum(c.points for c in declared), cell, grader_detail)


def judge_report(job: GradingJob, report: dict) -> Verdict:
    """Status, detail and per-check results from the runner's report, judged here in the grader.

    Example:
        >>> source = ("from course_kit.grading.checks import check, equal\\n"
        ...           "@check(points=2, inputs=lambda rng, params: rng.randint(1, 99),\\n"
        ...           "       expect=lambda inputs, params: equal(2 * inputs))\\n"
        ...           "def doubled(ns, inputs):\\n    return ns.call('double', inputs)\\n")
        >>> job = GradingJob("s", "a", "s.ipynb", b"", {}, None, source, {}, Limits(), SandboxOptions(), "m")
        >>> answer = 2 * drawn_inputs(job)["doubled"]
        >>> report = {"check_phase": "ran", "report_complete": True,
        ...           "records": [{"name": "doubled", "ok": True, "observation": answer}]}
        >>> judged = judge_report(job, report)
        >>> judged.status.value, judged.points, judged.max_points
        ('ok', 2, 2)
    """
    declared = declared_checks(job.checks_source)
    ran = RunnerReport.from_json(report)
    if ran.problem:
        return _verdict(
            Status.GRADER_ERROR, ran.problem.strip().splitlines()[-1][:300], declared, {}, grader_detail=ran.problem
        )
    by_name: dict[str, dict] = {}
    for record in ran.records:
        if isinstance(record, dict) and record.get("kind") != "parameters" and isinstance(record.get("name"), str):
            by_name.setdefault(record["name"], record)  # the first word on a check counts; nothing is trusted anyway
    try:
        inputs = drawn_inputs(job)
        words = probe_words(job.checks_source)
        results = {
            item.name: checks_api.judge(item, by_name.get(item.name), job.parameters, inputs.get(item.name), words)
            for item in declared
        }
    except checks_api.ExpectationError as error:
        return _verdict(Status.GRADER_ERROR, str(error), declared, {})
    # Checks are judged on what the kernel holds, wherever the student defined it; whether
    # the exercise cells themselves ran decides the status (``incomplete``), not the points.
    found = (
        _stopped(ran, declared, results) or _cell_errors(ran, declared, results) or _check_phase(ran, declared, results)
    )
    if found:
        return found
    unran = sorted({c.exercise for c in declared if c.exercise is not None and not ran.exercises.get(c.exercise)})
    if unran:
        return _verdict(Status.INCOMPLETE, "exercise(s) missing or not run: " + ", ".join(unran), declared, results)
    return _verdict(Status.OK, "", declared, results)


def _stopped(ran: RunnerReport, declared, results) -> Verdict | None:
    """Execution halted: the kernel died, broke the protocol, or a cell ran out of time."""
    if not ran.stop:
        return None
    stop, cell = ran.stop, _cell_number(ran.stop)
    if stop["reason"] == "kernel-died" and ran.memory_stop:
        return _verdict(Status.OUT_OF_MEMORY, f"cell In [{cell}]: {_over_memory(ran)}", declared, results, cell)
    if stop["reason"] == "kernel-died":
        killed = isinstance(ran.kernel_exit, int) and ran.kernel_exit < 0
        how = f" (killed by signal {-ran.kernel_exit})" if killed else ""
        return _verdict(Status.KERNEL_DIED, f"the kernel died in cell In [{cell}]{how}", declared, results, cell)
    if stop["reason"] == "kernel-broken":
        # The client's parse error depends on which garbled message arrived first, so it goes
        # to the log; the gradebook row stays the same on every executor and rerun.
        return _verdict(
            Status.KERNEL_BROKEN,
            f"the kernel stopped speaking the Jupyter protocol in cell In [{cell}] (see logs/)",
            declared,
            results,
            cell,
            grader_detail=f"kernel-broken in cell In [{cell}]: {stop.get('error')}",
        )
    return _verdict(Status.TIMEOUT, f"cell In [{cell}]: {stop.get('limit')}", declared, results, cell)


def _over_memory(ran: RunnerReport) -> str:
    """What the runner's MemoryWatch saw when it stopped the kernel.

    Example:
        >>> _over_memory(RunnerReport(memory_stop={"held_mb": 801, "limit_mb": 640}))
        'the kernel held 801 MB, over --memory 640 MB, and was stopped'
    """
    stop = ran.memory_stop or {}
    return f"the kernel held {stop.get('held_mb')} MB, over --memory {stop.get('limit_mb')} MB, and was stopped"


def _cell_errors(ran: RunnerReport, declared, results) -> Verdict | None:
    """A cell raised: the first one names the status (placeholder, memory, or any error)."""
    if not ran.errors:
        return None
    first = ran.errors[0]
    cell = _cell_number(first)
    ename, evalue = first.get("ename", ""), first.get("evalue", "")
    text = f"cell In [{cell}] raised {ename}: {evalue}".rstrip(": ")
    failed = len(ran.errors) + int(ran.errors_dropped or 0)
    if failed > 1:
        text += f" ({failed} cells failed)"
    if ename in MEMORY_ERRORS or "can't allocate memory" in evalue or "out of memory" in evalue.lower():
        return _verdict(Status.OUT_OF_MEMORY, text, declared, results, cell)
    if ename == "NotImplementedError":  # the released placeholder: an exercise not done yet
        which = f"exercise `{first['exercise']}`" if first.get("exercise") else "an exercise"
        return _verdict(Status.INCOMPLETE, f"{which} is not done yet: {text}", declared, results, cell)
    return _verdict(Status.ERROR, text, declared, results, cell)


def _check_phase(ran: RunnerReport, declared, results) -> Verdict | None:
    """The probes' cell did not run to its end, or their report was cut short."""
    phase, detail = ran.check_phase, ran.check_detail
    if phase == "kernel-died" and ran.memory_stop:
        return _verdict(Status.OUT_OF_MEMORY, f"while the hidden checks ran: {_over_memory(ran)}", declared, results)
    if phase == "kernel-died" or (phase == "skipped" and detail == "kernel-died"):
        return _verdict(Status.KERNEL_DIED, "the kernel died while the hidden checks ran", declared, results)
    if phase == "cannot-start":
        return _verdict(Status.KERNEL_BROKEN, detail, declared, results)
    if phase == "kernel-broken":
        return _verdict(
            Status.KERNEL_BROKEN,
            "the kernel stopped speaking the Jupyter protocol while the hidden checks ran",
            declared,
            results,
        )
    if phase == "timeout":
        return _verdict(Status.TIMEOUT, detail, declared, results)
    if phase != "ran":
        return _verdict(
            Status.GRADER_ERROR, f"the hidden checks did not complete ({detail or phase})", declared, results
        )
    if not ran.report_complete:
        # The probes' cell ran but their report is missing or cut short: the notebook changed the
        # interpreter they run in (builtins, modules, the work folder). Checks that reported count.
        return _verdict(
            Status.KERNEL_BROKEN,
            "the hidden checks could not run or report in this kernel: the "
            "notebook changed the interpreter they run in",
            declared,
            results,
        )
    return None


def _cell_number(where: dict):
    """The ``In [N]`` number of a cell (its position among code cells when it never got one)."""
    return where.get("execution_count") or where.get("code_cell")


def course_metrics(record: dict | None) -> dict | None:
    """The numbers for the gradebook from a results file.

    A record written by ``course_utils.save_results`` keeps its key numbers under
    ``summary`` (next to per-run rows, notes and figure paths, which stay in the executed
    notebook); any other JSON object is used as it is.

    Example:
        >>> course_metrics({"notebook": "01", "summary": {"gap_10%": 70.1}, "rows": [{"seed": 0}]})
        {'gap_10%': 70.1}
    """
    if isinstance(record, dict) and "notebook" in record and isinstance(record.get("summary"), dict):
        return record["summary"]
    return record


def grade_job(job: GradingJob, cancelled: Callable[[], bool] = lambda: False) -> dict:
    """Grade one submission; the result is plain data (a gradebook row plus files to keep).

    ``cancelled`` is polled while the notebook runs; when it returns True the runner and
    everything it started are killed and ``{"cancelled": True}`` is returned.

    Example::

        result = grade_job(job)
        result["row"]["status"], result["row"]["points"]
    """
    try:
        return _grade(job, cancelled)
    except Exception:  # noqa: BLE001 - a bug here must cost one row, not the whole run
        return error_result(job, traceback.format_exc())


def error_result(job: GradingJob, problem: str) -> dict:
    """A ``grader-error`` row for ``job`` (the grader failed, not the student); ``problem`` goes to its log.

    Example:
        >>> job = GradingJob("ana", "00_toy", "ana.ipynb", b"", {}, None, "", {}, Limits(), SandboxOptions(), "m")
        >>> error_result(job, "Traceback ...\\nOSError: disk full")["row"]["detail"]
        'OSError: disk full'
    """
    try:
        declared = declared_checks(job.checks_source)
    except Exception:  # the checks themselves may be what failed
        declared = ()
    verdict = _verdict(
        Status.GRADER_ERROR,
        problem.strip().splitlines()[-1][:300] if problem.strip() else "grader failure",
        declared,
        {},
        grader_detail=problem,
    )
    return _result(job, verdict, {}, None, runtime=0.0)


def _result(job: GradingJob, verdict: Verdict, report: dict, executed: str | None, runtime: float) -> dict:
    """The one place a gradebook row is made: plain data, so it pickles to and from Dask workers."""
    records = report.get("records")
    row = {
        "student": job.student,
        "assignment": job.assignment,
        "status": verdict.status.value,
        "detail": with_notes(verdict.detail, job.notes),
        "submission_notes": job.notes,
        "error_cell": verdict.error_cell,
        "points": verdict.points,
        "max_points": verdict.max_points,
        "checks": {c.name: c.points for c in verdict.checks},
        "runtime_s": round(runtime, 2),
        "kernel_peak_mb": report.get("kernel_peak_mb"),
        "metrics": course_metrics(report.get("metrics")),
        "metrics_problem": report.get("metrics_problem"),
        "parameters": job.parameters,
        "parameters_note": parameters_note(job.parameters, _parameters_record(report)) if records else "",
        "inputs_seed": job.inputs_seed,
        "sandbox": report.get("sandbox", ""),
        "submission": job.source,
        "file_name": job.file_name or Path(job.source).name,
        "sha256": job.sha256,
        "graded_with": job.graded_with,
        "graded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    log = "\n".join(filter(None, [report.get("kernel_log", ""), verdict.grader_detail]))
    return {
        "row": row,
        "checks": [dataclasses.asdict(c) for c in verdict.checks],
        "executed_notebook": executed,
        "kernel_log": log,
    }


def with_notes(detail: str | None, notes: str) -> str | None:
    """A row's detail followed by what was left out of the submission, so nobody misses it.

    Example:
        >>> with_notes("cell In [3] raised KeyError", "left out .git/: bookkeeping")
        'cell In [3] raised KeyError; submission: left out .git/: bookkeeping'
        >>> with_notes("", ""), with_notes(None, "left out x")
        ('', 'submission: left out x')
    """
    if not notes:
        return detail
    return "; ".join(filter(None, [detail, f"submission: {notes}"]))


def _grade(job: GradingJob, cancelled: Callable[[], bool]) -> dict:
    if cancelled():  # the run was interrupted before this task started
        return {"cancelled": True, "student": job.student}
    started = time.monotonic()
    report, executed = {}, None
    declared = declared_checks(job.checks_source)
    if job.problem:
        verdict = _verdict(Status.INVALID_NOTEBOOK, job.problem, declared, {})
    else:
        checked = preflight_notebook(job.notebook_bytes or b"")
        if checked.status:
            verdict = _verdict(checked.status, checked.problem, declared, {})
        else:
            report, executed = run_runner(job, checked.notebook, cancelled)
            if report.get("cancelled"):
                return {"cancelled": True, "student": job.student}
            verdict = judge_report(job, report)
    return _result(job, verdict, report, executed, runtime=time.monotonic() - started)
