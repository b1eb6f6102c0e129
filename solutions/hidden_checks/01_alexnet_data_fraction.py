"""Hidden checks for 01_alexnet_data_fraction (instructor-only: never released to students).

Each check calls the student's exercise function on inputs the notebook and its
self-checks never use, and returns what it observed; the expected values stay in the
grader (see course_kit/grading/checks.py). 12 points.
"""
from course_kit.grading.checks import check, close, equal, grader_only, satisfies

NOTEBOOK = "01_alexnet_data_fraction"
# 100 labels in 4 unbalanced classes (the self-check uses other sizes and fractions).
HIDDEN_TARGETS = [0] * 50 + [1] * 30 + [2] * 15 + [3] * 5


def _subset(ns, fraction, seed):
    import numpy as np

    picked = ns.call("stratified_subset_indices", np.array(HIDDEN_TARGETS), fraction, seed)
    return [int(i) for i in np.asarray(picked).reshape(-1).tolist()]


@grader_only
def _keeps_shares(observed):
    exact = [50 * 0.3, 30 * 0.3, 15 * 0.3, 5 * 0.3]
    return (observed["size"] == 30 and observed["distinct"] and observed["in_range"]
            and all(abs(got - want) < 1 for got, want in zip(observed["per_class"], exact)))


@check("stratified_subset_indices keeps each class's share of an unbalanced label list", points=2,
       exercise="stratified_subset",
       expect=satisfies(_keeps_shares, "30 distinct valid indices with every class within one item of its 30 % share"))
def subset_shares(ns):
    picked = _subset(ns, 0.3, seed=7)
    return {"size": len(picked), "distinct": len(set(picked)) == len(picked),
            "in_range": all(0 <= i < len(HIDDEN_TARGETS) for i in picked),
            "per_class": [sum(1 for i in picked if 0 <= i < len(HIDDEN_TARGETS) and HIDDEN_TARGETS[i] == c)
                          for c in range(4)]}


@check("stratified_subset_indices repeats itself for one seed and changes with another", points=1,
       exercise="stratified_subset", expect=equal({"same_seed_same_subset": True, "other_seed_other_subset": True}))
def subset_seeded(ns):
    first, again, other = _subset(ns, 0.3, 11), _subset(ns, 0.3, 11), _subset(ns, 0.3, 12)
    return {"same_seed_same_subset": first == again, "other_seed_other_subset": first != other}


@check("stratified_subset_indices with fraction 1.0 keeps every index once", points=1, exercise="stratified_subset",
       expect=equal(list(range(100))))
def subset_everything(ns):
    return sorted(_subset(ns, 1.0, seed=0))


@check("replace_head swaps a nested classifier layer and leaves the rest alone", points=2, exercise="replace_head",
       expect=equal({"returns_model": True, "head": "Linear", "in_features": 4, "out_features": 3,
                     "features_untouched": True, "output_shape": [2, 3]}))
def replace_nested_head(ns):
    from collections import OrderedDict

    import torch
    from torch import nn

    model = nn.Sequential(OrderedDict(
        features=nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()),
        classifier=nn.Sequential(nn.Dropout(), nn.Linear(4, 7)),
    ))
    before = dict(model.features.named_parameters())
    returned = ns.call("replace_head", model, "classifier.1", 3)
    head = model.classifier[1]
    with torch.no_grad():
        shape = list(model.eval()(torch.zeros(2, 3, 8, 8)).shape)
    return {"returns_model": returned is model, "head": type(head).__name__,
            "in_features": getattr(head, "in_features", None), "out_features": getattr(head, "out_features", None),
            "features_untouched": all(p is before.get(n) for n, p in model.features.named_parameters()),
            "output_shape": shape}


@check("replace_head works on a top-level head such as ResNet's fc", points=1, exercise="replace_head",
       expect=equal({"in_features": 6, "out_features": 2, "output_shape": [4, 2]}))
def replace_top_level_head(ns):
    import torch
    from torch import nn

    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Linear(5, 6)
            self.fc = nn.Linear(6, 9)

        def forward(self, x):
            return self.fc(self.body(x))

    model = Tiny()
    ns.call("replace_head", model, "fc", 2)
    with torch.no_grad():
        shape = list(model(torch.zeros(4, 5)).shape)
    return {"in_features": getattr(model.fc, "in_features", None),
            "out_features": getattr(model.fc, "out_features", None), "output_shape": shape}


