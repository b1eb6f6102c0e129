"""Training: one epoch, evaluation, fit's per-epoch history, schedules, warm-up, early stopping, checkpoints."""

from __future__ import annotations

import inspect
import math

import pytest
import torch
from multitask_helper import multitask_model
from torch import nn
from torch.utils.data import DataLoader

import course_utils as cu
from course_utils.train import checkpoint as checkpoints
from course_utils.train import loop

CE = nn.CrossEntropyLoss()


def digits_loaders(n_train=96, n_val=64, size=32, augment=True, batch_size=32):
    train_set = cu.data.digits_dataset(train=True)
    test_set = cu.data.digits_dataset(train=False)
    train = torch.utils.data.Subset(
        train_set.with_transform(cu.data.image_transforms(size, augment=augment, from_tensor=True)),
        cu.subset_per_class(train_set, n_train // 10, seed=0).indices,
    )
    val = torch.utils.data.Subset(
        test_set.with_transform(cu.data.image_transforms(size, from_tensor=True)),
        cu.subset_per_class(test_set, n_val // 10, seed=0).indices,
    )
    return (DataLoader(train, batch_size=batch_size, shuffle=True), DataLoader(val, batch_size=64, shuffle=False))


def small_resnet(seed=0):
    torch.manual_seed(seed)
    return cu.build_model("resnet18", num_classes=10, pretrained=False)


def sgd(lr, momentum=0.9):
    """The COMP5541 notebook's optimizer over trainable parameters only, as a model -> optimizer function."""
    return lambda model: torch.optim.SGD(cu.trainable_parameters(model), lr=lr, momentum=momentum)


def state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_train_one_epoch_and_evaluate_are_the_pieces_fit_is_made_of():
    train, val = digits_loaders()
    model = small_resnet()
    optimizer = sgd(0.05)(model)
    before = state(model)
    metrics = cu.train_one_epoch(model, train, optimizer, CE)
    assert set(metrics) == {"loss", "acc"} and 0 <= metrics["acc"] <= 1 and model.training
    assert not torch.equal(model.state_dict()["fc.weight"], before["fc.weight"])
    model.train()
    result = cu.evaluate(model, val, CE)
    assert model.training  # evaluate restores the caller's mode
    with torch.no_grad():
        logits = torch.cat([model.eval()(x) for x, _ in val])
        labels = torch.cat([y for _, y in val])
    assert result["acc"] == pytest.approx((logits.argmax(1) == labels).float().mean().item())
    assert result["loss"] == pytest.approx(CE(logits, labels).item(), rel=1e-5)


def test_fit_is_a_short_loop():
    source = inspect.getsource(cu.fit)
    body = source[source.index('"""', source.index('"""') + 3) + 3 :]
    assert len([line for line in body.splitlines() if line.strip()]) < 60


def test_history_has_one_record_per_epoch_with_all_columns():
    train, val = digits_loaders()
    history = cu.fit(small_resnet(), train, val, num_epochs=3, loss_fn=CE, optimizer=sgd(0.01), verbose=False)
    assert len(history) == 3 and history["epoch"] == [1, 2, 3]
    assert {"train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds"} <= set(history.columns)
    assert all(0 <= a <= 1 for a in history["val_acc"]) and all(s > 0 for s in history["seconds"])
    assert history.best("val_acc")["val_acc"] == max(history["val_acc"])
    assert history.best("val_loss")["val_loss"] == min(history["val_loss"])


def test_prints_one_line_per_epoch_not_per_batch(capsys):
    train, _ = digits_loaders(n_train=160, batch_size=16)  # 10 batches per epoch
    cu.fit(small_resnet(), train, num_epochs=2, loss_fn=CE, optimizer=sgd(0.01))
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert len(lines) == 2 and lines[0].startswith("epoch  1") and "train loss" in lines[0]


def test_frozen_parameters_and_bn_stats_untouched_by_fit():
    train, val = digits_loaders()
    model = small_resnet()
    cu.freeze_until(model, "layer2")
    before = state(model)
    cu.fit(model, train, val, num_epochs=2, loss_fn=CE, optimizer=sgd(0.05), verbose=False)
    after = model.state_dict()
    for key, value in before.items():
        frozen = key.startswith(("conv1", "bn1", "layer1", "layer2"))
        if frozen:
            assert torch.equal(after[key], value), key
    assert not torch.equal(after["layer3.0.conv1.weight"], before["layer3.0.conv1.weight"])
    assert not torch.equal(after["layer3.0.bn1.running_mean"], before["layer3.0.bn1.running_mean"])


def test_cosine_schedule_per_epoch():
    train, _ = digits_loaders()

    def cosine(optimizer, num_epochs):
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=num_epochs, eta_min=0.001)

    history = cu.fit(
        small_resnet(), train, num_epochs=4, loss_fn=CE, optimizer=sgd(0.1), scheduler=cosine, verbose=False
    )
    expected = [0.001 + (0.1 - 0.001) * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)]
    assert history["lr"] == pytest.approx(expected)


