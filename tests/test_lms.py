"""Grades where instructors need them: roster matching, Canvas/Moodle/CSV exports, Gradescope, feedback.

The roster and export tests work on gradebook rows written here (the shape of
``grades.json``); the Gradescope test builds the autograder zip for the toy assignment
and runs its ``run_autograder`` against a folder laid out like Gradescope's ``/autograder``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
import unicodedata
import zipfile
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest

from course_kit.cli import main as course
from course_kit.grading import roster as rosters
from course_kit.grading.autograder import validate_results
from course_kit.grading.exports import canvas_export

ROOT = Path(__file__).resolve().parent.parent
TOY = ROOT / "tests" / "grading_toy" / "solutions"
CHECKS = [
    {"name": "squares_hidden", "title": "squares", "points": 2, "exercise": "squares"},
    {"name": "scaled", "title": "scaled mean", "points": 4, "exercise": "scaled_mean"},
]

# The course: two people whose names differ only in an accent, an e-mail written with
# capitals, a "Last, First" name, and one person who submits nothing.
ROSTER = """name,email,id,section,late
José Martínez,jose@uni.edu,1001,A,
Josè Martínez,josep@uni.edu,1002,A,
Ana López,Ana.Lopez@Uni.EDU,1003,B,yes
"Lee, Kim",kim@uni.edu,1005,B,
Missing Person,missing@uni.edu,1004,B,
"""


def row(file_name: str, points: float, status: str = "ok", detail: str = "") -> dict:
    student = rosters.submission_name({"file_name": file_name}).replace(" ", "_")
    return {
        "student": student,
        "file_name": file_name,
        "status": status,
        "points": points,
        "max_points": 6,
        "detail": detail,
        "error_cell": None,
        "checks": {"squares_hidden": min(points, 2), "scaled": max(points - 2, 0)},
        "check_results": [
            {
                "name": "squares_hidden",
                "title": "squares",
                "points": min(points, 2),
                "max_points": 2,
                "passed": points >= 2,
                "message": "correct",
            },
            {
                "name": "scaled",
                "title": "scaled mean",
                "points": max(points - 2, 0),
                "max_points": 4,
                "passed": points >= 6,
                "message": "got <script>alert(1)</script>",
            },
        ],
        "submission": f"/submissions/{file_name}",
        "sha256": "0" * 64,
        "graded_at": "2025-03-02T10:00:00+00:00",
        "assignment": "00_toy",
        "runtime_s": 1.0,
        "metrics": None,
    }


SUBMISSIONS = [
    row("José Martínez.ipynb", 6),
    row(unicodedata.normalize("NFD", "Josè Martínez.ipynb"), 4),  # as macOS names files: decomposed accents
    row("ana.lopez@uni.edu.ipynb", 5, "error", "cell In [8] raised ZeroDivisionError"),
    row("hw_1005_LATE_kim.ipynb", 3),  # Canvas marks late work with _LATE_ in the downloaded name
    row("Jose Martinez.ipynb", 2),  # no accents: could be either José or Josè
    row("stranger.ipynb", 6),
]


def people(result) -> dict:
    return {r["person"]["name"]: r for r in result.rows}


def write_gradebook(folder: Path, rows: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "grades.json").write_text(
        json.dumps({"assignment": "00_toy", "checks": CHECKS, "rows": rows}, ensure_ascii=False), encoding="utf-8"
    )
    return folder


def write_roster(path: Path, text: str = ROSTER) -> Path:
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))  # as Excel saves "CSV UTF-8": with a BOM
    return path


def read_csv(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"))))


# --------------------------------------------------------------------------- roster
def test_roster_gives_every_person_a_row_and_reports_every_stray_submission(tmp_path):
    roster = rosters.read_roster(write_roster(tmp_path / "roster.csv"))
    result = rosters.reconcile(SUBMISSIONS, roster, max_points=6, check_names=["squares_hidden", "scaled"])
    by_name = people(result)
    assert list(by_name) == ["José Martínez", "Josè Martínez", "Ana López", "Lee, Kim", "Missing Person"]
    # Accents make different people: each keeps their own exact match.
    assert (by_name["José Martínez"]["points"], by_name["José Martínez"]["matched_by"]) == (6, "name")
    assert (by_name["Josè Martínez"]["points"], by_name["Josè Martínez"]["matched_by"]) == (4, "name")
    # The e-mail in the file name is lower case, the roster's is not.
    assert by_name["Ana López"]["matched_by"] == "email" and by_name["Ana López"]["status"] == "error"
    assert by_name["Ana López"]["late"] is True and by_name["Ana López"]["late_reason"] == "roster"
    assert by_name["Lee, Kim"]["matched_by"] == "id" and by_name["Lee, Kim"]["late_reason"] == "file name"
    missing = by_name["Missing Person"]
    assert (missing["status"], missing["points"], missing["max_points"], missing["missing"]) == ("missing", 0, 6, True)
    assert missing["checks"] == {"squares_hidden": 0, "scaled": 0}
    # Nothing is dropped: the stranger is unmatched, the accent-less file ambiguous between both Josés.
    assert [r["file_name"] for r in result.unmatched] == ["stranger.ipynb"]
    assert len(result.ambiguous) == 1 and result.ambiguous[0]["file_name"] == "Jose Martinez"
    assert {c["name"] for c in result.ambiguous[0]["candidates"]} == {"José Martínez", "Josè Martínez"}
    assert result.problems == 2


def test_ambiguous_matches_are_reported_never_guessed():
    roster = rosters.parse_roster("name,id\nJosé Martínez,1001\nBo Li,1002\nCleo Ng,1003\n")
    result = rosters.reconcile(
        [
            row("bo li.ipynb", 6),
            row("1002_resubmitted.ipynb", 5),  # two for Bo
            row("1001_1003_pair.ipynb", 4),  # names two people
            row("JOSE MARTINEZ.ipynb", 3),
        ],
        roster,
    )  # one fits, ignoring accents
    by_name = people(result)
    assert by_name["Bo Li"]["status"] == "ambiguous" and by_name["Bo Li"]["points"] == 0
    assert by_name["Cleo Ng"]["status"] == "ambiguous" and "1001_1003_pair" in by_name["Cleo Ng"]["detail"]
    # José has one candidate that fits only when accents are ignored: used, and said so.
    jose = by_name["José Martínez"]
    assert (jose["points"], jose["matched_by"]) == (3, "name without accents")
    reasons = {item["file_name"]: item["reason"] for item in result.ambiguous}
    assert set(reasons) == {"bo li", "1002_resubmitted", "1001_1003_pair"}
    assert reasons["1001_1003_pair"] == "matches several people"
    assert not result.unmatched


def test_roster_problems_name_the_fix(tmp_path):
    with pytest.raises(rosters.RosterError, match="no column 'Matrikel' .*its columns are: name, email"):
        rosters.parse_roster("name,email\nAna,a@x.org\n", {"id": "Matrikel"})
    with pytest.raises(rosters.RosterError, match="lines 2 and 3 have the same email"):
        rosters.parse_roster("name,email\nAna,a@x.org\nAnna,A@X.org\n")
    with pytest.raises(rosters.RosterError, match="late is 'maybe'"):
        rosters.parse_roster("name,late\nAna,maybe\n")
    with pytest.raises(rosters.RosterError, match="no column for a name, e-mail or id; its columns are: colour"):
        rosters.parse_roster("colour\nred\n")
    (tmp_path / "latin1.csv").write_bytes("name\nJos\xe9\n".encode("latin-1"))
    with pytest.raises(rosters.RosterError, match="not UTF-8"):
        rosters.read_roster(tmp_path / "latin1.csv")
    # Semicolons (spreadsheets in many locales), first + last name columns, a renamed column.
    roster = rosters.parse_roster("First name;Surname;Matrikelnummer\nJosé;Martínez;77\n", {"id": "Matrikelnummer"})
    assert (roster.people[0].name, roster.people[0].id) == ("José Martínez", "77")


def test_apply_roster_writes_the_roster_view_and_lists_the_problems(tmp_path):
    out = write_gradebook(tmp_path / "grades", SUBMISSIONS)
    before = (out / "grades.json").read_bytes()
    said = []
    problems = rosters.apply_roster(
        out, write_roster(tmp_path / "roster.csv"), said.append, deadline="2025-03-01T23:59"
    )
    assert problems == 2
    assert (out / "grades.json").read_bytes() == before
    assert any(line.startswith("unmatched: 'stranger'") for line in said)
    assert any(line.startswith("ambiguous: 'Jose Martinez'") for line in said)
    table = {r["name"]: r for r in csv.DictReader(io.StringIO((out / "roster-grades.csv").read_text()))}
    assert table["Missing Person"]["status"] == "missing" and table["Missing Person"]["missing"] == "yes"
    assert table["Ana López"]["late"] == "yes"
    assert table["José Martínez"]["late"] == ""  # a deadline, but no submitted_at: unknown, not "on time"
    strays = list(csv.DictReader(io.StringIO((out / "unmatched.csv").read_text())))
    assert [(s["problem"], s["file_name"]) for s in strays] == [
        ("unmatched", "stranger"),
        ("ambiguous", "Jose Martinez"),
    ]
    view = json.loads((out / "roster-grades.json").read_text())
    assert len(view["rows"]) == 5 and view["deadline"] == "2025-03-01T23:59:00+00:00"


# --------------------------------------------------------------------------- exports
CANVAS = """Student,ID,SIS User ID,SIS Login ID,Section,Quiz 1 (4200),00_toy (4242),Current Score
    Points Possible,,,,,5.00,10.00,(read only)
