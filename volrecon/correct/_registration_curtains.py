"""Curtain stripes as a depth-invariant x reference for frameless drift registration.

Curtaining stripes are milled into the face by the ion beam below top-surface and dense
features: vertical, fixed in the *specimen* frame, and persisting over tens to hundreds of
slices while the content between them changes from slice to slice. Their column position is
therefore a reference for dx much like a trench wall, one that an image-only estimator on the
content does not have: the content's own mean motion (rods all leaning one way) is a steady
rate the tile consensus cannot tell from drift, whereas two slices far apart share their
curtains but not their content.

Three steps, all measured on the data:

1. :func:`stripe_profile` -- per slice, in the streaming pass: the structure region divided by
   its mean (brightness steps), band-passed along x at the stripes' scale (a difference of
   Gaussians, ``STRIPE_SMOOTH_PX`` to ``STRIPE_BACKGROUND_PX``, or where the stripes were
   measured on a few slices before the pass (:mod:`volrecon.correct._stripe_width`) the band
   in which they stand out most from the content, :func:`stripe_band`; shading and the
   content's large features go), winsorised at ``WINSOR`` robust sigmas (bright edges of the
   content do not dominate) and averaged along y (the stripes add up, the content averages out). ``W`` floats
   per slice.
2. :func:`profile_correlation` / :func:`choose_baselines` -- the peak correlation of two
   slices' profiles near the current trajectory's difference, against the maximum on the same
   window of the first profile against the second mirrored along x (its null: the same spectra,
   no common stripes; the far lags of the same correlation are no null, the Hann-windowed
   profiles overlap less there and their maxima are smaller). Its median over pairs decays with the slice distance while the
   content decorrelates and then levels off where only the curtains are shared; the baselines
   start at three e-folding lengths of that decay. The anchor is skipped where nothing decays
   (static content, whose long pairs the structure estimate already uses), or where the long pairs'
   mean peak is not ``SIGNIFICANCE`` standard errors above the mean of their nulls (no
   persistent stripes), counting one independent unit per decorrelation length of the slices
   (pairs of several baselines share slices). A maximum on the search window's edge is no peak:
   such pairs count in the significance (their nulls are on the same window) but carry no shift.
3. :func:`solve_correction` -- a correction ``c`` of the trajectory's dx: its steps are a random
   walk (the current trajectory's short-range shape is kept up to that), the long pairs
   measure ``c[b] - c[a]``, each with a variance from its peak's correlation. The step variance
   and the pairs' scale are the restricted maximum-likelihood ones (a grid over their ratio,
   each pair counted as one over the decorrelation length of an independent one); Huber
   reweighting, pairs beyond ``REJECT`` robust sigmas rejected. Where the pairs carry nothing
   the step variance goes to ~0 and the trajectory stays as it was.

Stripes fixed in the *detector* frame (not curtains) would pull dx toward no drift: the peak is
searched only within a few expected errors of the current trajectory's difference
(:func:`search_half_width`), and where the trajectory moved more than ``DETECTOR_MARGIN_PX``
over a pair's baseline the pairs must correlate better at its difference than at lag 0
(:func:`detector_stripes`), or the anchor is skipped. Where the drift never moves that far over
the baselines the test cannot tell them apart (``detector_significance`` NaN) and such stripes
still pull dx.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from scipy import ndimage

from volrecon.correct._stripe_width import StripeWidth
from volrecon.correct.frame import _robust_sigma

#: Gaussian sigma (px) of the background removed along x: curtain stripes are 0.8-3 px wide
#: (Gaussian sigma), so a background of twice the widest keeps them and drops shading and most
#: of the content's area
STRIPE_BACKGROUND_PX = 6.0
#: Gaussian sigma (px) of the smoothing along x: pixel noise above the narrowest stripes' scale
STRIPE_SMOOTH_PX = 0.7
#: difference-of-Gaussians bands tried where the stripes were measured (:func:`stripe_band`):
#: smoothing and background sigmas (px), the background at least ``BAND_MIN_RATIO`` times the
#: smoothing and no less than 3 px (a 2 px background rings: its correlation's side lobes fall
#: inside the pairs' search windows; measured on a 0.8-3 px phantom, seed 1: anchor
#: significance 0.96, skipped, against 2.0-3.3 with 3-6 px)
BAND_SMOOTH_PX = (0.7, 1.0, 1.5, 2.0, 3.0, 4.0)
BAND_BACKGROUND_PX = (3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0, 32.0)
BAND_MIN_RATIO = 2.5
#: band-passed pixels are clipped at this many robust sigmas before the row average
WINSOR = 3.0
#: correlation upsampling factor before the parabolic sub-pixel peak fit
UPSAMPLE = 4
#: the first baseline is this many e-folding lengths of the content's decorrelation
DECORRELATION_LENGTHS = 3.0
#: ratio between successive baselines, and the longest as a share of the stack
BASELINE_RATIO = 1.6
LONGEST_SHARE = 0.6
#: at most this many baselines (the shortest ones): a bound on the pairs' cost on long stacks;
#: the 200-slice phantoms use 4-5
MOST_BASELINES = 5
#: Huber constant and rejection limit, in robust sigmas of the pairs' normalised residuals
HUBER = 1.5
REJECT = 4.0
#: fewest long pairs a solve needs
MIN_PAIRS = 20
#: lag 0 and the trajectory's difference must lie this far (px) apart for the detector-stripe
#: test: the correlation peak of stripes 0.8-3 px wide (Gaussian sigma) has fallen off there
DETECTOR_MARGIN_PX = 3.0


def band_gain(freq: np.ndarray, band: tuple[float, float]) -> np.ndarray:
    """Amplitude gain of a difference-of-Gaussians band ``(smooth, background)`` sigmas (px)
    at frequencies ``freq`` (cycles per px)."""
    smooth, background = band
    return np.exp(-0.5 * (2 * np.pi * freq * smooth) ** 2) - np.exp(-0.5 * (2 * np.pi * freq * background) ** 2)


def band_snr(stripes: StripeWidth, band: tuple[float, float]) -> float:
    """Expected peak-to-noise ratio of two slices' profile correlation through ``band``.

    Two whole-region profiles far apart share the stripes (power ``S``, ``stripes.shared``) and
    not the rest (``N``, ``stripes.unshared``). Through a gain ``g`` the correlation's peak is
    ``sum g^2 S`` and its noise variance ``sum g^4 (N^2 + 2 S N)`` (the cross terms of the
    unshared parts with each other and with the stripes; one term per frequency bin).
    """
    gain = band_gain(stripes.freq, band) ** 2
    noise = stripes.unshared
    spread = float(np.sum(gain**2 * (noise**2 + 2 * np.clip(stripes.shared, 0.0, None) * noise)))
    # the peak from the shared spectrum as measured: clipped at zero, the bins where it is only
    # noise would add to it
    return float(np.sum(gain * stripes.shared)) / math.sqrt(spread) if spread > 0 else 0.0


def stripe_band(stripes: StripeWidth | None = None) -> tuple[float, float]:
    """Smoothing and background sigmas (px) of :func:`stripe_profile`'s band along x.

    Parameters
    ----------
    stripes : StripeWidth, optional
        The stripes measured on a few slices (:func:`volrecon.correct._stripe_width.stripe_width`).
        None, or no stripes found: the reference band ``(STRIPE_SMOOTH_PX, STRIPE_BACKGROUND_PX)``.

    Returns
    -------
    tuple of float
        Of the bands ``BAND_SMOOTH_PX`` x ``BAND_BACKGROUND_PX`` (and the reference one), the one
        whose correlation of two slices' profiles has the highest expected peak over its noise
        (:func:`band_snr`): the stripes' measured spectrum against the content's. Where the
        stripes are wider the content is stronger too, so the best band is not the stripes' own
        scale (measured on the 320 x 512 phantoms: bands following the width, background 3.2x the
        sigma, took the anchor's significance from 4.4 / 2.3 to 0.6 / 0.2 on 0.8-3 / 3-8 px
        stripes).
    """
    reference = (STRIPE_SMOOTH_PX, STRIPE_BACKGROUND_PX)
    if stripes is None or not stripes.found or stripes.shared is None:
        return reference
    bands = [reference] + [
        (sm, bg) for sm in BAND_SMOOTH_PX for bg in BAND_BACKGROUND_PX if bg >= BAND_MIN_RATIO * sm
    ]
    scores = [band_snr(stripes, band) for band in bands]
    return bands[int(np.argmax(scores))]


def stripe_profile(region: np.ndarray, band: tuple[float, float] | None = None) -> np.ndarray:
    """Column profile of the vertical stripes of one slice's structure region.

    Parameters
    ----------
    region : ndarray, shape (Y, X)
        The slice's structure region (data bar, static rows and frame already excluded).
    band : (float, float), optional
        Smoothing and background sigmas (px) along x (:func:`stripe_band`); None: the reference
        band ``(STRIPE_SMOOTH_PX, STRIPE_BACKGROUND_PX)``.

    Returns
    -------
    ndarray, shape (X,), float32
        Band-passed, winsorised row mean; zeros for a flat region.
    """
    data = np.asarray(region, dtype=np.float32)
    level = float(np.mean(data))
    if not math.isfinite(level) or level == 0.0:
        return np.zeros(data.shape[1], dtype=np.float32)
    data = data / level
    smooth, background = band if band is not None else (STRIPE_SMOOTH_PX, STRIPE_BACKGROUND_PX)
    band = ndimage.gaussian_filter1d(data, smooth, axis=1) - ndimage.gaussian_filter1d(data, background, axis=1)
    spread = _robust_sigma(band[:: max(1, band.shape[0] // 64)])
    np.clip(band, -WINSOR * spread, WINSOR * spread, out=band)
    return band.mean(axis=0).astype(np.float32)


class ProfileSpectra:
    """Windowed, zero-padded spectra of the profiles, for pair correlations.

    Parameters
    ----------
    profiles : sequence of ndarray or None
        One profile per slice (None: blank slice).
    """

    def __init__(self, profiles: Sequence[np.ndarray | None]) -> None:
        widths = {p.size for p in profiles if p is not None}
        if len(widths) != 1:
            raise ValueError("profiles need one common width")
        self.width = widths.pop()
        window = np.hanning(self.width)
        self.spectra: list[np.ndarray | None] = []
        self.reversed: list[np.ndarray | None] = []
        self.norms = np.zeros(len(profiles))
        for z, p in enumerate(profiles):
            if p is None:
                self.spectra.append(None)
                self.reversed.append(None)
                continue
            w = (p - p.mean()) * window
            self.norms[z] = float(np.sqrt(np.sum(w * w)))
            self.spectra.append(np.fft.rfft(w, 2 * self.width))
            self.reversed.append(np.fft.rfft(w[::-1], 2 * self.width))

    def valid(self, z: int) -> bool:
        """True where slice ``z`` has a non-flat profile."""
        return self.spectra[z] is not None and self.norms[z] > 0

    def correlation(self, a: int, b: int, reach: int, mirrored: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Normalised cross-correlation of profiles ``a`` and ``b`` on lags ``-reach..reach`` px.

        Parameters
        ----------
        a, b : int
            The slices (both :meth:`valid`).
        reach : int
            Largest lag (px).
        mirrored : bool
            Correlate ``a`` with ``b`` reversed along x instead: the same spectra, so the same
            statistics of the maxima on any lag window, but no stripes in common (a null).

        Returns
        -------
        tuple of ndarray
            The lags (step ``1 / UPSAMPLE`` px) and the correlation; a peak at lag ``m`` means
            the stripes of ``b`` lie ``m`` px right of those of ``a``.
        """
        size = 2 * self.width * UPSAMPLE
        other = self.reversed[b] if mirrored else self.spectra[b]
        full = np.fft.irfft(other * np.conj(self.spectra[a]), n=size) * UPSAMPLE
        full /= self.norms[a] * self.norms[b]
        k = int(reach) * UPSAMPLE
        index = np.arange(-k, k + 1)
        return index / UPSAMPLE, full[index % size]


