"""The student library of the transfer-learning course: what the notebooks import as ``cu``.

``import course_utils as cu`` gives the names below; everything else lives in the topic's
subpackage (``cu.models``, ``cu.data``, ``cu.train``, ``cu.freezing``, ``cu.notebook``).

* models: ``build_model``, ``available_models``, ``normalization_for``, ``count_parameters``
* freezing: ``layer_groups``, ``apply_strategy``, ``set_trainable_layers``, ``freeze_until``,
  ``unfreeze_all``, ``trainable_parameters``, ``trainable_summary``, ``STRATEGIES``
* data: ``subset_fraction``, ``subset_per_class``, ``make_loader``, ``class_counts``, ``get_targets``
* training: ``train_one_epoch``, ``evaluate``, ``fit``, ``extract_features``,
  ``History``, ``Checkpoint``, ``seed_everything``, ``default_device``
* notebooks: ``load_parameters``, ``start_session``, ``submit`` (hand in what the grader will
  see: a fresh-kernel run in the grading profile), and the modules ``plots``, ``results``,
  ``widgets`` and ``selfcheck``

The library knows nothing about the kit's repository: it works the same from a checkout, a
wheel or a Colab install. The instructor kit (``course_kit``) is a separate package that
this one never imports.

Example:
    >>> import course_utils as cu
    >>> model = cu.build_model("resnet18", num_classes=10, pretrained=False)
    >>> cu.apply_strategy(model, "last_only")
    >>> cu.count_parameters(model, trainable_only=True)
    5130
"""

import os

# OpenMP reads how long a waiting thread spins once, when torch loads it. A short spin keeps a
# training step fast when something else also runs on the machine (docs/speed.md, "Sharing the
# CPU"); a setting the user chose wins. Too late when torch was imported first.
if not {"GOMP_SPINCOUNT", "OMP_WAIT_POLICY"} & set(os.environ):
    os.environ["GOMP_SPINCOUNT"] = "300"

from . import _memory, assets, data, freezing, models, notebook, selfcheck, train  # noqa: E402
from ._util import default_device
from .data import class_counts, get_targets, make_loader, subset_fraction, subset_per_class
from .freezing import (
    STRATEGIES,
    apply_strategy,
    freeze_until,
    layer_groups,
    set_trainable_layers,
    trainable_parameters,
    trainable_summary,
    unfreeze_all,
)
from .models import available_models, build_model, count_parameters, normalization_for
from .notebook import load_parameters, plots, results, start_session, submit, widgets
from .train import (
    Checkpoint,
    History,
    evaluate,
    extract_features,
    fit,
    seed_everything,
    train_one_epoch,
)

_memory.keep_freed_memory()  # each training step reuses the last one's pages (docs/speed.md)

__all__ = [
    # models
    "build_model",
    "available_models",
    "normalization_for",
    "count_parameters",
    # freezing
    "layer_groups",
    "apply_strategy",
    "set_trainable_layers",
    "freeze_until",
    "unfreeze_all",
    "trainable_parameters",
    "trainable_summary",
    "STRATEGIES",
    # data
    "subset_fraction",
    "subset_per_class",
    "make_loader",
    "class_counts",
    "get_targets",
    # training
    "train_one_epoch",
    "evaluate",
    "fit",
    "extract_features",
    "History",
    "Checkpoint",
    "seed_everything",
    "default_device",
    # notebooks
    "load_parameters",
    "start_session",
    "submit",
    "plots",
    "results",
    "widgets",
    "selfcheck",
]
__version__ = "0.3.0"
