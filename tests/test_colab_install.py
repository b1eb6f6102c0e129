"""The Colab path, simulated here: a fresh Python without the kit, ``google.colab`` faked, the install cell installs it.

A new virtual environment sees the third-party packages of this one (torch, torchvision, ...,
through a ``.pth`` file pointing at a folder of links that leaves out every file of the kit)
but not the kit. A driver script puts a fake ``google.colab`` module into ``sys.modules`` (what
Colab's kernel has), then runs the student notebook's first code cells as Colab would: the
parameters cell, the install cell (``COURSE_INSTALL_SOURCE`` points pip at this checkout,
``COURSE_COLAB_ROOT`` at a temporary folder) and the cell that imports the kit and starts the
session (in the smoke profile, as papermill would inject it).

Set ``COURSE_TEST_FULL_INSTALL=1`` to let pip install every dependency from scratch instead
(torch included; 192 s on the 2-core development machine).

Colab preinstalls ipywidgets 7.7.1; the kit's requirements must admit it, or pip upgrades the
copy Colab's kernel has imported and widgets stop rendering. Where an install does change an
imported package, the install cell says to restart the runtime: a fresh environment with a
small package installed twice (1.0, imported, then 2.0 through ``COURSE_INSTALL_SOURCE``)
shows it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path

import nbformat
import pip
import pytest
import tomllib

from course_kit import colab

ROOT = Path(__file__).resolve().parent.parent
COLAB_IPYWIDGETS = "7.7.1"  # what Colab's runtime has preinstalled (googlecolab/colabtools #3020, #4525)

DRIVER = r"""
import json, os, sys, types, importlib.util
import nbformat
import pip

google = types.ModuleType("google")
google.colab = types.ModuleType("google.colab")
sys.modules.update({"google": google, "google.colab": google.colab})
found_before = importlib.util.find_spec("course_utils") is not None

notebook = nbformat.read(sys.argv[1], as_version=4)
code = [c for c in notebook.cells if c.cell_type == "code"]
namespace = {"__name__": "__main__"}
exec(code[0].source, namespace)          # the parameters cell
namespace["profile"] = "smoke"           # papermill's injected cell: seconds, no downloads
exec(code[1].source, namespace)          # the install cell
torch_home = os.environ["TORCH_HOME"]    # (the smoke profile then points it at its stand-in weights)
exec(code[2].source, namespace)          # imports the kit, loads the parameters, starts the session
import course_utils
from course_utils import assets
print("RESULT " + json.dumps({"found_before": found_before, "kit": course_utils.__file__,
                              "data_dir": str(assets.data_dir()), "torch_home": torch_home,
                              "profile": namespace["P"].profile}))
