"""``course autograder``: a Gradescope autograder that grades with the kit's own hidden checks.

    course autograder ASSIGNMENT [--solutions DIR] [--out FILE.zip] [--visibility after_published]
                      [--profile grading] [-p KEY VALUE]... [--timeout S] [--memory SIZE] [--run-as USER]

It takes the options it shares with ``course grade`` from :mod:`.plan` (with defaults that fit
Gradescope's default 10 minutes, 768 MB and half a vCPU) and prints the Gradescope settings
to choose. The zip (upload it under *Configure Autograder*) holds::

    README.txt             the Gradescope settings to choose and the limits it grades with
    setup.sh               run once by Gradescope, as root, to build the image: installs the kit
                           below into /opt/course-venv and makes the user student kernels run as
    run_autograder         run per submission: grades /autograder/submission with
                           course_kit.grading.job.grade_job, writes /autograder/results/results.json
    autograder.json        assignment, papermill parameters, limits, visibility, kernel user
    hidden_checks/NAME.py  the hidden checks (the zip is for instructors only)
    kit/                   pyproject.toml, README.md, LICENSE, course_utils/, course_kit/

No solution notebooks and no tests are in it: the ``-p`` knobs are checked against
``solutions/NAME.ipynb`` when the zip is built, and (unless ``--no-solution-check``) the
solution is graded first, exactly as ``course grade`` does, so a broken check fails here and
not on the first student.

Per submission, the student's folder is graded like a folder submission of ``course grade``
(``NAME.ipynb`` or the only notebook at the top, else one ``NAME.ipynb`` anywhere below;
links are never followed), with the same statuses. ``results.json`` has one test per hidden
check (``name`` = the check's title, ``score``, ``max_score``, ``status``, ``visibility``,
``output`` = the check's feedback and the notebook's status in words) and the overall
``score``. Tests take ``--visibility`` (default ``after_published``: students see them once
you publish the grades); the top-level ``output`` holds only the notebook's status. A
``grader-error`` writes no ``results.json``, so Gradescope shows the run as failed and it can
be rerun, instead of recording a 0.

Gradescope's container is itself the per-submission sandbox, and Docker's default seccomp
profile may forbid the user namespaces bubblewrap needs, so the autograder always grades in
sandbox mode ``user`` (never bubblewrap, by choice rather than by falling back): the kernel
runs as ``--run-as`` (default ``course-student``, made by ``setup.sh``; ``''`` = as root).
``setup.sh`` makes the source folder (the hidden checks) and the installed instructor kit
readable by root only, so that user cannot read either.

``run_autograder`` reads two environment variables, for testing it outside Gradescope:
``COURSE_AUTOGRADER_ROOT`` (default ``/autograder``: holds ``source/``, ``submission/``,
``results/``) and ``COURSE_AUTOGRADER_PYTHON`` (default ``/opt/course-venv/bin/python``).

Example:
    >>> result = {"row": {"status": "ok", "detail": "", "points": 2, "max_points": 3, "runtime_s": 1.2},
    ...           "checks": [{"name": "a", "title": "adds", "points": 2, "max_points": 2, "passed": True,
    ...                       "message": "correct"},
    ...                      {"name": "b", "title": "scales", "points": 0, "max_points": 1, "passed": False,
    ...                       "message": "got 3"}]}
    >>> results = gradescope_results(result, visibility="after_published")
    >>> results["score"], [(t["name"], t["score"], t["max_score"]) for t in results["tests"]]
    (2, [('adds', 2, 2), ('scales', 0, 1)])
    >>> validate_results(results)
    []
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import importlib.metadata
import json
import math
import os
import sys
import time
import uuid
import zipfile
from pathlib import Path

from .files import replacing, write_text
from .gradebook import status_explanation
from .job import Limits, SandboxOptions, grade_job
from .plan import GradingPlan, PlanDefaults, add_plan_arguments, available_cpus, check_solution, make_plan, sweep
from .status import Status
from .submissions import BOOKKEEPING, Submission, find_nested, read_folder, read_zip, student_id

VISIBILITIES = ("hidden", "after_due_date", "after_published", "visible")
OUTPUT_FORMATS = ("text", "html", "simple_format", "md", "ansi")
CONFIG_NAME = "autograder.json"
README_NAME = "README.txt"
DEFAULT_ROOT = "/autograder"
DEFAULT_VENV = "/opt/course-venv"
DEFAULT_USER = "course-student"
# Gradescope's container is the sandbox: kernels run as an unprivileged user there, without
# bubblewrap (sandbox.py). The solution check at build time grades the same way.
AUTOGRADER_SANDBOX = "user"
KIT_FILES = ("pyproject.toml", "README.md", "LICENSE")
KIT_PACKAGES = ("course_utils", "course_kit")
ZIP_TIME = (2020, 1, 1, 0, 0, 0)  # fixed, so the same inputs give the same zip

SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once, as root, while it builds the autograder image (with network).
set -euo pipefail
SOURCE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${COURSE_AUTOGRADER_VENV:-@VENV@}"
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends python3 python3-venv python3-pip
python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --upgrade pip
# CPU wheels of torch: Gradescope has no GPU, and they are a fraction of the CUDA wheels' size.
"$VENV/bin/python" -m pip install --extra-index-url https://download.pytorch.org/whl/cpu "$SOURCE/kit"
RUN_AS="@RUN_AS@"
if [ -n "$RUN_AS" ]; then
    # Student kernels run as this user: it can run the venv's Python, not read the hidden checks.
    id -u "$RUN_AS" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$RUN_AS"
    chmod -R go-rwx "$SOURCE"
    # The installed instructor kit too: kernels import only the student library.
    chmod -R go-rwx "$("$VENV/bin/python" -c 'import course_kit, os; print(os.path.dirname(course_kit.__file__))')"
    # Fail the build now, not at the first submission, if that user cannot start a kernel.
    su -s /bin/sh "$RUN_AS" -c "cd / && $VENV/bin/python -c 'import ipykernel, nbclient, numpy'"
fi
"$VENV/bin/python" -c "import course_kit.grading.autograder"
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this once per submission, as root. For a local test, point
# COURSE_AUTOGRADER_ROOT at a folder with source/, submission/ and results/.
set -uo pipefail
ROOT="${COURSE_AUTOGRADER_ROOT:-@ROOT@}"
PYTHON="${COURSE_AUTOGRADER_PYTHON:-@VENV@/bin/python}"
# Start from the source folder: `python -m` puts the working folder on the import path,
# and nothing a student uploads may be importable.
cd "$ROOT/source" || exit 1
exec "$PYTHON" -m course_kit.grading.autograder --root "$ROOT"
"""


