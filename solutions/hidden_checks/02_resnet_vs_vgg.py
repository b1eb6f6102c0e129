"""Hidden checks for 02_resnet_vs_vgg (instructor-only: never released to students).

Every scored check calls the student's exercise code on inputs drawn for each submission
(layer sizes and what is frozen, batch sizes, repeats and per-call delays, validation
accuracies and patience) and returns what came back: counts, calls, modes, images per second,
stop decisions and restored weights. What a correct answer gives for those inputs is computed
here, in the grader, by the references marked ``@grader_only`` (they mirror the solution
notebook's exercises); none of it enters the student's kernel (see course_kit/grading/checks.py).

8 points: parameter_counts 3 (2 + 1), images_per_second 2 (1 for the protocol, 1 for the
number), KeepBest 3 (2 for a resumed run with patience, 1 without patience).
``summary_keys`` is worth 0 points: it reads the notebook's own ``key_numbers``, which a
notebook can set to anything, so it only tells the student (and the instructor) whether the
run recorded every number; its point went to the KeepBest check without patience.

images_per_second is timed on a model that sleeps a drawn time per call: a busy machine can
only make calls slower, so the accepted range reaches from the exact value (plus 5 %) down to
a quarter of it. Of the two drawn measurements, one has a timed call far slower than the rest
(an answer from the mean or the total falls below the range), the other one a call four times
faster (an answer from the fastest call lands above it).
"""
from course_kit.grading.checks import check, equal, grader_only, satisfies

NOTEBOOK = "02_resnet_vs_vgg"
# The accepted images-per-second range: [exact / SLOWEST, exact * FASTEST], exact = images / sleep.
SLOWEST = 4.0
FASTEST = 1.05


# --------------------------------------------------------------------------- shared with the probes (no answers)
def _layered(spec):
    """Linear -> BatchNorm1d -> ReLU -> Linear with the drawn sizes, the drawn tensors frozen."""
    from torch import nn

    model = nn.Sequential(nn.Linear(spec["a"], spec["b"], bias=spec["bias"]), nn.BatchNorm1d(spec["b"]), nn.ReLU(),
                          nn.Linear(spec["b"], spec["c"]))
    _freeze(model, spec["frozen"])
    return model


def _shared(spec):
    """One square Linear used twice, then an output layer, the drawn tensors frozen."""
    from torch import nn

    shared = nn.Linear(spec["n"], spec["n"], bias=spec["bias"])
    model = nn.Sequential(shared, nn.ReLU(), shared, nn.ReLU(), nn.Linear(spec["n"], spec["m"]))
    _freeze(model, spec["frozen"])
    return model


def _freeze(model, names):
    for name, parameter in model.named_parameters():
        if name in names:
            parameter.requires_grad = False


