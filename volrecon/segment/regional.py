"""Region-wise unsupervised classification (the ``layers`` method of :func:`segment_volume`).

A global multi-Otsu maps grey classes dark to bright onto one fixed phase order, but the cell's
layers do not share one grey scale: the SEI is as bright as separator fibres, the carbon-binder
domain as dark as the sodium, so global classes can never hold binder or SEI.  Here the layers are
found first (from a global first guess), then each region is classified on its own histogram:

- cathode: pore (darkest) / binder (middle) / active (brightest), 3-class multi-Otsu of the
  cathode voxels;
- separator: electrolyte / separator fibres, 2-class multi-Otsu of the separator voxels;
- anode: sodium below the sodium surface, SEI between the sodium surface and the SEI's outer
  surface, both taken as surfaces (the SEI is a dense film, brighter than the sodium and, averaged
  laterally, brighter than the porous separator), never from per-voxel grey values;
- collector: collector.

Grey values are denoised a little (3D Gaussian, ``sigma_nm``) before the per-region thresholds:
the thresholds are estimated and applied on the same smoothed values.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace
from typing import Any, Mapping, Sequence

import numpy as np
from scipy import ndimage as ndi

from volrecon.phases import REGIONS
from volrecon.segment._smooth import gaussian, smooth_region
from volrecon.segment.cathode_rims import rim_share
from volrecon.segment.layers import (EDGE_RIM_NM, RIM_MAX_RMS, Layers, edge_rim_shift, gaussian_reach, move_interface,
                                     reference_rim_fit, released_slabs, rim_half_width_vox, rim_offsets, sample_columns,
                                     slab_rows, step_and_rims, steepest_step)
from volrecon.segment.thresholds import class_index

_TRUNCATE = 3.0


def smoothing_sigma(sigma_nm: float, voxel_size_nm: Sequence[float]) -> list[float]:
    """Gaussian sigma in voxels per axis (0 where a voxel is already coarser than ``sigma_nm``/2)."""
    return [float(sigma_nm) / float(v) if sigma_nm > 0 and float(sigma_nm) / float(v) >= 0.3 else 0.0
            for v in voxel_size_nm]


def contact_reach(scale_nm: float, voxel_size_nm: Sequence[float], axis: int) -> int:
    """Voxels along the stacking ``axis`` a cathode particle may reach into the separator region.

    The layers' interface is a smooth surface placed to about a voxel along the axis, and a
    particle's top is classified on grey values (or features) smoothed at ``scale_nm``, which
    spreads it by about a sigma (:func:`smoothing_sigma`: none below 0.3 voxel).

    Parameters
    ----------
    scale_nm : float
        Finest smoothing scale the particle's labels were decided at (nm).
    voxel_size_nm : sequence of float
        Voxel size (nm) per axis.
    axis : int
        The stacking axis.

    Returns
    -------
    int
        ``ceil(1 + sigma)`` in voxels along ``axis`` (2 at 10 nm and 12.7 nm voxels).
    """
    return int(math.ceil(1.0 + smoothing_sigma(scale_nm, voxel_size_nm)[axis]))


def smoothing_reach(sigma_nm: float, voxel_size_nm: Sequence[float]) -> tuple[int, int, int]:
    """Context voxels per axis needed by :func:`smooth`."""
    return tuple(int(math.ceil(_TRUNCATE * s)) + 1 for s in smoothing_sigma(sigma_nm, voxel_size_nm))  # type: ignore[return-value]


def smooth(block: np.ndarray, sigma_nm: float, voxel_size_nm: Sequence[float],
           valid: np.ndarray | None = None, region: tuple[slice, ...] | None = None) -> np.ndarray:
    """3D Gaussian denoising with the physical voxel size respected.

    ``valid`` (optional, the block's shape): average over these voxels only
    (:func:`specimen_filter`), so the frame and the trench walls' rim shell lend the specimen
    beside them none of their grey.  ``region`` (3 slices; None: the whole block): only those
    voxels are computed and returned, bit for bit the whole block's result there.
    """
    sig = smoothing_sigma(sigma_nm, voxel_size_nm)
    b = np.asarray(block, dtype=np.float32)
    if not any(sig):
        return b if region is None else b[region]
    return specimen_filter(b, None if valid is None or valid.all() else valid, sig, region=region)


_MIN_WEIGHT = np.float32(0.01)
"""Least Gaussian weight of the valid voxels for a normalised average (:func:`specimen_filter`).

The average over the valid voxels is their weighted sum divided by their weight ``w``: its noise
grows as ``1 / sqrt(w)``.  Under 1 % (noise magnified more than tenfold; a voxel about 2.3 sigma
inside the frame or a wide shell, whose kernel reaches the specimen with its last tail only) the
voxel keeps its plain average: it is not specimen, and what it reads matters only to the voxels
around it, which have valid voxels of their own."""


_SLAB_VOXELS = 4_000_000
"""Voxels of the anode band read and filtered at a time by the surface finders (bounded memory)."""

_FILM_QUANTILE = 0.9
"""Blur lowers the peak grey value of a thin film below the film's level, least where the film is
thickest: the level of the layer beyond the sodium is this quantile of the columns' peaks."""

_FILM_FIT_COLUMNS = 20_000
"""Columns (at most, evenly spread) whose grey profiles a thin film's own edge fit reads."""

_REFERENCE_VOXELS = 4_000_000
"""Voxels of the anode band (a central block of rows) the SEI's reference levels are taken from."""


_MIN_CORE_PER_PAD = 4
"""A slab's core rows are at least this many times its overlap (else the overlap is re-read and re-filtered)."""


@dataclass(frozen=True)
class _Band:
    """The anode band of a volume: stacking axis ``ax`` (length ``n``), read from the anode end.

    Blocks come out with the stacking axis last and oriented anode first, cut to the band
    ``[lo, hi)`` (anode-first coordinates) along it and to rows ``[r0, r1)`` of the first lateral
    axis: the surfaces of the sodium and the SEI live in this band, so the cathode and the
    collector are never read.
    """

    ax: int
    n: int
    anode_first: bool
    lo: int
    hi: int

    @property
    def lat(self) -> list[int]:
        return [a for a in range(3) if a != self.ax]

    def read(self, arr: Any, r0: int, r1: int, dtype: Any = np.float32) -> np.ndarray:
        sl = [slice(None)] * 3
        sl[self.lat[0]] = slice(r0, r1)
        sl[self.ax] = slice(self.lo, self.hi) if self.anode_first else slice(self.n - self.hi, self.n - self.lo)
        blk = arr[tuple(sl)]
        blk = np.moveaxis(np.asarray(blk.compute() if hasattr(blk, "compute") else blk), self.ax, -1)
        if not self.anode_first:
            blk = blk[..., ::-1]
        return np.ascontiguousarray(blk, dtype=dtype)


def _slabs(rows: int, row_voxels: int, pad: int, slab_voxels: int) -> list[tuple[int, int, int, int]]:
    """``(a0, a1, p0, p1)``: core rows ``[a0, a1)`` and the rows ``[p0, p1)`` read for them.

    A slab holds about ``slab_voxels`` but never fewer core rows than ``_MIN_CORE_PER_PAD * pad``: on wide bands
    a budget smaller than the overlap would leave one core row per slab and read and filter
    every row ~``2 * pad`` times (the slabs then hold up to 1.5x ``slab_voxels``, or more when
    one row's overlap alone exceeds it).
    """
    step = max(1, _MIN_CORE_PER_PAD * pad, int(slab_voxels) // max(1, row_voxels) - 2 * pad)
    return slab_rows(rows, pad, step)


def _anode_first(h: Any, layers: Layers) -> np.ndarray:
    h = np.asarray(h, dtype=np.float64)
    return h if layers.anode_first else layers.length - h


def _filtered(a: np.ndarray, sigma: Sequence[float] | float, region: tuple[slice, ...] | None) -> np.ndarray:
    """:func:`volrecon.segment._smooth.gaussian` of ``a`` (``mode="nearest"``) over ``region`` alone
    (the whole array when None): bit for bit the whole array's filter there, in less time and memory."""
    if region is None or a.dtype != np.float32 or a.ndim != 3:
        out = gaussian(a, sigma, mode="nearest", truncate=_TRUNCATE)
        return out if region is None else out[region]
    sig = [float(sigma)] * 3 if np.ndim(sigma) == 0 else [float(s) for s in sigma]  # type: ignore[arg-type]
    whole = tuple(slice(0, n) for n in a.shape)
    cut = tuple(slice(*r.indices(n)[:2]) for r, n in zip(region, a.shape))
    return smooth_region(a, sig, whole, cut, truncate=_TRUNCATE, mode="nearest")


def specimen_filter(values: np.ndarray, valid: np.ndarray | None, sigma: Sequence[float] | float,
                    region: tuple[slice, ...] | None = None) -> np.ndarray:
    """Gaussian average of ``values`` over the ``valid`` voxels only (normalised convolution).

    The face's frame (cap, trench walls) and the walls' rim shell
    (:attr:`volrecon.segment.frame.FrameMask.shell`) are not specimen: a plain lateral average
    beside a wall carries the wall's bright grey into the specimen's first ``3 sigma`` voxels.
    Averaged over the valid voxels alone, every voxel (an invalid one too, from the valid voxels
    around it) reads the specimen's own level; a voxel with under :data:`_MIN_WEIGHT` of valid
    weight within reach (deep in the frame) keeps its plain average.  ``valid`` None: a plain Gaussian.
    ``region`` (3 slices, within the array; None: the whole array): only those voxels are
    computed and returned, bit for bit what the whole array's filter holds there.
    """
    v = np.asarray(values, dtype=np.float32)
    if valid is None:
        return _filtered(v, sigma, region)
    w = _filtered(valid.astype(np.float32), sigma, region)
    g = _filtered(np.where(valid, v, np.float32(0)), sigma, region)
    thin = w < _MIN_WEIGHT
    # in place (the same float32 arithmetic): the surface finders' slabs are hundreds of MB
    out = np.divide(g, np.maximum(w, _MIN_WEIGHT, out=w), out=g)
    del w
    if thin.any():
        out[thin] = _filtered(v, sigma, region)[thin]
    return out


def _valid_block(phases: Any, band: "_Band", r0: int, r1: int, frame_value: int | None) -> np.ndarray | None:
    """Specimen voxels of rows ``[r0, r1)`` of the band (``phases`` neither 0 nor the frame), or None
    when there is no ``phases`` or every voxel is specimen."""
    if phases is None:
        return None
    ph = band.read(phases, r0, r1, phases.dtype)
    valid = ph != 0
    if frame_value is not None:
        valid &= ph != frame_value
    return None if valid.all() else valid


def _specimen_columns(valid: np.ndarray | None, hn: np.ndarray, hs: np.ndarray) -> np.ndarray:
    """Columns (stacking axis last) that are specimen from a voxel before ``hn`` to a voxel past ``hs``."""
    if valid is None:
        return np.ones(hn.shape, bool)
    idx = np.arange(valid.shape[-1]) + 0.5
    span = (idx >= np.nan_to_num(hn, nan=np.inf)[..., None] - 1.0) & (idx <= np.nan_to_num(hs, nan=-np.inf)[..., None] + 1.0)
    return ~(span & ~valid).any(axis=-1)


def _around(core: tuple[slice, slice], reach: Sequence[int], shape: Sequence[int]) -> tuple[slice, slice, slice]:
    """The lateral ``core`` (rows, columns; None ends: the array's) widened by ``reach`` voxels per
    lateral axis, within ``shape``, over the whole stacking axis (last)."""
    return tuple(slice(max(0, (c.start or 0) - r), min(n, (n if c.stop is None else c.stop) + r))
                 for c, r, n in zip(core, reach, shape[:2])) + (slice(None),)  # type: ignore[return-value]


def _shifted(core: tuple[slice, slice], by: tuple[slice, ...]) -> tuple[slice, slice, slice]:
    """``core`` in the coordinates of the block ``by`` cuts out (both within one array)."""
    return tuple(slice((c.start or 0) - b.start, (b.stop if c.stop is None else c.stop) - b.start)
                 for c, b in zip(core, by)) + (slice(None),)  # type: ignore[return-value]


def _non_film(img: np.ndarray, dark: float, bright: float, sig: Sequence[float],
              valid: np.ndarray | None = None, core: tuple[slice, slice] | None = None) -> np.ndarray:
    """Lateral share of voxels that are not film: darker than ``dark`` or brighter than ``bright``
    (over the specimen ``valid`` alone, :func:`specimen_filter`).

    ``core`` (rows, columns of ``img``; None: all): only those columns are computed and returned
    (the grey values are classified over the lateral average's reach around them), bit for bit
    what the whole block gives there.
    """
    if core is None:
        core = (slice(None), slice(None))
    near = _around(core, [gaussian_reach(s) for s in sig[:2]], img.shape)
    fine = specimen_filter(img, valid, 1.0, region=near)
    # the grey values classified in place of their smoothing (one float copy fewer)
    fine[...] = (fine < dark) | (fine > bright)
    sub = None if valid is None else valid[near]
    return specimen_filter(fine, sub, sig, region=_shifted(core, near))


DENSE_SHARE = 0.25
"""Most dark (pore) share of a film taken as the dense SEI: a film darker than this in a quarter of
its voxels is porous, no SEI."""

MIN_POROUS_SHARE = 0.40
"""Least dark (pore) share of the porous separator: common separators' porosity is 40-60 % and
a pore darker than the sodium/film midpoint is counted in the share."""

MIN_SHARE_RISE = MIN_POROUS_SHARE - DENSE_SHARE
"""Least rise of a column's dark (or non-film) share from the film to the layer beyond it that
marks a porous layer there: from the densest film accepted (:data:`DENSE_SHARE`) to the least
porous separator (:data:`MIN_POROUS_SHARE`).  A smaller rise is within what the film's own
variation (up to its accepted share) and a dense patch of separator can give."""


def _sei_reference(img: np.ndarray, hn: np.ndarray, hs: np.ndarray, sig: Sequence[float],
                   core: tuple[int, int] | None = None, valid: np.ndarray | None = None) -> dict[str, Any]:
    """The film's and the separator's levels, the thresholds and the reference thickness ``t0``.

    Medians over the columns of the rows ``core`` of ``img`` (all rows when None; the others are
    the filters' context, so a block of rows gives what the whole volume gives on those rows)
    (stacking axis last, anode first, heights in its
    coordinates): the film's grey level at its brightest point within three voxels beyond the
    sodium surface, the sodium's 2.5 voxels before it, the dark (pore) share and the non-film share profiles aligned on the sodium
    surface (a fibre lying on the film moves no column's median), the separator's grey values in
    the far half of the separator, or beyond the film where the film (the dense share of the
    columns) reaches further, over the specimen voxels alone (``valid``: the frame's grey is not
    the separator's).  ``out["reason"]`` says why there is no film.
    """
    n = img.shape[-1]
    idx = np.arange(n) + 0.5
    in_core = np.zeros(hn.shape, bool)
    in_core[slice(*core) if core is not None else slice(None)] = True
    cols = np.isfinite(hn) & (hs - hn > 1.0) & in_core
    # the film's and the sodium's levels from the specimen's columns, smoothed over the specimen: a
    # trench wall's columns (their sodium surface carried in from the specimen beside them) read
    # the wall's grey, and the columns beside it its glow, which raised the film's level and its
    # crossings' threshold (diglyme seed 2 24x192: a film 0.2 voxels thicker with the walls' columns
    # of the whole field than with those of the drift crop)
    own = cols & _specimen_columns(valid, hn, hs)
    cols = own if own.any() else cols
    g = gaussian(img, sig, mode="nearest", truncate=_TRUNCATE) if valid is None else specimen_filter(img, valid, sig)
    # the grey profile aligned on the sodium surface (median over the columns): the film's level
    # at its brightest point within 3 voxels of the surface (its middle when thin, wherever the
    # surface sits within a voxel), the sodium's 2.5 voxels before the surface
    around = np.arange(-2.5, 3.25, 0.25)
    p_g = _median_profile(g[cols], hn[cols], around)
    del g
    i_film = int(np.argmax(np.where(around >= 0, p_g, -np.inf)))
    sei_level, na_level = float(p_g[i_film]), float(p_g[0])
    at_film = hn[cols][:, None] + around[i_film]
    # the separator is porous, the SEI dense: dark (pore) voxels, i.e. darker than the midpoint
    # of sodium and film, are what marks the separator; their lateral share per column
    dark_thr = 0.5 * (na_level + sei_level)
    fine7 = specimen_filter(img, valid, 0.7)
    dshare = specimen_filter((fine7 < dark_thr).astype(np.float32), valid, sig)
    del fine7
    film_dark = float(np.median(sample_columns(dshare[cols], at_film)))
    out: dict[str, Any] = {"sei_level": sei_level, "sodium_level": na_level, "dark_threshold": dark_thr,
                           "film_dark_share": film_dark}
    contrast = sei_level - na_level
    out["contrast"] = contrast
    # NaN levels (no column qualified) fail these tests too
    if not contrast > 0 or not film_dark <= DENSE_SHARE:
        out["reason"] = (f"no dense film beyond the sodium surface (contrast {contrast:.3g}, "
                         f"dark share {film_dark:.2f})")
        return out
    span = int(min(n - 1, max(8, np.ceil(np.nanmedian((hs - hn)[cols])))))
    offs = np.arange(0.0, span, 0.25)
    prof_d = _median_profile(dshare[cols], hn[cols], offs)
    near = offs <= max(2.0, 0.25 * span)
    i_dense = int(np.argmin(np.where(near, prof_d, np.inf)))
    fine = specimen_filter(img, valid, 1.0)
    film_grey = float(_median_profile(fine[cols], hn[cols], offs[i_dense:i_dense + 1])[0])
    # where the film ends: the dark (pore) share, median over the columns, rises half-way from
    # the film's densest point to its highest level
    rise = np.nonzero((prof_d > 0.5 * (prof_d[i_dense] + float(np.max(prof_d)))) & (np.arange(offs.size) > i_dense))[0]
    # the separator's sample: the far half of the band, and never the film (a film thicker than
    # half the band would pass its own grey values off as the separator's fibres and pores)
    half = 0.5 * (hn + hs)
    starts = [np.maximum(half, hn + offs[rise[0]] + 1.0)] if rise.size else []
    # no rise in the median profile, or none before the separator ends: the film fills most of the
    # band in most columns (a thick SEI grown into the separator); each column's own rise of the
    # pore share, where it has one
    starts.append(_pore_rise(dshare, np.where(cols, hn + offs[i_dense], np.nan), hs, film_dark) + 1.0)
    del dshare
    # the separator's own voxels: the frame's (a trench wall, the cap, as bright as a fibre or
    # brighter) within the band of a column beside it would pass for fibres and raise the fibre
    # level and the film -> fibre cut with it (carbonate seed 1, 24x192: 0.584 against the
    # specimen's 0.535, its rising edges read 1.1 voxels deep)
    own = cols[..., None] if valid is None else cols[..., None] & valid
    for start in starts + [half]:  # the far half alone where the film leaves no separator
        outer = (idx > start[..., None]) & (idx < hs[..., None] - 0.5) & own
        if outer.any():
            break
    sep_grey = fine[outer]
    del fine
    # fibres: the separator voxels brighter than the film's peak; the threshold half-way between
    # the film's peak and their median (the peak, not the film's grey at one offset, which blur
    # and the rims move with the film's thickness and the sodium surface's sub-voxel position)
    fibres, pores = sep_grey[sep_grey > sei_level], sep_grey[sep_grey < dark_thr]
    bright_thr = np.inf
    if fibres.size > 100:
        out["fibre_level"] = float(np.median(fibres))
        bright_thr = 0.5 * (sei_level + out["fibre_level"])
    if pores.size > 100:
        out["pore_level"] = float(np.median(pores))
    other = _non_film(img, dark_thr, bright_thr, sig, valid)
    prof = _median_profile(other[cols], hn[cols], offs)
    i_min = int(np.argmin(np.where(near, prof, np.inf)))
    film_level = float(prof[i_min])
    sep_level = float(np.median(other[outer])) if outer.any() else float(prof[-1])
    thr = 0.5 * (film_level + sep_level)
    out.update({"film_grey": film_grey, "fibre_threshold": float(bright_thr), "film_level": film_level,
                "separator_level": sep_level, "threshold": float(thr)})
    if sep_level - film_level < MIN_SHARE_RISE:
        out["reason"] = (f"the film is not distinct from the layer beyond it (non-film share {film_level:.2f} vs "
                         f"{sep_level:.2f})")
        return out
    cross = np.nonzero((prof > thr) & (np.arange(offs.size) > i_min))[0]
    out["t0"] = float(offs[cross[0]]) if cross.size else float(offs[-1])
    return out


def _pore_rise(dshare: np.ndarray, begin: np.ndarray, hs: np.ndarray, film_dark: float,
               min_rise: float = MIN_SHARE_RISE) -> np.ndarray:
    """Per column (stacking axis last), the first voxel centre past ``begin`` and before the
    separator's end ``hs`` where the pore share ``dshare`` rises half-way from the film's
    ``film_dark`` to the column's highest share there; NaN where that highest share is less than
    ``min_rise`` above the film's (no porous layer beyond the film in that column,
    :data:`MIN_SHARE_RISE`).

    The rise is sought from the column's first dense voxel past ``begin`` on (a pore share within
    half the least rise of the film's): where a column's sodium surface was read early, ``begin``
    lies in the sodium, whose dark share falls to the film's past it; read as a rise, the whole
    film joined the separator's sample and its grey passed for fibres (carbonate seed 1, 24x192:
    a sodium surface read 6 voxels early in 9 columns beside the right wall put the fibre level at
    0.516 for 0.554).  NaN where the column has no dense voxel there.
    """
    idx = np.arange(dshare.shape[-1]) + 0.5
    inside = (idx > np.nan_to_num(begin, nan=np.inf)[..., None]) & (idx < hs[..., None] - 0.5)
    inside &= np.logical_or.accumulate(inside & (dshare <= film_dark + 0.5 * min_rise), axis=-1)
    top = np.where(inside, dshare, -np.inf).max(axis=-1)
    over = inside & (dshare > 0.5 * (film_dark + top)[..., None])
    k = np.argmax(over, axis=-1)
    return np.where(over.any(axis=-1) & (top >= film_dark + min_rise), idx[k], np.nan)


def _film_crossing(other: np.ndarray, hn: np.ndarray, hs: np.ndarray, thr: float, t0: float,
                   reach: float) -> np.ndarray:
    """Per column, the film's thickness (voxels): the first dense -> porous crossing of ``thr`` by
    the non-film share within ``reach`` voxels of the sodium surface ``hn`` (NaN where none)."""
    win = np.arange(0.0, reach + 0.25, 0.25)
    posw = hn[..., None] + win
    sw = sample_columns(other, posw)
    sw = np.where(posw < hs[..., None], sw, 1.0)  # the separator|cathode bound closes every window
    start = np.argmin(np.where(win <= max(1.0, 0.5 * t0), sw, np.inf), axis=-1)  # the film's densest point
    over = (sw > thr) & (np.arange(win.size) > start[..., None])
    k = np.argmax(over, axis=-1)
    found = over.any(axis=-1) & np.isfinite(hn) & (hs - hn > 1.0)
    a_ = np.take_along_axis(sw, np.maximum(k - 1, 0)[..., None], axis=-1)[..., 0]
    b_ = np.take_along_axis(sw, k[..., None], axis=-1)[..., 0]
    frac = np.clip(np.where(b_ - a_ > 1e-9, (thr - a_) / np.maximum(b_ - a_, 1e-9), 0.5), 0, 1)
    return np.where(found, win[np.maximum(k - 1, 0)] + 0.25 * frac, np.nan)


EDGE_LATERAL_NM = 20.0
"""Lateral smoothing (Gaussian sigma, nm) of the grey values the film's outer edge is located on."""

MIN_EDGE_SHARE = 0.1
"""Least share of columns with a visible film -> pore edge for the thickness to be taken from those
edges.  A pore lies beyond the film in about the separator's porosity share of the columns (40-60 %
for common separators), a fibre in the rest; fewer edges than a tenth of the columns means the
"edges" are noise steps or a film too thin to show its own edge, and the crossings stand alone."""


def _first_voxel(mask: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """Per column (last axis), the first voxel index ``>= lo`` where ``mask`` holds (the column's
    length where none)."""
    n = mask.shape[-1]
    hit = mask & (np.arange(n) >= np.ceil(lo - 0.5)[..., None])
    return np.where(hit.any(axis=-1), np.argmax(hit, axis=-1), n)


def _runs(mask: np.ndarray, length: int) -> np.ndarray:
    """``mask`` where it holds for ``length`` voxels from there on along the last axis (the column's
    end cuts a run short without ending it)."""
    out = mask.copy()
    for k in range(1, int(length)):
        out[..., :-k] &= mask[..., k:]
    return out


def _descent_start(g: np.ndarray, lo: np.ndarray, floor: float, dark: float) -> np.ndarray:
    """Per column (last axis), the first voxel ``>= lo`` of the run of voxels under ``floor`` that
    reaches under ``dark`` (the column's length where ``g`` never passes ``dark`` past ``lo``): a
    descent to a pore, not a dip under ``floor`` that comes back."""
    n = g.shape[-1]
    idx = np.arange(n)
    start = np.ceil(lo - 0.5)
    k = _first_voxel(g < dark, lo)
    held = (g >= floor) & (idx < k[..., None]) & (idx >= start[..., None])
    last = np.where(held.any(axis=-1), n - 1 - np.argmax(held[..., ::-1], axis=-1), start - 1)
    return np.where(k < n, np.maximum(last + 1, start), n).astype(np.int64)


def _outer_edge(img: np.ndarray, c0: int, c1: int, hn: np.ndarray, t: np.ndarray, hs: np.ndarray,
                sig: Sequence[float], dark: float, bright: float, t0: float, edge: Mapping[str, float],
                film: float, valid: np.ndarray | None = None,
                cols: slice = slice(None), hs_rise: np.ndarray | None = None,
                samples: dict[str, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per column of rows ``[c0, c1)`` and columns ``cols`` of ``img`` (stacking axis last, anode
    first; the other voxels are the lateral smoothing's context), the film's thickness from its
    outer edge: ``(falling, rising)``, NaN where that edge is not seen.

    The film ends at its first step out of its grey band, beyond the sodium surface: the band
    reaches ``bright`` (half-way to the fibres) above the film's level ``film`` and as far below
    it (never below ``dark``).  Falling where the grey value first leaves it downwards (a pore
    follows the film), rising where it first leaves it upwards (a fibre lies on the film): a later
    step (the pore -> fibre rise, the fibre -> pore fall) is never the film's end.  The edge is
    the steepest step of that sign within ``2 + t0 / 4`` voxels of the crossing estimate
    ``hn + t`` (``t0`` where none) and, falling, before the grey value has passed ``dark``;
    rising (a small step that noise moves; up to ``hs_rise`` where given, else ``hs``), within the step's own reach (``edge["rim_half_width_vox"]``
    plus its blur, ``edge["sigma_vox"]`` and the smoothing here) of where the grey value first
    passes ``bright`` and stays past it for the next voxel.  The side is the one the grey value
    leaves the band on first: down where it descends to ``dark`` without coming back into the band,
    up where it stays over ``bright`` for two voxels (the film's own noise leaves the band's narrow
    lower half and comes back).  It is kept where the grey value 1.5
    voxels beyond it is past that cut and, where the film is clear of the sodium edge's reach, 1.5
    voxels before it is within the band (a fibre -> pore fall, a rise out of a dim layer are not
    the film's); the rise is searched from ``edge["reach_vox"]`` beyond the
    sodium surface (clear of the sodium edge's own step).  The steepest step lies on the dark side of the boundary by the edge
    rims' ``edge["shift_vox"]`` (``valid``: the specimen voxels the lateral smoothing averages over; measured on the sodium surface,
    :func:`volrecon.segment.layers.edge_rim_shift`): it is moved that far towards the bright side.

    ``samples`` (a dict holding ``offsets``, filled when given): the grey values smoothed laterally
    only, across each edge found (:func:`_edge_samples`), for the film's own edge fit
    (:func:`_rises_refitted`).
    """
    gl = specimen_filter(img, valid, sig, region=(slice(c0, c1), cols, slice(None)))
    g = ndi.gaussian_filter1d(gl, 0.7, axis=-1, mode="nearest", truncate=_TRUNCATE)
    n = g.shape[-1]
    d = g[..., 1:] - g[..., :-1]  # step across boundary coordinate i + 1
    w = 2.0 + 0.25 * t0
    guess = hn + np.where(np.isfinite(t), t, t0)
    his = (np.minimum(guess + w, hs), np.minimum(guess + w, hs if hs_rise is None else hs_rise))
    b = np.arange(1, n)
    col = np.isfinite(hn) & (hs - hn > 1.0)
    # a step's own reach: its rims' half-width and its blur (the edge fit's and the 0.7 above)
    reach_rise = float(edge.get("rim_half_width_vox", 1.0)) + float(np.hypot(edge.get("sigma_vox", 1.0), 0.7))
    # the film's grey band: as far below the film's level as the fibre threshold lies above it
    band = (max(dark, 2.0 * film - bright), bright) if np.isfinite(bright) else (dark, bright)
    out = []
    for sign, start, cut, hi in ((-1, 0.5, dark, his[0]), (1, edge["reach_vox"], bright, his[1])):
        lo = np.maximum(hn + start, guess - w)
        # the first voxel beyond the film's band of either kind (a pore, a fibre), once past the
        # sodium (its edge's blur may still be dark at ``lo``; a thin film's blurred peak may
        # never reach the band)
        entered = _first_voxel(g >= dark, lo).astype(np.float64) + 0.5
        # which side the film leaves its band on first.  Down: a descent that reaches ``dark`` (a
        # pore); up: a lasting rise (a fibre).  A thick film's own noise dips out of the band's
        # narrow lower half for a voxel or two and back, and spikes over it for one (on the
        # carbonate phantom those decided the side in a fifth of the fibre columns, whose fibre ->
        # pore fall beyond the mat then passed for the film's end)
        below, above = _descent_start(g, entered, band[0], dark), _first_voxel(_runs(g > band[1], 2), entered)
        side = below < above if sign < 0 else above < below
        # the step ends where it has passed its cut (half-way to the fibres; for a pore, the
        # sodium/film midpoint, well into the step out of the band)
        past = sign * (g - cut) > 0
        if sign > 0:
            # the fibre's small step: its first lasting crossing (a noise spike is one voxel), and
            # the steepest step within the step's own reach of it on both sides (a window reaching
            # far onto the film lets the film's noise steps win; one ending at the crossing, which
            # the rims pull towards the film, cuts the step off: both drew the edge onto the film)
            past = _runs(past, 2)
        end = _first_voxel(past, entered)
        win = (lo, np.minimum(hi, end)) if sign < 0 else (np.maximum(lo, end - reach_rise),
                                                          np.minimum(hi, end + reach_rise))
        sd = np.where((b >= win[0][..., None]) & (b <= win[1][..., None]), sign * d, -np.inf)
        pos, _ = steepest_step(sd, sign * d)
        beyond = sample_columns(gl, (pos + 1.5)[..., None])[..., 0]
        # and the step starts from the film: a fibre -> pore fall, a rise out of a dim mixed layer
        # (pore and fibre averaged laterally) onto the cathode are another layer's edges.  Read
        # where the film is clear of the sodium edge's own step (a thin film's blurred peak is
        # never in its band)
        before = sample_columns(g, (pos - 1.5)[..., None])[..., 0]
        on_film = ((before >= band[0]) & (before <= band[1])) | (pos - 1.5 < hn + edge["reach_vox"])
        ok = col & np.isfinite(sd.max(axis=-1)) & side & (end <= hi + 1.5) & (sign * (beyond - cut) > 0) & on_film
        out.append(np.where(ok, pos + sign * edge["shift_vox"] - hn, np.nan))
    del g
    if samples is not None:
        samples.update(_edge_samples(gl, hn + out[0] + edge["shift_vox"], hn + out[1], samples["offsets"]))
    return out[0], out[1]


RISE_FIT_HALF = 4
"""Voxels on each side of a rise's first estimate that :func:`_rises_refitted` reads."""


@dataclass
class _EdgeSamples:
    """The grey across the film's edges, gathered block by block (:func:`_edge_samples`): the falls'
    profiles at ``offsets`` of the columns ``take`` (evenly spread, at most about
    :data:`_FILM_FIT_COLUMNS`), each column's rise window (:data:`RISE_FIT_HALF` voxels each side, NaN
    where no rise) and its first voxel index."""

    offsets: np.ndarray
    take: np.ndarray
    falls: list[np.ndarray]
    rise: np.ndarray
    rise_start: np.ndarray

    @classmethod
    def empty(cls, shape: tuple[int, ...], offsets: np.ndarray) -> "_EdgeSamples":
        every = max(1, int(np.ceil(np.prod(shape) / _FILM_FIT_COLUMNS)))
        take = (np.arange(int(np.prod(shape))).reshape(shape) % every) == 0
        return cls(offsets, take, [], np.full((*shape, 2 * RISE_FIT_HALF + 1), np.nan, np.float32),
                   np.zeros(shape, np.int64))

    def put(self, rs: slice, cs: slice, got: Mapping[str, np.ndarray]) -> None:
        """Store one block's samples (rows ``rs``, columns ``cs``)."""
        self.falls.append(got["fall"][self.take[rs, cs]])
        self.rise[rs, cs], self.rise_start[rs, cs] = got["rise"], got["rise_start"]

    def samples(self) -> dict[str, np.ndarray]:
        """The mapping :func:`_rises_refitted` reads."""
        falls = np.concatenate(self.falls) if self.falls else np.zeros((0, self.offsets.size), np.float32)
        return {"offsets": self.offsets, "fall": falls, "rise": self.rise, "rise_start": self.rise_start}


def _edge_samples(gl: np.ndarray, fall: np.ndarray, rise: np.ndarray, offs: np.ndarray) -> dict[str, np.ndarray]:
    """Per column (stacking axis last) the grey ``gl`` across the film's falling edge, dark side
    first (at the boundary coordinates ``fall - offs``, NaN where no fall; ``fall`` its steepest
    step), and around its rise (the voxels within :data:`RISE_FIT_HALF` of the voxel holding
    ``rise``, its first estimate, NaN where none), with the rise window's first voxel index
    (``rise_start``)."""
    has = np.isfinite(fall)
    f = sample_columns(gl, np.where(has, fall, 0.0)[..., None] - offs).astype(np.float32)
    f[~has] = np.nan
    start = np.floor(np.nan_to_num(rise, nan=0.0)).astype(np.int64) - RISE_FIT_HALF
    at = np.clip(start[..., None] + np.arange(2 * RISE_FIT_HALF + 1), 0, gl.shape[-1] - 1)
    r = np.take_along_axis(gl, at, axis=-1).astype(np.float32)
    r[~np.isfinite(rise)] = np.nan
    return {"fall": f, "rise": r, "rise_start": start}


RISE_FIT_REACH = 2.0
"""How far (voxels) :func:`_rises_refitted` may move a rise from its first estimate."""


def _rises_refitted(rise: np.ndarray, samples: Mapping[str, np.ndarray], hn: np.ndarray, hs: np.ndarray,
                    levels: tuple[float, float], edge: Mapping[str, float]) -> tuple[np.ndarray, dict[str, Any]]:
    """The film's rises onto the fibres lying on it, each placed by a fit of the film's own edge.

    A fibre lying on the film is a small step up (film -> fibre) in the noise: its steepest grey step
    is a noisy place, and the edge rims that move it are not the sodium edge's (edge brightening
    depends on the materials on both sides, and the fibre's walls meeting the film light it too).
    The film's outer edge where a pore follows it is the same surface, its step large and sharp: its
    blur and rims are fitted on the falls' median profile (``samples["fall"]`` at
    ``samples["offsets"]``, :func:`volrecon.segment.layers.edge_rim_shift`).  Each rise column's grey
    (``samples["rise"]``, voxels from ``samples["rise_start"]``; read from ``edge["reach_vox"]`` past
    the sodium surface ``hn`` to the separator|cathode boundary ``hs``) is then fitted by that
    blurred step with rims from the film's level (read under the fibres, on the windows' first
    voxel, clear of the step's blur and rims; the reference ``levels[0]``, read near the sodium,
    where none is seen) to the fibres' (``levels[1]``), its place within
    :data:`RISE_FIT_REACH` of the first estimate ``hn + rise`` (:func:`_best_steps`).  Only where
    the separator|cathode boundary ``hs`` lies past the window's fibre half and the reach of the
    fibre's far edge (the falls' rim half-width plus three blur sigmas): in a thinner mat a fibre
    lying on the film is a sliver of one (a bump, not a step onto the fibres' level) or the film rises
    onto a particle.  Kept where two voxels or more are read on each side of the fitted place and it
    is not at the end of its range.

    Returns the thicknesses (``rise`` where the fit is not kept, or every column without an
    accepted fall fit) and what was fitted (with the falls' own rim shift, ``shift_vox``).
    """
    falls = samples["fall"][np.isfinite(samples["fall"]).all(axis=-1)]
    if falls.shape[0] < 10:
        return rise, {"skipped": f"{falls.shape[0]} falling edges (under 10): the film's own rims are not measured"}
    _, fit = edge_rim_shift(samples["offsets"], np.median(falls, axis=0), float(edge.get("rim_half_width_vox", 1.0)))
    if not fit.get("accepted"):
        return rise, {"skipped": "the falls' rim fit was rejected", "fit": fit}
    centre = hn + rise
    # the model is a step onto a fibre's plateau: the window's fibre half and, beyond it, the reach of
    # the fibre's far edge (its rims and blur) lie in the separator.  In a thinner mat the fibre is cut
    # by the film and the cathode: a sliver of it (a bump, not a step) or a particle lies on the film
    fibre_vox = RISE_FIT_HALF + float(fit["rim_half_width_vox"]) + 3.0 * float(fit["sigma_vox"])
    has = np.isfinite(rise) & (hs - centre >= fibre_vox)
    centre = np.where(has, centre, 0.0)
    x = samples["rise_start"][..., None] + np.arange(2 * RISE_FIT_HALF + 1) + 0.5
    prof = samples["rise"]
    use = has[..., None] & np.isfinite(prof) & (x > (hn + edge["reach_vox"])[..., None]) & (x < hs[..., None])
    info: dict[str, Any] = {"sigma_vox": float(fit["sigma_vox"]), "rim_ratio": float(fit["rim_ratio"]),
                            "shift_vox": float(fit["shift_vox"]), "falls": int(falls.shape[0]), "columns": 0}
    if not has.any() or not np.isfinite(levels[1]):
        return rise, info
    # the film's level under the fibres, clear of the rise's blur and rims (the window's first voxel)
    film = float(np.median(prof[..., 0][use[..., 0]])) if use[..., 0].any() else levels[0]
    # the fitted columns alone (about the separator's fibre share of them)
    x, use, centre, n = x[has], use[has], centre[has], int(has.sum())
    local = {"film": np.full(n, film), "fibre": np.full(n, levels[1])}
    rim = (float(fit["sigma_vox"]), float(fit["rim_half_width_vox"]), float(fit["rim_ratio"]))
    [(c, _)] = _best_steps(np.nan_to_num(prof[has]), x, use, centre, local, rim, RISE_FIT_REACH,
                           pairs=(("film", "fibre"),))
    above = (use & (x < c[..., None])).sum(axis=-1)
    below = (use & (x > c[..., None])).sum(axis=-1)
    pinned = np.abs(c - centre) > RISE_FIT_REACH - 0.5 / CONTACT_STEPS_PER_VOX
    ok = np.zeros(has.shape, bool)
    ok[has] = (above >= 2) & (below >= 2) & ~pinned
    out = rise.copy()
    out[ok] = c[ok[has]] - hn[ok]
    info.update({"film_level": film, "fibre_level": float(levels[1]), "columns": int(ok.sum()),
                 "mean_move_vox": float((out - rise)[ok].mean()) if ok.any() else 0.0})
    return out, info


FLANK_SIGMAS = 2.0
"""Falling edges within this many :data:`EDGE_LATERAL_NM` of a column without one are not the film's
(:func:`_off_fibre_flanks`)."""


def _off_fibre_flanks(t_fall: np.ndarray, cols: np.ndarray, lat_nm: Sequence[float]) -> np.ndarray:
    """``t_fall`` without the falling edges on the flank of a fibre lying on a thin film.

    Beside a fibre that lies on the film the pore begins beyond the fibre's rounded flank: the
    column falls from the fibre's grey (spread into it by the probe and by the edge's lateral
    average, Gaussian :data:`EDGE_LATERAL_NM`) to the pore, a voxel or more past the film's own
    edge, and its grey never reaches the fibre threshold that would mark it.  Those edges are the
    ones next to the fibre's columns, which show no falling edge at all: the falls within
    :data:`FLANK_SIGMAS` lateral sigmas of a column (of ``cols``) without one are left out (all
    are kept where that would leave none).
    """
    have = np.isfinite(t_fall)
    bare = cols & ~have
    if not bare.any():
        return t_fall
    near = ndi.distance_transform_edt(~bare, sampling=lat_nm) <= FLANK_SIGMAS * EDGE_LATERAL_NM
    keep = have & ~near
    return np.where(keep, t_fall, np.nan) if keep.any() else t_fall


def _fill_thickness(t: np.ndarray, scale: Sequence[float]) -> np.ndarray:
    """``t`` (NaN where not measured) with every gap filled by the Gaussian-weighted mean of the
    measured columns around it, at the smallest of ``scale`` x 1, 2, 4 … that reaches it."""
    out = np.array(t, dtype=np.float64)
    have = np.isfinite(t)
    val = np.where(have, t, 0.0)
    k = 1.0
    while not np.isfinite(out).all() and k <= 64:
        s = [k * v for v in scale]
        wsum = ndi.gaussian_filter(have.astype(np.float64), s, mode="nearest", truncate=_TRUNCATE)
        vsum = ndi.gaussian_filter(val, s, mode="nearest", truncate=_TRUNCATE)
        fill = wsum > 1e-3
        out = np.where(np.isfinite(out), out, np.where(fill, vsum / np.maximum(wsum, 1e-12), np.nan))
        k *= 2
    return out



RESOLVED_VOX = 2.0
"""Least reference thickness (voxels along the stacking axis) of a resolved film: a thinner film is
one blurred bump (its level, rims and thickness trade off), its thickness uncertain by about a voxel."""

FILM_FIT_BINS = 6
"""Most first-pass thickness bins the film's own edge fit is averaged in (:func:`_film_own_edges`)."""

FILM_FIT_BIN_COLUMNS = 150
"""Least columns per thickness bin of :func:`_film_own_edges`."""


def _film_model(x: np.ndarray, theta: Sequence[float], a: float, b: float, s2: float, w: float) -> np.ndarray:
    """The grey profile at ``x`` (voxels from the first sodium surface) of a film from ``a`` to
    ``a + b``.

    ``theta = (sodium, film, beyond, sigma, r1, r2)``: the three levels, the sodium edge's blur,
    and the rim heights of the sodium edge and the outer edge relative to their steps; ``s2``: the
    outer edge's blur.  Each boundary carries a rim of half-width ``w`` on each side (the model of
    :func:`volrecon.segment.layers.edge_rim_shift`, for two edges)."""
    from scipy.special import ndtr

    p, f, q, s, r1, r2 = theta
    ua, ub = (x - a) / s, (x - a - b) / s2
    return (p + (f - p) * ndtr(ua) + (q - f) * ndtr(ub) + r1 * abs(f - p) * (ndtr(ua + w / s) - ndtr(ua - w / s))
            + r2 * abs(f - q) * (ndtr(ub + w / s2) - ndtr(ub - w / s2)))


def _film_rim_fit(x: np.ndarray, profiles: Sequence[np.ndarray], t_bin: Sequence[float], counts: Sequence[int],
                  w: float, s0: float) -> dict[str, Any]:
    """The thin film's own edges, fitted jointly on the median profiles of thickness bins.

    ``profiles[k]``: the median grey profile at ``x`` (voxels from the sodium surface) of the
    columns of bin ``k`` (a pore beyond the film, first-pass thickness about ``t_bin[k]``; NaN
    beyond the bin's reach).  The bins share the levels, both edges' blurs and both edges' rim
    heights relative to their steps (:func:`_film_model`); each bin has its own sodium boundary
    ``a`` and thickness ``b``.  A median over columns of different thicknesses is a smeared bump,
    not a film: the bins keep each profile close to a film of one thickness, and their differing
    thicknesses separate the film's level from its rims.  Returns the fit; ``"accepted"`` is False
    when it misfits by :data:`RIM_MAX_RMS` of the film's smaller step or more, pins a parameter to its
    bounds or finds no film brighter than both sides.
    """
    from scipy.optimize import least_squares

    nb = len(profiles)
    y0 = float(np.nanmedian([pr[0] for pr in profiles]))
    scale = float(np.nanmax([np.nanmax(pr) for pr in profiles]) - np.nanmin([np.nanmin(pr) for pr in profiles])) or 1.0
    ys = [(np.asarray(pr, float) - y0) / scale for pr in profiles]
    keep = [np.isfinite(yk) for yk in ys]
    wts = np.sqrt(np.asarray(counts, float) / float(np.sum(counts)))
    far = float(np.median([np.median(yk[kk][-4:]) for yk, kk in zip(ys, keep)]))

    def resid(p: np.ndarray) -> np.ndarray:
        return np.concatenate([wts[k] * (_film_model(x[keep[k]], p[:6], p[7 + 2 * k], p[8 + 2 * k], p[6], w)
                                         - ys[k][keep[k]]) for k in range(nb)])

    s_0 = max(0.4, min(2.5, s0))
    lower = [-1.0, -1.0, -3.0, 0.3, 0.0, 0.0, 0.3]
    upper = [1.0, 3.0, 3.0, 3.0, 3.0, 3.0, 4.0]
    p0 = [0.0, 1.0, far, s_0, 0.2, 0.2, s_0]
    for tk in t_bin:
        lower += [-2.0, 0.2]
        upper += [2.0, max(2.0, 3.0 * float(tk) + 2.0)]
        p0 += [0.0, max(0.5, float(tk))]
    best = least_squares(resid, np.array(p0), bounds=(lower, upper))
    p = best.x
    rms = float(np.sqrt(np.sum(best.fun ** 2) / max(1.0, float(np.mean([kk.sum() for kk in keep])))))
    free = np.ones(p.size, bool)
    free[4:6] = False  # rims may be 0
    pinned = bool(np.any(np.isclose(p, lower, atol=1e-3) & free) or np.any(np.isclose(p, upper, atol=1e-3)))
    step = min(abs(p[1] - p[0]), abs(p[1] - p[2])) or 1e-9
    out = {"levels": [float(v * scale + y0) for v in p[:3]], "sigma_vox": float(p[3]), "outer_sigma_vox": float(p[6]),
           "rim_ratio": float(p[4]), "outer_rim_ratio": float(p[5]), "shift_vox": [float(v) for v in p[7::2]],
           "thickness_vox": [float(v) for v in p[8::2]], "bin_thickness_vox": [float(v) for v in t_bin],
           "bin_columns": [int(c) for c in counts], "rms": rms / step}
    dense = bool(p[1] > p[0] and p[1] > p[2])
    out["accepted"] = bool(best.success and out["rms"] < RIM_MAX_RMS and not pinned and dense)
    if not out["accepted"]:
        out["reason"] = (f"film fit rejected (misfit {out['rms']:.3f} of the step, pinned {pinned}, film brighter "
                         f"than both sides: {dense})")
    return out


def _thickness_bins(t: np.ndarray, nbins: int) -> list[np.ndarray]:
    """Masks of ``t``'s values split into up to ``nbins`` bins of equal count (merged where the
    quantiles coincide)."""
    edges = np.unique(np.quantile(t, np.linspace(0.0, 1.0, nbins + 1)))
    if edges.size < 2:
        return [np.ones(t.shape, bool)]
    idx = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, edges.size - 2)
    return [idx == k for k in range(edges.size - 1) if (idx == k).any()]


def _film_own_edges(prof: np.ndarray, x: np.ndarray, t: np.ndarray, fit: Mapping[str, Any],
                    step_nm: float) -> dict[str, Any]:
    """The thin film's own edge fit (:func:`_film_rim_fit`) on the profiles ``prof`` (columns x
    offsets ``x`` from the sodium surface) of the columns with a pore beyond the film and
    first-pass thickness ``t``, in up to :data:`FILM_FIT_BINS` bins of that thickness of at least
    :data:`FILM_FIT_BIN_COLUMNS` columns; ``fit``: the sodium edge's rim model (the rims'
    half-width, the start of the blur).  Each bin's median profile is cut
    :func:`volrecon.segment.layers.rim_offsets` beyond its film."""
    if t.size < 2 * FILM_FIT_BIN_COLUMNS:
        return {"accepted": False, "reason": f"too few columns with a pore beyond the film ({t.size})"}
    reach = float(rim_offsets(step_nm)[-1])
    masks = _thickness_bins(t, int(min(FILM_FIT_BINS, t.size // FILM_FIT_BIN_COLUMNS)))
    t_bin = [float(np.median(t[m])) for m in masks]
    profiles = [np.where(x <= tk + reach, np.median(prof[m], axis=0), np.nan) for m, tk in zip(masks, t_bin)]
    w = float(fit.get("rim_half_width_vox", rim_half_width_vox(EDGE_RIM_NM, step_nm)))
    return _film_rim_fit(x, profiles, t_bin, [int(m.sum()) for m in masks], w, float(fit.get("sigma_vox", 1.0)))


def _thin_film_rims(image: Any, layers: Layers, fit: Mapping[str, Any], t0: float, vox: Sequence[float],
                    info: dict[str, Any]) -> tuple[Layers, dict[str, Any], bool]:
    """The sodium edge's rim model, taken from a thick edge of the stack when the film is thin.

    The rim fit on the sodium surface (:func:`volrecon.segment.layers.edge_rim_shift`) spans
    :func:`volrecon.segment.layers.rim_offsets` beyond the steepest step; a film of ``t0`` voxels
    whose far edge (blurred, with its own rims) reaches into that profile puts a second step in
    it, falling where a pore lies beyond the film and rising on a fibre, and the fitted shift then
    follows the pore share instead of the rims.  For such a film the rims and the blur are
    measured on an edge with thick layers on both sides
    (:func:`volrecon.segment.layers.reference_rim_fit`) and the sodium surface is moved by the
    difference in shift; without an accepted reference the sodium edge keeps its own fit (noted in
    ``info["rim_source"]``).  These rims are a first pass: edge brightening depends on the
    materials on each side of an edge, and :func:`sei_outer_surface` then fits the film's own
    (``info["thin_film"]`` says whether the film is thin).  Returns ``(layers, fit, moved)``.
    """
    ax = layers.axis
    step = float(vox[ax])
    w = float(fit.get("rim_half_width_vox", rim_half_width_vox(EDGE_RIM_NM, step)))
    sigma = float(fit.get("sigma_vox", 1.0))
    reach = float(rim_offsets(step)[-1]) + w + 3.0 * sigma
    info["thin_film"] = bool(t0 < reach)
    if not t0 < reach:
        info["rim_source"] = "sodium|sei"
        return layers, dict(fit), False
    name, ref_fit = reference_rim_fit(image, layers, voxel_size_nm=vox, rim_nm=w * step)
    if name is None:
        info["rim_source"] = "sodium|sei (thin film, no thick edge to measure the rims on: uncertain)"
        return layers, dict(fit), False
    sign = float(fit.get("step_sign", 1.0))
    old = float(fit.get("shift_vox", 0.0)) if fit.get("accepted") else 0.0
    new_fit = {**ref_fit, "step_sign": sign}
    moved = move_interface(layers, "sodium|sei", float(ref_fit["shift_vox"]) - old, sign)
    note = (f"sodium|sei: the film ({t0:.1f} voxels) lies within the sodium edge's rim profile; rims measured on "
            f"{name} instead (shift {old:+.2f} -> {ref_fit['shift_vox']:+.2f} voxels)")
    info["rim_source"] = name
    out = replace(moved, edges={**moved.edges, "sodium|sei": new_fit}, notes=list(moved.notes) + [note])
    return out, new_fit, True


def _read_depth(h_top: np.ndarray, past: float, full: int) -> int:
    """Voxels of the anode band (of ``full``) a slab's grey values are read to: ``past`` beyond the
    deepest sodium surface ``h_top`` of its specimen columns (band coordinates), the whole band
    where it has none (:func:`sei_outer_surface`)."""
    return full if h_top.size == 0 else min(full, int(np.ceil(h_top.max() + past)))


def rise_averaging_nm(ref: Mapping[str, float], reg_nm: float) -> float:
    """Lateral Gaussian sigma (nm) over which the thickness of a column measured on a film -> fibre
    rise is averaged (:func:`sei_outer_surface`).

    A step's located position has an error of about the noise over the step's height, and the
    noise of a lateral average falls as its sigma: the falling edge (film -> pore, height
    ``F - P``) is located on grey values averaged over :data:`EDGE_LATERAL_NM`, so a rise (film ->
    fibre, height ``B - F``, levels ``ref["sei_level"]``, ``ref["pore_level"]``,
    ``ref["fibre_level"]``) needs ``r = (F - P) / (B - F)`` times that sigma for the same
    precision: a further ``EDGE_LATERAL_NM * sqrt(r^2 - 1)``.  The film's own thickness varies
    laterally, and the thickness map is taken as one neighbourhood over ``reg_nm`` (the local
    median's half-width): the average is kept within it (at most ``reg_nm / 3``, the Gaussian
    truncated at 3 sigma), which also holds when a level is missing.
    """
    cap = float(reg_nm) / _TRUNCATE
    f, p, b = (float(ref.get(k, np.nan)) for k in ("sei_level", "pore_level", "fibre_level"))
    if not (b > f > p):
        return cap
    r = (f - p) / (b - f)
    return float(min(cap, EDGE_LATERAL_NM * math.sqrt(max(r * r - 1.0, 0.0))))


def sei_outer_surface(
    image: Any, layers: Layers, *, voxel_size_nm: Sequence[float], lateral_nm: float = 60.0,
    min_contrast: float = 2.0, max_ratio: float = 2.5, reg_nm: float = 100.0,
    slab_voxels: int = _SLAB_VOXELS, reference_voxels: int = _REFERENCE_VOXELS,
    min_edge_share: float = MIN_EDGE_SHARE, own_edges: bool = False, phases: Any = None,
    frame_value: int | None = None, thickness_nm: float | None = None,
) -> tuple[Layers, dict[str, Any]]:
    """The SEI's outer surface (``sei|separator``) from the grey values beyond the sodium surface.

    The SEI is a thin dense film of one grey level hugging the sodium surface; beyond it the
    separator is porous (pores darker than the film) with fibres brighter than it.  Per voxel,
    "non-film" is darker than the sodium/film midpoint or brighter than the film/fibre midpoint;
    its share, laterally averaged over ``lateral_nm``, is sampled along each column from the
    (refined) sodium surface.  The medians over the columns of a reference block (a central block
    of rows of the first lateral axis, ``reference_voxels`` of the anode band; the whole volume
    when smaller) give the film's and the separator's levels and a reference thickness ``t0``;
    per column the outer surface is the first crossing of their midpoint within
    ``max_ratio * t0 + 2`` voxels of the sodium surface (sub-voxel).  That crossing is only a
    guide: edge brightening and blur move it outwards.  The film's outer edge is then located on
    the grey values themselves (:func:`_outer_edge`): the film's first step out of its grey band
    near the guide, falling where a pore follows the film (and, for a film thick enough to keep it
    clear of the sodium edge, the faint rise where a fibre lies on it; never a later pore -> fibre
    rise or fibre -> pore fall), moved by the edge-rim shift measured
    on the sodium surface (``layers.edges["sodium|sei"]``, from
    :func:`volrecon.segment.layers.refine_interface` with ``rim=True``); where the film is thick
    enough for its rises to be read, its edges take its own rims instead, fitted on its falls, and
    each rise onto a fibre is placed by a fit of that blurred step (:func:`_rises_refitted`,
    ``info["rise_fit"]``; it keeps a window of 9 grey values per column).  When at least
    ``min_edge_share`` of the columns show that edge, a column's thickness is its edge where it
    shows one, else its own crossing less the median crossing - edge offset of the columns that
    show both (``info["crossing_bias_vox"]``), else it is filled from the columns around
    (Gaussian-weighted over ``reg_nm``, widened until it reaches them).  A film too thin for its
    rise onto a fibre to be read (the falling edges' median within the sodium edge's reach plus a
    voxel) but resolved (that median at least :data:`RESOLVED_VOX`) takes no crossings: that offset is the pore's, and a crossing onto a fibre is moved by
    the small film -> fibre step's own blur and rims (on the diglyme phantom, seeds 0 / 1, the
    pore's offset read the fibre columns 0.40 voxels thin / 0.56 thick; calibrated instead on the
    falling edges around them, their crossings' scatter left the map's mean error as it was and
    raised the mean absolute error by a third).  The columns without a falling edge, and those on
    a fibre's flank (:func:`_off_fibre_flanks`), are filled from the falling edges around; they
    are not measured (``info["measured_share"]``), and ``info["crossing_bias_vox"]`` is NaN (no
    crossing is used; 0 where the crossings stand alone, fewer than ``min_edge_share`` edges).
    The thickness map (not the height) is then regularised: columns without a value, or further than
    ``max(1.5 voxels, 50 %)`` from the local median thickness (window ``reg_nm``), are not measured
    and take that local median; the map is then median-filtered (3 x 3), and the columns not
    measured on a falling edge take its lateral average (Gaussian, ``thickness_nm``; 0: none; None:
    :func:`rise_averaging_nm`): a rise onto a fibre or a crossing is a small step in noise (a
    falling edge is sharp, and measured against the column's own sodium surface).  A thin film (one that lies within the sodium edge's rim profile,
    whose rims were taken from a thick edge by :func:`_thin_film_rims`) then gets its own edges:
    edge brightening depends on the materials on each side of an edge, so the thick edge's rims
    are only a first pass.  The grey profiles of the columns with a pore beyond a resolved film are
    grouped by first-pass thickness and fitted with a two-edge film model sharing the levels,
    blurs and rims (:func:`_film_own_edges`); the bins' mean offsets move the sodium surface and
    the thickness of every column.  ``info["film_fit"]`` holds that fit and ``info["rim_source"]``
    says whose rims were used (the thick edge's when the film's own fit is rejected, with why).
    ``info["measured_share"]`` is the share of columns measured;
    ``info["resolved"]`` is False (and a note says so) when ``t0`` is under :data:`RESOLVED_VOX`
    (and a thin film's own edges are then not fitted).

    The layers' ``separator|cathode`` cut (a smooth coarse surface) bounds the film's rise onto a
    particle only loosely: it is looked for up to the edge window (``2 + t0 / 4`` voxels) beyond
    it, and where the film ends beyond the cut (a film grown through a thin separator into the
    cathode) ``separator|cathode`` is moved to the film's end (``info["into_cathode_share"]``: the
    share of columns).

    The SEI is accepted only when it is brighter than the sodium, dense (dark share at most
    :data:`DENSE_SHARE`) and distinct from the layer beyond it (its non-film share at least
    :data:`MIN_SHARE_RISE` lower); else ``sei|separator`` stays at the sodium surface
    and ``info["found"]`` is False.

    ``phases`` and ``frame_value`` (optional, the volume's first-guess phases with the frame
    labelled ``frame_value`` and the walls' rim shell 0, as :func:`sodium_surface` takes them): every
    lateral average is taken over the specimen alone (:func:`specimen_filter`), the reference
    statistics use columns of specimen only, and the columns of the frame and of the shell take the
    thickness of the specimen columns around them.

    Only the anode band (from the sodium surface to ``separator|cathode``) is read, in slabs of
    about ``slab_voxels`` along the first lateral axis with enough overlap for the filters, each
    filtered a block of columns at a time (about ``slab_voxels`` again with the filters' context
    columns): the result does not depend on ``slab_voxels`` (bit for bit), and memory is bounded
    by it and by ``reference_voxels``, not by the volume (a slab holds at least
    ``_MIN_CORE_PER_PAD`` overlaps of rows whatever ``slab_voxels``: its grey values and specimen
    mask, as read, span that many rows of all the columns; the filters' float working arrays span
    a block).  The reference block reads the whole band (the
    separator's levels come from its far half); the slabs read their grey values only as far
    beyond their columns' sodium surface as the crossing and the edges look (``max_ratio * t0 + 2``
    voxels, the windows' and the filters' reach beyond), not through the separator (their specimen
    mask, one byte a voxel, still spans the band: a column is specimen up to ``separator|cathode``).

    ``own_edges`` (off by default) turns on the thin film's own edge fit described above: exact
    on synthetic films whatever the thick edge's rims, but on the real-corrected diglyme phantom
    (24x192x192) it thickens the film by about 0.05 voxel more and lowers the SEI's Dice from
    0.860 to 0.831, and at 5 nm pixels it still follows the collector's rim (+1.06 voxel), so it
    is not yet trusted as the default.

    Returns
    -------
    (Layers, dict)
        Layers with ``sei|separator`` set (and ``separator|cathode`` where the film reaches past
        it) and ``present["sei"]`` updated, and what was measured.
    """
    h_na = layers.heights.get("sodium|sei")
    h_sc = layers.heights.get("separator|cathode")
    info: dict[str, Any] = {"found": False}
    if h_na is None:
        info["reason"] = "no sodium surface"
        return layers, info
    ax, n = layers.axis, layers.length
    vox = [float(v) for v in voxel_size_nm]
    hn = _anode_first(h_na, layers)
    hs = np.full(hn.shape, float(n)) if h_sc is None else _anode_first(h_sc, layers)
    lat = [a for a in range(3) if a != ax]
    sig = [lateral_nm / vox[a] for a in lat] + [0.5]
    # the band: from 3 voxels before the sodium surface (and the filters' reach) to separator|cathode
    reach_ax = gaussian_reach(1.0) + gaussian_reach(0.5) + 1
    lo = int(max(0, np.floor(np.nanmin(hn)) - 4 - reach_ax)) if np.isfinite(hn).any() else 0
    band = _Band(ax, n, layers.anode_first, lo, int(min(n, np.ceil(np.nanmax(hs)) + 1 + reach_ax)))
    hn_b, hs_b = hn - lo, hs - lo
    rows, row_vox = hn.shape[0], hn.shape[1] * (band.hi - band.lo)
    # 1. reference levels from a central block of rows
    k = max(1, min(rows, int(reference_voxels) // max(1, row_vox)))
    r0 = (rows - k) // 2
    # with the filters' context rows on each side: the block's levels are the whole volume's there
    ref_pad = gaussian_reach(1.0) + gaussian_reach(sig[0])
    q0, q1 = max(0, r0 - ref_pad), min(rows, r0 + k + ref_pad)
    ref_block = band.read(image, q0, q1)
    ref_valid = _valid_block(phases, band, q0, q1, frame_value)
    ref = _sei_reference(ref_block, hn_b[q0:q1], hs_b[q0:q1], sig, core=(r0 - q0, r0 + k - q0), valid=ref_valid)
    info["reference_rows"] = [r0, r0 + k]
    fit = dict(layers.edges.get("sodium|sei", {}))
    if "reason" not in ref:
        layers, fit, moved = _thin_film_rims(image, layers, fit, ref["t0"], vox, info)
        if moved:
            hn = _anode_first(layers.heights["sodium|sei"], layers)
            hn_b = hn - lo
            ref = _sei_reference(ref_block, hn_b[q0:q1], hs_b[q0:q1], sig, core=(r0 - q0, r0 + k - q0),
                                 valid=ref_valid)
    del ref_block, ref_valid
    info.update({key: v for key, v in ref.items() if key not in ("reason", "contrast", "t0")})
    if "reason" in ref:
        info["reason"] = ref["reason"]
        return layers, info
    t0, thr = ref["t0"], ref["threshold"]
    # 2. per column: the first dense -> porous crossing within a bounded window beyond the sodium
    #    surface (a fibre or a dense patch of separator on the film does not carry the film on)
    reach = float(max_ratio * t0 + 2.0)
    t_raw = np.full(hn.shape, np.nan)
    t_fall, t_rise = np.full(hn.shape, np.nan), np.full(hn.shape, np.nan)
    # the sodium edge's step reaches its rim's half-width and 3 blur sigmas beyond the surface
    edge = {"shift_vox": float(fit.get("shift_vox", 0.0)),
            "reach_vox": float(fit.get("rim_half_width_vox", 1.0)) + 3.0 * float(fit.get("sigma_vox", 1.0)),
            "rim_half_width_vox": float(fit.get("rim_half_width_vox", 1.0)), "sigma_vox": float(fit.get("sigma_vox", 1.0)),
            "rim_ratio": float(fit.get("rim_ratio", 0.0))}
    sig_edge = [EDGE_LATERAL_NM / vox[a] for a in lat] + [0.0]
    pad = max(gaussian_reach(1.0) + gaussian_reach(sig[0]), gaussian_reach(sig_edge[0]))
    pad_c = max(gaussian_reach(1.0) + gaussian_reach(sig[1]), gaussian_reach(sig_edge[1]))
    cols = np.isfinite(hn) & (hs - hn > 1.0)
    # a thin film's own edges are fitted on the grey profiles of a sample of its columns
    thin = bool(info.get("thin_film"))
    sampled = cols & ((np.arange(hn.size).reshape(hn.shape) % max(1, int(np.ceil(hn.size / _FILM_FIT_COLUMNS)))) == 0)
    sampled &= thin and own_edges
    x_prof = np.arange(-float(rim_offsets(vox[ax])[-1]), reach + float(rim_offsets(vox[ax])[-1]) + 0.01, 0.25)
    pieces = [np.zeros((0, x_prof.size), np.float32)]
    specimen = np.ones(hn.shape, bool)
    # what the film's crossing and edges read lies within `past` voxels beyond the sodium surface (the
    # windows above, the profiles of a thin film's fit, the filters' reach along the axis): a slab's grey
    # values are read that far beyond its specimen columns' sodium surface, not through the whole
    # separator (the other columns' values are dropped below)
    past = reach + 0.25 * t0 + float(rim_offsets(vox[ax])[-1]) + 2.0 * reach_ax + 4.0
    # the layers' separator|cathode cut is a smooth coarse surface: where the film grows into the
    # cathode (no separator left between) it lies inside the film.  The film's rise onto a particle
    # is looked for up to its edge window (2 + t0 / 4 voxels, :func:`_outer_edge`) beyond that cut,
    # and the cathode then starts where the film ends.  Not a fall: beyond the cut a dark voxel is
    # as likely the cathode's own pore or binder under a dim fibre mat read as film (a thick film on
    # a 4-voxel separator over binder: 7 % of the columns moved the cathode)
    beyond_cut = 2.0 + 0.25 * t0
    band = replace(band, hi=int(min(n, band.hi + np.ceil(beyond_cut))))
    hs_f = np.minimum(hs_b + beyond_cut, band.hi - band.lo - 1 - reach_ax)
    # the grey across the edges found, for the film's own edge fit of its rises (_rises_refitted): the
    # falls' profiles of an evenly spread sample of columns, each rise column's window
    edges = _EdgeSamples.empty(hn.shape, rim_offsets(vox[ax]))
    for a0, a1, p0, p1 in released_slabs(_slabs(rows, row_vox, pad, slab_voxels)):
        valid = _valid_block(phases, band, p0, p1, frame_value)
        specimen[a0:a1] = _specimen_columns(None if valid is None else valid[a0 - p0:a1 - p0], hn_b[a0:a1], hs_b[a0:a1])
        depth = _read_depth(hn_b[a0:a1][specimen[a0:a1] & np.isfinite(hn_b[a0:a1])], past, band.hi - band.lo)
        img = replace(band, hi=band.lo + depth).read(image, p0, p1)
        if valid is not None:
            valid = np.ascontiguousarray(valid[..., :depth])
        take = sampled[a0:a1]
        if take.any():
            at = hn_b[a0:a1][take][:, None] + x_prof
            pieces.append(sample_columns(img[a0 - p0:a1 - p0][take], at).astype(np.float32))
        # a block of columns at a time, with the filters' context columns: the slab holds at least
        # _MIN_CORE_PER_PAD pads of rows whatever slab_voxels, and its float working arrays, several
        # at once over all its columns, rose with the slab's rows (1.8 GB over a 64-row slab of
        # 2025 x 606 columns); each filter computes its core alone (its context is only read)
        for b0, b1, q0, q1 in _slabs(img.shape[1], img.shape[0] * img.shape[2], pad_c, slab_voxels):
            blk = (slice(None), slice(q0, q1))
            rs, cs = slice(a0, a1), slice(b0, b1)
            core = (slice(a0 - p0, a1 - p0), slice(b0 - q0, b1 - q0))
            va = None if valid is None else valid[blk]
            other = _non_film(img[blk], ref["dark_threshold"], ref["fibre_threshold"], sig, va, core)
            t_raw[rs, cs] = _film_crossing(other, hn_b[rs, cs], hs_b[rs, cs], thr, t0, reach)
            del other
            got: dict[str, np.ndarray] = {"offsets": edges.offsets}
            t_fall[rs, cs], t_rise[rs, cs] = _outer_edge(img[blk], core[0].start, core[0].stop, hn_b[rs, cs],
                                                         t_raw[rs, cs], hs_b[rs, cs], sig_edge, ref["dark_threshold"],
                                                         ref["fibre_threshold"], t0, edge, ref["sei_level"], va,
                                                         cols=core[1], hs_rise=hs_f[rs, cs], samples=got)
            edges.put(rs, cs, got)
        del img, valid
    # the frame's and its rim shell's columns measure nothing (their values are the specimen's around)
    cols &= specimen
    t_raw, t_fall, t_rise = (np.where(specimen, a, np.nan) for a in (t_raw, t_fall, t_rise))
    # 3. lateral regularisation of the thickness (not of the height): robust local median, columns
    #    far from it rejected, unmeasured columns take the local median
    edge_share = float(np.isfinite(t_fall)[cols].mean()) if cols.any() else 0.0
    cross_bias = 0.0
    t_sharp = t_fall  # the falling edges the thickness is taken from
    if edge_share >= min_edge_share:
        # the film's outer edge where a pore follows it; where a fibre lies on the film, its faint
        # rising edge when the film is thick enough to keep it clear of the sodium edge
        t_edge = t_fall
        t_med_fall = float(np.nanmedian(t_fall[cols]))
        rises = t_med_fall > edge["reach_vox"] + 1.0
        if rises:
            t_rise, info["rise_fit"] = _rises_refitted(t_rise, edges.samples(), hn_b, hs_b,
                                                       (ref["sei_level"], ref.get("fibre_level", np.nan)), edge)
            if "shift_vox" in info["rise_fit"]:
                # the falls too: the film's own rims, not the sodium edge's
                t_fall = t_fall + edge["shift_vox"] - info["rise_fit"]["shift_vox"]
            t_edge = np.where(np.isfinite(t_fall), t_fall, t_rise)
        if not rises and t_med_fall >= RESOLVED_VOX:
            # the crossing - edge offset is the pore's: where a fibre lies on a film too thin to
            # show the rise, the crossing is of the film's small step onto the fibre, whose blur and
            # rims move it by another amount that no column measures; no crossing is used (no offset
            # either: NaN), those columns take the thickness of the falling edges around them
            # (below).  Under RESOLVED_VOX the falls are no firmer: the sodium edge's blur reaches
            # through the film and moves them too
            t_raw = t_sharp = _off_fibre_flanks(t_edge, cols, [vox[a] for a in lat])
            cross_bias = float("nan")
        else:
            # elsewhere the column's own crossing, less the median amount by which blur and edge
            # brightening move a crossing past the edge (measured on the columns showing both)
            both = cols & np.isfinite(t_edge) & np.isfinite(t_raw)
            if both.sum() >= 10:
                cross_bias = float(np.median((t_raw - t_edge)[both]))
            t_raw = np.where(np.isfinite(t_edge), t_edge, t_raw - cross_bias)
    # measured before any gap is filled: a filled column is not a measurement
    measured = np.isfinite(t_raw)
    if edge_share >= min_edge_share:
        # columns with neither (a fibre lying on a thin film hides both) take the thickness of
        # the columns around
        t_raw = _fill_thickness(t_raw, [reg_nm / vox[a] for a in lat])
    size = [max(3, 2 * round(reg_nm / vox[a]) + 1) for a in lat]
    t_fill = np.where(np.isfinite(t_raw), t_raw, t0)
    if not specimen.all():
        # the frame's columns enter the local median with the thickness of the specimen around them
        t_fill = np.where(specimen, t_fill, _fill_thickness(np.where(specimen, t_fill, np.nan), [reg_nm / vox[a] for a in lat]))
    t_med = ndi.median_filter(t_fill, size=size, mode="nearest")
    tol = np.maximum(1.5, 0.5 * t_med)
    ok = np.isfinite(t_raw) & (np.abs(t_raw - t_med) <= tol)
    t_clean = np.where(ok, t_raw, t_med)
    t = ndi.median_filter(t_clean, size=3, mode="nearest")
    if thickness_nm is None:
        thickness_nm = rise_averaging_nm(ref, reg_nm)
    info["thickness_nm"] = float(thickness_nm)
    if thickness_nm > 0:
        # a film -> fibre rise or a crossing is a small step in noise: those columns take the
        # thickness averaged over thickness_nm; a falling edge (a pore beyond the film) is sharp and
        # measured against the column's own sodium surface, whose roughness an average would carry
        # into the outer surface
        sharp = ok & np.isfinite(t_sharp) & (edge_share >= min_edge_share)
        t = np.where(sharp, t, ndi.gaussian_filter(t, [thickness_nm / vox[a] for a in lat], mode="nearest",
                                                   truncate=_TRUNCATE))
    # 4. a thin film: its own edges, fitted on the columns with a pore beyond it, grouped by thickness
    #    (a film under RESOLVED_VOX blurs into one bump whose level and width trade off: not fitted)
    na_moved = False
    resolved = t0 >= RESOLVED_VOX
    if thin and not own_edges:
        info["rim_source"] = f"{info['rim_source']} (the film's own fit off: own_edges=False)"
    elif thin and not resolved:
        info["rim_source"] = (f"{info['rim_source']} (the film's own fit not tried: {t0:.2f} voxels is under "
                              f"{RESOLVED_VOX:g})")
    elif thin:
        pore = sampled & np.isfinite(t_fall)
        own = _film_own_edges(np.concatenate(pieces)[pore[sampled]], x_prof, t[pore], fit, vox[ax])
        info["film_fit"] = own
        if own["accepted"]:
            # one shift per surface (the bins' mean, by columns): the first pass keeps its
            # column-to-column structure, and a bin's noise is not mapped onto its columns
            nk = np.asarray(own["bin_columns"], float)
            da = float(np.average(own["shift_vox"], weights=nk))
            dt = float(np.average(np.asarray(own["thickness_vox"]) - np.asarray(own["bin_thickness_vox"]), weights=nk))
            own.update({"sodium_shift_vox": da, "thickness_shift_vox": dt})
            t = t + dt
            hn = np.where(cols, hn + da, hn)
            na_moved = True
            info["rim_source"] = f"sodium|sei (the film's own edges, {nk.size} thickness bins)"
        else:
            info["rim_source"] = f"{info['rim_source']} (the film's own fit: {own['reason']})"
    del pieces
    h = np.clip(hn + t, hn, hs_f + lo)
    into = cols & (h > hs)
    info["found"] = True
    info["edge_share"] = edge_share
    info["edge"] = edge
    info["reference_thickness_vox"] = t0
    info["crossing_bias_vox"] = cross_bias
    info["measured_share"] = float((ok & measured)[cols].mean()) if cols.any() else 0.0
    info["resolved"] = bool(resolved)
    info["mean_thickness_vox"] = float(np.mean((h - hn)[cols])) if cols.any() else 0.0
    if not resolved:
        info["resolution_note"] = (f"SEI about {t0 * vox[ax]:.0f} nm ({t0:.1f} voxels along the stacking axis): "
                                   f"near the resolution limit, its thickness is uncertain by about a voxel")
    heights = dict(layers.heights)
    heights["sei|separator"] = h if layers.anode_first else n - h
    if into.any():
        h_c = np.where(into, h, hs)
        heights["separator|cathode"] = h_c if layers.anode_first else n - h_c
        info["into_cathode_share"] = float(into[cols].mean())
    if na_moved:
        heights["sodium|sei"] = hn if layers.anode_first else n - hn
    present = dict(layers.present)
    present["sei"] = True
    notes = list(layers.notes) + [(f"sei|separator: first dense -> porous transition within {reach:.1f} voxels of the "
                                   f"sodium surface (film contrast {ref['contrast']:.3g} over the sodium, non-film share "
                                   f"{ref['film_level']:.2f} vs {ref['separator_level']:.2f}; {info['measured_share']:.0%} of "
                                   f"columns measured, the rest from the local median thickness)")]
    if na_moved:
        ff = info["film_fit"]
        notes.append(f"sodium|sei and sei|separator: the thin film's own two-edge fit moved the sodium surface "
                     f"{ff['sodium_shift_vox']:+.2f} and the thickness {ff['thickness_shift_vox']:+.2f} voxels "
                     f"(film rims {ff['rim_ratio']:.2f} / {ff['outer_rim_ratio']:.2f} of the steps)")
    if not resolved:
        notes.append(info["resolution_note"])
    return replace(layers, heights=heights, present=present, notes=notes), info


def _median_profile(vol: np.ndarray, h: np.ndarray, offs: np.ndarray, *, chunk: int = 32) -> np.ndarray:
    """Median over the columns of ``vol`` (columns along the first axis, stacking axis last) of
    the values at ``h + offs`` (sub-voxel), a few offsets at a time (bounded memory)."""
    return np.concatenate([np.median(sample_columns(vol, h[:, None] + offs[i:i + chunk]), axis=0)
                           for i in range(0, offs.size, chunk)]) if offs.size else np.zeros(0)


def rim_threshold(values: np.ndarray, threshold: float, edge: Mapping[str, float],
                  smooth_sigma: Sequence[float]) -> float:
    """A two-class grey threshold moved for edge-brightening rims.

    Edge brightening raises the voxels on *both* sides of a boundary by a rim ``ρ (F - P)``
    (``edge["rim_ratio"]``, fitted on the sodium edge by
    :func:`volrecon.segment.layers.edge_rim_shift`), so the first dark voxel beside a bright
    object reads about half-way between the levels and a half-way threshold (what Otsu finds for
    two similar classes) puts it in the bright class: every bright object grows by a voxel.  With
    the step and the rims blurred by ``s`` (the fit's sigma and the denoising ``smooth_sigma``),
    the two voxels beside the boundary read ``F/P`` fractions ``Φ(±0.5/s) + ρ k`` with ``k =
    Φ((0.5 + w)/s) - Φ((0.5 - w)/s)`` for rims of half-width ``w`` (``edge["rim_half_width_vox"]``,
    one voxel when not given); the threshold is half-way between them, ``P + (0.5 + ρ k)(F - P)``,
    with ``P`` and ``F`` the medians of ``values`` below and above ``threshold``.
    """
    v = np.asarray(values, float)
    lo_v, hi_v = v[v < threshold], v[v >= threshold]
    rho = float(edge.get("rim_ratio", 0.0)) if edge.get("accepted", True) else 0.0
    if lo_v.size < 10 or hi_v.size < 10 or not rho > 0:
        return float(threshold)
    return rim_cut(float(np.median(lo_v)), float(np.median(hi_v)), edge, smooth_sigma)


def rim_cut(dark: float, bright: float, edge: Mapping[str, float], smooth_sigma: Sequence[float]) -> float:
    """The cut between two phase levels ``dark`` < ``bright`` moved for edge-brightening rims:
    half-way between what the two voxels beside their boundary read, ``dark + (0.5 + ρ k)(bright -
    dark)`` (the rim model of :func:`rim_threshold`; half-way without an accepted rim fit in ``edge``)."""
    return dark + float(np.clip(0.5 + _rim_lift(edge, smooth_sigma), 0.5, 0.85)) * (bright - dark)


def _rim_lift(edge: Mapping[str, float], smooth_sigma: Sequence[float]) -> float:
    """``ρ k``: the share of a step's height that the rims add to each voxel beside the boundary
    (the rim model of :func:`rim_threshold`; 0 without an accepted rim fit)."""
    rho = float(edge.get("rim_ratio", 0.0)) if edge.get("accepted", True) else 0.0
    s = float(np.hypot(float(edge.get("sigma_vox", 1.0)), max(smooth_sigma)))
    return rim_share(rho, float(edge.get("rim_half_width_vox", 1.0)), s)


def contact_cuts(separator: np.ndarray, separator_cut: float, cathode: np.ndarray, active_cut: float,
                 edge: Mapping[str, float], smooth_sigma: Sequence[float]) -> dict[str, float] | None:
    """Grey cuts for the separator's voxels that lie on the cathode's active particles.

    Where a separator fibre or pore sits on an active particle, the layers' interface (a smooth
    surface, good to about a voxel) leaves a particle's first voxels in the separator, where the
    two-class fibre threshold calls them fibre; and the pore voxel lying on a particle reads far
    above the pore's level (blur and the edge rims carry a share ``c`` of the pore -> active step
    onto it), so it reads as a fibre too.  With the levels ``P`` (the separator's pore), ``F``
    (its fibres: the separator's ``values`` below / above ``separator_cut``) and ``A`` (the
    cathode's active: its ``values`` above ``active_cut``), and the rim model of
    :func:`rim_threshold` (``edge``, ``smooth_sigma``; ``c = Φ(-0.5 / s) + ρ k``, the read of the
    dark voxel beside a step):

    - ``active``: fibre | active, ``F + (0.5 + ρ k)(A - F)`` (the half-way read of the two voxels
      beside that boundary);
    - ``pore_active``: pore | active, ``P + (0.5 + ρ k)(A - P)``, for a particle's first voxel
      under a pore (the lit pore voxel beyond it reads under this cut, a fibre does not);
    - ``pore_on_active``: half-way between what a pore voxel and a fibre voxel lying on a particle
      read, ``P + c (A - P)`` and ``F + c (A - F)``;
    - ``pore_beyond``: half-way between that lit pore and a fibre, ``(P + c (A - P) + F) / 2`` (at
      most ``pore_active``): the pore beyond a particle's first voxel reads under it, a fibre does
      not.  ``pore_active`` lies under the fibres' level once the rims lift it (``F`` within
      ``(0.5 + ρ k)(A - P)`` of ``P``): a fibre read a little dim over a fibre lying on a particle
      passed for that pore, and the mat of a thin separator on the cathode (the carbonate cell's)
      was given to the particles.

    None when a level is missing or the active particles are not brighter than the fibres.
    """
    sep, cat = np.asarray(separator, float), np.asarray(cathode, float)
    pores, fibres, active = sep[sep < separator_cut], sep[sep >= separator_cut], cat[cat >= active_cut]
    if min(pores.size, fibres.size, active.size) < 100:
        return None
    return level_contact_cuts(*(float(np.median(v)) for v in (pores, fibres, active)), edge, smooth_sigma)


def level_contact_cuts(pore: float, fibre: float, active: float, edge: Mapping[str, float],
                       smooth_sigma: Sequence[float]) -> dict[str, float] | None:
    """The cuts of :func:`contact_cuts` from the levels ``P`` (``pore``, the separator's pore),
    ``F`` (``fibre``) and ``A`` (``active``, the cathode's particles) themselves; None unless ``A >
    F > P``."""
    from scipy.special import ndtr

    p, f, a = pore, fibre, active
    if not a > f > p:
        return None
    lift = _rim_lift(edge, smooth_sigma)
    s = float(np.hypot(float(edge.get("sigma_vox", 1.0)), max(smooth_sigma)))
    c = float(ndtr(-0.5 / s)) + lift
    return {"pore_level": p, "fibre_level": f, "active_level": a,
            "active": rim_cut(f, a, edge, smooth_sigma),
            "pore_active": rim_cut(p, a, edge, smooth_sigma),
            "pore_on_active": 0.5 * (p + c * (a - p) + f + c * (a - f)),
            "pore_beyond": min(rim_cut(p, a, edge, smooth_sigma), 0.5 * (p + c * (a - p) + f))}


def _next_along(mask: np.ndarray, axis: int, step: int) -> np.ndarray:
    """``out[i] = mask[i + step]`` along ``axis`` (False beyond the ends)."""
    out = np.zeros_like(mask)
    n = mask.shape[axis]
    src = [slice(None)] * mask.ndim
    dst = [slice(None)] * mask.ndim
    if step > 0:
        src[axis], dst[axis] = slice(step, n), slice(0, n - step)
    else:
        src[axis], dst[axis] = slice(0, n + step), slice(-step, n)
    out[tuple(dst)] = mask[tuple(src)]
    return out


def separator_contacts(smoothed: np.ndarray, regions: np.ndarray, phases: np.ndarray, *, axis: int,
                       towards_cathode: int, cuts: Mapping[str, float], names: Mapping[str, int],
                       reach: int = 2, region_values: Mapping[str, int] = REGIONS,
                       lit_from: np.ndarray | None = None) -> np.ndarray:
    """The separator's voxels on the cathode's active particles re-decided (:func:`contact_cuts`).

    Along the stacking axis ``axis`` (``towards_cathode`` = +1 or -1), a separator voxel whose
    neighbour towards the cathode is active becomes active when it reads at least ``cuts["active"]``
    (brighter than a fibre lying on the particle), or at least ``cuts["pore_active"]`` with the
    voxel beyond it (away from the cathode) a separator voxel under ``cuts["pore_beyond"]`` (the
    particle's first voxel under a pore: the SEI beyond a thin separator, darker than the cut once
    the rims lift it, is no pore), up to ``reach`` voxels into the separator (the layers' interface is good to about a voxel);
    then a fibre voxel lying on active that reads under ``cuts["pore_on_active"]`` is the pore
    beside the particle, lit by its blur and rims: ``electrolyte``; ``lit_from`` (a mask of
    ``phases``' shape; default every voxel): the fibre voxels this last rule may re-read.  Local (a
    block with ``reach + 1`` voxels of context along ``axis`` gives the whole volume's answer).
    """
    out = np.array(phases, copy=True)
    sep = regions == region_values["separator"]
    act_v, fib_v, pore_v = names["active"], names["separator"], names["electrolyte"]
    act = out == act_v
    bright = sep & (smoothed >= cuts["active"])
    if "pore_active" in cuts:
        above = _next_along(smoothed, axis, -towards_cathode)
        # the voxel beyond is the separator's pore: the SEI and a dim fibre read under pore_active too
        beyond = cuts.get("pore_beyond", cuts["pore_active"])
        bright |= sep & (smoothed >= cuts["pore_active"]) & (above < beyond) & _next_along(sep, axis, -towards_cathode)
    for _ in range(int(reach)):
        grow = bright & ~act & _next_along(act, axis, towards_cathode)
        if not grow.any():
            break
        act |= grow
    out[act & sep] = act_v
    lit = sep & (out == fib_v) & _next_along(act, axis, towards_cathode) & (smoothed < cuts["pore_on_active"])
    if lit_from is not None:
        lit &= lit_from
    out[lit] = pore_v
    return out


CONTACT_STEPS_PER_VOX = 20
"""Trial boundary positions per voxel of :func:`fibre_contact_surface` (offsets ``i / 20`` from the
layers' boundary: exact in binary at the voxel centres, so a tie with a centre does not depend on
where a chunk starts)."""

CONTACT_LATERAL_NM = 20.0
"""Lateral Gaussian sigma (nm) of the grey :func:`fibre_contact_steps` reads: the grey the rim fit
of :func:`volrecon.segment.layers.refine_interface` measured the blur on (its ``lateral_nm``)."""


def _separator_cathode_turn(sep: np.ndarray, cat: np.ndarray) -> np.ndarray:
    """Per column (stacking axis last, the cathode towards higher indices) the index of the first
    cathode voxel that follows a separator voxel; -1 where none does."""
    turn = cat[..., 1:] & sep[..., :-1]
    return np.where(turn.any(axis=-1), np.argmax(turn, axis=-1) + 1, -1)


def _column_profiles(grey: np.ndarray, sep: np.ndarray, cat: np.ndarray, centre: np.ndarray, half: int,
                     first_sep: np.ndarray, film: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per column (stacking axis last, the cathode towards higher indices) the voxel indices
    ``centre - half .. centre + half - 1`` (``centre``: a boundary coordinate, -1 for none), their
    grey values (index-clipped) and whether each lies in the separator or the cathode region past
    the separator's first voxel ``first_sep`` (the film's blurred edge; from it on in the columns
    ``film``, where the film's edge is modelled)."""
    n = grey.shape[-1]
    rows = centre[..., None] + np.arange(-half, half)
    inside = (rows >= 0) & (rows < n) & (centre[..., None] > 0)
    at = np.clip(rows, 0, n - 1)
    prof = np.take_along_axis(grey, at, axis=-1).astype(np.float64)
    layer = np.take_along_axis(sep | cat, at, axis=-1)
    use = inside & layer & (at + 0.5 > first_sep[..., None] + 1.0)
    if film is not None:
        use |= inside & layer & film[..., None]
    return rows, prof, use


def _contact_fit(grey: np.ndarray, sep: np.ndarray, cat: np.ndarray, centre: np.ndarray, first_sep: np.ndarray,
                 local: Mapping[str, np.ndarray], rim: tuple[float, float, float], reach: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The fit of :func:`fibre_contact_surface`: the profiles around ``centre`` fitted with each pair
    of levels (``local``, per column; the film's edge at the separator's first voxel ``first_sep``
    where ``local["film"]`` is finite), the fibre -> active step's place and whether it is a fitted fibre |
    particle contact (the best of the four pairs, not pinned at the end of its range, the profile
    seen on both sides of it)."""
    film = np.isfinite(local["film"]) if "film" in local else None
    rows, prof, use = _column_profiles(grey, sep, cat, centre, int(reach) + 1, first_sep, film)
    x = rows + 0.5
    base = None
    if film is not None:
        sb, rb = step_and_rims(x - first_sep[..., None], rim[0], rim[1])
        s_ = np.where(film, local["film"], 0.0)[..., None]
        base = {up: np.where(film[..., None], s_ + (local[up][..., None] - s_) * sb
                             + rim[2] * np.abs(local[up][..., None] - s_) * rb, local[up][..., None])
                for up in ("fibre", "pore")}
    (c, sse), *rest = _best_steps(prof, x, use, centre, local, rim, float(reach), base)
    others = np.min([v[1] for v in rest], axis=0)
    above = np.where(use, x < c[..., None], False).sum(axis=-1)
    below = np.where(use, x > c[..., None], False).sum(axis=-1)
    # a contact at the end of its range is no fitted place (the step lies beyond: binder or a pore
    # between the fibre and a particle deeper down)
    pinned = np.abs(c - centre) > reach - 0.5 / CONTACT_STEPS_PER_VOX
    return c, (centre > 0) & (sse < others) & (above >= 1) & (below >= 1) & ~pinned


_STEP_PAIRS: tuple[tuple[str, str], ...] = (("fibre", "active"), ("fibre", "binder"), ("pore", "active"),
                                             ("pore", "binder"))
"""The (upper, lower) level pairs a column's profile is fitted with (:func:`fibre_contact_surface`);
the first is the fibre | particle contact."""


def _best_steps(prof: np.ndarray, x: np.ndarray, use: np.ndarray, centre: np.ndarray, local: Mapping[str, np.ndarray],
                rim: tuple[float, float, float], reach: float, base: Mapping[str, np.ndarray] | None = None,
                pairs: Sequence[tuple[str, str]] = _STEP_PAIRS) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per pair of ``pairs`` (upper, lower level names) and per column the boundary ``c`` within
    ``centre ± reach`` at which the step from the upper to the lower level (``local``, per column)
    explains ``prof`` (at voxel centres ``x``, where ``use``) best, and the mean squared residual
    there.  ``rim``: the blur (voxels), the rims' half-width (voxels) and their height as a share
    of the step's size: the rims brighten both sides of a step down as of a step up
    (:func:`volrecon.segment.layers.step_and_rims`)."""
    n_use = np.maximum(use.sum(axis=-1), 1)
    best = [(np.asarray(centre, float).copy(), np.full(centre.shape, np.inf)) for _ in pairs]
    ends = [(local[up][..., None] if base is None else base[up], (local[lo] - local[up])[..., None])
            for up, lo in pairs]
    sigma, half_width, ratio = rim
    k = int(round(reach * CONTACT_STEPS_PER_VOX))
    for dc in np.arange(-k, k + 1) / CONTACT_STEPS_PER_VOX:
        c = centre + dc
        step, rims = step_and_rims(x - c[..., None], sigma, half_width)  # one shape for the four pairs
        rims *= ratio
        for (bc, bs), (upper, height) in zip(best, ends):
            pred = upper + height * step + np.abs(height) * rims
            sse = np.where(use, (prof - pred) ** 2, 0.0).sum(axis=-1) / n_use
            better = sse < bs
            bc[better], bs[better] = c[better], sse[better]
    return best


CONTACT_LEVEL_POOL_NM = 250.0
"""Lateral Gaussian sigma (nm) over which :func:`fibre_contact_surface` pools each level: wider than a
fibre or a particle (a column's neighbourhood holds the interiors of several), far narrower than the
smooth brightness residual a correction leaves (microns): with the whole volume's levels the contacts
of the corrected carbonate seed 1 lay 0.17 voxel deep on average (0.07 pooled so), and the classifier's
separator Dice there fell (0.797 -> 0.795; 0.799 pooled)."""

FILM_ROWS = (2, 6)
"""The rows before the separator's first voxel (nearest, farthest) the film's level is read from
(:func:`_local_levels`)."""


def separator_window(reach: int) -> int:
    """How many rows before its separator | cathode turn a column's separator's first voxel is looked
    for (:func:`fibre_contact_surface`): the film's blurred edge there can reach the rows fitted
    (``reach + 1`` before the turn) only from a few voxels away, and a column whose separator runs on
    beyond is read as one without a film in reach, whatever rows a block holds."""
    return 2 * int(reach) + 8


def contact_margin(reach: int) -> int:
    """Rows each side of a column's separator | cathode turn that :func:`fibre_contact_steps` reads
    (the film's rows before the farthest first separator voxel, :func:`separator_window`) or changes."""
    return separator_window(reach) + FILM_ROWS[1]


def _separator_start(sep: np.ndarray, h: np.ndarray, window: int) -> np.ndarray:
    """Per column (stacking axis last) the first separator voxel within ``window`` rows before the
    turn ``h`` (the first in the column where ``h`` is -1, no turn)."""
    idx = np.arange(sep.shape[-1])
    return np.argmax(sep & (idx >= h[..., None] - window), axis=-1)


_LEVEL_ROWS = {"fibre": ("separator", -1), "pore": ("separator", -1), "active": ("cathode", 1),
               "binder": ("cathode", 1)}
"""Level -> the region it is read in and its side of the contact (-1 before, +1 after)."""


def _column_sums_pooled(grey: np.ndarray, mask: np.ndarray, sigma: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Per column (the last axis summed) the count of ``mask``'s voxels and the sum of their grey, each
    pooled over the columns around it (Gaussian ``sigma``, in columns)."""
    def pooled(a: np.ndarray) -> np.ndarray:
        return gaussian(a.astype(np.float32), sigma, mode="nearest", truncate=_TRUNCATE)

    return pooled(mask.sum(axis=-1)), pooled(np.where(mask, grey, 0).sum(axis=-1))


def _local_levels(grey: np.ndarray, phases: np.ndarray, regions: np.ndarray, h: np.ndarray, first_sep: np.ndarray,
                  levels: Mapping[str, float], labels: Mapping[str, int], sigma: Sequence[float],
                  region_values: Mapping[str, int], reach: int) -> dict[str, np.ndarray]:
    """Each level of ``levels`` per column, pooled over the columns around it (Gaussian ``sigma``, in
    columns, over the two lateral axes): the mean grey of the voxels labelled ``labels[level]`` in
    the level's region (:data:`_LEVEL_ROWS`) on its side of the layers' boundary ``h``, five rows
    from the first whose centre lies 1.5 voxels past the farthest place the contact may take (``h ±
    reach``: clear of its blur and most of its rims), and two past the separator's first voxel
    ``first_sep`` (the film's blurred edge); ``levels`` (the volume's) where the neighbourhood holds
    under one such voxel per column on average.  With ``labels["film"]``, also the film's level
    (``film``): its voxels in the anode region two to six rows before ``first_sep``, NaN where
    under one per column is seen."""
    idx = np.arange(grey.shape[-1])
    out = {}
    if "film" in labels:
        rows = (idx >= first_sep[..., None] - FILM_ROWS[1]) & (idx <= first_sep[..., None] - FILM_ROWS[0])
        m = rows & (regions == region_values["anode"]) & (phases == labels["film"]) & (h[..., None] > 0)
        count, total = _column_sums_pooled(grey, m, sigma)
        out["film"] = np.where(count >= 1.0, total / np.maximum(count, 1e-6), np.nan)
    for name, (region, side) in _LEVEL_ROWS.items():
        # after: i >= h + reach + 1; before: i <= h - reach - 2 (voxel centres at i + 0.5)
        near = h[..., None] + reach + 1 if side > 0 else h[..., None] - reach - 2
        rows = (side * (idx - near) >= 0) & (side * (idx - near) < 5) & (idx >= first_sep[..., None] + 2)
        m = rows & (regions == region_values[region]) & (phases == labels[name]) & (h[..., None] > 0)
        count, total = _column_sums_pooled(grey, m, sigma)
        out[name] = np.where(count >= 1.0, total / np.maximum(count, 1e-6), levels[name])
    return out


def fibre_contact_surface(grey: np.ndarray, regions: np.ndarray, *, levels: Mapping[str, float],
                          edge: Mapping[str, float], reach: int = 2, region_values: Mapping[str, int] = REGIONS,
                          phases: np.ndarray | None = None, labels: Mapping[str, int] | None = None,
                          pool: Sequence[float] = (0.0, 0.0)) -> tuple[np.ndarray, np.ndarray]:
    """Per column the fibre | particle contact as a sub-voxel step, and where there is one.

    Fibres and particles are far wider than a thin mat is thick, so across the contact a column is
    fibre above and particle below: the contact is a surface, and its place in a column follows
    from the column's grey profile across it, not from each voxel's grey (a fibre voxel on a particle
    and the particle's voxel under it read within the noise of each other: the blur and the edge
    rims lift the one and the other alike).  Around the layers' separator|cathode boundary ``h``
    (``± (reach + 1)`` voxels; the separator's first voxel, the film's blurred edge, left out: it is
    looked for within :func:`separator_window` rows before ``h``), each
    column's profile is fitted by a blurred step with rims
    (:func:`volrecon.segment.layers.step_and_rims`: blur ``edge["sigma_vox"]``, rims
    ``edge["rim_ratio"]`` of the step with half-width ``edge["rim_half_width_vox"]``, the stack's
    own rim fit) from an upper to a lower level, its place ``c`` free within ``h ± reach``.  The
    levels are not the column's (a profile of a few voxels is too short to give them in this noise)
    but the regions', pooled over the volume, or, with ``phases``, over the columns around it
    (:func:`_local_levels`); each column is fitted with each of the four pairs
    (the separator's pore or fibre above, the cathode's binder or active below), and it holds a
    fibre | particle contact where fibre -> active explains it best.  Where the film's level is
    known (``labels["film"]``), the film's edge at the separator's first voxel is in the model too
    (its blurred step to the upper level, with rims) and the profile is read from that voxel on: a
    mat two rows thick under the film reads darker than the fibres' level, and without the film
    the pore -> active step explained it better (carbonate seed 1: 278 of 915 true fibre | particle
    columns).

    Parameters
    ----------
    grey : ndarray
        Grey values, stacking axis last with the cathode towards higher indices, smoothed laterally
        at most (a smoothing along the axis would widen the step beyond ``edge``'s blur).
    regions : ndarray
        Region labels, the same layout.
    levels : mapping
        ``pore``, ``fibre``, ``binder``, ``active``: pooled grey levels of ``grey``.
    edge : mapping
        The rim fit (:attr:`volrecon.segment.layers.Layers.edges`): ``sigma_vox``, ``rim_ratio``,
        ``rim_half_width_vox``.
    reach : int
        How far (voxels) the contact may lie from the layers' boundary.
    region_values : mapping
        Region name -> region value.
    phases : ndarray, optional
        Phase labels, the same layout: with them each level is pooled laterally (:func:`_local_levels`).
    labels : mapping, optional
        Level name (``pore``, ``fibre``, ``binder``, ``active``, and ``film`` for the film beyond the
        separator) -> the phase label its voxels carry.
    pool : 2 floats
        Gaussian sigma (columns, the two lateral axes) of the levels' pooling.

    Returns
    -------
    (ndarray, ndarray)
        Per column the contact's boundary coordinate (voxel ``i`` lies before it when ``i + 0.5 <
        c``) and whether the column holds a fibre | particle contact.
    """
    rim = (float(edge["sigma_vox"]), float(edge.get("rim_half_width_vox", 1.0)), float(edge.get("rim_ratio", 0.0)))
    sep, cat = regions == region_values["separator"], regions == region_values["cathode"]
    h = _separator_cathode_turn(sep, cat)
    first_sep = _separator_start(sep, h, separator_window(reach))
    if phases is None or labels is None:
        local = {k: np.full(h.shape, float(v)) for k, v in levels.items()}
    else:
        local = _local_levels(grey, phases, regions, h, first_sep, levels, labels, pool, region_values, int(reach))
    return _contact_fit(grey, sep, cat, h, first_sep, local, rim, reach)


def contact_rows(regions: Any, axis: int, region_values: Mapping[str, int] = REGIONS) -> tuple[Any, Any]:
    """Per column (``axis`` reduced, the other two kept in their order) the first and the last index
    ``i`` along ``axis`` where voxels ``i`` and ``i + 1`` are a separator and a cathode voxel (in either
    order), -1 where there is none.  ``regions`` may be a dask array: the two maps are then lazy
    chunked reductions (one integer per column each)."""
    r = np.moveaxis(regions, axis, 0)
    sep, cat = r == region_values["separator"], r == region_values["cathode"]
    turn = (sep[:-1] & cat[1:]) | (cat[:-1] & sep[1:])
    n = int(turn.shape[0])
    idx = np.arange(n, dtype=np.int32).reshape(-1, 1, 1)
    first = np.where(turn, idx, np.int32(n)).min(axis=0)
    return np.where(first < n, first, np.int32(-1)), np.where(turn, idx, np.int32(-1)).max(axis=0)


def band_rows(first: np.ndarray, last: np.ndarray, length: int, margin: int) -> slice | None:
    """The indices within ``margin`` of the turns of :func:`contact_rows` (``first``, ``last``: its maps,
    or a part of them) along an axis of ``length``, or None where they hold no turn."""
    has = np.asarray(last) >= 0
    if not has.any():
        return None
    return slice(max(0, int(np.asarray(first)[has].min()) - margin), min(int(length), int(np.asarray(last).max()) + 2 + margin))


def contact_band(regions: Any, axis: int, margin: int,
                 region_values: Mapping[str, int] = REGIONS) -> slice | None:
    """The indices along ``axis`` within ``margin`` of a separator voxel beside a cathode voxel
    anywhere in ``regions`` (the rows :func:`fibre_contact_steps` reads and changes, for ``margin =``
    :func:`contact_margin`), or None where there is none.  ``regions`` may be a dask array
    (:func:`contact_rows`' reductions are computed)."""
    import dask

    first, last = dask.compute(*contact_rows(regions, axis, region_values))
    return band_rows(first, last, regions.shape[axis], margin)


def fibre_contact_steps(grey: np.ndarray, regions: np.ndarray, phases: np.ndarray, *, axis: int,
                        towards_cathode: int, levels: Mapping[str, float], edge: Mapping[str, float],
                        names: Mapping[str, int], reach: int = 2, region_values: Mapping[str, int] = REGIONS,
                        pool: Sequence[float] = (0.0, 0.0)) -> np.ndarray:
    """The separator's fibres lying on the cathode's active particles: the labels around the layers'
    separator|cathode boundary set from the contact :func:`fibre_contact_surface` places.

    In the columns that hold a fibre | particle contact, the separator's or cathode's voxels within
    ``reach + 1`` of the boundary that lie before the contact and are labelled active become fibre,
    and those after it labelled fibre become active; other columns and other labels are unchanged
    (a binder or pore voxel before the contact is no part of a fibre | particle step).  A column
    reads only the rows within :func:`contact_margin` of its own turn: a block holding, along ``axis``,
    the :func:`contact_band` of its columns and of those within the reach of the levels' pooling
    ``pool`` (their rows, read at their own heights) gives the whole volume's answer for its columns
    (``segment.api._fibre_contacts_placed``).

    Parameters
    ----------
    grey : ndarray
        The image smoothed laterally only (the stacking axis not at all).
    regions, phases : ndarray
        Region and phase labels (``phases`` as :func:`separator_contacts` left them).
    axis : int
        The stacking axis.
    towards_cathode : int
        +1 when the cathode lies towards higher indices along ``axis``, else -1.
    levels, edge, reach, region_values, pool
        As :func:`fibre_contact_surface` (the levels pooled laterally from ``phases``, ``pool`` the
        sigma in columns of the lateral axes in their order; 0: the volume's ``levels``); ``phases`` is
        returned unchanged without an accepted rim fit in ``edge`` (the step's blur is not known).
    names : mapping
        Phase name -> label value (``separator``, ``active``).

    Returns
    -------
    ndarray
        The phases with the contact re-placed.
    """
    out = np.array(phases, copy=True)
    if not edge or not edge.get("accepted", True) or "sigma_vox" not in edge:
        return out

    def along(a: np.ndarray) -> np.ndarray:
        a = np.moveaxis(a, axis, -1)
        return a if towards_cathode > 0 else a[..., ::-1]

    r, o = along(regions), along(out)  # o: a view of out
    labels = {"fibre": names["separator"], "active": names["active"], "pore": names.get("electrolyte", -1),
              "binder": names.get("binder", -1), "film": names.get("sei", -1)}
    c, ok = fibre_contact_surface(along(np.asarray(grey)), r, levels=levels, edge=edge, reach=reach,
                                  region_values=region_values, phases=o.copy(), labels=labels, pool=pool)
    sep, cat = r == region_values["separator"], r == region_values["cathode"]
    h = _separator_cathode_turn(sep, cat)[..., None]
    idx = np.arange(r.shape[-1])
    near = ok[..., None] & (sep | cat) & (idx >= h - reach - 1) & (idx <= h + reach)
    before, after = idx + 0.5 < c[..., None], idx + 0.5 > c[..., None]
    o[near & before & (o == names["active"])] = names["separator"]
    o[near & after & (o == names["separator"])] = names["active"]
    return out


def classify_regions(
    smoothed: np.ndarray, regions: np.ndarray, base: np.ndarray, *, thresholds: Mapping[str, Sequence[float]],
    names: Mapping[str, int], region_values: Mapping[str, int] = REGIONS, cathode_grey: np.ndarray | None = None,
) -> np.ndarray:
    """Phases of one block from its regions and the per-region thresholds.

    ``base`` holds the phases the caller already decided (frame, sodium/SEI, collector, 0); only
    cathode and separator voxels are re-decided here.  ``cathode_grey``: the grey values the
    cathode's binder | active threshold applies to (its rim-corrected grey,
    :mod:`volrecon.segment.cathode_rims`; default ``smoothed``); pore | binder is cut on ``smoothed``.
    """
    out = np.array(base, copy=True)
    cat = regions == region_values["cathode"]
    if "cathode" in thresholds and cat.any():
        t = np.asarray(thresholds["cathode"])
        lut = np.array([names["electrolyte"], names["binder"], names["active"]], np.uint8)
        if t.size == 1:
            lut = np.array([names["electrolyte"], names["active"]], np.uint8)
        cls = class_index(smoothed[cat], t)
        if cathode_grey is not None and t.size == 2:
            cls = np.where(cathode_grey[cat] >= t[1], 2, np.minimum(cls, 1))
        out[cat] = lut[cls]
    sep = regions == region_values["separator"]
    if "separator" in thresholds and sep.any():
        t = np.asarray(thresholds["separator"])
        lut = np.array([names["electrolyte"], names["separator"]], np.uint8)
        out[sep] = lut[class_index(smoothed[sep], t)]
    return out


def _specimen_grey(img: np.ndarray, ph: np.ndarray, frame_value: int | None, sig: Sequence[float],
                   rows: slice, tile_voxels: int) -> tuple[np.ndarray, np.ndarray]:
    """Grey values of the core ``rows`` smoothed over the specimen only (normalised convolution:
    the frame does not bleed in), and the specimen mask there.

    A block of columns at a time (about ``tile_voxels`` with their context, never fewer core
    columns than ``_MIN_CORE_PER_PAD`` times it, :func:`_slabs`): the filter's float working arrays
    span one block, not the slab.
    """
    valid = ph != 0
    if frame_value is not None:
        valid &= ph != frame_value
    out = np.empty(img[rows].shape, np.float32)
    for b0, b1, q0, q1 in _slabs(img.shape[1], img.shape[0] * img.shape[2], gaussian_reach(sig[1]), tile_voxels):
        blk = (slice(None), slice(q0, q1))
        out[:, b0:b1] = specimen_filter(img[blk], valid[blk], sig, region=(rows, slice(b0 - q0, b1 - q0), slice(None)))
    return out, np.ascontiguousarray(valid[rows])


def _first_above(g: np.ndarray, thr: float, begin: np.ndarray, hs: np.ndarray) -> np.ndarray:
    """Per column the first index ``>= begin`` where ``g > thr``; the separator|cathode bound
    ``hs`` closes every column (``floor(hs)`` where nothing rises)."""
    n = g.shape[-1]
    idx = np.arange(n)
    above = (g > thr) & (idx >= begin[..., None])
    above |= (idx + 0.5) >= hs[..., None]
    return np.where(above.any(axis=-1), np.argmax(above, axis=-1), np.floor(hs).astype(int))


def _specimen_run_end(valid: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Per column (stacking axis last) the first index at or after ``start`` that is not specimen
    (``valid`` False), or the column's length where the specimen runs to its end."""
    gap = ~valid & (np.arange(valid.shape[-1]) >= start[..., None])
    return np.where(gap.any(axis=-1), np.argmax(gap, axis=-1), valid.shape[-1])


def _nearest_measured(h: np.ndarray, measured: np.ndarray, lateral_nm: Sequence[float]) -> np.ndarray:
    """``h`` where ``measured``, elsewhere the value of the nearest measured column (lateral grid of
    spacing ``lateral_nm``: nearest in nanometres, not in indices)."""
    if measured.all() or not measured.any():
        return h
    idx = ndi.distance_transform_edt(~measured, sampling=[float(v) for v in lateral_nm], return_distances=False,
                                     return_indices=True)
    return h[tuple(idx)]


def _crossing(prof: np.ndarray, k: np.ndarray, thr: float) -> np.ndarray:
    """Sub-voxel boundary coordinate where ``prof`` (columns last) rises through ``thr`` between
    the voxels ``k - 1`` and ``k`` (linear interpolation; voxel centres at ``i + 0.5``)."""
    n = prof.shape[-1]
    km = np.clip(k - 1, 0, n - 1)
    ga = np.take_along_axis(prof, km[..., None], axis=-1)[..., 0]
    gb = np.take_along_axis(prof, np.clip(k, 0, n - 1)[..., None], axis=-1)[..., 0]
    frac = np.clip(np.where(gb - ga > 1e-9, (thr - ga) / np.maximum(gb - ga, 1e-9), 0.5), 0, 1)
    return km + 0.5 + frac


def sodium_surface(
    image: Any, phases: Any, layers: Layers, *, voxel_size_nm: Sequence[float], frame_value: int | None,
    lateral_nm: float = 60.0, rise: float = 6.0, film_nm: float = 50.0, slab_voxels: int = _SLAB_VOXELS,
    film_voxels: int | None = None,
) -> tuple[Layers, dict[str, Any]]:
    """The sodium surface (``sodium|sei``): where the grey value rises half-way to the layer beyond.

    Sodium metal is a dense, uniform, dark layer at the anode end of the stack: its first-guess
    class is unreliable (it shares grey values with electrolyte-filled pores), but laterally
    averaged it is one flat level.  Per column, from the first specimen voxel (frame and
    unassigned excluded) towards the cathode, the laterally smoothed grey value first rises above
    the sodium level by ``rise`` times that level's spread: that finds the edge, but the foot of
    a blurred edge, not the surface.  The probe's blur is symmetric, so the surface is where the
    grey value is half-way between the sodium's level and the level of what lies beyond it (the
    SEI, or the separator; the median over the columns of the brightest value within
    ``film_nm`` along the stacking axis after the rise): the boundary is that half-way crossing (sub-voxel), or the
    rise where a column never reaches it.  The search stops at ``separator|cathode``.

    Only the anode band (the anode end to ``separator|cathode``) is read, in slabs of about
    ``slab_voxels`` along the first lateral axis with the filters' overlap, filtered a block of
    columns at a time (:func:`_specimen_grey`): the result does not depend on ``slab_voxels`` and
    memory is bounded by it.

    ``film_voxels`` (deprecated): the former name of ``film_nm``, in voxels along the stacking
    axis; converted with the voxel size.
    """
    if film_voxels is not None:
        warnings.warn("sodium_surface(film_voxels=) is deprecated: pass film_nm (a length)", DeprecationWarning,
                      stacklevel=2)
        film_nm = float(film_voxels) * float(voxel_size_nm[layers.axis])
    h_sc = layers.heights.get("separator|cathode")
    info: dict[str, Any] = {"found": False}
    if not layers.present.get("sodium") or h_sc is None:
        info["reason"] = "no sodium layer or no separator|cathode interface"
        return layers, info
    ax, n = layers.axis, layers.length
    vox = [float(v) for v in voxel_size_nm]
    lat = [a for a in range(3) if a != ax]
    hs = _anode_first(h_sc, layers)
    sig = [lateral_nm / vox[a] for a in lat] + [0.5]
    band = _Band(ax, n, layers.anode_first, 0, int(min(n, np.ceil(np.nanmax(hs)) + 2 + gaussian_reach(0.5))))
    rows, row_vox, pad = hs.shape[0], hs.shape[1] * band.hi, gaussian_reach(sig[0])
    film_voxels = max(1, int(round(film_nm / vox[ax])))
    slabs = _slabs(rows, row_vox, pad, slab_voxels)

    def grey(a0: int, a1: int, p0: int, p1: int) -> tuple[np.ndarray, np.ndarray]:
        return _specimen_grey(band.read(image, p0, p1), band.read(phases, p0, p1, phases.dtype), frame_value, sig,
                              slice(a0 - p0, a1 - p0), slab_voxels)

    # pass 1: the sodium level, a few voxels into the specimen
    start = np.zeros(hs.shape, np.int64)
    lev = np.zeros(hs.shape)
    has = np.zeros(hs.shape, bool)
    for a0, a1, p0, p1 in released_slabs(slabs):
        g, valid = grey(a0, a1, p0, p1)
        has[a0:a1] = valid.any(axis=-1)
        start[a0:a1] = np.where(has[a0:a1], np.argmax(valid, axis=-1), 0)
        probe = np.clip(start[a0:a1] + 2, 0, band.hi - 1)
        lev[a0:a1] = np.take_along_axis(g, probe[..., None], axis=-1)[..., 0]
        del g, valid  # (not kept while the next slab is read)
    probe = np.clip(start + 2, 0, band.hi - 1)
    ok_cols = has & (probe < hs)
    if ok_cols.sum() < 10:
        info["reason"] = "too few columns start in the specimen"
        return layers, info
    na_level = float(np.median(lev[ok_cols]))
    spread = float(np.median(np.abs(lev[ok_cols] - na_level))) * 1.4826 + 1e-6
    thr = na_level + rise * spread
    # pass 2: the rise per column, and the grey values from just before it to film_voxels after
    k = np.zeros(hs.shape, np.int64)
    run_end = np.zeros(hs.shape, np.int64)
    m = 2
    prof = np.zeros((*hs.shape, m + film_voxels + 1), np.float32)
    for a0, a1, p0, p1 in released_slabs(slabs):
        g, valid = grey(a0, a1, p0, p1)
        k[a0:a1] = _first_above(g, thr, probe[a0:a1], hs[a0:a1])
        run_end[a0:a1] = _specimen_run_end(valid, start[a0:a1])
        at = np.clip(k[a0:a1, :, None] + np.arange(-m, film_voxels + 1), 0, band.hi - 1)
        prof[a0:a1] = np.take_along_axis(g, at, axis=-1)
        del g, valid, at
    inside = (k[..., None] + np.arange(-m, film_voxels + 1) + 0.5) < hs[..., None]
    beyond = np.where(inside[..., m:], prof[..., m:], -np.inf).max(axis=-1)
    rose = ok_cols & np.isfinite(beyond)
    film = float(np.quantile(beyond[rose], _FILM_QUANTILE)) if rose.any() else float("nan")
    # never below the rise threshold: the crossing search below relies on every voxel before the
    # rise being darker than it (a film barely above the sodium's noise would put mid under thr)
    mid = max(0.5 * (na_level + film), thr) if np.isfinite(film) and film > na_level else thr
    # the half-way crossing within the stored profile: the rise makes every earlier voxel darker
    # than thr, so the first voxel at or above mid (>= thr) is the crossing
    above = (prof >= mid) & inside & (np.arange(prof.shape[-1]) >= 1)
    j = np.argmax(above, axis=-1)
    h_rise = k - m + _crossing(prof, np.full(k.shape, m), thr)
    h_mid = k - m + _crossing(prof, j, mid)
    h = np.where(above.any(axis=-1), h_mid, h_rise)
    # a rise that stays nearer the rise threshold than the half-way grey within film_nm is no
    # film's edge (a trench wall's rim lifting the sodium beside it, a speck; a thin film blurred
    # to less than half its contrast still gets most of the way): those columns' half-way
    # crossing is looked for from the probe on
    peak = np.where(inside, prof, -np.inf).max(axis=-1)
    redo = ok_cols & ~above.any(axis=-1) & (mid > thr) & (peak < 0.5 * (thr + mid))
    if redo.any():
        for a0, a1, p0, p1 in released_slabs(slabs):
            sel = redo[a0:a1]
            if not sel.any():
                continue
            g, _ = grey(a0, a1, p0, p1)
            k2 = _first_above(g[sel], mid, probe[a0:a1][sel], hs[a0:a1][sel])
            h2 = _crossing(g[sel], k2, mid)
            h[a0:a1][sel] = np.where(k2 + 0.5 < hs[a0:a1][sel], h2, h[a0:a1][sel])
            del g, _
    h = np.clip(h, start, hs)
    # a column measures its surface only where it is specimen from its first voxel through the
    # anode band (to separator|cathode), as the SEI's outer surface takes its columns: a column that
    # a slanting trench wall (or its rim shell) cuts short within the band lies within the wall's
    # glow there, and its grey values smoothed over the specimen are the cap's corner and the lit
    # rows above the shell, not this column's sodium (their rise read the surface up to 27 rows
    # early); such columns take the surface of the nearest measured column
    measured = ok_cols & (run_end >= np.floor(hs))
    if measured.sum() >= 10:
        h = _nearest_measured(h, measured, [vox[a] for a in lat])
    else:
        # columns without specimen at the anode end: keep the class-based height
        h = np.where(ok_cols, h, _anode_first(layers.heights["sodium|sei"], layers))
    h = ndi.median_filter(h, size=3, mode="nearest")
    info.update({"found": True, "sodium_level": na_level, "spread": spread, "rise_threshold": float(thr),
                 "beyond_level": film, "threshold": float(mid), "measured_share": float(measured.mean())})
    heights = dict(layers.heights)
    heights["sodium|sei"] = h if layers.anode_first else n - h
    heights["sei|separator"] = np.maximum(np.asarray(heights.get("sei|separator") if heights.get("sei|separator") is not None
                                                     else heights["sodium|sei"]), heights["sodium|sei"]) \
        if layers.anode_first else np.minimum(heights["sei|separator"], heights["sodium|sei"])
    notes = list(layers.notes) + [f"sodium|sei at the half-way grey between the sodium ({na_level:.3g}) and the layer "
                                  f"beyond it ({film:.3g}), found from the anode end"]
    return replace(layers, heights=heights, notes=notes), info
