"""Shading: a smooth multiplicative field of the detector, estimated from the stack itself.

A backscatter image of a layered cell is ``I = S(y, x) * a(phase) + b``: the shading field
``S`` (vignetting, gradients) multiplies the phase's true grey level ``a`` and the detector adds
a dark level ``b``.  The layers genuinely differ in grey level, so a background fit to the image
(or a flat-field from the slice median) would take the layer contrast for shading and erase it.
:func:`estimate_shading` therefore fits ``S`` *within* grey-level classes: homogeneous blocks
are grouped into intensity classes, each class gets its own level ``a_c``, and ``S`` (a
low-order 2D polynomial, mean 1) explains only what varies *inside* a class across the field.
Classes are re-assigned on the corrected intensities and the fit is iterated with Tukey
weights, so misclassified blocks and edges drop out.

Methods
-------
``"classes"`` (default)
    The within-class polynomial fit above.
``"polynomial"``
    One class: the classic robust polynomial background fit (kept for comparison: it removes
    real layer contrast on a layered specimen).
``"lowrank"``
    A flat field in the spirit of BaSiC: the median over slices, smoothed heavily (rank-1 flat
    field without a dark term).  Also absorbs layers that stay put from slice to slice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from volrecon.correct._intensity import (
    block_factor, block_stats, check_mask, noise_model, check_volume, homogeneous, interp_matrix, kmeans_1d,
    map_slices, plane_mask, plane_problems, read_slices, restore_dtype, spread_indices, tukey_weights,
)
from volrecon.errors import InputError, ParameterError

METHODS = ("classes", "polynomial", "lowrank")
FILE_NPZ = "shading.npz"
FILE_JSON = "shading.json"
_GRID = 65  # nodes per axis of the stored field
_MAX_PAIRS = 20000
_TUKEY_C = 2.0


@dataclass(frozen=True)
class ShadingField:
    """A multiplicative shading field and the dark level it acts above.

    Corrected image: ``(I - offset) / field + offset``.

    Attributes
    ----------
    coarse : ndarray (gy, gx) float32
        The field on a coarse grid of nodes spread evenly over the image (corners included);
        mean 1 over the image.
    shape : (int, int)
        Image shape ``(Y, X)`` the field applies to.
    offset : float
        Dark level ``b`` in image units (not multiplied by the field).
    method : str
        Estimation method.
    degree : int
        Polynomial degree (0 for ``"lowrank"``).
    slices_used : tuple of int
        Slices the estimate was made from.
    classes : int
        Grey-level classes used by the fit.
    residual_rms : float
        RMS of the fit residual of the blocks kept (image units).
    warnings : tuple of str
        What went wrong but did not stop the estimate.
    """

    coarse: np.ndarray
    shape: tuple[int, int]
    offset: float
    method: str = "classes"
    degree: int = 4
    slices_used: tuple[int, ...] = ()
    classes: int = 0
    residual_rms: float = float("nan")
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @cached_property
    def field(self) -> np.ndarray:
        """The field at full resolution ``(Y, X)`` float32 (computed once, cached)."""
        gy, gx = self.coarse.shape
        wy = interp_matrix(self.shape[0], gy)
        wx = interp_matrix(self.shape[1], gx)
        return (wy @ self.coarse.astype(np.float32) @ wx.T).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary (the field itself is in the NPZ)."""
        f = self.coarse
        return {
            "method": self.method, "degree": self.degree, "shape": list(self.shape),
            "offset": float(self.offset), "offset_unit": "image grey levels",
            "field_min": float(f.min()), "field_max": float(f.max()),
            "field_range_percent": float(100 * (f.max() - f.min())),
            "slices_used": list(self.slices_used), "classes": int(self.classes),
            "residual_rms": float(self.residual_rms), "warnings": list(self.warnings),
            "model": "corrected = (image - offset) / field + offset",
        }

    def save(self, directory: str | Path) -> Path:
        """Write ``shading.npz`` (coarse field, shape, offset) and ``shading.json``; return the NPZ."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(d / FILE_NPZ, coarse=self.coarse, shape=np.asarray(self.shape), offset=np.float64(self.offset))
        (d / FILE_JSON).write_text(json.dumps(self.to_dict(), indent=2))
        return d / FILE_NPZ

    @classmethod
    def load(cls, directory: str | Path) -> "ShadingField":
        """Read what :meth:`save` wrote."""
        d = Path(directory)
        try:
            with np.load(d / FILE_NPZ) as z:
                coarse, shape, offset = z["coarse"], tuple(int(s) for s in z["shape"]), float(z["offset"])
        except (OSError, KeyError) as exc:
            raise InputError(f"{d / FILE_NPZ}: not a shading field ({exc}); re-run the correct stage") from None
        meta: dict[str, Any] = {}
        if (d / FILE_JSON).is_file():
            meta = json.loads((d / FILE_JSON).read_text())
        return cls(
            coarse=coarse.astype(np.float32), shape=shape, offset=offset, method=meta.get("method", "classes"),
            degree=int(meta.get("degree", 0)), slices_used=tuple(meta.get("slices_used", ())),
            classes=int(meta.get("classes", 0)), residual_rms=float(meta.get("residual_rms", float("nan"))),
            warnings=tuple(meta.get("warnings", ())),
        )

    def plot(self, path: str | Path) -> Path:
        """PNG of the field with its row and column profiles."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        f = self.field
        fig, ax = plt.subplots(1, 2, figsize=(9, 3.6), gridspec_kw={"width_ratios": [1.2, 1]})
        im = ax[0].imshow(f, cmap="magma", aspect="equal")
        fig.colorbar(im, ax=ax[0], label="shading factor")
        ax[0].set_title(f"shading field ({self.method})")
        ax[0].set_xlabel("x (px)")
        ax[0].set_ylabel("y (px)")
        ax[1].plot(f.mean(axis=1), label="mean over x (vs y)")
        ax[1].plot(f.mean(axis=0), label="mean over y (vs x)")
        ax[1].set_xlabel("pixel")
        ax[1].set_ylabel("factor")
        ax[1].legend(fontsize=8)
        fig.tight_layout()
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(p, dpi=110)
        plt.close(fig)
        return p


