"""Compiled linear interpolation along columns (:func:`volrecon.segment.layers.sample_columns`).

NumPy's form gathers the two neighbours of every sample with ``take_along_axis`` over index
arrays as large as the samples (several whole-array passes and temporaries); the kernel reads
them directly.  The float64 arithmetic is the same, step by step, so the samples are the same
bit for bit (tests/segment/test_speed_kernels.py).
"""

from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(cache=True, nogil=True)
def _interpolate(vol: np.ndarray, pos: np.ndarray, out: np.ndarray) -> None:
    """``out[c, k]``: ``vol[c]`` (voxel centres at ``i + 0.5``) linearly interpolated at ``pos[c, k]``,
    clamped to the column's first and last centres."""
    nc, n = vol.shape
    top = np.float64(n - 1)
    for c in range(nc):
        col = vol[c]
        for k in range(pos.shape[1]):
            x = pos[c, k] - 0.5
            if x < 0.0:
                x = 0.0
            elif x > top:
                x = top
            i0 = np.int64(np.floor(x))
            i1 = min(i0 + 1, n - 1)
            f = x - np.float64(i0)
            out[c, k] = (1.0 - f) * np.float64(col[i0]) + f * np.float64(col[i1])


def interpolate_columns(vol: np.ndarray, pos: np.ndarray) -> np.ndarray | None:
    """``vol`` (stacking axis last) interpolated at the boundary coordinates ``pos``.

    Parameters
    ----------
    vol : ndarray float32 or float64 (..., n)
        Columns along the last axis, voxel centres at ``i + 0.5``.
    pos : ndarray float64 (..., m)
        Coordinates along the columns (``vol.shape[:-1]`` leading), clamped to the first and
        last centres; no NaN.

    Returns
    -------
    ndarray float64 (..., m), or None
        The samples (the float64 steps of :func:`volrecon.segment.layers.sample_columns`'
        NumPy form); None where the kernel does not apply (another shape, dtype or a NaN
        position: the caller interpolates with NumPy).
    """
    v, p = np.asarray(vol), np.asarray(pos)
    if (p.dtype != np.float64 or v.dtype not in (np.float32, np.float64) or v.ndim < 1 or p.ndim != v.ndim
            or p.shape[:-1] != v.shape[:-1] or v.shape[-1] == 0 or np.isnan(p).any()):
        return None
    v2 = np.ascontiguousarray(v.reshape(-1, v.shape[-1]))
    p2 = np.ascontiguousarray(p.reshape(-1, p.shape[-1]))
    out = np.empty(p2.shape, np.float64)
    _interpolate(v2, p2, out)
    return out.reshape(p.shape)
