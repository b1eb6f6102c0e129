"""Hidden checks for 04_multitask_fruit (instructor-only: never released to students).

7 points, every one earned by calling the student's code on inputs drawn in the grader for
each submission (sizes, weights, images, labels, loss weights, learning rates); what a
correct answer gives is computed by the references below, in the grader, in plain Python
(see course_kit/grading/checks.py):

* FruitNet: 2 (both heads' logits from one backbone pass, on drawn weights and images);
* multitask_loss: 2 (the value and the gradient it sends back to each head's logits);
* trainable_optimizer: 2 (the weights after two AdamW steps of a loop that calls
  ``zero_grad(set_to_none=False)``, where the frozen weights hold a zero gradient);
* FruitNet and multitask_loss together: 1 (the shared backbone's gradient is the sum of both
  tasks'); it replaces the old check of the run's ``key_numbers``, which a stub notebook could fake;
* the run recorded both heads' accuracies, and one backbone is smaller than two: 0 points,
  informational (notebook state).

The networks are built in the probe from the drawn numbers (a linear backbone of a few
dozen weights): the kernel must fit 700 MB, and every value is then known to the grader.
"""
import math

from course_kit.grading.checks import check, close, equal, grader_only

TASKS = ("fruit", "freshness")


# --------------------------------------------------------------------------- building from drawn numbers (probe)
def build_fruitnet(ns, given):
    """The student's FruitNet on a drawn linear backbone, its heads set to the drawn weights; and the images.

    Returns ``(model, backbone, calls, images)``: ``calls`` grows by one per backbone forward pass.
    """
    import torch
    from torch import nn

    n, channels, height, width = given["images"]
    backbone = nn.Sequential(nn.Flatten(), nn.Linear(channels * height * width, given["feature_dim"]))
    calls = []
    with torch.no_grad():
        backbone[1].weight.copy_(torch.tensor(given["backbone"]["weight"]))
        backbone[1].bias.copy_(torch.tensor(given["backbone"]["bias"]))
    backbone.register_forward_hook(lambda module, args, output: calls.append(1))
    model = ns.call("FruitNet", backbone, given["feature_dim"], given["classes"]["fruit"],
                    given["classes"]["freshness"])
    with torch.no_grad():
        for task in TASKS:
            model.heads[task].weight.copy_(torch.tensor(given[task]["weight"]))
            model.heads[task].bias.copy_(torch.tensor(given[task]["bias"]))
    images = torch.tensor(given["x"]).reshape(n, channels, height, width)
    return model, backbone, calls, images


# --------------------------------------------------------------------------- draws and references (grader only)
@grader_only
def _values(rng, *shape, low=-1.0, high=1.0):
    if len(shape) == 1:
        return [round(rng.uniform(low, high), 3) for _ in range(shape[0])]
    return [_values(rng, *shape[1:], low=low, high=high) for _ in range(shape[0])]


@grader_only
def _loss_weights(rng):
    """Two different loss weights: a swapped or a dropped weight never gives the right answer."""
    fruit = round(rng.uniform(0.3, 3.0), 2)
    freshness = round(rng.uniform(0.3, 3.0), 2)
    while abs(fruit - freshness) < 0.3:
        freshness = round(rng.uniform(0.3, 3.0), 2)
    return [fruit, freshness]


@grader_only
def draw_fruitnet(rng, params):
    """Image size, batch, feature size and class counts (fruit > freshness), every weight and image value."""
    channels, side = rng.randint(1, 3), rng.randint(2, 3)
    inputs, features = channels * side * side, rng.randint(3, 7)
    fruits = rng.randint(3, 7)
    classes = {"fruit": fruits, "freshness": rng.randint(2, fruits - 1)}
    n = rng.randint(2, 5)
    drawn = {"images": [n, channels, side, side], "feature_dim": features, "classes": classes,
             "x": _values(rng, n * inputs, low=-2, high=2),
             "backbone": {"weight": _values(rng, features, inputs), "bias": _values(rng, features)}}
    for task in TASKS:
        drawn[task] = {"weight": _values(rng, classes[task], features), "bias": _values(rng, classes[task])}
    drawn["labels"] = {task: [rng.randrange(classes[task]) for _ in range(n)] for task in TASKS}
    drawn["loss_weights"] = _loss_weights(rng)
    return drawn


