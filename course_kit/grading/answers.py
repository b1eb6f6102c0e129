"""``course answers``: written answers after ``course grade``: collect them, merge their scores, print PDFs.

    course answers collect GRADES_DIR [--assignment NAME] [--solutions DIR] [--anonymous [--seed N]]
    course answers merge   GRADES_DIR SCORES.csv
    course answers pdf     GRADES_DIR [--assignment NAME] [--solutions DIR] [--out DIR]

* **collect** reads each student's executed notebook and writes ``GRADES_DIR/written/<question>.html``
  (every answer beside the rubric and model answer) and ``GRADES_DIR/written-scores.csv``
  for TAs to fill in (:mod:`~course_kit.grading.written_review`); a rerun keeps every score typed.
* **merge** checks every line of the filled file and adds the scores to the gradebook
  (:mod:`~course_kit.grading.written_merge`): ``written:<question>`` columns, totals that
  ``course export`` and ``course feedback`` use, ``pending`` where a score is missing.
* **pdf** writes one PDF per student, one written question per page, for Gradescope
  (:mod:`~course_kit.grading.written_pdf`).

Exit status: 0 done, 2 nothing written (the message says why).

Example::

    course grade submissions/ --assignment 00_toy --out grades/00
    course answers collect grades/00 --anonymous
    course answers merge grades/00 grades/00/written-scores.csv
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..written import WrittenError
from .files import GradebookError, read_gradebook
from .written_scores import ScoresError


def _solution(args) -> Path:
    """The solution notebook: SOLUTIONS/NAME.ipynb, NAME defaulting to the gradebook's assignment."""
    name = args.assignment or read_gradebook(args.grades_dir).get("assignment")
    return Path(args.solutions) / f"{name}.ipynb"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare ``course answers``' sub-commands and options on ``parser``."""
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, summary in (
        ("collect", "write the review pages and the scores file for TAs"),
        ("merge", "merge a filled scores file into the gradebook"),
        ("pdf", "one PDF per student, one written question per page (Gradescope)"),
    ):
        action = sub.add_parser(name, help=summary, description=summary)
        action.add_argument("grades_dir", metavar="GRADES_DIR", type=Path, help="the course grade --out folder")
        if name == "merge":
            action.add_argument("scores", metavar="SCORES.csv", type=Path, help="the filled written-scores.csv")
            continue
        action.add_argument("--assignment", metavar="NAME", help="notebook name (default: the gradebook's)")
        action.add_argument(
            "--solutions",
            default="solutions",
            metavar="DIR",
            help="where NAME.ipynb, with the model answers and rubrics, is (default: ./solutions)",
        )
        if name == "collect":
            action.add_argument(
                "--anonymous",
                action="store_true",
                help="name students by stable opaque ids and shuffle each page's order",
            )
            action.add_argument("--seed", type=int, default=0, help="the shuffle's seed (default 0)")
        else:
            action.add_argument("--out", metavar="DIR", type=Path, help="where the PDFs go (GRADES_DIR/written-pdf)")


def main(args: argparse.Namespace) -> int:
    """Run ``course answers ACTION``; returns the exit status."""
    from . import written_merge, written_pdf, written_review

    try:
        if args.action == "merge":
            written_merge.merge(args.grades_dir, args.scores)
        elif args.action == "collect":
            written_review.write_review(args.grades_dir, _solution(args), args.anonymous, args.seed)
        else:
            collected = written_review.collect(args.grades_dir, _solution(args))
            written_pdf.write_pdfs(collected, args.grades_dir, args.out)
    except (GradebookError, WrittenError, ScoresError, RuntimeError, OSError) as problem:
        print(f"course answers {args.action}: {problem}", file=sys.stderr)
        return 2
    return 0
