"""ipywidgets pickers with a Run button: try other strategies, fractions, backbones by clicking.

A panel only collects values and calls the notebook's own run function with them, so
clicking "Run" with some values gives exactly what the headless run computes when
papermill passes the same parameters. Headless runs never depend on a callback.

Importing and building panels never fails where there is no front end (papermill, plain
Python, tests): the widgets exist, ``panel.run()`` works, and ``display`` shows a text line.

Example:
    >>> panel = ExperimentPanel({"strategy": choice("strategy", ["none", "last_only"], value="none")},
    ...                         on_run=lambda strategy: f"would train with {strategy}")
    >>> import contextlib, io
    >>> with contextlib.redirect_stdout(io.StringIO()):  # without a front end the output area prints
    ...     result = panel.run()  # what the Run button does
    >>> result
    'would train with none'
    >>> panel
    ExperimentPanel(strategy='none') — open this notebook in JupyterLab to use the controls.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import ipywidgets as widgets
from IPython.display import clear_output, display

from .plots import detached_figures

_STYLE = {"description_width": "initial"}


def choice(description: str, options: Sequence, value=None) -> widgets.Dropdown:
    """A dropdown; ``value`` defaults to the first option."""
    options = list(options)
    return widgets.Dropdown(
        options=options, value=options[0] if value is None else value, description=description, style=_STYLE
    )


def multi_choice(description: str, options: Sequence, value: Sequence = ()) -> widgets.SelectMultiple:
    """A multi-select list (hold Ctrl/Cmd to pick several)."""
    return widgets.SelectMultiple(
        options=list(options), value=tuple(value), description=description, style=_STYLE, rows=min(6, len(options))
    )


def number(description: str, value: float, low: float, high: float, step: float) -> widgets.Widget:
    """A slider: integer when all of value/low/high/step are integers, else float."""
    if all(float(v).is_integer() for v in (value, low, high, step)) and isinstance(step, int):
        return widgets.IntSlider(
            value=int(value), min=int(low), max=int(high), step=int(step), description=description, style=_STYLE
        )
    return widgets.FloatSlider(
        value=value, min=low, max=high, step=step, description=description, style=_STYLE, readout_format=".2f"
    )


class ExperimentPanel:
    """Controls, a Run button, a status line and an output area.

    Args:
        controls: ``{argument_name: widget}``; each widget's ``value`` becomes a keyword argument.
        on_run: called as ``on_run(**values)``; its printed output, figures and return value
            appear in the panel's output area. The return value is kept in ``last_result``.
            It runs inside ``plots.detached_figures()``: make figures with the functions of
            ``plots`` (or ``plots.new_figure``) and show them with ``display(fig)``.
        title: a heading shown above the controls.

    Attributes:
        button, output, status: the widgets, for tests and for ``button.click()``.
    """

    def __init__(
        self,
        controls: dict[str, widgets.Widget],
        on_run: Callable[..., Any],
        title: str = "",
        button_description: str = "Run",
    ):
        if not controls:
            raise ValueError("An ExperimentPanel needs at least one control.")
        self.controls = dict(controls)
        self.on_run = on_run
        self.button = widgets.Button(description=button_description, button_style="primary", icon="play")
        self.status = widgets.HTML(value="")
        self.output = widgets.Output()
        self.last_result = None
        self.last_error: BaseException | None = None
        self.button.on_click(lambda _button: self.run())
        header = [widgets.HTML(f"<b>{title}</b>")] if title else []
        self.widget = widgets.VBox(
            header + list(self.controls.values()) + [widgets.HBox([self.button, self.status]), self.output]
        )

    def values(self) -> dict:
        """The controls' current values as keyword arguments (multi-selects become lists)."""
        return {name: list(w.value) if isinstance(w.value, tuple) else w.value for name, w in self.controls.items()}

    def run(self):
        """Run ``on_run`` with the current values (what the button does); returns its result."""
        values = self.values()
        self.button.disabled = True
        self.status.value = "running…"
        started = time.perf_counter()
        self.last_error = None
        try:
            with self.output, detached_figures():
                clear_output(wait=True)
                self.last_result = self.on_run(**values)
                if self.last_result is not None:
                    display(self.last_result)
            self.status.value = f"done in {time.perf_counter() - started:.1f} s"
        except Exception as err:  # noqa: BLE001 - shown to the student in the panel
            self.last_error = err
            self.status.value = f"<span style='color:#b00'>failed: {type(err).__name__}: {err}</span>"
            with self.output:
                print(f"{type(err).__name__}: {err}")
        finally:
            self.button.disabled = False
        return self.last_result

    def _ipython_display_(self):
        display(self.widget)

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.values().items())
        return f"ExperimentPanel({shown}) — open this notebook in JupyterLab to use the controls."
