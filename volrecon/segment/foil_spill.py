"""The current collector's spill into the cathode's first rows beside it.

The aluminium foil is the brightest material of the cell.  The probe's blur and the foil's own
edge brightening carry its signal into the cathode voxels within a voxel or two of it along the
stacking axis, so that there the whole cathode reads brighter and with less contrast: on the
phantoms, at 12.7 nm rows, the last cathode row's electrolyte reads about where the bulk's binder
does, and it was labelled binder in most columns (pore in 12 % of that row against 52 % true).

Such a row is a mix ``g = (1 - w) g_bulk + w F`` of what the voxel holds and the foil's level
``F`` (the collector region's median grey): every phase's level is lifted by ``w (F - level)``.  The
share ``w`` at each distance is fitted on the pore's level, the mode of the darker half of the row's
grey against the bulk's (:func:`fit_spill`, :func:`pore_mode`): of the phases the pore has the
largest lever ``F - level``, and its mode does not move with the row's pore share, nor with the
foil's own voxels where the found cathode | collector surface is off by one.  The mix is undone there
(:func:`unspill`) in the grey the cathode's voxels are classified on (both the unsupervised method
and the classifier's boundary rule); distances where ``w`` is under :data:`MIN_SHARE` are left alone.
A row whose pore is too scarce to be the darker half's most frequent phase (its make-up differs from
the bulk's) has its pore's level read below that half's peak (:func:`pore_level`); under
:data:`DARKER_SHARE` of the row it is missed, and the share comes out high (:func:`fit_spill` gives
the bound).

Undoing the mix divides the row's noise by ``1 - w`` (2.5 times at the first row on the phantoms),
so the unmixed rows are used for their own decision only (``segment.api``): the cathode's
thresholds and rim length are fitted on the plain grey (fitted on the unmixed grey, the rim length
fell from 8.4 to 1.3 nm and the whole cathode's binder fraction by 0.015), and the forward
refinement's level fit leaves those rows out.  Their noise is brought
back to the bulk's by averaging each distance's voxels along the foil (:func:`steadied`): with the
amplified noise the narrow binder band lost its voxels to the pore (24x192 diglyme seed 0,
oracle-corrected, the last row: pore 0.540 labelled, binder 0.115; steadied 0.486 and 0.173; true
0.522 and 0.179, of which the cut's early columns take a tenth as collector).

Where it sits in the segmentation stage (:func:`volrecon.segment.api.segment_volume`): after the
layers are found, the spill is fitted once on a few slices (:func:`_fit_foil_spill`), undone
chunk by chunk in the grey the unsupervised method thresholds (:func:`_foil_unspilled`), read on the
classifier's boundary rule's sample (:func:`_foil_spill_grey`, :func:`_spill_read`); the unmixed rows
are the first labels of the forward refinement, which then moves them on its model with the foil at
its own level (``segment.api._with_foil_level``; where that level cannot be read, they are kept out
of it, :func:`_beside_foil`); the gradient beside the foil reads the foil's voxels as the row beside
them (:func:`_beside_foil_gradient`, :func:`_foil_filled`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import dask.array as da
import numpy as np

from volrecon._spread import spread_indices
from volrecon.errors import ParameterError
from volrecon.phases import REGIONS
from volrecon.segment._smooth import gaussian
from volrecon.segment.cathode_rims import gradient_magnitude, gradient_reach, rim_corrected
from volrecon.segment.chunking import _overlap

QUARTILE = 0.25
"""Quantile of the cathode's grey matched between the rows beside the foil and its bulk."""

MAX_REACH = 4
"""Most voxels from the foil (along the stacking axis) the spill is fitted at."""

MIN_SHARE = 0.05
"""Least share ``w`` of the foil's grey for a distance to be corrected; the first distance under it ends the reach."""

MIN_SAMPLES = 500
"""Fewest cathode voxels at a distance (and in the bulk) for a fit."""


