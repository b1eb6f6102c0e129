"""Hand-ins as students make them, and files that are safe to open: fast tests without kernels.

What ``course grade`` makes of a submissions folder (notebooks, folders, the zip
``cu.submit()`` writes, and hostile versions of each: traversal, links, zip bombs, deep
folders), and the CSV files every grading command writes (no cell a spreadsheet could run).
The end-to-end versions, graded by ``course grade``, are in test_grading_hostile.py.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import stat
import struct
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest

from course_kit.grading import runner, submissions
from course_kit.grading.autograder import collect_submission
from course_kit.grading.exports import canvas_export, moodle_export, plain_export
from course_kit.grading.files import csv_lines, csv_text, spreadsheet_safe
from course_kit.grading.gradebook import Gradebook, render_feedback
from course_kit.grading.roster import parse_roster, problems_csv, reconcile, roster_csv
from course_kit.grading.submissions import MAX_DEPTH, MAX_ENTRIES, read_zip, scan

sys.path.insert(0, str(Path(__file__).resolve().parent / "grading_toy"))
import crafted  # noqa: E402

NOTEBOOK = nbformat.writes(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])).encode()


def by_student(folder: Path) -> tuple[dict, dict]:
    found, skipped = scan(folder, "00_toy")
    return {s.student: s for s in found}, {s.name: s.reason for s in skipped}


# --------------------------------------------------------------------------- zips
def test_the_zip_cu_submit_writes_is_graded_like_its_folder(tmp_path):
    record = json.dumps({"result": 35.0}).encode()
    crafted.handin_zip(
        tmp_path / "s1.zip",
        "s1",
        {"00_toy.ipynb": NOTEBOOK, "00_toy.results.json": record, ".env": b"SEED=1\n", "data/train.csv": b"a,b\n"},
    )
    # A zip made by hand, without the top folder, and one named after nobody's folder.
    with zipfile.ZipFile(tmp_path / "Ana María.zip", "w") as bundle:
        bundle.writestr("mine.ipynb", NOTEBOOK)
        bundle.writestr("__MACOSX/._mine.ipynb", b"finder")
    # cu.submit() writes the folder and its zip side by side: the folder is graded, once.
    (tmp_path / "bo").mkdir()
    (tmp_path / "bo" / "00_toy.ipynb").write_bytes(NOTEBOOK)
    crafted.handin_zip(tmp_path / "bo.zip", "bo", {"00_toy.ipynb": NOTEBOOK})
    found, skipped = by_student(tmp_path)
    assert sorted(found) == ["Ana_María", "bo", "s1"]
    s1 = found["s1"]
    assert (s1.problem, s1.notebook_bytes, s1.file_name) == (None, NOTEBOOK, "s1.zip")
    assert s1.files == {"00_toy.results.json": record, ".env": b"SEED=1\n", "data/train.csv": b"a,b\n"}
    assert found["Ana_María"].notebook_bytes == NOTEBOOK and found["Ana_María"].files == {}
    assert found["Ana_María"].notes == ["__MACOSX/: bookkeeping, not part of the work"]
    assert found["bo"].source == tmp_path / "bo"
    assert "the folder bo/ next to it is graded instead" in skipped["bo.zip"]


def _zip_with(path: Path, *entries: tuple) -> Path:
    """A zip of ``(ZipInfo or name, data)`` entries, written as given (zipfile does not check names)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr("s/00_toy.ipynb", NOTEBOOK)
        for info, data in entries:
            bundle.writestr(info, data)
    return path


def _mode(name: str, mode: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # Unix: the mode is in the high bits of external_attr
    info.external_attr = mode << 16
    return info


def _mark_encrypted(path: Path) -> None:
    """Set the "encrypted" flag of the zip's last entry (zipfile cannot write encrypted entries)."""
    data = bytearray(path.read_bytes())
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):  # local header, central directory
        at = data.rfind(signature)
        data[at + offset] |= 0x1
    path.write_bytes(bytes(data))


HOSTILE_ZIPS = {
    "traversal": ([("s/../../evil.py", b"x")], "leads out of its folder"),
    "absolute": ([("/etc/cron.d/evil", b"x")], "is an absolute path"),
    "drive_letter": ([("C:/Windows/evil.py", b"x")], "starts with a drive letter"),
    "backslashes": ([("s\\..\\evil.py", b"x")], "uses backslashes"),
    "symlink": ([(_mode("s/checks.py", stat.S_IFLNK | 0o777), b"/srv/hidden_checks/00_toy.py")], "is a symbolic link"),
    "device": ([(_mode("s/dev", stat.S_IFCHR | 0o666), b"")], "not a regular file or folder"),
    "encrypted": ([("s/secret.py", b"x")], "is encrypted"),
    "duplicate": ([("s/a.py", b"1"), ("s/a.py", b"2")], "holds 's/a.py' twice"),
    "file_and_folder": ([("s/a", b"1"), ("s/a/b.py", b"2")], "is both a file and a folder"),
    "too_deep": ([("s/" + "d/" * (MAX_DEPTH + 1) + "x.py", b"x")], f"more than {MAX_DEPTH} folders deep"),
    "too_many": ([(f"s/f{i}.py", b"") for i in range(MAX_ENTRIES)], f"more than the {MAX_ENTRIES} allowed"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_ZIPS))
