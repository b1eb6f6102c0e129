"""Self-checks for notebook 02 (ResNet vs VGG, and ResNet depth): counting, timing, picking the epoch."""

from __future__ import annotations

import math
import time

import torch
from torch import nn

from . import exercise


def _ints(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class _TiedNet(nn.Module):
    """A frozen conv, a BatchNorm (with buffers), and one Linear used twice (a shared parameter)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, kernel_size=3)  # 3*4*9 + 4 = 112 values
        self.bn = nn.BatchNorm2d(4)  # 8 values + running mean/var and a counter (buffers)
        self.shared = nn.Linear(4, 4)  # 20 values, registered once...
        self.again = self.shared  # ...and reachable under a second name
        self.out = nn.Linear(4, 2)  # 10 values
        for p in self.conv.parameters():
            p.requires_grad = False

    def forward(self, x):
        x = self.bn(self.conv(x)).mean(dim=(2, 3))
        return self.out(self.again(self.shared(x)))


def parameter_counts(parameter_counts_fn) -> None:
    """Exercise 1: ``parameter_counts(model) -> (total, trainable)``."""
    from ..freezing import set_trainable_layers
    from ..models.build import build_model

    with exercise("Exercise 1 — counting parameters") as feedback:
        net = _TiedNet()
        with feedback.calling("parameter_counts(<small net>)"):
            answer = parameter_counts_fn(net)
        if not feedback.check(
            isinstance(answer, tuple) and len(answer) == 2,
            "returns a pair (total, trainable)",
            f"return a tuple (total, trainable), got {answer!r}",
        ):
            return
        total, trainable = answer
        feedback.check(
            _ints(total) and _ints(trainable),
            "both counts are Python ints",
            f"return plain ints (got {type(total).__name__}, {type(trainable).__name__}) — `tensor.numel()` is an int",
        )
        feedback.equal(
            "total of the small net (conv 112 + BatchNorm 8 + shared Linear 20 + Linear 10)",
            150,
            total,
            hint="count model.parameters(), not state_dict(): BatchNorm's running statistics are "
            "buffers, not parameters, and a layer reachable under two names is still one set of "
            "numbers",
        )
        feedback.equal(
            "trainable values of the small net (the conv is frozen)",
            38,
            trainable,
            hint="count only parameters with requires_grad=True",
        )

        torch.manual_seed(0)
        model = build_model("resnet18", num_classes=10, pretrained=False)
        with feedback.calling("parameter_counts(<resnet18, 10 classes>)"):
            total, trainable = parameter_counts_fn(model)
        feedback.equal("ResNet18 with a 10-class head: total", 11_181_642, total)
        feedback.equal("ResNet18, nothing frozen: trainable", 11_181_642, trainable)
        set_trainable_layers(model, 2)
        with feedback.calling("parameter_counts(<resnet18, layer4 + fc trainable>)"):
            total, trainable = parameter_counts_fn(model)
        feedback.equal(
            "ResNet18 after set_trainable_layers(model, 2): total (freezing removes nothing)", 11_181_642, total
        )
        feedback.equal(
            "ResNet18 after set_trainable_layers(model, 2): trainable (layer4 + fc)",
            8_398_858,
            trainable,
            hint="frozen parameters have requires_grad=False",
        )


class _Probe(nn.Module):
    """Records the mode and grad state of every forward call and sleeps a scripted time per call."""

    def __init__(self, delays):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1))
        self.inner = nn.Dropout(0.5)
        self.delays = list(delays)
        self.calls: list[tuple[bool, bool]] = []

    def forward(self, x):
        delay = self.delays[min(len(self.calls), len(self.delays) - 1)]
        self.calls.append((self.training, torch.is_grad_enabled()))
        time.sleep(delay)
        return self.inner(x.flatten(1)).sum(dim=1, keepdim=True) * self.weight


def images_per_second(images_per_second_fn) -> None:
    """Exercise 2: ``images_per_second(model, images, repeats)`` -> inference throughput."""
    fast, slow = 0.03, 0.25
    with exercise("Exercise 2 — measuring inference speed") as feedback:
        # Call 1 is slow (like a first CUDA call), and so is call 3 (a hiccup while timing).
        probe = _Probe([slow, fast, slow, fast, fast, fast, fast, fast])
        probe.train()
        probe.inner.eval()  # a layer kept in eval mode on purpose (like a frozen BatchNorm)
        images = torch.rand(8, 3, 4, 4)
        with feedback.calling("images_per_second(<probe model>, <8 images>, repeats=5)"):
            speed = images_per_second_fn(probe, images, 5)
        calls = len(probe.calls)
        feedback.check(
            calls >= 6,
            f"forward calls: {calls} (a warm-up call, then 5 timed ones)",
            f"expected at least 6 forward calls (one untimed warm-up + repeats=5 timed), got {calls} — "
            "the first call pays one-off costs and must not be timed",
        )
        feedback.check(
            calls > 0 and not any(training for training, _ in probe.calls),
            "every forward call ran in eval mode",
            "some forward calls ran in training mode — call model.eval() before measuring "
            "(dropout and BatchNorm behave differently while training)",
        )
        feedback.check(
            calls > 0 and not any(grad for _, grad in probe.calls),
            "no call recorded gradients",
            "some forward calls ran with gradient recording on — wrap the calls in torch.no_grad()",
        )
        feedback.check(
            probe.weight.grad is None,
            "no gradient was computed",
            "the model's parameters received a gradient — inference needs no backward pass",
        )
        feedback.check(
            probe.training and not probe.inner.training,
            "every layer is back in the mode it had before (model in training, its dropout in eval)",
            f"after the call model.training={probe.training} and the inner layer's "
            f"training={probe.inner.training}; expected True and False — remember each module's mode "
            "before switching to eval, and restore exactly those modes",
        )
        if not feedback.check(
            isinstance(speed, (int, float)) and not isinstance(speed, bool) and math.isfinite(speed) and speed > 0,
            "returns a positive number",
            f"return images per second as a positive float, got {speed!r}",
        ):
            return
        expected = len(images) / fast
        feedback.check(
            0.5 * expected <= speed <= 1.1 * expected,
            f"about {expected:.0f} images/s for 8 images at {fast * 1000:.0f} ms per call",
            f"expected about {expected:.0f} images/s (8 images, {fast * 1000:.0f} ms per typical call), "
            f"got {speed:.4g} — images per second is the batch size divided by the time of one call; "
            "use the median of the repeats, so that one slow call does not decide the result",
        )

        probe = _Probe([fast])
        probe.eval()
        with feedback.calling("images_per_second(<probe model in eval mode>, <16 images>, repeats=3)"):
            speed16 = images_per_second_fn(probe, torch.rand(16, 3, 4, 4), 3)
        feedback.check(
            not probe.training,
            "a model in eval mode stays in eval mode",
            "a model that was in eval mode came back in training mode — restore the previous mode",
        )
        if isinstance(speed16, (int, float)) and math.isfinite(speed16) and speed16 > 0:
            ratio = speed16 / speed
            feedback.check(
                1.4 <= ratio <= 2.8,
                "twice the images in the same time: about twice the throughput",
                f"16 images per call at the same speed should give about 2× the throughput of 8 images, "
                f"got {ratio:.2f}× — divide the number of images by the time of one call",
            )
        else:
            feedback.fail(f"with 16 images: return a positive number, got {speed16!r}")


def keep_best(KeepBest) -> None:
    """Exercise 3: ``KeepBest(patience)`` with ``update(record, model) -> stop?`` and ``restore_best(model)``."""
    from torch import nn

    val_accs = [0.40, 0.62, 0.71, 0.66, 0.71, 0.64]  # best at epoch 3, a tie at epoch 5
    with exercise("Exercise 3 — keep the best epoch") as feedback:
        for patience, expected_stops in ((None, [False] * 6), (2, [False, False, False, False, True, True])):
            with feedback.calling(f"KeepBest(patience={patience})"):
                keeper = KeepBest(patience=patience)
            feedback.equal(
                f"patience={patience}: monitor",
                "val_acc",
                getattr(keeper, "monitor", None),
                hint="set self.monitor = 'val_acc': cu.fit checks that it records that column",
            )
            model = nn.Linear(2, 2)
            weights, stops = {}, []
            for epoch, acc in enumerate(val_accs, start=1):
                with torch.no_grad():
                    model.weight.fill_(float(epoch))  # each epoch's weights are different
                with feedback.calling(f"update({{'epoch': {epoch}, 'val_acc': {acc}}}, model)"):
                    stops.append(keeper.update({"epoch": epoch, "val_acc": acc, "train_acc": 0.9}, model))
                weights[epoch] = float(epoch)
            feedback.equal(
                f"patience={patience}: what update returned, epoch by epoch",
                expected_stops,
                [bool(s) for s in stops],
                hint="return True once `patience` epochs in a row brought no strictly better val_acc; "
                "never with patience=None",
            )
            feedback.equal(
                f"patience={patience}: best_epoch",
                3,
                getattr(keeper, "best_epoch", None),
                hint="the epoch with the highest val_acc; a tie (epoch 5) keeps the earlier one",
            )
            with feedback.calling("restore_best(model)"):
                keeper.restore_best(model)
            got = float(model.weight[0, 0])
            feedback.check(
                got == 3.0,
                f"patience={patience}: restore_best loads epoch 3's weights",
                f"patience={patience}: after restore_best the weights are those of epoch {got:g}, expected "
                "3 — keep a copy (copy.deepcopy(model.state_dict())), not the live tensors",
            )
