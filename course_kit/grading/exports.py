"""``course export``: the gradebook as files that Canvas, Moodle or a spreadsheet import.

    course export canvas GRADES_DIR --canvas-export Grades-Course.csv [--column NAME] [--max-points N]
    course export moodle GRADES_DIR [--identifier email|idnumber|username] [--max-points N]
    course export csv    GRADES_DIR [--max-points N]

Which rows: ``GRADES_DIR/roster-grades.json`` (one row per roster person, written by
``course grade --roster`` or ``--roster`` here) when it exists, else ``grades.json`` (one row
per submission). For Canvas without a roster, the downloaded Canvas export serves as the
roster: submissions are matched to its people by ID, SIS ids, login or name
(see :mod:`~course_kit.grading.roster`).

* **canvas** fills one assignment column into the gradebook CSV you downloaded from
  Canvas (Grades > Export): its header row and the rows Canvas puts under it (``Points
  Possible``, posting policies) are kept; a Canvas row gets the grade of the person whose
  SIS User ID, SIS Login ID (or e-mail) or ID it carries. Only the identity columns
  (Student ... Section) and that one column are written unless ``--all-columns``: an
  upload then cannot overwrite grades someone changed in Canvas since the download. A
  Canvas student without a grade here keeps the value the export had, and so does a
  ``missing`` person who already has a grade in Canvas (work handed in another way). ``--column`` names
  an existing column (``"00_toy (1234)"`` or just ``00_toy``); another name makes Canvas
  create a new assignment. Points scale to the column's Points Possible unless
  ``--max-points`` says otherwise.
* **moodle** writes ``<identifier>,grade`` for Moodle's *Import grades > CSV file*, where
  you map the first column to the user field (email address, ID number or username) and
  ``grade`` to the grade item. It needs a roster for the identifiers.
* **csv** writes ``student, name, email, id, section, points, max_points, percentage,
  status, late, missing, matched_by, file_name, detail``, one line per person (or
  submission), then the submissions the roster could not place (``matched_by`` =
  ``unmatched`` or ``ambiguous``).

Missing and late are explicit: a ``missing`` person gets 0 (``--missing blank`` leaves the
grade empty instead), and ``late`` comes from the roster (see the roster module); late
work is not penalised here, the LMS's late policy or yours applies. Rows that are
``ambiguous`` or ``grader-error`` get no grade and are listed. Output files are new files
(default next to the gradebook: ``canvas-upload.csv``, ``moodle-grades.csv``,
``grades-export.csv``); the inputs are never overwritten.

Exit status: 0 all exported, 1 exported with problems listed (unmatched, ambiguous, rows
without a grade), 2 nothing written.

Example:
    >>> scale_points(4.5, 6, 100)
    75.0
    >>> format_number(75.0), format_number(2 / 3)
    ('75', '0.67')
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import io
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .files import GradebookError, csv_lines, csv_text, read_gradebook, read_roster_view, write_text
from .roster import (RosterError, add_roster_arguments, apply_roster, parse_roster, reconcile, roster_options,
                     submission_name)

CANVAS_IDENTITY = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")
MOODLE_IDENTIFIERS = {"email": ("email",), "idnumber": ("id", "sis_id"), "username": ("login",)}
NO_GRADE = {"ambiguous", "grader-error"}
PLAIN_COLUMNS = ["student", "name", "email", "id", "section", "points", "max_points", "percentage", "status", "late",
                 "missing", "matched_by", "file_name", "detail"]
DEFAULT_NAMES = {"canvas": "canvas-upload.csv", "moodle": "moodle-grades.csv", "csv": "grades-export.csv"}


class ExportError(ValueError):
    """An export cannot be written; the message says how to fix the input."""


@dataclass
class Report:
    """What an export did, for the command's summary and exit status."""

    written: int = 0
    missing: int = 0
    late: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- numbers
