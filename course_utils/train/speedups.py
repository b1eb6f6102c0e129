"""Speed-ups for training and evaluation: bf16 autocast, channels-last, non-blocking copies, torch.compile.

On CUDA they are on by default. On the CPU ``Speedups.for_device`` leaves them all off
unless asked, so CPU runs compute exactly what they computed without this module (and
stay bit-for-bit reproducible): the CPU gets its speed from the data path (``data.device_loader``)
and from feature caching (``train.features``). Two of them can be asked for on the CPU:

* bf16 autocast, on processors that compute bfloat16 in hardware (AMX or AVX-512 BF16,
  see ``native_bf16``; only AMX was measured). It pays for plain convolutions: ResNet-18 at
  64 px trains 1.9x faster with it and channels-last on the 2-core development machine
  (170 -> 333 images/s) and infers 2.2x faster (738 -> 1656). Cached features
  (``cache_features=True``) are then stored in bfloat16 too. It does not pay for EfficientNet-Lite's depthwise
  convolutions, which train slower in bf16 (208 -> 125 images/s for Lite0 at 48 px), so
  it stays off by default and the notebooks do not use it.
* channels-last, on any CPU.

What each one does:

* **bf16 autocast**: matrix multiplications and convolutions in bfloat16 (tensor cores on
  a GPU, AMX tiles on a CPU), losses and reductions in float32. bfloat16 has float32's
  exponent range, so no loss scaling is needed (unlike float16).
* **channels-last**: NHWC memory layout for the model and the image batches, the layout
  the tensor-core and oneDNN convolution kernels work in (no transposes around each layer).
* **non-blocking copies** from pinned memory (``make_loader`` pins its batches on CUDA):
  the copy to the GPU overlaps with computation.
* **cuDNN autotuning** (``cudnn.benchmark``) during ``fit``/``evaluate``: with a fixed input
  size, cuDNN times its algorithms once and keeps the fastest.
* **torch.compile** (opt-in, ``compile_model=True``, CUDA only): fuses elementwise layers
  into the surrounding kernels; the first epoch pays for compilation.

Example:
    >>> speed = Speedups.for_device("cpu")  # on a GPU: bf16, channels-last and cuDNN autotuning
    >>> speed.mixed_precision, speed.channels_last
    (False, False)
    >>> model, images = torch.nn.Conv2d(3, 4, 3), torch.randn(2, 3, 8, 8)
    >>> with speed.autocast():
    ...     logits = model(*speed.to_device([images]))
    >>> logits.dtype
    torch.float32
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class Speedups:
    """Which speed-ups a run uses (on CUDA by default; on the CPU only when asked for).

    Attributes:
        device: the training device.
        mixed_precision: bf16 autocast.
        channels_last: NHWC layout for the model and 4-D float inputs.
        compile_model: wrap the network in ``torch.compile``.
    """

    device: torch.device
    mixed_precision: bool = False
    channels_last: bool = False
    compile_model: bool = False

    def __post_init__(self):
        object.__setattr__(self, "device", torch.device(self.device))
        if self.device.type == "cuda":
            return
        # What the CPU can do (see the module notes); anything else needs CUDA.
        cpu = self.device.type == "cpu"
        allowed = {"channels_last"} if cpu else set()
        if cpu and native_bf16(self.device):
            allowed.add("mixed_precision")
        for name in ("mixed_precision", "channels_last", "compile_model"):
            if not getattr(self, name) or name in allowed:
                continue
            if name == "mixed_precision" and cpu:
                why = "this processor has no bfloat16 arithmetic (AMX or AVX-512 BF16)"
            elif name == "compile_model":
                why = f"torch.compile is used on CUDA only and this run is on {self.device}"
            else:
                why = f"it is a CUDA speed-up and this run is on {self.device}"
            fix = (
                "leave compile_model=False"
                if name == "compile_model"
                else f"leave {name} at its default (None), which turns it on only on a GPU"
            )
            raise ValueError(f"{name}=True cannot be used here: {why}. Fix: {fix}.")

    @classmethod
    def for_device(
        cls, device, mixed_precision: bool | None = None, channels_last: bool | None = None, compile_model: bool = False
    ) -> Speedups:
        """The speed-ups for ``device``: ``None`` means "on for CUDA, off otherwise".

        Raises:
            ValueError: a speed-up is requested (``True``) that the device cannot run: bf16 on a
                GPU or CPU without bfloat16 arithmetic, ``torch.compile`` or any speed-up off CUDA
                and the CPU.
        """
        device = torch.device(device)
        if device.type != "cuda":  # off unless asked; what cannot run here is an error (see __post_init__)
            return cls(device, bool(mixed_precision), bool(channels_last), bool(compile_model))
        cuda = True
        bf16 = native_bf16(device)
        if mixed_precision and not bf16:
            raise ValueError(
                "mixed_precision=True needs a GPU with bfloat16 support (Ampere or newer); "
                "use mixed_precision=None to train in float32 here."
            )
        return cls(
            device=device,
            mixed_precision=bf16 if mixed_precision is None else bool(mixed_precision),
            channels_last=cuda if channels_last is None else bool(channels_last),
            compile_model=bool(compile_model),
        )

    def autocast(self):
        """A context for the forward pass: bf16 autocast when on, else nothing."""
        if self.mixed_precision:
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def autotune(self):
        """A context with cuDNN autotuning on (CUDA only); the previous setting comes back afterwards."""
        if self.device.type != "cuda":
            return contextlib.nullcontext()
        return _cudnn_benchmark()

    def prepare_model(self, model: nn.Module) -> None:
        """Move ``model``'s weights to channels-last layout (in place) when that speed-up is on."""
        if self.channels_last:
            model.to(memory_format=torch.channels_last)

    def compiled(self, module: nn.Module) -> nn.Module:
        """``torch.compile(module)`` when compiling is on, else ``module`` itself (weights are shared)."""
        return torch.compile(module) if self.compile_model else module

    def to_device(self, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
        """Copy a batch ``[images (N, ...), labels (N,), ...]`` to the device (non-blocking).

        4-D float images become channels-last when that speed-up is on.
        """
        moved = [t.to(self.device, non_blocking=True) for t in tensors]
        first = moved[0]
        if self.channels_last and first.ndim == 4 and first.is_floating_point():
            moved[0] = first.contiguous(memory_format=torch.channels_last)
        return moved


def native_bf16(device) -> bool:
    """Whether ``device`` computes bfloat16 in hardware.

    On CUDA: compute capability 8.0 (Ampere) or newer. ``torch.cuda.is_bf16_supported()``
    also says yes for older GPUs such as Colab's T4 (7.5), where bfloat16 is only emulated
    and slower than float32. On the CPU: AMX or AVX-512 BF16 instructions, as torch reports
    them (``torch.cpu.get_capabilities``).

    Example:
        >>> native_bf16("meta")
        False
    """
    device = torch.device(device)
    if device.type == "cpu":
        capabilities = getattr(torch.cpu, "get_capabilities", lambda: {})()
        return bool(capabilities.get("amx_bf16") or capabilities.get("avx512_bf16"))
    if device.type != "cuda" or not torch.cuda.is_available():
        return False
    return torch.cuda.get_device_capability(device)[0] >= 8


@contextlib.contextmanager
def _cudnn_benchmark():
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before
