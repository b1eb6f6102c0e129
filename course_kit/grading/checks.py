"""Hidden checks: how instructors write them, and how the grader judges their results.

Hidden checks live in ``solutions/hidden_checks/<NAME>.py`` (never released to students).
Each check is a function decorated with :func:`check`. It runs **inside the student's
kernel**, after the student's cells, receives the kernel's namespace as ``ns`` and
**returns an observation**: plain data (numbers, text, lists, dicts) computed from the
student's work. The expected value is given by ``expect=`` and is judged **in the grader
process**, never in the kernel::

    from course_kit.grading.checks import check, close, equal

    @check("squares() on an input the notebook never uses", points=2, exercise="squares",
           expect=equal([0, 1, 4, 9, 16, 25, 36]))
    def squares_hidden(ns):
        return ns.call("squares", 7)

    @check("pipeline result for the grading parameters", points=1,
           expect=lambda params: close(float(params.get("scale", 2.0)) * 17.5, rel=1e-9))
    def pipeline(ns):
        return ns["result"]

Why split observation and judgement: student code runs first in the same interpreter and
could, in principle, patch anything in it. The grader removes every ``expect=`` argument,
every function decorated with :func:`grader_only` and every module-level constant used only
by those before the check code is sent to the kernel (:func:`kernel_source`), so the
expected answers are never in the student's process. A check passes only when the kernel
reports (in a record tagged with a per-run random token) an observation that the grader
finds equal to the expectation; forging a pass therefore needs the correct answer itself.

Observations are converted with :func:`plain` before they leave the kernel: only exact
built-in types survive (numpy arrays and torch tensors become lists through the base
classes' own methods), so an object with a rigged ``__eq__``, ``__float__`` or
``__class__`` is rejected instead of being compared.

Rules of the API:

* ``@check(title, points=1, exercise=None, expect=None, timeout=30, echo=False)``: ``title`` is shown
  to the student in the feedback (default: the docstring's first line, else the function
  name); the gradebook column is ``check:<function name>``. ``exercise`` names the
  exercise cell (metadata ``course.exercise``) the check grades: when that cell never ran,
  the check fails with "exercise did not run". ``timeout`` bounds the check in the kernel.
* ``expect`` is a matcher (:func:`equal`, :func:`close`, :func:`between`, :func:`one_of`,
  :func:`satisfies`) or a function ``params -> matcher`` receiving the injected papermill
  parameters (so an instructor's ``-p epochs 2`` can change the expectation). Without
  ``expect``, the check passes when it returns anything but ``False`` without raising:
  in-kernel assertions, weaker because the student's process decides them.
* raise :class:`CheckFailed` (or ``assert cond, "message"``) for a failure with a message
  for the student. Feedback shows titles and these messages, never check code or
  tracebacks. An exception raised by student code is reported by its type only (its
  message could carry the check's inputs out), and a failing value only by its kind ("got
  a list, not the expected value"): student code that ran while the check was in the
  kernel could have filled it with the check's inputs or code. ``@check(echo=True)``
  shows the value itself (short numbers and names; the rest by type and size), for
  values the notebook computed in its own cells; ``reveal=True`` also shows the expected
  value.
* ``ns["name"]`` (a clear failure when the notebook never defined ``name``),
  ``ns.get("name", default)``, ``"name" in ns`` and ``ns.call("name", *args)`` (the
  student's exception becomes the failure message).
* helpers only the grader needs (reference implementations for expectations) go into
  functions decorated with ``@grader_only``; they are not sent to the kernel.
* ``METRICS = ["gap_10%", ...]`` (optional, module level) names the keys of the notebook's
  results record (nested keys joined with dots) that become the gradebook's
  ``metric:<key>`` columns; without it the keys the solution check's record has are used
  (:func:`metric_names`). Any other key a student writes is ignored and noted in the row.

This module is stdlib-only on purpose: the grader sends its source into the kernel as a
fresh module, so student code cannot replace it in ``sys.modules`` beforehand.

Example:
    >>> equal([1, 2]).judge([1, 2])
    (True, 'correct')
    >>> plain((1, 2.5, "x"))
    [1, 2.5, 'x']
"""
from __future__ import annotations

