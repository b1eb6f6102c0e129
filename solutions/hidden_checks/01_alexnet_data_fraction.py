"""Hidden checks for 01_alexnet_data_fraction (instructor-only: never released to students).

Every scored check calls the student's exercise function on inputs drawn for each submission
(label lists, fractions, seeds, layer sizes, weights, batches, images) and returns what came
back: subsets, shapes, logits, losses, updated weights. What a correct answer gives for those
inputs is computed here, in the grader, by the references marked ``@grader_only`` (they mirror
the solution notebook's exercises); none of it enters the student's kernel
(see course_kit/grading/checks.py).

12 points: stratified_subset_indices 4 (2 + 1 + 1), replace_head 3 (2 + 1), evaluate 1,
train_one_epoch 2, load_imagenet_model 2 (1 for the weights, 1 for the preprocessing).
``summary_keys`` is worth 0 points: it reads the notebook's own ``key_numbers``, which a
notebook can set to anything, so it only tells the student (and the instructor) whether the
run recorded every number; it no longer earns the point it used to.
"""
from course_kit.grading.checks import check, close, equal, grader_only, satisfies

NOTEBOOK = "01_alexnet_data_fraction"


# --------------------------------------------------------------------------- shared with the probes (no answers)
def _numbers(seed, count, scale=1.0):
    """``count`` reproducible numbers from ``seed`` (pure Python: the same in the kernel and the grader)."""
    import random

    rng = random.Random(seed)
    return [round(rng.gauss(0.0, scale), 4) for _ in range(count)]


def _pixels(seed, count):
    """``count`` reproducible 8-bit pixel values from ``seed``."""
    import random

    rng = random.Random(seed)
    return [rng.randrange(256) for _ in range(count)]


def _indices(ns, targets, fraction, seed):
    """The student's subset for these labels, as a flat list (its order and its item types as returned)."""
    import numpy as np

    picked = ns.call("stratified_subset_indices", np.array(targets), fraction, seed)
    return np.asarray(picked).reshape(-1).tolist()


def _linear(d_in, d_out, weight, bias):
    """An ``nn.Linear`` holding the drawn weights."""
    import torch
    from torch import nn

    layer = nn.Linear(d_in, d_out)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight).reshape(d_out, d_in))
        layer.bias.copy_(torch.tensor(bias))
    return layer


def _batches(problem):
    """The drawn points cut into batches of ``problem["batch"]`` (the last one smaller)."""
    import torch

    x = torch.tensor(problem["x"]).reshape(len(problem["y"]), problem["d"])
    y = torch.tensor(problem["y"])
    size = problem["batch"]
    return [(x[i:i + size], y[i:i + size]) for i in range(0, len(y), size)]


def _head_observation(model, returned, path, head_weight, head_bias, x):
    """The head found at ``path`` and, when it has the drawn head's shape, the network's logits with it."""
    import torch

    head = model.get_submodule(path)
    weight, bias = getattr(head, "weight", None), getattr(head, "bias", None)
    shape = list(weight.shape) if isinstance(weight, torch.Tensor) else None
    bias_shape = list(bias.shape) if isinstance(bias, torch.Tensor) else None
    logits = None
    wanted = torch.tensor(head_weight)
    if shape == list(wanted.shape) and bias_shape == [len(head_bias)] and isinstance(returned, torch.nn.Module):
        with torch.no_grad():
            weight.copy_(wanted)
            bias.copy_(torch.tensor(head_bias))
            logits = returned.eval()(torch.tensor(x))
    return {"returned_model": returned is model, "head": type(head).__name__, "weight_shape": shape,
            "bias_shape": bias_shape, "logits": logits}


def _head_weights(spec):
    """The drawn weights of every layer and of the new head, and the input batch, from the spec's seed."""
    d, hidden, second, new = spec["d"], spec["hidden"], spec["second"], spec["new"]
    sizes = [hidden * d, hidden, second * hidden, second, new * second, new, spec["batch"] * d]
    values, out, at = _numbers(spec["seed"], sum(sizes), 0.7), [], 0
    for size in sizes:
        out.append(values[at:at + size])
        at += size
    return out


