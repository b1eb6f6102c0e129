"""Training and evaluation: ``fit`` / ``evaluate``, per-epoch history, checkpoints and resume.

``fit`` records one row per epoch (never per batch): train/val loss and accuracy, the
learning rate, the seconds the epoch took and the training phase. It can

* warm up the new head with the backbone frozen, then unfreeze (seed 003);
* use differential or depth-tiered learning rates (``param_groups=``, see ``freezing``);
* anneal the learning rate with a cosine schedule (seed 002);
* stop early on a validation metric and restore the best weights (seed 002);
* train multi-task models with a weighted sum of per-head losses (seed 002);
* write a checkpoint after every epoch (atomically) and resume after an interruption;
* train on cached outputs of the frozen front of the network (``cache_features=True``,
  see ``feature_cache``): for ``last_only``/feature extraction the frozen backbone then
  runs once instead of once per epoch;
* on CUDA, use bf16 autocast, channels-last layout and optionally ``torch.compile``
  (see ``speedups``); on the CPU none of these is used, so CPU results do not change.

Accuracies are fractions in [0, 1]; plots and tables show them as percentages.

Example:
    >>> history = cu.fit(model, train_loader, val_loader, num_epochs=10, lr=1e-3)
    >>> history.best("val_acc")["epoch"]
"""
from __future__ import annotations

import copy
import os
import random
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..freezing import (
    _BATCHNORM,
    freeze_batchnorm_stats,
    freeze_groups,
    group_names,
    head_group_names,
    trainable_parameters,
)
from .features import CannotCacheError, cache_frozen_prefix
from .speedups import Speedups

CHECKPOINT_FORMAT = 1


# ----------------------------------------------------------------------------- setup helpers


def get_device(prefer: str | None = None) -> torch.device:
    """``prefer`` if given, else CUDA when present, else the CPU."""
    if prefer is not None:
        return torch.device(prefer)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's random generators (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


def progress(iterable: Iterable, **kwargs):
    """A tqdm progress bar: a widget in Jupyter, plain text on stderr when ``COURSE_PROGRESS=plain``.

    ``COURSE_PROGRESS=off`` hides bars entirely (grading, regression references).
    """
    mode = os.environ.get("COURSE_PROGRESS", "auto")
    # Text bars cannot redraw nested lines cleanly in a saved notebook: keep only the outer one.
    if mode == "off" or (mode == "plain" and kwargs.get("leave") is False):
        kwargs["disable"] = True
    if mode in ("plain", "off"):
        from tqdm import tqdm
    else:
        from tqdm.auto import tqdm
    return tqdm(iterable, **kwargs)


# ----------------------------------------------------------------------------- history


@dataclass
class History:
    """Per-epoch records of a training run.

    ``history.records`` is a list of dicts with ``epoch``, ``phase``, ``train_loss``,
    ``train_acc``, ``val_loss``, ``val_acc``, ``lr``, ``seconds`` (plus per-head keys such as
    ``val_acc_fruit`` for multi-task models). ``history["val_acc"]`` is that column.
    """

    records: list[dict] = field(default_factory=list)
    stopped_early: bool = False
    best_epoch: int | None = None

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, column: str) -> list:
        return [r.get(column) for r in self.records]

    @property
    def columns(self) -> list[str]:
        return list(self.records[0]) if self.records else []

    def best(self, metric: str = "val_acc", mode: str | None = None) -> dict:
        """The epoch record with the best ``metric`` (max for accuracies, min for losses)."""
        mode = mode or ("min" if "loss" in metric else "max")
        rows = [r for r in self.records if r.get(metric) is not None]
        if not rows:
            raise ValueError(f"No epoch recorded {metric!r}; recorded columns: {', '.join(self.columns)}.")
        pick = max if mode == "max" else min
        return pick(rows, key=lambda r: r[metric])

    def last(self) -> dict:
        return self.records[-1]

    def to_dict(self) -> dict:
        return {"records": self.records, "stopped_early": self.stopped_early, "best_epoch": self.best_epoch}

    @classmethod
    def from_dict(cls, data: dict) -> "History":
        return cls(records=list(data["records"]), stopped_early=data["stopped_early"], best_epoch=data["best_epoch"])


