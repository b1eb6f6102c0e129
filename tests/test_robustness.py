"""``course run --robustness``: the table of findings × conditions, built from recorded rows (nothing runs)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from course_kit import findings, robustness
from course_kit.cli import main as course

RECORDED = Path(__file__).parent / "data" / "offline-results"
NOTEBOOKS = ["01_alexnet_data_fraction", "02_resnet_vs_vgg", "03_partial_freezing", "04_multitask_fruit"]


def recorded_rows(notebook: str) -> list[dict]:
    return json.loads((RECORDED / f"{notebook}.results.json").read_text())["rows"]


def test_every_finding_gets_one_mark_per_condition_and_a_failed_run_is_neither_pass_nor_fail():
    notebook = "01_alexnet_data_fraction"
    rows = recorded_rows(notebook)
    marks = robustness.verdicts(notebook, {"default": rows, "capped": rows, "held-out-seeds": None}, "offline")
    claims = [f["claim"] for f in findings.declared_findings(notebook, "offline")]
    assert [(m.claim, m.condition) for m in marks] == [
        (c, k) for c in claims for k in ("default", "capped", "held-out-seeds")
    ]
    assert {m.symbol for m in marks if m.condition == "held-out-seeds"} == {"–"}
    by_condition = {(m.claim, m.condition): m.margin_text for m in marks}
    assert all(by_condition[c, "default"] == by_condition[c, "capped"] for c in claims)  # same rows, same verdict


def test_a_condition_that_reverses_a_comparison_is_marked_with_its_margin():
    notebook = "01_alexnet_data_fraction"
    rows = recorded_rows(notebook)
    # Another CPU's run where scratch caught up at one fraction: swap the two initialisations there.
    largest = max(r["fraction"] for r in rows)
    swapped = [
        {**r, "init": {"pretrained": "scratch", "scratch": "pretrained"}[r["init"]]} if r["fraction"] == largest else r
        for r in rows
    ]
    marks = robustness.verdicts(notebook, {"default": rows, "other-cpu": swapped}, "offline")
    first = findings.declared_findings(notebook, "offline")[0]["claim"]
    mine = {m.condition: m for m in marks if m.claim == first}
    assert mine["default"].passed and not mine["other-cpu"].passed
    text = robustness.table(marks)
    header, rule, *lines = text.splitlines()
    assert header == "| notebook | finding | default | other-cpu |" and rule == "|---|---|---|---|"
    row = next(line for line in lines if first in line)
    assert row.split(" | ")[2].startswith("✓ smallest margin +") and row.split(" | ")[3].startswith(
        "✗ smallest margin -"
    )


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_held_out_seeds_are_as_many_as_the_profile_uses_and_none_of_its_own(notebook):
    seeds = robustness.profile_seeds(notebook, "offline")
    other = robustness.held_out(seeds)
    assert len(other) == len(seeds) and not set(other) & set(seeds)
    assert robustness.profile_seeds(notebook, "grading") == robustness.profile_seeds(notebook, "smoke")


def test_the_capped_conditions_reach_the_kernel_through_the_environment_one_level_below_this_cpu(tmp_path, monkeypatch):
    from course_kit import runner

    seen = []

    def fake_run(notebooks, profile, overrides_of, out, timeout, jobs=1):
        import os

        knobs = overrides_of(notebooks[0].stem)
        seen.append((os.environ.get("ONEDNN_MAX_CPU_ISA"), os.environ.get("ATEN_CPU_CAPABILITY"), knobs))
        out.mkdir(parents=True, exist_ok=True)
        run = runner.NotebookRun(name=notebooks[0].stem, output=out / "x.ipynb", status="ok")
        run.results = {"rows": recorded_rows(notebooks[0].stem)}
        return out, [run]

    monkeypatch.setattr(runner, "run", fake_run)
    monkeypatch.setattr(robustness, "cpu_capability", lambda: "AVX512")  # the caps on an AVX-512 machine
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("ATEN_CPU_CAPABILITY", raising=False)
    notebooks = runner.find_notebooks(["04"])
    conditions = [c for c in robustness.CONDITIONS if not c.busy]
    marks, _ = robustness.run_conditions(notebooks, "offline", conditions, tmp_path, None)
    assert seen == [
        (None, None, {}),
        ("AVX2", None, {}),  # oneDNN alone
        ("AVX2", "avx2", {}),
        (None, None, {"seeds": robustness.held_out(robustness.profile_seeds("04_multitask_fruit", "offline"))}),
    ]
    assert len(marks) == len(conditions) * len(findings.declared_findings("04_multitask_fruit", "offline"))


def test_robustness_refuses_stand_in_profiles_and_overrides(capsys):
    assert course(["run", "--robustness", "--profile", "smoke", "01"]) == 2
    assert "stand-in weights" in capsys.readouterr().err
    assert course(["run", "--robustness", "-p", "num_epochs", "2", "01"]) == 2
    assert "-p is not allowed" in capsys.readouterr().err


def test_the_caps_go_one_instruction_set_below_what_torch_uses_here():
    import subprocess
    import sys

    here = subprocess.run(
        [sys.executable, "-c", "import torch; print(torch.backends.cpu.get_cpu_capability())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert robustness.cpu_capability() == here
    if here in ("AVX2", "AVX512"):
        caps = robustness.caps_below(here)
        capped = subprocess.run(
            [sys.executable, "-c", "import torch; print(torch.backends.cpu.get_cpu_capability())"],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, **caps},
        ).stdout.strip()
        assert capped.lower() == caps["ATEN_CPU_CAPABILITY"] and capped != here
    with pytest.raises(ValueError, match="need an AVX2 or AVX-512 machine"):
        robustness.caps_below("DEFAULT")


def test_conditions_are_chosen_by_name_and_an_unknown_one_is_named():
    assert [c.name for c in robustness.chosen_conditions(None, busy=True)][-1] == "busy"
    with pytest.raises(ValueError, match="unknown condition avx2; choose from default"):
        robustness.chosen_conditions("default,avx2")


def test_the_table_is_rebuilt_from_a_robustness_folder_with_the_findings_declared_now(tmp_path, capsys):
    for condition, notebooks in (("default", NOTEBOOKS), ("held-out-seeds", NOTEBOOKS[:1]), ("notes", [])):
        for notebook in notebooks:
            run = tmp_path / condition / "offline-20261207-000000"
            run.mkdir(parents=True, exist_ok=True)
            (run / f"{notebook}.results.json").write_text(json.dumps({"rows": recorded_rows(notebook)}))
    # Under held-out-seeds the second notebook ran and failed (its executed notebook, no record);
    # the others were not run there at all.
    (tmp_path / "held-out-seeds" / "offline-20261207-000000" / f"{NOTEBOOKS[1]}.ipynb").write_text("{}")
    marks = robustness.marks_from_folder(tmp_path, "offline")
    assert {m.condition for m in marks} == {"default", "held-out-seeds"}  # a folder without records is no condition
    by = {(m.notebook, m.condition) for m in marks if m.passed is None}
    assert by == {(NOTEBOOKS[1], "held-out-seeds")}  # executed, no record: the run failed
    assert not [m for m in marks if m.notebook in NOTEBOOKS[2:] and m.condition == "held-out-seeds"]  # not run
    last_claim = findings.declared_findings(NOTEBOOKS[-1], "offline")[0]["claim"]
    last_row = next(line for line in robustness.table(marks).splitlines() if last_claim in line)
    assert last_row.endswith("| – not run |")
    expected = robustness.verdicts(NOTEBOOKS[0], {"default": recorded_rows(NOTEBOOKS[0])}, "offline")
    assert [m for m in marks if m.condition == "default" and m.notebook == NOTEBOOKS[0]] == expected
    assert course(["run", "--robustness", "--from", str(tmp_path)]) == 1  # the missing runs are not passes
    assert capsys.readouterr().out.startswith("| notebook | finding | default | held-out-seeds |")
    assert course(["run", "--robustness", "--from", str(tmp_path / "nothing")]) == 2
    assert "no condition folders" in capsys.readouterr().err
