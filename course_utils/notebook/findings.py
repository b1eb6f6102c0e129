"""The lessons a notebook must show, checked on the numbers of its run.

Each notebook's profile file (``profiles/<notebook>.yaml`` next to this module) lists its
expected findings under ``findings:``. The notebook shows them as a table at its end
(:func:`findings_table`) and ``course run`` prints the same verdicts on its summary page:
each one ✓ or ✗ with its margin and the seed spread, so an instructor who changes a setting
sees at once whether the lesson still comes out. Runs on stand-in weights (``smoke``,
``grading``) are not checked: their numbers only show that the code runs.

A finding holds in the profiles its ``profiles:`` list names (every checked profile when it
has none): where the profiles run different architectures (``offline``'s EfficientNet-Lite
pair, ``full``'s ResNet18 and VGG16), each declares its own.

A finding is one of these kinds:

* a **comparison**: ``metric`` is ``higher`` (or ``lower``) for the rows matching each filter
  of ``higher`` than for the rows matching ``than``, in every group of ``for_each`` (when
  given; with ``only_where_both: true``, groups that lack one side are left out). A filter
  is ``{column: value}``. With ``separated: true`` the error bars must not
  overlap either: ``mean - std`` of the better side above ``mean + std`` of the other (std
  over the seeds, ``ddof=1``). The margin is the difference of the means, in points for
  accuracies (``scale: 100``), printed with ``digits`` decimals (default 1);
* a comparison with ``paired: seed`` matches the design where both sides share a seed's data
  subset and head (pretrained vs scratch, one freezing strategy vs another): it takes the
  per-seed differences, and ``separated`` asks that their mean stand more than one standard
  deviation of the differences clear of zero (for one seed: the difference is positive). Two
  sides whose seeds are both lucky or both unlucky then count as one comparison, not as the
  spread of each;
* a comparison with ``within: x`` instead says "as good as": the ``higher`` side may be
  behind by at most ``x`` (in the finding's unit);
* a comparison with ``statistic: best`` compares the best row of each side (the lowest value
  for ``lower``, the highest for ``higher``) and has no error bars: for timings, which another
  program on the machine can only make worse, so the fastest of interleaved repeats is the
  measurement (as ``timeit`` takes the minimum);
* ``below_chance: true``: every row's ``final_train_loss`` is below its ``chance_loss`` (the
  loss of predicting every class equally likely, ``ln(classes)`` for one head): no run may
  end having learned nothing.

A filter that matches no row is a failed finding (a renamed configuration must not pass
silently). This module needs neither torch nor the rest of the library: the instructor kit
loads it on its own (``course_kit.findings``).

Example:
    >>> rows = [{"init": i, "seed": s, "test_acc": a}
    ...         for i, accs in [("pretrained", [.90, .92, .91]), ("scratch", [.50, .60, .55])]
    ...         for s, a in enumerate(accs)]
    >>> finding = {"claim": "pretrained beats scratch", "metric": "test_acc", "scale": 100,
    ...            "higher": {"init": "pretrained"}, "than": {"init": "scratch"}, "separated": True}
    >>> verdict = check(finding, rows)
    >>> verdict.passed, verdict.margin_text
    (True, '+36.0 points (pretrained 91.0 ± 1.0 vs scratch 55.0 ± 5.0)')

    Paired by seed, the same rows give the mean of the three per-seed differences:

    >>> check(dict(finding, paired="seed"), rows).margin_text
    '+36.0 points (pretrained 91.0 ± 1.0 vs scratch 55.0 ± 5.0; per seed: +40.0, +32.0, +36.0)'
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path

import yaml

PROFILE_DIR = Path(__file__).parent / "profiles"


@dataclass
class Verdict:
    """One finding checked on one run: ``passed``, the margin as text, and one line per comparison."""

    claim: str
    passed: bool
    margin_text: str
    lines: list[str] = field(default_factory=list)

    @property
    def mark(self) -> str:
        return "✓" if self.passed else "✗"


def declared_findings(notebook: str, profile: str | None = None) -> list[dict]:
    """The ``findings`` of ``notebook``'s profile file that hold in ``profile`` (all of them when None).

    Example:
        >>> [f["claim"][:30] for f in declared_findings("01_alexnet_data_fraction", "offline")][:1]
        ['pretrained weights beat traini']
    """
    path = PROFILE_DIR / f"{notebook}.yaml"
    if not path.exists():
        return []
    findings = (yaml.safe_load(path.read_text()) or {}).get("findings") or []
    for finding in findings:
        if "claim" not in finding:
            raise ValueError(f"{path}: every finding needs a `claim` (the sentence it checks); got {finding}.")
        if not isinstance(finding.get("profiles", []), list):
            raise ValueError(f"{path}: `profiles` of {finding['claim']!r} must be a list of profile names.")
    return [f for f in findings if profile is None or "profiles" not in f or profile in f["profiles"]]


def check_all(notebook: str, rows: list[dict], profile: str | None = None) -> list[Verdict]:
    """Every finding ``notebook`` declares for ``profile`` checked on ``rows``."""
    return [check(finding, rows) for finding in declared_findings(notebook, profile)]


def findings_table(notebook: str, rows: list[dict], profile: str):
    """The notebook's declared findings for ``profile`` as a table: claim, ✓/✗, margin and seed spread.

    The same verdicts ``course run`` prints on its summary page. In a profile on stand-in
    weights (``smoke``, ``grading``) the claims are listed as not checked.

    Args:
        notebook: the notebook's stem, e.g. ``"01_alexnet_data_fraction"``.
        rows: every experiment row of the run (one per configuration and seed).
        profile: the profile the run used (``P.profile``).

    Example:
        >>> findings_table("01_alexnet_data_fraction", [], "smoke").iloc[0, 1]
        'not checked'
    """
    import pandas as pd

    if not checked_in(profile):
        marks = [
            {
                "finding": f["claim"],
                "holds": "not checked",
                "margin (mean ± std over seeds)": f"{profile} runs on stand-in weights: its numbers only test the code",
            }
            for f in declared_findings(notebook, profile)
        ]
    else:
        marks = [
            {"finding": v.claim, "holds": v.mark, "margin (mean ± std over seeds)": v.margin_text}
            for v in check_all(notebook, rows, profile)
        ]
    return pd.DataFrame(marks, columns=["finding", "holds", "margin (mean ± std over seeds)"])


def check(finding: dict, rows: list[dict]) -> Verdict:
    """Check one finding on a run's rows (its kinds are in the module notes)."""
    if finding.get("below_chance"):
        return _below_chance(finding, rows)
    return _comparison(finding, rows)


