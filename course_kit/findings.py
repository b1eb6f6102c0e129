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

import importlib.util
import sys

from .repository import student_library_dir

_NAME = "course_kit._student_findings"


def _load():
    if _NAME in sys.modules:
        return sys.modules[_NAME]
    spec = importlib.util.spec_from_file_location(_NAME, student_library_dir() / "notebook" / "findings.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[_NAME] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


_findings = _load()
Verdict = _findings.Verdict
check = _findings.check
check_all = _findings.check_all
checked_in = _findings.checked_in
declared_findings = _findings.declared_findings
