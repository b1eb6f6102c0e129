"""The in-kernel half of grading: runs the hidden checks in the student's kernel and reports them privately.

The runner never imports this module in the kernel (student code could have replaced it
in ``sys.modules``). It sends the *source* of this file, of
:mod:`course_kit.grading.checks` and of the kernel part of the hidden checks in one cell,
executed without touching the student's history::

    exec(compile(HARNESS_SOURCE, "<course-grading>", "exec"),
         {"__name__": "__course_grading__", "USER_NS": globals(), "ARGS": {...}})

and this file's last line calls :func:`run`.

How results get out, and why student code cannot rewrite them
--------------------------------------------------------------
Nothing goes through ``sys.stdout``, ``print``, files or the Jupyter protocol, which student
code may have replaced. The runner opened two pipes *before the kernel started*: the kernel
inherits the write end of a **records pipe** and the read end of a **key pipe**. The harness

1. verifies the tools it reports with (``os.write``/``os.read``/``os.fstat`` and HMAC must be
   the interpreter's own built-in functions, the two descriptors must be the pipes the runner
   made, no trace or profile function may be installed) and gives up with a ``tampered``
   record if they are not;
2. runs every check, keeping each result as plain data (:func:`encode`, not the patchable
   ``json`` module); student code runs only in this step;
3. only then asks for the key (``ready``), reads it from the key pipe, and writes every
   record as ``<sequence> <HMAC-SHA256> <json>``.

Before step 1 it writes ``started``: a check phase that times out without it means the
kernel could not run a cell any more (the notebook broke it), not that a check was slow.

The runner treats as tampering: any byte on the records pipe before the check phase, a
record with a wrong signature or out of sequence, a duplicate, and a key that someone else
read first (the pipe hands it out once). Forging a pass therefore needs the key, which does
not exist while student code runs; see docs/grading.md for what remains possible.

Records, in order: ``{"kind": "parameters", "values": {...}, "resolved": [...]}`` (the
injected parameters' final values, and what ``load_parameters`` resolved), one
``{"kind": "check", "name", "ok", "observation" | "message"}`` per check, then
``{"kind": "done"}``; ``{"kind": "load-error"}`` or ``{"kind": "tampered", "problems"}``
instead when the checks cannot run.

Example:
    >>> encode({"a": [1, 2.5, None, True, "x"]})
    '{"a":[1,2.5,null,true,"x"]}'
"""
from __future__ import annotations

import signal
import sys
import types

API_MODULE = "course_kit.grading.checks"
# Classes read off literals: student code can rebind names in builtins, not these.
_BUILTIN_FUNCTION = [].append.__class__
_TYPE = ().__class__.__class__


def _quote(text):
    out = ['"']
    for char in str.__iter__(text):
        code = ord(char)
        if char == '"' or char == "\\":
            out.append("\\" + char)
        elif 0x20 <= code < 0x7F:
            out.append(char)
        elif code > 0xFFFF:  # JSON needs a UTF-16 surrogate pair
            code -= 0x10000
            out.append("\\u%04x\\u%04x" % (0xD800 + (code >> 10), 0xDC00 + (code & 0x3FF)))
        else:
            out.append("\\u%04x" % code)
    out.append('"')
    return "".join(out)


def encode(value):
    """JSON text for plain data (exact built-in types only), without the ``json`` module.

    Example:
        >>> encode([float("nan"), 1e300, -3])
        '[NaN,1e+300,-3]'
    """
    kind = type(value)
    if value is None:
        return "null"
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return int.__repr__(value)
    if kind is float:
        if value != value:
            return "NaN"
        if value in (float("inf"), float("-inf")):
            return "Infinity" if value > 0 else "-Infinity"
        return float.__repr__(value)
    if kind is str:
        return _quote(value)
    if kind is list:
        return "[" + ",".join([encode(item) for item in list.__iter__(value)]) + "]"
    if kind is dict:
        return "{" + ",".join([_quote(key) + ":" + encode(item) for key, item in dict.items(value)]) + "}"
    raise TypeError(f"cannot encode {kind.__name__}")


class _CheckTimeout(BaseException):
    """Raised in the kernel's main thread when one check runs past its own time limit."""


def _on_alarm(signum, frame):
    raise _CheckTimeout()


def _authored(error, filename):
    """True when ``error`` was raised by the hidden checks' own code or the checks API (not by code they called)."""
    traceback = error.__traceback__
    last = None
    while traceback is not None:
        last, traceback = traceback, traceback.tb_next
    return last is not None and last.tb_frame.f_code.co_filename in (filename, "<" + API_MODULE + ">")


def _message(error, api, filename):
    """A student-facing message for an exception raised while a check ran.

    Only text the check's author wrote travels: a ``CheckFailed`` or ``assert`` raised in the
    hidden checks' own code. For anything raised elsewhere (the student's functions, the
    libraries they call) only the exception's type is reported, never its message: student
    code can read the check's inputs and code from the call stack, and a message is a way
    to carry them out.
    """
    if isinstance(error, SystemExit):
        return "your code called sys.exit() while being checked"
    if _authored(error, filename) and isinstance(error, (api.CheckFailed, AssertionError)):
        try:
            text = BaseException.__str__(error)
        except Exception:
            text = ""
        text = text if len(text) <= 300 else text[:300] + "..."
        if isinstance(error, api.CheckFailed):
            return text or "failed"
        return text or "a hidden test's condition was not met"
    return api.exception_summary(error)


