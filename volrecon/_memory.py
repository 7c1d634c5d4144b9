"""Keep the heap the process holds bounded: glibc's allocator settings and ``malloc_trim``.

glibc's ``malloc`` gives every thread that allocates while another holds the lock an arena of
its own (up to 8 per core), and keeps the blocks a thread frees in that thread's arena for its
own reuse.  The dask workers allocate their chunks from their arenas; the surface finders and
the void split, which run in the calling thread, cannot reuse what the workers' arenas hold and
stack their own slabs on top; and glibc's dynamic mmap threshold (raised to the size of every
mapped block freed, up to 32 MiB) lets chunk-sized arrays (the segmentation's are 16-32 MiB)
land in those arenas rather than in mappings of their own that go back to the system when freed.
The memory a process keeps resident then grows with the work done, not with what is live.

:func:`bound_heap` limits the arenas (``mallopt(M_ARENA_MAX)``, :data:`ARENA_MAX`): the
threads share them, and a block one thread frees is reused by the next that needs one.
Measured on the segmentation of the diglyme phantom at 1024x1024 (2 shared cores, one pair each,
labels bit for bit the same): 128 slices (two rows of 64-slice chunks) peak RSS 1708 -> 1477 MB,
207 -> 197 CPU-s; 256 slices (four rows) 2019 -> 1892 MB, 420 -> 442 CPU-s (+5 %, within the
noise of a loaded machine).  It lowers the level, it does not stop the growth from two rows to
four (+311 MB without, +415 with): that comes from the row plan's carried chunks and the
middle rows' working set (:mod:`volrecon.segment._rows`), bounded from about three rows on.
Fixing the mmap threshold at 1 MiB instead (``M_MMAP_THRESHOLD``) brought the 128-slice peak to
1307 MB but cost 30 % more CPU (269 CPU-s: 121 s of page faults, every chunk-sized array mapped
and faulted afresh; 338 CPU-s without numpy's huge pages): not done.

glibc fixes the arena limit when a thread first needs a new arena beyond its eight "test"
arenas, and a thread keeps the arena it has: the setting must come before the worker threads
first allocate, i.e. at the start of the process.  It changes the allocator for the whole
process, for the rest of its life, so no library function calls it (not the pipeline's stages,
which the napari plugin runs inside the viewer's process): the command line does, first thing
(``volrecon.cli.main``), as an application sets up its allocator, and so does
``benchmarks/pipeline.py``, which measures what ``volrecon run`` does.  A program running the
stages or :func:`volrecon.segment.segment_volume` itself on a long stack can call it once at its
start.  A limit the user set (``MALLOC_ARENA_MAX``, or ``arena_max`` in ``GLIBC_TUNABLES``) is
left as it is.

:func:`release_memory` is a one-off request (``malloc_trim``: no setting changes): it hands
back what the arenas hold free at that moment, as dask.distributed's workers do to shed memory.
It is called between the pipeline's stages, inside ``segment_volume`` before the layer
detection (whose share maps are mapped beyond the heap the phases' rows left), before each
surface finder and before the void split, and after each slab of the surface finders
(:func:`volrecon.segment.layers.released_slabs`: tens to hundreds of MB each); not per chunk: the memory handed back is faulted in
again by the next arrays, in system CPU time (once per stored intermediate of the segmentation:
~8 more system CPU-s, ~4 %, in the segmentation of 200x1024x1024; after every row of chunks,
with 32-slice chunks, ~30 %).

Both do nothing where the C library is not glibc (other C libraries, other systems).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from functools import lru_cache
from typing import Any, Mapping

M_ARENA_MAX = -8
"""``mallopt``'s parameter number for the arena limit (glibc's ``malloc.h``)."""

ARENA_MAX = 1
"""Arenas :func:`bound_heap` lets glibc keep: one, shared by all threads.  The workers'
allocations are chunk-sized arrays, few per task, so the lock they share is rarely waited for
(measured on 2 shared cores, one pair each: -5 % and +5 % CPU, within that machine's noise; not
measured on many cores, where the compiled kernels allocate outside the GIL)."""


@lru_cache(maxsize=1)
def _libc() -> Any:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")


@lru_cache(maxsize=1)
def _glibc() -> Any | None:
    """The C library when it is glibc (it exports ``gnu_get_libc_version``), else None."""
    try:
        lib = _libc()
        lib.gnu_get_libc_version  # noqa: B018 - only glibc has it
    except (OSError, AttributeError):
        return None
    return lib


def _user_set_arenas(environ: Mapping[str, str]) -> bool:
    """True when the environment already sets glibc's arena limit."""
    return "MALLOC_ARENA_MAX" in environ or "arena_max" in environ.get("GLIBC_TUNABLES", "")


def bound_heap(arena_max: int = ARENA_MAX) -> bool:
    """Limit glibc's arenas to ``arena_max`` for the rest of the process (see the module's notes).

    Call it before the worker threads first allocate; idempotent.  Does nothing when the
    environment sets the limit itself (``MALLOC_ARENA_MAX``, ``GLIBC_TUNABLES``).

    Parameters
    ----------
    arena_max : int
        Arenas, at least 1.

    Returns
    -------
    bool
        True when glibc took the setting; False elsewhere or when the user set the limit
        (nothing is changed).
    """
    lib = _glibc()
    if lib is None or _user_set_arenas(os.environ):
        return False
    return bool(lib.mallopt(ctypes.c_int(M_ARENA_MAX), ctypes.c_int(int(arena_max))))


def release_memory() -> None:
    """Return the heap memory freed so far to the operating system; where there is no glibc
    (other C libraries, other systems) this does nothing."""
    lib = _glibc()
    if lib is not None:
        lib.malloc_trim(0)


__all__ = ["ARENA_MAX", "bound_heap", "release_memory"]
