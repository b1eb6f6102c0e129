"""Hidden checks: how instructors write them, and how the grader judges them outside the student's kernel.

Hidden checks live in ``solutions/hidden_checks/<NAME>.py`` (never released to students).
A check has three parts, and only the first ever enters the student's kernel:

* the **probe**, the decorated function: it runs in the kernel after the student's cells,
  calls the student's code on the check's inputs and returns what came back as plain data
  (numbers, text, lists, dicts; arrays and tensors become lists);
* ``inputs=``, a function ``(rng, params) -> plain data`` run in the grader, once per
  submission, with a ``random.Random`` the kernel never sees: the probe gets only its result;
* ``expect=``, a matcher, or a function ``(inputs, params) -> matcher`` run in the grader:
  what a correct answer gives for those inputs, from reference code marked
  ``@grader_only``. The grader compares the probe's observation with it::

    from course_kit.grading.checks import check, equal, grader_only

    @grader_only
    def reference_squares(n):
        return [i * i for i in range(n)]

    @check("squares() on an input drawn for this submission", points=2, exercise="squares",
           inputs=lambda rng, params: {"n": rng.randint(5, 30)},
           expect=lambda inputs, params: equal(reference_squares(inputs["n"])))
    def squares_hidden(ns, inputs):
        return ns.call("squares", inputs["n"])

Why: student code runs first in the same interpreter and can rewrite anything in it,
including what the probe reports. Nothing there is trusted: the expected values are never
in the kernel, and inputs drawn for each submission mean that forging an observation needs
the right answer for inputs seen only at check time, which is solving the exercise. Design
every check so: observe values that depend on the inputs (the subset itself, the outputs, the
updated weights), not yes/no facts a forger could claim (``{"returns_model": True}``).

Feedback is built here, from the grader's own words: a check's title, the kind of mismatch
("got a list of 10 items, expected 9"), never a value or a name a student object produced.
A probe's failure travels as a code (:data:`course_kit.grading.probe.FAILURES`); a name it
mentions (``ns["acc"]`` undefined, ``ns.call("f")`` raised) or a ``CheckFailed`` message is
shown only when it is a text of the checks file itself, and an exception's type only when it
is one of Python's own (:data:`EXCEPTION_NAMES`).

Rules of the API:

* ``@check(title, points=1, exercise=None, inputs=None, expect=None, timeout=30, reveal=False)``:
  ``title`` is shown to the student (default: the docstring's first line, else the function
  name); the gradebook column is ``check:<function name>``. ``exercise`` names the exercise
  cell (metadata ``course.exercise``) the check grades. ``timeout`` bounds the probe.
  The probe is ``def probe(ns)``, or ``def probe(ns, inputs)`` when the check has ``inputs``.
* Without ``expect``, a check passes when the probe returns anything but ``False`` without
  raising: decided in the student's process, so worth nothing against a forger; use it only
  for 0-point, informational checks.
* ``ns["name"]``, ``ns.get("name", default)``, ``"name" in ns``, ``ns.call("name", *args)``.
* ``raise CheckFailed("message")`` (or ``assert cond, "message"``) in a probe: the message
  must be a literal text of the checks file, or the student sees "failed".
* helpers only the grader needs go into functions decorated with ``@grader_only``, and
  constants only they use are removed too (:func:`kernel_source`).
* ``METRICS = ["gap_10%", ...]`` (optional, module level) names the results-record keys
  that become the gradebook's ``metric:<key>`` columns (:func:`metric_names`).

Example:
    >>> equal([1, 2]).judge([1, 2])
    (True, 'correct')
    >>> equal([1, 2]).judge([1, 2, 3])
    (False, 'got a list of 3 items, expected 2')
"""

from __future__ import annotations

import ast
import math
import random
import types

from .probe import MAX_PLAIN_ITEMS, CheckFailed, Namespace, _Failure, encode  # noqa: F401 - re-exported
from .probe import plain as _probe_plain