@dataclass(frozen=True)
class PairShift:
    """One pair's curtain shift in the drift table's convention, with its evidence."""

    a: int
    b: int
    shift: float  # table dx[b] - dx[a]
    rho: float  # peak correlation
    null: float  # the same window's maximum against b mirrored (no common stripes, same spectra)
    edge: bool = False  # the maximum lies on the window's edge: not a peak, no shift measured
    #: correlation at lag 0 (stripes fixed in the detector) and the searched window's maximum
    #: more than ``DETECTOR_MARGIN_PX`` from lag 0 (curtains), where the trajectory's difference
    #: lies that far from 0; NaN otherwise
    at_zero: float = math.nan
    at_trajectory: float = math.nan


def pair_shift(spectra: ProfileSpectra, a: int, b: int, expected: float, half: float) -> PairShift:
    """The curtains' shift between slices ``a`` and ``b`` near the expected table difference.

    Parameters
    ----------
    spectra : ProfileSpectra
        The slices' profile spectra.
    a, b : int
        The slices.
    expected : float
        The current trajectory's ``dx[b] - dx[a]`` (table convention).
    half : float
        Half-width (px) of the searched window around it.

    Returns
    -------
    PairShift
        Sub-pixel peak (parabola on the upsampled correlation), its correlation, the maximum
        of ``a`` against ``b`` mirrored on the same window (the null: the far lags of the same
        correlation are no null, the profile window overlaps less there and their maxima are
        smaller) and whether the maximum lies on the window's edge (then ``shift`` is NaN).
    """
    reach = int(math.ceil(abs(expected) + half)) + 1
    centre = -expected  # content moved by m -> registering shift -m
    lags, corr = spectra.correlation(a, b, reach)
    inside = np.flatnonzero(np.abs(lags - centre) <= half)
    i = int(inside[np.argmax(corr[inside])])
    mirrored = spectra.correlation(a, b, reach, mirrored=True)[1]
    null = float(np.max(mirrored[inside]))
    zero = int(np.argmin(np.abs(lags)))
    away = inside[np.abs(lags[inside]) > DETECTOR_MARGIN_PX]
    apart = abs(centre) > DETECTOR_MARGIN_PX and away.size > 0
    detector = (float(corr[zero]), float(np.max(corr[away]))) if apart else (math.nan, math.nan)
    if i in (inside[0], inside[-1]):
        return PairShift(a, b, math.nan, float(corr[i]), null, True, *detector)
    offset = 0.0
    den = corr[i - 1] - 2 * corr[i] + corr[i + 1]
    if den < 0:
        offset = float(np.clip(0.5 * (corr[i - 1] - corr[i + 1]) / den, -0.5, 0.5))
    lag = float(lags[i] + offset / UPSAMPLE)
    return PairShift(a, b, -lag, float(corr[i]), null, False, *detector)


