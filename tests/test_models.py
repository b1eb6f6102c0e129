"""Models: heads, pretrained loading through torchvision's cache file names, multi-task forward."""

from __future__ import annotations

import hashlib
import os

import pytest
import torch
from multitask_helper import multitask_model
from torch import nn

import course_utils as cu
from course_utils.models import weights as weight_files


@pytest.mark.parametrize(
    "name,head_path,in_features",
    [
        ("resnet18", "fc", 512),
        ("resnet34", "fc", 512),
        ("resnet50", "fc", 2048),
        ("alexnet", "classifier.6", 4096),
        ("vgg16", "classifier.6", 4096),
    ],
)
def test_build_model_replaces_head(name, head_path, in_features):
    model = cu.build_model(name, num_classes=7, pretrained=False)
    head = model.get_submodule(head_path)
    assert isinstance(head, nn.Linear) and (head.in_features, head.out_features) == (in_features, 7)
    size = 64 if name.startswith("resnet") else 96
    assert model(torch.randn(2, 3, size, size)).shape == (2, 7)


def test_pooling_head_of_seed_004():
    resnet = cu.build_model("resnet50", num_classes=5, pretrained=False, head="pooling")
    linears = [m for m in resnet.fc if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(2048, 1024), (1024, 5)]
    assert cu.freezing.group_names(resnet)[-1] == "fc"
    vgg = cu.build_model("vgg16", num_classes=5, pretrained=False, head="pooling")
    assert cu.freezing.group_names(vgg)[-1] == "head"
    assert vgg(torch.randn(2, 3, 64, 64)).shape == (2, 5)
    cu.apply_strategy(vgg, "last_only")
    assert cu.count_parameters(vgg, trainable_only=True) == 512 * 1024 + 1024 + 1024 * 5 + 5


def test_unknown_model_and_head_raise_with_choices():
    with pytest.raises(ValueError, match="alexnet.*resnet18.*vgg16"):
        cu.build_model("resnet19", num_classes=10)
    with pytest.raises(ValueError, match="'linear' or 'pooling'"):
        cu.build_model("resnet18", num_classes=10, pretrained=False, head="mlp")


def test_pretrained_loads_checkpoint_from_torchvision_cache_name(isolated_assets):
    # A stand-in checkpoint under torchvision's real file name: the real loading path must read it.
    reference = torch.nn.Module()
    paths = cu.models.weights.write_standin_checkpoints(["resnet18"])
    assert paths[0].name == "resnet18-f37072fd.pth"
    assert paths[0].parent == isolated_assets / "torch" / "hub" / "checkpoints"
    state = torch.load(paths[0], weights_only=True)
    with pytest.warns(UserWarning, match="synthetic stand-in"):
        model = cu.build_model("resnet18", num_classes=10, pretrained=True)
    assert torch.equal(model.layer3[0].conv1.weight, state["layer3.0.conv1.weight"])
    assert torch.equal(model.bn1.running_var, state["bn1.running_var"])
    assert model.fc.out_features == 10  # the ImageNet head was loaded, then replaced
    del reference


def test_truncated_checkpoint_is_never_loaded(isolated_assets):
    path = cu.models.weights.write_standin_checkpoints(["resnet18"])[0]
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(
        FileNotFoundError, match=r"corrupt.*\n.*resnet18-f37072fd.pth.*\n.*course fetch weights resnet18"
    ):
        cu.build_model("resnet18", num_classes=10, pretrained=True)


def test_missing_weights_offline_names_path_and_fetch_command(isolated_assets):
    with pytest.raises(FileNotFoundError) as info:
        cu.build_model("vgg16", num_classes=10, pretrained=True)
    message = str(info.value)
    assert "offline mode is on" in message
    assert str(isolated_assets / "torch" / "hub" / "checkpoints" / "vgg16-397923af.pth") in message
    assert "course fetch weights vgg16" in message