@grader_only
def _affine(weight, bias, vector):
    return [sum(w * v for w, v in zip(row, vector)) + b for row, b in zip(weight, bias)]


@grader_only
def _softmax(row):
    top = max(row)
    exps = [math.exp(v - top) for v in row]
    return [e / sum(exps) for e in exps]


@grader_only
def _cross_entropy(logits, labels):
    """Mean cross-entropy and its gradient with respect to the logits."""
    n = len(labels)
    value = sum(max(row) + math.log(sum(math.exp(v - max(row)) for v in row)) - row[label]
                for row, label in zip(logits, labels)) / n
    grad = [[(p - (1.0 if j == label else 0.0)) / n for j, p in enumerate(_softmax(row))]
            for row, label in zip(logits, labels)]
    return value, grad


@grader_only
def reference_forward(given):
    """Features from one backbone pass, and each head's logits on those same features."""
    n = given["images"][0]
    width = len(given["x"]) // n
    images = [given["x"][i * width:(i + 1) * width] for i in range(n)]
    features = [_affine(given["backbone"]["weight"], given["backbone"]["bias"], x) for x in images]
    logits = {task: [_affine(given[task]["weight"], given[task]["bias"], f) for f in features] for task in TASKS}
    return images, features, logits


@grader_only
def expected_forward(given, params):
    _, _, logits = reference_forward(given)
    features = given["feature_dim"]
    return close({"keys": list(TASKS), "logits": logits, "backbone_calls": 1, "backbone_kept": True,
                  "head_parameters": sum(given["classes"][task] * (features + 1) for task in TASKS)},
                 rel=1e-4, abs=1e-4)


@grader_only
def reference_loss(logits, labels, weights):
    """``weights[0] * CE(fruit) + weights[1] * CE(freshness)`` and its gradient for each task's logits."""
    value, grads = 0.0, {}
    for task, weight in zip(TASKS, weights):
        ce, grad = _cross_entropy(logits[task], labels[task])
        value += weight * ce
        grads[task] = [[weight * g for g in row] for row in grad]
    return value, grads


@grader_only
def draw_loss(rng, params):
    n, fruits = rng.randint(3, 6), rng.randint(3, 6)
    classes = {"fruit": fruits, "freshness": rng.randint(2, fruits - 1)}
    return {"logits": {task: _values(rng, n, classes[task], low=-3, high=3) for task in TASKS},
            "labels": {task: [rng.randrange(classes[task]) for _ in range(n)] for task in TASKS},
            "weights": _loss_weights(rng)}


@grader_only
def expected_loss(given, params):
    value, grads = reference_loss(given["logits"], given["labels"], given["weights"])
    return close({"value": value, "shape": [], "requires_grad": True, "grad": grads}, rel=1e-5, abs=1e-6)


@grader_only
def expected_backbone_gradient(given, params):
    """The backbone's gradient: both heads' gradients, sent back through the same features, summed."""
    images, _, logits = reference_forward(given)
    value, grads = reference_loss(logits, given["labels"], given["loss_weights"])
    feature_grads = [[sum(grads[task][i][k] * given[task]["weight"][k][j] for task in TASKS
                          for k in range(given["classes"][task])) for j in range(given["feature_dim"])]
                     for i in range(len(images))]
    weight = [[sum(g[j] * x[m] for g, x in zip(feature_grads, images)) for m in range(len(images[0]))]
              for j in range(given["feature_dim"])]
    bias = [sum(g[j] for g in feature_grads) for j in range(given["feature_dim"])]
    return close({"loss": value, "backbone_weight": weight, "backbone_bias": bias}, rel=1e-4, abs=1e-5)