def _backbone_and_head(model, backbone_lr, head_lr):
    """Two optimizer groups, as notebook 03's students write them (Exercise 5)."""
    head = {id(p) for p in model.fc.parameters()}
    return [
        {"params": [p for p in model.parameters() if id(p) not in head], "lr": backbone_lr},
        {"params": list(model.fc.parameters()), "lr": head_lr},
    ]


def test_differential_learning_rates_reach_the_optimizer():
    model = small_resnet()
    groups = _backbone_and_head(model, backbone_lr=1e-4, head_lr=1e-3)
    optimizer = cu.train.make_optimizer("adam", groups, lr=0.5)
    assert [g["lr"] for g in optimizer.param_groups] == [1e-4, 1e-3]
    train, _ = digits_loaders()
    history = cu.fit(
        model,
        train,
        num_epochs=1,
        loss_fn=CE,
        verbose=False,
        optimizer=lambda m: cu.train.make_optimizer("adam", _backbone_and_head(m, 1e-4, 1e-3), lr=0.5),
    )
    assert history["lr"] == [1e-3]


def test_early_stopping_restores_best_epoch_weights():
    train, val = digits_loaders()
    torch.manual_seed(1)
    history = cu.fit(
        small_resnet(), train, val, num_epochs=8, loss_fn=CE, optimizer=sgd(0.2), early_stopping=1, verbose=False
    )
    assert history.stopped_early and len(history) == history.best_epoch + 1 < 8
    torch.manual_seed(1)
    model = small_resnet()
    history_full = cu.fit(
        model, train, val, num_epochs=8, loss_fn=CE, optimizer=sgd(0.2), early_stopping=1, verbose=False
    )
    assert cu.evaluate(model, val, CE)["acc"] == pytest.approx(history_full.best("val_acc")["val_acc"])
    assert history_full.best_epoch == history.best_epoch


def test_early_stopping_without_patience_only_picks_the_best_epoch():
    train, val = digits_loaders()
    model = small_resnet()
    history = cu.fit(
        model, train, val, num_epochs=3, loss_fn=CE, optimizer=sgd(0.2), early_stopping="best", verbose=False
    )
    assert len(history) == 3 and not history.stopped_early
    assert history.best_epoch == history.best("val_acc")["epoch"]
    assert cu.evaluate(model, val, CE)["acc"] == pytest.approx(history.best("val_acc")["val_acc"])


def multitask_data(n=48, size=32):
    torch.manual_seed(0)
    digits = cu.data.digits_dataset(train=True)
    images = digits.images[:n]
    parity = digits.targets[:n] % 2  # a second task: odd or even
    dataset = cu.data.TensorImageDataset(
        images, digits.targets[:n], parity, transform=cu.data.image_transforms(size, from_tensor=True)
    )
    return DataLoader(dataset, batch_size=16, shuffle=True), DataLoader(dataset, batch_size=48)


def weighted(outputs, digit, parity):
    """A caller's multi-task loss: 2 x digit cross-entropy + 1 x parity cross-entropy."""
    return 2.0 * CE(outputs["digit"], digit) + 1.0 * CE(outputs["parity"], parity)


