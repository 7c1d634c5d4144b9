"""Hand freed heap memory back to the operating system (glibc's ``malloc_trim``).

glibc keeps the blocks a thread frees in that thread's arena for reuse; the dask workers and the
solvers allocate from several threads, so after a stage the process keeps resident what it held
at its peak and the next stage starts from there.  Trimming is a one-off request (no allocator
setting is changed, nothing stays different for the rest of the process: it is what
dask.distributed's workers do to shed memory).  Called between the pipeline's stages, and twice
inside ``segment_volume`` (before the surface finders and before the void split, which run in the
calling thread and cannot reuse what the workers' arenas hold); not per chunk: the
memory handed back is faulted in again by the next arrays, in system CPU time (once per stored
intermediate of the segmentation: ~8 more system CPU-s, ~4 %, in the segmentation of
200x1024x1024; after every row of chunks, with 32-slice chunks, ~30 %).
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
