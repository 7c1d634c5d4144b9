"""Edge-rim correction of the cathode's grey values before its pore / binder / active cuts.

Edge brightening adds a bright rim on *both* sides of every phase boundary, in proportion to the
boundary's contrast (secondary electrons escaping through the nearby side wall), and the probe
blur spreads it.  Beside an active particle the rim lifts electrolyte to the binder's grey and
binder to the particle's, so one global cut between them cannot be right near a particle (the
first voxel outside reads within a few grey levels of the particle's own edge); far from
particles it is.

A rim proportional to the step and confined to the boundary's neighbourhood is, to first order,
proportional to the in-plane grey gradient there: the rim-corrected grey is
``g - L |∇g|``, with ``|∇g|`` the in-plane gradient magnitude (grey per nm, Gaussian derivative
of sigma :data:`RIM_GRADIENT_NM`) and ``L`` a length, the rims' area across a boundary per unit
of its contrast (rim height share times its width on both sides).  ``L`` is a property of the
instrument and the pixel size (a rim narrower than a pixel is spread over the pixel), so it is
fitted on the cathode itself (:func:`fit_rim_length`): the length that makes the cathode's grey
histogram best explained by its three classes (Otsu's separability, between-class over total
variance).  Too short a length leaves rim voxels between the classes, too long one digs dark
halos into them; measured on phantoms the fitted length is within the range of best Dice
(10-20 nm at 10 and 20 nm pixels; 9-15 nm on the benchmark's real-corrected 24x192 stacks since
:func:`peak_length`, where the diglyme cathodes' separability has a second, near-equal maximum
at ``L = 0`` that the soft peak averages in: stable under a changed sample, not a sharper
estimate).  That peak is flat to parts per thousand, and it moved between 0 and 15 nm with the
sample (6.6 nm on the diglyme benchmark phantom, 13.4 on the carbonate one, same rendering).
The rims of a flat edge between two levels (the sodium surface, the collector foil;
:func:`volrecon.segment.layers.edge_rim_shift`) give the length too (:func:`edge_rim_length`),
and fail otherwise (a film or a rough surface beside the edge): ``segment_volume`` can take the
median of the three (``volrecon.segment.api.RIM_EDGES``; off by default: the edges' rim fits are not
yet steady).  The gradient is taken in the image plane only: rims and blur are effects
of the beam on the face, not of the milling direction.

With the rims taken off, the two voxels beside a pore | particle boundary read the blurred step,
symmetric about the half-way level of pore and particle; the particle's own edge voxel then reads
under the binder | active cut, which is set for binder beside a particle: :func:`particle_edges`
returns those voxels to the particle before the void split's edge-rim rule would give them to
the pore.

:func:`volrecon.segment.segment_volume` (method ``layers``/``auto``) cuts the particles
(binder | active) on the corrected grey and pore | binder on the plain one: the void split's
edge-rim rule already returns the thin binder-grey rims beside the pore to the pore
(:func:`volrecon.segment.voids.split_voids`), and both corrections together overestimate the
porosity (measured on the benchmark phantoms: carbonate 0.387 against 0.350; 0.356 with the
particles' cut alone).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import numpy as np
from scipy import ndimage as ndi

from volrecon.segment._gradient import gradient_magnitude_kernel
from volrecon.segment.forward_refine import ImageModel, predict
from volrecon.segment.thresholds import multi_otsu
from volrecon.segment.voids import _morph

RIM_GRADIENT_NM = 10.0
"""Gaussian sigma (nm, in the image plane) of the derivative the rim correction is scaled by: the
probe blur's scale (8 nm), so the gradient spans the rims beside a boundary."""

RIM_LENGTH_STEP_NM = 2.5
"""Step (nm) of the rim lengths tried by :func:`fit_rim_length`."""

RIM_LENGTH_MAX_NM = 60.0
"""Longest rim length (nm) tried: well past a rim of a few pixels at the coarsest pixels used."""

FIT_VOXELS = 1_000_000
"""Most sample values :func:`fit_rim_length` evaluates (an evenly strided subset of larger samples)."""