CHECK_ATTRIBUTE = "__course_check__"
DEFAULT_CHECK_TIMEOUT = 30.0
# Exception types whose names feedback may repeat: Python's own. Any other name a probe
# reports (a student's class, say) becomes "an exception".
EXCEPTION_NAMES = frozenset(
    {
        "ArithmeticError",
        "AssertionError",
        "AttributeError",
        "EOFError",
        "FileNotFoundError",
        "FloatingPointError",
        "ImportError",
        "IndexError",
        "KeyError",
        "LookupError",
        "MemoryError",
        "ModuleNotFoundError",
        "NameError",
        "NotImplementedError",
        "OSError",
        "OverflowError",
        "PermissionError",
        "RecursionError",
        "RuntimeError",
        "StopIteration",
        "TypeError",
        "UnboundLocalError",
        "UnicodeError",
        "ValueError",
        "ZeroDivisionError",
    }
)


class ExpectationError(RuntimeError):
    """An ``inputs=`` or ``expect=`` function failed in the grader: the instructor's bug, not the student's."""


class Check:
    """The declaration a :func:`check` decorator attaches to its function."""

    def __init__(self, function, title, points, exercise, expect, timeout, inputs=None, reveal=False):
        self.function = function
        self.name = function.__name__
        doc = (function.__doc__ or "").strip().splitlines()
        self.title = title or (doc[0].strip() if doc else self.name)
        self.points = points
        self.exercise = exercise
        self.expect = expect
        self.timeout = timeout
        self.inputs = inputs
        self.reveal = reveal

    def __repr__(self):
        return f"Check({self.name!r}, points={self.points}, exercise={self.exercise!r})"


def check(
    title=None, *, points=1, exercise=None, expect=None, inputs=None, timeout=DEFAULT_CHECK_TIMEOUT, reveal=False
):
    """Declare a hidden check worth ``points``; see the module docstring for the rules.

    Example:
        >>> @check("two plus two", points=1, expect=equal(4))
        ... def adds(ns):
        ...     return ns.call("add", 2, 2)
        >>> adds.__course_check__.points
        1
    """
    if callable(title) and not isinstance(title, str):  # used bare: @check
        return check()(title)
    if isinstance(points, bool) or not isinstance(points, (int, float)) or points < 0:
        raise ValueError(f"check points must be a number >= 0, got {points!r}")
    if exercise is not None and not isinstance(exercise, str):
        raise ValueError(f"check exercise must be the exercise id (a string), got {exercise!r}")
    if inputs is not None and not callable(inputs):
        raise ValueError("check inputs must be a function (rng, params) -> plain data, drawn in the grader")

    def decorate(function):
        setattr(
            function, CHECK_ATTRIBUTE, Check(function, title, points, exercise, expect, float(timeout), inputs, reveal)
        )
        return function

    return decorate


def grader_only(function):
    """Mark a helper as needed only in the grader (references, inputs): it never enters the student's kernel.

    Example:
        >>> @grader_only
        ... def reference_squares(n):
        ...     return [i * i for i in range(n)]
        >>> reference_squares(3)
        [0, 1, 4]
    """
    return function


def plain(value):
    """``value`` as plain data (see :func:`course_kit.grading.probe.plain`); ``ValueError`` when it is not.

    Example:
        >>> plain((1, 2.5, "x"))
        [1, 2.5, 'x']
    """
    try:
        return _probe_plain(value)
    except _Failure as failure:
        raise ValueError(
            f"not plain data ({failure.code}): expectations and inputs must be numbers, text, lists or dicts"
        ) from None


# --------------------------------------------------------------------------- inputs
def draw_inputs(declared, parameters, seed):
    """Each check's inputs for one submission: ``{name: plain data}``, from ``seed`` (never sent to the kernel).

    Example:
        >>> @check(inputs=lambda rng, params: rng.randint(1, 10**6))
        ... def n(ns, inputs):
        ...     return inputs
        >>> a = draw_inputs([n.__course_check__], {}, 1)
        >>> a == draw_inputs([n.__course_check__], {}, 1), a == draw_inputs([n.__course_check__], {}, 2)
        (True, False)
    """
    drawn = {}
    for item in declared:
        if item.inputs is None:
            continue
        rng = random.Random(f"{seed}:{item.name}")
        try:
            drawn[item.name] = plain(item.inputs(rng, dict(parameters)))
        except Exception as error:
            raise ExpectationError(
                f"check {item.name}: its inputs= function failed with {type(error).__name__}: {error}"
            ) from error
    return drawn


