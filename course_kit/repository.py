"""Where things are: the kit's checkout (solutions, notebooks, references) and the installed student library.

The instructor kit is the only side that knows the repository's layout; the student library
(``course_utils``) works the same from a checkout, a wheel or a Colab install.

Example:
    >>> (SOLUTIONS / "hidden_checks").name
    'hidden_checks'
    >>> (student_library_dir() / "__init__.py").exists()
    True
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

KIT_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = KIT_DIR.parent
SOLUTIONS = PROJECT_ROOT / "solutions"
NOTEBOOKS = PROJECT_ROOT / "notebooks"
REFERENCES = PROJECT_ROOT / "tests" / "references"
STUDENT_LIBRARY = "course_utils"


def student_library_dir() -> Path:
    """The folder of the installed ``course_utils`` package, found without importing it.

    Importing the student library would load torch; grading and the command line only need
    to know where its files are (to give a grading kernel the library and nothing else).

    Raises:
        RuntimeError: the student library is not installed in this Python.
    """
    spec = importlib.util.find_spec(STUDENT_LIBRARY)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"The student library {STUDENT_LIBRARY!r} is not installed in this Python; "
                           "install the kit (`pip install -e .` in its checkout).")
    return Path(list(spec.submodule_search_locations)[0]).resolve()
