"""Hand freed heap memory back to the operating system (glibc's ``malloc_trim``).

glibc keeps the blocks a thread frees in that thread's arena for reuse; the dask workers and the
solvers allocate from several threads, so after a stage the process keeps resident what it held
at its peak and the next stage starts from there.  Trimming is a one-off request (no allocator
setting is changed, nothing stays different for the rest of the process: it is what
dask.distributed's workers do to shed memory).  Called between the pipeline's stages and once per
intermediate volume the segmentation stores (its rows free blocks of many sizes from every worker
thread, and without a trim each step of the chain adds its fragments to the resident memory of
the next); not after every row of chunks, whose memory handed back the next row faults in again.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1)
def _libc() -> Any:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")


def release_memory() -> None:
    """Return the heap memory freed so far to the operating system; where there is no glibc
    (other C libraries, other systems) this does nothing."""
    try:
        _libc().malloc_trim(0)
    except (OSError, AttributeError):
        pass


__all__ = ["release_memory"]