def test_multitask_weighted_loss_and_per_head_metrics():
    train, val = multitask_data()
    model = multitask_model("resnet18", {"digit": 10, "parity": 2}, pretrained=False)
    history = cu.fit(
        model,
        train,
        val,
        num_epochs=2,
        loss_fn=weighted,
        verbose=False,
        optimizer=lambda m: torch.optim.AdamW(cu.trainable_parameters(m), lr=0.05, weight_decay=1e-4),
    )
    record = history.last()
    for key in ("val_acc_digit", "val_acc_parity", "val_loss_digit", "val_loss_parity", "train_acc_digit"):
        assert key in record
    assert record["val_acc"] == pytest.approx((record["val_acc_digit"] + record["val_acc_parity"]) / 2)
    result = cu.evaluate(model, val, weighted)
    assert result["loss"] == pytest.approx(2 * result["loss_digit"] + result["loss_parity"], rel=1e-5)


def test_head_and_label_count_mismatch_is_explained():
    _, val = multitask_data()
    model = small_resnet()
    with pytest.raises(ValueError, match="1 head.*2 label tensor"):
        cu.evaluate(model, val, CE)


def test_predict_takes_the_batches_evaluate_takes():
    _, val = digits_loaders()
    model = small_resnet().train()
    labels, predicted, wrong = cu.train.predict(model, val, wrong_images=3)
    assert model.training  # the caller's mode, restored
    assert float((predicted == labels).float().mean()) == pytest.approx(cu.evaluate(model, val, CE)["acc"])
    assert len(wrong) == min(3, int((predicted != labels).sum())) and wrong.shape[1:] == (3, 32, 32)
    _, multitask_val = multitask_data()
    with pytest.raises(ValueError, match="1 head.*2 label tensor"):  # evaluate's own check
        cu.train.predict(model, multitask_val)
    two_heads = multitask_model("resnet18", {"digit": 10, "parity": 2}, pretrained=False)
    with pytest.raises(ValueError, match="single-head model; this one has heads digit, parity"):
        cu.train.predict(two_heads, multitask_val)
    empty = DataLoader(torch.utils.data.TensorDataset(torch.zeros(0, 3, 32, 32), torch.zeros(0, dtype=torch.long)))
    with pytest.raises(ValueError, match="no batches"):
        cu.train.predict(model, empty)


def _run(tmp_path, stop_after=None, resume=False):
    torch.manual_seed(123)
    model = small_resnet(seed=5)
    cu.freeze_until(model, "stem")
    train, val = digits_loaders()

    def cosine(optimizer, num_epochs):
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=num_epochs)

    history = cu.fit(
        model,
        train,
        val,
        num_epochs=4,
        loss_fn=CE,
        optimizer=sgd(0.05),
        scheduler=cosine,
        early_stopping=10,
        verbose=False,
        checkpoint=cu.Checkpoint(tmp_path / "ckpt.pt", resume=resume, stop_after_epoch=stop_after),
    )
    return model, history


def _without_time(history):
    return [{k: v for k, v in r.items() if k not in loop.TIMING_COLUMNS} for r in history.records]


@pytest.mark.parametrize("stop_after", [1, 2])
def test_interrupted_and_resumed_run_equals_uninterrupted_run(tmp_path, stop_after):
    full_model, full_history = _run(tmp_path / "a")
    _run(tmp_path / "b", stop_after=stop_after)
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
    checkpoints.save_checkpoint(path, {"format": checkpoints.CHECKPOINT_FORMAT, "epoch": 1})

    def crash(obj, f, *args, **kwargs):
        with open(f, "wb") as handle:
            handle.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        checkpoints.save_checkpoint(path, {"format": checkpoints.CHECKPOINT_FORMAT, "epoch": 2})
    monkeypatch.undo()
    assert checkpoints.load_checkpoint(path)["epoch"] == 1


