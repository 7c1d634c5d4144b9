"""Curtaining: stripes along the milling direction, removed slice by slice.

Curtains are narrow (a few px) across the stripe and long, slowly fading along it, and they
start below a dense feature or the cap edge rather than running through the whole column.

Methods
-------
``"highpass"`` (default)
    Rows are averaged in groups of 4 and reduced to block medians of ``block`` rows.  The
    background across the stripe is the median of 11 taps spread over ``+-3 * width_px``
    (mirrored at the image border, so border columns are treated like the others): a stripe
    narrower than the tap spacing touches few taps and drops out, while a step edge of the
    structure (the majority side wins) passes unchanged, so phase boundaries are not taken for
    stripes.  Along the stripe (``along="steps"``, the default) each column of the residual is
    fitted by a piecewise-constant profile with few change points (binary segmentation with a
    penalty per change point, :mod:`volrecon.correct._curtains_segments`): a curtain starts
    abruptly below a feature and runs on at a nearly constant amplitude, so each value is the
    mean of its whole run, which under noise beats a fixed window (``along="window"``, the
    previous default: +0.40 against +0.32 dB on the noisy phantom with strong curtains,
    ``benchmarks/corrections.py``).  A running median over ``length`` blocks then drops
    features shorter than half the window (and keeps the abrupt start of a stripe below a
    feature); the result is damped where it does not persist down the stripe (a curtain runs
    on down the face below its origin; a rod particle or a pore channel along the column
    ends: the median over every other block of the ``2 * length`` blocks below must keep half
    the value), and shrunk by a non-negative garrote at ``threshold`` times the noise of the
    estimate (measured from the residual's differences along the stripe, which the stripes do
    not reach however many columns they cover).  In four passes, each background taken with
    the previous pass's stripes removed (the second with taps twice as far apart and twice the
    persistence along the stripe, for bands of neighbouring curtains), so that wide stripes
    and stripes a few columns apart do not lift each other's background.  The profile is
    interpolated between block centres, except where it jumps (``onsets=True``, default): a
    curtain starts abruptly, so the step is placed at the row where the slice's residual
    changes, between the two block centres around it (:mod:`volrecon.correct._curtains_onset`;
    a linear ramp would put half the stripe over the 16 rows before its start and miss half
    of it after).
    Along z (:func:`apply_curtains`, ``z_reach`` slices each side): curtains are milled
    topography and stay at the same x from slice to slice, so the residuals of neighbouring
    slices are averaged before the steps above (the noise is not shared), and each slice gets
    that profile at its own amplitude: the gain of its along-stripe median over the pooled
    one, fitted over each run between the pooled change points (``along="window"``: over a
    few blocks along the stripe).
``"wavelet-fft"``
    The wavelet–Fourier filter of Münch et al. (2009): the across-stripe detail bands of a
    wavelet decomposition are damped at low along-stripe frequencies.  Needs PyWavelets.

Gate
----
:func:`estimate_curtains` measures on sample slices how much the filter would remove and
compares it with what it removes from Gaussian noise of the slice's own pixel noise
(``significance``: about 1 on pure noise; the structure of a stripe-free specimen adds to it).
Given the specimen (``mask``; the correct stage passes the face's frame it finds), it is
measured on the block of whole specimen columns (:func:`specimen_block`): the trench walls'
bright rims are long lines along the stripes and opened the gate of every framed phantom,
curtains or not.  The removed energy is the smallest over four starts of the block grid along
the stripe (a block straddling a rough layer interface reads as stripe onsets on some grids;
curtains read the same on all), and the noise's is averaged over enough draws to steady it.
Below ``min_significance`` (default by ``along``: 24 for ``"steps"``, 10 for ``"window"``,
:data:`GATES`) the filter is disabled, so a stripe-free noisy stack is left as it is.
``benchmarks/results/curtain_gate.md`` (phantoms with and without curtains, the destriper
forced on to see where it helps): stripe-free faces read 4-11 at 192-2048 px and 12-17 at 256 px
of 20 nm, and the filter only adds error there; the default curtains read 5-10 at 192 px and
13-20 at 256 px of 20 nm, where it adds error too, and 26-59 from 512 px up, where it removes
9-29 % of them; strong curtains read 31-1300 and it removes 34-64 % (but adds 19 % on one
frameless 192 px field, in its last rows).  The gate of 24 lies between, with a margin of 1.4
above the stripe-free faces and only 1.08 under the weakest curtains it helps with; the noise
null is drawn on at most 512 x 512 px (:func:`_noise_null`), so that the reading does not grow
with the field.  On a noise-free stack nothing is noise, and thin, long, straight features of
the structure pass the gate.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from volrecon.correct._curtains_median import shift_median
from volrecon.correct._curtains_onset import find_onsets, with_stripes
from volrecon.correct._curtains_segments import fit_steps, run_means
from volrecon._spread import spread_indices
from volrecon.correct._intensity import affine_slice, check_mask, check_volume, is_dask, map_slices, pixel_noise, read_slices, restore_dtype
from volrecon.errors import ParameterError

METHODS = ("highpass", "wavelet-fft")
ALONG = ("steps", "window")
ORIENTATIONS = ("vertical", "horizontal")
FILE_JSON = "curtains.json"
# defaults by ``along``, tuned on the phantoms (the two smoothers' noise and null differ in scale)
THRESHOLDS = {"steps": 1.5, "window": 3.0}
GATES = {"steps": 24.0, "window": 10.0}


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
        Widest stripe removed (px across): the across-stripe median reaches ``+-3 * width_px``
        (features narrower than about that and longer than half the window are taken for
        stripes); the Gaussian width of :func:`stripe_index`.
    block : int
        Rows per block of the along-stripe median.
    length : int
        Blocks in the running median along the stripe (window = ``block * length`` rows).
    threshold : float or None
        Garrote threshold of the stripe profile in units of the noise of its estimate (of a
        run's mean for ``along="steps"``, of a ``length``-block median for ``"window"``);
        None (default): the value tuned on the phantoms for ``along``, :data:`THRESHOLDS`
        (1.5 and 3).
    along : str
        How the stripe is followed down the column (``"highpass"``): ``"steps"``, a
        piecewise-constant fit with few change points (each value the mean of its whole run),
        or ``"window"``, a running median of ``length`` blocks only (settings saved before
        ``along`` existed are re-applied so).
    z_reach : int
        Slices on each side whose residuals are pooled with a slice's (curtains stay at the
        same x from slice to slice; each slice keeps its own amplitude), used by
        :func:`apply_curtains` and :func:`remove_stripes_stack`; 0: every slice on its own
        (as :func:`remove_stripes`, which sees one slice), the default: pooling 2 slices each
        side gains a little on noisy stacks with strong curtains but costs about 3x the apply
        time (overlapping tasks), which breaks the 15 slices/s goal at 2048x1536
        (``benchmarks/corrections.py``).
    onsets : bool
        Place each jump of the stripe profile (a curtain starting below a feature, or a
        second one joining it) at the row where it happens in the slice, found between the two
        block centres around it (:mod:`volrecon.correct._curtains_onset`), instead of
        interpolating linearly over a block (``"highpass"``; settings saved before it existed
        are re-applied with the ramp).
    levels, fft_sigma : int, float
        Wavelet levels and Fourier damping width for ``"wavelet-fft"``.
    stripe_index_before, stripe_index_after : float
        Measured stripe strength (RMS of the along-stripe-averaged high-pass, grey levels) on
        sample slices, before and after, to show it did something.
    enabled : bool
        False when the sample slices carry no significant stripes: the filter is then not
        applied, so a stripe-free stack is never harmed.
    significance : float
        Energy the filter removes from the sample slices (slice by slice) divided by the energy
        the same shrinkage removes from Gaussian noise of the slice's pixel noise (about 1 on
        pure noise, a few on a stripe-free specimen); below ``min_significance`` the filter is
        disabled.
    measured_region : list of int or None
        ``[row0, row1, col0, col1]`` (end exclusive) of the block of whole specimen columns the
        significance and stripe indices were measured on (:func:`specimen_block`); None: the
        whole slice.
    """

    method: str = "highpass"
    orientation: str = "vertical"
    width_px: float = 2.5
    block: int = 16
    length: int = 7
    threshold: float | None = None
    along: str = "steps"
    z_reach: int = 0
    onsets: bool = True
    levels: int = 4
    fft_sigma: float = 3.0
    stripe_index_before: float = float("nan")
    stripe_index_after: float = float("nan")
    enabled: bool = True
    significance: float = float("nan")
    measured_region: list[int] | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ParameterError(f"curtain method={self.method!r}; use one of {', '.join(METHODS)}")
        if self.along not in ALONG:
            raise ParameterError(f"curtain along={self.along!r}; use one of {', '.join(ALONG)}")
        if self.orientation not in ORIENTATIONS:
            raise ParameterError(f"curtain orientation={self.orientation!r}; use 'vertical' (along y) or 'horizontal'")
        if not (self.width_px > 0 and self.block >= 1 and self.length >= 1):
            raise ParameterError("curtain width_px, block and length must be positive")
        if self.z_reach < 0:
            raise ParameterError(f"curtain z_reach={self.z_reach}: give 0 (slice by slice) or more slices on each side")
        if self.threshold is None:
            object.__setattr__(self, "threshold", THRESHOLDS[self.along])
        elif not float(self.threshold) >= 0:
            raise ParameterError(f"curtain threshold={self.threshold}: give a non-negative number, or None for the default of along={self.along!r}")

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
        data.setdefault("z_reach", 0)  # written before z pooling existed: re-applied slice by slice, as it ran
        data.setdefault("onsets", False)  # written before onsets were placed at row resolution: re-applied with the ramp
        data.setdefault("along", "window")  # written before the change-point fit: re-applied with the window it ran with
        # None stands for NaN in the JSON of the float fields; the measured region is None itself
        return cls(**{k: (float("nan") if v is None and k != "measured_region" else v) for k, v in data.items()})