# ----------------------------------------------------------------------------- comparisons


def _matches(row: dict, wanted: dict) -> bool:
    return all(row.get(key) == value for key, value in wanted.items())


def _label(wanted: dict, other: dict) -> str:
    """The values that tell ``wanted`` from ``other`` (``{part: 1, model: a}`` vs ``{part: 1, model: b}``: ``a``)."""
    return ", ".join(str(value) for key, value in wanted.items() if other.get(key) != value) or str(wanted)


def _stats(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _comparison(finding: dict, rows: list[dict]) -> Verdict:
    metric, scale = finding["metric"], finding.get("scale", 1)
    unit = finding.get("unit", "points" if scale == 100 else "")
    lower = "lower" in finding
    betters = finding["lower" if lower else "higher"]
    betters = betters if isinstance(betters, list) else [betters]
    group_key = finding.get("for_each")
    groups = list(dict.fromkeys(row.get(group_key) for row in rows)) if group_key else [None]
    lines, margins, passed = [], [], True
    for group in groups:
        in_group = [r for r in rows if group_key is None or r.get(group_key) == group]
        where = f"{group_key} {_format_group(group)}: " if group_key else ""
        other = [r[metric] * scale for r in in_group if _matches(r, finding["than"]) and r.get(metric) is not None]
        for better in betters:
            mine = [r[metric] * scale for r in in_group if _matches(r, better) and r.get(metric) is not None]
            if (not mine or not other) and finding.get("only_where_both") and group_key:
                continue  # e.g. the longer-budget runs exist at one fraction only
            if not mine or not other:
                missing = better if not mine else finding["than"]
                lines.append(f"{where}no row has {missing} with a {metric}")
                passed = False
                continue
            (m_mean, m_std), (o_mean, o_std) = _stats(mine), _stats(other)
            margin = (o_mean - m_mean) if lower else (m_mean - o_mean)
            apart = (m_mean + m_std < o_mean - o_std) if lower else (m_mean - m_std > o_mean + o_std)
            paired_text = ""
            if finding.get("statistic") == "best":
                lines.append(_best_line(finding, where, better, mine, other, lower, unit))
                margins.append(_best_margin(mine, other, lower))
                passed &= margins[-1] > 0
                continue
            if finding.get("paired"):
                try:
                    differences = _paired_differences(finding, in_group, better, metric, scale, lower)
                except ValueError as error:  # a notebook whose rows cannot be paired: a failed finding, named
                    lines.append(f"{where}{error}")
                    passed = False
                    continue
                if not differences:
                    lines.append(f"{where}no {finding['paired']} has both {better} and {finding['than']}")
                    passed = False
                    continue
                margin, spread = _stats(differences)
                apart = margin - spread > 0
                paired_text = f"; per {finding['paired']}: " + ", ".join(
                    f"{d:+.{finding.get('digits', 1)}f}" for d in differences
                )
            ok = margin > 0 and (apart or not finding.get("separated"))
            if "within" in finding:  # "as good as": no further behind than `within`
                ok, apart = margin >= -finding["within"], True
            passed &= ok
            margins.append(margin)
            overlap = "" if apart or not finding.get("separated") else ", error bars overlap"
            if overlap and finding.get("paired"):
                overlap = ", the differences' mean is within one std of zero"
            d = finding.get("digits", 1)
            lines.append(
                f"{'✓' if ok else '✗'} {where}{margin:+.{d}f} {unit} ({_label(better, finding['than'])} "
                f"{m_mean:.{d}f} ± {m_std:.{d}f} vs {_label(finding['than'], better)} {o_mean:.{d}f} ± "
                f"{o_std:.{d}f}{paired_text}{overlap})".replace("  ", " ")
            )
    if not margins:
        return Verdict(finding["claim"], False, "no matching rows", lines)
    if len(lines) == 1:
        text = lines[0][2:]
        text = text.split(": ", 1)[1] if group_key else text
        return Verdict(finding["claim"], passed, text, lines)
    worst = min(margins)
    return Verdict(
        finding["claim"], passed, f"smallest margin {worst:+.{finding.get('digits', 1)}f} {unit}".rstrip(), lines
    )


def _best_margin(mine: list, other: list, lower: bool) -> float:
    return min(other) - min(mine) if lower else max(mine) - max(other)


def _best_line(finding: dict, where: str, better: dict, mine: list, other: list, lower: bool, unit: str) -> str:
    """``✓ +0.38 s (a fastest 2.00 vs b fastest 2.38, of 3 and 3 runs)``."""
    d, pick, word = finding.get("digits", 1), (min if lower else max), ("fastest" if lower else "highest")
    margin = _best_margin(mine, other, lower)
    return (
        f"{'✓' if margin > 0 else '✗'} {where}{margin:+.{d}f} {unit} ({_label(better, finding['than'])} {word} "
        f"{pick(mine):.{d}f} vs {_label(finding['than'], better)} {word} {pick(other):.{d}f}, "
        f"of {len(mine)} and {len(other)} runs)"
    ).replace("  ", " ")


def _paired_differences(finding: dict, rows: list[dict], better: dict, metric: str, scale, lower: bool) -> list:
    """``better`` minus ``than`` (the reverse for ``lower``) for each value of ``paired`` both sides have."""
    key = finding["paired"]
    mine, other = {}, {}
    for side, wanted in ((mine, better), (other, finding["than"])):
        for row in rows:
            if _matches(row, wanted) and row.get(metric) is not None:
                if row.get(key) in side:  # pairs need one row per value: a missing column would pair anything
                    raise ValueError(f"paired by {key}: two rows of {wanted} have {key} {row.get(key)!r}")
                side[row.get(key)] = row[metric] * scale
    shared = [k for k in mine if k in other]
    return [(other[k] - mine[k]) if lower else (mine[k] - other[k]) for k in shared]


def _format_group(value) -> str:
    return f"{value:.0%}" if isinstance(value, float) and 0 < value <= 1 else str(value)


# ----------------------------------------------------------------------------- no run above chance


def _below_chance(finding: dict, rows: list[dict]) -> Verdict:
    checked = [r for r in rows if r.get("final_train_loss") is not None and r.get("chance_loss") is not None]
    if not checked:
        return Verdict(
            finding["claim"],
            False,
            "no row records final_train_loss and chance_loss",
            ["the notebook's rows must carry final_train_loss and chance_loss"],
        )
    above = [r for r in checked if r["final_train_loss"] >= r["chance_loss"]]
    closest = min(checked, key=lambda r: r["chance_loss"] - r["final_train_loss"])
    name = _row_name(closest)
    text = (
        f"closest: {name} ended at {closest['final_train_loss']:.3f} vs chance {closest['chance_loss']:.3f} "
        f"({len(checked)} runs)"
    )
    lines = [
        f"✗ {_row_name(r)}: final training loss {r['final_train_loss']:.3f} ≥ chance {r['chance_loss']:.3f}"
        for r in above
    ]
    return Verdict(finding["claim"], not above, text, lines)


def _row_name(row: dict) -> str:
    skip = {"final_train_loss", "chance_loss"}
    parts = [
        f"{k} {_format_group(v)}"
        for k, v in row.items()
        if k not in skip
        and not isinstance(v, bool)
        and "param" not in k
        and not k.endswith("images")
        and (isinstance(v, (str, int)) or (isinstance(v, float) and k.endswith("fraction")))
    ]
    return ", ".join(parts[:4])


def checked_in(profile: str) -> bool:
    """Whether runs of ``profile`` are checked: not on stand-in weights (smoke, grading), whose numbers mean nothing.

    Example:
        >>> checked_in("offline"), checked_in("smoke"), checked_in("grading")
        (True, False, False)
    """
    profiles = yaml.safe_load((PROFILE_DIR / "profiles.yaml").read_text())
    name, seen = profile, []
    while name is not None and name not in seen:
        seen.append(name)
        if (profiles.get(name, {}).get("session") or {}).get("standin_weights"):
            return False
        name = profiles.get(name, {}).get("extends")
    return True
