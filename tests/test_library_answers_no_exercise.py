"""The student library hands out no exercise's answer: none of its public functions passes a self-check.

For every exercise, each public callable of ``course_utils`` with the exercise's name, and the
library's nearest counterpart of the step (what a student might try instead of writing it),
is handed to that exercise's self-check as if it were the student's answer. Every one of them
must fail: the later notebooks' library versions of a step have another form on purpose.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import pkgutil

import nbformat
import pytest

import course_utils as cu
from course_kit.repository import SOLUTIONS
from course_utils import selfcheck

SELF_CHECKS = {  # exercise id -> (self-check, extra arguments after the student's function)
    "load_imagenet_model": (selfcheck.data_fraction.load_imagenet_model, ("efficientnet_lite0",)),
    "stratified_subset": (selfcheck.data_fraction.subset_indices, ()),
    "replace_head": (selfcheck.data_fraction.replace_head, ()),
    "train_one_epoch": (selfcheck.data_fraction.train_one_epoch, ()),
    "evaluate": (selfcheck.data_fraction.evaluate, ()),
    "parameter_counts": (selfcheck.architectures.parameter_counts, ()),
    "images_per_second": (selfcheck.architectures.images_per_second, ()),
    "keep_best": (selfcheck.architectures.keep_best, ()),
    "trainable_groups": (selfcheck.freezing.trainable_groups, ()),
    "set_groups_trainable": (selfcheck.freezing.set_groups_trainable, ()),
    "trainable_param_groups": (selfcheck.freezing.trainable_param_groups, ()),
    "batchnorm_drift": (selfcheck.freezing.batchnorm_drift, ()),
    "backbone_head_groups": (selfcheck.freezing.backbone_head_groups, ()),
    "warm_up_then_fine_tune": (selfcheck.freezing.warm_up_then_fine_tune, ()),
    "multitask_forward": (selfcheck.multitask.fruitnet_forward, ()),
    "multitask_loss": (selfcheck.multitask.multitask_loss, ()),
    "trainable_optimizer": (selfcheck.multitask.trainable_optimizer, ()),
}
# What a student might reach for instead of writing the step.
COUNTERPARTS = {
    "load_imagenet_model": [cu.models.imagenet_model, cu.build_model],
    "stratified_subset": [cu.subset_fraction, cu.subset_per_class],
    "replace_head": [cu.models.replace_head],
    "parameter_counts": [cu.count_parameters],
    "keep_best": [cu.fit],
    "trainable_groups": [cu.set_trainable_layers, cu.freezing.group_names],
    "set_groups_trainable": [cu.freeze_until, cu.apply_strategy, cu.freezing.freeze_batchnorm_stats],
    "trainable_param_groups": [cu.trainable_parameters],
    "backbone_head_groups": [cu.freezing.depth_tiered_param_groups],
    "warm_up_then_fine_tune": [cu.fit],
    "trainable_optimizer": [cu.train.make_optimizer],
}


def _exercises() -> dict[str, str]:
    """Exercise id -> the name the student defines, from the solutions' exercise cells."""
    found = {}
    for path in sorted(SOLUTIONS.glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            exercise = cell.metadata.get("course", {}).get("exercise")
            if exercise:
                line = next(line for line in cell.source.splitlines() if line.startswith(("def ", "class ")))
                found[exercise] = line.split()[1].split("(")[0].rstrip(":")
    return found


def _public_callables(name: str) -> list:
    """Every public callable called ``name`` in course_utils and its public submodules."""
    found = []
    for module_info in pkgutil.walk_packages(cu.__path__, "course_utils."):
        if any(part.startswith("_") for part in module_info.name.split(".")):
            continue
        module = importlib.import_module(module_info.name)
        value = getattr(module, name, None)
        if callable(value) and value not in found:
            found.append(value)
    return found


def test_every_exercise_has_a_self_check_here():
    assert set(_exercises()) == set(SELF_CHECKS), "add the new exercise's self-check to SELF_CHECKS"


@pytest.mark.parametrize("exercise", sorted(SELF_CHECKS))
def test_no_library_function_passes_the_self_check(exercise):
    check, extra = SELF_CHECKS[exercise]
    candidates = _public_callables(_exercises()[exercise]) + COUNTERPARTS.get(exercise, [])
    for candidate in candidates:
        with contextlib.redirect_stdout(io.StringIO()), pytest.raises(Exception) as failed:
            check(candidate, *extra)
        assert not isinstance(failed.value, NotImplementedError), candidate
