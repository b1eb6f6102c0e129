"""``course submit NOTEBOOK --student ID``: the student library's ``cu.submit`` from a shell.

Re-runs the saved notebook top to bottom in a fresh kernel in the ``grading`` profile, lists
the cells that failed, and writes ``submission/<ID>/`` (notebook + results record) and
``submission/<ID>.zip``: the folder ``course grade`` reads. Exit status 1 when a cell failed.

Example:
    $ course submit notebooks/03_partial_freezing.ipynb --student s1234567
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("notebook", type=Path, help="the notebook to hand in (.ipynb)")
    parser.add_argument("--student", required=True, help="your student id (letters, digits, ._@+-)")
    parser.add_argument("--out", type=Path, default=None, help="where to write (default: submission/ next to it)")
    parser.add_argument("--profile", default="grading", help="profile of the fresh run (default: grading)")
    parser.add_argument("--no-zip", action="store_true", help="write the folder only")
    parser.add_argument("--cell-timeout", type=int, default=1800, help="seconds one cell may run")


def main(args: argparse.Namespace) -> int:
    from course_utils.notebook.handin import submit  # loads torch: only when the command runs

    try:
        report = submit(
            args.student,
            path=args.notebook,
            out=args.out,
            profile=args.profile,
            zip=not args.no_zip,
            cell_timeout=args.cell_timeout,
        )
    except (ValueError, FileNotFoundError) as error:
        print(f"course submit: {error}")
        return 2
    return 0 if report.ok else 1
