"""Each notebook's declared ``plan:`` against what its runs really train: one saved row per declared training.

The run-time estimate and ``course run --robustness`` count what the plans declare, so a plan
that drifts from its notebook makes both wrong. Here the plans meet the rows of real runs: the
recorded offline runs (tests/data/offline-results), and every smoke run that
``tests/test_notebooks.py`` makes (its ``course run`` test calls :func:`assert_plan_matches`).
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from course_kit import plans, robustness
from course_kit.repository import SOLUTIONS
from course_utils.notebook import estimate, parameters, plan

RECORDED = Path(__file__).parent / "data" / "offline-results"
NOTEBOOKS = ["01_alexnet_data_fraction", "02_resnet_vs_vgg", "03_partial_freezing", "04_multitask_fruit"]


def assert_plan_matches(record: dict) -> None:
    """The plan on the run's own knobs declares exactly the rows the run saved: per block, then in all."""
    notebook, knobs = record["notebook"], dict(record["parameters"])
    _, session = parameters.read_profile(notebook, knobs["profile"])
    declared = plan.declared_plan(notebook, knobs, *plan.data_sizes(knobs, session))
    rows, claimed = record["rows"], set()
    for block in declared.blocks:
        mine = plan.rows_of(block, rows)
        assert len(mine) >= block.times, (
            f"{notebook}: {block.what} {block.rows}: {block.times} declared, {len(mine)} saved"
        )
        claimed |= {id(r) for r in mine}
    for block in declared.blocks:  # blocks may share a filter (03's parts C and D): count them together
        sharing = [b for b in declared.blocks if b.rows == block.rows]
        assert len(plan.rows_of(block, rows)) == sum(b.times for b in sharing), f"{notebook}: {block.what}"
    untrained = [r for r in rows if id(r) not in claimed]
    assert len(untrained) == declared.untrained_rows, f"{notebook}: rows no block declares: {untrained[:3]}"
    assert declared.runs + declared.untrained_rows == len(rows)


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_the_plan_declares_the_rows_a_recorded_run_saved(notebook):
    assert_plan_matches(json.loads((RECORDED / f"{notebook}.results.json").read_text()))


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_a_training_more_or_less_than_declared_is_caught(notebook):
    record = json.loads((RECORDED / f"{notebook}.results.json").read_text())
    trained = [r for r in record["rows"] if "seed" in r]
    with pytest.raises(AssertionError):
        assert_plan_matches({**record, "rows": record["rows"] + [dict(trained[-1])]})
    with pytest.raises(AssertionError):
        assert_plan_matches({**record, "rows": [r for r in record["rows"] if r is not trained[0]]})


def transfer_configs_of_solution(tier_heads: list[str]) -> dict:
    """Run solution 03's cell that builds TRANSFER_CONFIGS, with these part D heads."""
    source = (SOLUTIONS / "03_partial_freezing.py").read_text()
    cell = next(c for c in source.split("\n# %%") if "\nTRANSFER_CONFIGS = {" in c)
    code = cell.split("\n", 1)[1]
    ast.parse(code)  # the cell alone, nothing after it
    namespace = {"P": SimpleNamespace(tier_heads=tier_heads)}
    exec(compile(code, "solutions/03_partial_freezing.py", "exec"), namespace)
    return namespace["TRANSFER_CONFIGS"]


@pytest.mark.parametrize("profile", ["smoke", "offline", "laptop", "colab", "full", "grading"])
def test_notebook_03_declares_as_many_part_c_and_d_trainings_as_its_transfer_configs(profile):
    P = parameters.load_parameters("03_partial_freezing", profile=profile)
    blocks = plan.declared_blocks("03_partial_freezing", P.as_dict(), 100, 100)
    per_seed = sum(b.times for b in blocks if "config" in b.rows) // len(P.seeds)
    assert per_seed == len(transfer_configs_of_solution(P.tier_heads))


