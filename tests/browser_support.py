"""Helpers for the browser tests: a throw-away JupyterLab server, Chromium, and the UI steps.

The tests in ``test_browser.py`` use JupyterLab the way a student does: open a notebook,
use the menus, type into cells, pick values in widgets and press buttons. Everything here
waits on conditions in the page (prompts, texts, widget states), never for fixed times,
because the test machines are small and shared and a step may take a minute under load.

Nothing here is specific to one notebook; the notebook facts (cell indices, labels, the
expected numbers) live in the tests.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path

import nbformat

from course_kit.grading.procs import descendants, kill_tree
from course_kit.repository import PROJECT_ROOT

ARTIFACTS = PROJECT_ROOT / "test-artifacts"

# Flags for Debian's Chromium in a container: no sandbox (we run as root), no GPU, and no
# background traffic (component updates, sync, QUIC) that would wait for a network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
    "--disable-dev-shm-usage",
]

# Generous: JupyterLab's first start compiles nothing, but on two busy cores importing its
# server extensions alone can take half a minute.
SERVER_START_TIMEOUT_S = 180
SERVER_STOP_TIMEOUT_S = 30

# Settings a student could change in the Settings Editor; we only switch off what would put
# pop-ups over the notebook (news and update notifications), never how notebooks behave.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
}


# --------------------------------------------------------------------------- the browser


def find_chromium() -> str | None:
    """Path of a Chromium to drive: ``$COURSE_CHROMIUM``, else Debian's ``chromium`` on PATH."""
    configured = os.environ.get("COURSE_CHROMIUM")
    if configured:
        return configured if Path(configured).exists() else None
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


def skip_loudly(reason: str) -> None:
    """Skip a browser test so that nobody can miss it: a warning and an upper-case skip reason.

    ``-ra`` (set in pyproject) lists the reason in the summary, and the warning appears in
    pytest's warnings section, so a CI log never reports green browser tests that did not run.
    """
    message = f"BROWSER TESTS SKIPPED: {reason}"
    warnings.warn(message, UserWarning, stacklevel=2)
    print(f"\n*** {message} ***", file=sys.stderr, flush=True)
    import pytest

    pytest.skip(message)


# --------------------------------------------------------------------------- the server


@dataclass
class LabServer:
    """A running JupyterLab: where it listens, its token, its folder and its process."""

    process: subprocess.Popen
    port: int
    token: str
    root: Path
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        """A URL under the server with the token attached (how a student's first link looks)."""
        separator = "&" if "?" in path else "?"
        return f"{self.base_url}/{path.lstrip('/')}{separator}token={self.token}"

    def api(self, path: str, method: str = "GET"):
        """Call the server's REST API; returns the decoded JSON (or None for an empty reply)."""
        request = urllib.request.Request(
            f"{self.base_url}/api/{path.lstrip('/')}", method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read()
        return json.loads(body) if body else None

    def log_tail(self, characters: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-characters:] if self.log_path.exists() else ""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_lab(root: Path, home: Path, env: dict[str, str]) -> LabServer:
    """Start JupyterLab serving ``root`` and wait until its API answers.

    Args:
        root: the folder the file browser shows (a temporary copy of the notebooks).
        home: a scratch folder for Jupyter's config, runtime, settings and workspace files,
            so nothing from the machine's own Jupyter setup (or an earlier run) leaks in.
        env: the environment for the server and hence for the kernels it starts.

    The server gets its own process group, so that ``stop_lab`` can end it together with
    everything it started even when the test failed half-way.
    """
    port, token = free_port(), secrets.token_hex(24)
    settings = home / "user-settings"
    for name, values in LAB_SETTINGS.items():
        path = settings / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    env = dict(
        env,
        PYTHONUNBUFFERED="1",
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        JUPYTER_DATA_DIR=str(home / "data"),
        IPYTHONDIR=str(home / "ipython"),
    )
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        f"--LabApp.user_settings_dir={settings}",
        f"--LabApp.workspaces_dir={home / 'workspaces'}",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # CI containers run as root; JupyterLab refuses without this
    # The log stays next to the server's files while it runs (another checkout's tests may run
    # at the same time) and is copied to test-artifacts/ when the server stops.
    log_path = home / "jupyterlab-server.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            command,
            cwd=root,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    server = LabServer(process, port, token, root, log_path)
    try:
        _wait_until_serving(server)
    except BaseException:
        stop_lab(server)
        raise
    return server


def _wait_until_serving(server: LabServer) -> None:
    """Poll the API until it answers; fail early with the server's log if the process ends."""
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"JupyterLab exited with code {server.process.returncode} while starting:\n{server.log_tail()}"
            )
        try:
            server.api("status")
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"JupyterLab did not answer within {SERVER_START_TIMEOUT_S} s:\n{server.log_tail()}"
                ) from None
            # A server that is still starting refuses connections at once: poll, but gently.
            time.sleep(0.5)


