"""Training from pieces a notebook can show: one epoch, one evaluation pass, and ``fit`` looping over them.

The shape is that of torchvision's reference scripts. ``train_one_epoch`` and ``evaluate``
are plain functions of a model, a loader and the caller's loss function (and optimizer),
and ``fit`` is a short loop over them that records one row per epoch, never per batch:
train and validation loss and accuracy, the learning rate and the seconds the epoch took.
A warm-up of the new head followed by fine-tuning is two calls of ``fit`` that the
notebook writes itself (notebook 03), joined with ``History.then``.

What ``fit`` takes from the caller:

* ``loss_fn(outputs, *labels)``: the batch-mean loss, e.g. ``nn.CrossEntropyLoss()``, or a
  weighted sum of per-head losses for a multi-task model;
* ``optimizer``: an optimizer, or a function ``model -> optimizer`` (called when training
  starts, so it sees the model's freezing at that moment);
* ``scheduler``: optional ``(optimizer, num_epochs) -> scheduler``, stepped once per epoch;
* ``early_stopping``: a patience in epochs, ``"best"`` (never stop, keep the best epoch), or an
  object with the same rule (notebook 02's students write one): the best epoch's weights come back.

Accuracies are fractions in [0, 1]; plots and tables show them as percentages.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from torch.utils.data import DataLoader, TensorDataset
    >>> _ = torch.manual_seed(0)
    >>> data = TensorDataset(torch.randn(64, 8), torch.randint(0, 2, (64,)))
    >>> model = nn.Linear(8, 2)
    >>> history = fit(model, DataLoader(data, batch_size=16), num_epochs=3, loss_fn=nn.CrossEntropyLoss(),
    ...               optimizer=lambda m: torch.optim.SGD(m.parameters(), lr=0.1), verbose=False)
    >>> history["epoch"], sorted(history.columns)[:4]
    ([1, 2, 3], ['cpu_seconds', 'epoch', 'lr', 'seconds'])
"""

from __future__ import annotations

import contextlib
import os
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import TqdmExperimentalWarning

from .._util import default_device
from ..freezing import trainable_parameters
from .checkpoint import Checkpoint, rng_state, set_rng_state
from .features import cached_networks
from .speedups import Speedups

LossFn = Callable[..., torch.Tensor]


def progress(iterable: Iterable, **kwargs):
    """A tqdm progress bar: a widget in Jupyter, plain text on stderr when ``COURSE_PROGRESS=plain``.

    ``COURSE_PROGRESS=off`` hides bars entirely (grading, regression references).
    Whether a bar shows never changes the numbers: the bar iterates ``iterable`` exactly once.
    """
    mode = os.environ.get("COURSE_PROGRESS", "auto")
    # Text bars cannot redraw nested lines cleanly in a saved notebook: keep only the outer one.
    if mode == "off" or (mode == "plain" and kwargs.get("leave") is False):
        kwargs["disable"] = True
    if mode in ("plain", "off"):
        from tqdm import tqdm
    else:
        # Not tqdm.auto: its asyncio bar calls iter() on the iterable when built, and a shuffling
        # DataLoader draws its order from torch's generator at each iter(), so a shown bar changed
        # the batches (and every number after them) against a hidden one.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=TqdmExperimentalWarning)
            from tqdm.autonotebook import tqdm
    return tqdm(iterable, **kwargs)


# ----------------------------------------------------------------------------- history

# A fit record's timing columns. On a CPU, another program on the machine stretches the wall
# clock of an epoch (``seconds``) by as much as it takes of the cores; the epoch's CPU time
# (``cpu_seconds``: ``time.process_time``, all threads) grows far less, since a thread that
# is not running is not counted. On a GPU the CPU time says nothing about the GPU's work.
TIMING_COLUMNS = ("seconds", "cpu_seconds")


