"""The course roster: which submission belongs to which person, and who submitted nothing.

A roster is a CSV file (UTF-8, with or without BOM; commas, semicolons or tabs) with one
row per person. Its columns are found by name, case-insensitively; the defaults cover the
exports of common systems (Canvas's gradebook export works as a roster as it is):

=============  ===========================================================
field          default column names
=============  ===========================================================
``name``       name, student, student name, full name (or first + last name)
``email``      email, e-mail, email address, mail
``id``         id, student id, student number, id number, idnumber
``sis_id``     sis_id, sis user id, sis id
``login``      login, sis login id, username, login id
``section``    section, group
``late``       late (yes/no, true/false, 1/0, x or empty)
``submitted_at``  submitted_at, submission time (ISO 8601; no offset means UTC)
=============  ===========================================================

``columns={"id": "Matrikelnummer"}`` (``--roster-columns id=Matrikelnummer``) names a
column; ``{"name": ""}`` stops a field from being used (for example to match by id only).

How a submission finds its person (:func:`reconcile`), from its original file or folder
name (``row["file_name"]``, else the name of ``row["submission"]``):

1. **strong matches**: the person's ``id``, ``sis_id`` or ``login`` appears in the file
   name as a whole token (``s123`` is in ``hw1_s123.ipynb``, not in ``s1234.ipynb``), their
   e-mail appears in it (e-mails and ids compare case-insensitively), or their name's words
   appear in it in order (Unicode NFC, case-folded; ``Last, First`` also as ``First
   Last``). Accents count: "José" and "Josè" are different people.
2. only when nothing matched strongly, the name **ignoring accents** ("Jose Martinez"
   finds "José Martínez"), and only when exactly one person fits.

A submission matching several people is *ambiguous*; so are several submissions for one
person. Nothing ambiguous is guessed: it is reported, and a person whose grade it could
be gets status ``ambiguous`` (unless they have one exact match of their own). A person
with no submission gets status ``missing`` and 0 points; a submission matching nobody is
*unmatched*. Both lists are returned, never dropped.

``late`` is true when the roster's ``late`` column says so, when the file name carries
Canvas's ``_LATE_`` marker (its bulk download names late work that way), or when a
``deadline`` is given and the roster's ``submitted_at`` is after it. With a deadline but
no ``submitted_at`` for a person, ``late`` is unknown (``None``): file modification times
are not used, since copying files resets them. ``days_late`` is the number of days (a
started day counts) when both times are known, else None; a ``--late-policy`` (see
:mod:`~course_kit.grading.late`) turns it into a penalty on the total.

Example:
    >>> roster = parse_roster("name,email\\nJosé Martínez,jm@uni.edu\\nJosè Martínez,jm2@uni.edu\\n")
    >>> rows = [{"student": "a", "file_name": "José Martínez.ipynb", "status": "ok", "points": 5,
    ...          "max_points": 6}]
    >>> result = reconcile(rows, roster)
    >>> [(r["person"]["name"], r["status"], r["matched_by"]) for r in result.rows]
    [('José Martínez', 'ok', 'name'), ('Josè Martínez', 'missing', '')]
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from .files import csv_text, read_gradebook, write_text
from .late import LatePolicyError, apply_late_policy, days_late, parse_late_policy

FIELDS = ("name", "email", "id", "sis_id", "login", "section", "late", "submitted_at")
IDENTITY_FIELDS = ("name", "email", "id", "sis_id", "login")
DEFAULT_COLUMNS = {
    "name": ("name", "student", "student name", "full name", "fullname"),
    "email": ("email", "e-mail", "email address", "e-mail address", "mail"),
    "id": ("id", "student id", "student number", "id number", "idnumber"),
    "sis_id": ("sis id", "sis user id"),
    "login": ("login", "sis login id", "username", "user name", "login id"),
    "section": ("section", "group"),
    "late": ("late",),
    "submitted_at": ("submitted at", "submission time"),
}
FIRST_NAME_COLUMNS = ("first name", "firstname", "given name")
LAST_NAME_COLUMNS = ("last name", "lastname", "surname", "family name")
# Identifiers are compared in this order; the first that matches names the match.
STRONG_KEYS = ("id", "sis_id", "login", "email")
_TRUE = {"yes", "y", "true", "1", "x", "late"}
_FALSE = {"", "no", "n", "false", "0"}
ROSTER_FILES = ("roster-grades.json", "roster-grades.csv", "unmatched.csv")


class RosterError(ValueError):
    """The roster (or the gradebook it is applied to) cannot be used; the message says how to fix it."""


@dataclass(eq=False)
class Person:
    """One roster row: the fields the matching uses, and every original column in ``fields``."""

    line: int
    name: str = ""
    email: str = ""
    id: str = ""
    sis_id: str = ""
    login: str = ""
    section: str = ""
    late: bool | None = None
    submitted_at: datetime | None = None
    fields: dict = field(default_factory=dict)
    key: str = ""

    def summary(self) -> dict:
        """The person as plain data, as rows carry it (``row["person"]``)."""
        return {
            "key": self.key,
            "name": self.name,
            "email": self.email,
            "id": self.id,
            "sis_id": self.sis_id,
            "login": self.login,
            "section": self.section,
            "line": self.line,
            "fields": dict(self.fields),
        }

    def label(self) -> str:
        """How messages name this person.

        Example:
            >>> Person(3, name="Ana", email="ana@x.org").label()
            'Ana <ana@x.org> (roster line 3)'
        """
        extra = f" <{self.email}>" if self.email else (f" [{self.id}]" if self.id else "")
        return f"{self.name or self.key}{extra} (roster line {self.line})"


@dataclass
class Roster:
    """The people of a roster file, in file order, and which column each field came from."""

    people: list[Person]
    columns: dict[str, str]
    source: str = "roster"


@dataclass
class Reconciled:
    """What :func:`reconcile` found: one row per person, and every submission it could not place."""

    rows: list[dict]
    unmatched: list[dict]
    ambiguous: list[dict]

    @property
    def problems(self) -> int:
        """Submissions that reached nobody: unmatched plus ambiguous."""
        return len(self.unmatched) + len(self.ambiguous)


# --------------------------------------------------------------------------- reading
def _header_key(text: str) -> str:
    return re.sub(r"[\s_]+", " ", text.strip().casefold())


def parse_columns(text: str | None) -> dict[str, str]:
    """``"id=Matrikelnummer,name="`` (the ``--roster-columns`` value) as a mapping.

    Example:
        >>> parse_columns("id=Matrikelnummer, name=")
        {'id': 'Matrikelnummer', 'name': ''}
    """
    mapping: dict[str, str] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        if "=" not in part:
            raise RosterError(
                f"--roster-columns: {part.strip()!r} is not FIELD=COLUMN (for example email=Mail,id=Student number)"
            )
        key, value = part.split("=", 1)
        mapping[key.strip()] = value.strip()
    return mapping


def read_roster(path: str | Path, columns: dict[str, str] | None = None) -> Roster:
    """Read a roster CSV file; see :func:`parse_roster` for the rules.

    Raises:
        RosterError: the file is missing, not UTF-8, or lacks the columns needed.
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise RosterError(f"roster {path} does not exist") from None
    except UnicodeDecodeError:
        raise RosterError(f"roster {path} is not UTF-8 text: save it as 'CSV UTF-8' and try again") from None
    return parse_roster(text, columns, source=str(path))


