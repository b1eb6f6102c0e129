"""Hidden checks for 03_partial_freezing (instructor-only: never released to students).

13 points, every one earned by calling the student's functions on inputs drawn in the
grader for each submission; what a correct answer gives comes from the references below,
run in the grader on the same inputs (see course_kit/grading/checks.py):

* trainable_groups: 2 (drawn group lists, several n) + 1 (n outside the range, next to a valid n);
* set_groups_trainable: 2 (freeze, then release, drawn groups of a drawn network);
* trainable_param_groups: 1; batchnorm_drift: 2; backbone_head_groups: 2;
* warm_up_then_fine_tune: 2 (drawn epochs, unfrozen groups and BatchNorm pinning);
* the notebook's ``freeze(model, n)`` on your two functions: 1 (it replaces the old check of
  the run's ``key_numbers``, which a stub notebook could fake);
* the run's ``key_numbers`` cover every setting: 0 points, informational (notebook state).

The networks are miniatures built in the probe (a few thousand parameters: the kernel must
fit 700 MB and the checks run on a busy CPU) with the kit's ResNet or AlexNet layer groups:
``cu.layer_groups`` reads only the group attributes (``conv1``, ``bn1``, ``layer1``..``layer4``,
``fc``; or ``features`` and ``classifier``) and the recorded ``architecture_name``.
"""
from course_kit.grading.checks import check, close, equal, grader_only

NOTEBOOK = "03_partial_freezing"
RESNET_GROUPS = ["stem", "layer1", "layer2", "layer3", "layer4", "fc"]
# Names for drawn group lists (trainable_groups works on names and counts only).
GROUP_NAME_POOL = ["stem", "conv_a", "conv_b", "block1", "block2", "block3", "block4", "stage1", "stage2",
                   "stage3", "mixer", "trunk", "neck", "proj", "pool", "flatten", "dropout", "act", "gap",
                   "reshape", "head", "classifier", "fc", "logits"]
# Names that are no layer group of a ResNet-shaped network.
NOT_A_GROUP = ["layer5", "layer0", "head", "block2", "fc1", "features", "conv1", "classifier"]


# --------------------------------------------------------------------------- miniature networks (probe and grader)
def tiny_network(spec):
    """A miniature ResNet- or AlexNet-shaped network with the kit's layer groups, from a drawn ``spec``.

    ResNet-shaped: ``stem`` (conv1 + bn1), ``layer1``..``layer4`` (``depths`` conv + BatchNorm
    blocks each), ``fc``. AlexNet-shaped: ``conv1``..``convK`` in ``features``, ``fc1``..``fcM``
    in ``classifier``. Parameters come from ``torch.manual_seed(spec["seed"])``.
    """
    import torch
    from torch import nn

    torch.manual_seed(spec["seed"])
    widths, classes = spec["widths"], spec["classes"]
    if spec["family"] == "resnet":
        def stage(width_in, width_out, depth):
            layers = []
            for i in range(depth):
                layers += [nn.Conv2d(width_in if i == 0 else width_out, width_out, 3, padding=1, bias=False),
                           nn.BatchNorm2d(width_out), nn.ReLU()]
            return nn.Sequential(*layers)

        class TinyResNet(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv1 = nn.Conv2d(3, widths[0], 3, padding=1, bias=False)
                self.bn1 = nn.BatchNorm2d(widths[0])
                self.relu = nn.ReLU()
                for i in range(1, 5):
                    setattr(self, f"layer{i}", stage(widths[i - 1], widths[i], spec["depths"][i - 1]))
                self.avgpool = nn.AdaptiveAvgPool2d(1)
                self.fc = nn.Linear(widths[4], classes)

            def forward(self, x):
                x = self.relu(self.bn1(self.conv1(x)))
                x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
                return self.fc(torch.flatten(self.avgpool(x), 1))

        model = TinyResNet()
        model.architecture_name = "resnet18"
        return model

    class TinyAlexNet(nn.Module):
        def __init__(self):
            super().__init__()
            convs = spec["convs"]
            layers, width_in = [], 3
            for width in widths[:convs]:
                layers += [nn.Conv2d(width_in, width, 3, padding=1), nn.ReLU()]
                width_in = width
            self.features = nn.Sequential(*layers)
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            layers = []
            for width in widths[convs:] + [classes]:
                layers += [nn.Linear(width_in, width), nn.ReLU()]
                width_in = width
            self.classifier = nn.Sequential(*layers[:-1])

        def forward(self, x):
            return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))

    model = TinyAlexNet()
    model.architecture_name = "alexnet"
    return model


