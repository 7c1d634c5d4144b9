"""Curtain-robust, sub-pixel phase correlation between prepared slice spectra.

Each slice is turned once into a *whitened, band-limited spectrum* (``prepare_spectrum``); a pair
of slices then costs one product and one small inverse FFT (``pair_shift``).

How the shift is measured
-------------------------
The normalised cross-power spectrum ``Fa·conj(Fb)/|Fa·conj(Fb)|`` of two translated images is a pure
phase ramp. It is multiplied by a Gaussian weight, so its inverse transform is a sampled Gaussian
centred on the shift, and the sub-pixel centre follows exactly from a three-point fit of the
logarithm. Only the low-frequency part of the spectrum is kept (Fourier-domain decimation), which
makes the inverse FFT small and the estimate fast without aliasing.

Curtain suppression: vertical curtaining stripes are (nearly) constant along ``y`` and persist
from slice to slice at the same image position, so they add a correlation peak at zero shift that
pulls the estimate toward zero. Their energy sits in the spectral rows with small ``|k_y|``;
those rows are given zero weight (``curtain_rows``). The shift is still fully determined by the
remaining rows (any ``k_y != 0`` row carries the ``x`` phase ramp too).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import scipy.fft as sfft

from volrecon.errors import ParameterError


@dataclass(frozen=True)
class SpectrumGeometry:
    """Fixed geometry shared by every prepared spectrum of one estimation run.

    Attributes
    ----------
    box : tuple of int
        ``(y0, y1, x0, x1)`` region of the slice used (full-resolution pixels).
    bin : int
        Block-averaging factor applied before the FFT.
    decimate : int
        Fourier-domain decimation of the correlation surface (after binning).
    curtain_rows : int
        Spectral rows ``|k_y| <= curtain_rows`` get zero weight (0 = no suppression).
    sigma : float
        Width (in correlation-grid samples) of the Gaussian peak the weight produces.
    """

    box: tuple[int, int, int, int]
    bin: int
    decimate: int
    curtain_rows: int
    sigma: float = 1.0

    @cached_property
    def binned_shape(self) -> tuple[int, int]:
        """FFT-friendly (5-smooth) shape of the binned region actually used."""
        y0, y1, x0, x1 = self.box
        return (_smooth_below((y1 - y0) // self.bin), _smooth_below((x1 - x0) // self.bin))

    @cached_property
    def grid_shape(self) -> tuple[int, int]:
        """Shape of the (decimated) correlation surface; even and 5-smooth along both axes."""
        ny, nx = self.binned_shape
        gy = max(8, _smooth_below(ny // self.decimate, even=True))
        gx = max(8, _smooth_below(nx // self.decimate, even=True))
        return (min(gy, ny - ny % 2), min(gx, nx - nx % 2))

    @cached_property
    def pixel(self) -> tuple[float, float]:
        """Full-resolution pixels per correlation-grid sample along ``(y, x)``."""
        ny, nx = self.binned_shape
        gy, gx = self.grid_shape
        return (self.bin * ny / gy, self.bin * nx / gx)


def _smooth_below(n: int, *, even: bool = False) -> int:
    """Largest integer <= n with no prime factor above 5 (fast FFT length), even if asked."""
    for m in range(max(n, 2), 1, -1):
        if even and m % 2:
            continue
        k = m
        for p in (2, 3, 5):
            while k % p == 0:
                k //= p
        if k == 1:
            return m
    return 2


def _tukey(n: int, alpha: float = 0.5) -> np.ndarray:
    """Tapered-cosine window: flat centre, cosine flanks of ``alpha/2`` of the length each."""
    x = np.linspace(0.0, 1.0, n, dtype=np.float32)
    w = np.ones(n, dtype=np.float32)
    edge = alpha / 2.0
    lo = x < edge
    hi = x > 1.0 - edge
    w[lo] = 0.5 * (1 - np.cos(np.pi * x[lo] / edge))
    w[hi] = 0.5 * (1 - np.cos(np.pi * (1.0 - x[hi]) / edge))
    return w


def bin_image(image: np.ndarray, factor: int) -> np.ndarray:
    """Block-average a 2D image by an integer factor (trailing rows/columns dropped), as float32."""
    if factor == 1:
        return np.asarray(image, dtype=np.float32)
    ny = (image.shape[0] // factor) * factor
    nx = (image.shape[1] // factor) * factor
    image = np.asarray(image)[:ny, :nx]
    # sums of strided slices: ~10x faster than a mean over the axes of a 4D block view
    rows = image[0::factor].astype(np.float32)
    for i in range(1, factor):
        rows += image[i::factor]
    out = np.ascontiguousarray(rows[:, 0::factor])
    for j in range(1, factor):
        out += rows[:, j::factor]
    out /= factor * factor
    return out


class PhaseCorrelator:
    """Prepare slice spectra and measure pairwise shifts for one fixed geometry.

    Parameters
    ----------
    geometry : SpectrumGeometry
        Region, binning, decimation and curtain suppression.
    workers : int
        Threads used by each FFT.
    """

    def __init__(self, geometry: SpectrumGeometry, *, workers: int = 1) -> None:
        ny, nx = geometry.binned_shape
        if ny < 16 or nx < 16:
            raise ParameterError(
                f"registration window {geometry.box} is too small after binning by {geometry.bin}; "
                "use a larger window or bin=1"
            )
        self.geometry = geometry
        self.workers = workers
        self._taper = _tukey(ny)[:, None] * _tukey(nx)[None, :]
        gy, gx = geometry.grid_shape
        self._rows = np.r_[0 : gy // 2, ny - gy // 2 : ny]
        ky = np.fft.fftfreq(gy) * gy  # integer row index, signed
        kx = np.arange(gx // 2 + 1, dtype=float)
        # Gaussian weight -> Gaussian peak of width sigma (grid samples) in the correlation.
        s = geometry.sigma
        weight = np.exp(-2.0 * np.pi**2 * s**2 * ((ky[:, None] / gy) ** 2 + (kx[None, :] / gx) ** 2))
        if geometry.curtain_rows > 0:
            weight[np.abs(ky) <= geometry.curtain_rows, :] = 0.0
        weight[0, 0] = 0.0
        self._weight = weight.astype(np.float32)
        self._peak_norm = float(sfft.irfft2(self._weight, s=(gy, gx))[0, 0])
        # The weight is separable; the curtain notch makes the peak along y non-Gaussian, so the
        # three-point fit is calibrated on the exact 1D peak shapes (removes a bias proportional
        # to the sub-sample offset).
        gauss_y = np.exp(-2.0 * np.pi**2 * s**2 * (ky / gy) ** 2)
        if geometry.curtain_rows > 0:
            gauss_y[np.abs(ky) <= geometry.curtain_rows] = 0.0
        kx_full = np.fft.fftfreq(gx) * gx
        gauss_x = np.exp(-2.0 * np.pi**2 * s**2 * (kx_full / gx) ** 2)
        self._calib = (_fit_calibration(gauss_y, ky, gy), _fit_calibration(gauss_x, kx_full, gx))

    def prepare(self, region: np.ndarray) -> np.ndarray:
        """Whitened, tapered, band-limited spectrum of one slice's region (complex64).

        Parameters
        ----------
        region : ndarray
            The slice cropped to ``geometry.box`` (full resolution, float32), masked pixels
            already filled.
        """
        g = self.geometry
        data = bin_image(np.asarray(region), g.bin)
        ny, nx = g.binned_shape
        data = data[:ny, :nx]
        data = (data - data.mean(dtype=np.float64)) * self._taper
        spec = sfft.rfft2(data, workers=self.workers)
        gy, gx = g.grid_shape
        spec = spec[self._rows, : gx // 2 + 1]
        mag = np.abs(spec)
        floor = 1e-6 * float(mag.max()) + 1e-30
        return (spec / np.maximum(mag, floor)).astype(np.complex64)

    def pair_shift(self, spec_a: np.ndarray, spec_b: np.ndarray) -> tuple[np.ndarray, float]:
        """Shift that registers slice ``b`` onto slice ``a`` and the peak coherence.

        Returns
        -------
        shift : ndarray, shape (2,)
            ``(dy, dx)`` in full-resolution pixels, in the ``scipy.ndimage.shift`` sense: shifting
            ``b`` by it aligns ``b`` with ``a``.
        coherence : float
            Peak height relative to a perfect match, in ``[0, 1]``.
        """
        gy, gx = self.geometry.grid_shape
        product = spec_a * np.conj(spec_b) * self._weight
        surface = sfft.irfft2(product, s=(gy, gx), workers=self.workers)
        iy, ix = np.unravel_index(int(np.argmax(surface)), surface.shape)
        peak = float(surface[iy, ix])
        fy = _gauss3(surface[(iy - 1) % gy, ix], peak, surface[(iy + 1) % gy, ix])
        fx = _gauss3(surface[iy, (ix - 1) % gx], peak, surface[iy, (ix + 1) % gx])
        fy = float(np.interp(fy, *self._calib[0]))
        fx = float(np.interp(fx, *self._calib[1]))
        py = iy - gy if iy > gy // 2 else iy
        px = ix - gx if ix > gx // 2 else ix
        sy, sx = self.geometry.pixel
        shift = np.array([(py + fy) * sy, (px + fx) * sx])
        coherence = float(np.clip(peak / self._peak_norm, 0.0, 1.0)) if self._peak_norm > 0 else 0.0
        return shift, coherence


def coherence_sigma(coherence: float) -> float:
    """Uncertainty (px) of one global correlation from its peak coherence."""
    return 0.05 * float(np.sqrt((1.0 - coherence) / max(coherence, 1e-3)))


def _gauss3(left: float, centre: float, right: float) -> float:
    """Sub-sample offset of a sampled Gaussian's centre from three samples (log-parabola)."""
    tiny = 1e-12 * abs(centre) + 1e-30
    if left <= tiny or right <= tiny or centre <= tiny:
        denom = left - 2 * centre + right
        return 0.0 if denom == 0 else float(np.clip(0.5 * (left - right) / denom, -0.5, 0.5))
    ll, lc, lr = np.log(left), np.log(centre), np.log(right)
    denom = ll - 2 * lc + lr
    if denom >= 0:
        return 0.0
    return float(np.clip(0.5 * (ll - lr) / denom, -0.5, 0.5))


