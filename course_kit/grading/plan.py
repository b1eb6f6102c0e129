"""The grading plan that ``course grade`` and ``course autograder`` share.

Both commands grade one assignment the same way: the same options (hidden checks, profile,
``-p`` knobs, time and memory limits, the solution check), declared once here with each
command's own defaults; the same checks that the plan is usable before anything runs
(:func:`make_plan`); the same solution check (the instructor's notebook must get ``ok`` and
full points first); and the same final sweep of any process still carrying the run's
marker. Kernel threads come from the CPUs this process may really use: a container's CPU
quota (cgroup v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``) where one is set.

Example:
    >>> parser = argparse.ArgumentParser()
    >>> add_plan_arguments(parser, PlanDefaults(timeout=60, cell_timeout=10, check_timeout=30, memory="1G"))
    >>> args = parser.parse_args(["--timeout", "90", "-p", "epochs", "1"])
    >>> args.timeout, args.check_timeout, args.memory, args.parameter, args.profile
    (90.0, 30.0, 1073741824, [['epochs', '1']], 'grading')
"""

from __future__ import annotations

import argparse
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import procs
from .files import write_text
from .job import GradingJob, Limits, SandboxOptions, declared_checks
from .status import Status
from .submissions import Submission

_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")


def parse_size(text: str) -> int | None:
    """``"4G"`` -> bytes; ``"0"`` or ``"none"`` -> no limit.

    Example:
        >>> parse_size("512M"), parse_size("none")
        (536870912, None)
    """
    value = text.strip().upper().removesuffix("B").removesuffix("I")
    if value in ("0", "NONE", ""):
        return None
    unit = value[-1] if value[-1] in _UNITS else ""
    try:
        number = float(value[: len(value) - len(unit)])
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (use for example 512M or 4G, or none)") from None
    return int(number * _UNITS[unit])


@dataclass(frozen=True)
class PlanDefaults:
    """One command's defaults for the shared options (seconds; sizes as ``parse_size`` reads them)."""

    timeout: float
    cell_timeout: float
    check_timeout: float
    memory: str
    max_file_size: str = "1G"
    timeout_help: str = ""  # why this default (appended to --timeout's help)
    memory_help: str = ""  # why this default (appended to --memory's help)


def add_plan_arguments(parser: argparse.ArgumentParser, defaults: PlanDefaults) -> None:
    """Declare the options both grading commands take, with ``defaults`` for this command."""
    parser.add_argument(
        "--solutions",
        default="solutions",
        metavar="DIR",
        help="instructor notebooks and hidden_checks/ (default: ./solutions)",
    )
    parser.add_argument(
        "--checks", metavar="FILE", help="hidden checks file (default: SOLUTIONS/hidden_checks/NAME.py)"
    )
    parser.add_argument("--profile", default="grading", help="papermill `profile` parameter (default: grading)")
    parser.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("KEY", "VALUE"),
        help="a knob of the notebook's parameters cell, typed as for course run (a number, "
        "True/False/None or YAML such as '[0, 1]'); unknown knobs are refused (repeatable)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=float(defaults.timeout),
        metavar="S",
        help=f"wall-clock limit for all of a notebook's cells (default {defaults.timeout:g}{defaults.timeout_help})",
    )
    parser.add_argument(
        "--cell-timeout",
        type=float,
        default=float(defaults.cell_timeout),
        metavar="S",
        help=f"wall-clock limit for any one cell (default {defaults.cell_timeout:g})",
    )
    parser.add_argument(
        "--check-timeout",
        type=float,
        default=float(defaults.check_timeout),
        metavar="S",
        help=f"wall-clock limit for the hidden checks after the notebook (default {defaults.check_timeout:g})",
    )
    parser.add_argument(
        "--memory",
        type=parse_size,
        default=parse_size(defaults.memory),
        metavar="SIZE",
        help=f"memory the kernel and what it starts may hold resident (anonymous and shared pages; the "
        f"runner stops it above this: out-of-memory), e.g. 2G; each process may make 512 MB more writable "
        f"(RLIMIT_DATA); none = no limit "
        f"(default {defaults.memory}{defaults.memory_help})",
    )
    parser.add_argument(
        "--max-file-size",
        type=parse_size,
        default=parse_size(defaults.max_file_size),
        metavar="SIZE",
        help=f"largest file a kernel may write (default {defaults.max_file_size})",
    )
    parser.add_argument("--no-solution-check", action="store_true", help="do not grade SOLUTIONS/NAME.ipynb first")