def group_states(model):
    """Per layer group: ``[name, trainable parameter values, BatchNorm layers with pinned statistics]``."""
    import course_utils as cu
    from course_utils.freezing import batchnorm_stats_frozen, is_batchnorm

    rows = []
    for name, modules in cu.layer_groups(model):
        trainable = sum(p.numel() for m in modules for p in m.parameters() if p.requires_grad)
        pinned = sum(1 for m in modules for b in m.modules() if is_batchnorm(b) and batchnorm_stats_frozen(b))
        rows.append([name, int(trainable), pinned])
    return rows


def moved_groups(model, seed):
    """The groups whose BatchNorm running means move in one training-mode forward pass of a drawn batch."""
    import torch

    import course_utils as cu

    groups = cu.layer_groups(model)
    before = {name: [b.clone() for m in modules for b in m.buffers() if b.dtype.is_floating_point]
              for name, modules in groups}
    generator = torch.Generator().manual_seed(seed)
    model.train()
    with torch.no_grad():
        model(torch.randn(4, 3, 8, 8, generator=generator) * 2 + 1)
    return [name for name, modules in groups
            if any(not torch.equal(a, b) for a, b in zip(before[name], [b for m in modules for b in m.buffers()
                                                                         if b.dtype.is_floating_point]))]


def freeze_groups(model, names, pin=False):
    """Freeze the named groups the kit's way (``requires_grad`` off; BatchNorm statistics pinned if ``pin``)."""
    import course_utils as cu

    for name, modules in cu.layer_groups(model):
        if name in names:
            for module in modules:
                for parameter in module.parameters():
                    parameter.requires_grad = False
                if pin:
                    cu.freezing.freeze_batchnorm_stats(module)


def parameter_names(model, tensors):
    """Sorted names of ``tensors`` as parameters of ``model`` (``?`` for a tensor that is none of them)."""
    names = {id(p): name for name, p in model.named_parameters()}
    return sorted(names.get(id(t), "?") for t in tensors)


def warm_up_run(ns, run):
    """One call of the student's warm_up_then_fine_tune; what trained and moved at each optimizer it asked for."""
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    import course_utils as cu

    model = tiny_network(run["model"])
    generator = torch.Generator().manual_seed(run["data_seed"])
    data = TensorDataset(torch.randn(8, 3, 8, 8, generator=generator),
                         torch.randint(0, run["model"]["classes"], (8,), generator=generator))
    start = {name: [t.detach().clone() for m in modules for t in m.state_dict().values()]
             for name, modules in cu.layer_groups(model)}
    phases = []

    def make_optimizer(m):
        groups = cu.layer_groups(m)
        phases.append({"trains": [name for name, modules in groups
                                  if any(p.requires_grad for x in modules for p in x.parameters())],
                       "moved": [name for name, modules in groups
                                 if any(not torch.equal(a, b.detach()) for a, b in
                                        zip(start[name], [t for x in modules for t in x.state_dict().values()]))]})
        return torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.05)

    history = ns.call("warm_up_then_fine_tune", model, DataLoader(data, batch_size=4), nn.CrossEntropyLoss(),
                      make_optimizer, run["warmup"], run["epochs"], list(run["unfreeze"]),
                      pin_batchnorm=run["pin"], verbose=False, device="cpu")
    return {"phases": phases, "epochs": [int(epoch) for epoch in history["epoch"]], "end": group_states(model)}