def scale_points(points, max_points, lms_max=None) -> float:
    """``points`` of ``max_points`` on the LMS's scale (``lms_max``; None keeps the points).

    Example:
        >>> scale_points(3, 6, 10), scale_points(3, 6), scale_points(0, 0, 10)
        (5.0, 3.0, 0.0)
    """
    points = float(points or 0)
    if lms_max is None:
        return points
    return float(lms_max) * points / float(max_points) if max_points else 0.0


def format_number(value: float, decimals: int = 2) -> str:
    """A grade as LMS import files want it: a dot, at most ``decimals`` places, no trailing zeros.

    Example:
        >>> format_number(5.0), format_number(4.125, 2), format_number(1 / 3, 3)
        ('5', '4.12', '0.333')
    """
    text = f"{round(float(value), decimals):.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def percentage(points, max_points) -> float:
    """Points as a percentage of the maximum, 0 for an assignment worth nothing."""
    return round(100.0 * float(points or 0) / float(max_points), 2) if max_points else 0.0


def _grade_text(row: dict, lms_max, decimals: int, missing: str) -> str | None:
    """The grade cell for one row, or None when it must not get one (ambiguous, grader-error)."""
    if row.get("status") in NO_GRADE:
        return None
    if row.get("status") == "missing" and missing == "blank":
        return ""
    return format_number(scale_points(row.get("points"), row.get("max_points"), lms_max), decimals)


# --------------------------------------------------------------------------- rows
def load_rows(grades_dir: Path) -> tuple[dict, list[dict], list[dict], bool]:
    """``(gradebook, rows, unplaced, from_roster)`` for an export.

    ``rows`` are the roster's people when ``roster-grades.json`` exists and matches the
    current ``grades.json``, else the submissions; ``unplaced`` are the submissions the
    roster could not place (unmatched and ambiguous).

    Raises:
        GradebookError: no gradebook, or a roster view that cannot be read.
        RosterError: a roster view older than the gradebook.
    """
    data = read_gradebook(grades_dir)
    view = read_roster_view(grades_dir)
    roster_file = grades_dir / "roster-grades.json"
    if view is None:
        return data, data["rows"], [], False
    current = hashlib.sha256((grades_dir / "grades.json").read_bytes()).hexdigest()
    if view.get("grades_sha256") != current:
        raise RosterError(f"{roster_file} was made from an older grades.json: apply the roster again "
                          f"(add --roster {view.get('roster') or 'ROSTER.csv'})")
    return data, view["rows"], unplaced_rows(view.get("unmatched", []), view.get("ambiguous", [])), True


def unplaced_rows(unmatched: list[dict], ambiguous: list[dict]) -> list[dict]:
    """The submissions a roster could not place, each with ``placement`` (unmatched/ambiguous) and ``problem``."""
    return ([dict(row, placement="unmatched") for row in unmatched]
            + [dict(item["row"], placement="ambiguous", problem=item["reason"]) for item in ambiguous])


# --------------------------------------------------------------------------- canvas
def _column_name(header: str) -> str:
    """A Canvas assignment header without its id: ``"Lab 1 (123)"`` -> ``"Lab 1"``."""
    return re.sub(r"\s*\(\d+\)\s*$", "", header).strip()


def _find_column(header: list[str], wanted: str) -> int | None:
    if wanted in header:
        return header.index(wanted)
    hits = [i for i, name in enumerate(header) if _column_name(name).casefold() == wanted.strip().casefold()]
    if len(hits) > 1:
        raise ExportError(f"the Canvas export has several columns named {wanted!r} ("
                          + ", ".join(header[i] for i in hits) + "): pass --column with the full header")
    return hits[0] if hits else None


def _person_keys(person: dict) -> dict[str, set[str]]:
    """Identifiers of a person, by the Canvas column each may equal (case-folded)."""
    fold = {key: str(person.get(key) or "").strip().casefold() for key in ("id", "sis_id", "login", "email")}
    keys: dict[str, set[str]] = {"ID": set(), "SIS User ID": set(), "SIS Login ID": set()}
    if fold["sis_id"]:
        keys["SIS User ID"].add(fold["sis_id"])
    for value in (fold["login"], fold["email"]):
        if value:
            keys["SIS Login ID"].add(value)
    if fold["id"]:  # a roster id may be Canvas's ID or the institution's (SIS) id
        for column in keys:
            keys[column].add(fold["id"])
    return keys


