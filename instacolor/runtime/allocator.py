"""glibc malloc told to keep freed memory, so large tensors are not page-faulted anew.

glibc maps every allocation above its mmap threshold (dynamic, at most 32 MiB) fresh
and unmaps it on free, and trims the heap top as soon as 128 KiB are free. A network
run allocates and frees the same large feature maps again and again, so each run
page-faults its whole working set anew: a third to a half of the CPU time of the
instance path on a 2-core machine (``docs/benchmarks.md``). :func:`keep_freed_memory`
raises the mmap threshold and the trim threshold so freed blocks are reused. The cost
is memory: the process keeps its high-water mark of heap instead of returning it.

This is process-wide (it changes malloc for the whole program), applied once; on
other C libraries (macOS, Windows, musl) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

__all__ = ["keep_freed_memory"]

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
#: Allocations below this come from the heap and are reused after free.
MMAP_THRESHOLD = 1 << 30
#: Free memory at the heap top kept before trimming (the C int maximum, ~2 GiB).
TRIM_THRESHOLD = (1 << 31) - 1
#: Extra heap requested from the kernel per growth (untouched pages cost nothing).
TOP_PAD = 64 << 20

_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Set glibc's mmap and trim thresholds for reuse of large blocks (once per process).

    Returns:
        True when glibc accepted the settings (now or in an earlier call), False on
        other platforms or C libraries.
    """
    global _applied
    if _applied is None:
        _applied = False
        if sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                mallopt = libc.mallopt
            except (OSError, AttributeError):
                return False
            mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
            settings = (
                (_M_MMAP_THRESHOLD, MMAP_THRESHOLD),
                (_M_TRIM_THRESHOLD, TRIM_THRESHOLD),
                (_M_TOP_PAD, TOP_PAD),
            )
            _applied = all(mallopt(key, value) == 1 for key, value in settings)
    return _applied