# --------------------------------------------------------------------------- draws and references (grader only)
@grader_only
def draw_group_list(rng):
    """(name, count) pairs: 4-7 groups own parameters, 2-3 own none; a parameterless one sits right before the head."""
    owning, empty = rng.randint(4, 7), rng.randint(2, 3)
    names = rng.sample(GROUP_NAME_POOL, owning + empty)
    owns = [True] * (owning - 1) + [False] * (empty - 1)
    rng.shuffle(owns)
    owns += [False, True]
    return [[name, rng.randint(1, 3_000_000) if own else 0] for name, own in zip(names, owns)]


@grader_only
def reference_trainable_groups(groups, n):
    owning = [name for name, count in groups if count > 0]
    if not 1 <= n <= len(owning):
        raise ValueError(f"n={n} is out of range: choose 1..{len(owning)}")
    return owning[-n:]


@grader_only
def draw_counting(rng, params):
    groups = draw_group_list(rng)
    owning = sum(1 for _, count in groups if count > 0)
    # n=1, every group, and two in between: each differs from the input-side and the
    # count-every-group answers because a parameterless group sits right before the head.
    ns = [1, owning] + rng.sample(range(2, owning), 2)
    rng.shuffle(ns)
    return {"groups": groups, "ns": ns}


@grader_only
def draw_out_of_range(rng, params):
    groups = draw_group_list(rng)
    owning = sum(1 for _, count in groups if count > 0)
    ns = [rng.randint(-3, 0), owning + rng.randint(1, 3), rng.randint(1, owning)]
    rng.shuffle(ns)
    return {"groups": groups, "ns": ns}


@grader_only
def expected_out_of_range(given, params):
    owning = sum(1 for _, count in given["groups"] if count > 0)
    return equal([{"names": reference_trainable_groups(given["groups"], n)} if 1 <= n <= owning
                  else {"raised": "ValueError", "range_in_message": True} for n in given["ns"]])


@grader_only
def draw_resnet(rng):
    return {"family": "resnet", "widths": [rng.randint(2, 6) for _ in range(5)],
            "depths": [rng.randint(1, 2) for _ in range(4)], "classes": rng.randint(2, 5),
            "seed": rng.randint(0, 10**6)}


@grader_only
def draw_network(rng):
    if rng.random() < 0.5:
        return draw_resnet(rng)
    convs, linears = rng.randint(2, 4), rng.randint(1, 3)
    return {"family": "alexnet", "convs": convs, "widths": [rng.randint(2, 6) for _ in range(convs + linears - 1)],
            "classes": rng.randint(2, 5), "seed": rng.randint(0, 10**6)}


@grader_only
def group_names_of(spec):
    if spec["family"] == "resnet":
        return list(RESNET_GROUPS)
    linears = len(spec["widths"]) - spec["convs"] + 1
    return [f"conv{i}" for i in range(1, spec["convs"] + 1)] + [f"fc{i}" for i in range(1, linears + 1)]


@grader_only
def draw_frozen_network(rng, params):
    """A network, some of its backbone groups to freeze (never all), its backbone groups, and three rates."""
    spec = draw_network(rng)
    backbone = group_names_of(spec)[:-1]
    frozen = rng.sample(backbone, rng.randint(1, len(backbone) - 1))
    backbone_lr = round(10 ** rng.uniform(-5, -3.5), 9)
    return {"model": spec, "frozen": frozen, "backbone": backbone, "backbone_lr": backbone_lr,
            "head_lr": round(backbone_lr * rng.randint(5, 50), 9), "lr": round(10 ** rng.uniform(-3, -1), 6)}


@grader_only
def reference_backbone_head_groups(model, backbone_lr, head_lr):
    import course_utils as cu

    owning = [(name, modules) for name, modules in cu.layer_groups(model)
              if any(True for m in modules for _ in m.parameters())]
    *backbone, (_, head_modules) = owning

    def trainable(modules):
        return [p for m in modules for p in m.parameters() if p.requires_grad]

    groups = [{"params": [p for _, modules in backbone for p in trainable(modules)], "lr": backbone_lr},
              {"params": trainable(head_modules), "lr": head_lr}]
    return [g for g in groups if g["params"]]