@dataclass
class GradingPlan:
    """What grading one assignment needs, checked: the hidden checks, the parameters, the limits."""

    assignment: str
    solutions: Path
    checks_path: Path
    checks_source: str
    declared: list
    parameters: dict
    limits: Limits
    solution_check: bool = True
    notes: list[str] = field(default_factory=list)

    @property
    def solution(self) -> Path:
        """The instructor's notebook, ``SOLUTIONS/NAME.ipynb``."""
        return self.solutions / f"{self.assignment}.ipynb"

    @property
    def max_points(self) -> float:
        """The points the hidden checks give in all."""
        return sum(check.points for check in self.declared)

    def job(self, submission: Submission, sandbox: SandboxOptions, marker: str, **extra) -> GradingJob:
        """The grading job for ``submission`` under this plan (``extra``: other GradingJob fields)."""
        return GradingJob(
            student=submission.student,
            assignment=self.assignment,
            source=str(submission.source),
            notebook_bytes=submission.notebook_bytes,
            files=submission.files,
            problem=submission.problem,
            checks_source=self.checks_source,
            parameters=self.parameters,
            limits=self.limits,
            sandbox=sandbox,
            marker=marker,
            file_name=submission.file_name,
            notes=submission.notes_text,
            **extra,
        )


def make_plan(args: argparse.Namespace, threads: int) -> GradingPlan:
    """The plan for the options :func:`add_plan_arguments` declared; raises ValueError naming the fix."""
    from ..parameters import check_overrides, parse_value, profile_names

    solutions = Path(args.solutions)
    checks_path = Path(args.checks) if args.checks else solutions / "hidden_checks" / f"{args.assignment}.py"
    if not checks_path.is_file():
        raise ValueError(
            f"hidden checks not found at {checks_path}: write them there (see "
            f"course_kit/grading/checks.py), pass --solutions DIR or --checks FILE"
        )
    checks_source = checks_path.read_text(encoding="utf-8")
    try:
        declared = declared_checks(checks_source)
    except Exception as error:  # the instructor's module: report, do not crash
        raise ValueError(f"{checks_path} cannot be loaded: {type(error).__name__}: {error}") from None
    if args.profile not in profile_names():
        raise ValueError(f"--profile {args.profile}: not a profile; choose one of {', '.join(profile_names())}")
    overrides = {key: parse_value(value) for key, value in args.parameter}
    solution = solutions / f"{args.assignment}.ipynb"
    if overrides:
        if not solution.is_file():
            raise ValueError(f"-p needs {solution} to know the assignment's knobs (or grade without -p)")
        check_overrides([solution], overrides)
    limits = Limits(
        timeout=args.timeout,
        cell_timeout=args.cell_timeout,
        check_timeout=args.check_timeout,
        memory_bytes=args.memory,
        file_size_bytes=args.max_file_size,
        threads=threads,
    )
    return GradingPlan(
        assignment=args.assignment,
        solutions=solutions,
        checks_path=checks_path,
        checks_source=checks_source,
        declared=declared,
        parameters={"profile": args.profile, **overrides},
        limits=limits,
        solution_check=not args.no_solution_check,
    )


@dataclass
class SolutionCheck:
    """How the solution check went: ``passed`` (or skipped), its metrics, and why it failed."""

    passed: bool
    metrics: dict | None = None
    problem: str = ""
    failed_checks: list[str] = field(default_factory=list)  # "check NAME: message", one per failed check
    result: dict | None = None


def check_solution(
    plan: GradingPlan,
    grade: Callable[[GradingJob], dict | None],
    sandbox: SandboxOptions,
    marker: str,
    say: Callable[[str], None],
    require: bool = False,
    keep: Path | None = None,
) -> SolutionCheck:
    """Grade the instructor's notebook first, as a submission; it must get ``ok`` and full points.

    ``grade`` runs one job (None when interrupted); ``require``: a missing solution notebook
    fails the check instead of skipping it; ``keep``: a folder for the executed solution and its
    kernel log. A failed check's ``problem`` names what failed and the fixes, and
    ``failed_checks`` lists the checks the solution failed.
    """
    if not plan.solution_check:
        return SolutionCheck(True)
    solution = plan.solution
    if not solution.is_file():
        if require:
            return SolutionCheck(
                False, problem=f"no {solution} to check the hidden checks against (or pass --no-solution-check)"
            )
        say(f"note: no {solution} to check the hidden checks against; grading without that check")
        return SolutionCheck(True)
    say(f"checking the hidden checks against {solution} ...")
    result = grade(plan.job(Submission("_solution", solution, solution.read_bytes()), sandbox, marker))
    if result is None:
        return SolutionCheck(False, problem="the solution check did not finish")
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        if result.get("executed_notebook"):
            write_text(keep / f"{plan.assignment}.ipynb", result["executed_notebook"])
        write_text(keep / "kernel.log", result.get("kernel_log") or "")
    row = result["row"]
    if row["status"] == Status.OK and row["points"] == row["max_points"]:
        say(
            f"solution: ok, {row['points']}/{row['max_points']} points ({row['runtime_s']:.1f} s"
            + (f", kernel peak {row['kernel_peak_mb']} MB" if row.get("kernel_peak_mb") else "")
            + ")"
        )
        return SolutionCheck(True, metrics=row.get("metrics"), result=result)
    failed = [f"check {item['name']}: {item['message']}" for item in result.get("checks") or [] if not item["passed"]]
    kept = f"executed notebook and kernel log in {keep}; " if keep is not None else ""
    return SolutionCheck(
        False,
        result=result,
        failed_checks=failed,
        problem=(
            f"the solution notebook gets status {str(row['status'])!r} with {row['points']}/{row['max_points']} points "
            f"({row.get('detail') or 'no detail'}); fix the hidden checks, the grading profile, the limits or the "
            f"solution before grading students ({kept}--no-solution-check skips this)"
        ),
    )


