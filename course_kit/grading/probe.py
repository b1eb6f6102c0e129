"""The kernel half of grading: calls the student's code on the grader's inputs and writes down what came back.

Nothing in this file is trusted, and nothing here needs to be. The runner sends its source,
the *probes* (the hidden checks with every ``expect=``, ``inputs=`` and ``@grader_only`` part
removed, see :func:`course_kit.grading.checks.kernel_source`) and each check's inputs, drawn
in the grader for this submission only, in one cell that never enters the executed notebook::

    exec(compile(PROBE_SOURCE, "<course-grading>", "exec"),
         {"__name__": "__course_grading__", "USER_NS": globals(), "ARGS": {...}})

Each probe calls the student's functions on those inputs and returns plain data (numbers,
text, lists, dicts; arrays and tensors become lists). The grader computes what a correct
answer gives for the same inputs in its own process and compares there. Expected values,
reference implementations and scores never enter this kernel, so a notebook that rewrites
what this file reports gains nothing unless it writes the right answer for inputs it saw
only now: as hard as solving the exercise.

The report is a file of lines in the kernel's work folder (its name is chosen by the
runner for this run): ``started``, one JSON record per check as it finishes, then ``done``.
A record is ``{"name", "ok": true, "observation"}`` or ``{"name", "ok": false, "failure",
"detail"}``, where ``failure`` is one of :data:`FAILURES`; the grader turns it into the
student's message from its own vocabulary (see ``checks.failure_message``), so nothing a
student object says reaches the feedback.

Example:
    >>> encode({"a": [1, 2.5, None, True, "x"]})
    '{"a":[1,2.5,null,true,"x"]}'
    >>> plain((1, 2.5, "x"))
    [1, 2.5, 'x']
"""

from __future__ import annotations

import os
import signal
import sys
import types

API_MODULE = "course_kit.grading.checks"
MAX_PLAIN_ITEMS = 200_000
MAX_TEXT_CHARS = 10_000
MAX_DEPTH = 40
# What can go wrong in a probe; the grader words each one itself.
FAILURES = (
    "undefined",
    "not-callable",
    "raised",
    "not-plain",
    "too-large",
    "too-deep",
    "timeout",
    "exit",
    "check-failed",
    "unreportable",
)


class CheckFailed(Exception):
    """A probe's own failure; its message is shown only when it is a text the checks file contains."""


class _Failure(BaseException):
    """A structured failure: ``code`` from :data:`FAILURES`, ``detail`` a name or text for the grader to vet."""

    def __init__(self, code, detail=""):
        super().__init__(code)
        self.code, self.detail = code, detail


class _CheckTimeout(BaseException):
    """Raised in the kernel's main thread when one probe runs past its own time limit."""


def _on_alarm(signum, frame):
    raise _CheckTimeout()


def _type_name(value):
    try:
        return str.__str__(type(value).__name__)[:60]
    except Exception:  # noqa: BLE001 - a type whose name is not text
        return ""


class Namespace:
    """The student's namespace as probes see it: missing names and raising calls become structured failures.

    Example:
        >>> ns = Namespace({"x": 3, "double": lambda v: 2 * v})
        >>> ns["x"], ns.call("double", 4), "y" in ns
        (3, 8, False)
    """

    def __init__(self, mapping):
        self._mapping = mapping

    def __getitem__(self, name):
        if name not in self._mapping:
            raise _Failure("undefined", name)
        return self._mapping[name]

    def __contains__(self, name):
        return name in self._mapping

    def get(self, name, default=None):
        return self._mapping.get(name, default)

    def call(self, name, *args, **kwargs):
        """Call the student's function ``name``; an exception it raises becomes a ``raised`` failure."""
        function = self[name]
        if not callable(function):
            raise _Failure("not-callable", name)
        try:
            return function(*args, **kwargs)
        except Exception as error:  # the student's bug (a CheckFailed of theirs included)
            raise _Failure("raised", [name, _type_name(error)]) from None


# --------------------------------------------------------------------------- plain data
def plain(value, _depth=0, _budget=None):
    """Copy ``value`` as plain built-in data through base-class methods; anything else is a failure.

    Exact ``bool``/``int``/``float``/``str``/``None`` pass; subclasses are copied through the
    base type's own methods (a subclass's overrides never run); tuples become lists, sets
    sorted lists, dicts keep text keys; numpy arrays and torch tensors become lists.

    Example:
        >>> plain({"a": (1, 2), "b": {3}})
        {'a': [1, 2], 'b': [3]}
    """
    budget = [MAX_PLAIN_ITEMS] if _budget is None else _budget
    budget[0] -= 1
    if budget[0] < 0:
        raise _Failure("too-large")
    if _depth > MAX_DEPTH:
        raise _Failure("too-deep")
    kind = type(value)
    if value is None or kind is bool or kind is int or kind is float:
        return value
    if kind is str:
        if str.__len__(value) > MAX_TEXT_CHARS:
            raise _Failure("too-large")
        return value
    try:
        return _convert(value, _depth, budget)
    except (TypeError, ValueError, AttributeError, OverflowError):
        # A base-class method refused the object: it only pretended to be that type.
        raise _Failure("not-plain") from None