,,,,,,Manual Posting,
"Martínez, José",1,S1001,jose@uni.edu,A,4,,80
"Martínez, Josè",2,S1002,josep@uni.edu,A,5,,100
"López, Ana",3,S1003,ana.lopez@uni.edu,B,3,,60
"Missing, Person",4,S1004,missing@uni.edu,B,2,8,40
"Student, Test",5,,test@canvas,A,,7,
"""


def test_exports_read_back_as_their_formats(tmp_path, capsys):
    out = write_gradebook(tmp_path / "grades", SUBMISSIONS)
    roster = write_roster(tmp_path / "roster.csv")
    # Plain CSV, scaled to 100 points: every roster person, then the strays; missing and late explicit.
    assert course(["export", "csv", str(out), "--roster", str(roster), "--max-points", "100"]) == 1
    plain = list(csv.DictReader(io.StringIO((out / "grades-export.csv").read_text(encoding="utf-8-sig"))))
    by_name = {r["name"] or r["file_name"]: r for r in plain}
    assert by_name["José Martínez"]["points"] == "100" and by_name["José Martínez"]["percentage"] == "100"
    assert (by_name["Ana López"]["points"], by_name["Ana López"]["late"]) == ("83.33", "yes")
    assert by_name["Missing Person"]["missing"] == "yes" and by_name["Missing Person"]["points"] == "0"
    assert by_name["stranger"]["matched_by"] == "unmatched" and by_name["stranger"]["points"] == "100"
    assert by_name["Jose Martinez"]["matched_by"] == "ambiguous"  # kept too
    assert "problem: 'stranger' is unmatched on the roster" in capsys.readouterr().out

    # Moodle: e-mail and grade, the roster's e-mail as written; the missing person gets 0.
    assert course(["export", "moodle", str(out), "--max-points", "10"]) == 1
    moodle = read_csv(out / "moodle-grades.csv")
    assert moodle[0] == ["email", "grade"]
    assert dict(moodle[1:]) == {
        "jose@uni.edu": "10",
        "josep@uni.edu": "6.67",
        "Ana.Lopez@Uni.EDU": "8.33",
        "kim@uni.edu": "5",
        "missing@uni.edu": "0",
    }

    # Canvas: the downloaded export stays as it was; the upload keeps its header rows.
    canvas = tmp_path / "Grades-course.csv"
    canvas.write_text(CANVAS, encoding="utf-8")
    assert course(["export", "canvas", str(out), "--canvas-export", str(canvas)]) == 1
    assert canvas.read_text(encoding="utf-8") == CANVAS
    upload = read_csv(out / "canvas-upload.csv")
    assert upload[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "00_toy (4242)"]
    assert upload[1] == ["    Points Possible", "", "", "", "", "10.00"]
    assert upload[2][-1] == "Manual Posting"
    grades = {r[0]: r[-1] for r in upload[3:]}
    # Scaled to Canvas's 10 points; matched by SIS Login ID (e-mail, any case). Grades given in Canvas
    # stay: the test student's 7 (not on the roster), and the 8 of a person who handed in on paper.
    assert grades == {
        "Martínez, José": "10",
        "Martínez, Josè": "6.67",
        "López, Ana": "8.33",
        "Missing, Person": "8",
        "Student, Test": "7",
    }
    report = capsys.readouterr().out
    assert "'Missing, Person' has no submission here but a grade in Canvas (8); kept" in report
    assert "points scaled to Canvas's 10 points possible" in report
    assert "'Lee, Kim' (ok) is not in the Canvas export" in report
    # The instructor's file is never the output.
    assert course(["export", "canvas", str(out), "--canvas-export", str(canvas), "--out", str(canvas)]) == 2
    assert canvas.read_text(encoding="utf-8") == CANVAS


def test_canvas_export_without_a_roster_uses_canvas_as_the_roster(tmp_path):
    # Canvas's bulk download names files <name>_<Canvas ID>_<submission id>_<file>.
    rows = [
        row("martinezjose_1_9001_00_toy.ipynb", 6),
        row("martinezjose_2_9002_00_toy.ipynb", 3),
        row("lopezana_LATE_3_9003_00_toy.ipynb", 4.5),
        row("someone_else.ipynb", 1),
    ]
    out = write_gradebook(tmp_path / "grades", rows)
    canvas = tmp_path / "export.csv"
    canvas.write_bytes(b"\xef\xbb\xbf" + CANVAS.encode("utf-8"))
    assert (
        course(
            [
                "export",
                "canvas",
                str(out),
                "--canvas-export",
                str(canvas),
                "--column",
                "Lab 2",
                "--new-column",
                "--max-points",
                "20",
                "--all-columns",
            ]
        )
        == 1
    )  # someone_else matches nobody
    raw = (out / "canvas-upload.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # the export's encoding is kept
    upload = read_csv(out / "canvas-upload.csv")
    assert upload[0][-1] == "Lab 2" and upload[0][:-1] == CANVAS.splitlines()[0].split(",")
    assert upload[1][-1] == "20"  # a new column: Canvas reads its points from this row
    grades = {r[0]: r[-1] for r in upload[3:]}
    assert grades == {
        "Martínez, José": "20",
        "Martínez, Josè": "10",
        "López, Ana": "15",
        "Missing, Person": "0",
        "Student, Test": "0",
    }
    assert {r[0]: r[5] for r in upload[3:]}["López, Ana"] == "3"  # other columns kept as exported


def test_canvas_export_refuses_what_is_not_a_canvas_export():
    with pytest.raises(ValueError, match="not a Canvas gradebook export: it starts with Name, Email"):
        canvas_export([], "Name,Email,Lab (1)\n", column="Lab")
    with pytest.raises(ValueError, match="read-only"):
        canvas_export([], CANVAS, column="Current Score")


# Real-shaped variants of Canvas's export. Without the SIS permission Canvas leaves out the
# SIS columns; an account that shows names split writes LastName and FirstName; a user with
# semicolons as separator (or a locale Canvas detects it for) gets ';' and decimal commas.
CANVAS_NO_SIS = """Student,ID,Section,00_toy (4242),Current Score
    Points Possible,,,10.00,(read only)