@grader_only
def expected_param_groups(given, params):
    model = tiny_network(given["model"])
    freeze_groups(model, given["frozen"])
    return close([[given["lr"], parameter_names(model, [p for p in model.parameters() if p.requires_grad])]],
                 rel=1e-9, abs=0)


@grader_only
def expected_backbone_head(given, params):
    observed = []
    for frozen in (given["frozen"], given["backbone"]):
        model = tiny_network(given["model"])
        freeze_groups(model, frozen)
        groups = reference_backbone_head_groups(model, given["backbone_lr"], given["head_lr"])
        observed.append(sorted([g["lr"], parameter_names(model, g["params"])] for g in groups))
    return close(observed, rel=1e-9, abs=0)


@grader_only
def draw_drift_states(rng, params):
    """State dicts with 2-4 BatchNorm layers among other entries; one layer's running mean does not move.

    Each moving layer's changes have both signs, so a mean of signed changes is never the answer.
    """
    prefixes = rng.sample(["features", "layer1.0", "layer2.1", "block", "stage3.2", "trunk", "neck", "head"], 4)
    count = rng.randint(2, 4)
    still = rng.randrange(count)
    before, after = [], []
    for index in range(count):
        layer = f"{prefixes[index]}.bn{rng.randint(1, 3)}"
        channels = rng.randint(3, 6)
        conv = [round(rng.uniform(-1, 1), 3) for _ in range(channels)]
        mean = [round(rng.uniform(-2, 2), 3) for _ in range(channels)]
        changes = [round(rng.uniform(0.1, 2.0), 3) * sign for sign in [1, -1] + [rng.choice([1, -1])
                                                                                for _ in range(channels - 2)]]
        if index == still:
            changes = [0.0] * channels
        var = [round(rng.uniform(0.5, 2), 3) for _ in range(channels)]
        entries = [(f"{prefixes[index]}.conv.weight", conv, [v + 0.5 for v in conv]),
                   (f"{layer}.weight", [1.0] * channels, [round(rng.uniform(0.5, 1.5), 3) for _ in range(channels)]),
                   (f"{layer}.bias", [0.0] * channels, [round(rng.uniform(-0.5, 0.5), 3) for _ in range(channels)]),
                   (f"{layer}.running_mean", mean, [round(m + c, 3) for m, c in zip(mean, changes)]),
                   (f"{layer}.running_var", var, [round(v * rng.uniform(1.5, 3), 3) for v in var]),
                   (f"{layer}.num_batches_tracked", rng.randint(0, 50), rng.randint(60, 500))]
        before += [[key, old] for key, old, _ in entries]
        after += [[key, new] for key, _, new in entries]
    return {"before": before, "after": after}


@grader_only
def expected_drift(given, params):
    after = dict((key, value) for key, value in given["after"])
    suffix = ".running_mean"
    return close([[key[:-len(suffix)], sum(abs(a - b) for a, b in zip(after[key], old)) / len(old)]
                  for key, old in given["before"] if key.endswith(suffix)], rel=1e-5, abs=1e-6)


@grader_only
def reference_set_groups_trainable(model, names, trainable):
    import course_utils as cu

    groups = dict(cu.layer_groups(model))
    for name in names:
        for module in groups[name]:
            for p in module.parameters():
                p.requires_grad = trainable
            cu.freezing.freeze_batchnorm_stats(module, frozen=not trainable)


@grader_only
def draw_freezing(rng, params):
    frozen = rng.sample(RESNET_GROUPS, rng.randint(2, 4))
    return {"model": draw_resnet(rng), "freeze": frozen, "release": rng.sample(frozen, rng.randint(1, len(frozen) - 1)),
            "unknown": rng.choice(NOT_A_GROUP),
            "batch_seed": rng.randint(0, 10**6)}


