"""Notebook 03's Exercise 3 self-check: it shows the zero_grad(set_to_none=False) trap, not a stale-.grad story."""

from __future__ import annotations

import pytest

from course_utils.selfcheck import SelfCheckFailed
from course_utils.selfcheck import freezing as check


def trainable_only(model, lr):
    return [{"params": [p for p in model.parameters() if p.requires_grad], "lr": lr}]


def every_parameter(model, lr):
    """The mistake the exercise is about: frozen parameters handed to the optimizer too."""
    return [{"params": list(model.parameters()), "lr": lr}]


def test_a_correct_answer_passes_the_trap_check(capsys):
    check.trainable_param_groups(trainable_only)
    out = capsys.readouterr().out
    assert "all checks passed" in out and "✗" not in out
    assert "zero_grad(set_to_none=False), momentum and weight decay: no frozen weight moved" in out


def test_the_trap_moves_frozen_weights_only_when_the_optimizer_holds_them():
    moved = check._frozen_moved_under_zeroed_grads(every_parameter)
    assert moved and all(not name.startswith("fc.") for name in moved), moved
    assert check._frozen_moved_under_zeroed_grads(trainable_only) == []


def test_handing_over_every_parameter_fails_and_names_the_trap(capsys):
    with pytest.raises(SelfCheckFailed):
        check.trainable_param_groups(every_parameter)
    out = capsys.readouterr().out
    assert "frozen tensor(s) moved" in out and "zero_grad(set_to_none=False)" in out
