"""JupyterLab in headless Chromium: what a student sees and clicks works end to end.

papermill and nbval prove that the notebooks compute the right things; they never load
the JupyterLab front end, render a widget, or show a self-check's feedback to anyone.
These tests start a real JupyterLab on a temporary copy of the notebooks (smoke profile),
drive it with Playwright like a student does (menus, the editor, widget dropdowns and
buttons) and check what appears on the page. Screenshots go to ``test-artifacts/``.

Chromium comes from Debian (``apt-get install chromium``; ``python3 quickstart.py test``
installs it when it can). Without a browser the tests skip with a loud reason; with one
they always run.

Run them alone with ``pytest -m browser tests/test_browser.py``.
"""

from __future__ import annotations

import os
import re
import sys
from contextlib import contextmanager
from pathlib import Path

import nbformat
import pytest
from browser_support import (
    cells,
    editor_text,
    exercise_index,
    find_chromium,
    image_ink,
    launch_chromium,
    menu_command,
    open_notebook,
    output_text,
    prompt,
    replace_cell_code,
    screenshot,
    scroll_to,
    shutdown_kernels,
    skip_loudly,
    smoke_copy,
    solved_source,
    start_lab,
    stop_lab,
    wait_for_new_count,
    wait_for_run_to_finish,
)
from playwright.sync_api import expect

import course_utils as cu
from course_kit.repository import PROJECT_ROOT

pytestmark = [pytest.mark.browser, pytest.mark.slow]

FREEZING = "03_partial_freezing"
DATA_FRACTION = "01_alexnet_data_fraction"
# Smoke runs take about a minute on an idle laptop; CI machines are shared and slower.
RUN_ALL_TIMEOUT_S = 900
PANEL_RUN_TIMEOUT_S = 300
# Actions (clicks, typing, navigation) wait this long for their element before failing.
ACTION_TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def chromium() -> str:
    """Path of the Chromium to drive, or a loud skip when there is none."""
    path = find_chromium()
    if path is None:
        skip_loudly(
            "no Chromium found (install Debian's `chromium`, e.g. `apt-get install -y chromium`, "
            "or set COURSE_CHROMIUM to a Chromium binary; `python3 quickstart.py test` installs it "
            "when it runs as root)"
        )
    return path