def shutdown_kernels(server: LabServer) -> None:
    """Shut down every kernel of the server (a finished test's kernel must not eat the CPU)."""
    try:
        for kernel in server.api("kernels"):
            server.api(f"kernels/{kernel['id']}", method="DELETE")
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        pass  # the server is gone already; stop_lab cleans up whatever is left


def stop_lab(server: LabServer) -> None:
    """End the server, its kernels and anything else it started; safe to call twice.

    Kernels run in process groups of their own (jupyter_client puts them there so that an
    interrupt reaches their children), so ending the server's group is not enough: the
    server's descendants are listed first and killed if they outlive it (once the server
    is gone they are no longer its descendants, so the list cannot be made afterwards).
    """
    leftovers = descendants(server.process.pid)
    # SIGTERM first: JupyterLab then shuts its kernels down cleanly and removes their files.
    _signal_group(server.process.pid, signal.SIGTERM)
    try:
        server.process.wait(timeout=SERVER_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        _signal_group(server.process.pid, signal.SIGKILL)
        server.process.wait(timeout=SERVER_STOP_TIMEOUT_S)
    for pid in leftovers:
        kill_tree(pid, include_root=True)  # a kernel that ignored the shutdown, with its children
    if server.log_path.exists():
        ARTIFACTS.mkdir(exist_ok=True)
        shutil.copyfile(server.log_path, ARTIFACTS / "jupyterlab-server.log")


def _signal_group(pid: int, signum: int) -> None:
    try:
        os.killpg(pid, signum)  # the group id is the server's pid: start_new_session=True
    except ProcessLookupError:
        pass


# --------------------------------------------------------------------------- notebooks


def smoke_copy(source: Path, target: Path) -> Path:
    """Copy a notebook with ``profile = "smoke"`` and no stored outputs or execution counts.

    Cleared prompts matter: the tests recognise "this cell has run" by its ``[n]`` prompt.
    """
    notebook = nbformat.read(source, as_version=4)
    parameters = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(parameters) == 1, f"{source.name}: expected one cell tagged 'parameters'"
    smoke, replaced = re.subn(r'^profile = "auto"', 'profile = "smoke"', parameters[0].source, flags=re.M)
    assert replaced == 1, f'{source.name}: the parameters cell has no line `profile = "auto"`'
    parameters[0].source = smoke
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, target)
    return target


def exercise_index(notebook: nbformat.NotebookNode, exercise: str) -> int:
    """Index of the cell of exercise ``exercise`` (its ``course.exercise`` metadata)."""
    for index, cell in enumerate(notebook.cells):
        if cell.metadata.get("course", {}).get("exercise") == exercise:
            return index
    raise KeyError(f"no cell for exercise {exercise!r}")


