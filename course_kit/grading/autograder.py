"""``course autograder``: a Gradescope autograder that grades with the kit's own hidden checks.

    course autograder ASSIGNMENT [--solutions DIR] [--out FILE.zip] [--visibility after_published]
                      [--profile grading] [-p KEY VALUE]... [--timeout S] [--memory SIZE] [--run-as USER]

The zip (upload it under *Configure Autograder*) holds::

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
import dataclasses
import json
import math
import os
import sys
import time
import uuid
import zipfile
from pathlib import Path

from .gradebook import status_explanation
from .job import GradingJob, Limits, SandboxOptions, declared_checks, grade_job
from .files import replacing, write_text
from .submissions import BOOKKEEPING, Submission, find_nested, read_folder, read_zip, student_id

VISIBILITIES = ("hidden", "after_due_date", "after_published", "visible")
OUTPUT_FORMATS = ("text", "html", "simple_format", "md", "ansi")
CONFIG_NAME = "autograder.json"
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
    status, detail = row["status"], row.get("detail") or ""
    explanation = status_explanation(row)
    status_line = f"Notebook status: {status}" + (f" ({detail})" if detail else "")
    # Each test says how the whole notebook went, since a check can fail because of it.
    context = status_line if status == "ok" else f"{status_line}\n{explanation}"
    tests = []
    for number, item in enumerate(result.get("checks") or [], start=1):
        outcome = "Passed." if item["passed"] else f"Failed: {item['message']}"
        tests.append({"number": str(number), "name": item["title"], "name_format": "text",
                      "score": item["points"], "max_score": item["max_points"],
                      "status": "passed" if item["passed"] else "failed", "visibility": visibility,
                      "output": f"{outcome}\n\n{context}", "output_format": "text",
                      "tags": [item["exercise"]] if item.get("exercise") else []})
    return {"score": row["points"], "execution_time": round(row.get("runtime_s") or 0),
            "output": f"{status_line}\n\n{explanation}", "output_format": "text", "visibility": visibility,
            "stdout_visibility": "hidden", "tests": tests,
            "extra_data": {"status": status, "detail": detail, "max_points": row.get("max_points"),
                           "assignment": row.get("assignment"), "sha256": row.get("sha256")}}


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
    say(f"kit: {Path(__file__).resolve().parent.parent}; python {sys.executable}")
    limits = dict(config["limits"])
    limits["threads"] = limits.get("threads") or os.cpu_count() or 1
    marker = f"gradescope-{uuid.uuid4().hex[:12]}"
    try:
        submission = collect_submission(root / "submission", assignment, _student(root))
        job = GradingJob(student=submission.student, assignment=assignment, source=str(submission.source),
                         notebook_bytes=submission.notebook_bytes, files=submission.files,
                         problem=submission.problem, checks_source=checks_source, parameters=config["parameters"],
                         limits=Limits(**limits), marker=marker, notes=submission.notes_text,
                         sandbox=SandboxOptions(mode=AUTOGRADER_SANDBOX, run_as=_run_as(config.get("run_as"), say)))
        result = grade_job(job)
    except Exception:  # noqa: BLE001 - reading the submission failed: the grader's problem, not a 0
        import traceback

        say("grader-error: the submission could not be graded, no results.json is written\n"
            + traceback.format_exc())
        return 1
    finally:
        _sweep(marker)
    row = result["row"]
    say(f"{assignment}: {row['status']}, {row['points']}/{row['max_points']} points in {row['runtime_s']:.1f} s"
        + (f"; {row['detail']}" if row.get("detail") else "") + f"; sandbox: {row.get('sandbox') or 'none'}")
    if result.get("kernel_log") and row["status"] != "ok":
        say("kernel log (end):\n" + result["kernel_log"][-4000:])
    if row["status"] == "grader-error":
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


def _sweep(marker: str) -> None:
    """Kill anything still carrying this run's marker (a runner killed before it cleaned up)."""
    import signal

    from . import procs

    for pid in procs.processes_with_marker(marker):
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


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
        raise ValueError(f"course autograder packs the kit from its checkout, but {project_root} has no "
                         f"{', '.join(missing)}: run it from a clone of the course repository")
    files = {f"kit/{name}": project_root / name for name in KIT_FILES}
    for package in KIT_PACKAGES:
        for path in sorted((project_root / package).rglob("*")):
            parts = path.relative_to(project_root).parts
            if (path.is_file() and not path.is_symlink() and "__pycache__" not in parts
                    and not any(p.startswith(".") for p in parts) and path.suffix not in (".pyc", ".pyo")):
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare ``course autograder``'s options on ``parser``."""
    from .cli import parse_size

    parser.add_argument("assignment", metavar="ASSIGNMENT", help="notebook name, e.g. 03_partial_freezing")
    parser.add_argument("--solutions", default="solutions", metavar="DIR",
                        help="instructor notebooks and hidden_checks/ (default: ./solutions)")
    parser.add_argument("--checks", metavar="FILE",
                        help="hidden checks file (default: SOLUTIONS/hidden_checks/NAME.py)")
    parser.add_argument("--out", metavar="FILE.zip", help="the zip to write (default: ASSIGNMENT-gradescope.zip)")
    parser.add_argument("--visibility", choices=VISIBILITIES, default="after_published",
                        help="when students see each check's result (default after_published)")
    parser.add_argument("--profile", default="grading", help="papermill `profile` parameter (default: grading)")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"),
                        help="a knob of the notebook's parameters cell, as for course grade (repeatable)")
    parser.add_argument("--timeout", type=float, default=540, metavar="S",
                        help="all cells of the notebook (default 540: under Gradescope's default 10 minutes)")
    parser.add_argument("--cell-timeout", type=float, default=300, metavar="S", help="any one cell (default 300)")
    parser.add_argument("--check-timeout", type=float, default=120, metavar="S", help="the hidden checks (default 120)")
    parser.add_argument("--memory", type=parse_size, default=parse_size("2G"), metavar="SIZE",
                        help="RLIMIT_DATA per kernel process (default 2G; keep it under the container's memory)")
    parser.add_argument("--max-file-size", type=parse_size, default=parse_size("1G"), metavar="SIZE",
                        help="largest file a kernel may write (default 1G)")
    parser.add_argument("--run-as", default=DEFAULT_USER, metavar="USER",
                        help=f"unprivileged user for student kernels, made by setup.sh (default {DEFAULT_USER}; "
                             f"'' = run them as root)")
    parser.add_argument("--no-solution-check", action="store_true", help="do not grade SOLUTIONS/NAME.ipynb first")