@pytest.fixture(scope="module")
def lab(chromium, tmp_path_factory):
    """JupyterLab on 127.0.0.1 (free port, random token) serving smoke copies of two notebooks.

    The notebooks import ``course_utils`` from this Python environment, so only the notebook
    files are copied. Kernels get their own data, weights and results folders and no
    network. The server, its kernels and everything they started are stopped at the end,
    also when a test failed or timed out.
    """
    base = tmp_path_factory.mktemp("jupyterlab")
    root = base / "course"
    smoke_copy(PROJECT_ROOT / "solutions" / f"{FREEZING}.ipynb", root / f"{FREEZING}.ipynb")
    smoke_copy(PROJECT_ROOT / "notebooks" / f"{DATA_FRACTION}.ipynb", root / f"{DATA_FRACTION}.ipynb")
    env = dict(
        os.environ,
        COURSE_DATA_DIR=str(base / "data"),
        TORCH_HOME=str(base / "torch"),
        COURSE_RESULTS_DIR=str(base / "results"),
        COURSE_OFFLINE="1",
        COURSE_PROGRESS="off",
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    server = start_lab(root, base / "jupyter-home", env)
    try:
        yield server
    finally:
        stop_lab(server)


@pytest.fixture(scope="module")
def browser(chromium, tmp_path_factory):
    """A headless Chromium (fresh profile) driven by Playwright; always closed at the end."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = launch_chromium(playwright, chromium, tmp_path_factory.mktemp("chromium-profile"))
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser, lab):
    """A new tab; afterwards the tab is closed and the test's kernels are shut down."""
    tab = browser.new_page()
    tab.set_default_timeout(ACTION_TIMEOUT_MS)
    try:
        yield tab
    finally:
        tab.close()
        shutdown_kernels(lab)


@contextmanager
def screenshot_on_failure(page, name: str):
    """Keep what the page showed when a step failed: ``test-artifacts/<name>-FAILED.png``."""
    try:
        yield
    except BaseException:
        try:
            screenshot(page, f"{name}-FAILED")
        except Exception:  # noqa: BLE001 - the original failure is what matters
            pass
        raise


def tracebacks(page) -> list[str]:
    """Texts of the outputs that show a Python traceback, for failure messages."""
    outputs = page.locator(".jp-OutputArea-output", has_text="Traceback (most recent call last)")
    return outputs.all_text_contents()  # text_content: also for cells scrolled out of view


def trainable_parameters(backbone: str, num_classes: int, strategy: str) -> tuple[int, int]:
    """(trainable, total) parameter counts of ``backbone`` frozen by ``strategy``, computed here."""
    model = cu.build_model(backbone, num_classes, pretrained=False)
    cu.apply_strategy(model, strategy)
    return cu.count_parameters(model, trainable_only=True), cu.count_parameters(model)


def test_strategy_panel_runs_the_chosen_strategy(page, lab):
    """Notebook 03: run all cells, pick another strategy in the panel, press Run, see its results."""
    chosen = "last_only"
    parameters = cu.load_parameters(FREEZING, profile="smoke")
    assert parameters.dataset == "cifar10", "the expected counts below assume CIFAR-10's 10 classes"
    expected, total = trainable_parameters(parameters.backbone, len(cu.data.CIFAR10_CLASSES), chosen)
    default = parameters.strategies[0]
    assert expected != trainable_parameters(parameters.backbone, len(cu.data.CIFAR10_CLASSES), default)[0], (
        "the chosen strategy must train a different share than the default, or the test proves nothing"
    )

    with screenshot_on_failure(page, "browser-03"):
        open_notebook(page, lab, f"{FREEZING}.ipynb")
        menu_command(page, "Run", "Run All Cells")
        wait_for_run_to_finish(page, timeout_s=RUN_ALL_TIMEOUT_S)
        assert not tracebacks(page), f"a cell failed during Run All:\n{tracebacks(page)[0]}"

        # The panel is the last cell's output: title, dropdowns, Run button + status, output area.
        panel = cells(page).last.locator(".jp-OutputArea .widget-vbox").first
        scroll_to(panel)
        strategy = panel.locator(".widget-dropdown", has=page.locator("label", has_text=re.compile(r"^strategy$")))
        select = strategy.locator("select")
        expect(select).to_have_value(default)  # the picker's default comes from the parameters
        screenshot(page, "browser-03-panel-after-run-all")

        select.select_option(label=chosen)
        panel.locator("button", has_text="Run").click()
        status = panel.locator(".widget-hbox .widget-html")
        expect(status).to_contain_text(re.compile(r"done in|failed"), timeout=PANEL_RUN_TIMEOUT_S * 1000)
        output = panel.locator(".widget-output")
        assert "done in" in status.inner_text(), f"the panel's run failed: {status.inner_text()}\n{output.inner_text()}"

        text = output.inner_text()
        assert f"strategy: {chosen}" in text, text
        assert f"trainable parameters: {expected:,} of {total:,}" in text, (
            f"expected {expected:,} of {total:,} trainable parameters for {chosen!r}; the panel shows:\n{text}"
        )
        assert "test accuracy:" in text, text
        assert f"'freezing': '{chosen}'" in text, f"the result row shown is not the chosen strategy's:\n{text}"
        plot = output.locator("img")
        expect(plot).to_have_count(1)
        # A figure that arrived and decoded (not a broken-image icon) and that shows something:
        # curves, bars and labels cover several per cent of a healthy figure, a blank one 0.
        assert plot.evaluate("img => img.complete && img.naturalWidth > 100 && img.naturalHeight > 100"), (
            "the panel's figure did not load"
        )
        ink = image_ink(plot, save_as=f"browser-03-panel-{chosen}-figure")
        assert ink > 0.01, f"the panel's figure is (nearly) blank: {ink:.2%} of its pixels are not white"
        scroll_to(panel)
        screenshot(page, f"browser-03-panel-{chosen}")
        screenshot(page, f"browser-03-panel-{chosen}-widget", element=panel)


def test_student_exercise_feedback_then_solution_passes(page, lab):
    """Notebook 01 (student version): the first self-check says "not implemented", then passes."""
    student = nbformat.read(PROJECT_ROOT / "notebooks" / f"{DATA_FRACTION}.ipynb", as_version=4)
    solution = nbformat.read(PROJECT_ROOT / "solutions" / f"{DATA_FRACTION}.ipynb", as_version=4)
    first = next(c.metadata["course"]["exercise"] for c in student.cells if "exercise" in c.metadata.get("tags", []))
    index = exercise_index(student, first)
    assert "self-check" in student.cells[index + 1].metadata.get("tags", []), "an exercise is followed by its check"
    answer = solved_source(solution.cells[exercise_index(solution, first)].source)

    with screenshot_on_failure(page, "browser-01"):
        open_notebook(page, lab, f"{DATA_FRACTION}.ipynb")
        menu_command(page, "Run", "Run All Cells")
        wait_for_run_to_finish(page, timeout_s=RUN_ALL_TIMEOUT_S)

        exercise, check = cells(page).nth(index), cells(page).nth(index + 1)
        feedback = output_text(check)
        assert "not implemented yet" in feedback and "NotImplementedError" in feedback, feedback
        assert "all checks passed" not in feedback, feedback
        # Run All stops at the unsolved exercise: nothing after its check ran.
        later_prompts = {
            prompt(cell)
            for cell in cells(page).all()[index + 2 :]
            if "jp-CodeCell" in (cell.get_attribute("class") or "")
        }
        assert later_prompts == {""}, f"cells after the failing self-check ran: prompts {later_prompts}"
        assert len(tracebacks(page)) == 1, "only the self-check may fail"
        scroll_to(cells(page).nth(index - 1))  # the exercise's text, its code and the feedback
        screenshot(page, "browser-01-exercise-not-implemented")

        replace_cell_code(exercise, answer)
        assert editor_text(exercise) == answer, "the editor changed the typed answer"
        before = prompt(check)
        # Shift+Enter twice: run the exercise (focus moves on to its check), then run the check.
        page.keyboard.press("Shift+Enter")
        page.keyboard.press("Shift+Enter")
        wait_for_new_count(check, before, timeout_s=PANEL_RUN_TIMEOUT_S)

        feedback = output_text(check)
        assert "all checks passed" in feedback, feedback
        assert "✓" in feedback and "✗" not in feedback, feedback
        assert "Traceback" not in feedback, feedback
        scroll_to(cells(page).nth(index - 1))
        screenshot(page, "browser-01-exercise-passed")


# --------------------------------------------------------------------------- course feedback pages
# Every attribute whose name starts with "on" (an event handler), and every javascript: URL, in the page.
_HANDLERS_JS = """() => [...document.querySelectorAll('*')].flatMap(element => [...element.attributes]
    .filter(a => a.name.startsWith('on') || /^\\s*javascript:/i.test(a.value))
    .map(a => element.tagName + ' ' + a.name))"""
_SETTLED_JS = "() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))"


def _open_and_collect(browser, path: Path) -> tuple[list[str], list[str], list[str]]:
    """Open ``path`` in a new tab: ``(payloads that ran, alerts raised, handler attributes left)``.

    The tab waits for the page's load event (after every image loaded or failed, which is
    when onerror handlers run) and two animation frames (toggle events), then reads what ran.
    """
    tab = browser.new_page()
    alerts: list[str] = []
    tab.on("dialog", lambda dialog: (alerts.append(dialog.message), dialog.dismiss()))
    try:
        tab.goto(path.as_uri(), wait_until="load")
        tab.evaluate(_SETTLED_JS)
        return tab.evaluate("() => window.__ran || []"), alerts, tab.evaluate(_HANDLERS_JS)
    finally:
        tab.close()


def test_feedback_notebook_pages_run_no_script(browser, tmp_path):
    """`course feedback --html-notebooks`: outputs and metadata built to run script in the reader's browser do not.

    Checked three ways: the page as written (sanitized, with its Content Security Policy),
    the sanitized page without the policy (the sanitizer alone must suffice), and a control
    page holding raw payloads, which must run, so that "nothing ran" means something.
    """
    sys.path.insert(0, str(PROJECT_ROOT / "tests" / "grading_toy"))
    import crafted

    from course_kit.grading.feedback import POLICY, notebook_html

    notebook = tmp_path / "hostile.ipynb"
    nbformat.write(crafted.script_notebook(), str(notebook))
    written = tmp_path / "hostile.notebook.html"
    written.write_text(notebook_html(notebook), encoding="utf-8")
    assert POLICY in written.read_text(encoding="utf-8")
    without_policy = tmp_path / "no-policy.html"
    without_policy.write_text(
        written.read_text(encoding="utf-8").replace(POLICY, "default-src * 'unsafe-inline'"), encoding="utf-8"
    )
    control = tmp_path / "control.html"
    control.write_text(
        f'<!DOCTYPE html><img src=x onerror="{crafted.ran("control-img")}">'
        f'<details open ontoggle="{crafted.ran("control-toggle")}">d</details>',
        encoding="utf-8",
    )

    ran, alerts, handlers = _open_and_collect(browser, control)
    assert sorted(ran) == sorted(alerts) == ["control-img", "control-toggle"], (ran, alerts)
    for page_file in (written, without_policy):
        ran, alerts, handlers = _open_and_collect(browser, page_file)
        assert (ran, alerts, handlers) == ([], [], []), page_file.name
