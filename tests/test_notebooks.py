"""Headless notebook runs in the smoke profile: the main-job runner, student versions, widgets.

nbval (tests/references/) re-executes the solutions and compares their outputs; here the
same notebooks run through ``course run`` (papermill), and the student versions run twice:
as released (they must stop at the first exercise) and with the solution code put back
(every self-check must pass, and the widget panel must reproduce a headless result).
"""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import nbformat
import papermill as pm
import pytest
from test_run_plans import assert_plan_matches

from course_kit import runner
from course_kit.repository import PROJECT_ROOT, SOLUTIONS

STUDENT = PROJECT_ROOT / "notebooks"
NOTEBOOKS = sorted(p.stem for p in SOLUTIONS.glob("*.ipynb"))

# Appended to the solved student notebook: press the panel's Run button with its default
# values and find the same configuration among the rows the headless part computed.
WIDGET_CHECK = """
panel.run()
assert panel.last_error is None, f"the panel's run failed: {panel.last_error!r}"
widget_row = panel.last_result
assert isinstance(widget_row, dict), f"on_run should return the result row, got {type(widget_row).__name__}"
timing = ("second", "time", "throughput", "per_image")
comparable = {k: v for k, v in widget_row.items() if not any(t in k for t in timing)}
matches = [r for r in rows if all(k in r and r[k] == v for k, v in comparable.items())]
assert matches, f"no headless row equals the widget's {comparable}"
print("widget run reproduces the headless row:", comparable)
"""


def _exercise_sources(notebook) -> dict[str, str]:
    return {
        c.metadata["course"]["exercise"]: c.source for c in notebook.cells if "exercise" in c.metadata.get("tags", [])
    }


@pytest.mark.slow
def test_course_run_smoke_runs_every_notebook_and_writes_summary(tmp_path):
    run_dir, runs = runner.run(runner.find_notebooks([]), profile="smoke", out=tmp_path)
    failures = {r.name: r.error for r in runs if r.status != "ok"}
    assert not failures, failures
    summary = (run_dir / "summary.md").read_text()
    for run in runs:
        assert (run_dir / f"{run.name}.ipynb").exists()
        record = json.loads((run_dir / f"{run.name}.results.json").read_text())
        assert record["summary"] and record["rows"]  # no "notes": conclusions are the written questions
        assert record["parameters"]["profile"] == "smoke"
        assert_plan_matches(record)  # the plan the estimate counts declares every row this run saved
        for figure in record["figures"]:
            assert (run_dir / figure).exists(), figure
        assert f"## {run.name} — ok" in summary
    assert (run_dir / "summary.html").read_text().count("<img") >= len(runs)


def test_runner_survives_a_failing_notebook(tmp_path):
    folder = tmp_path / "solutions"
    folder.mkdir()
    good = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell('profile = "auto"', metadata={"tags": ["parameters"]}),
            nbformat.v4.new_code_cell(
                "import json; json.dump({'summary': {'answer': 42}, 'figures': []}, open('01_good.results.json', 'w'))"
            ),
        ]
    )
    bad = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell('profile = "auto"', metadata={"tags": ["parameters"]}),
            nbformat.v4.new_code_cell("raise ValueError('broken on purpose')"),
        ]
    )
    for name, notebook in (("00_bad", bad), ("01_good", good)):
        notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(notebook, folder / f"{name}.ipynb")
    run_dir, runs = runner.run(runner.find_notebooks([], folder), profile="smoke", out=tmp_path / "runs")
    assert [(r.name, r.status) for r in runs] == [("00_bad", "failed"), ("01_good", "ok")]
    assert "ValueError: broken on purpose" in runs[0].error
    assert runs[1].results["summary"] == {"answer": 42}
    summary = (run_dir / "summary.md").read_text()
    assert "00_bad — failed" in summary and "| answer | 42 |" in summary


