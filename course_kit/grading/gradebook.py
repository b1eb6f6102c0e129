"""The gradebook: ``grades.csv`` and ``grades.json`` rewritten after every graded submission, plus feedback.

Layout of ``--out DIR``::

    grades.csv              one row per submission (spreadsheet-friendly, flat)
    grades.json             the same rows with nested check results and metrics
    executed/<student>.ipynb   the executed notebook, as papermill left it
    feedback/<student>.md      what the student may read: status, points, failed checks and why
    logs/<student>.log         the kernel's own stdout/stderr (crashes, warnings)
    grading.log             what the command printed

Both gradebook files are replaced atomically (write a temporary file, then rename) after
each submission finishes, so an interrupted run leaves complete files holding every row
finished so far, and a rerun continues from them: a student whose row exists is skipped
unless ``--force``, their submission changed (SHA-256), what it was graded with changed
(hidden checks, parameters, kit version: the row's ``graded_with``), or the row is a
``grader-error``.

CSV columns: ``student, status, points, max_points, detail, error_cell``, one
``check:<name>`` column per hidden check (points earned), ``runtime_s``, one
``metric:<key>`` column per number or text the notebook recorded in
``<NAME>.results.json`` (nested keys joined with dots), then ``kernel_peak_mb`` (the kernel's
largest resident memory), ``metrics_problem, sandbox, parameters, parameters_note`` (where the
notebook reported other parameters than the injected ones: reported, never scored),
``file_name, submission, sha256, checks_sha256, kit_version, graded_at, assignment``.

Example:
    >>> flatten({"acc": {"fine_tune": 0.9}, "epochs": 2, "curve": [1, 2]})
    {'acc.fine_tune': 0.9, 'epochs': 2, 'curve': '[1, 2]'}
"""

from __future__ import annotations

import json
from pathlib import Path

from .files import GradebookError, csv_text, read_json, write_text
from .status import Status

STATUS_TEXT = {
    Status.OK: "Your notebook ran from top to bottom with the grading parameters, and all hidden checks ran.",
    Status.ERROR: "Your notebook raised an error: {detail}. The cells after it still ran (some may have failed "
    "because of it), and the checks ran on what your notebook computed.",
    Status.TIMEOUT: "Your notebook was stopped because it ran too long ({detail}). Look for loops that never end or "
    "settings you changed that make training much longer. The checks ran on what existed when it was "
    "stopped, if the notebook could still be interrupted.",
    Status.KERNEL_DIED: "The Python process running your notebook ended unexpectedly ({detail}), for example because "
    "code called os._exit()/exit(), killed its own process, or crashed in native code. "
    "Checks that could not run earned no points.",
    Status.KERNEL_BROKEN: "Your notebook's code changed how the Python process talks to Jupyter, runs cells or runs "
    "the hidden checks ({detail}), so the run could not go on. Do not replace modules such as json "
    "or builtins, the kernel's internals, or sys.stdout and sys.stderr.",
    Status.OUT_OF_MEMORY: "Your notebook needed more memory than the grading limit ({detail}). Use the parameters' "
    "sizes instead of larger data or models.",
    Status.INCOMPLETE: "Some exercises are not finished or did not run ({detail}).",
    Status.INVALID_NOTEBOOK: "Your submission could not be read as a Jupyter notebook, or as a folder or zip "
    "holding one ({detail}). Hand in the notebook as Jupyter saves it (File > Download), or the folder or "
    "zip that cu.submit() writes.",
    Status.PARAMETERS_MISSING: "Your notebook has no cell tagged `parameters`, so it could not be run with the grading "
    "settings. Restore the first code cell (`profile = ...`) from the released notebook.",
    Status.GRADER_ERROR: "Grading failed for a reason unrelated to your work. Your instructor will grade it again.",
}
# The same statuses in a few words, for one-line summaries (an LMS's feedback column).
STATUS_SHORT = {
    "ok": "graded",
    "error": "your notebook raised an error",
    "timeout": "stopped: it ran too long",
    "kernel-died": "its Python process ended unexpectedly",
    "kernel-broken": "its code broke the notebook's process",
    "out-of-memory": "it needed more memory than the limit",
    "incomplete": "some exercises are not finished",
    "invalid-notebook": "not a readable notebook",
    "parameters-missing": "its parameters cell is missing",
    "grader-error": "not graded yet (a grader problem)",
    "missing": "no submission",
    "ambiguous": "not graded yet (the submission's owner is unclear)",
}
FIXED_FIRST = ["student", "status", "points", "max_points", "detail", "error_cell"]
FIXED_LAST = [
    "kernel_peak_mb",
    "metrics_problem",
    "sandbox",
    "parameters",
    "parameters_note",
    "file_name",
    "submission",
    "sha256",
    "checks_sha256",
    "kit_version",
    "graded_at",
    "assignment",
]


def flatten(metrics: dict | None, prefix: str = "") -> dict:
    """Nested metrics as ``{"a.b": value}`` with numbers/text kept and anything else as JSON text."""
    flat: dict = {}
    for key, value in (metrics or {}).items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        elif value is None or isinstance(value, (bool, int, float, str)):
            flat[name] = value
        else:
            flat[name] = json.dumps(value)
    return flat


