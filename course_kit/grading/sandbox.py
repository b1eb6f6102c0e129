"""Confinement for student kernels: resource limits and a Landlock filesystem/network sandbox.

The grader starts every student kernel through this file used as a launcher::

    python .../course_kit/grading/sandbox.py POLICY.json -- python -m ipykernel_launcher -f CONN.json

The launcher reads the policy, then, in this order and before ``exec``-ing the kernel:

1. asks Linux to SIGKILL it when the grading runner dies (``PR_SET_PDEATHSIG``);
2. gives the kernel a filesystem view of its own (:func:`own_filesystem_view`): a mount
   namespace whose root holds only the paths it may read and its work folder, so no UNIX
   socket elsewhere on the machine (Docker, ssh agent, D-Bus) exists for it, and a private,
   size-limited ``/dev/shm`` that disappears with the kernel (needs root or user namespaces);
3. sets hard resource limits: private writable memory (``RLIMIT_DATA``), largest file it
   may write (``RLIMIT_FSIZE``), no core dumps. Hard limits cannot be raised again by a
   non-root process;
4. optionally switches to an unprivileged user (``run_as``, only when started as root);
5. sets ``no_new_privs`` and applies a **Landlock** ruleset (Linux 5.13+, unprivileged):
   read-only access to the Python installation, system libraries, the student library
   (``course_utils``) and explicitly allowed data; read-write access to the submission's working
   directory only. Everything else (the course repository with ``solutions/`` and the
   hidden checks, the gradebook, other students' working directories, the home
   directory) cannot be opened at all. With Landlock ABI 4+ TCP is restricted too: the
   kernel may bind only its own five ZeroMQ ports and may not connect anywhere (no
   Dask scheduler, no network). With ABI 6+ it can neither signal processes outside the
   sandbox nor reach abstract UNIX sockets outside it. Of ``/proc`` it may read its own
   folder and system-wide facts only, never another process's environment.

Landlock restrictions are inherited by every process the kernel starts and cannot be
lifted. The file is deliberately stdlib-only and is run by path (see ``runner.make_kernel_manager``
for why not with ``-m``).

Example:
    >>> landlock_abi() >= 0
    True
"""
from __future__ import annotations

import ctypes
import json
import os
import resource
import signal
import site
import sys

# --------------------------------------------------------------------------- Landlock ABI
_SYS_LANDLOCK_CREATE_RULESET = 444  # same number on every architecture (added after the unified table)
_SYS_LANDLOCK_ADD_RULE = 445
_SYS_LANDLOCK_RESTRICT_SELF = 446
_LANDLOCK_CREATE_RULESET_VERSION = 1
_LANDLOCK_RULE_PATH_BENEATH = 1
_LANDLOCK_RULE_NET_PORT = 2
_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_PDEATHSIG = 1

FS_EXECUTE = 1 << 0
FS_WRITE_FILE = 1 << 1
FS_READ_FILE = 1 << 2
FS_READ_DIR = 1 << 3
FS_REMOVE_DIR = 1 << 4
FS_REMOVE_FILE = 1 << 5
FS_MAKE_CHAR = 1 << 6
FS_MAKE_DIR = 1 << 7
FS_MAKE_REG = 1 << 8
FS_MAKE_SOCK = 1 << 9
FS_MAKE_FIFO = 1 << 10
FS_MAKE_BLOCK = 1 << 11
FS_MAKE_SYM = 1 << 12
FS_REFER = 1 << 13  # ABI 2
FS_TRUNCATE = 1 << 14  # ABI 3
FS_IOCTL_DEV = 1 << 15  # ABI 5
NET_BIND_TCP = 1 << 0  # ABI 4
NET_CONNECT_TCP = 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0  # ABI 6
SCOPE_SIGNAL = 1 << 1

FILE_RIGHTS = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV
READ_RIGHTS = FS_EXECUTE | FS_READ_FILE | FS_READ_DIR


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1  # the kernel struct is __attribute__((packed))
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


class _NetPortAttr(ctypes.Structure):
    _fields_ = [("allowed_access", ctypes.c_uint64), ("port", ctypes.c_uint64)]


