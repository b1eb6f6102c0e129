"""Notebook 02's findings per profile: each profile is checked on its own networks' rows.

``offline`` compares EfficientNet-Lite0 with Lite2; ``laptop``, ``colab`` and ``full`` compare
ResNet18 with VGG16 (part 1) and ResNet18/34/50 (part 2). The rows here are shaped like each
profile's runs (its networks, parts and seeds, from its profile file) and carry numbers like the
reference runs' (the COMP5541 notebook's part B, the trainable-layers write-up, the recorded
offline run), so ``full``'s findings are exercised without a GPU.
"""

from __future__ import annotations

import math

import pytest

from course_kit import findings
from course_utils.notebook.parameters import read_profile

NOTEBOOK = "02_resnet_vs_vgg"
CHECKED = ["offline", "laptop", "colab", "full"]
# Per network and part: test accuracy, seconds per epoch, images per second (the references' numbers;
# the Lite pair's from the recorded offline run, ResNet34/50's timings only need to exist).
REFERENCE = {
    (1, "resnet18"): (0.9430, 33.0, 3000.0),
    (1, "vgg16"): (0.9259, 506.0, 200.0),
    (2, "resnet18"): (0.819, 4.0, 3000.0),
    (2, "resnet34"): (0.816, 6.0, 1800.0),
    (2, "resnet50"): (0.798, 9.0, 1000.0),
    (1, "efficientnet_lite0"): (0.8285, 0.78, 1312.0),
    (1, "efficientnet_lite2"): (0.8460, 1.08, 933.0),
    (2, "efficientnet_lite0"): (0.8931, 0.036, 1234.0),
    (2, "efficientnet_lite2"): (0.8708, 0.038, 945.0),
}


def profile_rows(profile: str, reference: dict = REFERENCE) -> list[dict]:
    """One row per part, network and seed of ``profile``, with ``reference``'s numbers and a small seed jitter."""
    knobs, _ = read_profile(NOTEBOOK, profile)
    rows = []
    for part, models in ((1, knobs["compare_models"]), (2, knobs["depth_models"])):
        for model in models:
            acc, seconds, speed = reference[(part, model)]
            for seed in knobs["seeds"]:
                jitter = 1 + 0.002 * (seed - 1)
                rows.append(
                    {
                        "part": part,
                        "model": model,
                        "seed": seed,
                        "test_acc": acc * jitter,
                        "seconds_per_epoch": seconds * jitter,
                        "cpu_seconds_per_epoch": 2 * seconds * jitter,  # two threads computing
                        "images_per_second": speed * jitter,
                        "final_train_loss": 0.3,
                        "chance_loss": math.log(10),
                    }
                )
    return rows


@pytest.mark.parametrize("profile", CHECKED)
def test_each_profile_compares_its_own_networks(profile):
    declared = findings.declared_findings(NOTEBOOK, profile)
    assert any(not f.get("below_chance") for f in declared), f"{profile} checks no comparison"
    for verdict in findings.check_all(NOTEBOOK, profile_rows(profile), profile):
        assert not any("no row has" in line for line in verdict.lines), (profile, verdict.claim, verdict.lines)


@pytest.mark.parametrize("profile", CHECKED)
def test_rows_like_the_references_show_every_lesson_of_the_profile(profile):
    verdicts = findings.check_all(NOTEBOOK, profile_rows(profile), profile)
    assert all(v.passed for v in verdicts), [(v.claim, v.margin_text) for v in verdicts if not v.passed]


def test_full_checks_the_references_accuracy_results_and_fails_when_they_turn():
    claims = [f["claim"] for f in findings.declared_findings(NOTEBOOK, "full")]
    turned = {**REFERENCE, (1, "vgg16"): (0.9530, 506.0, 200.0), (2, "resnet50"): (0.840, 9.0, 1000.0)}
    failed = [v.claim for v in findings.check_all(NOTEBOOK, profile_rows("full", turned), "full") if not v.passed]
    assert sorted(failed) == sorted(c for c in claims if "accura" in c), failed
    slower = {**REFERENCE, (1, "resnet18"): (0.9430, 600.0, 150.0)}
    failed = [v.claim for v in findings.check_all(NOTEBOOK, profile_rows("full", slower), "full") if not v.passed]
    assert len(failed) == 2 and all("VGG16" in c for c in failed), failed


def test_resnet50_within_one_point_of_resnet18_still_counts_as_no_gain():
    close = {**REFERENCE, (2, "resnet50"): (0.826, 9.0, 1000.0)}  # 0.7 points ahead of ResNet18
    verdicts = {v.claim: v for v in findings.check_all(NOTEBOOK, profile_rows("full", close), "full")}
    depth = next(v for claim, v in verdicts.items() if "ResNet50" in claim)
    assert depth.passed and depth.margin_text.startswith("-0.7")
