"""``course run --robustness``: do the declared findings hold on other CPUs' numerics and other seeds?

A student's laptop is some other CPU than the instructor's: oneDNN and ATen pick their kernels
by the instruction set they find, and a few last bits of difference grow into points over a
short training budget. One machine can imitate the others by capping what the libraries use
(``ONEDNN_MAX_CPU_ISA``, ``ATEN_CPU_CAPABILITY``, read when torch loads in the kernel), and a
set of seeds the profile never used stands for another draw of the data and weights. The
command runs the notebooks once per condition (``course run`` with that environment and those
seeds, one run folder each) and prints one table: finding × condition → ✓/✗ with the margin.
Before each condition it prints how many trainings and steps the notebooks' declared plans
give it (:func:`planned_line`, the same plans the notebooks' run-time estimate counts).

Conditions (:data:`CONDITIONS`): ``default``; ``onednn-capped`` (oneDNN one instruction set
below this CPU's); ``capped`` (oneDNN and ATen both one below); ``held-out-seeds``; and, with
``--busy``, ``busy``: one CPU-bound process runs beside the notebook for the whole run, for the
findings about time. The caps are relative (:func:`caps_below`): on an AVX-512 machine they are
AVX2, as a laptop without AVX-512 computes; on an AVX2 machine a cap at AVX2 would change
nothing, so there they go down to SSE4.1 and ATen's default kernels.

The table is built from the runs' rows only (:func:`verdicts`, :func:`table`), so its logic is
tested on recorded rows without running anything.

Example:
    >>> held_out([0, 1, 2])
    [100, 101, 102]
    >>> held_out([100, 5])
    [101, 102]
    >>> [c.name for c in CONDITIONS]
    ['default', 'onednn-capped', 'capped', 'held-out-seeds', 'busy']
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from . import findings, plans

HELD_OUT_START = 100  # held-out seeds count up from here, skipping any the profile uses


@dataclass(frozen=True)
class Condition:
    """One way to run the notebooks: capped instruction sets, other seeds, a busy machine."""

    name: str
    about: str
    caps: tuple[str, ...] = ()  # the variables of caps_below() this condition sets
    held_out_seeds: bool = False
    busy: bool = False

    def env(self, capability: str) -> dict[str, str]:
        """The kernel's environment for this condition on a CPU whose torch capability is ``capability``."""
        return {name: value for name, value in caps_below(capability).items() if name in self.caps} if self.caps else {}


ONEDNN, ATEN = "ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY"
CONDITIONS = (
    Condition("default", "this machine's own numerics"),
    Condition("onednn-capped", "oneDNN one instruction set below this CPU's", caps=(ONEDNN,)),
    Condition("capped", "oneDNN and ATen one instruction set below this CPU's", caps=(ONEDNN, ATEN)),
    Condition("held-out-seeds", "as many seeds as the profile uses, none of its own", held_out_seeds=True),
    Condition("busy", "one CPU-bound process beside the run", busy=True),
)


def chosen_conditions(names: str | None, busy: bool = False) -> list[Condition]:
    """The conditions ``--conditions`` names (comma-separated), or all of them (``busy`` only with ``--busy``).

    Example:
        >>> [c.name for c in chosen_conditions("capped,busy")]
        ['capped', 'busy']
        >>> [c.name for c in chosen_conditions(None)]
        ['default', 'onednn-capped', 'capped', 'held-out-seeds']
    """
    if not names:
        return [c for c in CONDITIONS if busy or not c.busy]
    known = {c.name: c for c in CONDITIONS}
    wanted = [name.strip() for name in names.split(",") if name.strip()]
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise ValueError(f"unknown condition {', '.join(unknown)}; choose from {', '.join(known)}")
    return [known[name] for name in wanted]


def caps_below(capability: str) -> dict[str, str]:
    """oneDNN's and ATen's limits one instruction set below ``capability`` (torch's CPU capability).

    Example:
        >>> caps_below("AVX512")
        {'ONEDNN_MAX_CPU_ISA': 'AVX2', 'ATEN_CPU_CAPABILITY': 'avx2'}
        >>> caps_below("AVX2")
        {'ONEDNN_MAX_CPU_ISA': 'SSE41', 'ATEN_CPU_CAPABILITY': 'default'}
    """
    if capability.upper().startswith("AVX512"):
        return {ONEDNN: "AVX2", ATEN: "avx2"}
    if capability.upper() == "AVX2":
        return {ONEDNN: "SSE41", ATEN: "default"}
    raise ValueError(
        f"course run --robustness: torch computes with {capability!r} here; the capped conditions need an AVX2 "
        "or AVX-512 machine to cap below. Run the others with --conditions default,held-out-seeds,busy."
    )