def _two_class_problem():
    """A 3 -> 2 linear model with fixed weights and seven points in batches of 3, 3 and 1."""
    import torch
    from torch import nn

    x = torch.tensor([[1.0, 0.0, -1.0], [0.5, 2.0, 0.0], [-1.0, -1.0, 1.0], [0.0, 1.0, 1.0],
                      [2.0, -0.5, 0.5], [-0.5, 0.5, -2.0], [1.0, 1.0, 1.0]])
    y = torch.tensor([0, 1, 1, 0, 0, 1, 1])
    model = nn.Linear(3, 2)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[0.3, -0.2, 0.1], [-0.1, 0.4, -0.3]]))
        model.bias.copy_(torch.tensor([0.05, -0.05]))
    return model, [(x[:3], y[:3]), (x[3:6], y[3:6]), (x[6:], y[6:])]


def _rounded(pair):
    return [round(float(value), 4) for value in pair]


@check("evaluate weights each batch by its size, in eval mode, without changing the model", points=1,
       exercise="evaluate", expect=close({"result": [0.5959, 0.5714], "weights_unchanged": True}, abs=1e-3))
def evaluate_uneven_batches(ns):
    import torch
    from torch import nn

    model, batches = _two_class_problem()
    before = model.weight.detach().clone()
    result = ns.call("evaluate", model, batches, nn.CrossEntropyLoss(), "cpu")
    return {"result": _rounded(result), "weights_unchanged": bool(torch.equal(before, model.weight.detach()))}


@check("train_one_epoch with Adam: running loss and accuracy, and the weights it leaves", points=2,
       exercise="train_one_epoch", expect=close({"result": [0.654, 0.5714], "loss_after": 0.5388}, abs=1e-3))
def train_epoch_adam(ns):
    import torch
    from torch import nn

    model, batches = _two_class_problem()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    result = ns.call("train_one_epoch", model, batches, nn.CrossEntropyLoss(), optimizer, "cpu")
    x, y = torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])
    with torch.no_grad():
        loss_after = nn.functional.cross_entropy(model(x), y).item()
    return {"result": _rounded(result), "loss_after": round(loss_after, 4)}


@grader_only
def _backbone(params):
    from course_utils.notebook.parameters import read_profile

    return params.get("backbone") or read_profile(NOTEBOOK, params.get("profile", "grading"))[0]["backbone"]


@grader_only
def _loaded(params):
    from course_utils.models.architectures import get_architecture

    mean = [round(v, 3) for v in get_architecture(_backbone(params)).mean]
    return {"outputs": 1000, "mean": mean, "same_preprocess_for_scratch": True}


@check("load_imagenet_model gives the 1000-class network and its weights' preprocessing", points=1,
       exercise="load_imagenet_model", expect=lambda params: equal(_loaded(params)))
def load_backbone(ns):
    from torch import nn

    name = ns["P"].backbone  # the run's backbone: its weights are in place (stand-ins when grading)
    model, preprocess = ns.call("load_imagenet_model", name, True)
    _, scratch_preprocess = ns.call("load_imagenet_model", name, False)
    heads = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return {"outputs": heads[-1].out_features if heads else None,
            "mean": [round(float(v), 3) for v in getattr(preprocess, "mean", [])],
            "same_preprocess_for_scratch": list(getattr(scratch_preprocess, "mean", [])) == list(preprocess.mean)}


@grader_only
def _summary_keys(params):
    from course_utils.notebook.parameters import read_profile

    fractions = params.get("fractions") or read_profile(NOTEBOOK, params.get("profile", "grading"))[0]["fractions"]
    return sorted(f"{kind}_{fraction:.0%}" for fraction in fractions
                  for kind in ("pretrained_acc", "scratch_acc", "gap"))


@check("the recorded key numbers cover every fraction of the grading run", points=1, echo=True,
       expect=lambda params: equal(_summary_keys(params)))
def summary_keys(ns):
    return sorted(ns["key_numbers"])
