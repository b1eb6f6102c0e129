"""Confinement for student kernels: a bubblewrap sandbox, resource limits and a clean environment.

The grader starts every student kernel through this file used as a launcher::

    python .../grading/sandbox.py POLICY.json --connection-file CONN.json -- python -m ipykernel_launcher -f CONN.json

The launcher reads the policy (written by ``runner.sandbox_policy``), then, before ``exec``:

1. sets hard resource limits: private writable memory (``RLIMIT_DATA``), largest file it
   may write (``RLIMIT_FSIZE``), no core dumps (a non-root process cannot raise them again);
2. optionally switches to an unprivileged user (``run_as``, only when started as root);
3. asks Linux to SIGKILL it when the grading runner dies (``PR_SET_PDEATHSIG``, armed after
   the user switch, which would clear it), and does not start at all if the runner is gone;
4. ``exec``s the kernel, in mode ``bwrap`` under **bubblewrap** (``/usr/bin/bwrap``, what
   Flatpak uses; see :func:`bwrap_arguments`): new user, PID, IPC, UTS, cgroup and network
   namespaces, every capability dropped, no further user namespaces, its own session, dying
   with the runner; a root of its own holding the system, the Python installation and the
   student library read-only, the instructor kit (``course_kit``) covered by an empty folder,
   private size-limited ``/tmp`` and ``/dev/shm``, its own ``/proc`` (``/proc/sys`` read-only),
   a minimal ``/dev``, and its work folder, the only writable host path; a seccomp filter
   (bwrap's ``--seccomp``, :func:`seccomp_program`) lets it open UNIX and IP sockets only.
   Its environment is exactly the policy's. The kernel talks to the runner over ZeroMQ ``ipc`` sockets in that
   work folder; its network namespace has nothing but its own loopback.

   Mode ``user`` runs the kernel without bubblewrap, as the launcher's user or ``run_as``:
   for a container that is itself the per-submission sandbox (Gradescope's autograder,
   ``--container``), where user namespaces are often forbidden. Mode ``none`` is the same
   without any claim of confinement (``--sandbox none``).

There is no Landlock layer: under bubblewrap it would add nothing. Files outside the
kernel's view do not exist for it (and no UNIX socket elsewhere), host paths it sees are
read-only mounts (no write, chmod, chown, utime or xattr: ``EROFS``), every socket it may
open (and abstract UNIX sockets) reaches only its own network namespace, and
no process outside its PID namespace can be named, signalled or traced. In mode ``user``
the container is the boundary, and file permissions keep the hidden checks from the kernel's user.

The file is deliberately stdlib-only, imports everything before switching users (the
interpreter's own files may be unreadable to ``run_as``), and is run by path (see
``runner.make_kernel_manager`` for why not with ``-m``).

Example:
    >>> args = bwrap_arguments({"read_only": ["/usr"], "hidden": [], "work": "/tmp/w", "env": {"HOME": "/tmp/w"}},
    ...                        bwrap="/usr/bin/bwrap")
    >>> args[:2], "--unshare-net" in args, args[args.index("--bind") + 1:args.index("--bind") + 3]
    (['/usr/bin/bwrap', '--unshare-user'], True, ['/tmp/w', '/tmp/w'])
"""

from __future__ import annotations

import ctypes
import functools
import json
import os
import platform
import resource
import shutil
import signal
import site
import struct
import subprocess
import sys

BWRAP_VARIABLE = "COURSE_BWRAP"  # where bwrap is, if not on PATH; a path that does not exist = none here
MODES = ("bwrap", "user", "none")
_PR_SET_PDEATHSIG = 1
# What every kernel gets (the probe in bwrap_problem tries exactly these).
NAMESPACE_OPTIONS = (
    "--unshare-user",
    "--unshare-pid",
    "--unshare-ipc",
    "--unshare-uts",
    "--unshare-cgroup-try",
    "--disable-userns",
    "--cap-drop",
    "ALL",
    "--die-with-parent",
    "--new-session",
)
# A UNIX socket's path must fit sockaddr_un.sun_path (108 bytes with its terminating NUL).
MAX_SOCKET_PATH = 107
DEFAULT_TMP_BYTES = 1024**3