def _rows(values, count):
    """A flat list as ``count`` equal rows."""
    width = len(values) // count
    return [values[i * width:(i + 1) * width] for i in range(count)]


def _sample(image, where):
    """The values of a (channels, height, width) image at positions given as (channel, row share, column share)."""
    _, height, width = image.shape
    return [image[c, int(r * height), int(q * width)].item() for c, r, q in where]


# --------------------------------------------------------------------------- references (grader only)
@grader_only
def _knob(params, name):
    """A knob of the graded run: the ``-p`` value, else the profile's."""
    from course_utils.notebook.parameters import read_profile

    if params.get(name) is not None:
        return params[name]
    return read_profile(NOTEBOOK, params.get("profile", "grading"))[0][name]


@grader_only
def _labels(rng, classes, low, high):
    """Shuffled labels of ``classes`` classes with distinct sizes in [low, high]."""
    sizes = rng.sample(range(low, high + 1), classes)
    labels = [c for c, n in enumerate(sizes) for _ in range(n)]
    rng.shuffle(labels)
    return labels


@grader_only
def _is_stratified(picked, targets, fraction):
    """A correct subset: round(fraction x N) distinct valid integer indices, each class within one item of its share."""
    n = len(targets)
    total = round(fraction * n)
    if not isinstance(picked, list) or len(picked) != total or len(set(picked)) != total:
        return False
    if not all(type(i) is int and 0 <= i < n for i in picked):
        return False
    for c in set(targets):
        share = targets.count(c) * total / n
        if abs(sum(1 for i in picked if targets[i] == c) - share) >= 1:
            return False
    return True


@grader_only
def _shares_inputs(rng, params):
    # Two fractions: one where fraction x N rounds up, one where it rounds down, so that int(),
    # floor or ceil instead of round() gives a subset of the wrong size.
    while True:
        targets = _labels(rng, rng.randint(4, 6), 12, 70)
        n = len(targets)
        up, down = round(rng.uniform(0.15, 0.7), 2), round(rng.uniform(0.15, 0.7), 2)
        if 0.6 < (up * n) % 1 < 0.9 and 0.1 < (down * n) % 1 < 0.4:
            return {"targets": targets, "fractions": [up, down], "seed": rng.randrange(10**6)}


@grader_only
def _seeded_inputs(rng, params):
    first = rng.randrange(10**6)
    return {"targets": _labels(rng, rng.randint(3, 5), 15, 60), "fraction": round(rng.uniform(0.25, 0.6), 2),
            "seeds": [first, first + rng.randint(1, 1000)]}


@grader_only
def _seeded_ok(observed, inputs):
    a, again, other = observed
    targets, fraction = inputs["targets"], inputs["fraction"]
    return (all(_is_stratified(s, targets, fraction) for s in observed)
            and sorted(a) == sorted(again) and sorted(a) != sorted(other))


@grader_only
def _head_inputs(rng, top_level):
    """Layer sizes and weights of a small network whose head gets replaced (sizes chosen so no mix-up passes)."""
    while True:
        d, hidden, old, new = rng.randint(3, 6), rng.randint(3, 9), rng.randint(5, 12), rng.randint(2, 9)
        if len({hidden, old, new}) == 3:
            break
    deep = not top_level and rng.random() < 0.5
    second = rng.randint(3, 9) if deep else hidden
    while deep and second in (old, new):
        second = rng.randint(3, 9)
    batch = rng.randint(2, 4)
    return {"d": d, "hidden": hidden, "second": second, "old": old, "new": new, "deep": deep,
            "path": rng.choice(["fc", "head", "out"]) if top_level else f"classifier.{4 if deep else 1}",
            "seed": rng.randrange(10**6), "batch": batch}


@grader_only
def _reference_logits(spec):
    import torch

    w1, b1, w2, b2, wh, bh, x = (torch.tensor(v) for v in _head_weights(spec))
    d, hidden, second, new = spec["d"], spec["hidden"], spec["second"], spec["new"]
    h = torch.relu(x.reshape(spec["batch"], d) @ w1.reshape(hidden, d).T + b1)
    if spec["deep"]:
        h = torch.relu(h @ w2.reshape(second, hidden).T + b2)
    return (h @ wh.reshape(new, second).T + bh).tolist()


