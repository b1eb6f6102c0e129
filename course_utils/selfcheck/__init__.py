"""Self-checks for the notebooks' exercises: specific feedback, never the solution.

Each notebook has a module here (``data_fraction``, ``architectures``, ``freezing``,
``multitask``) with one function per exercise. A check calls the student's function on
small inputs, compares properties of the answer (sizes, shapes, counts, values) with
what they must be, and prints one line per property: ✓ when it holds, ✗ with *expected*
vs *got* and a hint when it does not. Any ✗ raises ``SelfCheckFailed`` at the end, so a
headless run stops there too; an exercise that is still ``raise NotImplementedError()``
stops it with ``NotImplementedError`` (not done yet, rather than wrong).

Example:
    >>> with exercise("Exercise 0 — adding") as feedback:
    ...     _ = feedback.equal("2 + 2", 4, 2 + 2)
    Exercise 0 — adding: all checks passed
      ✓ 2 + 2: 4
"""

from __future__ import annotations

from contextlib import contextmanager


class SelfCheckFailed(AssertionError):
    """An exercise's answer does not have the required properties yet (the message says which)."""


class Feedback:
    """Collects ✓/✗ lines for one exercise; ``exercise`` prints them and raises if any failed.

    Args:
        exercise: the exercise's title, printed as a heading.
    """

    def __init__(self, exercise: str):
        self.exercise = exercise
        self.lines: list[str] = []
        self.failures = 0
        self.not_implemented = False

    def check(self, ok: bool, success: str, failure: str) -> bool:
        """Record one property: ``success`` is shown when ``ok``, else ``failure``."""
        self.lines.append(f"  ✓ {success}" if ok else f"  ✗ {failure}")
        self.failures += not ok
        return bool(ok)

    def equal(self, what: str, expected, got, hint: str = "") -> bool:
        """Record ``got == expected`` for plain values (ints, floats within 1e-6, strings, tuples)."""
        ok = _same(expected, got)
        return self.check(
            ok, f"{what}: {got!r}", f"{what}: expected {expected!r}, got {got!r}" + (f" — {hint}" if hint else "")
        )

    def fail(self, message: str) -> None:
        self.check(False, "", message)

    @contextmanager
    def calling(self, description: str):
        """Run student code; turn its exceptions into feedback lines instead of a traceback."""
        try:
            yield
        except NotImplementedError:
            self.not_implemented = True
            self.fail(f"{description}: not implemented yet — replace `raise NotImplementedError()` with your code")
            raise _Stop from None
        except _Stop:
            raise
        except Exception as err:  # noqa: BLE001 - the student's error becomes feedback
            self.fail(f"{description} raised {type(err).__name__}: {err}")
            raise _Stop from None

    def print(self) -> None:
        """Print the heading and the ✓/✗ lines."""
        status = "all checks passed" if not self.failures else f"{self.failures} problem(s)"
        print(f"{self.exercise}: {status}")
        print("\n".join(self.lines))

    def problem(self) -> Exception | None:
        """The exception that ends the check: ``NotImplementedError``, ``SelfCheckFailed`` or None."""
        if self.not_implemented:
            return NotImplementedError(f"{self.exercise}: not implemented yet.")
        if self.failures:
            return SelfCheckFailed(f"{self.exercise}: {self.failures} problem(s) — see the ✗ lines above.")
        return None


class _Stop(Exception):
    """Ends a check early after the student's code failed (the feedback already says why)."""


class exercise:  # noqa: N801 - used like a function: ``with exercise(...) as feedback``
    """``with exercise("Exercise 1 — ...") as feedback:`` … checks … — prints and raises at the end.

    A class rather than a generator context manager so that the traceback a student sees
    is short: their cell, the check's ``with`` line, and the line raising the result.
    """

    def __init__(self, title: str):
        self.feedback = Feedback(title)

    def __enter__(self) -> Feedback:
        return self.feedback

    def __exit__(self, kind, error, traceback) -> bool:
        __tracebackhide__ = True  # IPython and pytest leave this frame out where they can
        if kind is not None and not issubclass(kind, _Stop):
            return False  # a bug in the check itself: let it through unchanged
        self.feedback.print()
        problem = self.feedback.problem()
        if problem is not None:
            # from None: the ✗ lines above say what is wrong; how the check got here does not help
            raise problem from None
        return True


def _same(expected, got) -> bool:
    # Compare by type first so that an object with a rigged __eq__ cannot pass.
    if isinstance(expected, bool) or isinstance(got, bool):
        return type(expected) is type(got) and expected == got
    if isinstance(expected, (int, float)) and isinstance(got, (int, float)):
        return abs(float(expected) - float(got)) <= 1e-6 * max(1.0, abs(float(expected)))
    if isinstance(expected, (tuple, list)) and isinstance(got, (tuple, list)):
        return len(expected) == len(got) and all(_same(e, g) for e, g in zip(expected, got))
    return type(expected) is type(got) and expected == got


# One module per notebook, reachable as cu.selfcheck.<module> (after the helpers above, which they use).
from . import architectures, data_fraction, freezing, multitask  # noqa: E402
