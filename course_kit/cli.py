"""The ``course`` command: one sub-command per instructor/CI task.

Each sub-command lives in its own module exposing ``add_arguments(parser)`` and
``main(args) -> int``; this file only wires them up, importing a module when its
command runs (so ``course --help`` stays fast).
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = {
    # name: (module, one-line help)
    "run": ("course_kit.runner", "execute notebooks headless with papermill into runs/<profile>-<time>/"),
    "release": ("course_kit.release", "write the student notebooks/ from solutions/"),
    "references": ("course_kit.references", "re-execute solutions in the smoke profile as nbval references"),
    "grade": ("course_kit.grading.cli", "grade student submissions into a gradebook"),
    "export": ("course_kit.grading.exports", "write a gradebook as a Canvas, Moodle or plain CSV import file"),
    "autograder": ("course_kit.grading.autograder", "build a Gradescope autograder zip from the hidden checks"),
    "answers": ("course_kit.grading.answers", "written answers: review pages and scores file, merge scores, PDFs"),
    "feedback": ("course_kit.grading.feedback", "write one HTML (or Markdown) feedback file per student"),
    "fetch": ("course_kit.fetch", "download CIFAR-10 and ImageNet weights ahead of an offline session"),
    "submit": (
        "course_kit.submit",
        "re-run a notebook in a fresh kernel (grading profile) and write the hand-in folder/zip",
    ),
    "pair": (
        "course_kit.pairing",
        "write the reviewable py:percent files of solutions/ (jupytext); --check finds stale ones",
    ),
    "bench": ("course_kit.bench", "side-by-side speed benchmark of the seed-style and the kit's data paths"),
}


def build_parser(load: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="course", description="Transfer-learning course kit.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, summary) in COMMANDS.items():
        command_parser = sub.add_parser(name, help=summary, description=summary)
        if name == load:
            importlib.import_module(module).add_arguments(command_parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if not a.startswith("-")), None)
    if command not in COMMANDS:
        build_parser().print_help()
        return 0 if command is None and ("-h" in argv or "--help" in argv) else 2
    args = build_parser(load=command).parse_args(argv)
    module = importlib.import_module(COMMANDS[command][0])
    return int(module.main(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
