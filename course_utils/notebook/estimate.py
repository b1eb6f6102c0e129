"""How long a notebook's run will take here: a few timed training steps times the steps it plans.

Before training, :func:`course_utils.notebook.start_session` prints one line such as::

    profile colab (auto: Tesla T4 ...), estimated ~12 min on this device (measured 0.085 s/step x 8,460 steps)

The step time is *measured on this device*: a couple of forward + backward + SGD steps of each
of the notebook's architectures at the profile's batch size and image size, on random images
(random weights: nothing is downloaded). The number of steps comes from the profile's knobs
(:func:`planned_work`: runs x seeds x epochs x batches per epoch, per notebook). Evaluation
counts as a third of a training step per image. Not counted: downloads, decoding data,
plots; frozen layers make real steps cheaper. It is a guide, not a promise.

Example:
    >>> from course_utils.notebook.parameters import load_parameters
    >>> P = load_parameters("03_partial_freezing", profile="smoke")
    >>> [(w.model, w.batch_size, w.image_size) for w in planned_work(P)][:2]
    [('resnet18', 20, 32), ('resnet18', 20, 32)]
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

CIFAR10_SIZES = (50_000, 10_000)
DIGITS_SIZES = (1_348, 449)  # scikit-learn's 1,797 digits, a quarter held out per class
FRUIT_SIZES = (10_901, 2_698)  # Kaggle's "Fruits fresh and rotten for classification"
TRANSFER_CONFIGS = 5  # notebook 03 part C: feature extraction / fine-tuning x BatchNorm, and the last-half variant
CPU_TIMING_BATCH = 16  # on a CPU a step's time grows with the batch: time 16 images and scale


@dataclass
class Work:
    """One block of planned training: ``train_steps`` steps of ``model`` plus ``eval_images`` evaluated."""

    model: str
    batch_size: int
    image_size: int
    train_steps: int
    eval_images: int = 0


@dataclass
class Estimate:
    """A run's estimated time: ``seconds`` in all, from ``seconds_per_step`` (per model) x the planned work."""

    seconds: float
    steps: int
    seconds_per_step: dict = field(default_factory=dict)
    timed_batch: dict = field(default_factory=dict)

    def describe(self) -> str:
        """``estimated ~12 min on this device (measured 0.085 s/step x 8,460 steps)``."""
        mean = self.seconds / max(self.steps, 1)
        when = f"~{self.seconds / 60:.0f} min" if self.seconds >= 90 else f"~{self.seconds:.0f} s"
        return f"estimated {when} on this device (measured {mean:.3g} s/step x {self.steps:,} steps)"


def _data_sizes(P) -> tuple[int, int]:
    values, session = P.as_dict(), P.session
    if "fruit_root" in values:
        if values["fruit_root"] == "synthetic":
            train, test = values.get("synthetic_fruit_per_class", [24, 12])
            return 6 * train, 6 * test
        from .. import assets

        root = assets.data_dir() / values["fruit_root"]
        if (root / "train").is_dir():
            count = lambda folder: sum(1 for p in Path(folder).rglob("*") if p.is_file())  # noqa: E731
            return count(root / "train"), count(root / "test")
        return FRUIT_SIZES
    if values.get("dataset") == "digits":
        return DIGITS_SIZES
    if session.get("synthetic_data"):
        train, test = session["synthetic_per_class"]
        return 10 * train, 10 * test
    return CIFAR10_SIZES


