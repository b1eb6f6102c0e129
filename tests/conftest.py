"""Shared fixtures: every test runs with its own data directory and torch cache, no network."""
from __future__ import annotations

import os

import pytest
import torch

# Progress bars would only clutter captured output.
os.environ.setdefault("COURSE_PROGRESS", "off")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(autouse=True)
def isolated_assets(tmp_path_factory, monkeypatch):
    """Point COURSE_DATA_DIR and TORCH_HOME at fresh folders and forbid downloads."""
    root = tmp_path_factory.mktemp("assets")
    monkeypatch.setenv("COURSE_DATA_DIR", str(root / "data"))
    monkeypatch.setenv("TORCH_HOME", str(root / "torch"))
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    yield root
