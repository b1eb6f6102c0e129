"""``course export``: the gradebook as files that Canvas, Moodle or a spreadsheet import.

    course export canvas GRADES_DIR --canvas-export Grades-Course.csv [--column NAME [--new-column]]
    course export moodle GRADES_DIR [--identifier email|idnumber|username] [--participants CSV] [--feedback]
    course export csv    GRADES_DIR [--per-check]
    (all: [--max-points N] [--roster CSV [--deadline TIME] [--late-policy POLICY]])

Which rows: ``GRADES_DIR/roster-grades.json`` (one row per roster person, written by
``course grade --roster`` or ``--roster`` here) when it exists, else ``grades.json`` (one row
per submission). For Canvas without a roster, the downloaded Canvas export serves as the
roster: submissions are matched to its people by ID, SIS ids, login or name
(see :mod:`~course_kit.grading.roster`).

* **canvas** fills one assignment column into the gradebook CSV you downloaded from
  Canvas (Grades > Export), read by the rules of Canvas's importer
  (:mod:`~course_kit.grading.canvas`: either separator, optional SIS columns, split
  names, decimal commas). Its header row and the rows Canvas puts under it (``Points
  Possible``, posting policies) are kept; a Canvas row gets the grade of the person whose
  ID, SIS User ID or SIS Login ID (or e-mail) it carries, else whose name it carries when
  only one person has it. Only the identity columns and that one column are written
  unless ``--all-columns``: an upload then cannot overwrite grades someone changed in
  Canvas since the download. A Canvas student without a grade here keeps the value the
  export had, and so does a ``missing`` person who already has a grade in Canvas (work
  handed in another way). ``--column`` names an existing assignment (``"00_toy (1234)"``
  or just ``00_toy``); any other name is an error naming the nearest columns, unless
  ``--new-column`` asks Canvas to create it. Points scale to the column's Points Possible
  (an unreadable one is refused) unless ``--max-points`` says otherwise. The upload uses
  the export's separator and decimal mark.
* **moodle** writes ``<identifier>,grade`` (``,feedback`` with ``--feedback``: a one-line
  summary per student) for Moodle's *Import grades > CSV file*, where you map the first
  column to the user field (email address, ID number or username) and ``grade`` to the
  grade item. It needs a roster for the identifiers; ``--participants`` checks them
  against Moodle's participants first (Moodle aborts a whole import at an unknown user).
* **csv** writes ``student, name, email, id, section, points, max_points, percentage,
  status, late, days_late, late_penalty, points_before_late, missing, matched_by,
  file_name, detail``, one line per person (or submission), then the submissions the
  roster could not place (``matched_by`` = ``unmatched`` or ``ambiguous``).

``--per-check`` (csv, moodle) adds one column per hidden check, its raw points.

Missing and late are explicit: a ``missing`` person gets 0 (``--missing blank`` leaves the
grade empty instead), and ``late`` comes from the roster (see the roster module); a
``--late-policy`` given with the roster is applied to the total
(:mod:`~course_kit.grading.late`), else late work is only marked. Rows that are
``ambiguous`` or ``grader-error`` get no grade and are listed. Output files are new files
(default next to the gradebook: ``canvas-upload.csv``, ``moodle-grades.csv``,
``grades-export.csv``); the inputs are never overwritten.

Exit status: 0 all exported, 1 exported with problems listed (unmatched, ambiguous, rows
without a grade, people Moodle would not find, late work whose days are unknown), 2
nothing written.

Example:
    >>> scale_points(4.5, 6, 100)
    75.0
    >>> format_number(75.0), format_number(2 / 3)
    ('75', '0.67')
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .canvas import CanvasError, CanvasExport, detect_separator, read_export
from .files import GradebookError, csv_lines, csv_text, read_gradebook, read_roster_view, write_text
from .gradebook import STATUS_SHORT
from .roster import (
    Roster,
    RosterError,
    add_roster_arguments,
    apply_roster,
    name_tokens,
    parse_roster,
    reconcile,
    roster_options,
    submission_name,
)
from .status import Status

MOODLE_IDENTIFIERS = {"email": ("email",), "idnumber": ("id", "sis_id"), "username": ("login",)}
MOODLE_FIELDS = {"email": "email", "idnumber": "id", "username": "login"}  # the participants file's roster field
NO_GRADE = {"ambiguous", Status.GRADER_ERROR}
PLAIN_COLUMNS = [
    "student",
    "name",
    "email",
    "id",
    "section",
    "points",
    "max_points",
    "percentage",
    "status",
    "late",
    "days_late",
    "late_penalty",
    "points_before_late",
    "missing",
    "matched_by",
    "file_name",
    "detail",
]
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
        raise RosterError(
            f"{roster_file} was made from an older grades.json: apply the roster again "
            f"(add --roster {view.get('roster') or 'ROSTER.csv'})"
        )
    return data, view["rows"], unplaced_rows(view.get("unmatched", []), view.get("ambiguous", [])), True


def unplaced_rows(unmatched: list[dict], ambiguous: list[dict]) -> list[dict]:
    """The submissions a roster could not place, each with ``placement`` (unmatched/ambiguous) and ``problem``."""
    return [dict(row, placement="unmatched") for row in unmatched] + [
        dict(item["row"], placement="ambiguous", problem=item["reason"]) for item in ambiguous
    ]


# --------------------------------------------------------------------------- canvas
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


def _name_keys(name: str) -> set[tuple[str, ...]]:
    """A name's word tuples, ``Last, First`` also as ``First Last`` (how Canvas's sortable names read)."""
    forms = {name_tokens(name)}
    if name.count(",") == 1:
        last, first = name.split(",")
        forms.add(name_tokens(f"{first} {last}"))
    return {form for form in forms if form}


def _match_canvas_rows(export: CanvasExport, people: list[dict]) -> tuple[dict[int, list[int]], set[int]]:
    """``({record: [person numbers]}, records matched by name)``: by ID and SIS ids first, as Canvas does.

    Canvas's importer finds a row's student by ID, then SIS User ID, then SIS Login ID, then
    name; so do we, using the name only for a row no identifier matched, when exactly one
    person has that name and no identifier placed that person elsewhere.
    """
    columns = [c for c in ("ID", "SIS User ID", "SIS Login ID") if c in export.identity]
    by_key: dict[tuple[str, str], set[int]] = {}
    by_name: dict[tuple[str, ...], set[int]] = {}
    for n, row in enumerate(people):
        for col, values in _person_keys(row["person"]).items():
            for value in values:
                by_key.setdefault((col, value), set()).add(n)
        for form in _name_keys(row["person"].get("name") or ""):
            by_name.setdefault(form, set()).add(n)
    matches = {}
    for index in export.students:
        matches[index] = sorted(
            {
                n
                for col in columns
                if export.cell(index, export.identity[col])
                for n in by_key.get((col, export.cell(index, export.identity[col]).casefold()), ())
            }
        )
    placed = {n for found in matches.values() for n in found}
    by_name_only = set()
    for index in export.students:
        if matches[index]:
            continue
        found = {n for form in _name_keys(export.name(index)) for n in by_name.get(form, ())}
        if len(found) == 1 and not found & placed:
            matches[index] = sorted(found)
            by_name_only.add(index)
    return matches, by_name_only


def _upload_columns(export: CanvasExport, target: int, all_columns: bool) -> list[int | None]:
    """Which columns the upload has (None: an empty ``Section``), as Canvas's importer reads them.

    The importer knows the name column(s), ``ID``, then ``SIS Login ID`` alone or ``SIS User
    ID`` + ``SIS Login ID`` (+ ``Integration ID``, ``Root Account``), then ``Section``, which
    it requires; any other identity column would make it reject the header.
    """
    at = export.identity
    names = [0, 1] if export.split_names else [0]
    sis: list[int] = []
    if "SIS Login ID" in at:
        sis = (
            [at["SIS User ID"], at["SIS Login ID"]] + [at[c] for c in ("Integration ID", "Root Account") if c in at]
            if "SIS User ID" in at
            else [at["SIS Login ID"]]
        )
    identity = names + [at["ID"]] + sis + [at.get("Section")]
    rest = list(range(export.identity_end, max(len(export.header), target + 1))) if all_columns else [target]
    return identity + rest


def _canvas_target(
    export: CanvasExport,
    header: list[str],
    column: str,
    new_column: bool,
    lms_max,
    kit_max,
    decimals: int,
    report: Report,
) -> tuple[int, float | None]:
    """``(column index, points to scale to)`` of the assignment column; a new column is appended to ``header``."""
    target = export.find_column(column)
    if target is None:
        if not new_column:
            nearest = ", ".join(repr(h) for h in export.nearest_columns(column)) or "none"
            raise ExportError(
                f"the Canvas export has no assignment column {column!r} (nearest: {nearest}); pass "
                f"--column with one of them, or add --new-column to create {column!r} in Canvas"
            )
        header.append(column)
        points = lms_max if lms_max is not None else kit_max
        report.notes.append(
            f"new Canvas column {column!r} worth {format_number(points or 0, decimals)} points: "
            f"Canvas creates the assignment on upload"
        )
        return len(header) - 1, points
    if export.read_only(target):
        raise ExportError(f"the Canvas column {header[target]!r} is read-only (a total or computed column)")
    try:
        canvas_max = export.points_possible(target)
    except CanvasError as problem:
        raise ExportError(f"the Canvas export's {problem}") from None
    if lms_max is None:
        if canvas_max is None:
            where = (
                f"line {export.lines[export.points_row]} has no value for it"
                if export.points_row is not None
                else "the export has no Points Possible row"
            )
            raise ExportError(
                f"the Canvas column {header[target]!r} has no Points Possible ({where}), so its scale "
                f"is unknown: pass --max-points N (the assignment's points in Canvas)"
            )
        report.notes.append(f"points scaled to Canvas's {format_number(canvas_max)} points possible")
        return target, canvas_max
    if canvas_max is not None and abs(lms_max - canvas_max) > 1e-9:
        report.notes.append(
            f"warning: --max-points {format_number(lms_max)} differs from the Canvas column's "
            f"{format_number(canvas_max)} points possible"
        )
    return target, lms_max


def canvas_export(
    rows: list[dict],
    canvas_text: str,
    *,
    column: str,
    lms_max: float | None = None,
    decimals: int = 2,
    missing: str = "zero",
    all_columns: bool = False,
    new_column: bool = False,
    kit_max: float | None = None,
) -> tuple[str, Report]:
    """Fill one assignment column into a Canvas gradebook export; a pure function on text.

    Args:
        rows: rows with a ``person`` (roster rows); a row's person is found in the Canvas
            file by ID, SIS User ID, SIS Login ID (login or e-mail), else by a unique name.
        canvas_text: the CSV Canvas exported (see :mod:`~course_kit.grading.canvas`).
        column: an existing assignment column (its header, with or without ``(id)``).
        lms_max: points of the Canvas assignment (default: the column's Points Possible).
        decimals: places of the scaled points.
        missing: ``"zero"`` or ``"blank"`` for people without a submission.
        all_columns: keep every column of the export (default: identity columns and ``column``).
        new_column: create ``column`` when the export has none by that name (else an error
            naming the nearest columns); it is worth ``lms_max``, else ``kit_max``, points.
        kit_max: the assignment's points in the kit (a new column's default).

    Returns:
        ``(csv_text, report)``, written with the export's separator and decimal mark.

    Raises:
        ExportError: not a Canvas export, an unknown or read-only column, or Points
            Possible unreadable or absent without ``lms_max``.

    Example:
        >>> canvas = ("Student;ID;SIS Login ID;Section;Lab (77)\\n"
        ...           "    Points Possible;;;;10,00\\n"
        ...           "Li, Bo;101;bo@uni.edu;A;\\n")
        >>> rows = [{"person": {"email": "Bo@Uni.edu"}, "status": "ok", "points": 4, "max_points": 6}]
        >>> text, report = canvas_export(rows, canvas, column="Lab")
        >>> print(text, end="")
        Student;ID;SIS Login ID;Section;Lab (77)
            Points Possible;;;;10,00
        Li, Bo;101;bo@uni.edu;A;6,67
    """
    report = Report()
    try:
        export = read_export(canvas_text)
    except CanvasError as problem:
        raise ExportError(str(problem)) from None
    header = list(export.header)
    target, lms_max = _canvas_target(export, header, column, new_column, lms_max, kit_max, decimals, report)
    records = [_padded(record, len(header)) for record in export.records]
    if target == len(export.header) and export.points_row is not None:  # a new column: Canvas reads its points here
        records[export.points_row][target] = _canvas_text(lms_max, decimals, export.decimal)
    people = [row for row in rows if row.get("person")]
    matches, by_name = _match_canvas_rows(export, people)
    claimed: dict[int, list[int]] = {}
    for index, found in matches.items():
        for n in found:
            claimed.setdefault(n, []).append(index)
    for index in export.students:
        _fill_canvas_row(
            records[index],
            export.name(index),
            matches[index],
            claimed,
            people,
            target,
            (lms_max, decimals, missing, export.decimal),
            report,
        )
        if index in by_name and len(matches[index]) == 1:
            report.notes.append(f"Canvas student {export.name(index)!r} matched by name (no ID or SIS id matched)")
    _report_unplaced(people, claimed, report)
    ungraded = sum(1 for index in export.students if not matches[index])
    if ungraded:
        report.notes.append(f"{ungraded} Canvas student(s) have no row here and keep their current value")
    if "Section" not in export.identity:
        report.notes.append(
            "the export has no Section column; the upload has an empty one (Canvas's importer requires it)"
        )
    return _write_canvas(export, header, records, _upload_columns(export, target, all_columns)), report


def _fill_canvas_row(
    record: list[str],
    name: str,
    found: list[int],
    claimed: dict[int, list[int]],
    people: list[dict],
    target: int,
    scale: tuple,
    report: Report,
) -> None:
    """Write one Canvas student's grade into ``record``, or say why not."""
    lms_max, decimals, missing, decimal = scale
    if len(found) > 1:
        report.problems.append(f"Canvas student {name!r} matches {len(found)} roster rows; left unchanged")
        return
    if not found:
        return
    if len(claimed[found[0]]) > 1:
        report.problems.append(f"Canvas student {name!r} shares identifiers with another Canvas row; left unchanged")
        return
    row = people[found[0]]
    if row.get("status") == "missing" and record[target].strip():
        # Someone graded this in Canvas (work handed in another way): never replace it with a 0.
        report.notes.append(
            f"Canvas student {name!r} has no submission here but a grade in Canvas ({record[target].strip()}); kept"
        )
        return
    grade = _grade_text(row, lms_max, decimals, missing)
    if grade is None:
        report.problems.append(
            f"Canvas student {name!r}: status {row.get('status')}, no grade written "
            f"({row.get('detail') or 'see the gradebook'})"
        )
        return
    record[target] = grade.replace(".", decimal)
    report.written += 1
    report.missing += row.get("status") == "missing"
    report.late += bool(row.get("late"))


