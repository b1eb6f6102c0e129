"""Reading a Canvas gradebook export by the rules Canvas's own importer uses.

What Canvas writes (Grades > Export), and what this module accepts:

* **separator**: ``,`` or ``;`` (a per-user setting, or the locale's when Canvas detects
  it). Canvas's importer decides by parsing the first three lines with each: the one that
  splits them into the same, larger number of fields wins. So does :func:`read_export`.
* **identity columns**, in this order: the name (``Student``, or ``LastName`` and
  ``FirstName`` when the account shows names split), ``ID``, then whichever of ``SIS User
  ID``, ``SIS Login ID``, ``Integration ID``, ``Root Account`` the exporting user may see
  (none without the SIS permission), then ``Section``. Custom columns and assignments
  (``Title (id)``) follow, then totals (``Current Score``, ``Final Grade``, ...).
* rows under the header that are not students: ``Points Possible`` (its first cell holds
  these words) and the ``Muted`` / ``Manual Posting`` row; lines made only of separators
  and spaces are skipped, as the importer skips them.
* **numbers** as the locale writes them: ``10,00`` with a decimal comma. The importer
  reads any cell made only of digits, ``.`` and ``,`` by taking the *last* ``.`` or ``,``
  as the decimal mark and dropping the others (:func:`canvas_number`).

Example:
    >>> export = read_export("LastName;FirstName;ID;SIS Login ID;Section;Lab (7)\\n"
    ...                      "    Points Possible;;;;;12,50\\n"
    ...                      "Li;Bo;101;bo@uni.edu;A;3,5\\n")
    >>> export.separator, export.decimal, export.split_names, export.points_possible(5)
    (';', ',', True, 12.5)
    >>> [export.name(r) for r in export.students], export.identity["SIS Login ID"]
    (['Li, Bo'], 3)
"""

from __future__ import annotations

import csv
import difflib
import io
import re
from dataclasses import dataclass, field

OPTIONAL_IDENTITY = ("SIS User ID", "SIS Login ID", "Integration ID", "Root Account")
# Columns Canvas computes (its importer strips them the same way, by name).
TOTALS = re.compile(r"(Current|Final|Unposted Current|Unposted Final|Override) (Score|Points|Grade|Status)")
_NUMBER = re.compile(r"-?[0-9.,]+%?")
_HIDDEN = re.compile(r"\s*(muted|manual posting.*)?\s*", re.IGNORECASE)


class CanvasError(ValueError):
    """The file is not a Canvas gradebook export as Canvas writes it; the message names the fix."""


def canvas_number(text: str) -> float | None:
    """A number as Canvas's gradebook importer reads it, or None when it is not one.

    Example:
        >>> canvas_number("10,00"), canvas_number("10.5"), canvas_number("1.234,5"), canvas_number("7")
        (10.0, 10.5, 1234.5, 7.0)
        >>> canvas_number("ten"), canvas_number(""), canvas_number("(read only)")
        (None, None, None)
    """
    text = text.strip()
    if not _NUMBER.fullmatch(text):
        return None
    parts = re.split(r"[,.]", text.rstrip("%"))
    last = parts.pop()
    try:
        return float("".join(parts) + "." + last if parts else last)
    except ValueError:
        return None


def _key(text: str) -> str:
    return re.sub(r"\s+", "", text).casefold()


def detect_separator(text: str) -> str:
    """``;`` or ``,``, decided as Canvas's importer does, on the first three lines.

    Example:
        >>> detect_separator('Student;ID;Section;Lab (1)\\n    Points Possible;;;10,00\\n')
        ';'
        >>> detect_separator('Student,ID,Section,Lab (1)\\n    Points Possible,,,10.00\\n"Li, Bo",1,A,3\\n')
        ','
    """
    lines = [line for line in text.splitlines() if line.strip()][:3]
    counts = {}
    for separator in (";", ","):
        sizes = {len(next(csv.reader([line], delimiter=separator), [])) for line in lines}
        counts[separator] = sizes.pop() if len(sizes) == 1 else 0
    return ";" if counts[";"] > counts[","] else ","


