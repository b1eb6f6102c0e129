"""How long a notebook's run will take here: a few timed training steps times the steps it plans.

Before training, :func:`course_utils.notebook.start_session` prints one line such as::

    profile colab (auto: Tesla T4 ...), estimated ~12 min on this device (measured 0.085 s/step x 8,460 steps)

The step time is *measured on this device*: a couple of forward + backward + SGD steps of each
of the notebook's architectures at the profile's batch size and image size, on random images
(random weights: nothing is downloaded). The number of steps is what the notebook *declares*:
the ``plan:`` section of its profile file lists each block of training in the notebook's knob
names (model, how many trainings, images per epoch, batch size, epochs, images evaluated), and
:func:`planned_work` evaluates it on the profile's knobs (:mod:`course_utils.notebook.plan`);
a block's steps are trainings x ceil(images / batch size) x epochs. ``course run --robustness``
reads the same plan, and a test checks it against the rows the notebooks' runs save, so a
notebook that trains more than it declares fails a test instead of a silently wrong estimate.
Evaluation counts as a third of a training step per image. Not counted: downloads, decoding
data, plots; frozen layers make real steps cheaper, early stopping ends some runs sooner. It
is a guide, not a promise.

Example:
    >>> from course_utils.notebook.parameters import load_parameters
    >>> P = load_parameters("03_partial_freezing", profile="smoke")
    >>> [(w.model, w.batch_size, w.image_size) for w in planned_work(P)][:2]
    [('resnet18', 20, 32), ('resnet18', 20, 32)]
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from . import plan

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


def planned_work(P) -> list[Work]:
    """The training the notebook ``P.notebook`` will do with ``P``'s knobs, one :class:`Work` per training.

    Read from the ``plan:`` section of the notebook's profile file (:mod:`course_utils.notebook.plan`),
    evaluated on ``P``'s knobs and the sizes of the data they select.

    Raises:
        ValueError: the notebook's profile file declares no plan (the message says where to add
            one), or an entry that the plan's small language does not allow.
    """
    from .. import assets

    values = {k: v for k, v in P.as_dict().items() if k != "profile"}
    train, test = plan.data_sizes(values, P.session, assets.data_dir())
    return [
        Work(block.model, block.batch_size, block.image_size, block.steps_per_run, block.eval_images)
        for block in plan.declared_blocks(P.notebook, values, train, test)
        for _ in range(block.times)
    ]


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
    # Channels-last, as the kit's loaders hand out batches: oneDNN's CPU convolutions take about half
    # the time on it (EfficientNet-Lite0, 48 px, batch 16, one thread: 0.19 against 0.39 s per step).
    images = torch.randn(batch_size, 3, image_size, image_size, device=device).contiguous(
        memory_format=torch.channels_last
    )
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
    per_step, timed_batch, timed = {}, {}, {}
    # The timing's random weights and images come from a forked generator: whatever the notebook
    # draws next (its sample images) does not depend on whether, or how, the estimate ran.
    with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
        for item in work:
            key = (item.model, item.batch_size, item.image_size)
            if key in per_step:
                continue
            batch = min(item.batch_size, CPU_TIMING_BATCH) if device.type == "cpu" else item.batch_size
            measured = (item.model, batch, item.image_size)  # batches 16 and 50 on a CPU: one timing
            if measured not in timed:
                timed[measured] = time_step(item.model, batch, item.image_size, device)
            per_step[key] = timed[measured] * item.batch_size / batch
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