@grader_only
def _head_expected(spec):
    return close({"returned_model": True, "head": "Linear", "weight_shape": [spec["new"], spec["second"]],
                  "bias_shape": [spec["new"]], "logits": _reference_logits(spec)}, rel=1e-5, abs=1e-6)


@grader_only
def _problem(rng, optimizer=False):
    """A small classification problem: points, labels, a linear model's weights, a batch size leaving a smaller last batch."""
    d, k = rng.randint(3, 5), rng.randint(2, 4)
    while True:
        n, batch = rng.randint(7, 14), rng.randint(2, 5)
        if n % batch:
            break
    problem = {"d": d, "k": k, "batch": batch, "x": [round(rng.uniform(-2, 2), 3) for _ in range(n * d)],
               "y": [rng.randrange(k) for _ in range(n)], "weight": [round(rng.uniform(-1, 1), 3) for _ in range(k * d)],
               "bias": [round(rng.uniform(-0.5, 0.5), 3) for _ in range(k)], "dropout": round(rng.uniform(0.3, 0.6), 2)}
    if optimizer:
        problem["optimizer"] = rng.choice(["adam", "sgd"])
        problem["lr"] = round(rng.uniform(0.05, 0.2) if problem["optimizer"] == "adam" else rng.uniform(0.1, 0.5), 3)
    return problem


@grader_only
def _reference_pass(problem, train):
    """What the solution's evaluate (train=False) or train_one_epoch (train=True) gives, with wrong variants.

    Returns ``(answer, variants, smallest gradient seen)``: ``variants`` are the answers of
    likely mistakes (batch means not weighted by size, accuracy after the update), which the
    draw must tell apart from the right one.
    """
    import torch
    from torch import nn

    model = _linear(problem["d"], problem["k"], problem["weight"], problem["bias"])
    optimizer = None
    if train:
        optimizer = (torch.optim.Adam(model.parameters(), lr=problem["lr"]) if problem["optimizer"] == "adam" else
                     torch.optim.SGD(model.parameters(), lr=problem["lr"], momentum=0.9))
    loss_fn = nn.CrossEntropyLoss()
    total, correct, after, seen, means, accuracies, smallest = 0.0, 0, 0, 0, [], [], float("inf")
    for x, y in _batches(problem):
        with torch.set_grad_enabled(train):
            logits = model(x)
            loss = loss_fn(logits, y)
        if train:
            optimizer.zero_grad()
            loss.backward()
            smallest = min(smallest, min(p.grad.abs().min().item() for p in model.parameters()))
            optimizer.step()
            with torch.no_grad():
                after += (model(x).argmax(dim=1) == y).sum().item()
        total += loss.item() * len(y)
        correct += (logits.argmax(dim=1) == y).sum().item()
        seen += len(y)
        means.append(loss.item())
        accuracies.append((logits.argmax(dim=1) == y).float().mean().item())
    answer = [total / seen, correct / seen]
    variants = [[sum(means) / len(means), answer[1]], [answer[0], sum(accuracies) / len(accuracies)]]
    if train:
        variants.append([answer[0], after / seen])
    return answer, variants, smallest, model


@grader_only
def _distinct_problem(rng, train):
    # Redraw until every likely mistake gives another answer than the right one (a smaller last
    # batch can have the same mean loss or accuracy as the others), and, for Adam, until no
    # gradient is so close to 0 that rounding differences between processes change its step.
    while True:
        problem = _problem(rng, optimizer=train)
        answer, variants, smallest, _ = _reference_pass(problem, train)
        if all(max(abs(a - b) for a, b in zip(answer, v)) > 1e-3 for v in variants) and smallest > 1e-4:
            return problem