"Martínez, José",1,A,,80
"Martínez, Josè",2,A,,100
"López, Ana",3,B,,60
"""
CANVAS_SPLIT = """LastName,FirstName,ID,SIS User ID,SIS Login ID,Integration ID,Section,00_toy (4242)
    Points Possible,,,,,,,10.00
Martínez,José,1,S1001,jose@uni.edu,I1,A,
López,Ana,3,S1003,ANA.LOPEZ@uni.edu,I3,B,
"""
CANVAS_SEMICOLON = """\ufeffStudent;ID;SIS User ID;SIS Login ID;Section;Quiz 1 (4200);00_toy (4242);Current Score
    Points Possible;;;;;5,00;7,50;(read only)
;;;;;;Manual Posting;
;;;;;;;
Martínez, José;1;S1001;jose@uni.edu;A;4,5;;80,5
López, Ana;3;S1003;ana.lopez@uni.edu;B;3;;60
"""


def canvas_upload(tmp_path, export_text: str, *options: str, roster: bool = True) -> tuple[int, list[list[str]], str]:
    """Run course export canvas on SUBMISSIONS (with the roster, or with Canvas as the roster)."""
    out = write_gradebook(
        tmp_path / "grades",
        SUBMISSIONS if roster else [row("martinezjose_1_9001_00_toy.ipynb", 6), row("lopezana_3_9003_00_toy.ipynb", 3)],
    )
    canvas = tmp_path / "export.csv"
    canvas.write_text(export_text, encoding="utf-8")
    args = ["export", "canvas", str(out), "--canvas-export", str(canvas), *options]
    status = course(args + (["--roster", str(write_roster(tmp_path / "roster.csv"))] if roster else []))
    upload = out / "canvas-upload.csv"
    text = upload.read_text(encoding="utf-8-sig") if upload.exists() else ""
    separator = ";" if text.startswith("Student;") else ","
    return status, list(csv.reader(io.StringIO(text), delimiter=separator)), text


def test_canvas_export_without_sis_columns_matches_by_id_or_name(tmp_path, capsys):
    # Canvas as the roster: its IDs are in the bulk download's file names.
    status, upload, _ = canvas_upload(tmp_path / "a", CANVAS_NO_SIS, roster=False)
    assert status == 0, capsys.readouterr()
    assert upload[0] == ["Student", "ID", "Section", "00_toy (4242)"]
    assert {r[0]: r[-1] for r in upload[2:]} == {
        "Martínez, José": "10",
        "López, Ana": "5",
        "Martínez, Josè": "0",
    }  # no submission: missing
    # A roster of names and e-mails: no identifier is in the export, so unique names place people.
    status, upload, _ = canvas_upload(tmp_path / "b", CANVAS_NO_SIS)
    assert {r[0]: r[-1] for r in upload[2:]} == {"Martínez, José": "10", "Martínez, Josè": "6.67", "López, Ana": "8.33"}
    assert "'Martínez, Josè' matched by name" in capsys.readouterr().out


def test_canvas_export_with_split_names_keeps_them_as_canvas_reads_them(tmp_path):
    variant = CANVAS_SPLIT.replace("LastName,FirstName", "Last Name,First Name")
    for text in (CANVAS_SPLIT, variant):
        status, upload, _ = canvas_upload(tmp_path / str(len(text)), text)
        assert status == 1  # roster people who are not in this (shorter) export are listed
        assert upload[0] == [
            "LastName",
            "FirstName",
            "ID",
            "SIS User ID",
            "SIS Login ID",
            "Integration ID",
            "Section",
            "00_toy (4242)",
        ]
        assert [r[:2] + r[-1:] for r in upload[2:]] == [["Martínez", "José", "10"], ["López", "Ana", "8.33"]]


def test_canvas_export_with_semicolons_and_decimal_commas_scales_and_writes_them_back(tmp_path):
    status, upload, text = canvas_upload(tmp_path / "a", CANVAS_SEMICOLON)
    assert status == 1 and text.startswith("Student;ID;")
    assert upload[1] == ["    Points Possible", "", "", "", "", "7,50"] and upload[2][-1] == "Manual Posting"
    assert len(upload) == 5  # the line of separators only is dropped, as Canvas's importer skips it
    # 7,50 is 7.5 points: 6 of 6 gives 7,5 and 5 of 6 gives 6,25, written with the export's decimal comma.
    assert {r[0]: r[-1] for r in upload[3:]} == {"Martínez, José": "7,5", "López, Ana": "6,25"}
    status, upload, _ = canvas_upload(tmp_path / "b", CANVAS_SEMICOLON, "--all-columns", roster=False)
    assert status == 0 and upload[0][-2:] == ["00_toy (4242)", "Current Score"]
    assert [r[5:] for r in upload[3:]] == [["4,5", "7,5", "80,5"], ["3", "3,75", "60"]]


def test_canvas_upload_in_semicolons_is_spreadsheet_safe_and_keeps_decimal_commas():
    # The upload keeps the export's ';' and decimal commas, and goes through files.csv_lines like every
    # CSV: a formula after any separator is neutralized, numbers (negative, with a comma) stay numbers.
    canvas = (
        "Student;ID;SIS Login ID;Section;Lab (77)\n"
        "    Points Possible;;;;10,00\n"
        "@SUM(A1);101;bo@uni.edu;A,=1+1;\n"
        "Li, Bo;102;li@uni.edu;B;\n"
    )
    rows = [
        {"person": {"id": "101"}, "status": "ok", "points": 4, "max_points": 6},
        {"person": {"id": "102"}, "status": "ok", "points": -1.5, "max_points": 6},
    ]
    text, report = canvas_export(rows, canvas, column="Lab")
    assert text.splitlines() == [
        "Student;ID;SIS Login ID;Section;Lab (77)",
        "    Points Possible;;;;10,00",
        "'@SUM(A1);101;bo@uni.edu;A,'=1+1;6,67",
        "Li, Bo;102;li@uni.edu;B;-2,5",
    ]
    assert report.written == 2 and not report.problems


def test_canvas_export_refuses_points_possible_it_cannot_read(tmp_path, capsys):
    broken = CANVAS.replace(",5.00,10.00,", ",5.00,10 Punkte,")
    status, _, _ = canvas_upload(tmp_path / "a", broken)
    error = capsys.readouterr().err
    assert status == 2 and "line 2: Points Possible of '00_toy (4242)' is '10 Punkte', not a number" in error
    assert not (tmp_path / "a" / "grades" / "canvas-upload.csv").exists()
    empty = CANVAS.replace(",5.00,10.00,", ",5.00,,")
    status, _, _ = canvas_upload(tmp_path / "b", empty)
    assert status == 2 and "has no Points Possible (line 2 has no value for it)" in capsys.readouterr().err
    status, upload, _ = canvas_upload(tmp_path / "c", empty, "--max-points", "12")
    assert status == 1 and {r[0]: r[-1] for r in upload[3:]}["Martínez, José"] == "12"


def test_a_mistyped_canvas_column_is_an_error_unless_a_new_column_is_asked_for(tmp_path, capsys):
    status, _, _ = canvas_upload(tmp_path / "a", CANVAS, "--column", "00_tyo")
    assert status == 2
    assert "no assignment column '00_tyo' (nearest: '00_toy (4242)'" in capsys.readouterr().err
    status, upload, _ = canvas_upload(tmp_path / "b", CANVAS, "--column", "00_tyo", "--new-column")
    assert status == 1 and upload[0][-1] == "00_tyo"
    assert upload[1][-1] == "6"  # worth the kit's 6 points: Canvas creates it with that many
    assert {r[0]: r[-1] for r in upload[3:]}["Martínez, Josè"] == "4"
    assert "new Canvas column '00_tyo' worth 6 points" in capsys.readouterr().out


def test_canvas_upload_without_a_section_column_gets_an_empty_one():
    rows = [{"person": {"id": "7"}, "status": "ok", "points": 2, "max_points": 4}]
    text, report = canvas_export(
        rows, "Student,ID,SIS User ID,Lab (5)\n    Points Possible,,,8\nBo,7,,\n", column="Lab"
    )
    # Canvas's importer wants SIS User ID only next to SIS Login ID, and a Section last.
    assert text.splitlines() == ["Student,ID,Section,Lab (5)", "    Points Possible,,,8", "Bo,7,,4"]
    assert any("no Section column" in note for note in report.notes)


# --------------------------------------------------------------------------- moodle
MOODLE_PARTICIPANTS = """First name,Last name,Email address
José,Martínez,JOSE@uni.edu
Josè,Martínez,josep@uni.edu
Ana,López,ana.lopez@uni.edu
Missing,Person,missing@uni.edu
"""


def test_moodle_export_checks_everyone_against_the_participants(tmp_path, capsys):
    out = write_gradebook(tmp_path / "grades", SUBMISSIONS)
    participants = tmp_path / "courseid_12_participants.csv"
    participants.write_bytes(b"\xef\xbb\xbf" + MOODLE_PARTICIPANTS.encode())  # Moodle writes a BOM
    assert (
        course(
            [
                "export",
                "moodle",
                str(out),
                "--roster",
                str(write_roster(tmp_path / "roster.csv")),
                "--participants",
                str(participants),
                "--feedback",
                "--per-check",
            ]
        )
        == 1
    )
    moodle = read_csv(out / "moodle-grades.csv")
    assert moodle[0] == ["email", "grade", "feedback", "00_toy: squares", "00_toy: scaled mean"]
    by_email = {r[0]: r[1:] for r in moodle[1:]}
    # The participant's own spelling; Kim (not enrolled in Moodle) left out, as Moodle would abort the import.
    assert list(by_email) == ["JOSE@uni.edu", "josep@uni.edu", "ana.lopez@uni.edu", "missing@uni.edu"]
    assert by_email["JOSE@uni.edu"] == ["6", "6 / 6 points: graded; 2 of 2 checks passed", "2", "4"]
    assert by_email["ana.lopez@uni.edu"][1] == "5 / 6 points: your notebook raised an error; 1 of 2 checks passed"
    assert by_email["missing@uni.edu"][:2] == ["0", "0 / 6 points: no submission"]
    assert "<script>" not in (out / "moodle-grades.csv").read_text()  # check messages stay out
    report = capsys.readouterr().out
    assert (
        "problem: 'Lee, Kim' (email kim@uni.edu) is not among the Moodle participants in "
        f"{participants}: Moodle would abort the whole import at this row"
    ) in report
    (tmp_path / "no-email.csv").write_text("First name,Last name\nAna,López\n")
    assert course(["export", "moodle", str(out), "--participants", str(tmp_path / "no-email.csv")]) == 2
    assert "has no email column (its columns: First name, Last name)" in capsys.readouterr().err


# --------------------------------------------------------------------------- lateness
def test_late_policies_parse_strictly():
    from course_kit.grading.late import LatePolicyError, parse_late_policy

    assert [parse_late_policy("10%/day, max 30%").percent(d) for d in (1, 3, 9)] == [10, 30, 30]
    assert [parse_late_policy("ZERO-AFTER 3d").percent(d) for d in (3, 4)] == [0, 100]
    assert [parse_late_policy("12.5 % / day, zero-after 2 days").percent(d) for d in (2, 3)] == [25, 100]
    assert parse_late_policy(" none ") is None
    for text, problem in [
        ("10%", "'10%' is not a rule"),
        ("10%/day, 5%/day", "repeats a rule"),
        ("max 30%", "caps a per-day penalty"),
        ("150%/day", "not between 0 and 100"),
        ("zero-after 2.5d", "is not a rule"),
        ("none, 10%/day", "write 'none' alone"),
    ]:
        with pytest.raises(LatePolicyError, match=problem):
            parse_late_policy(text)


LATE_ROSTER = """name,email,id,submitted_at,late
José Martínez,jose@uni.edu,1001,2025-03-01T12:00+00:00,
Josè Martínez,josep@uni.edu,1002,2025-03-03T10:00+00:00,
Ana López,Ana.Lopez@Uni.EDU,1003,,yes
Missing Person,missing@uni.edu,1004,,
"""


def test_a_late_policy_takes_points_off_the_total_and_says_so(tmp_path, capsys):
    out = write_gradebook(tmp_path / "grades", SUBMISSIONS[:3])
    roster = write_roster(tmp_path / "roster.csv", LATE_ROSTER)
    assert (
        course(
            [
                "export",
                "csv",
                str(out),
                "--roster",
                str(roster),
                "--deadline",
                "2025-03-01T23:59+00:00",
                "--late-policy",
                "10%/day, max 30%",
                "--per-check",
            ]
        )
        == 1
    )
    plain = {r["name"]: r for r in csv.DictReader(io.StringIO((out / "grades-export.csv").read_text("utf-8-sig")))}
    josep = plain["Josè Martínez"]  # 34 h late: 2 days, 20 % of 6 points off
    assert (josep["days_late"], josep["points_before_late"], josep["late_penalty"], josep["points"]) == (
        "2",
        "4",
        "1.2",
        "2.8",
    )
    assert (josep["check:squares_hidden"], josep["check:scaled"]) == ("2", "2")  # checks keep their points
    assert (plain["José Martínez"]["days_late"], plain["José Martínez"]["points"]) == ("0", "6")
    ana = plain["Ana López"]  # late by the roster, but when? No penalty is guessed: it is listed.
    assert (ana["late"], ana["days_late"], ana["late_penalty"], ana["points"]) == ("yes", "", "", "5")
    assert "problem: 'Ana López' is late (roster) but the days late are unknown" in capsys.readouterr().out
    assert course(["feedback", str(out), "--format", "md"]) == 0
    josep_id = SUBMISSIONS[1]["student"]  # decomposed accents, as the file was named
    page = (out / "feedback-md" / f"{josep_id}.md").read_text()
    assert (
        "Submitted 2 days late: late policy 10%/day, max 30% takes off 20% of 6 points (1.2), from 4 to 2.8 points."
    ) in page
    assert course(["feedback", str(out)]) == 0
    assert "takes off 20% of 6 points" in (out / "feedback-html" / f"{josep_id}.html").read_text()
    assert "late" not in (out / "feedback-md" / "José_Martínez.md").read_text().casefold()
    assert course(["export", "csv", str(out), "--late-policy", "10%/day"]) == 2  # lateness needs the roster
    assert course(["export", "csv", str(out), "--roster", str(roster), "--late-policy", "10%/week"]) == 2
    assert "'10%/week' is not a rule" in capsys.readouterr().err


# --------------------------------------------------------------------------- feedback
class Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)


def test_feedback_pages_are_escaped_and_named(tmp_path):
    out = write_gradebook(tmp_path / "grades", SUBMISSIONS[:3])
    rosters.apply_roster(out, write_roster(tmp_path / "roster.csv"), lambda line: None)
    executed = out / "executed"
    executed.mkdir()
    notebook = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell(
                "show()",
                outputs=[
                    nbformat.v4.new_output(
                        "display_data", data={"text/html": "<b>plot</b><script>alert('from student')</script>"}
                    )
                ],
            )
        ]
    )
    nbformat.write(notebook, str(executed / "José_Martínez.ipynb"))
    assert course(["feedback", str(out), "--html-notebooks"]) == 0
    page = (out / "feedback-html" / "José_Martínez.html").read_text(encoding="utf-8")
    assert "José Martínez (José_Martínez)" in page and "6 / 6 points" in page
    assert 'href="José_Martínez.notebook.html"' in page
    failed = (out / "feedback-html" / "ana.lopez@uni.edu.html").read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in failed and "ZeroDivisionError" in failed
    for html_text in (page, failed):
        parser = Tags()
        parser.feed(html_text)
        assert "script" not in parser.tags and "link" not in parser.tags  # nothing runs, nothing is fetched
    converted = (out / "feedback-html" / "José_Martínez.notebook.html").read_text(encoding="utf-8")
    assert "<b>plot</b>" in converted and "<script>alert('from student')" not in converted
    assert sorted(p.name for p in (out / "feedback-html").glob("*.html") if "notebook" not in p.name) == sorted(
        f"{r['student']}.html" for r in SUBMISSIONS[:3]
    )
    assert course(["feedback", str(out), "--format", "md"]) == 0
    assert "(Ana López, ana.lopez@uni.edu)" in (out / "feedback-md" / "ana.lopez@uni.edu.md").read_text()


class Elements(HTMLParser):
    """Every start tag with its attributes, as a browser's parser sees them."""

    def __init__(self):
        super().__init__()
        self.elements: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))


