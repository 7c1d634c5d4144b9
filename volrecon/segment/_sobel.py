"""Both Sobel derivatives of a 2D float32 image in one compiled pass, bit-identical to
:func:`scipy.ndimage.sobel` (``mode="nearest"``) along axis 0 and along axis 1.

The forward model's edge map (:func:`volrecon.segment.forward_refine.edge_map`) takes both
derivatives of every slice it predicts, several times a slice and sweep; scipy's two calls make
four line passes, two of them strided gathers down the columns, and hold the GIL.  Here each
pass is a loop over contiguous rows.

scipy's arithmetic (``NI_Correlate1D``, float64 line buffers, the result rounded to the output's
float32 after each pass): the derivative ``[-1, 0, 1]`` is antisymmetric,
``c * 0 + (left - right) * -1``, i.e. ``right - left`` (for finite input the ``c * 0`` term changes
only the sign of a zero, which no later step sees through the magnitude; a NaN or infinite centre
pixel makes scipy's result NaN there and not this one's, so the identity holds for finite input
only, which the edge map's label-table images are); the smoothing ``[1, 2, 1]`` is
symmetric, ``c * 2 + (left + right) * 1``.  The derivative runs first, along its own axis, then the
smoothing along the other.  ``mode="nearest"`` repeats the edge pixel.  Checked against scipy bit
for bit in ``tests/segment/test_sobel.py``.
"""

from __future__ import annotations

import numba as nb
import numpy as np
from scipy import ndimage as ndi


def sobel_pair(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(ndi.sobel(img, 0, mode="nearest"), ndi.sobel(img, 1, mode="nearest"))``.

    Parameters
    ----------
    img : ndarray (y, x)
        The image; a 2D float32 array goes through the compiled kernel, anything else to scipy.

    Returns
    -------
    (ndarray, ndarray)
        The derivatives along axis 0 and along axis 1, float32 for a float32 image.
    """
    a = np.asarray(img)
    if a.dtype != np.float32 or a.ndim != 2 or a.size == 0:
        return ndi.sobel(a, 0, mode="nearest"), ndi.sobel(a, 1, mode="nearest")
    a = np.ascontiguousarray(a)
    d0, d1 = np.empty_like(a), np.empty_like(a)
    _sobel_pair(a, d0, d1)
    return d0, d1


@nb.njit(cache=True, nogil=True)
def _sobel_pair(a: np.ndarray, d0: np.ndarray, d1: np.ndarray) -> None:
    """The kernel of :func:`sobel_pair`: ``d0``, ``d1`` filled."""
    ny, nx = a.shape
    t = np.empty(nx, np.float32)  # derivative along 0 of one row, before the smoothing along 1
    u = np.empty((ny, nx), np.float32)  # derivative along 1, before the smoothing along 0
    for y in range(ny):
        up, dn = a[max(y - 1, 0)], a[min(y + 1, ny - 1)]
        row = a[y]
        for x in range(nx):
            t[x] = np.float32(np.float64(dn[x]) - np.float64(up[x]))
            xl, xr = max(x - 1, 0), min(x + 1, nx - 1)
            u[y, x] = np.float32(np.float64(row[xr]) - np.float64(row[xl]))
        out = d0[y]
        for x in range(nx):
            xl, xr = max(x - 1, 0), min(x + 1, nx - 1)
            out[x] = np.float32(np.float64(t[x]) * 2.0 + (np.float64(t[xl]) + np.float64(t[xr])) * 1.0)
    for y in range(ny):
        up, dn, row, out = u[max(y - 1, 0)], u[min(y + 1, ny - 1)], u[y], d1[y]
        for x in range(nx):
            out[x] = np.float32(np.float64(row[x]) * 2.0 + (np.float64(up[x]) + np.float64(dn[x])) * 1.0)
