"""Reproducibility: the same seed, on the same machine, gives the same numbers.

Two things decide a CPU run's numbers besides the code:

* **the random generators** (subsets, initial weights, batch order, augmentation): every run
  reseeds them with ``seed_everything``. The kit's data paths draw from those seeded
  generators only: the on-device batches from torch's global generator, the per-image
  ``DataLoader``'s workers from seeds that torch draws from that generator (and gives to
  each worker's Python, NumPy and torch generators).
* **the number of CPU threads**: a convolution's or a matrix product's sums are split
  between the threads, and floating-point addition is not associative, so two threads give
  other last digits than one, and a few epochs turn them into other accuracies (measured:
  two epochs of EfficientNet-Lite0 on digits end at training loss 2.4455 with 2 threads,
  2.4244 with 1). With the same count, runs are bit-for-bit identical, also on a busy
  machine (a test runs the same training in two processes, one next to a CPU hog, and
  compares the histories exactly). ``pin_threads`` fixes the count for the whole run.

The machine decides the last digits too: torch picks its CPU kernels by the processor's
vector instructions (``torch.backends.cpu.get_cpu_capability()``: ``AVX2``, ``AVX512``, ...;
``ATEN_CPU_CAPABILITY`` lowers it), oneDNN's convolutions by its own choice
(``ONEDNN_MAX_CPU_ISA`` limits it), and the two paths sum in different orders. So the same
numbers come back on the same machine and numeric path (``NumericPath``, saved in every
results record); on another machine the numbers differ in their last digits, and the lessons
(the findings over seeds) hold within the seed spread.

On CUDA, runs are close but **not** bit-for-bit identical: cuDNN's autotuning
(``cudnn.benchmark``, on in ``fit``) picks each convolution's algorithm by timing it, and
several backward kernels (interpolation, pooling, ``index_add``) add with atomics in whatever
order the threads arrive. bf16 autocast itself is deterministic. Differences stay at the level
of seed-to-seed noise, far below a lesson's margin.

Example:
    >>> import torch
    >>> seed_everything(0); a = torch.rand(2)
    >>> seed_everything(0); b = torch.rand(2)
    >>> torch.equal(a, b)
    True
"""

from __future__ import annotations

import os
import platform
import random
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

THREADS_VARIABLE = "COURSE_NUM_THREADS"


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's random generators (CPU and every CUDA device).

    Example:
        >>> seed_everything(3); first = (random.random(), np.random.rand(), torch.rand(1).item())
        >>> seed_everything(3); first == (random.random(), np.random.rand(), torch.rand(1).item())
        True
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


def pin_threads(threads: int | None = None) -> int:
    """Fix how many CPU threads torch computes with for the rest of the process; return the count.

    Args:
        threads: the count; default ``$COURSE_NUM_THREADS``, else torch's own choice (the
            machine's physical cores), which does not change with how busy the machine is.

    Raises:
        ValueError: the count is not a positive integer.

    Example:
        >>> pin_threads() == torch.get_num_threads()
        True
    """
    if threads is None:
        setting = os.environ.get(THREADS_VARIABLE)
        try:
            threads = int(setting) if setting else torch.get_num_threads()
        except ValueError:
            raise ValueError(
                f"{THREADS_VARIABLE}={setting!r} is not a number of threads; "
                f"set it to a positive integer (e.g. 2) or unset it."
            ) from None
    if not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive integer, got {threads!r}.")
    if threads != torch.get_num_threads():
        torch.set_num_threads(threads)
    return threads


@dataclass(frozen=True)
class NumericPath:
    """What decides a run's last digits besides the code and the seeds: processor, kernels, threads, torch.

    Two runs with the same code, seeds and numeric path give the same numbers bit for bit;
    with another path they agree within the seed spread, not to the last digit.

    Attributes:
        torch: torch's version.
        cpu_model: the processor's name (``/proc/cpuinfo``'s ``model name`` on Linux).
        cpu_capability: the vector instructions torch's own CPU kernels use
            (``torch.backends.cpu.get_cpu_capability()``, e.g. ``AVX2``, ``AVX512``).
        aten_cpu_capability: the environment's ``ATEN_CPU_CAPABILITY`` (``None``: unset), which lowers it.
        onednn_max_cpu_isa: the environment's ``ONEDNN_MAX_CPU_ISA`` (``None``: unset), which
            limits the instructions of oneDNN's convolutions.
        threads: torch's CPU threads (``pin_threads``): they split a convolution's sums.
        gpu: the CUDA device's name, ``None`` when no GPU is visible.

    Example:
        >>> path = NumericPath.of_this_process()
        >>> path.threads == torch.get_num_threads(), sorted(path.as_dict())[:3]
        (True, ['aten_cpu_capability', 'cpu_capability', 'cpu_model'])
    """

    torch: str
    cpu_model: str
    cpu_capability: str
    aten_cpu_capability: str | None
    onednn_max_cpu_isa: str | None
    threads: int
    gpu: str | None

    @classmethod
    def of_this_process(cls) -> NumericPath:
        """The numeric path this process computes on now."""
        return cls(
            torch=torch.__version__,
            cpu_model=cpu_model(),
            cpu_capability=torch.backends.cpu.get_cpu_capability(),
            aten_cpu_capability=os.environ.get("ATEN_CPU_CAPABILITY") or None,
            onednn_max_cpu_isa=os.environ.get("ONEDNN_MAX_CPU_ISA") or None,
            threads=torch.get_num_threads(),
            gpu=torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        )

    def as_dict(self) -> dict:
        return asdict(self)


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The processor's name: ``model name`` in ``cpuinfo`` on Linux, else what ``platform`` knows.

    Example:
        >>> isinstance(cpu_model(), str) and cpu_model() != ""
        True
    """
    try:
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass  # not Linux: macOS and Windows name the processor through platform
    return platform.processor() or platform.machine() or "unknown"
