"""Self-checks for notebook 01 (pretrained vs scratch at 10/20/50 % of the data)."""
from __future__ import annotations

from collections import Counter

import numpy as np
import torch
from torch import nn

from . import exercise


def subset_indices(stratified_subset_indices) -> None:
    """Exercise 1: ``stratified_subset_indices(targets, fraction, seed)`` -> indices of a stratified subset."""
    rng = np.random.default_rng(11)
    # Unequal classes (30..300 items) so that a plain random sample shows its imbalance.
    targets = rng.permutation(np.repeat(np.arange(6), [30, 60, 90, 150, 240, 300]))
    counts = Counter(targets.tolist())
    with exercise("Exercise 1 — stratified subset") as feedback:
        for fraction in (0.1, 0.5):
            with feedback.calling(f"stratified_subset_indices(targets, {fraction}, seed=0)"):
                picked = np.asarray(stratified_subset_indices(targets, fraction, 0))
            expected_size = round(fraction * len(targets))
            feedback.equal(f"number of indices for fraction {fraction} of {len(targets)} items",
                           expected_size, int(picked.size),
                           hint="the subset's size should be round(fraction × number of items)")
            if picked.size == 0:
                continue
            feedback.check(np.issubdtype(picked.dtype, np.integer) and picked.min() >= 0 and picked.max() < len(targets),
                           "indices are integers inside the dataset",
                           f"indices must be integers in [0, {len(targets)}), got dtype {picked.dtype}, "
                           f"range [{picked.min()}, {picked.max()}]")
            feedback.check(len(set(picked.tolist())) == picked.size, "no index is picked twice",
                           f"{picked.size - len(set(picked.tolist()))} indices appear more than once — sample without replacement")
            got = Counter(targets[picked.astype(int).clip(0, len(targets) - 1)].tolist())
            off = {c: (got.get(c, 0), fraction * n) for c, n in counts.items() if abs(got.get(c, 0) - fraction * n) > 1}
            feedback.check(not off, f"every class keeps its share (fraction {fraction})",
                           "class shares are off: " + ", ".join(
                               f"class {c}: expected ≈{exp:.0f}, got {g}" for c, (g, exp) in sorted(off.items()))
                           + " — draw the subset class by class")
        with feedback.calling("stratified_subset_indices(targets, 0.2, seed=...)"):
            a = np.sort(np.asarray(stratified_subset_indices(targets, 0.2, 1)))
            b = np.sort(np.asarray(stratified_subset_indices(targets, 0.2, 1)))
            c = np.sort(np.asarray(stratified_subset_indices(targets, 0.2, 2)))
        feedback.check(np.array_equal(a, b), "the same seed gives the same subset",
                       "two calls with seed=1 gave different subsets — use a generator seeded with `seed`, "
                       "not the global random state")
        feedback.check(not np.array_equal(a, c), "another seed gives another subset",
                       "seed=1 and seed=2 gave the same subset — the seed must change the draw")


def replace_head(replace_head_fn) -> None:
    """Exercise 2: ``replace_head(model, head_path, num_classes)`` swaps the ImageNet classifier."""
    from ..models.architectures import get_architecture
    from ..models.build import imagenet_model

    with exercise("Exercise 2 — a new head") as feedback:
        for name in ("resnet18", "alexnet"):
            torch.manual_seed(0)
            model = imagenet_model(name, pretrained=False)
            head_path = get_architecture(name).head
            old_head = model.get_submodule(head_path)
            kept = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith(head_path + ".")}
            with feedback.calling(f"replace_head(<{name}>, {head_path!r}, 7)"):
                returned = replace_head_fn(model, head_path, 7)
            feedback.check(returned is model, f"{name}: returns the same model object",
                           f"{name}: return the model you modified (got {type(returned).__name__})")
            head = model.get_submodule(head_path)
            if not feedback.check(isinstance(head, nn.Linear), f"{name}: the module at {head_path!r} is a Linear",
                                  f"{name}: expected an nn.Linear at {head_path!r}, found {type(head).__name__}"):
                continue
            feedback.equal(f"{name}: head input features", old_head.in_features, head.in_features,
                           hint="keep the width of the features the old head received")
            feedback.equal(f"{name}: head output features", 7, head.out_features)
            feedback.check(head is not old_head and all(p.requires_grad for p in head.parameters()),
                           f"{name}: the head is new and trainable", f"{name}: create a new nn.Linear")
            changed = [k for k, v in kept.items() if not torch.equal(model.state_dict()[k], v)]
            feedback.check(not changed, f"{name}: every other weight is untouched",
                           f"{name}: {len(changed)} tensors outside the head changed (e.g. {changed[:2]}) — "
                           "only the head should be replaced")
            with feedback.calling(f"{name}: forward pass on a (2, 3, 64, 64) batch"):
                shape = tuple(model.eval()(torch.randn(2, 3, 64, 64)).shape)
            feedback.equal(f"{name}: output shape", (2, 7), shape)


def gap_table(gap_table_fn) -> None:
    """Exercise 3: ``gap_table(summary)`` -> rows with pretrained/scratch accuracy (%) and their difference."""
    summary = [
        {"fraction": 0.5, "init": "pretrained", "n": 2, "test_acc_mean": 0.8968, "test_acc_std": 0.004},
        {"fraction": 0.1, "init": "scratch", "n": 2, "test_acc_mean": 0.1289, "test_acc_std": 0.01},
        {"fraction": 0.1, "init": "pretrained", "n": 2, "test_acc_mean": 0.8299, "test_acc_std": 0.002},
        {"fraction": 0.5, "init": "scratch", "n": 2, "test_acc_mean": 0.5106, "test_acc_std": 0.02},
    ]
    expected = [(0.1, 82.99, 12.89, 70.10), (0.5, 89.68, 51.06, 38.62)]
    with exercise("Exercise 3 — the gap table") as feedback:
        with feedback.calling("gap_table(summary)"):
            rows = list(gap_table_fn([dict(r) for r in summary]))
        feedback.equal("number of rows (one per fraction)", 2, len(rows))
        for want, row in zip(expected, rows):
            if not feedback.check(isinstance(row, dict) and {"fraction", "pretrained", "scratch", "difference"} <= set(row),
                                  f"row for fraction {want[0]} has the four columns",
                                  f"each row must be a dict with keys fraction, pretrained, scratch, difference; got {row!r}"):
                continue
            feedback.equal("fraction (rows sorted by fraction)", want[0], row["fraction"])
            for key, value in zip(("pretrained", "scratch", "difference"), want[1:]):
                got = row[key]
                feedback.check(isinstance(got, (int, float)) and abs(got - value) < 0.01,
                               f"fraction {want[0]}: {key} = {got:.2f} %" if isinstance(got, (int, float)) else "",
                               f"fraction {want[0]}: {key} expected {value:.2f} (percent), got {got!r}"
                               + (" — difference is pretrained minus scratch" if key == "difference" else
                                  " — use the mean accuracy, in percent"))
