"""Freezing: layer groups, strategies, TRAINABLE_LAYERS counting, BatchNorm pinning, LR groups."""

from __future__ import annotations

import pytest
import torch
from multitask_helper import multitask_model
from torch import nn

import course_utils as cu


def n_params(*modules: nn.Module) -> int:
    return sum(p.numel() for m in modules for p in m.parameters())


@pytest.fixture(scope="module")
def resnets():
    return {
        name: cu.build_model(name, num_classes=10, pretrained=False) for name in ("resnet18", "resnet34", "resnet50")
    }


# Totals with a 10-class head, from the architectures' published sizes minus the ImageNet head.
KNOWN_TOTALS = {
    "resnet18": 11_689_512 - 513_000 + 5_130,
    "resnet34": 21_797_672 - 513_000 + 5_130,
    "resnet50": 25_557_032 - 2_049_000 + 20_490,
    "alexnet": 61_100_840 - 4_097_000 + 40_970,
    "vgg16": 138_357_544 - 4_097_000 + 40_970,
}


@pytest.mark.parametrize("name", ["resnet18", "resnet34", "resnet50"])
def test_resnet_strategies_and_trainable_layers_counts(resnets, name):
    model = resnets[name]
    stem = n_params(model.conv1, model.bn1)
    l1, l2, l3, l4, fc = (n_params(getattr(model, n)) for n in ("layer1", "layer2", "layer3", "layer4", "fc"))
    assert stem + l1 + l2 + l3 + l4 + fc == KNOWN_TOTALS[name] == cu.count_parameters(model)
    assert fc == model.fc.in_features * 10 + 10

    expected_strategy = {
        "none": KNOWN_TOTALS[name],
        "early": stem + l3 + l4 + fc,  # the COMP5541 notebook freezes layer1 + layer2 only
        "middle": stem + l1 + l4 + fc,  # layer2 + layer3
        "last_only": fc,
    }
    for strategy, expected in expected_strategy.items():
        cu.apply_strategy(model, strategy)
        assert cu.count_parameters(model, trainable_only=True) == expected, strategy

    expected_layers = {
        1: fc,
        2: l4 + fc,
        3: l3 + l4 + fc,
        4: l2 + l3 + l4 + fc,
        5: l1 + l2 + l3 + l4 + fc,
        6: KNOWN_TOTALS[name],
    }
    for n, expected in expected_layers.items():
        cu.set_trainable_layers(model, n)
        assert cu.count_parameters(model, trainable_only=True) == expected, n
    assert cu.set_trainable_layers(model, 2) == ["layer4", "fc"]


@pytest.mark.parametrize("name,convs,linears", [("alexnet", 5, 3), ("vgg16", 13, 3)])
def test_plain_cnn_groups_strategies_and_counts(name, convs, linears):
    model = cu.build_model(name, num_classes=10, pretrained=False)
    conv_layers = [m for m in model.features if isinstance(m, nn.Conv2d)]
    fc_layers = [m for m in model.classifier if isinstance(m, nn.Linear)]
    assert cu.freezing.group_names(model) == [f"conv{i}" for i in range(1, convs + 1)] + [
        f"fc{i}" for i in range(1, linears + 1)
    ]
    assert cu.count_parameters(model) == KNOWN_TOTALS[name]

    cu.apply_strategy(model, "last_only")
    assert cu.count_parameters(model, trainable_only=True) == 4096 * 10 + 10
    cu.apply_strategy(model, "early")
    frozen = n_params(*conv_layers[: (2 if name == "alexnet" else 4)])
    assert cu.count_parameters(model, trainable_only=True) == KNOWN_TOTALS[name] - frozen
    assert not any(p.requires_grad for p in conv_layers[0].parameters())
    cu.apply_strategy(model, "middle")
    middle = conv_layers[2:4] if name == "alexnet" else conv_layers[4:10]
    assert cu.count_parameters(model, trainable_only=True) == KNOWN_TOTALS[name] - n_params(*middle)

    for n in range(1, convs + linears + 1):
        cu.set_trainable_layers(model, n)
        trainable_layers = (conv_layers + fc_layers)[-n:]
        assert cu.count_parameters(model, trainable_only=True) == n_params(*trainable_layers)


