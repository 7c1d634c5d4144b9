"""Helpers shared by the intensity corrections (shading, brightness, curtains, denoising).

Slice-wise lazy application, dtype restoration, robust weights, 1D k-means and the homogeneous
"block" samples the estimators fit to.  Private: the public API lives in the sibling modules.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numba as nb
import numpy as np

from volrecon.errors import InputError, ParameterError

_JIT = dict(cache=True, nogil=True, error_model="numpy", boundscheck=False)


def is_dask(image: Any) -> bool:
    """True for a dask array (without importing dask for numpy input)."""
    return type(image).__module__.startswith("dask")


def check_volume(image: Any, *, name: str = "image", min_slices: int = 1) -> tuple[int, int, int]:
    """Shape ``(Z, Y, X)`` of a 3D stack, or a :class:`ParameterError`/`InputError`."""
    shape = tuple(int(s) for s in getattr(image, "shape", ()))
    if len(shape) != 3:
        raise ParameterError(f"{name} has shape {shape}; give a 3D stack (z, y, x) — add a slice axis for a single image")
    if shape[0] < min_slices:
        raise InputError(f"{name} has {shape[0]} slice(s); this estimate needs at least {min_slices} — use a longer stack")
    if min(shape[1:]) < 8:
        raise InputError(f"{name} slices are {shape[1]}x{shape[2]} px; give slices of at least 8x8 px")
    if np.dtype(image.dtype).kind not in "uif":
        raise ParameterError(f"{name} has dtype {image.dtype}; give an integer or float image")
    return shape  # type: ignore[return-value]


def restore_dtype(values: np.ndarray, dtype: np.dtype, *, overwrite: bool = False) -> np.ndarray:
    """Cast float results to ``dtype``: NaN/inf replaced, clipped to the range of integer types.

    NaN becomes 0 (for unsigned integers: the minimum, also 0), +/-inf the largest/smallest
    value.  ``overwrite=True`` lets a float array be used as scratch space (no copies).
    """
    dtype = np.dtype(dtype)
    values = np.asarray(values)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        work = np.dtype(np.float32 if dtype.itemsize <= 2 else np.float64)  # exact for the dtype's integers
        scratch = values if overwrite and values.dtype == work and values.flags.writeable else values.astype(work)
        if info.min == 0:
            # fmax/fmin return the non-NaN operand: NaN -> 0, -inf -> 0, +inf -> max, in place
            np.fmax(scratch, 0, out=scratch)
            np.fmin(scratch, info.max, out=scratch)
        else:
            np.nan_to_num(scratch, copy=False, nan=0.0, posinf=info.max, neginf=info.min)
            np.clip(scratch, info.min, info.max, out=scratch)
        np.rint(scratch, out=scratch)
        return scratch.astype(dtype)
    # the narrower of the two float types bounds +-inf (float64 max in a float32 array is inf again)
    top = float(min(np.finfo(dtype).max, np.finfo(values.dtype).max if values.dtype.kind == "f" else np.inf))
    return np.nan_to_num(values, nan=0.0, posinf=top, neginf=-top).astype(dtype, copy=False)


@nb.njit(**_JIT)
def restore_row(values, kind, lo, hi, out):  # type: ignore[no-untyped-def]
    """Cast float32 ``values`` into ``out`` as :func:`restore_dtype` casts them (one row).

    ``kind`` 0: float (NaN -> 0, +-inf -> +-``hi``); 1: unsigned integer (NaN and below 0 -> 0,
    above ``hi`` -> ``hi``, rounded half to even); 2: signed integer (NaN -> 0, clipped to
    ``lo .. hi``, rounded).  ``lo`` and ``hi`` are exact in float32.
    """
    h = np.float32(hi)
    m = np.float32(lo)
    zero = np.float32(0.0)
    if kind == 0:
        for x in range(values.shape[0]):
            v = values[x]
            v = zero if np.isnan(v) else v
            v = h if v > h else v
            out[x] = -h if v < -h else v
    elif kind == 1:
        for x in range(values.shape[0]):
            v = values[x]
            v = v if v > zero else zero  # NaN too
            out[x] = np.rint(h if v > h else v)
    else:
        for x in range(values.shape[0]):
            v = values[x]
            v = zero if np.isnan(v) else v
            v = h if v > h else v
            out[x] = np.rint(m if v < m else v)


@nb.njit(**_JIT)
def _affine(plane, scale, add, field, gain, offset, flat, kind, lo, hi, out):  # type: ignore[no-untyped-def]
    ny, nx = plane.shape
    g = np.float32(gain)
    o = np.float32(offset)
    row = np.empty(nx, np.float32)
    for y in range(ny):
        for x in range(nx):
            row[x] = np.float32(plane[y, x])
        if field:
            for x in range(nx):
                row[x] = row[x] * scale[y, x] + add[y, x]
        if flat:
            for x in range(nx):
                row[x] = row[x] * g + o
        restore_row(row, kind, lo, hi, out[y])


def restore_kind(dtype: Any) -> tuple[int, float, float] | None:
    """How :func:`restore_row` casts float32 values to ``dtype``: ``(kind, lo, hi)``.

    None where float32 is not the working type of :func:`restore_dtype` (integers wider than
    16 bits, which it rounds in float64) or the compiled kernels cannot write ``dtype`` (float16).
    """
    dtype = np.dtype(dtype)
    if dtype.kind == "f" and dtype.itemsize >= 4:
        return 0, 0.0, float(np.finfo(np.float32).max)
    if dtype.kind in "ui" and dtype.itemsize <= 2:
        info = np.iinfo(dtype)
        return (1 if info.min == 0 else 2), float(info.min), float(info.max)
    return None


UNCAST = (0, 0.0, float("inf"))
"""A :func:`restore_row` cast that keeps float32 as it is (NaN -> 0 only), for the dtypes whose
cast :func:`restore_dtype` makes afterwards (``restore_kind`` None)."""


def kernel_input(plane: np.ndarray) -> np.ndarray:
    """``plane`` as the compiled kernels can read it: float16 (which numba has no arrays of)
    widened to float32, exactly; every other dtype unchanged."""
    p = np.asarray(plane)
    return p.astype(np.float32) if p.dtype == np.float16 else p


def affine_slice(
    plane: np.ndarray, dtype: Any, *, field: tuple[np.ndarray, np.ndarray] | None = None,
    gain: float | None = None, offset: float = 0.0,
) -> np.ndarray:
    """``plane * scale + add`` (a per-pixel field), then ``* gain + offset``, cast to ``dtype``.

    One pass in float32, in that order and rounding (as the in-place numpy operations on a
    float32 copy followed by :func:`restore_dtype`, to the bit), without temporaries: the
    shading and brightness corrections and their fused chain.

    Parameters
    ----------
    plane : ndarray (Y, X)
        Any real dtype (cast to float32 first).
    dtype : numpy dtype
        Output dtype (integer: rounded and clipped to its range; never NaN).
    field : (scale, add), optional
        float32 arrays of the plane's shape.
    gain, offset : float, optional
        One multiply-add for the whole plane (after the field); none when ``gain`` is None.

    Returns
    -------
    ndarray (Y, X) of ``dtype``
    """
    dtype = np.dtype(dtype)
    p = kernel_input(plane)
    kind = restore_kind(dtype)
    out = np.empty(p.shape, dtype=dtype if kind is not None else np.float32)
    dummy = np.zeros((1, 1), np.float32)
    scale, add = field if field is not None else (dummy, dummy)
    _affine(p, scale, add, field is not None, 1.0 if gain is None else float(gain), float(offset), gain is not None,
            *(kind if kind is not None else UNCAST), out)
    return out if kind is not None else restore_dtype(out, dtype, overwrite=True)


def map_slices(image: Any, func: Callable[[np.ndarray, int], np.ndarray], *, dtype: Any | None = None) -> Any:
    """Apply ``func(plane, z) -> plane`` to every slice; lazy (one task per slice) for dask.

    The output has the input's in-plane shape and ``dtype`` (default: the input dtype).
    """
    out_dtype = np.dtype(image.dtype if dtype is None else dtype)
    if is_dask(image):
        import dask.array as da

        stack = image.rechunk({0: 1, 1: -1, 2: -1})

        def block(chunk: np.ndarray, block_info: dict | None = None) -> np.ndarray:
            z = block_info[0]["array-location"][0][0]  # type: ignore[index]
            return func(chunk[0], z)[None]

        return da.map_blocks(block, stack, dtype=out_dtype)
    arr = np.asarray(image)
    out = np.empty(arr.shape, dtype=out_dtype)
    for z in range(arr.shape[0]):
        out[z] = func(arr[z], z)
    return out


def read_slices(image: Any, indices: Sequence[int]) -> np.ndarray:
    """The slices ``indices`` as one float32 numpy array (computes dask input)."""
    idx = list(int(i) for i in indices)
    sub = image[idx]
    if is_dask(sub):
        sub = sub.compute()
    return np.asarray(sub, dtype=np.float32)


def plane_mask(mask: np.ndarray | None, z: int) -> np.ndarray | None:
    """The 2D usable-pixel mask of slice ``z`` from a 2D or 3D mask (True = use)."""
    if mask is None:
        return None
    return mask if mask.ndim == 2 else mask[z]


def check_mask(mask: Any, shape: tuple[int, int, int]) -> np.ndarray | None:
    """Validate a usable-pixel mask (True = specimen to use), 2D ``(Y, X)`` or 3D ``(Z, Y, X)``."""
    if mask is None:
        return None
    arr = np.asarray(mask)
    if arr.shape not in (tuple(shape[1:]), tuple(shape)):
        raise ParameterError(f"mask has shape {arr.shape}; give one of a slice {tuple(shape[1:])} or of the stack {tuple(shape)}")
    arr = arr.astype(bool)
    if not arr.any():
        raise ParameterError("mask excludes every pixel; True must mark the specimen pixels to use for estimation")
    return arr


def block_factor(shape: Sequence[int], target: int = 40) -> int:
    """Integer block size that brings the smaller in-plane side to about ``target`` blocks."""
    return max(1, int(min(shape)) // int(target))


def bin_mean(plane: np.ndarray, factor: int) -> np.ndarray:
    """Float32 mean of ``factor x factor`` pixel blocks (edges that do not fill a block are dropped)."""
    f = int(factor)
    ny, nx = (plane.shape[0] // f) * f, (plane.shape[1] // f) * f
    if f == 1:
        return np.asarray(plane[:ny, :nx], dtype=np.float32)
    out = plane[:ny, :nx].reshape(ny // f, f, nx // f, f).sum(axis=(1, 3), dtype=np.float32)
    out *= np.float32(1.0 / (f * f))
    return out


def block_stats(plane: np.ndarray, factor: int, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Block medians, block variances and block validity of one plane.

    The median makes a block that straddles a phase boundary take the level of its majority
    phase instead of a mixture.  A block is valid when every pixel is usable (``mask``) and finite.
    """
    f = int(factor)
    ny, nx = (plane.shape[0] // f) * f, (plane.shape[1] // f) * f
    p = np.asarray(plane[:ny, :nx], dtype=np.float32).reshape(ny // f, f, nx // f, f).transpose(0, 2, 1, 3).reshape(ny // f, nx // f, f * f)
    med = np.median(p, axis=-1).astype(np.float64)
    var = p.var(axis=-1, dtype=np.float64)
    valid = np.isfinite(med) & np.isfinite(var)
    if mask is not None:
        m = np.asarray(mask[:ny, :nx]).reshape(ny // f, f, nx // f, f)
        valid &= m.all(axis=(1, 3))
    return med, var, valid


def noise_model(mean: np.ndarray, var: np.ndarray) -> tuple[float, float]:
    """Shot + read noise ``var = alpha * mean + beta`` fitted to the lower envelope of block variances."""
    m, v = np.ravel(mean), np.ravel(var)
    if m.size < 8:
        return 0.0, float(np.median(v)) if v.size else 1.0
    edges = np.unique(np.quantile(m, np.linspace(0, 1, 17)))
    xs, ys = [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (m >= lo) & (m <= hi)
        if sel.sum() >= 4:
            xs.append(np.median(m[sel]))
            ys.append(np.quantile(v[sel], 0.2))
    if len(xs) < 2:
        return 0.0, float(np.median(v))
    alpha, beta = np.polyfit(np.asarray(xs), np.asarray(ys), 1)
    alpha = max(float(alpha), 0.0)
    beta = max(float(beta), float(np.min(ys)) * 0.1, 1e-6)
    return alpha, beta


def homogeneous(mean: np.ndarray, var: np.ndarray, valid: np.ndarray, *, model: tuple[float, float] | None = None, factor: float = 2.0) -> np.ndarray:
    """Valid blocks whose variance is within ``factor`` of the noise expected at their level.

    Noise grows with the signal (shot noise), so the limit follows :func:`noise_model`; blocks
    above it hold edges or texture.
    """
    if not valid.any():
        return valid
    alpha, beta = model if model is not None else noise_model(mean[valid], var[valid])
    return valid & (var <= factor * (alpha * np.maximum(mean, 0) + beta))


def kmeans_1d(values: np.ndarray, k: int, *, centres: np.ndarray | None = None, iters: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """1D k-means: class centres (sorted) and the class of every value.

    Starts from quantiles (or ``centres``); empty classes are dropped.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    if centres is None:
        c = np.quantile(v, (np.arange(k) + 0.5) / k)
    else:
        c = np.sort(np.asarray(centres, dtype=np.float64))
    c = np.unique(c)
    for _ in range(iters):
        cut = (c[1:] + c[:-1]) / 2
        cls = np.searchsorted(cut, v)
        counts = np.bincount(cls, minlength=c.size)
        sums = np.bincount(cls, weights=v, minlength=c.size)
        keep = counts > 0
        new = sums[keep] / counts[keep]
        if new.size == c.size and np.allclose(new, c, rtol=0, atol=1e-9):
            c = new
            break
        c = new
    cut = (c[1:] + c[:-1]) / 2
    return c, np.searchsorted(cut, v)


def tukey_weights(residual: np.ndarray, *, c: float = 4.685) -> np.ndarray:
    """Tukey biweight weights with a MAD scale (1 for small residuals, 0 beyond ``c`` scales)."""
    r = np.asarray(residual, dtype=np.float64)
    scale = 1.4826 * np.median(np.abs(r - np.median(r))) if r.size else 0.0
    if not np.isfinite(scale) or scale <= 0:
        return np.ones_like(r)
    u = r / (c * scale)
    return np.where(np.abs(u) < 1, (1 - u**2) ** 2, 0.0)


def interp_matrix(n_out: int, n_nodes: int) -> np.ndarray:
    """Dense linear-interpolation matrix from ``n_nodes`` evenly spread nodes to ``n_out`` pixels."""
    pos = np.linspace(0, n_nodes - 1, n_out)
    base = np.clip(np.floor(pos).astype(int), 0, max(n_nodes - 2, 0))
    t = pos - base
    mat = np.zeros((n_out, n_nodes), dtype=np.float32)
    rows = np.arange(n_out)
    mat[rows, base] = 1 - t
    if n_nodes > 1:
        mat[rows, base + 1] += t
    return mat


def dtype_range(dtype: Any) -> tuple[float, float]:
    """``(min, max)`` representable by an integer dtype; ``(-inf, inf)`` for floats."""
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return float(info.min), float(info.max)
    return -np.inf, np.inf


def plane_problems(plane: np.ndarray, dtype: Any) -> str | None:
    """Why a slice cannot inform an intensity estimate (constant, mostly saturated), or None."""
    lo, hi = dtype_range(dtype)
    p = np.asarray(plane)
    if not np.isfinite(p).any():
        return "no finite pixels"
    pmin, pmax = np.nanmin(p), np.nanmax(p)
    if pmin == pmax:
        return "constant"
    if np.isfinite(hi) and np.mean((p >= hi) | (p <= lo)) > 0.5:
        return "more than half saturated"
    return None


def pixel_noise(plane: np.ndarray) -> float:
    """Robust per-pixel noise standard deviation of one plane (MAD of horizontal neighbour differences).

    Neighbouring pixels share the structure but not the noise, so their difference is noise
    (times sqrt 2) except at edges, which the median ignores.
    """
    p = np.asarray(plane, dtype=np.float32)
    d = np.diff(p, axis=1).ravel()
    d = d[np.isfinite(d)]
    if d.size == 0:
        return 0.0
    return float(1.4826 * np.median(np.abs(d - np.median(d))) / np.sqrt(2.0))


def histogram_peaks(values: np.ndarray, *, sigma: float, max_peaks: int, min_mass: float = 0.02) -> np.ndarray:
    """Locations of the main modes of ``values``: maxima of a Gaussian-smoothed histogram.

    Parameters
    ----------
    values : ndarray
        Samples (any shape; flattened).
    sigma : float
        Smoothing width in the units of ``values`` (about the noise of one sample).
    max_peaks : int
        Most modes returned (the most prominent ones).
    min_mass : float
        Smallest share of the samples within ``+-sigma`` of a mode.

    Returns
    -------
    ndarray
        Mode locations, sorted ascending (may be empty).
    """
    from scipy.ndimage import gaussian_filter1d
    from scipy.signal import find_peaks

    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size < 8 or sigma <= 0:
        return np.zeros(0)
    lo, hi = float(v.min()) - 3 * sigma, float(v.max()) + 3 * sigma
    width = sigma / 8
    nbins = int(min(max((hi - lo) / width, 16), 20000))
    hist, edges = np.histogram(v, bins=nbins, range=(lo, hi))
    centres = (edges[:-1] + edges[1:]) / 2
    smooth = gaussian_filter1d(hist.astype(np.float64), sigma / (edges[1] - edges[0]), mode="constant")
    peaks, props = find_peaks(smooth, prominence=0.05 * smooth.max())
    if peaks.size == 0:
        return np.zeros(0)
    loc = centres[peaks]
    mass = np.array([np.mean(np.abs(v - x) <= sigma) for x in loc])
    keep = mass >= min_mass
    loc, prom = loc[keep], props["prominences"][keep]
    order = np.argsort(prom)[::-1][: int(max_peaks)]
    return np.sort(loc[order])


def mean_shift_1d(
    values: np.ndarray, starts: np.ndarray, bandwidth: np.ndarray | float, *, weights: np.ndarray | None = None, iters: int = 30,
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian-kernel mean shift of several starting points on 1D samples.

    Each start climbs to the nearest mode of the kernel density of ``values``.

    Parameters
    ----------
    values : ndarray (N,)
        Samples.
    starts : ndarray (M,)
        Starting locations.
    bandwidth : float or ndarray (M,)
        Kernel standard deviation (per start).
    weights : ndarray (N,), optional
        Weight of each sample (e.g. histogram counts at bin centres: much faster on many samples).
    iters : int
        Iterations (stops earlier once converged).

    Returns
    -------
    modes : ndarray (M,)
        Converged locations.
    mass : ndarray (M,)
        Kernel-weighted share of the samples at each mode (``sum K / N``; K peaks at 1).
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    c = np.ones_like(v) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    m = np.asarray(starts, dtype=np.float64).copy()
    h = np.broadcast_to(np.asarray(bandwidth, dtype=np.float64), m.shape)
    w = np.zeros_like(m)
    total = float(c.sum())
    if v.size == 0 or total <= 0:
        return np.full_like(m, np.nan), w
    for _ in range(int(iters)):
        k = np.exp(-0.5 * ((v[None, :] - m[:, None]) / h[:, None]) ** 2) * c[None, :]
        w = k.sum(axis=1)
        new = np.where(w > 0, (k @ v) / np.maximum(w, 1e-300), m)
        done = np.all(np.abs(new - m) < 1e-4 * h)
        m = new
        if done:
            break
    return m, w / total


def flat_local_means(plane: np.ndarray, *, noise: float, size: int = 3, factor: float = 3.0) -> np.ndarray:
    """Local means of the flat parts of a plane: ``size x size`` windows whose variance is noise.

    A window whose variance exceeds ``factor * noise**2`` holds an edge (a mixture of two
    phases); it is dropped, so the grey-level histogram of what is left has sharp modes at the
    phases' levels with ``size`` times less noise than the plane.  Non-finite pixels (masked)
    invalidate the windows that touch them.

    Returns
    -------
    ndarray (N,)
        The kept local means (float64).
    """
    from scipy.ndimage import uniform_filter

    p = np.asarray(plane, dtype=np.float64)
    ok = np.isfinite(p)
    q = np.where(ok, p, 0.0)
    mean = uniform_filter(q, size, mode="reflect")
    var = uniform_filter(q * q, size, mode="reflect") - mean * mean
    full = uniform_filter(ok.astype(np.float64), size, mode="reflect") > 1 - 0.5 / size**2
    keep = full & (var <= factor * noise**2)
    return mean[keep]


def usable_planes(image: Any, *, batch: int = 4) -> Iterator[tuple[int, np.ndarray | None, str | None]]:
    """Yield ``(z, plane, problem)`` for every slice, reading ``batch`` slices at a time.

    ``plane`` is None and ``problem`` names why (constant, saturated …) when the slice cannot be
    used for an intensity estimate; callers interpolate such slices from their neighbours.
    """
    nz = image.shape[0]
    for z0 in range(0, nz, batch):
        chunk = read_slices(image, range(z0, min(nz, z0 + batch)))
        for i, plane in enumerate(chunk):
            problem = plane_problems(plane, image.dtype)
            yield z0 + i, (None if problem else plane), problem


def save_figure(fig: Any, path: str | Path) -> Path:
    """Lay out, save (110 dpi PNG, parent folders made) and close a matplotlib figure."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out

