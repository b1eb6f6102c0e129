"""The instructor kit: the ``course`` command, headless runs, release, references, grading.

Students never import this package: notebooks import the student library, ``course_utils``.
This package imports without torch (its commands import torch, or the student library,
only when they train or measure something), so ``course --help`` and a grading run's
bookkeeping stay fast, and a grading machine without torch can still grade (the
kernels it starts import torch themselves).

Modules:

* :mod:`course_kit.cli`: the ``course`` command, one sub-command per module below;
* :mod:`course_kit.runner`: ``course run``, notebooks executed with papermill, summary page;
* :mod:`course_kit.release`: ``course release``, student notebooks from the solutions;
* :mod:`course_kit.references`: ``course references``, the nbval regression references;
* :mod:`course_kit.fetch`: ``course fetch``, data and weights ahead of an offline session;
* :mod:`course_kit.bench` and :mod:`course_kit.bench_cases`: ``course bench``;
* :mod:`course_kit.repository`: where solutions, notebooks and references are in a checkout,
  and where the student library is installed;
* :mod:`course_kit.grading`: ``course grade`` (sandbox, probes judged outside the kernel, gradebook, executors).
"""

__version__ = "0.3.0"