def profile_correlation(
    spectra: ProfileSpectra, dx: np.ndarray, lags: Sequence[int], half: float, per_lag: int = 64
) -> dict[int, dict[str, float | int]]:
    """Median peak correlation of profile pairs against their slice distance.

    Parameters
    ----------
    spectra : ProfileSpectra
        The profiles.
    dx : ndarray, shape (Z,)
        Current trajectory (table convention), centring each pair's search window.
    lags : sequence of int
        Slice distances to measure.
    half : float
        Search half-width (px).
    per_lag : int
        At most this many pairs per distance (evenly spread over the stack).

    Returns
    -------
    dict
        Per distance: ``rho`` (median peak, float) and ``pairs`` (how many were measured, int).
    """
    out = {}
    n = dx.size
    for lag in lags:
        starts = [a for a in range(n - lag) if spectra.valid(a) and spectra.valid(a + lag)]
        if not starts:
            continue
        starts = [starts[i] for i in np.unique(np.linspace(0, len(starts) - 1, min(per_lag, len(starts))).astype(int))]
        found = [pair_shift(spectra, a, a + lag, float(dx[a + lag] - dx[a]), half) for a in starts]
        out[int(lag)] = {"rho": float(np.median([f.rho for f in found])), "pairs": len(found)}
    return out