def _solution_check(args, checks_source: str, parameters: dict, limits: Limits) -> str | None:
    """None when the solution gets ``ok`` and full points, else what went wrong."""
    solution = Path(args.solutions) / f"{args.assignment}.ipynb"
    if not solution.is_file():
        return None if args.no_solution_check else (f"no {solution} to check the hidden checks against "
                                                     f"(or pass --no-solution-check)")
    if args.no_solution_check:
        return None
    job = GradingJob(student="_solution", assignment=args.assignment, source=str(solution),
                     notebook_bytes=solution.read_bytes(), files={}, problem=None, checks_source=checks_source,
                     parameters=parameters, limits=limits, sandbox=SandboxOptions(mode=AUTOGRADER_SANDBOX),
                     marker=f"gradescope-build-{uuid.uuid4().hex[:12]}")
    try:
        result = grade_job(job)
    finally:
        _sweep(job.marker)
    row = result["row"]
    if row["status"] == "ok" and row["points"] == row["max_points"]:
        print(f"solution: ok, {row['points']}/{row['max_points']} points ({row['runtime_s']:.1f} s)")
        return None
    failed = "; ".join(f"{c['name']}: {c['message']}" for c in result.get("checks", []) if not c["passed"])
    return (f"the solution notebook gets {row['status']!r} with {row['points']}/{row['max_points']} points "
            f"({row.get('detail') or failed or 'no detail'}); fix the checks or the parameters first")