@dataclass
class History:
    """Per-epoch records of a training run.

    ``history.records`` is a list of dicts with ``epoch``, ``train_loss``, ``train_acc``,
    ``val_loss``, ``val_acc``, ``lr``, ``seconds`` (wall clock) and ``cpu_seconds`` (the CPU
    time of this process, all its threads; plus per-head keys such as ``val_acc_fruit`` for
    multi-task models); ``history["val_acc"]`` is one column. The two timing columns
    (``TIMING_COLUMNS``) are the only ones that differ between two runs of the same settings.

    Example:
        >>> history = History([{"epoch": 1, "val_acc": 0.5}, {"epoch": 2, "val_acc": 0.75}])
        >>> history["val_acc"], history.best("val_acc")["epoch"]
        ([0.5, 0.75], 2)
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
        """The epoch record with the best ``metric`` (max for accuracies, min for losses; ties: the earlier)."""
        mode = mode or ("min" if "loss" in metric else "max")
        rows = [r for r in self.records if r.get(metric) is not None]
        if not rows:
            raise ValueError(f"No epoch recorded {metric!r}; recorded columns: {', '.join(self.columns)}.")
        pick = max if mode == "max" else min
        return pick(rows, key=lambda r: r[metric])

    def last(self) -> dict:
        return self.records[-1]

    def then(self, later: History) -> History:
        """This history followed by ``later`` (a following phase), its epochs numbered on from here."""
        offset = len(self.records)
        moved = [{**r, "epoch": r["epoch"] + offset} for r in later.records]
        best = later.best_epoch + offset if later.best_epoch is not None else self.best_epoch
        return History(self.records + moved, stopped_early=later.stopped_early, best_epoch=best)

    def to_dict(self) -> dict:
        return {"records": self.records, "stopped_early": self.stopped_early, "best_epoch": self.best_epoch}

    @classmethod
    def from_dict(cls, data: dict) -> History:
        return cls(records=list(data["records"]), stopped_early=data["stopped_early"], best_epoch=data["best_epoch"])


class _EarlyStopping:
    """Follow ``monitor`` every epoch: keep the best epoch's weights, and stop after ``patience`` bad epochs.

    What ``fit(early_stopping=...)`` builds from a patience or ``"best"``; notebook 02's students
    write the same rule themselves. ``fit`` loads the best epoch's weights back when training
    ends (stopped early or not). With ``patience=None`` it never stops: it only picks the best epoch.

    Args:
        patience: epochs without improvement before stopping (the multi-task fruit article: 8).
        monitor: the record column to follow, e.g. ``"val_acc"`` (the mean over heads for
            multi-task models) or ``"val_loss"`` (lower is better for losses).

    Example:
        >>> stopper = _EarlyStopping(patience=1)
        >>> model = nn.Linear(2, 2)
        >>> [stopper.update({"epoch": e, "val_acc": a}, model) for e, a in [(1, 0.5), (2, 0.7), (3, 0.6)]]
        [False, False, True]
        >>> stopper.best_epoch, stopper.best_value
        (2, 0.7)
    """

    def __init__(self, patience: int | None = None, monitor: str = "val_acc"):
        if patience is not None and (not isinstance(patience, int) or patience < 1):
            raise ValueError(f"patience must be a positive number of epochs or None, got {patience!r}.")
        self.patience, self.monitor = patience, monitor
        self.mode = "min" if "loss" in monitor else "max"
        self.best_value, self.best_epoch, self.bad_epochs, self.best_state = None, None, 0, None

    def update(self, record: dict, model: nn.Module) -> bool:
        """Take one epoch's record; True when training should stop now."""
        value = record.get(self.monitor)
        if value is None:
            raise ValueError(
                f"early stopping monitors {self.monitor!r}, which this run does not record; "
                f"choose one of {', '.join(record)}."
            )
        improved = self.best_value is None or (
            value > self.best_value if self.mode == "max" else value < self.best_value
        )
        if improved:
            self.best_value, self.best_epoch, self.bad_epochs = value, record["epoch"], 0
            self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        else:
            self.bad_epochs += 1
        return self.patience is not None and self.bad_epochs >= self.patience

    def restore_best(self, model: nn.Module) -> None:
        """Load the best epoch's weights into ``model``."""
        if self.best_state is not None:
            model.load_state_dict(self.best_state)

    def state_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("best_value", "best_epoch", "bad_epochs", "best_state")}

    def load_state_dict(self, state: dict) -> None:
        for key, value in state.items():
            setattr(self, key, value)