def test_converted_notebooks_keep_no_script_handler_or_script_url(tmp_path):
    """Outputs, Markdown and metadata built to run script (an image's width, alt text, HTML, SVG) lose it."""
    sys.path.insert(0, str(ROOT / "tests" / "grading_toy"))
    import crafted

    from course_kit.grading.feedback import POLICY, notebook_html

    path = tmp_path / "hostile.ipynb"
    nbformat.write(crafted.script_notebook(), str(path))
    page = notebook_html(path)
    parser = Elements()
    parser.feed(page)
    tags = [tag for tag, _ in parser.elements]
    assert not {"script", "iframe", "svg", "object", "embed", "link", "base", "form"} & set(tags), set(tags)
    handlers = [(tag, name) for tag, attrs in parser.elements for name in attrs if name.startswith("on")]
    assert handlers == []
    urls = [value for _, attrs in parser.elements for name, value in attrs.items() if name in ("href", "src")]
    assert urls and all(not value.strip().lower().startswith("javascript:") for value in urls), urls
    assert all(
        value.startswith("data:image/") for _, attrs in parser.elements if "src" in attrs for value in [attrs["src"]]
    ), urls
    assert ("meta", {"http-equiv": "Content-Security-Policy", "content": POLICY}) in parser.elements
    assert tags.index("meta") < tags.index("body")  # the policy is in force before any content
    # The work itself is still there: the Markdown text, the images, the traceback (as text).
    assert "Plain text." in page and tags.count("img") >= 4 and "&lt;img src=x onerror=" in page


