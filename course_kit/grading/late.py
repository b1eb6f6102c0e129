"""Late policies: how many days late a submission is, and what that costs (``--late-policy``).

Grammar (case and spaces do not matter; rules are separated by commas, each at most once)::

    none                     no penalty (the default)
    P%/day                   lose P % of the assignment's points per day late; a started day counts
    max P%                   the penalty is at most P % (goes with P%/day)
    zero-after Nd            more than N days late: 0 points

For example ``10%/day, max 30%``, ``zero-after 3d`` or ``5%/day, zero-after 7d``. P is a
number from 0 to 100, N a whole number of days (``zero-after 0d``: any late work gets 0).
As in Canvas's own late policy, the percentage is of the assignment's *maximum* points,
and a total never goes below 0.

Days late come from the roster's ``submitted_at`` and ``--deadline``:
``ceil((submitted_at - deadline) / 24 h)``, so one minute late is one day. Work marked late
another way (the roster's ``late`` column, Canvas's ``_LATE_`` file name) without both
times has an unknown number of days: no penalty is applied and the row says so
(``late_problem``), since guessing a number of days would be unfair either way.

Example:
    >>> policy = parse_late_policy("10%/day, max 30%")
    >>> [policy.percent(days) for days in (0, 1, 2, 5)]
    [0.0, 10.0, 20.0, 30.0]
    >>> parse_late_policy("zero-after 3d").percent(4), parse_late_policy("none")
    (100.0, None)
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime

from .status import Status

_PER_DAY = re.compile(r"(\d+(?:\.\d+)?)\s*%\s*/\s*(?:day|d)")
_CAP = re.compile(r"max\s+(\d+(?:\.\d+)?)\s*%")
_ZERO_AFTER = re.compile(r"zero[- ]after\s+(\d+)\s*(?:d|day|days)")
_RULES = {"per_day": _PER_DAY, "cap": _CAP, "zero_after": _ZERO_AFTER}
GRAMMAR = "rules such as 10%/day, max 30%, zero-after 3d, separated by commas (or none)"


class LatePolicyError(ValueError):
    """A ``--late-policy`` text that is not a policy; the message shows the grammar."""


@dataclass(frozen=True)
class LatePolicy:
    """A parsed late policy: per-day percentage, its cap, and the day after which work gets 0."""

    text: str
    per_day: float | None = None
    cap: float | None = None
    zero_after: int | None = None

    def percent(self, days: int) -> float:
        """The penalty, in percent of the maximum points, for work ``days`` days late."""
        if days <= 0:
            return 0.0
        if self.zero_after is not None and days > self.zero_after:
            return 100.0
        percent = (self.per_day or 0.0) * days
        return float(min(percent, self.cap if self.cap is not None else 100.0, 100.0))


def _match_rule(part: str) -> tuple[str, re.Match] | None:
    """Which rule one comma-separated ``part`` is (its :class:`LatePolicy` field) and its match; None for none."""
    for key, pattern in _RULES.items():
        match = pattern.fullmatch(part)
        if match:
            return key, match
    return None


def parse_late_policy(text: str | None) -> LatePolicy | None:
    """The policy that ``text`` describes, or None for no policy (``None``, empty, ``none``).

    Raises:
        LatePolicyError: a rule is unknown, repeated, out of range, or a cap has nothing to cap.

    Example:
        >>> parse_late_policy("5 %/day, zero-after 7d")
        LatePolicy(text='5 %/day, zero-after 7d', per_day=5.0, cap=None, zero_after=7)
    """
    if text is None or text.strip().casefold() in ("", "none"):
        return None
    found: dict[str, float] = {}
    for part in (p.strip() for p in text.casefold().split(",")):
        rule = _match_rule(part)
        if rule is None:
            hint = " (write 'none' alone)" if part == "none" else ""
            raise LatePolicyError(f"--late-policy {text!r}: {part!r} is not a rule{hint}; write {GRAMMAR}")
        key, match = rule
        if key in found:
            raise LatePolicyError(f"--late-policy {text!r}: {part!r} repeats a rule; give each rule once")
        found[key] = float(match.group(1))
    for key in ("per_day", "cap"):
        if key in found and not 0 <= found[key] <= 100:
            raise LatePolicyError(f"--late-policy {text!r}: {found[key]:g}% is not between 0 and 100")
    if "cap" in found and "per_day" not in found:
        raise LatePolicyError(
            f"--late-policy {text!r}: 'max {found['cap']:g}%' caps a per-day penalty; add one "
            f"(for example 10%/day, max {found['cap']:g}%)"
        )
    zero_after = found.get("zero_after")
    return LatePolicy(
        text.strip(), found.get("per_day"), found.get("cap"), None if zero_after is None else int(zero_after)
    )


def days_late(submitted_at: datetime | None, deadline: datetime | None) -> int | None:
    """Whole days late (a started day counts), 0 when on time, None when a time is unknown.

    Example:
        >>> from datetime import timedelta, timezone
        >>> due = datetime(2025, 3, 1, 23, 59, tzinfo=timezone.utc)
        >>> [days_late(due + timedelta(minutes=m), due) for m in (-5, 0, 1, 1440, 1441)]
        [0, 0, 1, 1, 2]
    """
    if submitted_at is None or deadline is None:
        return None
    seconds = (submitted_at - deadline).total_seconds()
    return max(0, math.ceil(seconds / 86400))


def apply_late_policy(row: dict, policy: LatePolicy | None) -> dict:
    """``row`` with the policy applied to its total: ``points`` becomes the total after the penalty.

    Adds ``points_before_late`` (the total as graded), ``late_penalty`` (points taken off),
    ``late_percent`` and ``late_policy``; a late row whose ``days_late`` is unknown keeps
    its points and gets ``late_problem`` instead. Rows without a grade (missing,
    ambiguous, grader-error) and rows on time are returned unchanged.

    Example:
        >>> policy = parse_late_policy("10%/day, max 30%")
        >>> row = apply_late_policy({"status": "ok", "points": 5, "max_points": 6, "late": True, "days_late": 2},
        ...                         policy)
        >>> row["points_before_late"], row["late_penalty"], row["points"]
        (5, 1.2, 3.8)
    """
    if policy is None or not row.get("late") or row.get("status") in ("missing", "ambiguous", Status.GRADER_ERROR):
        return row
    row = dict(row)
    days = row.get("days_late")
    if not days:
        row["late_problem"] = (
            f"late ({row.get('late_reason') or 'marked late'}) but the days late are unknown "
            f"(the roster needs submitted_at, and --deadline): the late policy was not applied"
        )
        return row
    percent = policy.percent(days)
    before = float(row.get("points") or 0)
    penalty = round(min(before, float(row.get("max_points") or 0) * percent / 100), 4)
    row.update(
        points_before_late=row.get("points"),
        late_penalty=penalty,
        late_percent=percent,
        late_policy=policy.text,
        points=round(before - penalty, 4),
    )
    return row


def late_sentence(row: dict, number=lambda value: f"{float(value):g}") -> str:
    """One sentence on a row's late penalty for the student, or ``""`` when there is none.

    Example:
        >>> late_sentence({"days_late": 2, "late_percent": 20.0, "late_penalty": 1.2, "points_before_late": 5,
        ...                "points": 3.8, "max_points": 6, "late_policy": "10%/day"})
        'Submitted 2 days late: late policy 10%/day takes off 20% of 6 points (1.2), from 5 to 3.8 points.'
    """
    if row.get("late_penalty") is None:
        return ""
    days = row["days_late"]
    return (
        f"Submitted {days} day{'s' if days != 1 else ''} late: late policy {row['late_policy']} takes off "
        f"{number(row['late_percent'])}% of {number(row['max_points'])} points ({number(row['late_penalty'])}), "
        f"from {number(row['points_before_late'])} to {number(row['points'])} points."
    )