def test_resume_with_other_settings_refuses(tmp_path):
    train, _ = digits_loaders()
    cu.fit(
        small_resnet(),
        train,
        num_epochs=2,
        loss_fn=CE,
        optimizer=sgd(0.01),
        checkpoint=cu.Checkpoint(tmp_path / "c.pt"),
        verbose=False,
    )
    with pytest.raises(ValueError, match="other settings"):
        cu.fit(
            small_resnet(),
            train,
            num_epochs=3,
            loss_fn=CE,
            optimizer=sgd(0.01),
            checkpoint=cu.Checkpoint(tmp_path / "c.pt", resume=True),
            verbose=False,
        )


@pytest.mark.parametrize(
    "call,message",
    [
        (
            lambda train: cu.fit(small_resnet(), train, num_epochs=0, loss_fn=CE, optimizer=sgd(0.1)),
            "num_epochs must be a positive integer",
        ),
        (
            lambda train: cu.fit(
                small_resnet(),
                train,
                num_epochs=2,
                loss_fn=CE,
                optimizer=lambda m: cu.train.make_optimizer("lbfgs", m.parameters(), lr=0.1),
            ),
            "'sgd', 'adam' or 'adamw'",
        ),
        (
            lambda train: cu.fit(small_resnet(), train, num_epochs=2, loss_fn=CE, optimizer=sgd(0.1), early_stopping=2),
            "needs a val_loader",
        ),
        (
            lambda train: cu.fit(small_resnet(), train, num_epochs=2, loss_fn=CE, optimizer=sgd(0.1), early_stopping=0),
            "patience must be a positive number",
        ),
        (
            lambda train: cu.fit(
                small_resnet(), train, num_epochs=2, loss_fn=CE, optimizer=sgd(0.1), early_stopping="last"
            ),
            "must be a patience in epochs",
        ),
    ],
)
def test_bad_arguments_raise(call, message):
    train, _ = digits_loaders()
    with pytest.raises(ValueError, match=message):
        call(train)


def test_everything_frozen_is_an_error_not_a_silent_no_op():
    train, _ = digits_loaders()
    model = small_resnet()
    for p in model.parameters():
        p.requires_grad = False
    with pytest.raises(ValueError, match="No trainable parameters"):
        cu.fit(model, train, num_epochs=1, loss_fn=CE, optimizer=sgd(0.1), verbose=False)


def test_seed_everything_makes_runs_repeatable():
    train, _ = digits_loaders()
    results = []
    for _ in range(2):
        cu.seed_everything(42)
        model = cu.build_model("resnet18", num_classes=10, pretrained=False)
        results.append(cu.fit(model, train, num_epochs=1, loss_fn=CE, optimizer=sgd(0.01), verbose=False)["train_loss"])
    assert results[0] == results[1]
    assert cu.default_device().type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_a_students_loss_and_optimizer_drive_fit():
    """fit uses exactly the loss and optimizer it is given (what the notebooks' exercises rely on)."""
    train, _ = digits_loaders()
    calls = {"loss": 0, "optimizer": 0}

    def counting_loss(logits, labels):
        calls["loss"] += 1
        return CE(logits, labels)

    def counting_optimizer(model):
        calls["optimizer"] += 1
        return torch.optim.SGD(cu.trainable_parameters(model), lr=0.01)

    cu.fit(small_resnet(), train, num_epochs=2, loss_fn=counting_loss, optimizer=counting_optimizer, verbose=False)
    assert calls == {"loss": 2 * len(train), "optimizer": 1}
    assert loop.train_one_epoch is cu.train_one_epoch


def test_a_shown_progress_bar_leaves_the_random_stream_alone(monkeypatch):
    # tqdm.auto's bar called iter() on the loader when built: a shuffling DataLoader then drew an
    # extra order from torch's generator, and a notebook with bars trained on other batches.
    monkeypatch.setenv("COURSE_PROGRESS", "auto")
    train, _ = digits_loaders(augment=False)
    torch.manual_seed(0)
    shown = [y for _, y in loop.progress(train, desc="shown", leave=False)]
    monkeypatch.setenv("COURSE_PROGRESS", "off")
    torch.manual_seed(0)
    hidden = [y for _, y in loop.progress(train, desc="hidden", leave=False)]
    assert all(torch.equal(a, b) for a, b in zip(shown, hidden)) and len(shown) == len(hidden)