# --------------------------------------------------------------------------- Gradescope
def run_autograder(source: Path, base: Path, notebook: nbformat.NotebookNode) -> tuple[dict | None, str]:
    """Lay out a folder as Gradescope does, put the notebook in submission/, run run_autograder."""
    root = base / "autograder"
    (root / "submission").mkdir(parents=True)
    (root / "results").mkdir()
    shutil.copytree(source, root / "source", symlinks=True)
    source = root / "source"
    nbformat.write(notebook, str(root / "submission" / "00_toy.ipynb"))
    (root / "submission_metadata.json").write_text(json.dumps({"users": [{"email": "ana@uni.edu", "name": "Ana"}]}))
    env = dict(
        os.environ,
        COURSE_AUTOGRADER_ROOT=str(root),
        COURSE_AUTOGRADER_PYTHON=sys.executable,
        PYTHONPATH=str(source / "kit"),  # the kit packed in the zip, instead of pip-installing it
        # As in a Docker container whose seccomp profile forbids user namespaces: no bubblewrap.
        COURSE_BWRAP=str(base / "no-bwrap-here"),
    )
    done = subprocess.run(
        ["bash", str(source / "run_autograder")], env=env, capture_output=True, text=True, timeout=300
    )
    results = root / "results" / "results.json"
    log = done.stdout + done.stderr
    assert f"kit: {source / 'kit' / 'course_kit'}" in log, log  # graded by the kit packed in the zip
    assert "no bubblewrap (the container is the sandbox)" in log, log  # the autograder's own mode, chosen
    return (json.loads(results.read_text()) if results.exists() else None), log