def test_freeze_until_matches_seed_002(resnets):
    model = resnets["resnet18"]
    frozen = cu.freeze_until(model, "layer2")
    assert frozen == ["stem", "layer1", "layer2"]
    for module in (model.conv1, model.bn1, model.layer1, model.layer2):
        assert not any(p.requires_grad for p in module.parameters())
    for module in (model.layer3, model.layer4, model.fc):
        assert all(p.requires_grad for p in module.parameters())


def test_multitask_model_groups_and_freezing():
    model = multitask_model("resnet18", {"fruit": 6, "freshness": 2}, pretrained=False)
    assert cu.freezing.group_names(model) == ["stem", "layer1", "layer2", "layer3", "layer4", "heads"]
    cu.freeze_until(model, "layer2")
    expected = n_params(model.backbone.layer3, model.backbone.layer4) + 512 * 6 + 6 + 512 * 2 + 2
    assert cu.count_parameters(model, trainable_only=True) == expected
    cu.set_trainable_layers(model, 1)
    assert cu.count_parameters(model, trainable_only=True) == 512 * 8 + 8


def test_bad_names_and_counts_raise_with_choices(resnets):
    model = resnets["resnet18"]
    with pytest.raises(ValueError, match="none, early, middle, last_only"):
        cu.apply_strategy(model, "everything")
    with pytest.raises(ValueError, match=r"choose 1\.\.6"):
        cu.set_trainable_layers(model, 7)
    with pytest.raises(ValueError, match="out of range"):
        cu.set_trainable_layers(model, 0)
    with pytest.raises(ValueError, match="stem, layer1"):
        cu.freeze_until(model, "layer5")
    with pytest.raises(ValueError, match="Unknown layer group"):
        cu.freeze_until(model, "conv1")


