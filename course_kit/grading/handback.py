"""``course feedback``: one file per student to hand back, from the gradebook.

    course feedback GRADES_DIR [--format html|md] [--html-notebooks] [--out DIR]

Writes ``GRADES_DIR/feedback-html/<student>.html`` (or ``feedback-md/<student>.md``) for
every graded submission: the student's name when a roster was applied
(``roster-grades.json``), the status in words, the points and each hidden check's title
and feedback message, the same content as ``feedback/<student>.md`` and never check code
or expected values; under a late policy, also the penalty (days late, percent, the total
before and after). The HTML is a single file with its style inline and every text
escaped (messages can quote the student's own values), so it can be mailed or uploaded as
it is. ``--html-notebooks`` also converts ``executed/<student>.ipynb`` to
``<student>.notebook.html`` with nbconvert (in the ``grading`` extra), with the notebook's
HTML outputs sanitised.

Example:
    >>> row = {"student": "s1", "assignment": "00_toy", "status": "error", "points": 1, "max_points": 2,
    ...        "detail": "cell In [3] raised ValueError: <b>", "check_results": []}
    >>> page = render_html(row, name="Ana")
    >>> "&lt;b&gt;" in page and "<b>" not in page
    True
"""
from __future__ import annotations

import argparse
import html
import json
import re
import sys
from pathlib import Path