# ----------------------------------------------------------------------------- one pass over the data


def _as_outputs(outputs) -> dict[str, torch.Tensor]:
    return outputs if isinstance(outputs, dict) else {"": outputs}


class _Meter:
    """Sums over one pass: loss, correct predictions, and each head's own cross-entropy.

    Sums stay on the device as tensors, so a GPU never waits for a ``.item()`` per batch.
    """

    def __init__(self):
        self.count, self.loss = 0, 0.0
        self.correct: dict[str, torch.Tensor] = {}
        self.head_loss: dict[str, torch.Tensor] = {}

    @staticmethod
    def check(outputs: dict, labels: list) -> None:
        if len(outputs) != len(labels):
            raise ValueError(
                f"The model has {len(outputs)} head(s) ({', '.join(outputs) or 'single'}) but batches carry "
                f"{len(labels)} label tensor(s); they must match, in the order of the heads."
            )

    @torch.no_grad()
    def add(self, outputs: dict, labels: list, loss: torch.Tensor) -> None:
        n = labels[0].shape[0]
        self.count += n
        self.loss = self.loss + loss.detach().float() * n
        for (task, logits), y in zip(outputs.items(), labels):
            self.correct[task] = self.correct.get(task, 0) + (logits.argmax(1) == y).sum()
            if len(outputs) > 1:  # each head's own, unweighted cross-entropy, for per-head curves
                self.head_loss[task] = self.head_loss.get(task, 0.0) + F.cross_entropy(logits.float(), y) * n

    def result(self) -> dict[str, float]:
        if self.count == 0:
            raise ValueError("The data loader yielded no batches: is the dataset or subset empty?")
        accs = {task: float(c) / self.count for task, c in self.correct.items()}
        out = {"loss": float(self.loss) / self.count, "acc": sum(accs.values()) / len(accs)}
        for task in self.head_loss:
            out[f"loss_{task}"] = float(self.head_loss[task]) / self.count
            out[f"acc_{task}"] = accs[task]
        return out


def _batches(loader, speed: Speedups, description: str, show: bool = True):
    """``(images, [labels...])`` on the device, for every batch of ``loader``."""
    for batch in progress(loader, desc=description, leave=False, disable=not show):
        if isinstance(batch, dict):
            raise TypeError("Batches must be tuples (images, labels, ...), not dicts.")
        images, *labels = speed.to_device(list(batch))
        if not labels:
            raise ValueError("Each batch must carry labels: (images, labels) or (images, labels_task1, ...).")
        yield images, labels


def _forward(model: nn.Module, images, labels: list, loss_fn: LossFn | None, speed: Speedups):
    """``(outputs {head: logits}, batch-mean loss)`` of one batch: the step training, evaluation and prediction share.

    The loss is ``None`` when no ``loss_fn`` is given (prediction). Gradients are recorded or
    not as the caller decides (``evaluate`` and ``predict`` run under ``torch.no_grad``).
    """
    with speed.autocast():
        logits = model(images)
        outputs = _as_outputs(logits)
        _Meter.check(outputs, labels)
        loss = loss_fn(logits, *labels) if loss_fn is not None else None
    return outputs, loss