# --------------------------------------------------------------------------- describing values (kind and size only)
def _kind(value):
    if value is None:
        return "None"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    return "a dict"


def _shape(value):
    """The kind of a value, with its length for lists: all feedback says about a student's value."""
    if isinstance(value, list):
        return f"a list of {len(value)} item{'s' if len(value) != 1 else ''}"
    return _kind(value)


def _expected_text(value, limit=120):
    """An expected value, for ``reveal=True`` messages (the instructor's own data)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _same(a, b, rel, abs_):
    """Structural equality of plain data; numbers within tolerance (rel=abs=0: exact)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
            return True
        if rel == 0 and abs_ == 0:
            return a == b
        return math.isclose(a, b, rel_tol=rel, abs_tol=abs_)
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y, rel, abs_) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k], rel, abs_) for k in a)
    return a == b


# --------------------------------------------------------------------------- matchers
class Matcher:
    """Base of expectations: ``judge(observation) -> (passed, message for the student)``.

    A failure names the kind of value the student's code gave (and a list's length), never
    the value: ``reveal=True`` adds the expected value, which is the instructor's own.
    """

    reveal = False

    def judge(self, observed):
        raise NotImplementedError

    def _failure(self, observed, expected_text):
        message = f"got {_shape(observed)}, not the expected value"
        if self.reveal:
            message += f" (expected {expected_text})"
        return False, message


class _Equal(Matcher):
    def __init__(self, expected, rel, abs_, reveal):
        self.expected, self.rel, self.abs, self.reveal = plain(expected), rel, abs_, reveal

    def judge(self, observed):
        expected = self.expected
        if _same(observed, expected, self.rel, self.abs):
            return True, "correct"
        if _kind(observed) != _kind(expected):
            return False, f"got {_shape(observed)}, expected {_shape(expected)}"
        if isinstance(observed, list) and len(observed) != len(expected):
            return False, f"got {_shape(observed)}, expected {len(expected)}"
        if isinstance(observed, dict) and observed.keys() != expected.keys():
            missing = sorted(expected.keys() - observed.keys())
            return False, "got a dict without the expected keys" + (
                f" (missing: {', '.join(missing[:5])})" if missing else " (it has others)"
            )
        return self._failure(observed, _expected_text(expected))


def equal(expected, *, reveal=False):
    """Expect exactly this plain value (int 2 equals float 2.0; True never equals 1).

    Example:
        >>> equal([1, 2]).judge([1, 3])
        (False, 'got a list of 2 items, not the expected value')
    """
    return _Equal(expected, 0, 0, reveal)


def close(expected, *, rel=1e-6, abs=1e-9, reveal=False):  # noqa: A002 - mirrors math.isclose
    """Expect numbers (or nested lists/dicts of numbers) within a relative/absolute tolerance.

    Example:
        >>> close(0.1 + 0.2).judge(0.3)
        (True, 'correct')
    """
    return _Equal(expected, rel, abs, reveal)


class _Between(Matcher):
    def __init__(self, low, high, reveal):
        self.low, self.high, self.reveal = low, high, reveal

    def judge(self, observed):
        if isinstance(observed, bool) or not isinstance(observed, (int, float)):
            return False, f"got {_shape(observed)}, expected a number"
        if self.low <= observed <= self.high:
            return True, "correct"
        return self._failure(observed, f"a value between {self.low} and {self.high}")


def between(low, high, *, reveal=False):
    """Expect a number in ``[low, high]`` (e.g. an accuracy that must beat chance).

    Example:
        >>> between(0.5, 1.0, reveal=True).judge(0.2)
        (False, 'got a number, not the expected value (expected a value between 0.5 and 1.0)')
    """
    return _Between(low, high, reveal)


class _OneOf(Matcher):
    def __init__(self, options, reveal):
        self.options, self.reveal = [plain(o) for o in options], reveal

    def judge(self, observed):
        if any(_same(observed, option, 0, 0) for option in self.options):
            return True, "correct"
        return self._failure(observed, "one of " + ", ".join(_expected_text(o, 40) for o in self.options))


