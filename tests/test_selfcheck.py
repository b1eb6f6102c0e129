"""Self-check machinery: what a student sees for a missing, a wrong, a crashing and a correct answer."""

from __future__ import annotations

import numpy as np
import pytest

from course_utils.selfcheck import SelfCheckFailed, exercise
from course_utils.selfcheck import data_fraction as check


def stratified(targets, fraction, seed):
    rng = np.random.default_rng(seed)
    picked = []
    for label in np.unique(targets):
        members = np.flatnonzero(targets == label)
        picked.append(rng.choice(members, size=round(fraction * len(members)), replace=False))
    return np.concatenate(picked)


def plain_random(targets, fraction, seed):
    """The mistake the exercise is about: right size, but class shares drift."""
    return np.random.default_rng(seed).choice(len(targets), size=round(fraction * len(targets)), replace=False)


def test_correct_answer_passes(capsys):
    check.subset_indices(stratified)
    out = capsys.readouterr().out
    assert "all checks passed" in out and "✗" not in out


def test_unsolved_exercise_says_not_implemented(capsys):
    def unsolved(targets, fraction, seed):
        raise NotImplementedError()

    with pytest.raises(NotImplementedError, match="not implemented yet") as raised:
        check.subset_indices(unsolved)
    assert raised.value.__suppress_context__, "the check's internals must not be chained into the traceback"
    assert "replace `raise NotImplementedError()` with your code" in capsys.readouterr().out


def test_wrong_answer_gets_expected_vs_got(capsys):
    with pytest.raises(SelfCheckFailed, match="problem"):
        check.subset_indices(plain_random)
    out = capsys.readouterr().out
    assert "✗ class shares are off" in out and "expected ≈" in out and "got" in out
    assert "draw the subset class by class" in out
    assert "✓ the same seed gives the same subset" in out, "properties that hold are still confirmed"


def test_crashing_answer_is_reported_as_feedback(capsys):
    def crashing(targets, fraction, seed):
        return targets[10_000]

    with pytest.raises(SelfCheckFailed):
        check.subset_indices(crashing)
    assert "raised IndexError" in capsys.readouterr().out


def test_rigged_equality_does_not_pass(capsys):
    class AlwaysEqual(int):
        def __eq__(self, other):
            return True

        __hash__ = int.__hash__

    with pytest.raises(SelfCheckFailed):
        with exercise("rigged") as feedback:
            feedback.equal("answer", "42", AlwaysEqual(7))
    assert "✗ answer: expected '42'" in capsys.readouterr().out


def test_bug_in_a_check_is_not_swallowed():
    with pytest.raises(KeyError):
        with exercise("broken check"):
            {}["missing"]