def main(args: argparse.Namespace) -> int:
    """Run ``course autograder``: check, then write the zip; returns the exit status."""
    from ..parameters import check_overrides, parse_value, profile_names
    from ..repository import PROJECT_ROOT

    started = time.monotonic()
    checks_path = Path(args.checks) if args.checks else Path(args.solutions) / "hidden_checks" / f"{args.assignment}.py"
    out = Path(args.out or f"{args.assignment}-gradescope.zip")
    try:
        if out.suffix != ".zip":
            raise ValueError(f"--out {out}: Gradescope takes a .zip file")
        if not checks_path.is_file():
            raise ValueError(f"hidden checks not found at {checks_path}: pass --solutions DIR or --checks FILE")
        checks_source = checks_path.read_text(encoding="utf-8")
        try:
            declared = declared_checks(checks_source)
        except Exception as error:  # the instructor's module: report it, do not crash
            raise ValueError(f"{checks_path} cannot be loaded: {type(error).__name__}: {error}") from None
        if args.profile not in profile_names():
            raise ValueError(f"--profile {args.profile}: not a profile; choose one of {', '.join(profile_names())}")
        overrides = {key: parse_value(value) for key, value in args.parameter}
        solution = Path(args.solutions) / f"{args.assignment}.ipynb"
        if overrides:
            if not solution.is_file():
                raise ValueError(f"-p needs {solution} to know the assignment's knobs")
            check_overrides([solution], overrides)
        parameters = {"profile": args.profile, **overrides}
        limits = Limits(timeout=args.timeout, cell_timeout=args.cell_timeout, check_timeout=args.check_timeout,
                        memory_bytes=args.memory, file_size_bytes=args.max_file_size, threads=1)
        files = kit_files(PROJECT_ROOT)
        problem = _solution_check(args, checks_source, parameters, limits)
        if problem:
            raise ValueError(problem)
    except ValueError as problem:
        print(f"course autograder: {problem}", file=sys.stderr)
        return 2
    config = {"format": 1, "assignment": args.assignment, "parameters": parameters,
              "limits": dict(dataclasses.asdict(limits), threads=None), "visibility": args.visibility,
              "run_as": args.run_as, "max_points": sum(c.points for c in declared),
              "checks": [{"name": c.name, "title": c.title, "points": c.points} for c in declared]}
    entries = {name: path.read_bytes() for name, path in files.items()}
    entries.update({
        "setup.sh": SETUP_SH.replace("@VENV@", DEFAULT_VENV).replace("@RUN_AS@", args.run_as).encode(),
        "run_autograder": RUN_AUTOGRADER.replace("@ROOT@", DEFAULT_ROOT).replace("@VENV@", DEFAULT_VENV).encode(),
        CONFIG_NAME: (json.dumps(config, indent=1) + "\n").encode(),
        f"hidden_checks/{args.assignment}.py": checks_source.encode(),
    })
    write_zip(out, entries, executable={"setup.sh", "run_autograder"})
    print(f"wrote {out} ({len(entries)} files, {out.stat().st_size / 1024:.0f} KiB, {config['max_points']:g} points "
          f"in {len(declared)} checks, visibility {args.visibility}) in {time.monotonic() - started:.0f} s; "
          f"upload it in Gradescope under Configure Autograder (see docs/grading.md)")
    return 0


def _gradescope_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="run_autograder", description="grade the Gradescope submission")
    parser.add_argument("--root", default=os.environ.get("COURSE_AUTOGRADER_ROOT", DEFAULT_ROOT))
    return run(Path(parser.parse_args(argv).root), say=lambda line: print(line, flush=True))


if __name__ == "__main__":
    sys.exit(_gradescope_main(sys.argv[1:]))
