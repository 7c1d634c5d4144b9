"""Linear (spline order 1) sub-pixel shift of a float32 slice, edges extended (``mode="nearest"``).

The same arithmetic as ``scipy.ndimage.shift(plane, shift, order=1, mode="nearest")``, to the
bit (coordinate ``k - s`` clamped to the slice, weights ``1 - x`` and ``1 - (1 - x)``, the four
taps summed in float64 in scipy's order, rounded once to float32), in one compiled pass that
computes only the pixels asked for: the registration's crop of every slice at about a fifth of
scipy's time (whose general n-d loop re-derives the taps per pixel).
"""

from __future__ import annotations

import numba as nb
import numpy as np

__all__ = ["shift_linear_nearest"]

_JIT = dict(cache=True, nogil=True, error_model="numpy", boundscheck=False)


@nb.njit(**_JIT)
def _taps(n, shift, start, count):  # type: ignore[no-untyped-def]
    """Input indices and weights of output positions ``start .. start + count - 1`` along one axis."""
    i0 = np.empty(count, np.int64)
    i1 = np.empty(count, np.int64)
    w0 = np.empty(count, np.float64)
    w1 = np.empty(count, np.float64)
    top = float(n - 1)
    for c in range(count):
        cc = float(start + c) - shift
        cc = 0.0 if cc < 0.0 else (top if cc > top else cc)
        base = np.floor(cc)
        a = 1.0 - (cc - base)
        w0[c] = a
        w1[c] = 1.0 - a
        j = int(base)
        i0[c] = j
        i1[c] = j + 1 if j + 1 < n else n - 1
    return i0, i1, w0, w1


@nb.njit(**_JIT)
def _shift(plane, sy, sx, y0, x0, out):  # type: ignore[no-untyped-def]
    ny, nx = plane.shape
    ry0, ry1, wy0, wy1 = _taps(ny, sy, y0, out.shape[0])
    cx0, cx1, wx0, wx1 = _taps(nx, sx, x0, out.shape[1])
    for i in range(out.shape[0]):
        r0 = plane[ry0[i]]
        r1 = plane[ry1[i]]
        p = wy0[i]
        q = wy1[i]
        for j in range(out.shape[1]):
            t = 0.0
            t += np.float64(r0[cx0[j]]) * p * wx0[j]
            t += np.float64(r0[cx1[j]]) * p * wx1[j]
            t += np.float64(r1[cx0[j]]) * q * wx0[j]
            t += np.float64(r1[cx1[j]]) * q * wx1[j]
            out[i, j] = t


def shift_linear_nearest(plane: np.ndarray, shift: tuple[float, float], *,
                         window: tuple[slice, slice] | None = None) -> np.ndarray:
    """``scipy.ndimage.shift(plane, shift, order=1, mode="nearest")[window]`` of a float32 slice.

    Parameters
    ----------
    plane : ndarray of float32, shape (Y, X)
        The slice.
    shift : (float, float)
        Shift along y and x in pixels (positive moves the content towards higher indices).
    window : (slice, slice), optional
        Part of the shifted slice to compute (step-1 slices); the whole slice by default.

    Returns
    -------
    ndarray of float32
        Bit-identical to scipy's result (same window).
    """
    p = np.ascontiguousarray(plane, dtype=np.float32)
    ny, nx = p.shape
    ys, xs = window if window is not None else (slice(None), slice(None))
    (ya, yb, _), (xa, xb, _) = ys.indices(ny), xs.indices(nx)
    out = np.empty((max(0, yb - ya), max(0, xb - xa)), np.float32)
    _shift(p, float(shift[0]), float(shift[1]), ya, xa, out)
    return out