@grader_only
def expected_freezing(given, params):
    model = tiny_network(given["model"])
    reference_set_groups_trainable(model, given["freeze"], False)
    frozen = group_states(model)
    moved = moved_groups(model, given["batch_seed"])
    reference_set_groups_trainable(model, given["release"], True)
    return equal({"after_freeze": frozen, "moved": moved, "after_release": group_states(model),
                  "unknown_name": {"raised": "ValueError", "lists_groups": True}})


@grader_only
def draw_warm_up(rng, params):
    """Two runs on drawn networks: drawn epochs and unfrozen groups, BatchNorm pinned in one of them only."""
    pin = rng.random() < 0.5
    runs = []
    for pin_batchnorm in (pin, not pin):
        warmup = rng.randint(1, 2) if not runs else 1
        runs.append({"model": draw_resnet(rng), "warmup": warmup, "epochs": warmup + (rng.randint(1, 2) if not runs else 1),
                     "unfreeze": rng.sample(RESNET_GROUPS[:-1], rng.randint(1, 4)), "pin": pin_batchnorm,
                     "data_seed": rng.randint(0, 10**6)})
    return runs


@grader_only
def reference_warm_up(run):
    import course_utils as cu

    model = tiny_network(run["model"])
    reference_set_groups_trainable(model, RESNET_GROUPS[:-1], False)  # the warm-up: the head alone
    reference_set_groups_trainable(model, run["unfreeze"], True)
    if run["pin"]:
        cu.freezing.freeze_batchnorm_stats(model)
    unfrozen = [name for name in RESNET_GROUPS[:-1] if name in run["unfreeze"]]
    return {"phases": [{"trains": ["fc"], "moved": []}, {"trains": unfrozen + ["fc"], "moved": ["fc"]}],
            "epochs": list(range(1, run["epochs"] + 1)), "end": group_states(model)}


@grader_only
def draw_freeze_n(rng, params):
    return {"model": draw_resnet(rng), "n": rng.randint(1, 5),
            "frozen_before": rng.sample(RESNET_GROUPS, rng.randint(1, 3))}


@grader_only
def expected_freeze_n(given, params):
    model = tiny_network(given["model"])
    reference_set_groups_trainable(model, RESNET_GROUPS[:-given["n"]], False)
    return equal(group_states(model))


@grader_only
def _key_counts(params):
    from course_utils.notebook.parameters import read_profile

    profile, _ = read_profile(NOTEBOOK, params.get("profile", "grading"))
    strategies = params.get("strategies") or profile["strategies"]
    models = params.get("sweep_models") or profile["sweep_models"]
    layers = params.get("trainable_layers_list") or profile["trainable_layers_list"]
    return {"A_acc_": len(strategies), "B_val_acc_": len(models) * len(layers), "B_test_acc_": len(models) * len(layers)}


# --------------------------------------------------------------------------- the checks (probes run in the kernel)
@check("trainable_groups counts only groups that own parameters, from the output side, on drawn group lists",
       points=2, exercise="trainable_groups", inputs=draw_counting,
       expect=lambda given, params: equal({"results": [reference_trainable_groups(given["groups"], n)
                                                       for n in given["ns"]], "input_unchanged": True}))
def groups_from_output(ns, given):
    groups = [(name, count) for name, count in given["groups"]]
    original = list(groups)
    results = [list(ns.call("trainable_groups", groups, n)) for n in given["ns"]]
    return {"results": results, "input_unchanged": groups == original}


@check("trainable_groups raises a ValueError that gives the range for n outside 1..(groups with parameters), "
       "and answers a valid n", points=1, exercise="trainable_groups", inputs=draw_out_of_range,
       expect=expected_out_of_range)
def groups_out_of_range(ns, given):
    function = ns["trainable_groups"]
    owning = str(sum(1 for _, count in given["groups"] if count > 0))
    outcomes = []
    for n in given["ns"]:
        try:
            outcomes.append({"names": list(function([(name, count) for name, count in given["groups"]], n))})
        except ValueError as error:
            outcomes.append({"raised": "ValueError", "range_in_message": owning in BaseException.__str__(error)})
        except Exception:  # any other exception is the wrong answer, not a crash of the check
            outcomes.append({"raised": "another exception"})
    return outcomes