def _fit_calibration(weight: np.ndarray, k: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Map from the three-point fit's offset to the true offset for the 1D peak of ``weight``.

    ``weight`` over signed frequency indices ``k`` (grid of ``n``) defines the peak shape
    ``K(t) = sum_k weight(k) cos(2 pi k t / n)``. Returns ``(fitted, true)`` for ``np.interp``.
    """
    true = np.linspace(-0.5, 0.5, 201)

    def kernel(t: np.ndarray) -> np.ndarray:
        return np.cos(2 * np.pi * np.outer(t, k) / n) @ weight

    fitted = np.array([_gauss3(*kernel(np.array([-1 - d, -d, 1 - d]))) for d in true])
    order = np.argsort(fitted)
    fitted, true = fitted[order], true[order]
    keep = np.r_[True, np.diff(fitted) > 1e-9]
    return fitted[keep], true[keep]


class TileCorrelator:
    """Pairwise shift as the consensus of many local tiles instead of one global correlation.

    Features inclined to the milling direction move across the image from slice to slice, each
    its own way; a global correlation settles on a weighted mean of their motions, dominated by
    a few strong features. The drift is the motion common to everything, so each tile (a
    quarter of the region wide, half-overlapping: about 7 x 7 tiles) is correlated on its own
    and the shift is the *mode* of the tile shifts: the coherence-weighted mean of the tiles
    within ``window`` px of the consensus, found from the median by a few mean-shift steps.

    Parameters
    ----------
    geometry : SpectrumGeometry
        Region, binning, decimation and curtain suppression of the whole region.
    tiles : int
        Tiles across the shorter side of the region (half-overlapping).
    window : float
        Half-width (full-resolution px) of the consensus window.
    min_coherence : float
        Tiles whose peak is weaker than this (blank, featureless) do not vote.
    workers : int
        Threads used by each FFT.
    """

    def __init__(
        self,
        geometry: SpectrumGeometry,
        *,
        tiles: int = 4,
        window: float = 1.0,
        min_coherence: float = 0.05,
        workers: int = 1,
    ) -> None:
        ny, nx = geometry.binned_shape
        side = _smooth_below(max(32, min(ny, nx) // int(tiles)), even=True)
        if side > min(ny, nx):
            raise ParameterError(f"registration window {geometry.box} is too small for tiles; use a larger window")
        step = max(1, side // 2)
        self.origins = [(y, x) for y in range(0, ny - side + 1, step) for x in range(0, nx - side + 1, step)]
        rows = max(1, round(geometry.curtain_rows * side / ny)) if geometry.curtain_rows > 0 else 0
        self.geometry = geometry
        self.side = side
        self.tile = PhaseCorrelator(SpectrumGeometry((0, side, 0, side), 1, geometry.decimate, rows, geometry.sigma))
        self.window = float(window)
        self.min_coherence = float(min_coherence)
        self.workers = workers

    def prepare(self, region: np.ndarray) -> np.ndarray:
        """Whitened, band-limited spectra of every tile, shape ``(tiles, gy, gx // 2 + 1)``."""
        g = self.geometry
        data = bin_image(np.asarray(region), g.bin)
        s = self.side
        stack = np.stack([data[y : y + s, x : x + s] for y, x in self.origins])
        stack = (stack - stack.mean(axis=(1, 2), keepdims=True, dtype=np.float64).astype(np.float32)) * self.tile._taper
        spec = sfft.rfft2(stack, axes=(1, 2), workers=self.workers)
        gy, gx = self.tile.geometry.grid_shape
        spec = spec[:, self.tile._rows, : gx // 2 + 1]
        mag = np.abs(spec)
        floor = 1e-6 * mag.max(axis=(1, 2), keepdims=True) + 1e-30
        return (spec / np.maximum(mag, floor)).astype(np.complex64)

    def tile_shifts(self, spec_a: np.ndarray, spec_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Shift (full-resolution px) and coherence of every tile pair."""
        tile = self.tile
        gy, gx = tile.geometry.grid_shape
        surface = sfft.irfft2(spec_a * np.conj(spec_b) * tile._weight, s=(gy, gx), axes=(1, 2), workers=self.workers)
        n = surface.shape[0]
        flat = surface.reshape(n, -1)
        best = np.argmax(flat, axis=1)
        iy, ix = np.divmod(best, gx)
        k = np.arange(n)
        peak = flat[k, best]
        fy = _gauss3_many(surface[k, (iy - 1) % gy, ix], peak, surface[k, (iy + 1) % gy, ix])
        fx = _gauss3_many(surface[k, iy, (ix - 1) % gx], peak, surface[k, iy, (ix + 1) % gx])
        fy = np.interp(fy, *tile._calib[0])
        fx = np.interp(fx, *tile._calib[1])
        py = np.where(iy > gy // 2, iy - gy, iy)
        px = np.where(ix > gx // 2, ix - gx, ix)
        sy, sx = tile.geometry.pixel
        b = self.geometry.bin
        shifts = np.column_stack([(py + fy) * sy * b, (px + fx) * sx * b])
        coherence = np.clip(peak / tile._peak_norm, 0.0, 1.0) if tile._peak_norm > 0 else np.zeros(n)
        return shifts, coherence

    def pair_shift(self, spec_a: np.ndarray, spec_b: np.ndarray) -> tuple[np.ndarray, float, float]:
        """Consensus shift registering ``b`` onto ``a``, its uncertainty (px) and the median coherence.

        The uncertainty is the spread of the agreeing tiles over the square root of their
        number; NaN when fewer than 3 tiles agree.
        """
        shifts, q = self.tile_shifts(spec_a, spec_b)
        return self._consensus(shifts, q)

    def halves(self) -> tuple[np.ndarray, np.ndarray]:
        """Masks of the tiles wholly in the left and in the right half of the region."""
        nx = self.geometry.binned_shape[1]
        x = np.array([o[1] for o in self.origins])
        return x + self.side <= nx // 2, x >= nx // 2

    def split_pair_shift(
        self, spec_a: np.ndarray, spec_b: np.ndarray, weights: np.ndarray | None = None
    ) -> list[tuple[np.ndarray, float, float]]:
        """:meth:`pair_shift` of all tiles, of the left-half tiles and of the right-half tiles."""
        shifts, q = self.tile_shifts(spec_a, spec_b)
        return self.split_consensus(shifts, q, weights)

    def split_consensus(
        self, shifts: np.ndarray, q: np.ndarray, weights: np.ndarray | None = None
    ) -> list[tuple[np.ndarray, float, float]]:
        """Consensus of given tile shifts: all tiles, the left-half tiles, the right-half tiles.

        ``weights`` (optional) multiply the coherence weights of the tiles: one number per tile,
        or one symmetric 2 x 2 matrix per tile, shape ``(T, 2, 2)`` (information along each
        direction, see :func:`volrecon.correct._registration_persist.wander_information`).
        """
        w = np.ones(len(q)) if weights is None else np.asarray(weights, float)
        return [self._consensus(shifts, q, w)] + [self._consensus(shifts[m], q[m], w[m]) for m in self.halves()]

    def _consensus(
        self, shifts: np.ndarray, q: np.ndarray, weights: np.ndarray | None = None
    ) -> tuple[np.ndarray, float, float]:
        vote = q >= self.min_coherence
        if weights is None:
            weights = np.ones(len(q))
        matrix = weights.ndim == 3
        vote &= (np.trace(weights, axis1=1, axis2=2) if matrix else weights) > 0
        coherence = float(np.median(q)) if q.size else 0.0
        if vote.sum() < 3:
            return np.zeros(2), float("nan"), coherence
        s, q, w = shifts[vote], q[vote], weights[vote]
        centre = np.median(s, axis=0)
        near = np.ones(len(s), dtype=bool)
        for _ in range(4):
            near = np.all(np.abs(s - centre) <= self.window, axis=1)
            if near.sum() < 3:
                return centre, float("nan"), coherence
            if matrix:
                total = np.einsum("t,tij->ij", q[near], w[near])
                new = np.linalg.solve(total, np.einsum("t,tij,tj->i", q[near], w[near], s[near]))
            else:
                new = np.average(s[near], axis=0, weights=q[near] * w[near])
            if np.allclose(new, centre, atol=1e-4):
                break
            centre = new
        spread = float(np.sqrt(np.mean(np.sum((s[near] - centre) ** 2, axis=1)) / 2.0))
        return centre, spread / np.sqrt(near.sum()), coherence


def _gauss3_many(left: np.ndarray, centre: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Vectorised :func:`_gauss3` (log-parabola; plain parabola where a sample is not positive)."""
    tiny = 1e-12 * np.abs(centre) + 1e-30
    positive = (left > tiny) & (right > tiny) & (centre > tiny)
    with np.errstate(divide="ignore", invalid="ignore"):
        ll, lc, lr = (np.log(np.where(positive, v, 1.0)) for v in (left, centre, right))
        denom_log = ll - 2 * lc + lr
        log_fit = np.where(denom_log < 0, 0.5 * (ll - lr) / np.where(denom_log < 0, denom_log, -1.0), 0.0)
        denom = left - 2 * centre + right
        plain = np.where(denom != 0, 0.5 * (left - right) / np.where(denom != 0, denom, 1.0), 0.0)
    return np.clip(np.where(positive, log_fit, plain), -0.5, 0.5)


class FiducialTracker:
    """Absolute sub-pixel position of a user-marked fiducial, measured on its edges.

    A fiducial (cap edge, trench wall, marker) is defined by its edges, not by its texture: each
    image is turned into its Gaussian gradient magnitude (insensitive to brightness offsets and
    steps), low-passed to the scale of the edge blur and cross-correlated *without* whitening, so
    every frequency counts by its signal energy instead of noise-dominated high frequencies
    counting as much as the edges. No curtain notch: a vertical wall carries its ``x``
    information only in the spectral rows with ``k_y`` near 0, which the notch would remove.

    The reference box is a tapered template in the *reference* slice's frame; each later slice is
    searched for it in an area ``margin`` px larger on every side around the expected position,
    so the box follows the fiducial (a static tapered window would weight the moving edges by
    where they happen to sit, pulling the estimate toward zero). The sub-pixel peak is the
    maximum of the continuous correlation (Newton steps on its Fourier series).

    Parameters
    ----------
    shape : tuple of int
        ``(ny, nx)`` of the marked box.
    margin : int
        Search half-range (px) around the expected position; the area measured is
        ``(ny + 2 margin, nx + 2 margin)``.
    edge_sigma : float
        Scale (px) of the gradient filter, about the edge blur of the image.
    smooth : float
        Extra Gaussian low-pass (px) of the edge images.
    """

    def __init__(
        self, shape: tuple[int, int], *, margin: int = 8, edge_sigma: float = 1.5, smooth: float = 0.5
    ) -> None:
        ny, nx = (int(n) for n in shape)
        if ny < 16 or nx < 16:
            raise ParameterError(f"anchor region {ny}x{nx} px is too small; mark at least 16x16 px")
        self.shape = (ny, nx)
        self.margin = int(margin)
        self.area_shape = (ny + 2 * self.margin, nx + 2 * self.margin)
        self.edge_sigma = float(edge_sigma)
        self.smooth = float(smooth)
        self._taper = (_tukey(ny)[:, None] * _tukey(nx)[None, :]).astype(np.float64)
        ay, ax = self.area_shape
        self._ky = np.fft.fftfreq(ay)[:, None]
        self._kx = np.fft.rfftfreq(ax)[None, :]
        # rfft half plane: every column but the first (and an even length's last) stands for two
        count = np.full(ax // 2 + 1, 2.0)
        count[0] = 1.0
        if ax % 2 == 0:
            count[-1] = 1.0
        self._count = count[None, :]

    def edges(self, image: np.ndarray) -> np.ndarray:
        """Low-passed gradient magnitude of an image (float64)."""
        from scipy import ndimage

        e = ndimage.gaussian_gradient_magnitude(np.asarray(image, dtype=np.float32), self.edge_sigma)
        return ndimage.gaussian_filter(e, self.smooth).astype(np.float64) if self.smooth > 0 else e.astype(np.float64)

    def template(self, box_edges: np.ndarray) -> tuple[np.ndarray, float]:
        """Spectrum of the zero-mean tapered template (embedded in the search area) and its norm."""
        t = self._windowed(box_edges)
        pad = np.zeros(self.area_shape)
        m = self.margin
        pad[m : m + self.shape[0], m : m + self.shape[1]] = t
        return sfft.rfft2(pad), float(np.sqrt(np.sum(t * t)))

    def locate(self, template: tuple[np.ndarray, float], area_edges: np.ndarray) -> tuple[np.ndarray, float]:
        """Displacement of the fiducial in the area relative to the template, and the match quality.

        Returns
        -------
        offset : ndarray, shape (2,)
            ``(dy, dx)`` px the content moved from the template's position (the area's centre).
        coherence : float
            Normalised cross-correlation of template and matched window, in ``[0, 1]``.
        """
        spec, norm = template
        product = sfft.rfft2(area_edges) * np.conj(spec)
        surface = sfft.irfft2(product, s=self.area_shape)
        m = self.margin
        inner = surface.copy()
        ay, ax = self.area_shape
        # only |offset| <= margin is free of wrap-around
        inner[m + 1 : ay - m, :] = -np.inf
        inner[:, m + 1 : ax - m] = -np.inf
        iy, ix = np.unravel_index(int(np.argmax(inner)), inner.shape)
        start = np.array([iy - ay if iy > ay // 2 else iy, ix - ax if ix > ax // 2 else ix], dtype=float)
        terms = product * self._count
        offset = start.copy()
        for _ in range(8):
            step = self._newton_step(terms, offset)
            if step is None:
                break
            offset = start + np.clip(offset + step - start, -1.0, 1.0)
            if np.abs(step).max() < 1e-4:
                break
        y, x = int(start[0]) + m, int(start[1]) + m
        window = self._windowed(area_edges[y : y + self.shape[0], x : x + self.shape[1]])
        denom = norm * float(np.sqrt(np.sum(window * window)))
        coherence = float(np.clip(surface[iy, ix] / denom, 0.0, 1.0)) if denom > 0 else 0.0
        return offset, coherence

    def _windowed(self, edges: np.ndarray) -> np.ndarray:
        w = self._taper
        return w * (edges - np.sum(w * edges) / np.sum(w))

    def _newton_step(self, terms: np.ndarray, shift: np.ndarray) -> np.ndarray | None:
        """Newton step towards the maximum of ``c(t) = Re sum terms e^{2 pi i k t}``; None if not concave."""
        q = terms * np.exp(2j * np.pi * (self._ky * shift[0] + self._kx * shift[1]))
        ky, kx = self._ky, self._kx
        grad = -2 * np.pi * np.array([np.sum(np.imag(q) * ky), np.sum(np.imag(q) * kx)])
        re = np.real(q)
        hyy, hyx, hxx = (-4 * np.pi**2 * float(np.sum(re * a)) for a in (ky * ky, ky * kx, kx * kx))
        det = hyy * hxx - hyx * hyx
        if hyy >= 0 or det <= 0:
            return None
        return np.clip(-np.array([hxx * grad[0] - hyx * grad[1], hyy * grad[1] - hyx * grad[0]]) / det, -0.5, 0.5)
