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
from typing import Any, Mapping, Sequence

import numpy as np
from scipy import ndimage as ndi

from volrecon.phases import REGIONS
from volrecon.segment.layers import Layers

_TRUNCATE = 3.0


def smoothing_sigma(sigma_nm: float, voxel_size_nm: Sequence[float]) -> list[float]:
    """Gaussian sigma in voxels per axis (0 where a voxel is already coarser than ``sigma_nm``/2)."""
    return [float(sigma_nm) / float(v) if sigma_nm > 0 and float(sigma_nm) / float(v) >= 0.3 else 0.0
            for v in voxel_size_nm]


def smoothing_reach(sigma_nm: float, voxel_size_nm: Sequence[float]) -> tuple[int, int, int]:
    """Context voxels per axis needed by :func:`smooth`."""
    return tuple(int(math.ceil(_TRUNCATE * s)) + 1 for s in smoothing_sigma(sigma_nm, voxel_size_nm))  # type: ignore[return-value]


def smooth(block: np.ndarray, sigma_nm: float, voxel_size_nm: Sequence[float]) -> np.ndarray:
    """3D Gaussian denoising with the physical voxel size respected."""
    sig = smoothing_sigma(sigma_nm, voxel_size_nm)
    b = np.asarray(block, dtype=np.float32)
    if not any(sig):
        return b
    return ndi.gaussian_filter(b, sig, mode="nearest", truncate=_TRUNCATE)