def _report_unplaced(people: list[dict], claimed: dict, report: Report) -> None:
    for n, row in enumerate(people):
        if n not in claimed:
            person = row["person"]
            text = f"{person.get('name') or person.get('key')!r} ({row.get('status')}) is not in the Canvas export"
            if row.get("status") == "missing":
                report.notes.append(text)  # no grade is lost
            else:
                report.problems.append(text + "; no grade written")


def _canvas_text(value, decimals: int, decimal: str) -> str:
    return format_number(value or 0, decimals).replace(".", decimal)


def _write_canvas(export: CanvasExport, header: list[str], records: list[list[str]], columns: list) -> str:
    """The upload: chosen columns, the export's separator; split names under the headers Canvas reads.

    Written by :func:`~course_kit.grading.files.csv_lines`, so no cell (a name, a section) runs
    as a formula in a spreadsheet that opens the upload.
    """
    names = ["LastName", "FirstName"] if export.split_names else [header[0]]
    titles = names + [("Section" if i is None else header[i]) for i in columns[len(names) :]]
    lines = [titles] + [
        ["" if i is None else (record[i] if i < len(record) else "") for i in columns] for record in records[1:]
    ]
    return csv_lines(lines, delimiter=export.separator)


def _padded(record: list[str], size: int) -> list[str]:
    return list(record) + [""] * (size - len(record))