class SandboxUnavailable(RuntimeError):
    """bubblewrap was asked for but cannot run here."""


# --------------------------------------------------------------------------- is bubblewrap usable here?
def bwrap_path() -> str | None:
    """The bwrap executable to use: ``$COURSE_BWRAP`` if set, else ``bwrap`` on PATH (None: none).

    Example:
        >>> bwrap_path() is None or os.path.basename(bwrap_path()).startswith("bwrap")
        True
    """
    chosen = os.environ.get(BWRAP_VARIABLE)
    if chosen is not None:
        return chosen if os.path.isfile(chosen) and os.access(chosen, os.X_OK) else None
    return shutil.which("bwrap") or next((p for p in ("/usr/bin/bwrap", "/bin/bwrap") if os.access(p, os.X_OK)), None)


@functools.cache
def bwrap_problem(run_as: tuple[int, int] | None = None, bwrap: str | None = None) -> str | None:
    """None when bubblewrap can start a sandbox here (as ``run_as``, if given), else why not.

    Tried once per process: ``bwrap --unshare-user --unshare-net ... true``, the namespaces a
    kernel gets, so a missing binary, user namespaces disabled by sysctl, or a seccomp
    profile that forbids them are all found before anyone is graded.

    Example:
        >>> bwrap_problem(bwrap="/nonexistent/bwrap")
        'bubblewrap (bwrap) is not installed here'
    """
    bwrap = bwrap or bwrap_path()
    if not bwrap or not os.access(bwrap, os.X_OK):
        return "bubblewrap (bwrap) is not installed here"
    probe = [
        bwrap,
        *NAMESPACE_OPTIONS,
        "--unshare-net",
        "--ro-bind",
        "/",
        "/",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "true",
    ]
    try:
        done = subprocess.run(
            probe,
            capture_output=True,
            text=True,
            timeout=60,
            preexec_fn=(lambda: _drop_privileges(*run_as)) if run_as else None,
        )
    except (OSError, subprocess.SubprocessError) as error:
        return f"{bwrap} could not be started ({error})"
    if done.returncode != 0:
        said = (done.stderr.strip().splitlines() or ["no message"])[-1]
        return f"{bwrap} cannot create a sandbox here ({said}): user namespaces are probably disabled"
    return None


def refusal(problem: str) -> str:
    """What ``course grade`` says when it cannot sandbox kernels, with the three ways on.

    Example:
        >>> "--sandbox none" in refusal("bubblewrap (bwrap) is not installed here")
        True
    """
    return (
        f"student kernels cannot be sandboxed: {problem}. Install bubblewrap (apt-get install bubblewrap; "
        f"user namespaces must be allowed, e.g. sysctl kernel.unprivileged_userns_clone=1), or grade each "
        f"submission in its own container (--container IMAGE), or grade without a sandbox on purpose "
        f"(--sandbox none; only for notebooks you trust). See docs/grading.md"
    )


def describe(mode: str, network: bool = False, run_as: tuple[int, int] | list[int] | None = None) -> str:
    """One line naming the protection a kernel gets, for the gradebook's ``sandbox`` column.

    Example:
        >>> describe("none")
        'none (--sandbox none: limits and a clean environment only)'
        >>> describe("user", run_as=(0, 0))
        'user root, no bubblewrap (the container is the sandbox)'
    """
    user = _user_name(run_as[0] if run_as else os.geteuid())
    if mode == "bwrap":
        namespaces = "user, pid, ipc, uts" + ("" if network else ", net")
        return (
            f"bwrap ({namespaces} namespaces; no capabilities; read-only system"
            + ("; network shared" if network else "")
            + f"; user {user})"
        )
    if mode == "user":
        return f"user {user}, no bubblewrap (the container is the sandbox)"
    return "none (--sandbox none: limits and a clean environment only)"