def solved_source(solution_cell_source: str) -> str:
    """What a student types for an exercise: the solution cell without the marker lines."""
    return "\n".join(
        line
        for line in solution_cell_source.splitlines()
        if line.strip() not in ("### BEGIN SOLUTION", "### END SOLUTION")
    )


# --------------------------------------------------------------------------- JupyterLab UI

# JavaScript run in the page. Cells are the notebook's `.jp-Cell` elements in order (JupyterLab
# keeps all of them in the DOM; open_notebook makes sure one notebook is open); a code cell's
# prompt reads "[ ]:" (not run), "[*]:" (queued or running) or "[7]:" (finished).
_CELLS_JS = "document.querySelectorAll('.jp-NotebookPanel .jp-Notebook .jp-Cell')"

_RUN_FINISHED_JS = f"""() => {{
  const dialog = document.querySelector('.jp-Dialog');
  if (dialog) return 'a dialog opened: ' + dialog.innerText;
  const cells = [...{_CELLS_JS}].filter(c => c.classList.contains('jp-CodeCell'));
  const prompts = cells.map(c => (c.querySelector('.jp-InputPrompt')?.textContent || '').trim());
  if (prompts.length === 0 || prompts.some(p => p.includes('*'))) return false;
  const failed = cells.some(c => [...c.querySelectorAll('.jp-OutputArea-output')]
      .some(o => o.textContent.includes('Traceback (most recent call last)')));
  return (failed || prompts.every(p => /\\[\\d+\\]/.test(p))) && 'finished';
}}"""


# The indicator reads "idle" already while the notebook still says "No Kernel" (then goes
# "connecting", "unknown", "idle"); running cells before a kernel is attached makes JupyterLab
# ask which kernel to start. Ready = a kernel is named in the toolbar and it is idle.
_KERNEL_READY_JS = """() => {
  const panel = document.querySelector('.jp-NotebookPanel');
  const name = panel?.querySelector('.jp-Toolbar-kernelName')?.textContent.trim();
  const status = panel?.querySelector('.jp-Notebook-ExecutionIndicator')?.getAttribute('data-status');
  return Boolean(name) && name !== 'No Kernel' && status === 'idle';
}"""


def launch_chromium(playwright, executable: str, profile_dir: Path):
    """Headless Chromium with a fresh profile; returns a browser context (closing it ends Chromium)."""
    return playwright.chromium.launch_persistent_context(
        str(profile_dir),
        executable_path=executable,
        headless=True,
        args=CHROMIUM_ARGS,
        viewport={"width": 1400, "height": 1000},
        timeout=120_000,
    )


def open_notebook(page, server: LabServer, name: str, timeout_s: float = 240) -> None:
    """Open ``name`` in JupyterLab and wait until its kernel is idle (ready to run cells).

    Each notebook gets a workspace of its own: JupyterLab restores the tabs of the last
    session in a workspace, and another test's notebook open in the background would
    otherwise share the page with this one.
    """
    workspace = re.sub(r"\W", "-", Path(name).stem)
    page.goto(server.url(f"lab/workspaces/{workspace}/tree/{name}"), timeout=timeout_s * 1000)
    cells(page).first.wait_for(timeout=timeout_s * 1000)
    page.wait_for_function(_KERNEL_READY_JS, timeout=timeout_s * 1000, polling=250)
    open_notebooks = page.locator(".jp-NotebookPanel").count()
    assert open_notebooks == 1, f"expected only {name} open, found {open_notebooks} notebooks"


def menu_command(page, menu: str, item: str) -> None:
    """Click ``menu`` in the top menu bar, then the item labelled ``item`` (as a student would)."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(f"^{re.escape(menu)}$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(f"^{re.escape(item)}$")).click()


def cells(page):
    """Locator of the open notebook's cells, in notebook order (one notebook is open at a time)."""
    return page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell")


