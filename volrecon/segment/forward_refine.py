"""Cathode phase boundaries refined on a forward model of the face image (issue 7).

A thresholded, smoothed grey value cannot place the pore | binder boundary beside a bright
particle (the particle's blur and its edge-brightening rim lift the electrolyte next to it) or in
noise (the electrolyte | binder step is under two noise standard deviations per pixel).  Here the
image a label map would give is modelled and the labels near the cathode's boundaries are moved
where the model explains the recorded image better:

1. :class:`ImageModel`, fitted by :func:`fit_image_model` on a few slices of the stack and the
   labels of the first segmentation: a grey level per phase, the probe blur (Gaussian, sigma in
   nm, the recorded pixel size respected), the edge brightening (gain times the Sobel step of the
   ideal image, on the pixel each side of a boundary; 0 when the stack has none), the voids'
   shine-through (the material a fitted depth behind the face, blurred and attenuated) and the
   noise variance as a function of the grey (Poisson-Gaussian: ``a + b * grey``).  Nothing is
   fixed to a phantom's values.
2. :func:`refine_labels`: a MAP move of the electrolyte | binder boundaries of the cathode.  A
   single pixel carries too little evidence (one pixel flipped off a straight boundary brings
   ~0.2 of data energy at the phantom's noise, for noise of twice that), so whole fronts are
   proposed: every electrolyte voxel beside binder turns to binder (and the other way); the
   proposal's data energy change (noise-weighted squared residual of the forward model: blur,
   edge brightening and shine-through recomputed, so exact) plus its Potts change (the front's
   pairs with voxels off it; 3D, the weight per axis set from the noise so that it never
   outweighs the evidence of a film one voxel thick, :func:`potts_weights`) is pooled over a
   window sized from the fitted noise and contrast (:func:`front_window`: the front length that
   puts a one-pixel move of a true boundary two noise sigmas from 0), and each front voxel takes
   the move if its pooled change is negative.  One sweep, every voxel from the same labels: the
   result depends only on the voxels within :func:`refine_reach`, so it does not depend on the
   chunks.

What it does, measured (``benchmarks/segmentation.py --slices 24 --size 192``, seeds 0 and 1,
both presets; Dice over the specimen, before -> after):

- ``auto``: pore Dice up on all eight rows, corrected stack: diglyme 0.9438 -> 0.9464, 0.9430 ->
  0.9485; carbonate 0.9366 -> 0.9426, 0.9096 -> 0.9185; oracle-corrected: diglyme 0.9468 -> 0.9486,
  0.9520 -> 0.9546; carbonate 0.9414 -> 0.9467, 0.9171 -> 0.9248.  Binder +0.010 to +0.025,
  electrolyte +0.003 to +0.009; active -0.0003 to +0.0001; void, separator and every interface as
  before; the cathode's porosity moves by at most 0.004 (it is a boundary move, not a bias).
- ``classifier``: pore +0.007 to +0.027 (carbonate corrected seed 0: 0.8833 -> 0.9103), binder
  +0.014 to +0.046; its porosity, too low before, moves towards the truth (+0.001 to +0.025).
- 20 nm pixels (``make_phantom(voxel_size_nm=(20, 20, 20))``, seed 0): pore +0.005 to +0.009,
  binder +0.04 to +0.11 on all four rows.
- sensitivity, refining ``auto``'s final labels of the oracle-corrected seed 0 (cathode pore Dice
  before: diglyme 0.9291, carbonate 0.9251):
  0.9311 / 0.9323 with the weights of :func:`potts_weights`, 0.9308 / 0.9318 without a prior,
  0.9325 / 0.9340 five times stronger, 0.9344 / 0.9322 twenty times; windows from (1, 2, 2) to
  (1, 6, 7) half-widths give 0.9327 to 0.9303 and 0.9352 to 0.9297; 2 or 3 sweeps change it by
  under 0.001.  Moving only the fronts that touch no particle gives 0.9300 / 0.9288: most of the
  gain is in the first voxels beside the particles (whose blur and rim lift the electrolyte beside
  them above the first segmentation's cut); away from them the electrolyte | binder step is at the
  noise limit of the data, and most of the first segmentation's 1-2 px boundary scatter stays.
  Moving the active particles' fronts too (``values`` with ``active``): pore 0.9312 / 0.9331,
  active Dice 0.9760 -> 0.9750 / 0.9763 -> 0.9757: left out.
- weak: the model is fitted on the first labels, whose boundaries are off by a pixel or two; that
  biases it (carbonate: levels 0.230 / 0.345 against 0.219 / 0.359 fitted on the truth, edge gain
  0.61 for 0.50, blur 10.1 for 9.4 nm), and refitting on the refined labels makes it worse, not
  better.  The phantom's own Potts statistics (pseudo-likelihood weights of the labels, 1.2-1.9
  per pair, thirty times :func:`potts_weights`) erase thin binder films: with them the carbonate
  cathode's porosity rose from 0.352 to 0.369 (truth 0.350) and at 20 nm pixels its binder Dice
  fell from 0.47 to 0.29.
- cost: the fit and the refinement, 0.8 CPU-s on 24x192 (0.88 Mvoxel), 3.5-5 CPU-s on 48x384
  (7.1 Mvoxel): 0.5-0.7 CPU-s per Mvoxel, the chunks' overlap (``refine_reach``, (6, 17, 19)
  voxels at the phantom's pixels) included; the whole ``auto`` segmentation of the 48x384
  phantom, two base/head pairs: 12.2 / 10.7 -> 16.2 / 14.4 CPU-s (+35 %).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numba as nb
import numpy as np
from scipy import ndimage as ndi
from scipy import optimize

from volrecon._spread import spread_indices
from volrecon.segment._sobel import sobel_pair

TRUNCATE = 3.0
"""Gaussian kernels are cut at this many sigma."""

SWEEPS = 1
"""Sweeps of the front moves (each moves a boundary by at most a pixel)."""

SHINE_DEPTHS_NM = (40.0, 60.0, 80.0, 100.0, 120.0, 160.0)
"""Shine-through depths tried by the fit (the one that explains the voids' faces best is kept)."""

SHINE_BLURS_NM = (10.0, 20.0, 40.0)
"""Shine-through blurs (Gaussian sigma, nm in the image plane) tried by the fit."""

PSF_BOUNDS_PX = (0.25, 4.0)
"""Bounds of the probe blur's sigma, in recorded x pixels (converted to nm with the pixel).

The lower one is where the sampled kernel (cut at :data:`TRUNCATE` sigma) becomes the identity
(its first neighbour's weight 3e-4): a probe narrower than that is not seen in the recorded pixels.
At 0.5 px (the bound before) an 8 nm probe could not be fitted at 20 nm pixels (it read 10.6 nm)."""


@dataclass(frozen=True)
class ImageModel:
    """The fitted forward model of the face image.

    Attributes
    ----------
    levels : dict
        Label value -> ideal grey level.
    psf_sigma_nm : float
        Probe blur (Gaussian sigma, nm in the image plane).
    edge_gain : float
        Edge brightening: rim grey = gain x Sobel step / 4 of the ideal image.
    noise : tuple of float
        ``(a, b)``: noise variance ``a + b * max(grey, 0)``.
    shine_depth_slices : int
        Slices behind a void whose material shows through it.
    shine_sigma_nm : float
        Blur of the material seen through a void (nm in the image plane).
    shine : tuple of float
        ``(attenuation, offset)``: a void's ideal grey is ``attenuation * blurred material + offset``.
    pixel_nm : tuple of float
        Recorded pixel ``(y, x)`` in nm.
    residual_rms : float
        RMS residual of the fit (grey units).
    default_level : float or None
        Grey of the labels without a level (:meth:`lut`); None: the mean of ``levels``.  Set when a
        level is added after the fit (the collector foil's, ``segment.api._with_foil_level``), so that
        the labels drawn at the fitted levels' mean stay where the fit put them.
    """

    levels: dict[int, float]
    psf_sigma_nm: float
    edge_gain: float
    noise: tuple[float, float]
    shine_depth_slices: int
    shine_sigma_nm: float
    shine: tuple[float, float]
    pixel_nm: tuple[float, float]
    residual_rms: float = float("nan")
    default_level: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe parameters (lengths in nm)."""
        d = asdict(self)
        d["levels"] = {str(k): float(v) for k, v in self.levels.items()}
        return d

    def psf_px(self) -> tuple[float, float]:
        """Probe blur sigma in pixels ``(y, x)``."""
        return (self.psf_sigma_nm / self.pixel_nm[0], self.psf_sigma_nm / self.pixel_nm[1])

    def psf_square_sums(self) -> tuple[float, float]:
        """Sums of the squared weights of the sampled probe blur kernel along ``(y, x)``.

        A step moved by one pixel along a straight front changes the blurred image by the kernel's
        profile across the front, so its squared change per front pixel is the contrast squared
        times the sum for the axis across it; the 2D kernel's sum is the product.  Taken from the
        sampled kernel the model blurs with: the continuous ``1 / (2 sqrt(pi) sigma)`` is 14 % low
        at 0.5 px (30 % for the 2D product) and has no finite limit as the blur vanishes.
        """
        out = []
        for s in self.psf_px():
            if s <= 0:
                out.append(1.0)
                continue
            r = int(TRUNCATE * max(s, 1.0)) + 2
            delta = np.zeros(2 * r + 1)
            delta[r] = 1.0
            w = ndi.gaussian_filter1d(delta, float(s), mode="constant", truncate=TRUNCATE)
            out.append(float((w ** 2).sum()))
        return out[0], out[1]

    def lut(self, size: int = 256) -> np.ndarray:
        """Label -> grey lookup table (labels without a level: :attr:`default_level`, else the mean level)."""
        fill = self.default_level if self.default_level is not None else (
            np.mean(list(self.levels.values())) if self.levels else 0.0)
        lut = np.full(size, fill, np.float32)
        for k, v in self.levels.items():
            lut[k] = v
        return lut


# --------------------------------------------------------------------------- forward model
def _blur(img: np.ndarray, sigma_px: Sequence[float]) -> np.ndarray:
    return ndi.gaussian_filter(img, tuple(float(s) for s in sigma_px), mode="nearest", truncate=TRUNCATE)


def edge_map(base: np.ndarray) -> np.ndarray:
    """Edge brightening per unit gain of an ideal image: Sobel gradient magnitude / 4 (the step's
    contrast on the pixel each side of a boundary; both derivatives in one compiled pass,
    :func:`volrecon.segment._sobel.sobel_pair`, bit for bit scipy's)."""
    d0, d1 = sobel_pair(base)
    return np.hypot(d0, d1) / np.float32(4.0)


def _material_behind(deep: np.ndarray, model: ImageModel, void: int, sigma_nm: float) -> np.ndarray:
    """The phases' levels of the labels ``deep`` (void: no material, 0), blurred by ``sigma_nm``."""
    lut = model.lut()
    lut[void] = 0.0
    return _blur(lut[deep], (sigma_nm / model.pixel_nm[0], sigma_nm / model.pixel_nm[1]))


def void_face(deep: np.ndarray, model: ImageModel, void: int) -> np.ndarray:
    """The grey a void would show at each pixel: the material ``model.shine_depth_slices`` behind
    (``deep``: those labels), blurred and attenuated."""
    seen = _material_behind(deep, model, void, model.shine_sigma_nm)
    return np.float32(model.shine[0]) * seen + np.float32(model.shine[1])


def ideal_image(labels: np.ndarray, face: np.ndarray | None, model: ImageModel, void: int | None) -> np.ndarray:
    """The ideal (unblurred, no edges) grey of a slice: the phases' levels, and the voids' ``face``
    (:func:`void_face`; None: the void's own level)."""
    base = model.lut()[labels]
    if void is not None and face is not None:
        v = labels == void
        base[v] = face[v]
    return base


def predict(labels: np.ndarray, face: np.ndarray | None, model: ImageModel, void: int | None) -> np.ndarray:
    """The noise-free image of a slice of ``labels`` (2D) under ``model`` (``face``: :func:`void_face`)."""
    base = ideal_image(labels, face, model, void)
    return _blur(base + np.float32(model.edge_gain) * edge_map(base), model.psf_px())


# --------------------------------------------------------------------------- the fit
def _indicators(labels: Sequence[np.ndarray], mask: Sequence[np.ndarray], values: Sequence[int],
                sigma_px: tuple[float, float]) -> list[np.ndarray]:
    """The label indicators of ``values`` blurred by ``sigma_px``, over the ``mask`` pixels: one
    column per value, the slices one after the other (the fixed columns of :func:`_fit_levels`)."""
    return [np.concatenate([_blur((lab == v).astype(np.float32), sigma_px)[m] for lab, m in zip(labels, mask)])
            for v in values]


def _fit_levels(grey: Sequence[np.ndarray], indicators: Sequence[np.ndarray], mask: Sequence[np.ndarray],
                values: Sequence[int], sigma_px: tuple[float, float], bases: Sequence[np.ndarray] | None,
                ) -> tuple[dict[int, float], float, float]:
    """Least squares of the grey against the blurred label indicators (:func:`_indicators`) and the
    blurred edge map of ``bases`` (the ideal images of the current levels; None: no edge column).
    Returns the levels, the gain and the residual sum of squares, over the ``mask`` pixels."""
    cols = list(indicators)
    if bases is not None:
        cols.append(np.concatenate([_blur(edge_map(b), sigma_px)[m] for b, m in zip(bases, mask)]))
    X = np.stack(cols, axis=1).astype(np.float64)
    y = np.concatenate([g[m] for g, m in zip(grey, mask)]).astype(np.float64)
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    rss = float(((X @ coef - y) ** 2).sum())
    levels = {int(v): float(c) for v, c in zip(values, coef)}
    return levels, float(coef[-1]) if bases is not None else 0.0, rss


def _levels_and_gain(grey: Sequence[np.ndarray], labels: Sequence[np.ndarray], mask: Sequence[np.ndarray],
                     values: Sequence[int], sigma_px: tuple[float, float], iterations: int = 3,
                     ) -> tuple[dict[int, float], float, float]:
    """Levels and edge gain at one blur: alternated, since the edge map depends on the levels'
    contrasts (first pass without edges).  The blurred indicators depend on the blur alone: made
    once for all the passes."""
    indicators = _indicators(labels, mask, values, sigma_px)
    levels, gain, rss = _fit_levels(grey, indicators, mask, values, sigma_px, None)
    for _ in range(iterations):
        lut = np.zeros(256, np.float32)
        for k, v in levels.items():
            lut[k] = v
        bases = [lut[lab] for lab in labels]
        levels, gain, rss = _fit_levels(grey, indicators, mask, values, sigma_px, bases)
    return levels, gain, rss


def _noise_model(resid: np.ndarray, pred: np.ndarray, bins: int = 8) -> tuple[float, float]:
    """``(a, b)`` of ``var = a + b * grey`` from robust variances of the residual in grey bins."""
    edges = np.quantile(pred, np.linspace(0, 1, bins + 1))
    xs, vs = [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (pred >= lo) & (pred <= hi)
        if sel.sum() < 50:
            continue
        r = resid[sel]
        mad = np.median(np.abs(r - np.median(r))) * 1.4826
        xs.append(float(np.median(pred[sel])))
        vs.append(mad ** 2)
    if len(xs) < 2:
        v = float(np.var(resid))
        return v, 0.0
    b, a = np.polyfit(xs, vs, 1)
    floor = 0.05 * float(np.median(vs))
    if b < 0:
        a, b = float(np.median(vs)), 0.0
    return max(float(a), floor), max(float(b), 0.0)


def fit_image_model(grey: np.ndarray, labels: np.ndarray, fit_mask: np.ndarray, deep: np.ndarray | None, *,
                    pixel_nm: Sequence[float], slice_nm: float, void: int | None = None,
                    values: Sequence[int] | None = None) -> ImageModel:
    """Fit the forward model on a few slices.

    Parameters
    ----------
    grey : ndarray (n, y, x)
        Slices of the corrected stack.
    labels : ndarray (n, y, x)
        Their labels (a first segmentation).
    fit_mask : ndarray of bool (n, y, x)
        Pixels the fit reads (e.g. the cathode); voids and their surroundings are left out of the
        level fit and used alone for the shine-through.
    deep : ndarray (n, d, y, x) or None
        For each slice, the labels of the ``d`` slices behind it (for the shine-through depth).
    pixel_nm : 2 floats
        Recorded pixel ``(y, x)``.
    slice_nm : float
        Slice thickness (nm).
    void : int, optional
        Label value of the void (None: no shine-through).
    values : sequence of int, optional
        Labels given a level of their own (default: all in ``labels``).

    Returns
    -------
    ImageModel
    """
    pix = (float(pixel_nm[0]), float(pixel_nm[1]))
    grey = np.asarray(grey, np.float32)
    if values is None:
        values = [int(v) for v in np.unique(labels[fit_mask])]
    # the level fit: the mask away from voids (their faces show other material), from labels
    # without a level of their own (within the blur's and the rims' reach) and from slice borders
    masks = []
    for lab, m in zip(labels, fit_mask):
        other = ~np.isin(lab, [v for v in values if v != void]) | ~m
        m = m & ~ndi.binary_dilation(other, iterations=3)
        m[:4], m[-4:], m[:, :4], m[:, -4:] = False, False, False, False
        masks.append(m)
    vals = [v for v in values if v != void]
    lo, hi = PSF_BOUNDS_PX[0] * pix[1], PSF_BOUNDS_PX[1] * pix[1]

    def rss_of(s: float) -> float:
        return _levels_and_gain(grey, labels, masks, vals, (s / pix[0], s / pix[1]), iterations=1)[2]

    best = optimize.minimize_scalar(rss_of, bounds=(lo, hi), method="bounded", options={"xatol": 0.05 * pix[1]})
    sigma = float(best.x)
    sp = (sigma / pix[0], sigma / pix[1])
    levels, gain, _ = _levels_and_gain(grey, labels, masks, vals, sp)
    model = ImageModel(levels=levels, psf_sigma_nm=sigma, edge_gain=gain, noise=(1.0, 0.0), shine_depth_slices=0,
                       shine_sigma_nm=SHINE_BLURS_NM[0], shine=(0.0, 0.0), pixel_nm=pix)
    if void is not None and deep is not None and any((lab == void).any() for lab in labels):
        model = _fit_shine(grey, labels, fit_mask, deep, model, void=void, slice_nm=slice_nm)
    preds = _predictions(labels, deep, model, void)
    resid = np.concatenate([(g - p)[m] for g, p, m in zip(grey, preds, masks)])
    pred = np.concatenate([p[m] for p, m in zip(preds, masks)])
    a, b = _noise_model(resid, pred)
    rms = float(np.sqrt(np.mean(resid ** 2))) if resid.size else float("nan")
    return ImageModel(**{**asdict(model), "noise": (a, b), "residual_rms": rms})


def _predictions(labels: np.ndarray, deep: np.ndarray | None, model: ImageModel, void: int | None) -> list[np.ndarray]:
    """The model's image of each slice of ``labels`` (``deep``: the labels behind each, for the voids' faces)."""
    k = model.shine_depth_slices
    return [predict(lab, None if deep is None or void is None or k == 0 else void_face(d[k - 1], model, void), model, void)
            for lab, d in zip(labels, deep if deep is not None else [None] * len(labels))]


def _fit_shine(grey: np.ndarray, labels: np.ndarray, fit_mask: np.ndarray, deep: np.ndarray, model: ImageModel, *,
               void: int, slice_nm: float) -> ImageModel:
    """Depth, blur, attenuation and offset of the shine-through, by least squares over the voids'
    inner pixels (depths up to those ``deep`` holds)."""
    best: tuple[float, int, float, float, float] | None = None
    depths = sorted({max(1, int(round(d / slice_nm))) for d in SHINE_DEPTHS_NM if round(d / slice_nm) <= deep.shape[1]})
    inner = [fit_mask[i] & ndi.binary_erosion(labels[i] == void, iterations=2) for i in range(len(labels))]
    if sum(int(m.sum()) for m in inner) < 50:
        return model
    for k in depths:
        for s in SHINE_BLURS_NM:
            x = np.concatenate([_material_behind(deep[i, k - 1], model, void, s)[m] for i, m in enumerate(inner)])
            y = np.concatenate([grey[i][m] for i, m in enumerate(inner)])
            X = np.stack([x, np.ones_like(x)], axis=1).astype(np.float64)
            coef, *_ = np.linalg.lstsq(X, y.astype(np.float64), rcond=None)
            rss = float(((X @ coef - y) ** 2).sum())
            if best is None or rss < best[0]:
                best = (rss, k, s, float(coef[0]), float(coef[1]))
    assert best is not None
    return ImageModel(**{**asdict(model), "shine_depth_slices": best[1], "shine_sigma_nm": best[2],
                         "shine": (best[3], best[4])})


def interior_level(grey: np.ndarray, mask: np.ndarray, *, erode_px: int = 3,
                   min_voxels: int = 100) -> tuple[float, float] | None:
    """The median grey of ``mask``'s interior and its spread: its voxels ``erode_px`` pixels or more
    (in the plane of each slice) from any voxel outside it, away from the blur and the edge rims of
    its boundaries.

    A phase the refinement does not move but that borders the voxels it moves (the collector foil
    beside the cathode) is modelled at this level: its blur and edge brightening into the moved
    voxels are then those of :func:`predict`, like any other boundary's.  The spread tells whether
    the interior is one phase: a mask that holds other phases' voxels, or a margin shorter than the
    blur and the rims, reads wider than the noise at its level (the caller compares it).

    Parameters
    ----------
    grey : ndarray (z, y, x)
        Image.
    mask : ndarray of bool (z, y, x)
        The phase's voxels.
    erode_px : int
        In-plane margin kept from the phase's boundary (0: every voxel of ``mask``).
    min_voxels : int
        Fewest interior voxels to read a level on.

    Returns
    -------
    tuple of float or None
        The level and the spread (1.4826 x the median absolute deviation, the noise sd for Gaussian
        noise); None when the interior holds fewer than ``min_voxels`` voxels.
    """
    inner = np.asarray(mask, bool)
    if erode_px > 0:  # scipy erodes until nothing changes for iterations=0
        plane = np.zeros((3, 3, 3), bool)
        plane[1] = ndi.generate_binary_structure(2, 1)
        inner = ndi.binary_erosion(inner, structure=plane, iterations=int(erode_px), border_value=1)
    if int(inner.sum()) < min_voxels:
        return None
    values = np.asarray(grey)[inner]
    level = float(np.median(values))
    return level, float(1.4826 * np.median(np.abs(values - level)))


# --------------------------------------------------------------------------- the prior
def min_step_snr(model: ImageModel, *, z_score: float = 2.0, slices: int = 3) -> float:
    """Smallest electrolyte | binder step, in noise sd at its mid grey, at which the refinement runs.

    The step at which the largest pooling window (:data:`MAX_HALF_WINDOW_PX` each side in the plane,
    ``slices`` slices) still puts the mean energy change of a one-pixel front move ``z_score`` noise
    sds from 0 (:func:`front_window`'s criterion): ``2 z / sqrt(n a)``, ``n`` the window's front
    pixels, ``a`` the probe's squared sum across a front.  Below it the window the evidence asks for
    is capped: a bound from the statistics, not a measured loss (0.78 at 10 nm pixels and an 8 nm
    probe, 0.72 at a 7 nm one).

    It replaced a fixed 1.35 (review rev19: on synthetic scenes the moves added 1-6 % boundary errors
    at 1.1-1.3).  The step is read per pixel, so it falls with fewer electrons and with what smoothed
    the noise before, and the fixed gate skipped stacks the refinement improves.  On full-artefact
    24x192 phantoms (``benchmarks/step_gate.py``, seeds 0-1) 16 of 32 stacks read 0.69-1.31 (30 / 20
    electrons, 20 nm pixels oracle-corrected), all refined under this gate: pore Dice +0.0003 to
    +0.011, binder +0.016 to +0.12, binder fraction 0.011-0.024 nearer the truth.  The benchmark's
    own phantoms read 1.49-2.30 (seeds 0-3) and are refined under either gate.  Below this gate the
    refinement still gained on the phantoms (``forward_refine_mismatch_gate0``: steps 0.11-0.67 at an
    eighth / a quarter of the electrons): no phantom so far has shown a loss below the gate, which
    is kept as the conservative side.  Synthetic first labels thresholded after a 1 px blur
    (speckled) lost 0.5-5 % at a true step of 0.9-1.1 sd: the gate does not protect those.
    """
    a = math.sqrt(float(np.prod(model.psf_square_sums())))
    n = slices * (2 * MAX_HALF_WINDOW_PX + 1)
    return 2.0 * z_score / math.sqrt(n * a)


MAX_HALF_WINDOW_PX = 12
"""Largest in-plane half-width of the pooling window (:func:`front_window`): at a step near
a step of about one noise sd the window the noise asks for spans a hundred pixels or more, which would make
every chunk's overlap a whole slice while a front that long is no longer straight."""


def boundary_step(model: ImageModel, a: int, b: int) -> tuple[float, float]:
    """Contrast ``|level_a - level_b|`` and the noise variance halfway between the two levels."""
    la, lb = float(model.levels[a]), float(model.levels[b])
    return abs(la - lb), model.noise[0] + model.noise[1] * max(0.5 * (la + lb), 0.0)


def potts_weights(model: ImageModel, contrast: float, var: float, voxel_size_nm: Sequence[float]) -> tuple[float, float, float]:
    """Potts weights per axis ``(z, y, x)`` that never outweigh the evidence of a film one voxel thick.

    A voxel of a film of the other phase, one voxel thick, pays ``2 beta`` of prior (its two pairs
    across the film) and brings at most ``m = contrast**2 * a / (2 var)`` of data energy (``a``: the
    sum of the squared PSF kernel, the product of :meth:`ImageModel.psf_square_sums`; ``var``: the
    noise variance halfway between the two levels), so with ``beta = m / 2`` on the axis of the
    largest voxel face a film the data resolves is kept;
    the other axes' weights are smaller in proportion to the face a pair shares (the prior is a cost
    per interface area, so anisotropic voxels weigh their pairs by it).  The microstructure's own
    boundary statistics (the pseudo-likelihood weights of the first labels, 1.2-1.9 per pair on the
    phantoms) would be thirty to sixty times stronger: they erase the thin binder the data holds (at 20 nm
    pixels, the carbonate phantom's binder Dice fell from 0.47 to 0.29 with them, to 0.58 without
    a prior).
    """
    qy, qx = model.psf_square_sums()
    a = qy * qx
    m = contrast ** 2 * a / (2.0 * max(var, 1e-12))
    vz, vy, vx = (float(v) for v in voxel_size_nm)
    faces = np.array([vy * vx, vz * vx, vz * vy])
    return tuple(float(v) for v in 0.5 * m * faces / faces.max())  # type: ignore[return-value]


MIN_INTERIOR_PIXELS = 500
"""Fewest pixels, the whole pooling footprint inside one phase, :func:`evidence_inflation` measures on."""


def evidence_inflation(grey: np.ndarray, labels: np.ndarray, fit_mask: np.ndarray, deep: np.ndarray | None,
                       model: ImageModel, window: Sequence[int], *, void: int | None = None) -> float:
    """How much more the evidence pooled along a front varies than white noise would make it.

    The refinement sums the data energy change of a front move over :func:`front_window`; its
    noise is the residual seen through the move's signature (the probe's profile across the front,
    a box of the window's length along it).  For white noise that sum's variance is the kernel's
    squared sum times the noise variance; noise correlated in the plane (scan lines, a denoise,
    curtains the correction left) makes it larger, and the fronts would move on a residual that
    only looks like evidence.  Measured on the model's residual of the fitted slices, normalised by
    the noise model, on pixels whose whole footprint lies in one phase (the first labels' boundary
    errors are correlated residuals too, and are what the refinement corrects; blobs the first labels
    got wrong are held off by robust variances), for fronts along x and along y; returned the mean
    of the two ratios, at least 1.

    Recorded by the segmentation (``parameters["forward_refine"]["evidence_inflation"]``), not
    applied.  Since the data energy and the Potts weights both scale with ``1 / var``, applying it
    only widens :func:`front_window` (by ``sqrt`` of it).  On synthetic scenes with noise blurred
    by 1.2 px (inflation 5-6) that cut the electrolyte | binder errors by 1.7-6.2 % instead of
    0.5-3.7 %; on the 24x192 benchmark phantoms, whose registration interpolates the noise
    (inflation 1.5-1.9), it lowered the pore Dice on seven of eight rows, by 0.001-0.004: a wider
    window also pools along fronts that curve round the particles, and that loss is not modelled.
    The interpolation also lowers the per-pixel noise the step gate reads (:func:`min_step_snr`).

    Parameters
    ----------
    grey, labels, fit_mask, deep
        As for :func:`fit_image_model`.
    model : ImageModel
        The fitted model.
    window : 3 ints
        The pooling half-widths ``(z, y, x)`` (:func:`front_window`).
    void : int, optional
        Void label.

    Returns
    -------
    float
        The variance ratio (1.0 where too few interior pixels are left to measure it).
    """
    preds = _predictions(labels, deep, model, void)
    across = []
    for s in model.psf_px():
        r = int(math.ceil(TRUNCATE * s))
        delta = np.zeros(2 * r + 1)
        delta[r] = 1.0
        across.append(ndi.gaussian_filter1d(delta, float(s), mode="constant", truncate=TRUNCATE))
    kernels = (np.outer(across[0], np.ones(2 * int(window[2]) + 1)),  # a front along x
               np.outer(np.ones(2 * int(window[1]) + 1), across[1]))  # a front along y
    pooled: list[list[np.ndarray]] = [[], []]
    single = []
    for g, lab, m, p in zip(np.asarray(grey, np.float32), labels, fit_mask, preds):
        sd = np.sqrt(np.maximum(model.noise[0] + model.noise[1] * np.maximum(p, 0), 1e-12))
        z = np.where(m, (g - p) / sd, 0.0)
        same = m & (ndi.maximum_filter(lab, size=3) == ndi.minimum_filter(lab, size=3))
        single.append(z[same])
        for j, k in enumerate(kernels):
            inside = ndi.binary_erosion(same, structure=np.ones(k.shape, bool), border_value=0)
            pooled[j].append(ndi.correlate(z, k, mode="constant")[inside] / np.sqrt((k ** 2).sum()))
    parts = [np.concatenate(p) for p in pooled]
    if min(p.size for p in parts) < MIN_INTERIOR_PIXELS:
        return 1.0
    unit = _robust_var(np.concatenate(single))
    return max(1.0, float(np.mean([_robust_var(p) for p in parts])) / max(unit, 1e-12))


def _robust_var(x: np.ndarray) -> float:
    """Variance from the median absolute deviation (Gaussian-consistent): a first label wrong over a
    whole blob leaves a residual far off the noise that would read as correlation."""
    return float((1.4826 * np.median(np.abs(x - np.median(x)))) ** 2)


# --------------------------------------------------------------------------- the refinement
def refine_reach(model: ImageModel, window: Sequence[int], sweeps: int = SWEEPS) -> tuple[int, int, int]:
    """Context (voxels, ``(z, y, x)``) on which :func:`refine_labels` of a voxel depends.

    Per sweep, in-plane: the pooling window, the blur of the prediction, the Sobel stencil and the
    front's neighbour; along z: the window and the Potts neighbour.  Once: the shine-through (the
    voids see the first labels ``shine_depth_slices`` behind, blurred)."""
    ky, kx = (int(math.ceil(TRUNCATE * s)) for s in model.psf_px())
    sy, sx = (int(math.ceil(TRUNCATE * model.shine_sigma_nm / p)) for p in model.pixel_nm)
    per = (int(window[0]) + 1, int(window[1]) + ky + 2, int(window[2]) + kx + 2)
    return (sweeps * per[0] + model.shine_depth_slices, sweeps * per[1] + sy + ky, sweeps * per[2] + sx + kx)


def front_window(model: ImageModel, contrast: float, var: float, *, z_score: float = 2.0, slices: int = 3) -> tuple[int, int, int]:
    """Half-widths ``(z, y, x)`` of the window over which the evidence for moving a boundary is pooled.

    Moving a front of ``n`` pixels by one pixel onto the true boundary of a step ``contrast``
    lowers the data energy by ``S / 2`` on average, with a noise standard deviation of
    ``sqrt(S)``, where ``S = n * contrast**2 * a / var`` (``a``: the squared PSF summed across a
    straight front, the geometric mean of the two axes' :meth:`ImageModel.psf_square_sums`;
    ``var``: the noise variance halfway between the two levels).  The window holds the front that puts the mean ``z_score`` standard
    deviations from 0, ``n = 4 z_score**2 var / (contrast**2 a)``, over ``slices`` slices (the
    Potts neighbours along z) and an in-plane length in nm, converted with each axis' pixel, at most
    :data:`MAX_HALF_WINDOW_PX` each side.
    """
    a = math.sqrt(float(np.prod(model.psf_square_sums())))
    n = 4.0 * z_score ** 2 * var / max(contrast ** 2 * a, 1e-12)
    length_nm = n / slices * math.sqrt(model.pixel_nm[0] * model.pixel_nm[1])
    half = [min(MAX_HALF_WINDOW_PX, max(1, int(math.ceil((length_nm / p - 1.0) / 2.0)))) for p in model.pixel_nm]
    return ((slices - 1) // 2, half[0], half[1])


def _front(lab: np.ndarray, c: int, t: int, editable: np.ndarray) -> np.ndarray:
    """Pixels of ``c`` (editable) with an in-plane 4-neighbour of ``t``."""
    nb = np.zeros(lab.shape, bool)
    is_t = lab == t
    nb[1:] |= is_t[:-1]
    nb[:-1] |= is_t[1:]
    nb[:, 1:] |= is_t[:, :-1]
    nb[:, :-1] |= is_t[:, 1:]
    return (lab == c) & editable & nb


def _front_prior(labels: np.ndarray, front: np.ndarray, c: int, t: int, betas: np.ndarray) -> np.ndarray:
    """Potts change per front voxel when the whole front turns from ``c`` to ``t``: its pairs with
    neighbours outside the front (inside it, the pairs keep agreeing); 0 off the front.

    Per front voxel, the sum over its face neighbours off the front of ``beta`` of the axis times
    +1 (a ``c`` neighbour: a pair that agreed now differs) or -1 (a ``t`` neighbour), in float32 and
    in the order: along z from below, from above, along y, along x (compiled, :func:`_front_prior_kernel`:
    the front is a thin share of the block)."""
    lab = np.ascontiguousarray(labels)
    fr_ = np.ascontiguousarray(front, dtype=bool)
    b = np.asarray(betas, np.float64).astype(np.float32)
    out = np.zeros(lab.shape, np.float32)
    _front_prior_kernel(lab, fr_, lab.dtype.type(c), lab.dtype.type(t), b, out)
    return out


@nb.njit(cache=True, nogil=True)
def _front_prior_kernel(lab: np.ndarray, front: np.ndarray, c: Any, t: Any, b: np.ndarray, out: np.ndarray) -> None:
    """``out`` at the ``front`` voxels of :func:`_front_prior` (a 3-D block)."""
    nz, ny, nx = lab.shape
    for z in range(nz):
        for y in range(ny):
            for x in range(nx):
                if not front[z, y, x]:
                    continue
                acc = np.float32(0.0)
                for ax in range(3):
                    for side in (-1, 1):
                        zz, yy, xx = z, y, x
                        if ax == 0:
                            zz += side
                        elif ax == 1:
                            yy += side
                        else:
                            xx += side
                        if zz < 0 or zz >= nz or yy < 0 or yy >= ny or xx < 0 or xx >= nx or front[zz, yy, xx]:
                            continue
                        v = lab[zz, yy, xx]
                        if v == c:
                            acc += b[ax]
                        elif v == t:
                            acc -= b[ax]
                out[z, y, x] = acc


def _proposal_costs(grey: np.ndarray, labels: np.ndarray, faces: Sequence[np.ndarray | None],
                    fronts: Sequence[np.ndarray], pairs: Sequence[tuple[int, int]], model: ImageModel,
                    void: int | None, observed: np.ndarray | None = None) -> list[np.ndarray]:
    """Per pair, the data energy change map (noise-weighted squared residual) of turning all its
    fronts, slice by slice (``faces``: each slice's :func:`void_face` or None; ``observed``: the
    pixels whose residual counts, None: all)."""
    cost = [np.zeros(labels.shape, np.float32) for _ in pairs]
    for z in range(labels.shape[0]):
        if not any(f[z].any() for f in fronts):
            continue
        deep = faces[z]
        pred = predict(labels[z], deep, model, void)
        var = np.float32(model.noise[0]) + np.float32(model.noise[1]) * np.maximum(pred, 0)
        e0 = (grey[z] - pred) ** 2
        for j, (_, t) in enumerate(pairs):
            if fronts[j][z].any():
                prop = np.where(fronts[j][z], np.uint8(t), labels[z])
                cost[j][z] = ((grey[z] - predict(prop, deep, model, void)) ** 2 - e0) / (2 * var)
                if observed is not None:
                    cost[j][z][~observed[z]] = 0
    return cost


def refine_labels(grey: np.ndarray, labels: np.ndarray, editable: np.ndarray, model: ImageModel, *,
                  values: Sequence[int], betas: Sequence[float], window: Sequence[int], void: int | None = None,
                  sweeps: int = SWEEPS, observed: np.ndarray | None = None) -> np.ndarray:
    """MAP refinement of the labels ``values`` on the voxels ``editable`` by moving boundary fronts.

    Each sweep, for every ordered pair ``(c, t)`` of ``values``, every front (the ``c`` voxels
    beside a ``t`` voxel in-plane) is turned to ``t`` in a proposal; the change of the data energy
    (noise-weighted squared residual of the forward model: blur, edge brightening and
    shine-through included, so exact for the proposal) and of the Potts energy (pairs with voxels
    off the front) is summed over the ``window`` around each front voxel, i.e. the energy change of
    moving that stretch of the front by a pixel; the voxel takes the pair whose sum is lowest if it
    is below 0.  A single pixel carries too little evidence (the electrolyte | binder step is under
    two noise sigmas and blurred) for a pixel-by-pixel decision against the prior: a boundary is
    moved by the evidence of its stretch (:func:`front_window`).

    Parameters
    ----------
    grey : ndarray (z, y, x)
        The image.
    labels : ndarray (z, y, x) uint8
        First labels; voxels outside ``editable`` or of another label stay (and are modelled).
    editable : ndarray of bool
        Voxels that may change (e.g. the cathode).
    model : ImageModel
        The forward model.
    values : sequence of int
        Labels that may replace one another (e.g. electrolyte and binder).
    betas : 3 floats
        Potts weights per axis ``(z, y, x)`` (:func:`potts_weights`).
    window : 3 ints
        Half-widths ``(z, y, x)`` of the pooling window (:func:`front_window`).
    void : int, optional
        Void label: modelled with shine-through from the first labels ``model.shine_depth_slices``
        behind (never changed).
    sweeps : int
        Sweeps; every sweep decides all voxels from the labels of the sweep before, so a voxel's
        result depends only on its :func:`refine_reach`.
    observed : ndarray of bool, optional
        Voxels whose residual is evidence (default all): a voxel whose grey holds what the model
        does not (e.g. the collector foil's spill) is left out of the data energy.

    Returns
    -------
    ndarray
        The refined labels.
    """
    out = labels.copy()
    box = _editable_box(editable, refine_reach(model, window, sweeps)[1:])
    if box is None:
        return out
    labels, editable = labels[box], editable[box]
    observed = None if observed is None else np.asarray(observed, bool)[box]
    grey = np.asarray(grey[box], np.float32)
    betas = np.asarray(betas, np.float64)
    k, nz = model.shine_depth_slices, labels.shape[0]
    faces = [void_face(labels[z + k], model, void) if (void is not None and k and z + k < nz) else None
             for z in range(nz)]
    pairs = [(c, t) for c in values for t in values if c != t]
    size = tuple(2 * int(w) + 1 for w in window)
    for _ in range(sweeps):
        fronts = [np.stack([_front(labels[z], c, t, editable[z]) for z in range(labels.shape[0])]) for c, t in pairs]
        if not any(f.any() for f in fronts):
            break
        cost = _proposal_costs(grey, labels, faces, fronts, pairs, model, void, observed)
        best = np.zeros(labels.shape, np.float32)
        pick = np.full(labels.shape, -1, np.int8)
        for j, (c, t) in enumerate(pairs):
            if not fronts[j].any():
                continue
            pooled = ndi.uniform_filter(cost[j] + _front_prior(labels, fronts[j], c, t, betas), size=size, mode="constant")
            gain = np.where(fronts[j], -pooled, np.float32(0))
            better = gain > best
            best[better] = gain[better]
            pick[better] = j
        if not (pick >= 0).any():
            break
        new = labels.copy()
        for j, (_, t) in enumerate(pairs):
            new[pick == j] = t
        labels = new
    out[box] = labels
    return out


def _editable_box(editable: np.ndarray, margin: Sequence[int]) -> tuple[slice, ...] | None:
    """The in-plane bounding box of ``editable`` (all slices) widened by ``margin`` (y, x) pixels:
    the refinement reads nothing beyond it, so it is computed on that box alone."""
    rows, cols = np.nonzero(editable.any(axis=(0, 2)))[0], np.nonzero(editable.any(axis=(0, 1)))[0]
    if rows.size == 0:
        return None
    ny, nx = editable.shape[1:]
    return (slice(None), slice(max(0, rows[0] - margin[0]), min(ny, rows[-1] + 1 + margin[0])),
            slice(max(0, cols[0] - margin[1]), min(nx, cols[-1] + 1 + margin[1])))


FIT_WINDOW_PX = 384
"""Largest in-plane side (pixels) of the window the image model is fitted in (:func:`fit_window`)."""


def fit_window(cathode: np.ndarray, size: int) -> tuple[slice, slice]:
    """The in-plane window of at most ``size`` pixels a side holding the most cathode voxels.

    Parameters
    ----------
    cathode : ndarray of bool (z, y, x)
        The cathode region of the sample slices.
    size : int
        Largest side of the window (pixels); a shorter image side is taken whole.

    Returns
    -------
    (slice, slice)
        Rows and columns of the window.
    """
    counts = cathode.sum(axis=0, dtype=np.int64)
    window = []
    for axis in (0, 1):
        n = counts.shape[axis]
        w = min(int(size), n)
        line = np.concatenate(([0], np.cumsum(counts.sum(axis=1 - axis))))
        start = int(np.argmax(line[w:] - line[: n - w + 1]))
        window.append(slice(start, start + w))
    return window[0], window[1]


def sample_slices(nz: int, depth: int, count: int = 6) -> np.ndarray:
    """Up to ``count`` evenly spread slices with ``depth`` slices behind each (none when the stack
    is shorter)."""
    return spread_indices(nz - depth, count)
