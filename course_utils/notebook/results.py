"""Results of a notebook run: repeats aggregated over seeds, tables, and the JSON record.

Every experiment row is a flat dict (configuration keys + metrics + ``seed``). Rows of
the same configuration with different seeds are summarised as mean ± std (sample
standard deviation; a single seed gives std 0 and says ``n = 1``).

Example:
    >>> rows = [{"fraction": 0.1, "seed": s, "test_acc": a} for s, a in [(0, .80), (1, .84)]]
    >>> aggregate(rows, by=["fraction"], metrics=["test_acc"])
    [{'fraction': 0.1, 'n': 2, 'test_acc_mean': 0.82..., 'test_acc_std': 0.028...}]
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from .findings import findings_table  # noqa: F401  (cu.results.findings_table)
from .predictions import compare_prediction  # noqa: F401  (cu.results.compare_prediction)


def aggregate(rows: Iterable[dict], by: Sequence[str], metrics: Sequence[str]) -> list[dict]:
    """Group ``rows`` by the ``by`` keys (first-seen order) and average each metric over seeds.

    Returns:
        One dict per group: the ``by`` values, ``n`` (number of rows), ``<metric>_mean`` and
        ``<metric>_std`` for every metric.
    """
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in by), []).append(row)
    summary = []
    for key, members in groups.items():
        out = dict(zip(by, key))
        out["n"] = len(members)
        for metric in metrics:
            values = np.array([m[metric] for m in members], dtype=float)
            out[f"{metric}_mean"] = float(values.mean())
            out[f"{metric}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        summary.append(out)
    return summary


def mean_std(summary_row: dict, metric: str, scale: float = 100.0, digits: int = 2) -> str:
    """``"82.99 ± 0.41"`` from an ``aggregate`` row (scaled, e.g. accuracies to percent)."""
    mean, std = summary_row[f"{metric}_mean"] * scale, summary_row[f"{metric}_std"] * scale
    if summary_row.get("n", 1) > 1:
        return f"{mean:.{digits}f} ± {std:.{digits}f}"
    return f"{mean:.{digits}f}"


def table(rows: Sequence[dict], columns: Sequence[str] | None = None, headers: Sequence[str] | None = None):
    """A pandas DataFrame of ``rows`` (selected ``columns``, renamed to ``headers``) for display."""
    import pandas as pd

    frame = pd.DataFrame(list(rows))
    if columns is not None:
        frame = frame[list(columns)]
    if headers is not None:
        frame.columns = list(headers)
    return frame


def per_class_accuracy(predictions: dict, class_names: Sequence[str]):
    """A table of test accuracy (%) per class, one column per model.

    Args:
        predictions: ``{model name: (labels (N,), predicted (N,), ...)}``, e.g. from ``cu.train.predict``.
        class_names: index -> name.

    Example:
        >>> import torch
        >>> labels, predicted = torch.tensor([0, 0, 1]), torch.tensor([0, 1, 1])
        >>> per_class_accuracy({"a": (labels, predicted)}, ["cat", "dog"]).values.tolist()
        [['cat', 50.0], ['dog', 100.0]]
    """
    rows = []
    for index, name in enumerate(class_names):
        row = {"class": name}
        for model, (labels, predicted, *_) in predictions.items():
            mine = labels == index
            row[f"{model} (%)"] = (
                round(100 * float((predicted[mine] == index).float().mean()), 1) if mine.any() else None
            )
        rows.append(row)
    return table(rows)


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if hasattr(value, "item"):  # 0-d tensors and arrays
        return _jsonable(value.item())
    return str(value)


def results_path(notebook: str) -> Path:
    """Where ``save_results`` writes: ``$COURSE_RESULTS_DIR`` or the working directory."""
    return Path(os.environ.get("COURSE_RESULTS_DIR", ".")) / f"{notebook}.results.json"


def save_results(
    notebook: str,
    summary: dict,
    rows: Sequence[dict] = (),
    parameters: dict | None = None,
    figures: Sequence[str] = (),
) -> Path:
    """Write the run's machine-readable record ``<notebook>.results.json`` next to the output notebook.

    Args:
        notebook: notebook stem, e.g. ``"01_alexnet_data_fraction"``.
        summary: the key numbers (flat ``{name: number}``), shown on the run's summary page.
        rows: every experiment row (one per configuration and seed).
        parameters: the resolved parameters (``P.as_dict()``).
        figures: paths of the saved figures.

    Returns:
        The path written. The same numbers should be displayed in the notebook. The record
        also holds the run's ``numeric_path`` (processor, CPU kernels, threads, torch: see
        ``NumericPath``), which says which other runs it should match to the last digit.
    """
    path = results_path(notebook)
    # Figures are stored relative to the record, so a run folder can be moved or zipped.
    figures = [os.path.relpath(f, path.parent) if Path(f).is_absolute() else str(f) for f in figures]
    from ..train.reproducibility import NumericPath

    # What else decides the numbers: a run compares bit for bit only with a run on the same numeric path.
    record = {
        "notebook": notebook,
        "summary": summary,
        "rows": list(rows),
        "parameters": parameters or {},
        "figures": figures,
        "numeric_path": NumericPath.of_this_process().as_dict(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(_jsonable(record), indent=1))
    os.replace(tmp, path)
    return path