@pytest.mark.slow
def test_course_grade_with_a_roster_gives_missing_people_rows_and_reports_strays(tmp_path):
    submissions, out = tmp_path / "submissions", tmp_path / "out"
    submissions.mkdir()
    solution = nbformat.read(str(TOY / "00_toy.ipynb"), as_version=4)
    for name in ("José García.ipynb", "Josè García.ipynb", "nobody-we-know.ipynb"):
        nbformat.write(solution, submissions / name)
    roster = tmp_path / "roster.csv"
    roster.write_text(
        "name,email,id\nJosé García,jose@uni.example,1\nJosè García,JOSE2@uni.example,2\nAna Silva,ana@uni.example,3\n",
        encoding="utf-8",
    )
    command = [
        sys.executable,
        "-m",
        "course_kit.cli",
        "grade",
        str(submissions),
        "--assignment",
        "00_toy",
        "--out",
        str(out),
        "--solutions",
        str(TOY),
        "--no-solution-check",
        "--roster",
        str(roster),
        "--timeout",
        "60",
        "--cell-timeout",
        "10",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    view = json.loads((out / "roster-grades.json").read_text(encoding="utf-8"))
    statuses = {row["person"]["name"]: row["status"] for row in view["rows"]}
    assert statuses == {"José García": "ok", "Josè García": "ok", "Ana Silva": "missing"}
    assert "nobody-we-know" in (out / "unmatched.csv").read_text(encoding="utf-8")
    assert "nobody-we-know" in done.stdout  # reported, never dropped


@pytest.mark.slow
def test_gradescope_autograder_grades_like_course_grade(tmp_path):
    from course_kit.release import student_version

    archive = tmp_path / "toy.zip"
    assert (
        course(
            [
                "autograder",
                "00_toy",
                "--solutions",
                str(TOY),
                "--out",
                str(archive),
                "--run-as",
                "",
                "--visibility",
                "after_published",
                "--timeout",
                "60",
                "--cell-timeout",
                "10",
            ]
        )
        == 0
    )
    with zipfile.ZipFile(archive) as opened:
        names = set(opened.namelist())
        modes = {info.filename: info.external_attr >> 16 for info in opened.infolist()}
        opened.extractall(tmp_path / "source")
    assert {
        "setup.sh",
        "run_autograder",
        "autograder.json",
        "hidden_checks/00_toy.py",
        "kit/pyproject.toml",
        "kit/README.md",
        "kit/LICENSE",
        "kit/course_kit/grading/job.py",
        "kit/course_utils/__init__.py",
    } <= names
    assert not any(n.startswith(("kit/tests/", "kit/solutions/")) or n.endswith((".ipynb", ".pyc")) for n in names)
    assert modes["run_autograder"] & 0o111 and modes["setup.sh"] & 0o111
    source = tmp_path / "source"
    for name in ("run_autograder", "setup.sh"):  # zipfile does not restore modes
        (source / name).chmod(0o755)
    solution = nbformat.read(str(TOY / "00_toy.ipynb"), as_version=4)

    solved, log = run_autograder(source, tmp_path / "solved", solution)
    assert solved is not None, log
    assert validate_results(solved) == []
    assert solved["score"] == 6 and [t["score"] for t in solved["tests"]] == [2, 1, 2, 1]
    assert all(t["visibility"] == "after_published" and t["status"] == "passed" for t in solved["tests"])
    assert all("Notebook status: ok" in t["output"] for t in solved["tests"])

    unsolved, log = run_autograder(source, tmp_path / "unsolved", student_version(solution, "00_toy"))
    assert unsolved is not None, log
    assert validate_results(unsolved) == []
    assert unsolved["score"] == 0 and unsolved["extra_data"]["status"] == "incomplete"
    assert sum(t["max_score"] for t in unsolved["tests"]) == 6
    assert all(t["status"] == "failed" and "Notebook status: incomplete" in t["output"] for t in unsolved["tests"])
    text = json.dumps(unsolved) + json.dumps(solved)
    for secret in ("HIDDEN_VALUES", "reference_squares", "grader_only", "ns.call"):
        assert secret not in text  # titles and messages only, never check code


def test_autograder_setup_installs_the_packed_kit(tmp_path):
    archive = tmp_path / "toy.zip"
    assert course(["autograder", "00_toy", "--solutions", str(TOY), "--out", str(archive), "--no-solution-check"]) == 0
    with zipfile.ZipFile(archive) as opened:
        setup = opened.read("setup.sh").decode()
        config = json.loads(opened.read("autograder.json"))
        entries = opened.infolist()
    # Readable by whoever uploads or unpacks it (not 0600), with Unix modes unzip applies: scripts 0755.
    umask = os.umask(0o022)
    os.umask(umask)
    assert archive.stat().st_mode & 0o777 == 0o666 & ~umask  # as any file written (0644 under umask 022)
    assert all(info.create_system == 3 for info in entries)
    modes = {info.filename: info.external_attr >> 16 for info in entries}
    assert {n for n, mode in modes.items() if mode == 0o100755} == {"setup.sh", "run_autograder"}
    assert all(mode == 0o100644 for n, mode in modes.items() if n not in ("setup.sh", "run_autograder"))
    assert '"$SOURCE/kit"' in setup and 'RUN_AS="course-student"' in setup and "chmod -R go-rwx" in setup
    assert config["parameters"] == {"profile": "grading"} and config["visibility"] == "after_published"
    assert config["max_points"] == 6
    assert (
        course(
            [
                "autograder",
                "00_toy",
                "--solutions",
                str(TOY),
                "--out",
                str(tmp_path / "x.zip"),
                "-p",
                "no_such_knob",
                "1",
            ]
        )
        == 2
    )


NO_TORCH = """
import sys

class RefuseTorch:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchvision"):
            raise ImportError(f"{name} is blocked in this test")

sys.meta_path.insert(0, RefuseTorch())
from course_kit.cli import main
for command in ("export", "autograder", "feedback"):
    try:
        main([command, "--help"])
    except SystemExit as end:
        assert end.code in (0, None)
print("torch loaded:", "torch" in sys.modules)
"""


def test_new_commands_answer_help_without_torch():
    done = subprocess.run([sys.executable, "-c", NO_TORCH], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("usage: course") == 3 and "torch loaded: False" in done.stdout
