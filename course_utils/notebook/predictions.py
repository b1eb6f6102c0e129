"""A student's prediction, typed in before an experiment, shown beside what the run measured.

A notebook asks for a prediction in a written question (``kind: prediction``) followed by a
code cell tagged ``prediction`` where the student types the value (``predicted_gap = None``
until then). After the experiment :func:`compare_prediction` puts the two side by side; the
student's explanation of the difference is the next written question, not a sentence the
notebook writes.

Example:
    >>> compare_prediction(20, 31.44, "pretrained minus scratch at 10 %", unit="points")
    Prediction(what='pretrained minus scratch at 10 %', predicted=20, measured=31.44, unit='points', digits=1)
    >>> print(compare_prediction(None, "last_only", "the strategy that loses most")._repr_markdown_())
    | the strategy that loses most | |
    |---|---|
    | your prediction | (none typed in: set it in the prediction cell before the run) |
    | this run | last_only |
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Prediction:
    """A prediction and the measured value it was about; displays as a two-row table."""

    what: str
    predicted: float | str | None
    measured: float | str
    unit: str = ""
    digits: int = 1

    def _format(self, value) -> str:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return str(value)
        return f"{value:.{self.digits}f} {self.unit}".strip()

    @property
    def difference(self) -> float | None:
        """``measured - predicted`` for numbers (None for a choice or a missing prediction)."""
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (self.predicted, self.measured))
        return self.measured - self.predicted if numbers else None

    def _repr_markdown_(self) -> str:
        predicted = (
            "(none typed in: set it in the prediction cell before the run)"
            if self.predicted is None
            else self._format(self.predicted)
        )
        lines = [f"| {self.what} | |", "|---|---|", f"| your prediction | {predicted} |"]
        lines.append(f"| this run | {self._format(self.measured)} |")
        if self.difference is not None:
            lines.append(f"| run minus prediction | {self.difference:+.{self.digits}f} {self.unit} |")
        return "\n".join(lines)


def compare_prediction(predicted, measured, what: str, *, unit: str = "", digits: int = 1) -> Prediction:
    """The student's ``predicted`` value beside the run's ``measured`` one (display it as a cell's last line).

    Args:
        predicted: what the student typed in before the run: a number, a choice (text), or None.
        measured: the run's value of the same quantity.
        what: the quantity, as the question named it.
        unit: printed after numbers, e.g. ``"points"`` or ``"%"``.
        digits: decimals for numbers.
    """
    return Prediction(what, predicted, measured, unit, digits)