def _user_name(uid: int) -> str:
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return f"uid {uid}"


def kernel_exit_status(code: int | None, mode: str | None) -> int | None:
    """The kernel's exit status as ``Popen.returncode`` gives it (``-N``: killed by signal N).

    bwrap, the process the runner started, exits with its child's status in the shell's
    encoding: 128 + N when a signal killed the kernel.

    Example:
        >>> kernel_exit_status(137, "bwrap"), kernel_exit_status(1, "bwrap"), kernel_exit_status(-9, "user")
        (-9, 1, -9)
    """
    if mode == "bwrap" and isinstance(code, int) and 128 < code < 128 + 65:
        return -(code - 128)
    return code


# --------------------------------------------------------------------------- what the kernel may see
_ETC_ENTRIES = (
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "timezone",
    "passwd",
    "group",
    "nsswitch.conf",
    "hosts",
    "host.conf",
    "gai.conf",
    "ssl",
    "ca-certificates",
    "pki",
    "fonts",
    "mime.types",
    "os-release",
    "matplotlibrc",
    "alternatives",
)


def python_read_paths() -> list[str]:
    """The interpreter, its standard library and site-packages (what any kernel must read).

    Example:
        >>> sys.base_prefix in python_read_paths() or os.path.realpath(sys.base_prefix) in python_read_paths()
        True
    """
    paths = {
        sys.prefix,
        sys.exec_prefix,
        sys.base_prefix,
        sys.base_exec_prefix,
        os.path.dirname(os.path.realpath(sys.executable)),
    }
    try:
        paths.update(site.getsitepackages())
    except AttributeError:  # very old virtualenvs lack it
        pass
    paths.update(os.path.realpath(p) for p in list(paths))
    return sorted(paths)


def system_read_paths() -> list[str]:
    """System programs and libraries, a small part of /etc, and /sys (all bound read-only)."""
    paths = ["/usr", "/lib", "/lib32", "/lib64", "/libx32", "/bin", "/sbin", "/sys"]
    return paths + [f"/etc/{name}" for name in _ETC_ENTRIES]


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _read_only_binds(paths: list[str]) -> list[str]:
    """``--ro-bind`` (or ``--symlink``) arguments for ``paths``, outer folders first, each once.

    A path that is a symbolic link at the top of the tree (``/lib -> usr/lib`` on merged-/usr
    systems) is recreated as that link, and what it points to is bound at its own place.
    """
    wanted = {os.path.normpath(p) for p in paths if os.path.lexists(p)}
    links = {p for p in wanted if os.path.islink(p)}
    wanted = (wanted - links) | {os.path.realpath(p) for p in links}
    args, bound = [], []
    for path in sorted(wanted, key=lambda p: (p.count(os.sep), p)):
        if not any(_inside(path, b) for b in bound):
            args += ["--ro-bind", path, path]
            bound.append(path)
    for link in sorted(links):
        if not any(_inside(link, b) for b in bound):
            args += ["--symlink", os.readlink(link), link]
    return args


