"""``course pair``: the reviewable plain-text twin of every solution notebook (jupytext, ``py:percent``).

A notebook's JSON is hard to review in a pull request; ``solutions/<NAME>.py`` holds the same
cells as ``py:percent`` text (``# %% tags=["exercise"] course={...}`` headers keep the tags
``parameters``, ``exercise``, ``self-check``, ``solution-only`` and the exercise ids). The
``.ipynb`` stays the source of truth: after editing a solution notebook run ``course pair``;
after editing a ``.py`` in review, ``jupytext --sync solutions/<NAME>.py`` carries the change
back (``solutions/jupytext.toml`` declares the pairing). A test checks that each pair holds the
same cells, and ``course pair --check`` exits 1 when one is stale.

Example:
    $ course pair            # writes solutions/*.py from solutions/*.ipynb
    $ course pair --check    # exit 1 and list the stale ones
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .repository import SOLUTIONS

FORMAT = "py:percent"
# No notebook-level header (kernelspec, the jupytext version): the text depends on the cells only.
NOTEBOOK_METADATA_FILTER = "-all"


def _jupytext():
    try:
        import jupytext
    except ImportError:
        raise RuntimeError(
            "course pair needs jupytext: pip install 'jupytext>=1.16' (or the kit's dev extra, "
            "pip install -e '.[dev]')."
        ) from None
    return jupytext


def pair_path(notebook: Path) -> Path:
    """``solutions/03_partial_freezing.ipynb`` -> ``solutions/03_partial_freezing.py``.

    Example:
        >>> pair_path(Path("solutions/03_partial_freezing.ipynb")).as_posix()
        'solutions/03_partial_freezing.py'
    """
    return Path(notebook).with_suffix(".py")


def render(notebook: Path) -> str:
    """The ``py:percent`` text of one notebook."""
    jupytext = _jupytext()
    nb = jupytext.read(str(notebook))
    nb.metadata = {"jupytext": {"notebook_metadata_filter": NOTEBOOK_METADATA_FILTER}}
    text = jupytext.writes(nb, fmt=FORMAT)
    # A cell that the text form cannot give back unchanged (trailing blank lines, say) would make
    # the pair look stale forever: name it instead of writing a twin that differs.
    for i, (cell, back) in enumerate(zip(nb.cells, jupytext.reads(text, fmt=FORMAT).cells)):
        if (cell.cell_type, cell.source) != (back.cell_type, back.source):
            raise ValueError(
                f"{notebook}: cell {i} does not survive the py:percent form unchanged "
                "(trailing blank lines or a line that looks like a cell marker); edit the cell."
            )
    return text


def pair(solutions: Path = SOLUTIONS, check_only: bool = False) -> list[Path]:
    """Write (or with ``check_only`` just compare) the ``.py`` twin of every solution notebook.

    Returns:
        The files written, or with ``check_only`` those missing or out of date.
    """
    notebooks = sorted(Path(solutions).glob("*.ipynb"))
    if not notebooks:
        raise FileNotFoundError(f"No solution notebooks in {solutions}.")
    changed = []
    for notebook in notebooks:
        target, text = pair_path(notebook), render(notebook)
        if target.exists() and target.read_text() == text:
            continue
        changed.append(target)
        if not check_only:
            target.write_text(text)
    return changed


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--solutions", type=Path, default=SOLUTIONS, help="solution notebooks")
    parser.add_argument("--check", action="store_true", help="only report stale pairs (exit 1 if any)")


def main(args: argparse.Namespace) -> int:
    try:
        files = pair(args.solutions, check_only=args.check)
    except RuntimeError as error:
        print(f"course pair: {error}")
        return 2
    for path in files:
        print(f"out of date: {path} (run `course pair`)" if args.check else f"wrote {path}")
    if not files and not args.check:
        print(f"{args.solutions}: every pair is up to date")
    return 1 if args.check and files else 0
