"""Process-tree bookkeeping: find and kill everything a grading run started.

A student's notebook can start processes that outlive the kernel: DataLoader workers,
``subprocess.Popen`` children, double-forked daemons that call ``os.setsid()`` to leave
the kernel's process group. ``killpg`` alone misses the last kind, so the grader uses two
Linux mechanisms that do not depend on the student's cooperation:

* **child subreaper** (``prctl(PR_SET_CHILD_SUBREAPER)``): orphaned descendants of a
  subreaper are re-parented to it instead of to init, so they stay in its process tree
  where :func:`descendants` finds them;
* **run marker**: every student kernel gets ``COURSE_GRADE_RUN=<id>`` in its environment;
  :func:`processes_with_marker` finds processes carrying it even after their subreaper died
  (the last-resort sweep after a runner had to be SIGKILLed).

On other systems these degrade to process-group kills, which the grading docs state.

Example:
    >>> import os
    >>> os.getpid() not in descendants(os.getpid())
    True
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import stat
import sys
import tempfile
import time
from pathlib import Path

MARKER_VARIABLE = "COURSE_GRADE_RUN"
IS_LINUX = sys.platform.startswith("linux")

# prctl options from <linux/prctl.h>
_PR_SET_DUMPABLE = 4
_PR_SET_CHILD_SUBREAPER = 36


def _prctl(option: int, value: int) -> bool:
    """Call prctl(2); False where it is unavailable or refused (never raises)."""
    if not IS_LINUX:
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(option, ctypes.c_ulong(value), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def become_subreaper() -> bool:
    """Make this process adopt its orphaned descendants (Linux); True when it worked.

    Example:
        >>> isinstance(become_subreaper(), bool)
        True
    """
    return _prctl(_PR_SET_CHILD_SUBREAPER, 1)


def make_undumpable() -> bool:
    """Forbid ptrace and ``/proc/<pid>/mem`` access to this process by other non-root processes."""
    return _prctl(_PR_SET_DUMPABLE, 0)


def _stat_fields(pid: int | str) -> list[str] | None:
    """Fields 3 on of ``/proc/<pid>/stat`` (state, ppid, ...; see proc(5)), or None when it cannot be read.

    None too for a process caught exiting, whose stat file can read as empty or cut short
    on a busy machine: every reader below treats that as "gone".
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # the process exited while we looked
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields if len(fields) >= 20 else None


def _parent_map() -> dict[int, int]:
    """pid -> ppid for every process visible in /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat_fields(entry.name)) is not None:
            parents[int(entry.name)] = int(fields[1])
    return parents


def descendants(pid: int) -> list[int]:
    """All live descendants of ``pid`` (children first), from /proc; empty off Linux.

    Example:
        >>> descendants(os.getpid()) == [] or all(isinstance(p, int) for p in descendants(os.getpid()))
        True
    """
    if not IS_LINUX:
        return []
    children: dict[int, list[int]] = {}
    for child, parent in _parent_map().items():
        children.setdefault(parent, []).append(child)
    found, queue = [], list(children.get(pid, []))
    while queue:
        current = queue.pop(0)
        found.append(current)
        queue.extend(children.get(current, []))
    return found


def peak_memory_bytes(pids) -> int:
    """The largest peak resident set (``VmHWM``) among ``pids``, in bytes; 0 where none can be read.

    Example:
        >>> peak_memory_bytes([os.getpid()]) > 0
        True
    """
    peak = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue  # gone, or not ours to read
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                peak = max(peak, int(line.split()[1]) * 1024)
    return peak


def unreclaimable_bytes(pids) -> int:
    """The memory ``pids`` hold that the system cannot drop: resident anonymous and shared pages, summed, in bytes.

    ``RssAnon + RssShmem`` from ``/proc/PID/status``: what a container's memory limit must hold.
    Resident library code (``RssFile``) is left out: the kernel can drop those pages and read them
    again, so they never exhaust a memory limit. A process gone meanwhile counts 0.

    Example:
        >>> unreclaimable_bytes([os.getpid()]) > 0
        True
    """
    total = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith(("RssAnon:", "RssShmem:")):
                total += int(line.split()[1]) * 1024
    return total


def processes_with_marker(marker: str) -> list[int]:
    """Pids whose initial environment holds ``COURSE_GRADE_RUN=<marker>`` (exact or as prefix ``marker:``)."""
    if not IS_LINUX or not marker:
        return []
    wanted = f"{MARKER_VARIABLE}={marker}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        for item in environ.split(b"\0"):
            if item == wanted or item.startswith(wanted + b":"):
                found.append(int(entry.name))
                break
    return found


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def reap_zombies() -> None:
    """Collect exit statuses of any finished children (a subreaper must, or zombies pile up)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def kill_tree(root: int, include_root: bool = False, marker: str | None = None, rounds: int = 20) -> int:
    """SIGKILL every descendant of ``root`` (and processes carrying ``marker``); return how many.

    Descendants are stopped first, then killed, and the scan repeats until nothing is left,
    so a process forking while we kill cannot slip through between scan and kill.

    Example:
        >>> import subprocess, sys
        >>> child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        >>> kill_tree(child.pid, include_root=True)
        1
        >>> child.wait() == -9
        True
    """
    killed: set[int] = set()
    for _ in range(rounds):
        victims = descendants(root)
        if marker:
            victims += [p for p in processes_with_marker(marker) if p not in victims and p != root]
        victims = [p for p in victims if p not in killed or _alive(p)]
        if include_root:
            victims.append(root)
        if not victims:
            break
        for pid in victims:
            _signal(pid, signal.SIGSTOP)
        for pid in victims:
            _signal(pid, signal.SIGKILL)
        killed.update(victims)
        include_root = False
        time.sleep(0.05)
        if root == os.getpid():
            reap_zombies()
    return len(killed)


