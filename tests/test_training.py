"""Training: per-epoch history, schedules, warm-up, early stopping, multi-task, checkpoints, resume."""
from __future__ import annotations

import math

import pytest
import torch
from torch.utils.data import DataLoader

import course_utils as cu
from course_utils.train import loop as training


def digits_loaders(n_train=96, n_val=64, size=32, augment=True, batch_size=32):
    train_set = cu.digits_dataset(train=True)
    test_set = cu.digits_dataset(train=False)
    train = torch.utils.data.Subset(
        train_set.with_transform(cu.image_transforms(size, augment=augment, from_tensor=True)),
        cu.subset_per_class(train_set, n_train // 10, seed=0).indices)
    val = torch.utils.data.Subset(
        test_set.with_transform(cu.image_transforms(size, from_tensor=True)),
        cu.subset_per_class(test_set, n_val // 10, seed=0).indices)
    return (DataLoader(train, batch_size=batch_size, shuffle=True),
            DataLoader(val, batch_size=64, shuffle=False))


def small_resnet(seed=0):
    torch.manual_seed(seed)
    return cu.build_model("resnet18", num_classes=10, pretrained=False)


def state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_history_has_one_record_per_epoch_with_all_columns():
    train, val = digits_loaders()
    history = cu.fit(small_resnet(), train, val, num_epochs=3, lr=0.01, verbose=False)
    assert len(history) == 3 and history["epoch"] == [1, 2, 3]
    assert {"train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds", "phase"} <= set(history.columns)
    assert all(0 <= a <= 1 for a in history["val_acc"]) and all(s > 0 for s in history["seconds"])
    assert history.best("val_acc")["val_acc"] == max(history["val_acc"])
    assert history.best("val_loss")["val_loss"] == min(history["val_loss"])


def test_prints_one_line_per_epoch_not_per_batch(capsys):
    train, _ = digits_loaders(n_train=160, batch_size=16)  # 10 batches per epoch
    cu.fit(small_resnet(), train, num_epochs=2, lr=0.01)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert len(lines) == 2 and lines[0].startswith("epoch  1") and "train loss" in lines[0]


def test_frozen_parameters_and_bn_stats_untouched_by_fit():
    train, val = digits_loaders()
    model = small_resnet()
    cu.freeze_until(model, "layer2")
    before = state(model)
    cu.fit(model, train, val, num_epochs=2, lr=0.05, verbose=False)
    after = model.state_dict()
    for key, value in before.items():
        frozen = key.startswith(("conv1", "bn1", "layer1", "layer2"))
        if frozen:
            assert torch.equal(after[key], value), key
    assert not torch.equal(after["layer3.0.conv1.weight"], before["layer3.0.conv1.weight"])
    assert not torch.equal(after["layer3.0.bn1.running_mean"], before["layer3.0.bn1.running_mean"])


def test_cosine_schedule_per_epoch():
    train, _ = digits_loaders()
    history = cu.fit(small_resnet(), train, num_epochs=4, lr=0.1, schedule="cosine", min_lr=0.001, verbose=False)
    expected = [0.001 + (0.1 - 0.001) * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)]
    assert history["lr"] == pytest.approx(expected)


def test_warmup_trains_head_only_then_restores_callers_freezing(tmp_path):
    train, val = digits_loaders()
    model = small_resnet()
    cu.freeze_until(model, "layer1")
    before = state(model)
    checkpoint = tmp_path / "run.pt"
    history = cu.fit(model, train, val, num_epochs=3, warmup_epochs=2, lr=0.05, verbose=False,
                     checkpoint_path=checkpoint, stop_after_epoch=2, restore_best=False)
    assert history["phase"] == ["warmup", "warmup"]
    after = model.state_dict()
    assert torch.equal(after["layer4.1.conv2.weight"], before["layer4.1.conv2.weight"])  # backbone frozen in warm-up
    assert torch.equal(after["layer4.1.bn2.running_var"], before["layer4.1.bn2.running_var"])
    assert not torch.equal(after["fc.weight"], before["fc.weight"])
    history = cu.fit(model, train, val, num_epochs=3, warmup_epochs=2, lr=0.05, verbose=False,
                     checkpoint_path=checkpoint, resume=True, restore_best=False)
    assert history["phase"] == ["warmup", "warmup", "finetune"]
    assert not torch.equal(model.state_dict()["layer4.1.conv2.weight"], before["layer4.1.conv2.weight"])
    # The caller's own freezing (stem + layer1) holds again after the run.
    assert not any(p.requires_grad for p in model.layer1.parameters())
    assert all(p.requires_grad for p in model.layer2.parameters())
    assert torch.equal(model.layer1[0].bn1.running_mean, before["layer1.0.bn1.running_mean"])


def test_differential_learning_rates_reach_the_optimizer():
    model = small_resnet()
    groups = cu.backbone_head_param_groups(model, backbone_lr=1e-4, head_lr=1e-3)
    optimizer = cu.make_optimizer("adam", groups, lr=0.5)
    assert [g["lr"] for g in optimizer.param_groups] == [1e-4, 1e-3]
    train, _ = digits_loaders()
    history = cu.fit(model, train, num_epochs=1, optimizer="adam", verbose=False,
                     param_groups=lambda m: cu.backbone_head_param_groups(m, 1e-4, 1e-3))
    assert history["lr"] == [1e-3]


def test_early_stopping_restores_best_epoch_weights():
    train, val = digits_loaders()
    torch.manual_seed(1)
    history = cu.fit(small_resnet(), train, val, num_epochs=8, lr=0.2, early_stopping_patience=1, verbose=False)
    assert history.stopped_early and len(history) == history.best_epoch + 1 < 8
    torch.manual_seed(1)
    model = small_resnet()
    history_full = cu.fit(model, train, val, num_epochs=8, lr=0.2, early_stopping_patience=1, verbose=False)
    assert cu.evaluate(model, val)["acc"] == pytest.approx(history_full.best("val_acc")["val_acc"])
    assert history_full.best_epoch == history.best_epoch


def multitask_data(n=48, size=32):
    torch.manual_seed(0)
    digits = cu.digits_dataset(train=True)
    images = digits.images[:n]
    parity = digits.targets[:n] % 2  # a second task: odd or even
    dataset = cu.TensorImageDataset(images, digits.targets[:n], parity,
                                    transform=cu.image_transforms(size, from_tensor=True))
    return DataLoader(dataset, batch_size=16, shuffle=True), DataLoader(dataset, batch_size=48)


def test_multitask_weighted_loss_and_per_head_metrics():
    train, val = multitask_data()
    model = cu.build_multitask_model("resnet18", {"digit": 10, "parity": 2}, pretrained=False)
    history = cu.fit(model, train, val, num_epochs=2, lr=0.05, optimizer="adamw", weight_decay=1e-4,
                     loss_weights={"digit": 2.0, "parity": 1.0}, verbose=False)
    record = history.last()
    for key in ("val_acc_digit", "val_acc_parity", "val_loss_digit", "val_loss_parity", "train_acc_digit"):
        assert key in record
    assert record["val_acc"] == pytest.approx((record["val_acc_digit"] + record["val_acc_parity"]) / 2)
    result = cu.evaluate(model, val, loss_weights={"digit": 2.0, "parity": 1.0})
    assert result["loss"] == pytest.approx(2 * result["loss_digit"] + result["loss_parity"], rel=1e-5)
    with pytest.raises(ValueError, match="unknown head"):
        cu.evaluate(model, val, loss_weights={"fruit": 1.0})


def test_head_and_label_count_mismatch_is_explained():
    _, val = multitask_data()
    model = small_resnet()
    with pytest.raises(ValueError, match="1 head.*2 label tensor"):
        cu.evaluate(model, val)


def _run(tmp_path, stop_after=None, resume=False):
    torch.manual_seed(123)
    model = small_resnet(seed=5)
    cu.freeze_until(model, "stem")
    train, val = digits_loaders()
    history = cu.fit(model, train, val, num_epochs=4, warmup_epochs=1, lr=0.05, schedule="cosine",
                     early_stopping_patience=10, checkpoint_path=tmp_path / "ckpt.pt", resume=resume,
                     stop_after_epoch=stop_after, verbose=False)
    return model, history


def _without_time(history):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in history.records]


def test_interrupted_and_resumed_run_equals_uninterrupted_run(tmp_path):
    full_model, full_history = _run(tmp_path / "a")
    _run(tmp_path / "b", stop_after=2)
    # A new process would start from a fresh model and a different RNG state.
    torch.manual_seed(999)
    resumed_model, resumed_history = _run(tmp_path / "b", resume=True)
    assert _without_time(resumed_history) == _without_time(full_history)
    for key, value in full_model.state_dict().items():
        assert torch.equal(resumed_model.state_dict()[key], value), key
    # Resuming a finished run trains nothing more and returns the same result.
    again_model, again_history = _run(tmp_path / "b", resume=True)
    assert _without_time(again_history) == _without_time(full_history)
    assert torch.equal(again_model.fc.weight, full_model.fc.weight)


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    training.save_checkpoint(path, {"format": training.CHECKPOINT_FORMAT, "epoch": 1})

    def crash(obj, f, *args, **kwargs):
        with open(f, "wb") as handle:
            handle.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        training.save_checkpoint(path, {"format": training.CHECKPOINT_FORMAT, "epoch": 2})
    monkeypatch.undo()
    assert training.load_checkpoint(path)["epoch"] == 1


def test_resume_with_other_settings_refuses(tmp_path):
    train, _ = digits_loaders()
    cu.fit(small_resnet(), train, num_epochs=2, lr=0.01, checkpoint_path=tmp_path / "c.pt", verbose=False)
    with pytest.raises(ValueError, match="other settings"):
        cu.fit(small_resnet(), train, num_epochs=3, lr=0.01, checkpoint_path=tmp_path / "c.pt", resume=True, verbose=False)


@pytest.mark.parametrize("kwargs,message", [
    ({"num_epochs": 0}, "num_epochs must be a positive integer"),
    ({"num_epochs": 2, "warmup_epochs": 2}, "warmup_epochs"),
    ({"num_epochs": 2, "resume": True}, "needs checkpoint_path"),
    ({"num_epochs": 2, "optimizer": "lbfgs"}, "'sgd', 'adam' or 'adamw'"),
    ({"num_epochs": 2, "schedule": "step"}, "'cosine'"),
    ({"num_epochs": 2, "early_stopping_patience": 2}, "needs a val_loader"),
])
def test_bad_fit_arguments_raise(kwargs, message):
    train, _ = digits_loaders()
    with pytest.raises(ValueError, match=message):
        cu.fit(small_resnet(), train, verbose=False, **kwargs)


def test_everything_frozen_is_an_error_not_a_silent_no_op():
    train, _ = digits_loaders()
    model = small_resnet()
    for p in model.parameters():
        p.requires_grad = False
    with pytest.raises(ValueError, match="No trainable parameters"):
        cu.fit(model, train, num_epochs=1, verbose=False)


def test_seed_everything_makes_runs_repeatable():
    train, _ = digits_loaders()
    results = []
    for _ in range(2):
        cu.seed_everything(42)
        model = cu.build_model("resnet18", num_classes=10, pretrained=False)
        results.append(cu.fit(model, train, num_epochs=1, lr=0.01, verbose=False)["train_loss"])
    assert results[0] == results[1]
    assert cu.get_device().type == ("cuda" if torch.cuda.is_available() else "cpu")