def _monomials(y: np.ndarray, x: np.ndarray, degree: int) -> np.ndarray:
    """Columns ``y**i * x**j`` for ``1 <= i + j <= degree`` (coordinates in [-1, 1])."""
    cols = [y**i * x**j for total in range(1, degree + 1) for i in range(total + 1) for j in [total - i]]
    return np.stack(cols, axis=-1) if cols else np.zeros(y.shape + (0,))


def _block_centres(shape: tuple[int, int], factor: int, grid: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    gy, gx = grid
    yc = ((np.arange(gy) + 0.5) * factor) / shape[0] * 2 - 1
    xc = ((np.arange(gx) + 0.5) * factor) / shape[1] * 2 - 1
    return np.broadcast_to(yc[:, None], grid), np.broadcast_to(xc[None, :], grid)


def _pair_differences(
    means: np.ndarray, noise: np.ndarray, keep: np.ndarray, yc: np.ndarray, xc: np.ndarray,
    steps: tuple[int, ...],
) -> tuple[np.ndarray, ...]:
    """Differences of homogeneous block pairs a few blocks apart in the same slice.

    Returns the differences, their noise variances and the coordinates ``(y_p, x_p, y_q, x_q)``
    of both blocks.
    """
    ok = keep & np.isfinite(means)
    ycb, xcb = np.broadcast_to(yc, means.shape), np.broadcast_to(xc, means.shape)
    out: list[list[np.ndarray]] = [[] for _ in range(8)]
    for step in steps:
        for dy, dx in ((step, 0), (0, step)):
            a = (slice(None), slice(0, means.shape[1] - dy), slice(0, means.shape[2] - dx))
            b = (slice(None), slice(dy, None), slice(dx, None))
            both = ok[a] & ok[b]
            if not both.any():
                continue
            values = (
                means[a] - means[b], noise[a] + noise[b], ycb[a], xcb[a], ycb[b], xcb[b], means[a], means[b],
            )
            for lst, v in zip(out, values):
                lst.append(v[both])
    if not out[0]:
        return tuple(np.zeros(0) for _ in range(8))
    return tuple(np.concatenate(v) for v in out)


def _wls(design: np.ndarray, target: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted least squares by the normal equations (few columns, many rows)."""
    wd = design * weights[:, None]
    gram = design.T @ wd
    gram[np.diag_indices_from(gram)] += 1e-9 * max(float(np.trace(gram)), 1e-12)
    return np.linalg.solve(gram, wd.T @ target)


def _fit_pairs(pairs: tuple[np.ndarray, ...], *, degree: int, offset: float, iters: int) -> tuple[np.ndarray, float, int]:
    """Robust fit of ``log S(p) - log S(q)`` to the differences of neighbouring homogeneous blocks.

    Blocks of the same phase differ only by shading; pairs across a phase boundary differ by the
    (much larger) phase contrast and are rejected by Tukey weights.  Returns ``beta`` of
    ``log S = monomials @ beta``, the robust residual scale and the number of pairs kept.
    """
    d, var, diff, ma, mb = pairs
    # (m_p - m_q) = ((m_p + m_q)/2 - b) * 2 tanh((log S_p - log S_q)/2): linear in log S up to
    # third order, and unbiased under noise (no logarithm of noisy, nearly dark values)
    level = (ma + mb) / 2 - offset
    design = diff * level[:, None]
    prior = 1.0 / np.maximum(var, np.median(var) * 1e-2)
    usable = level > 0
    w = tukey_weights(d * np.sqrt(prior), c=2.5) * usable  # phase-contrast pairs are far out from the start
    beta = np.zeros(design.shape[1])
    r = d
    for _ in range(iters):
        beta = _wls(design, d, w * prior)
        r = d - design @ beta
        w = tukey_weights(r * np.sqrt(prior), c=_TUKEY_C) * usable
    # criterion comparable between dark levels: weighted misfit in image units
    return beta, float(np.sqrt(np.sum(w * prior * r**2) / max(np.sum(w), 1e-12))), int((w > 0).sum())


def _fit_field(
    means: np.ndarray, noise: np.ndarray, keep: np.ndarray, yc: np.ndarray, xc: np.ndarray, *, degree: int, iters: int, offset: float | None,
) -> tuple[np.ndarray, float, float, int]:
    """Fit the field for a few dark-level candidates (or the given one); keep the best."""
    vals = means[keep]
    low = float(np.quantile(vals, 0.01)) if vals.size else 0.0
    cache: dict[float, tuple[np.ndarray, float, float, int]] = {}
    pairs = _pair_differences(means, noise, keep, yc, xc, (1, 2, 4))
    if pairs[0].size < 4 * degree * degree:
        raise InputError("too few homogeneous areas for a shading estimate; check the mask, or lower degree")
    if pairs[0].size > _MAX_PAIRS:  # a deterministic subsample is plenty for a few dozen coefficients
        pick = np.random.default_rng(0).choice(pairs[0].size, _MAX_PAIRS, replace=False)
        pairs = tuple(v[pick] for v in pairs)
    d, var, ya, xa, yb, xb, ma, mb = pairs
    pairs = (d, var, _monomials(ya, xa, degree) - _monomials(yb, xb, degree), ma, mb)

    def fit(b: float) -> tuple[np.ndarray, float, float, int]:
        if b not in cache:
            beta, scale, kept = _fit_pairs(pairs, degree=degree, offset=b, iters=iters)
            cache[b] = (beta, b, scale, kept)
        return cache[b]

    if offset is not None:
        return fit(float(offset))
    lo, hi = 0.0, 0.95 * max(low, 0.0)
    grid = np.linspace(lo, hi, 5)
    scores = [fit(float(b))[2] for b in grid]
    i = int(np.argmin(scores))
    a, c = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    for _ in range(4):  # golden-section refinement around the best grid point
        m1, m2 = a + 0.382 * (c - a), a + 0.618 * (c - a)
        if fit(float(m1))[2] < fit(float(m2))[2]:
            c = m2
        else:
            a = m1
    return min(cache.values(), key=lambda t: t[2])


def _fit_background(means: np.ndarray, keep: np.ndarray, yc: np.ndarray, xc: np.ndarray, *, degree: int, iters: int) -> np.ndarray:
    """Classic robust polynomial background: ``log I = c + monomials @ beta`` on all blocks."""
    vals = means[keep]
    ys = np.broadcast_to(yc, means.shape)[keep]
    xs = np.broadcast_to(xc, means.shape)[keep]
    design = np.concatenate([np.ones((vals.size, 1)), _monomials(ys, xs, degree)], axis=1)
    logv = np.log(np.maximum(vals, 1e-6))
    w = np.ones(vals.size)
    sol = np.zeros(design.shape[1])
    for _ in range(iters):
        sw = np.sqrt(w)
        sol = np.linalg.lstsq(design * sw[:, None], logv * sw, rcond=None)[0]
        w = tukey_weights(logv - design @ sol)
    return sol[1:]


def estimate_shading(
    image: Any,
    *,
    method: str = "classes",
    degree: int = 4,
    offset: float | None = None,
    n_slices: int = 24,
    mask: Any = None,
    iters: int = 6,
) -> ShadingField:
    """Estimate the multiplicative shading field of a stack.

    Parameters
    ----------
    image : array (Z, Y, X)
        numpy or dask stack in detector frame (before drift correction); integer or float.
    method : {"classes", "polynomial", "lowrank"}
        See the module docstring; ``"classes"`` keeps layer contrast.
    degree : int
        Degree of the 2D polynomial (1–8).
    offset : float, optional
        Dark level of the detector in image units (the part of the signal shading does not
        multiply); estimated when omitted.
    n_slices : int
        Slices, spread over the stack, that are read for the estimate.
    mask : ndarray of bool (Y, X) or (Z, Y, X), optional
        True where the pixels are specimen to use (exclude frame, data bar).
    iters : int
        Alternating fit iterations.

    Returns
    -------
    ShadingField

    Raises
    ------
    InputError
        Fewer than 2 slices (shading and structure cannot be told apart in one image), or no
        usable slice (all constant or saturated).
    ParameterError
        Unknown method, degree out of range, mask shape or an all-False mask.

    Examples
    --------
    >>> import numpy as np
    >>> yy, xx = np.mgrid[:64, :64] / 64.0
    >>> stack = np.stack([(100 + 60 * (np.sin(7 * xx + k) > 0)) * (1 + 0.2 * yy) for k in range(4)])
    >>> sh = estimate_shading(stack, degree=2)
    >>> float(np.ptp(sh.field[:, 32])) > 0.1
    True
    """
    if method not in METHODS:
        raise ParameterError(f"shading method={method!r}; use one of {', '.join(METHODS)}")
    if not 1 <= int(degree) <= 8:
        raise ParameterError(f"shading degree={degree}; give 1..8")
    nz, ny, nx = check_volume(image, min_slices=1)
    if nz < 2:
        raise InputError(
            "a shading estimate needs at least 2 slices: in one image shading and structure cannot be "
            "told apart — load a longer stack or pass a saved field (ShadingField.load)"
        )
    m = check_mask(mask, (nz, ny, nx))
    idx = spread_indices(nz, max(2, int(n_slices)))
    data = read_slices(image, idx)
    f = block_factor((ny, nx))
    warnings: list[str] = []
    means, variances, valids, used = [], [], [], []
    for plane, z in zip(data, idx):
        problem = plane_problems(plane, image.dtype)
        if problem:
            warnings.append(f"slice z={int(z)} skipped for shading ({problem})")
            continue
        mean, var, valid = block_stats(plane, f, plane_mask(m, int(z)))
        means.append(mean)
        variances.append(var)
        valids.append(valid)
        used.append(int(z))
    if not means or not any(v.any() for v in valids):
        raise InputError("no usable slice for the shading estimate (all constant, saturated or masked); check the stack and mask")
    allv = np.stack(valids)
    model = noise_model(np.stack(means)[allv], np.stack(variances)[allv])
    keep = [homogeneous(mu, va, ok, model=model) for mu, va, ok in zip(means, variances, valids)]
    noises = [(model[0] * np.maximum(mu, 0) + model[1]) * (1.5708 / (f * f)) for mu in means]
    stack_means = np.stack(means)
    grid = stack_means.shape[1:]
    yc, xc = _block_centres((ny, nx), f, grid)
    ny_n, nx_n = min(_GRID, ny), min(_GRID, nx)
    gy_out = np.linspace(-1, 1, ny_n)[:, None] * np.ones((1, nx_n))
    gx_out = np.ones((ny_n, 1)) * np.linspace(-1, 1, nx_n)[None, :]
    if method == "lowrank":
        coarse, b, rms, ncls = _lowrank(stack_means, np.stack(keep), (ny_n, nx_n))
        deg = 0
    else:
        sel = np.stack(keep)
        if method == "polynomial":
            beta = _fit_background(stack_means, sel, yc, xc, degree=int(degree), iters=int(iters))
            b, rms, ncls = 0.0, float("nan"), 1
        else:
            beta, b, rms, ncls = _fit_field(stack_means, np.stack(noises), sel, yc, xc, degree=int(degree), iters=int(iters), offset=offset)
        coarse = np.exp(_monomials(gy_out, gx_out, int(degree)) @ beta)
        deg = int(degree)
    coarse = np.clip(coarse, 0.2, 5.0)
    full_mean = float((interp_matrix(ny, coarse.shape[0]).mean(axis=0) @ coarse @ interp_matrix(nx, coarse.shape[1]).mean(axis=0)))
    coarse = (coarse / full_mean).astype(np.float32)
    if float(coarse.max() - coarse.min()) > 1.0:
        warnings.append(f"the shading field varies by {100 * float(coarse.max() - coarse.min()):.0f} % — check the mask excludes frame and data bar")
    return ShadingField(
        coarse=coarse, shape=(ny, nx), offset=float(b), method=method, degree=deg,
        slices_used=tuple(used), classes=int(ncls), residual_rms=float(rms), warnings=tuple(warnings),
    )


def _lowrank(means: np.ndarray, keep: np.ndarray, out_grid: tuple[int, int]) -> tuple[np.ndarray, float, float, int]:
    """Rank-1 flat field: median over slices of the block means, heavily smoothed."""
    stack = np.where(keep, means, np.nan)
    flat = np.nanmedian(stack, axis=0)
    valid = np.isfinite(flat)
    if not valid.all():
        flat = np.where(valid, flat, np.nanmedian(flat))
    sigma = max(flat.shape) / 6.0
    smooth = ndi.gaussian_filter(flat, sigma, mode="nearest")
    smooth = smooth / smooth.mean()
    zoom = (out_grid[0] / smooth.shape[0], out_grid[1] / smooth.shape[1])
    coarse = ndi.zoom(smooth, zoom, order=1, mode="nearest", grid_mode=True)
    rms = float(np.sqrt(np.nanmean((flat / np.nanmean(flat) - smooth) ** 2)))
    return coarse, 0.0, rms, 1


def apply_shading(image: Any, shading: ShadingField) -> Any:
    """Divide out the shading field, slice by slice (lazy for dask).

    Parameters
    ----------
    image : array (Z, Y, X)
        numpy or dask stack with the field's in-plane shape.
    shading : ShadingField
        From :func:`estimate_shading` or :meth:`ShadingField.load`.

    Returns
    -------
    array
        Same kind, shape and dtype as ``image``; integer output is rounded and clipped to the
        dtype's range, never NaN.
    """
    nz, ny, nx = check_volume(image)
    if (ny, nx) != tuple(shading.shape):
        raise ParameterError(f"the shading field is {shading.shape[0]}x{shading.shape[1]} px, the slices {ny}x{nx}; estimate it on this stack")
    dtype = np.dtype(image.dtype)
    b = np.float32(shading.offset)
    inv = (1.0 / shading.field).astype(np.float32)

    def one(plane: np.ndarray, z: int) -> np.ndarray:
        return restore_dtype((plane.astype(np.float32) - b) * inv + b, dtype)

    return map_slices(image, one)