def lag_grid(n: int) -> list[int]:
    """Slice distances 1, 2, 3, 4, 6, 8, 12, ... up to half the stack."""
    out, v = [], 1
    while v <= n // 2:
        out.append(v)
        v = v + 1 if v < 4 else int(round(v * 1.5))
    return out


def choose_baselines(curve: dict[int, dict[str, float | int]], n: int) -> tuple[list[int], dict[str, Any]]:
    """Baselines beyond the content's decorrelation, where only the curtains correlate.

    ``rho(L)`` decays from its neighbour value to the plateau (median over the distances in the
    upper half of the measured range, the curtains) with the content; the e-folding length ``l``
    is the first distance where the excess over the plateau has fallen below ``1/e`` of the
    neighbours'. Baselines run from ``DECORRELATION_LENGTHS * l`` by ``BASELINE_RATIO`` up to
    ``LONGEST_SHARE`` of the stack, at most ``MOST_BASELINES`` of them.

    Parameters
    ----------
    curve : dict
        :func:`profile_correlation`'s result: per slice distance, ``rho`` and ``pairs``.
    n : int
        Slices in the stack.

    Returns
    -------
    tuple
        The baselines (empty: the stack is too short) and what was measured.
    """
    lags = sorted(curve)
    rho = np.array([curve[k]["rho"] for k in lags])
    upper = [i for i, k in enumerate(lags) if k >= lags[-1] / 2]
    plateau = float(np.median(rho[upper]))
    excess = rho - plateau
    below = [k for k, e in zip(lags, excess) if e <= excess[0] / math.e]
    length = float(below[0]) if below else float(lags[-1])
    first = max(2, int(math.ceil(DECORRELATION_LENGTHS * length)))
    chosen, v = [], float(first)
    while v <= LONGEST_SHARE * n and len(chosen) < MOST_BASELINES:
        chosen.append(int(round(v)))
        v *= BASELINE_RATIO
    info = {"decorrelation_slices": length, "plateau_rho": plateau, "neighbour_rho": float(rho[0])}
    return chosen, info