def test_the_estimate_counts_the_declared_plan():
    P = parameters.load_parameters("02_resnet_vs_vgg", profile="smoke")
    work = estimate.planned_work(P)
    # 200 stand-in images: part 1 trains on 10 % (20 images, batch 10: 2 steps, 1 epoch) for two models,
    # part 2 on 2 per class (20 images, batch 10: 2 steps, 2 epochs) for two; one seed each.
    assert [(w.model, w.train_steps) for w in work] == [("resnet18", 2), ("vgg16", 2), ("resnet18", 4), ("resnet34", 4)]
    assert sum(w.train_steps for w in work) == plans.declared_plan("02_resnet_vs_vgg", "smoke").steps


def test_the_estimate_times_each_model_once_per_timed_batch_and_leaves_the_generator_alone(monkeypatch):
    import torch

    timed = []
    monkeypatch.setattr(
        estimate, "time_step", lambda model, batch, size, device: timed.append((model, batch, size)) or torch.rand(1)
    )
    P = parameters.load_parameters("02_resnet_vs_vgg", profile="offline")
    torch.manual_seed(0)
    estimate.estimate_runtime(P, "cpu")
    after = torch.rand(1)
    torch.manual_seed(0)
    assert torch.equal(after, torch.rand(1))  # the notebook's next draw is as if no estimate had run
    # Part 1 trains at batch 16, part 2 at 50: on a CPU both are timed at 16, once per model.
    assert timed == [("efficientnet_lite0", 16, 48), ("efficientnet_lite2", 16, 48)]


def write_plan(folder: Path, entries: str) -> None:
    base = "base: {seeds: [0], backbone: alexnet, batch_size: 4, num_epochs: 1, image_size: 32}\n"
    (folder / "99_new.yaml").write_text(base + "plan:\n" + entries)


@pytest.mark.parametrize(
    "expression, problem",
    [
        ("__import__('os').system('true')", "a call of __import__"),
        ("seeds.__class__", "`seeds.__class__`"),
        ("train ** 2", "`train ** 2`"),
        ("unknown_knob * 2", "'unknown_knob', which is no knob here"),
        ("fractions[i]", "`fractions[i]`"),
    ],
)
def test_a_plan_expression_outside_the_small_language_is_refused_by_name(tmp_path, monkeypatch, expression, problem):
    monkeypatch.setattr(plan, "PROFILE_DIR", tmp_path)
    fields = f"model: backbone, times: 1, train_images: {json.dumps(expression)}, batch_size: 4, epochs: 1"
    entry = f"  - {{what: one, {fields}}}\n"
    write_plan(tmp_path, entry)
    with pytest.raises(ValueError) as info:
        plan.declared_plan("99_new", {"seeds": [0], "backbone": "alexnet", "image_size": 32}, 10, 5)
    message = str(info.value)
    assert "99_new, plan entry 1 (one), train_images" in message and expression in message and problem in message


def test_a_plan_entry_with_a_missing_or_unknown_field_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(plan, "PROFILE_DIR", tmp_path)
    write_plan(tmp_path, "  - {what: one, model: backbone, times: 1, batch_size: 4, epoch: 1}\n")
    with pytest.raises(
        ValueError, match=r"plan entry 1: unknown fields \['epoch'\], missing \['train_images', 'epochs'\]"
    ):
        plan.declared_entries("99_new")


def test_robustness_prints_the_declared_steps_of_each_condition(monkeypatch, capsys):
    from course_kit import runner

    def fake_run(notebooks, profile, overrides_of, out, timeout, jobs=1):
        run = runner.NotebookRun(name=notebooks[0].stem, output=out / "x.ipynb", status="failed")
        return out, [run]

    monkeypatch.setattr(runner, "run", fake_run)
    conditions = [c for c in robustness.CONDITIONS if c.name in ("default", "held-out-seeds")]
    robustness.run_conditions(runner.find_notebooks(["01"]), "laptop", conditions, Path("unused"), None)
    out = capsys.readouterr().out.splitlines()
    laptop = plans.declared_plan("01_alexnet_data_fraction", "laptop")
    line = f"planned: 01_alexnet_data_fraction {laptop.runs} trainings, {laptop.steps:,} steps"
    assert out[0].startswith("== condition default") and out[1].startswith(line)
    assert out[2].startswith("== condition held-out-seeds") and out[3].startswith(line)  # as many seeds: same work
