"""Hand in a notebook the way the grader will see it: ``cu.submit("s1234567")``.

"It worked in my kernel" is not what gets graded: ``course grade`` runs the saved file from
top to bottom in a fresh kernel, in the ``grading`` profile. :func:`submit` does the same
before you hand in, so a cell that depends on something you deleted, ran out of order or
typed only in the console fails here, where you can fix it:

1. it asks the notebook front end to save (classic Jupyter does; JupyterLab and Colab do
   not let a kernel save for them, so **save first**, Ctrl+S; the file's age is printed);
2. it runs a copy of the saved notebook in a fresh kernel with papermill's parameter cell
   (``profile = "grading"``) after the ``parameters`` cell, every cell even after an error;
3. it lists every cell that failed: self-checks (✗ lines), exercises still
   ``raise NotImplementedError()``, other errors;
4. it writes ``submission/<student>/<NOTEBOOK>.ipynb`` with its results record
   ``<NOTEBOOK>.results.json`` (your own run's when there is one next to the notebook,
   else the fresh run's) and zips the folder as ``submission/<student>.zip``: unpacked into
   the instructor's submissions folder, it is exactly the ``<student>/`` folder that
   ``course grade`` reads. On Colab the zip is offered for download.

The instructor kit's ``course submit NOTEBOOK --student ID`` does the same from a shell.

Example::

    report = cu.submit("s1234567")                       # in the notebook, after saving it
    report = cu.submit("s1234567", path="03_partial_freezing.ipynb")   # where the path is not found
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

SAFE_ID = set("._@+-")


@dataclass
class Failure:
    """One failing cell of the fresh run: its number, what kind of failure, the message.

    ``cell`` counts from the top of your notebook, Markdown cells included.
    """

    cell: int
    kind: str
    message: str

    def __str__(self) -> str:
        return f"cell {self.cell}: {self.kind}: {self.message}"


@dataclass
class SubmitReport:
    """What :func:`submit` did: the files written, and what failed in the fresh kernel.

    Attributes:
        notebook: the notebook's name (``03_partial_freezing``).
        folder: the submission folder ``<out>/<student>/``.
        archive: the zip of that folder (``None`` with ``zip=False``).
        failures: the failing cells; empty means it runs from top to bottom.
        seconds: how long the fresh run took.
    """

    notebook: str
    folder: Path
    archive: Path | None
    failures: list[Failure] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Every cell ran without an error in the fresh kernel."""
        return not self.failures

    def __str__(self) -> str:
        where = self.archive or self.folder
        if self.ok:
            return (
                f"✓ {self.notebook} ran top to bottom in a fresh kernel (grading profile, {self.seconds:.0f} s); "
                f"hand in {where}"
            )
        lines = [
            f"✗ {self.notebook}: {len(self.failures)} cell(s) failed in a fresh kernel "
            f"(grading profile, {self.seconds:.0f} s):"
        ]
        lines += [f"  {failure}" for failure in self.failures]
        lines.append(f"Fix them and run cu.submit again; what was written anyway: {where}")
        return "\n".join(lines)


def _check_student(student: str | None) -> str:
    student = (student or os.environ.get("COURSE_STUDENT_ID") or "").strip()
    if not student:
        raise ValueError(
            "cu.submit needs your student id: cu.submit('s1234567') "
            "(or set COURSE_STUDENT_ID); it names the folder the grader reads."
        )
    bad = sorted({c for c in student if not (c.isalnum() or c in SAFE_ID)})
    if bad or student.startswith("."):
        raise ValueError(
            f"student id {student!r} may hold only letters, digits and . _ @ + - "
            f"(not {' '.join(repr(c) for c in bad) or 'a leading dot'}): the grader names your row by it."
        )
    return student