from .gradebook import STATUS_TEXT, render_feedback
from .late import late_sentence
from .roster import RosterError, load_gradebook, write_text

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 52rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
h1 { font-size: 1.4rem; } .points { font-size: 1.2rem; font-weight: 600; }
.status { display: inline-block; padding: .1rem .5rem; border-radius: .3rem; background: #eee; font-family: monospace; }
.status.ok { background: #d8f0d8; } table { border-collapse: collapse; width: 100%; margin-top: 1rem; }
th, td { text-align: left; border-bottom: 1px solid #ddd; padding: .4rem; vertical-align: top; }
td.passed { color: #17641b; } td.failed { color: #a11; } .message { white-space: pre-wrap; }
"""


def safe_file_name(student: str) -> str:
    """A file name for a student id (ids are file-name safe already; this keeps it so).

    Example:
        >>> safe_file_name("josé_martínez"), safe_file_name("../x")
        ('josé_martínez', '_.._x')
    """
    name = re.sub(r"[/\\\0]", "_", student)
    return "_" + name if name.startswith(".") or not name else name


def render_html(row: dict, name: str | None = None, notebook_link: str | None = None, late: str = "") -> str:
    """The student's feedback page as self-contained HTML (everything escaped).

    Args:
        row: a gradebook row with ``check_results`` (as in ``grades.json``).
        name: the student's name from the roster, if known.
        notebook_link: a relative link to the executed notebook's HTML, if written.
        late: the late penalty sentence (:func:`~course_kit.grading.late.late_sentence`), if any.

    Returns:
        The HTML text.
    """
    def e(value) -> str:
        return html.escape(str(value), quote=True)

    status = row["status"]
    explanation = STATUS_TEXT.get(status, status).format(detail=row.get("detail") or status)
    who = f"{name} ({row['student']})" if name else row["student"]
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Feedback: {e(row.get('assignment', ''))} ({e(who)})</title><style>{STYLE}</style></head><body>",
        f"<h1>Feedback: {e(row.get('assignment', ''))}</h1>", f"<p>{e(who)}</p>",
        (f'<p class="points">{_number(row["points"])} / {_number(row["max_points"])} points '
         f'<span class="status {e(status)}">{e(status)}</span></p>'),
        f"<p>{e(explanation).replace('`', '')}</p>",
    ] + ([f'<p class="points">{e(late)}</p>'] if late else [])
    checks = row.get("check_results") or []
    if checks:
        parts.append("<table><thead><tr><th>Check</th><th>Points</th><th>Result</th></tr></thead><tbody>")
        for item in checks:
            outcome = "passed" if item["passed"] else "failed"
            message = "" if item["passed"] else f': <span class="message">{e(item["message"])}</span>'
            parts.append(f"<tr><td>{e(item['title'])}</td><td>{_number(item['points'])} / "
                         f"{_number(item['max_points'])}</td><td class=\"{outcome}\">{outcome}{message}</td></tr>")
        parts.append("</tbody></table>")
    if notebook_link:
        parts.append(f'<p><a href="{e(notebook_link)}">Your notebook as it was graded</a></p>')
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _number(value) -> str:
    return f"{value:g}" if isinstance(value, float) else html.escape(str(value))


def notebook_html(path: Path) -> str:
    """An executed notebook as one HTML page (nbconvert), its HTML and JavaScript outputs sanitised.

    Raises:
        RosterError: nbconvert is not installed (the message says how to install it).
    """
    try:
        import nbformat
        from nbconvert import HTMLExporter
    except ImportError:
        raise RosterError("--html-notebooks needs nbconvert: pip install nbconvert (it is in the kit's "
                          "grading extra: pip install -e '.[grading]')") from None
    if "sanitize_html" not in HTMLExporter.class_trait_names():
        # Without it, a student's HTML or JavaScript output would run in whoever opens the page.
        raise RosterError("--html-notebooks needs an nbconvert that sanitises HTML: pip install -U nbconvert")
    exporter = HTMLExporter(template_name="lab", embed_images=True, sanitize_html=True)
    body, _ = exporter.from_notebook_node(nbformat.read(str(path), as_version=4))
    return body


def names_by_student(grades_dir: Path) -> dict[str, str]:
    """Roster names of students, when ``roster-grades.json`` exists (else empty)."""
    path = grades_dir / "roster-grades.json"
    if not path.exists():
        return {}
    view = json.loads(path.read_text(encoding="utf-8"))
    return {row["student"]: row["person"].get("name") or "" for row in view.get("rows", [])
            if row.get("student") and row.get("person")}


def late_by_student(grades_dir: Path) -> dict[str, str]:
    """Each student's late-penalty sentence, when ``roster-grades.json`` has a late policy applied."""
    path = grades_dir / "roster-grades.json"
    if not path.exists():
        return {}
    rows = json.loads(path.read_text(encoding="utf-8")).get("rows", [])
    return {row["student"]: late_sentence(row) for row in rows if row.get("student") and late_sentence(row)}


def write_feedback(grades_dir: Path, out_dir: Path | None = None, fmt: str = "html", notebooks: bool = False,
                   say=print) -> int:
    """Write one feedback file per graded submission; returns how many were written.

    Args:
        grades_dir: the ``course grade --out`` folder.
        out_dir: where to write (default ``GRADES_DIR/feedback-html`` or ``feedback-md``).
        fmt: ``"html"`` or ``"md"``.
        notebooks: also convert each executed notebook to HTML (``fmt="html"`` only).
        say: receives progress lines.

    Raises:
        RosterError: no gradebook, or nbconvert missing for ``notebooks``.
    """
    data = load_gradebook(grades_dir)
    out_dir = out_dir or grades_dir / f"feedback-{fmt}"
    names = names_by_student(grades_dir)
    late = late_by_student(grades_dir)
    written = 0
    for row in data["rows"]:
        student = row["student"]
        base = safe_file_name(student)
        name = names.get(student)
        if fmt == "md":
            text = render_feedback(row, row.get("check_results") or [])
            if name:
                text = text.replace(f"({student})", f"({name}, {student})", 1)
            if late.get(student):
                text = text.rstrip("\n") + f"\n\n**{late[student]}**\n"
            write_text(out_dir / f"{base}.md", text)
        else:
            link = None
            executed = grades_dir / "executed" / f"{student}.ipynb"
            if notebooks and executed.is_file():
                write_text(out_dir / f"{base}.notebook.html", notebook_html(executed))
                link = f"{base}.notebook.html"
            write_text(out_dir / f"{base}.html", render_html(row, name, link, late.get(student, "")))
        written += 1
    say(f"wrote {written} feedback file(s) to {out_dir}")
    return written


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare ``course feedback``'s options on ``parser``."""
    parser.add_argument("grades_dir", metavar="GRADES_DIR", help="the course grade --out folder")
    parser.add_argument("--format", choices=["html", "md"], default="html", help="file type (default html)")
    parser.add_argument("--html-notebooks", action="store_true",
                        help="also write each executed notebook as HTML (needs nbconvert)")
    parser.add_argument("--out", metavar="DIR", help="where to write (default GRADES_DIR/feedback-<format>)")


def main(args: argparse.Namespace) -> int:
    """Run ``course feedback``; returns the exit status."""
    if args.html_notebooks and args.format != "html":
        print("course feedback: --html-notebooks goes with --format html", file=sys.stderr)
        return 2
    try:
        write_feedback(Path(args.grades_dir), Path(args.out) if args.out else None, args.format, args.html_notebooks)
    except (RosterError, OSError) as problem:
        print(f"course feedback: {problem}", file=sys.stderr)
        return 2
    return 0