def cpu_capability() -> str:
    """The instruction set torch's CPU kernels use here, uncapped, asked in a fresh interpreter (no torch here)."""
    probe = "import torch; print(torch.backends.cpu.get_cpu_capability())"
    env = {k: v for k, v in os.environ.items() if k not in (ONEDNN, ATEN)}
    return subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=env
    ).stdout.strip()


@dataclass(frozen=True)
class Mark:
    """One finding under one condition."""

    notebook: str
    claim: str
    condition: str
    passed: bool | None  # None: the condition's run produced no rows (it failed)
    margin_text: str

    @property
    def symbol(self) -> str:
        return {True: "✓", False: "✗", None: "–"}[self.passed]


def held_out(seeds: list[int]) -> list[int]:
    """As many seeds as ``seeds``, counting up from 100, none of them in ``seeds``."""
    chosen, candidate = [], HELD_OUT_START
    while len(chosen) < len(seeds):
        if candidate not in seeds:
            chosen.append(candidate)
        candidate += 1
    return chosen


def profile_seeds(notebook: str, profile: str) -> list[int]:
    """The ``seeds`` knob of ``notebook`` in ``profile``: the profiles the notebook itself resolves (:mod:`.plans`).

    Example:
        >>> profile_seeds("01_alexnet_data_fraction", "offline"), profile_seeds("01_alexnet_data_fraction", "grading")
        ([0, 1, 2], [0])
    """
    return list(plans.profile_knobs(notebook, profile)["seeds"])


def planned_line(notebooks: list[str], profile: str, overrides_of) -> str:
    """What the notebooks' declared plans train under one condition: trainings and steps, per notebook.

    Args:
        overrides_of: ``notebook -> knob overrides`` of the condition (its held-out seeds).

    Example:
        >>> print(planned_line(["01_alexnet_data_fraction"], "smoke", lambda name: {}))
        planned: 01_alexnet_data_fraction 7 trainings, 34 steps; 34 training steps in all
    """
    parts, total = [], 0
    for notebook in notebooks:
        plan = plans.declared_plan(notebook, profile, overrides_of(notebook))
        parts.append(f"{notebook} {plan.runs} trainings, {plan.steps:,} steps")
        total += plan.steps
    return f"planned: {'; '.join(parts)}; {total:,} training steps in all"


def verdicts(notebook: str, rows_by_condition: dict[str, list[dict] | None], profile: str) -> list[Mark]:
    """Every finding ``notebook`` declares for ``profile``, checked on each condition's rows.

    Args:
        rows_by_condition: ``{condition name: the run's rows}``; None where the run failed.

    Example:
        >>> rows = [{"final_train_loss": 0.5, "chance_loss": 2.3}]
        >>> [m.symbol for m in verdicts("01_alexnet_data_fraction", {"default": rows, "capped": None}, "offline")][-2:]
        ['✓', '–']
    """
    marks = []
    for finding in findings.declared_findings(notebook, profile):
        for condition, rows in rows_by_condition.items():
            if rows is None:
                marks.append(Mark(notebook, finding["claim"], condition, None, "the run failed"))
                continue
            verdict = findings.check(finding, rows)
            marks.append(Mark(notebook, finding["claim"], condition, verdict.passed, verdict.margin_text))
    return marks


