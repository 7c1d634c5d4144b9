"""Shading: a smooth multiplicative field of the detector, estimated from the stack itself.

A backscatter image of a layered cell is ``I = S(y, x) * a(phase) + b``: the shading field
``S`` (vignetting, gradients) multiplies the phase's true grey level ``a`` and the detector adds
a dark level ``b``.  The layers genuinely differ in grey level, so a background fit to the image
(or a flat-field from the slice median) would take the layer contrast for shading and erase it.
:func:`estimate_shading` therefore fits ``S`` *within* grey-level classes: homogeneous blocks
are grouped into intensity classes, each class gets its own level ``a_c``, and ``S`` (a
low-order 2D polynomial, mean 1) explains only what varies *inside* a class across the field.
Classes are re-assigned on the corrected intensities and the fit is iterated with Tukey
weights, so misclassified blocks and edges drop out.  Classes are assigned on a smoothed copy
that leaves each pixel's own value out (so noise does not select raw values towards the class
centre), and the field goes coarse to fine: a quadratic until it stops changing, then the
full degree (a high-degree field grown from flat can bend at the image edge and merge two
layers into one class).

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
from typing import Any, Sequence

import numpy as np
from scipy import ndimage as ndi

from volrecon._spread import spread_indices
from volrecon.correct._intensity import (
    affine_slice, save_figure,
    bin_mean, block_factor, block_stats, check_mask, noise_model, check_volume, homogeneous, interp_matrix, kmeans_1d,
    map_slices, pixel_noise, plane_mask, plane_problems, read_slices, tukey_weights,
)
from volrecon.errors import InputError, ParameterError

METHODS = ("classes", "polynomial", "lowrank")
FILE_NPZ = "shading.npz"
FILE_JSON = "shading.json"
_GRID = 65  # nodes per axis of the stored field
_TILES = 24  # tiles per side of the class-wise fit
_TUKEY_C = 2.0
_ZONE_SIGMA = 2.5  # binned px: Gaussian scale of the edge detector of the flat zones
_ZONE_EDGE = 2.5  # edge threshold in noise units of that detector's gradient magnitude
_ZONE_ERODE = 2  # binned px kept clear of every edge (blur mixes phases there)


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
        return save_figure(fig, path)


def _monomials(y: np.ndarray, x: np.ndarray, degree: int) -> np.ndarray:
    """Columns ``y**i * x**j`` for ``1 <= i + j <= degree`` (coordinates in [-1, 1])."""
    cols = [y**i * x**j for total in range(1, degree + 1) for i in range(total + 1) for j in [total - i]]
    return np.stack(cols, axis=-1) if cols else np.zeros(y.shape + (0,))


def _block_centres(shape: tuple[int, int], factor: int, grid: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    gy, gx = grid
    yc = ((np.arange(gy) + 0.5) * factor) / shape[0] * 2 - 1
    xc = ((np.arange(gx) + 0.5) * factor) / shape[1] * 2 - 1
    return np.broadcast_to(yc[:, None], grid), np.broadcast_to(xc[None, :], grid)


def _wls(gram: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Solve the (slightly regularised) normal equations of a weighted least-squares fit."""
    gram = gram.copy()
    gram[np.diag_indices_from(gram)] += 1e-9 * max(float(np.trace(gram)), 1e-12)
    return np.linalg.solve(gram, rhs)


def _interior(classes: np.ndarray, usable: np.ndarray, radius: int) -> np.ndarray:
    """Pixels whose whole ``(2r+1)^2`` neighbourhood is usable and of their own class."""
    size = 2 * int(radius) + 1
    same = ndi.minimum_filter(classes, size, mode="nearest") == ndi.maximum_filter(classes, size, mode="nearest")
    return same & ndi.binary_erosion(usable, np.ones((size, size), bool), border_value=1)


