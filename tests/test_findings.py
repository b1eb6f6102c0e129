"""The lesson checks of ``course run``: declared findings, checked on a run's rows, on the summary page."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from course_kit import findings
from course_kit.runner import NotebookRun, write_summary

# The results records of one whole offline main job (the Intel Xeon machine of an earlier round,
# one notebook at a time), copied from its run folder; the run before it gave the same numbers
# (only timings differ). 02's is a later `course run 02` on the 2-core AVX2 machine, whose rows
# carry the CPU time per epoch its timing finding compares.
RECORDED = Path(__file__).parent / "data" / "offline-results"
NOTEBOOKS = ["01_alexnet_data_fraction", "02_resnet_vs_vgg", "03_partial_freezing", "04_multitask_fruit"]


def rows_of(values: dict[str, list[float]], column: str = "init", metric: str = "test_acc") -> list[dict]:
    return [
        {column: name, "seed": seed, metric: value}
        for name, seeds in values.items()
        for seed, value in enumerate(seeds)
    ]


BEATS = {
    "claim": "a beats b",
    "metric": "test_acc",
    "scale": 100,
    "higher": {"init": "a"},
    "than": {"init": "b"},
    "separated": True,
}


def test_a_clear_win_passes_with_its_margin_and_spread():
    verdict = findings.check(BEATS, rows_of({"a": [0.90, 0.92, 0.94], "b": [0.50, 0.60, 0.70]}))
    assert verdict.passed and verdict.mark == "✓"
    assert verdict.margin_text == "+32.0 points (a 92.0 ± 2.0 vs b 60.0 ± 10.0)"


def test_overlapping_error_bars_fail_a_separated_finding_but_not_a_plain_one():
    rows = rows_of({"a": [0.80, 0.90, 1.00], "b": [0.70, 0.80, 0.90]})  # +10 points, std 10 each side
    separated = findings.check(BEATS, rows)
    assert not separated.passed and "error bars overlap" in separated.margin_text
    plain = findings.check({**BEATS, "separated": False}, rows)
    assert plain.passed and plain.margin_text.startswith("+10.0 points")


def test_paired_by_seed_a_shared_draw_counts_once_and_a_seed_that_reverses_fails():
    # Both sides rise and fall with the seed (the same subset and head): unpaired the bars overlap,
    # paired every seed gains 10 points.
    rows = rows_of({"a": [0.80, 0.90, 1.00], "b": [0.70, 0.80, 0.90]})
    paired = findings.check({**BEATS, "paired": "seed"}, rows)
    assert paired.passed, paired.margin_text
    assert paired.margin_text == "+10.0 points (a 90.0 ± 10.0 vs b 80.0 ± 10.0; per seed: +10.0, +10.0, +10.0)"
    # The same means, but one seed reverses: the differences' spread swallows their mean.
    reversed_seed = rows_of({"a": [0.80, 0.90, 1.00], "b": [0.90, 0.70, 0.80]})
    verdict = findings.check({**BEATS, "paired": "seed"}, reversed_seed)
    assert not verdict.passed
    assert "per seed: -10.0, +20.0, +20.0" in verdict.margin_text
    assert "the differences' mean is within one std of zero" in verdict.margin_text


def test_paired_seeds_that_never_meet_fail_by_name():
    rows = [{"init": "a", "seed": 0, "test_acc": 0.9}, {"init": "b", "seed": 1, "test_acc": 0.5}]
    verdict = findings.check({**BEATS, "paired": "seed"}, rows)
    assert not verdict.passed and "no seed has both" in " ".join(verdict.lines)
    unpairable = [{"init": side, "test_acc": acc} for side, acc in [("a", 0.9), ("a", 0.8), ("b", 0.5)]]
    verdict = findings.check({**BEATS, "paired": "seed"}, unpairable)  # rows without the column
    assert not verdict.passed and "two rows of {'init': 'a'} have seed None" in " ".join(verdict.lines)


FASTER = {"claim": "a is faster", "metric": "seconds", "lower": {"init": "a"}, "than": {"init": "b"}, "unit": "s"}


def test_a_timing_compares_the_fastest_runs_so_a_slowed_run_cannot_reverse_it():
    finding = {**FASTER, "digits": 2, "statistic": "best"}
    # One run of `a` shared the machine with another program: its mean is above b's, its fastest run is not.
    slowed = rows_of({"a": [1.0, 1.02, 4.0], "b": [1.5, 1.52, 1.55]}, metric="seconds")
    verdict = findings.check(finding, slowed)
    assert verdict.passed and verdict.margin_text == "+0.50 s (a fastest 1.00 vs b fastest 1.50, of 3 and 3 runs)"
    assert not findings.check({**finding, "separated": True, "statistic": None}, slowed).passed
    # A real reversal still fails, and a higher-is-better timing takes the highest.
    assert not findings.check(finding, rows_of({"a": [2.0, 2.1], "b": [1.5, 1.6]}, metric="seconds")).passed
    throughput = {**{k: v for k, v in finding.items() if k != "lower"}, "higher": {"init": "a"}, "unit": "images/s"}
    throughput["digits"] = 0
    verdict = findings.check(throughput, rows_of({"a": [300, 450, 420], "b": [100, 330, 200]}, metric="seconds"))
    assert verdict.passed and verdict.margin_text == "+120 images/s (a highest 450 vs b highest 330, of 3 and 3 runs)"


def test_a_loss_finding_is_lower_is_better():
    finding = {**FASTER, "separated": True}
    assert findings.check(finding, rows_of({"a": [1.0, 1.1], "b": [2.0, 2.2]}, metric="seconds")).passed
    assert not findings.check(finding, rows_of({"a": [2.0, 2.2], "b": [1.0, 1.1]}, metric="seconds")).passed


def test_every_group_of_for_each_must_hold_and_the_smallest_margin_is_reported():
    rows = [
        {"fraction": f, "init": i, "seed": s, "test_acc": acc}
        for f, (good, bad) in [(0.1, (0.9, 0.5)), (0.5, (0.9, 0.95))]
        for i, acc in [("a", good), ("b", bad)]
        for s in range(2)
    ]
    verdict = findings.check({**BEATS, "for_each": "fraction", "separated": False}, rows)
    assert not verdict.passed
    assert verdict.margin_text == "smallest margin -5.0 points"
    assert [line[0] for line in verdict.lines] == ["✓", "✗"] and "fraction 50%" in verdict.lines[1]


def test_a_filter_that_matches_nothing_fails_instead_of_passing_silently():
    verdict = findings.check(BEATS, rows_of({"a": [0.9, 0.9], "renamed": [0.1, 0.1]}))
    assert not verdict.passed and "no row has {'init': 'b'}" in verdict.lines[0]


def test_only_where_both_leaves_out_groups_without_one_side():
    rows = [
        {"fraction": 0.1, "budget": b, "seed": s, "test_acc": acc}
        for b, acc in [("long", 0.8), ("short", 0.4)]
        for s in range(2)
    ]
    rows += [{"fraction": 0.5, "budget": "short", "seed": s, "test_acc": 0.9} for s in range(2)]
    finding = {
        "claim": "longer helps",
        "metric": "test_acc",
        "scale": 100,
        "for_each": "fraction",
        "higher": {"budget": "long"},
        "than": {"budget": "short"},
    }
    assert not findings.check(finding, rows).passed  # 50 % has no long run
    assert findings.check({**finding, "only_where_both": True}, rows).passed


def test_below_chance_names_the_run_that_learned_nothing():
    rows = [
        {"init": "pretrained", "seed": 0, "final_train_loss": 0.3, "chance_loss": 2.3026},
        {"init": "scratch", "seed": 1, "final_train_loss": 2.5, "chance_loss": 2.3026},
    ]
    verdict = findings.check({"claim": "no run above chance", "below_chance": True}, rows)
    assert not verdict.passed and verdict.lines == ["✗ init scratch, seed 1: final training loss 2.500 ≥ chance 2.303"]
    assert findings.check({"claim": "c", "below_chance": True}, rows[:1]).passed
    missing = findings.check({"claim": "c", "below_chance": True}, [{"init": "a", "test_acc": 0.5}])
    assert not missing.passed and "final_train_loss" in missing.margin_text


def test_stand_in_profiles_are_not_checked():
    assert findings.checked_in("offline") and findings.checked_in("full") and findings.checked_in("laptop")
    assert not findings.checked_in("smoke") and not findings.checked_in("grading")


def test_the_summary_page_marks_each_lesson(tmp_path):
    run = NotebookRun(name="01_alexnet_data_fraction", output=tmp_path / "01.ipynb", status="ok", seconds=12.0)
    run.lessons = [
        findings.check(BEATS, rows_of({"a": [0.9, 0.92], "b": [0.5, 0.6]})),
        findings.check(
            {**BEATS, "claim": "b beats a", "higher": {"init": "b"}, "than": {"init": "a"}},
            rows_of({"a": [0.9, 0.92], "b": [0.5, 0.6]}),
        ),
    ]
    md_path, html_path = write_summary(tmp_path, [run], "offline", {"profile": "offline"})
    md = md_path.read_text()
    assert "| a beats b | ✓ | +36.0 points (a 91.0 ± 1.4 vs b 55.0 ± 7.1) |" in md
    assert "| b beats a | ✗ | -36.0 points" in md
    assert "| [01_alexnet_data_fraction](01.ipynb) | ok | 12 s | 1/2 ✗ |" in md
    assert "color:red'>✗" in html_path.read_text()


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_every_notebook_declares_findings_whose_filters_name_real_rows(notebook):
    declared = findings.declared_findings(notebook)
    assert declared, f"{notebook} declares no findings"
    record = json.loads((RECORDED / f"{notebook}.results.json").read_text())
    for verdict in findings.check_all(notebook, record["rows"], "offline"):  # other profiles run other backbones
        assert not any("no row has" in line for line in verdict.lines), (verdict.claim, verdict.lines)


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_the_recorded_offline_run_shows_every_lesson(notebook):
    """The numbers of a real `course run` (offline profile, 3 seeds), kept in tests/data: every lesson ✓."""
    record = json.loads((RECORDED / f"{notebook}.results.json").read_text())
    assert record["parameters"]["seeds"] == [0, 1, 2]
    verdicts = findings.check_all(notebook, record["rows"], "offline")
    assert all(v.passed for v in verdicts), [(v.claim, v.margin_text) for v in verdicts if not v.passed]


def test_within_accepts_a_small_deficit_and_refuses_a_large_one():
    rows = rows_of({"a": [0.88, 0.90], "b": [0.90, 0.92]})
    close = {**BEATS, "separated": False, "within": 3}
    assert findings.check(close, rows).passed
    assert not findings.check({**close, "within": 1}, rows).passed


def test_a_finding_holds_only_in_the_profiles_it_names(tmp_path, monkeypatch):
    student_findings = findings._findings
    monkeypatch.setattr(student_findings, "PROFILE_DIR", tmp_path)
    (tmp_path / "nb.yaml").write_text(
        "findings:\n"
        "  - {claim: everywhere, below_chance: true}\n"
        "  - {claim: offline only, below_chance: true, profiles: [offline]}\n"
        "  - {claim: full only, below_chance: true, profiles: [full]}\n"
    )
    claims = lambda profile: [f["claim"] for f in findings.declared_findings("nb", profile)]  # noqa: E731
    assert claims("offline") == ["everywhere", "offline only"]
    assert claims("full") == ["everywhere", "full only"]
    assert claims(None) == ["everywhere", "offline only", "full only"]
    (tmp_path / "bad.yaml").write_text("findings:\n  - {claim: c, below_chance: true, profiles: full}\n")
    with pytest.raises(ValueError, match="must be a list of profile names"):
        findings.declared_findings("bad")


def test_the_notebooks_table_shows_the_same_verdicts_as_the_summary():
    from course_utils.notebook.findings import findings_table

    notebook = "01_alexnet_data_fraction"
    rows = json.loads((RECORDED / f"{notebook}.results.json").read_text())["rows"]
    table = findings_table(notebook, rows, "offline")
    verdicts = findings.check_all(notebook, rows, "offline")
    assert list(table["finding"]) == [v.claim for v in verdicts]
    assert list(table["holds"]) == [v.mark for v in verdicts]
    assert list(table["margin (mean ± std over seeds)"]) == [v.margin_text for v in verdicts]
    stand_in = findings_table(notebook, rows, "grading")
    assert set(stand_in["holds"]) == {"not checked"} and len(stand_in) == len(findings.declared_findings(notebook))


@pytest.mark.parametrize("profile", ["offline", "laptop", "colab", "full"])
@pytest.mark.parametrize("notebook", ["01_alexnet_data_fraction", "04_multitask_fruit"])
def test_findings_of_notebooks_whose_rows_do_not_name_the_architecture_apply_to_every_profile(notebook, profile):
    # 01's rows are keyed by initialisation and budget, 04's by model role: the same columns in every
    # profile, so the recorded offline rows have the shape of any profile's run (02 and 03, whose rows
    # name the architectures, build rows per profile in tests/test_profile_findings_02.py and test_findings_03.py).
    record = json.loads((RECORDED / f"{notebook}.results.json").read_text())
    verdicts = findings.check_all(notebook, record["rows"], profile)
    assert verdicts, f"{notebook} declares no finding for {profile}"
    for verdict in verdicts:
        assert not any("no row has" in line for line in verdict.lines), (profile, verdict.claim, verdict.lines)