def _timed_model(schedule, modes):
    """A model that sleeps ``schedule[i]`` seconds in its i-th call and records how it was called.

    ``modes`` are the training flags of the model and its three layers before the call.
    """
    import time

    import torch
    from torch import nn

    class Timed(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear, self.norm, self.dropout = nn.Linear(1, 1), nn.BatchNorm1d(1), nn.Dropout()
            self.calls, self.with_grad, self.in_training, self.sizes = 0, 0, 0, set()

        def forward(self, x):
            self.with_grad += int(torch.is_grad_enabled())
            self.in_training += int(any(m.training for m in self.modules()))
            self.sizes.add(int(x.shape[0]))
            time.sleep(schedule[min(self.calls, len(schedule) - 1)])
            self.calls += 1
            return self.dropout(self.norm(self.linear(x[:, :1])))

    model = Timed()
    for module, training in zip(_layers(model), modes):
        module.training = training
    return model


def _layers(model):
    return [model, model.linear, model.norm, model.dropout]


def _epoch_weights(seed, count):
    """Distinct reproducible (weight, bias) pairs, one per epoch of a drawn run (eighths: exact in float32)."""
    import random

    rng = random.Random(seed)
    return [[rng.randint(-24, 24) / 8 + i * 10.0, rng.randint(-24, 24) / 8] for i in range(count)]


def _feed(keeper, model, epochs, accuracies, weights, stop_early):
    """Feed a run to a KeepBest: the epoch's weights go into the model before each update."""
    import torch

    stops = []
    for epoch, accuracy, (weight, bias) in zip(epochs, accuracies, weights):
        with torch.no_grad():
            model.weight.fill_(weight)
            model.bias.fill_(bias)
        stop = keeper.update({"epoch": epoch, "val_acc": accuracy, "train_loss": 1.0 / epoch}, model)
        stops.append(bool(stop))
        if stops[-1] and stop_early:
            break
    return stops


# --------------------------------------------------------------------------- references (grader only)
@grader_only
def _knob(params, name):
    """A knob of the graded run: the ``-p`` value, else the profile's."""
    from course_utils.notebook.parameters import read_profile

    if params.get(name) is not None:
        return params[name]
    return read_profile(NOTEBOOK, params.get("profile", "grading"))[0][name]


@grader_only
def _layered_inputs(rng, params):
    a, b, c = rng.randint(3, 12), rng.randint(3, 12), rng.randint(2, 6)
    names = ["0.weight", "1.weight", "1.bias", "3.weight", "3.bias"]
    bias = rng.random() < 0.5
    if bias:
        names.append("0.bias")
    frozen = rng.sample(names, rng.randint(1, len(names) - 1))  # never none, never all
    return {"a": a, "b": b, "c": c, "bias": bias, "frozen": frozen}


@grader_only
def _layered_counts(spec):
    a, b, c = spec["a"], spec["b"], spec["c"]
    sizes = {"0.weight": a * b, "0.bias": b, "1.weight": b, "1.bias": b, "3.weight": b * c, "3.bias": c}
    if not spec["bias"]:
        del sizes["0.bias"]
    total = sum(sizes.values())
    return [total, total - sum(sizes[name] for name in spec["frozen"])]


@grader_only
def _shared_inputs(rng, params):
    n, m, bias = rng.randint(3, 9), rng.randint(2, 6), rng.random() < 0.5
    names = ["0.weight", "4.weight", "4.bias"] + (["0.bias"] if bias else [])
    return {"n": n, "m": m, "bias": bias, "frozen": rng.sample(names, rng.randint(1, len(names) - 1))}


@grader_only
def _shared_counts(spec):
    n, m = spec["n"], spec["m"]
    sizes = {"0.weight": n * n, "0.bias": n, "4.weight": n * m, "4.bias": m}
    if not spec["bias"]:
        del sizes["0.bias"]
    total = sum(sizes.values())
    return [total, total - sum(sizes[name] for name in spec["frozen"])]


@grader_only
def _mixed_modes(rng):
    """Training flags for the model and its three layers, never all the same (a blanket .train()/.eval() fails)."""
    while True:
        modes = [rng.random() < 0.5 for _ in range(4)]
        if len(set(modes)) == 2:
            return modes


@grader_only
def _protocol_inputs(rng, params):
    return {"images": rng.randint(2, 40), "repeats": rng.randint(2, 9), "modes": _mixed_modes(rng),
            "sleep": 0.002}


@grader_only
def _timing_case(rng, images, sleep, outlier):
    """One measurement: timed calls ``sleep`` long but one, far slower (``outlier="slow"``) or faster ("fast")."""
    repeats = rng.randint(5, 7)
    schedule = [sleep] * (repeats + 1)  # the warm-up call, then the timed ones
    odd = rng.randint(1, repeats)
    if outlier == "slow":
        # The mean of the timed calls is then at least 5.8 x sleep: below the range's lower end.
        schedule[odd] = round(5 * repeats * sleep, 4)
    else:
        # Images over this call's time are 4 x the exact answer: above the range's upper end.
        schedule[odd] = round(sleep / 4, 4)
    return {"images": images, "repeats": repeats, "schedule": schedule, "sleep": sleep,
            "modes": _mixed_modes(rng)}


@grader_only
def _speed_inputs(rng, params):
    # Two measurements whose exact answers (images / sleep) are more than SLOWEST x FASTEST
    # apart, and whose sleeps are too: neither a fixed number nor images x a fixed rate can
    # land in both ranges. The slow outlier goes with the short sleep (it costs 5 x repeats x
    # sleep), the fast one with the long sleep (a busy machine's delay is small next to it).
    while True:
        short = round(rng.uniform(0.04, 0.05), 4)
        long = round(short * rng.uniform(4.5, 5.5), 4)
        first, second = rng.randint(24, 400), rng.randint(24, 400)
        if max(first / short, second / long) > 4.5 * min(first / short, second / long):
            break
    cases = [_timing_case(rng, first, short, "slow"), _timing_case(rng, second, long, "fast")]
    rng.shuffle(cases)
    return cases


@grader_only
def _speeds_ok(speeds, cases):
    if not isinstance(speeds, list) or len(speeds) != len(cases):
        return False
    for speed, case in zip(speeds, cases):
        exact = case["images"] / case["sleep"]
        if isinstance(speed, bool) or not isinstance(speed, (int, float)) or not \
                exact / SLOWEST <= speed <= exact * FASTEST:
            return False
    return True


@grader_only
def _reference_keep_best(accuracies, patience, ties_replace=False, reset=True):
    """The solution's KeepBest on a run: (stops up to the first stop, index of the kept epoch); variants for mistakes."""
    best, best_index, bad, stops = None, None, 0, []
    for i, accuracy in enumerate(accuracies):
        if best is None or accuracy > best or (ties_replace and accuracy == best):
            best, best_index = accuracy, i
            bad = 0 if reset else bad
        else:
            bad += 1
        stops.append(patience is not None and bad >= patience)
        if stops[-1]:
            break
    return stops, best_index


@grader_only
def _resumed_inputs(rng, params):
    # Redraw until the run stops before its end, holds a tie with the best so far, and a
    # mistake (ties replacing the best, a counter never reset, weights kept without a copy)
    # gives another observation than the right one.
    while True:
        patience, start = rng.randint(2, 3), rng.randint(2, 6)
        accuracies = [round(0.4 + 0.05 * rng.randint(0, 10), 2) for _ in range(rng.randint(6, 12))]
        stops, best = _reference_keep_best(accuracies, patience)
        fed = len(stops)
        tie = any(accuracies[j] == max(accuracies[:j]) for j in range(1, fed))
        if not (stops[-1] and tie and best < fed - 1):
            continue
        if all(_reference_keep_best(accuracies, patience, **mistake) != (stops, best)
               for mistake in ({"ties_replace": True}, {"reset": False})):
            return {"patience": patience, "start": start, "accuracies": accuracies, "seed": rng.randrange(10**6)}


@grader_only
def _resumed_expected(given):
    stops, best = _reference_keep_best(given["accuracies"], given["patience"])
    weights = _epoch_weights(given["seed"], len(given["accuracies"]))
    return equal({"stops": stops, "best_epoch": given["start"] + best, "restored": weights[best]})


@grader_only
def _open_ended_inputs(rng, params):
    # A run with a tie with its best and the best epoch before the last one (so that weights
    # kept without a copy restore the wrong epoch).
    while True:
        accuracies = [round(0.4 + 0.05 * rng.randint(0, 10), 2) for _ in range(rng.randint(5, 10))]
        _, best = _reference_keep_best(accuracies, None)
        if best < len(accuracies) - 1 and accuracies.count(accuracies[best]) > 1:
            return {"accuracies": accuracies, "seed": rng.randrange(10**6)}


@grader_only
def _open_ended_expected(given):
    accuracies = given["accuracies"]
    _, best = _reference_keep_best(accuracies, None)
    return equal({"monitor": "val_acc", "best_epoch_before": None, "stops": [False] * len(accuracies),
                  "best_epoch": best + 1, "restored": _epoch_weights(given["seed"], len(accuracies))[best]})


@grader_only
def _summary_keys(params):
    compare, depth = _knob(params, "compare_models"), _knob(params, "depth_models")
    keys = [f"part1_{m}_{k}" for m in compare for k in ("test_acc", "seconds_per_epoch", "images_per_second")]
    keys += [f"part2_{m}_{k}" for m in depth for k in ("test_acc_at_best_epoch", "best_val_acc", "last_val_acc")]
    return sorted(keys)


# --------------------------------------------------------------------------- Exercise 1: parameter_counts
@check("parameter_counts on a drawn network: parameters, not BatchNorm buffers, and only unfrozen ones as trainable",
       points=2, exercise="parameter_counts", inputs=_layered_inputs,
       expect=lambda spec, params: equal(_layered_counts(spec)))
def counts_with_batchnorm(ns, spec):
    return ns.call("parameter_counts", _layered(spec))


@check("parameter_counts counts a drawn layer used twice only once", points=1, exercise="parameter_counts",
       inputs=_shared_inputs, expect=lambda spec, params: equal(_shared_counts(spec)))
def counts_shared_layer(ns, spec):
    return ns.call("parameter_counts", _shared(spec))


# --------------------------------------------------------------------------- Exercise 2: images_per_second
@check("images_per_second: one warm-up plus the drawn number of repeats, all without gradients and in eval mode, "
       "every layer's mode restored", points=1, exercise="images_per_second", inputs=_protocol_inputs,
       expect=lambda given, params: equal({"calls": given["repeats"] + 1, "calls_with_grad": 0,
                                           "calls_in_training_mode": 0, "batch_sizes": [given["images"]],
                                           "modes_after": given["modes"]}))
def throughput_protocol(ns, given):
    import torch

    model = _timed_model([given["sleep"]], given["modes"])
    ns.call("images_per_second", model, torch.zeros(given["images"], 1), given["repeats"])
    return {"calls": model.calls, "calls_with_grad": model.with_grad, "calls_in_training_mode": model.in_training,
            "batch_sizes": sorted(model.sizes), "modes_after": [m.training for m in _layers(model)]}


@check("images_per_second measures images per second by the median call, for two drawn batches and delays",
       points=1, exercise="images_per_second", timeout=60, inputs=_speed_inputs,
       expect=lambda cases, params: satisfies(
           lambda speeds: _speeds_ok(speeds, cases),
           "two numbers of images per second, each from the median call (never above images / delay, "
           "at most 4 x below it on a busy machine)"))
def throughput_value(ns, cases):
    import torch

    speeds = []
    for case in cases:
        model = _timed_model(case["schedule"], case["modes"])
        speeds.append(ns.call("images_per_second", model, torch.zeros(case["images"], 1), case["repeats"]))
    return speeds


# --------------------------------------------------------------------------- Exercise 3: KeepBest
@check("KeepBest follows a drawn run resumed at a drawn epoch: epoch numbers from the records, ties keep the "
       "earlier, stops after the drawn patience, restores a copy of the best weights", points=2,
       exercise="keep_best", inputs=_resumed_inputs, expect=lambda given, params: _resumed_expected(given))
def keep_best_resumed_run(ns, given):
    from torch import nn

    accuracies = given["accuracies"]
    keeper = ns.call("KeepBest", patience=given["patience"])
    model = nn.Linear(1, 1)
    epochs = range(given["start"], given["start"] + len(accuracies))
    stops = _feed(keeper, model, epochs, accuracies, _epoch_weights(given["seed"], len(accuracies)), True)
    keeper.restore_best(model)
    return {"stops": stops, "best_epoch": getattr(keeper, "best_epoch", None),
            "restored": [model.weight.item(), model.bias.item()]}


@check("KeepBest() without patience over a drawn run: never stops, keeps the first best epoch, restores its weights",
       points=1, exercise="keep_best", inputs=_open_ended_inputs,
       expect=lambda given, params: _open_ended_expected(given))
def keep_best_without_patience(ns, given):
    from torch import nn

    accuracies = given["accuracies"]
    keeper = ns.call("KeepBest")
    before = getattr(keeper, "best_epoch", "missing")
    model = nn.Linear(1, 1)
    stops = _feed(keeper, model, range(1, len(accuracies) + 1), accuracies,
                  _epoch_weights(given["seed"], len(accuracies)), False)
    keeper.restore_best(model)
    return {"monitor": getattr(keeper, "monitor", None), "best_epoch_before": before, "stops": stops,
            "best_epoch": getattr(keeper, "best_epoch", None), "restored": [model.weight.item(), model.bias.item()]}


# --------------------------------------------------------------------------- the run's record (informational)
@check("the recorded key numbers cover every model of the grading run (informational: 0 points)", points=0,
       expect=lambda given, params: equal(_summary_keys(params)))
def summary_keys(ns):
    return sorted(ns["key_numbers"])
