"""In-plane Gaussian gradient magnitude of a float32 block in one compiled pass per slice,
bit-identical to two :func:`scipy.ndimage.gaussian_filter` calls (derivative orders ``(0, 1, 0)``
and ``(0, 0, 1)``, no smoothing along z, ``mode="nearest"``), each divided by its pixel and
combined by :func:`numpy.hypot`.

The rim correction takes this gradient of every chunk of the denoised cathode grey, and the
classifier's boundary re-decision of the whole volume; scipy makes four line passes, two of them
strided gathers down the columns, and holds the GIL.  Here the passes along y add whole rows
(contiguous in x) and share their reads, and the passes along x run over a line buffer.

scipy's arithmetic (``NI_Correlate1D``, float64 line buffers, the result rounded to float32 after
each pass, axis 1 then axis 2): a symmetric kernel ``w`` (the smoothing) gives
``x[i] * w[0]``, then, from the outermost pair inwards, ``+= (x[i - k] + x[i + k]) * w[k]``; an
antisymmetric one (the first derivative) ``x[i] * f[0]``, then ``+= (x[i - k] - x[i + k]) * f[-k]``.
The weights are read from scipy itself (its response to a unit impulse is exactly the weights it
applies).  Checked bit for bit in ``tests/segment/test_gradient_kernel.py``.
"""

from __future__ import annotations

import functools

import numba as nb
import numpy as np
from scipy import ndimage as ndi

from volrecon.segment._smooth import half_kernel


@functools.lru_cache(maxsize=32)
def derivative_kernel(sigma: float, truncate: float) -> tuple[float, np.ndarray]:
    """scipy's first-derivative Gaussian weights for ``sigma`` (voxels): the centre weight ``f[0]``
    and ``f[-k]`` for ``k = 0 .. radius`` (the multipliers of ``x[i - k] - x[i + k]``)."""
    radius = int(truncate * float(sigma) + 0.5)
    impulse = np.zeros(2 * radius + 1, np.float64)
    impulse[radius] = 1.0
    response = ndi.gaussian_filter1d(impulse, float(sigma), order=1, mode="constant", truncate=truncate)
    # correlating with f puts f[j] at radius - j: f[-k] is read at radius + k
    weights = np.ascontiguousarray(response[radius:])
    weights.flags.writeable = False
    return float(response[radius]), weights


def gradient_magnitude_kernel(grey: np.ndarray, sigma_px: tuple[float, float], pixel_nm: tuple[float, float],
                              truncate: float, rows: np.ndarray | None = None) -> np.ndarray | None:
    """``hypot(d/dy, d/dx)`` of ``grey`` (each derivative a Gaussian derivative of ``sigma_px``, in
    grey per nm of ``pixel_nm``), or None where the kernel does not apply (not a 3-D float32 block,
    or a sigma scipy would skip or round to a radius of 0).  ``rows``: the rows (y) returned, in
    their order (default all): only they are computed, each from the whole slice, bit for bit."""
    g = np.asarray(grey)
    if g.dtype != np.float32 or g.ndim != 3 or g.size == 0 or min(sigma_px) <= 1e-15:
        return None
    ws_y, ws_x = (half_kernel(float(s), float(truncate)) for s in sigma_px)
    (c_y, wd_y), (c_x, wd_x) = (derivative_kernel(float(s), float(truncate)) for s in sigma_px)
    if ws_y.size != wd_y.size or ws_x.size != wd_x.size or ws_y.size < 2 or ws_x.size < 2:
        return None
    at = np.arange(g.shape[1], dtype=np.int64) if rows is None else np.asarray(rows, np.int64)
    if at.size and (at.min() < 0 or at.max() >= g.shape[1]):
        raise IndexError(f"rows {at.min()}..{at.max()} outside a block of {g.shape[1]} rows")
    out = np.empty((g.shape[0], at.size, g.shape[2]), np.float32)
    _gradient(np.ascontiguousarray(g), at, ws_y, c_y, wd_y, ws_x, c_x, wd_x,
              np.float32(pixel_nm[0]), np.float32(pixel_nm[1]), out)
    return out


@nb.njit(cache=True, nogil=True)
def _gradient(img: np.ndarray, rows: np.ndarray, ws_y: np.ndarray, c_y: float, wd_y: np.ndarray, ws_x: np.ndarray,
              c_x: float, wd_x: np.ndarray, py: np.float32, px: np.float32, out: np.ndarray) -> None:
    """The passes of :func:`gradient_magnitude_kernel`, slice by slice and row by row of ``rows``, into ``out``."""
    nz, ny, nx = img.shape
    ry, rx = ws_y.size - 1, ws_x.size - 1
    sm = np.empty(nx, np.float64)  # smoothed along y: its x derivative is d/dx
    dv = np.empty(nx, np.float64)  # derivative along y: its x smoothing is d/dy
    line_s = np.empty(nx + 2 * rx, np.float64)
    line_d = np.empty(nx + 2 * rx, np.float64)
    for z in range(nz):
        plane = img[z]
        for j in range(rows.size):
            y = rows[j]
            c = plane[y]
            for x in range(nx):
                v = np.float64(c[x])
                sm[x] = v * ws_y[0]
                dv[x] = v * c_y
            for k in range(ry, 0, -1):
                a = plane[max(y - k, 0)]
                b = plane[min(y + k, ny - 1)]
                ws, wd = ws_y[k], wd_y[k]
                for x in range(nx):
                    av, bv = np.float64(a[x]), np.float64(b[x])
                    sm[x] += (av + bv) * ws
                    dv[x] += (av - bv) * wd
            # the y pass's result is rounded to float32 before the x pass, as between scipy's passes
            for x in range(nx + 2 * rx):
                xi = min(max(x - rx, 0), nx - 1)
                line_s[x] = np.float64(np.float32(dv[xi]))
                line_d[x] = np.float64(np.float32(sm[xi]))
            for x in range(nx):
                i = x + rx
                s_acc = line_s[i] * ws_x[0]
                d_acc = line_d[i] * c_x
                for k in range(rx, 0, -1):
                    s_acc += (line_s[i - k] + line_s[i + k]) * ws_x[k]
                    d_acc += (line_d[i - k] - line_d[i + k]) * wd_x[k]
                gy = np.float32(np.float64(np.float32(s_acc)) / np.float64(py))
                gx = np.float32(np.float64(np.float32(d_acc)) / np.float64(px))
                out[z, j, x] = np.hypot(gy, gx)
