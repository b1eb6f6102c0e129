"""Instructor grading: papermill-parametrized runs of student submissions, hidden checks, gradebook.

Modules, one job each:

* :mod:`~course_kit.grading.submissions` finds submissions (notebooks, folders, zips), reads them
  safely and names students;
* :mod:`~course_kit.grading.job` grades one submission anywhere (statuses, judging);
* :mod:`~course_kit.grading.runner` is the per-submission process: papermill engine,
  sandboxed kernel, the hidden checks' probes in the same kernel;
* :mod:`~course_kit.grading.sandbox` the bubblewrap sandbox and limits of kernels;
* :mod:`~course_kit.grading.procs` finds and kills process trees;
* :mod:`~course_kit.grading.checks` is the hidden-checks API: inputs, probes, judging in the grader;
* :mod:`~course_kit.grading.probe` runs the probes inside the kernel (nothing there is trusted);
* :mod:`~course_kit.grading.status` the statuses, one enum;
* :mod:`~course_kit.grading.gradebook` writes grades.csv/json and feedback;
* :mod:`~course_kit.grading.files` atomic writes, spreadsheet-safe CSV, reading the gradebook;
* :mod:`~course_kit.grading.executors` local pool or Dask;
* :mod:`~course_kit.grading.cli` is ``course grade``;
* :mod:`~course_kit.grading.roster` maps gradebook rows to the people of a course roster;
* :mod:`~course_kit.grading.exports` is ``course export`` (Canvas, Moodle, plain CSV);
* :mod:`~course_kit.grading.canvas` reads a Canvas gradebook export by Canvas's own rules;
* :mod:`~course_kit.grading.late` late policies: days late and the penalty;
* :mod:`~course_kit.grading.autograder` is ``course autograder`` (a Gradescope autograder zip);
* :mod:`~course_kit.grading.feedback` is ``course feedback`` (one page per student).

What is and is not protected is written down in ``docs/grading.md``.

Example::

    course grade submissions/ --assignment 03_partial_freezing --out grades/03 -j 4
"""