def test_a_hostile_zip_is_that_students_problem(tmp_path, name):
    entries, message = HOSTILE_ZIPS[name]
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name it is asked to write
        _zip_with(tmp_path / f"{name}.zip", *entries)
    if name == "encrypted":
        _mark_encrypted(tmp_path / f"{name}.zip")
    (tmp_path / "fine.ipynb").write_bytes(NOTEBOOK)
    found, _ = by_student(tmp_path)
    assert found["fine"].problem is None  # the others are graded
    hostile = found[name]
    assert message in hostile.problem, hostile.problem
    assert hostile.notebook_bytes is None and hostile.files == {}
    assert not (tmp_path / "evil.py").exists() and not list(tmp_path.parent.glob("evil.py"))


def test_zip_bombs_are_refused_by_declared_and_by_inflated_size(tmp_path, monkeypatch):
    # Declared: 150 MB of zeros compress to about 150 KB; refused before anything is inflated.
    with zipfile.ZipFile(tmp_path / "bomb.zip", "w", zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr("s/00_toy.ipynb", NOTEBOOK)
        for index in range(3):
            bundle.writestr(f"s/zeros{index}.bin", bytes(50 * 1024**2))
    inflated = []
    real_inflate = submissions._inflate
    monkeypatch.setattr(submissions, "_inflate", lambda *args: inflated.append(args[1].filename) or real_inflate(*args))
    bomb = read_zip(tmp_path / "bomb.zip", "00_toy", "bomb")
    assert "unpacks to 150 MB, more than the 100 MB allowed" in bomb.problem and inflated == []
    # Lying: the directory says 100 bytes, the data inflates to 1 MB. Never more than declared comes out.
    with zipfile.ZipFile(tmp_path / "liar.zip", "w", zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr("s/00_toy.ipynb", NOTEBOOK)
        bundle.writestr("s/zeros.bin", bytes(1024**2))
    data = bytearray((tmp_path / "liar.zip").read_bytes())
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):  # local header, central directory
        at = data.rfind(signature)
        data[at + offset : at + offset + 4] = struct.pack("<L", 100)
    (tmp_path / "liar.zip").write_bytes(bytes(data))
    liar = read_zip(tmp_path / "liar.zip", "00_toy", "liar")
    assert liar.problem and "zeros.bin" in liar.problem and liar.files == {}
    # A budget that the declared sizes fit but the inflated bytes would pass is enforced while inflating.
    monkeypatch.setattr(submissions, "MAX_FOLDER_BYTES", 10 * 1024)
    budget = submissions._Budget(100)
    with zipfile.ZipFile(tmp_path / "bomb.zip") as archive, pytest.raises(submissions._Refused, match="zip bomb"):
        real_inflate(archive, archive.getinfo("s/zeros0.bin"), budget, "the zip bomb.zip")


def test_a_zip_whose_directory_is_huge_is_refused_before_it_is_opened(tmp_path, monkeypatch):
    with zipfile.ZipFile(tmp_path / "wide.zip", "w", zipfile.ZIP_STORED) as bundle:
        for index in range(MAX_ENTRIES + 100):
            bundle.writestr(f"s/{index:04d}-" + "n" * 1000, b"")
    opened = []
    monkeypatch.setattr(submissions.zipfile, "ZipFile", lambda *args, **kwargs: opened.append(args))
    wide = read_zip(tmp_path / "wide.zip", "00_toy", "wide")
    assert f"lists more than the {MAX_ENTRIES} entries allowed" in wide.problem and opened == []


def test_what_is_not_a_zip_is_said_so(tmp_path):
    (tmp_path / "junk.zip").write_bytes(b"PK\x03\x04 this is not a zip at all")
    (tmp_path / "empty.zip").write_bytes(b"")
    with zipfile.ZipFile(tmp_path / "nothing.zip", "w") as bundle:
        bundle.writestr("s/readme.txt", "no notebook")
    found, _ = by_student(tmp_path)
    assert "cannot be read as a zip" in found["junk"].problem and "cannot be read as a zip" in found["empty"].problem
    assert found["nothing"].problem == "the zip nothing.zip contains no .ipynb notebook"


# --------------------------------------------------------------------------- folders
def test_a_folder_keeps_dot_files_and_names_everything_it_leaves_out(tmp_path):
    hidden_checks = tmp_path / "hidden_checks.py"
    hidden_checks.write_text("EXPECTED = [0, 1, 4, 9]  # the secret\n")
    student = tmp_path / "submissions" / "ana"
    (student / ".data").mkdir(parents=True)
    (student / "00_toy.ipynb").write_bytes(NOTEBOOK)
    (student / ".env").write_text("SEED=1\n")
    (student / ".data" / "train.csv").write_text("a,b\n")
    startup = student / ".ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00_first.py").write_text("import builtins  # would run before the notebook\n")
    (student / ".ipynb_checkpoints").mkdir()
    (student / "link.py").symlink_to(hidden_checks)
    os.link(hidden_checks, student / "copied.py")  # a hard link: the same file, under another name
    os.mkfifo(student / "pipe")
    found, _ = by_student(tmp_path / "submissions")
    ana = found["ana"]
    assert ana.problem is None and ana.notebook_bytes == NOTEBOOK
    assert ana.files == {".env": b"SEED=1\n", ".data/train.csv": b"a,b\n"}
    assert not any(b"the secret" in data for data in ana.files.values())
    notes = "\n".join(ana.notes)
    for name, why in (
        (".ipython", "the grader's own name"),
        (".ipynb_checkpoints", "bookkeeping"),
        ("link.py", "symbolic link"),
        ("copied.py", "hard link"),
        ("pipe", "not a regular file"),
    ):
        assert f"{name}: " in notes and why in notes, (name, notes)
    assert ana.notes_text.startswith("left out ") and "copied.py" in ana.notes_text


