"""Compiled passes of the void split (:func:`volrecon.segment.voids.split_voids`).

Each kernel does, voxel by voxel and in the same float32 order, what the NumPy form in
:mod:`volrecon.segment.voids` does in whole-array passes (one pass per slice of depth there), so
the results are the same bit for bit (tests/segment/test_speed_kernels.py).
"""

from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(cache=True, nogil=True)
def _flat_columns(g: np.ndarray, level: np.float32, tol: np.float32, depth: int, where: np.ndarray,
                  use_where: bool, out: np.ndarray) -> None:
    """``out[z, y, x]``: ``|g - level| < tol`` at the voxel and, on average, over the up to ``depth``
    voxels behind it along z (their float32 sum in order, divided by their count); never on the last
    slice; only where ``where`` holds when ``use_where``."""
    nz, ny, nx = g.shape
    for z in range(nz - 1):
        cnt = np.float32(min(depth, nz - 1 - z))
        for y in range(ny):
            for x in range(nx):
                if use_where and not where[z, y, x]:
                    continue
                if not abs(g[z, y, x] - level) < tol:
                    continue
                acc = np.float32(0.0)
                for j in range(1, min(depth, nz - 1 - z) + 1):
                    acc += abs(g[z + j, y, x] - level)
                if acc / cnt < tol:
                    out[z, y, x] = True


def flat_columns(grey: np.ndarray, level: float, tol: float, depth: int, where: np.ndarray | None = None) -> np.ndarray:
    """Voxels whose face and the ``depth`` slices behind it stay within ``tol`` of ``level`` (the test
    of :func:`volrecon.segment.voids.electrolyte_columns`, in float32); with ``where``, only there.

    Parameters
    ----------
    grey : ndarray (z, y, x) float32
        Grey values.
    level, tol : float
        Level and largest deviation (compared in float32, as NumPy compares a float32 array with
        a Python float).
    depth : int
        Slices behind the face (at least 1).
    where : ndarray of bool, optional
        Voxels tested (the rest are False).

    Returns
    -------
    ndarray of bool

    Raises
    ------
    ValueError
        ``grey`` not 3D, ``where`` of another shape, or ``depth`` below 1 (the kernel does not
        check its bounds).
    """
    g = np.ascontiguousarray(grey, dtype=np.float32)
    if g.ndim != 3:
        raise ValueError(f"flat_columns: grey must be 3D, got shape {g.shape}")
    if int(depth) < 1:
        raise ValueError(f"flat_columns: depth must be at least 1, got {depth}")
    out = np.zeros(g.shape, dtype=bool)
    w = np.zeros((1, 1, 1), bool) if where is None else np.ascontiguousarray(where, dtype=bool)
    if where is not None and w.shape != g.shape:
        raise ValueError(f"flat_columns: where has shape {w.shape}, grey {g.shape}")
    _flat_columns(g, np.float32(level), np.float32(tol), int(depth), w, where is not None, out)
    return out


@nb.njit(cache=True, nogil=True)
def _continue_down(mask: np.ndarray, space: np.ndarray, steps: int, out: np.ndarray) -> None:
    """``out``: ``mask`` and, column by column along +z, the ``space`` voxels at most ``steps``
    slices below a ``mask`` voxel through an unbroken run of ``space`` (or ``mask``) voxels."""
    nz, ny, nx = mask.shape
    far = steps + 1
    run = np.full((ny, nx), far, np.int64)  # slices from the nearest mask voxel above, through the run
    for z in range(nz):
        for y in range(ny):
            for x in range(nx):
                if mask[z, y, x]:
                    d = 0
                elif space[z, y, x] and run[y, x] < steps:
                    d = run[y, x] + 1
                else:
                    d = far
                run[y, x] = d
                out[z, y, x] = d <= steps


def continue_columns(mask: np.ndarray, space: np.ndarray, steps: int) -> np.ndarray:
    """:func:`volrecon.segment.voids.continue_down` in one pass: ``mask`` continued along +z by up to
    ``steps`` slices through ``space``.

    Parameters
    ----------
    mask : ndarray of bool (z, y, x)
        Start voxels.
    space : ndarray of bool, ``mask``'s shape
        Voxels the continuation may enter.
    steps : int
        Most slices added below each voxel of ``mask`` (0: ``mask`` itself).

    Returns
    -------
    ndarray of bool
        ``mask`` and its continuation.

    Raises
    ------
    ValueError
        ``mask`` not 3D, ``space`` of another shape or ``steps`` negative (the kernel does not
        check its bounds).
    """
    m = np.ascontiguousarray(mask, dtype=bool)
    sp = np.ascontiguousarray(space, dtype=bool)
    if m.ndim != 3 or sp.shape != m.shape:
        raise ValueError(f"continue_columns: mask and space must be 3D of one shape, got {m.shape} and {sp.shape}")
    if int(steps) < 0:
        raise ValueError(f"continue_columns: steps must be >= 0, got {steps}")
    out = np.empty(m.shape, dtype=bool)
    _continue_down(m, sp, int(steps), out)
    return out


@nb.njit(cache=True, nogil=True)
def _row_histograms(flat: np.ndarray, edges: np.ndarray, out: np.ndarray) -> None:
    """``out[z, b]`` += the values of row ``z`` of ``flat`` with ``edges[b] <= v < edges[b + 1]``
    (compared in float64; the bin guessed from an even spacing, then moved until it holds)."""
    nb_ = edges.size - 1
    lo, hi = edges[0], edges[nb_]
    if not hi > lo:
        return
    scale = nb_ / (hi - lo)
    for z in range(flat.shape[0]):
        for i in range(flat.shape[1]):
            v = np.float64(flat[z, i])
            if not (v >= lo and v < hi):  # NaN too
                continue
            b = min(max(int((v - lo) * scale), 0), nb_ - 1)
            while v < edges[b]:
                b -= 1
            while v >= edges[b + 1]:
                b += 1
            out[z, b] += 1


def row_histograms(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Histogram of each row of ``values`` ``(z, n)`` on increasing ``edges``: the counts of
    ``searchsorted(edges, v, side="right") - 1`` over the values within ``[edges[0], edges[-1])``
    (NaN in no bin), in one compiled pass rather than a binary search per value.

    Parameters
    ----------
    values : ndarray (z, n) float32 or float64
        The values.
    edges : ndarray (bins + 1,)
        Increasing bin edges (compared in float64: exact for float32 or float64 values and edges).

    Returns
    -------
    ndarray (z, bins) int64

    Raises
    ------
    ValueError
        ``values`` not 2D or not floating point (the comparisons would not be the ones the
        values' own type makes).
    """
    v = np.ascontiguousarray(values)
    if v.ndim != 2 or v.dtype not in (np.float32, np.float64):
        raise ValueError(f"row_histograms: values must be 2D float32 or float64, got {v.dtype} {v.shape}")
    e = np.ascontiguousarray(edges, dtype=np.float64)
    out = np.zeros((v.shape[0], max(e.size - 1, 0)), np.int64)
    if e.size >= 2:
        _row_histograms(v, e, out)
    return out
