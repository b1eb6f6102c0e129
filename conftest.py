"""Shared by the tests and the doctests: every test runs with its own data directory and torch cache, no network.

It sits at the repository's root so that it also covers the doctests of ``course_utils`` and
``course_kit`` (``--doctest-modules``): an example never downloads or touches the user's caches.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# Set before torch loads OpenMP: the test process and the notebook kernels it starts share
# two cores, and spinning OpenMP threads would starve each other.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402
import torch  # noqa: E402

from course_kit.references import REFERENCE_ENV  # noqa: E402

# Kernels started by nbval and papermill inherit this environment: no progress bars, no
# warnings in compared outputs, results written to a scratch folder (see course references).
os.environ.update(REFERENCE_ENV)
os.environ.setdefault("COURSE_RESULTS_DIR", tempfile.mkdtemp(prefix="course-test-results-"))
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(autouse=True)
def isolated_assets(tmp_path_factory, monkeypatch):
    """Point COURSE_DATA_DIR and TORCH_HOME at fresh folders and forbid downloads.

    Afterwards offline mode follows COURSE_OFFLINE again, whatever a test (or an example calling
    ``start_session``) switched on for its process.
    """
    from course_utils import assets

    root = tmp_path_factory.mktemp("assets")
    monkeypatch.setenv("COURSE_DATA_DIR", str(root / "data"))
    monkeypatch.setenv("TORCH_HOME", str(root / "torch"))
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    yield root
    assets.set_offline(None)


def pytest_ignore_collect(collection_path: Path, config):
    """nbval collects notebooks: only the regression references are tests, not fixtures."""
    if collection_path.suffix == ".ipynb":
        return "references" not in collection_path.parts
    return None


@pytest.fixture(autouse=True)
def _doctest_workdir(request, tmp_path, monkeypatch):
    """Doctests run in a fresh folder, so an example that writes a file writes it there."""
    if type(request.node).__name__ == "DoctestItem":
        monkeypatch.chdir(tmp_path)