@dataclass(frozen=True)
class FoilSpill:
    """The fitted spill: at distance ``d`` (1-based) from the foil, grey = ``offset[d-1] + gain[d-1] * bulk grey``.

    Attributes
    ----------
    offset, gain : tuple of float
        Per distance, nearest the foil first; empty when nothing is corrected.
    samples : tuple of int
        Cathode voxels sampled at each distance.
    """

    offset: tuple[float, ...] = ()
    gain: tuple[float, ...] = ()
    samples: tuple[int, ...] = ()

    @property
    def reach(self) -> int:
        """Voxels from the foil that are corrected."""
        return len(self.gain)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields and the reach."""
        return {**{k: list(v) for k, v in asdict(self).items()}, "reach": self.reach}


def foil_distance(regions: np.ndarray, *, axis: int, cathode: int, collector: int, reach: int = MAX_REACH) -> np.ndarray:
    """Voxels along ``axis`` from each cathode voxel to the collector region, 1 to ``reach``; 0 beyond and elsewhere.

    Both directions along the axis are looked at (the foil may lie on either side of the cathode).
    """
    reg = np.asarray(regions)
    cat, col = reg == cathode, reg == collector
    out = np.zeros(reg.shape, np.uint8)
    n = reg.shape[axis]
    for d in range(reach, 0, -1):
        if d >= n:
            continue
        near = np.zeros(reg.shape, bool)
        lo, hi = [slice(None)] * reg.ndim, [slice(None)] * reg.ndim
        lo[axis], hi[axis] = slice(0, n - d), slice(d, n)
        near[tuple(lo)] |= col[tuple(hi)]  # the foil d voxels further along the axis
        near[tuple(hi)] |= col[tuple(lo)]  # or d voxels back
        out[near & cat] = d
    return out


MODE_BINS = 64
"""Histogram bins of :func:`pore_mode`, between the sample's 1 % quantile and its median."""

MODE_SMOOTH_BINS = 5
"""Width (bins) of the box :func:`pore_mode` smooths the histogram with."""


def pore_mode(values: np.ndarray) -> float:
    """The peak of the darker half of ``values`` (a cathode's grey): the pore's level, whatever the
    pore's share, as long as the pore is the darker half's most frequent phase."""
    v = np.asarray(values, np.float64)
    lo, hi = float(np.quantile(v, 0.01)), float(np.median(v))
    if not hi > lo:
        return hi
    h, edges = np.histogram(v, bins=MODE_BINS, range=(lo, hi))
    h = np.convolve(h, np.ones(MODE_SMOOTH_BINS) / MODE_SMOOTH_BINS, mode="same")
    i = int(h.argmax())
    return float(0.5 * (edges[i] + edges[i + 1]))


DARKER_SHARE = 0.15
"""Share of a sample two pore spreads or more below the level :func:`pore_mode` read from which that
level is another phase's: the pore is the cathode's darkest phase (:func:`pore_level`)."""


BULK_DARK_SHARE = 0.03
"""Largest share of the bulk's sample two pore spreads or more below its pore level for which the
rows' pore level may be read again below their darker half's peak (:func:`pore_level`): a pore's own
noise puts 2.3 % of the pore there, less of the cathode; more is a darker phase (dark voids), which
the re-reading in a row would take for the pore (review rev22: void 0.0, electrolyte 0.2, a foil at
0.9, void 5 % of the bulk and 20 % of a row: shares 0.35 for 0.5, and none fitted for 0.2)."""


def pore_spread(values: np.ndarray, level: float) -> float:
    """The pore's spread: the scaled median distance below ``level`` of the values under it (the pore's
    darker side, where no brighter phase lies)."""
    v = np.asarray(values, np.float64)
    below = level - v[v < level]
    return 1.4826 * float(np.median(below)) if below.size else 0.0