def planned_work(P) -> list[Work]:
    """The training the notebook ``P.notebook`` will do with ``P``'s knobs, block by block.

    Raises:
        ValueError: a notebook this module has no plan for (add one here).
    """
    n_train, n_test = _data_sizes(P)
    steps = lambda images, batch: math.ceil(images / batch)  # noqa: E731
    size, work = P.image_size, []
    if P.notebook.startswith("01_"):
        for fraction in P.fractions:
            for _ in range(2 * len(P.seeds)):  # pretrained and from scratch
                work.append(
                    Work(P.backbone, P.batch_size, size, steps(fraction * n_train, P.batch_size) * P.num_epochs, n_test)
                )
        for _ in P.seeds:  # section 6: scratch again at the smallest fraction, budget_factor x the epochs
            work.append(
                Work(
                    P.backbone,
                    P.batch_size,
                    size,
                    steps(P.fractions[0] * n_train, P.batch_size) * P.num_epochs * P.budget_factor,
                    n_test,
                )
            )
    elif P.notebook.startswith("02_"):
        test = int(n_test * P.test_fraction)
        for model in P.compare_models:
            for _ in P.seeds:
                work.append(
                    Work(model, P.batch_size, size, steps(P.fraction * n_train, P.batch_size) * P.num_epochs, test)
                )
        for model in P.depth_models:
            for _ in P.seeds:
                work.append(
                    Work(
                        model,
                        P.depth_batch_size,
                        size,
                        steps(10 * P.train_per_class, P.depth_batch_size) * P.depth_num_epochs,
                        10 * P.val_per_class * P.depth_num_epochs + test,
                    )
                )
    elif P.notebook.startswith("03_"):
        part_a = steps(P.fraction * n_train, P.batch_size) * P.num_epochs
        for _ in range((len(P.strategies) + TRANSFER_CONFIGS + len(P.tier_heads)) * len(P.seeds)):  # + part D
            work.append(Work(P.backbone, P.batch_size, size, part_a, n_test))
        for model in P.sweep_models:
            for _ in range(len(P.trainable_layers_list) * len(P.seeds)):
                work.append(
                    Work(
                        model,
                        P.sweep_batch_size,
                        size,
                        steps(10 * P.train_per_class, P.sweep_batch_size) * P.sweep_num_epochs,
                        10 * P.val_per_class * P.sweep_num_epochs,
                    )
                )
    elif P.notebook.startswith("04_"):
        train = n_train * P.train_fraction * (1 - P.val_fraction)
        validation = int(n_train * P.train_fraction * P.val_fraction)
        for _ in range(3 * len(P.seeds)):  # the multi-task model and the two single-task ones
            work.append(
                Work(
                    P.backbone,
                    P.batch_size,
                    size,
                    steps(train, P.batch_size) * P.num_epochs,
                    validation * P.num_epochs + n_test,
                )
            )
    else:
        raise ValueError(f"No run-time plan for notebook {P.notebook!r}: add one to course_utils/notebook/estimate.py.")
    return work


def time_step(model_name: str, batch_size: int, image_size: int, device, repeats: int = 2) -> float:
    """Seconds per training step (forward, backward, SGD) of ``model_name`` at this batch and image size.

    One warm-up step, then ``repeats`` timed ones (just the warm-up when it took over a second).

    Example:
        >>> 0 < time_step("resnet18", 2, 32, "cpu", repeats=1) < 30
        True
    """
    import torch

    from ..models import build_model

    device = torch.device(device)
    model = build_model(model_name, num_classes=10, pretrained=False).to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    images = torch.randn(batch_size, 3, image_size, image_size, device=device)
    labels = torch.randint(0, 10, (batch_size,), device=device)

    def step() -> float:
        started = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(images), labels).backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - started

    warmup = step()
    if warmup > 1.0:
        return warmup
    return min(step() for _ in range(repeats))


def estimate_runtime(P, device) -> Estimate:
    """Time each of the notebook's architectures on ``device`` and add up :func:`planned_work`.

    Example:
        >>> from course_utils.notebook.parameters import load_parameters
        >>> estimate = estimate_runtime(load_parameters("03_partial_freezing", profile="smoke"), "cpu")
        >>> estimate.steps, estimate.describe().startswith("estimated ~")
        (26, True)
    """
    import torch

    device = torch.device(device)
    work = planned_work(P)
    per_step, timed_batch = {}, {}
    for item in work:
        key = (item.model, item.batch_size, item.image_size)
        if key in per_step:
            continue
        batch = min(item.batch_size, CPU_TIMING_BATCH) if device.type == "cpu" else item.batch_size
        per_step[key] = time_step(item.model, batch, item.image_size, device) * item.batch_size / batch
        timed_batch[key] = batch
    seconds = sum(
        per_step[key] * (w.train_steps + w.eval_images / (3 * w.batch_size))
        for w in work
        for key in [(w.model, w.batch_size, w.image_size)]
    )
    return Estimate(
        seconds=seconds,
        steps=sum(w.train_steps for w in work),
        seconds_per_step={f"{m} batch {b} at {s} px": t for (m, b, s), t in per_step.items()},
        timed_batch={f"{m} batch {b} at {s} px": t for (m, b, s), t in timed_batch.items()},
    )
