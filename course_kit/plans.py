"""What each notebook trains in a profile, read from its declaration without torch.

The knobs come from the student library's profiles (``course_utils/notebook/parameters.py``)
and the blocks of training from the ``plan:`` of each notebook's profile file
(``course_utils/notebook/plan.py``): the very files and code the notebooks' own run-time
estimate uses, loaded on their own (they need only PyYAML), so the kit and the notebooks never
count differently.

Example:
    >>> profile_knobs("01_alexnet_data_fraction", "grading")["seeds"]
    [0]
    >>> declared_plan("01_alexnet_data_fraction", "smoke", {"seeds": [100, 101]}).runs
    14
"""

from __future__ import annotations

from .repository import load_student_module

_parameters = load_student_module("notebook/parameters.py")
_plan = load_student_module("notebook/plan.py")
_assets = load_student_module("assets.py")


def profile_knobs(notebook: str, profile: str, overrides: dict | None = None) -> dict:
    """``notebook``'s knobs in ``profile`` (not ``auto``): its base, each profile of the chain, then ``overrides``."""
    return {**_parameters.read_profile(notebook, profile)[0], **(overrides or {})}


def declared_plan(notebook: str, profile: str, overrides: dict | None = None):
    """``notebook``'s plan (``course_utils.notebook.plan.Plan``) on ``profile``'s knobs changed by ``overrides``.

    Raises:
        ValueError: the notebook declares no plan, or a plan entry is not valid (the message names both).
    """
    knobs, session = _parameters.read_profile(notebook, profile)
    knobs = {**knobs, **(overrides or {})}
    train, test = _plan.data_sizes(knobs, session, _assets.data_dir())
    return _plan.declared_plan(notebook, knobs, train, test)