class SandboxUnavailable(RuntimeError):
    """Landlock was required but this system cannot provide it."""


def _libc():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc


def landlock_abi() -> int:
    """The Landlock ABI version this kernel offers (0 = not available).

    Example:
        >>> isinstance(landlock_abi(), int)
        True
    """
    if not sys.platform.startswith("linux"):
        return 0
    try:
        version = _libc().syscall(ctypes.c_long(_SYS_LANDLOCK_CREATE_RULESET), None, ctypes.c_size_t(0),
                                  ctypes.c_uint32(_LANDLOCK_CREATE_RULESET_VERSION))
    except (OSError, AttributeError):
        return 0
    return max(int(version), 0)


def handled_fs_rights(abi: int) -> int:
    """Every filesystem right the given ABI knows about (all of them get restricted)."""
    rights = (1 << 13) - 1
    if abi >= 2:
        rights |= FS_REFER
    if abi >= 3:
        rights |= FS_TRUNCATE
    if abi >= 5:
        rights |= FS_IOCTL_DEV
    return rights


def describe(abi: int | None = None, restrict_network: bool = True) -> str:
    """One line naming the protection a kernel gets here, for the gradebook's ``sandbox`` column.

    Example:
        >>> describe(0)
        'none (Landlock unavailable: limits and scrubbed environment only)'
    """
    abi = landlock_abi() if abi is None else abi
    if abi <= 0:
        return "none (Landlock unavailable: limits and scrubbed environment only)"
    parts = ["filesystem"]
    if abi >= 4 and restrict_network:
        parts.append("tcp")
    if abi >= 6:
        parts.append("signals")
    return f"landlock-abi{abi} ({', '.join(parts)})"


def apply_landlock(read_only: list[str], read_write: list[str], bind_ports: list[int],
                   restrict_network: bool = True) -> int:
    """Confine this process (and everything it starts later) to the given paths; return the ABI used.

    ``read_only`` paths may be read and executed, ``read_write`` paths fully used; paths
    that do not exist are skipped. Raises :class:`SandboxUnavailable` when Landlock is missing.

    Example (in a throw-away child process, since it cannot be undone)::

        apply_landlock(["/usr", sys.prefix], ["/tmp/work"], bind_ports=[])
    """
    abi = landlock_abi()
    if abi <= 0:
        raise SandboxUnavailable("Landlock is not available on this kernel (needs Linux 5.13+ with "
                                 "landlock in the lsm= boot list); use --sandbox none to grade without it")
    libc = _libc()
    handled = handled_fs_rights(abi)
    attr = _RulesetAttr(handled, 0, 0)
    size = 8
    if abi >= 4 and restrict_network:
        attr.handled_access_net = NET_BIND_TCP | NET_CONNECT_TCP
        size = 16
    if abi >= 6:
        attr.scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL
        size = 24
    ruleset = libc.syscall(ctypes.c_long(_SYS_LANDLOCK_CREATE_RULESET), ctypes.byref(attr),
                           ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        raise SandboxUnavailable(f"landlock_create_ruleset failed: {os.strerror(ctypes.get_errno())}")
    try:
        for paths, rights in ((read_only, READ_RIGHTS), (read_write, handled)):
            for path in paths:
                _add_path_rule(libc, ruleset, path, rights & handled)
        if attr.handled_access_net:
            # Port 0 = any ephemeral port: ipykernel binds one for its subprocess-output pipe.
            # Binding is harmless; connecting (to the grader, Dask, the network) stays denied.
            for port in sorted(set(bind_ports) | {0}):
                rule = _NetPortAttr(NET_BIND_TCP, int(port))
                if libc.syscall(ctypes.c_long(_SYS_LANDLOCK_ADD_RULE), ctypes.c_long(ruleset),
                                ctypes.c_long(_LANDLOCK_RULE_NET_PORT), ctypes.byref(rule), ctypes.c_uint32(0)) != 0:
                    raise SandboxUnavailable(f"landlock_add_rule(port {port}) failed: {os.strerror(ctypes.get_errno())}")
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, ctypes.c_ulong(1), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0)) != 0:
            raise SandboxUnavailable(f"prctl(NO_NEW_PRIVS) failed: {os.strerror(ctypes.get_errno())}")
        if libc.syscall(ctypes.c_long(_SYS_LANDLOCK_RESTRICT_SELF), ctypes.c_long(ruleset), ctypes.c_uint32(0)) != 0:
            raise SandboxUnavailable(f"landlock_restrict_self failed: {os.strerror(ctypes.get_errno())}")
    finally:
        os.close(ruleset)
    return abi


