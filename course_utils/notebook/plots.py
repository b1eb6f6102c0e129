"""Figures students look at: sample grids, curves over seeds, metric-vs-x plots with error bars.

Every function returns the matplotlib ``Figure``; ``save_figure`` writes it as PNG next to
the output notebook so the run's summary page can show it. Accuracies are plotted in %.

Example:
    >>> import torch
    >>> images = torch.zeros(2, 3, 8, 8)  # normalized images, as a loader yields them
    >>> fig = show_images(images, [0, 1], ["cat", "dog"], mean=(0.5,) * 3, std=(0.5,) * 3)
    >>> save_figure(fig, "samples").name
    'samples.png'
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..data.transforms import unnormalize

_detached = threading.local()


@contextmanager
def detached_figures():
    """Within this block, ``new_figure`` (and every plot function here) makes figures pyplot does not track.

    Widget callbacks run between cell executions, where pyplot's global figure list is shared
    with the inline backend's end-of-cell display. In JupyterLab, a panel clicked right after
    "Run All" showed a half-drawn figure (measured in the browser tests); figures kept out of
    pyplot's list do not. ``ExperimentPanel`` runs its callback inside this block, so a callback
    shows its figures with ``display(fig)``, not ``plt.show()``.
    """
    previous = getattr(_detached, "active", False)
    _detached.active = True
    try:
        yield
    finally:
        _detached.active = previous


def new_figure(nrows: int = 1, ncols: int = 1, figsize: tuple[float, float] | None = None, **subplot_kwargs):
    """``plt.subplots`` that honours ``detached_figures``: returns ``(fig, axes)``.

    Example:
        >>> fig, axes = new_figure(1, 2, figsize=(11, 3.8))
        >>> len(axes)
        2
    """
    if getattr(_detached, "active", False):
        fig = Figure(figsize=figsize, layout="tight")
        return fig, fig.subplots(nrows, ncols, **subplot_kwargs)
    return plt.subplots(nrows, ncols, figsize=figsize, **subplot_kwargs)


def show_images(
    images: torch.Tensor,
    labels: Sequence[int],
    class_names: Sequence[str],
    mean: Sequence[float],
    std: Sequence[float],
    ncols: int = 8,
    title: str = "",
    predicted: Sequence[int] | None = None,
):
    """A grid of normalized images shown with their true colours.

    Args:
        images: ``(N, 3, H, W)`` normalized with ``mean``/``std`` (what the model sees).
        labels: N class indices.
        class_names: index -> name.
        mean, std: the normalization to undo (the one actually applied, not 0.5/0.5).
        predicted: N predicted class indices; each title then reads "true → predicted",
            in red where they differ.
    """
    images = unnormalize(images.detach().cpu().float(), mean, std)
    n = len(images)
    rows = int(np.ceil(n / ncols))
    fig, axes = new_figure(rows, ncols, figsize=(1.6 * ncols, 1.8 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    guesses = [None] * n if predicted is None else list(predicted)
    for ax, image, label, guess in zip(axes.flat, images, labels, guesses):
        ax.imshow(image.permute(1, 2, 0).numpy())
        if guess is None:
            ax.set_title(str(class_names[int(label)]), fontsize=9)
        else:
            ax.set_title(
                f"{class_names[int(label)]} → {class_names[int(guess)]}",
                fontsize=8,
                color="black" if int(guess) == int(label) else "tab:red",
            )
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def confusion_matrix(
    labels: Sequence[int], predicted: Sequence[int], class_names: Sequence[str], ax=None, title: str = ""
):
    """How often each true class (rows) was predicted as each class (columns), in % of the row.

    Args:
        labels, predicted: N true and N predicted class indices.
        class_names: index -> name (one row and one column each).
        ax: draw into this axes (default: a new figure).

    Returns:
        The figure; ``fig.counts`` holds the ``(C, C)`` matrix of counts.

    Example:
        >>> fig = confusion_matrix([0, 0, 1, 1], [0, 1, 1, 1], ["cat", "dog"])
        >>> fig.counts.tolist()
        [[1, 1], [0, 2]]
    """
    size = len(class_names)
    counts = np.zeros((size, size), dtype=int)
    np.add.at(counts, (np.asarray(labels, dtype=int), np.asarray(predicted, dtype=int)), 1)
    share = 100 * counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    if ax is None:
        fig, ax = new_figure(figsize=(0.45 * size + 2.5, 0.45 * size + 2))
    else:
        fig = ax.figure
    ax.imshow(share, cmap="Blues", vmin=0, vmax=100)
    for (row, column), value in np.ndenumerate(share):
        if counts[row, column]:
            ax.text(
                column,
                row,
                f"{value:.0f}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if value > 60 else "black",
            )
    ax.set_xticks(range(size), [str(c) for c in class_names], rotation=90, fontsize=8)
    ax.set_yticks(range(size), [str(c) for c in class_names], fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true class")
    ax.set_title(title or "confusion matrix (% of each true class)", fontsize=10)
    fig.counts = counts
    return fig


def _band(ax, x, runs: list[list[float]], label: str, scale: float, marker: str = "o"):
    values = np.array(runs, dtype=float) * scale
    mean = values.mean(axis=0)
    (line,) = ax.plot(x, mean, marker=marker, label=label)
    if len(values) > 1:
        std = values.std(axis=0, ddof=1)
        ax.fill_between(x, mean - std, mean + std, alpha=0.2, color=line.get_color())


def plot_histories(histories: dict[str, list], metrics: Sequence[str] = ("train_loss", "val_acc"), title: str = ""):
    """Training curves per configuration: mean over seeds with a ±1 std band.

    Args:
        histories: ``{label: [History, ...]}`` (one History per seed; equal lengths are averaged,
            runs that stopped early are cut to the shortest).
        metrics: columns to plot, one panel each; accuracies are shown in %.
    """
    fig, axes = new_figure(1, len(metrics), figsize=(5.2 * len(metrics), 3.8), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        scale = 100.0 if "acc" in metric else 1.0
        for label, runs in histories.items():
            length = min(len(h) for h in runs)
            series = [[r.get(metric) for r in h.records[:length]] for h in runs]
            if length and all(v is not None for s in series for v in s):  # skip runs without this column
                _band(ax, np.arange(1, length + 1), series, label, scale)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric.replace("_", " ") + (" (%)" if scale == 100 else ""))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_metric_vs(
    summary: Sequence[dict],
    x: str,
    metric: str,
    series: str | None = None,
    xlabel: str = "",
    ylabel: str = "",
    title: str = "",
    ax=None,
    logx: bool = False,
    x_scale: float = 1.0,
):
    """``metric`` (mean ± std over seeds, error bars) against ``x``, one line per ``series`` value.

    Args:
        summary: rows from ``results.aggregate`` with ``<metric>_mean`` / ``<metric>_std``.
        x: key of the x value (e.g. ``"fraction"``); ``x_scale`` multiplies it (e.g. 100 for %).
        series: key splitting the rows into lines (e.g. ``"init"``), or ``None`` for one line.
    """
    fig = None
    if ax is None:
        fig, ax = new_figure(figsize=(5.5, 4))
    scale = 100.0 if "acc" in metric else 1.0
    groups: dict[str, list[dict]] = {}
    for row in summary:
        groups.setdefault(str(row[series]) if series else metric, []).append(row)
    for label, rows in groups.items():
        rows = sorted(rows, key=lambda r: r[x])
        xs = np.array([r[x] for r in rows], dtype=float) * x_scale
        ys = np.array([r[f"{metric}_mean"] for r in rows]) * scale
        errs = np.array([r[f"{metric}_std"] for r in rows]) * scale
        ax.errorbar(xs, ys, yerr=errs, marker="o", capsize=4, label=label)
        if len(rows) == 1:
            ax.annotate(label, (xs[0], ys[0]), textcoords="offset points", xytext=(6, 6), fontsize=9)
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel or x)
    ax.set_ylabel(ylabel or metric.replace("_", " ") + (" (%)" if scale == 100 else ""))
    ax.grid(alpha=0.3)
    if series:
        ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    if fig is not None:
        fig.tight_layout()
    return fig if fig is not None else ax.figure


def bar_chart(
    labels: Sequence[str],
    means: Sequence[float],
    stds: Sequence[float] | None = None,
    annotations: Sequence[str] | None = None,
    ylabel: str = "",
    title: str = "",
    ax=None,
):
    """Bars with optional error bars and a text label above each (e.g. trainable parameters)."""
    fig = None
    if ax is None:
        fig, ax = new_figure(figsize=(max(4.0, 1.3 * len(labels)), 4))
    positions = np.arange(len(labels))
    bars = ax.bar(positions, means, yerr=stds, capsize=4, color=plt.cm.tab10(np.arange(len(labels)) % 10))
    ax.set_xticks(positions, labels, rotation=15)
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    for bar, text in zip(bars, annotations or []):
        ax.annotate(
            text,
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            textcoords="offset points",
            xytext=(0, 4),
            ha="center",
            fontsize=8,
        )
    if title:
        ax.set_title(title)
    if fig is not None:
        fig.tight_layout()
    return fig if fig is not None else ax.figure


def figures_dir() -> Path:
    """Where figures go: ``$COURSE_RESULTS_DIR/figures`` or ``./figures``."""
    return Path(os.environ.get("COURSE_RESULTS_DIR", ".")) / "figures"


def save_figure(fig, name: str) -> Path:
    """Save ``fig`` as ``figures/<name>.png`` next to the output notebook and return the path."""
    directory = figures_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.png"
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path