@grader_only
def draw_optimizer(rng, params):
    """A stack of 2-3 Linear layers with drawn weights; some (never all) frozen; two gradients per trainable parameter.

    Gradients are at least 0.1 away from 0 (AdamW's first step moves by about lr in their
    direction), and lr x weight decay is large enough that Adam's L2 penalty, a missing weight
    decay, or a frozen weight decayed through its zero gradient land well outside the tolerance.
    """
    widths = [rng.randint(2, 4) for _ in range(rng.randint(3, 4))]
    layers = len(widths) - 1
    frozen = sorted(rng.sample(range(layers), rng.randint(1, layers - 1)))

    def gradients(*shape):
        values = _values(rng, *shape, low=0.1, high=1.0)
        return [[v * rng.choice([1, -1]) for v in row] for row in values] if len(shape) == 2 else \
            [v * rng.choice([1, -1]) for v in values]

    parameters = []
    for i in range(layers):
        out, inp = widths[i + 1], widths[i]
        parameters.append({"name": f"{i}.weight", "value": _values(rng, out, inp, low=0.5, high=2.0),
                           "grads": [gradients(out, inp), gradients(out, inp)]})
        parameters.append({"name": f"{i}.bias", "value": _values(rng, out, low=0.5, high=2.0),
                           "grads": [gradients(out), gradients(out)]})
    return {"widths": widths, "frozen": frozen, "parameters": parameters,
            "lr": round(rng.uniform(0.01, 0.05), 4), "weight_decay": round(rng.uniform(0.05, 0.5), 3)}


@grader_only
def reference_adamw_steps(value, grads, lr, weight_decay, betas=(0.9, 0.999), eps=1e-8):
    """torch.optim.AdamW's steps on one number: decay the weight, then move by the bias-corrected moments."""
    m = v = 0.0
    for t, grad in enumerate(grads, start=1):
        m, v = betas[0] * m + (1 - betas[0]) * grad, betas[1] * v + (1 - betas[1]) * grad * grad
        denom = math.sqrt(v) / math.sqrt(1 - betas[1] ** t) + eps
        value = value * (1 - lr * weight_decay) - lr / (1 - betas[0] ** t) * m / denom
    return value


@grader_only
def expected_optimizer(given, params):
    lr, decay = given["lr"], given["weight_decay"]

    def steps(value, grads, frozen):
        if isinstance(value, list):
            return [steps(v, [g[i] for g in grads], frozen) for i, v in enumerate(value)]
        return value if frozen else reference_adamw_steps(value, grads, lr, decay)

    after = {p["name"]: steps(p["value"], p["grads"], int(p["name"].split(".")[0]) in given["frozen"])
             for p in given["parameters"]}
    return close({"type": "AdamW", "lr": [lr], "weight_decay": [decay], "after": after}, rel=1e-6, abs=2e-6)


# --------------------------------------------------------------------------- the checks (probes run in the kernel)
@check("FruitNet returns both heads' logits, fruit first, from one backbone pass, with drawn sizes and weights",
       points=2, exercise="multitask_forward", inputs=draw_fruitnet, expect=expected_forward)
def forward_shares_backbone(ns, given):
    import torch

    model, backbone, calls, images = build_fruitnet(ns, given)
    in_backbone = {id(p) for p in backbone.parameters()}
    with torch.no_grad():
        outputs = model(images)
    return {"keys": [str(task) for task in outputs], "logits": {str(task): outputs[task] for task in outputs},
            "backbone_calls": len(calls), "backbone_kept": model.backbone is backbone,
            "head_parameters": sum(p.numel() for p in model.parameters() if id(p) not in in_backbone)}