# ----------------------------------------------------------------------------- one pass over data


def _split_batch(batch) -> tuple[torch.Tensor, list[torch.Tensor]]:
    if isinstance(batch, dict):
        raise TypeError("Batches must be tuples (images, labels, ...), not dicts.")
    images, *targets = batch
    if not targets:
        raise ValueError("Each batch must carry labels: (images, labels) or (images, labels_task1, labels_task2, ...).")
    return images, targets


def _as_outputs(logits) -> dict[str, torch.Tensor]:
    return logits if isinstance(logits, dict) else {"": logits}


def _task_losses(outputs: dict[str, torch.Tensor], targets: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    if len(outputs) != len(targets):
        raise ValueError(
            f"The model has {len(outputs)} head(s) ({', '.join(outputs) or 'single'}) but batches carry "
            f"{len(targets)} label tensor(s); they must match, in the order of the heads."
        )
    return {task: F.cross_entropy(logits, y) for (task, logits), y in zip(outputs.items(), targets)}


def _weighted_total(losses: dict[str, torch.Tensor], loss_weights: dict[str, float] | None) -> torch.Tensor:
    if loss_weights is None:
        return sum(losses.values())
    unknown = set(loss_weights) - set(losses)
    if unknown:
        raise ValueError(f"loss_weights names unknown head(s) {sorted(unknown)}; heads are {sorted(losses)}.")
    return sum(loss_weights.get(task, 1.0) * loss for task, loss in losses.items())


class _Meter:
    """Sums of per-task losses and correct predictions over one pass.

    Sums stay on the device as tensors, so a GPU never waits for a ``.item()`` per batch.
    """

    def __init__(self):
        self.count = 0
        self.total_loss = 0.0
        self.loss: dict[str, torch.Tensor] = {}
        self.correct: dict[str, torch.Tensor] = {}

    def add(self, outputs, targets, losses, total) -> None:
        n = targets[0].shape[0]
        self.count += n
        self.total_loss = self.total_loss + total.detach() * n
        for (task, logits), y in zip(outputs.items(), targets):
            self.loss[task] = self.loss.get(task, 0.0) + losses[task].detach() * n
            self.correct[task] = self.correct.get(task, 0) + (logits.argmax(1) == y).sum()

    def result(self, prefix: str) -> dict[str, float]:
        if self.count == 0:
            raise ValueError("The data loader yielded no batches: is the dataset or subset empty?")
        accs = {task: float(c) / self.count for task, c in self.correct.items()}
        out = {f"{prefix}loss": float(self.total_loss) / self.count, f"{prefix}acc": float(np.mean(list(accs.values())))}
        if len(accs) > 1:
            for task in accs:
                out[f"{prefix}loss_{task}"] = float(self.loss[task]) / self.count
                out[f"{prefix}acc_{task}"] = accs[task]
        return out


@torch.no_grad()
def evaluate(model: nn.Module, loader, device=None, loss_weights: dict[str, float] | None = None,
             progress_bar: bool = False, mixed_precision: bool | None = None) -> dict[str, float]:
    """Mean loss and accuracy of ``model`` over ``loader`` (in eval mode).

    Args:
        model: single-task (logits ``(N, C)``) or multi-task (``{task: logits}``).
        loader: yields ``(images (N, 3, H, W), labels (N,) [, labels_task2 (N,), ...])``.
        loss_weights: multi-task weighting of the reported total loss.
        mixed_precision: bf16 autocast; default on for CUDA, never on the CPU.

    Returns:
        ``{"loss": float, "acc": float}``; multi-task adds ``loss_<task>`` and ``acc_<task>``,
        and ``acc`` is the mean of the heads' accuracies.

    Example:
        >>> cu.evaluate(model, test_loader)["acc"]
    """
    device = get_device(device) if not isinstance(device, torch.device) else device
    # The model's own layout is left alone here; only the batches' is adapted.
    speed = Speedups.for_device(device, mixed_precision=mixed_precision, channels_last=False)
    return _evaluate(model, loader, loss_weights, speed, progress_bar)


@torch.no_grad()
def _evaluate(model: nn.Module, loader, loss_weights, speed: Speedups, progress_bar: bool = False) -> dict[str, float]:
    was_training = model.training
    model.eval()
    meter = _Meter()
    with speed.autotune():
        for batch in progress(loader, desc="eval", leave=False, disable=not progress_bar):
            images, targets = _split_batch(batch)
            images, *targets = speed.to_device([images, *targets])
            with speed.autocast():
                outputs = _as_outputs(model(images))
                losses = _task_losses(outputs, targets)
            meter.add(outputs, targets, losses, _weighted_total(losses, loss_weights))
    model.train(was_training)
    return meter.result(prefix="")


def _train_one_epoch(model, loader, optimizer, loss_weights, desc, speed: Speedups) -> dict[str, float]:
    model.train()
    meter = _Meter()
    with speed.autotune():
        for batch in progress(loader, desc=desc, leave=False):
            images, targets = _split_batch(batch)
            images, *targets = speed.to_device([images, *targets])
            with speed.autocast():
                outputs = _as_outputs(model(images))
                losses = _task_losses(outputs, targets)
                total = _weighted_total(losses, loss_weights)
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            optimizer.step()
            meter.add(outputs, targets, losses, total)
    return meter.result(prefix="train_")


def _what_to_run(model, train_loader, val_loader, cache_features: bool, speed: Speedups, verbose: bool, label: str):
    """The networks and loaders of each epoch: ``(train_net, val_net, train_loader, val_loader)``.

    Normally the model itself on the given loaders. With ``cache_features`` the model's
    trainable suffix on cached outputs of its frozen front (see ``feature_cache``); when
    the model has no frozen front to cache, a warning says why and the model trains whole.
    """
    train_net, val_net = model, model
    if cache_features:
        try:
            cache = cache_frozen_prefix(model, train_loader, val_loader, device=speed.device,
                                        autocast=speed.autocast)
        except CannotCacheError as reason:
            warnings.warn(f"cache_features=True: {reason}. Training the whole model every epoch instead.",
                          stacklevel=3)
        else:
            if verbose:
                print(f"{label}{cache.describe()}")
            train_net, val_net = cache.suffix, cache.val_model
            train_loader, val_loader = cache.train_loader, cache.val_loader
    compiled = speed.compiled(train_net)
    val_net = compiled if val_net is train_net else speed.compiled(val_net)
    return compiled, val_net, train_loader, val_loader


# ----------------------------------------------------------------------------- optimizers


def make_optimizer(name: str, groups: list[dict], lr: float, momentum: float = 0.9, weight_decay: float = 0.0):
    """``sgd`` (with momentum, seed 001), ``adam`` or ``adamw`` (seed 002) over parameter groups."""
    if not groups or not any(g["params"] for g in groups):
        raise ValueError("No trainable parameters: every layer is frozen. Unfreeze at least the head.")
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"Unknown optimizer {name!r}. Choose 'sgd', 'adam' or 'adamw'.")