def parse_roster(
    text: str, columns: dict[str, str] | None = None, source: str = "roster", delimiter: str | None = None
) -> Roster:
    """The people in roster CSV ``text``.

    Rows without any name, e-mail or id are skipped (Canvas's ``Points Possible`` row among
    them). Two rows with the same e-mail, id, SIS id or login are an error.

    Args:
        text: the CSV text (a leading BOM is dropped).
        columns: field -> column name, overriding the defaults (``""`` = do not use).
        source: the file name for messages.
        delimiter: the separator (default: the most frequent of ``,`` ``;`` tab in the header line).

    Returns:
        A :class:`Roster`.

    Raises:
        RosterError: a named column is missing (the message lists the columns there are),
            no identity column exists, a ``late``/``submitted_at`` value is unreadable, or a
            person appears twice.

    Example:
        >>> roster = parse_roster("Student;SIS User ID\\nLee, Kim;u1\\n")
        >>> roster.columns, roster.people[0].sis_id
        ({'name': 'Student', 'sis_id': 'SIS User ID'}, 'u1')
    """
    text = text.lstrip("\ufeff")
    first_line = text.split("\n", 1)[0]
    delimiter = delimiter or max((",", ";", "\t"), key=first_line.count)
    records = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    if not records or not any(cell.strip() for cell in records[0]):
        raise RosterError(f"roster {source} is empty: it needs a header row (for example name,email,id)")
    header = [cell.strip() for cell in records[0]]
    by_key = {}
    for index, name in enumerate(header):
        by_key.setdefault(_header_key(name), index)
    chosen = _choose_columns(header, by_key, columns or {}, source)
    people = []
    for line, record in enumerate(records[1:], start=2):
        cells = {name: (record[i].strip() if i < len(record) else "") for i, name in enumerate(header)}
        values = {
            f: (cells[col] if isinstance(col, str) else " ".join(cells[c] for c in col if cells[c]))
            for f, col in chosen.items()
        }
        if record and "points possible" in record[0].casefold():
            continue  # Canvas's second header row (Canvas's importer looks for these words in the first cell)
        if not any(values.get(f) for f in IDENTITY_FIELDS):
            continue
        people.append(
            Person(
                line=line,
                name=values.get("name", ""),
                email=values.get("email", ""),
                id=values.get("id", ""),
                sis_id=values.get("sis_id", ""),
                login=values.get("login", ""),
                section=values.get("section", ""),
                late=_parse_late(values.get("late", ""), source, line),
                submitted_at=_parse_time(values.get("submitted_at", ""), f"{source} line {line}"),
                fields=cells,
            )
        )
    if not people:
        raise RosterError(f"roster {source} has a header ({', '.join(header)}) but nobody in it")
    _check_unique(people, source)
    shown = {f: (col if isinstance(col, str) else " + ".join(col)) for f, col in chosen.items()}
    return Roster(people, shown, source)


