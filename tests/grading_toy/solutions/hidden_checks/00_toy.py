"""Hidden checks of the toy grading assignment (instructor-only; never released).

Six points: three for `squares`, two for `scaled_mean`, one for the two together. Every check
calls the student's functions on inputs drawn for each submission, and the expected values
come from the references below, computed in the grader: the kernel never holds them.
"""

from course_kit.grading.checks import check, close, equal, grader_only

# The results record's keys that become gradebook columns (metric:n_points, ...).
METRICS = ["n_points", "scale", "result"]


@grader_only
def reference_squares(n):
    return [i * i for i in range(n)]


@grader_only
def reference_scaled_mean(values, scale):
    return scale * sum(values) / len(values)


@grader_only
def some_numbers(rng, params):
    # At least four values: a mean that divides by a fixed count must not pass by chance.
    return {
        "values": [round(rng.uniform(-50, 50), 3) for _ in range(rng.randint(4, 9))],
        "scale": round(rng.uniform(0.5, 4.0), 3),
    }


# Drawn from 900 sizes: a fixed answer (a stub returning the squares of one n) is right for one
# draw in 900, not one in 36 as with sizes 5..40 (a CI run drew n = 7 for a stub returning 7 squares).
@check(
    "squares() on an input drawn for this submission",
    points=2,
    exercise="squares",
    inputs=lambda rng, params: rng.randint(100, 999),
    expect=lambda n, params: equal(reference_squares(n)),
)
def squares_hidden(ns, n):
    return ns.call("squares", n)


@check(
    "squares() of 0, 1 and a small drawn n (the empty list first)",
    points=1,
    exercise="squares",
    inputs=lambda rng, params: [0, 1, rng.randint(5, 9)],
    expect=lambda sizes, params: equal([reference_squares(n) for n in sizes]),
)
def squares_small(ns, sizes):
    return [ns.call("squares", n) for n in sizes]


@check(
    "scaled_mean() on numbers drawn for this submission",
    points=2,
    exercise="scaled_mean",
    inputs=some_numbers,
    expect=lambda given, params: close(reference_scaled_mean(given["values"], given["scale"]), rel=1e-9),
)
def scaled_mean_hidden(ns, given):
    return ns.call("scaled_mean", given["values"], given["scale"])


@check(
    "the pipeline: scaled_mean of squares, for a drawn size and scale",
    points=1,
    inputs=lambda rng, params: {"n": rng.randint(4, 12), "scale": round(rng.uniform(0.5, 4.0), 3)},
    expect=lambda given, params: close(reference_scaled_mean(reference_squares(given["n"]), given["scale"]), rel=1e-9),
)
def pipeline_result(ns, given):
    return ns.call("scaled_mean", ns.call("squares", given["n"]), given["scale"])
