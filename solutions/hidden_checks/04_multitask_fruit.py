"""Hidden checks for 04_multitask_fruit (instructor-only: never released to students).

Inputs differ from the notebook's self-checks; expected values stay in the grader
(see course_kit/grading/checks.py). 7 points.
"""
import math

from course_kit.grading.checks import check, close, equal, grader_only

# Logits and labels for the loss check (the expected value is computed in the grader).
FRUIT_LOGITS = [[2.0, 0.5, -1.0, 0.0, 0.3, 1.2], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]]
FRUIT_LABELS = [0, 5]
FRESH_LOGITS = [[1.5, -0.5], [-2.0, 0.25]]
FRESH_LABELS = [1, 1]
WEIGHTS = (0.5, 3.0)


@check("FruitNet keeps its heads in a ModuleDict and returns both heads' logits from one backbone pass", points=2,
       exercise="multitask_forward",
       expect=equal({"keys": ["freshness", "fruit"], "shapes": {"fruit": [3, 5], "freshness": [3, 2]},
                     "backbone_calls": 1, "head_parameters": 16 * 5 + 5 + 16 * 2 + 2}))
def forward_shares_backbone(ns):
    import torch
    from torch import nn

    backbone = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 16))
    calls = []
    backbone.register_forward_hook(lambda module, args, output: calls.append(1))
    model = ns["FruitNet"](backbone, 16, 5, 2)
    with torch.no_grad():
        outputs = model(torch.zeros(3, 3, 8, 8))
    in_backbone = {id(p) for p in backbone.parameters()}
    return {"keys": sorted(outputs), "shapes": {task: list(outputs[task].shape) for task in outputs},
            "backbone_calls": len(calls),
            "head_parameters": sum(p.numel() for p in model.parameters() if id(p) not in in_backbone)}


@grader_only
def _cross_entropy(logits, labels):
    total = 0.0
    for row, label in zip(logits, labels):
        top = max(row)
        total += top + math.log(sum(math.exp(v - top) for v in row)) - row[label]
    return total / len(labels)


@check("multitask_loss weights the two cross-entropies and keeps the graph for backward", points=2,
       exercise="multitask_loss",
       expect=close({"value": WEIGHTS[0] * _cross_entropy(FRUIT_LOGITS, FRUIT_LABELS)
                              + WEIGHTS[1] * _cross_entropy(FRESH_LOGITS, FRESH_LABELS),
                     "scalar": True, "requires_grad": True}, rel=1e-5))
def weighted_loss(ns):
    import torch

    outputs = {"fruit": torch.tensor(FRUIT_LOGITS, requires_grad=True),
               "freshness": torch.tensor(FRESH_LOGITS, requires_grad=True)}
    loss = ns.call("multitask_loss", outputs, torch.tensor(FRUIT_LABELS), torch.tensor(FRESH_LABELS), *WEIGHTS)
    return {"value": float(loss.detach()), "scalar": list(loss.shape) == [], "requires_grad": bool(loss.requires_grad)}


@check("trainable_optimizer builds AdamW over the trainable parameters only", points=2,
       exercise="trainable_optimizer",
       expect=equal({"type": "AdamW", "values": 8, "frozen_included": False, "lr": [0.01], "weight_decay": [0.05]}))
def optimizer_skips_frozen(ns):
    from torch import nn

    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    for parameter in model[0].parameters():
        parameter.requires_grad = False
    optimizer = ns.call("trainable_optimizer", model, 0.01, 0.05)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    return {"type": type(optimizer).__name__, "values": sum(p.numel() for p in params),
            "frozen_included": any(not p.requires_grad for p in params),
            "lr": [group["lr"] for group in optimizer.param_groups],
            "weight_decay": [group["weight_decay"] for group in optimizer.param_groups]}


@check("the run recorded both heads' accuracies, and one shared backbone has fewer parameters than two", points=1,
       expect=equal({"accuracies_recorded": True, "multitask_is_smaller": True}))
def summary_sharing(ns):
    numbers = ns["key_numbers"]
    keys = ("multitask_fruit_acc", "multitask_freshness_acc", "fruit_only_acc", "freshness_only_acc")
    return {"accuracies_recorded": all(key in numbers for key in keys),
            "multitask_is_smaller": float(numbers["multitask_parameters"]) < float(numbers["two_single_task_parameters"])}