# --------------------------------------------------------------------------- results.json
def gradescope_results(result: dict, visibility: str = "after_published") -> dict:
    """Gradescope's ``results.json`` for one graded submission (``grade_job``'s result).

    Args:
        result: ``{"row": ..., "checks": [...]}`` as :func:`~course_kit.grading.job.grade_job` returns.
        visibility: each test's visibility (``hidden``, ``after_due_date``, ``after_published``, ``visible``).

    Returns:
        The results object: ``score``, ``execution_time``, ``output`` (the status in words),
        ``visibility``, ``stdout_visibility`` (hidden), ``tests`` (one per check), ``extra_data``.
    """
    if visibility not in VISIBILITIES:
        raise ValueError(f"visibility {visibility!r}: choose one of {', '.join(VISIBILITIES)}")
    row = result["row"]
    status, detail = str(row["status"]), row.get("detail") or ""
    explanation = status_explanation(row)
    status_line = f"Notebook status: {status}" + (f" ({detail})" if detail else "")
    # Each test says how the whole notebook went, since a check can fail because of it.
    context = status_line if status == Status.OK else f"{status_line}\n{explanation}"
    tests = []
    for number, item in enumerate(result.get("checks") or [], start=1):
        outcome = "Passed." if item["passed"] else f"Failed: {item['message']}"
        tests.append(
            {
                "number": str(number),
                "name": item["title"],
                "name_format": "text",
                "score": item["points"],
                "max_score": item["max_points"],
                "status": "passed" if item["passed"] else "failed",
                "visibility": visibility,
                "output": f"{outcome}\n\n{context}",
                "output_format": "text",
                "tags": [item["exercise"]] if item.get("exercise") else [],
            }
        )
    return {
        "score": row["points"],
        "execution_time": round(row.get("runtime_s") or 0),
        "output": f"{status_line}\n\n{explanation}",
        "output_format": "text",
        "visibility": visibility,
        "stdout_visibility": "hidden",
        "tests": tests,
        "extra_data": {
            "status": status,
            "detail": detail,
            "max_points": row.get("max_points"),
            "assignment": row.get("assignment"),
            "sha256": row.get("sha256"),
        },
    }