def test_real_checkpoint_hash_is_checked_once_then_stamped(isolated_assets):
    # A file whose name carries its own sha256 prefix is "real" as far as the check can tell.
    directory = weight_files.checkpoint_dir()
    directory.mkdir(parents=True)
    tmp = directory / "x.pth"
    torch.save({"w": torch.ones(2)}, tmp)
    prefix = hashlib.sha256(tmp.read_bytes()).hexdigest()[:8]
    path = directory / f"thing-{prefix}.pth"
    os.replace(tmp, path)
    assert weight_files.verify_checkpoint(path) == "verified"
    assert path.with_name(path.name + ".verified").exists()
    path.write_bytes(path.read_bytes()[:-3])  # later corruption changes size -> re-checked
    with pytest.raises(ValueError, match="corrupt or incomplete"):
        weight_files.verify_checkpoint(path)


def test_multitask_model_shared_backbone_two_heads():
    model = multitask_model("resnet18", {"fruit": 6, "freshness": 2}, pretrained=False)
    assert isinstance(model.backbone.fc, nn.Identity)
    out = model(torch.randn(3, 3, 64, 64))
    assert list(out) == ["fruit", "freshness"]
    assert out["fruit"].shape == (3, 6) and out["freshness"].shape == (3, 2)
    single = cu.build_model("resnet18", num_classes=6, pretrained=False)
    assert cu.count_parameters(model) == cu.count_parameters(single) - (512 * 6 + 6) + 512 * 8 + 8


def test_normalization_comes_from_the_table():
    assert cu.normalization_for("resnet18") == (cu.models.IMAGENET_MEAN, cu.models.IMAGENET_STD)
    model = cu.build_model("alexnet", num_classes=10, pretrained=False)
    assert cu.normalization_for(model) == (cu.models.IMAGENET_MEAN, cu.models.IMAGENET_STD)


def test_torchvision_models_built_directly_are_recognised_exactly_or_refused():
    import torchvision.models as tvm

    from course_utils.models import architecture_of

    for builder, name in (
        (tvm.resnet18, "resnet18"),
        (tvm.resnet34, "resnet34"),
        (tvm.resnet50, "resnet50"),
        (tvm.alexnet, "alexnet"),
        (tvm.vgg16, "vgg16"),
    ):
        assert architecture_of(builder(weights=None)).name == name
    # Not in the table: refused with the list, never mapped to a look-alike's groups.
    for builder in (tvm.vgg11, tvm.vgg16_bn, tvm.resnet101):
        with pytest.raises(TypeError, match="Don't know the layer groups.*resnet18"):
            architecture_of(builder(weights=None))


def test_each_weight_file_version_is_hashed_once_per_process(isolated_assets, monkeypatch):
    # A notebook builds its backbone a dozen times: the weight file is hashed at the first build only.
    monkeypatch.setattr(cu.assets, "_sha256_of_version", {})  # this test's own memo, whatever ran before
    hashed = []
    digest = cu.assets._file_digest
    monkeypatch.setattr(cu.assets, "_file_digest", lambda path, kind: hashed.append(path) or digest(path, kind))
    path = weight_files.write_standin_checkpoints(["resnet18"])[0]
    assert len(hashed) == 1  # registering the stand-in hashed it
    with pytest.warns(UserWarning, match="synthetic stand-in"):
        for _ in range(3):
            cu.build_model("resnet18", num_classes=10, pretrained=True)
    assert len(hashed) == 1
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000_000))  # touched: a new version
    assert weight_files.verify_checkpoint(path) == "standin" and len(hashed) == 2


def test_a_replaced_file_is_hashed_again(tmp_path):
    path = tmp_path / "weights.pth"
    path.write_bytes(b"first")
    first = cu.assets.file_sha256_once(path)
    (tmp_path / "new.pth").write_bytes(b"other")
    os.replace(tmp_path / "new.pth", path)  # replaced by a file of the same size: another version
    assert cu.assets.file_sha256_once(path) == cu.assets.file_sha256(path) != first
