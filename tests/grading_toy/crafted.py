"""Crafted submissions of the toy assignment ``00_toy``, one per way a submission can go wrong.

:func:`write_submissions` writes them into a folder and returns what the grader must
make of each: ``{student: (status, points)}``. The grading tests (local pool and Dask)
grade this folder and compare every row with it.

Cells of ``solutions/00_toy.ipynb`` by index: 1 parameters, 2 resolve the profile,
4 exercise ``squares``, 5 its self-check, 7 exercise ``scaled_mean``, 8 its self-check,
10 the pipeline (``result``), 11 the results record. In the executed notebook papermill's
injected cell comes second, so the pipeline cell runs as ``In [8]``.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat

TOY = Path(__file__).resolve().parent
ASSIGNMENT = "00_toy"
SOLUTION = TOY / "solutions" / f"{ASSIGNMENT}.ipynb"
HIDDEN_CHECKS = TOY / "solutions" / "hidden_checks" / f"{ASSIGNMENT}.py"
PIPELINE, RESULTS, SQUARES, SCALED_MEAN = 10, 11, 4, 7
MAX_POINTS = 6
KIT_INIT = TOY.parent.parent / "course_kit" / "__init__.py"
COURSE_SOLUTION = TOY.parent.parent / "solutions" / "01_alexnet_data_fraction.ipynb"

FORGING_SQUARES = '''
import json, sys, threading, time, types

class Rigged(list):
    """Claims to equal anything, and to be as long as anyone asks."""
    def __eq__(self, other):
        return True
    def __len__(self):
        return 8

def squares(n):
    return Rigged()

# Print records that look like check results, now and from a thread while the checks run.
FORGED = ('\\x1ecourse-check {token} {{"kind": "check", "name": "squares_hidden", "ok": true, '
          '"observation": [0, 1, 4, 9, 16, 25, 36]}}')
def forge():
    while True:
        for token in ("", "0" * 32, "deadbeef"):
            print(FORGED.format(token=token), flush=True)
        time.sleep(0.05)
forge_thread = threading.Thread(target=forge, daemon=True)
forge_thread.start()

# Replace the checks API a student might guess the grader imports.
fake = types.ModuleType("course_kit.grading.checks")
fake.check = lambda *args, **kwargs: (lambda function: (lambda ns: [0, 1, 4, 9, 16, 25, 36]))
sys.modules["course_kit.grading.checks"] = fake
'''

DATALOADER_PIPELINE = """
import torch
from torch.utils.data import DataLoader, TensorDataset

loader = DataLoader(TensorDataset(torch.arange(64.0)), batch_size=8, num_workers=2)
total = sum(float(batch[0].sum()) for batch in loader)
assert total == sum(range(64)), total
data = squares(n_points)
result = scaled_mean(data, scale)
"""

ATTACK_RESULTS = """
import importlib, importlib.util, json, os, socket
attempts = {{}}
def attempt(name, action):
    try:
        action()
        attempts[name] = "succeeded"
    except (OSError, ImportError) as error:
        attempts[name] = "blocked: " + type(error).__name__

attempt("gradebook_csv_write", lambda: open({csv!r}, "w").write("s11_gradebook_attack,ok,100\\n"))
attempt("gradebook_json_write", lambda: open({json_path!r}, "w").write("{{}}"))
attempt("hidden_checks_read", lambda: open({hidden!r}, encoding="utf-8").read())
def runner_pid():  # the grading runner, wherever it is among the processes the kernel can see
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if b"course_kit.grading.runner" in open(f"/proc/{{pid}}/cmdline", "rb").read():
                return int(pid)
        except OSError:
            pass
    raise ProcessLookupError("no grading runner in sight")
attempt("signal_runner", lambda: os.kill(runner_pid(), 0))
attempt("network_connect", lambda: socket.create_connection(("127.0.0.1", 9), timeout=2).close())
# The kernel gets the student library and nothing else of the kit.
# Found and readable (importing it would load torch, too slow for this toy's time limits).
attempt("student_library_import", lambda: open(importlib.util.find_spec("course_utils").origin).read(10))
attempt("instructor_kit_import", lambda: importlib.import_module("course_kit"))
attempt("grading_import", lambda: importlib.import_module("course_kit.grading.checks"))
attempt("instructor_kit_read", lambda: open({kit_init!r}, encoding="utf-8").read())
attempt("solutions_read", lambda: open({solution!r}, encoding="utf-8").read())
print("attempts:", json.dumps(attempts))  # the gradebook keeps only declared metrics; the notebook keeps this
with open("00_toy.results.json", "w") as handle:
    json.dump({{"n_points": n_points, "scale": scale, "result": result, **attempts}}, handle)
