"""Keep freed memory in the process for the next training step instead of giving it back (glibc).

A training step allocates its activations and gradients, frees them, and allocates them again
in the next step. glibc's malloc gives freed memory at the top of its heap back to the kernel
once more than its trim threshold is free, so the next step touches fresh pages, each a page
fault and a page of zeros: about 8,000 per step of EfficientNet-Lite0 at 48 px, batch 16, one
thread (docs/speed.md, "Freed memory kept for reuse"). Fixed thresholds keep up to
``TRIM_THRESHOLD`` bytes of freed memory for reuse; blocks above ``MMAP_THRESHOLD`` still get
their own mapping and go back when freed. Only where memory is allocated and at what address
changes, not one number a computation gives: torch aligns every tensor to 64 bytes itself.
"""

from __future__ import annotations

import ctypes
import os

M_TRIM_THRESHOLD = -1  # mallopt's parameter numbers, from glibc's malloc.h
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024  # the largest glibc allows on 64-bit (half its heap size)
TRIM_THRESHOLD = 1024 * 1024 * 1024

# A choice the user made wins: glibc's own settings, or another allocator preloaded.
USER_SETTINGS = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_")


def user_chose_allocator(environ=os.environ) -> bool:
    """Whether ``environ`` already says how malloc should behave (then the library leaves it).

    Example:
        >>> user_chose_allocator({"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=0"})
        True
        >>> user_chose_allocator({"LD_PRELOAD": "/usr/lib/libjemalloc.so.2"}), user_chose_allocator({})
        (True, False)
    """
    return (
        any(name in environ for name in USER_SETTINGS)
        or "glibc.malloc." in environ.get("GLIBC_TUNABLES", "")
        or "malloc" in environ.get("LD_PRELOAD", "")
    )


def keep_freed_memory() -> bool:
    """Set glibc's trim and mmap thresholds to keep freed memory for reuse; ``True`` if they were set.

    Does nothing (``False``) where the C library is not glibc (macOS, Windows, musl) or the user
    chose malloc's behaviour (:func:`user_chose_allocator`).

    Example (on Linux with glibc, set unless the environment names a malloc setting):
        >>> import sys
        >>> keep_freed_memory() == (sys.platform.startswith("linux") and not user_chose_allocator())
        True
    """
    if user_chose_allocator():
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 - only glibc has it
        mallopt = libc.mallopt
    except (AttributeError, OSError, TypeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # The mmap threshold first: fixing the trim threshold alone also fixes the mmap threshold at
    # its 128 KiB default, and then every larger block is mapped and unmapped at each step.
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