@check("multitask_loss weights the two drawn cross-entropies and sends each head its share of the gradient",
       points=2, exercise="multitask_loss", inputs=draw_loss, expect=expected_loss)
def weighted_loss(ns, given):
    import torch

    logits = {task: torch.tensor(given["logits"][task], requires_grad=True) for task in TASKS}
    loss = ns.call("multitask_loss", dict(logits), torch.tensor(given["labels"]["fruit"]),
                   torch.tensor(given["labels"]["freshness"]), *given["weights"])
    requires_grad = bool(loss.requires_grad)
    if requires_grad:
        loss.backward()
    return {"value": float(loss.detach()), "shape": list(loss.shape), "requires_grad": requires_grad,
            "grad": {task: logits[task].grad for task in TASKS}}


@check("trainable_optimizer: in a loop with zero_grad(set_to_none=False), two AdamW steps move exactly the "
       "trainable weights of a drawn network, the drawn way",
       points=2, exercise="trainable_optimizer", inputs=draw_optimizer, expect=expected_optimizer)
def optimizer_skips_frozen(ns, given):
    import torch
    from torch import nn

    widths = given["widths"]
    model = nn.Sequential(*[nn.Linear(widths[i], widths[i + 1]) for i in range(len(widths) - 1)])
    named = dict(model.named_parameters())
    with torch.no_grad():
        for parameter in given["parameters"]:
            named[parameter["name"]].copy_(torch.tensor(parameter["value"]))
    for index in given["frozen"]:
        for parameter in model[index].parameters():
            parameter.requires_grad = False
    # The frozen weights hold a zero gradient, as zero_grad(set_to_none=False) leaves a weight that
    # trained before it was frozen: an optimizer that holds them still decays them.
    for index in given["frozen"]:
        for parameter in model[index].parameters():
            parameter.grad = torch.zeros_like(parameter)
    optimizer = ns.call("trainable_optimizer", model, given["lr"], given["weight_decay"])
    frozen = {parameter["name"] for parameter in given["parameters"]
              if int(parameter["name"].split(".")[0]) in given["frozen"]}
    for step in range(2):
        optimizer.zero_grad(set_to_none=False)
        for parameter in given["parameters"]:
            if parameter["name"] not in frozen:
                named[parameter["name"]].grad = torch.tensor(parameter["grads"][step])
        optimizer.step()
    return {"type": type(optimizer).__name__, "lr": [float(group["lr"]) for group in optimizer.param_groups],
            "weight_decay": [float(group["weight_decay"]) for group in optimizer.param_groups],
            "after": {name: parameter.detach() for name, parameter in named.items()}}


@check("FruitNet and multitask_loss together: one backward gives the shared backbone both tasks' gradients",
       points=1, inputs=draw_fruitnet, expect=expected_backbone_gradient)
def backbone_gets_both_tasks(ns, given):
    import torch

    model, backbone, _, images = build_fruitnet(ns, given)
    outputs = model(images)
    loss = ns.call("multitask_loss", outputs, torch.tensor(given["labels"]["fruit"]),
                   torch.tensor(given["labels"]["freshness"]), *given["loss_weights"])
    loss.backward()
    return {"loss": float(loss.detach()), "backbone_weight": backbone[1].weight.grad,
            "backbone_bias": backbone[1].bias.grad}


@check("the run recorded both heads' accuracies, and one shared backbone has fewer parameters than two "
       "(informational: the run's own record)", points=0,
       expect=equal({"accuracies_recorded": True, "multitask_is_smaller": True}))
def summary_sharing(ns):
    numbers = ns["key_numbers"]
    keys = ("multitask_fruit_acc", "multitask_freshness_acc", "fruit_only_acc", "freshness_only_acc")
    return {"accuracies_recorded": all(key in numbers for key in keys),
            "multitask_is_smaller":
                float(numbers["multitask_parameters"]) < float(numbers["two_single_task_parameters"])}