def _make_schedule(schedule: str | None, optimizer, epochs: int, min_lr: float):
    if schedule is None or schedule == "constant":
        return None
    if schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(epochs, 1), eta_min=min_lr)
    raise ValueError(f"Unknown schedule {schedule!r}. Choose None/'constant' or 'cosine'.")


# ----------------------------------------------------------------------------- checkpoints


def _rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | os.PathLike, payload: dict) -> None:
    """Write ``payload`` with ``torch.save`` to a temporary file, then rename it over ``path``.

    A crash mid-write leaves the previous checkpoint intact.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint written by ``fit`` (trusted files only: it holds RNG states)."""
    payload = torch.load(path, map_location="cpu", weights_only=False)
    if payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a course_utils training checkpoint (format {payload.get('format')}).")
    return payload


# ----------------------------------------------------------------------------- fit


class _Freezer:
    """Remembers the caller's trainable parameters and pinned BatchNorms to restore after warm-up."""

    def __init__(self, model: nn.Module):
        self.flags = [(p, p.requires_grad) for p in model.parameters()]
        self.pinned = [m for m in model.modules() if isinstance(m, _BATCHNORM) and "_course_bn_hook" in m.__dict__]
        self.model = model

    def restore(self) -> None:
        freeze_batchnorm_stats(self.model, frozen=False)
        for p, flag in self.flags:
            p.requires_grad = flag
        for m in self.pinned:
            freeze_batchnorm_stats(m, frozen=True)