def canvas_export(rows: list[dict], canvas_text: str, *, column: str, lms_max: float | None = None,
                  decimals: int = 2, missing: str = "zero", all_columns: bool = False) -> tuple[str, Report]:
    """Fill one assignment column into a Canvas gradebook export; a pure function on text.

    Args:
        rows: rows with a ``person`` (roster rows); a row's person is found in the Canvas
            file by SIS User ID, SIS Login ID (login or e-mail) or ID.
        canvas_text: the CSV Canvas exported (header, then ``Points Possible`` and similar rows).
        column: the assignment column: an existing header (with or without its ``(id)``)
            or a new name.
        lms_max: points of the Canvas assignment (default: the column's Points Possible, else unscaled).
        decimals: places of the scaled points.
        missing: ``"zero"`` or ``"blank"`` for people without a submission.
        all_columns: keep every column of the export (default: identity columns and ``column``).

    Returns:
        ``(csv_text, report)``.

    Example:
        >>> canvas = ("Student,ID,SIS User ID,SIS Login ID,Section,Lab (77)\\n"
        ...           "    Points Possible,,,,,10.00\\n"
        ...           '"Li, Bo",101,S1,bo@uni.edu,A,\\n')
        >>> rows = [{"person": {"sis_id": "s1"}, "status": "ok", "points": 3, "max_points": 6}]
        >>> text, report = canvas_export(rows, canvas, column="Lab")
        >>> print(text, end="")
        Student,ID,SIS User ID,SIS Login ID,Section,Lab (77)
            Points Possible,,,,,10.00
        "Li, Bo",101,S1,bo@uni.edu,A,5
    """
    report = Report()
    records = list(csv.reader(io.StringIO(canvas_text.lstrip("\ufeff"))))
    if not records:
        raise ExportError("the Canvas export is empty: download it again from Canvas (Grades > Export)")
    header = records[0]
    missing_columns = [name for name in CANVAS_IDENTITY if name not in header]
    if missing_columns:
        raise ExportError(f"not a Canvas gradebook export: no {', '.join(missing_columns)} column(s) (it has "
                          f"{', '.join(header[:8])}...); download it from Canvas (Grades > Export)")
    at = {name: header.index(name) for name in CANVAS_IDENTITY}
    identity_end = at["Section"] + 1
    # Rows under the header that are not students: Points Possible, posting policies.
    top = 1
    while top < len(records) and not any(_cell(records[top], at[n]) for n in ("ID", "SIS User ID", "SIS Login ID")):
        top += 1
    target = _find_column(header, column)
    if target is None:
        header = header + [column]
        target = len(header) - 1
        for index, record in enumerate(records[1:top], start=1):
            first = record[0].strip().casefold() if record else ""
            records[index] = _padded(record, target) + ([format_number(lms_max, decimals)]
                                                        if first == "points possible" and lms_max is not None else [""])
        report.notes.append(f"new Canvas column {column!r}: Canvas creates the assignment on upload")
    else:
        possible = next((_cell(r, target) for r in records[1:top]
                         if r and r[0].strip().casefold() == "points possible"), "")
        if "read only" in possible.casefold():
            raise ExportError(f"the Canvas column {header[target]!r} is read-only (a total or computed column)")
        try:
            canvas_max = float(possible) if possible.strip() else None
        except ValueError:
            canvas_max = None
        if lms_max is None and canvas_max is not None:
            lms_max = canvas_max
            report.notes.append(f"points scaled to Canvas's {format_number(canvas_max)} points possible")
        elif lms_max is not None and canvas_max is not None and abs(lms_max - canvas_max) > 1e-9:
            report.notes.append(f"warning: --max-points {format_number(lms_max)} differs from the Canvas column's "
                                f"{format_number(canvas_max)} points possible")

    people = [row for row in rows if row.get("person")]
    by_key: dict[tuple[str, str], set[int]] = {}
    for n, row in enumerate(people):
        for col, values in _person_keys(row["person"]).items():
            for value in values:
                by_key.setdefault((col, value), set()).add(n)
    claimed: dict[int, list[int]] = {}
    matches: dict[int, list[int]] = {}
    for index in range(top, len(records)):
        record = records[index]
        found = sorted({n for col in ("ID", "SIS User ID", "SIS Login ID") if _cell(record, at[col])
                        for n in by_key.get((col, _cell(record, at[col]).casefold()), ())})
        matches[index] = found
        for n in found:
            claimed.setdefault(n, []).append(index)
    for index in range(top, len(records)):
        record = _padded(records[index], len(header))
        records[index] = record
        name = record[at["Student"]]
        found = matches[index]
        if len(found) > 1:
            report.problems.append(f"Canvas student {name!r} matches {len(found)} roster rows; left unchanged")
            continue
        if not found:
            continue
        if len(claimed[found[0]]) > 1:
            report.problems.append(f"Canvas student {name!r} shares identifiers with another Canvas row; left "
                                   f"unchanged")
            continue
        row = people[found[0]]
        grade = _grade_text(row, lms_max, decimals, missing)
        if row.get("status") == "missing" and record[target].strip():
            # Someone graded this in Canvas (work handed in another way): never replace it with a 0.
            report.notes.append(f"Canvas student {name!r} has no submission here but a grade in Canvas "
                                f"({record[target].strip()}); kept")
            continue
        if grade is None:
            report.problems.append(f"Canvas student {name!r}: status {row.get('status')}, no grade written "
                                   f"({row.get('detail') or 'see the gradebook'})")
            continue
        record[target] = grade
        report.written += 1
        report.missing += row.get("status") == "missing"
        report.late += bool(row.get("late"))
    for n, row in enumerate(people):
        if n not in claimed:
            person = row["person"]
            text = f"{person.get('name') or person.get('key')!r} ({row.get('status')}) is not in the Canvas export"
            if row.get("status") == "missing":
                report.notes.append(text)  # no grade is lost
            else:
                report.problems.append(text + "; no grade written")
    ungraded = sum(1 for index in range(top, len(records)) if not matches[index])
    if ungraded:
        report.notes.append(f"{ungraded} Canvas student(s) have no row here and keep their current value")
    keep = list(range(len(header))) if all_columns else list(range(identity_end)) + [target]
    lines = [[_padded(record, len(header))[i] for i in keep] for record in [header] + records[1:]]
    return csv_lines(lines), report