@grader_only
def _evaluate_expected(problem):
    answer, _, _, _ = _reference_pass(problem, train=False)
    batches = -(-len(problem["y"]) // problem["batch"])
    return close({"result": answer, "calls": batches, "calls_with_grad": 0, "weight": problem["weight"],
                  "bias": problem["bias"]}, rel=1e-5, abs=1e-6)


@grader_only
def _train_expected(problem):
    answer, _, _, model = _reference_pass(problem, train=True)
    return close({"result": answer, "weight": model.weight.detach().reshape(-1).tolist(),
                  "bias": model.bias.detach().tolist(), "training": True}, rel=1e-4, abs=1e-5)


@grader_only
def _backbone(params):
    return _knob(params, "backbone")


# The reference network of each (backbone, stand-in) pair, loaded once per grading process.
_NETWORKS = {}


@grader_only
def _reference_network(name, standin):
    """The run's pretrained network, loaded here: the library's seeded stand-ins when the profile uses them."""
    if (name, standin) not in _NETWORKS:
        _NETWORKS[name, standin] = _load_network(name, standin)
    return _NETWORKS[name, standin]


@grader_only
def _load_network(name, standin):
    import tempfile

    import torch
    import torchvision

    import course_utils.models  # noqa: F401 - registers EfficientNet-Lite with torchvision
    from course_utils.models.architectures import get_architecture
    from course_utils.models.weights import write_standin_checkpoints

    if standin and get_architecture(name).weights is not None:
        # The kernel's "pretrained" weights are stand-ins written by the same seeded function.
        with tempfile.TemporaryDirectory() as home:
            (path,) = write_standin_checkpoints([name], torch_home=home)
            model = torchvision.models.get_model(name, weights=None)
            model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    else:
        model = torchvision.models.get_model(name, weights=torchvision.models.get_model_weights(name).DEFAULT)
    return model.eval()


@grader_only
def _weights_inputs(rng, params):
    return {"backbone": _backbone(params), "size": rng.randint(32, 44), "seed": rng.randrange(10**6),
            "classes": sorted(rng.sample(range(1000), 8))}


@grader_only
def _weights_ok(observed, inputs, params):
    import torch

    from course_utils.notebook.parameters import read_profile

    standin = read_profile(NOTEBOOK, params.get("profile", "grading"))[1]["standin_weights"]
    model = _reference_network(inputs["backbone"], standin)
    size = inputs["size"]
    x = torch.tensor(_numbers(inputs["seed"], 3 * size * size)).reshape(1, 3, size, size)
    with torch.no_grad():
        wanted = model(x)[0, inputs["classes"]]
    pretrained = torch.tensor(observed["pretrained"], dtype=torch.float64)
    scratch = torch.tensor(observed["scratch"], dtype=torch.float64)
    wanted = wanted.double()
    return (observed["width"] == 1000 and pretrained.shape == wanted.shape == scratch.shape
            and torch.allclose(pretrained, wanted, rtol=1e-3, atol=1e-3)
            and (scratch - wanted).abs().max().item() > 1e-2)


@grader_only
def _preprocess_inputs(rng, params):
    return {"backbone": _backbone(params), "height": rng.randint(20, 60), "width": rng.randint(20, 60),
            "seed": rng.randrange(10**6), "where": [[rng.randrange(3), rng.random(), rng.random()] for _ in range(12)]}


@grader_only
def _preprocess_expected(inputs):
    import torch
    import torchvision

    import course_utils.models  # noqa: F401 - registers EfficientNet-Lite with torchvision

    preprocess = torchvision.models.get_model_weights(inputs["backbone"]).DEFAULT.transforms()
    image = torch.tensor(_pixels(inputs["seed"], 3 * inputs["height"] * inputs["width"]), dtype=torch.uint8)
    ready = preprocess(image.reshape(3, inputs["height"], inputs["width"]))
    sample = _sample(ready, inputs["where"])
    means = ready.mean(dim=(1, 2)).tolist()
    return close({"shape": list(ready.shape), "sample": sample, "channel_means": means, "scratch_sample": sample,
                  "scratch_channel_means": means}, rel=1e-4, abs=1e-4)


@grader_only
def _summary_keys(params):
    fractions = _knob(params, "fractions")
    long_epochs = _knob(params, "budget_factor") * _knob(params, "num_epochs")
    keys = [f"{kind}_{fraction:.0%}" for fraction in fractions for kind in ("pretrained_acc", "scratch_acc", "gap")]
    return sorted(keys + [f"scratch_{long_epochs}_epochs_acc_{fractions[0]:.0%}"])


# --------------------------------------------------------------------------- Exercise 2: stratified_subset_indices
@check("stratified_subset_indices keeps each class's share of drawn unbalanced labels, for two drawn fractions",
       points=2, exercise="stratified_subset", inputs=_shares_inputs,
       expect=lambda given, params: satisfies(
           lambda subsets: len(subsets) == 2 and all(_is_stratified(s, given["targets"], f)
                                                     for s, f in zip(subsets, given["fractions"])),
           "two lists of round(fraction x N) distinct valid indices, every class within one item of its share"))
def subset_shares(ns, given):
    return [_indices(ns, given["targets"], fraction, given["seed"]) for fraction in given["fractions"]]


@check("stratified_subset_indices repeats itself for one drawn seed and changes with another", points=1,
       exercise="stratified_subset", inputs=_seeded_inputs,
       expect=lambda given, params: satisfies(
           lambda subsets: len(subsets) == 3 and _seeded_ok(subsets, given),
           "three stratified subsets, the first two equal (same seed) and the third another (other seed)"))
def subset_seeded(ns, given):
    first, other = given["seeds"]
    return [_indices(ns, given["targets"], given["fraction"], seed) for seed in (first, first, other)]


@check("stratified_subset_indices with fraction 1.0 keeps every index of drawn labels once", points=1,
       exercise="stratified_subset",
       inputs=lambda rng, params: {"targets": _labels(rng, rng.randint(2, 5), 1, 40), "seed": rng.randrange(10**6)},
       expect=lambda given, params: equal(list(range(len(given["targets"])))))
def subset_everything(ns, given):
    picked = _indices(ns, given["targets"], 1.0, given["seed"])
    return sorted(picked, key=lambda i: (str(type(i)), i))


# --------------------------------------------------------------------------- Exercise 3: replace_head
@check("replace_head swaps a nested classifier layer of a drawn network and leaves the rest alone", points=2,
       exercise="replace_head", inputs=lambda rng, params: _head_inputs(rng, top_level=False),
       expect=lambda spec, params: _head_expected(spec))
def replace_nested_head(ns, spec):
    from collections import OrderedDict

    from torch import nn

    w1, b1, w2, b2, wh, bh, x = _head_weights(spec)
    d, hidden, second, old = spec["d"], spec["hidden"], spec["second"], spec["old"]
    layers = [nn.Dropout(), _linear(hidden, second, w2, b2), nn.ReLU(), nn.Dropout()] if spec["deep"] else [nn.Dropout()]
    model = nn.Sequential(OrderedDict(features=nn.Sequential(_linear(d, hidden, w1, b1), nn.ReLU()),
                                      classifier=nn.Sequential(*layers, nn.Linear(second, old))))
    returned = ns.call("replace_head", model, spec["path"], spec["new"])
    return _head_observation(model, returned, spec["path"], _rows(wh, spec["new"]), bh, _rows(x, spec["batch"]))


@check("replace_head replaces a top-level head (such as ResNet's fc) of a drawn network", points=1,
       exercise="replace_head", inputs=lambda rng, params: _head_inputs(rng, top_level=True),
       expect=lambda spec, params: _head_expected(spec))
def replace_top_level_head(ns, spec):
    import torch
    from torch import nn

    w1, b1, _, _, wh, bh, x = _head_weights(spec)

    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = _linear(spec["d"], spec["hidden"], w1, b1)
            setattr(self, spec["path"], nn.Linear(spec["hidden"], spec["old"]))

        def forward(self, inputs):
            return getattr(self, spec["path"])(torch.relu(self.body(inputs)))

    model = Tiny()
    returned = ns.call("replace_head", model, spec["path"], spec["new"])
    return _head_observation(model, returned, spec["path"], _rows(wh, spec["new"]), bh, _rows(x, spec["batch"]))


# --------------------------------------------------------------------------- Exercises 4 and 5: train_one_epoch, evaluate
@check("evaluate on a drawn problem: weights each batch by its size, eval mode, no graph, weights unchanged",
       points=1, exercise="evaluate", inputs=lambda rng, params: _distinct_problem(rng, train=False),
       expect=lambda problem, params: _evaluate_expected(problem))
def evaluate_uneven_batches(ns, problem):
    import torch
    from torch import nn

    class Recorder(nn.Module):
        """Counts the forward passes, and those that record a graph."""

        def __init__(self):
            super().__init__()
            self.calls, self.with_grad = 0, 0

        def forward(self, x):
            self.calls += 1
            self.with_grad += int(torch.is_grad_enabled())
            return x

    linear, recorder = _linear(problem["d"], problem["k"], problem["weight"], problem["bias"]), Recorder()
    model = nn.Sequential(nn.Dropout(problem["dropout"]), linear, recorder).train()  # evaluate must switch it off
    result = ns.call("evaluate", model, _batches(problem), nn.CrossEntropyLoss(), "cpu")
    return {"result": result, "calls": recorder.calls, "calls_with_grad": recorder.with_grad,
            "weight": linear.weight.reshape(-1), "bias": linear.bias}


@check("train_one_epoch on a drawn problem and optimizer: running loss and accuracy, and the weights it leaves",
       points=2, exercise="train_one_epoch", inputs=lambda rng, params: _distinct_problem(rng, train=True),
       expect=lambda problem, params: _train_expected(problem))
def train_epoch_drawn(ns, problem):
    import torch
    from torch import nn

    model = _linear(problem["d"], problem["k"], problem["weight"], problem["bias"]).eval()  # it must switch to train
    optimizer = (torch.optim.Adam(model.parameters(), lr=problem["lr"]) if problem["optimizer"] == "adam" else
                 torch.optim.SGD(model.parameters(), lr=problem["lr"], momentum=0.9))
    result = ns.call("train_one_epoch", model, _batches(problem), nn.CrossEntropyLoss(), optimizer, "cpu")
    return {"result": result, "weight": model.weight.reshape(-1), "bias": model.bias, "training": model.training}


# --------------------------------------------------------------------------- Exercise 1: load_imagenet_model
@check("load_imagenet_model: the ImageNet network with the checkpoint's weights (random ones for pretrained=False), "
       "on a drawn input", points=1, exercise="load_imagenet_model", timeout=120, inputs=_weights_inputs,
       expect=lambda given, params: satisfies(
           lambda observed: _weights_ok(observed, given, params),
           "the checkpoint's 1000 ImageNet outputs for pretrained=True and other ones for pretrained=False"))
def load_backbone_weights(ns, given):
    import torch

    size = given["size"]
    x = torch.tensor(_numbers(given["seed"], 3 * size * size)).reshape(1, 3, size, size)
    model, _ = ns.call("load_imagenet_model", given["backbone"], True)
    with torch.no_grad():
        logits = model.eval()(x)
    del model
    scratch, _ = ns.call("load_imagenet_model", given["backbone"], False)
    with torch.no_grad():
        scratch_logits = scratch.eval()(x)
    return {"width": logits.shape[-1], "pretrained": logits[0, given["classes"]],
            "scratch": scratch_logits[0, given["classes"]]}


@check("load_imagenet_model: the weights' preprocessing, the same for pretrained=False, on a drawn image", points=1,
       exercise="load_imagenet_model", timeout=120, inputs=_preprocess_inputs,
       expect=lambda given, params: _preprocess_expected(given))
def load_backbone_preprocess(ns, given):
    import torch

    image = torch.tensor(_pixels(given["seed"], 3 * given["height"] * given["width"]), dtype=torch.uint8)
    image = image.reshape(3, given["height"], given["width"])
    _, preprocess = ns.call("load_imagenet_model", given["backbone"], True)
    _, scratch_preprocess = ns.call("load_imagenet_model", given["backbone"], False)
    ready, scratch_ready = preprocess(image.clone()), scratch_preprocess(image.clone())
    return {"shape": list(ready.shape), "sample": _sample(ready, given["where"]),
            "channel_means": ready.mean(dim=(1, 2)), "scratch_sample": _sample(scratch_ready, given["where"]),
            "scratch_channel_means": scratch_ready.mean(dim=(1, 2))}


# --------------------------------------------------------------------------- the run's record (informational)
@check("the recorded key numbers cover every fraction of the grading run (informational: 0 points)", points=0,
       expect=lambda given, params: equal(_summary_keys(params)))
def summary_keys(ns):
    return sorted(ns["key_numbers"])