# --------------------------------------------------------------------------- moodle, plain csv
def summary_line(row: dict, lms_max: float | None = None, decimals: int = 2) -> str:
    """One line a student may read: points, the status in words, checks passed, a late penalty.

    Made from the grader's own vocabulary only (never a check's code, message or expected value).

    Example:
        >>> row = {"status": "error", "points": 3.8, "max_points": 6, "check_results": [{"passed": True},
        ...        {"passed": False}], "late_penalty": 1.2, "days_late": 2, "late_percent": 20.0,
        ...        "points_before_late": 5}
        >>> summary_line(row, lms_max=10)
        '6.33 / 10 points: your notebook raised an error; 1 of 2 checks passed; 2 days late: 20% off (8.33 before)'
    """
    maximum = row.get("max_points")
    shown_max = maximum if lms_max is None else lms_max
    points = format_number(scale_points(row.get("points"), maximum, lms_max), decimals)
    parts = [
        f"{points} / {format_number(float(shown_max or 0), decimals)} points: "
        + STATUS_SHORT.get(row.get("status"), str(row.get("status")))
    ]
    checks = row.get("check_results") or []
    if checks:
        parts.append(f"{sum(1 for c in checks if c.get('passed'))} of {len(checks)} checks passed")
    if row.get("late_penalty") is not None:
        days = row["days_late"]
        before = format_number(scale_points(row["points_before_late"], maximum, lms_max), decimals)
        parts.append(
            f"{days} day{'s' if days != 1 else ''} late: {format_number(row['late_percent'])}% off ({before} before)"
        )
    return "; ".join(parts)