@dataclass
class CanvasExport:
    """A parsed export: records (with their line numbers), where the identity columns are, the conventions."""

    header: list[str]
    records: list[list[str]]
    lines: list[int]
    separator: str
    decimal: str
    split_names: bool
    identity: dict[str, int]
    identity_end: int
    meta: list[int] = field(default_factory=list)  # indices into records: Points Possible, hidden rows
    students: list[int] = field(default_factory=list)  # indices into records

    @property
    def points_row(self) -> int | None:
        """The index of the ``Points Possible`` record, if there is one."""
        return next((i for i in self.meta if "points possible" in self.cell(i, 0).casefold()), None)

    def cell(self, record: int, column: int) -> str:
        row = self.records[record]
        return row[column].strip() if column < len(row) else ""

    def name(self, record: int) -> str:
        """A student's name as Canvas's sortable name (``Last, First``)."""
        if self.split_names:
            return ", ".join(part for part in (self.cell(record, 0), self.cell(record, 1)) if part)
        return self.cell(record, 0)

    def points_text(self, column: int) -> str:
        at = self.points_row
        return "" if at is None else self.cell(at, column)

    def points_possible(self, column: int) -> float | None:
        """The column's Points Possible (None when empty or absent).

        Raises:
            CanvasError: the value is there but is not a number, naming it and its line.
        """
        text = self.points_text(column)
        if not text:
            return None
        value = canvas_number(text)
        if value is None:
            raise CanvasError(
                f"line {self.lines[self.points_row]}: Points Possible of {self.header[column]!r} is "
                f"{text!r}, not a number; download the export again from Canvas (Grades > Export) "
                f"and use it unchanged"
            )
        return value

    def read_only(self, column: int) -> bool:
        return "read only" in self.points_text(column).casefold() or bool(TOTALS.search(self.header[column]))

    def assignment_columns(self) -> list[int]:
        """Columns that hold assignments (not identity, custom read-only or computed columns)."""
        return [i for i in range(self.identity_end, len(self.header)) if not self.read_only(i)]

    def find_column(self, wanted: str) -> int | None:
        """The column named ``wanted``: its full header, or its title without ``(id)``, any case.

        Raises:
            CanvasError: several columns have that title.
        """
        columns = range(self.identity_end, len(self.header))
        exact = [i for i in columns if self.header[i].strip() == wanted.strip()]
        if exact:
            return exact[0]
        hits = [i for i in columns if column_title(self.header[i]).casefold() == wanted.strip().casefold()]
        if len(hits) > 1:
            raise CanvasError(
                f"the Canvas export has several columns named {wanted!r} ("
                + ", ".join(self.header[i] for i in hits)
                + "): pass --column with the full header"
            )
        return hits[0] if hits else None

    def nearest_columns(self, wanted: str, count: int = 3) -> list[str]:
        """Assignment headers whose titles are closest to ``wanted`` (for a mistyped ``--column``)."""
        headers = [self.header[i] for i in self.assignment_columns()]
        titles = {column_title(h).casefold(): h for h in headers}
        close = difflib.get_close_matches(wanted.strip().casefold(), list(titles), n=count, cutoff=0.4)
        return [titles[t] for t in close] or headers[:count]


def column_title(header: str) -> str:
    """A Canvas assignment header without its id: ``"Lab 1 (123)"`` -> ``"Lab 1"``.

    Example:
        >>> column_title("Lab 1 (123)"), column_title("Notes")
        ('Lab 1', 'Notes')
    """
    return re.sub(r"\s*\(\d+\)\s*$", "", header).strip()


def _identity(header: list[str]) -> tuple[bool, dict[str, int], int]:
    """``(split_names, identity columns, end)`` of a header, by Canvas's importer's rules."""
    keys = [_key(cell) for cell in header]
    split = len(keys) > 3 and keys[0] == "lastname" and keys[1] == "firstname"
    at = 2 if split else 1
    if not (len(keys) > at and (split or "student" in keys[0]) and keys[at] == "id"):
        shown = ", ".join(header[:6]) + ("..." if len(header) > 6 else "")
        raise CanvasError(
            f"not a Canvas gradebook export: it starts with {shown}, where Canvas writes Student "
            f"(or LastName, FirstName), then ID; download it from Canvas (Grades > Export)"
        )
    identity = {"ID": at}
    at += 1
    wanted = {_key(name): name for name in OPTIONAL_IDENTITY}
    while at < len(keys) and keys[at] in wanted:
        identity[wanted[keys[at]]] = at
        at += 1
    if at < len(keys) and keys[at] == "section":
        identity["Section"] = at
        at += 1
    return split, identity, at


def read_export(text: str) -> CanvasExport:
    """Parse the text of a Canvas gradebook export (a leading BOM is dropped).

    Raises:
        CanvasError: the file is empty or its header is not one Canvas writes.
    """
    text = text.lstrip("\ufeff")
    separator = detect_separator(text)
    reader = csv.reader(io.StringIO(text), delimiter=separator)
    records, lines, line = [], [], 1
    for record in reader:
        if any(cell.strip(" ;,") for cell in record):  # the importer skips lines of only separators
            records.append(record)
            lines.append(line)
        line = reader.line_num + 1
    if not records:
        raise CanvasError("the Canvas export is empty: download it again from Canvas (Grades > Export)")
    header = [cell.strip() for cell in records[0]]
    split, identity, end = _identity(header)
    export = CanvasExport(
        header=header,
        records=records,
        lines=lines,
        separator=separator,
        decimal=".",
        split_names=split,
        identity=identity,
        identity_end=end,
    )
    for index in range(1, len(records)):
        first = export.cell(index, 0).casefold()
        hidden = all(_HIDDEN.fullmatch(cell) for cell in records[index])
        (export.meta if "points possible" in first or hidden else export.students).append(index)
    export.decimal = _decimal_mark(export)
    return export


def _decimal_mark(export: CanvasExport) -> str:
    """``,`` when the export's numbers use a decimal comma (Canvas writes Points Possible with two places)."""
    at = export.points_row
    cells = [export.cell(at, i) for i in range(export.identity_end, len(export.header))] if at is not None else []
    if not any(re.fullmatch(r"-?\d+[.,]\d+", c) for c in cells):
        cells = [export.cell(r, i) for r in export.students for i in export.assignment_columns()]
    for cell in cells:
        if re.fullmatch(r"-?\d+,\d+", cell):
            return ","
        if re.fullmatch(r"-?\d+\.\d+", cell):
            return "."
    return "."
