"""Instructor grading: papermill-parametrized runs of student submissions, hidden checks, gradebook.

Modules, one job each:

* :mod:`~course_utils.grading.submissions` finds submissions and names students;
* :mod:`~course_utils.grading.job` grades one submission anywhere (statuses, judging);
* :mod:`~course_utils.grading.runner` is the per-submission process: papermill engine,
  sandboxed kernel, hidden checks in the same kernel;
* :mod:`~course_utils.grading.sandbox` limits and Landlock confinement of kernels;
* :mod:`~course_utils.grading.procs` finds and kills process trees;
* :mod:`~course_utils.grading.checks` is the hidden-checks API (and judging);
* :mod:`~course_utils.grading.harness` runs the checks inside the kernel;
* :mod:`~course_utils.grading.gradebook` writes grades.csv/json and feedback;
* :mod:`~course_utils.grading.executors` local pool or Dask;
* :mod:`~course_utils.grading.cli` is ``course grade``.

What is and is not protected is written down in ``docs/grading.md``.

Example::

    course grade submissions/ --assignment 03_partial_freezing --out grades/03 -j 4
"""