def _check_cells(row: dict, checks: list[dict], decimals: int) -> list[str]:
    """Each check's points in ``row`` (raw, not scaled), in the gradebook's check order."""
    earned = row.get("checks") or {}
    return [format_number(earned[c["name"]], decimals) if earned.get(c["name"]) is not None else "" for c in checks]


def participant_index(participants: Roster | None, identifier: str) -> dict[str, str] | None:
    """Moodle participants by the case-folded identifier, each with its own spelling (None: no check).

    Raises:
        ExportError: the participants file has no column for that identifier.

    Example:
        >>> people = parse_roster("First name,Last name,Email address\\nAna,Li,Ana.Li@Uni.edu\\n")
        >>> participant_index(people, "email")
        {'ana.li@uni.edu': 'Ana.Li@Uni.edu'}
    """
    if participants is None:
        return None
    field_name = MOODLE_FIELDS[identifier]
    if field_name not in participants.columns:
        columns = ", ".join(participants.people[0].fields) if participants.people else "none"
        raise ExportError(
            f"the Moodle participants file {participants.source} has no {identifier} column (its "
            f"columns: {columns}): have Moodle show it (Site administration > Users > Permissions > "
            f"User policies > Show user identity) and download the participants again, or choose "
            f"another --identifier"
        )
    return {
        getattr(p, field_name).strip().casefold(): getattr(p, field_name).strip()
        for p in participants.people
        if getattr(p, field_name).strip()
    }


