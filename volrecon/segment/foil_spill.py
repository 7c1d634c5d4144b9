"""The current collector's spill into the cathode's first rows beside it.

The aluminium foil is the brightest material of the cell.  The probe's blur and the foil's own
edge brightening carry its signal into the cathode voxels within a voxel or two of it along the
stacking axis, so that there the whole cathode reads brighter and with less contrast: on the
phantoms, at 12.7 nm rows, the last cathode row's electrolyte reads about where the bulk's binder
does, and it was labelled binder in most columns (pore in 12 % of that row against 52 % true).

Such a row is a mix ``g = (1 - w) g_bulk + w F`` of what the voxel holds and the foil's level
``F`` (the collector region's median grey).  The cathode's make-up is taken to be the same a row
from the foil as in its bulk, so the share ``w`` at each distance is fitted on the lower quartile of
the two samples (:func:`fit_spill`; the pore's mode, which holds the least of the foil's own voxels
where the found cathode | collector surface is off by one), and the mix is undone there
(:func:`unspill`) in the grey the cathode's voxels are classified on.  Where the cathode's make-up
does change towards the foil (binder-rich or denser there), this assumption biases the correction;
distances where ``w`` is under :data:`MIN_SHARE` are left alone.

Undoing the mix divides the row's noise by ``1 - w`` (2.5 times at the first row on the phantoms),
so the unmixed rows are used for their own decision only (``segment.api``): the cathode's
thresholds and rim length are fitted on the plain grey (fitted on the unmixed grey, the rim length
fell from 8.4 to 1.3 nm and the whole cathode's binder fraction by 0.015), and the forward
refinement, whose model has no foil, neither reads nor moves those rows.  Their noise is brought
back to the bulk's by averaging each distance's voxels along the foil (:func:`steadied`): with the
amplified noise the narrow binder band lost its voxels to the pore (24x192 diglyme seed 0,
oracle-corrected, the last row: pore 0.540 labelled, binder 0.115; steadied 0.486 and 0.173; true
0.522 and 0.179, of which the cut's early columns take a tenth as collector).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from volrecon.errors import ParameterError

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


def fit_spill(grey: np.ndarray, distance: np.ndarray, foil_level: float, *, match: str = "quartile") -> FoilSpill:
    """Fit the foil's spill on a sample of the cathode: grey values and their distances (:func:`foil_distance`).

    Parameters
    ----------
    grey : ndarray
        Grey values of cathode voxels (denoised as the thresholds read them).
    distance : ndarray of int
        Distance to the foil of each value (0: not within the reach: the bulk).
    foil_level : float
        The collector's grey level ``F``.
    match : {"quartile", "mode"}
        The statistic matched between each distance's values and the bulk's: their
        :data:`QUARTILE` quantile, or the pore's level (:func:`pore_mode`), which does not move
        with the pore's share.  The rows at the foil hold more pore than the bulk (particles pack
        against a flat wall: 0.48-0.52 against 0.29-0.40 on the 24x192 phantoms), which takes the
        quartile deeper into the pore there than in the bulk and the fitted share short (carbonate
        seed 1: 0.49 / 0.06 at the first two rows, 0.59 / 0.23 true; the mode 0.59 / 0.26).

    Returns
    -------
    FoilSpill
        The distances, from the foil on, while the foil's share is at least :data:`MIN_SHARE` and
        falls from one distance to the next (a blur's spill does; a share that stops falling is the
        cathode's make-up changing, not the foil), each with enough samples; ``offset = w F`` and
        ``gain = 1 - w``.
    """
    if match not in ("quartile", "mode"):
        raise ParameterError(f"match={match!r}: use 'quartile' or 'mode'")
    level = pore_mode if match == "mode" else (lambda v: float(np.quantile(v, QUARTILE)))
    g, dist = np.asarray(grey, np.float64), np.asarray(distance)
    bulk = g[dist == 0]
    if bulk.size < MIN_SAMPLES:
        return FoilSpill()
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
        num = ndi.gaussian_filter(np.where(at, out, np.float32(0)), sig, mode="nearest", truncate=TRUNCATE)
        den = ndi.gaussian_filter(at.astype(np.float32), sig, mode="nearest", truncate=TRUNCATE)
        out[at] = num[at] / np.maximum(den[at], np.float32(1e-6))
    return out


def steadying_reach(spill: FoilSpill, sigma_px: Sequence[float], axis: int) -> list[int]:
    """Context voxels per axis :func:`steadied` reads (its largest sigma, truncated; 0 along ``axis``)."""
    if spill.reach == 0:
        return [0] * len(sigma_px)
    sig = steadying_sigma(min(spill.gain), sigma_px, axis)
    return [int(np.ceil(TRUNCATE * s)) for s in sig]
