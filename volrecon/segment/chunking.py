"""The chunked processing of ``segment_volume``: how a volume is cut into chunks and how a per-chunk
filter runs over them with the context it needs.

Every step of the segmentation stage (:mod:`volrecon.segment.api`) that reads a neighbourhood runs
through :func:`_overlap` (a :func:`dask.array.map_overlap` that hands the filter its padded block, the
block's core and which faces border another chunk), on the chunks :func:`_as_dask` cut (default
:data:`DEFAULT_CHUNKS`); the frame's masks are laid on those chunks by :func:`_frame_chunks`, and
:func:`_reduced_chunks` reduces chosen chunk rows in one pass.  A filter that reads only a band of rows
along one axis, different for each column, runs through :func:`_banded_tiles` instead (tiles of columns,
each within its own band).  Nothing here knows a phase or a layer.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import dask
import dask.array as da
import numpy as np


DEFAULT_CHUNKS: tuple[int, int, int] = (64, 256, 256)
"""Processing chunk shape when none is given; ~2 M voxels, a hundred MB or so of working arrays
per worker.  A lazy chain is evaluated row by row (:func:`volrecon.segment._rows.store_by_rows`):
a row holds its own chunks, one chunk row a step ahead per overlapping step of the chain (the
context it lends) and thin context slices, so what it holds does not grow with the number of
rows (tests/segment/test_rows.py: 128 vs 32 slices within 15 %); a stack shorter than about three
rows (~200 slices) holds less.  The whole stage's measured peaks (allocator included) are in
benchmarks/results/pipeline.md.  Shallower chunks shrink the row but add overlap work
(32 slices: ~30 % more CPU on 200x1024x1024), so the default stays 64; pass ``chunks`` with a
shallower depth to trade speed for memory.  Results do not depend on the chunks."""


def _as_dask(image: Any, chunks: Sequence[int] | None) -> da.Array:
    """``image`` as a dask array chunked for processing (``chunks`` or :data:`DEFAULT_CHUNKS`).

    The input's own chunks (often one slice each) are not kept: thin chunks would make the
    overlap dominate the work.
    """
    shape = tuple(int(n) for n in image.shape)
    want = tuple(min(int(c), n) for c, n in zip(chunks or DEFAULT_CHUNKS, shape))
    if isinstance(image, da.Array):
        return image.rechunk(want)
    return da.from_array(np.asarray(image), chunks=want)


def _axis_chunks(n: int, size: int, depth: int) -> tuple[int, ...]:
    """Chunks of ``size`` along an axis of length ``n``, none thinner than ``depth``.

    A short remainder is merged into the chunk before it, so the overlap never has to shrink.
    """
    size = max(int(size), int(depth), 1)
    out = [size] * (n // size)
    rest = n - size * len(out)
    if rest:
        if out and rest < depth:
            out[-1] += rest
        else:
            out.append(rest)
    return tuple(out) or (n,)


def _specimen_voxels(frame_mask: np.ndarray | None, shell: np.ndarray | None,
                     chunks: tuple[tuple[int, ...], ...]) -> da.Array | None:
    """The voxels outside the frame and the trench walls' rim shell (``(y, x)``), as a dask array on
    ``chunks``; None when there is no frame (every voxel is specimen)."""
    if frame_mask is None:
        return None
    out = ~_frame_chunks(np.asarray(frame_mask, dtype=bool), chunks)
    return out if shell is None else out & ~_frame_chunks(np.asarray(shell, dtype=bool), chunks)


def _frame_chunks(mask: np.ndarray, chunks: tuple[tuple[int, ...], ...]) -> da.Array:
    """The frame ``mask`` (bool, ``(y, x)`` for every slice, or the whole volume) as a dask array on
    ``chunks`` (the volume's).

    A ``(y, x)`` mask is cut on the in-plane chunks first and then broadcast along z, so each
    chunk is a view of its ``(y, x)`` tile, with no memory of its own.  (Broadcast whole and then
    rechunked, each chunk was merged into a bool array of its own; a row of
    :func:`volrecon.segment._rows.store_by_rows` held a row's worth of them while it ran.)

    Parameters
    ----------
    mask : ndarray of bool, ``(y, x)`` or ``(z, y, x)``
        The frame's pixels.
    chunks : tuple of tuple of int
        The volume's chunks.

    Returns
    -------
    dask.array.Array
        The mask over the whole volume, on ``chunks``.
    """
    if mask.ndim == 2:
        shape = (sum(chunks[0]), *mask.shape)
        return da.broadcast_to(da.from_array(mask, chunks=chunks[1:]), shape, chunks=chunks)
    return da.from_array(mask, chunks=chunks)


def _core(block_info: dict, depth: Sequence[int], shape: Sequence[int]) -> tuple[tuple[slice, ...], list[tuple[bool, bool]]]:
    info = block_info[0]
    loc, num = info["chunk-location"], info["num-chunks"]
    out_loc = block_info[None]["array-location"]
    core, faces = [], []
    for ax in range(3):
        lo = depth[ax] if loc[ax] > 0 else 0
        n = out_loc[ax][1] - out_loc[ax][0]
        core.append(slice(lo, lo + n))
        faces.append((loc[ax] > 0, loc[ax] < num[ax] - 1))
    return tuple(core), faces


def _compact(grey: da.Array) -> da.Array:
    """Grey values as they cross :func:`_overlap`: in their own type up to 4 bytes a value (the
    filters cast their padded blocks to float32 themselves), else as float32, the type the
    filters compute in (the same values: a float64 or 64-bit integer stack would otherwise carry
    twice the bytes of float32 through the overlap)."""
    return grey if grey.dtype.itemsize <= 4 else grey.astype(np.float32)


def _overlap(fn: Callable[..., np.ndarray], arr: da.Array, depth: Sequence[int], dtype: Any, *,
             extra: Sequence[da.Array] = (), **kw: Any) -> da.Array:
    """``fn(padded_block, *padded_extra_blocks, core=..., faces=...)`` over the chunks of ``arr`` with
    ``depth`` context (``extra``: arrays of ``arr``'s shape, cut the same way).

    The blocks reach ``fn`` in ``arr``'s own type: a filter of grey values casts its padded block
    itself (:func:`volrecon.segment.regional.smooth`, :func:`volrecon.segment.voids.pore_average`),
    so the chunks and context slices a row of :func:`volrecon.segment._rows.store_by_rows` holds
    while the padded blocks are assembled are the input's bytes (uint8: a quarter of float32;
    float32 copies of a row's chunks were a large share of the stage's peak at 2048x1536:
    ``benchmarks/results/pipeline_2048x1536.md``, session 17)."""
    # every chunk must be at least as deep as the overlap (else the context would be cut short)
    chunks = tuple(_axis_chunks(n, arr.chunksize[ax], int(depth[ax])) for ax, n in enumerate(arr.shape))
    arr = arr.rechunk(chunks)
    depth = [int(d) if len(c) > 1 else 0 for d, c in zip(depth, arr.chunks)]

    others = [e.rechunk(arr.chunks) for e in extra]

    def run(block: np.ndarray, *blocks: np.ndarray, block_info: dict | None = None) -> np.ndarray:
        core, faces = _core(block_info, depth, block.shape)
        return fn(block, *blocks, core=core, faces=faces, **kw)

    dep = {i: d for i, d in enumerate(depth)}
    return da.map_overlap(run, arr, *others, depth=[dep] * (1 + len(others)), boundary="none", trim=False,
                          dtype=dtype, chunks=arr.chunks, meta=np.empty((0, 0, 0), dtype), align_arrays=False)


def _banded_tiles(fn: Callable[..., np.ndarray], out: da.Array, extra: Sequence[da.Array], *, axis: int,
                  depth: Sequence[int], band: Callable[[tuple[slice, slice]], slice | None]) -> da.Array:
    """``fn(out_block, *extra_blocks)`` (arrays of ``out``'s shape) on each tile of columns (a chunk of
    ``out`` across ``axis``), its block holding the tile's columns and those within ``depth`` of them
    and, along ``axis``, the rows ``band(padded)`` gives for those columns (``padded``: their slices
    of the two other axes); ``out``'s values outside a tile's band, and where it is None.

    A block follows its tile and what ``band`` says its columns need, never the whole field along
    ``axis``, and no chunk has to be as deep as ``depth`` (the padded columns are sliced, not
    borrowed from the neighbouring chunks as :func:`_overlap` does)."""
    lat = [a for a in range(3) if a != axis]
    edges = [np.cumsum((0,) + out.chunks[a]).astype(int) for a in lat]
    tiles = [[_band_tile(fn, out, extra, axis=axis, core=(slice(edges[0][i], edges[0][i + 1]),
                                                          slice(edges[1][j], edges[1][j + 1])),
                         depth=[int(depth[a]) for a in lat], band=band)
              for j in range(len(edges[1]) - 1)] for i in range(len(edges[0]) - 1)]
    nested: list = [tiles] if axis == 0 else [[row] for row in tiles] if axis == 1 else [[[t] for t in row] for row in tiles]
    return da.block(nested)


def _band_tile(fn: Callable[..., np.ndarray], out: da.Array, extra: Sequence[da.Array], *, axis: int,
               core: tuple[slice, slice], depth: Sequence[int], band: Callable[[tuple[slice, slice]], slice | None]
               ) -> da.Array:
    """One tile of :func:`_banded_tiles`: ``out``'s columns ``core`` (slices of the two axes other than
    ``axis``), ``fn`` applied within their band, on ``out``'s chunks along ``axis``."""
    lat = [a for a in range(3) if a != axis]
    pad = tuple(slice(max(0, c.start - d), min(out.shape[a], c.stop + d)) for c, d, a in zip(core, depth, lat))
    rows = band(pad)

    def at(along: slice, lateral: tuple[slice, slice]) -> tuple[slice, ...]:
        return (*lateral[:axis], along, *lateral[axis:])

    if rows is None:
        return out[at(slice(None), core)]
    blocks = [a[at(rows, pad)].rechunk(-1) for a in (out, *extra)]
    inner = at(slice(None), tuple(slice(c.start - p.start, c.stop - p.start) for c, p in zip(core, pad)))
    shape = at(slice(rows.stop - rows.start), tuple(slice(c.stop - c.start) for c in core))
    placed = da.map_blocks(lambda *b: np.ascontiguousarray(fn(*b)[inner]), *blocks, dtype=out.dtype,
                           chunks=tuple((s.stop,) for s in shape), meta=np.empty((0, 0, 0), out.dtype))
    parts = [out[at(slice(0, rows.start), core)], placed, out[at(slice(rows.stop, None), core)]]
    return da.concatenate([p for p in parts if p.shape[axis]], axis=axis).rechunk({axis: out.chunks[axis]})


def _reduced_chunks(arrays: Sequence[da.Array], reduce: Callable[..., Any], rows: Sequence[int]) -> list[tuple[tuple[slice, ...], Any]]:
    """``reduce(region, *blocks)`` of each chunk of the chunk rows ``rows`` (along z) of ``arrays``
    (one shape; cut as the first), with the chunk's ``region``: one pass, every chunk computed once
    (the arrays' chunks shared) and dropped once reduced, so what is held is the reductions and the
    chunks in flight, not the slices they came from."""
    first = arrays[0]
    blocks = [a.rechunk(first.chunks).to_delayed(optimize_graph=False) for a in arrays]
    starts = [np.concatenate([[0], np.cumsum(c)]).astype(int) for c in first.chunks]
    wanted = {int(r) for r in rows}
    regions, tasks = [], []
    for idx in np.ndindex(*blocks[0].shape):
        if idx[0] in wanted:
            regions.append(tuple(slice(int(s[i]), int(s[i + 1])) for s, i in zip(starts, idx)))
            tasks.append(dask.delayed(reduce)(regions[-1], *(b[idx] for b in blocks)))
    return list(zip(regions, dask.compute(*tasks)))