@contextlib.contextmanager
def _evaluation_mode(model: nn.Module):
    """``model.eval()`` inside the block; the model's own mode (training or not) afterwards, also after an error."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _speedups_for(model: nn.Module, speedups: Speedups | None) -> Speedups:
    if speedups is not None:
        return speedups
    parameter = next(model.parameters(), None)
    return Speedups.for_device(parameter.device if parameter is not None else torch.device("cpu"))


def train_one_epoch(
    model: nn.Module,
    loader,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    *,
    speedups: Speedups | None = None,
    description: str = "train",
) -> dict[str, float]:
    """One pass over ``loader`` in training mode: forward, loss, backward, optimizer step.

    Batches are moved to the device the model is on.

    Args:
        model: returns logits ``(N, C)``, or ``{task: logits (N, C_task)}`` for a multi-task model.
        loader: yields ``(images (N, 3, H, W), labels (N,) [, labels_task2 (N,), ...])``.
        optimizer: steps the model's trainable parameters.
        loss_fn: ``loss_fn(outputs, *labels) -> scalar``, the batch mean (``nn.CrossEntropyLoss()``).
        speedups: bf16, channels-last (``Speedups``; default: those of the model's device, none on the CPU).
        description: label of the progress bar.

    Returns:
        ``{"loss", "acc"}`` averaged over the images; multi-task models add ``acc_<task>`` and
        ``loss_<task>`` (that head's own cross-entropy), and ``acc`` is the mean over heads.

    Example:
        >>> from torch.utils.data import DataLoader, TensorDataset
        >>> model = nn.Linear(4, 3)
        >>> loader = DataLoader(TensorDataset(torch.randn(12, 4), torch.randint(0, 3, (12,))), batch_size=4)
        >>> metrics = train_one_epoch(model, loader, torch.optim.SGD(model.parameters(), lr=0.1),
        ...                           nn.CrossEntropyLoss())
        >>> sorted(metrics)
        ['acc', 'loss']
    """
    speed = _speedups_for(model, speedups)
    model.train()
    meter = _Meter()
    with speed.autotune():
        for images, labels in _batches(loader, speed, description):
            outputs, loss = _forward(model, images, labels, loss_fn, speed)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            meter.add(outputs, labels, loss)
    return meter.result()


@torch.no_grad()
def evaluate(
    model: nn.Module, loader, loss_fn: LossFn, *, speedups: Speedups | None = None, progress_bar: bool = False
) -> dict[str, float]:
    """Mean loss and accuracy over ``loader`` in evaluation mode (``model.eval()``, no gradients).

    The model's own mode (training or not) is restored afterwards. Arguments and result as
    for ``train_one_epoch``.

    Example:
        >>> from torch.utils.data import DataLoader, TensorDataset
        >>> loader = DataLoader(TensorDataset(torch.randn(8, 4), torch.zeros(8, dtype=torch.long)), batch_size=4)
        >>> evaluate(nn.Linear(4, 3), loader, nn.CrossEntropyLoss())["acc"] <= 1.0
        True
    """
    speed = _speedups_for(model, speedups)
    meter = _Meter()
    with _evaluation_mode(model), speed.autotune():
        for images, labels in _batches(loader, speed, "eval", show=progress_bar):
            outputs, loss = _forward(model, images, labels, loss_fn, speed)
            meter.add(outputs, labels, loss)
    return meter.result()


@torch.no_grad()
def predict(model: nn.Module, loader, wrong_images: int = 0, *, speedups: Speedups | None = None):
    """True and predicted classes over ``loader`` in evaluation mode, and the first misclassified images.

    The library's version of the evaluation pass notebook 01 writes, for confusion matrices
    and grids of mistakes. The model's own mode is restored afterwards.

    Args:
        model: returns logits ``(N, C)``.
        loader: yields ``(images (N, 3, H, W), labels (N,))``, in a fixed order (no shuffling).
        wrong_images: how many misclassified images to keep, in loader order.
        speedups: as for ``evaluate`` (batches go to the model's device the same way).

    Returns:
        ``(labels (M,), predicted (M,), wrong (K, 3, H, W))`` on the CPU, ``K <= wrong_images``.

    Example:
        >>> from torch.utils.data import DataLoader, TensorDataset
        >>> loader = DataLoader(TensorDataset(torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2])), batch_size=4)
        >>> labels, predicted, wrong = predict(nn.Linear(4, 3), loader, wrong_images=2)
        >>> labels.shape, predicted.shape, len(wrong) <= 2
        (torch.Size([6]), torch.Size([6]), True)
    """
    speed = _speedups_for(model, speedups)
    labels, predicted, wrong = [], [], []
    kept = 0
    with _evaluation_mode(model), speed.autotune():
        for images, batch_labels in _batches(loader, speed, "predict", show=False):
            outputs, _ = _forward(model, images, batch_labels, None, speed)
            if len(outputs) > 1:
                raise ValueError(
                    f"predict takes a single-head model; this one has heads {', '.join(outputs)}. "
                    "Predict with a model that returns one head's logits."
                )
            guess, truth = outputs[""].argmax(dim=1), batch_labels[0]
            labels.append(truth.cpu())
            predicted.append(guess.cpu())
            if kept < wrong_images:
                mistakes = images[guess != truth][: wrong_images - kept].cpu()
                wrong.append(mistakes)
                kept += len(mistakes)
    if not labels:
        raise ValueError("The data loader yielded no batches: is the dataset or subset empty?")
    empty = torch.empty(0, *images.shape[1:])
    return torch.cat(labels), torch.cat(predicted), torch.cat(wrong) if wrong else empty


# ----------------------------------------------------------------------------- optimizers


def make_optimizer(name: str, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0):
    """An optimizer by name: ``sgd`` (with momentum, the COMP5541 notebook), ``adam`` or ``adamw``.

    Args:
        name: ``"sgd"``, ``"adam"`` or ``"adamw"`` (profiles name their optimizer this way).
        params: parameters or parameter groups (``[{"params": [...], "lr": ...}, ...]``).
        lr: learning rate of every group that does not set its own.

    Example:
        >>> type(make_optimizer("adamw", nn.Linear(2, 2).parameters(), lr=1e-4, weight_decay=1e-4)).__name__
        'AdamW'
    """
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"Unknown optimizer {name!r}. Choose 'sgd', 'adam' or 'adamw'.")


def _build_optimizer(optimizer, model: nn.Module) -> torch.optim.Optimizer:
    if not trainable_parameters(model):
        raise ValueError("No trainable parameters: every layer is frozen. Unfreeze at least the head.")
    built = optimizer if isinstance(optimizer, torch.optim.Optimizer) else optimizer(model)
    if not isinstance(built, torch.optim.Optimizer):
        raise TypeError(
            f"optimizer must be a torch optimizer or a function model -> optimizer; it gave a {type(built).__name__}."
        )
    return built


# ----------------------------------------------------------------------------- fit


def fit(
    model: nn.Module,
    train_loader,
    val_loader=None,
    *,
    num_epochs: int,
    loss_fn: LossFn,
    optimizer,
    scheduler=None,
    early_stopping=None,
    checkpoint: Checkpoint | None = None,
    cache_features: bool = False,
    device=None,
    speedups: Speedups | None = None,
    verbose: bool = True,
    description: str = "",
) -> History:
    """Train ``model`` for ``num_epochs`` epochs: ``train_one_epoch``, then ``evaluate`` on ``val_loader``.

    Args:
        model: frozen as wanted already (frozen parameters never reach the optimizer if the
            optimizer function takes ``trainable_parameters(model)``).
        train_loader, val_loader: as for ``train_one_epoch``; ``val_loader`` is optional.
        num_epochs: epochs to train.
        loss_fn: ``loss_fn(outputs, *labels) -> scalar`` (see ``train_one_epoch``).
        optimizer: an optimizer, or ``model -> optimizer``.
        scheduler: optional ``(optimizer, num_epochs) -> lr scheduler``, stepped after every epoch.
        early_stopping: a patience (epochs without a better ``val_acc`` before stopping), ``"best"``
            (never stop, keep the best ``val_acc`` epoch), or an object with ``monitor`` (a record
            column), ``update(record, model) -> stop?``, ``restore_best(model)`` and ``best_epoch``.
            The best epoch's weights are loaded at the end.
        checkpoint: a ``Checkpoint`` written after every epoch (and resumed from).
        cache_features: run the frozen front of the model once and train the rest on its
            outputs (shortcut for ``extract_features``; needs loaders without augmentation).
        device: default CUDA if available, else the CPU; the model is moved there.
        speedups: bf16, channels-last, ``torch.compile`` (``Speedups``); default: on for CUDA, off on the CPU.
        verbose: print one line per epoch.
        description: label for progress bars and printed lines.

    Returns:
        ``History``; ``history.best_epoch`` is the restored epoch when ``early_stopping`` is given.

    Example:
        >>> from torch.utils.data import DataLoader, TensorDataset
        >>> _ = torch.manual_seed(0)
        >>> data = TensorDataset(torch.randn(32, 4), torch.randint(0, 2, (32,)))
        >>> train_loader, val_loader = DataLoader(data, batch_size=8, shuffle=True), DataLoader(data, batch_size=32)
        >>> model = nn.Linear(4, 2)
        >>> history = fit(model, train_loader, val_loader, num_epochs=4, loss_fn=nn.CrossEntropyLoss(),
        ...               optimizer=lambda m: torch.optim.SGD(trainable_parameters(m), lr=0.1),
        ...               early_stopping=2, verbose=False)
        >>> len(history) <= 4, history.best_epoch == history.best("val_acc")["epoch"]
        (True, True)
    """
    if not isinstance(num_epochs, int) or isinstance(num_epochs, bool) or num_epochs < 1:
        raise ValueError(f"num_epochs must be a positive integer, got {num_epochs!r}.")
    early_stopping = _early_stopping(early_stopping)
    if early_stopping is not None and val_loader is None and early_stopping.monitor.startswith("val"):
        raise ValueError(
            f"Early stopping on {early_stopping.monitor!r} needs a val_loader "
            "(or an early-stopping object that monitors a training metric such as 'train_loss')."
        )
    device = default_device(device)
    speed = speedups or Speedups.for_device(device)
    model.to(device)
    speed.prepare_model(model)
    opt = _build_optimizer(optimizer, model)
    sched = scheduler(opt, num_epochs) if scheduler is not None else None
    settings = _settings(opt, num_epochs, early_stopping)  # before a schedule changes the learning rates
    label = f"{description} " if description else ""
    history, start, finished = _resume(checkpoint, settings, model, opt, sched, early_stopping)
    train_net, val_net, train_data, val_data = cached_networks(
        model, train_loader, val_loader, speed, verbose, label, cache=cache_features and not finished
    )
    for epoch in progress(
        range(start, num_epochs if not finished else start), desc=f"{label}epochs", initial=start, total=num_epochs
    ):
        started, started_cpu = time.perf_counter(), time.process_time()
        record = {"epoch": epoch + 1, "lr": max(g["lr"] for g in opt.param_groups)}
        train = train_one_epoch(
            train_net, train_data, opt, loss_fn, speedups=speed, description=f"{label}epoch {epoch + 1}/{num_epochs}"
        )
        record.update({f"train_{k}": v for k, v in train.items()})
        if val_data is not None:
            record.update({f"val_{k}": v for k, v in evaluate(val_net, val_data, loss_fn, speedups=speed).items()})
        if sched is not None:
            sched.step()
        record["seconds"] = time.perf_counter() - started
        record["cpu_seconds"] = time.process_time() - started_cpu
        history.records.append(record)
        # Running out of patience in the last epoch is not stopping early.
        stop = early_stopping is not None and early_stopping.update(record, model) and epoch + 1 < num_epochs
        history.stopped_early, finished = stop, stop or epoch + 1 == num_epochs
        if verbose:
            print(
                _format_record(record, label)
                + (f" | early stop: best epoch {early_stopping.best_epoch}" if stop else "")
            )
        if checkpoint is not None:
            checkpoint.save(
                _checkpoint_state(settings, epoch + 1, finished, model, opt, sched, history, early_stopping)
            )
            if not finished and checkpoint.interrupts_after(epoch + 1):
                break
        if finished:
            break
    if finished and early_stopping is not None:
        early_stopping.restore_best(model)
        history.best_epoch = early_stopping.best_epoch
    return history


def _early_stopping(value):
    """``fit``'s ``early_stopping`` as an object: ``None``, a patience, ``"best"``, or the caller's own object."""
    if value is None or hasattr(value, "update"):
        return value
    if value == "best":
        return _EarlyStopping(patience=None)
    if isinstance(value, int) and not isinstance(value, bool):
        return _EarlyStopping(patience=value)
    raise ValueError(
        f"early_stopping must be a patience in epochs (e.g. 8), 'best' or an object with "
        f"update(record, model) and restore_best(model); got {value!r}."
    )


def _checkpoint_state(settings, epoch, finished, model, optimizer, scheduler, history, early_stopping) -> dict:
    """Everything ``_resume`` needs to continue a run after ``epoch``, exactly as if it had not stopped."""
    return {
        "settings": settings,
        "epoch": epoch,
        "finished": finished,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "history": history.to_dict(),
        "rng": rng_state(),
        "early_stopping": _state_of(early_stopping),
    }


def _state_of(early_stopping) -> dict | None:
    if early_stopping is None:
        return None
    if not hasattr(early_stopping, "state_dict"):
        raise TypeError(
            f"A checkpointed run needs an early-stopping object with state_dict() and load_state_dict(); "
            f"{type(early_stopping).__name__} has none (or pass a patience to fit instead)."
        )
    return early_stopping.state_dict()


def _settings(optimizer: torch.optim.Optimizer, num_epochs: int, early_stopping) -> dict:
    """What a checkpoint must agree on to be continued: the run's length, optimizer and stopping rule."""
    return {
        "num_epochs": num_epochs,
        "optimizer": type(optimizer).__name__,
        "lrs": [group["lr"] for group in optimizer.param_groups],
        "monitor": early_stopping.monitor if early_stopping else None,
        "patience": getattr(early_stopping, "patience", None) if early_stopping else None,
    }


def _resume(checkpoint, settings, model, optimizer, scheduler, early_stopping) -> tuple[History, int, bool]:
    """``(history, first epoch to run, finished)``: a fresh start, or where ``checkpoint`` left off.

    The weights are loaded before any feature cache is built: the cache must hold what the
    checkpoint's frozen layers compute.
    """
    state = checkpoint.previous_state() if checkpoint is not None else None
    if state is None:
        return History(), 0, False
    if state["settings"] != settings:
        raise ValueError(
            f"Checkpoint {checkpoint.path} was written with other settings {state['settings']}; "
            f"now {settings}. Use another checkpoint path or resume=False to start over."
        )
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(state["scheduler"])
    if early_stopping is not None:
        early_stopping.load_state_dict(state["early_stopping"])
    set_rng_state(state["rng"])
    return History.from_dict(state["history"]), state["epoch"], state["finished"]


def _format_record(record: dict, label: str) -> str:
    parts = [
        f"{label}epoch {record['epoch']:>2}",
        f"train loss {record['train_loss']:.4f} acc {100 * record['train_acc']:.2f}%",
    ]
    if "val_loss" in record:
        parts.append(f"val loss {record['val_loss']:.4f} acc {100 * record['val_acc']:.2f}%")
    parts.append(f"lr {record['lr']:.2e}")
    parts.append(f"{record['seconds']:.1f}s")
    return " | ".join(parts)