def _train_steps(model, steps=3, size=32, num_classes=10):
    optimizer = torch.optim.SGD(cu.trainable_parameters(model), lr=0.1, momentum=0.9)
    torch.manual_seed(0)
    for _ in range(steps):
        model.train()
        images = torch.randn(8, 3, size, size) * 2 + 1  # far from ImageNet statistics on purpose
        loss = nn.functional.cross_entropy(model(images), torch.randint(0, num_classes, (8,)))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def _buffers_and_params(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_frozen_weights_and_batchnorm_stats_unchanged_after_training(resnets):
    model = cu.build_model("resnet18", num_classes=10, pretrained=False)
    cu.apply_strategy(model, "early")  # layer1, layer2 frozen; stem, layer3.. train
    before = {name: _buffers_and_params(getattr(model, name)) for name in ("layer1", "layer2", "layer3", "bn1")}
    _train_steps(model)
    for name in ("layer1", "layer2"):
        after = getattr(model, name).state_dict()
        for key, value in before[name].items():
            assert torch.equal(after[key], value), f"{name}.{key} changed although frozen"
    changed_stats = [
        k for k, v in before["layer3"].items() if "running" in k and not torch.equal(model.layer3.state_dict()[k], v)
    ]
    changed_weights = [
        k
        for k, v in before["layer3"].items()
        if k.endswith("weight") and not torch.equal(model.layer3.state_dict()[k], v)
    ]
    assert changed_stats and changed_weights, "trainable layer3 should have moved"
    assert not torch.equal(model.bn1.running_mean, before["bn1"]["running_mean"]), "stem is trainable under 'early'"


def test_unpinned_batchnorm_stats_drift_when_asked():
    model = cu.build_model("resnet18", num_classes=10, pretrained=False)
    cu.apply_strategy(model, "last_only", freeze_bn_stats=False)
    before = model.layer1[0].bn1.running_mean.clone()
    weights = model.layer1[0].conv1.weight.clone()
    _train_steps(model, steps=2)
    assert not torch.equal(
        model.layer1[0].bn1.running_mean, before
    )  # the drift the transfer-learning chapter warns about
    assert torch.equal(model.layer1[0].conv1.weight, weights)


def test_pinned_batchnorm_survives_model_train_and_unfreeze_releases_it():
    model = cu.build_model("resnet18", num_classes=10, pretrained=False)
    cu.apply_strategy(model, "last_only")
    model.train()
    model(torch.randn(2, 3, 32, 32))
    assert not model.layer2[0].bn1.training
    cu.unfreeze_all(model)
    model.train()
    assert model.layer2[0].bn1.training
    assert all(p.requires_grad for p in model.parameters())


def test_frozen_statistics_are_visible_and_change_nothing_else(tmp_path):
    """A BatchNorm with frozen statistics is its own class: print(model) shows it, nothing else changes."""
    import copy

    model = cu.build_model("resnet18", num_classes=10, pretrained=False)
    names_before = [name for name, _ in model.named_parameters()]
    state_before = {k: v.clone() for k, v in model.state_dict().items()}
    cu.freeze_until(model, "layer1")
    assert type(model.layer1[0].bn1) is cu.freezing.FrozenStatsBatchNorm2d
    assert type(model.layer2[0].bn1) is nn.BatchNorm2d
    assert "FrozenStatsBatchNorm2d(64, eps=1e-05" in str(model) and "running stats frozen" in str(model)
    # The same parameters and buffers: optimizers, state dicts and checkpoints see no difference.
    assert [name for name, _ in model.named_parameters()] == names_before
    assert all(torch.equal(v, state_before[k]) for k, v in model.state_dict().items())
    assert isinstance(model.layer1[0].bn1, nn.BatchNorm2d)
    # Copies and whole-model saves keep the frozen statistics.
    for copied in (copy.deepcopy(model), _saved_and_loaded(model, tmp_path / "model.pt")):
        copied.train()
        assert not copied.layer1[0].bn1.training and copied.layer2[0].bn1.training
    cu.unfreeze_all(model)
    assert type(model.layer1[0].bn1) is nn.BatchNorm2d


def _saved_and_loaded(model, path):
    torch.save(model, path)
    return torch.load(path, weights_only=False)


def test_summary_rows_match_counts(resnets):
    model = resnets["resnet18"]
    cu.freeze_until(model, "layer2")
    rows = {r["group"]: r for r in cu.trainable_summary(model)}
    assert rows["layer2"] == {"group": "layer2", "trainable": 0, "total": n_params(model.layer2), "bn_stats": "frozen"}
    assert rows["layer3"]["trainable"] == rows["layer3"]["total"] and rows["layer3"]["bn_stats"] == "updating"
    assert rows["fc"]["bn_stats"] == "-"
    text = cu.freezing.format_trainable_summary(model)
    assert f"{cu.count_parameters(model, trainable_only=True):,}" in text.splitlines()[-1]


def test_depth_tiered_groups_cover_backbone_in_order(resnets):
    model = resnets["resnet50"]
    cu.apply_strategy(model, "none")
    groups = cu.freezing.depth_tiered_param_groups(model, tier_lrs=(1e-6, 1e-5, 1e-4), head_lr=1e-3)
    assert [g["name"] for g in groups] == ["early", "middle", "late", "head"]
    assert [g["lr"] for g in groups] == [1e-6, 1e-5, 1e-4, 1e-3]
    # 5 backbone groups: stem | layer1..layer3 | layer4
    assert sum(p.numel() for p in groups[0]["params"]) == n_params(model.conv1, model.bn1)
    assert sum(p.numel() for p in groups[2]["params"]) == n_params(model.layer4)
    assert sum(p.numel() for g in groups for p in g["params"]) == cu.count_parameters(model)


def test_torchvision_model_built_directly_is_understood():
    import torchvision

    model = torchvision.models.resnet18(weights=None)
    assert cu.freezing.group_names(model)[0] == "stem"
    with pytest.raises(TypeError, match="build_model"):
        cu.layer_groups(nn.Sequential(nn.Linear(2, 2)))
