"""Seeding: the same seed gives the same run (same subsets, initial weights, batches and augmentation).

Example:
    >>> import torch
    >>> seed_everything(0); a = torch.rand(2)
    >>> seed_everything(0); b = torch.rand(2)
    >>> torch.equal(a, b)
    True
"""
from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's random generators (CPU and every CUDA device).

    Example:
        >>> seed_everything(3); first = (random.random(), np.random.rand(), torch.rand(1).item())
        >>> seed_everything(3); first == (random.random(), np.random.rand(), torch.rand(1).item())
        True
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)
