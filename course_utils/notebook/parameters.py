"""A notebook's knobs: its parameters cell, filled from a profile that inherits.

A notebook's parameters cell (tagged ``parameters`` for papermill) is the one place where the
notebook names its knobs; every knob but ``profile`` is ``None`` there, meaning "take it from
the profile". The next cell calls::

    P = cu.load_parameters(NOTEBOOK, globals())

which reads ``profile`` and every knob from the notebook's namespace and fills each ``None``
from the profile, so ``papermill -p num_epochs 3`` (or editing the cell) still changes one
knob and keeps the rest.

Profiles live next to this file: ``profiles/profiles.yaml`` says what each profile is for,
which profile it extends (``grading`` extends ``smoke``) and the session settings it gives
every notebook; ``profiles/<notebook>.yaml`` holds the notebook's knobs as a ``base`` (the
reference run's settings, what ``full`` runs) plus, per profile, only what it changes (and,
not profiles, its ``findings`` and its ``plan``: see ``findings.py`` and ``plan.py``).

Example:
    >>> P = load_parameters("01_alexnet_data_fraction", profile="smoke", num_epochs=2)
    >>> P.num_epochs, P.profile, P.overridden
    (2, 'smoke', ['num_epochs'])
    >>> load_parameters("01_alexnet_data_fraction", {"profile": "grading", "lr": None}).lr == P.lr
    True
"""

from __future__ import annotations

import getpass
import html
import os
import tempfile
from collections.abc import Mapping
from functools import cache
from pathlib import Path

import yaml

PROFILE_DIR = Path(__file__).resolve().parent / "profiles"
# Sections of a notebook's profile file that are not profiles: the lessons checked on its results
# (notebook.findings) and what it trains, block by block (notebook.plan).
NOT_PROFILES = ("findings", "plan")
SESSION_DEFAULTS = {
    "offline": False,
    "synthetic_data": False,
    "standin_weights": False,
    "synthetic_per_class": [20, 10],
    "estimate": True,
}


@cache
def _profiles() -> dict:
    return yaml.safe_load((PROFILE_DIR / "profiles.yaml").read_text())


def profile_names() -> list[str]:
    """Every profile a notebook accepts: those of ``profiles.yaml``, then ``auto``.

    Example:
        >>> profile_names()
        ['smoke', 'offline', 'laptop', 'colab', 'full', 'grading', 'auto']
    """
    return [*_profiles(), "auto"]


def resolve_profile(profile: str, notebook: str | None = None, device: str | None = None) -> str:
    """The profile to run: ``profile`` itself (checked), or what ``auto`` picks here; see :func:`explain_profile`.

    Example:
        >>> resolve_profile("smoke")
        'smoke'
    """
    return explain_profile(profile, notebook, device)[0]


def explain_profile(profile: str, notebook: str | None = None, device: str | None = None) -> tuple[str, str]:
    """``(profile, why)``: ``auto`` decided by :func:`course_utils.notebook.choice.choose_profile`.

    Args:
        profile: a profile name or ``auto``.
        notebook: on a CPU, ``auto`` picks ``laptop`` only when that notebook's ``laptop``
            data and weights are already downloaded, else ``offline`` (without a notebook:
            ``laptop``).
        device: the notebook's ``device`` knob (``"cpu"`` makes ``auto`` treat a GPU machine as a CPU one).

    Raises:
        ValueError: an unknown profile name (the message lists the valid ones).

    Example:
        >>> explain_profile("offline")
        ('offline', 'asked for (profile = "offline")')
    """
    if profile not in profile_names():
        raise ValueError(f"Unknown profile {profile!r}. Choose one of: {', '.join(profile_names())}.")
    if profile != "auto":
        return profile, f'asked for (profile = "{profile}")'
    from .choice import choose_profile, laptop_assets_missing, probe_device

    info = probe_device(device)
    missing = laptop_assets_missing(read_profile(notebook, "laptop")[0]) if notebook and not info.cuda else []
    chosen, why = choose_profile(info, missing)
    return chosen, f"auto: {why}"


