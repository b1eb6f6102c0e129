"""ExperimentPanel without a front end: values reach the callback, errors are shown, figures stay out of pyplot."""

from __future__ import annotations

import ipywidgets as widgets
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from course_utils.notebook import plots  # noqa: E402
from course_utils.notebook import widgets as ui  # noqa: E402
from course_utils.train.loop import History  # noqa: E402


def test_panel_passes_the_controls_values_and_keeps_the_result():
    calls = []
    panel = ui.ExperimentPanel(
        {
            "strategy": ui.choice("strategy", ["none", "last_only"], "none"),
            "seeds": ui.multi_choice("seeds", [0, 1, 2], [0, 2]),
            "lr": ui.number("lr", 0.01, 0.001, 0.1, 0.001),
        },
        on_run=lambda **values: calls.append(values) or len(calls),
    )
    panel.controls["strategy"].value = "last_only"
    assert panel.run() == 1
    assert calls == [{"strategy": "last_only", "seeds": [0, 2], "lr": 0.01}]
    assert panel.last_result == 1 and panel.last_error is None
    assert panel.status.value.startswith("done in")
    assert not panel.button.disabled


def test_panel_failure_is_shown_not_raised():
    def broken(strategy):
        raise ValueError(f"unknown strategy {strategy!r}")

    panel = ui.ExperimentPanel({"strategy": ui.choice("strategy", ["typo"])}, on_run=broken)
    assert panel.run() is None
    assert isinstance(panel.last_error, ValueError)
    assert "failed: ValueError: unknown strategy 'typo'" in panel.status.value
    assert not panel.button.disabled, "a failed run must leave the button usable"


def test_figures_made_in_a_panel_are_not_tracked_by_pyplot():
    history = History(
        [
            {"epoch": epoch, "train_loss": loss, "train_acc": acc}
            for epoch, (loss, acc) in enumerate([(2.0, 0.3), (1.5, 0.5), (1.0, 0.7)], start=1)
        ]
    )
    made = {}

    def show(seed):
        made["fig"] = plots.plot_histories({f"seed {seed}": [history]}, metrics=("train_loss", "train_acc"))
        made["bars"] = plots.bar_chart(["a", "b"], [50.0, 60.0])
        made["own"], _ = plots.new_figure(1, 2, figsize=(6, 3))

    plt.close("all")
    panel = ui.ExperimentPanel({"seed": ui.choice("seed", [0])}, on_run=show)
    panel.run()
    assert panel.last_error is None, panel.last_error
    assert plt.get_fignums() == [], "a panel's figures must not enter pyplot's list"
    for fig in made.values():
        assert fig.canvas.manager is None
    # Outside a panel the same functions make ordinary pyplot figures again.
    fig = plots.bar_chart(["a"], [1.0])
    assert plt.get_fignums() == [fig.number]
    plt.close("all")


def test_detached_figures_draw_completely():
    """A detached figure renders to PNG like a pyplot one (same size, same drawn content)."""
    import io

    import numpy as np
    from PIL import Image

    def png(fig) -> np.ndarray:
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=50)
        return np.asarray(Image.open(buffer).convert("L"))

    attached = png(plots.bar_chart(["a", "b"], [50.0, 60.0], title="t"))
    with plots.detached_figures():
        detached = png(plots.bar_chart(["a", "b"], [50.0, 60.0], title="t"))
    plt.close("all")
    assert attached.shape == detached.shape
    assert (detached < 200).mean() > 0.05, "the detached figure is (nearly) blank"
    assert np.abs(attached.astype(int) - detached.astype(int)).mean() < 2


@pytest.mark.parametrize(
    "args, kind", [((3, 1, 10, 1), widgets.IntSlider), ((0.5, 0.0, 5.0, 0.25), widgets.FloatSlider)]
)
def test_number_picks_int_or_float_slider(args, kind):
    assert isinstance(ui.number("x", *args), kind)


def test_panel_without_front_end_describes_itself():
    panel = ui.ExperimentPanel({"seed": ui.choice("seed", [3, 4])}, on_run=lambda seed: seed)
    assert "seed=3" in repr(panel) and "JupyterLab" in repr(panel)
    with pytest.raises(ValueError, match="at least one control"):
        ui.ExperimentPanel({}, on_run=lambda: None)