def validate_results(results) -> list[str]:
    """What is wrong with a ``results.json`` object by Gradescope's specification (empty: nothing).

    Example:
        >>> for problem in validate_results({"tests": [{"name": "t", "max_score": "2"}], "visibility": "soon"}):
        ...     print(problem)
        visibility 'soon' is not one of hidden, after_due_date, after_published, visible
        tests[0].max_score is not a number
        tests[0].score is missing
    """

    def number(value):
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

    if not isinstance(results, dict):
        return ["results is not a JSON object"]
    problems = []
    tests = results.get("tests", [])
    if "score" in results and not number(results["score"]):
        problems.append("score is not a number")
    if not isinstance(tests, list):
        return problems + ["tests is not a list"]
    if "score" not in results and not tests:
        problems.append("no score: give an overall score or tests with scores")
    for where, item in [("", results)] + [(f"tests[{i}].", t) for i, t in enumerate(tests)]:
        if not isinstance(item, dict):
            problems.append(f"{where or 'results'} is not an object")
            continue
        for key in ("visibility", "stdout_visibility"):
            if key in item and item[key] not in VISIBILITIES:
                problems.append(f"{where}{key} {item[key]!r} is not one of {', '.join(VISIBILITIES)}")
        for key in ("output_format", "name_format"):
            if key in item and item[key] not in OUTPUT_FORMATS:
                problems.append(f"{where}{key} {item[key]!r} is not one of {', '.join(OUTPUT_FORMATS)}")
        if "output" in item and not isinstance(item["output"], str):
            problems.append(f"{where}output is not text")
        if not where:
            continue
        if not isinstance(item.get("name"), str) or not item["name"]:
            problems.append(f"{where}name is missing")
        for key in ("score", "max_score"):
            if key in item and not number(item[key]):
                problems.append(f"{where}{key} is not a number")
        if "score" not in item and "score" not in results:
            problems.append(f"{where}score is missing")
        if item.get("status", "passed") not in ("passed", "failed"):
            problems.append(f"{where}status {item['status']!r} is not passed or failed")
    try:
        json.dumps(results, allow_nan=False)
    except (TypeError, ValueError) as error:
        problems.append(f"not JSON: {error}")
    return problems


# --------------------------------------------------------------------------- running on Gradescope
def collect_submission(folder: Path, assignment: str, student: str) -> Submission:
    """The submission in Gradescope's ``submission/`` folder, read like a folder submission of ``course grade``.

    Without a notebook at the top, one ``ASSIGNMENT.ipynb`` further down (a GitHub
    submission, a zipped folder) is used with its folder; a folder holding nothing but one
    ``.zip`` (uploaded without unpacking) is read as a zip submission. Links are never
    followed, and the folder is walked without recursion (see :mod:`.submissions`).
    """
    if not folder.is_dir():
        return Submission(student, folder, problem=f"no submission folder at {folder}")
    top = [p for p in folder.iterdir() if not p.is_symlink() and p.is_file() and p.name not in BOOKKEEPING]
    if len(top) == 1 and top[0].suffix.lower() == ".zip":
        return read_zip(top[0], assignment, student)
    base = folder
    if not any(p.suffix == ".ipynb" and not p.name.startswith(".") for p in top):
        nested = find_nested(folder, assignment)
        if len(nested) == 1:
            base = nested[0]
    return read_folder(base, assignment, student)


def _student(root: Path) -> str:
    """A student id from Gradescope's submission_metadata.json (first user's e-mail), else ``submission``."""
    try:
        users = json.loads((root / "submission_metadata.json").read_text(encoding="utf-8")).get("users") or []
        email = users[0].get("email") or users[0].get("name") or ""
    except (OSError, ValueError, AttributeError, IndexError):
        email = ""
    return student_id(email) if email else "submission"