@check("trainable_param_groups hands the optimizer every trainable parameter of a drawn network once, and no "
       "frozen one", points=1, exercise="trainable_param_groups", inputs=draw_frozen_network,
       expect=expected_param_groups)
def param_groups_skip_frozen(ns, given):
    model = tiny_network(given["model"])
    freeze_groups(model, given["frozen"])
    groups = ns.call("trainable_param_groups", model, given["lr"])
    return [[float(group["lr"]), parameter_names(model, list(group["params"]))] for group in groups]


@check("batchnorm_drift gives each BatchNorm layer's mean absolute running-mean change, in state-dict order",
       points=2, exercise="batchnorm_drift", inputs=draw_drift_states, expect=expected_drift)
def drift_by_layer(ns, given):
    import torch

    def state(entries):
        return {key: torch.tensor(value) for key, value in entries}

    drift = ns.call("batchnorm_drift", state(given["before"]), state(given["after"]))
    return [[str(layer), float(value)] for layer, value in dict(drift).items()]


@check("backbone_head_groups gives the head its own learning rate and leaves frozen layers (and an empty "
       "backbone) out, on a drawn network", points=2, exercise="backbone_head_groups", inputs=draw_frozen_network,
       expect=expected_backbone_head)
def backbone_and_head(ns, given):
    observed = []
    for frozen in (given["frozen"], given["backbone"]):
        model = tiny_network(given["model"])
        freeze_groups(model, frozen)
        groups = ns.call("backbone_head_groups", model, given["backbone_lr"], given["head_lr"])
        observed.append(sorted([float(group["lr"]), parameter_names(model, list(group["params"]))]
                               for group in groups))
    return observed


@check("set_groups_trainable freezes and pins drawn groups, then releases some, and refuses an unknown name",
       points=2, exercise="set_groups_trainable", inputs=draw_freezing, expect=expected_freezing)
def freeze_and_release(ns, given):
    model = tiny_network(given["model"])
    ns.call("set_groups_trainable", model, list(given["freeze"]), False)
    observed = {"after_freeze": group_states(model), "moved": moved_groups(model, given["batch_seed"])}
    ns.call("set_groups_trainable", model, list(given["release"]), True)
    observed["after_release"] = group_states(model)
    try:
        ns["set_groups_trainable"](model, [given["unknown"]], False)
        observed["unknown_name"] = {"raised": "nothing"}
    except ValueError as error:
        message = BaseException.__str__(error)
        observed["unknown_name"] = {"raised": "ValueError",
                                    "lists_groups": all(name in message for name in RESNET_GROUPS)}
    except Exception:  # any other exception is the wrong answer, not a crash of the check
        observed["unknown_name"] = {"raised": "another exception"}
    return observed


@check("warm_up_then_fine_tune trains the head alone first, then the drawn unfrozen groups, in one history "
       "(with and without pin_batchnorm)", points=2, exercise="warm_up_then_fine_tune", inputs=draw_warm_up,
       expect=lambda runs, params: equal([reference_warm_up(run) for run in runs]), timeout=90)
def two_phases(ns, runs):
    return [warm_up_run(ns, run) for run in runs]


@check("the notebook's freeze(model, n), built on your two functions, keeps exactly the last n groups trainable",
       points=1, inputs=draw_freeze_n, expect=expected_freeze_n)
def freeze_last_n(ns, given):
    model = tiny_network(given["model"])
    freeze_groups(model, given["frozen_before"], pin=True)  # freeze() must start from a model that trains everything
    ns.call("freeze", model, given["n"])
    return group_states(model)


@check("the recorded key numbers cover every strategy and every sweep setting, validation and test "
       "(informational: the run's own record)", points=0,
       expect=lambda given, params: equal(_key_counts(params)))
def summary_counts(ns):
    keys = list(ns["key_numbers"])
    return {prefix: sum(1 for key in keys if str(key).startswith(prefix))
            for prefix in ("A_acc_", "B_val_acc_", "B_test_acc_")}