def test_the_kernels_own_configuration_names_are_all_reserved():
    """Every folder the grader sets up in the kernel's work folder is a name a submission cannot bring."""
    environment = runner.kernel_environment({"threads": 1, "marker": "m", "data_dir": "/data"}, Path("/w"))
    made_here = {
        Path(value).relative_to("/w").parts[0]
        for value in environment.values()
        if isinstance(value, str) and value.startswith("/w/")
    }
    assert made_here and made_here <= submissions.RESERVED, made_here - submissions.RESERVED
    # The runner's own names there too: the library link and the kernel's five ipc sockets.
    sockets = {f"{runner.KERNEL_SOCKETS}-{n}" for n in range(1, 6)}
    assert {runner.LIBRARY_LINK} | sockets <= submissions.RESERVED


def test_a_notebook_that_is_a_hard_link_or_a_link_is_not_read(tmp_path):
    solution = tmp_path / "solution.ipynb"
    solution.write_bytes(NOTEBOOK)
    folder = tmp_path / "submissions"
    folder.mkdir()
    os.link(solution, folder / "linked.ipynb")
    (folder / "symlinked.ipynb").symlink_to(solution)
    (folder / "notes.pdf").write_bytes(b"%PDF")
    (folder / ".hidden").mkdir()
    found, skipped = by_student(folder)
    assert "is a hard link" in found["linked"].problem and found["linked"].notebook_bytes is None
    assert set(skipped) == {"symlinked.ipynb", "notes.pdf", ".hidden"}
    assert "symbolic link" in skipped["symlinked.ipynb"] and "hidden folder" in skipped[".hidden"]


def test_a_folder_1100_levels_deep_is_that_students_problem(tmp_path):
    folder = tmp_path / "submissions"
    (folder / "deep").mkdir(parents=True)
    (folder / "deep" / "00_toy.ipynb").write_bytes(NOTEBOOK)
    (folder / "calm.ipynb").write_bytes(NOTEBOOK)
    try:
        crafted.make_deep(folder / "deep", 1100)
        found, _ = by_student(folder)
        assert found["calm"].problem is None
        assert f"nests folders more than {MAX_DEPTH} levels deep" in found["deep"].problem
        # Gradescope's copy of the same folder: the autograder says so too, instead of crashing.
        gradescope = collect_submission(folder / "deep", "00_toy", "deep")
        assert f"more than {MAX_DEPTH} levels deep" in gradescope.problem
    finally:
        crafted.remove_deep(folder / "deep")


def test_the_autograder_reads_a_zip_uploaded_as_it_is(tmp_path):
    upload = tmp_path / "submission"
    upload.mkdir()
    crafted.handin_zip(upload / "s1.zip", "s1", {"00_toy.ipynb": NOTEBOOK, "helper.py": b"X = 1\n"})
    found = collect_submission(upload, "00_toy", "s1")
    assert (found.problem, found.notebook_bytes, found.files) == (None, NOTEBOOK, {"helper.py": b"X = 1\n"})


