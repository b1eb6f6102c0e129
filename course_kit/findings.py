"""The lessons a notebook must show: the student library's checker, loaded without the library.

The findings are declared in the student library's profile files and checked by
``course_utils/notebook/findings.py``, which the notebooks use for their own table of
findings. ``course run`` prints the same verdicts on its summary page; importing
``course_utils`` would load torch, which the kit never does, so this module loads that one
file on its own (it needs only PyYAML).

Example:
    >>> check_all("01_alexnet_data_fraction", [], "offline")[0].passed
    False
    >>> checked_in("smoke")
    False
"""

from __future__ import annotations

from .repository import load_student_module

_findings = load_student_module("notebook/findings.py")
Verdict = _findings.Verdict
check = _findings.check
check_all = _findings.check_all
checked_in = _findings.checked_in
declared_findings = _findings.declared_findings
