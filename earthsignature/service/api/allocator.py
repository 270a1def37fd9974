"""The server process's memory allocator, set for answers made of large arrays.

A map answer allocates and frees arrays of megabytes (windows read, area masks, encoded rasters). glibc serves
an allocation above its mmap threshold (dynamic, from 128 KiB up to the largest block freed so far) with a
fresh mapping and returns it to the kernel when freed, so the next answer faults the same pages in again,
zeroed and charged anew: 1,200 to 5,000 page faults a request for 10 windows of full-size maps, measured, and
under load the threads of a process queue in the kernel for them. Keeping freed memory for the next answer
(a fixed mmap threshold above an answer's arrays, a trim threshold that keeps it in the heap) brought that to
30 to 300 (README, Benchmarks). The cost: a process keeps up to ``TRIM_THRESHOLD_MB`` of freed memory.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

#: mallopt's parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
#: allocations below this come from the heap, and are reused once freed (a window of 16 Mpx is 16 MB)
MMAP_THRESHOLD_MB = 128
#: freed memory at the heap's top is kept up to this much before it is returned to the kernel
TRIM_THRESHOLD_MB = 512
#: the heap grows by this much more than asked, so that growing does not fault page by page
TOP_PAD_MB = 64


def keep_freed_memory() -> bool:
    """Set glibc's allocator for this process as the module says; False where the C library is not glibc."""
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):
        mallopt = None
    if mallopt is None:
        log.info("no glibc mallopt here: the allocator keeps its defaults")
        return False
    mib = 1024 * 1024
    return all(mallopt(parameter, value * mib) == 1 for parameter, value in (
        (_M_MMAP_THRESHOLD, MMAP_THRESHOLD_MB), (_M_TRIM_THRESHOLD, TRIM_THRESHOLD_MB), (_M_TOP_PAD, TOP_PAD_MB)))