def one_of(*options, reveal=False):
    """Expect any one of several plain values.

    Example:
        >>> one_of("sgd", "adam").judge("adam")
        (True, 'correct')
    """
    return _OneOf(options, reveal)


class _Satisfies(Matcher):
    def __init__(self, predicate, description):
        self.predicate, self.description = predicate, description

    def judge(self, observed):
        try:
            passed = bool(self.predicate(observed))
        except Exception:  # a predicate crashing on odd data is a failed expectation
            passed = False
        return (True, "correct") if passed else (False, f"got {_shape(observed)}, which is not {self.description}")


def satisfies(predicate, description):
    """Expect ``predicate(observation)`` to be true (it runs in the grader on plain data).

    Example:
        >>> satisfies(lambda xs: xs == sorted(xs), "sorted").judge([2, 1])
        (False, 'got a list of 2 items, which is not sorted')
    """
    return _Satisfies(predicate, description)


# --------------------------------------------------------------------------- judging
def vocabulary(source):
    """The texts a checks file contains: the only names and messages from a probe that feedback may repeat.

    Example:
        >>> sorted(vocabulary("x = ns['acc']\\nraise CheckFailed('too small')"))
        ['acc', 'too small']
    """
    return frozenset(
        node.value
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    )


def failure_message(record, declared, words):
    """The student's message for a failed probe ``record``, in the grader's words only.

    Example:
        >>> @check(timeout=5)
        ... def f(ns):
        ...     return ns.call("squares", 3)
        >>> failure_message({"failure": "raised", "detail": ["squares", "Leak_a1b2"]}, f.__course_check__,
        ...                 {"squares"})
        'calling `squares` raised an exception'
    """
    code, detail = record.get("failure"), record.get("detail")
    name = detail if isinstance(detail, str) and detail in words else None
    if code == "undefined":
        return (
            f"`{name}` is not defined in your notebook (did the cell that defines it run?)"
            if name
            else "a name this check needs is not defined in your notebook (did every cell run?)"
        )
    if code == "not-callable":
        return f"`{name}` should be a function" if name else "something this check calls is not a function"
    if code == "raised":
        function, exception = (detail + ["", ""])[:2] if isinstance(detail, list) else ("", "")
        which = f"calling `{function}`" if isinstance(function, str) and function in words else "your code"
        kind = exception if exception in EXCEPTION_NAMES else "an exception"
        return f"{which} raised {kind}"
    if code == "not-plain":
        return "your code gave an object that is not plain data (a number, text, list, dict, array or tensor)"
    if code == "too-large":
        return "the value is too large to check"
    if code == "too-deep":
        return "the value is nested too deeply to check"
    if code == "timeout":
        return f"took longer than {declared.timeout:g} s"
    if code == "exit":
        return "your code called sys.exit() while being checked"
    if code == "check-failed":
        return detail if isinstance(detail, str) and detail in words else "failed"
    if code == "unreportable":
        return "the result could not be reported"
    return "failed"


def judge(declared, record, parameters, inputs=None, words=frozenset()):
    """Turn one probe record for ``declared`` into ``(passed, message)``, in the grader.

    ``record`` is ``{"ok": True, "observation": ...}`` or ``{"ok": False, "failure", "detail"}``;
    ``inputs`` what the probe was given; ``words`` the checks file's :func:`vocabulary`.

    Example:
        >>> @check(expect=lambda inputs, params: equal(inputs * 2))
        ... def doubled(ns, inputs):
        ...     return ns.call("double", inputs)
        >>> judge(doubled.__course_check__, {"ok": True, "observation": 14}, {}, inputs=7)
        (True, 'correct')
    """
    if not isinstance(record, dict):
        return False, "the check did not report a result (the kernel stopped or its output was lost)"
    if record.get("ok") is not True:
        return False, failure_message(record, declared, words)
    observation = record.get("observation")
    expectation = declared.expect
    if expectation is None:
        return (False, "failed") if observation is False else (True, "correct")
    if not callable(getattr(expectation, "judge", None)):  # duck-typed: the module may be another copy
        try:
            expectation = expectation(inputs, dict(parameters))
        except Exception as error:
            raise ExpectationError(
                f"check {declared.name}: its expect= function failed with {type(error).__name__}: {error}"
            ) from error
    return expectation.judge(observation)