def measure_pairs(
    spectra: ProfileSpectra, dx: np.ndarray, baselines: Sequence[int], half: float
) -> list[PairShift]:
    """Every pair ``(a, a + L)`` of valid slices for each baseline ``L``.

    Parameters
    ----------
    spectra, dx, half
        As for :func:`profile_correlation`.
    baselines : sequence of int
        Slice distances ``L``.

    Returns
    -------
    list of PairShift
        One per pair, in baseline then slice order.
    """
    out = []
    for lag in baselines:
        for a in range(dx.size - lag):
            if spectra.valid(a) and spectra.valid(a + lag):
                out.append(pair_shift(spectra, a, a + lag, float(dx[a + lag] - dx[a]), half))
    return out


@dataclass(frozen=True)
class Correction:
    """The solve's correction of dx and what it measured."""

    correction: np.ndarray  # (Z,) added to dx
    remaining: np.ndarray  # (Z,) posterior / prior sd of the correction: the share of dx's error left
    rejected: np.ndarray  # (P,) bool
    step_sigma_px: float
    pair_sigma_px: float  # median pair sigma


def solve_correction(
    pairs: Sequence[PairShift], dx: np.ndarray, correlated: float = 1.0, iterations: int = 6
) -> Correction:
    """Correction ``c`` of ``dx`` from the long curtain pairs, the steps of ``dx`` kept as a prior.

    Model: ``c[z + 1] - c[z] ~ N(0, q)`` (the current steps' error) and, per pair,
    ``c[b] - c[a] = shift - (dx[b] - dx[a]) + e``, ``e ~ N(0, s2 v_i)`` with
    ``v_i = (1 - rho_i^2) / rho_i^2`` (a weaker peak locates worse). ``q / s2`` is chosen by
    restricted maximum likelihood on a grid (the whole grid once, then around the last best
    ratio), ``s2`` follows in closed form; Huber weights on the normalised residuals, pairs
    beyond ``REJECT`` robust sigmas dropped.

    Only differences of ``c`` are measured: the solve pins ``c[0] = 0`` and reports ``c`` with
    zero mean. The normal matrix is then banded (bandwidth: the longest baseline ``L``): a sparse
    factorisation inside the band per ratio, ``O(Z L^2)``, and the posterior sd by a selected
    inverse on the band; never a dense ``Z x Z`` matrix.

    Parameters
    ----------
    pairs : sequence of PairShift
        Long-baseline pairs.
    dx : ndarray, shape (Z,)
        Current trajectory's dx.
    correlated : float
        Consecutive pairs of one baseline share content whose profiles are alike over this
        many slices (the content's decorrelation length), so their errors are alike too: each
        pair counts as ``1 / correlated`` of an independent one in the likelihood (otherwise
        the solve reads their common error as a wander of the drift).
    iterations : int
        Reweighting rounds.

    Returns
    -------
    Correction
    """
    n = dx.size
    a = np.array([p.a for p in pairs])
    b = np.array([p.b for p in pairs])
    y = np.array([p.shift for p in pairs]) - (dx[b] - dx[a])
    rho = np.clip(np.array([p.rho for p in pairs]), 0.05, 0.99)
    v = (1 - rho**2) / rho**2
    m = y.size
    weights = np.ones(m)
    keep = np.ones(m, dtype=bool)
    grid = RATIO_GRID
    for _ in range(iterations + 1):
        w = keep * weights / (v * correlated)
        ratio, s2, c, band = _reml(a, b, y, w, n, grid, correlated)
        r = (c[b] - c[a] - y) / np.sqrt(s2 * v)
        scale = max(1.4826 * float(np.median(np.abs(r[keep]))), 1e-9)  # about 0: residuals' scale
        u = np.abs(r) / scale
        weights = np.minimum(1.0, HUBER / np.maximum(u, 1e-12))
        keep = u <= REJECT
        at = int(np.argmin(np.abs(np.log(RATIO_GRID / ratio))))
        grid = RATIO_GRID[max(0, at - REFINE_STEPS) : at + REFINE_STEPS + 1]
    walk = _band_normal(np.zeros(0, int), np.zeros(0, int), np.zeros(0), n, ratio, 1)
    prior = _gauge_sd(scipy.linalg.cholesky_banded(walk, lower=True))
    posterior = _gauge_sd(scipy.linalg.cholesky_banded(band, lower=True))
    remaining = np.clip(posterior / np.maximum(prior, 1e-12), 0.0, 1.0)
    step = math.sqrt(ratio * s2)
    return Correction(c - c.mean(), remaining, ~keep, step, float(np.sqrt(s2 * np.median(v[keep]))))


#: ratios (random-walk step variance over the pairs' scale) searched by the restricted
#: maximum likelihood; after the first round only ``REFINE_STEPS`` grid points either side of
#: the last best
RATIO_GRID = np.logspace(-7, 1, 33)
REFINE_STEPS = 3