def moodle_export(
    rows: list[dict],
    *,
    identifier: str = "email",
    lms_max: float | None = None,
    decimals: int = 2,
    missing: str = "zero",
    participants: Roster | None = None,
    feedback: bool = False,
    checks: list[dict] | None = None,
) -> tuple[str, Report]:
    """``<identifier>,grade`` lines for Moodle's CSV grade import; a pure function.

    Args:
        rows: rows with a ``person`` (roster rows).
        identifier: ``email``, ``idnumber`` (the roster's id, else SIS id) or ``username`` (login).
        lms_max: the Moodle grade item's maximum (default: the kit's points, unscaled).
        decimals: places of the scaled points.
        missing: ``"zero"``, or ``"blank"`` to leave people without a submission out.
        participants: the course's Moodle participants; a row whose identifier is not among
            them (compared ignoring case) is left out and listed, since Moodle aborts the
            whole import at a row whose user it cannot find; found ones are written in the
            participant's own spelling.
        feedback: add a ``feedback`` column (:func:`summary_line`), for Moodle's feedback mapping.
        checks: the gradebook's checks: add one column of raw points per check.

    Returns:
        ``(csv_text, report)``.

    Example:
        >>> rows = [{"person": {"email": "Ana@Uni.edu"}, "status": "ok", "points": 6, "max_points": 6},
        ...         {"person": {"email": "bo@uni.edu"}, "status": "missing", "points": 0, "max_points": 6}]
        >>> moodle_export(rows, lms_max=10)[0].splitlines()
        ['email,grade', 'Ana@Uni.edu,10', 'bo@uni.edu,0']
        >>> enrolled = parse_roster("First name,Last name,Email address\\nAna,Li,ana@uni.edu\\n")
        >>> text, report = moodle_export(rows, participants=enrolled, feedback=True)
        >>> text.splitlines()
        ['email,grade,feedback', 'ana@uni.edu,6,6 / 6 points: graded']
        >>> report.problems[0][:68]
        "'bo@uni.edu' (email bo@uni.edu) is not among the Moodle participants"
    """
    if identifier not in MOODLE_IDENTIFIERS:
        raise ExportError(f"--identifier {identifier}: choose one of {', '.join(MOODLE_IDENTIFIERS)}")
    known = participant_index(participants, identifier)
    report = Report()
    lines = [
        [identifier, "grade"]
        + (["feedback"] if feedback else [])
        + [
            f"{c.get('assignment') or ''}{': ' if c.get('assignment') else ''}{c.get('title') or c['name']}"
            for c in checks or []
        ]
    ]
    for row in rows:
        person = row.get("person") or {}
        value = next((str(person[k]).strip() for k in MOODLE_IDENTIFIERS[identifier] if person.get(k)), "")
        label = person.get("name") or person.get("key") or row.get("student") or value
        if not value:
            report.problems.append(f"{label!r} has no {identifier} in the roster; no grade written")
            continue
        grade = _grade_text(row, lms_max, decimals, missing)
        if grade is None:
            report.problems.append(f"{label!r}: status {row.get('status')}, no grade written")
            continue
        if grade == "":
            continue
        if known is not None:
            if value.casefold() not in known:
                report.problems.append(
                    f"{label!r} ({identifier} {value}) is not among the Moodle participants in "
                    f"{participants.source}: Moodle would abort the whole import at this row; "
                    f"left out of the file"
                )
                continue
            value = known[value.casefold()]
        lines.append(
            [value, grade]
            + ([summary_line(row, lms_max, decimals)] if feedback else [])
            + _check_cells(row, checks or [], decimals)
        )
        report.written += 1
        report.missing += row.get("status") == "missing"
        report.late += bool(row.get("late"))
    return csv_lines(lines), report