def bwrap_arguments(policy: dict, bwrap: str | None = None) -> list[str]:
    """The bwrap command line (up to, not including, the kernel's own command) for ``policy``.

    ``policy`` keys: ``read_only`` (paths bound read-only), ``hidden`` (paths inside them
    covered by an empty read-only folder: the instructor kit), ``work`` (the only writable
    host folder, also the working directory), ``env`` (the kernel's whole environment),
    ``network`` (keep the host's network namespace), ``tmp_bytes`` and ``shm_bytes``.
    """
    args = [bwrap or bwrap_path() or "bwrap", *NAMESPACE_OPTIONS, "--hostname", "course-kernel"]
    if not policy.get("network"):
        args.append("--unshare-net")
    shm = int(policy.get("shm_bytes") or DEFAULT_TMP_BYTES)
    tmp = int(policy.get("tmp_bytes") or DEFAULT_TMP_BYTES)
    # Mounted first, so that a read-only path or the work folder below /tmp is bound on top.
    args += [
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        # bwrap leaves these writable to a uid mapped to the host's root (global sysctls, SysRq).
        "--ro-bind-try",
        "/proc/sys",
        "/proc/sys",
        "--ro-bind-try",
        "/proc/sysrq-trigger",
        "/proc/sysrq-trigger",
        "--perms",
        "1777",
        "--size",
        str(shm),
        "--tmpfs",
        "/dev/shm",
        "--perms",
        "1777",
        "--size",
        str(tmp),
        "--tmpfs",
        "/tmp",
    ]
    args += _read_only_binds(list(policy.get("read_only") or []))
    read_roots = [os.path.realpath(p) for p in policy.get("read_only") or [] if os.path.lexists(p)]
    for hidden in sorted({os.path.realpath(h) for h in policy.get("hidden") or []}):
        if any(_inside(hidden, root) for root in read_roots) and os.path.isdir(hidden):
            args += ["--perms", "0555", "--tmpfs", hidden, "--remount-ro", hidden]
    work = policy["work"]
    args += ["--bind", work, work, "--chdir", work, "--clearenv"]
    for name, value in sorted((policy.get("env") or {}).items()):
        args += ["--setenv", name, str(value)]
    return args


# --------------------------------------------------------------------------- socket families (seccomp)
# Per architecture: seccomp's AUDIT_ARCH value, socket(2)'s number, and whether x32 numbers exist.
_ARCHES = {"x86_64": (0xC000003E, 41, True), "aarch64": (0xC00000B7, 198, False)}
_SYS_IO_URING_SETUP = 425  # the same everywhere (added after the unified table)
_ALLOWED_FAMILIES = (1, 2, 10)  # AF_UNIX (ZeroMQ ipc), AF_INET, AF_INET6 (its own loopback only)
# EOPNOTSUPP, not EAFNOSUPPORT: libzmq lists interfaces through a netlink socket when it binds
# TCP and aborts the kernel on any error but EOPNOTSUPP or EINVAL (what WSL answers).
_EOPNOTSUPP, _EPERM = 95, 1


def seccomp_program(machine: str | None = None) -> bytes | None:
    """A classic BPF seccomp filter for bwrap's ``--seccomp``: ``socket()`` only for UNIX and IP.

    Netlink and packet sockets (and every other family) fail with ``EOPNOTSUPP``;
    ``io_uring_setup`` fails with ``EPERM`` (io_uring could open sockets without the
    ``socket`` system call); calls of another ABI (32-bit, x32) fail with ``EPERM``. Raw IP
    sockets already need a capability the kernel does not have. None on an architecture
    this table does not know (then no filter is loaded and the row says nothing else).

    Example:
        >>> len(seccomp_program("x86_64")) % 8, seccomp_program("sparc")
        (0, None)
    """
    arch = _ARCHES.get(machine or platform.machine())
    if arch is None:
        return None
    audit_arch, socket_nr, has_x32 = arch
    load, jeq, jge, ret = 0x20, 0x15, 0x35, 0x06
    allow, errno = 0x7FFF0000, 0x00050000
    families = list(_ALLOWED_FAMILIES)
    # (code, jump if true, jump if false, k); jumps count the instructions after this one.
    program = [(load, 0, 0, 4), (jeq, 1, 0, audit_arch), (ret, 0, 0, errno | _EPERM), (load, 0, 0, 0)]
    if has_x32:
        program += [(jge, 0, 1, 0x40000000), (ret, 0, 0, errno | _EPERM)]
    program += [
        (jeq, 0, 1, _SYS_IO_URING_SETUP),
        (ret, 0, 0, errno | _EPERM),
        (jeq, 0, len(families) + 2, socket_nr),
        (load, 0, 0, 16),
    ]
    program += [(jeq, len(families) - i, 0, family) for i, family in enumerate(families)]
    program += [(ret, 0, 0, errno | _EOPNOTSUPP), (ret, 0, 0, allow)]
    return b"".join(struct.pack("=HBBI", *instruction) for instruction in program)