def _chain(profile: str) -> list[str]:
    """``profile`` and the profiles it extends, the most general first: ``grading`` -> ``[smoke, grading]``."""
    chain = [profile]
    while (parent := _profiles()[chain[0]].get("extends")) is not None:
        if parent in chain:
            raise ValueError(f"profiles.yaml: {profile!r} extends itself through {chain}.")
        chain.insert(0, parent)
    return chain


@cache
def _notebook_file(notebook: str) -> dict:
    path = PROFILE_DIR / f"{notebook}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in PROFILE_DIR.glob("*.yaml") if p.stem != "profiles")
        raise FileNotFoundError(f"No profile file for notebook {notebook!r}; known: {', '.join(known)}.")
    sections = yaml.safe_load(path.read_text()) or {}
    for name in NOT_PROFILES:
        sections.pop(name, None)
    base = sections.get("base") or {}
    for name, delta in sections.items():
        if name != "base" and name not in _profiles():
            raise ValueError(f"{path}: section {name!r} is not a profile of profiles.yaml ({', '.join(_profiles())}).")
        unknown = sorted(set(delta or {}) - set(base))
        if unknown:
            raise ValueError(f"{path}: {name} sets {unknown}, which `base` does not have: every knob is in `base`.")
    return sections


def knob_names(notebook: str) -> list[str]:
    """The notebook's knobs, in the order of its profile file's ``base``.

    Example:
        >>> knob_names("01_alexnet_data_fraction")[:3]
        ['backbone', 'dataset', 'fractions']
    """
    return list(_notebook_file(notebook)["base"])


def read_profile(notebook: str, profile: str) -> tuple[dict, dict]:
    """``(knobs, session settings)`` of ``notebook`` in ``profile`` (not ``auto``): base, then each delta."""
    sections = _notebook_file(notebook)
    knobs, session = dict(sections["base"]), dict(SESSION_DEFAULTS)
    for name in _chain(profile):
        knobs.update(sections.get(name) or {})
        session.update(_profiles()[name].get("session") or {})
    return knobs, session


class Parameters:
    """Resolved notebook parameters: attribute access, a table in Jupyter, ``as_dict()``.

    Attributes:
        notebook, profile: the notebook's name and the profile used (``auto`` resolved).
        requested_profile: the profile asked for (``auto``, or the same as ``profile``).
        why: why this profile runs (what ``auto`` found, or that it was asked for).
        overridden: the knobs that did not come from the profile.
        session: the profile's session settings (offline, stand-ins), not knobs.
    """

    def __init__(
        self,
        notebook: str,
        profile: str,
        requested_profile: str,
        values: dict,
        overridden: list[str],
        session: dict | None = None,
        why: str = "",
    ):
        self.notebook, self.profile, self.requested_profile = notebook, profile, requested_profile
        self.why = why or f'asked for (profile = "{profile}")'
        self._values, self.overridden = dict(values), list(overridden)
        self.session = dict(session or SESSION_DEFAULTS)

    def __getattr__(self, name: str):
        values = self.__dict__.get("_values", {})
        if name in values:
            return values[name]
        raise AttributeError(f"No parameter {name!r}; this notebook has: {', '.join(sorted(values))}.")

    def __getitem__(self, name: str):
        return self._values[name]

    def as_dict(self) -> dict:
        """``profile`` and every knob (what results records store)."""
        return {"profile": self.profile, **self._values}

    def replace(self, **changes) -> Parameters:
        """A copy with some knobs changed (used by the widgets)."""
        _check_names(self.notebook, changes, self._values)
        values = {**self._values, **changes}
        return Parameters(
            self.notebook,
            self.profile,
            self.requested_profile,
            values,
            sorted(set(self.overridden) | set(changes)),
            self.session,
            self.why,
        )

    def __repr__(self) -> str:
        width = max(len(k) for k in self._values) if self._values else 0
        lines = [
            f"{self.notebook}: profile {self.profile!r}"
            + (f" (from {self.requested_profile!r})" if self.requested_profile != self.profile else "")
        ]
        for key, value in self._values.items():
            lines.append(f"  {key:<{width}} = {value!r}{'   (set here)' if key in self.overridden else ''}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td><code>{html.escape(k)}</code></td><td><code>{html.escape(repr(v))}</code></td>"
            f"<td>{'set here' if k in self.overridden else 'profile'}</td></tr>"
            for k, v in self._values.items()
        )
        return (
            f"<b>{html.escape(self.notebook)}</b>: profile <code>{html.escape(self.profile)}</code>"
            f"<table><tr><th>parameter</th><th>value</th><th>from</th></tr>{rows}</table>"
        )


