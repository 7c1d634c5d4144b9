"""The curtain stripes' width, measured from a few slices of the stack.

Curtaining stripes have a physical width (tens to a few hundred nm, set by the features above
them), so their width in pixels depends on the pixel size: 1-3 px at 20 nm, 10 px and more at
3-5 nm. Filters that keep or remove them (the frameless drift anchor's band,
:mod:`volrecon.correct._registration_curtains`; the destriping) need that width.

What tells a stripe from the specimen's content: a stripe runs straight down its column for
many rows, the content does not (particles and pores are a few tens of px across). So the
region of a slice is cut into blocks of ``BLOCK_ROWS`` rows (more than the content's features
are tall), each block's row mean is a column profile, and the profiles of every two blocks at
least ``BLOCK_GAP`` apart (a block of content between them) are compared by their
cross-spectrum along x. Blocks of the same slice share the drift, so no registration is
needed: the stripes' part of the cross-spectrum is real and positive (the same columns in
both), the content's and the noise's part averages to zero over block pairs and slices.

The width is read from the peak at lag 0 of the correlation whose spectrum is the mean real
cross-spectrum over slices spread through the stack: a stripe of peak ``A`` and sigma ``w`` has
the power spectrum ``2 pi A^2 w^2 exp(-(2 pi f w)^2)``, so its correlation peak is a Gaussian of
sigma ``w sqrt(2)``. The spectrum's lowest ``LOWEST_BIN`` bins are dropped, the Gaussian stripe
spectrum is passed through the same mask, and the width is the sigma whose peak is as wide at
half maximum as the measured one (:func:`peak_width`). Only the peak's neighbourhood counts, so
stripes far apart do not enter; a least-squares fit of the spectrum itself reads their
interference, one fixed pattern in every slice (12.8 px for the doctest's stripes of 6 px), and
weighting the bins by one over their standard error over the slices let the many bins of pixel
noise make a narrow spike at lag 0 (1 px read on phantom stripes of 3-15 px). Stripes of several
widths give a width between their amplitude-weighted median and their energy-weighted
(``A^2 w^2``) mean.

Whether there are stripes at all: each slice's cross-spectrum is projected on the spectrum of a
Gaussian stripe of the measured width (whitened by the blocks' mean power, so bins where the
content dominates count less) and the projections' mean over slices must stand
``SIGNIFICANCE`` standard errors above zero (a t-test over slices; slices spread through the
stack are taken as independent). Otherwise the result is "no stripes" with the reason.

Limits: content that runs straight down the columns over several blocks (vertical walls, a
column of aligned features) reads as stripes, so the frame's walls must lie outside the region
(the specimen box of :func:`volrecon.correct.frame.detect_frame`). Slices closer together than
the content's decorrelation are not independent and overstate the significance.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from volrecon._spread import spread_indices

#: rows per block whose mean is one column profile, taller than the content's features, and
#: the fewest blocks between two compared (2: a block of content between them; adjacent blocks
#: share the features across their boundary, which read as stripes on content of 8 px blobs)
BLOCK_ROWS = 64
BLOCK_GAP = 2
#: lowest x-frequency bin fitted: the quadratic removed from each profile (shading) and the
#: window's leakage reach the bins below
LOWEST_BIN = 4
#: correlation interpolation factor for its half width
UPSAMPLE = 8
#: stripe sigmas (px) of the half-width table
WIDTH_GRID = np.exp(np.linspace(math.log(0.3), math.log(60.0), 80))
#: the slices' mean projection on the stripe spectrum must stand this many standard errors
#: above zero (t-test over the slices)
SIGNIFICANCE = 3.0
#: fewest slices (and blocks per slice) a measurement needs
MIN_SLICES = 4
MIN_BLOCKS = BLOCK_GAP + 1
#: slices read from a stack by :func:`estimate_stripe_width`
DEFAULT_SLICES = 16


@dataclass(frozen=True)
class StripeWidth:
    """The curtain stripes' width measured on a few slices, or why there is none.

    Attributes
    ----------
    sigma_px : float
        Gaussian sigma (px) of the stripes across, from their correlation peak; NaN when no
        stripes were found.
    significance : float
        Standard errors by which the slices' projection on the fitted stripe spectrum stands
        above zero (NaN when not measured).
    slices : int
        Slices measured.
    reason : str or None
        Why no width was found (None when found).
    freq : ndarray or None
        Frequencies (cycles per px) of the two spectra below (None when not measured).
    shared : ndarray or None
        Power spectrum of what runs down the columns (the blocks' mean real cross-spectrum, the
        stripes), per block profile, zero below ``LOWEST_BIN``.
    unshared : ndarray or None
        Power spectrum of the rest (content, noise) in a row mean over the whole region: the
        blocks' power less the shared part, over the number of blocks (independent between
        blocks).
    """

    sigma_px: float
    significance: float
    slices: int
    reason: str | None = None
    freq: np.ndarray | None = field(default=None, repr=False, compare=False)
    shared: np.ndarray | None = field(default=None, repr=False, compare=False)
    unshared: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def found(self) -> bool:
        """True where stripes were found and their width measured."""
        return self.reason is None and math.isfinite(self.sigma_px)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary (NaN as None)."""

        def clean(v: float) -> float | None:
            return float(v) if math.isfinite(v) else None

        return {
            "sigma_px": clean(self.sigma_px),
            "significance": clean(self.significance),
            "slices": int(self.slices),
            "reason": self.reason,
        }


