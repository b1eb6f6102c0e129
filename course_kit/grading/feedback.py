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
``<student>.notebook.html`` with nbconvert (in the ``grading`` extra).

An executed notebook is the student's: its outputs, Markdown, metadata (an image's
``width`` or alt text) all end up in the converted page, and nbconvert's templates do not
quote every attribute they build from them. So the whole converted page is passed through
a whitelist sanitizer (:func:`sanitize_page`, with nh3): only formatting tags and harmless
attributes are kept, every ``on*`` attribute, ``<script>``, ``<iframe>``, inline ``<svg>``,
``javascript:`` link and non-image ``data:`` URL goes, and the page is given a Content
Security Policy that lets it run no script and load nothing but its own inline images
and styles. The page is static: no MathJax, widgets or interactive outputs.

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
import re
import sys
from pathlib import Path

from .files import GradebookError, read_gradebook, read_roster_view, write_text
from .gradebook import render_feedback, status_explanation
from .late import late_sentence
from .roster import RosterError

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
    explanation = status_explanation(row)
    who = f"{name} ({row['student']})" if name else row["student"]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Feedback: {e(row.get('assignment', ''))} ({e(who)})</title><style>{STYLE}</style></head><body>",
        f"<h1>Feedback: {e(row.get('assignment', ''))}</h1>",
        f"<p>{e(who)}</p>",
        (
            f'<p class="points">{_number(row["points"])} / {_number(row["max_points"])} points '
            f'<span class="status {e(status)}">{e(status)}</span></p>'
        ),
        f"<p>{e(explanation).replace('`', '')}</p>",
    ]
    if late:
        parts.append(f'<p class="points">{e(late)}</p>')
    if row.get("submission_notes"):
        parts.append(f"<p>Not given to your notebook: {e(row['submission_notes'].removeprefix('left out '))}.</p>")
    checks = row.get("check_results") or []
    if checks:
        parts.append("<table><thead><tr><th>Check</th><th>Points</th><th>Result</th></tr></thead><tbody>")
        for item in checks:
            outcome = "passed" if item["passed"] else "failed"
            message = "" if item["passed"] else f': <span class="message">{e(item["message"])}</span>'
            parts.append(
                f"<tr><td>{e(item['title'])}</td><td>{_number(item['points'])} / "
                f'{_number(item["max_points"])}</td><td class="{outcome}">{outcome}{message}</td></tr>'
            )
        parts.append("</tbody></table>")
    parts += _written_html(row)
    if notebook_link:
        parts.append(f'<p><a href="{e(notebook_link)}">Your notebook as it was graded</a></p>')
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _number(value) -> str:
    return f"{value:g}" if isinstance(value, float) else html.escape(str(value))


def _written_html(row: dict) -> list[str]:
    """The written answers' table (merged by ``course answers merge``): each question's points and comment."""
    written = row.get("written") or {}
    if not written:
        return []
    parts = [
        f"<h2>Written answers ({html.escape(str(row.get('written_status', 'pending')))})</h2>",
        "<table><thead><tr><th>Question</th><th>Points</th><th>Comment</th></tr></thead><tbody>",
    ]
    for qid, item in written.items():
        given = "pending" if item.get("points") is None else _number(item["points"])
        parts.append(
            f"<tr><td>{html.escape(qid)}</td><td>{given} / {_number(item['max_points'])}</td>"
            f'<td class="message">{html.escape(str(item.get("comment") or ""))}</td></tr>'
        )
    return parts + ["</tbody></table>"]


# What a converted notebook may keep: text formatting, tables, lists, images, links, styles.
TAGS = {
    "a",
    "abbr",
    "b",
    "blockquote",
    "br",
    "caption",
    "code",
    "col",
    "colgroup",
    "dd",
    "del",
    "details",
    "div",
    "dl",
    "dt",
    "em",
    "figcaption",
    "figure",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "i",
    "img",
    "ins",
    "kbd",
    "li",
    "main",
    "mark",
    "ol",
    "p",
    "pre",
    "q",
    "s",
    "samp",
    "section",
    "small",
    "span",
    "strong",
    "style",
    "sub",
    "summary",
    "sup",
    "table",
    "tbody",
    "td",
    "tfoot",
    "th",
    "thead",
    "tr",
    "u",
    "ul",
    "var",
}
# Removed with everything inside them (the rest of the unlisted tags lose the tag and keep their text).
DROPPED_WITH_CONTENT = {
    "script",
    "noscript",
    "title",
    "template",
    "iframe",
    "object",
    "embed",
    "svg",
    "math",
    "textarea",
    "select",
    "button",
    "form",
}
ATTRIBUTES = {
    "*": {"class", "id", "title", "lang", "dir", "style", "data-mime-type"},
    "a": {"href"},
    "img": {"src", "alt", "width", "height"},
    "td": {"colspan", "rowspan", "align"},
    "th": {"colspan", "rowspan", "align", "scope"},
    "ol": {"start", "type"},
    "col": {"span"},
    "colgroup": {"span"},
}
# An SVG shown by <img> runs no script of its own (browsers load images without scripts).
_IMAGE_DATA = re.compile(r"data:image/(png|jpeg|gif|webp|svg\+xml);base64,[A-Za-z0-9+/=\s]*", re.IGNORECASE)
_LINK = re.compile(r"(https?:|mailto:|#|[^:/?#]*(/|$|\?|#))", re.IGNORECASE)
# No script at all, nothing fetched from anywhere: only the page's own inline styles and data: images.
POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; form-action 'none'; base-uri 'none'"


