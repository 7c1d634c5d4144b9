"""Separable Gaussian smoothing of part of a block, bit-identical to :func:`scipy.ndimage.gaussian_filter`.

The classifier's features smooth each block at a few scales but read each smoothing only over a
region of the block (:class:`volrecon.segment.features._Smoothed`).  ``scipy.ndimage`` filters a
whole array, one line at a time through a double-precision line buffer (a strided gather for
every axis but the last).  :func:`smooth_region` does the same arithmetic, in the same order, but

- each pass computes only what the next pass (or the region) reads: the pass along z covers the
  region's z range only, the pass along y the region's y range only;
- the passes along z and y add whole rows (contiguous in x), which the compiler vectorises;
- the squared grey values (local variance) are squared as they are read, not in a copy.

scipy's arithmetic (``NI_Correlate1D`` with a symmetric kernel): the input line is converted to
float64; each output is ``centre * w[0]``, then, from the outermost pair inwards,
``+= (left + right) * w[k]``; the float64 sum is rounded to float32 between passes, and the
passes run along z, then y, then x.  Outside the smoothed part, lines are continued by
reflection (scipy's ``mode="reflect"``: ``d c b a | a b c d | d c b a``) or by the edge value
(``mode="nearest"``: ``a a a a | a b c d | d d d d``).  The weights are read
from scipy itself (the response to a unit impulse is exactly the weights it applies), so the
results are the same bit for bit, which ``tests/segment/test_smooth.py`` checks.  (That holds where
scipy's C code is compiled without fused multiply-adds, as its x86-64 Linux wheels are; numba never
fuses.  A build that contracts ``a * w + b`` would differ in the last bit, not in value.)
"""

from __future__ import annotations

import functools
from typing import Sequence

import numba as nb
import numpy as np
from scipy import ndimage as ndi

_NO_SMOOTHING = 1e-15
"""scipy skips an axis whose sigma is at most this."""


@functools.lru_cache(maxsize=64)
def half_kernel(sigma: float, truncate: float) -> np.ndarray:
    """scipy's Gaussian weights for ``sigma`` (voxels): ``w[k]`` at distance ``k`` from the centre.

    Read as the response of :func:`scipy.ndimage.gaussian_filter1d` to a unit impulse, which is
    exactly the weights it applies (``1 * w + 0``); ``[1.0]`` where scipy does not smooth.
    """
    if not sigma > _NO_SMOOTHING:
        weights = np.ones(1, np.float64)
        weights.flags.writeable = False
        return weights
    radius = int(truncate * float(sigma) + 0.5)
    impulse = np.zeros(2 * radius + 1, np.float64)
    impulse[radius] = 1.0
    response = ndi.gaussian_filter1d(impulse, float(sigma), mode="constant", truncate=truncate)
    weights = np.ascontiguousarray(response[radius:])
    weights.flags.writeable = False  # cached: shared by every caller
    return weights


def smooth_region(img: np.ndarray, sigma: Sequence[float], part: Sequence[slice], region: Sequence[slice], *,
                  truncate: float, square: bool = False, mode: str = "reflect") -> np.ndarray:
    """``gaussian_filter(img[part] (squared), sigma, mode=mode, truncate=truncate)`` over ``region``.

    Parameters
    ----------
    img : ndarray (z, y, x) float32
        The block.
    sigma : 3 floats
        Standard deviation per axis, voxels.
    part : 3 slices
        The part of ``img`` that is filtered (reflected at its own faces), within ``img``.
    region : 3 slices
        The voxels returned, within ``part``.
    truncate : float
        Kernel radius in standard deviations (scipy's ``truncate``).
    square : bool
        Smooth the squared grey values (squared in float32, as ``img * img``).
    mode : {"reflect", "nearest"}
        How lines are continued beyond the part's faces (scipy's modes of those names).

    Returns
    -------
    ndarray float32, ``region``'s shape
        Bit for bit what ``scipy.ndimage.gaussian_filter`` of ``img[part]`` holds there.
    """
    a = np.ascontiguousarray(img, dtype=np.float32)
    lo = np.array([p.start for p in part], np.int64)
    hi = np.array([p.stop for p in part], np.int64)
    r0 = np.array([r.start for r in region], np.int64)
    r1 = np.array([r.stop for r in region], np.int64)
    if np.any(r0 < lo) or np.any(r1 > hi) or np.any(r1 <= r0):
        raise ValueError(f"region {tuple(region)} is not a non-empty part of {tuple(part)}")
    if mode not in ("reflect", "nearest"):
        raise ValueError(f"mode={mode!r}: use 'reflect' or 'nearest'")
    wz, wy, wx = (half_kernel(float(s), float(truncate)) for s in sigma)
    out = np.empty(tuple(r1 - r0), np.float32)
    _smooth(a, lo, hi, r0, r1, wz, wy, wx, square, mode == "nearest", out)
    return out


