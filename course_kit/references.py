"""``course references``: regenerate the nbval regression references in ``tests/references/``.

The references are the solution notebooks executed in the ``smoke`` profile. nbval later
re-executes them and compares every output cell by cell; cells tagged
``nbval-ignore-output`` (training loops, accuracies, timings) are run but not compared.
Both runs use the same environment, set here and in ``tests/conftest.py``:

* ``COURSE_PROGRESS=off``: no progress bars at all, so stderr holds no bar to compare;
* ``PYTHONWARNINGS=ignore``: warnings (their file paths and wording vary across machines
  and library versions) never reach a compared output;
* ``COURSE_RESULTS_DIR``: results and figures go to a temporary folder, not next to the
  references.

The variables are set while the references run and restored afterwards.

Run it after changing a solution notebook or a library output the references show,
review the diff (``git diff tests/references``), and commit it.

Example:
    $ course references            # all notebooks
    $ course references 03         # one
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import nbformat

from .repository import REFERENCES, SOLUTIONS
from .runner import environment, find_notebooks

REFERENCE_ENV = {"COURSE_PROGRESS": "off", "PYTHONWARNINGS": "ignore"}


def _strip_volatile_metadata(path: Path) -> None:
    """Drop per-run timestamps so that regenerating unchanged references gives no diff."""
    notebook = nbformat.read(path, as_version=4)
    notebook.metadata.pop("papermill", None)
    for cell in notebook.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
    nbformat.write(notebook, path)


def regenerate(notebooks: list[Path], out: Path = REFERENCES) -> list[Path]:
    """Execute ``notebooks`` in the smoke profile into ``out``; returns the written paths."""
    import papermill as pm

    out.mkdir(parents=True, exist_ok=True)
    written = []
    with (
        tempfile.TemporaryDirectory(prefix="course-references-") as scratch,
        environment({**REFERENCE_ENV, "COURSE_RESULTS_DIR": scratch}),
    ):
        for source in notebooks:
            target = out / source.name
            print(f"executing {source.stem} (smoke) -> {target}", flush=True)
            pm.execute_notebook(
                str(source),
                str(target),
                parameters={"profile": "smoke"},
                cwd=str(out),
                kernel_name="python3",
                progress_bar=False,
            )
            _strip_volatile_metadata(target)
            written.append(target)
    return written


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("notebooks", nargs="*", help="stems or number prefixes (default: all in solutions/)")
    parser.add_argument("--out", type=Path, default=REFERENCES, help="where the references go")


def main(args: argparse.Namespace) -> int:
    written = regenerate(find_notebooks(args.notebooks, SOLUTIONS), args.out)
    print(f"{len(written)} reference(s) written; review with `git diff {args.out}` and commit.")
    return 0
