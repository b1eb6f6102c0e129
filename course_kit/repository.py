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
