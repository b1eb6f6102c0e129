"""``course run``: execute notebooks headless with papermill and write a summary page.

Each notebook runs in its own kernel with ``profile`` (and any ``-p KEY VALUE``) injected by
papermill, inside ``runs/<profile>-<timestamp>/``; its results record
(``<notebook>.results.json``) and figures land there too. A failing notebook is reported
with the cell and error and the others still run. ``summary.md`` and ``summary.html`` list
every notebook's status, wall time, lessons (its declared findings checked on the run's rows,
✓ or ✗ with the margin: ``findings``), key numbers and figures, and the
numeric path the records were computed on (processor, CPU capability, oneDNN ISA limit,
threads, torch), which says what another run should match to the last digit.

``--jobs N`` runs N notebooks at a time, each kernel with the CPUs divided among them
(``--jobs auto``: one notebook per CPU, one thread each). On a CPU, a small network's training
step is a chain of small operations whose threads meet at a barrier after each; two kernels of
one thread each got through about 1.6x the steps of one kernel of two threads on 2 cores
(docs/speed.md). One thread per kernel is also the same numeric path on any number of cores.

Example:
    $ course run                           # all notebooks, offline profile
    $ course run --jobs auto               # the main job: one notebook per CPU
    $ course run 01 03 --profile smoke -p seeds "[0, 1]"
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import html
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from . import findings
from .parameters import check_overrides, parse_value, profile_names
from .repository import PROJECT_ROOT, SOLUTIONS


@dataclass
class NotebookRun:
    """The outcome of one notebook: status ``ok`` or ``failed``, timing, error, results record."""

    name: str
    output: Path
    status: str = "pending"
    seconds: float = 0.0
    error: str = ""
    results: dict = field(default_factory=dict)
    lessons: list = field(default_factory=list)  # findings.Verdict per declared finding


def cpu_sharing_env() -> dict[str, str]:
    """How long a kernel's OpenMP threads spin before they sleep: briefly, unless the caller chose.

    libgomp (torch's OpenMP on Linux) spins up to 300,000 times before a waiting thread sleeps;
    when another process holds a core, a step then waits for a thread that is not running. 300
    spins: the same speed alone, about half the time beside a busy loop (docs/speed.md, "Sharing
    the CPU").
    """
    return {} if {"GOMP_SPINCOUNT", "OMP_WAIT_POLICY"} & set(os.environ) else {"GOMP_SPINCOUNT": "300"}


def find_notebooks(selection: list[str], folder: Path = SOLUTIONS) -> list[Path]:
    """Notebooks named by stem, number prefix (``01``) or path; all of ``folder`` when empty."""
    available = sorted(folder.glob("*.ipynb"))
    if not selection:
        return available
    chosen = []
    for item in selection:
        path = Path(item)
        if path.suffix == ".ipynb" and path.exists():
            chosen.append(path)
            continue
        matches = [p for p in available if p.stem == item or p.stem.startswith(f"{item}_")]
        if len(matches) != 1:
            names = ", ".join(p.stem for p in available)
            raise ValueError(f"{item!r} names {len(matches)} notebooks; choose from: {names}.")
        chosen.append(matches[0])
    return chosen


def jobs_and_threads(jobs: int | str, notebooks: int) -> tuple[int, dict[str, str]]:
    """How many notebooks run at a time, and the kernels' thread setting (none for one at a time).

    ``jobs``: a number, or ``"auto"`` (one per CPU this process may use, at most one per
    notebook). With more than one, the CPUs are divided among the kernels
    (``COURSE_NUM_THREADS``, which ``start_session`` pins), unless the caller set it already.

    Example:
        >>> jobs_and_threads(1, 4)
        (1, {})
    """
    from .grading.plan import available_cpus  # torch-free; the CPUs a cgroup quota or taskset leaves

    cpus = available_cpus()
    count = min(cpus, notebooks) if jobs == "auto" else int(jobs)
    if count < 1:
        raise ValueError(f"--jobs must be a positive number or 'auto', got {jobs!r}.")
    count = max(1, min(count, notebooks))
    if count == 1 or "COURSE_NUM_THREADS" in os.environ:
        return count, {}
    return count, {"COURSE_NUM_THREADS": str(max(1, cpus // count))}


def run_notebook(
    source: Path, run_dir: Path, parameters: dict, timeout: int | None = None, progress_bar: bool = True
) -> NotebookRun:
    """Execute one notebook with papermill into ``run_dir``; never raises for notebook errors."""
    import papermill as pm

    run = NotebookRun(name=source.stem, output=run_dir / source.name)
    started = time.perf_counter()
    try:
        pm.execute_notebook(
            str(source),
            str(run.output),
            parameters=parameters,
            # The kernel's working folder, given to the kernel alone: papermill's cwd= would chdir the
            # whole process, and with --jobs the threads share one: one run would leave another's folder.
            resources={"metadata": {"path": str(run_dir)}},
            kernel_name="python3",
            progress_bar=progress_bar,
            execution_timeout=timeout,
            report_mode=False,
        )
        run.status = "ok"
    except pm.PapermillExecutionError as err:
        run.status = "failed"
        run.error = f"cell {err.exec_count}: {err.ename}: {err.evalue}"
    except Exception as err:  # noqa: BLE001 - a broken kernel or file must not stop the other notebooks
        run.status = "failed"
        run.error = f"{type(err).__name__}: {err}"
    run.seconds = time.perf_counter() - started
    record = run_dir / f"{source.stem}.results.json"
    if record.exists():
        try:
            run.results = json.loads(record.read_text())
        except json.JSONDecodeError as err:
            run.error += f" (results record unreadable: {err})"
    return run


def _format_value(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _lesson_count(run: NotebookRun) -> str:
    if not run.lessons:
        return "—"
    shown = sum(v.passed for v in run.lessons)
    return f"{shown}/{len(run.lessons)} {'✓' if shown == len(run.lessons) else '✗'}"


REPRODUCES = (
    "Same machine and numeric path: the same numbers to the last digit. Another processor, CPU "
    "capability, oneDNN ISA limit, thread count or torch: other last digits; the lessons hold within the seed spread."
)


def numeric_paths(runs: list[NotebookRun]) -> list[tuple[dict, list[str]]]:
    """Each distinct numeric path the runs' records name, with the notebooks that ran on it (first-seen order).

    Example:
        >>> a = NotebookRun("01", Path("01.ipynb"), results={"numeric_path": {"threads": 2}})
        >>> numeric_paths([a, NotebookRun("02", Path("02.ipynb"))])
        [({'threads': 2}, ['01'])]
    """
    paths: list[tuple[dict, list[str]]] = []
    for run in runs:
        path = run.results.get("numeric_path")
        if not isinstance(path, dict) or not path:
            continue  # failed before saving, or a record from before numeric paths were saved
        for known, names in paths:
            if known == path:
                names.append(run.name)
                break
        else:
            paths.append((path, [run.name]))
    return paths


def _numeric_path_section(runs: list[NotebookRun]) -> tuple[list[str], list[str]]:
    """The summary's "numeric path" part: markdown lines and HTML elements (none when no record names one)."""
    md, body = [], []
    for path, names in numeric_paths(runs):
        title = "Numeric path" + (f" of {', '.join(names)}" if len(names) < len(runs) else "")
        rows = [(key, "unset" if value is None else str(value)) for key, value in path.items()]
        md += ["", f"## {title}", "", REPRODUCES, "", "| | |", "|---|---|"]
        md += [f"| {key} | {value} |" for key, value in rows]
        body.append(f"<h2>{html.escape(title)}</h2><p>{html.escape(REPRODUCES)}</p><table border=1 cellpadding=4>")
        body += [f"<tr><td>{html.escape(key)}</td><td>{html.escape(value)}</td></tr>" for key, value in rows]
        body.append("</table>")
    return md, body


def write_summary(
    run_dir: Path, runs: list[NotebookRun], profile: str, parameters: dict, side_by_side: str = ""
) -> tuple[Path, Path]:
    """Write ``summary.md`` and ``summary.html`` for a finished run.

    ``side_by_side``: how long the whole run took when notebooks ran at the same time
    (``--jobs``), shown beside the sum of their times.
    """
    stamp = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    md = [f"# Course run — profile `{profile}` — {stamp}", ""]
    if len(parameters) > 1:
        md += [f"Overrides: `{json.dumps({k: v for k, v in parameters.items() if k != 'profile'})}`", ""]
    md += ["| notebook | status | wall time | lessons shown |", "|---|---|---|---|"]
    md += [f"| [{r.name}]({r.output.name}) | {r.status} | {r.seconds:.0f} s | {_lesson_count(r)} |" for r in runs]
    if len(runs) > 1:
        md += [f"| all | | {sum(r.seconds for r in runs):.0f} s{side_by_side} | |"]
    body = [
        f"<h1>Course run — profile <code>{html.escape(profile)}</code> — {stamp}</h1>",
        "<table border=1 "
        "cellpadding=4><tr><th>notebook</th><th>status</th><th>wall time</th><th>lessons shown</th></tr>",
    ]
    body += [
        f"<tr><td><a href='{html.escape(r.output.name)}'>{html.escape(r.name)}</a></td><td>{r.status}</td>"
        f"<td>{r.seconds:.0f} s</td><td>{_lesson_count(r)}</td></tr>"
        for r in runs
    ]
    body.append("</table>")
    path_md, path_body = _numeric_path_section(runs)
    md += path_md
    body += path_body
    for r in runs:
        md += ["", f"## {r.name} — {r.status}", ""]
        body.append(f"<h2>{html.escape(r.name)} — {r.status}</h2>")
        if r.error:
            md += [f"**Error:** `{r.error}`", ""]
            body.append(f"<p><b>Error:</b> <code>{html.escape(r.error)}</code></p>")
        if r.lessons:
            md += ["| lesson | | margin (mean ± std over seeds) |", "|---|---|---|"]
            md += [f"| {v.claim} | {v.mark} | {v.margin_text} |" for v in r.lessons]
            details = [line for v in r.lessons if len(v.lines) > 1 or not v.passed for line in v.lines]
            md += [""] + [f"* {line}" for line in details] + [""] if details else [""]
            body.append(
                "<table border=1 cellpadding=4><tr><th>lesson</th><th></th><th>margin (mean ± std over "
                "seeds)</th></tr>"
                + "".join(
                    f"<tr><td>{html.escape(v.claim)}</td><td style='color:{'green' if v.passed else 'red'}'>"
                    f"{v.mark}</td><td>{html.escape(v.margin_text)}</td></tr>"
                    for v in r.lessons
                )
                + "</table>"
            )
            if details:
                body.append("<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in details) + "</ul>")
        summary = r.results.get("summary", {})
        if summary:
            md += ["| key number | value |", "|---|---|"] + [
                f"| {k} | {_format_value(v)} |" for k, v in summary.items()
            ]
            body.append(
                "<table border=1 cellpadding=4>"
                + "".join(
                    f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(_format_value(v))}</td></tr>"
                    for k, v in summary.items()
                )
                + "</table>"
            )
        for figure in r.results.get("figures", []):
            md += ["", f"![{Path(figure).stem}]({figure})"]
            body.append(f"<p><img src='{html.escape(str(figure))}' style='max-width:900px'></p>")
    md_path, html_path = run_dir / "summary.md", run_dir / "summary.html"
    md_path.write_text("\n".join(md) + "\n")
    html_path.write_text(
        "<!doctype html><meta charset=utf-8><title>Course run</title>"
        "<body style='font-family:sans-serif'>" + "\n".join(body) + "</body>"
    )
    return md_path, html_path


def run(
    notebooks: list[Path],
    profile: str = "offline",
    overrides: dict | Callable[[str], dict] | None = None,
    out: Path = Path("runs"),
    timeout: int | None = None,
    jobs: int | str = 1,
) -> tuple[Path, list[NotebookRun]]:
    """Run ``notebooks`` into a fresh ``out/<profile>-<timestamp>/`` and summarise them.

    ``overrides``: knobs for every notebook, or a function of the notebook's stem giving them.
    ``jobs``: notebooks at a time (see ``jobs_and_threads``); the summary keeps their order.
    """
    if profile not in profile_names():
        raise ValueError(f"Unknown profile {profile!r}. Choose one of: {', '.join(profile_names())}.")
    jobs, threads = jobs_and_threads(jobs, len(notebooks))
    run_dir = Path(out) / f"{profile}-{dt.datetime.now():%Y%m%d-%H%M%S}"
    run_dir.mkdir(parents=True, exist_ok=False)
    overrides_of = overrides if callable(overrides) else (lambda stem, fixed=overrides or {}: fixed)
    shown = {"profile": profile, **(overrides_of(notebooks[0].stem) if notebooks else {})}
    # Kernels inherit this process's environment: text progress bars, records next to the outputs,
    # OpenMP threads that spin only briefly before they sleep (docs/speed.md, "Sharing the CPU"),
    # and with --jobs their share of the CPUs.
    kernel_env = {
        "COURSE_PROGRESS": os.environ.get("COURSE_PROGRESS", "plain"),
        "COURSE_RESULTS_DIR": str(run_dir.resolve()),
        **cpu_sharing_env(),
        **threads,
    }
    if jobs > 1:
        each = threads.get("COURSE_NUM_THREADS") or os.environ.get("COURSE_NUM_THREADS")
        print(f"{jobs} notebooks at a time, {each} thread(s) each", flush=True)
    finished: dict[int, NotebookRun] = {}
    lock = threading.Lock()
    started = time.perf_counter()

    def one(index: int, source: Path) -> None:
        print(f"[{index}/{len(notebooks)}] {source.stem} (profile {profile}) ...", flush=True)
        parameters = {"profile": profile, **overrides_of(source.stem)}
        result = run_notebook(source, run_dir, parameters, timeout=timeout, progress_bar=jobs == 1)
        ran_in = (result.results or {}).get("parameters", {}).get("profile", profile)  # auto: what it chose
        if result.results and findings.checked_in(ran_in):
            result.lessons = findings.check_all(source.stem, result.results.get("rows", []), ran_in)
        with lock:
            finished[index] = result
            line = f"[{index}/{len(notebooks)}] {source.stem}: {result.status} in {result.seconds:.0f} s"
            print(line + (f" — {result.error}" if result.error else ""), flush=True)
            for verdict in result.lessons:
                print(f"    {verdict.mark} {verdict.claim}: {verdict.margin_text}", flush=True)
            # A partial page survives an interrupted run.
            elapsed = time.perf_counter() - started
            wall = f" ({elapsed:.0f} s from the first start, {jobs} at a time)" if jobs > 1 else ""
            write_summary(run_dir, [finished[i] for i in sorted(finished)], profile, shown, wall)

    with environment(kernel_env):
        if jobs == 1:
            for index, source in enumerate(notebooks, start=1):
                one(index, source)
        else:
            with ThreadPoolExecutor(max_workers=jobs) as pool:
                for future in [pool.submit(one, i, source) for i, source in enumerate(notebooks, start=1)]:
                    future.result()
    return run_dir, [finished[i] for i in sorted(finished)]


@contextlib.contextmanager
def environment(values: dict[str, str]):
    """Set environment variables for the duration of the block, then restore them."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("notebooks", nargs="*", help="stems or number prefixes (default: all in solutions/)")
    parser.add_argument(
        "--profile", default="offline", choices=profile_names(), help="parameter set (default: offline)"
    )
    parser.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("KEY", "VALUE"),
        help="override one knob of the parameters cell; VALUE is a number, True/False/None or "
        "YAML (e.g. -p seeds '[0, 1]'); unknown knobs are refused",
    )
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "runs", help="parent folder of run folders")
    parser.add_argument("--timeout", type=int, default=None, help="seconds allowed per cell")
    parser.add_argument(
        "--jobs",
        default=None,
        help="notebooks at a time, each kernel with its share of the CPUs; 'auto': one per CPU, one thread "
        "each (default: 1, all CPUs to one kernel; with --robustness: auto, as the main job runs)",
    )
    parser.add_argument(
        "--robustness",
        action="store_true",
        help="run the notebooks once per condition (this CPU's numerics, oneDNN/ATen capped one instruction set "
        "below it, held-out seeds) and print the findings as a table, finding x condition (course_kit/robustness.py)",
    )
    parser.add_argument(
        "--busy", action="store_true", help="with --robustness: also run with one CPU-bound process beside it"
    )
    parser.add_argument(
        "--from",
        dest="from_folder",
        type=Path,
        default=None,
        help="with --robustness: rebuild the table from this robustness folder's records (nothing runs), "
        "with the findings as declared now",
    )
    parser.add_argument(
        "--conditions",
        default=None,
        help="with --robustness: only these conditions, comma-separated (default: all; see course_kit/robustness.py)",
    )


def main(args: argparse.Namespace) -> int:
    overrides = {key: parse_value(value) for key, value in args.parameter}
    try:
        notebooks = find_notebooks(args.notebooks)
        check_overrides(notebooks, overrides)
    except ValueError as problem:
        print(f"course run: {problem}", file=sys.stderr)
        return 2
    if args.robustness:
        return _robustness(notebooks, args)
    try:
        run_dir, runs = run(notebooks, args.profile, overrides, args.out, args.timeout, jobs=_jobs(args.jobs or "1"))
    except ValueError as problem:
        print(f"course run: {problem}", file=sys.stderr)
        return 2
    failed = [r for r in runs if r.status != "ok"]
    print(
        f"\n{len(runs) - len(failed)}/{len(runs)} notebooks ok. Executed notebooks, results and "
        f"figures: {run_dir}\nSummary: {run_dir / 'summary.md'} (and summary.html)"
    )
    return 1 if failed else 0


def _jobs(value: str) -> int | str:
    if value == "auto":
        return value
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"--jobs must be a positive number or 'auto', got {value!r}.") from None


def _robustness(notebooks: list[Path], args: argparse.Namespace) -> int:
    from . import robustness

    if args.parameter:
        print("course run: --robustness runs the profile as it is; -p is not allowed with it", file=sys.stderr)
        return 2
    if not findings.checked_in(args.profile):
        print(f"course run: {args.profile} runs on stand-in weights; its findings are not checked", file=sys.stderr)
        return 2
    if args.from_folder is not None:
        try:
            marks = robustness.marks_from_folder(args.from_folder, args.profile)
        except ValueError as error:
            print(f"course run: {error}", file=sys.stderr)
            return 2
        text = robustness.table(marks)
        print(text)
        return 0 if all(m.passed for m in marks) else 1
    try:
        conditions = robustness.chosen_conditions(args.conditions, busy=args.busy)
    except ValueError as error:
        print(f"course run: {error}", file=sys.stderr)
        return 2
    out = Path(args.out) / f"robustness-{args.profile}-{dt.datetime.now():%Y%m%d-%H%M%S}"
    try:
        jobs = _jobs(args.jobs or "auto")
    except ValueError as error:
        print(f"course run: {error}", file=sys.stderr)
        return 2
    marks, _ = robustness.run_conditions(notebooks, args.profile, conditions, out, args.timeout, jobs=jobs)
    text = robustness.table(marks)
    (out / "robustness.md").write_text(text + "\n")
    print("\n" + text + f"\n\nTable: {out / 'robustness.md'}")
    return 0 if all(m.passed for m in marks) else 1