def find_notebook(path: str | os.PathLike | None = None) -> Path:
    """The running notebook's file: ``path``, else what Jupyter or Colab says.

    Looks at ``path``, then the kernel's ``__session__`` / ``JPY_SESSION_NAME`` (JupyterLab
    and Notebook 7 set them), then asks Colab for the notebook (written to ``/content``).

    Raises:
        FileNotFoundError: not found; the message says how to pass the path.

    Example:
        >>> find_notebook("/nonexistent/03_partial_freezing.ipynb")
        Traceback (most recent call last):
        ...
        FileNotFoundError: /nonexistent/03_partial_freezing.ipynb does not exist: give the notebook's file,
            e.g. cu.submit('s1234567', path='03_partial_freezing.ipynb').
    """
    hint = "e.g. cu.submit('s1234567', path='03_partial_freezing.ipynb')"
    if path is not None:
        path = Path(path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist: give the notebook's file, {hint}.")
        return path.resolve()
    candidates = [os.environ.get("JPY_SESSION_NAME")]
    try:
        from IPython import get_ipython

        shell = get_ipython()
        candidates.insert(0, shell.user_ns.get("__session__") if shell is not None else None)
    except ImportError:
        pass
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and str(candidate).endswith(".ipynb"):
            return Path(candidate).resolve()
    if "google.colab" in sys.modules:
        downloaded = _notebook_from_colab()
        if downloaded is not None:
            return downloaded
    raise FileNotFoundError(f"cu.submit could not find this notebook's file; pass its path, {hint}.")


def _notebook_from_colab() -> Path | None:
    """Colab keeps the notebook in the browser/Drive: ask the front end for it and write it to /content."""
    try:
        from google.colab import _message  # noqa: PLC0415 - only on Colab

        notebook = _message.blocking_request("get_ipynb", timeout_sec=60)["ipynb"]
    except Exception:  # noqa: BLE001 - any failure means "not available", and the caller says what to do
        return None
    name = _resolved_notebook_name() or "notebook"
    target = Path("/content") / f"{name}.ipynb"
    target.write_text(json.dumps(notebook), encoding="utf-8")
    return target


def _resolved_notebook_name() -> str | None:
    from .parameters import RESOLVED

    return RESOLVED[-1]["notebook"] if RESOLVED else None


def request_save() -> None:
    """Ask the front end to save the notebook (only classic Jupyter obeys a kernel; elsewhere save yourself)."""
    try:
        from IPython import get_ipython
        from IPython.display import Javascript, display

        if get_ipython() is not None and "google.colab" not in sys.modules:
            display(Javascript("if (window.IPython && IPython.notebook) { IPython.notebook.save_checkpoint(); }"))
    except ImportError:
        pass


@contextmanager
def _environment(**values):
    before = {key: os.environ.get(key) for key in values}
    os.environ.update({k: v for k, v in values.items() if v is not None})
    for key in [k for k, v in values.items() if v is None]:
        os.environ.pop(key, None)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_fresh(
    notebook_path: Path,
    profile: str = "grading",
    cell_timeout: int = 1800,
    kernel_name: str | None = None,
    workdir: Path | None = None,
):
    """Execute a copy of ``notebook_path`` top to bottom in a fresh kernel, as the grader does.

    Returns:
        ``(executed notebook, failures, working folder)``; every cell runs even after an error.
    """
    import nbformat
    from nbclient import NotebookClient
    from papermill.parameterize import parameterize_notebook

    notebook = nbformat.read(str(notebook_path), as_version=4)
    for cell in notebook.cells:
        cell.metadata.setdefault("tags", [])  # papermill looks up every cell's tags
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    notebook.metadata.setdefault("papermill", {})
    notebook = parameterize_notebook(notebook, {"profile": profile})
    work = Path(workdir or tempfile.mkdtemp(prefix="course-submit-"))
    work.mkdir(parents=True, exist_ok=True)
    kernel = kernel_name or notebook.metadata.get("kernelspec", {}).get("name") or "python3"
    client = NotebookClient(
        notebook,
        timeout=cell_timeout,
        kernel_name=kernel,
        allow_errors=True,
        resources={"metadata": {"path": str(work)}},
    )
    # Like course grade: the kernel knows the injected values, and cu.load_parameters refuses others.
    with _environment(COURSE_INJECTED_PARAMETERS=json.dumps({"profile": profile}), COURSE_RESULTS_DIR=None):
        client.execute()
    return notebook, failures_of(notebook), work


def failures_of(executed) -> list[Failure]:
    """The failing cells of an executed notebook, numbered as in the student's notebook (code and Markdown).

    Example:
        >>> import nbformat
        >>> cell = nbformat.v4.new_code_cell("check()", metadata={"tags": ["self-check"]})
        >>> cell.outputs = [nbformat.v4.new_output("error", ename="SelfCheckFailed", evalue="Exercise 1: 2 problem(s)")]
        >>> [str(f) for f in failures_of(nbformat.v4.new_notebook(cells=[cell]))]
        ['cell 1: self-check failed: Exercise 1: 2 problem(s)']
    """
    failures, number = [], 0
    for cell in executed.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if "injected-parameters" in tags:
            continue
        number += 1
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if output.get("output_type") != "error":
                continue
            name, value = output.get("ename", "Error"), (output.get("evalue") or "").strip().splitlines()
            text = value[0] if value else name
            if name == "NotImplementedError":
                kind, text = "exercise not done", "still raises NotImplementedError (replace it with your code)"
            elif "self-check" in tags:
                kind = "self-check failed"
            else:
                kind = f"{name}"
            failures.append(Failure(number, kind, text))
    return failures


def submit(
    student: str | None = None,
    path: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    profile: str = "grading",
    zip: bool = True,
    cell_timeout: int = 1800,  # noqa: A002 - the word students know
    kernel_name: str | None = None,
    verbose: bool = True,
) -> SubmitReport:
    """Re-run the saved notebook in a fresh kernel (grading profile), report failures, write the hand-in.

    Args:
        student: your student id (letters, digits, ``._@+-``): the folder and gradebook row name.
            Default: ``$COURSE_STUDENT_ID``.
        path: the notebook file; found automatically in JupyterLab, Notebook 7 and Colab.
        out: where the submission goes (default: ``submission/`` next to the notebook).
        profile: the profile of the fresh run (the grader's default, ``grading``).
        zip: also write ``<out>/<student>.zip`` (and offer it for download on Colab).
        cell_timeout: seconds one cell may run.
        kernel_name: the Jupyter kernel to run (default: the notebook's).
        verbose: print the report.

    Raises:
        ValueError: no or an unusable student id (the message shows a valid call).
        FileNotFoundError: the notebook's file was not found (the message shows how to pass it).

    Example:
        >>> submit(None, path="any.ipynb")
        Traceback (most recent call last):
        ...
        ValueError: cu.submit needs your student id: cu.submit('s1234567') (or set COURSE_STUDENT_ID);
            it names the folder the grader reads.
    """
    student = _check_student(student)
    request_save()
    source = find_notebook(path)
    name = source.stem
    if verbose:
        age = time.time() - source.stat().st_mtime
        print(f"submitting {source} (saved {age / 60:.0f} min ago; unsaved changes are not included: save first)")
        print(f"running it top to bottom in a fresh kernel, profile {profile!r} ...", flush=True)
    started = time.perf_counter()
    executed, failures, work = run_fresh(source, profile, cell_timeout, kernel_name)
    seconds = time.perf_counter() - started
    base = Path(out) if out is not None else source.parent / "submission"
    folder = base / student
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    shutil.copyfile(source, folder / f"{name}.ipynb")
    record = f"{name}.results.json"
    own = Path(os.environ.get("COURSE_RESULTS_DIR") or source.parent) / record
    fresh = work / record
    if own.is_file():
        shutil.copyfile(own, folder / record)
    elif fresh.is_file():
        shutil.copyfile(fresh, folder / record)
    shutil.rmtree(work, ignore_errors=True)
    archive = None
    if zip:
        archive = base / f"{student}.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bundle:
            for item in sorted(folder.iterdir()):
                bundle.write(item, f"{student}/{item.name}")
    report = SubmitReport(name, folder, archive, failures, seconds)
    if verbose:
        print(report)
    if archive is not None and "google.colab" in sys.modules:
        try:
            from google.colab import files  # noqa: PLC0415 - only on Colab

            files.download(str(archive))
        except Exception as error:  # noqa: BLE001 - the file is written either way; say where
            print(f"could not start the download ({error}); the file is {archive} (Files panel on the left)")
    return report
