"""``profile = "auto"`` sized to the device (CPU, small GPU, large GPU), and the estimate printed before training."""

from __future__ import annotations

import time

import pytest

from course_kit.repository import SOLUTIONS
from course_utils.notebook import choice, estimate, parameters
from course_utils.notebook.choice import DeviceInfo, choose_profile
from course_utils.notebook.session import start_session

NOTEBOOKS = sorted(p.stem for p in SOLUTIONS.glob("*.ipynb"))
T4 = DeviceInfo(cuda=True, name="Tesla T4", memory_gib=14.7, capability=(7, 5))
A100 = DeviceInfo(cuda=True, name="NVIDIA A100-SXM4-40GB", memory_gib=39.4 + 0.6, capability=(8, 0))
BIG_OLD = DeviceInfo(cuda=True, name="Quadro RTX 8000", memory_gib=48.0, capability=(7, 5))
SMALL_NEW = DeviceInfo(cuda=True, name="NVIDIA GeForce RTX 3060", memory_gib=12.0, capability=(8, 6))
CPU = DeviceInfo(cuda=False)


@pytest.mark.parametrize(
    "device,missing,profile",
    [
        (T4, None, "colab"),
        (SMALL_NEW, None, "colab"),  # new but small
        (BIG_OLD, None, "colab"),  # large but no native bf16 and slower
        (A100, None, "full"),
        (CPU, [], "laptop"),
        (CPU, ["CIFAR-10"], "offline"),
    ],
)
def test_auto_chooses_by_what_it_finds(device, missing, profile):
    chosen, why = choose_profile(device, missing)
    assert chosen == profile
    assert why and (device.name in why if device.cuda else "no CUDA GPU" in why)


def test_why_names_what_is_missing_and_how_to_get_laptop():
    _, why = choose_profile(CPU, ["CIFAR-10", "the ImageNet weights of resnet18"])
    assert "CIFAR-10, the ImageNet weights of resnet18 are not downloaded" in why and 'profile = "laptop"' in why


@pytest.mark.parametrize("device,profile", [(T4, "colab"), (A100, "full"), (CPU, "offline")])
def test_load_parameters_with_auto_takes_the_chosen_profiles_knobs_and_says_why(monkeypatch, tmp_path, device, profile):
    monkeypatch.setattr(choice, "probe_device", lambda knob=None: device)
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "empty-data"))  # nothing downloaded: CPU -> offline
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch"))
    P = parameters.load_parameters("02_resnet_vs_vgg", profile="auto")
    assert P.profile == profile and P.requested_profile == "auto"
    assert P.as_dict() == {"profile": profile, **parameters.read_profile("02_resnet_vs_vgg", profile)[0]}
    assert P.why.startswith("auto: ") and (device.name in P.why if device.cuda else "CIFAR-10" in P.why)
    assert parameters.load_parameters("02_resnet_vs_vgg", profile="smoke").why == 'asked for (profile = "smoke")'


def test_cpu_with_the_laptop_data_and_weights_on_disk_gets_laptop(monkeypatch, tmp_path):
    from course_utils.data.cifar import CIFAR10
    from course_utils.models.weights import destination_of

    monkeypatch.setattr(choice, "probe_device", lambda knob=None: CPU)
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    knobs = parameters.read_profile("01_alexnet_data_fraction", "laptop")[0]
    assert choice.laptop_assets_missing(knobs) == ["CIFAR-10", "the ImageNet weights of alexnet"]
    batches = tmp_path / "data" / "cifar-10-batches-py"
    batches.mkdir(parents=True)
    for name in [n for n, _ in CIFAR10.train_list + CIFAR10.test_list] + [CIFAR10.meta["filename"]]:
        (batches / name).write_bytes(b"")
    assert choice.laptop_assets_missing(knobs) == ["the ImageNet weights of alexnet"]
    weights = destination_of("alexnet")
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"")
    P = parameters.load_parameters("01_alexnet_data_fraction", profile="auto")
    assert P.profile == "laptop" and "already downloaded" in P.why


def test_the_device_knob_cpu_means_a_cpu_even_on_a_gpu_machine():
    assert choice.probe_device("cpu") == CPU


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_colab_keeps_the_seeds_architectures_and_plans_far_less_than_full(name):
    colab, colab_session = parameters.read_profile(name, "colab")
    full, _ = parameters.read_profile(name, "full")
    for knob in ("backbone", "compare_models", "depth_models", "sweep_models"):
        assert colab.get(knob) == full.get(knob), f"{name}: colab trains other architectures ({knob})"
    assert not any(colab_session[k] for k in ("offline", "synthetic_data", "standin_weights"))
    P_colab = parameters.load_parameters(name, profile="colab")
    P_full = parameters.load_parameters(name, profile="full")
    pixels = lambda P: sum(w.train_steps * w.batch_size * w.image_size**2 for w in estimate.planned_work(P))  # noqa: E731
    assert pixels(P_colab) <= pixels(P_full) / 4, f"{name}: colab is not much smaller than full"


def test_the_estimate_is_printed_before_training_measured_here_and_cheap(capsys):
    P = parameters.load_parameters("01_alexnet_data_fraction", profile="smoke")
    started = time.perf_counter()
    session = start_session(P, backbones=[P.backbone], estimate=True)
    seconds = time.perf_counter() - started
    out = capsys.readouterr().out
    assert out.startswith('profile smoke (asked for (profile = "smoke")), estimated ~')
    assert "s/step x " in out and f"x {session.estimate.steps:,} steps)" in out
    planned = sum(w.train_steps for w in estimate.planned_work(P))
    # 200 stand-in images: 20, 40, 100 per fraction in batches of 16 = 2 + 3 + 7 steps, pretrained and scratch, 1 epoch;
    # then section 6's scratch run at the smallest fraction with budget_factor (5) x the epochs: 2 x 5 steps
    assert session.estimate.steps == planned == 2 * (2 + 3 + 7) + 2 * 5
    assert all(t > 0 for t in session.estimate.seconds_per_step.values())
    assert seconds < 10, f"the estimate took {seconds:.1f} s"


def test_smoke_and_grading_skip_the_estimate_unless_asked(capsys):
    P = parameters.load_parameters("03_partial_freezing", profile="grading")
    session = start_session(P, backbones=[P.backbone])
    assert session.estimate is None and capsys.readouterr().out == ""


def test_a_notebook_without_a_plan_is_named():
    P = parameters.load_parameters("01_alexnet_data_fraction", profile="smoke")
    P.notebook = "99_new"
    with pytest.raises(ValueError, match="No run-time plan for notebook '99_new'"):
        estimate.planned_work(P)