def _band_normal(
    a: np.ndarray, b: np.ndarray, w: np.ndarray, n: int, ratio: float, width: int
) -> np.ndarray:
    """Lower band storage of the normal matrix ``sum_i w_i (e_b - e_a)(e_b - e_a)^T + D^T D / ratio``.

    Parameters
    ----------
    a, b : ndarray of int
        The pairs' slices (``b - a <= width``).
    w : ndarray
        The pairs' weights.
    n : int
        Slices.
    ratio : float
        Random-walk step variance over the pairs' scale (``D``: first differences).
    width : int
        Bandwidth (at least 1).

    Returns
    -------
    ndarray, shape (width + 1, n - 1)
        ``out[d, j] = N[j + 1 + d, j + 1]``: slice 0 pinned (its row and column dropped), the
        layout of :func:`scipy.linalg.cholesky_banded` with ``lower=True``.
    """
    band = np.zeros((width + 1, n))
    np.add.at(band[0], a, w)
    np.add.at(band[0], b, w)
    np.add.at(band, (b - a, a), -w)
    band[0, :-1] += 1.0 / ratio
    band[0, 1:] += 1.0 / ratio
    band[1, :-1] -= 1.0 / ratio
    return band[:, 1:]


def _reml(
    a: np.ndarray,
    b: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    n: int,
    grid: np.ndarray,
    correlated: float,
) -> tuple[float, float, np.ndarray, np.ndarray]:
    """Best step-to-pair variance ratio on ``grid``, its pair scale, solution and normal matrix
    (:func:`_band_normal`'s band).

    ``-2 log L`` up to constants: ``m log s2 + (n - 1) log ratio + log det N`` with ``m`` the
    independent pairs. Pinning a slice changes ``log det N`` by a constant (every principal
    minor of a matrix whose null vector is the constant one is its pseudo-determinant over
    ``n``), so the choice is that of a solve with the mean fixed instead.
    """
    m = float(np.count_nonzero(w)) / correlated
    width = max(1, int(np.max(b - a)) if b.size else 1)
    rhs = np.zeros(n)
    np.add.at(rhs, b, w * y)
    np.add.at(rhs, a, -w * y)
    best = None
    for ratio in grid:
        band = _band_normal(a, b, w, n, ratio, width)
        lu = _sparse_factor(band)
        c = np.r_[0.0, lu.solve(rhs[1:])]
        fit = float(np.sum(w * (c[b] - c[a] - y) ** 2) + np.sum(np.diff(c) ** 2) / ratio)
        s2 = fit / max(m, 1.0)
        logdet = float(np.sum(np.log(np.abs(lu.U.diagonal()))))  # L has a unit diagonal
        nll = m * math.log(s2) + (n - 1) * math.log(ratio) + logdet
        if best is None or nll < best[0]:
            best = (nll, float(ratio), s2, c, band)
    return best[1], best[2], best[3], best[4]


def _sparse_factor(band: np.ndarray) -> spla.SuperLU:
    """Sparse LU of a symmetric positive definite matrix given in lower band storage.

    In its own order and without pivoting, so the factors stay inside the band (``O(Z L^2)``);
    SuperLU rather than LAPACK's banded Cholesky, whose blocked kernels go through a
    multithreaded BLAS that costs ~10x more on a busy machine (measured: 2000 slices, bandwidth
    98: 28 ms against 32 ms busy, 4 ms idle; 200 slices, bandwidth 118: 6 ms against 68 ms).
    """
    width, size = band.shape[0] - 1, band.shape[1]
    lower = [band[d, : size - d] for d in range(1, width + 1)]
    matrix = sp.diags([*lower[::-1], band[0], *lower], np.arange(-width, width + 1), shape=(size, size), format="csc")
    return spla.splu(matrix, permc_spec="NATURAL", diag_pivot_thresh=0.0, options={"SymmetricMode": True})