def plain_export(
    rows: list[dict],
    unplaced: list[dict] = (),
    *,
    lms_max: float | None = None,
    decimals: int = 2,
    checks: list[dict] | None = None,
) -> tuple[str, Report]:
    """A plain CSV of every row: points (scaled to ``lms_max`` if given), percentage, status, lateness.

    ``checks`` adds a ``check:<name>`` column per check (raw points). Lateness: ``late``,
    ``days_late``, and under a late policy ``late_penalty`` and ``points_before_late``
    (scaled like ``points``, which is the total after the penalty).

    Example:
        >>> rows = [{"student": "s1", "status": "ok", "points": 3, "max_points": 6, "late": True}]
        >>> plain_export(rows, lms_max=10)[0].splitlines()[1]
        's1,,,,,5,10,50,ok,yes,,,,no,,s1,'
    """
    report = Report()
    records = []
    for row, placed in [(r, True) for r in rows] + [(r, False) for r in unplaced]:
        person = row.get("person") or {}
        maximum = row.get("max_points")
        scaled_max = maximum if lms_max is None else lms_max
        late = row.get("late")
        penalty, before = row.get("late_penalty"), row.get("points_before_late")
        records.append(
            {
                "student": row.get("student", ""),
                "name": person.get("name", ""),
                "email": person.get("email", ""),
                "id": person.get("id") or person.get("sis_id", ""),
                "section": person.get("section", ""),
                "points": format_number(scale_points(row.get("points"), maximum, lms_max), decimals),
                "max_points": format_number(float(scaled_max or 0), decimals),
                "percentage": format_number(percentage(row.get("points"), maximum), 2),
                "status": row.get("status", ""),
                "late": "" if late is None else ("yes" if late else "no"),
                "days_late": "" if row.get("days_late") is None else row["days_late"],
                "late_penalty": ""
                if penalty is None
                else format_number(scale_points(penalty, maximum, lms_max), decimals),
                "points_before_late": ""
                if before is None
                else format_number(scale_points(before, maximum, lms_max), decimals),
                "missing": "yes" if row.get("status") == "missing" else "no",
                "matched_by": row.get("matched_by", "") if placed else row.get("placement", "unmatched"),
                "file_name": submission_name(row) if row.get("student") else "",
                "detail": row.get("detail") or "",
                **dict(zip([f"check:{c['name']}" for c in checks or []], _check_cells(row, checks or [], decimals))),
            }
        )
        report.written += 1
        report.missing += row.get("status") == "missing"
        report.late += bool(late)
        if not placed:
            report.problems.append(
                f"{submission_name(row)!r} is {row.get('placement', 'unmatched')} on the roster "
                f"({row.get('problem') or 'see unmatched.csv'}); kept in the file"
            )
    return csv_text(PLAIN_COLUMNS + [f"check:{c['name']}" for c in checks or []], records), report