def _alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] != "Z"


def kill_process_group(pgid: int) -> None:
    """SIGKILL a whole process group, ignoring one that is already gone."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# --------------------------------------------------------------------------- private folders
# A grading run's private folders are ``<temp>/course-grade-*`` holding this file; a folder
# whose owner process is gone (``kill -9`` of course grade, a lost machine) is removed by the
# next run. Nothing without this file, owned by another user, or of a live owner is touched.
OWNER_FILE = ".course-grade-owner.json"
FOLDER_PREFIX = "course-grade-"


def _start_time(pid: int) -> str | None:
    """When ``pid`` started (clock ticks since boot, /proc), so a reused pid is not taken for its owner."""
    fields = _stat_fields(pid)
    return None if fields is None else fields[19]  # field 22 of proc(5); the fields start at field 3


def private_folder(marker: str) -> Path:
    """A new private folder for one submission's run, with an owner file naming this process and ``marker``.

    Example:
        >>> folder = private_folder("grade-doc")
        >>> json.loads((folder / OWNER_FILE).read_text())["pid"] == os.getpid()
        True
        >>> _stale_owner(folder) is None  # its owner is alive: a sweep keeps it
        True
        >>> import shutil; shutil.rmtree(folder)
    """
    folder = Path(tempfile.mkdtemp(prefix=FOLDER_PREFIX))
    owner = {"kit": "course_kit", "pid": os.getpid(), "started": _start_time(os.getpid()), "marker": marker}
    (folder / OWNER_FILE).write_text(json.dumps(owner), encoding="utf-8")
    return folder


def _stale_owner(folder: Path) -> dict | None:
    """The owner record of a kit folder whose owner process is gone, else None."""
    try:
        info, owner_info = folder.lstat(), (folder / OWNER_FILE).lstat()
        if not (stat.S_ISDIR(info.st_mode) and stat.S_ISREG(owner_info.st_mode)) or info.st_uid != os.getuid():
            return None  # a link, someone else's folder, or not one of ours
        owner = json.loads((folder / OWNER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(owner, dict) or owner.get("kit") != "course_kit" or not isinstance(owner.get("pid"), int):
        return None
    pid = owner["pid"]
    alive = _alive(pid) if IS_LINUX else _exists(pid)
    if alive and (not IS_LINUX or owner.get("started") in (None, _start_time(pid))):
        return None
    return owner


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_folders(root: Path | None = None) -> list[tuple[Path, int]]:
    """Delete private folders of earlier runs whose owner died; return ``(folder, bytes)`` removed.

    Processes still carrying a dead run's marker (an orphaned runner or kernel) are killed
    first, so nothing writes into a folder while it goes.

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> stale = root / "course-grade-old"; stale.mkdir()
        >>> _ = (stale / OWNER_FILE).write_text('{"kit": "course_kit", "pid": 999999999, "marker": "x"}')
        >>> _ = (stale / "big.bin").write_bytes(b"0" * 1000)
        >>> (root / "course-grade-someone-elses").mkdir()  # no owner file: never touched
        >>> [(path.name, size > 1000) for path, size in remove_stale_folders(root)]  # its files and owner record
        [('course-grade-old', True)]
        >>> sorted(p.name for p in root.iterdir())
        ['course-grade-someone-elses']
    """
    root = Path(root or tempfile.gettempdir())
    removed = []
    try:
        candidates = sorted(root.glob(FOLDER_PREFIX + "*"))
    except OSError:
        return []
    for folder in candidates:
        owner = _stale_owner(folder)
        if owner is None:
            continue
        if owner.get("marker"):
            for pid in processes_with_marker(str(owner["marker"])):
                _signal(pid, signal.SIGKILL)
        size = 0
        for directory, _, names in os.walk(folder):
            for name in names:
                try:
                    size += (Path(directory) / name).lstat().st_size
                except OSError:
                    pass
        shutil.rmtree(folder, ignore_errors=True)
        if not folder.exists():
            removed.append((folder, size))
    return removed
