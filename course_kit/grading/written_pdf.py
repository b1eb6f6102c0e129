"""One PDF per student with one written question per page, for Gradescope's manual grading.

Gradescope grades a PDF question by question once each question is given its pages; with
every student's PDF laid out the same way (page N is question N, in notebook order, a
blank answer still getting its page), the pages of one template fit every submission.
This is otter-grader's approach to manual questions (a PDF of them beside the autograder
zip), without LaTeX: fpdf2 (pure Python, the ``grading`` extra) with the DejaVu Sans font
matplotlib ships, so any language's text prints.

Each page: the assignment, the question's id, points and text, then the student's answer
as plain text (Markdown is not rendered). An answer too long for its page is set in a
smaller type, down to 6 pt; what still does not fit is cut, and the page says so and
points to the review page.

Example::

    course answers pdf grades/00 --assignment 00_toy     # grades/00/written-pdf/<student>.pdf
"""

from __future__ import annotations

import re
from pathlib import Path

from .feedback import safe_file_name
from .files import replacing
from .written_review import NO_CELL, NO_NOTEBOOK, Collected

PDF_DIR = "written-pdf"
SIZES = (11, 10, 9, 8, 7, 6)  # the answer's type size, the first that fits the page
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # no glyph and no meaning on paper
_CUT = "[The answer continues beyond this page: see written/{qid}.html for all of it.]"


def _font_file() -> Path:
    """DejaVu Sans from matplotlib's own data (a base dependency), so no system font is needed."""
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"


def _new_pdf():
    try:
        from fpdf import FPDF
    except ImportError:
        raise RuntimeError(
            "course answers pdf needs fpdf2: pip install fpdf2 (in the kit's grading extra: "
            "pip install -e '.[grading]')"
        ) from None
    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(False)  # one page per question, always: a long answer shrinks, never spills over
    pdf.add_font("DejaVu", "", str(_font_file()))
    pdf.set_margins(18, 18, 18)
    return pdf


def _fits(pdf, text: str, size: int, bottom: float) -> bool:
    pdf.set_font("DejaVu", size=size)
    lines = pdf.multi_cell(0, size * 0.5, text, dry_run=True, output="LINES")
    return pdf.get_y() + len(lines) * size * 0.5 <= bottom


def _answer_page(pdf, assignment: str, who: str, asked, answer: str) -> None:
    """One page: the question, then the answer in the largest type that fits (cut with a note if none does)."""
    answer = _CONTROL.sub(" ", answer.replace("\t", "    "))
    pdf.add_page()
    pdf.set_font("DejaVu", size=9)
    pdf.multi_cell(0, 5, f"{assignment} · {who}", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("DejaVu", size=13)
    pdf.multi_cell(0, 7, f"Question {asked.id} ({asked.points:g} points)", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("DejaVu", size=10)
    pdf.multi_cell(0, 5, asked.prompt, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    pdf.line(pdf.l_margin, pdf.get_y(), pdf.w - pdf.r_margin, pdf.get_y())
    pdf.ln(3)
    bottom = pdf.h - pdf.b_margin
    size = next((s for s in SIZES if _fits(pdf, answer, s, bottom)), None)
    if size is None:
        size = SIZES[-1]
        pdf.set_font("DejaVu", size=size)
        lines = pdf.multi_cell(0, size * 0.5, answer, dry_run=True, output="LINES")
        room = int((bottom - pdf.get_y()) // (size * 0.5)) - 2
        answer = "\n".join(lines[: max(room, 0)]) + "\n" + _CUT.format(qid=asked.id)
    pdf.set_font("DejaVu", size=size)
    pdf.multi_cell(0, size * 0.5, answer, new_x="LMARGIN", new_y="NEXT")


def write_pdfs(collected: Collected, grades_dir: Path, out_dir: Path | None = None, say=print) -> list[Path]:
    """Write ``<student>.pdf`` (one page per written question) for every collected student; returns the files."""
    out_dir = Path(out_dir or Path(grades_dir) / PDF_DIR)
    written = []
    for student in sorted(collected.answers):
        pdf = _new_pdf()
        pdf.set_title(f"{collected.assignment}: written answers of {student}")
        for asked in collected.questions:
            answer = collected.answers[student][asked.id]
            if not answer:
                answer = (
                    NO_NOTEBOOK if student in collected.no_notebook else NO_CELL if answer is None else "(left blank)"
                )
            _answer_page(pdf, collected.assignment, student, asked, answer)
        target = out_dir / f"{safe_file_name(student)}.pdf"
        with replacing(target) as temporary:
            pdf.output(str(temporary))
        written.append(target)
    say(f"wrote {len(written)} PDF(s) to {out_dir} ({len(collected.questions)} page(s) each, one per question)")
    return written