def _run_as(user: str | None, say) -> tuple[int, int] | None:
    if not user:
        return None
    if os.geteuid() != 0:
        say(f"note: not running as root, so kernels run as this user, not {user}")
        return None
    import pwd

    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        say(f"warning: no user {user} here (setup.sh makes it), so student kernels run as root")
        return None
    return entry.pw_uid, entry.pw_gid


def run(root: Path, say=print) -> int:
    """Grade the submission under ``root`` (Gradescope's ``/autograder``) and write ``results/results.json``.

    Returns:
        0 when results were written, 1 for a ``grader-error`` (no results: Gradescope then
        reports the run as failed) or an unusable autograder folder.
    """
    source = root / "source"
    try:
        config = json.loads((source / CONFIG_NAME).read_text(encoding="utf-8"))
        assignment = config["assignment"]
        checks_source = (source / "hidden_checks" / f"{assignment}.py").read_text(encoding="utf-8")
    except (OSError, ValueError, KeyError) as error:
        say(f"the autograder folder {source} is incomplete ({error}): rebuild it with course autograder")
        return 1
    limits = Limits(**dict(config["limits"], threads=config["limits"].get("threads") or available_cpus()))
    say(
        f"kit: {Path(__file__).resolve().parent.parent}; python {sys.executable}; {limits.threads} thread(s) per kernel"
    )
    plan = GradingPlan(
        assignment=assignment,
        solutions=source,
        checks_path=source / "hidden_checks",
        checks_source=checks_source,
        declared=[],
        parameters=config["parameters"],
        limits=limits,
    )
    marker = f"gradescope-{uuid.uuid4().hex[:12]}"
    try:
        submission = collect_submission(root / "submission", assignment, _student(root))
        box = SandboxOptions(mode=AUTOGRADER_SANDBOX, run_as=_run_as(config.get("run_as"), say))
        result = grade_job(plan.job(submission, box, marker))
    except Exception:  # noqa: BLE001 - reading the submission failed: the grader's problem, not a 0
        import traceback

        say("grader-error: the submission could not be graded, no results.json is written\n" + traceback.format_exc())
        return 1
    finally:
        sweep(marker)
    row = result["row"]
    say(
        f"{assignment}: {row['status']}, {row['points']}/{row['max_points']} points in {row['runtime_s']:.1f} s"
        + (f"; {row['detail']}" if row.get("detail") else "")
        + f"; sandbox: {row.get('sandbox') or 'none'}"
    )
    if result.get("kernel_log") and row["status"] != Status.OK:
        say("kernel log (end):\n" + result["kernel_log"][-4000:])
    if row["status"] == Status.GRADER_ERROR:
        say("grader-error: no results.json is written, so Gradescope shows this run as failed; rerun it")
        return 1
    results = gradescope_results(result, config.get("visibility", "after_published"))
    problems = validate_results(results)
    if problems:  # a bug of this module: better no results than wrong ones
        say("results.json would be invalid: " + "; ".join(problems))
        return 1
    out = root / "results" / "results.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text(out, json.dumps(results, indent=1, ensure_ascii=False) + "\n")
    say(f"wrote {out}")
    return 0


# --------------------------------------------------------------------------- building the zip
def kit_files(project_root: Path) -> dict[str, Path]:
    """The kit's files for ``kit/`` in the zip: packaging files and both packages (no caches, no tests).

    Raises:
        ValueError: the kit is not a checkout (no ``pyproject.toml`` next to its packages).

    Example:
        >>> from course_kit.repository import PROJECT_ROOT
        >>> files = kit_files(PROJECT_ROOT)
        >>> "kit/course_kit/grading/job.py" in files, any(name.startswith("kit/tests/") for name in files)
        (True, False)
    """
    missing = [name for name in KIT_FILES if not (project_root / name).is_file()]
    if missing:
        raise ValueError(
            f"course autograder packs the kit from its checkout, but {project_root} has no "
            f"{', '.join(missing)}: run it from a clone of the course repository"
        )
    files = {f"kit/{name}": project_root / name for name in KIT_FILES}
    for package in KIT_PACKAGES:
        for path in sorted((project_root / package).rglob("*")):
            parts = path.relative_to(project_root).parts
            if (
                path.is_file()
                and not path.is_symlink()
                and "__pycache__" not in parts
                and not any(p.startswith(".") for p in parts)
                and path.suffix not in (".pyc", ".pyo")
            ):
                files["kit/" + "/".join(parts)] = path
    return files


