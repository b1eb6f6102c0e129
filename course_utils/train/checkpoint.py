"""Checkpoints for long runs: ``fit`` writes one after every epoch and can continue from it.

A ``full``-profile run takes hours on a GPU runner that may be interrupted. With
``fit(..., checkpoint=Checkpoint(path, resume=True))`` every epoch ends with an atomic write
of everything the next epoch depends on: weights, optimizer and scheduler state, the
history so far, the early-stopping state and every random generator's state. Continuing
from it gives exactly the run that was never interrupted (a test compares them bitwise).

Checkpoints hold random-generator states, so they are read with ``weights_only=False``:
load only files you wrote yourself.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> path = Path(tempfile.mkdtemp()) / "run.pt"
    >>> save_checkpoint(path, {"format": CHECKPOINT_FORMAT, "epoch": 3})
    >>> load_checkpoint(path)["epoch"]
    3
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

CHECKPOINT_FORMAT = 2


@dataclass(frozen=True)
class Checkpoint:
    """Where ``fit`` writes its state after every epoch, and whether it continues from there.

    Args:
        path: the checkpoint file (its folder is created).
        resume: continue from ``path`` when it exists (``False``: start over and overwrite it).
        stop_after_epoch: end the call after this epoch, as an interruption would (to split a
            long run into several jobs; tests use it to interrupt a run).

    Example:
        >>> Checkpoint("runs/resnet18.pt", resume=True, stop_after_epoch=2).interrupts_after(2)
        True
    """

    path: Path
    resume: bool = False
    stop_after_epoch: int | None = None

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path))

    def interrupts_after(self, epoch: int) -> bool:
        """True when the run should end after ``epoch`` (1-based) as if interrupted."""
        return self.stop_after_epoch is not None and epoch >= self.stop_after_epoch

    def previous_state(self) -> dict | None:
        """What an earlier call wrote, when this call resumes and there is something to resume."""
        if not self.resume or not self.path.exists():
            return None
        return load_checkpoint(self.path)

    def save(self, state: dict) -> None:
        save_checkpoint(self.path, {"format": CHECKPOINT_FORMAT, **state})


def save_checkpoint(path: str | os.PathLike, payload: dict) -> None:
    """Write ``payload`` with ``torch.save`` to a temporary file, then rename it over ``path``.

    A crash mid-write leaves the previous checkpoint intact.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint written by ``fit`` (trusted files only: it holds random-generator states)."""
    payload = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise ValueError(
            f"{path} is not a course_utils training checkpoint of format {CHECKPOINT_FORMAT} "
            f"(found {found!r}); start the run again without resume."
        )
    return payload


def rng_state() -> dict:
    """The state of every random generator a training run draws from (Python, NumPy, torch, CUDA)."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Put every random generator back where ``rng_state`` found it."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