def pore_level(values: np.ndarray, spread: float) -> float:
    """The pore's level in ``values``: :func:`pore_mode`, read again on the values two ``spread`` or
    more below it while those hold at least :data:`DARKER_SHARE` of the sample.

    Where the pore is too scarce to be the most frequent phase of the darker half (a row at the foil
    with fewer pores than the bulk), the darker half's peak is the binder's or the particles', and
    the pore's voxels lie well below it; the pore is the darkest phase, so its level is read among them.
    """
    v = np.asarray(values, np.float64)
    least = DARKER_SHARE * v.size
    level = pore_mode(v)
    if not spread > 0:
        return level
    while True:
        below = v[v < level - 2.0 * spread]
        if below.size < max(least, 2):
            return level
        v, level = below, pore_mode(below)


def fit_spill(grey: np.ndarray, distance: np.ndarray, foil_level: float, *, match: str = "mode") -> FoilSpill:
    """Fit the foil's spill on a sample of the cathode: grey values and their distances (:func:`foil_distance`).

    Parameters
    ----------
    grey : ndarray
        Grey values of cathode voxels (denoised as the thresholds read them).
    distance : ndarray of int
        Distance to the foil of each value (0: not within the reach: the bulk).
    foil_level : float
        The collector's grey level ``F``.
    match : {"mode", "quartile"}
        The statistic matched between each distance's values and the bulk's: the pore's level
        (:func:`pore_level`), or their :data:`QUARTILE` quantile (for comparison).  The quartile moves
        with the pore's share: the rows at the foil hold more pore than the bulk (particles pack
        against a flat wall: 0.48-0.57 against 0.29-0.43 on the 24x192 phantoms), which takes the
        quartile deeper into the pore there and the fitted share short.  Against the truth's share
        (the median lift of the true electrolyte, ``benchmarks/foil_rows.py``; 24x192, seeds 0-1,
        both presets, corrected and oracle, found layers) the first / second row's share is off by
        0.016 / 0.010 on average, 0.034 at most, with the mode; by 0.051 / 0.083, 0.167 at most
        (carbonate seed 1, second row 0.058 for 0.223), with the quartile.

        A row whose make-up differs from the bulk's changes the weights of the phases in its
        histogram, not their levels.  The darker half's peak is the pore's level as long as the
        pore is the most frequent phase there; in a pore-poor row it is the binder's or the
        particles' lifted level, so the pore's level is read again among the values well below it
        (:func:`pore_level`).  Measured on mixtures of three levels (0.2, 0.37, 0.65 of a foil at
        0.9, share 0.5): right within 0.01 down to a pore share of 0.1 with the binder at 0.15 of
        the row, of 0.2 with the binder at 0.3 (the darker half's peak alone: 0.25 and 0.4, below
        them 0.62-0.80); under :data:`DARKER_SHARE` of the row beside a more frequent binder, the
        pore is still missed (0.62).  Not where the bulk holds a phase darker than its pore
        (:data:`BULK_DARK_SHARE`: dark voids), which a row's re-reading would take for the pore.  On a carbonate phantom pore-poor beside the foil (16x160,
        seed 1, oracle: the rows' pore share 0.23 / 0.20 against the bulk's 0.41) the shares
        0.653 / 0.296 for 0.674 / 0.291 true (the darker half's peak alone 0.867 / 0.762 / 0.728;
        the quartile 0.749 / 0.544); the 24x192 phantoms' fits are unchanged.  Fitting every phase's
        level at one share with the row's weights free tells the two apart on such mixtures, but
        not on the phantoms' rows: the pore lifted by ``(B - P) / (F - P)`` (0.28-0.29 there) lands
        on the binder's level ``B``, so that only the particles' level, with a lever ``F - A`` a
        fifth of the pore's and their own rims beside the foil, is left to decide, and it did not
        (carbonate seed 0, corrected: second row 0.08 for 0.285 true; the first rows 0.02-0.04
        high on diglyme, where the pore class holds the voids).

    Returns
    -------
    FoilSpill
        The distances, from the foil on, while the foil's share is at least :data:`MIN_SHARE` and
        falls from one distance to the next (a blur's spill does; a share that stops falling is the
        cathode's make-up changing, not the foil), each with enough samples; ``offset = w F`` and
        ``gain = 1 - w``.
    """
    if match not in ("mode", "quartile"):
        raise ParameterError(f"match={match!r}: use 'mode' or 'quartile'")
    g, dist = np.asarray(grey, np.float64), np.asarray(distance)
    bulk = g[dist == 0]
    if bulk.size < MIN_SAMPLES:
        return FoilSpill()
    if match == "mode":
        peak = pore_mode(bulk)
        spread = pore_spread(bulk, peak)
        if np.mean(bulk < peak - 2.0 * spread) > BULK_DARK_SHARE:
            spread = 0.0  # a darker phase than the pore in the bulk: the rows' peak is not re-read
        level = lambda v: pore_level(v, spread)  # noqa: E731
    else:
        level = lambda v: float(np.quantile(v, QUARTILE))  # noqa: E731
    qb = level(bulk)
    if not foil_level > qb:
        return FoilSpill()
    offset, gain, samples = [], [], []
    for d in range(1, int(dist.max(initial=0)) + 1):
        near = g[dist == d]
        if near.size < MIN_SAMPLES:
            break
        w = (level(near) - qb) / (float(foil_level) - qb)
        if not MIN_SHARE <= w < (1.0 - gain[-1] if gain else 0.95):
            break
        offset.append(w * float(foil_level))
        gain.append(1.0 - w)
        samples.append(int(near.size))
    return FoilSpill(tuple(offset), tuple(gain), tuple(samples))


