"""Give freed heap memory back to the system on a period, so a long-running gateway's RSS stays flat (the soak).

glibc keeps what it frees: once a first large block was freed, its mmap threshold has risen, so later decoded
uploads and audio arrays come from the heap, and a small block still in use above them pins the pages they
leave (RSS climbed in steps with each burst of enrolments). `malloc_trim(0)` hands every free page of every
arena back (~20 ms per 150 MB). A fixed low mmap threshold would prevent the pinning too, but it made Whisper
~40 % slower (each large tensor mapped and zero-filled afresh), so the allocator is left as it is and trimmed.
Elsewhere than glibc (musl, macOS) there is nothing to call.
"""

from __future__ import annotations

import asyncio
import ctypes
import functools

TRIM_PERIOD_S = 30.0


@functools.cache
def _malloc_trim():
    try:
        trim = ctypes.CDLL(None).malloc_trim  # the C library the process already runs on
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def release_free_heap() -> bool:
    """True when glibc returned memory to the system."""
    trim = _malloc_trim()
    return bool(trim(0)) if trim is not None else False


async def release_free_heap_periodically(period_s: float = TRIM_PERIOD_S) -> None:
    """Runs until cancelled; in a thread, since a trim walks every arena."""
    if _malloc_trim() is None:
        return
    while True:
        await asyncio.sleep(period_s)
        await asyncio.to_thread(release_free_heap)
