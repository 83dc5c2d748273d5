"""Freed memory handed back to the operating system between the stages of a run (issue 16).

The C library's allocator keeps what a stage freed for later allocations: the
per-frame tables of the traces pass, the quality flags and the kinetics free
hundreds of megabytes (their pandas copies, Dask's chunk buffers in the
threads' arenas) that the next stage, allocating differently, mostly cannot
reuse, so the process's resident memory (and its peak) grew with every stage
and with the number of frames. Measured on a 512x512 x 8000-frame run with 200
particles (``benchmarks/README.md``): 330 MB of the 1 GB resident at the end
were free memory of glibc's heaps, against 288 MB in use. glibc's
``malloc_trim`` returns the free pages of every heap (not only its top) to the
system; elsewhere (macOS, Windows, musl) :func:`release_free_memory` does
nothing. Arrow (Parquet reading and writing) allocates from its own pool
(mimalloc or jemalloc), which keeps what it freed too: writing
``traces.parquet`` of an 8000-frame run left ~70 MB resident in it; its
unused memory is released as well, on every platform.
"""

from __future__ import annotations

import ctypes
import functools
import gc
import sys
from collections.abc import Callable

__all__ = ["release_free_memory"]


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim`` of this process, or None where there is none."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        trim = ctypes.CDLL(None).malloc_trim  # the C library the interpreter runs on
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def _release_arrow_pool() -> None:
    """Hand Arrow's pool's free memory back to the system, if pyarrow was imported (never imports it)."""
    pa = sys.modules.get("pyarrow")
    if pa is not None:
        pa.default_memory_pool().release_unused()


def release_free_memory(*, collect: bool = True) -> bool:
    """Give the C heap's free pages back to the system (after collecting garbage cycles).

    Parameters
    ----------
    collect : bool
        Run :func:`gc.collect` first (0.1-0.4 s in a large process); False
        where it runs often (after every per-particle map of the kinetics).

    Returns
    -------
    bool
        Whether the C allocator could trim (glibc); the numbers never depend on it.
    """
    if collect:
        gc.collect()
    _release_arrow_pool()
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