def _choose_columns(header, by_key, overrides, source) -> dict:
    unknown = sorted(set(overrides) - set(FIELDS))
    if unknown:
        raise RosterError(
            f"--roster-columns: unknown field(s) {', '.join(unknown)}; the fields are {', '.join(FIELDS)}"
        )
    have = ", ".join(header)
    chosen: dict = {}
    for name in FIELDS:
        if name in overrides:
            wanted = overrides[name]
            if not wanted:
                continue
            if _header_key(wanted) not in by_key:
                raise RosterError(f"roster {source} has no column {wanted!r} (for {name}); its columns are: {have}")
            chosen[name] = header[by_key[_header_key(wanted)]]
            continue
        found = next((header[by_key[c]] for c in DEFAULT_COLUMNS[name] if c in by_key), None)
        if found:
            chosen[name] = found
    if "name" not in chosen and "name" not in overrides:
        first = next((header[by_key[c]] for c in FIRST_NAME_COLUMNS if c in by_key), None)
        last = next((header[by_key[c]] for c in LAST_NAME_COLUMNS if c in by_key), None)
        if first and last:
            chosen["name"] = (first, last)
    if not any(f in chosen for f in IDENTITY_FIELDS):
        raise RosterError(
            f"roster {source} has no column for a name, e-mail or id; its columns are: {have}. "
            f"Name them, for example --roster-columns name=COLUMN,email=COLUMN"
        )
    return chosen


def _parse_late(value: str, source: str, line: int) -> bool | None:
    text = value.strip().casefold()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False if text else None
    raise RosterError(f"roster {source} line {line}: late is {value!r}; use yes/no (or true/false, 1/0, empty)")