def _gauge_sd(chol: np.ndarray) -> np.ndarray:
    """Posterior sd of every slice about the mean, from the pinned normal matrix's Cholesky band.

    The selected inverse ``S`` of the pinned matrix on its band (Takahashi's recursion,
    ``O(Z L^2)``), then the covariance of ``c - mean(c)``: ``S_ii - 2 (S 1)_i / Z + 1'S1 / Z^2``,
    plus ``1 / Z^2`` for a unit prior on the mean (the gauge of the dense form).

    Parameters
    ----------
    chol : ndarray, shape (L + 1, Z - 1)
        Lower Cholesky factor in band storage (:func:`scipy.linalg.cholesky_banded`).

    Returns
    -------
    ndarray, shape (Z,)
        Square root of the diagonal of the covariance (units of the pairs' scale).
    """
    width, size = chol.shape[0] - 1, chol.shape[1]
    factor = np.zeros((width + 1, size + width))
    factor[:, :size] = chol
    factor[1:, :size] *= np.arange(size)[None, :] + np.arange(1, width + 1)[:, None] < size
    cov = np.zeros((width + 1, size + width))  # cov[d, j] = S[j + d, j]
    r, s = np.meshgrid(np.arange(width), np.arange(width), indexing="ij")
    lag, low = np.abs(r - s), np.minimum(r, s)
    for i in range(size - 1, -1, -1):
        below = factor[1:, i]
        block = cov[lag, i + 1 + low]
        column = -(block @ below) / factor[0, i]
        cov[1:, i] = column
        cov[0, i] = 1.0 / factor[0, i] ** 2 - float(below @ column) / factor[0, i]
    n = size + 1
    total = np.r_[0.0, scipy.linalg.cho_solve_banded((chol, True), np.ones(size))]
    diag = np.r_[0.0, cov[0, :size]] - 2.0 * total / n + float(np.sum(total)) / n**2 + 1.0 / n**2
    return np.sqrt(np.clip(diag, 0, None))


#: the long pairs' mean peak must exceed their nulls (the same windows against the mirrored
#: profiles) by this many standard errors of the paired differences, counting one independent
#: unit per content decorrelation length of the slices (one-sided ~2 % false alarms; measured on
#: content without stripes, 1024 px x 200 slices: -0.5 to 0.7)
SIGNIFICANCE = 2.0


#: a correction smaller than this (px RMS) is not applied, and the rows keep their labels
NEGLIGIBLE_PX = 0.01


def significance(pairs: Sequence[PairShift], correlated: float, slices: int) -> tuple[float, float, float]:
    """How far the pairs' mean peak stands above their null, in standard errors.

    Each pair's peak is compared with its own null (:class:`PairShift`: the same window against
    the mirrored profile), as paired differences; edge maxima count as they are, on both sides.

    Parameters
    ----------
    pairs : sequence of PairShift
        Long-baseline pairs.
    correlated : float
        Content decorrelation length (slices).
    slices : int
        Slices with a profile. Pairs of several baselines share slices, so the independent
        units are about ``slices / correlated``, not the pairs' count over it.

    Returns
    -------
    tuple of float
        Standard errors (NaN with fewer than two pairs or no spread), mean peak, mean null.
    """
    peaks = np.array([p.rho for p in pairs])
    null = np.array([p.null for p in pairs])
    if peaks.size < 2 or not np.std(peaks - null) > 0:
        return math.nan, float(np.mean(peaks)) if peaks.size else math.nan, math.nan
    return _paired_z(peaks - null, correlated, slices), float(np.mean(peaks)), float(np.mean(null))


def _paired_z(diff: np.ndarray, correlated: float, slices: int) -> float:
    """Mean of paired differences in standard errors, with ``min(pairs, slices) / correlated``
    independent units (pairs of several baselines share slices)."""
    effective = min(diff.size, slices) / max(correlated, 1.0)
    return float(np.mean(diff)) / float(np.std(diff)) * math.sqrt(effective)


def detector_stripes(pairs: Sequence[PairShift], correlated: float, slices: int) -> tuple[float, int]:
    """How far the pairs correlate better at lag 0 than at the trajectory's difference.

    Curtains move with the specimen; stripes of the scan or the detector stay at their columns
    and would pull dx toward no drift. Where the trajectory moved more than
    ``DETECTOR_MARGIN_PX`` over a pair's baseline, curtains correlate near the trajectory's
    difference (the searched window, less the margin around lag 0: the trajectory may be wrong
    by a few px) and not at lag 0, detector stripes the other way round: the paired differences
    (lag 0 minus the window) in standard errors, counted like :func:`significance`. Positive:
    the stripes stay with the detector.

    Parameters
    ----------
    pairs, correlated, slices
        As :func:`significance`.

    Returns
    -------
    tuple
        Standard errors (NaN: fewer than ``MIN_PAIRS`` pairs moved enough, not testable) and
        the pairs that did.
    """
    diff = np.array([p.at_zero - p.at_trajectory for p in pairs if math.isfinite(p.at_zero)])
    if diff.size < MIN_PAIRS or not np.std(diff) > 0:
        return math.nan, int(diff.size)
    return _paired_z(diff, correlated, slices), int(diff.size)


def search_half_width(expected_px: float, width: int) -> float:
    """Half-width (px) of each pair's peak search around the current trajectory's difference.

    Three sigmas of the difference of two slices' errors (``2**0.5`` times the measured
    per-slice expected error of the trajectory), at least 2 px, at most an eighth of the profile.
    """
    return float(np.clip(3.0 * math.sqrt(2.0) * expected_px, 2.0, width / 8.0))