def _convert(value, depth, budget):
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, str):
        return plain(str.__str__(value), depth + 1, budget)
    if isinstance(value, (list, tuple)):
        items = list.__iter__(value) if isinstance(value, list) else tuple.__iter__(value)
        return [plain(item, depth + 1, budget) for item in items]
    if isinstance(value, (set, frozenset)):
        items = set.__iter__(value) if isinstance(value, set) else frozenset.__iter__(value)
        return sorted((plain(item, depth + 1, budget) for item in items), key=lambda v: (_type_name(v), repr(v)))
    if isinstance(value, dict):
        pairs = [(plain(k, depth + 1, budget), plain(v, depth + 1, budget)) for k, v in dict.items(value)]
        if all(type(k) is str for k, _ in pairs):
            return dict(pairs)
        return [[k, v] for k, v in pairs]
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        if isinstance(value, numpy.ndarray):
            if numpy.ndarray.size.__get__(value) > budget[0]:
                raise _Failure("too-large")
            return plain(numpy.ndarray.tolist(value), depth + 1, budget)
        if isinstance(value, numpy.generic):
            return plain(numpy.generic.item(value), depth + 1, budget)
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        base = getattr(torch._C, "TensorBase", None) or torch._C._TensorBase
        if base.numel(value) > budget[0]:
            raise _Failure("too-large")
        return plain(base.tolist(base.cpu(base.detach(value))), depth + 1, budget)
    raise _Failure("not-plain")


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
            out.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}")
        else:
            out.append(f"\\u{code:04x}")
    out.append('"')
    return "".join(out)


def encode(value):
    """JSON text for plain data, without the ``json`` module (student code may have patched it).

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


# --------------------------------------------------------------------------- running the probes
def _failure_record(name, error):
    if isinstance(error, _Failure):
        return {"name": name, "ok": False, "failure": error.code, "detail": error.detail}
    if isinstance(error, _CheckTimeout):
        return {"name": name, "ok": False, "failure": "timeout", "detail": ""}
    if isinstance(error, SystemExit):
        return {"name": name, "ok": False, "failure": "exit", "detail": ""}
    if isinstance(error, (CheckFailed, AssertionError)):
        try:
            text = BaseException.__str__(error)[:300]
        except Exception:  # noqa: BLE001
            text = ""
        return {"name": name, "ok": False, "failure": "check-failed", "detail": text}
    # Anything else was raised by code the probe called (the student's objects, libraries).
    return {"name": name, "ok": False, "failure": "raised", "detail": ["", _type_name(error)]}


def run_probe(function, name, ns, inputs, has_inputs, timeout):
    """Run one probe under its own alarm; return its record (never raises, except Ctrl-C)."""
    armed, previous = False, None
    try:
        previous = signal.signal(signal.SIGALRM, _on_alarm)
        signal.setitimer(signal.ITIMER_REAL, float(timeout))
        armed = True
    except (ValueError, OSError):  # not the main thread: the runner's check budget still applies
        pass
    try:
        observation = function(ns, inputs) if has_inputs else function(ns)
        record = {"name": name, "ok": True, "observation": plain(observation)}
    except KeyboardInterrupt:
        raise  # the runner interrupts the whole check phase: stop
    except BaseException as error:  # noqa: BLE001 - a failing probe must never stop the others
        record = _failure_record(name, error)
    finally:
        if armed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous if previous is not None else signal.SIG_DFL)
    try:
        encode(record)
    except (TypeError, RecursionError):
        record = {"name": name, "ok": False, "failure": "unreportable", "detail": ""}
    return record


def _api_module():
    """What ``from course_kit.grading.checks import ...`` gives the probes in the kernel.

    ``check`` only marks a function as a probe; matchers and the other grader-side names
    were removed from the probes' source, so any other name is an inert placeholder.
    """
    api = types.ModuleType(API_MODULE)

    def check(title=None, **options):
        if callable(title) and not isinstance(title, str):
            title.__course_probe__ = True
            return title

        def decorate(function):
            function.__course_probe__ = True
            return function

        return decorate

    api.check = check
    api.grader_only = lambda function: function
    api.CheckFailed = CheckFailed
    api.__dict__["__getattr__"] = lambda name: lambda *args, **kwargs: None
    return api


def _parameters_record(names, user_ns):
    """The injected parameters' final values and what ``cu.load_parameters`` resolved: reported, not scored."""
    values = {}
    for name in names:
        try:
            values[name] = plain(user_ns[name]) if name in user_ns else None
        except BaseException:  # noqa: BLE001 - a parameter replaced by an odd object
            values[name] = None
    library = sys.modules.get("course_utils.notebook.parameters")
    try:
        resolved = plain(list(getattr(library, "RESOLVED", [])))
    except BaseException:  # noqa: BLE001
        resolved = []
    return {"name": "", "kind": "parameters", "values": values, "resolved": resolved}


def run(args, user_ns):
    """Load the probes, run each on its inputs, and write every record to the report file as it finishes."""
    fd = os.open(args["report"], os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)

    def write(line):
        data = (line + "\n").encode("utf-8")
        while data:
            data = data[os.write(fd, data) :]

    try:
        write("started")
        write(encode(_parameters_record(args["parameter_names"], user_ns)))
        api = _api_module()
        saved = sys.modules.get(API_MODULE)
        sys.modules[API_MODULE] = api
        try:
            module = types.ModuleType("course_probes")
            exec(compile(args["probes_source"], args["probes_filename"], "exec"), module.__dict__)
        finally:
            if saved is None:
                sys.modules.pop(API_MODULE, None)
            else:
                sys.modules[API_MODULE] = saved
        ns = Namespace(user_ns)
        for item in args["checks"]:
            function = module.__dict__.get(item["name"])
            write(
                encode(run_probe(function, item["name"], ns, item.get("inputs"), item["has_inputs"], item["timeout"]))
            )
        write("done")
    finally:
        os.close(fd)


if __name__ == "__course_grading__":  # executed by the runner's check cell
    run(ARGS, USER_NS)  # noqa: F821 - both names are provided by the cell's exec globals