def wait_for_run_to_finish(page, timeout_s: float) -> None:
    """Wait until no cell is queued or running and every code cell ran, or one raised.

    A dialog (e.g. "Select Kernel") would wait for a click forever: fail at once instead.
    """
    state = page.wait_for_function(_RUN_FINISHED_JS, timeout=timeout_s * 1000, polling=500).json_value()
    if state != "finished":
        raise AssertionError(f"JupyterLab is waiting for the user: {state}")


def prompt(cell) -> str:
    """A cell's input prompt without brackets and colon: "" (not run), "*" or the execution count."""
    return cell.locator(".jp-InputPrompt").inner_text().strip().strip("[]:").strip()


def wait_for_new_count(cell, previous: str, timeout_s: float) -> None:
    """Wait until ``cell`` finished an execution newer than the one whose prompt was ``previous``."""
    cell.page.wait_for_function(
        """([cell, previous]) => {
             const text = (cell.querySelector('.jp-InputPrompt')?.textContent || '').trim();
             const count = (text.match(/\\[(\\d+)\\]/) || [])[1];
             return count !== undefined && count !== previous;
           }""",
        arg=[cell.element_handle(), previous],
        timeout=timeout_s * 1000,
        polling=250,
    )


def output_text(cell) -> str:
    """Everything a cell's outputs show as text (widgets included), one output per line.

    ``textContent`` rather than ``innerText``: JupyterLab skips rendering cells outside the
    window (CSS content-visibility), and the browser's innerText is empty for those.
    """
    return "\n".join(cell.locator(".jp-OutputArea-output").all_text_contents())


def editor_text(cell) -> str:
    """The code in a cell's editor, line by line as CodeMirror shows it."""
    return "\n".join(cell.locator(".cm-content .cm-line").all_inner_texts())


def replace_cell_code(cell, code: str) -> None:
    """Select everything in a cell's editor and put ``code`` there.

    ``insert_text`` sends the text as one input event, like a paste: CodeMirror keeps it
    as it is, whereas typing key by key would add auto-indentation and closing brackets.
    """
    editor = cell.locator(".cm-content")
    editor.click()
    cell.page.keyboard.press("Control+a")
    cell.page.keyboard.insert_text(code)


def image_ink(img, save_as: str | None = None) -> float:
    """Share of an ``<img>``'s pixels that are not (nearly) white: 0.0 for a blank figure.

    The image is decoded from the data the page holds (JupyterLab shows figures as data URLs),
    so this measures what the kernel sent, not how the screenshot happened to paint it.
    With ``save_as``, the decoded PNG is also kept as ``test-artifacts/<save_as>.png``.
    """
    import base64
    import io

    import numpy as np
    from PIL import Image

    source = img.get_attribute("src") or ""
    assert source.startswith("data:image/png;base64,"), f"not an inline PNG: {source[:60]!r}"
    data = base64.b64decode(source.split(",", 1)[1])
    if save_as:
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / f"{save_as}.png").write_bytes(data)
    pixels = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    return float((pixels < 240).any(axis=-1).mean())


def scroll_to(element, block: str = "start", timeout_s: float = 60) -> None:
    """Scroll ``element`` to the top (``block="start"``) or middle of the window and keep it there.

    Cells that come into view are rendered only then and change height, which moves the
    target again; so scroll until its position holds (within the window) between two polls.
    """
    element.page.wait_for_function(
        """([element, block]) => {
             const top = element.getBoundingClientRect().top;
             const settled = element.dataset.testScrollTop === String(Math.round(top))
                             && top >= 0 && top < window.innerHeight;
             if (!settled) {
               element.scrollIntoView({block});
               element.dataset.testScrollTop = String(Math.round(element.getBoundingClientRect().top));
             }
             return settled;
           }""",
        arg=[element.element_handle(), block],
        timeout=timeout_s * 1000,
        polling=200,
    )


def screenshot(page, name: str, element=None) -> Path:
    """Save a PNG under ``test-artifacts/`` (of ``element`` when given, else the window)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    (element or page).screenshot(path=str(path))
    return path
