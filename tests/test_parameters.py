"""Profiles inherit (a base plus deltas, grading extends smoke); the parameters cell is the one list of knobs."""

from __future__ import annotations

import pytest
import yaml

from course_kit import parameters as outside
from course_kit.cli import main as course
from course_kit.repository import SOLUTIONS
from course_utils.notebook import parameters

NOTEBOOKS = sorted(p.stem for p in SOLUTIONS.glob("*.ipynb"))


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_grading_extends_smoke_and_full_is_the_base(name):
    smoke, smoke_session = parameters.read_profile(name, "smoke")
    grading, grading_session = parameters.read_profile(name, "grading")
    # Grading is smoke, changed only where the notebook's own `grading` section says (smaller
    # architectures for the Gradescope container in 01 and 02).
    delta = yaml.safe_load((parameters.PROFILE_DIR / f"{name}.yaml").read_text()).get("grading") or {}
    assert grading == {**smoke, **delta} and grading_session == smoke_session and smoke_session["standin_weights"]
    full, full_session = parameters.read_profile(name, "full")
    assert full == yaml.safe_load((parameters.PROFILE_DIR / f"{name}.yaml").read_text())["base"]
    assert not any(full_session[k] for k in ("offline", "synthetic_data", "standin_weights"))


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_each_profile_section_holds_only_changes(name):
    sections = yaml.safe_load((parameters.PROFILE_DIR / f"{name}.yaml").read_text())
    base = sections.pop("base")
    for section in parameters.NOT_PROFILES:  # the lessons `course run` checks, what the notebook trains
        sections.pop(section, None)
    for profile, delta in sections.items():
        assert profile in parameters.profile_names()
        assert all(delta[k] != base[k] for k in delta), f"{name}: {profile} repeats base values"


def test_namespace_values_win_and_none_comes_from_the_profile():
    namespace = {"profile": "smoke", "num_epochs": 7, "lr": None, "In": ["whatever"], "np": object()}
    P = parameters.load_parameters("01_alexnet_data_fraction", namespace)
    smoke, _ = parameters.read_profile("01_alexnet_data_fraction", "smoke")
    assert P.num_epochs == 7 and P.lr == smoke["lr"] and P.overridden == ["num_epochs"]
    assert set(P.as_dict()) == {"profile", *smoke}
    assert parameters.load_parameters("01_alexnet_data_fraction", namespace, num_epochs=2).num_epochs == 2


def test_unknown_knobs_and_profiles_are_refused_with_the_valid_names():
    with pytest.raises(ValueError, match=r"Unknown parameter\(s\) \['num_epoch'\].*valid: .*num_epochs"):
        parameters.load_parameters("01_alexnet_data_fraction", profile="smoke", num_epoch=3)
    with pytest.raises(ValueError, match="Unknown profile 'fast'.*smoke, offline"):
        parameters.load_parameters("01_alexnet_data_fraction", {"profile": "fast"})
    P = parameters.load_parameters("01_alexnet_data_fraction", profile="smoke")
    with pytest.raises(ValueError, match="num_epoch"):
        P.replace(num_epoch=1)


def test_a_broken_profile_file_names_the_problem(tmp_path, monkeypatch):
    (tmp_path / "profiles.yaml").write_text((parameters.PROFILE_DIR / "profiles.yaml").read_text())
    (tmp_path / "09_toy.yaml").write_text("base: {lr: 0.1}\nsmoke: {learning_rate: 0.2}\nfast: {}\n")
    monkeypatch.setattr(parameters, "PROFILE_DIR", tmp_path)
    parameters._notebook_file.cache_clear()
    parameters._profiles.cache_clear()
    try:
        with pytest.raises(ValueError, match="fast.*is not a profile|learning_rate.*`base` does not have"):
            parameters.read_profile("09_toy", "smoke")
    finally:
        parameters._notebook_file.cache_clear()
        parameters._profiles.cache_clear()


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_the_command_line_reads_the_same_knobs_without_running_anything(name):
    assert outside.knob_names(SOLUTIONS / f"{name}.ipynb") == ["profile", *parameters.knob_names(name)]
    assert outside.profile_names() == parameters.profile_names()


@pytest.mark.parametrize(
    "command",
    [
        ["run", "01", "--profile", "smoke", "-p", "num_epoch", "3"],
        ["grade", "nowhere", "--assignment", "01_alexnet_data_fraction", "--out", "OUT", "-p", "num_epoch", "3"],
    ],
)
def test_course_run_and_grade_refuse_unknown_knobs(command, tmp_path, capsys):
    command = [str(tmp_path / "out") if part == "OUT" else part for part in command]
    assert course(command) == 2
    err = capsys.readouterr().err
    assert "num_epoch" in err and "num_epochs" in err and "fractions" in err  # the valid ones are listed
    assert not (tmp_path / "out" / "grades.csv").exists()


def test_both_commands_type_values_alike():
    assert outside.parse_value("[0, 1]") == [0, 1] and outside.parse_value("0.5") == 0.5
    assert outside.parse_value("true") is True and outside.parse_value("False") is False
    assert outside.parse_value("null") is None and outside.parse_value("resnet18") == "resnet18"


def test_under_grading_load_parameters_refuses_values_other_than_the_injected_ones(monkeypatch):
    """What course grade injected is checked where the knobs are used, and each use is recorded."""
    monkeypatch.setattr(parameters, "RESOLVED", [])
    monkeypatch.setenv("COURSE_INJECTED_PARAMETERS", '{"profile": "grading", "num_epochs": 2}')
    P = parameters.load_parameters("01_alexnet_data_fraction", {"profile": "grading", "num_epochs": 2})
    assert P.num_epochs == 2
    with pytest.raises(ValueError, match=r"`num_epochs` is 1 here, but the grader set it to 2"):
        parameters.load_parameters("01_alexnet_data_fraction", {"profile": "grading", "num_epochs": 1})
    with pytest.raises(ValueError, match=r"`profile` is 'smoke' here"):
        parameters.load_parameters("01_alexnet_data_fraction", {"profile": "smoke", "num_epochs": 2})
    # Only the call that used the injected values was recorded (what the grader reads back).
    assert [(r["requested_profile"], r["values"]["num_epochs"]) for r in parameters.RESOLVED] == [("grading", 2)]
    monkeypatch.delenv("COURSE_INJECTED_PARAMETERS")
    parameters.load_parameters("01_alexnet_data_fraction", {"profile": "smoke", "num_epochs": 1})  # outside grading
