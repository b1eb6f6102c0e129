"""Self-checks for notebook 04 (one shared backbone, a fruit head and a freshness head)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import exercise


def _tiny_backbone(feature_dim: int) -> nn.Module:
    """A small stand-in for ResNet18 without its fc: images -> (N, feature_dim) features."""
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, feature_dim)
    )


def _record_calls(model: nn.Module) -> tuple[list, dict[str, list]]:
    """Hook ``model``'s backbone and heads: what the backbone returns, and what each head is given, per call.

    The hooks append to the returned list and dict for as long as ``model`` lives.
    """
    backbone_outputs: list = []
    head_inputs: dict[str, list] = {}
    model.backbone.register_forward_hook(lambda _m, _inputs, output: backbone_outputs.append(output))
    for task in ("fruit", "freshness"):
        model.heads[task].register_forward_hook(
            lambda _m, inputs, _output, task=task: head_inputs.setdefault(task, []).append(inputs[0])
        )
    return backbone_outputs, head_inputs


def fruitnet_forward(FruitNet) -> None:
    """Exercise 1: ``FruitNet(backbone, feature_dim, num_fruits, num_freshness)`` and its ``forward(x)``."""
    with exercise("Exercise 1 — the multi-task model") as feedback:
        for num_fruits in (6, 3):
            torch.manual_seed(0)
            feature_dim = 8
            backbone = _tiny_backbone(feature_dim)
            with feedback.calling(f"FruitNet(backbone, {feature_dim}, {num_fruits}, 2)"):
                model = FruitNet(backbone, feature_dim, num_fruits, 2)
            label = f"{num_fruits} fruit classes"
            if not feedback.check(
                getattr(model, "backbone", None) is backbone,
                f"{label}: self.backbone is the given network",
                f"{label}: keep the given backbone as self.backbone",
            ):
                continue
            heads = getattr(model, "heads", None)
            if not feedback.check(
                isinstance(heads, nn.ModuleDict),
                f"{label}: self.heads is an nn.ModuleDict",
                f"{label}: self.heads must be an nn.ModuleDict (got {type(heads).__name__}), "
                "so that its heads are part of the model's parameters",
            ):
                continue
            feedback.equal(
                f"{label}: heads, in order",
                ["fruit", "freshness"],
                list(heads),
                hint="cu.fit pairs the outputs with the label tensors in order: fruit first, then freshness",
            )
            shapes = {
                task: (getattr(head, "in_features", None), getattr(head, "out_features", None))
                for task, head in heads.items()
            }
            feedback.equal(
                f"{label}: (inputs, outputs) of each head",
                {"fruit": (feature_dim, num_fruits), "freshness": (feature_dim, 2)},
                shapes,
                hint="each head is an nn.Linear from the backbone's features to its classes",
            )
            if set(heads) != {"fruit", "freshness"}:
                continue
            backbone_outputs, head_inputs = _record_calls(model)
            images = torch.randn(5, 3, 16, 16)
            with feedback.calling(f"model(images) with {num_fruits} fruit classes"):
                outputs = model(images)
            if not feedback.check(
                isinstance(outputs, dict),
                f"{label}: returns a dict",
                f"{label}: forward must return a dict {{'fruit': logits, 'freshness': logits}}, "
                f"got {type(outputs).__name__}",
            ):
                continue
            feedback.equal(
                f"{label}: keys, in order",
                ["fruit", "freshness"],
                list(outputs),
                hint="cu.fit pairs the outputs with the label tensors in order: fruit first, then freshness",
            )
            shapes = {k: tuple(v.shape) for k, v in outputs.items() if isinstance(v, torch.Tensor)}
            feedback.equal(
                f"{label}: fruit logits shape",
                (5, num_fruits),
                shapes.get("fruit"),
                hint="use the fruit head, self.heads['fruit']",
            )
            feedback.equal(
                f"{label}: freshness logits shape",
                (5, 2),
                shapes.get("freshness"),
                hint="use the freshness head, self.heads['freshness']",
            )
            feedback.equal(
                f"{label}: backbone passes per forward",
                1,
                len(backbone_outputs),
                hint="compute the features once and give the same features to both heads",
            )
            if len(backbone_outputs) != 1 or set(head_inputs) != {"fruit", "freshness"}:
                feedback.fail(
                    f"{label}: each head must be called on the backbone's features "
                    f"(heads called: {sorted(head_inputs) or 'none'})"
                )
                continue
            features = backbone_outputs[0]
            same = all(len(inputs) == 1 and inputs[0] is features for inputs in head_inputs.values())
            feedback.check(
                same,
                f"{label}: both heads receive the same backbone features",
                f"{label}: the heads must each be called once, directly on the backbone's output",
            )
            with torch.no_grad():
                expected = {task: model.heads[task](features) for task in ("fruit", "freshness")}
            matches = all(
                isinstance(outputs.get(t), torch.Tensor)
                and outputs[t].shape == e.shape
                and torch.allclose(outputs[t], e, atol=1e-6)
                for t, e in expected.items()
            )
            feedback.check(
                matches,
                f"{label}: outputs are the heads' logits",
                f"{label}: each output must be its head applied to the features, unchanged (no softmax, no argmax)",
            )
            if matches:
                (outputs["fruit"].sum() + outputs["freshness"].sum()).backward()
                grad = model.backbone[0].weight.grad
                feedback.check(
                    grad is not None and bool(grad.abs().sum() > 0),
                    f"{label}: gradients reach the shared backbone",
                    f"{label}: no gradient reached the backbone — do not detach the features "
                    "or compute them under torch.no_grad()",
                )


def multitask_loss(multitask_loss_fn) -> None:
    """Exercise 2: ``multitask_loss(outputs, fruit_labels, freshness_labels, fruit_weight, freshness_weight)``."""
    generator = torch.Generator().manual_seed(3)
    fruit_logits = torch.randn(4, 6, generator=generator) * 2
    freshness_logits = torch.randn(4, 2, generator=generator) * 2
    fruit_labels = torch.tensor([0, 5, 2, 2])
    freshness_labels = torch.tensor([1, 0, 0, 1])
    fruit_ce = F.cross_entropy(fruit_logits, fruit_labels).item()
    freshness_ce = F.cross_entropy(freshness_logits, freshness_labels).item()

    with exercise("Exercise 2 — the weighted multi-task loss") as feedback:
        for fruit_weight, freshness_weight in ((2.0, 1.0), (0.5, 3.0), (0.0, 1.0)):
            fruit = fruit_logits.clone().requires_grad_()
            freshness = freshness_logits.clone().requires_grad_()
            outputs = {"fruit": fruit, "freshness": freshness}
            call = f"multitask_loss(outputs, ..., fruit_weight={fruit_weight}, freshness_weight={freshness_weight})"
            with feedback.calling(call):
                loss = multitask_loss_fn(outputs, fruit_labels, freshness_labels, fruit_weight, freshness_weight)
            weights = f"weights {fruit_weight}/{freshness_weight}"
            if not feedback.check(
                isinstance(loss, torch.Tensor) and loss.dim() == 0,
                f"{weights}: returns a scalar tensor",
                f"{weights}: return one scalar torch tensor (shape ()), got "
                + (f"a tensor of shape {tuple(loss.shape)}" if isinstance(loss, torch.Tensor) else type(loss).__name__)
                + " — backward() needs a tensor",
            ):
                continue
            expected = fruit_weight * fruit_ce + freshness_weight * freshness_ce
            got = loss.item()
            hint = ""
            if abs(got - (freshness_weight * fruit_ce + fruit_weight * freshness_ce)) < 1e-4:
                hint = " — the weights look swapped: fruit_weight multiplies the fruit loss"
            elif abs(got - 4 * expected) < 1e-4:
                hint = " — average the cross-entropy over the batch (F.cross_entropy's default), do not sum it"
            elif abs(got - (fruit_ce + freshness_ce)) < 1e-4:
                hint = " — multiply each task's loss by its weight"
            if not feedback.check(
                abs(got - expected) < 1e-4,
                f"{weights}: value {got:.4f}",
                f"{weights}: expected {expected:.4f}, got {got:.4f}{hint}",
            ):
                continue
            if not feedback.check(
                loss.requires_grad,
                f"{weights}: the loss can be back-propagated",
                f"{weights}: the loss has no gradient — build it from the logits with torch "
                "operations (no .item(), no .detach(), no NumPy, no torch.no_grad())",
            ):
                continue
            loss.backward()
            # d(loss)/d(logits) of the weighted sum: the same for any correct implementation.
            fruit_ref = fruit_logits.clone().requires_grad_()
            freshness_ref = freshness_logits.clone().requires_grad_()
            (
                fruit_weight * F.cross_entropy(fruit_ref, fruit_labels)
                + freshness_weight * F.cross_entropy(freshness_ref, freshness_labels)
            ).backward()
            grads_ok = (
                fruit.grad is not None
                and freshness.grad is not None
                and torch.allclose(fruit.grad, fruit_ref.grad, atol=1e-6)
                and torch.allclose(freshness.grad, freshness_ref.grad, atol=1e-6)
            )
            if fruit_weight == 0.0 and fruit.grad is None and freshness.grad is not None:
                grads_ok = torch.allclose(freshness.grad, freshness_ref.grad, atol=1e-6)
            feedback.check(
                grads_ok,
                f"{weights}: gradients flow back to both heads' logits",
                f"{weights}: backward() gave the wrong gradients — each task's loss must come from "
                "its own logits and labels",
            )


def trainable_optimizer(trainable_optimizer_fn) -> None:
    """Exercise 3: ``trainable_optimizer(model, lr, weight_decay)`` -> AdamW over trainable parameters only."""
    from ..freezing import freeze_until
    from ..models.build import build_model

    torch.manual_seed(0)
    small = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 3))
    for p in small[0].parameters():
        p.requires_grad = False
    resnet = build_model("resnet18", num_classes=6, pretrained=False)
    freeze_until(resnet, "layer2")
    cases = [
        ("a two-layer model with its first layer frozen", small, 3e-4, 5e-3),
        ("ResNet18 frozen up to layer2", resnet, 1e-4, 1e-4),
    ]

    with exercise("Exercise 3 — an optimizer for the trainable parameters") as feedback:
        for label, model, lr, weight_decay in cases:
            flags = [p.requires_grad for p in model.parameters()]
            with feedback.calling(f"trainable_optimizer(<{label}>, lr={lr}, weight_decay={weight_decay})"):
                optimizer = trainable_optimizer_fn(model, lr, weight_decay)
            feedback.check(
                [p.requires_grad for p in model.parameters()] == flags,
                f"{label}: the model's frozen/trainable flags are left as they were",
                f"{label}: the function changed requires_grad of some parameters — it should only read them",
            )
            if not feedback.check(
                isinstance(optimizer, torch.optim.AdamW),
                f"{label}: an AdamW optimizer",
                f"{label}: expected torch.optim.AdamW, got {type(optimizer).__name__}"
                + (
                    " — Adam adds weight decay to the gradient; AdamW decays the weights "
                    "separately, which is what the reference run uses"
                    if isinstance(optimizer, torch.optim.Adam)
                    else ""
                ),
            ):
                continue
            given = [p for group in optimizer.param_groups for p in group["params"]]
            given_ids = {id(p) for p in given}
            trainable = [p for p in model.parameters() if p.requires_grad]
            frozen = [p for p in model.parameters() if not p.requires_grad]
            frozen_in = sum(id(p) in given_ids for p in frozen)
            feedback.check(
                frozen_in == 0,
                f"{label}: no frozen parameter is in the optimizer",
                f"{label}: {frozen_in} frozen parameter tensor(s) are in the optimizer — "
                "give it only parameters with requires_grad=True",
            )
            missing = sum(id(p) not in given_ids for p in trainable)
            feedback.check(
                missing == 0,
                f"{label}: every trainable parameter is in the optimizer",
                f"{label}: {missing} of {len(trainable)} trainable parameter tensor(s) are missing",
            )
            feedback.check(
                len(given) == len(given_ids),
                f"{label}: each parameter appears once",
                f"{label}: some parameters were given to the optimizer more than once",
            )
            feedback.equal(
                f"{label}: parameter values the optimizer updates",
                sum(p.numel() for p in trainable),
                sum(p.numel() for p in given),
            )
            feedback.equal(
                f"{label}: learning rate", [lr] * len(optimizer.param_groups), [g["lr"] for g in optimizer.param_groups]
            )
            feedback.equal(
                f"{label}: weight decay",
                [weight_decay] * len(optimizer.param_groups),
                [g["weight_decay"] for g in optimizer.param_groups],
            )
            if model is small:
                _check_zero_grad_trap(feedback, label, model, optimizer)


def _check_zero_grad_trap(feedback, label: str, model: nn.Module, optimizer) -> None:
    """Two steps of a loop that calls ``zero_grad(set_to_none=False)``: frozen weights must not move.

    The frozen weights hold a zero ``.grad`` tensor, as that loop leaves a weight that trained
    before it was frozen; an optimizer that holds them would still decay them (and apply any
    momentum), with a gradient of zero.
    """
    generator = torch.Generator().manual_seed(5)
    frozen = [p for p in model.parameters() if not p.requires_grad]
    trainable = [p for p in model.parameters() if p.requires_grad]
    for p in frozen:
        p.grad = torch.zeros_like(p)
    frozen_before = [p.detach().clone() for p in frozen]
    trainable_before = [p.detach().clone() for p in trainable]
    for _ in range(2):
        optimizer.zero_grad(set_to_none=False)
        for p in trainable:
            p.grad = torch.randn(p.shape, generator=generator)
        optimizer.step()
    feedback.check(
        all(torch.equal(p, b) for p, b in zip(frozen, frozen_before)),
        f"{label}: frozen weights stay put in a loop with zero_grad(set_to_none=False)",
        f"{label}: frozen weights moved in a loop with zero_grad(set_to_none=False): their gradient is a "
        "tensor of zeros, not None, so an optimizer that holds them still applies weight decay (and "
        "momentum) — give the optimizer only the parameters with requires_grad=True",
    )
    feedback.check(
        all(not torch.equal(p, b) for p, b in zip(trainable, trainable_before)),
        f"{label}: the trainable weights moved",
        f"{label}: some trainable weights did not move in two optimizer steps",
    )
