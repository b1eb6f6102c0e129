"""What a notebook accepts from outside, read without running it: profile names, knob names, ``-p`` values.

``course run`` and ``course grade`` check ``--profile`` and every ``-p KEY VALUE`` here, before
any kernel starts, so a misspelled knob is an error that lists the valid ones instead of a run
that silently ignores it. Both commands type ``-p`` values the same way (``parse_value``).

The knobs are the names the notebook's parameters cell assigns (the one place a notebook
names them); the profiles are those of the student library's ``profiles.yaml``. Neither needs
the student library to be imported (which would load torch).

Example:
    >>> "smoke" in profile_names() and "auto" in profile_names()
    True
    >>> parse_value("[0, 1]"), parse_value("1e-3"), parse_value("None"), parse_value("resnet18")
    ([0, 1], 0.001, None, 'resnet18')
"""

from __future__ import annotations

import ast
from pathlib import Path

import yaml

from .repository import student_library_dir

PROFILES_FILE = Path("notebook") / "profiles" / "profiles.yaml"


def profile_names() -> list[str]:
    """The profiles the student library defines, in their declared order, then ``auto``."""
    profiles = yaml.safe_load((student_library_dir() / PROFILES_FILE).read_text())
    return [*profiles, "auto"]


def parse_value(text: str):
    """Type one ``-p KEY VALUE`` value: numbers, ``True``/``False``/``None``, else YAML (lists, strings).

    Python's spellings (``None``, ``True``) and YAML's (``null``, ``true``) both work, and
    ``1e-3`` is a number (YAML alone would read it as text).
    """
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    if text in ("True", "False", "None"):
        return {"True": True, "False": False, "None": None}[text]
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def knob_names(notebook: Path) -> list[str]:
    """The names a notebook's ``parameters`` cell assigns (``profile`` included), in order.

    Raises:
        ValueError: no cell is tagged ``parameters``, or it is not valid Python.
    """
    import nbformat

    nb = nbformat.read(str(notebook), as_version=4)
    cells = [c for c in nb.cells if c.cell_type == "code" and "parameters" in c.get("metadata", {}).get("tags", [])]
    if not cells:
        raise ValueError(f"{notebook} has no cell tagged `parameters`.")
    try:
        tree = ast.parse(cells[0].source)
    except SyntaxError as error:
        raise ValueError(f"{notebook}: the parameters cell is not valid Python ({error}).") from None
    names = []
    for node in tree.body:
        targets = (
            node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        )
        names += [t.id for t in targets if isinstance(t, ast.Name) and t.id not in names]
    return names


def check_overrides(notebooks: list[Path], overrides: dict) -> None:
    """Refuse ``-p`` names that a notebook's parameters cell does not have (and a ``profile`` in ``-p``).

    Raises:
        ValueError: naming the unknown knob(s), the notebook and its valid knobs.
    """
    for notebook in notebooks:
        valid = knob_names(Path(notebook))
        unknown = sorted(set(overrides) - set(valid))
        if "profile" in overrides:
            raise ValueError("set the profile with --profile, not -p profile")
        if unknown:
            listed = ", ".join(name for name in valid if name != "profile")
            raise ValueError(
                f"unknown parameter(s) {', '.join(unknown)} for {Path(notebook).stem}; its knobs are: {listed}"
            )