def test_find_notebooks_by_prefix_and_helpful_error():
    assert runner.find_notebooks(["03"])[0].stem.startswith("03_")
    with pytest.raises(ValueError, match="choose from: 01_"):
        runner.find_notebooks(["7"])


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_student_version_stops_at_first_exercise(name, tmp_path):
    with pytest.raises(pm.PapermillExecutionError) as info:
        pm.execute_notebook(
            str(STUDENT / f"{name}.ipynb"),
            str(tmp_path / "out.ipynb"),
            parameters={"profile": "smoke"},
            cwd=str(tmp_path),
            kernel_name="python3",
            progress_bar=False,
            execution_timeout=900,
        )
    assert info.value.ename == "NotImplementedError"
    executed = [c for c in nbformat.read(tmp_path / "out.ipynb", as_version=4).cells if c.cell_type == "code"]
    failed = [i for i, c in enumerate(executed) if any(o.get("output_type") == "error" for o in c.outputs)]
    exercises = [i for i, c in enumerate(executed) if "exercise" in c.metadata.get("tags", [])]
    # The first exercise cell defines the function; its self-check calls it and stops the run there.
    assert failed == [exercises[0] + 1]
    assert "self-check" in executed[failed[0]].metadata.get("tags", [])
    feedback = "".join(o.get("text", "") for o in executed[failed[0]].outputs if o.get("output_type") == "stream")
    assert "not implemented yet" in feedback


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_solved_student_version_passes_every_self_check_and_widget_reproduces_run(name, tmp_path):
    solution = nbformat.read(SOLUTIONS / f"{name}.ipynb", as_version=4)
    student = nbformat.read(STUDENT / f"{name}.ipynb", as_version=4)
    solved = _exercise_sources(solution)
    for cell in student.cells:
        if "exercise" in cell.metadata.get("tags", []):
            assert "NotImplementedError" in cell.source
            cell.source = solved[cell.metadata["course"]["exercise"]]
    student.cells.append(nbformat.v4.new_code_cell(WIDGET_CHECK))
    source = tmp_path / "solved.ipynb"
    nbformat.write(student, source)
    pm.execute_notebook(
        str(source),
        str(tmp_path / "out.ipynb"),
        parameters={"profile": "smoke"},
        cwd=str(tmp_path),
        kernel_name="python3",
        progress_bar=False,
        execution_timeout=900,
    )
    executed = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    checks = [c for c in executed.cells if "self-check" in c.metadata.get("tags", [])]
    assert len(checks) >= 3
    for cell in checks:
        text = "".join(o.get("text", "") for o in cell.outputs if o.get("output_type") == "stream")
        assert "all checks passed" in text and "✗" not in text, text
    assert "widget run reproduces the headless row" in "".join(
        o.get("text", "") for o in executed.cells[-1].outputs if o.get("output_type") == "stream"
    )


# A subtle mistake per notebook, each one that its self-check would catch; put in *after* the
# self-check has passed, it must still change what the run records: the exercise's function is
# what the experiment runs, not a library copy of it.
WRONG_ANSWERS = {
    "01_alexnet_data_fraction": (
        "train_one_epoch",
        """
def train_one_epoch(model, loader, loss_fn, optimizer, device):
    model.train()
    total_loss, correct, seen = 0.0, 0, 0
    for images, labels in loader:
        images, labels = images.to(device), labels.to(device)
        logits = model(images)
        loss = loss_fn(logits, labels)
        loss.backward()  # no zero_grad(): every step adds up all earlier gradients
        optimizer.step()
        total_loss += loss.item() * len(labels)
        correct += (logits.argmax(dim=1) == labels).sum().item()
        seen += len(labels)
    return total_loss / seen, correct / seen
""",
    ),
    "04_multitask_fruit": (
        "multitask_loss",
        """
def multitask_loss(outputs, fruit_labels, freshness_labels, fruit_weight, freshness_weight):
    # Summed over the batch instead of averaged: the step grows with the batch size.
    return (fruit_weight * F.cross_entropy(outputs["fruit"], fruit_labels, reduction="sum")
            + freshness_weight * F.cross_entropy(outputs["freshness"], freshness_labels, reduction="sum"))
""",
    ),
}