_TRUNCATE = 3.0


def gradient_reach(voxel_size_nm: Sequence[float], sigma_nm: float = RIM_GRADIENT_NM) -> tuple[int, int, int]:
    """Context voxels per axis :func:`gradient_magnitude` needs for chunk-exact results."""
    return (0, *(int(np.ceil(_TRUNCATE * float(sigma_nm) / float(v))) + 1 for v in voxel_size_nm[1:]))  # type: ignore[return-value]


def gradient_magnitude(grey: np.ndarray, voxel_size_nm: Sequence[float], sigma_nm: float = RIM_GRADIENT_NM, *,
                       rows: np.ndarray | None = None) -> np.ndarray:
    """In-plane grey gradient magnitude (grey per nm) by Gaussian derivatives of ``sigma_nm``.

    Parameters
    ----------
    grey : ndarray (z, y, x)
        Grey values.
    voxel_size_nm : 3 floats
        ``(z, y, x)`` voxel size.
    sigma_nm : float
        Gaussian sigma (nm) in the image plane; none along z.
    rows : ndarray of int, optional
        The rows (y) returned, in their order (default all), each computed from the whole slice:
        ``gradient_magnitude(grey, voxel_size_nm)[:, rows]`` without the other rows' work.

    Returns
    -------
    ndarray (float32)
        ``(z, len(rows), x)`` where ``rows`` is given, else ``grey``'s shape.
    """
    g = np.asarray(grey, np.float32)
    sig = [0.0, float(sigma_nm) / float(voxel_size_nm[1]), float(sigma_nm) / float(voxel_size_nm[2])]
    # the same values in one compiled pass per slice where it applies (volrecon.segment._gradient)
    fast = gradient_magnitude_kernel(g, (sig[1], sig[2]), (float(voxel_size_nm[1]), float(voxel_size_nm[2])), _TRUNCATE,
                                     rows=rows)
    if fast is not None:
        return fast
    dy = ndi.gaussian_filter(g, sig, order=(0, 1, 0), mode="nearest", truncate=_TRUNCATE) / np.float32(voxel_size_nm[1])
    dx = ndi.gaussian_filter(g, sig, order=(0, 0, 1), mode="nearest", truncate=_TRUNCATE) / np.float32(voxel_size_nm[2])
    whole = np.hypot(dy, dx)
    return whole if rows is None else whole[:, np.asarray(rows, np.int64)]


def separability(values: np.ndarray, thresholds: Sequence[float]) -> float:
    """Otsu's separability of ``values`` cut at ``thresholds``: between-class over total variance."""
    v = np.asarray(values, np.float64)
    total = float(v.var())
    if not total > 0:
        return 0.0
    cls = np.digitize(v, thresholds)
    mean = float(v.mean())
    between = sum((cls == i).mean() * (float(v[cls == i].mean()) - mean) ** 2 for i in np.unique(cls))
    return float(between / total)