def _attribute_filter(tag: str, attribute: str, value: str) -> str | None:
    """Keep an attribute's value, or drop it (None): images only as base64 data:, links only web or local."""
    if tag == "img" and attribute == "src":
        return value if _IMAGE_DATA.fullmatch(value.strip()) else None
    if tag == "a" and attribute == "href":
        return value if _LINK.match(value.strip()) else None
    if attribute in ("width", "height"):
        return value if re.fullmatch(r"\d{1,5}(\.\d+)?(px|%)?", value.strip()) else None
    return value


def sanitize_page(page: str, title: str) -> str:
    """A whole HTML page made safe to open: whitelisted tags and attributes, no script, a strict policy.

    Example:
        >>> page = sanitize_page('<html><head><title>x</title></head><body><p>ok</p><img src=x '
        ...                      'onerror="alert(1)"><a href="javascript:alert(2)">a</a><script>3</script>', "nb")
        >>> page.split("<body>")[1].split("</body>")[0].strip()
        '<p>ok</p><img><a rel="noopener noreferrer">a</a>'
        >>> "Content-Security-Policy" in page.split("<body>")[0]
        True
    """
    import nh3

    cleaned = nh3.clean(
        page,
        tags=TAGS,
        clean_content_tags=DROPPED_WITH_CONTENT,
        attributes=ATTRIBUTES,
        attribute_filter=_attribute_filter,
        url_schemes={"http", "https", "mailto", "data"},
        strip_comments=True,
        link_rel="noopener noreferrer",
    )
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{POLICY}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{html.escape(title)}</title></head><body>",
            cleaned,
            "</body></html>",
            "",
        ]
    )


def notebook_html(path: Path) -> str:
    """An executed notebook as one static HTML page (nbconvert), made safe by :func:`sanitize_page`.

    Raises:
        RosterError: nbconvert or nh3 is not installed (the message says how to install them).
    """
    try:
        import nbformat
        import nh3  # noqa: F401 - checked here, so a missing sanitizer stops before any page is written
        from nbconvert import HTMLExporter
    except ImportError as error:
        raise RosterError(
            f"--html-notebooks needs nbconvert and nh3 ({error}): pip install nbconvert nh3 (both are "
            f"in the kit's grading extra: pip install -e '.[grading]')"
        ) from None
    # nbconvert's own output sanitising stays on; the whole page is sanitised again after it.
    exporter = HTMLExporter(template_name="lab", embed_images=True, sanitize_html=True)
    body, _ = exporter.from_notebook_node(nbformat.read(str(path), as_version=4))
    return sanitize_page(body, f"{path.stem} (as graded)")


def names_by_student(grades_dir: Path) -> dict[str, str]:
    """Roster names of students, when ``roster-grades.json`` exists (else empty)."""
    view = read_roster_view(grades_dir)
    if view is None:
        return {}
    return {
        row["student"]: row["person"].get("name") or ""
        for row in view.get("rows", [])
        if row.get("student") and row.get("person")
    }


def late_by_student(grades_dir: Path) -> dict[str, str]:
    """Each student's late-penalty sentence, when ``roster-grades.json`` has a late policy applied."""
    view = read_roster_view(grades_dir)
    if view is None:
        return {}
    rows = view.get("rows", [])
    return {row["student"]: late_sentence(row) for row in rows if row.get("student") and late_sentence(row)}


def write_feedback(
    grades_dir: Path, out_dir: Path | None = None, fmt: str = "html", notebooks: bool = False, say=print
) -> int:
    """Write one feedback file per graded submission; returns how many were written.

    Args:
        grades_dir: the ``course grade --out`` folder.
        out_dir: where to write (default ``GRADES_DIR/feedback-html`` or ``feedback-md``).
        fmt: ``"html"`` or ``"md"``.
        notebooks: also convert each executed notebook to HTML (``fmt="html"`` only).
        say: receives progress lines.

    Raises:
        GradebookError: no gradebook.
        RosterError: nbconvert or nh3 missing for ``notebooks``.
    """
    data = read_gradebook(grades_dir)
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
    parser.add_argument(
        "--html-notebooks", action="store_true", help="also write each executed notebook as HTML (needs nbconvert)"
    )
    parser.add_argument("--out", metavar="DIR", help="where to write (default GRADES_DIR/feedback-<format>)")


def main(args: argparse.Namespace) -> int:
    """Run ``course feedback``; returns the exit status."""
    if args.html_notebooks and args.format != "html":
        print("course feedback: --html-notebooks goes with --format html", file=sys.stderr)
        return 2
    try:
        write_feedback(Path(args.grades_dir), Path(args.out) if args.out else None, args.format, args.html_notebooks)
    except (RosterError, GradebookError, OSError) as problem:
        print(f"course feedback: {problem}", file=sys.stderr)
        return 2
    return 0
