"""``course grade``: grade a folder of submissions into a gradebook.

    course grade SUBMISSIONS --assignment NAME --out DIR [--profile grading] [-p KEY VALUE]...
                 [-j N] [--timeout S] [--cell-timeout S] [--force] [--executor local|dask --scheduler ADDR]

Before grading anyone, the instructor's own ``solutions/NAME.ipynb`` is graded the same
way: unless it gets status ``ok`` and full points, the hidden checks or the grading
profile are broken and the command stops (``--no-solution-check`` skips this).

Every entry of SUBMISSIONS that is not graded (another file type, a link, a hidden folder,
a zip next to its own folder, students left out by ``--only``) is printed and listed with
the reason in ``OUT/not-graded.csv``, rewritten on every run.

Exit status: 0 when every submission got a row, 1 when some rows are ``grader-error``
(rerun to retry them), 2 for a setup problem (nothing graded), 130 when interrupted.

Example::

    course grade submissions/03 --assignment 03_partial_freezing --out grades/03 -j 4 -p epochs 1
"""

from __future__ import annotations

import argparse
import faulthandler
import functools
import os
import pwd
import signal
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from . import procs, sandbox
from .checks import metric_names
from .executors import DaskExecutor, LocalExecutor
from .files import csv_text, write_text
from .gradebook import Gradebook, GradebookError, flatten
from .job import GradingJob, SandboxOptions
from .plan import (
    GradingPlan,
    PlanDefaults,
    add_plan_arguments,
    available_cpus,
    check_solution,
    make_plan,
    parse_size,
    sweep,
)
from .roster import RosterError, add_roster_arguments, apply_roster, checked_late_policy, read_roster, roster_options
from .status import Status
from .submissions import Skipped, Submission, scan

__all__ = ["add_arguments", "main", "parse_size", "report_not_graded", "sandbox_mode"]

NOT_GRADED = "not-graded.csv"
# course grade's defaults for the options it shares with course autograder (plan.py).
DEFAULTS = PlanDefaults(timeout=1800, cell_timeout=600, check_timeout=300, memory="4G")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare ``course grade``'s options on ``parser``."""
    parser.add_argument("submissions", help="folder of <student>.ipynb files or <student>/ folders (or one .ipynb)")
    parser.add_argument(
        "--assignment",
        required=True,
        metavar="NAME",
        help="notebook name, e.g. 03_partial_freezing (hidden checks: SOLUTIONS/hidden_checks/NAME.py)",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="gradebook folder (created; reruns continue it)")
    add_plan_arguments(parser, DEFAULTS)
    parser.add_argument("-j", "--jobs", type=int, default=1, help="submissions graded at once (local executor)")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="BLAS/OpenMP threads per kernel (default: the CPUs this grader may use, its "
        "cgroup's CPU quota where one is set, / -j)",
    )
    parser.add_argument(
        "--stop-on-error",
        action="store_true",
        help="stop a notebook at its first failing cell (papermill's way); by default later "
        "cells still run so independent exercises still count",
    )
    parser.add_argument("--force", action="store_true", help="regrade submissions that already have a row")
    parser.add_argument("--only", action="append", metavar="STUDENT", help="grade only this student (repeatable)")
    parser.add_argument(
        "--executor",
        choices=["local", "dask"],
        default="local",
        help="local process pool (default) or a Dask cluster (--scheduler)",
    )
    parser.add_argument("--scheduler", metavar="ADDR", help="Dask scheduler address for --executor dask")
    parser.add_argument(
        "--sandbox",
        choices=["auto", "bwrap", "none"],
        default="auto",
        help="how student kernels are confined: auto (default) = bubblewrap, or with --container "
        "the container alone; bwrap = bubblewrap, also inside --container; none = no sandbox "
        "(trusted notebooks only). Without a usable bwrap, course grade refuses",
    )
    parser.add_argument(
        "--allow-network",
        action="store_true",
        help="keep the machine's network in the kernel's sandbox (it has none by default)",
    )
    parser.add_argument(
        "--allow-read",
        action="append",
        default=[],
        metavar="PATH",
        help="extra path student kernels may read (repeatable)",
    )
    parser.add_argument("--data-dir", metavar="DIR", help="shared read-only datasets (COURSE_DATA_DIR in the kernel)")
    parser.add_argument(
        "--run-as", metavar="USER", help="(grading as root) start each kernel's sandbox as this unprivileged user"
    )
    parser.add_argument(
        "--container",
        metavar="IMAGE",
        help="run each submission in its own Docker container from IMAGE (see docs/grading.md)",
    )
    add_roster_arguments(parser)