def _cell(record: list[str], index: int) -> str:
    return record[index].strip() if index < len(record) else ""


def _padded(record: list[str], size: int) -> list[str]:
    return list(record) + [""] * (size - len(record))


# --------------------------------------------------------------------------- moodle, plain csv
def moodle_export(rows: list[dict], *, identifier: str = "email", lms_max: float | None = None, decimals: int = 2,
                  missing: str = "zero") -> tuple[str, Report]:
    """``<identifier>,grade`` lines for Moodle's CSV grade import; a pure function.

    Args:
        rows: rows with a ``person`` (roster rows).
        identifier: ``email``, ``idnumber`` (the roster's id, else SIS id) or ``username`` (login).
        lms_max: the Moodle grade item's maximum (default: the kit's points, unscaled).
        decimals: places of the scaled points.
        missing: ``"zero"``, or ``"blank"`` to leave people without a submission out.

    Returns:
        ``(csv_text, report)``.

    Example:
        >>> rows = [{"person": {"email": "Ana@Uni.edu"}, "status": "ok", "points": 6, "max_points": 6},
        ...         {"person": {"email": "bo@uni.edu"}, "status": "missing", "points": 0, "max_points": 6}]
        >>> moodle_export(rows, lms_max=10)[0].splitlines()
        ['email,grade', 'Ana@Uni.edu,10', 'bo@uni.edu,0']
    """
    if identifier not in MOODLE_IDENTIFIERS:
        raise ExportError(f"--identifier {identifier}: choose one of {', '.join(MOODLE_IDENTIFIERS)}")
    report = Report()
    lines = [[identifier, "grade"]]
    for row in rows:
        person = row.get("person") or {}
        value = next((str(person[k]).strip() for k in MOODLE_IDENTIFIERS[identifier] if person.get(k)), "")
        label = person.get("name") or person.get("key") or row.get("student")
        if not value:
            report.problems.append(f"{label!r} has no {identifier} in the roster; no grade written")
            continue
        grade = _grade_text(row, lms_max, decimals, missing)
        if grade is None:
            report.problems.append(f"{label!r}: status {row.get('status')}, no grade written")
            continue
        if grade == "":
            continue
        lines.append([value, grade])
        report.written += 1
        report.missing += row.get("status") == "missing"
        report.late += bool(row.get("late"))
    return csv_lines(lines), report