def unspill(grey: np.ndarray, distance: np.ndarray, spill: FoilSpill) -> np.ndarray:
    """``grey`` (float32 copy) with the fitted spill undone at the distances it covers."""
    out = np.array(grey, dtype=np.float32)
    for d, (a, b) in enumerate(zip(spill.offset, spill.gain), start=1):
        at = distance == d
        out[at] = (out[at] - np.float32(a)) / np.float32(b)
    return out


WHITE_SIGMA_PX = float(1.0 / (2.0 * np.sqrt(np.pi)))
"""Gaussian sigma (voxels) at which the variance of white noise smoothed along one axis equals its own:
the variance of noise smoothed by ``s`` goes as ``1 / (2 sqrt(pi) s)`` along each axis."""

TRUNCATE = 4.0
"""Gaussian truncation (sigmas) of :func:`steadied`."""


def steadying_sigma(gain: float, sigma_px: Sequence[float], axis: int) -> list[float]:
    """Extra Gaussian sigma per axis (voxels; 0 along ``axis``) that brings an unmixed row's noise back to the bulk's.

    Unmixing divides the row's noise by ``gain``.  The grey was smoothed by ``sigma_px``; the noise's
    variance goes as ``1 / s`` per axis smoothed by ``s`` (:data:`WHITE_SIGMA_PX` at least: the raw
    noise), so widening both axes in the row's plane from ``s`` to ``s / gain`` divides it by
    ``gain ** 2``: an extra ``s * sqrt(1 / gain**2 - 1)`` (Gaussians add in quadrature).
    """
    extra = float(np.sqrt(max(1.0 / float(gain) ** 2 - 1.0, 0.0)))
    return [0.0 if ax == axis else max(float(s), WHITE_SIGMA_PX) * extra for ax, s in enumerate(sigma_px)]