def block_spectra(region: np.ndarray) -> tuple[np.ndarray, np.ndarray, int] | None:
    """Mean real cross-spectrum of a slice's row-block profiles, and their mean power.

    Parameters
    ----------
    region : ndarray, shape (Y, X)
        The slice's structure region (frame, data bar and overlays excluded).

    Returns
    -------
    tuple of ndarray or None
        ``(cross, power, blocks)``: the real part of the cross-spectrum averaged over every pair
        of blocks and the blocks' mean power spectrum, each of shape ``(X // 2 + 1,)``, and the
        number of blocks. None for a flat region or one with fewer than ``MIN_BLOCKS`` blocks.
    """
    data = np.asarray(region, dtype=np.float64)
    blocks = data.shape[0] // BLOCK_ROWS
    level = float(np.mean(data)) if data.size else 0.0
    if blocks < MIN_BLOCKS or data.shape[1] < 4 * LOWEST_BIN or not math.isfinite(level) or level == 0.0:
        return None
    width = data.shape[1]
    profiles = data[: blocks * BLOCK_ROWS].reshape(blocks, BLOCK_ROWS, width).mean(axis=1) / level
    x = np.linspace(-1.0, 1.0, width)
    basis = np.vander(x, 3)  # shading: smooth over the field, a quadratic across it
    profiles = profiles - (basis @ np.linalg.lstsq(basis, profiles.T, rcond=None)[0]).T
    spectra = np.fft.rfft(profiles * np.hanning(width), axis=1)
    i, j = np.triu_indices(blocks, BLOCK_GAP)
    cross = np.real(spectra[i] * np.conj(spectra[j])).mean(axis=0)
    return cross, np.mean(np.abs(spectra) ** 2, axis=0), blocks


def stripe_spectrum(freq: np.ndarray, sigma_px: float) -> np.ndarray:
    """Power spectrum shape of a Gaussian stripe, ``exp(-(2 pi f sigma)^2)``.

    Parameters
    ----------
    freq : ndarray
        Frequencies (cycles per px).
    sigma_px : float
        The stripe's Gaussian sigma (px).

    Returns
    -------
    ndarray
    """
    return np.exp(-((2 * np.pi * np.asarray(freq) * sigma_px) ** 2))


def stripe_width(regions: Iterable[np.ndarray]) -> StripeWidth:
    """Measure the curtain stripes' width on the structure regions of a few slices.

    Parameters
    ----------
    regions : iterable of ndarray, each (Y, X)
        The same region of slices spread through the stack (frame excluded); one common width.

    Returns
    -------
    StripeWidth
        The stripes' sigma, or NaN with the reason (too few slices, no peak at lag 0, no
        significant stripes).
    """
    measured, widths = [], set()
    for region in regions:
        found = block_spectra(region)
        if found is not None:
            measured.append(found)
            widths.add(int(np.shape(region)[1]))
    n = len(measured)
    if n < MIN_SLICES:
        return StripeWidth(math.nan, math.nan, n, f"{n} slices with {MIN_BLOCKS}+ row blocks: fewer than {MIN_SLICES}")
    if len(widths) != 1:
        raise ValueError("regions need one common width")
    cross = np.array([m[0] for m in measured])
    power = np.mean([m[1] for m in measured], axis=0)
    blocks = float(np.mean([m[2] for m in measured]))
    size = widths.pop()
    freq = np.fft.rfftfreq(size)
    use = np.arange(freq.size) >= LOWEST_BIN
    mean = np.where(use, cross.mean(axis=0), 0.0)
    sigma = peak_width(mean, size)
    if not math.isfinite(sigma):
        return StripeWidth(math.nan, math.nan, n, "no stripes: the blocks' cross-correlation has no peak at lag 0")
    shape = stripe_spectrum(freq[use], sigma)
    projection = cross[:, use] @ (shape / np.maximum(power[use], 1e-300))
    sd = float(np.std(projection, ddof=1))
    z = float(np.mean(projection)) / sd * math.sqrt(n) if sd > 0 else math.nan
    if not z >= SIGNIFICANCE:
        reason = (
            f"no stripes: what runs down the columns across row blocks stands {z:.1f} standard errors above "
            f"zero over {n} slices ({SIGNIFICANCE:.0f} needed)"
        )
        return StripeWidth(math.nan, z, n, reason)
    unshared = np.clip(power - mean, 0.0, None) / blocks
    return StripeWidth(sigma, z, n, None, freq, mean, unshared)


