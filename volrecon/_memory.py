"""Keep the heap the process holds bounded: glibc's allocator settings and ``malloc_trim``.

Two mechanisms of glibc's ``malloc`` keep memory resident long after the arrays that used it
are gone, and both grow with the number of slices a segmentation works through:

- **Arenas.**  Blocks a thread frees stay in that thread's arena for its own reuse.  The dask
  workers allocate from several threads, and the surface finders and the void split (which run
  in the calling thread) cannot reuse what the workers' arenas hold: they stack their own slabs
  on top.
- **The dynamic mmap threshold.**  A block of at least ``M_MMAP_THRESHOLD`` bytes gets its own
  ``mmap`` and goes back to the system when freed; below it, a block comes from an arena.  glibc
  starts the threshold at 128 KiB but raises it to the size of every mmapped block freed (up to
  32 MiB): after the first chunk-sized array is freed, every later one of that size lands in an
  arena and stays resident when freed.

:func:`bound_heap` fixes the threshold (``mallopt(M_MMAP_THRESHOLD)``, which also turns the
dynamic adjustment off), so that chunk-sized arrays are mapped and unmapped on their own and
what the arenas keep is small blocks.  The cost is the page faults of every new large array
(system CPU time; measured on the segmentation of 1024x1024 slices: see :data:`MMAP_THRESHOLD`).
It changes the allocator for the whole process, for the rest of its life, so the library's
functions do not call it: the pipeline's stage functions (:mod:`volrecon.pipeline`, what
``volrecon run`` and the per-stage commands run) do, as an application sets its allocator.  A
program calling :func:`volrecon.segment.segment_volume` itself on a long stack can call it
once at its start (or set ``MALLOC_MMAP_THRESHOLD_`` in the environment).

:func:`release_memory` is a one-off request (``malloc_trim``: no setting changes): it hands
back what the arenas hold free at that moment, as dask.distributed's workers do to shed memory.
It is called between the pipeline's stages, and twice inside ``segment_volume`` (before the
surface finders and before the void split); not per chunk: the memory handed back is faulted in
again by the next arrays, in system CPU time (once per stored intermediate of the segmentation:
~8 more system CPU-s, ~4 %, in the segmentation of 200x1024x1024; after every row of chunks,
with 32-slice chunks, ~30 %).

Both do nothing where the C library is not glibc (other C libraries, other systems).
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import lru_cache
from typing import Any

M_MMAP_THRESHOLD = -3
"""``mallopt``'s parameter number for the mmap threshold (glibc's ``malloc.h``)."""

MMAP_THRESHOLD = 1 << 20
"""Bytes from which :func:`bound_heap` has glibc map a block on its own (1 MiB: a 512x512
float32 slice of a chunk and up; the chunks of the segmentation are tens of MiB)."""


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


def bound_heap(mmap_threshold: int = MMAP_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold at ``mmap_threshold`` bytes for the rest of the process.

    Blocks of that size and larger are mapped on their own and returned to the system when freed,
    and the threshold no longer rises with the blocks freed (see the module's notes).  Idempotent.

    Parameters
    ----------
    mmap_threshold : int
        Bytes; glibc accepts up to 32 MiB on 64-bit systems.

    Returns
    -------
    bool
        True when glibc took the setting; False elsewhere (nothing is changed).
    """
    lib = _glibc()
    if lib is None:
        return False
    return bool(lib.mallopt(ctypes.c_int(M_MMAP_THRESHOLD), ctypes.c_int(int(mmap_threshold))))


def release_memory() -> None:
    """Return the heap memory freed so far to the operating system; where there is no glibc
    (other C libraries, other systems) this does nothing."""
    lib = _glibc()
    if lib is not None:
        lib.malloc_trim(0)


__all__ = ["MMAP_THRESHOLD", "bound_heap", "release_memory"]