def write_zip(out: Path, entries: dict[str, bytes], executable: set[str]) -> None:
    """Write the zip atomically, with fixed times, Unix modes (0644, scripts 0755), readable by others.

    The zip itself gets the mode of any file the instructor writes (0644 under the usual umask;
    see :func:`~course_kit.grading.files.replacing`). It holds the hidden checks: keep it out of
    students' reach, or write it with a umask of 077 to keep it private on a shared machine.
    """
    with replacing(out) as temporary:
        with zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name in sorted(entries):
                info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
                info.create_system = 3  # Unix: unzip tools then apply the modes below
                info.external_attr = (0o100755 if name in executable else 0o100644) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, entries[name])


# Gradescope's defaults for a programming assignment's autograder (its documentation):
# 10 minutes per submission, 768 MB of memory, half a vCPU.
GRADESCOPE_SECONDS = 600
GRADESCOPE_MEMORY_MB = 768
GRADESCOPE_CPUS = 0.5
GRADESCOPE_BASE_IMAGE = "Ubuntu 22.04 (Base)"
# Seconds outside the limits: starting Python and the kit, reading the submission, writing
# results.json, and Gradescope's own copying. Generous: a few seconds were measured (docs/grading.md).
OUTSIDE_LIMITS_S = 45
# Memory the container needs beside what --memory lets the kernel hold (its anonymous and shared pages,
# see runner.MemoryWatch), measured with the CPU wheels setup.sh installs (docs/grading.md, Gradescope):
# the runner (42 MB) and the grading process (30 MB) while the kernel runs, and the rest of 768 MB for
# what the system keeps for them: page tables, and the pages of library code the kernel runs (150 MB of
# a grading kernel's resident memory, which the system can drop and read again). The grading process
# imports torch (258 MB) to judge the probes after the kernel has exited; checks whose inputs are drawn
# with torch make it do so before the kernel starts, and do not fit (notebook 01's today, docs/grading.md).
GRADER_MEMORY_MB = 160
# course autograder's defaults: they add up to under GRADESCOPE_SECONDS (see the --timeout help) and,
# with GRADER_MEMORY_MB, to Gradescope's 768 MB. The four solutions' grading kernels held 487-573 MB
# (docs/grading.md, Gradescope).
DEFAULTS = PlanDefaults(timeout=360, cell_timeout=300, check_timeout=60, memory="608M")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare ``course autograder``'s options on ``parser``."""
    limits = Limits(timeout=DEFAULTS.timeout, check_timeout=DEFAULTS.check_timeout)
    budget = (
        f": start-up {limits.startup_timeout:g} + this + --check-timeout {DEFAULTS.check_timeout:g} + "
        f"{limits.hard_deadline() - limits.startup_timeout - limits.timeout - limits.check_timeout:g} s "
        f"margin of the last-resort deadline = {limits.hard_deadline():g} s at most, under Gradescope's "
        f"default {GRADESCOPE_SECONDS} s"
    )
    parser.add_argument("assignment", metavar="ASSIGNMENT", help="notebook name, e.g. 03_partial_freezing")
    parser.add_argument("--out", metavar="FILE.zip", help="the zip to write (default: ASSIGNMENT-gradescope.zip)")
    parser.add_argument(
        "--visibility",
        choices=VISIBILITIES,
        default="after_published",
        help="when students see each check's result (default after_published)",
    )
    add_plan_arguments(
        parser,
        dataclasses.replace(
            DEFAULTS,
            timeout_help=budget,
            memory_help=f"; the command prints the memory to choose in Gradescope (this plus ~{GRADER_MEMORY_MB} MB "
            f"for the grader and the libraries' code; Gradescope's default is {GRADESCOPE_MEMORY_MB} MB)",
        ),
    )
    parser.add_argument(
        "--run-as",
        default=DEFAULT_USER,
        metavar="USER",
        help=f"unprivileged user for student kernels, made by setup.sh (default {DEFAULT_USER}; '' = run them as root)",
    )


