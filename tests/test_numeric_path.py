"""What reproduces: every results record and ``course run``'s summary page name the run's numeric path."""

from __future__ import annotations

import json

import torch

import course_utils as cu
from course_kit.runner import REPRODUCES, NotebookRun, write_summary
from course_utils.train.reproducibility import NumericPath, cpu_model


def test_the_results_record_carries_the_numeric_path(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_RESULTS_DIR", str(tmp_path))
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    monkeypatch.delenv("ATEN_CPU_CAPABILITY", raising=False)
    path = cu.results.save_results("01_x", {"test_acc": 0.5})
    recorded = json.loads(path.read_text())["numeric_path"]
    assert recorded == {
        "torch": torch.__version__,
        "cpu_model": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "aten_cpu_capability": None,
        "onednn_max_cpu_isa": "AVX2",
        "threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }
    assert recorded == NumericPath.of_this_process().as_dict()


def test_cpu_model_reads_the_model_name_of_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\nflags\t\t: avx2\n")
    assert cpu_model(cpuinfo) == "AMD EPYC 7B13"
    assert cpu_model(tmp_path / "missing") != ""  # not Linux: platform's name, never empty


def numeric_path(**changes) -> dict:
    base = {"torch": "2.5.1", "cpu_model": "Intel Xeon", "cpu_capability": "AVX512", "aten_cpu_capability": None}
    return {**base, "onednn_max_cpu_isa": None, "threads": 2, "gpu": None, **changes}


def run_with(tmp_path, name: str, path: dict | None) -> NotebookRun:
    results = {"summary": {"test_acc": 0.5}, **({"numeric_path": path} if path else {})}
    return NotebookRun(name=name, output=tmp_path / f"{name}.ipynb", status="ok", results=results)


def test_the_summary_page_shows_the_numeric_path_once_for_a_run_on_one_path(tmp_path):
    runs = [run_with(tmp_path, "01_a", numeric_path()), run_with(tmp_path, "02_b", numeric_path())]
    md_path, html_path = write_summary(tmp_path, runs, "offline", {"profile": "offline"})
    md, page = md_path.read_text(), html_path.read_text()
    assert md.count("## Numeric path") == 1 and "## Numeric path\n" in md
    for row in ("| cpu_model | Intel Xeon |", "| cpu_capability | AVX512 |", "| onednn_max_cpu_isa | unset |"):
        assert row in md
    assert "| aten_cpu_capability | unset |" in md and "| threads | 2 |" in md
    assert REPRODUCES in md and "<td>cpu_capability</td><td>AVX512</td>" in page


def test_the_summary_page_names_the_notebooks_of_each_numeric_path(tmp_path):
    runs = [
        run_with(tmp_path, "01_a", numeric_path()),
        run_with(tmp_path, "02_b", numeric_path(threads=1, onednn_max_cpu_isa="AVX2")),
        run_with(tmp_path, "03_c", None),  # failed before saving its record
    ]
    md = write_summary(tmp_path, runs, "offline", {"profile": "offline"})[0].read_text()
    assert "## Numeric path of 01_a\n" in md and "## Numeric path of 02_b\n" in md
    assert "| onednn_max_cpu_isa | AVX2 |" in md and "| threads | 1 |" in md
    assert md.count("## Numeric path") == 2  # 03_c's record names none