def steadied(grey: np.ndarray, distance: np.ndarray, spill: FoilSpill, *, sigma_px: Sequence[float],
             axis: int) -> np.ndarray:
    """Unmixed ``grey`` (:func:`unspill`'s) averaged, at each distance, over the voxels at that distance
    by :func:`steadying_sigma` (normalised convolution in the row's plane: nothing crosses to another
    distance or out of the cathode), so that its noise is the bulk's again.

    The price is in-plane resolution along the foil: at the phantoms' first row (``gain`` 0.40) the
    extra sigma is 2.3 voxels along x, 1.1 along z.
    """
    out = np.array(grey, dtype=np.float32)
    for d, g in enumerate(spill.gain, start=1):
        at = distance == d
        if not at.any():
            continue
        sig = steadying_sigma(g, sigma_px, axis)
        # nothing is smoothed along ``axis``: only the planes across it that hold the row are filtered
        slab = _planes_holding(at, axis)
        a, part = at[slab], out[slab]
        num = gaussian(np.where(a, part, np.float32(0)), sig, mode="nearest", truncate=TRUNCATE)
        den = gaussian(a.astype(np.float32), sig, mode="nearest", truncate=TRUNCATE)
        part[a] = num[a] / np.maximum(den[a], np.float32(1e-6))
    return out


def _planes_holding(mask: np.ndarray, axis: int) -> tuple[slice, ...]:
    """The slab of ``mask`` between the first and last plane across ``axis`` holding a True voxel."""
    planes = np.flatnonzero(mask.any(axis=tuple(ax for ax in range(mask.ndim) if ax != axis)))
    slab = [slice(None)] * mask.ndim
    slab[axis] = slice(int(planes[0]), int(planes[-1]) + 1)
    return tuple(slab)


def steadying_reach(spill: FoilSpill, sigma_px: Sequence[float], axis: int) -> list[int]:
    """Context voxels per axis :func:`steadied` reads (its largest sigma, truncated; 0 along ``axis``)."""
    if spill.reach == 0:
        return [0] * len(sigma_px)
    sig = steadying_sigma(min(spill.gain), sigma_px, axis)
    return [int(np.ceil(TRUNCATE * s)) for s in sig]