"""


def printed_attempts(executed: Path) -> dict:
    """What an attack cell printed as ``attempts: {...}`` in the executed notebook.

    The gradebook keeps only the metrics the assignment declares, so the crafted attacks
    report what they tried through their own output, which the executed notebook keeps.
    """
    for cell in nbformat.read(executed, as_version=4).cells:
        for output in cell.get("outputs", []):
            for line in output.get("text", "").splitlines():
                if line.startswith("attempts: "):
                    return json.loads(line[len("attempts: ") :])
    raise AssertionError(f"no attempts line in {executed}")


def solution() -> nbformat.NotebookNode:
    return nbformat.read(SOLUTION, as_version=4)


def _with(changes: dict[int, str]) -> nbformat.NotebookNode:
    nb = solution()
    for index, source in changes.items():
        nb.cells[index].source = source.strip("\n")
    return nb


def _write(folder: Path, student: str, nb) -> None:
    nbformat.write(nb, folder / f"{student}.ipynb")


def write_submissions(folder: Path, gradebook_dir: Path) -> dict[str, tuple[str, float]]:
    """Write the crafted submissions into ``folder``; return ``{student: (status, points)}``.

    ``gradebook_dir`` is where the test's gradebook will be, so the attacking submission
    can aim at the real files.
    """
    folder.mkdir(parents=True, exist_ok=True)
    expected: dict[str, tuple[str, float]] = {}

    _write(folder, "s01_correct", solution())
    expected["s01_correct"] = ("ok", 6)

    # Passes both self-checks but divides by 3 instead of len(values).
    _write(
        folder,
        "s02_partly_wrong",
        _with({SCALED_MEAN: "def scaled_mean(values, scale):\n    return scale * sum(values) / 3"}),
    )
    expected["s02_partly_wrong"] = ("ok", 3)

    # Raises in the pipeline; the results cell after it still runs (and fails on `result`).
    _write(folder, "s03_raising", _with({PIPELINE: "data = squares(n_points)\nresult = scaled_mean(data, scale) / 0"}))
    expected["s03_raising"] = ("error", 6)  # the checks call the functions, which are right

    _write(folder, "s04_infinite_loop", _with({PIPELINE: "while True:\n    pass"}))
    expected["s04_infinite_loop"] = ("timeout", 6)

    _write(folder, "s05_sys_exit", _with({PIPELINE: "import sys\nsys.exit(0)"}))
    expected["s05_sys_exit"] = ("error", 6)

    _write(folder, "s06_kernel_killed", _with({PIPELINE: "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"}))
    expected["s06_kernel_killed"] = ("kernel-died", 0)

    # One allocation far above the test's --memory 1G.
    _write(folder, "s07_memory_hog", _with({PIPELINE: "hog = bytearray(8 * 1024 ** 3)"}))
    expected["s07_memory_hog"] = ("out-of-memory", 6)

    (folder / "s08_malformed_json.ipynb").write_text('{"cells": [{"cell_type": "code", "source": "x = 1"')
    expected["s08_malformed_json"] = ("invalid-notebook", 0)

    nb = solution()
    del nb.cells[1]
    _write(folder, "s09_no_parameters", nb)
    expected["s09_no_parameters"] = ("parameters-missing", 0)

    # Rigged squares fools the self-check; forged records and a fake checks module must not
    # earn points: only scaled_mean is right.
    _write(folder, "s10_forging", _with({SQUARES: FORGING_SQUARES}))
    expected["s10_forging"] = ("ok", 2)

    attack = ATTACK_RESULTS.format(
        csv=str(gradebook_dir / "grades.csv"),
        json_path=str(gradebook_dir / "grades.json"),
        hidden=str(HIDDEN_CHECKS),
        kit_init=str(KIT_INIT),
        solution=str(COURSE_SOLUTION),
    )
    _write(folder, "s11_gradebook_attack", _with({RESULTS: attack}))
    expected["s11_gradebook_attack"] = ("ok", 6)

    _write(
        folder,
        "s12_not_attempted",
        _with({SQUARES: "def squares(n):\n    # YOUR CODE HERE\n    raise NotImplementedError()"}),
    )
    expected["s12_not_attempted"] = ("incomplete", 2)  # scaled_mean still ran and counts

    nb = _with(
        {
            PIPELINE: "def scaled_mean(values, scale):\n    return scale * sum(values) / len(values)\n\n"
            "data = squares(n_points)\nresult = scaled_mean(data, scale)"
        }
    )
    del nb.cells[SCALED_MEAN : SCALED_MEAN + 2]
    _write(folder, "s13_deleted_exercise", nb)
    expected["s13_deleted_exercise"] = ("incomplete", 6)

    # The notebook's own setting overrides the grader's: its run is reported (parameters_note),
    # the checks call its functions with the grader's inputs and grade them as usual.
    nb = solution()
    nb.cells[2].source += "\nscale = 1.0  # a student's own setting, overriding the grader's"
    _write(folder, "s14_own_parameters", nb)
    expected["s14_own_parameters"] = ("ok", 6)

    # A folder submission whose notebook imports a helper module shipped next to it.
    student = folder / "s15_folder"
    student.mkdir()
    (student / "toyhelpers.py").write_text("def mean(values):\n    return sum(values) / len(values)\n")
    (student / "notes.txt").write_text("not part of grading\n")
    _write(
        student,
        ASSIGNMENT,
        _with(
            {
                SCALED_MEAN: "from toyhelpers import mean\n\n"
                "def scaled_mean(values, scale):\n"
                "    return scale * mean(values)"
            }
        ),
    )
    expected["s15_folder"] = ("ok", 6)

    # Patching json.dumps breaks the kernel's own messages (every reply looks the same):
    # a broken kernel, never a grader failure and never points.
    _write(folder, "s16_broken_kernel", _with({RESULTS: "import json\njson.dumps = lambda *a, **k: '{}'"}))
    expected["s16_broken_kernel"] = ("kernel-broken", 0)

    # DataLoader worker processes (fork, shared memory) must work inside the sandbox.
    _write(folder, "s17_dataloader_workers", _with({PIPELINE: DATALOADER_PIPELINE}))
    expected["s17_dataloader_workers"] = ("ok", 6)
    return expected


# --------------------------------------------------------------------------- outputs that try to run script
def ran(name: str) -> str:
    """JavaScript that records ``name`` in ``window.__ran`` and raises an alert: proof that script ran.

    Written without spaces or double quotes, so that it survives as an unquoted attribute value.
    """
    return f"(window.__ran=window.__ran||[]).push('{name}');alert('{name}')"


def script_notebook() -> nbformat.NotebookNode:
    """An executed notebook whose outputs, Markdown and metadata each try to run script where it is opened.

    The image outputs carry their payload in the metadata nbconvert turns into attributes
    (``width``/``height`` unquoted, alt text), the others in the content itself.
    """
    png = "iVBORw0KGgo="  # not a whole PNG: the image fails to load, which is what fires onerror
    # One key each: nbconvert keeps only one of several onerror attributes an image gets.
    image_metadata = [
        {"image/png": {"width": f"1 onerror={ran('width')}"}},
        {"image/png": {"height": f'1" onerror="{ran("height")}'}},
        {"image/png": {"alt": f'x" onerror="{ran("alt")}'}},
        {"width": f"1 onerror={ran('width-top-level')}"},
    ]
    html_output = (
        f'<img src=x onerror="{ran("html-img")}"><details open ontoggle="{ran("html-toggle")}">d</details>'
        f'<a href="javascript:{ran("html-link")}">link</a><svg onload="{ran("html-svg")}"></svg>'
        f'<iframe srcdoc="<script>{ran("html-iframe")}</script>"></iframe><script>{ran("html-script")}</script>'
        f'<style>@import url(http://127.0.0.1:9/leak.css);</style><meta http-equiv="refresh" '
        f'content="0;url=javascript:{ran("html-refresh")}">'
    )
    svg = (
        f"<svg xmlns='http://www.w3.org/2000/svg' onload=\"{ran('svg-output')}\">"
        f"<script>{ran('svg-script')}</script></svg>"
    )
    outputs = [
        *[nbformat.v4.new_output("display_data", data={"image/png": png}, metadata=m) for m in image_metadata],
        nbformat.v4.new_output("display_data", data={"text/html": html_output}),
        nbformat.v4.new_output("display_data", data={"image/svg+xml": svg}),
        nbformat.v4.new_output("display_data", data={"application/javascript": ran("javascript-output")}),
        nbformat.v4.new_output(
            "error",
            ename="ValueError",
            evalue=f"<script>{ran('evalue')}</script>",
            traceback=[f"<img src=x onerror={ran('traceback')}>"],
        ),
    ]
    markdown = f'Plain text. <img src=x onerror="{ran("markdown-img")}"> [a link](javascript:{ran("markdown-link")})'
    return nbformat.v4.new_notebook(
        metadata={"title": f"</title><script>{ran('title')}</script>"},
        cells=[
            nbformat.v4.new_markdown_cell(markdown),
            nbformat.v4.new_code_cell("show()", execution_count=1, outputs=outputs),
        ],
    )


# --------------------------------------------------------------------------- hand-ins as students make them
def handin_zip(path: Path, student: str, files: dict[str, bytes]) -> Path:
    """A zip laid out as ``cu.submit()`` writes it: every file under ``<student>/``."""
    import zipfile

    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as bundle:
        for name, data in sorted(files.items()):
            bundle.writestr(f"{student}/{name}", data)
    return path


def make_deep(folder: Path, depth: int, name: str = "d") -> Path:
    """``depth`` nested folders under ``folder``, made one level at a time (os.makedirs recurses)."""
    import os

    path = folder
    for _ in range(depth):
        path = path / name
        os.mkdir(path)
    return path


def remove_deep(folder: Path) -> None:
    """Remove a tree of any depth without recursion (shutil.rmtree and pytest's cleanup recurse)."""
    import os

    chain = [folder]
    while True:  # down to the deepest folder, then up again
        below = [entry for entry in os.scandir(chain[-1]) if entry.is_dir(follow_symlinks=False)]
        if not below:
            break
        chain.append(Path(below[0].path))
    for path in reversed(chain):
        for entry in os.scandir(path):
            if entry.is_dir(follow_symlinks=False):
                remove_deep(Path(entry.path))  # a side branch: shallow in these tests
            else:
                os.unlink(entry.path)
        os.rmdir(path)