def sei_outer_surface(
    image: Any, layers: Layers, *, voxel_size_nm: Sequence[float], lateral_nm: float = 60.0,
    min_contrast: float = 2.0, max_ratio: float = 2.5, reg_nm: float = 100.0,
) -> tuple[Layers, dict[str, Any]]:
    """The SEI's outer surface (``sei|separator``) from the grey values beyond the sodium surface.

    The SEI is a thin dense film of one grey level hugging the sodium surface; beyond it the
    separator is porous (pores darker than the film) with fibres brighter than it.  Per voxel,
    "non-film" is darker than the sodium/film midpoint or brighter than the film/fibre midpoint;
    its share, laterally averaged over ``lateral_nm``, is sampled along each column from the
    (refined) sodium surface.  The medians over all columns give the film's and the separator's
    levels and a reference thickness ``t0``; per column the outer surface is the first crossing of
    their midpoint within ``max_ratio * t0 + 2`` voxels of the sodium surface (sub-voxel).  The
    thickness map (not the height) is then regularised: columns without a crossing, or further
    than ``max(1.5 voxels, 50 %)`` from the local median thickness (window ``reg_nm``), are
    not measured and take that local median.  ``info["measured_share"]`` is the share of columns
    measured; ``info["resolved"]`` is False (and a note says so) when ``t0`` is under 2 voxels.

    The SEI is accepted only when it is brighter than the sodium, dense (dark share under 0.25)
    and distinct from the layer beyond it; else ``sei|separator`` stays at the sodium surface
    and ``info["found"]`` is False.

    Returns
    -------
    (Layers, dict)
        Layers with ``sei|separator`` set and ``present["sei"]`` updated, and what was measured.
    """
    h_na = layers.heights.get("sodium|sei")
    h_sc = layers.heights.get("separator|cathode")
    info: dict[str, Any] = {"found": False}
    if h_na is None:
        info["reason"] = "no sodium surface"
        return layers, info
    ax = layers.axis
    n = layers.length
    vox = [float(v) for v in voxel_size_nm]
    lat = [a for a in range(3) if a != ax]
    img = np.asarray(image.compute() if hasattr(image, "compute") else image, dtype=np.float32)
    img = np.moveaxis(img, ax, -1)
    hn = np.asarray(h_na, dtype=np.float64)
    if h_sc is None:
        hs = np.full(hn.shape, float(n)) if layers.anode_first else np.zeros(hn.shape)
    else:
        hs = np.asarray(h_sc, dtype=np.float64)
    if not layers.anode_first:
        img = img[..., ::-1]
        hn, hs = n - hn, n - hs
    sig = [lateral_nm / vox[a] for a in lat] + [0.5]
    g = ndi.gaussian_filter(img, sig, mode="nearest", truncate=_TRUNCATE)
    idx = np.arange(n) + 0.5
    first = np.clip(np.ceil(hn - 0.5).astype(int) + 1, 0, n - 1)  # one voxel into the film
    last_na = np.clip(first - 3, 0, n - 1)  # a voxel inside the sodium
    sei_level = float(np.median(np.take_along_axis(g, first[..., None], axis=-1)))
    na_level = float(np.median(np.take_along_axis(g, last_na[..., None], axis=-1)))
    # the separator is porous, the SEI dense: dark (pore) voxels, i.e. darker than the midpoint
    # of sodium and film, are what marks the separator; their lateral share per column
    dark_thr = 0.5 * (na_level + sei_level)
    fine7 = ndi.gaussian_filter(img, [0.7, 0.7, 0.7], mode="nearest", truncate=_TRUNCATE)
    dshare = ndi.gaussian_filter((fine7 < dark_thr).astype(np.float32), sig, mode="nearest", truncate=_TRUNCATE)
    film_dark = float(np.median(np.take_along_axis(dshare, first[..., None], axis=-1)))
    info.update({"sei_level": sei_level, "sodium_level": na_level, "dark_threshold": dark_thr,
                 "film_dark_share": film_dark})
    contrast = sei_level - na_level
    if contrast <= 0 or film_dark > 0.25:
        info["reason"] = (f"no dense film beyond the sodium surface (contrast {contrast:.3g}, "
                          f"dark share {film_dark:.2f})")
        return layers, info
    # --- the film's outer surface: a thin dense film hugging the sodium surface ------------------
    # The separator beyond it is porous (pores darker than the film) and its fibres, touching the
    # film, are brighter than it: what is not film is what deviates from the film's grey level.
    # 1. global reference: the medians over all columns, aligned on the sodium surface (a fibre
    #    lying on the film moves no column's median), give the film's grey level, the fibres' level,
    #    the film's and the separator's non-film shares and a first film thickness t0
    span = int(min(n - 1, max(8, np.ceil(np.nanmedian(hs - hn)))))
    offs = np.arange(0.0, span, 0.25)
    cols = np.isfinite(hn) & (hs - hn > 1.0)
    pos = hn[cols][:, None] + offs  # sub-voxel samples along each column from the sodium surface
    prof_d = np.median(_sample_columns(dshare[cols], pos), axis=0)
    near = offs <= max(2.0, 0.25 * span)
    i_dense = int(np.argmin(np.where(near, prof_d, np.inf)))
    fine = ndi.gaussian_filter(img, [1.0, 1.0, 1.0], mode="nearest", truncate=_TRUNCATE)
    film_grey = float(np.median(_sample_columns(fine[cols], pos[:, i_dense:i_dense + 1])))
    outer = (idx > 0.5 * (hn + hs)[..., None]) & (idx < hs[..., None] - 0.5)
    sep_grey = fine[outer]
    fibres = sep_grey[sep_grey > film_grey]
    bright_thr = np.inf
    if fibres.size > 100 and float(np.median(fibres)) > film_grey:
        bright_thr = 0.5 * (film_grey + float(np.median(fibres)))
    other = ndi.gaussian_filter(((fine < dark_thr) | (fine > bright_thr)).astype(np.float32), sig, mode="nearest",
                                truncate=_TRUNCATE)
    prof = np.median(_sample_columns(other[cols], pos), axis=0)
    i_min = int(np.argmin(np.where(near, prof, np.inf)))
    film_level = float(prof[i_min])
    sep_level = float(np.median(other[outer])) if outer.any() else float(prof[-1])
    thr = 0.5 * (film_level + sep_level)
    info.update({"film_grey": film_grey, "fibre_threshold": float(bright_thr), "film_level": film_level,
                 "separator_level": sep_level, "threshold": float(thr)})
    if sep_level - film_level < 0.15:
        info["reason"] = (f"the film is not distinct from the layer beyond it (non-film share {film_level:.2f} vs "
                          f"{sep_level:.2f})")
        return layers, info
    cross = np.nonzero((prof > thr) & (np.arange(offs.size) > i_min))[0]
    t0 = float(offs[cross[0]]) if cross.size else float(offs[-1])
    # 2. per column: the first dense -> porous crossing within a bounded window beyond the sodium
    #    surface (a fibre or a dense patch of separator on the film does not carry the film on)
    reach = float(max_ratio * t0 + 2.0)
    win = np.arange(0.0, reach + 0.25, 0.25)
    posw = hn[..., None] + win
    sw = _sample_columns(other, posw)
    sw = np.where(posw < hs[..., None], sw, 1.0)  # the separator|cathode bound closes every window
    start = np.argmin(np.where(win <= max(1.0, 0.5 * t0), sw, np.inf), axis=-1)  # the film's densest point
    over = (sw > thr) & (np.arange(win.size) > start[..., None])
    k = np.argmax(over, axis=-1)
    found = over.any(axis=-1) & cols
    a_ = np.take_along_axis(sw, np.maximum(k - 1, 0)[..., None], axis=-1)[..., 0]
    b_ = np.take_along_axis(sw, k[..., None], axis=-1)[..., 0]
    frac = np.clip(np.where(b_ - a_ > 1e-9, (thr - a_) / np.maximum(b_ - a_, 1e-9), 0.5), 0, 1)
    t_raw = np.where(found, win[np.maximum(k - 1, 0)] + 0.25 * frac, np.nan)
    # 3. lateral regularisation of the thickness (not of the height): robust local median, columns
    #    far from it rejected, unmeasured columns take the local median
    size = [max(3, 2 * round(reg_nm / vox[a]) + 1) for a in lat]
    t_fill = np.where(np.isfinite(t_raw), t_raw, t0)
    t_med = ndi.median_filter(t_fill, size=size, mode="nearest")
    tol = np.maximum(1.5, 0.5 * t_med)
    ok = np.isfinite(t_raw) & (np.abs(t_raw - t_med) <= tol)
    t_clean = np.where(ok, t_raw, t_med)
    t = ndi.median_filter(t_clean, size=3, mode="nearest")
    h = np.clip(hn + t, hn, hs)
    resolved = t0 >= 2.0
    info["found"] = True
    info["reference_thickness_vox"] = t0
    info["measured_share"] = float(ok[cols].mean()) if cols.any() else 0.0
    info["resolved"] = bool(resolved)
    info["mean_thickness_vox"] = float(np.mean((h - hn)[cols])) if cols.any() else 0.0
    if not resolved:
        info["resolution_note"] = (f"SEI about {t0 * vox[ax]:.0f} nm ({t0:.1f} voxels along the stacking axis): "
                                   f"near the resolution limit, its thickness is uncertain by about a voxel")
    heights = dict(layers.heights)
    heights["sei|separator"] = h if layers.anode_first else n - h
    present = dict(layers.present)
    present["sei"] = True
    notes = list(layers.notes) + [(f"sei|separator: first dense -> porous transition within {reach:.1f} voxels of the "
                                   f"sodium surface (film contrast {contrast:.3g} over the sodium, non-film share "
                                   f"{film_level:.2f} vs {sep_level:.2f}; {info['measured_share']:.0%} of columns measured, "
                                   f"the rest from the local median thickness)")]
    if not resolved:
        notes.append(info["resolution_note"])
    return Layers(axis=layers.axis, anode_first=layers.anode_first, heights=heights, present=present,
                  length=layers.length, notes=notes), info


