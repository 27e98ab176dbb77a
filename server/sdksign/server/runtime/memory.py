"""Memory given back after calls that held it: a look every MEMORY_CHECK_INTERVAL seconds.

Thousands of calls held open by clients (their answers never read, their requests never
finished) take tens of MiB; once they end, their memory sits in the allocator's free lists
and the process stays large. RequestDeadlines gives it back after the calls it ends; this
does it for the rest: when glibc's allocator holds FREE_TO_GIVE_BACK bytes or more that
nothing uses (mallinfo2's fordblks), release_memory (a garbage collection, then
malloc_trim). The look costs a walk of the allocator's free lists; the trim, a few
milliseconds per hundred MiB, runs only then. Where there is no glibc, nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
from collections.abc import Callable

import structlog

from .rpc import release_memory

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
    """Until cancelled: every MEMORY_CHECK_INTERVAL, release_memory when the allocator holds
    FREE_TO_GIVE_BACK bytes that nothing uses."""
    if _MALLINFO2 is None:
        return
    while True:
        await asyncio.sleep(MEMORY_CHECK_INTERVAL)
        free = free_bytes() or 0
        if free < FREE_TO_GIVE_BACK:
            continue
        release_memory()
        log.info("memory given back", free_mib=free >> 20, left_mib=(free_bytes() or 0) >> 20)