def declared_metrics(metrics: dict | None, keys: list[str]) -> tuple[dict | None, str | None]:
    """``(kept, note)``: the declared keys of a results record (flattened), and what was ignored.

    A student's results record decides nothing about the gradebook's shape: keys the
    assignment does not declare are dropped, and the row says how many and which.

    Example:
        >>> declared_metrics({"acc": {"top1": 0.9}, "junk_1": 1, "junk_2": 2}, ["acc.top1", "loss"])
        ({'acc.top1': 0.9}, 'ignored 2 undeclared metric key(s): junk_1, junk_2')
        >>> declared_metrics(None, ["loss"])
        (None, None)
    """
    if metrics is None:
        return None, None
    flat = flatten(metrics)
    kept = {key: flat[key] for key in keys if key in flat}
    ignored = [key for key in flat if key not in kept]
    if not ignored:
        return kept, None
    shown = ", ".join(ignored[:5]) + (f", ... ({len(ignored) - 5} more)" if len(ignored) > 5 else "")
    return kept, f"ignored {len(ignored)} undeclared metric key(s): {shown[:300]}"


def render_feedback(row: dict, checks: list[dict]) -> str:
    """The student's feedback page: status in words, points, and each check's outcome.

    Only check titles and failure messages appear, never check code or tracebacks.

    Example:
        >>> row = {"student": "s1", "assignment": "00_toy", "status": "ok", "detail": "", "points": 1,
        ...        "max_points": 2}
        >>> checks = [{"title": "adds", "points": 1, "max_points": 1, "passed": True, "message": "correct"},
        ...           {"title": "scales", "points": 0, "max_points": 1, "passed": False, "message": "got 3"}]
        >>> "| scales | 0 / 1 | failed: got 3 |" in render_feedback(row, checks)
        True
    """
    status = row["status"]
    explanation = status_explanation(row)
    lines = [
        f"# Feedback: {row['assignment']} ({row['student']})",
        "",
        f"**{_number(row['points'])} / {_number(row['max_points'])} points** (status: `{status}`)",
        "",
        explanation,
        "",
    ]
    if row.get("submission_notes"):
        lines += [f"Not given to your notebook: {row['submission_notes'].removeprefix('left out ')}.", ""]
    if checks:
        lines += ["| Check | Points | Result |", "|---|---|---|"]
        for item in checks:
            outcome = "passed" if item["passed"] else "failed: " + _cell_text(item["message"])
            lines.append(
                f"| {_cell_text(item['title'])} | {_number(item['points'])} / "
                f"{_number(item['max_points'])} | {outcome} |"
            )
        lines.append("")
    return "\n".join(lines + written_lines(row))


def written_lines(row: dict) -> list[str]:
    """The written answers' part of the Markdown feedback (merged by ``course answers merge``): points, comment.

    Example:
        >>> row = {"written": {"q1": {"points": 1.5, "max_points": 2, "comment": "good | brief"},
        ...                    "q2": {"points": None, "max_points": 1, "comment": ""}}, "written_status": "pending"}
        >>> written_lines(row)[-3:]
        ['| q1 | 1.5 / 2 | good \\\\| brief |', '| q2 | pending / 1 |  |', '']
    """
    written = row.get("written") or {}
    if not written:
        return []
    lines = [
        f"Written answers ({row.get('written_status', 'pending')}):",
        "",
        "| Question | Points | Comment |",
        "|---|---|---|",
    ]
    for qid, item in written.items():
        given = "pending" if item.get("points") is None else _number(item["points"])
        lines.append(
            f"| {_cell_text(qid)} | {given} / {_number(item['max_points'])} | {_cell_text(item.get('comment') or '')} |"
        )
    return lines + [""]


def status_explanation(row: dict) -> str:
    """The row's status in words, with its detail (without the submission notes, which are shown apart).

    Example:
        >>> status_explanation({"status": "timeout", "detail": "ran past 60 s; submission: left out x",
        ...                     "submission_notes": "left out x"})
        'Your notebook was stopped because it ran too long (ran past 60 s). Look for ...'
    """
    status = row["status"]
    detail = row.get("detail") or ""
    notes = row.get("submission_notes")
    if notes:
        detail = detail.removesuffix(f"submission: {notes}").removesuffix("; ")
    return STATUS_TEXT.get(status, status).format(detail=detail or status)


