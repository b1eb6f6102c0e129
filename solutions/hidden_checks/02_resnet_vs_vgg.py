"""Hidden checks for 02_resnet_vs_vgg (instructor-only: never released to students).

Inputs differ from the notebook's self-checks; expected values stay in the grader
(see course_kit/grading/checks.py). 8 points.
"""
from course_kit.grading.checks import check, equal, grader_only, satisfies

NOTEBOOK = "02_resnet_vs_vgg"


@check("parameter_counts counts parameters, not BatchNorm buffers, and only unfrozen ones as trainable", points=2,
       exercise="parameter_counts", expect=equal([77, 22]))
def counts_with_batchnorm(ns):
    from torch import nn

    model = nn.Sequential(nn.Linear(10, 5), nn.BatchNorm1d(5), nn.Linear(5, 2))
    for parameter in model[0].parameters():
        parameter.requires_grad = False
    return list(ns.call("parameter_counts", model))


@check("parameter_counts counts a layer used twice only once", points=1, exercise="parameter_counts",
       expect=equal([16, 16]))
def counts_shared_layer(ns):
    from torch import nn

    shared = nn.Linear(4, 4, bias=False)
    return list(ns.call("parameter_counts", nn.Sequential(shared, nn.ReLU(), shared)))


class _Timed:
    """Builds (inside the kernel) a model that sleeps a known time per call and records how it was called."""

    @staticmethod
    def run(ns):
        import time

        import torch
        from torch import nn

        class Probe(nn.Module):
            def __init__(self):
                super().__init__()
                self.linear = nn.Linear(1, 1)
                self.dropout = nn.Dropout()
                self.calls = 0
                self.calls_with_grad = 0

            def forward(self, x):
                self.calls += 1
                self.calls_with_grad += int(torch.is_grad_enabled())
                time.sleep(0.02)
                return self.dropout(self.linear(x[:, :1]))

        probe = Probe()
        probe.train()
        probe.dropout.eval()
        speed = ns.call("images_per_second", probe, torch.zeros(50, 1), 4)
        return probe, speed


@check("images_per_second runs a warm-up plus the repeats without gradients and restores every layer's mode",
       points=1, exercise="images_per_second",
       expect=equal({"enough_calls": True, "no_gradients": True, "modes_after": [True, False]}))
def throughput_protocol(ns):
    probe, _ = _Timed.run(ns)
    return {"enough_calls": probe.calls >= 5, "no_gradients": probe.calls_with_grad == 0,
            "modes_after": [probe.training, probe.dropout.training]}


@check("images_per_second measures images per second (50 images at 20 ms per call)", points=1,
       exercise="images_per_second",
       # 2500 images/s at most (each call sleeps 20 ms); a loaded machine may be several times slower,
       # but per-batch answers (~50/s) or seconds (~0.02) stay far below.
       expect=satisfies(lambda speed: isinstance(speed, (int, float)) and 500 <= speed <= 2625,
                        "about 2500 images per second"))
def throughput_value(ns):
    _, speed = _Timed.run(ns)
    return float(speed)


@check("KeepBest follows a run resumed at epoch 3: epoch numbers from the records, ties keep the earlier", points=2,
       exercise="keep_best", expect=equal({"stops": [False, False, False, False, False, True], "best_epoch": 5,
                                           "restored": 5.0}))
def keep_best_resumed_run(ns):
    import torch
    from torch import nn

    keeper = ns["KeepBest"](patience=3)
    model = nn.Linear(1, 1)
    stops = []
    for epoch, acc in zip(range(3, 9), [0.5, 0.6, 0.8, 0.75, 0.8, 0.7]):
        with torch.no_grad():
            model.weight.fill_(float(epoch))
        stops.append(bool(keeper.update({"epoch": epoch, "val_acc": acc}, model)))
    keeper.restore_best(model)
    return {"stops": stops, "best_epoch": keeper.best_epoch, "restored": float(model.weight.item())}


@grader_only
def _summary_keys(params):
    from course_utils.notebook.parameters import read_profile

    profile, _ = read_profile(NOTEBOOK, params.get("profile", "grading"))
    compare = params.get("compare_models") or profile["compare_models"]
    depth = params.get("depth_models") or profile["depth_models"]
    keys = [f"part1_{m}_{k}" for m in compare for k in ("test_acc", "seconds_per_epoch", "images_per_second")]
    keys += [f"part2_{m}_{k}" for m in depth for k in ("test_acc_at_best_epoch", "best_val_acc", "last_val_acc")]
    return sorted(keys)


@check("the recorded key numbers cover every model of the grading run", points=1, echo=True,
       expect=lambda params: equal(_summary_keys(params)))
def summary_keys(ns):
    return sorted(ns["key_numbers"])
