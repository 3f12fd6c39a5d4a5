"""Keeping freed memory in the process, so per-step arrays are not page-faulted in anew.

An eager step allocates fresh arrays for its cotangents (the 784x64 weight gradient is 200 KB).
glibc's malloc serves blocks that size from mmap or trims them back to the system when freed,
so each step pays for ~50 fresh pages (measured here: 48 minor page faults and ~60 us per
training step at batch 1). Raising malloc's mmap and trim thresholds keeps those blocks for
reuse, as PyTorch's caching allocator does by design. It changes the whole process, so it is
opt-in: the training CLI and the benchmarks call it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
_M_MMAP_THRESHOLD = -3


def keep_freed_memory(mmap_threshold: int = 64 << 20, trim_threshold: int = 256 << 20) -> bool:
    """Ask glibc's malloc to serve blocks below ``mmap_threshold`` from its heap and to keep up
    to ``trim_threshold`` bytes of freed memory. Returns False (and does nothing) where the C
    library is not glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and bool(
        mallopt(_M_TRIM_THRESHOLD, trim_threshold))
