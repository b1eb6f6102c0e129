"""Frozen-prefix feature caching: where the cut goes, same logits and training, memory check, fallbacks."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from multitask_helper import multitask_model
from torch import nn
from torch.utils.data import DataLoader, Subset

import course_utils as cu
from course_utils.models import architectures
from course_utils.train import features as feature_cache
from course_utils.train.features import (
    CannotCacheError,
    FeatureCacheMemoryError,
    extract_features,
    split_frozen_prefix,
)
from course_utils.train.loop import TIMING_COLUMNS

CE = nn.CrossEntropyLoss()


def sgd(lr):
    return lambda model: torch.optim.SGD(cu.trainable_parameters(model), lr=lr, momentum=0.9)


def resnet(seed=0):
    torch.manual_seed(seed)
    return cu.build_model("resnet18", num_classes=10, pretrained=False)


def digits_loaders(n_train=96, n_val=64, size=32, shuffle=True, augment=False):
    train = Subset(cu.data.digits_dataset(train=True), list(range(n_train)))
    val = Subset(cu.data.digits_dataset(train=False), list(range(n_val)))
    return (
        cu.make_loader(train, batch_size=32, shuffle=shuffle, augment=augment, image_size=size, device="cpu"),
        cu.make_loader(val, batch_size=64, image_size=size, device="cpu"),
    )


def test_cut_goes_right_before_the_first_trainable_stage():
    model = resnet()
    cu.apply_strategy(model, "last_only")
    split = split_frozen_prefix(model)
    assert split.suffix_names == ["fc"] and split.prefix_names[-1] == "pool"
    cu.freeze_until(model, "layer2")
    assert split_frozen_prefix(model).suffix_names == ["layer3", "layer4", "pool", "fc"]


def test_cut_stops_before_dropout_so_it_keeps_drawing_masks():
    torch.manual_seed(0)
    alexnet = cu.build_model("alexnet", num_classes=10, pretrained=False)
    cu.apply_strategy(alexnet, "last_only")  # fc1, fc2 frozen, but Dropout sits before each
    split = split_frozen_prefix(alexnet)
    assert split.prefix_names[-1] == "flatten" and split.suffix_names[0] == "classifier_0"
    assert isinstance(split.suffix[0], torch.nn.Dropout)


def test_batchnorm_that_still_updates_is_not_cached():
    model = resnet()
    cu.freeze_until(model, "layer2", freeze_bn_stats=False)  # frozen weights, but BN statistics adapt
    with pytest.raises(CannotCacheError, match="first stage"):
        split_frozen_prefix(model)


def test_cached_logits_equal_the_whole_models_logits():
    _, val = digits_loaders()
    for freeze in ("layer2", "layer4"):
        model = resnet()
        cu.freeze_until(model, freeze)
        train, _ = digits_loaders(shuffle=False)
        cache = extract_features(model, train, val)
        assert cache.val_model is cache.head
        model.eval()
        with torch.no_grad():
            for (features, labels), (images, image_labels) in zip(cache.val_loader, val):
                assert torch.equal(labels, image_labels)
                torch.testing.assert_close(cache.head(features), model(images), rtol=1e-4, atol=1e-5)


def test_multitask_heads_are_cached_too():
    torch.manual_seed(0)
    model = multitask_model("resnet18", {"digit": 10, "parity": 2}, pretrained=False)
    cu.freeze_until(model, "layer4")
    images = torch.randn(4, 3, 32, 32)
    split = split_frozen_prefix(model)
    assert split.suffix_names[-1] == "heads"
    model.eval()
    with torch.no_grad():
        cached, whole = split.suffix(split.prefix(images)), model(images)
    assert cached.keys() == whole.keys()
    for task in whole:
        torch.testing.assert_close(cached[task], whole[task])


@pytest.mark.parametrize("freeze", ["layer3", "layer4"])
def test_training_on_cached_features_matches_training_the_whole_model(freeze):
    results = []
    for cache in (False, True):
        model = resnet(seed=1)
        cu.freeze_until(model, freeze)
        train, val = digits_loaders()
        torch.manual_seed(5)  # same shuffles on both sides: building the cache draws no random numbers
        history = cu.fit(
            model, train, val, num_epochs=2, loss_fn=CE, optimizer=sgd(0.05), verbose=False, cache_features=cache
        )
        results.append((model.state_dict(), history))
    (plain, plain_history), (cached, cached_history) = results
    for key, value in plain.items():
        torch.testing.assert_close(cached[key], value, rtol=1e-4, atol=1e-5, msg=key)
    for a, b in zip(plain_history.records, cached_history.records):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)
        assert a["val_acc"] == pytest.approx(b["val_acc"])


def test_cached_run_resumes_exactly(tmp_path):
    def run(checkpoint, stop_after=None, resume=False):
        model = resnet(seed=2)
        cu.apply_strategy(model, "last_only")
        train, val = digits_loaders()
        history = cu.fit(
            model,
            train,
            val,
            num_epochs=3,
            loss_fn=CE,
            optimizer=sgd(0.05),
            verbose=False,
            cache_features=True,
            checkpoint=cu.Checkpoint(checkpoint, resume=resume, stop_after_epoch=stop_after),
        )
        return model, [{k: v for k, v in r.items() if k not in TIMING_COLUMNS} for r in history.records]

    torch.manual_seed(0)
    full_model, full = run(tmp_path / "a.pt")
    torch.manual_seed(0)
    run(tmp_path / "b.pt", stop_after=1)
    torch.manual_seed(42)  # a new process would start elsewhere
    resumed_model, resumed = run(tmp_path / "b.pt", resume=True)
    assert resumed == full
    assert torch.equal(resumed_model.fc.weight, full_model.fc.weight)


def test_augmented_or_unknown_loaders_are_refused_with_the_fix():
    model = resnet()
    cu.apply_strategy(model, "last_only")
    augmented, val = digits_loaders(augment=True)
    with pytest.raises(ValueError, match="without augmentation"):
        cu.fit(model, augmented, val, num_epochs=1, loss_fn=CE, optimizer=sgd(0.01), verbose=False, cache_features=True)
    digits = cu.data.digits_dataset(train=False).with_transform(cu.data.image_transforms(32, from_tensor=True))
    plain = DataLoader(Subset(digits, list(range(64))), batch_size=32)
    with pytest.raises(ValueError, match="augment = False"):
        cu.fit(model, plain, num_epochs=1, loss_fn=CE, optimizer=sgd(0.01), verbose=False, cache_features=True)
    plain.augment = False  # the caller vouches for it
    history = cu.fit(model, plain, num_epochs=1, loss_fn=CE, optimizer=sgd(0.01), verbose=False, cache_features=True)
    assert len(history) == 1


def test_memory_check_refuses_before_allocating(monkeypatch):
    model = resnet()
    cu.apply_strategy(model, "last_only")
    train, val = digits_loaders()
    monkeypatch.setattr(feature_cache, "available_memory", lambda device: 100_000)
    with pytest.raises(FeatureCacheMemoryError) as error:
        cu.fit(model, train, val, num_epochs=1, loss_fn=CE, optimizer=sgd(0.01), verbose=False, cache_features=True)
    message = str(error.value)
    # 96 + 64 images x 512 float32 = 320 KiB, more than half of 100 kB.
    assert "160 images" in message and "320.0 KiB" in message and "cache_features=False" in message
    assert isinstance(error.value, MemoryError)


def test_without_a_frozen_front_or_stages_fit_warns_and_trains_whole(monkeypatch):
    model = resnet()  # everything trains: nothing to cache
    train, val = digits_loaders(n_train=32, n_val=32)
    with pytest.warns(UserWarning, match="no frozen front"):
        history = cu.fit(
            model, train, val, num_epochs=1, loss_fn=CE, optimizer=sgd(0.01), verbose=False, cache_features=True
        )
    assert len(history) == 1
    # An architecture entry without `stages` (as a new backbone may be) falls back the same way.
    entry = architectures.ARCHITECTURES["resnet18"]
    monkeypatch.setitem(architectures.ARCHITECTURES, "resnet18", dataclasses.replace(entry, stages=None))
    cu.apply_strategy(model, "last_only")
    with pytest.warns(UserWarning, match="no 'stages'"):
        cu.fit(model, train, val, num_epochs=1, loss_fn=CE, optimizer=sgd(0.01), verbose=False, cache_features=True)


def test_cache_is_reported_once_when_verbose(capsys):
    model = resnet()
    cu.apply_strategy(model, "last_only")
    train, val = digits_loaders()
    cu.fit(model, train, val, num_epochs=2, loss_fn=CE, optimizer=sgd(0.01), cache_features=True)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert lines[0].startswith("feature cache: ran stem, layer1") and "160 images" in lines[0]
    assert len(lines) == 3


def test_the_visible_step_and_the_shortcut_train_the_same():
    """extract_features, then fit on its loaders, is what fit(cache_features=True) does."""
    results = []
    for visible in (True, False):
        model = resnet(seed=3)
        cu.apply_strategy(model, "last_only")
        train, val = digits_loaders()
        torch.manual_seed(7)
        if visible:
            features = extract_features(model, train, val)
            history = cu.fit(
                features.head,
                features.train_loader,
                features.val_loader,
                num_epochs=2,
                loss_fn=CE,
                optimizer=sgd(0.05),
                verbose=False,
            )
        else:
            history = cu.fit(
                model, train, val, num_epochs=2, loss_fn=CE, optimizer=sgd(0.05), verbose=False, cache_features=True
            )
        results.append((model.fc.weight.detach().clone(), [r["val_acc"] for r in history.records]))
    assert torch.equal(results[0][0], results[1][0]) and results[0][1] == results[1][1]