def _sample_columns(vol: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Linear interpolation of ``vol`` (stacking axis last, voxel centres at ``i + 0.5``) at the
    boundary coordinates ``pos`` (shape ``(*vol.shape[:-1], m)``) of each column."""
    n = vol.shape[-1]
    x = np.clip(pos - 0.5, 0, n - 1)
    i0 = np.floor(x).astype(np.int64)
    i1 = np.minimum(i0 + 1, n - 1)
    f = x - i0
    v = vol
    return (1 - f) * np.take_along_axis(v, i0, axis=-1) + f * np.take_along_axis(v, i1, axis=-1)


def classify_regions(
    smoothed: np.ndarray, regions: np.ndarray, base: np.ndarray, *, thresholds: Mapping[str, Sequence[float]],
    names: Mapping[str, int], region_values: Mapping[str, int] = REGIONS,
) -> np.ndarray:
    """Phases of one block from its regions and the per-region thresholds.

    ``base`` holds the phases the caller already decided (frame, sodium/SEI, collector, 0); only
    cathode and separator voxels are re-decided here.
    """
    out = np.array(base, copy=True)
    cat = regions == region_values["cathode"]
    if "cathode" in thresholds and cat.any():
        t = np.asarray(thresholds["cathode"])
        lut = np.array([names["electrolyte"], names["binder"], names["active"]], np.uint8)
        if t.size == 1:
            lut = np.array([names["electrolyte"], names["active"]], np.uint8)
        out[cat] = lut[np.digitize(smoothed[cat], t)]
    sep = regions == region_values["separator"]
    if "separator" in thresholds and sep.any():
        t = np.asarray(thresholds["separator"])
        lut = np.array([names["electrolyte"], names["separator"]], np.uint8)
        out[sep] = lut[np.digitize(smoothed[sep], t)]
    return out


def sodium_surface(
    image: Any, phases: Any, layers: Layers, *, voxel_size_nm: Sequence[float], frame_value: int | None,
    lateral_nm: float = 60.0, rise: float = 6.0,
) -> tuple[Layers, dict[str, Any]]:
    """The sodium surface (``sodium|sei``) followed from the anode end of each column.

    Sodium metal is a dense, uniform, dark layer at the anode end of the stack: its first-guess
    class is unreliable (it shares grey values with electrolyte-filled pores), but laterally
    averaged it is one flat level.  Per column, from the first specimen voxel (frame and
    unassigned excluded) towards the cathode, the sodium ends where the laterally smoothed grey
    value first rises above the sodium level by ``rise`` times that level's spread (the SEI and
    the separator's fibres are brighter).  The search stops at ``separator|cathode``.
    """
    h_sc = layers.heights.get("separator|cathode")
    info: dict[str, Any] = {"found": False}
    if not layers.present.get("sodium") or h_sc is None:
        info["reason"] = "no sodium layer or no separator|cathode interface"
        return layers, info
    ax, n = layers.axis, layers.length
    vox = [float(v) for v in voxel_size_nm]
    lat = [a for a in range(3) if a != ax]
    img = np.moveaxis(np.asarray(image.compute() if hasattr(image, "compute") else image, dtype=np.float32), ax, -1)
    ph = np.moveaxis(np.asarray(phases.compute() if hasattr(phases, "compute") else phases), ax, -1)
    hs = np.asarray(h_sc, dtype=np.float64)
    if not layers.anode_first:
        img, ph, hs = img[..., ::-1], ph[..., ::-1], n - hs
    valid = ph != 0
    if frame_value is not None:
        valid &= ph != frame_value
    # lateral smoothing of the specimen only (normalised convolution: the frame does not bleed in)
    sig = [lateral_nm / vox[a] for a in lat] + [0.5]
    w = ndi.gaussian_filter(valid.astype(np.float32), sig, mode="nearest", truncate=_TRUNCATE)
    g = ndi.gaussian_filter(np.where(valid, img, 0).astype(np.float32), sig, mode="nearest", truncate=_TRUNCATE)
    g = g / np.maximum(w, 1e-3)
    has = valid.any(axis=-1)
    start = np.where(has, np.argmax(valid, axis=-1), 0)
    # the sodium level: a few voxels into the specimen
    probe = np.clip(start + 2, 0, n - 1)
    lev = np.take_along_axis(g, probe[..., None], axis=-1)[..., 0]
    ok_cols = has & (probe < hs)
    if ok_cols.sum() < 10:
        info["reason"] = "too few columns start in the specimen"
        return layers, info
    na_level = float(np.median(lev[ok_cols]))
    spread = float(np.median(np.abs(lev[ok_cols] - na_level))) * 1.4826 + 1e-6
    thr = na_level + rise * spread
    idx = np.arange(n)
    above = (g > thr) & (idx >= probe[..., None])
    above |= (idx + 0.5) >= hs[..., None]
    k = np.where(above.any(axis=-1), np.argmax(above, axis=-1), np.floor(hs).astype(int))
    km = np.clip(k - 1, 0, n - 1)
    ga = np.take_along_axis(g, km[..., None], axis=-1)[..., 0]
    gb = np.take_along_axis(g, np.clip(k, 0, n - 1)[..., None], axis=-1)[..., 0]
    frac = np.clip(np.where(gb - ga > 1e-9, (thr - ga) / np.maximum(gb - ga, 1e-9), 0.5), 0, 1)
    h = np.clip(km + 0.5 + frac, start, hs)
    # columns without specimen at the anode end: keep the class-based height
    old = np.asarray(layers.heights["sodium|sei"], dtype=np.float64)
    old = old if layers.anode_first else n - old
    h = np.where(ok_cols, h, old)
    h = ndi.median_filter(h, size=3, mode="nearest")
    info.update({"found": True, "sodium_level": na_level, "spread": spread, "threshold": float(thr)})
    heights = dict(layers.heights)
    heights["sodium|sei"] = h if layers.anode_first else n - h
    heights["sei|separator"] = np.maximum(np.asarray(heights.get("sei|separator") if heights.get("sei|separator") is not None
                                                     else heights["sodium|sei"]), heights["sodium|sei"]) \
        if layers.anode_first else np.minimum(heights["sei|separator"], heights["sodium|sei"])
    notes = list(layers.notes) + [f"sodium|sei followed from the anode end (sodium level {na_level:.3g})"]
    return Layers(axis=layers.axis, anode_first=layers.anode_first, heights=heights, present=layers.present,
                  length=layers.length, notes=notes), info