def gaussian(img: np.ndarray, sigma: float | Sequence[float], *, truncate: float, mode: str = "reflect") -> np.ndarray:
    """:func:`scipy.ndimage.gaussian_filter` of a whole array, by :func:`smooth_region` where it can.

    A 3D float32 array in ``mode`` "reflect" or "nearest" goes through the kernel (bit for bit the
    same result, in less time and without holding the GIL, so dask's threads run side by side);
    anything else (another dtype or rank) goes to scipy unchanged.

    Parameters
    ----------
    img : ndarray
        The array.
    sigma : float or sequence of floats
        Standard deviation, voxels: one for every axis, or one per axis.
    truncate : float
        Kernel radius in standard deviations (scipy's ``truncate``).
    mode : {"reflect", "nearest"}
        How lines are continued beyond the array's faces.

    Returns
    -------
    ndarray
        The smoothed array (float32 for a float32 input).
    """
    a = np.asarray(img)
    if a.dtype != np.float32 or a.ndim != 3 or a.size == 0 or mode not in ("reflect", "nearest"):
        return ndi.gaussian_filter(a, sigma, mode=mode, truncate=truncate)
    sig = [float(sigma)] * 3 if np.ndim(sigma) == 0 else [float(s) for s in sigma]
    whole = tuple(slice(0, n) for n in a.shape)
    return smooth_region(a, sig, whole, whole, truncate=truncate, mode=mode)


@nb.njit(cache=True, nogil=True, inline="always")
def _inside(i: int, lo: int, hi: int, nearest: bool) -> int:
    """Index ``i`` brought into ``lo:hi``: reflected (scipy's ``reflect``: the edge voxel repeated),
    or the nearest edge voxel (``nearest``)."""
    if nearest:
        return min(max(i, lo), hi - 1)
    n = hi - lo
    j = (i - lo) % (2 * n)
    if j >= n:
        j = 2 * n - 1 - j
    return lo + j


@nb.njit(cache=True, nogil=True)
def _smooth(img: np.ndarray, lo: np.ndarray, hi: np.ndarray, r0: np.ndarray, r1: np.ndarray,
            wz: np.ndarray, wy: np.ndarray, wx: np.ndarray, square: bool, nearest: bool, out: np.ndarray) -> None:
    """The three passes of :func:`smooth_region` (z over ``img``, y, then x) into ``out``."""
    nx = hi[2] - lo[2]
    x0 = lo[2]
    acc = np.empty(nx, np.float64)
    # pass along z: the region's slices, the part's rows
    first = np.empty((r1[0] - r0[0], hi[1] - lo[1], nx), np.float32)
    rz = wz.size - 1
    for z in range(r0[0], r1[0]):
        for y in range(lo[1], hi[1]):
            c = img[z, y, x0:x0 + nx]
            for x in range(nx):
                v = c[x] * c[x] if square else c[x]
                acc[x] = np.float64(v) * wz[0]
            for k in range(rz, 0, -1):
                a = img[_inside(z - k, lo[0], hi[0], nearest), y, x0:x0 + nx]
                b = img[_inside(z + k, lo[0], hi[0], nearest), y, x0:x0 + nx]
                w = wz[k]
                if square:
                    for x in range(nx):
                        acc[x] += (np.float64(a[x] * a[x]) + np.float64(b[x] * b[x])) * w
                else:
                    for x in range(nx):
                        acc[x] += (np.float64(a[x]) + np.float64(b[x])) * w
            row = first[z - r0[0], y - lo[1]]
            for x in range(nx):
                row[x] = np.float32(acc[x])
    # pass along y, within each slice: the region's rows
    second = np.empty((r1[0] - r0[0], r1[1] - r0[1], nx), np.float32)
    ry = wy.size - 1
    for z in range(r1[0] - r0[0]):
        plane = first[z]
        for y in range(r0[1], r1[1]):
            c = plane[y - lo[1]]
            for x in range(nx):
                acc[x] = np.float64(c[x]) * wy[0]
            for k in range(ry, 0, -1):
                a = plane[_inside(y - k, lo[1], hi[1], nearest) - lo[1]]
                b = plane[_inside(y + k, lo[1], hi[1], nearest) - lo[1]]
                w = wy[k]
                for x in range(nx):
                    acc[x] += (np.float64(a[x]) + np.float64(b[x])) * w
            row = second[z, y - r0[1]]
            for x in range(nx):
                row[x] = np.float32(acc[x])
    # pass along x, row by row: the line continued by reflection, then the region's voxels
    rx = wx.size - 1
    line = np.empty(nx + 2 * rx, np.float64)
    m = r1[2] - r0[2]
    res = np.empty(m, np.float64)
    s = r0[2] - lo[2]  # first output in the row
    for z in range(r1[0] - r0[0]):
        for y in range(r1[1] - r0[1]):
            c = second[z, y]
            for x in range(nx):
                line[rx + x] = np.float64(c[x])
            for k in range(1, rx + 1):
                line[rx - k] = line[rx + _inside(x0 - k, lo[2], hi[2], nearest) - x0]
                line[rx + nx - 1 + k] = line[rx + _inside(x0 + nx - 1 + k, lo[2], hi[2], nearest) - x0]
            c = line[s + rx:s + rx + m]
            for x in range(m):
                res[x] = c[x] * wx[0]
            for k in range(rx, 0, -1):
                # shifted views (non-negative indices: no wrap-around test in the loop)
                a, b, w = line[s + rx - k:s + rx - k + m], line[s + rx + k:s + rx + k + m], wx[k]
                for x in range(m):
                    res[x] += (a[x] + b[x]) * w
            o = out[z, y]
            for x in range(m):
                o[x] = np.float32(res[x])
