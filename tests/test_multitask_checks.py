"""Notebook 04's Exercise 3 checks test the zero_grad(set_to_none=False) trap, not a stale gradient.

In a loop that calls ``optimizer.zero_grad(set_to_none=False)``, a weight that trained before it
was frozen holds a zero gradient, and an optimizer over every parameter still moves it (weight
decay, momentum). The self-check and the hidden check both run that loop on the student's
optimizer: trainable parameters only passes, every parameter fails.
"""

from __future__ import annotations

import importlib.util
import random

import pytest
import torch

from course_kit.repository import SOLUTIONS
from course_utils.selfcheck import SelfCheckFailed
from course_utils.selfcheck import multitask as check


def trainable_only(model, lr, weight_decay):
    return torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=weight_decay)


def every_parameter(model, lr, weight_decay):
    return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)


def test_self_check_passes_an_optimizer_over_the_trainable_parameters(capsys):
    check.trainable_optimizer(trainable_only)
    out = capsys.readouterr().out
    assert "frozen weights stay put in a loop with zero_grad(set_to_none=False)" in out
    assert "✗" not in out


def test_self_check_shows_frozen_weights_moving_under_an_optimizer_over_every_parameter(capsys):
    with pytest.raises(SelfCheckFailed):
        check.trainable_optimizer(every_parameter)
    out = capsys.readouterr().out
    assert "frozen weights moved in a loop with zero_grad(set_to_none=False)" in out
    assert "a tensor of zeros, not None" in out


def _hidden_checks():
    spec = importlib.util.spec_from_file_location("hidden_04", SOLUTIONS / "hidden_checks" / "04_multitask_fruit.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Namespace:
    """What the probe needs of a kernel's namespace: ``call`` runs the student's function."""

    def __init__(self, function):
        self.function = function

    def call(self, _name, *arguments):
        return self.function(*arguments)


@pytest.mark.parametrize("seed", range(20))
def test_hidden_check_passes_trainable_only_and_fails_every_parameter(seed):
    hidden = _hidden_checks()
    given = hidden.draw_optimizer(random.Random(seed), {})
    assert given["frozen"], "every draw freezes at least one layer"
    verdicts = {}
    for name, function in (("trainable only", trainable_only), ("every parameter", every_parameter)):
        observed = hidden.optimizer_skips_frozen(_Namespace(function), given)
        observed["after"] = {k: v.tolist() for k, v in observed["after"].items()}
        verdicts[name] = hidden.expected_optimizer(given, {}).judge(observed)[0]
    assert verdicts == {"trainable only": True, "every parameter": False}