def sweep(marker: str) -> list[int]:
    """Kill every process still carrying this run's marker (a runner killed before it cleaned up).

    Returns the ids of the processes it signalled. Other runs on the machine have their own
    markers, so they are left alone.

    Example:
        >>> sweep("no-run-has-this-marker")
        []
    """
    killed = []
    for pid in procs.processes_with_marker(marker):
        try:
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        except (ProcessLookupError, PermissionError):
            pass
    return killed


# --------------------------------------------------------------------------- CPUs
def cgroup_cpu_quota(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> float | None:
    """The CPUs this process's cgroup lets it use (``0.5`` = half a CPU), or None when no quota is set.

    Reads cgroup v2 ``cpu.max`` (``"50000 100000"``, or ``"max 100000"`` for none) or v1
    ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` (quota ``-1`` for none), in this process's own
    cgroup (``/proc/self/cgroup``) and each one above it up to the root: the smallest quota
    on that path is what the process gets. A container usually sees its own cgroup as the root.

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> _ = (root / "cpu.max").write_text("50000 100000\\n")
        >>> cgroup_cpu_quota(root, root / "no-such-file")
        0.5
    """
    quotas = []
    for folder in _cgroup_folders(root, proc_cgroup):
        quota = _read_quota(folder)
        if quota is not None:
            quotas.append(quota)
    return min(quotas) if quotas else None


def _cgroup_folders(root: Path, proc_cgroup: Path) -> list[Path]:
    """The folders that may hold this process's CPU limits: its own cgroup's, then each above it."""
    own: list[Path] = []
    try:
        lines = proc_cgroup.read_text(encoding="utf-8").splitlines()
    except OSError:
        lines = []
    for line in lines:  # "0::/path" (v2) or "4:cpu,cpuacct:/path" (v1)
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        controllers, path = parts[1].split(","), parts[2].strip().lstrip("/")
        if parts[1] == "":
            own.append(root / path)
        elif "cpu" in controllers:
            base = next((root / name for name in (parts[1], "cpu", "cpu,cpuacct") if (root / name).is_dir()), None)
            if base is not None:
                own.append(base / path)
    folders = []
    for folder in own:
        while True:
            folders.append(folder)
            if folder in (root, folder.parent) or root not in folder.parents:
                break
            folder = folder.parent
    # Where /proc/self/cgroup says nothing usable (or a container's own cgroup is the root).
    folders += [root, root / "cpu", root / "cpu,cpuacct"]
    return list(dict.fromkeys(folders))


def _read_quota(folder: Path) -> float | None:
    """The quota (in CPUs) set in one cgroup folder, v2 or v1; None for none or unreadable."""
    try:
        text = (folder / "cpu.max").read_text(encoding="ascii").split()
        if len(text) == 2 and text[0] != "max":
            return int(text[0]) / int(text[1])
        return None
    except (OSError, ValueError, ZeroDivisionError):
        pass
    try:
        quota = int((folder / "cpu.cfs_quota_us").read_text(encoding="ascii"))
        period = int((folder / "cpu.cfs_period_us").read_text(encoding="ascii"))
    except (OSError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None


def available_cpus(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> int:
    """Whole CPUs this process may use: the cgroup's CPU quota where one is set (at least 1),
    else the CPUs it may run on (its affinity, as ``taskset`` sets it), else ``os.cpu_count()``.

    Example:
        >>> available_cpus() >= 1
        True
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    quota = cgroup_cpu_quota(root, proc_cgroup)
    if quota is None:
        return max(1, cores)
    return max(1, min(cores, int(quota)))