def _recorded(notebook, name: str, folder) -> dict:
    folder.mkdir()
    pm.execute_notebook(
        str(notebook),
        str(folder / "out.ipynb"),
        parameters={"profile": "smoke"},
        cwd=str(folder),
        kernel_name="python3",
        progress_bar=False,
        execution_timeout=900,
    )
    return json.loads((folder / f"{name}.results.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(WRONG_ANSWERS))
def test_a_wrong_answer_after_its_self_check_changes_the_recorded_numbers(name, tmp_path, monkeypatch):
    monkeypatch.delenv("COURSE_RESULTS_DIR", raising=False)
    exercise, wrong = WRONG_ANSWERS[name]
    solution = nbformat.read(SOLUTIONS / f"{name}.ipynb", as_version=4)
    right = _recorded(SOLUTIONS / f"{name}.ipynb", name, tmp_path / "right")
    cells = solution.cells
    exercise_at = next(i for i, c in enumerate(cells) if c.metadata.get("course", {}).get("exercise") == exercise)
    assert "self-check" in cells[exercise_at + 1].metadata.get("tags", [])
    cells.insert(exercise_at + 2, nbformat.v4.new_code_cell(wrong))
    nbformat.write(solution, tmp_path / "wrong.ipynb")
    mistaken = _recorded(tmp_path / "wrong.ipynb", name, tmp_path / "wrong")
    measured = [
        (k, row[k], other.get(k))
        for row, other in zip(right["rows"], mistaken["rows"])
        for k in row
        if ("acc" in k or "loss" in k) and isinstance(row[k], float)
    ]
    assert measured and len(right["rows"]) == len(mistaken["rows"])
    changed = [k for k, a, b in measured if a != b]
    assert changed, f"{exercise} done wrong left every recorded accuracy and loss as it was: {measured}"


def _meeting_notebook(me: str, other: str) -> nbformat.NotebookNode:
    """A notebook that leaves a mark, then waits for ``other``'s: it finishes only beside it."""
    wait = textwrap.dedent(f"""
        import json, os, pathlib, time
        pathlib.Path("{me}.here").write_text(os.environ.get("COURSE_NUM_THREADS", "unset"))
        for _ in range(1200):  # up to 2 minutes, for a busy machine: the other may start late
            if pathlib.Path("{other}.here").exists():
                break
            time.sleep(0.1)
        else:
            raise RuntimeError("{other} never ran beside me")
        summary = {{"threads": pathlib.Path("{me}.here").read_text(), "folder": os.getcwd()}}
        json.dump({{"summary": summary, "figures": []}}, open("{me}.results.json", "w"))
    """)
    notebook = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell('profile = "auto"', metadata={"tags": ["parameters"]}),
            nbformat.v4.new_code_cell(wait),
        ]
    )
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return notebook


def test_jobs_run_notebooks_side_by_side_with_the_cpus_divided(tmp_path, monkeypatch):
    folder = tmp_path / "solutions"
    folder.mkdir()
    nbformat.write(_meeting_notebook("01_left", "02_right"), folder / "01_left.ipynb")
    nbformat.write(_meeting_notebook("02_right", "01_left"), folder / "02_right.ipynb")
    monkeypatch.delenv("COURSE_NUM_THREADS", raising=False)
    monkeypatch.setattr("course_kit.grading.plan.available_cpus", lambda: 4)
    before, moves = os.getcwd(), []
    real_chdir = os.chdir
    monkeypatch.setattr(os, "chdir", lambda path: moves.append(str(path)) or real_chdir(path))
    run_dir, runs = runner.run(runner.find_notebooks([], folder), profile="smoke", out=tmp_path / "runs", jobs=2)
    assert [(r.name, r.status, r.error) for r in runs] == [("01_left", "ok", ""), ("02_right", "ok", "")]
    assert [r.results["summary"]["threads"] for r in runs] == ["2", "2"]  # 4 CPUs for 2 kernels
    # Each kernel works in the run's folder, and the threads leave the process's folder alone.
    assert [Path(r.results["summary"]["folder"]).resolve() for r in runs] == [run_dir.resolve()] * 2
    # A chdir in one thread moves every thread: papermill may only "move" to where the process already is.
    assert os.getcwd() == before and set(moves) <= {before}
    assert "COURSE_NUM_THREADS" not in os.environ
    summary = (run_dir / "summary.md").read_text()
    assert summary.index("01_left") < summary.index("02_right")
    assert "from the first start, 2 at a time)" in summary


def test_jobs_auto_is_one_notebook_per_cpu_with_one_thread_each(monkeypatch):
    monkeypatch.delenv("COURSE_NUM_THREADS", raising=False)
    monkeypatch.setattr("course_kit.grading.plan.available_cpus", lambda: 2)
    assert runner.jobs_and_threads("auto", 4) == (2, {"COURSE_NUM_THREADS": "1"})
    assert runner.jobs_and_threads("auto", 1) == (1, {})  # one notebook: all CPUs to it
    assert runner.jobs_and_threads(3, 2) == (2, {"COURSE_NUM_THREADS": "1"})
    monkeypatch.setenv("COURSE_NUM_THREADS", "2")  # the caller's choice stands
    assert runner.jobs_and_threads(2, 4) == (2, {})
    with pytest.raises(ValueError, match="--jobs must be a positive number"):
        runner.jobs_and_threads(0, 4)
