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
        raise RuntimeError(
            f"The student library {STUDENT_LIBRARY!r} is not installed in this Python; "
            "install the kit (`pip install -e .` in its checkout)."
        )
    return Path(list(spec.submodule_search_locations)[0]).resolve()


def load_student_module(relative: str):
    """One torch-free file of the student library (``relative`` to its folder), loaded on its own.

    Importing ``course_utils`` would load torch, which the kit never does; a few of its files
    (the findings checker, the profiles, the training plans) need only PyYAML and the standard
    library, and the kit reads the notebooks' declarations through them. Each loads once, as
    ``course_kit._student_<name>``.

    Example:
        >>> load_student_module("notebook/plan.py").__name__
        'course_kit._student_plan'
    """
    import sys

    name = f"course_kit._student_{Path(relative).stem}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, student_library_dir() / relative)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


# The kit's public repository and the tag students install from: the one setting behind the
# "Open in Colab" / Binder badges, the install cell of every student notebook and README's
# badge table (`course release` writes all three from it; `course release --check` finds them
# stale after a change). No public address was known when this was written: set the real one
# here before handing notebooks out.
PUBLIC_REPOSITORY = "github.com/transfer-course/transfer-learning-kit"


def _release_tag() -> str:
    from . import __version__

    return f"v{__version__}"


RELEASE_TAG = _release_tag()  # a git tag made at release time: `git tag v0.3.0 && git push --tags`