import ast
import math
import sys
import types

CHECK_ATTRIBUTE = "__course_check__"
DEFAULT_CHECK_TIMEOUT = 30.0
MAX_PLAIN_ITEMS = 200_000


class CheckFailed(Exception):
    """A check failed; the message is shown to the student (write it for them)."""


class ExpectationError(RuntimeError):
    """An ``expect=`` function failed in the grader: the instructor's bug, not the student's."""


class Check:
    """The declaration a :func:`check` decorator attaches to its function."""

    def __init__(self, function, title, points, exercise, expect, timeout, echo=False):
        self.function = function
        self.name = function.__name__
        doc = (function.__doc__ or "").strip().splitlines()
        self.title = title or (doc[0].strip() if doc else self.name)
        self.points = points
        self.exercise = exercise
        self.expect = expect
        self.timeout = timeout
        self.echo = echo

    def __repr__(self):
        return f"Check({self.name!r}, points={self.points}, exercise={self.exercise!r})"


def check(title=None, *, points=1, exercise=None, expect=None, timeout=DEFAULT_CHECK_TIMEOUT, echo=False):
    """Declare a hidden check worth ``points``; see the module docstring for the rules.

    ``echo=True`` lets a failure message show the student's value. Leave it off when the
    check calls student code (``ns.call``, a student's class or model): that code ran
    while the check was in the kernel and could have put the check's inputs or code into
    the value. Turn it on for values the notebook computed in its own cells (``ns["acc"]``).

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

    def decorate(function):
        setattr(function, CHECK_ATTRIBUTE, Check(function, title, points, exercise, expect, float(timeout), echo))
        return function

    return decorate


def grader_only(function):
    """Mark a helper as needed only by expectations: it is never sent to the student's kernel.

    Example:
        >>> @grader_only
        ... def reference_squares(n):
        ...     return [i * i for i in range(n)]
        >>> reference_squares(3)
        [0, 1, 4]
    """
    return function


class Namespace:
    """The student's kernel namespace as checks see it, with failures students can read.

    Example:
        >>> ns = Namespace({"x": 3, "double": lambda v: 2 * v})
        >>> ns["x"], ns.call("double", 4), "y" in ns
        (3, 8, False)
    """

    def __init__(self, mapping):
        self._mapping = mapping

    def __getitem__(self, name):
        if name not in self._mapping:
            raise CheckFailed(f"`{name}` is not defined in your notebook (did the cell that defines it run?)")
        return self._mapping[name]

    def __contains__(self, name):
        return name in self._mapping

    def get(self, name, default=None):
        return self._mapping.get(name, default)

    def call(self, name, *args, **kwargs):
        """Call the student's function ``name``; its exception becomes a failure naming its type.

        Only the exception's type is reported, never its message: the student's code runs
        here with the check's inputs in reach, and a message could carry them out.
        """
        function = self[name]
        if not callable(function):
            raise CheckFailed(f"`{name}` should be a function, but it is a {_type_name(function)}")
        try:
            return function(*args, **kwargs)
        except Exception as error:  # the student's bug (a CheckFailed of theirs included)
            raise CheckFailed(f"calling `{name}` raised {exception_summary(error)}") from None


# --------------------------------------------------------------------------- plain data
def _type_name(value):
    try:
        return str.__str__(type(value).__name__)
    except TypeError:
        return "object"


def exception_summary(error):
    """What feedback may say about an exception student code raised: its type's name, nothing else.

    Example:
        >>> exception_summary(ValueError("the hidden input was [3, 1, 4]"))
        'ValueError'
    """
    name = _type_name(error)
    cleaned = "".join(c for c in name if c.isalnum() or c == "_")[:60]
    return cleaned or "an exception"


def _sort_key(value):
    return (_type_name(value), repr(value))


def plain(value, _depth=0, _budget=None):
    """Convert ``value`` to plain built-in data, rejecting anything else with :class:`CheckFailed`.

    Exact ``bool``/``int``/``float``/``str``/``None`` pass; subclasses are copied through the
    base type's own methods (a subclass's overrides never run); tuples and lists become
    lists, sets sorted lists, dicts keep string keys (other keys: a list of pairs);
    numpy arrays/scalars and torch tensors become (nested) lists/scalars. Size is capped.

    Example:
        >>> plain({"a": (1, 2), "b": {3}})
        {'a': [1, 2], 'b': [3]}
        >>> class Rigged:
        ...     def __eq__(self, other):
        ...         return True
        >>> try:
        ...     plain(Rigged())
        ... except CheckFailed as failure:
        ...     print(failure)
        got a Rigged where plain data (a number, text, list or dict) was expected
    """
    budget = [MAX_PLAIN_ITEMS] if _budget is None else _budget
    budget[0] -= 1
    if budget[0] < 0:
        raise CheckFailed(f"the value is too large to check (more than {MAX_PLAIN_ITEMS} items)")
    if _depth > 40:
        raise CheckFailed("the value is nested too deeply to check")
    kind = type(value)
    if value is None or kind is bool or kind is int or kind is float or kind is str:
        return value
    try:
        return _convert(value, _depth, budget)
    except TypeError:
        # A base-class method refused the object: it only pretended to be that type
        # (for instance through a fake ``__class__``).
        raise CheckFailed(f"got a {_type_name(value)} where plain data (a number, text, list or dict) "
                          f"was expected") from None


def _convert(value, depth, budget):
    """The non-trivial cases of :func:`plain` (base-class methods only)."""
    if isinstance(value, int):  # includes bool subclasses' base: bool cannot be subclassed
        return int.__int__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, (list, tuple)):
        items = list.__iter__(value) if isinstance(value, list) else tuple.__iter__(value)
        return [plain(item, depth + 1, budget) for item in items]
    if isinstance(value, (set, frozenset)):
        items = set.__iter__(value) if isinstance(value, set) else frozenset.__iter__(value)
        return sorted((plain(item, depth + 1, budget) for item in items), key=_sort_key)
    if isinstance(value, dict):
        pairs = [(plain(k, depth + 1, budget), plain(v, depth + 1, budget)) for k, v in dict.items(value)]
        if all(type(k) is str for k, _ in pairs):
            return dict(pairs)
        return sorted(([k, v] for k, v in pairs), key=lambda pair: _sort_key(pair[0]))
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        if isinstance(value, numpy.ndarray):
            size = numpy.ndarray.size.__get__(value)
            if size > budget[0]:
                raise CheckFailed(f"the array is too large to check ({size} elements)")
            return plain(numpy.ndarray.tolist(value), depth + 1, budget)
        if isinstance(value, numpy.generic):
            return plain(numpy.generic.item(value), depth + 1, budget)
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        base = getattr(torch._C, "TensorBase", None) or getattr(torch._C, "_TensorBase")
        size = base.numel(value)
        if size > budget[0]:
            raise CheckFailed(f"the tensor is too large to check ({size} elements)")
        return plain(base.tolist(base.cpu(base.detach(value))), depth + 1, budget)
    raise CheckFailed(f"got a {_type_name(value)} where plain data (a number, text, list or dict) was expected")


def _describe(value, limit=60):
    """What feedback may show of a student's value: short numbers and names in full, the rest by shape.

    The value came from the student's code, which could have filled it with the check's
    inputs or code: text longer than a short name, and containers that are not short
    lists of numbers, are described by their type and size only.

    Example:
        >>> _describe(10.666666666), _describe([1, 2]), _describe("layer4"), _describe("x" * 500)
        ('10.6667', '[1, 2]', "'layer4'", 'text of 500 characters')
    """
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, (int, float)):
        return f"{value:.6g}"
    if isinstance(value, str):
        safe = len(value) <= 24 and all(c.isalnum() or c in "_-. " for c in value)
        return repr(value) if safe else f"text of {len(value)} characters"
    if isinstance(value, list):
        if len(value) <= 8 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            text = "[" + ", ".join(f"{v:.6g}" for v in value) + "]"
            if len(text) <= limit:
                return text
        return f"a list of {len(value)} items"
    return f"a dict of {len(value)} keys"


def _expected_text(value, limit=120):
    """An expected value, for ``reveal=True`` messages (the instructor's own data)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


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
    """Base of expectations: ``judge(observation, echo=True) -> (passed, message for the student)``.

    With ``echo=False`` (a check's default) a failure names only the kind of value the
    student's code gave (a number, a list...), never the value or its size.
    """

    reveal = False

    def judge(self, observed, echo=True):
        raise NotImplementedError

    def _failure(self, observed, expected_text, echo):
        message = f"got {_describe(observed)}" if echo else f"got {_kind(observed)}, not the expected value"
        if self.reveal:
            message += f", expected {expected_text}"
        return False, message

    @staticmethod
    def _wrong_kind(observed, expected_kind, echo):
        shown = f" ({_describe(observed, 60)})" if echo else ""
        return False, f"got {_kind(observed)}{shown}, expected {expected_kind}"


class _Equal(Matcher):
    def __init__(self, expected, rel, abs_, reveal):
        self.expected, self.rel, self.abs, self.reveal = plain(expected), rel, abs_, reveal

    def judge(self, observed, echo=True):
        if _same(observed, self.expected, self.rel, self.abs):
            return True, "correct"
        if _kind(observed) != _kind(self.expected):
            return self._wrong_kind(observed, _kind(self.expected), echo)
        if isinstance(observed, list) and len(observed) != len(self.expected) and (echo or self.reveal):
            return False, f"got {len(observed)} items, expected {len(self.expected)}"
        return self._failure(observed, _expected_text(self.expected), echo)


def equal(expected, *, reveal=False):
    """Expect exactly this plain value (int 2 equals float 2.0; True never equals 1).

    Example:
        >>> equal([1, 2]).judge([1, 3])
        (False, 'got [1, 3]')
    """
    return _Equal(expected, 0, 0, reveal)


def close(expected, *, rel=1e-6, abs=1e-9, reveal=False):  # noqa: A002 - mirrors math.isclose
    """Expect numbers (or nested lists of numbers) within a relative/absolute tolerance.

    Example:
        >>> close(0.1 + 0.2).judge(0.3)
        (True, 'correct')
    """
    return _Equal(expected, rel, abs, reveal)


class _Between(Matcher):
    def __init__(self, low, high, reveal):
        self.low, self.high, self.reveal = low, high, reveal

    def judge(self, observed, echo=True):
        if isinstance(observed, bool) or not isinstance(observed, (int, float)):
            return self._wrong_kind(observed, "a number", echo)
        if self.low <= observed <= self.high:
            return True, "correct"
        return self._failure(observed, f"a value between {self.low} and {self.high}", echo)


def between(low, high, *, reveal=False):
    """Expect a number in ``[low, high]`` (e.g. an accuracy that must beat chance).

    Example:
        >>> between(0.5, 1.0, reveal=True).judge(0.2)
        (False, 'got 0.2, expected a value between 0.5 and 1.0')
    """
    return _Between(low, high, reveal)


class _OneOf(Matcher):
    def __init__(self, options, reveal):
        self.options, self.reveal = [plain(o) for o in options], reveal

    def judge(self, observed, echo=True):
        if any(_same(observed, option, 0, 0) for option in self.options):
            return True, "correct"
        return self._failure(observed, "one of " + ", ".join(_expected_text(o, 40) for o in self.options), echo)


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

    def judge(self, observed, echo=True):
        try:
            passed = bool(self.predicate(observed))
        except Exception:  # a predicate crashing on odd data is a failed expectation
            passed = False
        shown = _describe(observed) if echo else _kind(observed)
        return (True, "correct") if passed else (False, f"got {shown}, which is not {self.description}")


def satisfies(predicate, description):
    """Expect ``predicate(observation)`` to be true (it runs in the grader on plain data).

    Example:
        >>> satisfies(lambda xs: xs == sorted(xs), "sorted").judge([2, 1])
        (False, 'got [2, 1], which is not sorted')
    """
    return _Satisfies(predicate, description)


def judge(declared, record, parameters):
    """Turn one kernel record for ``declared`` into ``(passed, message)``, in the grader.

    ``record`` is ``{"ok": bool, "observation": ..., "message": str}`` from the kernel.

    Example:
        >>> @check(expect=equal(4))
        ... def four(ns):
        ...     return 4
        >>> judge(four.__course_check__, {"ok": True, "observation": 4}, {})
        (True, 'correct')
    """
    if record is None:
        return False, "the check did not report a result (the kernel stopped or its output was lost)"
    if not record.get("ok"):
        return False, str(record.get("message") or "failed")
    expectation = declared.expect
    if expectation is None:
        if record.get("observation") is False:
            return False, "failed"
        return True, "correct"
    if not callable(getattr(expectation, "judge", None)):  # duck-typed: the module may be another copy
        try:
            expectation = expectation(dict(parameters))
        except Exception as error:
            raise ExpectationError(f"check {declared.name}: its expect= function failed with "
                                   f"{type(error).__name__}: {error}") from error
    return expectation.judge(record.get("observation"), echo=bool(getattr(declared, "echo", False)))


# --------------------------------------------------------------------------- loading
def load_checks(source, filename="<hidden checks>"):
    """Execute a hidden-checks module's source and return its checks in definition order.

    Raises ``ValueError`` naming the problem when the module declares no checks or
    repeats a name.

    Example:
        >>> [c.name for c in load_checks("from course_kit.grading.checks import check\\n"
        ...                              "@check\\ndef runs(ns):\\n    pass\\n")]
        ['runs']
    """
    module = types.ModuleType("course_hidden_checks")
    module.__file__ = filename
    exec(compile(source, filename, "exec"), module.__dict__)
    # Compare by class name, not identity: the module that decorated the functions may be
    # another copy of this one (the kernel gets a fresh copy; doctests import it twice).
    found = [getattr(v, CHECK_ATTRIBUTE) for v in vars(module).values()
             if callable(v) and type(getattr(v, CHECK_ATTRIBUTE, None)).__name__ == "Check"]
    if not found:
        raise ValueError(f"{filename} declares no checks: decorate functions with "
                         f"@check(...) from course_kit.grading.checks")
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
    module = types.ModuleType("course_hidden_checks")
    module.__file__ = filename
    exec(compile(source, filename, "exec"), module.__dict__)
    names = module.__dict__.get("METRICS")
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


def kernel_source(source):
    """The part of a hidden-checks module that may enter the student's kernel.

    Removes ``expect=`` arguments of ``@check``, functions and classes decorated with
    ``@grader_only``, and module-level assignments to names that nothing left behind uses
    (constants that only expectations needed).

    Example:
        >>> print(kernel_source("ANSWER = 42\\n@check(expect=equal(ANSWER))\\ndef f(ns):\\n    return 1\\n"))
        @check()
        def f(ns):
            return 1
    """
    tree = ast.parse(source)
    body = []
    for node in tree.body:
        decorators = getattr(node, "decorator_list", [])
        if any(_decorator_name(d) == "grader_only" for d in decorators):
            continue
        for decorator in decorators:
            if isinstance(decorator, ast.Call) and _decorator_name(decorator) == "check":
                decorator.keywords = [k for k in decorator.keywords if k.arg != "expect"]
        body.append(node)
    tree.body = body
    # Drop module-level constants that only the removed parts used; repeat until stable
    # (one constant may only feed another).
    while True:
        used = {n.id for node in tree.body for n in ast.walk(node)
                if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
        kept = [node for node in tree.body if not _unused_assignment(node, used)]
        if len(kept) == len(tree.body):
            break
        tree.body = kept
    return ast.unparse(tree)


def _unused_assignment(node, used):
    if isinstance(node, ast.Assign):
        targets = node.targets
    elif isinstance(node, ast.AnnAssign):
        targets = [node.target]
    else:
        return False
    names = [n for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]
    only_names = all(isinstance(t, (ast.Name, ast.Tuple, ast.List)) for t in targets)
    return only_names and bool(names) and not any(n.id in used for n in names) and not any(
        n.id.startswith("__") for n in names)