def table(marks: list[Mark]) -> str:
    """A Markdown table: one row per finding, one column per condition, each cell ✓/✗ and the margin.

    Example:
        >>> print(table([Mark("01", "a beats b", "default", True, "+3.0 points (a 9 ± 1 vs b 6 ± 1)"),
        ...              Mark("01", "a beats b", "capped", False, "-1.0 points (a 5 ± 1 vs b 6 ± 1)")]))
        | notebook | finding | default | capped |
        |---|---|---|---|
        | 01 | a beats b | ✓ +3.0 points (a 9 ± 1 vs b 6 ± 1) | ✗ -1.0 points (a 5 ± 1 vs b 6 ± 1) |
    """
    conditions = list(dict.fromkeys(m.condition for m in marks))
    findings_seen = list(dict.fromkeys((m.notebook, m.claim) for m in marks))
    cell = {(m.notebook, m.claim, m.condition): f"{m.symbol} {m.margin_text}" for m in marks}
    lines = ["| notebook | finding | " + " | ".join(conditions) + " |", "|---|---|" + "---|" * len(conditions)]
    for notebook, claim in findings_seen:
        row = [cell.get((notebook, claim, c), "– not run") for c in conditions]
        lines.append(f"| {notebook} | {claim} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def marks_from_folder(folder: Path, profile: str) -> list[Mark]:
    """The table's marks rebuilt from a ``--robustness`` folder's records, with the findings as declared now.

    ``folder`` holds one subfolder per condition, each with the ``course run`` folders of its
    notebooks. An instructor who rewords or re-declares a finding sees its verdicts on the runs
    already made. A notebook that was executed under a condition but left no record there is a
    failed run; one that was not run under it at all (``--conditions busy 02``) gets no mark, and
    its cell in the table reads "not run".

    Example:
        >>> marks_from_folder(Path("no-such-folder"), "offline")
        Traceback (most recent call last):
        ...
        ValueError: no-such-folder: no condition folders (default, onednn-capped, ...) with results records here
    """
    order = [c.name for c in CONDITIONS]
    found = {
        path.name: {record.name.removesuffix(".results.json"): record for record in path.glob("*/*.results.json")}
        for path in sorted(Path(folder).glob("*"), key=lambda p: order.index(p.name) if p.name in order else len(order))
        if path.is_dir()
    }
    found = {name: records for name, records in found.items() if records}
    if not found:
        raise ValueError(f"{folder}: no condition folders ({', '.join(order[:2])}, ...) with results records here")
    executed = {name: {p.stem for p in (Path(folder) / name).glob("*/*.ipynb")} for name in found}
    notebooks = sorted({notebook for records in found.values() for notebook in records})
    marks = []
    for notebook in notebooks:
        rows = {
            name: json.loads(records[notebook].read_text()).get("rows") if notebook in records else None
            for name, records in found.items()
            if notebook in records or notebook in executed[name]
        }
        marks += verdicts(notebook, rows, profile)
    return marks


@contextlib.contextmanager
def busy_machine(enabled: bool):
    """One CPU-bound process (a Python busy loop) for the duration of the block."""
    if not enabled:
        yield
        return
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield
    finally:
        spinner.kill()
        spinner.wait()


def run_conditions(
    notebooks: list[Path],
    profile: str,
    conditions: list[Condition],
    out: Path,
    timeout: int | None = None,
    jobs: int | str = 1,
) -> tuple[list[Mark], list[Path]]:
    """Run ``notebooks`` once per condition (one ``course run`` folder per condition); the marks and the folders.

    ``jobs`` as for ``course run --jobs`` (the main job's ``auto`` gives its numeric path).
    """
    from . import runner

    marks, folders = [], []
    capability = cpu_capability() if any(c.caps for c in conditions) else ""
    for condition in conditions:
        env = condition.env(capability)

        def overrides_of(notebook: str, condition=condition) -> dict:
            return {"seeds": held_out(profile_seeds(notebook, profile))} if condition.held_out_seeds else {}

        shown = ", ".join(f"{k}={v}" for k, v in env.items())
        print(
            f"== condition {condition.name}: {condition.about}" + (f" ({shown}; this CPU: {capability})" if env else "")
        )
        print(planned_line([source.stem for source in notebooks], profile, overrides_of), flush=True)
        with runner.environment(env), busy_machine(condition.busy):
            folder, runs = runner.run(notebooks, profile, overrides_of, out / condition.name, timeout, jobs=jobs)
        folders.append(folder)
        rows_by_notebook = {run.name: (run.results or {}).get("rows") if run.status == "ok" else None for run in runs}
        for source in notebooks:
            marks += verdicts(source.stem, {condition.name: rows_by_notebook[source.stem]}, profile)
    order = {c.name: i for i, c in enumerate(conditions)}
    marks.sort(key=lambda m: (m.notebook, order[m.condition]))  # stable: findings keep their declared order
    return marks, folders