class _Printer:
    """Progress lines on stdout, also appended to OUT/grading.log."""

    def __init__(self, log_path: Path):
        self.log = open(log_path, "a", encoding="utf-8")

    def __call__(self, message: str) -> None:
        print(message, flush=True)
        self.log.write(message + "\n")
        self.log.flush()

    def close(self) -> None:
        self.log.close()


@dataclass
class _Run:
    """What ``course grade`` grades, set up and checked before anything runs."""

    plan: GradingPlan
    box: SandboxOptions
    submissions: list[Submission]
    skipped: list[Skipped]
    warnings: list[str]


def _setup(args) -> _Run:
    """Everything that can fail before grading starts; raises ValueError with a fix in the message."""
    if os.name != "posix":
        raise ValueError("course grade needs Linux or macOS (process groups, resource limits)")
    if args.executor == "dask" and not args.scheduler:
        raise ValueError("--executor dask needs --scheduler ADDRESS (for example tcp://127.0.0.1:8786)")
    if args.jobs < 1:
        raise ValueError("-j must be at least 1")
    plan = make_plan(args, threads=args.threads or max(1, available_cpus() // args.jobs))
    run_as = _run_as(args.run_as)
    read_paths = [str(Path(p).resolve()) for p in args.allow_read]
    box = SandboxOptions(
        mode=sandbox_mode(args.sandbox, args.container, run_as),
        restrict_network=not args.allow_network,
        read_paths=read_paths,
        data_dir=str(Path(args.data_dir).resolve()) if args.data_dir else None,
        run_as=run_as,
        container=args.container,
    )
    if args.container:
        _check_container(args.container)
    if args.roster:  # a broken roster (or late policy) stops here, before hours of grading
        read_roster(args.roster, roster_options(args)["columns"])
        checked_late_policy(args.late_policy)
    elif args.late_policy and args.late_policy.strip().casefold() != "none":
        raise ValueError(
            "--late-policy is applied through the roster (its submitted_at and --deadline give the "
            "days late): add --roster ROSTER.csv"
        )
    warnings: list[str] = []
    submissions, skipped = scan(args.submissions, args.assignment, warn=warnings.append)
    if args.only:
        wanted = set(args.only)
        missing = wanted - {s.student for s in submissions}
        if missing:
            raise ValueError(f"--only: no submission for {', '.join(sorted(missing))}")
        skipped += [
            Skipped(s.file_name, f"student {s.student} is not named by --only")
            for s in submissions
            if s.student not in wanted
        ]
        submissions = [s for s in submissions if s.student in wanted]
    return _Run(plan, box, submissions, skipped, warnings)


def _run_as(user: str | None) -> tuple[int, int] | None:
    """``--run-as USER`` as ``(uid, gid)``, checked: grading as root, and that user can run the kit's Python."""
    if not user:
        return None
    if os.geteuid() != 0:
        raise ValueError("--run-as needs the grader to run as root (it switches the kernel's user)")
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise ValueError(f"--run-as: no user named {user!r} on this machine") from None
    _check_run_as(user, entry.pw_uid, entry.pw_gid)
    return entry.pw_uid, entry.pw_gid


def report_not_graded(out: Path, skipped: list[Skipped], say) -> None:
    """Print each entry of the submissions folder that is not graded, and list them in ``OUT/not-graded.csv``.

    Example:
        >>> import tempfile
        >>> out = Path(tempfile.mkdtemp())
        >>> report_not_graded(out, [Skipped("notes.pdf", "not a notebook")], print)
        not graded: notes.pdf: not a notebook
        >>> (out / "not-graded.csv").read_text()
        'entry,reason\\nnotes.pdf,not a notebook\\n'
    """
    for entry in skipped:
        say(f"not graded: {entry.name}: {entry.reason}")
    write_text(
        out / NOT_GRADED, csv_text(["entry", "reason"], ({"entry": e.name, "reason": e.reason} for e in skipped))
    )


def sandbox_mode(choice: str, container: str | None, run_as: tuple[int, int] | None = None) -> str:
    """The kernel's sandbox mode (``sandbox.MODES``) for ``--sandbox CHOICE``; raises ValueError
    with the fixes when bubblewrap is asked for (``auto`` outside a container) but cannot run here.

    Example:
        >>> sandbox_mode("none", None), sandbox_mode("auto", "course-grader:1")
        ('none', 'user')
    """
    if choice == "none":
        return "none"
    if container:  # checked where it runs: inside the container
        return "bwrap" if choice == "bwrap" else "user"
    problem = sandbox.bwrap_problem(run_as)
    if problem:
        raise ValueError(sandbox.refusal(problem))
    return "bwrap"


def _check_run_as(user: str, uid: int, gid: int) -> None:
    """Refuse --run-as early when that user cannot even start this Python (a kernel never would)."""
    import subprocess
    import tempfile

    def become_user():
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)

    try:
        # It must also reach the private folders (made in TMPDIR): its sandbox binds one of them.
        temp = tempfile.gettempdir()
        code = f"import ipykernel, numpy, os; assert os.access({temp!r}, os.X_OK), 'it cannot enter {temp} (TMPDIR)'"
        probe = subprocess.run(
            [sys.executable, "-c", code],
            preexec_fn=become_user,
            cwd="/",
            env={"PATH": "/usr/bin:/bin", "HOME": "/"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        problem = probe.stderr.strip().splitlines()[-1] if probe.returncode else None
    except OSError as error:
        problem = str(error)
    if problem:
        raise ValueError(
            f"--run-as {user}: that user cannot run {sys.executable} ({problem}). The Python "
            f"installation, the virtual environment and TMPDIR must be reachable by it (for example under /opt, "
            f"not under /root); or grade without --run-as"
        )


def _check_container(image: str) -> None:
    """Refuse --container early when Docker cannot run ``image`` here."""
    import shutil
    import subprocess

    if not shutil.which("docker"):
        raise ValueError("--container needs the docker command on this machine")
    for command, what in (
        (["docker", "info", "--format", "{{.ServerVersion}}"], "reach a Docker engine"),
        (["docker", "image", "inspect", "--format", "{{.Id}}", image], f"find the image {image}"),
    ):
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=60)
        except subprocess.TimeoutExpired:
            raise ValueError(f"--container: docker did not answer within 60 s trying to {what}") from None
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()
            raise ValueError(
                f"--container: docker cannot {what}: {detail[-1] if detail else 'no details'} "
                f"(see docs/grading.md for building the image)"
            )


def main(args: argparse.Namespace) -> int:
    """Run ``course grade``; returns the exit status."""
    try:
        run = _setup(args)
        book = Gradebook(Path(args.out), args.assignment, run.plan.declared)
    except (ValueError, GradebookError, RosterError) as problem:
        print(f"course grade: {problem}", file=sys.stderr)
        return 2
    say = _Printer(Path(args.out) / "grading.log")
    marker = f"grade-{uuid.uuid4().hex[:12]}"
    executor = DaskExecutor(args.scheduler) if args.executor == "dask" else LocalExecutor(args.jobs)
    previous_handler = signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM behaves like Ctrl-C
    if hasattr(signal, "SIGUSR1"):
        # `kill -USR1 <pid>` prints every thread's stack to stderr, and the run goes on:
        # what an operator (or a test) needs to see where a run that seems stuck waits.
        faulthandler.register(signal.SIGUSR1, all_threads=True, chain=False)
    started = time.monotonic()
    try:
        _announce(args, run, marker, say)
        check = check_solution(
            run.plan,
            functools.partial(_grade_one, executor),
            run.box,
            marker,
            say,
            keep=Path(args.out) / "solution-check",
        )
        if not check.passed:
            say(check.problem)
            for line in check.failed_checks:
                say(f"  {line}")
            return 2
        book.metric_keys = _metric_columns(run.plan.checks_source, check.metrics, say)
        todo = _todo(args, run, book, marker, say)
        executor.run(todo, _recorder(book, len(todo), say))
        if args.roster:
            apply_roster(args.out, args.roster, say, **roster_options(args))
        counts = book.counts()
        say(
            f"done in {time.monotonic() - started:.0f} s: "
            + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
            + f"; gradebook {Path(args.out) / 'grades.csv'}"
        )
        return 1 if counts.get(Status.GRADER_ERROR) else 0
    except KeyboardInterrupt:
        say(
            f"interrupted: {len(book.rows)} row(s) are in {Path(args.out) / 'grades.csv'}; "
            f"run the same command again to grade the rest"
        )
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
        # Last resort: any process still carrying this run's marker (a runner killed before
        # it could clean up) goes now.
        sweep(marker)
        say.close()


def _grade_one(executor, job: GradingJob) -> dict | None:
    """Grade one job on ``executor`` (the solution check grades where the students are graded)."""
    results: list[dict] = []
    executor.run([job], results.append)
    return results[0] if results else None


def _announce(args, run: _Run, marker: str, say) -> None:
    """The run's first lines: warnings, entries not graded, stale folders removed, what is graded how."""
    for warning in run.warnings:
        say(f"warning: {warning}")
    report_not_graded(Path(args.out), run.skipped, say)
    stale = procs.remove_stale_folders()
    if stale:
        say(
            f"removed {len(stale)} private folder(s) of earlier runs that did not finish "
            f"({sum(size for _, size in stale) / 1024**2:.1f} MB): " + ", ".join(str(p) for p, _ in stale)
        )
    say(
        f"course grade {args.assignment}: {len(run.submissions)} submission(s)"
        + (f" ({len(run.skipped)} other entries not graded, see {NOT_GRADED})" if run.skipped else "")
        + f", parameters {run.plan.parameters}, "
        f"{args.executor} executor"
        + (f" -j {args.jobs}" if args.executor == "local" else f" at {args.scheduler}")
        # The marker every process of this run carries (COURSE_GRADE_RUN): what to look for, and what
        # the final sweep kills; other runs on the machine have their own.
        + f"; run {marker}"
    )
    if args.executor != "local":
        return
    box, limits = run.box, run.plan.limits
    say(
        f"student kernels: sandbox {sandbox.describe(box.mode, not box.restrict_network, box.run_as)}; "
        f"memory {_size(limits.memory_bytes)}, {limits.threads} thread(s) each"
    )
    if box.mode == "none":
        say(
            "WARNING: --sandbox none: student code runs with this user's rights and can read and write "
            "whatever it can (the gradebook and hidden checks included); for notebooks you trust only"
        )
    elif box.mode == "bwrap" and os.geteuid() == 0 and not args.run_as:
        say(
            "note: grading as root without --run-as: each kernel is root only inside its own user namespace, "
            "without capabilities, on a read-only system; --run-as USER also makes it an unprivileged user "
            "outside (see docs/grading.md)"
        )


def _todo(args, run: _Run, book: Gradebook, marker: str, say) -> list[GradingJob]:
    """The jobs to grade: each submission without a row, or whose row is stale (or all with --force)."""
    todo = []
    for submission in run.submissions:
        job = run.plan.job(submission, run.box, marker, stop_on_error=args.stop_on_error)
        grade, reason = book.should_grade(submission.student, job.sha256, args.force, job.graded_with)
        if grade:
            todo.append(job)
            if submission.student in book.rows:
                say(f"regrade {submission.student}: {reason}")
        else:
            say(f"skip {submission.student}: {reason} (use --force to regrade)")
    return todo


def _recorder(book: Gradebook, total: int, say):
    """``on_result`` for the executor: record the row and print one progress line."""
    finished = [0]

    def record(result: dict) -> None:
        book.record(result)
        finished[0] += 1
        row = result["row"]
        say(
            f"[{finished[0]:>{len(str(total))}}/{total}] {row['student']:<20} {str(row['status']):<18} "
            f"{row['points']:g}/{row['max_points']:g}  {row['runtime_s']:.1f} s"
            + (f"  {row['detail'][:100]}" if row["detail"] else "")
        )

    return record


def _metric_columns(checks_source: str, solution_metrics: dict | None, say) -> list[str]:
    """The gradebook's metric columns: the hidden checks' METRICS, else the solution's record keys."""
    declared = metric_names(checks_source)
    if declared is not None:
        return declared
    if solution_metrics:
        return list(flatten(solution_metrics))
    say(
        "note: no metric columns (the hidden checks declare no METRICS and the solution check did not run); "
        "results records are not copied into the gradebook"
    )
    return []


def _size(value: int | None) -> str:
    return "unlimited" if not value else f"{value / 1024**3:g} GiB"
