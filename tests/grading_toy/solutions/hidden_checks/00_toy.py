"""Hidden checks of the toy grading assignment (instructor-only; never released).

Six points: three for `squares`, two for `scaled_mean`, one for the pipeline's result
under the grading parameters (which the instructor may override with ``-p scale X``).
"""
from course_kit.grading.checks import check, close, equal, grader_only

# The results record's keys that become gradebook columns (metric:n_points, ...).
METRICS = ["n_points", "scale", "result"]
HIDDEN_N = 7
HIDDEN_VALUES = [1.0, 2.0, 4.0, 9.0]


@grader_only
def reference_squares(n):
    return [i * i for i in range(n)]


@check("squares() on an input the notebook never uses", points=2, exercise="squares",
       expect=equal(reference_squares(HIDDEN_N)))
def squares_hidden(ns):
    return ns.call("squares", HIDDEN_N)


@check("squares(0) is an empty list", points=1, exercise="squares", expect=equal([]))
def squares_empty(ns):
    return ns.call("squares", 0)


@check("scaled_mean() on numbers the notebook never uses", points=2, exercise="scaled_mean",
       expect=close(8.0, rel=1e-9))
def scaled_mean_hidden(ns):
    return ns.call("scaled_mean", HIDDEN_VALUES, 2.0)


# echo=True: `result` was computed by the notebook's own cells, before any check code was in
# the kernel, so showing it cannot carry a check out; results of ns.call are never shown.
@check("the pipeline's result for the grading parameters", points=1, echo=True,
       expect=lambda params: close(17.5 * float(params.get("scale", 2.0)), rel=1e-9))
def pipeline_result(ns):
    return ns["result"]
