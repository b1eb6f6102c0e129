"""The in-kernel half of grading: runs the hidden checks in the student's kernel.

The runner never imports this module in the kernel (student code could have replaced it
in ``sys.modules``). It sends the *source* of this file, of
:mod:`course_kit.grading.checks` and of the kernel part of the hidden checks in one
cell, executed without touching the student's history::

    exec(compile(HARNESS_SOURCE, "<course-grading>", "exec"),
         {"__name__": "__course_grading__", "USER_NS": globals(), "ARGS": {...}})

and this file's last line calls :func:`run`. Every result leaves the kernel as one
stdout line ``<RS>course-check <token> <json>``, where ``token`` is a random value made
by the runner for this run only, so text that student code printed earlier or prints
from a background thread cannot be mistaken for a record (each record is one write
that starts with a newline, so such text cannot corrupt it either). JSON is produced by
:func:`encode` rather than the ``json`` module, which student code could have patched.

Records, in order: ``{"kind": "parameters", "values": {...}}`` (the injected parameters'
final values), then one ``{"kind": "check", "name", "ok", "observation" | "message"}`` per
check, then ``{"kind": "done"}``; ``{"kind": "load-error", "message"}`` when the hidden
checks cannot even be loaded.

Example:
    >>> encode({"a": [1, 2.5, None, True, "x"]})
    '{"a":[1,2.5,null,true,"x"]}'
"""
from __future__ import annotations

import signal
import sys
import types

RECORD_PREFIX = "\x1ecourse-check "
API_MODULE = "course_kit.grading.checks"


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


def _message(error, api):
    """A student-facing message for an exception raised while a check ran."""
    try:
        text = BaseException.__str__(error)
    except Exception:
        text = ""
    text = text if len(text) <= 400 else text[:400] + "..."
    if isinstance(error, api.CheckFailed):
        return text or "failed"
    if isinstance(error, AssertionError):
        return text or "a hidden test's condition was not met"
    if isinstance(error, SystemExit):
        return "your code called sys.exit() while being checked"
    try:
        name = str.__str__(type(error).__name__)
    except TypeError:
        name = "Exception"
    return f"{name}: {text}" if text else name


def _run_one(declared, ns, api):
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
        record["message"] = _message(error, api)
    finally:
        if armed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous if previous is not None else signal.SIG_DFL)
    try:
        encode(record)
    except (TypeError, RecursionError):
        record = {"kind": "check", "name": declared.name, "ok": False, "message": "the result could not be reported"}
    return record


def run(args, user_ns):
    """Report the injected parameters, load the hidden checks into a fresh module, run them all."""
    stream = sys.stdout
    token = args["token"]

    def emit(record):
        # One write, starting with a newline: a student thread that printed half a line just
        # before cannot glue its text in front of the record (print() writes text and "\n"
        # separately; a single write is never split).
        stream.write("\n" + RECORD_PREFIX + token + " " + encode(record) + "\n")
        stream.flush()

    api = types.ModuleType(API_MODULE)
    exec(compile(args["api_source"], "<" + API_MODULE + ">", "exec"), api.__dict__)

    values = {}
    for name in args["parameter_names"]:
        if name not in user_ns:
            values[name] = {"missing": True}
            continue
        try:
            values[name] = {"value": api.plain(user_ns[name])}
        except BaseException:  # noqa: BLE001 - a parameter replaced by an odd object
            values[name] = {"unreadable": True}
    emit({"kind": "parameters", "values": values})

    saved = sys.modules.get(API_MODULE)
    sys.modules[API_MODULE] = api  # what `from course_kit.grading.checks import ...` gets
    try:
        declared = api.load_checks(args["checks_source"], "<hidden checks>")
    except BaseException as error:  # noqa: BLE001
        emit({"kind": "load-error", "message": _message(error, api)})
        return
    finally:
        if saved is None:
            sys.modules.pop(API_MODULE, None)
        else:
            sys.modules[API_MODULE] = saved

    ns = api.Namespace(user_ns)
    for item in declared:
        emit(_run_one(item, ns, api))
    emit({"kind": "done"})


if __name__ == "__course_grading__":  # executed by the runner's check cell
    run(ARGS, USER_NS)  # noqa: F821 - both names are provided by the cell's exec globals