def test_what_is_left_out_reaches_the_row_and_the_feedback():
    from course_kit.grading.job import GradingJob, Limits, SandboxOptions, error_result

    job = GradingJob(
        "ana",
        "00_toy",
        "ana/",
        b"",
        {},
        None,
        "",
        {},
        Limits(),
        SandboxOptions(),
        "m",
        notes="left out copied.py: a hard link",
    )
    row = error_result(job, "Traceback\nOSError: disk full")["row"]
    assert row["detail"] == "OSError: disk full; submission: left out copied.py: a hard link"
    page = render_feedback(
        dict(row, status="timeout", detail="ran past 60 s; submission: left out copied.py: a hard link"), []
    )
    assert "ran too long (ran past 60 s)" in page and "Not given to your notebook: copied.py: a hard link." in page


# --------------------------------------------------------------------------- CSV cells
FORMULAS = [
    "=1+1",
    "x;=1+1;y",
    "a,=cmd|' /C calc'!A0",
    "ok\t=2",
    "line\r+3",
    "two\n-4+1",
    "@SUM(A1)",
    "x; =1",
    "-2+3",
    "+cmd",
]


@pytest.mark.parametrize("text", FORMULAS)
def test_a_formula_is_neutralized_after_any_separator(text):
    safe = spreadsheet_safe(text)
    assert safe.replace("'", "") == text.replace("'", "")  # only quotes were added
    for delimiter in (",", ";", "\t", "\n", "\r"):
        for cell in safe.split(delimiter):
            assert not _runnable(cell), (text, delimiter, cell)  # "+3" alone is the number 3: it may stay


def test_numbers_stay_numbers():
    assert [spreadsheet_safe(v) for v in (-1.5, 0, 3, "-1.5", "+2", "1e-3", " -7 ", True)] == [
        -1.5,
        0,
        3,
        "-1.5",
        "+2",
        "1e-3",
        " -7 ",
        True,
    ]
    assert csv_lines([["points"], [-2]]) == "points\n-2\n"


def _cells(text: str):
    """Every cell of a CSV text as a spreadsheet might split it: by commas (quotes honoured), semicolons, tabs."""
    for line in csv.reader(io.StringIO(text)):
        yield from line
    for delimiter in (";", "\t"):
        for line in csv.reader(io.StringIO(text), delimiter=delimiter):
            yield from line


def _runnable(cell: str) -> bool:
    stripped = cell.strip(" \r\n")
    return (
        bool(stripped)
        and stripped[0] in "=+-@"
        and not re.fullmatch(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?", stripped)
    )


def test_no_csv_the_grading_commands_write_holds_a_formula(tmp_path):
    hostile = "x;=1+1;y"
    rows = [
        {
            "student": hostile,
            "file_name": "a,=cmd|' /C calc'!A0.ipynb",
            "status": "error",
            "points": 2,
            "max_points": 6,
            "detail": "cell raised ValueError: \t@SUM(A1)\n-1+2",
            "checks": {"c": 2},
            "metrics": {"note": "=HYPERLINK(1)"},
            "assignment": "00_toy",
            "sha256": "s",
            "runtime_s": 1.0,
            "parameters": {"profile": "+grading"},
            "graded_at": "t",
            "submission": "-s",
            "error_cell": "=1",
        }
    ]
    book = Gradebook(tmp_path / "out", "00_toy", [], metric_keys=["note"])
    grades_csv = book.csv_text(rows)
    roster = parse_roster("name,email,id\n=Ana;=1+1,@ana@uni.edu,-1001\n")
    result = reconcile([dict(rows[0], file_name="Ana.ipynb"), rows[0]], roster, check_names=["c"])
    person_rows = [dict(r, person=dict(r["person"], name="=Ana;=1+1")) for r in result.rows]
    canvas = (
        "Student,ID,SIS User ID,SIS Login ID,Section,00_toy\n    Points Possible,,,,,6\n"
        '"=Ana;=1+1",-1001,"+s1",@ana@uni.edu,"x;=2",\n'
    )
    texts = {
        "grades.csv": grades_csv,
        "roster-grades.csv": roster_csv(person_rows, ["c"]),
        "unmatched.csv": problems_csv(result),
        "plain": plain_export(person_rows, [dict(rows[0], placement="unmatched", problem="=x")])[0],
        "moodle": moodle_export(person_rows, identifier="email")[0],
        "canvas": canvas_export(person_rows, canvas, column="00_toy", all_columns=True)[0],
        "not-graded": csv_text(["entry", "reason"], [{"entry": "=evil.pdf", "reason": "x"}]),
    }
    for name, text in texts.items():
        runnable = [cell for cell in _cells(text) if _runnable(cell)]
        assert runnable == [], (name, runnable)
    assert "'=HYPERLINK(1)" in grades_csv and "x;'=1+1;y" in grades_csv
    assert "'@ana@uni.edu" in texts["moodle"] and "'=evil.pdf" in texts["not-graded"]
    assert "'=Ana;'=1+1,-1001,'+s1" in texts["canvas"]
