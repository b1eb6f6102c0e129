"""Notebook 03's findings per profile: `full`'s agree with what the references measured at its settings."""

from __future__ import annotations

import math

from course_kit import findings

NOTEBOOK = "03_partial_freezing"
# The references' single-seed numbers (%): COMP5541 part C (part A here), the trainable-layers
# write-up's best-epoch validation accuracies (part B), the textbook chapter's flowers (part C).
PART_A = {"none": 94.60, "early": 93.58, "middle": 93.50, "last_only": 79.87}
PART_B = {
    "resnet18": {1: 69.3, 2: 81.9, 3: 81.4, 4: 77.1},
    "resnet34": {1: 72.3, 2: 81.6, 3: 77.4, 4: 74.0},
    "resnet50": {1: 74.6, 2: 79.8, 3: 73.2, 4: 73.7},
}
PART_C = {"feature extraction, BN frozen": 96.5, "fine-tune, BN updating": 98.0}


def full_rows(part_b=PART_B) -> list[dict]:
    """Rows shaped like a `full` run (three seeds), each seed 0.5 points around the reference's number."""
    chance = {"final_train_loss": 0.5, "chance_loss": math.log(10)}
    rows = []
    for seed, jitter in enumerate((-0.5, 0.0, 0.5)):
        rows += [{"freezing": s, "seed": seed, "test_acc": (a + jitter) / 100, **chance} for s, a in PART_A.items()]
        rows += [
            {"model": m, "trainable_layers": n, "seed": seed, "test_acc": (a + jitter) / 100, **chance}
            for m, by_n in part_b.items()
            for n, a in by_n.items()
        ]
        rows += [{"config": c, "seed": seed, "test_acc": (a + jitter) / 100, **chance} for c, a in PART_C.items()]
    return rows


def test_full_findings_hold_on_the_references_numbers():
    verdicts = findings.check_all(NOTEBOOK, full_rows(), "full")
    assert len(verdicts) >= 4
    assert all(v.passed for v in verdicts), [(v.claim, v.lines) for v in verdicts if not v.passed]


def test_no_full_finding_claims_what_the_resnet50_row_contradicts():
    """The reference's ResNet50 is better with one trainable layer than with four: no finding may say otherwise."""
    claims = [f["claim"] for f in findings.declared_findings(NOTEBOOK, "full")]
    assert not any("four trainable layers beat one" in claim for claim in claims), claims


def test_a_full_run_where_one_resnet_peaks_elsewhere_fails_its_part_b_finding():
    moved = {**PART_B, "resnet50": {**PART_B["resnet50"], 2: 72.0}}  # two layers now below one and four
    verdicts = {v.claim: v for v in findings.check_all(NOTEBOOK, full_rows(moved), "full")}
    part_b = [v for claim, v in verdicts.items() if claim.startswith("part B")]
    assert part_b and not any(v.passed for v in part_b)
    assert all(any("resnet50" in line and line.startswith("✗") for line in v.lines) for v in part_b)


def test_offline_findings_are_not_checked_against_full_rows_and_vice_versa():
    offline = {f["claim"] for f in findings.declared_findings(NOTEBOOK, "offline")}
    full = {f["claim"] for f in findings.declared_findings(NOTEBOOK, "full")}
    assert "part B: four trainable layers beat one (EfficientNet-Lite0 on digits)" in offline - full
    assert "part B: two trainable layers beat one, for every ResNet" in full - offline