def plain_export(rows: list[dict], unplaced: list[dict] = (), *, lms_max: float | None = None,
                 decimals: int = 2) -> tuple[str, Report]:
    """A plain CSV of every row: points (scaled to ``lms_max`` if given), percentage, status, late, missing.

    Example:
        >>> rows = [{"student": "s1", "status": "ok", "points": 3, "max_points": 6, "late": True}]
        >>> plain_export(rows, lms_max=10)[0].splitlines()[1]
        's1,,,,,5,10,50,ok,yes,no,,s1,'
    """
    report = Report()
    records = []
    for row, placed in [(r, True) for r in rows] + [(r, False) for r in unplaced]:
        person = row.get("person") or {}
        maximum = row.get("max_points")
        scaled_max = maximum if lms_max is None else lms_max
        late = row.get("late")
        records.append({
            "student": row.get("student", ""), "name": person.get("name", ""), "email": person.get("email", ""),
            "id": person.get("id") or person.get("sis_id", ""), "section": person.get("section", ""),
            "points": format_number(scale_points(row.get("points"), maximum, lms_max), decimals),
            "max_points": format_number(float(scaled_max or 0), decimals),
            "percentage": format_number(percentage(row.get("points"), maximum), 2),
            "status": row.get("status", ""), "late": "" if late is None else ("yes" if late else "no"),
            "missing": "yes" if row.get("status") == "missing" else "no",
            "matched_by": row.get("matched_by", "") if placed else row.get("placement", "unmatched"),
            "file_name": submission_name(row) if row.get("student") else "", "detail": row.get("detail") or "",
        })
        report.written += 1
        report.missing += row.get("status") == "missing"
        report.late += bool(late)
        if not placed:
            report.problems.append(f"{submission_name(row)!r} is {row.get('placement', 'unmatched')} on the roster "
                                   f"({row.get('problem') or 'see unmatched.csv'}); kept in the file")
    return csv_text(PLAIN_COLUMNS, records), report


# --------------------------------------------------------------------------- command
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare ``course export``'s options on ``parser``."""
    parser.add_argument("format", choices=["canvas", "moodle", "csv"], help="what the file is for")
    parser.add_argument("grades_dir", metavar="GRADES_DIR", help="the course grade --out folder")
    parser.add_argument("--out", metavar="FILE", help="where to write (default: GRADES_DIR/" +
                        ", ".join(f"{n} for {f}" for f, n in DEFAULT_NAMES.items()) + ")")
    parser.add_argument("--max-points", type=float, metavar="N",
                        help="scale points to the LMS's maximum (Canvas default: the column's Points Possible)")
    parser.add_argument("--decimals", type=int, default=2, help="decimal places of scaled points (default 2)")
    parser.add_argument("--missing", choices=["zero", "blank"], default="zero",
                        help="grade of a roster person without a submission (default zero)")
    parser.add_argument("--canvas-export", metavar="CSV", help="canvas: the gradebook CSV downloaded from Canvas")
    parser.add_argument("--column", metavar="NAME",
                        help="canvas: the assignment column (default: the gradebook's assignment name)")
    parser.add_argument("--all-columns", action="store_true",
                        help="canvas: keep every column of the export (default: identity columns and this one)")
    parser.add_argument("--identifier", choices=sorted(MOODLE_IDENTIFIERS), default="email",
                        help="moodle: the user field the first column holds (default email)")
    add_roster_arguments(parser)