def fit(
    model: nn.Module,
    train_loader,
    val_loader=None,
    *,
    num_epochs: int,
    lr: float = 1e-3,
    optimizer: str = "sgd",
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    param_groups: Callable[[nn.Module], list[dict]] | None = None,
    schedule: str | None = None,
    min_lr: float = 0.0,
    warmup_epochs: int = 0,
    loss_weights: dict[str, float] | None = None,
    early_stopping_patience: int | None = None,
    monitor: str | None = None,
    restore_best: bool | None = None,
    checkpoint_path: str | os.PathLike | None = None,
    resume: bool = False,
    stop_after_epoch: int | None = None,
    device=None,
    verbose: bool = True,
    description: str = "",
    cache_features: bool = False,
    mixed_precision: bool | None = None,
    channels_last: bool | None = None,
    compile_model: bool = False,
) -> History:
    """Train ``model`` for ``num_epochs`` epochs and return the per-epoch ``History``.

    Args:
        model: from ``build_model``/``build_multitask_model``, already frozen as wanted.
        train_loader: yields ``(images (N, 3, H, W), labels (N,) [, more label tensors])``.
        val_loader: same format; evaluated after every epoch when given.
        num_epochs: total epochs, warm-up included.
        lr: learning rate of every group that does not set its own.
        optimizer: ``"sgd"`` (momentum ``momentum``, seed 001), ``"adam"`` or ``"adamw"`` (seed 002).
        weight_decay: weight decay of the optimizer.
        param_groups: ``model -> [{"params": [...], "lr": ...}, ...]`` such as
            ``lambda m: cu.backbone_head_param_groups(m, 1e-4, 1e-3)``; default: all
            trainable parameters at ``lr``. Frozen parameters never enter the optimizer.
        schedule: ``None`` (constant) or ``"cosine"`` (to ``min_lr`` over the run, per epoch).
        warmup_epochs: first train only the head for this many epochs (backbone frozen,
            BatchNorm statistics kept), then restore the model's own freezing and rebuild
            the optimizer and schedule (seed 003's warm-up then unfreeze).
        loss_weights: multi-task: ``{head: weight}``, e.g. ``{"fruit": 2.0, "freshness": 1.0}``.
        early_stopping_patience: stop after this many epochs without improving ``monitor``.
        monitor: metric for early stopping and best-state selection; default ``val_acc``
            (the mean over heads for multi-task models, as seed 002 does), or ``train_acc``
            when there is no ``val_loader``.
        restore_best: load the weights of the best ``monitor`` epoch at the end; default:
            on whenever there is a ``val_loader``.
        checkpoint_path: write a checkpoint here after every epoch.
        resume: continue from ``checkpoint_path`` if it exists (same settings required).
        stop_after_epoch: end the call after this epoch, as an interruption would (for
            splitting long runs and for tests of resume).
        device: default CUDA if available, else CPU.
        verbose: print one line per epoch.
        description: label for progress bars and printed lines.
        cache_features: run the frozen front of the model once and train the rest on its
            cached outputs (``last_only``, ``freeze_until``...; see ``feature_cache``). Needs
            a training loader without augmentation; same results within float rounding.
        mixed_precision: bf16 autocast; default on for CUDA (off on the CPU, where ``True`` is an error).
        channels_last: NHWC layout of model and batches; default on for CUDA only.
        compile_model: ``torch.compile`` the network (CUDA only; the first epoch compiles).

    Returns:
        ``History`` (``history.best_epoch`` is the restored epoch when ``restore_best``).
    """
    if not isinstance(num_epochs, int) or num_epochs < 1:
        raise ValueError(f"num_epochs must be a positive integer, got {num_epochs!r}.")
    if not 0 <= warmup_epochs < num_epochs:
        raise ValueError(f"warmup_epochs must be in [0, num_epochs), got {warmup_epochs} of {num_epochs}.")
    if early_stopping_patience is not None and val_loader is None and (monitor or "val").startswith("val"):
        raise ValueError("Early stopping needs a val_loader (or an explicit monitor such as 'train_loss').")
    monitor = monitor or ("val_acc" if val_loader is not None else "train_acc")
    if resume and checkpoint_path is None:
        raise ValueError("resume=True needs checkpoint_path.")
    restore_best = (val_loader is not None) if restore_best is None else restore_best
    device = get_device(device) if not isinstance(device, torch.device) else device
    speed = Speedups.for_device(device, mixed_precision, channels_last, compile_model)
    model.to(device)
    speed.prepare_model(model)
    make_groups = param_groups or (lambda m: [{"params": trainable_parameters(m)}])
    settings = {"num_epochs": num_epochs, "warmup_epochs": warmup_epochs, "optimizer": optimizer,
                "lr": lr, "schedule": schedule, "monitor": monitor}

    freezer = _Freezer(model)
    head = head_group_names(model)

    def enter_phase(phase: str):
        if phase == "warmup":
            freeze_groups(model, [g for g in group_names(model) if g not in head])
            phase_epochs = warmup_epochs
        else:
            freezer.restore()
            phase_epochs = num_epochs - warmup_epochs
        opt = make_optimizer(optimizer, make_groups(model), lr, momentum, weight_decay)
        return opt, _make_schedule(schedule, opt, phase_epochs, min_lr)

    history, tracker, start_epoch = History(), _BestTracker(monitor, restore_best), 0
    checkpoint = None
    if resume and Path(checkpoint_path).exists():
        checkpoint = load_checkpoint(checkpoint_path)
        if checkpoint["settings"] != settings:
            raise ValueError(
                f"Checkpoint {checkpoint_path} was written with other settings {checkpoint['settings']}; "
                f"now {settings}. Use another checkpoint_path or resume=False to start over."
            )
        start_epoch = checkpoint["epoch"]
        history = History.from_dict(checkpoint["history"])
        tracker.load_state_dict(checkpoint["tracker"])

    label = f"{description} " if description else ""
    # A resumed run continues in the phase its checkpoint was written in; the switch to
    # fine-tuning then happens at the same epoch boundary as in an uninterrupted run.
    phase = checkpoint["phase"] if checkpoint is not None else ("warmup" if warmup_epochs else "finetune")
    finished = checkpoint is not None and checkpoint["finished"]
    try:
        if checkpoint is not None:
            # Weights before the feature cache: it must hold what the checkpoint's frozen layers compute.
            model.load_state_dict(checkpoint["model"])
        # Decided with the caller's freezing, before a warm-up freezes more.
        train_net, val_net, train_data, val_data = _what_to_run(
            model, train_loader, val_loader, cache_features and not finished, speed, verbose, label)
        opt, scheduler = enter_phase(phase)
        if checkpoint is not None:
            opt.load_state_dict(checkpoint["optimizer"])
            if scheduler is not None:
                scheduler.load_state_dict(checkpoint["scheduler"])
            _set_rng_state(checkpoint["rng"])
        epochs = range(start_epoch, num_epochs) if not finished else range(0)
        for epoch in progress(epochs, desc=f"{label}epochs", initial=start_epoch, total=num_epochs):
            if epoch == warmup_epochs and phase == "warmup":
                phase = "finetune"
                opt, scheduler = enter_phase(phase)
            started = time.perf_counter()
            record = {"epoch": epoch + 1, "phase": phase, "lr": max(g["lr"] for g in opt.param_groups)}
            record.update(_train_one_epoch(train_net, train_data, opt, loss_weights,
                                           desc=f"{label}epoch {epoch + 1}/{num_epochs}", speed=speed))
            if val_data is not None:
                record.update({f"val_{k}": v for k, v in _evaluate(val_net, val_data, loss_weights, speed).items()})
            if scheduler is not None:
                scheduler.step()
            record["seconds"] = time.perf_counter() - started
            history.records.append(record)
            if tracker.update(record, model):
                history.best_epoch = epoch + 1
            if verbose:
                print(_format_record(record, label))

            # Running out of patience in the last epoch is not stopping early.
            history.stopped_early = (early_stopping_patience is not None and epoch + 1 < num_epochs
                                     and tracker.bad_epochs >= early_stopping_patience)
            finished = history.stopped_early or epoch + 1 == num_epochs
            if checkpoint_path is not None:
                save_checkpoint(checkpoint_path, {
                    "format": CHECKPOINT_FORMAT, "settings": settings, "epoch": epoch + 1, "finished": finished,
                    "phase": phase,
                    "model": model.state_dict(), "optimizer": opt.state_dict(),
                    "scheduler": scheduler.state_dict() if scheduler is not None else None,
                    "history": history.to_dict(), "tracker": tracker.state_dict(), "rng": _rng_state(),
                })
            if history.stopped_early and verbose:
                print(f"{label}early stop: no {monitor} improvement for {tracker.bad_epochs} epochs "
                      f"(best {tracker.best_value:.4f} at epoch {history.best_epoch})")
            if finished or (stop_after_epoch is not None and epoch + 1 >= stop_after_epoch):
                break
    finally:
        # Whatever happens (warm-up, interruption, an exception), hand the model back frozen
        # the way the caller froze it.
        freezer.restore()
    if finished and tracker.best_state is not None:
        model.load_state_dict(tracker.best_state)
    return history