def _parse_time(value: str, where: str) -> datetime | None:
    """An ISO 8601 time; without an offset it is UTC.

    Example:
        >>> _parse_time("2025-03-01T23:59", "x").isoformat()
        '2025-03-01T23:59:00+00:00'
    """
    if not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace(" ", "T", 1))
    except ValueError:
        raise RosterError(
            f"{where}: {value!r} is not a time; write it as 2025-03-01T23:59 (ISO 8601, "
            f"optionally with an offset such as +01:00; without one it is UTC)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _check_unique(people: list[Person], source: str) -> None:
    for name in STRONG_KEYS:
        seen: dict[str, Person] = {}
        for person in people:
            value = getattr(person, name).casefold()
            if value and value in seen:
                raise RosterError(
                    f"roster {source}: lines {seen[value].line} and {person.line} have the same "
                    f"{name} {getattr(person, name)!r}; one person per row"
                )
            seen[value] = person
    used: set[str] = set()
    for person in people:
        key = person.id or person.sis_id or person.email or person.login or person.name
        if key.casefold() in used:
            key = f"{key} (line {person.line})"
        used.add(key.casefold())
        person.key = key


# --------------------------------------------------------------------------- matching
def _fold(text: str) -> str:
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", text).casefold())


def _strip_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", text)
    return unicodedata.normalize("NFC", "".join(c for c in decomposed if not unicodedata.combining(c)))


def name_tokens(text: str) -> tuple[str, ...]:
    """The words of a name or file name: NFC, case-folded, split at anything but letters, digits and marks.

    Example:
        >>> name_tokens("JOSE\\u0301 Martínez_12.ipynb")
        ('josé', 'martínez', '12', 'ipynb')
    """
    words, current = [], []
    for char in _fold(text):
        if char.isalnum() or unicodedata.category(char).startswith("M"):
            current.append(char)
        elif current:
            words.append("".join(current))
            current = []
    if current:
        words.append("".join(current))
    return tuple(words)


def _name_forms(name: str) -> set[tuple[str, ...]]:
    forms = {name_tokens(name)}
    if name.count(",") == 1:  # "Last, First" as Canvas writes it
        last, first = name.split(",")
        forms.add(name_tokens(f"{first} {last}"))
    return {form for form in forms if form}


def _contains_words(words: tuple[str, ...], needle: tuple[str, ...]) -> bool:
    size = len(needle)
    if needle[0] not in words:  # the usual case, decided without slicing
        return False
    return any(words[i : i + size] == needle for i in range(len(words) - size + 1))


def contains_identifier(text: str, value: str) -> bool:
    """Whether an id or e-mail ``value`` occurs in ``text`` as a whole token, ignoring case.

    An e-mail must not continue into a longer address (``x.ana@uni.edu`` does not contain
    ``ana@uni.edu``); an id must not touch letters or digits on either side.

    Example:
        >>> contains_identifier("hw1_S123_final", "s123"), contains_identifier("s1234", "s123")
        (True, False)
        >>> contains_identifier("Ana.Lopez@Uni.EDU", "ana.lopez@uni.edu")
        True
    """
    return _occurs(_fold(text), _fold(value.strip()))


def _occurs(haystack: str, needle: str) -> bool:
    """:func:`contains_identifier` on texts already folded."""
    if not needle or needle not in haystack:
        return False
    glue = "@.+-" if "@" in needle else ""
    start = haystack.find(needle)
    while start >= 0:
        before = haystack[start - 1] if start else ""
        after = haystack[start + len(needle) : start + len(needle) + 1]
        if not any(c and (c.isalnum() or c in glue) for c in (before, after)):
            return True
        start = haystack.find(needle, start + 1)
    return False


def submission_name(row: dict) -> str:
    """The original file or folder name of a gradebook row (``.ipynb`` dropped).

    Example:
        >>> submission_name({"student": "x", "submission": "/s/Ana López.ipynb"})
        'Ana López'
    """
    name = row.get("file_name") or (Path(str(row["submission"])).name if row.get("submission") else "")
    name = name or str(row.get("student", ""))
    return name.removesuffix(".ipynb")


class _Prepared:
    """Folded texts and word tuples, computed once (a class of hundreds compares every pair)."""

    def __init__(self, texts: list[str]):
        self.folded = [_fold(text) for text in texts]
        self.words = [name_tokens(text) for text in texts]
        self.plain = [tuple(_strip_accents(w) for w in words) for words in self.words]


def _person_forms(person: Person) -> tuple[list[tuple[str, str]], set, set]:
    identifiers = [(key, _fold(getattr(person, key).strip())) for key in STRONG_KEYS if getattr(person, key).strip()]
    forms = _name_forms(person.name) if person.name else set()
    return identifiers, forms, {tuple(_strip_accents(w) for w in form) for form in forms}


def _strong_matches(text: _Prepared, identifiers, forms) -> list[str]:
    how = [key for key, value in identifiers if any(_occurs(folded, value) for folded in text.folded)]
    if any(_contains_words(words, form) for words in text.words for form in forms):
        how.append("name")
    return how


def _weak_match(text: _Prepared, plain_forms) -> bool:
    return any(_contains_words(words, form) for words in text.plain for form in plain_forms)


def _is_late(person: Person | None, name: str, deadline: datetime | None) -> tuple[bool | None, str, int | None]:
    """``(late, why, days late)``; days only when both the deadline and ``submitted_at`` are known."""
    days = days_late(person.submitted_at if person is not None else None, deadline)
    if person is not None and person.late:
        return True, "roster", days or None
    if "_LATE_" in f"_{name}_":
        return True, "file name", days or None
    if deadline is not None:
        if person is None or person.submitted_at is None:
            return None, "no submitted_at in the roster", None
        if person.submitted_at > deadline:
            return True, f"submitted {person.submitted_at.isoformat()}", days
        return False, "", 0
    return False, "", None


def _missing_row(assignment, max_points, check_names, status, detail) -> dict:
    return {
        "student": "",
        "assignment": assignment,
        "status": status,
        "points": 0,
        "max_points": max_points,
        "detail": detail,
        "error_cell": None,
        "checks": {name: 0 for name in check_names},
        "check_results": [],
        "submission": "",
        "file_name": "",
        "sha256": "",
        "graded_at": "",
    }


def reconcile(
    rows: Iterable[dict],
    roster: Roster | list[Person],
    *,
    max_points: float | None = None,
    assignment: str | None = None,
    check_names: Iterable[str] = (),
    deadline: datetime | None = None,
) -> Reconciled:
    """Map gradebook rows to roster people; a pure function (nothing is read or written).

    Args:
        rows: gradebook rows (dicts as in ``grades.json``), one per submission.
        roster: a :class:`Roster` or a list of :class:`Person`.
        max_points: the assignment's points for ``missing`` rows (default: the largest in ``rows``).
        assignment: the assignment name for ``missing`` rows (default: from ``rows``).
        check_names: the hidden checks' names, so ``missing`` rows have a 0 for each.
        deadline: submissions whose roster ``submitted_at`` is later are ``late``.

    Returns:
        :class:`Reconciled`: ``rows`` has one row per person in roster order (the grade row
        plus ``person``, ``matched_by``, ``late``, ``late_reason``, ``days_late``, ``missing``), status
        ``missing`` or ``ambiguous`` where no grade can be given; ``unmatched`` holds the
        rows of submissions that matched nobody, ``ambiguous`` one entry per ambiguous
        submission (``file_name``, ``student``, ``candidates``, ``reason``, ``row``).

    Example:
        >>> roster = parse_roster("name,email\\nAna López,Ana@Uni.edu\\nBo Li,bo@uni.edu\\n")
        >>> rows = [{"student": "x1", "file_name": "ana@uni.edu.ipynb", "status": "ok", "points": 3,
        ...          "max_points": 4},
        ...         {"student": "x2", "file_name": "who.ipynb", "status": "ok", "points": 4, "max_points": 4}]
        >>> result = reconcile(rows, roster)
        >>> [(r["person"]["name"], r["status"], r["matched_by"]) for r in result.rows]
        [('Ana López', 'ok', 'email'), ('Bo Li', 'missing', '')]
        >>> [r["student"] for r in result.unmatched]
        ['x2']
    """
    people = roster.people if isinstance(roster, Roster) else list(roster)
    rows = list(rows)
    if max_points is None:
        max_points = max((row.get("max_points") or 0 for row in rows), default=0)
    if assignment is None:
        assignment = next((row.get("assignment") for row in rows if row.get("assignment")), "")
    check_names = list(check_names) or sorted({name for row in rows for name in (row.get("checks") or {})})
    found = _match_submissions(rows, people)
    by_person: dict[int, list[int]] = {}
    for index, (person, _) in found.strong.items():
        by_person.setdefault(id(person), []).append(index)
    weak_by_person: dict[int, list[int]] = {}
    for index, person in found.weak.items():
        weak_by_person.setdefault(id(person), []).append(index)
    out = []
    for person in people:
        chosen, how = _choose(person, rows, found, by_person.get(id(person), []), weak_by_person.get(id(person), []))
        if chosen is not None:
            row, missing = dict(rows[chosen]), False
            late, reason, days = _is_late(person, submission_name(row), deadline)
        else:
            maybe = [
                submission_name(rows[i])
                for i, a in sorted(found.ambiguous.items())
                if any(c["key"] == person.key for c in a["candidates"])
            ]
            status = "ambiguous" if maybe else "missing"
            detail = (
                f"could be {', '.join(repr(m) for m in maybe)} (ambiguous; see unmatched.csv)"
                if maybe
                else "no submission matched this person"
            )
            row, missing = _missing_row(assignment, max_points, check_names, status, detail), status == "missing"
            late, reason, days = None, "", None
        row.update(
            person=person.summary(), matched_by=how, late=late, late_reason=reason, days_late=days, missing=missing
        )
        out.append(row)
    return Reconciled(
        rows=out,
        unmatched=[dict(rows[i], problem="matches nobody in the roster") for i in found.unmatched],
        ambiguous=[found.ambiguous[i] for i in sorted(found.ambiguous)],
    )


@dataclass
class _Matches:
    """Which person each submission (by index) fits: strongly, only without accents, several, or nobody."""

    strong: dict = field(default_factory=dict)  # index -> (person, how)
    weak: dict = field(default_factory=dict)  # index -> person
    ambiguous: dict = field(default_factory=dict)  # index -> _ambiguity(...)
    unmatched: list = field(default_factory=list)


def _match_submissions(rows: list[dict], people: list) -> _Matches:
    """Match every submission's names against the people, each against the few people its words can fit."""
    found = _Matches()
    prepared = [(person, *_person_forms(person)) for person in people]
    anchors, plain_anchors = _anchors(prepared)
    for index, row in enumerate(rows):
        name = submission_name(row)
        text = _Prepared([name] + ([str(row["student"])] if row.get("student") and row["student"] != name else []))
        near = sorted({n for words in text.words for word in words for n in anchors.get(word, ())})
        hits = [(prepared[n][0], how) for n in near if (how := _strong_matches(text, *prepared[n][1:3]))]
        if len(hits) == 1:
            found.strong[index] = (hits[0][0], "+".join(hits[0][1]))
        elif len(hits) > 1:
            found.ambiguous[index] = _ambiguity(row, [p for p, _ in hits], "matches several people")
        else:
            near = sorted({n for words in text.plain for word in words for n in plain_anchors.get(word, ())})
            loose = [prepared[n][0] for n in near if _weak_match(text, prepared[n][3])]
            if len(loose) == 1:
                found.weak[index] = loose[0]
            elif loose:
                found.ambiguous[index] = _ambiguity(row, loose, "matches several people when accents are ignored")
            else:
                found.unmatched.append(index)
    return found


def _anchors(prepared: list) -> tuple[dict[str, set[int]], dict[str, set[int]]]:
    """People indexed by their rarest word (exact, and without accents).

    A match means the file name has every word of a person's name (or the first word of an
    identifier): indexing people by their rarest such word makes each file meet a few people, not all.
    """
    frequency: dict[str, int] = {}
    for _, _, forms, plain in prepared:
        for word in {w for form in forms | plain for w in form}:
            frequency[word] = frequency.get(word, 0) + 1
    anchors: dict[str, set[int]] = {}
    plain_anchors: dict[str, set[int]] = {}
    for number, (_, identifiers, forms, plain) in enumerate(prepared):
        words = [name_tokens(value)[:1] for _, value in identifiers] + [form for form in forms]
        for word in [min(form, key=lambda w: frequency.get(w, 0)) for form in words if form]:
            anchors.setdefault(word, set()).add(number)
        for form in plain:
            plain_anchors.setdefault(min(form, key=frequency.__getitem__), set()).add(number)
    return anchors, plain_anchors


def _choose(person, rows: list[dict], found: _Matches, mine: list[int], loose: list[int]) -> tuple[int | None, str]:
    """The one submission that is this person's, and how it was matched; marks every doubt ambiguous."""
    if len(mine) == 1:
        chosen = mine[0]
        for index in loose:  # this person already has an exact match
            found.ambiguous[index] = _ambiguity(
                rows[index],
                [person],
                (
                    f"matches {person.label()} only when accents are ignored, who already has "
                    f"{submission_name(rows[chosen])!r}"
                ),
            )
        return chosen, found.strong[chosen][1]
    if not mine and len(loose) == 1:
        return loose[0], "name without accents"
    many = mine + loose
    for index in many:
        found.ambiguous[index] = _ambiguity(
            rows[index], [person], f"one of {len(many)} submissions matching {person.label()}"
        )
    return None, ""


def _ambiguity(row: dict, candidates: list[Person], reason: str) -> dict:
    return {
        "file_name": submission_name(row),
        "student": row.get("student", ""),
        "submission": row.get("submission"),
        "candidates": [p.summary() for p in candidates],
        "reason": reason,
        "row": row,
    }


# --------------------------------------------------------------------------- files
def _yes(value) -> str:
    return "" if value is None else ("yes" if value else "no")


def roster_csv(rows: list[dict], check_names: list[str]) -> str:
    """``roster-grades.csv``: one line per person, roster fields first."""
    columns = [
        "name",
        "email",
        "id",
        "sis_id",
        "login",
        "section",
        "status",
        "points",
        "max_points",
        "late",
        "days_late",
        "late_penalty",
        "points_before_late",
        "missing",
        "matched_by",
        "student",
        "file_name",
        "detail",
    ] + [f"check:{n}" for n in check_names]
    records = []
    for row in rows:
        person = row.get("person") or {}
        record = {key: person.get(key, "") for key in ("name", "email", "id", "sis_id", "login", "section")}
        record.update(
            {
                key: row.get(key)
                for key in (
                    "status",
                    "points",
                    "max_points",
                    "matched_by",
                    "student",
                    "detail",
                    "days_late",
                    "late_penalty",
                    "points_before_late",
                )
            }
        )
        record.update(
            late=_yes(row.get("late")),
            missing=_yes(row.get("missing")),
            file_name=submission_name(row) if row.get("student") else "",
        )
        record.update({f"check:{n}": (row.get("checks") or {}).get(n) for n in check_names})
        records.append(record)
    return csv_text(columns, records)


def problems_csv(result: Reconciled) -> str:
    """``unmatched.csv``: every submission that reached nobody, and why."""
    columns = [
        "problem",
        "file_name",
        "student",
        "status",
        "points",
        "max_points",
        "candidates",
        "reason",
        "submission",
    ]
    records = [
        {
            "problem": "unmatched",
            "file_name": submission_name(row),
            "student": row.get("student"),
            "status": row.get("status"),
            "points": row.get("points"),
            "max_points": row.get("max_points"),
            "candidates": "",
            "reason": row["problem"],
            "submission": row.get("submission"),
        }
        for row in result.unmatched
    ]
    records += [
        {
            "problem": "ambiguous",
            "file_name": item["file_name"],
            "student": item["student"],
            "status": item["row"].get("status"),
            "points": item["row"].get("points"),
            "max_points": item["row"].get("max_points"),
            "candidates": "; ".join(
                Person(c["line"], name=c["name"], email=c["email"], id=c["id"], key=c["key"]).label()
                for c in item["candidates"]
            ),
            "reason": item["reason"],
            "submission": item["submission"],
        }
        for item in result.ambiguous
    ]
    return csv_text(columns, records)


def apply_roster(
    out_dir: str | Path,
    roster_path: str | Path,
    say: Callable[[str], None] = print,
    *,
    columns: dict[str, str] | None = None,
    deadline: datetime | str | None = None,
    late_policy: str | None = None,
) -> int:
    """Match a graded folder's submissions to a roster and write the roster's view of the grades.

    Reads ``OUT_DIR/grades.json`` and writes, next to it (replacing earlier versions):

    * ``roster-grades.json``: ``{"assignment", "checks", "roster", "grades_sha256", "rows",
      "unmatched", "ambiguous"}``, one row per roster person (see :func:`reconcile`);
    * ``roster-grades.csv``: the same rows, roster fields first;
    * ``unmatched.csv``: each unmatched or ambiguous submission with the reason.

    ``grades.json`` itself is not changed.

    Args:
        out_dir: the ``course grade --out`` folder.
        roster_path: the roster CSV.
        say: receives one line per problem and a summary line.
        columns: field -> roster column (``--roster-columns``).
        deadline: a datetime or ISO text; later ``submitted_at`` values are ``late``.
        late_policy: a ``--late-policy`` text (see :mod:`~course_kit.grading.late`): applied to each
            late row's total, which keeps the total as graded in ``points_before_late``.

    Returns:
        The number of submissions that reached nobody (unmatched plus ambiguous): 0 when all is well.

    Raises:
        RosterError: the roster cannot be used (the message says why).
        GradebookError: the gradebook cannot be used.

    Example::

        problems = apply_roster(Path("grades/03"), Path("roster.csv"), print, columns={"id": "Student number"})
    """
    out_dir = Path(out_dir)
    data = read_gradebook(out_dir)
    # Exports compare this with grades.json, so a roster view older than the grades is refused.
    digest = hashlib.sha256((out_dir / "grades.json").read_bytes()).hexdigest()
    roster = read_roster(roster_path, columns)
    if isinstance(deadline, str):
        deadline = _parse_time(deadline, "--deadline")
    policy = checked_late_policy(late_policy)
    checks = data.get("checks") or []
    max_points = sum(c.get("points", 0) for c in checks) if checks else None
    result = reconcile(
        data["rows"],
        roster,
        max_points=max_points,
        assignment=data.get("assignment"),
        check_names=[c["name"] for c in checks],
        deadline=deadline,
    )
    result.rows = [apply_late_policy(row, policy) for row in result.rows]
    document = {
        "assignment": data.get("assignment"),
        "checks": checks,
        "roster": str(roster_path),
        "roster_columns": roster.columns,
        "deadline": deadline.isoformat() if deadline else None,
        "late_policy": policy.text if policy else None,
        "grades_sha256": digest,
        "rows": result.rows,
        "unmatched": result.unmatched,
        "ambiguous": result.ambiguous,
    }
    write_text(out_dir / "roster-grades.json", json.dumps(document, indent=1, ensure_ascii=False, default=str) + "\n")
    check_names = [c["name"] for c in checks]
    write_text(out_dir / "roster-grades.csv", roster_csv(result.rows, check_names))
    write_text(out_dir / "unmatched.csv", problems_csv(result))
    for row in result.unmatched:
        say(
            f"unmatched: {submission_name(row)!r} ({row.get('status')}, {row.get('points')} points) matches nobody "
            f"in {roster_path}"
        )
    for item in result.ambiguous:
        names = "; ".join(c["name"] or c["key"] for c in item["candidates"])
        say(f"ambiguous: {item['file_name']!r} {item['reason']} ({names})")
    for row in result.rows:
        if row.get("late_problem"):
            say(f"late: {row['person']['name'] or row['person']['key']!r} is {row['late_problem']}")
    counts: dict[str, int] = {}
    for row in result.rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    late = sum(1 for row in result.rows if row.get("late"))
    say(
        f"roster {roster_path}: {len(result.rows)} people ("
        + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        + f"; {late} late), "
        f"{len(result.unmatched)} unmatched and {len(result.ambiguous)} ambiguous submission(s); "
        f"{out_dir / 'roster-grades.csv'}"
    )
    return result.problems


def add_roster_arguments(parser) -> None:
    """``--roster``, ``--roster-columns`` and ``--deadline``, for any command that applies a roster."""
    parser.add_argument("--roster", metavar="CSV", help="course roster: one row per person (see docs/grading.md)")
    parser.add_argument(
        "--roster-columns",
        metavar="MAP",
        default="",
        help="roster columns by field, e.g. 'email=Mail,id=Student number' (fields: "
        + ", ".join(FIELDS)
        + "; FIELD= to ignore one)",
    )
    parser.add_argument(
        "--deadline",
        metavar="TIME",
        help="ISO time (e.g. 2025-03-01T23:59+01:00); a roster submitted_at after it is late",
    )
    parser.add_argument(
        "--late-policy",
        metavar="POLICY",
        default=None,
        help="penalty on late totals, e.g. '10%%/day, max 30%%' or 'zero-after 3d' (default none; "
        "days late come from the roster's submitted_at and --deadline)",
    )


def roster_options(args) -> dict:
    """The keyword arguments of :func:`apply_roster` from :func:`add_roster_arguments`'s options.

    Example:
        >>> import argparse
        >>> roster_options(argparse.Namespace(roster_columns="id=Number", deadline=None))
        {'columns': {'id': 'Number'}, 'deadline': None, 'late_policy': None}
    """
    return {
        "columns": parse_columns(getattr(args, "roster_columns", "")),
        "deadline": getattr(args, "deadline", None),
        "late_policy": getattr(args, "late_policy", None),
    }


def checked_late_policy(text: str | None):
    """The parsed ``--late-policy`` (None for none), its mistakes as :class:`RosterError`.

    Example:
        >>> checked_late_policy("10%/day").per_day
        10.0
    """
    try:
        return parse_late_policy(text)
    except LatePolicyError as problem:
        raise RosterError(str(problem)) from None
