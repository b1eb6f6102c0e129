"""The statuses a graded submission can get: one enum, written once, used by every grading command.

A status is a ``str`` too, so rows keep plain text in ``grades.json`` and the CSV files
(``Status.OK == "ok"``), and a status read back from a gradebook is ``Status(text)``.

Example:
    >>> Status("kernel-broken").students_fault, Status.GRADER_ERROR.students_fault
    (True, False)
    >>> Status.OK == "ok", {"ok": "graded"}[Status.OK]
    (True, 'graded')
    >>> [status.value for status in Status if not status.runs_checks]
    ['kernel-died', 'parameters-missing', 'invalid-notebook', 'grader-error']
"""

from __future__ import annotations

from enum import Enum


class Status(str, Enum):
    """What happened to one submission, first that applies (see docs/grading.md's table)."""

    OK = "ok"  # every cell ran, the checks were judged
    ERROR = "error"  # a cell raised; later cells still ran
    INCOMPLETE = "incomplete"  # the released placeholder raised, or an exercise cell is missing or never ran
    OUT_OF_MEMORY = "out-of-memory"  # the first failing cell raised MemoryError (--memory)
    TIMEOUT = "timeout"  # a cell, the notebook or the checks ran past their limit
    KERNEL_BROKEN = "kernel-broken"  # the notebook broke the kernel's messaging or what the checks run in
    KERNEL_DIED = "kernel-died"  # the kernel process ended
    PARAMETERS_MISSING = "parameters-missing"  # no plain `parameters` cell first: not run
    INVALID_NOTEBOOK = "invalid-notebook"  # not a readable notebook or hand-in: not run
    GRADER_ERROR = "grader-error"  # the grading machinery failed: a rerun retries it

    def __str__(self) -> str:
        return self.value

    # Equal to its text, so it must hash like it too (Enum's own hash is the member's name's):
    # a status then finds its entry in a table keyed by text, and the other way round.
    __hash__ = str.__hash__

    @property
    def students_fault(self) -> bool:
        """Whether the submission caused it (everything but ``grader-error``)."""
        return self is not Status.GRADER_ERROR

    @property
    def runs_checks(self) -> bool:
        """Whether the hidden checks may have run (so the row's points come from them)."""
        return self not in (Status.KERNEL_DIED, Status.PARAMETERS_MISSING, Status.INVALID_NOTEBOOK, Status.GRADER_ERROR)
