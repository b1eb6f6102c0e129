"""Self-check machinery: what a student sees for a missing, a wrong, a crashing and a correct answer."""

from __future__ import annotations

import numpy as np
import pytest

from course_utils.selfcheck import SelfCheckFailed, exercise
from course_utils.selfcheck import data_fraction as check


def stratified(targets, fraction, seed):
    """A correct answer: class quotas rounded down, the items left over to the largest remainders."""
    rng = np.random.default_rng(seed)
    labels, counts = np.unique(targets, return_counts=True)
    exact = counts * round(fraction * len(targets)) / len(targets)
    quotas = np.floor(exact).astype(int)
    quotas[np.argsort(quotas - exact, kind="stable")[: round(exact.sum()) - quotas.sum()]] += 1
    return np.concatenate(
        [rng.choice(np.flatnonzero(targets == c), size=q, replace=False) for c, q in zip(labels, quotas)]
    )


def rounded_per_class(rounding):
    """The mistake the rounding rule is about: each class's share rounded on its own, nothing handed out."""

    def answer(targets, fraction, seed):
        rng = np.random.default_rng(seed)
        picked = []
        for label in np.unique(targets):
            members = np.flatnonzero(targets == label)
            picked.append(rng.choice(members, size=int(rounding(fraction * len(members))), replace=False))
        return np.concatenate(picked)

    return answer


def plain_random(targets, fraction, seed):
    """The mistake the exercise is about: right size, but class shares drift."""
    return np.random.default_rng(seed).choice(len(targets), size=round(fraction * len(targets)), replace=False)


def test_correct_answer_passes(capsys):
    check.subset_indices(stratified)
    out = capsys.readouterr().out
    assert "all checks passed" in out and "✗" not in out


@pytest.mark.parametrize("rounding", [np.floor, round], ids=["down", "nearest"])
def test_rounding_each_class_on_its_own_fails_the_size(rounding, capsys):
    with pytest.raises(SelfCheckFailed):
        check.subset_indices(rounded_per_class(rounding))
    out = capsys.readouterr().out
    assert "✗ number of indices for fraction 0.1" in out and "largest remainders" in out
    assert "✓ every class keeps its share (fraction 0.1)" in out, "within one item per class, only the size is off"


def test_load_model_check_accepts_the_default_weights_where_they_are_not_the_course_checkpoint(capsys):
    """ResNet-50's DEFAULT is IMAGENET1K_V2; the course registers V1. The exercise asks for DEFAULT."""
    import torch
    import torchvision

    from course_utils.models import weights

    weights.write_standin_checkpoints(["resnet50"])  # the course's V1 file (a stand-in)
    default = torchvision.models.get_model_weights("resnet50").DEFAULT
    assert default.name == "IMAGENET1K_V2"
    torch.manual_seed(77)  # another set of random weights under the V2 file's name
    v2_file = weights.checkpoint_dir() / default.url.rsplit("/", 1)[1]
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), v2_file)

    def with_weights(member):
        def load(name, pretrained):
            chosen = torchvision.models.get_model_weights(name)[member]
            return torchvision.models.get_model(name, weights=chosen if pretrained else None), chosen.transforms()

        return load

    check.load_imagenet_model(with_weights("DEFAULT"), "resnet50")
    assert "all checks passed" in capsys.readouterr().out
    with pytest.raises(SelfCheckFailed):
        check.load_imagenet_model(with_weights("IMAGENET1K_V1"), "resnet50")
    assert "✗ the weights differ from the DEFAULT ImageNet checkpoint" in capsys.readouterr().out


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
