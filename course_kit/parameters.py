"""What a notebook accepts from outside, read without running it: profile names and knob names.

``course run`` and ``course grade`` check ``--profile`` and every ``-p KEY VALUE`` here, before
any kernel starts, so a misspelled knob is an error that lists the valid ones instead of a
run that silently ignores it.

Example:
    >>> "smoke" in profile_names()
    True
"""
from __future__ import annotations

from .repository import student_library_dir


def profile_names() -> list[str]:
    """The profiles the student library defines, in their declared order (``auto`` last)."""
    folder = student_library_dir() / "notebook" / "profiles"
    order = ["smoke", "offline", "laptop", "full", "grading", "auto"]
    found = {p.name for p in folder.iterdir() if p.is_dir()}
    return [name for name in order if name in found] + sorted(found - set(order))