def _refuse_inputs(out: Path, inputs: list[Path]) -> None:
    for path in inputs:
        if path.exists() and out.resolve() == path.resolve():
            raise ExportError(f"--out {out} is an input ({path.name}); write the export to a new file")


def main(args: argparse.Namespace) -> int:
    """Run ``course export``; returns the exit status."""
    grades_dir = Path(args.grades_dir)
    out = Path(args.out) if args.out else grades_dir / DEFAULT_NAMES[args.format]
    try:
        inputs = [grades_dir / n for n in ("grades.json", "grades.csv", "roster-grades.json", "roster-grades.csv",
                                           "unmatched.csv")]
        inputs += [Path(p) for p in (args.canvas_export, args.roster) if p]
        _refuse_inputs(out, inputs)
        if args.roster:
            apply_roster(grades_dir, Path(args.roster), print, **roster_options(args))
        data, rows, unplaced, from_roster = load_rows(grades_dir)
        assignment = data.get("assignment") or ""
        if args.format == "canvas":
            if not args.canvas_export:
                raise ExportError("canvas needs --canvas-export FILE: in Canvas, Grades > Export > Export Entire "
                                  "Gradebook, then pass the downloaded CSV")
            raw = Path(args.canvas_export).read_bytes()
            try:
                canvas_text = raw.decode("utf-8-sig")
            except UnicodeDecodeError:
                raise ExportError(f"{args.canvas_export} is not UTF-8: use the file as Canvas exported it") from None
            if not from_roster:
                # The Canvas export lists the course's people: use it as the roster.
                roster = parse_roster(canvas_text, source=args.canvas_export)
                checks = data.get("checks") or []
                result = reconcile(rows, roster, assignment=assignment, check_names=[c["name"] for c in checks],
                                   max_points=sum(c.get("points", 0) for c in checks) if checks else None)
                rows, unplaced = result.rows, unplaced_rows(result.unmatched, result.ambiguous)
            text, report = canvas_export(rows, canvas_text, column=args.column or assignment, lms_max=args.max_points,
                                         decimals=args.decimals, missing=args.missing, all_columns=args.all_columns)
            encoding = "utf-8-sig" if raw.startswith(b"\xef\xbb\xbf") else "utf-8"
        elif args.format == "moodle":
            if not from_roster:
                raise ExportError("moodle matches people by e-mail, ID number or username, which come from a "
                                  "roster: add --roster ROSTER.csv (or run course grade with --roster)")
            text, report = moodle_export(rows, identifier=args.identifier, lms_max=args.max_points,
                                         decimals=args.decimals, missing=args.missing)
            encoding = "utf-8"
        else:
            text, report = plain_export(rows, unplaced, lms_max=args.max_points, decimals=args.decimals)
            unplaced = []  # they are in the file, with matched_by = unmatched
            encoding = "utf-8-sig"  # so spreadsheets read accented names correctly
        write_text(out, text, encoding=encoding)
    except (RosterError, GradebookError, ExportError, OSError) as problem:
        print(f"course export: {problem}", file=sys.stderr)
        return 2
    for item in unplaced:
        report.problems.append(f"submission {submission_name(item)!r} ({item.get('status')}, {item.get('points')} "
                               f"points) is {item['placement']}: {item.get('problem')}; no grade written")
    for line in report.notes:
        print(line)
    for line in report.problems:
        print(f"problem: {line}")
    print(f"wrote {out}: {report.written} grade(s), {report.missing} missing, {report.late} late, "
          f"{len(report.problems)} problem(s)")
    return 1 if report.problems else 0