def anchor_dx(
    profiles: Sequence[np.ndarray | None], dx: np.ndarray, expected_px: float
) -> tuple[Correction | None, dict[str, Any]]:
    """Measure the curtains' correction of a frameless trajectory's dx, or say why not.

    Parameters
    ----------
    profiles : sequence of ndarray or None
        :func:`stripe_profile` of every slice (None: blank slice).
    dx : ndarray, shape (Z,)
        The current trajectory's dx (table convention).
    expected_px : float
        Its measured per-slice expected error (px), which sets the peak search window.

    Returns
    -------
    tuple
        The :class:`Correction` (None when skipped) and ``metadata["curtains"]``: ``ran``,
        ``reason`` when not, the decorrelation measured, ``baselines``, ``pairs`` (with a
        peak), ``pairs_on_edge`` (maximum on the window's edge), ``pairs_rejected``,
        ``significance`` (standard errors, :func:`significance`), ``detector_significance`` and
        ``detector_pairs`` (:func:`detector_stripes`), ``step_sigma_px``, ``pair_sigma_px``, ``correction_rms_px`` and ``error_left`` (RMS
        share of the dx error the solve leaves, posterior over prior).
    """
    n = dx.size
    usable = [p for p in profiles if p is not None and np.any(p)]
    if len(usable) < 3:
        return None, {"ran": False, "reason": f"{len(usable)} slices with a stripe profile: too few"}
    spectra = ProfileSpectra(profiles)
    half = search_half_width(expected_px, spectra.width)
    curve = profile_correlation(spectra, dx, lag_grid(n), half)
    if not curve:
        return None, {"ran": False, "reason": "no two neighbouring slices with a stripe profile"}
    baselines, decay = choose_baselines(curve, n)
    meta: dict[str, Any] = {"ran": False, "search_half_px": half, **decay, "baselines": baselines}
    if decay["decorrelation_slices"] <= 1:
        meta["reason"] = (
            f"the profiles do not decorrelate (neighbours {decay['neighbour_rho']:.2f}, long baselines "
            f"{decay['plateau_rho']:.2f}): what persists is the content itself, which the structure estimate "
            "already uses, not stripes to tell from it"
        )
        return None, meta
    measured = measure_pairs(spectra, dx, baselines, half)
    pairs = [p for p in measured if not p.edge]
    meta["pairs_on_edge"] = len(measured) - len(pairs)
    if len(pairs) < MIN_PAIRS:
        meta["reason"] = (
            f"{n} slices: {len(pairs)} pairs beyond the content's decorrelation "
            f"({decay['decorrelation_slices']:.0f} slices), fewer than {MIN_PAIRS}"
        )
        return None, meta
    usable_slices = sum(spectra.valid(z) for z in range(n))
    z, peak, null = significance(measured, decay["decorrelation_slices"], usable_slices)
    meta.update(pairs=len(pairs), peak_rho=peak, null_rho=null, significance=z)
    if not z >= SIGNIFICANCE:
        meta["reason"] = (
            f"no persistent stripes: the long pairs' mean peak {peak:.3f} against {null:.3f} off the peak "
            f"({z:.1f} standard errors, {SIGNIFICANCE:.0f} needed)"
        )
        return None, meta
    fixed, apart = detector_stripes(measured, decay["decorrelation_slices"], usable_slices)
    meta.update(detector_significance=fixed, detector_pairs=apart)
    if fixed >= SIGNIFICANCE:
        meta["reason"] = (
            f"stripes fixed in the detector: the {apart} pairs over which the trajectory moved more than "
            f"{DETECTOR_MARGIN_PX:.0f} px correlate better at lag 0 than near its difference ({fixed:.1f} "
            "standard errors); they would pull dx toward no drift"
        )
        return None, meta
    result = solve_correction(pairs, dx, decay["decorrelation_slices"])
    moved = float(np.sqrt(np.mean(result.correction**2)))
    if moved < NEGLIGIBLE_PX:
        meta.update(step_sigma_px=result.step_sigma_px, pair_sigma_px=result.pair_sigma_px)
        meta["reason"] = (
            f"the long pairs add nothing (most likely step sigma {result.step_sigma_px:.3f} px, correction "
            f"{moved:.4f} px RMS): the trajectory stands"
        )
        return None, meta
    meta.update(
        ran=True,
        reason=None,
        pairs_rejected=int(result.rejected.sum()),
        step_sigma_px=result.step_sigma_px,
        pair_sigma_px=result.pair_sigma_px,
        correction_rms_px=moved,
        error_left=float(np.sqrt(np.mean(result.remaining**2))),
    )
    return result, meta