def gradescope_settings(limits: Limits) -> dict[str, str]:
    """The settings to choose in Gradescope's *Configure Autograder* for an autograder with ``limits``.

    Example:
        >>> for name, value in gradescope_settings(Limits(timeout=360, check_timeout=60,
        ...                                               memory_bytes=512 * 1024**2)).items():
        ...     print(f"{name}: {value}")
        Base image: Ubuntu 22.04 (Base)
        Memory: 768 MB (Gradescope's default; the kernel may hold 512 MB, the grader and the libraries' code ~160 MB)
        CPU: 0.5 vCPU (Gradescope's default; kernels get 1 thread)
        Autograder timeout: 10 minutes (Gradescope's default; the limits stop a run within 540 s)
    """
    seconds = limits.hard_deadline() + OUTSIDE_LIMITS_S
    minutes = max(GRADESCOPE_SECONDS // 60, math.ceil(seconds / 60))
    if limits.memory_bytes:
        kernel_mb = math.ceil(limits.memory_bytes / 1024**2)
        needed = kernel_mb + GRADER_MEMORY_MB
        memory = (
            f"{GRADESCOPE_MEMORY_MB} MB (Gradescope's default; "
            if needed <= GRADESCOPE_MEMORY_MB
            else f"at least {needed} MB (above Gradescope's default {GRADESCOPE_MEMORY_MB} MB: "
        )
        memory += f"the kernel may hold {kernel_mb} MB, the grader and the libraries' code ~{GRADER_MEMORY_MB} MB)"
    else:
        memory = "as much as the notebook needs: --memory none sets no limit on the kernel"
    timeout = (
        f"{minutes} minutes"
        + (" (Gradescope's default; " if minutes * 60 == GRADESCOPE_SECONDS else " (")
        + f"the limits stop a run within {limits.hard_deadline():g} s)"
    )
    return {
        "Base image": GRADESCOPE_BASE_IMAGE,
        "Memory": memory,
        "CPU": f"{GRADESCOPE_CPUS:g} vCPU (Gradescope's default; kernels get 1 thread)",
        "Autograder timeout": timeout,
    }


def solution_check_plan(plan, say, torch_version: str | None = None):
    """The plan the build checks the solution with: the zip's, less its memory limit unless torch here is a CPU build.

    setup.sh installs torch's CPU build on Gradescope, and the defaults' memory is measured with it;
    a CUDA build's libraries alone hold ~150 MB more (RssAnon after ``import torch``: 406 MB with
    2.14.1+cu130, 256 MB with 2.13.0+cpu), so here the solution check could only fail on memory
    that Gradescope will not need. ``torch_version``: default the installed one, read without importing it.

    Example:
        >>> from types import SimpleNamespace
        >>> plan = SimpleNamespace(limits=Limits(memory_bytes=2**29))
        >>> solution_check_plan(plan, print, "2.13.0+cpu") is plan
        True
        >>> solution_check_plan(plan, lambda line: None, "2.14.1+cu130").limits.memory_bytes is None
        True
    """
    if torch_version is None:
        try:
            torch_version = importlib.metadata.version("torch")
        except importlib.metadata.PackageNotFoundError:
            return plan
    if not plan.limits.memory_bytes or torch_version.endswith("+cpu"):
        return plan
    say(
        f"note: torch {torch_version} here is not the CPU build setup.sh installs on Gradescope (its libraries "
        f"hold ~150 MB more), so the solution check runs without --memory; Test Autograder checks it there"
    )
    checked = copy.copy(plan)  # the zip keeps the plan's own limits
    checked.limits = dataclasses.replace(plan.limits, memory_bytes=None)
    return checked


def readme(assignment: str, config: dict, settings: dict[str, str]) -> str:
    """The zip's README.txt: what it is, the Gradescope settings to choose, and the limits it grades with."""
    limits = config["limits"]
    lines = [
        f"Gradescope autograder for {assignment}, built by course autograder.",
        "",
        "In Gradescope: create a Programming Assignment, open Configure Autograder, choose these",
        "settings and upload this zip as it is:",
        "",
    ]
    lines += [f"  {name}: {value}" for name, value in settings.items()]
    lines += [
        "",
        "Each submission is graded with:",
        "",
        f"  parameters: {json.dumps(config['parameters'])}",
        f"  --timeout {limits['timeout']:g} s for the notebook, --cell-timeout {limits['cell_timeout']:g} s "
        f"for any cell, --check-timeout {limits['check_timeout']:g} s for the hidden checks",
        f"  --memory {_mb(limits['memory_bytes'])} resident for the kernel and what it starts, "
        f"--max-file-size {_mb(limits['file_size_bytes'])}",
        f"  {config['max_points']:g} points in {len(config['checks'])} checks, visibility {config['visibility']}",
        "",
        "Contents: setup.sh (run once by Gradescope to build the image), run_autograder (run per",
        "submission), autograder.json (the settings above), hidden_checks/ (keep this zip away from",
        "students), kit/ (the course kit, installed by setup.sh). See docs/grading.md, Gradescope.",
        "",
    ]
    return "\n".join(lines)


def _mb(value: int | None) -> str:
    return "none" if not value else f"{value / 1024**2:g}M"


def main(args: argparse.Namespace) -> int:
    """Run ``course autograder``: check, then write the zip; returns the exit status."""
    started = time.monotonic()
    out = Path(args.out or f"{args.assignment}-gradescope.zip")
    try:
        if out.suffix != ".zip":
            raise ValueError(f"--out {out}: Gradescope takes a .zip file")
        plan = make_plan(args, threads=1)
        files = kit_files(_project_root())
        check = check_solution(
            solution_check_plan(plan, print),
            grade_job,
            SandboxOptions(mode=AUTOGRADER_SANDBOX),
            f"gradescope-build-{uuid.uuid4().hex[:12]}",
            print,
            require=True,
        )
        if not check.passed:
            raise ValueError("\n  ".join([check.problem, *check.failed_checks]))
    except ValueError as problem:
        print(f"course autograder: {problem}", file=sys.stderr)
        return 2
    config = {
        "format": 1,
        "assignment": args.assignment,
        "parameters": plan.parameters,
        "limits": dict(dataclasses.asdict(plan.limits), threads=None),
        "visibility": args.visibility,
        "run_as": args.run_as,
        "max_points": plan.max_points,
        "checks": [{"name": c.name, "title": c.title, "points": c.points} for c in plan.declared],
    }
    settings = gradescope_settings(plan.limits)
    entries = {name: path.read_bytes() for name, path in files.items()}
    entries.update(
        {
            "setup.sh": SETUP_SH.replace("@VENV@", DEFAULT_VENV).replace("@RUN_AS@", args.run_as).encode(),
            "run_autograder": RUN_AUTOGRADER.replace("@ROOT@", DEFAULT_ROOT).replace("@VENV@", DEFAULT_VENV).encode(),
            CONFIG_NAME: (json.dumps(config, indent=1) + "\n").encode(),
            README_NAME: readme(args.assignment, config, settings).encode(),
            f"hidden_checks/{args.assignment}.py": plan.checks_source.encode(),
        }
    )
    write_zip(out, entries, executable={"setup.sh", "run_autograder"})
    print(
        f"wrote {out} ({len(entries)} files, {out.stat().st_size / 1024:.0f} KiB, {config['max_points']:g} points "
        f"in {len(plan.declared)} checks, visibility {args.visibility}) in {time.monotonic() - started:.0f} s; "
        f"upload it in Gradescope under Configure Autograder with these settings (also in its {README_NAME}):"
    )
    for name, value in settings.items():
        print(f"  {name}: {value}")
    return 0


def _project_root() -> Path:
    from ..repository import PROJECT_ROOT

    return PROJECT_ROOT


def _gradescope_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="run_autograder", description="grade the Gradescope submission")
    parser.add_argument("--root", default=os.environ.get("COURSE_AUTOGRADER_ROOT", DEFAULT_ROOT))
    return run(Path(parser.parse_args(argv).root), say=lambda line: print(line, flush=True))


if __name__ == "__main__":
    sys.exit(_gradescope_main(sys.argv[1:]))