def _add_path_rule(libc, ruleset: int, path: str, rights: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return  # a path that does not exist here needs no rule
    try:
        if not os.path.isdir(path):
            rights &= FILE_RIGHTS  # directory rights on a file rule are rejected with EINVAL
        rule = _PathBeneathAttr(rights, fd)
        if libc.syscall(ctypes.c_long(_SYS_LANDLOCK_ADD_RULE), ctypes.c_long(ruleset),
                        ctypes.c_long(_LANDLOCK_RULE_PATH_BENEATH), ctypes.byref(rule), ctypes.c_uint32(0)) != 0:
            raise SandboxUnavailable(f"landlock_add_rule({path}) failed: {os.strerror(ctypes.get_errno())}")
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- policy helpers
_ETC_ENTRIES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "timezone", "passwd", "group",
                "nsswitch.conf", "hosts", "host.conf", "resolv.conf", "gai.conf", "ssl", "ca-certificates",
                "pki", "fonts", "mime.types", "os-release", "matplotlibrc", "alternatives")
_DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")


def python_read_paths() -> list[str]:
    """The interpreter, its standard library and site-packages (what any kernel must read).

    Example:
        >>> sys.base_prefix in python_read_paths() or os.path.realpath(sys.base_prefix) in python_read_paths()
        True
    """
    paths = {sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix,
             os.path.dirname(os.path.realpath(sys.executable))}
    try:
        paths.update(site.getsitepackages())
    except AttributeError:  # very old virtualenvs lack it
        pass
    paths.update(os.path.realpath(p) for p in list(paths))
    return sorted(paths)


def readable_except(roots: list[str], hidden: list[str]) -> list[str]:
    """``roots`` as read rules that leave out every path in ``hidden`` (and what is below it).

    Landlock grants whole hierarchies, so a root that contains a hidden path is replaced by
    its entries, one level at a time down to the hidden path, which is skipped. This keeps
    the instructor kit unreadable even where it is installed inside site-packages.

    Example:
        >>> import tempfile
        >>> root = tempfile.mkdtemp()
        >>> for name in ("torch", "course_kit", "course_utils"):
        ...     os.mkdir(os.path.join(root, name))
        >>> sorted(os.path.basename(p) for p in readable_except([root], [os.path.join(root, "course_kit")]))
        ['course_utils', 'torch']
    """
    hidden_real = {os.path.realpath(h) for h in hidden}
    out: list[str] = []

    def add(path: str) -> None:
        real = os.path.realpath(path)
        if real in hidden_real:
            return
        inside = [h for h in hidden_real if h.startswith(real.rstrip(os.sep) + os.sep)]
        if not inside or not os.path.isdir(real):
            out.append(path)
            return
        for entry in sorted(os.listdir(real)):
            add(os.path.join(real, entry))

    for root in roots:
        add(root)
    return out


# System-wide /proc files that libraries read (CPU and memory facts); nothing per process.
_PROC_ENTRIES = ("cpuinfo", "meminfo", "stat", "loadavg", "uptime", "version", "filesystems", "sys")


def system_read_paths() -> list[str]:
    """System libraries, a small part of /etc and of /proc, and /sys (read-only).

    Of /proc only the kernel's own folder (``/proc/self``, resolved when the rules are made,
    which is the kernel's process: the launcher ``exec``s it) and system-wide facts: never
    another process's ``environ``, ``cmdline`` or memory, so the grader's environment (and a
    secret in it) stays out of reach even when grading as root.
    """
    paths = ["/usr", "/lib", "/lib32", "/lib64", "/libx32", "/bin", "/sbin", "/sys", "/proc/self",
             "/proc/thread-self"]
    paths += [f"/proc/{name}" for name in _PROC_ENTRIES]
    paths += [f"/etc/{name}" for name in _ETC_ENTRIES]
    return paths