# --------------------------------------------------------------------------- command
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare ``course export``'s options on ``parser``."""
    parser.add_argument("format", choices=["canvas", "moodle", "csv"], help="what the file is for")
    parser.add_argument("grades_dir", metavar="GRADES_DIR", help="the course grade --out folder")
    parser.add_argument(
        "--out",
        metavar="FILE",
        help="where to write (default: GRADES_DIR/" + ", ".join(f"{n} for {f}" for f, n in DEFAULT_NAMES.items()) + ")",
    )
    parser.add_argument(
        "--max-points",
        type=float,
        metavar="N",
        help="scale points to the LMS's maximum (Canvas default: the column's Points Possible)",
    )
    parser.add_argument("--decimals", type=int, default=2, help="decimal places of scaled points (default 2)")
    parser.add_argument(
        "--missing",
        choices=["zero", "blank"],
        default="zero",
        help="grade of a roster person without a submission (default zero)",
    )
    parser.add_argument(
        "--per-check",
        action="store_true",
        help="csv, moodle: one more column per hidden check (its raw points) besides the total",
    )
    parser.add_argument("--canvas-export", metavar="CSV", help="canvas: the gradebook CSV downloaded from Canvas")
    parser.add_argument(
        "--column", metavar="NAME", help="canvas: the assignment column (default: the gradebook's assignment name)"
    )
    parser.add_argument(
        "--new-column", action="store_true", help="canvas: create --column in Canvas when the export has no such column"
    )
    parser.add_argument(
        "--all-columns",
        action="store_true",
        help="canvas: keep every column of the export (default: identity columns and this one)",
    )
    parser.add_argument(
        "--identifier",
        choices=sorted(MOODLE_IDENTIFIERS),
        default="email",
        help="moodle: the user field the first column holds (default email)",
    )
    parser.add_argument(
        "--participants",
        metavar="CSV",
        help="moodle: the course's participants as Moodle downloads them; everyone is checked "
        "against it before writing",
    )
    parser.add_argument(
        "--feedback", action="store_true", help="moodle: a feedback column with each student's one-line summary"
    )
    add_roster_arguments(parser)


def _refuse_inputs(out: Path, inputs: list[Path]) -> None:
    for path in inputs:
        if path.exists() and out.resolve() == path.resolve():
            raise ExportError(f"--out {out} is an input ({path.name}); write the export to a new file")


def _refuse_options(args: argparse.Namespace) -> None:
    """Options that do not go with this format or this input, refused before anything is read."""
    if args.format == "canvas" and args.per_check:
        raise ExportError(
            "canvas: --per-check would create one Canvas assignment per check, each counted in the "
            "course grade; export the total to Canvas, and --per-check with csv or moodle"
        )
    if args.format != "moodle" and (args.participants or args.feedback):
        raise ExportError("--participants and --feedback go with moodle")
    if args.format != "canvas" and (args.new_column or args.all_columns or args.canvas_export):
        raise ExportError("--canvas-export, --new-column and --all-columns go with canvas")
    if (args.late_policy or "none").strip().casefold() != "none" and not args.roster:
        raise ExportError(
            "--late-policy is applied with the roster (its submitted_at and --deadline give the days "
            "late): add --roster ROSTER.csv"
        )


def _read_text(path: str, what: str) -> tuple[str, bytes]:
    raw = Path(path).read_bytes()
    try:
        return raw.decode("utf-8-sig"), raw
    except UnicodeDecodeError:
        raise ExportError(f"{path} is not UTF-8: use the {what} as downloaded") from None