"""


def _site_without_the_kit(target: Path) -> Path:
    """A folder of links to this environment's site-packages, minus the kit's own files."""
    site = Path(sysconfig.get_paths()["purelib"])
    target.mkdir()
    for entry in site.iterdir():
        name = entry.name.lower()
        if name.startswith(("course_utils", "course_kit", "__editable__", "_course")) or name.endswith(".pth"):
            continue
        (target / entry.name).symlink_to(entry)
    return target


@pytest.mark.slow
def test_the_install_cell_installs_the_kit_on_colab_and_keeps_data_under_the_colab_root(tmp_path):
    venv = tmp_path / "venv"
    full = os.environ.get("COURSE_TEST_FULL_INSTALL") == "1"
    # Seeing this environment's packages, the venv needs no pip or setuptools of its own: like Colab's
    # preinstalled ones, theirs satisfy the kit's requirements (venv's bundled setuptools would not).
    subprocess.run(
        [sys.executable, "-m", "venv", str(venv)] + ([] if full else ["--without-pip"]), check=True, timeout=120
    )
    python = venv / "bin" / "python"
    if not full:
        fresh_site = Path(
            subprocess.run(
                [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        )
        (fresh_site / "third_party.pth").write_text(str(_site_without_the_kit(tmp_path / "third-party")) + "\n")
    probe = subprocess.run([str(python), "-c", "import course_utils"], capture_output=True, text=True, cwd=tmp_path)
    assert probe.returncode != 0, "the fresh environment must not see the kit"

    root = tmp_path / "colab-root"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COURSE_", "PYTHON", "VIRTUAL_ENV"))}
    env.pop("TORCH_HOME", None)
    env.update(
        COURSE_INSTALL_SOURCE=f"{ROOT}[offline]",
        COURSE_COLAB_ROOT=str(root),
        COURSE_SCRATCH_DIR=str(tmp_path / "scratch"),
        PIP_DISABLE_PIP_VERSION_CHECK="1",
    )
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    notebook = ROOT / "notebooks" / "01_alexnet_data_fraction.ipynb"
    code_cells = [c for c in nbformat.read(notebook, as_version=4).cells if c.cell_type == "code"]
    assert code_cells[1].source == colab.install_cell_source()  # right after the parameters cell
    started = time.monotonic()
    result = subprocess.run(
        [str(python), str(driver), str(notebook)], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=900
    )
    seconds = time.monotonic() - started
    print(f"\ninstall cell + first cells in a fresh environment: {seconds:.0f} s ({'full' if full else 'kit only'})")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"installing the course library: {ROOT}[offline]" in result.stdout
    if not full:
        assert "Restart session" not in result.stdout  # nothing this kernel had imported was changed
    line = next(line for line in result.stdout.splitlines() if line.startswith("RESULT "))
    found = json.loads(line[len("RESULT ") :])
    assert found["found_before"] is False
    assert Path(found["kit"]).is_relative_to(venv), f"the kit was imported from {found['kit']}, not the install"
    assert found["data_dir"] == str(root / "data") and found["torch_home"] == str(root / "torch")
    assert found["profile"] == "smoke"


def test_the_kit_admits_colabs_own_ipywidgets():
    from packaging.requirements import Requirement

    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    ipywidgets = next(Requirement(d) for d in dependencies if d.startswith("ipywidgets"))
    assert ipywidgets.specifier.contains(COLAB_IPYWIDGETS), f"{ipywidgets} would replace Colab's ipywidgets"


def _wheel(folder: Path, version: str) -> Path:
    """A minimal wheel of a package ``colabdemo`` (what pip needs: module, METADATA, WHEEL, RECORD)."""
    path = folder / f"colabdemo-{version}-py3-none-any.whl"
    info = f"colabdemo-{version}.dist-info"
    files = {
        "colabdemo/__init__.py": f"VERSION = {version!r}\n",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: colabdemo\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    files[f"{info}/RECORD"] = "".join(f"{name},,\n" for name in [*files, f"{info}/RECORD"])
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return path


RESTART_DRIVER = r"""
import sys, types
google = types.ModuleType("google")
google.colab = types.ModuleType("google.colab")
sys.modules.update({"google": google, "google.colab": google.colab})
import colabdemo                      # Colab's kernel has imported its preinstalled copy
exec(open(sys.argv[1]).read(), {"__name__": "__main__"})
"""


def test_the_install_cell_asks_for_a_restart_when_it_changed_an_imported_package(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    links = tmp_path / "links"  # this environment's pip, and nothing else of it
    links.mkdir()
    (links / "pip").symlink_to(Path(pip.__file__).parent)
    (site / "links.pth").write_text(f"{links}\n")
    old, new = _wheel(tmp_path, "1.0"), _wheel(tmp_path, "2.0")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COURSE_", "PYTHON", "VIRTUAL_ENV", "PIP_"))}
    env.update(
        PIP_NO_INDEX="1",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        COURSE_COLAB_ROOT=str(tmp_path / "root"),
        COURSE_INSTALL_SOURCE=str(new),
    )
    subprocess.run([str(python), "-m", "pip", "install", "-q", str(old)], check=True, env=env, timeout=300)
    cell, driver = tmp_path / "cell.py", tmp_path / "driver.py"
    cell.write_text(colab.install_cell_source())
    driver.write_text(RESTART_DRIVER)
    upgraded = subprocess.run(
        [str(python), str(driver), str(cell)], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300
    )
    assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
    restart = [line for line in upgraded.stdout.splitlines() if "Restart" in line]
    assert restart == [
        "Restart the runtime now (Runtime > Restart session), then run the notebook again from the "
        "top: the install changed colabdemo 1.0 -> 2.0, which this session had already imported."
    ]
    # Installed again, nothing changes: no restart asked for.
    again = subprocess.run(
        [str(python), str(driver), str(cell)], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300
    )
    assert again.returncode == 0 and "installing the course library" in again.stdout
    assert "Restart" not in again.stdout, again.stdout