def _number(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _cell_text(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


class Gradebook:
    """Rows by student, persisted to ``grades.csv``/``grades.json`` after every change.

    Example::

        book = Gradebook(Path("grades/03"), "03_partial_freezing", declared_checks)
        book.record(result)           # from grade_job
    """

    def __init__(self, out_dir: Path, assignment: str, declared: list, metric_keys: list[str] | None = None):
        self.out = Path(out_dir)
        self.assignment = assignment
        self.declared = declared
        self.metric_keys = list(metric_keys or [])  # the metric columns; other keys are dropped and noted
        for sub in ("executed", "feedback", "logs"):
            (self.out / sub).mkdir(parents=True, exist_ok=True)
        self.rows: dict[str, dict] = {}
        existing = self.out / "grades.json"
        if existing.exists():
            data = read_json(existing, "gradebook written by course grade")
            if data.get("assignment") != assignment:
                raise GradebookError(
                    f"{self.out} holds grades for {data.get('assignment')!r}, not {assignment!r}: "
                    f"use another --out folder"
                )
            self.rows = {row["student"]: row for row in data.get("rows", [])}

    def should_grade(self, student: str, sha256: str, force: bool, graded_with: dict | None = None) -> tuple[bool, str]:
        """Whether to (re)grade this student, and why (for the log).

        A row is kept only when the submission (SHA-256) and what it was graded with (the
        hidden checks' SHA-256, the parameters, the kit's version) are what this run uses,
        so one gradebook never mixes two gradings.

        Example:
            >>> book = Gradebook.__new__(Gradebook)
            >>> now = {"checks_sha256": "c2", "parameters": {"profile": "grading"}, "kit_version": "0.3.0"}
            >>> book.rows = {"ana": {"status": "ok", "sha256": "s", "graded_with": dict(now, checks_sha256="c1")}}
            >>> book.should_grade("ana", "s", False, now)
            (True, 'the hidden checks changed since it was graded')
        """
        previous = self.rows.get(student)
        if previous is None:
            return True, "new"
        if force:
            return True, "--force"
        if previous.get("status") == Status.GRADER_ERROR:
            return True, "retrying a grader-error"
        if previous.get("sha256") != sha256:
            return True, "the submission changed since it was graded"
        if graded_with is not None:
            before = previous.get("graded_with") or {}
            if before.get("checks_sha256") != graded_with["checks_sha256"]:
                return True, "the hidden checks changed since it was graded"
            if before.get("parameters") != graded_with["parameters"]:
                return True, (
                    f"it was graded with parameters {before.get('parameters')}, this run uses "
                    f"{graded_with['parameters']}"
                )
            if before.get("kit_version") != graded_with["kit_version"]:
                return True, (
                    f"it was graded by kit {before.get('kit_version') or 'before 0.3.0'}, this is "
                    f"{graded_with['kit_version']}"
                )
        return False, "already graded"

    def record(self, result: dict) -> None:
        """Keep one finished submission: its files first, then the gradebook files."""
        row = dict(result["row"])
        student = row["student"]
        row["metrics"], ignored = declared_metrics(row.get("metrics"), self.metric_keys)
        if ignored:
            row["metrics_problem"] = "; ".join(filter(None, [row.get("metrics_problem"), ignored]))
        row["check_results"] = result.get("checks", [])
        if result.get("executed_notebook"):
            write_text(self.out / "executed" / f"{student}.ipynb", result["executed_notebook"])
        write_text(self.out / "feedback" / f"{student}.md", render_feedback(row, row["check_results"]))
        if result.get("kernel_log"):
            write_text(self.out / "logs" / f"{student}.log", result["kernel_log"])
        self.rows[student] = row
        self.save()

    def save(self) -> None:
        rows = [self.rows[key] for key in sorted(self.rows)]
        declared = [
            {"name": c.name, "title": c.title, "points": c.points, "exercise": c.exercise} for c in self.declared
        ]
        write_text(
            self.out / "grades.json",
            json.dumps({"assignment": self.assignment, "checks": declared, "rows": rows}, indent=1, default=str) + "\n",
        )
        write_text(self.out / "grades.csv", self.csv_text(rows))

    def csv_text(self, rows: list[dict]) -> str:
        check_columns = [f"check:{c.name}" for c in self.declared]
        # Written questions, once merged (course answers merge): one column each, the automatic part apart.
        questions = list(dict.fromkeys(q for row in rows for q in (row.get("written") or {})))
        written = ([f"written:{q}" for q in questions] + ["written_status", "automatic_points"]) if questions else []
        columns = (
            FIXED_FIRST
            + check_columns
            + written
            + ["runtime_s"]
            + [f"metric:{k}" for k in self.metric_keys]
            + FIXED_LAST
        )
        records = []
        for row in rows:
            flat = {key: row.get(key) for key in FIXED_FIRST + ["runtime_s"] + FIXED_LAST}
            flat["parameters"] = json.dumps(row.get("parameters", {}), sort_keys=True)
            flat["checks_sha256"] = (row.get("graded_with") or {}).get("checks_sha256")
            flat["kit_version"] = (row.get("graded_with") or {}).get("kit_version")
            for name, points in (row.get("checks") or {}).items():
                flat[f"check:{name}"] = points
            for name, item in (row.get("written") or {}).items():
                flat[f"written:{name}"] = "pending" if item.get("points") is None else item["points"]
            flat.update({key: row.get(key) for key in ("written_status", "automatic_points")})
            for key, value in flatten(row.get("metrics")).items():
                flat[f"metric:{key}"] = value
            records.append(flat)
        return csv_text(columns, records)

    def counts(self) -> dict[str, int]:
        """How many rows have each status."""
        counts: dict[str, int] = {}
        for row in self.rows.values():
            counts[row["status"]] = counts.get(row["status"], 0) + 1
        return counts
