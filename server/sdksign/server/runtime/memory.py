"""Memory given back after calls that held it: a look every MEMORY_CHECK_INTERVAL seconds.

Thousands of calls held open by clients (their answers never read, their requests never
finished) take tens of MiB; once they end, their memory sits in the allocator's free lists
and the process stays large. RequestDeadlines gives it back after the calls it ends; this
does it for the rest: when the bytes glibc's allocator holds unused (mallinfo2's fordblks)
have grown by FREE_TO_GIVE_BACK, release_memory (a garbage collection, then
malloc_trim). The look costs a walk of the allocator's free lists; the trim, a few
milliseconds per hundred MiB, runs only then. Where there is no glibc, nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
from collections.abc import Callable
from pathlib import Path

import structlog

from .deadlines import release_memory

log = structlog.get_logger("sdksign")

MEMORY_CHECK_INTERVAL = 5.0
FREE_TO_GIVE_BACK = 32 * 1024 * 1024


class _MallInfo2(ctypes.Structure):
    """glibc's struct mallinfo2 (2.33 and later): every field a size_t."""

    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _mallinfo2() -> Callable[[], _MallInfo2] | None:
    try:
        function = ctypes.CDLL(None).mallinfo2
    except (OSError, AttributeError):  # not glibc, or older than 2.33
        return None
    function.restype = _MallInfo2
    function.argtypes = []
    found: Callable[[], _MallInfo2] = function
    return found


_MALLINFO2 = _mallinfo2()


def free_bytes() -> int | None:
    """Bytes the allocator holds free (None without glibc's mallinfo2)."""
    return None if _MALLINFO2 is None else int(_MALLINFO2().fordblks)


async def give_back_memory() -> None:
    """Until cancelled: every MEMORY_CHECK_INTERVAL, release_memory when the allocator's
    unused bytes have grown by FREE_TO_GIVE_BACK since the last trim (or the start). A trim
    returns pages to the system but leaves their bytes counted as unused, hence the growth."""
    if _MALLINFO2 is None:
        return
    mark = free_bytes() or 0
    while True:
        await asyncio.sleep(MEMORY_CHECK_INTERVAL)
        free = free_bytes() or 0
        if free - mark < FREE_TO_GIVE_BACK:
            mark = min(mark, free)  # memory used again: growth is measured from here
            continue
        before = resident_bytes()
        release_memory()
        mark = free_bytes() or 0
        after = resident_bytes()
        log.info(
            "memory given back",
            unused_mib=free >> 20,
            **(
                {}
                if before is None or after is None
                else {"resident_mib": [before >> 20, after >> 20]}
            ),
        )


def resident_bytes() -> int | None:
    """This process's resident memory in bytes (None where /proc does not say)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")