def _canvas_file(args, data: dict, rows: list[dict], unplaced: list[dict], from_roster: bool):
    """``(text, report, encoding, unplaced)`` of ``course export canvas``."""
    if not args.canvas_export:
        raise ExportError(
            "canvas needs --canvas-export FILE: in Canvas, Grades > Export > Export Entire "
            "Gradebook, then pass the downloaded CSV"
        )
    canvas_text, raw = _read_text(args.canvas_export, "file as Canvas exported it")
    checks = data.get("checks") or []
    kit_max = sum(c.get("points", 0) for c in checks) if checks else None
    if not from_roster:
        # The Canvas export lists the course's people: use it as the roster.
        try:
            separator = detect_separator(canvas_text)
        except CanvasError as problem:
            raise ExportError(str(problem)) from None
        roster = parse_roster(canvas_text, source=args.canvas_export, delimiter=separator)
        result = reconcile(
            rows,
            roster,
            assignment=data.get("assignment") or "",
            check_names=[c["name"] for c in checks],
            max_points=kit_max,
        )
        rows, unplaced = result.rows, unplaced_rows(result.unmatched, result.ambiguous)
    text, report = canvas_export(
        rows,
        canvas_text,
        column=args.column or data.get("assignment") or "",
        lms_max=args.max_points,
        decimals=args.decimals,
        missing=args.missing,
        all_columns=args.all_columns,
        new_column=args.new_column,
        kit_max=kit_max,
    )
    return text, report, "utf-8-sig" if raw.startswith(b"\xef\xbb\xbf") else "utf-8", unplaced


def _moodle_file(args, data: dict, rows: list[dict], from_roster: bool):
    """``(text, report)`` of ``course export moodle``."""
    if not from_roster:
        raise ExportError(
            "moodle matches people by e-mail, ID number or username, which come from a "
            "roster: add --roster ROSTER.csv (or run course grade with --roster)"
        )
    participants = None
    if args.participants:
        text, _ = _read_text(args.participants, "participants file")
        participants = parse_roster(text, source=args.participants)
    checks = [dict(c, assignment=data.get("assignment")) for c in data.get("checks") or []] if args.per_check else None
    return moodle_export(
        rows,
        identifier=args.identifier,
        lms_max=args.max_points,
        decimals=args.decimals,
        missing=args.missing,
        participants=participants,
        feedback=args.feedback,
        checks=checks,
    )


def main(args: argparse.Namespace) -> int:
    """Run ``course export``; returns the exit status."""
    grades_dir = Path(args.grades_dir)
    out = Path(args.out) if args.out else grades_dir / DEFAULT_NAMES[args.format]
    try:
        _refuse_options(args)
        inputs = [
            grades_dir / n
            for n in ("grades.json", "grades.csv", "roster-grades.json", "roster-grades.csv", "unmatched.csv")
        ]
        inputs += [Path(p) for p in (args.canvas_export, args.roster, args.participants) if p]
        _refuse_inputs(out, inputs)
        if args.roster:
            apply_roster(grades_dir, Path(args.roster), print, **roster_options(args))
        data, rows, unplaced, from_roster = load_rows(grades_dir)
        if args.format == "canvas":
            text, report, encoding, unplaced = _canvas_file(args, data, rows, unplaced, from_roster)
        elif args.format == "moodle":
            text, report = _moodle_file(args, data, rows, from_roster)
            encoding = "utf-8"
        else:
            text, report = plain_export(
                rows,
                unplaced,
                lms_max=args.max_points,
                decimals=args.decimals,
                checks=(data.get("checks") or []) if args.per_check else None,
            )
            unplaced = []  # they are in the file, with matched_by = unmatched
            encoding = "utf-8-sig"  # so spreadsheets read accented names correctly
        write_text(out, text, encoding=encoding)
    except (RosterError, GradebookError, ExportError, OSError) as problem:
        print(f"course export: {problem}", file=sys.stderr)
        return 2
    for item in unplaced:
        report.problems.append(
            f"submission {submission_name(item)!r} ({item.get('status')}, {item.get('points')} "
            f"points) is {item['placement']}: {item.get('problem')}; no grade written"
        )
    for row in rows:
        if row.get("late_problem"):
            person = row.get("person") or {}
            report.problems.append(
                f"{person.get('name') or person.get('key') or row.get('student')!r} is {row['late_problem']}"
            )
    for line in report.notes:
        print(line)
    for line in report.problems:
        print(f"problem: {line}")
    print(
        f"wrote {out}: {report.written} grade(s), {report.missing} missing, {report.late} late, "
        f"{len(report.problems)} problem(s)"
    )
    return 1 if report.problems else 0