def fit_rim_length(grey: np.ndarray, gradient: np.ndarray, *, classes: int = 3,
                   lengths_nm: Sequence[float] | None = None) -> tuple[float, list[float], float]:
    """The rim length ``L`` (nm) whose corrected grey ``grey - L * gradient`` best separates into
    ``classes`` multi-Otsu classes.

    The separability is evaluated on a grid of lengths and ``L`` read from its main peak
    (:func:`peak_length`); the thresholds at ``L`` are then cut on a fine histogram of the
    values' robust range (:func:`robust_cuts`).

    Parameters
    ----------
    grey, gradient : ndarray
        Samples of the denoised grey values and of :func:`gradient_magnitude` at the same voxels
        (the cathode's); at most :data:`FIT_VOXELS` of them are used.
    classes : int
        Number of classes (3 for pore / binder / active).
    lengths_nm : sequence of float, optional
        Increasing lengths tried (default ``0, RIM_LENGTH_STEP_NM, ... RIM_LENGTH_MAX_NM``).

    Returns
    -------
    (length_nm, thresholds, separability)
        The fitted length, the multi-Otsu thresholds of the corrected grey and their separability.
    """
    g = np.asarray(grey, np.float64).ravel()
    d = np.asarray(gradient, np.float64).ravel()
    step = -(-g.size // FIT_VOXELS)  # every step-th voxel: a 256-bin histogram needs no more
    g, d = g[::step], d[::step]
    grid = np.asarray(np.arange(0.0, RIM_LENGTH_MAX_NM + 1e-9, RIM_LENGTH_STEP_NM) if lengths_nm is None else lengths_nm,
                      np.float64)
    eta = np.array([separability(v, multi_otsu(v, classes, bins=256)) for v in (g - float(x) * d for x in grid)])
    length = peak_length(grid, eta)
    v = g - length * d
    t = robust_cuts(v, classes)
    return length, t, separability(v, t)


PEAK_SHARE = 0.005
"""Depth of the separability peak :func:`peak_length` reads ``L`` from, as a share of its height."""


def peak_length(lengths: np.ndarray, eta: np.ndarray, share: float = PEAK_SHARE) -> float:
    """The vertex of the separability's main peak over the lengths tried.

    The separability varies by parts per thousand around its peak, and wiggles of a few parts in
    ten thousand (a second, boundary maximum at ``L = 0``, say) make the grid's argmax jump
    between distant lengths when a few voxels change.  Instead, a parabola is fitted by least
    squares to the lengths whose separability lies within ``share`` of the maximum, each weighted
    by its height above that level (so a point entering or leaving the peak weighs nothing): the
    vertex moves continuously with the data.  Clipped to the lengths tried; the grid's argmax
    where the peak is not concave.
    """
    lengths, eta = np.asarray(lengths, np.float64), np.asarray(eta, np.float64)
    best = int(np.argmax(eta))
    w = np.maximum(0.0, eta - eta[best] * (1.0 - share))
    use = w > 0
    if use.sum() < 3:
        return float(lengths[best])
    a, b, _ = np.polyfit(lengths[use], eta[use], 2, w=np.sqrt(w[use]))
    if not a < 0:
        return float(lengths[best])
    return float(np.clip(-b / (2.0 * a), lengths[0], lengths[-1]))


ROBUST_TAIL = 0.005
"""Share of the values clipped at either end by :func:`robust_cuts`."""


def robust_cuts(values: np.ndarray, classes: int) -> list[float]:
    """Multi-Otsu thresholds on a fine histogram of ``values`` clipped to their central
    ``1 - 2 ROBUST_TAIL`` range: a bin per 256 values on average, 256 to 1024 bins.

    The histogram's range is otherwise the extreme values' (the corrected grey's darkest halo
    voxels, which move with a few voxels), and a threshold is a bin centre: the bins, and with them
    the cut, jump by a bin width when an extreme changes.  The clipped tails stay in the end
    classes, so the criterion is unchanged but for them.
    """
    v = np.asarray(values, np.float64).ravel()
    bins = int(np.clip(v.size // 256, 256, 1024))
    lo, hi = np.quantile(v, [ROBUST_TAIL, 1.0 - ROBUST_TAIL])
    return [float(x) for x in multi_otsu(np.clip(v, lo, hi) if hi > lo else v, classes, bins=bins)]


def rim_share(ratio: float, half_width_vox: float, blur_vox: float) -> float:
    """Share of a step's contrast that rims of height ``ratio`` times the step and half-width
    ``half_width_vox``, blurred by a Gaussian of ``blur_vox``, add to the centre of the voxel beside
    the boundary (half a voxel from it): ``ratio [Φ((0.5 + w)/s) - Φ((0.5 - w)/s)]``."""
    from scipy.special import ndtr

    s, w = float(blur_vox), float(half_width_vox)
    return max(float(ratio), 0.0) * float(ndtr((0.5 + w) / s) - ndtr((0.5 - w) / s))


def edge_rim_length(share: float, blur_vox: float, pixel_nm: float, sigma_nm: float = RIM_GRADIENT_NM) -> float:
    """The rim length (nm) whose correction removes a measured rim from the voxel beside a boundary.

    A step of contrast ``C`` blurred by ``blur_vox`` (probe and denoising, voxels of ``pixel_nm``)
    has, half a voxel from the boundary, the in-plane gradient :func:`gradient_magnitude` reads
    ``C φ(0.5/s) / (s pixel_nm)``, with ``s`` the blur and the derivative's own sigma combined; the
    rims lift that voxel by ``share C`` (:func:`rim_share`).  The length that takes the lift off,
    ``share s pixel_nm / φ(0.5/s)``, follows from the rims measured on a flat edge (a rim fit,
    :func:`volrecon.segment.layers.edge_rim_shift`), not from the cathode's histogram (the module
    notes say why that matters).

    Parameters
    ----------
    share : float
        :func:`rim_share` of the measured rim.
    blur_vox : float
        Gaussian sigma (voxels) of the step in the grey the correction is applied to.
    pixel_nm : float
        The voxel (nm) along the edge's normal.
    sigma_nm : float
        Sigma of the gradient's Gaussian derivative (:func:`gradient_magnitude`).

    Returns
    -------
    float
        The rim length (nm), 0 without a rim.
    """
    s = float(np.hypot(float(blur_vox), float(sigma_nm) / float(pixel_nm)))
    density = np.exp(-0.5 * (0.5 / s) ** 2) / np.sqrt(2.0 * np.pi)
    return max(float(share), 0.0) * s * float(pixel_nm) / float(density)


def particle_edges(labels: np.ndarray, corrected: np.ndarray, cathode: np.ndarray, *, electrolyte: int, binder: int,
                   active: int, cut: float, reach_px: Sequence[int], void: int | None = None,
                   particle_side: bool | Sequence[bool] = True, pore_side: bool | np.ndarray = False) -> np.ndarray:
    """Binder-labelled voxels between the pore and a particle that are the particle's own edge.

    Where a particle meets the pore, the rim-corrected grey of the two voxels beside the boundary
    is the blurred step's, symmetric about the half-way level of pore and particle (``cut``); the
    binder | active cut, set for binder beside a particle, lies well above it, so the particle's
    own edge voxel (64 % of the way up at the benchmark's blur) reads binder, and the void split's
    edge-rim rule then returns that thin binder to the pore: the particles lose a voxel to the
    pore all round (carbonate phantom: a quarter of the particles' voxels beside the electrolyte).
    Binder voxels touching a particle in the image plane, within ``reach_px`` in-plane pixels of
    the pore (the edge artefact's reach, the rim voxel on the pore's side between), that read at
    least ``cut`` are the particle's.

    Parameters
    ----------
    labels : ndarray (z, y, x)
        Classes of the cathode (electrolyte / binder / active) before the void split.
    corrected : ndarray (z, y, x)
        Rim-corrected grey (:func:`rim_corrected`).
    cathode : ndarray of bool
        The cathode's voxels.
    electrolyte, binder, active : int
        Label values.
    cut : float
        Half-way level between the electrolyte and the particles on ``corrected``.
    reach_px : 2 ints
        In-plane reach ``(y, x)`` in pixels.
    void : int, optional
        Label value of the empty pore, read as pore beside ``electrolyte`` (labels after a void split).
    particle_side : bool or 2 bools
        The particle's side of the step, as above (off: only ``pore_side``'s voxels change); per
        in-plane axis ``(y, x)``, only binder voxels beside a particle across the axes named (a
        step across the other axis reads above the binder | active cut there: a binder voxel on a
        particle across it is the binder's coat, not the step's).
    pore_side : bool or ndarray of bool
        Also the step's other voxel: binder voxels touching both the pore and a particle in the
        image plane (the particles as this rule leaves them) that read under ``cut`` are the
        pore's, and become ``electrolyte`` (an array: only at its True voxels, ``labels``' shape).  A boundary decided voxel by voxel on a denoised grey
        can leave a binder shell on both sides of the step (a trained classifier's, whose features
        carry the particle's blur into the pore beside it); below the half-way level such a voxel
        is the step's dark side.

    Returns
    -------
    ndarray
        ``labels`` with those voxels relabelled ``active`` (and, with ``pore_side``, ``electrolyte``).
    """
    cat = np.asarray(cathode, bool)
    grey = np.asarray(corrected)
    pore = cat & np.isin(labels, [electrolyte] if void is None else [electrolyte, void])
    ry, rx = (max(1, int(r)) for r in reach_px)
    sides = (particle_side,) * 2 if isinstance(particle_side, (bool, np.bool_)) else tuple(bool(a) for a in particle_side)
    cross = np.zeros((1, 3, 3), bool)
    cross[0, 1, :] = cross[0, :, 1] = True
    out = np.array(labels, copy=True)
    if any(sides):
        # scipy's binary dilations, by whole-block shifts (the box as two 1-D passes)
        near_pore = _morph(pore, np.ones((1, 2 * ry + 1, 2 * rx + 1), bool), erode=False)
        arms = np.zeros((1, 3, 3), bool)
        arms[0, 1, 1] = True
        arms[0, :, 1] |= sides[0]
        arms[0, 1, :] |= sides[1]
        on_particle = _morph(cat & (labels == active), arms, erode=False)
        out[cat & (labels == binder) & near_pore & on_particle & (grey >= cut)] = active
    if pore_side is not False:
        where = cat if pore_side is True else cat & np.asarray(pore_side, bool)
        on_particle = _morph(cat & (out == active), cross, erode=False)
        out[where & (out == binder) & on_particle & _morph(pore, cross, erode=False) & (grey < cut)] = electrolyte
    return out


def rim_corrected(grey: np.ndarray, gradient: np.ndarray, length_nm: float) -> np.ndarray:
    """``grey - length_nm * gradient`` (float32)."""
    return (np.asarray(grey, np.float32) - np.float32(length_nm) * np.asarray(gradient, np.float32)).astype(np.float32)


STEP_HALF_PX = 16
"""Pixels on either side of the straight step :func:`dark_side_rim_length` images: beyond the
reach of the probe blur, the denoising and the gradient at the pixel sizes used."""


def dark_side_rim_length(model: ImageModel, voxel_size_nm: Sequence[float], *,
                         smooth_sigma_vox: Sequence[float] = (0.0, 0.0, 0.0)) -> float:
    """The rim length (nm) that returns the first voxel on the dark side of a phase boundary to
    its phase's level, on the image ``model`` gives.

    Beside a boundary the darker phase reads brighter than its level twice over: the probe blur
    spills the brighter phase into it, and the edge brightening adds its rim.  Both are
    proportional to the step's contrast, and so is the gradient there, so the length
    ``L = excess / |gradient|`` of :func:`rim_corrected` is the same for every step, whatever its
    contrast: a property of the probe, the rims and the denoising, read here on the fitted model of
    the face image (:func:`volrecon.segment.forward_refine.fit_image_model`).  The image of a
    straight step along each in-plane axis (the boundary between two pixels, as the model's labels
    have it) is denoised as the grey values are (``smooth_sigma_vox``; constant along z, so only
    the in-plane sigmas act) and its gradient taken as :func:`gradient_magnitude` takes it; the
    length is the mean of the two axes'.

    :func:`fit_rim_length` fits one length to all of a region's boundaries by the separability of
    its classes, which weighs the bright sides (read darker than their level: the blur's deficit
    less the rim) against the dark ones and settles short of this length (the benchmark phantoms:
    fitted 16-17 nm, this length 21-25 nm with the probe and rims fitted; 22 nm with the phantom's
    own, an 8 nm probe and rims of half the step).  The pore is the dark side of every boundary of
    the cathode's pore and solids, so this is the length its cut against the binder wants.

    Parameters
    ----------
    model : ImageModel
        The fitted image model (its probe blur, edge gain and pixel are read; the levels are not:
        the length does not depend on them).
    voxel_size_nm : 3 floats
        ``(z, y, x)`` voxel size.
    smooth_sigma_vox : 3 floats
        Gaussian sigma (voxels, ``(z, y, x)``) of the denoising the grey values had
        (:func:`volrecon.segment.regional.smoothing_sigma`).

    Returns
    -------
    float
        The length in nm (0 where the model's step leaves no gradient).
    """
    lengths = [float(img[dark]) / float(grad[dark]) if grad[dark] > 0 else 0.0
               for img, grad, dark, _ in _unit_steps(model, voxel_size_nm, smooth_sigma_vox)]
    return float(np.mean(lengths))


def _unit_steps(model: ImageModel, voxel_size_nm: Sequence[float],
                smooth_sigma_vox: Sequence[float]) -> list[tuple[np.ndarray, np.ndarray, tuple[int, int], tuple[int, int]]]:
    """The image of a straight step from 0 to 1 along each in-plane axis under ``model``, denoised
    by ``smooth_sigma_vox``: ``(image, its gradient, the dark side's voxel, the bright side's)``."""
    unit = replace(model, levels={0: 0.0, 1: 1.0})
    n = 2 * STEP_HALF_PX
    out = []
    for axis in (0, 1):
        lab = np.zeros((n, n), np.uint8)
        if axis == 0:
            lab[STEP_HALF_PX:, :] = 1
        else:
            lab[:, STEP_HALF_PX:] = 1
        img = ndi.gaussian_filter(predict(lab, None, unit, None), [float(s) for s in smooth_sigma_vox[1:]],
                                  mode="nearest", truncate=_TRUNCATE)
        grad = gradient_magnitude(img[None], voxel_size_nm)[0]
        dark = (STEP_HALF_PX - 1, STEP_HALF_PX) if axis == 0 else (STEP_HALF_PX, STEP_HALF_PX - 1)
        out.append((img, grad, dark, (STEP_HALF_PX, STEP_HALF_PX)))
    return out


def step_reads(model: ImageModel, voxel_size_nm: Sequence[float], *, length_nm: float, levels: tuple[float, float],
               smooth_sigma_vox: Sequence[float] = (0.0, 0.0, 0.0)) -> list[tuple[float, float]]:
    """What the two voxels beside a straight step between ``levels`` (dark, bright) read on the grey
    :func:`rim_corrected` by ``length_nm``, on the image ``model`` gives, denoised as the grey values
    were (``smooth_sigma_vox``): ``(dark side, bright side)`` for a step across each in-plane axis
    (y, x; the pixels may differ: a tilted face's rows are longer).

    The image of a step between two levels is linear in them (the rims are the step's contrast
    times the edge gain), so a unit step, scaled, gives it.
    """
    lo, hi = (float(v) for v in levels)
    return [(lo + (hi - lo) * float(img[dark] - float(length_nm) * grad[dark]),
             lo + (hi - lo) * float(img[bright] - float(length_nm) * grad[bright]))
            for img, grad, dark, bright in _unit_steps(model, voxel_size_nm, smooth_sigma_vox)]


def particle_edge_rim_length(model: ImageModel, voxel_size_nm: Sequence[float], *,
                             smooth_sigma_vox: Sequence[float] = (0.0, 0.0, 0.0)) -> float:
    """The rim length (nm) of the grey :func:`particle_edges` reads a pore | particle step's two
    voxels on, from the image ``model``: the rims' own length and half the blur's.

    Of the :func:`dark_side_rim_length` of a step, the part its rims make is the length less that
    of the same model without edge brightening (the blur's spill alone).  With only the rims taken
    off, a straight step's two voxels lie symmetric about the half-way level of its two phases; the
    voxel on the pore's side of a real outline reads brighter than a straight step's (a concave
    outline, and the slices above and below through the 3D denoising, spill more of the particle
    into it than the in-plane gradient shows), and its rims-only grey went above the half-way level
    (24x192 diglyme phantom, seed 1, corrected, the rule on the classifier's labels: 5.1 nm, pore
    read as active 1 100 -> 4 600 voxels, active Dice -0.015; with this length, 11.7 nm: 2 100,
    -0.003).
    Half the blur's spill is taken off as well: the midpoint between the rims-only length and the
    dark side's.  On the model of a straight unit step (probe 8.7 nm, edge gain 0.47, 10 nm pixels,
    10 nm denoising) the pore's voxel then reads 0.20 and the particle's 0.60 of the step, either
    side of the half-way level; without edge brightening the particle's would read 0.48, under it
    (the rule then keeps the particle's edge voxels binder, as without it).

    Parameters
    ----------
    model : ImageModel
        The fitted image model (its probe blur, edge gain and pixel are read).
    voxel_size_nm : 3 floats
        ``(z, y, x)`` voxel size.
    smooth_sigma_vox : 3 floats
        Gaussian sigma (voxels) of the denoising the grey values had.

    Returns
    -------
    float
        The length in nm.
    """
    dark = dark_side_rim_length(model, voxel_size_nm, smooth_sigma_vox=smooth_sigma_vox)
    blur = dark_side_rim_length(replace(model, edge_gain=0.0), voxel_size_nm, smooth_sigma_vox=smooth_sigma_vox)
    return float(dark - 0.5 * blur)


def gradient_noise_power(voxel_size_nm: Sequence[float], *, smooth_sigma_vox: Sequence[float] = (0.0, 0.0, 0.0),
                         sigma_nm: float = RIM_GRADIENT_NM) -> float:
    """Mean squared :func:`gradient_magnitude` ((grey / nm)^2) of white noise of unit variance denoised
    by a Gaussian of ``smooth_sigma_vox``: the sum of the squared weights of the two in-plane
    components' kernels (denoising then derivative), read off their response to one voxel.

    Parameters
    ----------
    voxel_size_nm : 3 floats
        ``(z, y, x)`` voxel size.
    smooth_sigma_vox : 3 floats
        Gaussian sigma (voxels) of the denoising the grey values had
        (:func:`volrecon.segment.regional.smoothing_sigma`).
    sigma_nm : float
        The derivative's sigma (nm), as :func:`gradient_magnitude` takes it.

    Returns
    -------
    float
        ``E |grad n|^2`` for noise ``n`` of variance 1 (times the noise's variance for another).

    Examples
    --------
    >>> p10 = gradient_noise_power((20, 10, 10), smooth_sigma_vox=(0.5, 1.0, 1.0))
    >>> p20 = gradient_noise_power((40, 20, 20), smooth_sigma_vox=(0.0, 0.5, 0.5))
    >>> bool(p20 > 4 * p10)  # coarser pixels, less denoising: the gradient reads more of the noise
    True
    """
    reach = gradient_reach(voxel_size_nm, sigma_nm)
    half = [int(np.ceil(_TRUNCATE * float(s))) + r + 1 for s, r in zip(smooth_sigma_vox, reach)]
    one = np.zeros([2 * h + 1 for h in half], np.float32)
    one[tuple(half)] = 1.0
    response = ndi.gaussian_filter(one, [float(s) for s in smooth_sigma_vox], mode="constant", truncate=_TRUNCATE)
    return float((gradient_magnitude(response, voxel_size_nm).astype(np.float64) ** 2).sum())


def gradient_reliability(gradient: np.ndarray, noise_var: float, noise_power: float) -> float:
    """The share of the measured gradient's power that is the image's own, not the noise's.

    The rims are proportional to the noise-free image's gradient; the gradient read on the grey
    carries the noise's too (``noise_var * noise_power``, :func:`gradient_noise_power`), which has no
    rim to take off.  A rim correction ``L |grad g|`` regressed on the measured gradient is attenuated
    by this ratio (the regression dilution of a regressor read with noise): ``1 - noise / measured``
    power, over the region's ``gradient`` sample, clipped to ``[0, 1]``.
    """
    measured = float(np.mean(np.square(np.asarray(gradient, np.float64)))) if np.size(gradient) else 0.0
    if not measured > 0:
        return 0.0
    return float(np.clip(1.0 - float(noise_var) * float(noise_power) / measured, 0.0, 1.0))