def device_write_paths() -> list[str]:
    """Character devices every program expects, and /dev/shm (DataLoader workers share tensors there)."""
    return [*_DEVICES, "/dev/shm"]


# --------------------------------------------------------------------------- the kernel's own filesystem view
_CLONE_NEWNS, _CLONE_NEWUSER = 0x00020000, 0x10000000
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_BIND, _MS_REC, _MS_PRIVATE = 1, 2, 4, 1 << 12, 1 << 14, 1 << 18
_MNT_DETACH = 2
_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}


def _mount(libc, source, target, fstype, flags, options=None) -> None:
    encode = lambda text: text.encode() if isinstance(text, str) else text  # noqa: E731
    if libc.mount(encode(source), encode(target), encode(fstype), ctypes.c_ulong(flags), encode(options)) != 0:
        raise SandboxUnavailable(f"mount {target}: {os.strerror(ctypes.get_errno())}")


def _enter_mount_namespace(libc) -> None:
    """A mount namespace of our own (root; else a user namespace keeping our uid), not propagating back."""
    uid, gid = os.geteuid(), os.getegid()
    flags = _CLONE_NEWNS if uid == 0 else _CLONE_NEWUSER | _CLONE_NEWNS
    if libc.unshare(ctypes.c_int(flags)) != 0:
        raise SandboxUnavailable(f"unshare: {os.strerror(ctypes.get_errno())} (needs root or user namespaces)")
    if flags & _CLONE_NEWUSER:
        for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
            with open(f"/proc/self/{name}", "w") as handle:
                handle.write(text)
    _mount(libc, None, "/", None, _MS_REC | _MS_PRIVATE)