def _half_width(spectrum: np.ndarray, size: int) -> float:
    """Half width at half maximum (px) of the correlation whose spectrum is ``spectrum``.

    The correlation is interpolated ``UPSAMPLE`` times (zero-padded spectrum); NaN where it is
    not positive at lag 0 or never falls to half.
    """
    corr = np.fft.irfft(spectrum, n=size * UPSAMPLE)[: size * UPSAMPLE // 2]
    if not corr[0] > 0:
        return math.nan
    below = np.flatnonzero(corr <= 0.5 * corr[0])
    if below.size == 0:
        return math.nan
    i = int(below[0])
    step = (corr[i - 1] - 0.5 * corr[0]) / (corr[i - 1] - corr[i])
    return (i - 1 + step) / UPSAMPLE


def peak_width(cross: np.ndarray, size: int) -> float:
    """The stripes' sigma (px) from the peak at lag 0 of their correlation.

    Parameters
    ----------
    cross : ndarray, shape (size // 2 + 1,)
        Real cross-spectrum of row-block profiles (:func:`block_spectra`, or a mean of them);
        its bins below ``LOWEST_BIN`` are dropped.
    size : int
        Width (px) of the profiles.

    Returns
    -------
    float
        The Gaussian stripe sigma whose correlation, through the same bins, is as wide at half
        maximum; NaN where there is no peak at lag 0 or it is wider than the widest in
        ``WIDTH_GRID``.
    """
    freq = np.fft.rfftfreq(size)
    keep = np.arange(freq.size) >= LOWEST_BIN
    measured = _half_width(np.where(keep, cross, 0.0), size)
    model = np.array([_half_width(np.where(keep, stripe_spectrum(freq, float(w)), 0.0), size) for w in WIDTH_GRID])
    good = np.isfinite(model)
    if not math.isfinite(measured) or not good.any() or measured > np.max(model[good]):
        return math.nan
    order = np.argsort(model[good])
    return float(np.interp(measured, model[good][order], WIDTH_GRID[good][order]))


def estimate_stripe_width(
    image: Any, *, slices: int = DEFAULT_SLICES, box: tuple[int, int, int, int] | None = None
) -> StripeWidth:
    """Measure the curtain stripes' width on a few slices of a stack.

    Parameters
    ----------
    image : array_like, shape (Z, Y, X)
        The stack (numpy or dask); only ``slices`` slices are read.
    slices : int
        Slices read, evenly spread through the stack.
    box : (y0, y1, x0, x1), optional
        Region of each slice (default: the whole slice). Give the specimen box where the
        milled face's frame (trench walls) is in view: walls run down the columns like stripes.

    Returns
    -------
    StripeWidth

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = np.arange(256.0)
    >>> stripes = sum(np.exp(-0.5 * ((x - c) / 6.0) ** 2) for c in rng.uniform(0, 256, 12))
    >>> stack = 100 + 10 * stripes[None, None, :] + rng.normal(0, 5, (8, 192, 256))
    >>> found = estimate_stripe_width(stack)
    >>> bool(found.found and 4.5 < found.sigma_px < 8.0)
    True
    """
    depth = int(image.shape[0])
    y0, y1, x0, x1 = box if box is not None else (0, int(image.shape[1]), 0, int(image.shape[2]))
    regions = (np.asarray(image[int(z), y0:y1, x0:x1]) for z in spread_indices(depth, slices))
    return stripe_width(regions)