def _check_names(notebook: str, given: Mapping, valid) -> None:
    unknown = sorted(set(given) - set(valid))
    if unknown:
        raise ValueError(f"Unknown parameter(s) {unknown} for {notebook}; valid: {', '.join(sorted(valid))}.")


def load_parameters(notebook: str, namespace: Mapping | None = None, **knobs) -> Parameters:
    """The notebook's knobs: those set in ``namespace`` or ``knobs``, every ``None`` from the profile.

    Args:
        notebook: notebook name, e.g. ``"03_partial_freezing"``.
        namespace: the notebook's ``globals()``: ``profile`` and the knobs are read from it (the
            parameters cell set them; papermill's injected cell may have changed some).
        **knobs: more knobs (and ``profile``), winning over ``namespace``; ``None`` means "from
            the profile". Tests and the widgets pass knobs this way.

    Raises:
        ValueError: unknown profile, or a keyword knob the notebook does not have (a typo);
            the message lists the valid names. Also, under ``course grade`` (which sets
            ``COURSE_INJECTED_PARAMETERS``), a knob whose value is not the one the grader
            injected: the notebook changed it after its parameters cell ran.

    Each call is recorded in :data:`RESOLVED` (what the grader reads back after the run).

    Example (what a notebook's second cell does, with its parameters cell's names)::

        >>> profile, num_epochs, lr = "smoke", 3, None  # the parameters cell; papermill -p may change them
        >>> P = load_parameters("01_alexnet_data_fraction", globals())
        >>> P.profile, P.num_epochs, P.lr == read_profile("01_alexnet_data_fraction", "smoke")[0]["lr"]
        ('smoke', 3, True)
    """
    known = knob_names(notebook)
    _check_names(notebook, {k: v for k, v in knobs.items() if k != "profile"}, known)
    given = {name: namespace.get(name) for name in ["profile", *known]} if namespace is not None else {}
    given.update(knobs)
    _check_injected(notebook, given)
    requested = given.pop("profile", None) or "auto"
    profile, why = explain_profile(requested, notebook, given.get("device"))
    values, session = read_profile(notebook, profile)
    overridden = [k for k, v in given.items() if v is not None and v != values[k]]
    values.update({k: v for k, v in given.items() if v is not None})
    RESOLVED.append({"notebook": notebook, "requested_profile": requested, "values": {"profile": profile, **values}})
    return Parameters(notebook, profile, requested, values, overridden, session, why)


# Every load_parameters call of this process: {"notebook", "requested_profile", "values"}.
RESOLVED: list[dict] = []


def _check_injected(notebook: str, given: Mapping) -> None:
    """Under ``course grade``: the values used must be the ones the grader injected (papermill -p)."""
    import json

    injected = json.loads(os.environ.get("COURSE_INJECTED_PARAMETERS") or "{}")
    for name, value in injected.items():
        if name in given and given[name] != value:
            raise ValueError(
                f"{notebook}: `{name}` is {given[name]!r} here, but the grader set it to {value!r}. "
                "Leave the parameters cell's values as they are and do not assign them later."
            )


def scratch_dir(name: str) -> Path:
    """A per-user folder under the system temp dir for generated stand-in assets."""
    user = "".join(c for c in getpass.getuser() if c.isalnum()) or "user"
    root = Path(os.environ.get("COURSE_SCRATCH_DIR") or Path(tempfile.gettempdir()) / f"course-kit-{user}")
    path = root / name
    path.mkdir(parents=True, exist_ok=True)
    return path