def _smooth_without_centre(plane: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing with the pixel's own weight left out (renormalised).

    Classes are assigned on the smoothed copy and class means are taken from the raw pixels.
    If the smoothed value contained the pixel's own noise, selecting pixels whose smoothed value
    lies near a class centre would select raw values whose noise points towards that centre
    (their covariance is twice the smoothed variance for sigma = 2 px), and a shaded tile would
    look unshaded: the fit would see only a fraction of the field on noisy slices.
    """
    smooth = ndi.gaussian_filter(plane, sigma, mode="nearest", truncate=3.0)
    impulse = np.zeros(2 * int(3.0 * sigma + 0.5) + 1)
    impulse[impulse.size // 2] = 1.0
    own = float(ndi.gaussian_filter1d(impulse, sigma, truncate=3.0)[impulse.size // 2]) ** 2
    return (smooth - np.float32(own) * plane) * np.float32(1.0 / (1.0 - own))


@dataclass
class _Samples:
    """Per-slice binned planes, their smoothed copies and where they may be used."""

    raw: list[np.ndarray]
    smooth: list[np.ndarray]
    usable: list[np.ndarray]
    tile: np.ndarray  # (by, bx) tile index of every binned pixel
    tile_yx: np.ndarray  # (T, 2) tile centres in [-1, 1]
    n_tiles: int


def _samples(
    planes: list[np.ndarray], masks: list[np.ndarray | None], shape: tuple[int, int], factor: int, smooth_px: float,
    tiles: int, *, binned: bool = False,
) -> _Samples:
    """Bin (noise down by ``factor``), smooth (noise down again) and tile the slices.

    ``binned=True``: ``planes`` are already binned by ``factor`` (masks are full resolution).
    """
    raw, smooth, usable = [], [], []
    for plane, m in zip(planes, masks):
        b = plane if binned else bin_mean(plane, factor)
        raw.append(b)
        smooth.append(_smooth_without_centre(b, smooth_px) if smooth_px > 0 else b)
        ok = np.isfinite(b)
        if m is not None:
            mb = bin_mean(m.astype(np.float32), factor) > 1.0 - 0.5 / factor**2  # every pixel of the bin usable
            ok &= mb
        usable.append(ok)
    by, bx = raw[0].shape
    ty, tx = min(int(tiles), by), min(int(tiles), bx)
    iy = (np.arange(by) * ty) // by
    ix = (np.arange(bx) * tx) // bx
    tile = iy[:, None] * tx + ix[None, :]
    cy = ((np.arange(ty) + 0.5) / ty) * (by * factor) / shape[0] * 2 - 1
    cx = ((np.arange(tx) + 0.5) / tx) * (bx * factor) / shape[1] * 2 - 1
    tile_yx = np.stack(np.broadcast_arrays(cy[:, None], cx[None, :]), axis=-1).reshape(-1, 2)
    return _Samples(raw, smooth, usable, tile, tile_yx, ty * tx)


def _class_tile_means(
    s: _Samples, field_t: np.ndarray, offset: float, *, classes: int, radius: int,
    labels: list[np.ndarray] | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Mean raw grey of every (slice, class, tile) over class-interior pixels.

    Classes are grey-level classes of the smoothed, currently corrected slice (1D k-means per
    slice, so brightness drift between slices does not matter) or the given phase labels.
    Only pixels deep inside a class region and near their class centre are used, so edges,
    mixtures and noise-induced misassignments drop out.  Returns means, counts, the tile and
    the (slice, class) group of every entry, and the number of groups.
    """
    pix_field = field_t[s.tile]
    means, counts, tiles_out, groups = [], [], [], []
    n_groups = 0
    for z, (raw, sm, ok) in enumerate(zip(s.raw, s.smooth, s.usable)):
        if labels is not None:
            cls = labels[z]
            keep = _interior(cls, ok & (cls > 0), radius)
        else:
            corr = (sm - offset) / pix_field
            vals = corr[ok]
            if vals.size < 16:
                continue
            sub = vals[:: max(1, vals.size // 20000)]
            centres, _ = kmeans_1d(sub, int(classes))
            cut = (centres[1:] + centres[:-1]) / 2
            cls = np.searchsorted(cut, corr)
            gap = np.diff(centres)
            half = np.minimum(np.r_[np.inf, gap], np.r_[gap, np.inf]) / 2 if centres.size > 1 else np.array([np.inf])
            near = np.abs(corr - centres[cls]) <= 0.6 * half[cls]
            keep = _interior(cls, ok, radius) & near
        if not keep.any():
            continue
        uniq, inv = np.unique(cls[keep], return_inverse=True)
        key = inv * s.n_tiles + s.tile[keep]
        size = uniq.size * s.n_tiles
        cnt = np.bincount(key, minlength=size)
        tot = np.bincount(key, weights=raw[keep], minlength=size)
        hit = np.flatnonzero(cnt > 0)
        means.append(tot[hit] / cnt[hit])
        counts.append(cnt[hit].astype(np.float64))
        tiles_out.append(hit % s.n_tiles)
        groups.append(hit // s.n_tiles + n_groups)
        n_groups += uniq.size
    if not means:
        return np.zeros(0), np.zeros(0), np.zeros(0, int), np.zeros(0, int), 0
    return np.concatenate(means), np.concatenate(counts), np.concatenate(tiles_out), np.concatenate(groups), n_groups


def _zone_tile_means(s: _Samples, *, sigma: float = _ZONE_SIGMA, edge: float = _ZONE_EDGE, erode: int = _ZONE_ERODE,
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Mean raw grey of every (flat zone, tile): zones are areas bounded by edges, not by grey level.

    A phase region's grey varies across the field only by the shading, which is smooth and has
    no edges; phase boundaries are edges.  So the connected areas where the Gaussian gradient
    magnitude stays within noise (``edge`` times its noise level), shrunk by ``erode`` px off
    the edges, are each one phase region, and unlike grey-level classes they are found without
    any field estimate: a layer whose grey the shading moves across a class boundary is not
    cut there (a cut keeps each side's tile means near its class centre, and a fit started
    from a flat field then converges to a field that lacks much of the real gradient), and
    distant regions of similar grey (electrolyte of two layers) are not tied to one level.
    Zones that cover fewer than two tiles say nothing about the field and are dropped.
    Returns the same arrays as :func:`_class_tile_means`.
    """
    means, counts, tiles_out, groups = [], [], [], []
    n_groups = 0
    box = np.ones((2 * int(erode) + 1,) * 2, bool)
    for raw, ok in zip(s.raw, s.usable):
        if ok.sum() < 16:
            continue
        noise = pixel_noise(np.where(ok, raw, np.nan))
        filled = np.where(ok, raw, np.float32(np.median(raw[ok])))
        grad = ndi.gaussian_gradient_magnitude(filled, sigma, mode="nearest")
        # one component of a Gaussian derivative of white noise has sd noise / sqrt(8 pi) / sigma**2
        flat = ok & (grad < edge * max(noise, 1e-6) / (np.sqrt(8 * np.pi) * sigma**2))
        zone, n = ndi.label(ndi.binary_erosion(flat, box, border_value=1))
        keep = zone > 0
        if n == 0:
            continue
        key = (zone[keep] - 1) * s.n_tiles + s.tile[keep]
        cnt = np.bincount(key, minlength=n * s.n_tiles)
        tot = np.bincount(key, weights=raw[keep], minlength=n * s.n_tiles)
        hit = np.flatnonzero(cnt >= 4)
        zone_of = hit // s.n_tiles
        spread = np.bincount(zone_of, minlength=n)[zone_of] >= 2
        hit, zone_of = hit[spread], zone_of[spread]
        if hit.size == 0:
            continue
        uniq, compact = np.unique(zone_of, return_inverse=True)
        means.append(tot[hit] / cnt[hit])
        counts.append(cnt[hit].astype(np.float64))
        tiles_out.append(hit % s.n_tiles)
        groups.append(compact + n_groups)
        n_groups += uniq.size
    if not means:
        return np.zeros(0), np.zeros(0), np.zeros(0, int), np.zeros(0, int), 0
    return np.concatenate(means), np.concatenate(counts), np.concatenate(tiles_out), np.concatenate(groups), n_groups


def _centred_normal_solve(
    design: np.ndarray, tile: np.ndarray, group: np.ndarray, n_groups: int, weight: np.ndarray, target: np.ndarray,
) -> np.ndarray:
    """Weighted least squares of ``target`` on ``design[tile]``, both centred within each group.

    Removing the group means lets ``beta`` carry only the within-group variation.  The normal
    equations are accumulated per tile and per group
    (``sum w (x - xbar_g)(x - xbar_g)^T = sum w x x^T - sum_g W_g xbar_g xbar_g^T``) instead of
    over every entry: small dense products, and nothing of size groups x tiles (flat zones make
    thousands of groups).
    """
    n_tiles = design.shape[0]
    w_group = np.maximum(np.bincount(group, weights=weight, minlength=n_groups), 1e-12)
    t_mean = np.bincount(group, weights=weight * target, minlength=n_groups) / w_group
    w_tile = np.bincount(tile, weights=weight, minlength=n_tiles)
    wt_tile = np.bincount(tile, weights=weight * target, minlength=n_tiles)
    # per group and design column: sum over the group's entries of w * design[tile]
    cols = design.shape[1]
    key = group[:, None] * cols + np.arange(cols)[None, :]
    x_mean = np.bincount(key.ravel(), weights=(weight[:, None] * design[tile]).ravel(), minlength=n_groups * cols)
    x_mean = x_mean.reshape(n_groups, cols) / w_group[:, None]
    gram = design.T @ (design * w_tile[:, None]) - x_mean.T @ (x_mean * w_group[:, None])
    rhs = design.T @ wt_tile - x_mean.T @ (w_group * t_mean)
    return _wls(gram, rhs)


def _fit_levels(
    m: np.ndarray, n: np.ndarray, tile: np.ndarray, group: np.ndarray, n_groups: int, design: np.ndarray,
    offset: float, iters: int,
) -> tuple[np.ndarray, float, int]:
    """Fit ``m = S(tile) * a(group) + offset`` with ``log S = design @ beta``; robust, alternating.

    Returns ``beta``, the weighted residual RMS (image units, comparable between offsets) and
    the number of entries kept.
    """
    beta = np.zeros(design.shape[1])
    base = np.minimum(n, np.quantile(n, 0.9))  # one huge tile must not dominate
    w = base.copy()
    sig = m - offset
    usable = sig > 0
    w *= usable
    resid = np.zeros_like(m)
    for _ in range(int(iters)):
        S = np.exp(design @ beta)[tile]
        num = np.bincount(group, weights=w * sig * S, minlength=n_groups)
        den = np.bincount(group, weights=w * S * S, minlength=n_groups)
        a = np.where(den > 0, num / np.maximum(den, 1e-12), 0.0)[group]
        ok = usable & (a > 0)
        target = np.log(np.where(ok, sig, 1.0) / np.where(ok, a, 1.0))
        # per-tile log-ratio samples; variance of log ~ 1/(n * signal) under shot noise
        wf = w * ok * np.maximum(sig, 1e-6)
        beta = _centred_normal_solve(design, tile, group, n_groups, wf, target)
        S = np.exp(design @ beta)[tile]
        num = np.bincount(group, weights=w * sig * S, minlength=n_groups)
        den = np.bincount(group, weights=w * S * S, minlength=n_groups)
        a = np.where(den > 0, num / np.maximum(den, 1e-12), 0.0)[group]
        resid = sig - S * a
        w = base * usable * tukey_weights(resid * np.sqrt(base / np.maximum(m, 1.0)), c=_TUKEY_C * 2)
    rms = float(np.sqrt(np.sum(w * resid**2) / max(np.sum(w), 1e-12)))
    return beta, rms, int((w > 0).sum())


Entries = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]
"""Tile means, counts, tiles, groups and the number of groups of a fit (see :func:`_class_tile_means`)."""


def _join(a: Entries, b: Entries) -> Entries:
    """Both sets of entries in one fit, their groups kept apart."""
    return (np.r_[a[0], b[0]], np.r_[a[1], b[1]], np.r_[a[2], b[2]], np.r_[a[3], b[3] + a[4]], a[4] + b[4])


def _fit_offset(
    entries: Entries, design: np.ndarray, iters: int, offset: float | None, top: float, near: float | None,
) -> tuple[np.ndarray, float, float]:
    """Field coefficients, dark level and residual RMS: the dark level given, or the one with the least residual.

    ``near``: the dark level of the previous round (it moves little between rounds: searched
    within an eighth of ``top`` of it); ``None`` searches ``[0, top]``.
    """
    cache: dict[float, tuple[np.ndarray, float, int]] = {}

    def fit(b: float) -> float:
        if b not in cache:
            cache[b] = _fit_levels(*entries, design, b, iters)
        return cache[b][1]

    if offset is not None:
        fit(float(offset))
    else:
        grid = np.linspace(0.0, top, 5) if near is None else np.clip(near + np.array([-0.125, 0.0, 0.125]) * top, 0.0, top)
        i = int(np.argmin([fit(float(b)) for b in grid]))
        a, c = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
        for _ in range(5):  # golden-section refinement around the best grid point
            m1, m2 = a + 0.382 * (c - a), a + 0.618 * (c - a)
            if fit(float(m1)) < fit(float(m2)):
                c = m2
            else:
                a = m1
    b = min(cache, key=lambda k: cache[k][1])
    return cache[b][0], b, cache[b][1]


def _fit_classes(
    s: _Samples, *, degree: int, iters: int, offset: float | None, classes: int, radius: int,
    labels: list[np.ndarray] | None, rounds: int = 4, coarse_rounds: int = 12, tol: float = 2e-3,
) -> tuple[np.ndarray, float, float, int]:
    """Alternate class assignment (on the corrected, smoothed slices) and the field fit.

    Without labels the fit starts from the flat zones (:func:`_zone_tile_means`), which need
    no field estimate, and every round fits the grey-level classes together with them.
    Classes alone, started from a flat field, are assigned on slices whose shading is not yet
    removed and see only part of it (a class window cut by grey level keeps the tile mean
    near the class centre): the fit then settles on a field that lacks much of a gradient
    running across the layers (up to 20 % on noisy phantoms with brightness drift).  Classes
    in turn tie distant regions of one grey together, where zones leak across faint edges;
    the joint fit weighs one against the other.  Coarse to fine: a quadratic field until it
    stops changing (at most ``coarse_rounds`` rounds, ``tol`` in log field), then at most
    ``rounds`` rounds at ``degree`` (a high-degree field can bend at the image edge and merge
    two layers into one class).
    """
    allv = np.concatenate([r[u] for r, u in zip(s.raw, s.usable)])
    top = 0.95 * max(float(np.quantile(allv, 0.01)) if allv.size else 0.0, 0.0)
    b_now: float | None = None if offset is None else float(offset)
    rms, n_groups = float("nan"), 0
    field_t = np.ones(s.n_tiles)
    beta = np.zeros(0)
    stages = ((min(2, int(degree)), int(coarse_rounds)), (int(degree), int(rounds))) if degree > 2 else ((int(degree), int(coarse_rounds) + int(rounds)),)
    zones = _zone_tile_means(s) if labels is None else None
    if zones is not None:
        design = _monomials(s.tile_yx[:, 0], s.tile_yx[:, 1], stages[0][0])
        if zones[0].size >= 4 * design.shape[1]:
            beta, b_now, rms = _fit_offset(zones, design, iters, offset, top, None)
            field_t = np.exp(design @ beta)
        else:
            zones = None
    for deg, n_rounds in stages:
        design = _monomials(s.tile_yx[:, 0], s.tile_yx[:, 1], deg)
        for _ in range(n_rounds):
            entries = _class_tile_means(s, field_t, b_now or 0.0, classes=classes, radius=radius, labels=labels)
            n_groups = entries[4]
            if zones is not None:
                entries = _join(entries, zones)
            if entries[0].size < 4 * design.shape[1]:
                raise InputError("too few homogeneous areas for a shading estimate; check the mask, or lower degree")
            beta, b_now, rms = _fit_offset(entries, design, iters, offset, top, b_now)
            new = np.exp(design @ beta)
            change = float(np.abs(np.log(new / new.mean()) - np.log(field_t / field_t.mean())).max())
            field_t = new
            if change < tol:
                break
    return beta, float(b_now or 0.0), rms, n_groups


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
    labels: Any = None,
    reference_phases: Sequence[int] | None = None,
    classes: int = 8,
    binning: int | None = None,
    smooth_px: float = 2.0,
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
    labels : array (Z, Y, X) of int, optional
        Phase labels in the detector frame (e.g. a first segmentation, or a phantom's truth):
        ``"classes"`` then uses the phases themselves instead of grey-level classes.
    reference_phases : sequence of int, optional
        Label values to use with ``labels`` (default every non-zero label).
    classes : int
        Grey-level classes per slice for ``"classes"`` without labels.
    binning : int, optional
        Pixels per side averaged into one before the ``"classes"`` fit (default: brings the
        smaller side to about 256).  The field is smooth, so binning loses nothing and divides
        the noise by ``binning``.
    smooth_px : float
        Gaussian sigma (binned px) of the copy on which classes are assigned; the class means
        themselves are taken from the unsmoothed binned slice.

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
    lab = None
    if labels is not None:
        lab = labels
        if tuple(getattr(lab, "shape", ())) != (nz, ny, nx):
            raise ParameterError(f"labels have shape {tuple(getattr(lab, 'shape', ()))}; give the stack's shape {(nz, ny, nx)}")
    idx = spread_indices(nz, max(2, int(n_slices)))
    fb = 1
    if method == "classes":
        fb = int(binning) if binning else max(1, min(ny, nx) // 256)
        if fb < 1 or min(ny, nx) // fb < 16:
            raise ParameterError(f"shading binning={binning}: leaves fewer than 16 binned px per side; give a smaller value")
    warnings: list[str] = []
    data: list[Any] = []  # binned slices ("classes") or block statistics, read one slice at a time
    used: list[int] = []
    for z in idx:
        plane = read_slices(image, [int(z)])[0]
        problem = plane_problems(plane, image.dtype)
        if problem:
            warnings.append(f"slice z={int(z)} skipped for shading ({problem})")
            continue
        used.append(int(z))
        data.append(bin_mean(plane, fb) if method == "classes" else block_stats(plane, block_factor((ny, nx)), plane_mask(m, int(z))))
    if not used:
        raise InputError("no usable slice for the shading estimate (all constant, saturated or masked); check the stack and mask")
    ny_n, nx_n = min(_GRID, ny), min(_GRID, nx)
    gy_out = np.linspace(-1, 1, ny_n)[:, None] * np.ones((1, nx_n))
    gx_out = np.ones((ny_n, 1)) * np.linspace(-1, 1, nx_n)[None, :]
    if method == "classes":
        s = _samples(data, [plane_mask(m, z) for z in used], (ny, nx), fb, float(smooth_px), _TILES, binned=True)
        lab_b = None
        if lab is not None:
            keep_ids = None if reference_phases is None else np.asarray(list(reference_phases))
            lab_b = []
            for z in used:
                lz = np.asarray(lab[z])[fb // 2 :: fb, fb // 2 :: fb][: s.raw[0].shape[0], : s.raw[0].shape[1]].astype(np.int64)
                lab_b.append(lz if keep_ids is None else np.where(np.isin(lz, keep_ids), lz, 0))
        radius = max(1, int(np.ceil(float(smooth_px))))
        beta, b, rms, ncls = _fit_classes(
            s, degree=int(degree), iters=int(iters), offset=offset, classes=int(classes), radius=radius, labels=lab_b,
        )
        coarse = np.exp(_monomials(gy_out, gx_out, int(degree)) @ beta)
        deg = int(degree)
    else:
        f = block_factor((ny, nx))
        means, variances, valids = (list(col) for col in zip(*data))
        allv = np.stack(valids)
        if not allv.any():
            raise InputError("no usable block for the shading estimate (all masked); check the mask")
        model = noise_model(np.stack(means)[allv], np.stack(variances)[allv])
        keep = np.stack([homogeneous(mu, va, ok, model=model) for mu, va, ok in zip(means, variances, valids)])
        stack_means = np.stack(means)
        if method == "lowrank":
            coarse, b, rms, ncls = _lowrank(stack_means, keep, (ny_n, nx_n))
            deg = 0
        else:
            yc, xc = _block_centres((ny, nx), f, stack_means.shape[1:])
            beta = _fit_background(stack_means, keep, yc, xc, degree=int(degree), iters=int(iters))
            b, rms, ncls = 0.0, float("nan"), 1
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
    scale, add = shading_terms(shading)

    def one(plane: np.ndarray, z: int) -> np.ndarray:
        return affine_slice(plane, dtype, field=(scale, add))

    return map_slices(image, one)


def shading_terms(shading: ShadingField) -> tuple[np.ndarray, np.ndarray]:
    """The correction as ``corrected = image * scale + add``, both ``(Y, X)`` float32.

    ``scale = 1 / field`` and ``add = offset * (1 - scale)``: two vectorised operations per
    slice, which :func:`volrecon.correct.stage.correct_volume` fuses with the other corrections.
    """
    scale = (1.0 / shading.field).astype(np.float32)
    add = (np.float32(shading.offset) * (1 - scale)).astype(np.float32)
    return scale, add
