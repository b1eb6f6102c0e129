"""Hidden checks for 03_partial_freezing (instructor-only: never released to students).

Inputs differ from the notebook's self-checks; expected values stay in the grader
(see course_kit/grading/checks.py). 13 points.
"""
from course_kit.grading.checks import check, close, equal, grader_only

NOTEBOOK = "03_partial_freezing"
# Groups with zero parameters (activations, pooling) in between the ones that own some.
HIDDEN_GROUPS = [("stem", 100), ("pool", 0), ("block1", 50), ("act", 0), ("block2", 70), ("head", 10)]


@check("trainable_groups counts only groups that own parameters, from the output side", points=2,
       exercise="trainable_groups", expect=equal([["block1", "block2", "head"], ["head"], ["stem", "block1", "block2", "head"]]))
def groups_from_output(ns):
    return [list(ns.call("trainable_groups", list(HIDDEN_GROUPS), n)) for n in (3, 1, 4)]


@check("trainable_groups refuses n outside 1..(groups with parameters)", points=1, exercise="trainable_groups",
       expect=equal(["ValueError", "ValueError"]))
def groups_out_of_range(ns):
    function = ns["trainable_groups"]
    outcomes = []
    for n in (0, 5):
        try:
            function(list(HIDDEN_GROUPS), n)
            outcomes.append("no error")
        except Exception as error:  # the student's exception type is the observation
            outcomes.append(type(error).__name__)
    return outcomes


@check("trainable_param_groups hands the optimizer every trainable parameter once, and no frozen one", points=1,
       exercise="trainable_param_groups",
       expect=equal({"groups": 1, "lr": [0.05], "values": 10, "frozen_included": False, "each_once": True}))
def param_groups_skip_frozen(ns):
    from torch import nn

    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    for parameter in model[0].parameters():
        parameter.requires_grad = False
    groups = ns.call("trainable_param_groups", model, 0.05)
    params = [p for group in groups for p in group["params"]]
    return {"groups": len(groups), "lr": [group["lr"] for group in groups],
            "values": sum(p.numel() for p in {id(p): p for p in params}.values()),
            "frozen_included": any(not p.requires_grad for p in params),
            "each_once": len({id(p) for p in params}) == len(params)}


@check("batchnorm_drift averages the running-mean change of each BatchNorm layer", points=2,
       exercise="batchnorm_drift", expect=close({"features.3": 1.0, "head.norm": 0.75}, rel=1e-6, abs=1e-9))
def drift_by_layer(ns):
    import torch

    before = {"features.3.weight": torch.ones(4), "features.3.running_mean": torch.zeros(4),
              "features.3.running_var": torch.ones(4), "features.3.num_batches_tracked": torch.tensor(5),
              "head.norm.running_mean": torch.tensor([1.0, 2.0]), "head.norm.running_var": torch.ones(2)}
    after = dict(before, **{"features.3.running_mean": torch.tensor([1.0, -1.0, 2.0, 0.0]),
                            "features.3.running_var": torch.full((4,), 3.0),
                            "head.norm.running_mean": torch.tensor([1.5, 1.0])})
    drift = ns.call("batchnorm_drift", before, after)
    return {str(layer): float(value) for layer, value in dict(drift).items()}


@check("backbone_head_groups gives the head its own learning rate and leaves frozen layers out", points=2,
       exercise="backbone_head_groups",
       # ResNet18 with a 4-class head, stem and layer1 frozen: fc holds 2052 values, the
       # trainable backbone (layer2..layer4) 11,019,008.
       expect=equal({"groups": [[0.0001, 11019008], [0.001, 2052]], "frozen_included": False, "each_once": True}))
def backbone_and_head(ns):
    import course_utils as cu

    model = cu.build_model("resnet18", 4, pretrained=False)
    for module in (model.conv1, model.bn1, model.layer1):
        for parameter in module.parameters():
            parameter.requires_grad = False
    groups = ns.call("backbone_head_groups", model, 1e-4, 1e-3)
    params = [p for group in groups for p in group["params"]]
    return {"groups": sorted([float(group["lr"]), sum(p.numel() for p in group["params"])] for group in groups),
            "frozen_included": any(not p.requires_grad for p in params),
            "each_once": len({id(p) for p in params}) == len(params)}


@check("set_groups_trainable freezes only the named groups of a ResNet34 and pins their BatchNorm", points=2,
       exercise="set_groups_trainable",
       expect=equal({"layer3_frozen": True, "layer3_pinned": True, "layer4_trains": True, "stem_trains": True,
                     "released": True}))
def freeze_resnet34_layer3(ns):
    import course_utils as cu
    from course_utils.freezing import batchnorm_stats_frozen, is_batchnorm

    model = cu.build_model("resnet34", num_classes=3, pretrained=False)
    ns.call("set_groups_trainable", model, ["layer3"], False)
    bns = [m for m in model.layer3.modules() if is_batchnorm(m)]
    observed = {"layer3_frozen": not any(p.requires_grad for p in model.layer3.parameters()),
                "layer3_pinned": all(batchnorm_stats_frozen(m) for m in bns),
                "layer4_trains": all(p.requires_grad for p in model.layer4.parameters()),
                "stem_trains": all(p.requires_grad for p in model.conv1.parameters())}
    ns.call("set_groups_trainable", model, ["layer3"], True)
    observed["released"] = (all(p.requires_grad for p in model.layer3.parameters())
                            and not any(batchnorm_stats_frozen(m) for m in bns))
    return observed


@check("warm_up_then_fine_tune trains the head alone first, then the unfrozen groups, in one history", points=2,
       exercise="warm_up_then_fine_tune",
       expect=equal({"phases": [["fc"], ["layer3", "layer4", "fc"]], "epochs": [1, 2, 3, 4]}))
def two_phases_resnet18(ns):
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    import course_utils as cu

    torch.manual_seed(3)
    model = cu.build_model("resnet18", num_classes=4, pretrained=False)
    data = DataLoader(TensorDataset(torch.randn(8, 3, 32, 32), torch.randint(0, 4, (8,))), batch_size=4)
    phases = []

    def make_optimizer(m):
        phases.append([name for name, modules in cu.layer_groups(m)
                       if any(p.requires_grad for x in modules for p in x.parameters())])
        return torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.01)

    history = ns.call("warm_up_then_fine_tune", model, data, nn.CrossEntropyLoss(), make_optimizer, 1, 4,
                      ["layer3", "layer4"], verbose=False, device="cpu")
    return {"phases": phases, "epochs": list(history["epoch"])}


@grader_only
def _key_counts(params):
    from course_utils.notebook.parameters import read_profile

    profile, _ = read_profile(NOTEBOOK, params.get("profile", "grading"))
    strategies = params.get("strategies") or profile["strategies"]
    models = params.get("sweep_models") or profile["sweep_models"]
    layers = params.get("trainable_layers_list") or profile["trainable_layers_list"]
    return {"A_acc_": len(strategies), "B_val_acc_": len(models) * len(layers), "B_test_acc_": len(models) * len(layers)}


@check("the recorded key numbers cover every strategy and every sweep setting, validation and test", points=1,
       echo=True,
       expect=lambda params: equal(_key_counts(params)))
def summary_counts(ns):
    keys = list(ns["key_numbers"])
    return {prefix: sum(1 for key in keys if str(key).startswith(prefix))
            for prefix in ("A_acc_", "B_val_acc_", "B_test_acc_")}
