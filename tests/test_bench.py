"""`course bench` runs end to end (tiny sizes) and writes its JSON; the table reads right."""

from __future__ import annotations

import json

from course_kit import bench, bench_cases, cli


def test_quick_bench_prints_a_table_and_writes_json(tmp_path, capsys):
    assert cli.main(["bench", "--quick", "--output", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "seed img/s" in out and "tv img/s" in out and "vs seed" in out and "vs tv" in out and "wall time" in out
    files = list(tmp_path.glob("bench-*.json"))
    assert len(files) == 1
    report = json.loads(files[0].read_text())
    assert report["command"] == "course bench --quick"
    assert report["machine"]["device"] == "cpu" and report["sizes"]["data_images"] == bench_cases.QUICK.data_images
    names = [case["name"] for case in report["cases"]]
    assert names == ["data_64", "finetune_32", "last_only_32"]
    for case in report["cases"]:
        assert (
            len(case["seed_seconds"]) == len(case["kit_seconds"]) == len(case["torchvision_seconds"]) == case["rounds"]
        )
        assert case["seed_images_per_second"] > 0 and case["kit_images_per_second"] > 0
        assert abs(case["ratio"] - case["kit_images_per_second"] / case["seed_images_per_second"]) < 1e-9
        assert (
            abs(case["torchvision_ratio"] - case["kit_images_per_second"] / case["torchvision_images_per_second"])
            < 1e-9
        )
        assert isinstance(case["meets_target"], bool)


def test_table_reports_ratio_and_per_epoch_seconds():
    case = bench_cases.CaseResult(
        "seed_vgg16_224",
        "vgg16",
        images=1000,
        image_size=224,
        rounds=1,
        seed_seconds=[20.0],
        kit_seconds=[2.0],
        per_epoch_of=25_000,
    )
    table = bench.format_table([case])
    assert "10.00x" in table and "seed-style 500.0 s, kit 50.00 s" in table
    assert case.to_dict()["kit_seconds_per_epoch"] == 50.0 and case.torchvision_ratio is None


def test_table_marks_a_missed_target_and_the_torchvision_ratio():
    case = bench_cases.CaseResult(
        "data_224",
        "data",
        images=1000,
        image_size=224,
        rounds=1,
        target=5.0,
        seed_seconds=[4.0],
        torchvision_seconds=[2.0],
        kit_seconds=[1.0],
    )
    line = bench.format_table([case]).splitlines()[1]
    assert "4.00x" in line and "2.00x" in line and line.endswith(">= 5x MISSED")
    assert case.to_dict()["meets_target"] is False