def _run_one(declared, ns, api, filename):
    """Run one check with its own alarm; return its record (never raises, except Ctrl-C)."""
    record = {"kind": "check", "name": declared.name}
    armed = False
    try:
        previous = signal.signal(signal.SIGALRM, _on_alarm)
        signal.setitimer(signal.ITIMER_REAL, float(declared.timeout))
        armed = True
    except (ValueError, OSError):  # not the main thread: the runner's check budget still applies
        previous = None
    try:
        observation = api.plain(declared.function(ns))
        record["ok"] = True
        record["observation"] = observation
    except KeyboardInterrupt:
        raise  # the runner interrupts the whole check phase: stop
    except _CheckTimeout:
        record["ok"] = False
        record["message"] = f"took longer than {declared.timeout:g} s"
    except BaseException as error:  # noqa: BLE001 - a failing check must never stop the others
        record["ok"] = False
        record["message"] = _message(error, api, filename)
    finally:
        if armed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous if previous is not None else signal.SIG_DFL)
    try:
        encode(record)
    except (TypeError, RecursionError):
        record = {"kind": "check", "name": declared.name, "ok": False, "message": "the result could not be reported"}
    return record


class _Channel:
    """The records pipe and the key pipe, with the built-in functions that use them, checked first."""

    def __init__(self, args):
        self.problems = []
        posix = sys.modules.get("posix")
        hashes = sys.modules.get("_hashlib")
        self.write = self._builtin(posix, "write")
        self.read = self._builtin(posix, "read")
        self.fstat = self._builtin(posix, "fstat")
        self.hmac = self._builtin(hashes, "hmac_digest")
        self.records_fd, self.key_fd = args["records_fd"], args["key_fd"]
        if self.fstat is not None:
            for fd, expected, name in ((self.records_fd, args["records_inode"], "records"),
                                       (self.key_fd, args["key_inode"], "key")):
                try:
                    if self.fstat(fd).st_ino != expected:
                        self.problems.append(f"the {name} pipe was replaced")
                except OSError:
                    self.problems.append(f"the {name} pipe was closed")
        if sys.gettrace() is not None or sys.getprofile() is not None:
            self.problems.append("a trace or profile function is installed")

    def _builtin(self, module, name):
        function = getattr(module, name, None) if module is not None else None
        owner = getattr(function, "__self__", None)
        if _TYPE(function) is not _BUILTIN_FUNCTION or getattr(owner, "__name__", None) not in ("posix", "_hashlib"):
            self.problems.append(f"{name} is not the interpreter's own")
            return None
        return function

    def send(self, line):
        data = line.encode("utf-8")
        while data:
            written = self.write(self.records_fd, data)
            data = data[written:]

    def receive_key(self, cell_half):
        """Ask for the key's second half and make the key; ``None`` when someone else read it first."""
        self.send("ready\n")
        half = b""
        while not half.endswith(b"\n"):
            chunk = self.read(self.key_fd, 256)
            if not chunk:
                return None
            half += chunk
        return self.hmac(bytes.fromhex(cell_half), bytes.fromhex(half.decode("ascii").strip()), "sha256")

    def sign_and_send(self, key, records):
        for sequence, record in enumerate(records):
            body = encode(record)
            mac = self.hmac(key, f"{sequence} {body}".encode("utf-8"), "sha256").hex()
            self.send(f"{sequence} {mac} {body}\n")


def _parameters_record(args, user_ns, api):
    values = {}
    for name in args["parameter_names"]:
        if name not in user_ns:
            values[name] = {"missing": True}
            continue
        try:
            values[name] = {"value": api.plain(user_ns[name])}
        except BaseException:  # noqa: BLE001 - a parameter replaced by an odd object
            values[name] = {"unreadable": True}
    # What cu.load_parameters resolved, each time it ran (the student library records it).
    resolved = []
    library = sys.modules.get("course_utils.notebook.parameters")
    try:
        resolved = api.plain(list(getattr(library, "RESOLVED", [])))
    except BaseException:  # noqa: BLE001
        resolved = [{"unreadable": True}]
    return {"kind": "parameters", "values": values, "resolved": resolved}


def run(args, user_ns):
    """Check the reporting channel, run every hidden check, then sign and send the records."""
    channel = _Channel(args)
    if channel.write is None or channel.read is None:
        return  # nothing trustworthy to report with: the runner sees no record and says so
    try:
        channel.send("started\n")  # the kernel could still run a cell (a later timeout is the checks')
    except OSError:
        pass  # a closed or replaced pipe: already one of channel.problems
    api = types.ModuleType(API_MODULE)
    exec(compile(args["api_source"], "<" + API_MODULE + ">", "exec"), api.__dict__)
    filename = args["checks_filename"]
    records = []
    if channel.problems:
        records.append({"kind": "tampered", "problems": list(channel.problems)})
    else:
        records.append(_parameters_record(args, user_ns, api))
        saved = sys.modules.get(API_MODULE)
        sys.modules[API_MODULE] = api  # what `from course_kit.grading.checks import ...` gets
        try:
            declared = api.load_checks(args["checks_source"], filename)
        except BaseException as error:  # noqa: BLE001
            declared = None
            records.append({"kind": "load-error", "message": api.exception_summary(error)})
        finally:
            if saved is None:
                sys.modules.pop(API_MODULE, None)
            else:
                sys.modules[API_MODULE] = saved
        if declared is not None:
            ns = api.Namespace(user_ns)
            for item in declared:
                records.append(_run_one(item, ns, api, filename))
            records.append({"kind": "done"})
    if channel.hmac is None:
        return
    # Student code has finished running: only now does a key exist in this process.
    key = channel.receive_key(args["key_half"])
    if key is not None:
        channel.sign_and_send(key, records)


if __name__ == "__course_grading__":  # executed by the runner's check cell
    run(ARGS, USER_NS)  # noqa: F821 - both names are provided by the cell's exec globals