def _row_bin(block: int) -> int:
    """Rows averaged into one before the block median: the largest of 4, 2, 1 dividing ``block``."""
    return next(r for r in (4, 2, 1) if block % r == 0)


def _running_median(blocks: np.ndarray, length: int, *, ahead: bool = False, step: int = 1) -> np.ndarray:
    """Running median of ``length`` block rows (axis 0), edges repeated.

    Centred (``ahead=False``): the block and ``length // 2`` blocks on each side, every
    ``step``-th one (for ``step=1`` and odd ``length`` equal to
    ``ndi.median_filter(blocks, size=(length, 1), mode="nearest")``).  ``ahead=True``: the
    block and the blocks after it (down the stripe), every ``step``-th one.  Edge blocks are
    repeated past the ends.
    """
    n = blocks.shape[0]
    if length <= 1 or n <= 1:
        return blocks
    length += 1 - length % 2  # odd: one middle element
    if length > 9 and step == 1:
        origin = -(length // 2) if ahead else 0
        return ndi.median_filter(blocks, size=(length, 1), mode="nearest", origin=(origin, 0))
    before, after = (0, step * (length - 1)) if ahead else (step * (length // 2), step * (length // 2))
    pad = np.concatenate([blocks[:1]] * before + [blocks] + [blocks[-1:]] * after)
    if length <= 9:
        return shift_median(pad, step * np.arange(length), np.zeros(length, np.intp), blocks.shape)
    return np.median(np.stack([pad[step * i : step * i + n] for i in range(length)]), axis=0).astype(blocks.dtype)


_PERSIST = 0.5  # the stripe below a block must keep at least this share of its amplitude


def _persistent(run: np.ndarray, blocks: np.ndarray, length: int, *, step: int = 2) -> np.ndarray:
    """``run`` damped where the residual does not persist down the stripe.

    A curtain, once started below a feature, runs on down the face (fading slowly), so the
    median of the residual over every ``step``-th block of the ``step * length`` blocks below
    a block (twice the centred window: a feature must outlast both to pass) keeps most of the value
    there; a narrow elongated feature of the structure (a rod particle, a pore channel along
    the column) ends, and the blocks below it pull that median to 0.  The weight is the ratio
    of the two medians over :data:`_PERSIST`, clipped to [0, 1] (0 where the signs differ).
    """
    below = _running_median(blocks, length, ahead=True, step=step)
    safe = np.where(run == 0, np.float32(1), run)
    w = np.clip(below / safe * np.float32(1 / _PERSIST), 0, 1)
    return run * w


_TAPS = 5  # taps of the across-stripe median on each side of the column (plus the column)


def _tap_offsets(width_px: float) -> np.ndarray:
    """Column offsets of the across-stripe median: the column and 5 on each side over ``+-3 * width_px``.

    An odd count with the column itself keeps a step edge exact (its own side always holds the
    majority); a stripe covers the column and at most a tap or two on each side, a minority.
    """
    reach = max(_TAPS, int(round(3 * float(width_px))))
    side = np.unique(np.round(np.linspace(reach / _TAPS, reach, _TAPS)).astype(int))
    return np.concatenate([-side[::-1], [0], side])


def _across_median(blocks: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Median across columns (axis 1) of the taps ``offsets`` (mirrored at the image border)."""
    reach = int(np.abs(offsets).max())
    # mirrored at the border: a border column's background comes from the columns inside
    pad = np.pad(blocks, ((0, 0), (reach, reach)), mode="reflect" if blocks.shape[1] > reach else "edge")
    return shift_median(pad, np.zeros(offsets.size, np.intp), reach + offsets, blocks.shape)


def _block_median(values: np.ndarray) -> np.ndarray:
    """Median over axis 1 (a few rows per block); closed forms for up to 4 rows."""
    k = values.shape[1]
    if k <= 2:
        return values.mean(axis=1, dtype=np.float32)
    if k in (3, 4):
        extremes = values.max(axis=1) + values.min(axis=1)
        return (values.sum(axis=1, dtype=np.float32) - extremes) / np.float32(k - 2)
    return np.median(values, axis=1).astype(np.float32)


def stripe_profile(plane: np.ndarray, settings: CurtainSettings) -> np.ndarray:
    """The additive stripe image of one slice (stripes along axis 0), float32."""
    p = np.asarray(plane, dtype=np.float32)
    nodes = _stack_nodes(p[None], settings, pool=False)[0]
    return _with_stripes(np.zeros_like(p), nodes, settings, _onsets(p, nodes, settings))


def _with_stripes(plane: np.ndarray, nodes: np.ndarray, settings: CurtainSettings, split: np.ndarray | None, *, sign: float = 1.0, dtype: Any = np.float32) -> np.ndarray:
    """``plane + sign *`` the stripe image of ``nodes``, cast to ``dtype``.

    Linear between block centres; the intervals marked in ``split`` (:func:`_onsets`, None:
    none) get a step at the row where the stripe jumps
    (:func:`~volrecon.correct._curtains_onset.with_stripes`).
    """
    return with_stripes(plane, nodes, _block_rows(plane, settings), split, sign=sign, dtype=dtype)


def _onsets(plane: np.ndarray, nodes: np.ndarray, settings: CurtainSettings) -> np.ndarray | None:
    """Rows where the stripes of ``nodes`` jump in ``plane`` (:func:`~volrecon.correct._curtains_onset.find_onsets`); None without ``settings.onsets``."""
    if not settings.onsets:
        return None
    return find_onsets(plane, nodes, _block_rows(plane, settings), _tap_offsets(settings.width_px))


def _stripe_nodes(p: np.ndarray, settings: CurtainSettings) -> np.ndarray:
    """The stripe profile of one slice at the block rows ``(blocks, X)``, float32 (see :func:`stripe_profile`)."""
    return _stack_nodes(p[None], settings, pool=False)[0]


def _block_rows(p: np.ndarray, settings: CurtainSettings) -> int:
    """Rows per block for slice ``p`` (at most its height)."""
    return max(1, min(int(settings.block), p.shape[0]))


def _blocks(p: np.ndarray, settings: CurtainSettings) -> tuple[np.ndarray, float]:
    """Block medians ``(blocks, X)`` of one slice and the floor of its noise scale.

    Rows are averaged in groups of up to 4 (:func:`_row_bin`) and reduced to medians of the
    row means of each block (robust to features shorter than half a block).  The floor is
    1/1000 of the slice's grey range, so that a noise-free slice does not treat rounding as a
    stripe.
    """
    b = _block_rows(p, settings)
    nb = p.shape[0] // b
    r = _row_bin(b)
    rows = p[: nb * b].reshape(nb * b // r, r, p.shape[1]).sum(axis=1, dtype=np.float32)
    rows *= np.float32(1.0 / r)
    lo, hi = np.quantile(rows[:: max(1, rows.shape[0] // 16)], (0.01, 0.99))
    return _block_median(rows.reshape(nb, b // r, p.shape[1])), max(1e-3 * float(hi - lo), 1e-12)


_STEP_PENALTY = 4.0  # cost of a change point along the stripe: block-noise variance times 4 log(blocks)


def _pooled_stripes(mean: np.ndarray, settings: CurtainSettings, floor: float, step: int = 1) -> tuple[np.ndarray, np.ndarray | None]:
    """The stripe profile in a residual ``(blocks, X)`` (one slice's, or the mean of a few slices'), and its step fit.

    ``along="steps"``: each column of the mean residual is first fitted by a piecewise-constant
    profile along the stripe (:func:`~volrecon.correct._curtains_segments.fit_steps`, penalty
    :data:`_STEP_PENALTY`: a curtain starts abruptly and runs on at a nearly constant
    amplitude, so each value becomes the mean over its whole run between change points, not
    over a fixed window).  Then, for both smoothers, a running median of ``length`` blocks
    (every ``step``-th block over ``step`` times as many) drops what is shorter than half the
    window, the result is damped where it does not persist down the stripe
    (:func:`_persistent`) and shrunk by a garrote at ``threshold`` times the noise of the
    estimate: of the run's mean (``"steps"``) or of the median of ``length`` blocks
    (``"window"``).  The block noise comes from the differences of the residual along the
    stripe (a stripe is nearly constant along y, so they hold the noise and the structure but
    not the stripes, however many columns they cover).  The step fit's segment labels (None
    for ``"window"``) mark the runs over which :func:`_own_amplitude` fits a slice's own
    amplitude.
    """
    n = mean.shape[0]
    length = min(int(settings.length), n)
    # every 4th column: plenty of samples for a robust spread at a quarter of the cost
    noise = 1.4826 * float(np.median(np.abs(np.diff(mean[:, ::4], axis=0)))) / np.sqrt(2) if n > 1 else 0.0
    fit = None
    if settings.along == "window":
        source = mean
        t: float | np.ndarray = settings.threshold * max(1.25 * noise / np.sqrt(max(length, 1)), floor)  # 1.25: a median's noise over a mean's
    else:
        sigma = max(noise, floor)
        source, runs, fit = fit_steps(mean, _STEP_PENALTY * sigma * sigma * np.log(max(n, 2)), starts=True)
        t = np.float32(settings.threshold) * np.maximum(np.float32(sigma) / np.sqrt(runs), np.float32(floor))
    run = _running_median(source, length, step=step)
    return _garrote(_persistent(run, mean, length, step=2 * step), t), fit


# tap spreads of the successive passes (times the narrow one): each pass takes its background
# from the block medians minus the previous pass's stripes.  The wide pass finds bands of
# neighbouring curtains that fill most of the narrow taps; wider taps admit wider features of
# the structure, so it asks for twice the persistence along the stripe (every other block over
# twice the window); the narrow passes after it give the final profile.
_PASS_SPREADS = (1, 2, 1, 1)
_POOLED_PASSES = 2  # the last passes pool z_reach slices each side
_SCALE_BLOCKS = 7  # blocks over which a slice's own amplitude of a pooled stripe is fitted


def _own_amplitude(shape: np.ndarray, resid: np.ndarray, pooled: np.ndarray, length: int, fit: np.ndarray | None = None) -> np.ndarray:
    """``shape`` rescaled to one slice's residual ``resid`` by a least-squares gain along the stripe.

    Curtains keep their place from slice to slice but not their strength: the pooled profile
    gives where a stripe is and how it runs; its amplitude in this slice is the gain (clipped
    to 0-2) of the slice's along-stripe median (``length`` blocks) regressed on the median of
    the ``pooled`` residual the profile came from, over each run of its step fit (segment
    labels ``fit``, from :func:`~volrecon.correct._curtains_segments.fit_steps`; a
    curtain keeps its amplitude between two change points; what the slices share, structure
    included, gives a gain of 1).  Without a fit (``along="window"``): the slice's median
    regressed on ``shape`` over :data:`_SCALE_BLOCKS` blocks.
    """
    own = _running_median(resid, min(length, resid.shape[0]))
    if fit is not None:
        ref = _running_median(pooled, min(length, pooled.shape[0]))
        num, den = run_means(fit, own * ref), run_means(fit, ref * ref)
    else:
        num = ndi.uniform_filter1d(own * shape, _SCALE_BLOCKS, axis=0, mode="nearest")
        den = ndi.uniform_filter1d(shape * shape, _SCALE_BLOCKS, axis=0, mode="nearest")
    gain = np.clip(num / np.where(den > 0, den, np.float32(1)), 0, 2)
    return np.where(den > 0, gain * shape, 0).astype(np.float32)


def _stack_nodes(stack: np.ndarray, settings: CurtainSettings, *, pool: bool = True, shapes: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Stripe profiles at the block rows ``(Z, blocks, X)`` of consecutive slices (stripes along axis 1).

    Per slice, the across-stripe background of the block medians (:func:`_across_median`) is
    subtracted.  With ``pool`` and ``settings.z_reach > 0`` the residuals of the slices within
    ``z_reach`` are averaged in the last :data:`_POOLED_PASSES` passes (curtains are milled
    topography: they stay at the same x from slice to slice, while the noise does not) and
    each slice gets the pooled profile at its own amplitude (:func:`_own_amplitude`).  In
    passes (:data:`_PASS_SPREADS`): each background is taken from the block medians minus the
    previous pass's stripes, so that stripes wider than the taps' gaps or bands of
    neighbouring stripes do not lift the background of a stripe.  With ``shapes``, also the
    last pass's profiles before each slice's own amplitude (of the pooled mean residual).
    """
    nz = stack.shape[0]
    pairs = [_blocks(np.asarray(p, dtype=np.float32), settings) for p in stack]
    blocks = np.stack([b for b, _ in pairs])
    floor = [f for _, f in pairs]
    reach = int(settings.z_reach) if pool else 0
    length = min(int(settings.length), blocks.shape[1])
    stripes = np.zeros_like(blocks)
    pooled_shapes = np.zeros_like(blocks) if shapes else None
    for k, spread in enumerate(_PASS_SPREADS):
        offsets = _tap_offsets(settings.width_px * spread)
        resid = np.stack([blocks[z] - _across_median(blocks[z] - stripes[z], offsets) for z in range(nz)])
        pooled = k >= len(_PASS_SPREADS) - _POOLED_PASSES
        for z in range(nz):
            # the first passes only set the backgrounds: slice by slice, so that a slice
            # depends on _POOLED_PASSES * z_reach neighbours, not on z_reach per pass
            lo, hi = (max(0, z - reach), min(nz, z + reach + 1)) if pooled else (z, z + 1)
            mean = resid[z] if hi - lo == 1 else resid[lo:hi].mean(axis=0, dtype=np.float32)
            shape, fit = _pooled_stripes(mean, settings, floor[z], step=spread)
            stripes[z] = shape if hi - lo == 1 else _own_amplitude(shape, resid[z], mean, length, fit)
            if pooled_shapes is not None:
                pooled_shapes[z] = shape
    return (stripes, pooled_shapes) if shapes else stripes


def _garrote(run: np.ndarray, t: float | np.ndarray) -> np.ndarray:
    """Non-negative garrote ``x - t^2 / x`` above ``t`` (0 below).

    Large values keep nearly their full amplitude (a soft threshold would take ``t`` off every
    stripe), small ones, mostly noise, go to 0.
    """
    big = np.abs(run) > t
    return np.where(big, run - (t * t) / np.where(big, run, 1.0), 0.0).astype(np.float32)


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
    return _destripe(plane, settings, np.float32)


def _destripe(plane: np.ndarray, settings: CurtainSettings, dtype: Any) -> np.ndarray:
    """One slice with stripes removed, cast to ``dtype`` as :func:`restore_dtype` casts (one pass for ``"highpass"``)."""
    if not settings.enabled:
        return affine_slice(plane, dtype)
    if settings.method != "highpass":
        p = np.array(plane, dtype=np.float32)
        q = p.T if settings.orientation == "horizontal" else p
        q -= _wavelet_fft(q, settings)
        return restore_dtype(p, dtype, overwrite=True)
    p = np.asarray(plane, dtype=np.float32)
    q = p.T if settings.orientation == "horizontal" else p
    nodes = _stripe_nodes(q, settings)
    out = _with_stripes(q, nodes, settings, _onsets(q, nodes, settings), sign=-1.0, dtype=dtype)
    return out.T if settings.orientation == "horizontal" else out


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
    width_px: float = 2.5,
    block: int = 16,
    length: int = 7,
    threshold: float | None = None,
    along: str = "steps",
    z_reach: int = 0,
    onsets: bool = True,
    n_slices: int = 4,
    min_significance: float | None = None,
    mask: Any = None,
) -> CurtainSettings:
    """Choose the stripe filter, decide whether the stack needs it and measure what it removes.

    Parameters
    ----------
    image : array (Z, Y, X)
        numpy or dask stack (registered or not: stripes are removed slice by slice).
    method : {"highpass", "wavelet-fft"}
        See the module docstring.
    orientation : {"vertical", "horizontal"}
        Direction the stripes run in.
    width_px, block, length, threshold, along, z_reach, onsets
        See :class:`CurtainSettings`.
    n_slices : int
        Slices on which the stripe strength is measured.
    min_significance : float or None
        Smallest :attr:`CurtainSettings.significance` (removed energy over what noise alone
        gives) for which the filter is kept; 0 keeps it always; None (default): the gate of
        ``along`` (:data:`GATES`: 24 for ``"steps"``, 10 for ``"window"``, whose null is
        smaller).
    mask : ndarray of bool (Y, X) or (Z, Y, X), optional
        True on specimen pixels (a 3D mask: pixels that are specimen in every slice count).
        The gate and the stripe indices are measured on the largest block of whole specimen
        columns (:func:`specimen_block`), so that the trench walls' rims, bright lines along the
        stripe direction that are not milled into the face, cannot open the gate; where that
        block is too small, on the whole slices with the pixels outside the mask filled from the
        face (:func:`fill_hidden`).

    Returns
    -------
    CurtainSettings
        ``enabled`` False when the sample slices carry no significant stripes.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> flat = rng.normal(100, 5, (4, 128, 128))
    >>> estimate_curtains(flat).enabled
    False
    >>> flat[:, 40:, 60:62] += 20
    >>> estimate_curtains(flat).enabled
    True
    """
    shape = check_volume(image)
    nz = shape[0]
    settings = CurtainSettings(method=method, orientation=orientation, width_px=float(width_px), block=int(block), length=int(length), threshold=None if threshold is None else float(threshold), along=str(along), z_reach=int(z_reach), onsets=bool(onsets))
    data = read_slices(image, spread_indices(nz, n_slices))
    region = None
    spec = check_mask(mask, shape)
    if spec is not None:
        face = spec if spec.ndim == 2 else spec.all(axis=0)
        cut = specimen_block(face, settings)
        if cut is not None:
            data = [p[cut] for p in data]
            region = [cut[0].start, cut[0].stop, cut[1].start, cut[1].stop]
        else:  # too small a block of whole columns: the whole slice, the rest of it filled from the face
            data = [fill_hidden(p, ~face, settings.orientation, seed=i) for i, p in enumerate(data)]
    before = float(np.median([stripe_index(p, settings) for p in data]))
    significance = _significance(data, settings, quantum=1 / np.sqrt(12) if np.issubdtype(np.dtype(image.dtype), np.integer) else 0.0)
    gate = GATES[settings.along] if min_significance is None else float(min_significance)
    enabled = significance >= gate
    settings = CurtainSettings(**{**asdict(settings), "enabled": enabled, "significance": float(significance), "measured_region": region})
    after = float(np.median([stripe_index(remove_stripes(p, settings), settings) for p in data]))
    return CurtainSettings(**{**asdict(settings), "stripe_index_before": before, "stripe_index_after": after})


def _longest_run(ok: np.ndarray) -> tuple[int, int]:
    """``(start, stop)`` of the longest run of True in a 1D bool array (``(0, 0)`` if none)."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], ok.astype(np.int8), [0]))))
    if edges.size == 0:
        return 0, 0
    starts, stops = edges[::2], edges[1::2]
    k = int(np.argmax(stops - starts))
    return int(starts[k]), int(stops[k])


COLUMN_SHARES = (1.0, 0.98, 0.95, 0.9)
"""Shares of the specimen rows a column must be specimen in, tried by :func:`specimen_block`."""


def _inside(start: int, stop: int, size: int, reach: int) -> tuple[int, int]:
    """``start:stop`` less ``reach`` at each end that is not the image's border."""
    return start + (reach if start > 0 else 0), stop - (reach if stop < size else 0)


def specimen_block(specimen: np.ndarray, settings: CurtainSettings) -> tuple[slice, slice] | None:
    """The block of whole specimen columns of a slice where stripes are measured.

    Rows: the longest run of rows at least half specimen (below a cap, above a data bar);
    columns: the longest run of those that are specimen in a share (:data:`COLUMN_SHARES`) of
    these rows (between the trench walls); then the rows are cut to the longest run in which
    every one of these columns is specimen (a rough cap edge or its lit rim dips into the face in
    some columns, sloping walls narrow it towards the bottom); the share giving the largest
    block is kept.
    Beside the frame the filter's reach is left out as well: ``3 * width_px`` columns across the
    stripe (its background taps) and one ``block`` of rows along it (its first block median),
    which would otherwise see the frame's bright rim and the cap's rough edge.  Stripes run along
    the columns (``orientation="vertical"``) or along the rows.

    Parameters
    ----------
    specimen : ndarray of bool (Y, X)
        True on specimen pixels.
    settings : CurtainSettings
        Its ``orientation``, ``block`` and ``width_px`` set the smallest usable block.

    Returns
    -------
    (slice, slice) or None
        Rows and columns of the block; None when it would be too small to measure stripes in
        (fewer than two blocks along the stripe or 16 stripe widths across it): the whole slice
        is used then, with what is not specimen filled from it (:func:`fill_hidden`).
    """
    m = np.asarray(specimen, dtype=bool)
    if settings.orientation == "horizontal":
        m = m.T
    top, bottom = _longest_run(m.mean(axis=1) >= 0.5)
    r0 = r1 = c0 = c1 = 0
    for share in COLUMN_SHARES:
        a, b = _longest_run(m[top:bottom].mean(axis=0) >= share) if bottom > top else (0, 0)
        u, v = _longest_run(m[top:bottom, a:b].all(axis=1)) if b > a else (0, 0)
        if (v - u) * (b - a) > (r1 - r0) * (c1 - c0):
            r0, r1, c0, c1 = top + u, top + v, a, b
    r0, r1 = _inside(r0, r1, m.shape[0], settings.block)
    c0, c1 = _inside(c0, c1, m.shape[1], int(np.ceil(3 * settings.width_px)))
    if r1 - r0 < 2 * settings.block or c1 - c0 < 16 * settings.width_px:
        return None
    rows, cols = slice(r0, r1), slice(c0, c1)
    return (cols, rows) if settings.orientation == "horizontal" else (rows, cols)


GRID_PHASES = 4
"""Offsets of the block grid along the stripe (in quarters of a block) the gate's significance is the minimum over."""

NULL_PIXELS = 1 << 20
"""Noise pixels (at least, up to :data:`NULL_DRAWS` draws a slice) the gate's null energy is averaged over."""

NULL_DRAWS = 16


NULL_SIDE = 512
"""Largest side of the noise field the gate's null is drawn on."""


def _noise_null(q: np.ndarray, settings: CurtainSettings, *, quantum: float, rng: np.random.Generator) -> float:
    """Mean energy the filter removes from Gaussian noise of the slice's own pixel noise, in its shape up to :data:`NULL_SIDE`.

    One draw of a 150 px wide block varies by about 50 % (the filter keeps only a few block
    medians that exceed its threshold), so the energy is averaged over draws of at least
    :data:`NULL_PIXELS` pixels together (at most :data:`NULL_DRAWS`).  The noise field is at most
    :data:`NULL_SIDE` pixels a side: what the filter takes from noise falls as the stripes hold more
    blocks, what it takes from the specimen's structure does not, so against a larger field's own
    null the same stripe-free face read more the larger the field (10 at 512 px, 20 at 1024,
    23-32 at 2048); against the null of at most 512 x 512 it reads 5-10 at 512-2048 px.
    """
    lo, hi = np.quantile(q[:: max(1, q.shape[0] // 64)], (0.01, 0.99))
    noise = max(pixel_noise(q), quantum, 1e-3 * float(hi - lo), 1e-12)
    shape = (min(q.shape[0], NULL_SIDE), min(q.shape[1], NULL_SIDE))
    draws = int(min(NULL_DRAWS, max(1, np.ceil(NULL_PIXELS / (shape[0] * shape[1])))))
    return float(np.mean([_removed_energy(rng.normal(0.0, noise, shape).astype(np.float32), settings) for _ in range(draws)]))


def _significance(data: list[np.ndarray], settings: CurtainSettings, *, quantum: float) -> float:
    """Energy the filter removes from sample slices over what it removes from their pixel noise.

    The block medians along the stripe sit on a grid of ``block`` rows, and a block that
    straddles a rough interface of the specimen's layers gives its columns different medians,
    which the filter can take for stripe onsets; curtains do not depend on where the grid
    starts.  So the removed energy is measured with the grid started at :data:`GRID_PHASES`
    offsets within a block (the slices' first rows dropped) and the smallest ratio is returned:
    the grid on which the specimen's own structure reads least as stripes.  On the 24x192 phantoms
    (a ``/tmp`` measurement with the former single-draw null) the smallest of the four starts'
    ratios read 4-11 and their median 8-30 on slices without curtains or with the default ones;
    27-194 and 42-228 with strong curtains.

    Parameters
    ----------
    data : list of ndarray
        Sample slices, stripes along axis 0 for ``orientation="vertical"``.
    settings : CurtainSettings
        The filter.
    quantum : float
        Smallest pixel noise of the data (the rounding noise of integer grey steps).

    Returns
    -------
    float
        About 1 on pure noise; see :attr:`CurtainSettings.significance`.
    """
    rng = np.random.default_rng(0)
    slices = [p.T if settings.orientation == "horizontal" else p for p in data]
    expected = sum(_noise_null(q, settings, quantum=quantum, rng=rng) for q in slices)
    removed = [sum(_removed_energy(q[k * settings.block // GRID_PHASES:], settings) for q in slices) for k in range(GRID_PHASES)]
    return float(min(removed)) / max(expected, 1e-30)


def _removed_energy(p: np.ndarray, settings: CurtainSettings) -> float:
    """Mean squared stripe profile the filter finds in ``p`` (stripes along axis 0)."""
    return float(np.mean(_stripe_nodes(p, settings).astype(np.float64) ** 2))


def remove_stripes_stack(stack: np.ndarray, settings: CurtainSettings) -> np.ndarray:
    """Consecutive slices ``(Z, Y, X)`` with stripes removed, pooling ``settings.z_reach`` slices each side.

    float32, not clipped; unchanged when disabled.  The first and last ``z_reach`` slices
    pool fewer neighbours.  ``z_reach=0`` or the ``"wavelet-fft"`` method: slice by slice, as
    :func:`remove_stripes`.
    """
    out = np.array(stack, dtype=np.float32)
    if not settings.enabled:
        return out
    if settings.method != "highpass" or settings.z_reach == 0:
        for z in range(out.shape[0]):
            out[z] = remove_stripes(out[z], settings)
        return out
    q = out.transpose(0, 2, 1) if settings.orientation == "horizontal" else out
    nodes, shapes = _stack_nodes(q, settings, shapes=True)
    # each slice's onsets from the mean of the slices its profile pooled, with the pooled
    # profile (a curtain starts at the same row from slice to slice), before any is changed
    nz, reach = q.shape[0], int(settings.z_reach)
    splits = [_onsets(q[max(0, z - reach) : z + reach + 1].mean(axis=0, dtype=np.float32), shapes[z], settings) for z in range(nz)]
    for z in range(nz):
        q[z] = _with_stripes(q[z], nodes[z], settings, splits[z], sign=-1.0)
    return out


_Z_CHUNK = 8  # slices per task when pooling over z (the overlap is recomputed per task)


def fill_hidden(plane: np.ndarray, hidden: np.ndarray, orientation: str = "vertical", *, seed: int = 0) -> np.ndarray:
    """``plane`` (float32) with the ``hidden`` pixels filled from the face beside them across the stripes, plus its noise.

    For vertical stripes each hidden pixel of a row takes the value interpolated along the row
    between its nearest visible pixels (beyond the last one: that pixel's value), and a row with
    none the mean of the nearest rows that have some: the filled pixels carry no variation
    across the stripes of their own, so the stripe filter finds no stripe in them and the
    bright frame beside the face cannot make one.  Gaussian noise of the face's own pixel noise
    is added: the filter scales its threshold by the noise it measures along the stripes, and
    noise-free columns would lower it.

    Parameters
    ----------
    plane : ndarray (Y, X)
        One slice.
    hidden : ndarray of bool (Y, X)
        Pixels that are not the milled face (frame, the lit shell of its rims).
    orientation : {"vertical", "horizontal"}
        Direction the stripes run in.
    seed : int
        Seed of the added noise (the slice index: the same slice is filled the same way in
        every chunk).

    Returns
    -------
    ndarray of float32 (Y, X)
        A copy (unchanged when nothing is hidden or everything is).
    """
    out = np.array(plane, dtype=np.float32)
    q, h = (out.T, hidden.T) if orientation == "horizontal" else (out, hidden)
    seen = (~h).sum(axis=1)
    if not h.any() or not seen.any():
        return out
    noise = pixel_noise(np.where(h, np.float32(np.nan), q))  # the face's own: pairs with a hidden pixel drop out
    fill = np.empty_like(q)
    cols = np.arange(q.shape[1])
    rows = np.flatnonzero(seen)
    for r in rows:
        fill[r] = np.interp(cols, cols[~h[r]], q[r, ~h[r]])
    means = fill[rows].mean(axis=1)
    blind = np.flatnonzero(seen == 0)
    fill[blind] = np.interp(blind, rows, means)[:, None]
    q[h] = fill[h] + np.random.default_rng(seed).normal(0.0, noise, int(h.sum())).astype(np.float32)
    return out


def apply_curtains(image: Any, settings: CurtainSettings, *, dtype: Any = None, hidden: np.ndarray | None = None) -> Any:
    """Remove stripes (lazy for dask); same kind and shape, never NaN.

    Slices are pooled with ``settings.z_reach`` neighbours on each side (see
    :func:`remove_stripes_stack`); a dask stack is processed in tasks of a few slices that
    overlap by ``2 * z_reach`` (the two pooled passes), so the result equals the unchunked one.

    Parameters
    ----------
    image : ndarray or dask.array.Array (Z, Y, X)
        Registered, shading-corrected slices (float32 keeps them unrounded).
    settings : CurtainSettings
        The filter settings from :func:`estimate_curtains`.
    dtype : numpy dtype, optional
        Output dtype (clipped and rounded to its range); default: the input's.
    hidden : ndarray of bool (Y, X) or (Z, Y, X), optional
        Pixels that are not the milled face (the frame found by
        :func:`volrecon.segment.frame.find_frame` and its rims' lit shell; 3D: hidden in any slice).  The stripes are
        estimated on the slices with these pixels filled (:func:`fill_hidden`) and subtracted
        from the slices as they are: the cap's rough edge and the walls' rims, bright and long
        along the stripes, are not taken for curtains and spread into the face beside them.
        The hidden pixels get the stripes found in their columns (rows for horizontal stripes)
        too; put the frame back afterwards where it must stay untouched.

    Returns
    -------
    ndarray or dask.array.Array
        The destriped stack.
    """
    check_volume(image)
    dtype = np.dtype(image.dtype if dtype is None else dtype)
    hide = None if hidden is None else np.asarray(hidden, dtype=bool)
    if hide is not None and hide.shape not in (tuple(image.shape[1:]), tuple(image.shape)):
        raise ParameterError(f"hidden has shape {hide.shape}; give one of a slice {tuple(image.shape[1:])} or of the stack {tuple(image.shape)}")
    if hide is not None and hide.ndim == 3:
        hide = hide.any(axis=0)  # hidden in any slice: the fill is one mask for the stack
    if hide is not None and settings.enabled and hide.any():
        filled = map_slices(image, lambda plane, z: fill_hidden(plane, hide, settings.orientation, seed=z), dtype=np.float32)
        stripes = filled - apply_curtains(filled, settings, dtype=np.float32)
        raw = image.astype(np.float32) if is_dask(image) else np.asarray(image, dtype=np.float32)
        return map_slices(raw - stripes, lambda plane, z: restore_dtype(plane, dtype), dtype=dtype)
    reach = int(settings.z_reach)
    if not settings.enabled or settings.method != "highpass" or reach == 0:
        return map_slices(image, lambda plane, z: _destripe(plane, settings, dtype), dtype=dtype)
    if is_dask(image):
        depth = _POOLED_PASSES * reach
        stack = image.rechunk({0: max(_Z_CHUNK, depth), 1: -1, 2: -1})
        return stack.map_overlap(
            lambda chunk: restore_dtype(remove_stripes_stack(chunk, settings), dtype, overwrite=True),
            depth={0: depth, 1: 0, 2: 0}, boundary="none", trim=True, dtype=dtype,
        )
    return restore_dtype(remove_stripes_stack(np.asarray(image), settings), dtype, overwrite=True)