class _BestTracker:
    """Follows the monitored metric: best value, epochs without improvement, best weights."""

    def __init__(self, monitor: str, keep_state: bool):
        self.monitor, self.keep_state = monitor, keep_state
        self.mode = "min" if "loss" in monitor else "max"
        self.best_value, self.bad_epochs, self.best_state = None, 0, None

    def update(self, record: dict, model: nn.Module) -> bool:
        value = record.get(self.monitor)
        if value is None:
            raise ValueError(f"monitor={self.monitor!r} is not recorded; choose one of {', '.join(record)}.")
        if self.best_value is not None and (value <= self.best_value if self.mode == "max" else value >= self.best_value):
            self.bad_epochs += 1
            return False
        self.best_value, self.bad_epochs = value, 0
        if self.keep_state:
            self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        return True

    def state_dict(self) -> dict:
        return {"best_value": self.best_value, "bad_epochs": self.bad_epochs, "best_state": self.best_state}

    def load_state_dict(self, state: dict) -> None:
        self.best_value, self.bad_epochs, self.best_state = state["best_value"], state["bad_epochs"], state["best_state"]


def _format_record(record: dict, label: str) -> str:
    parts = [f"{label}epoch {record['epoch']:>2}"]
    if record["phase"] == "warmup":
        parts[0] += " (head warm-up)"
    parts.append(f"train loss {record['train_loss']:.4f} acc {100 * record['train_acc']:.2f}%")
    if "val_loss" in record:
        parts.append(f"val loss {record['val_loss']:.4f} acc {100 * record['val_acc']:.2f}%")
    parts.append(f"lr {record['lr']:.2e}")
    parts.append(f"{record['seconds']:.1f}s")
    return " | ".join(parts)


def copy_model(model: nn.Module) -> nn.Module:
    """A deep copy (weights, frozen flags and pinned BatchNorms included)."""
    return copy.deepcopy(model)
