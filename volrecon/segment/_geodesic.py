"""Bounded geodesic growth of a mask through another (compiled breadth-first search).

:func:`scipy.ndimage.binary_dilation` with a cross structure, ``iterations=k`` and ``mask``
grows a start set by ``k`` face-neighbour steps within ``mask``; scipy re-visits the changed
voxels' neighbourhoods through a generic structure loop every step.  The search here visits each
reached voxel once, with the same result (the voxels of ``mask`` at most ``k`` face-neighbour
steps from the start set through ``mask``, outside the array counting as not in ``mask``):
tests/segment/test_speed_kernels.py compares them bit for bit.
"""

from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(cache=True, nogil=True)
def _grow(out: np.ndarray, mask: np.ndarray, shape: np.ndarray, steps: int) -> None:
    """Grow the flat ``out`` (C order over ``shape``, 3D) in place by up to ``steps`` face-neighbour
    steps within the flat ``mask``."""
    nz, ny, nx = shape[0], shape[1], shape[2]
    plane = ny * nx
    n = 0
    for i in range(out.size):
        if out[i]:
            n += 1
    front = np.empty(n, np.int64)
    n = 0
    for i in range(out.size):
        if out[i]:
            front[n] = i
            n += 1
    for _ in range(steps):
        if n == 0:
            return
        nxt = np.empty(0, np.int64)
        m = 0
        for q in range(n):
            i = front[q]
            z = i // plane
            r = i - z * plane
            y = r // nx
            x = r - y * nx
            for d in range(6):
                if d == 0:
                    if x == 0:
                        continue
                    j = i - 1
                elif d == 1:
                    if x == nx - 1:
                        continue
                    j = i + 1
                elif d == 2:
                    if y == 0:
                        continue
                    j = i - nx
                elif d == 3:
                    if y == ny - 1:
                        continue
                    j = i + nx
                elif d == 4:
                    if z == 0:
                        continue
                    j = i - plane
                else:
                    if z == nz - 1:
                        continue
                    j = i + plane
                if mask[j] and not out[j]:
                    out[j] = True
                    if m == nxt.size:
                        grown = np.empty(max(16, 2 * nxt.size), np.int64)
                        grown[:m] = nxt[:m]
                        nxt = grown
                    nxt[m] = j
                    m += 1
        front, n = nxt, m


def bounded_growth(start: np.ndarray, mask: np.ndarray, steps: int) -> np.ndarray:
    """``start`` grown by up to ``steps`` face-neighbour steps through ``mask``.

    Equal to ``scipy.ndimage.binary_dilation(start, generate_binary_structure(ndim, 1),
    iterations=steps, mask=mask)`` for ``steps >= 1`` and ``start`` within ``mask``.

    Parameters
    ----------
    start : ndarray of bool (up to 3D)
        The start set (within ``mask``).
    mask : ndarray of bool, ``start``'s shape
        Where the growth may go.
    steps : int
        Most face-neighbour steps (at least 1).

    Returns
    -------
    ndarray of bool
        ``start`` and the ``mask`` voxels reached.

    Raises
    ------
    ValueError
        ``start`` over 3D, ``mask`` of another shape, or ``steps`` below 1 (the kernel does not
        check its bounds; scipy iterates to convergence for ``iterations < 1``).
    """
    s = np.asarray(start, dtype=bool)
    m = np.asarray(mask, dtype=bool)
    if s.ndim > 3 or m.shape != s.shape:
        raise ValueError(f"bounded_growth: start and mask must be of one shape, up to 3D; got {s.shape} and {m.shape}")
    if int(steps) < 1:
        raise ValueError(f"bounded_growth: steps must be at least 1, got {steps}")
    shape3 = (1,) * (3 - s.ndim) + s.shape
    out = np.ascontiguousarray(s).reshape(-1).copy()
    _grow(out, np.ascontiguousarray(m).reshape(-1), np.asarray(shape3, np.int64), int(steps))
    return out.reshape(s.shape)