# --------------------------------------------------------------------------- loading
def _module(source, filename):
    module = types.ModuleType("course_hidden_checks")
    module.__file__ = filename
    exec(compile(source, filename, "exec"), module.__dict__)
    return module


def load_checks(source, filename="<hidden checks>"):
    """Execute a hidden-checks module's source (in the grader) and return its checks in definition order.

    Raises ``ValueError`` naming the problem when the module declares no checks or
    repeats a name.

    Example:
        >>> [c.name for c in load_checks("from course_kit.grading.checks import check\\n"
        ...                              "@check\\ndef runs(ns):\\n    pass\\n")]
        ['runs']
    """
    module = _module(source, filename)
    # Compare by class name, not identity: doctests may import this module twice.
    found = [
        getattr(v, CHECK_ATTRIBUTE)
        for v in vars(module).values()
        if callable(v) and type(getattr(v, CHECK_ATTRIBUTE, None)).__name__ == "Check"
    ]
    if not found:
        raise ValueError(
            f"{filename} declares no checks: decorate functions with @check(...) from course_kit.grading.checks"
        )
    names = [c.name for c in found]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"{filename}: check names must be unique, repeated: {', '.join(duplicates)}")
    return found


def metric_names(source, filename="<hidden checks>"):
    """The ``METRICS`` a hidden-checks module declares (its gradebook metric columns), or None.

    Example:
        >>> metric_names("from course_kit.grading.checks import check\\nMETRICS = ['acc.top1']\\n"
        ...              "@check\\ndef runs(ns):\\n    pass\\n")
        ['acc.top1']
    """
    names = _module(source, filename).__dict__.get("METRICS")
    if names is None:
        return None
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) and n for n in names):
        raise ValueError(f"{filename}: METRICS must be a list of key names (text), e.g. ['gap_10%']")
    return list(dict.fromkeys(names))


def _decorator_name(node):
    target = node.func if isinstance(node, ast.Call) else node
    if isinstance(target, ast.Attribute):
        return target.attr
    return target.id if isinstance(target, ast.Name) else None


GRADER_SIDE_ARGUMENTS = ("expect", "inputs")


def kernel_source(source):
    """The part of a hidden-checks module that may enter the student's kernel: the probes.

    Removes the ``expect=`` and ``inputs=`` arguments of ``@check``, functions and classes
    decorated with ``@grader_only``, docstrings (an instructor's notes), and module-level
    assignments to names that nothing left behind uses (constants that only expectations needed).

    Example:
        >>> print(kernel_source("ANSWER = 42\\n@check(expect=equal(ANSWER))\\ndef f(ns):\\n    return 1\\n"))
        @check()
        def f(ns):
            return 1
    """
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and _docstring(node):
            node.body = node.body[1:] or [ast.Pass()]
    body = []
    for node in tree.body:
        decorators = getattr(node, "decorator_list", [])
        if any(_decorator_name(d) == "grader_only" for d in decorators):
            continue
        for decorator in decorators:
            if isinstance(decorator, ast.Call) and _decorator_name(decorator) == "check":
                decorator.keywords = [k for k in decorator.keywords if k.arg not in GRADER_SIDE_ARGUMENTS]
        body.append(node)
    tree.body = body
    # Drop module-level constants that only the removed parts used; repeat until stable
    # (one constant may only feed another).
    while True:
        used = {
            n.id
            for node in tree.body
            for n in ast.walk(node)
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)
        }
        kept = [node for node in tree.body if not _unused_assignment(node, used)]
        if len(kept) == len(tree.body):
            break
        tree.body = kept
    return ast.unparse(tree)


def _docstring(node):
    first = node.body[0] if node.body else None
    return isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str)


def _unused_assignment(node, used):
    if isinstance(node, ast.Assign):
        targets = node.targets
    elif isinstance(node, ast.AnnAssign):
        targets = [node.target]
    else:
        return False
    names = [n for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]
    only_names = all(isinstance(t, (ast.Name, ast.Tuple, ast.List)) for t in targets)
    return (
        only_names
        and bool(names)
        and not any(n.id in used for n in names)
        and not any(n.id.startswith("__") for n in names)
    )
