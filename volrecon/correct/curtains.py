"""Curtaining: stripes along the milling direction, removed slice by slice.

Curtains are narrow (a few px) across the stripe and long, slowly fading along it, and they
start below a dense feature or the cap edge rather than running through the whole column.

Methods
-------
``"highpass"`` (default)
    Column-wise high-pass with a local, robust along-stripe average: the across-stripe
    high-pass ``r = I - G_sigma(I)`` (Gaussian across the stripe) is reduced to medians of
    blocks of ``block`` rows, a running median over ``length`` rows of those blocks gives the
    stripe profile, which is soft-thresholded at its noise level and interpolated back to every
    row.  The medians ignore phase boundaries that run along the stripe for less than half the
    window, and the local window lets a stripe start below a feature.
``"wavelet-fft"``
    The wavelet–Fourier filter of Münch et al. (2009): the across-stripe detail bands of a
    wavelet decomposition are damped at low along-stripe frequencies.  Needs PyWavelets.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from volrecon.correct._intensity import check_volume, map_slices, read_slices, restore_dtype, spread_indices
from volrecon.errors import ParameterError

METHODS = ("highpass", "wavelet-fft")
ORIENTATIONS = ("vertical", "horizontal")
FILE_JSON = "curtains.json"


@dataclass(frozen=True)
class CurtainSettings:
    """How stripes are removed (the curtain 'estimate' is a filter setting).

    Attributes
    ----------
    method : str
        ``"highpass"`` or ``"wavelet-fft"``.
    orientation : str
        ``"vertical"``: stripes run along image y (columns), the usual FIB curtain;
        ``"horizontal"``: along x.
    width_px : float
        Gaussian sigma of the across-stripe high-pass (px); wider than the stripes.
    block : int
        Rows per block of the along-stripe median.
    length : int
        Blocks in the running median along the stripe (window = ``block * length`` rows).
    threshold : float
        Soft threshold of the stripe profile in noise units.
    levels, fft_sigma : int, float
        Wavelet levels and Fourier damping width for ``"wavelet-fft"``.
    stripe_index_before, stripe_index_after : float
        Measured stripe strength (RMS of the along-stripe-averaged high-pass, grey levels) on
        sample slices, before and after, to show it did something.
    enabled : bool
        False when the sample slices carry no significant stripes: the filter is then not
        applied, so a stripe-free stack is never harmed.
    significance : float
        Energy the filter removes from the sample slices divided by the energy it removes from
        the same slices with block rows shuffled along the stripe (no stripe survives the
        shuffle, structure and noise do); below ``min_significance`` the filter is disabled.
    """

    method: str = "highpass"
    orientation: str = "vertical"
    width_px: float = 4.0
    block: int = 16
    length: int = 5
    threshold: float = 2.0
    levels: int = 4
    fft_sigma: float = 3.0
    stripe_index_before: float = float("nan")
    stripe_index_after: float = float("nan")
    enabled: bool = True
    significance: float = float("nan")

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ParameterError(f"curtain method={self.method!r}; use one of {', '.join(METHODS)}")
        if self.orientation not in ORIENTATIONS:
            raise ParameterError(f"curtain orientation={self.orientation!r}; use 'vertical' (along y) or 'horizontal'")
        if not (self.width_px > 0 and self.block >= 1 and self.length >= 1):
            raise ParameterError("curtain width_px, block and length must be positive")

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe settings."""
        d = asdict(self)
        return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in d.items()}

    def save(self, directory: str | Path) -> Path:
        """Write ``curtains.json``."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        (d / FILE_JSON).write_text(json.dumps(self.to_dict(), indent=2))
        return d / FILE_JSON

    @classmethod
    def load(cls, directory: str | Path) -> "CurtainSettings":
        """Read what :meth:`save` wrote."""
        d = Path(directory)
        data = json.loads((d / FILE_JSON if d.is_dir() else d).read_text())
        return cls(**{k: (float("nan") if v is None else v) for k, v in data.items()})


def _row_bin(block: int) -> int:
    """Rows averaged into one before the block median: the largest of 4, 2, 1 dividing ``block``."""
    return next(r for r in (4, 2, 1) if block % r == 0)


def _running_median(blocks: np.ndarray, length: int) -> np.ndarray:
    """Running median of ``length`` block rows (axis 0), edges repeated.

    Equal to ``ndi.median_filter(blocks, size=(length, 1), mode="nearest")``; for short windows
    the shifted rows are put in order by an odd-even transposition network of element-wise
    min/max (a few fast passes instead of a generic rank filter).
    """
    n = blocks.shape[0]
    if length <= 1 or n <= 1:
        return blocks
    if length > 9:
        return ndi.median_filter(blocks, size=(length, 1), mode="nearest")
    h = length // 2
    pad = np.concatenate([blocks[:1]] * h + [blocks] + [blocks[-1:]] * (length - 1 - h))
    vals = [pad[i : i + n] for i in range(length)]
    for sweep in range(length):
        for j in range(sweep % 2, length - 1, 2):
            vals[j], vals[j + 1] = np.minimum(vals[j], vals[j + 1]), np.maximum(vals[j], vals[j + 1])
    return vals[h]


def _block_median(values: np.ndarray) -> np.ndarray:
    """Median over axis 1 (a few rows per block); closed forms for up to 4 rows."""
    k = values.shape[1]
    if k <= 2:
        return values.mean(axis=1, dtype=np.float32)
    if k in (3, 4):
        extremes = values.max(axis=1) + values.min(axis=1)
        return (values.sum(axis=1, dtype=np.float32) - extremes) / np.float32(k - 2)
    return np.median(values, axis=1).astype(np.float32)


def _add_rows(target: np.ndarray, nodes: np.ndarray, *, sign: float = 1.0) -> None:
    """Add ``sign *`` the linear interpolation of ``nodes`` (rows spread evenly over the rows of
    ``target``, first and last on the edges, as :func:`interp_matrix`) to ``target`` in place,
    one node interval at a time so that no full-size temporary is made."""
    n_rows, n = target.shape[0], nodes.shape[0]
    nodes = (np.float32(sign) * nodes).astype(np.float32)
    if n == 1:
        target += nodes[0]
        return
    pos = np.linspace(0, n - 1, n_rows)
    base = np.clip(np.floor(pos).astype(np.intp), 0, n - 2)
    frac = (pos - base).astype(np.float32)[:, None]
    step = np.diff(nodes, axis=0)
    edges = np.searchsorted(base, np.arange(n), side="left")
    for k in range(n - 1):
        r0, r1 = edges[k], edges[k + 1]
        if r1 > r0:
            seg = target[r0:r1]
            seg += nodes[k]
            seg += frac[r0:r1] * step[k]


def stripe_profile(plane: np.ndarray, settings: CurtainSettings) -> np.ndarray:
    """The additive stripe image of one slice (stripes along axis 0), float32."""
    p = np.asarray(plane, dtype=np.float32)
    out = np.zeros_like(p)
    _add_rows(out, _stripe_nodes(p, settings))
    return out


def _stripe_nodes(p: np.ndarray, settings: CurtainSettings) -> np.ndarray:
    """The stripe profile at the block rows ``(blocks, X)``, float32 (see :func:`stripe_profile`).

    The across-stripe high-pass is linear and acts along the other axis, so rows are first
    averaged in groups of up to 4 (:func:`_row_bin`) and the high-pass and the block median run
    on that 4x smaller image: the block median becomes a median of 4 row means — still robust
    to features shorter than half a block — at a quarter of the work.
    """
    b = max(1, min(int(settings.block), p.shape[0]))
    nb = p.shape[0] // b
    if nb == 0:
        return np.zeros((1, p.shape[1]), np.float32)
    r = _row_bin(b)
    rows = p[: nb * b].reshape(nb * b // r, r, p.shape[1]).sum(axis=1, dtype=np.float32)
    rows *= np.float32(1.0 / r)
    rows -= ndi.gaussian_filter1d(rows, settings.width_px, axis=1, mode="reflect", truncate=3.0)
    blocks = _block_median(rows.reshape(nb, b // r, p.shape[1]))
    length = min(int(settings.length), nb)
    run = _running_median(blocks, length)
    # significance: the same estimator on block rows shuffled along the stripe keeps the values'
    # spread (noise and structure) but destroys the along-stripe consistency only a stripe has;
    # its robust spread is the level below which a "stripe" is indistinguishable from structure
    if nb > 1:
        order = np.random.default_rng(0).permutation(nb)
        null = _running_median(blocks[order], length)
        # MAD alone is zero when most blocks are flat (a noise-free image): the tail counts too
        sigma = 1.4826 * float(np.median(np.abs(null - np.median(null))))
        if sigma <= 1e-3:
            sigma = float(np.quantile(np.abs(null), 0.99)) / 2.58
    else:
        sigma = 1.4826 * float(np.median(np.abs(run - np.median(run))))
    t = settings.threshold * sigma + 1e-6
    return (np.sign(run) * np.maximum(np.abs(run) - t, 0.0)).astype(np.float32)


def _wavelet_fft(plane: np.ndarray, settings: CurtainSettings) -> np.ndarray:
    try:
        import pywt
    except ImportError:  # pragma: no cover - optional dependency
        raise ParameterError("curtain method 'wavelet-fft' needs PyWavelets: pip install PyWavelets, or use 'highpass'") from None
    p = plane.astype(np.float64)
    coeffs = pywt.wavedec2(p, "db4", level=int(settings.levels))
    out = [coeffs[0]]
    for ch, cv, cd in coeffs[1:]:
        f = np.fft.fft(cv, axis=0)  # vertical detail: stripes along axis 0 are low frequency in y
        ky = np.fft.fftfreq(cv.shape[0]) * cv.shape[0]
        damp = 1 - np.exp(-(ky**2) / (2 * settings.fft_sigma**2))
        out.append((ch, np.real(np.fft.ifft(f * damp[:, None], axis=0)), cd))
    rec = pywt.waverec2(out, "db4")[: p.shape[0], : p.shape[1]]
    return (p - rec).astype(np.float32)


def remove_stripes(plane: np.ndarray, settings: CurtainSettings) -> np.ndarray:
    """One slice with stripes removed (float32, not clipped); unchanged when disabled."""
    p = np.array(plane, dtype=np.float32)  # a fresh copy: the stripes are removed in place
    if not settings.enabled:
        return p
    q = p.T if settings.orientation == "horizontal" else p
    if settings.method == "highpass":
        _add_rows(q, _stripe_nodes(q, settings), sign=-1.0)
    else:
        q -= _wavelet_fft(q, settings)
    return p


def stripe_index(plane: np.ndarray, settings: CurtainSettings) -> float:
    """RMS of the column means of the across-stripe high-pass (grey levels): the stripe strength."""
    p = plane.astype(np.float32)
    if settings.orientation == "horizontal":
        p = p.T
    high = p - ndi.gaussian_filter1d(p, settings.width_px, axis=1, mode="reflect")
    return float(np.sqrt(np.mean(np.mean(high, axis=0) ** 2)))


def estimate_curtains(
    image: Any,
    *,
    method: str = "highpass",
    orientation: str = "vertical",
    width_px: float = 4.0,
    block: int = 16,
    length: int = 5,
    threshold: float = 2.0,
    n_slices: int = 4,
    min_significance: float = 0.0,
) -> CurtainSettings:
    """Choose the stripe filter and measure what it removes on a few slices.

    Parameters
    ----------
    image : array (Z, Y, X)
        numpy or dask stack (registered or not: stripes are removed slice by slice).
    method : {"highpass", "wavelet-fft"}
        See the module docstring.
    orientation : {"vertical", "horizontal"}
        Direction the stripes run in.
    width_px, block, length, threshold
        See :class:`CurtainSettings`.
    n_slices : int
        Slices on which the stripe index is measured.
    min_significance : float
        Smallest ratio of removed energy, real over shuffled (see
        :attr:`CurtainSettings.significance`), for which the filter is kept; 0 keeps it always.

    Returns
    -------
    CurtainSettings
    """
    nz = check_volume(image)[0]
    settings = CurtainSettings(method=method, orientation=orientation, width_px=float(width_px), block=int(block), length=int(length), threshold=float(threshold))
    data = read_slices(image, spread_indices(nz, n_slices))
    before = float(np.median([stripe_index(p, settings) for p in data]))
    removed = real = 0.0
    for p in data:
        real += float(np.mean((remove_stripes(p, settings) - p) ** 2))
        removed += _shuffled_removal(p, settings)
    significance = real / max(removed, 1e-12) if real > 0 else 0.0
    enabled = significance >= float(min_significance)
    settings = CurtainSettings(**{**asdict(settings), "enabled": enabled, "significance": float(significance)})
    after = float(np.median([stripe_index(remove_stripes(p, settings), settings) for p in data]))
    return CurtainSettings(**{**asdict(settings), "stripe_index_before": before, "stripe_index_after": after})


def _shuffled_removal(plane: np.ndarray, settings: CurtainSettings) -> float:
    """Energy the filter removes after block rows are shuffled along the stripe direction."""
    p = plane.astype(np.float32)
    if settings.orientation == "horizontal":
        p = p.T
    b = max(1, min(int(settings.block), p.shape[0]))
    nb = p.shape[0] // b
    if nb < 2:
        return 0.0
    order = np.random.default_rng(1).permutation(nb)
    shuffled = p[: nb * b].reshape(nb, b, -1)[order].reshape(nb * b, -1)
    vertical = CurtainSettings(**{**asdict(settings), "orientation": "vertical", "enabled": True})
    return float(np.mean((remove_stripes(shuffled, vertical) - shuffled) ** 2))


def apply_curtains(image: Any, settings: CurtainSettings) -> Any:
    """Remove stripes slice by slice (lazy for dask); same kind, shape and dtype, never NaN."""
    check_volume(image)
    dtype = np.dtype(image.dtype)

    def one(plane: np.ndarray, z: int) -> np.ndarray:
        return restore_dtype(remove_stripes(plane, settings), dtype)

    return map_slices(image, one)
