"""Keep glibc's allocator from handing freed memory back to the OS while timing on the CPU.

By default glibc returns large freed blocks to the OS, so every large temporary of a forward pass
pays page faults again: ``torch.relu(a + b)`` on a 3.2 MB tensor took 2.09 ms that way and 0.089 ms
with the thresholds raised (measured on this project's 2-core CPU), and dense and grouped timings
jumped by milliseconds between runs. ``mallopt`` sets the same thresholds as the
``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` environment variables, at run time, once per
process, for every model alike. The setting is recorded with every latency.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 2**20  # glibc's maximum: blocks below it come from the heap, not fresh mmaps
TRIM_THRESHOLD = 2**30  # keep up to 1 GiB of freed heap instead of returning it


@functools.cache
def tune_allocator() -> str:
    """Apply the thresholds (once); returns the setting as recorded in results."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        ok = libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    except (OSError, AttributeError, TypeError):
        ok = False
    if not ok:
        return "default (mallopt unavailable)"
    return f"glibc mallopt: mmap threshold {MMAP_THRESHOLD >> 20} MiB, trim threshold {TRIM_THRESHOLD >> 20} MiB"