def _seccomp_fd() -> int | None:
    """A readable descriptor holding :func:`seccomp_program`, inherited by bwrap (None: no filter)."""
    program = seccomp_program()
    if program is None:
        return None
    read_end, write_end = os.pipe()
    os.write(write_end, program)
    os.close(write_end)
    os.set_inheritable(read_end, True)
    return read_end


# --------------------------------------------------------------------------- the launcher
def set_limits(memory_bytes: int | None, file_size_bytes: int | None) -> None:
    """Set hard and soft limits: private writable memory, written file size, no core dumps.

    ``RLIMIT_DATA`` rather than ``RLIMIT_AS``: importing torch reserves ~3 GB of address
    space it never touches, while RLIMIT_DATA counts the memory a process actually makes
    writable (heap, anonymous mappings), which is what a memory hog grows.

    Example:
        >>> set_limits(None, None)  # only disables core dumps
    """
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if memory_bytes:
        resource.setrlimit(resource.RLIMIT_DATA, (int(memory_bytes), int(memory_bytes)))
    if file_size_bytes:
        resource.setrlimit(resource.RLIMIT_FSIZE, (int(file_size_bytes), int(file_size_bytes)))


def _drop_privileges(uid: int, gid: int) -> None:
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)


def _die_with_parent(parent_pid: int | None) -> bool:
    """Arm PR_SET_PDEATHSIG; False when the runner already died (then nothing may start)."""
    if not sys.platform.startswith("linux"):
        return True
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(
        _PR_SET_PDEATHSIG, ctypes.c_ulong(signal.SIGKILL), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0)
    )
    return parent_pid is None or os.getppid() == parent_pid


def main(argv: list[str]) -> int:
    """Launcher entry point: ``sandbox.py POLICY.json [--connection-file F] -- COMMAND...``."""
    if len(argv) < 3 or "--" not in argv:
        print("usage: sandbox.py POLICY.json [--connection-file FILE] -- COMMAND...", file=sys.stderr)
        return 2
    split = argv.index("--")
    options, command = argv[:split], argv[split + 1 :]
    with open(options[0], encoding="utf-8") as handle:
        policy = json.load(handle)
    connection_file = options[options.index("--connection-file") + 1] if "--connection-file" in options else None
    mode = policy.get("mode", "bwrap")
    if mode not in MODES:
        print(f"course grade sandbox: unknown mode {mode!r}", file=sys.stderr)
        return 3
    set_limits(policy.get("memory_bytes"), policy.get("file_size_bytes"))
    if policy.get("run_as") and os.geteuid() == 0:
        uid, gid = (int(v) for v in policy["run_as"])
        if connection_file:  # jupyter_client wrote it 0600 for us; the kernel user must read it
            os.chown(connection_file, uid, gid)
        _drop_privileges(uid, gid)
    if not _die_with_parent(policy.get("parent_pid")):
        return 1  # the runner died before we armed the death signal: do not start at all
    if mode == "bwrap":
        bwrap = bwrap_path()
        if bwrap is None:
            print(f"course grade sandbox: {refusal('bubblewrap (bwrap) is not installed here')}", file=sys.stderr)
            return 3
        seccomp = _seccomp_fd()
        command = (
            bwrap_arguments(policy, bwrap)
            + (["--seccomp", str(seccomp)] if seccomp is not None else [])
            + ["--", *command]
        )
    else:
        os.chdir(policy["work"])
        os.environ.clear()
        os.environ.update({name: str(value) for name, value in (policy.get("env") or {}).items()})
    os.execv(command[0], command)
    return 127  # not reached: execv replaces this process or raises


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