def own_filesystem_view(view_root: str, paths: list[str], shm_bytes: int) -> None:
    """Make ``paths`` (at their own places) the only files this process and its children can see.

    Why: Landlock decides which files may be *opened*, but (before Landlock ABI 8) not which
    UNIX sockets may be *connected to* by path, so a kernel could reach a Docker socket, an
    ssh agent or D-Bus anywhere on the machine. In a mount namespace of its own, the kernel
    gets a new root (a tmpfs at ``view_root``) holding bind mounts of exactly the paths its
    policy allows (the Python installation, system libraries, the student library, its work
    folder...) plus ``/proc`` and a few devices: a socket anywhere else does not exist for it.
    Its ``/dev/shm`` is a fresh, size-limited tmpfs, private to the submission and gone with
    its last process. Landlock still applies on top of this view.

    Needs root (as in containers and CI) or unprivileged user namespaces; raises
    :class:`SandboxUnavailable` when they are missing (nothing has changed then).
    """
    import platform

    pivot = _SYS_PIVOT_ROOT.get(platform.machine())
    if pivot is None:
        raise SandboxUnavailable(f"no pivot_root number known for {platform.machine()}")
    libc = _libc()
    _enter_mount_namespace(libc)
    os.makedirs(view_root, exist_ok=True)
    _mount(libc, "tmpfs", view_root, "tmpfs", _MS_NOSUID | _MS_NODEV, "mode=0755")
    # Outer folders first; a path inside one already bound comes along with it.
    # A path that is a symbolic link (/lib -> usr/lib on merged-/usr systems) is recreated as
    # that link, and what it points to is bound.
    for path in sorted(p for p in paths if os.path.islink(p)):
        target = view_root + path
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if not os.path.lexists(target):
            os.symlink(os.readlink(path), target)
    bound: list[str] = ["/proc", "/dev/shm"]  # mounted below: all of /proc (Landlock limits it), a new /dev/shm
    for path in sorted({os.path.realpath(p) for p in paths if os.path.lexists(p)}, key=len):
        if any(path == b or path.startswith(b.rstrip(os.sep) + os.sep) for b in bound):
            continue
        target = view_root + path
        if os.path.isdir(path):
            os.makedirs(target, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            open(target, "a").close()
        _mount(libc, path, target, None, _MS_BIND | _MS_REC)
        bound.append(path)
    for name in ("proc", "dev/shm"):
        os.makedirs(f"{view_root}/{name}", exist_ok=True)
    _mount(libc, "/proc", f"{view_root}/proc", None, _MS_BIND | _MS_REC)
    _mount(libc, "tmpfs", f"{view_root}/dev/shm", "tmpfs", _MS_NOSUID | _MS_NODEV,
           f"size={int(shm_bytes)},mode=1777")
    os.makedirs(f"{view_root}/.old-root", exist_ok=True)
    cwd = os.getcwd()
    if libc.syscall(ctypes.c_long(pivot), view_root.encode(), f"{view_root}/.old-root".encode()) != 0:
        raise SandboxUnavailable(f"pivot_root: {os.strerror(ctypes.get_errno())}")
    if libc.umount2(b"/.old-root", ctypes.c_int(_MNT_DETACH)) != 0:
        raise SandboxUnavailable(f"umount old root: {os.strerror(ctypes.get_errno())}")
    os.rmdir("/.old-root")
    os.chdir(cwd)


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


def connection_ports(connection_file: str) -> list[int]:
    """The five ZeroMQ ports a kernel binds, read from its connection file."""
    with open(connection_file, encoding="utf-8") as handle:
        info = json.load(handle)
    return [int(info[key]) for key in ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")]


def _drop_privileges(uid: int, gid: int) -> None:
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)


def main(argv: list[str]) -> int:
    """Launcher entry point: ``sandbox.py POLICY.json [--connection-file F] -- COMMAND...``."""
    if len(argv) < 3 or "--" not in argv:
        print("usage: sandbox.py POLICY.json [--connection-file FILE] -- COMMAND...", file=sys.stderr)
        return 2
    split = argv.index("--")
    options, command = argv[:split], argv[split + 1:]
    with open(options[0], encoding="utf-8") as handle:
        policy = json.load(handle)
    connection_file = options[options.index("--connection-file") + 1] if "--connection-file" in options else None

    if sys.platform.startswith("linux"):
        libc = _libc()
        libc.prctl(_PR_SET_PDEATHSIG, ctypes.c_ulong(signal.SIGKILL), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0))
        if os.getppid() != policy.get("parent_pid", os.getppid()):
            return 1  # the runner died before we armed the death signal: do not start at all
    if policy.get("view_root") and sys.platform.startswith("linux") and policy.get("landlock", "auto") != "off":
        shm_bytes = min(int(policy.get("memory_bytes") or 1024**3), 1024**3)
        try:
            own_filesystem_view(policy["view_root"], policy.get("read_only", []) + policy.get("read_write", []),
                                shm_bytes)
        except SandboxUnavailable as error:
            print(f"course grade sandbox: no filesystem view of its own ({error}); UNIX sockets and /dev/shm "
                  "are shared with the machine", file=sys.stderr)
            if policy.get("landlock") == "required":
                return 3
    set_limits(policy.get("memory_bytes"), policy.get("file_size_bytes"))
    ports = connection_ports(connection_file) if connection_file else []
    if policy.get("run_as"):
        uid, gid = (int(v) for v in policy["run_as"])
        if connection_file:  # jupyter_client wrote it 0600 for us; the kernel user must read it
            os.chown(connection_file, uid, gid)
        _drop_privileges(uid, gid)
    mode = policy.get("landlock", "auto")
    if mode != "off":
        try:
            apply_landlock(policy.get("read_only", []), policy.get("read_write", []), ports,
                           restrict_network=policy.get("restrict_network", True))
        except SandboxUnavailable as error:
            if mode == "required":
                print(f"course grade sandbox: {error}", file=sys.stderr)
                return 3
    os.execv(command[0], command)
    return 127  # not reached: execv replaces this process or raises


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