def _foil_spill_grey(grey: np.ndarray, regions: np.ndarray, spill: FoilSpill, *, axis: int,
                     vox: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The cathode's voxels within the foil's fitted ``spill`` (along ``axis``), ``grey`` there
    unmixed (:func:`volrecon.segment.foil_spill.unspill`), and the gradient of that grey with the
    foil's own voxels read as the cathode's row beside them (:func:`_foil_filled`).

    The fitted mix takes in the foil's blur and rim; the gradient at those rows is the foil's step,
    which a rim correction would read as a rim of the cathode's own (24x192 carbonate seed 0,
    corrected: the first row's electrolyte read 110 on the rim-corrected grey, the bulk's 70).  The
    unmixed rows are not averaged along the foil (:func:`volrecon.segment.foil_spill.steadied`): each
    voxel's own grey is decided here, and the averaging carried the particles' rims into the pore
    beside them (there, with the quartile's fit: the first row's electrolyte, rim-corrected for the
    dark side, 79 steadied, 72 not, the bulk's 66).
    """
    dist = foil_distance(regions, axis=axis, cathode=REGIONS["cathode"], collector=REGIONS["collector"],
                         reach=spill.reach)
    unmixed = unspill(grey, dist, spill)
    return dist > 0, unmixed, _beside_foil_gradient(unmixed, regions, dist > 0, axis=axis, vox=vox)


def _beside_foil_gradient(grey: np.ndarray, regions: np.ndarray, rows: np.ndarray, *, axis: int,
                          vox: tuple[float, float, float]) -> np.ndarray:
    """:func:`~volrecon.segment.cathode_rims.gradient_magnitude` of ``grey`` at the voxels ``rows`` (the
    cathode's rows beside the foil), the collector's own voxels read as the cathode's row beside them
    (:func:`_foil_filled`): the foil's step is not a rim of the cathode's phases; 0 elsewhere.

    Only the band of ``rows`` along ``axis``, with the gradient's reach on either side, is filtered."""
    grad = np.zeros(np.shape(grey), np.float32)
    at = np.flatnonzero(np.asarray(rows).any(axis=tuple(ax for ax in range(grad.ndim) if ax != axis)))
    if at.size:
        reach = gradient_reach(vox)[axis]
        band = [slice(None)] * grad.ndim
        band[axis] = slice(max(int(at[0]) - reach, 0), int(at[-1]) + reach + 1)
        band_ = tuple(band)
        filled = _foil_filled(np.asarray(grey)[band_], regions[band_] == REGIONS["collector"], axis, reach)
        grad[band_] = np.where(rows[band_], gradient_magnitude(filled, vox), np.float32(0))
    return grad


def _foil_filled(grey: np.ndarray, foil: np.ndarray, axis: int, reach: int) -> np.ndarray:
    """``grey`` with each ``foil`` voxel within ``reach`` voxels of the foil's edge along ``axis``
    given the grey of the nearest voxel outside the foil along that axis (as a filter's ``nearest``
    edge mode: the step into the foil leaves the gradient beside it)."""
    out = np.array(grey, dtype=np.float32)
    todo = np.array(foil, dtype=bool)
    n = todo.shape[axis]
    for d in range(1, min(reach, n - 1) + 1):
        for src, dst in ((slice(d, n), slice(0, n - d)), (slice(0, n - d), slice(d, n))):
            at_src, at_dst = [slice(None)] * out.ndim, [slice(None)] * out.ndim
            at_src[axis], at_dst[axis] = src, dst
            take = todo[tuple(at_dst)] & ~foil[tuple(at_src)]
            out[tuple(at_dst)][take] = out[tuple(at_src)][take]
            todo[tuple(at_dst)] &= ~take
    return out


def _spill_read(grey: np.ndarray, gradient: np.ndarray, length_nm: float,
                spill: tuple[np.ndarray, np.ndarray, np.ndarray] | None) -> np.ndarray:
    """:func:`~volrecon.segment.cathode_rims.rim_corrected` ``grey``; in the cathode's rows within the
    foil's spill (``spill``: :func:`_foil_spill_grey`'s rows, unmixed grey and its gradient) on the
    unmixed grey."""
    out = rim_corrected(grey, gradient, length_nm)
    if spill is not None and spill[0].any():
        out[spill[0]] = rim_corrected(spill[1][spill[0]], spill[2][spill[0]], length_nm)
    return out


FOIL_SAMPLE_SLICES = 8


def _fit_foil_spill(smoothed: da.Array, reg: da.Array, *, axis: int, params: dict[str, Any],
                    match: str = "mode") -> FoilSpill:
    """The collector foil's spill into the cathode's first rows (:func:`volrecon.segment.foil_spill.fit_spill`).

    Fitted on :data:`FOIL_SAMPLE_SLICES` evenly spread slices, read whole in one compute (the
    distances run along the stacking axis, in the slice); the fit is in ``parameters["foil_spill"]``.
    Nothing is fitted when the layers are stacked along z (the face parallel to them: no slice holds
    the distances) or there is no collector.  ``match``: the statistic matched between the rows and
    the bulk (:func:`volrecon.segment.foil_spill.fit_spill`).

    The unsupervised method and the classifier's boundary rule fit it alike, on the pore's level (one
    physical share, review rev21; the unsupervised method read the lower quartile before, whose share
    is short where the rows hold more pore than the bulk).  Measured (``benchmarks/foil_rows.py``,
    24x192 seeds 0-1, both presets, corrected and oracle-corrected), unsupervised: carbonate seed 1's
    first row's pore Dice 0.766 / 0.764 -> 0.886 / 0.890 (the quartile's second-row share 0.06 for
    0.22 true); on the six other stacks the first rows read more pore than true (first row's pore
    Dice 0.01-0.03 lower, the whole cathode's binder fraction 0.000-0.003 lower, whole-stack pore
    Dice within 0.002), and on all eight the first two rows' active recall is 0.01-0.05 lower.  The
    phases beside the foil are not lifted alike: the binder less than the pore (carbonate seed 0,
    oracle, the truth's shares at the second / third row: electrolyte 0.241 / 0.053, binder 0.209 /
    -0.001), so that unmixed with the pore's share, even the truth's, 42 / 42 / 33 % of the first three
    rows' true binder is read as pore (12.5 % in the bulk); the quartile's shorter share had hidden it
    on pore-rich rows, and failed where the rows hold less pore than it assumes (carbonate 16x160
    seed 1, oracle, the rows' pore share 0.23 / 0.20 against the bulk's 0.41: the first two rows
    labelled pore 0.368 / 0.362 -> 0.210 / 0.207, the first row's active recall 0.495 -> 0.842).
    """
    cat, col = REGIONS["cathode"], REGIONS["collector"]
    if axis == 0:
        params["foil_spill"] = {"reach": 0, "reason": "layers stacked along z"}
        return FoilSpill()
    greys, dists, foil = [], [], []
    zs = [int(z) for z in spread_indices(smoothed.shape[0], FOIL_SAMPLE_SLICES)]
    # one compute: each chunk the sampled slices lie in is read (decompressed, smoothed) once, not once per slice
    g_all, r_all = (np.asarray(a) for a in da.compute(smoothed[zs], reg[zs]))
    for g, r in zip(g_all, r_all):
        keep = r == cat
        greys.append(g[keep])
        dists.append(foil_distance(r, axis=axis - 1, cathode=cat, collector=col)[keep])
        foil.append(g[r == col])
    foil_grey = np.concatenate(foil)
    if foil_grey.size == 0:
        params["foil_spill"] = {"reach": 0, "reason": "no collector"}
        return FoilSpill()
    spill = fit_spill(np.concatenate(greys), np.concatenate(dists), float(np.median(foil_grey)), match=match)
    params["foil_spill"] = spill.to_dict()
    return spill


def _foil_unspilled(smoothed: da.Array, reg: da.Array, spill: FoilSpill, *, axis: int,
                    sigma_px: Sequence[float]) -> da.Array:
    """``smoothed`` with the fitted foil spill undone in the cathode's rows beside the collector
    (:func:`volrecon.segment.foil_spill.unspill`) and their noise brought back to the bulk's
    (:func:`volrecon.segment.foil_spill.steadied`; ``sigma_px``: the smoothing ``smoothed`` had);
    ``smoothed`` itself when nothing is fitted."""
    if spill.reach == 0:
        return smoothed
    cat, col = REGIONS["cathode"], REGIONS["collector"]
    depth = steadying_reach(spill, sigma_px, axis)
    depth[axis] = spill.reach

    def fix(g_: np.ndarray, r_: np.ndarray, core: tuple[slice, ...], faces: Any) -> np.ndarray:
        d_ = foil_distance(r_, axis=axis, cathode=cat, collector=col, reach=spill.reach)
        return np.ascontiguousarray(steadied(unspill(g_, d_, spill), d_, spill, sigma_px=sigma_px, axis=axis)[core])

    return _overlap(fix, smoothed, depth, np.float32, extra=(reg,)).rechunk(smoothed.chunks)


def _beside_foil(regions: np.ndarray, foil: tuple[FoilSpill, int]) -> np.ndarray:
    """The collector and the cathode voxels within the foil's fitted spill (``foil``: the spill and the
    stacking axis of ``regions``; no reach: the collector alone)."""
    col = regions == REGIONS["collector"]
    if foil[0].reach == 0:
        return col
    dist = foil_distance(regions, axis=foil[1], cathode=REGIONS["cathode"], collector=REGIONS["collector"],
                         reach=foil[0].reach)
    return col | (dist > 0)
