"""The grading plan both grading commands share (course_kit/grading/plan.py): the options
declared once with per-command defaults, the CPU quota a container sets (cgroup files faked
here), and the Gradescope settings the autograder prints."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from course_kit.grading import autograder, cli, plan
from course_kit.grading.job import Limits


def fake_cgroup(tmp_path: Path, files: dict[str, str], membership: str) -> tuple[Path, Path]:
    """A fake /sys/fs/cgroup with ``files`` (relative paths) and a fake /proc/self/cgroup."""
    root = tmp_path / "cgroup"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    root.mkdir(exist_ok=True)
    proc = tmp_path / "proc-self-cgroup"
    proc.write_text(membership)
    return root, proc


@pytest.mark.parametrize(
    "files, membership, quota",
    [
        ({"cpu.max": "max 100000\n"}, "0::/\n", None),  # v2, no limit
        ({"cpu.max": "50000 100000\n"}, "0::/\n", 0.5),  # v2, Gradescope's half a vCPU
        ({"cpu.max": "max 100000\n", "grading/job/cpu.max": "150000 100000\n"}, "0::/grading/job\n", 1.5),
        # The smallest quota on the way up is what the process gets.
        ({"grading/cpu.max": "100000 100000\n", "grading/job/cpu.max": "max 100000\n"}, "0::/grading/job\n", 1.0),
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, "3:cpu:/\n", None),  # v1, none
        ({"cpu/cpu.cfs_quota_us": "50000\n", "cpu/cpu.cfs_period_us": "100000\n"}, "3:cpu:/\n", 0.5),
        (
            {
                "cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "200000\n",
                "cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000\n",
            },
            "5:cpu,cpuacct:/docker/abc\n4:memory:/docker/abc\n",
            2.0,
        ),
        ({"cpu.max": "garbage\n"}, "0::/\n", None),  # unreadable: no quota, not a crash
        ({}, "", None),  # no cgroup files at all (macOS, a bare chroot)
    ],
)
def test_cpu_quota_is_read_from_cgroup_v2_and_v1(tmp_path, files, membership, quota):
    root, proc = fake_cgroup(tmp_path, files, membership)
    assert plan.cgroup_cpu_quota(root, proc) == quota


def test_threads_follow_the_quota_at_least_one(tmp_path, monkeypatch):
    monkeypatch.setattr(plan.os, "sched_getaffinity", lambda pid: set(range(8)))
    half, proc = fake_cgroup(tmp_path / "a", {"cpu.max": "50000 100000\n"}, "0::/\n")
    assert plan.available_cpus(half, proc) == 1  # half a vCPU still runs one thread
    three, proc = fake_cgroup(tmp_path / "b", {"cpu.max": "300000 100000\n"}, "0::/\n")
    assert plan.available_cpus(three, proc) == 3
    none, proc = fake_cgroup(tmp_path / "c", {"cpu.max": "max 100000\n"}, "0::/\n")
    assert plan.available_cpus(none, proc) == 8  # no quota: the CPUs it may run on
    many, proc = fake_cgroup(tmp_path / "d", {"cpu.max": "6400000 100000\n"}, "0::/\n")
    assert plan.available_cpus(many, proc) == 8  # a quota above the cores does not invent cores


def test_both_commands_declare_the_shared_options_once_with_their_own_defaults():
    grade, build = argparse.ArgumentParser(), argparse.ArgumentParser()
    cli.add_arguments(grade)
    autograder.add_arguments(build)
    shared = [
        "--solutions",
        "--checks",
        "--profile",
        "--parameter",
        "--timeout",
        "--cell-timeout",
        "--check-timeout",
        "--memory",
        "--max-file-size",
        "--no-solution-check",
    ]
    for parser in (grade, build):
        options = {option for action in parser._actions for option in action.option_strings}
        assert set(shared) <= options and "-p" in options
    graded = grade.parse_args(["subs", "--assignment", "a", "--out", "o"])
    built = build.parse_args(["a"])
    assert (graded.timeout, graded.check_timeout, graded.memory) == (1800, 300, 4 * 1024**3)
    assert (built.timeout, built.check_timeout) == (autograder.DEFAULTS.timeout, autograder.DEFAULTS.check_timeout)
    assert built.memory == plan.parse_size(autograder.DEFAULTS.memory)


def test_the_autograder_defaults_fit_gradescopes_ten_minutes_and_name_the_memory_they_need():
    limits = Limits(
        timeout=autograder.DEFAULTS.timeout,
        cell_timeout=autograder.DEFAULTS.cell_timeout,
        check_timeout=autograder.DEFAULTS.check_timeout,
        memory_bytes=plan.parse_size(autograder.DEFAULTS.memory),
    )
    # The last-resort deadline (start-up + notebook + checks + its margin), plus what runs outside
    # the limits, stays under Gradescope's default 600 s.
    assert limits.hard_deadline() + autograder.OUTSIDE_LIMITS_S < autograder.GRADESCOPE_SECONDS
    settings = autograder.gradescope_settings(limits)
    # The default kernel memory and the grader's share fit Gradescope's default 768 MB.
    assert limits.memory_bytes // 1024**2 + autograder.GRADER_MEMORY_MB <= autograder.GRADESCOPE_MEMORY_MB
    assert settings["Memory"].startswith("768 MB (Gradescope's default") and settings["Autograder timeout"].startswith(
        "10 minutes"
    )
    assert settings["CPU"].startswith("0.5 vCPU") and settings["Base image"].startswith("Ubuntu")
    small = autograder.gradescope_settings(Limits(timeout=360, check_timeout=60, memory_bytes=512 * 1024**2))
    assert small["Memory"].startswith("768 MB")  # limits that fit are Gradescope's default
    # Limits that do not fit are not dressed up as Gradescope's defaults.
    big = autograder.gradescope_settings(Limits(timeout=1800, check_timeout=300, memory_bytes=2 * 1024**3))
    needed = 2048 + autograder.GRADER_MEMORY_MB
    assert big["Memory"].startswith(f"at least {needed} MB") and big["Autograder timeout"].startswith("38 minutes")
    # The --timeout help says the sum.
    parser = argparse.ArgumentParser()
    autograder.add_arguments(parser)
    [timeout] = [action for action in parser._actions if "--timeout" in action.option_strings]
    assert f"= {limits.hard_deadline():g} s at most" in timeout.help


def test_sweep_kills_only_this_runs_processes(tmp_path):
    marker = f"plan-test-{tmp_path.name}"
    env = {"PATH": "/usr/bin:/bin", plan.procs.MARKER_VARIABLE: marker}
    mine = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"], env=env)
    other = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(300)"],
        env=dict(env, **{plan.procs.MARKER_VARIABLE: marker + "-other"}),
    )
    try:
        assert plan.sweep(marker) == [mine.pid]
        assert mine.wait(timeout=30) == -9
        assert other.poll() is None
    finally:
        for process in (mine, other):
            process.kill()
            process.wait()
