"""Drift refinement from the kinematics of compact objects (issue #10; the default without frame).

Without a frame the tile consensus follows the specimen's own motion: features crossing the
slice plane at an angle move from slice to slice, and the finite sample's mean motion (about
``1 / sqrt(number of features)``) is indistinguishable from drift for a correlation. Objects
tracked one by one tell their own motion apart:

* a straight rod (cathode needles, fibres) has a section of constant area and shape whose
  centroid moves at a constant velocity, ``q + v z``, along the major axis of the section (in
  physical space), at ``kappa sqrt((a/b)^2 - 1)`` px per slice (``kappa`` = slice thickness over
  pixel size, ``a/b`` the section's axis ratio): across its axis the section stands still;
* a blob (binder, void) or an ellipsoid's cap changes area and moves its centre its own way:
  not used.

Compact bright and dark objects are segmented in every slice (:func:`find_sections`), linked
from slice to slice in the consensus' registered frame (:func:`link_tracks`), and kept when they
keep their area and move like one rod (:func:`rod_normals`, which calibrates the pixel aspect
and ``kappa`` on the data). The consensus' drift error ``D(z)`` is common to all of them:
``p_j(z) = q_j + v_j z + D(z)``. Over tracks that begin and end at different slices everything
but a steady rate of ``D`` is fixed by their straight-line motion, and the rate by ``n_j . v_j =
0`` across each rod's axis; the consensus enters as a prior on the steps of ``D``, so that
where no rod is tracked the correction stays flat (:func:`solve_correction`).

How much to trust each is taken from the data: the centroids' noise across and along the rods'
axes, the rods' across-axis velocities and the consensus' steps are four groups whose sigmas are
re-estimated from their residuals over their redundancy (variance components), so no weight is
set by hand (round reg8; before, fixed sigmas and the step sigma of the velocity spread decided
which stack won); the updates are damped and floored, and iterated to convergence (regfix:
undamped and unfloored, a group could collapse and turn its rows into hard constraints).

Measured (benchmarks/results/registration.md, rounds reg7 and reg8): better than the consensus
on all four 1024 px electrode phantoms and at 2048x1536 (seed 1 zero drift 0.593 -> 0.504 px,
seed 0 0.866 -> 0.698), on 7 of 8 at 512 px x 96 slices (seed 5 zero drift 0.607 -> 0.649,
worse). The centroids of the few isolated rods (about 120 over 200 slices at 1024 px, 6-14 at
512 px) stay the limit: along their axis about twice as noisy as across (0.22-0.25 against
0.12-0.13 px). The default of :func:`volrecon.correct.drift.estimate_drift` where no frame edge
or fiducial anchors the drift (round reg9; ``objects=False`` keeps the consensus), and with fewer
than ``MIN_RODS`` rods (small or featureless stacks) :func:`refine_shifts` returns the consensus
unchanged and says why. Its cost is the segmentation of every slice: the 40 px local mean is
computed exactly on a grid of nodes 8 px apart and interpolated back (:func:`local_mean`, within
a thousandth of the contrast's spread of the direct filter), both polarities are labelled into
one map and only the candidate sections' pixels enter the moments (round secfast: 0.59 -> about
0.1 CPU-s per 1024 px slice; benchmarks/results/registration.md).
"""

from __future__ import annotations

import functools
import math
import threading
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from scipy import ndimage
from scipy.spatial import cKDTree

from volrecon.errors import ParameterError

__all__ = ["MIN_RODS", "MIN_TRACK", "Sections", "Track", "find_sections", "link_tracks", "refine_shifts",
           "solve_correction"]

#: smoothing (px) of a slice before segmentation: noise, not structure
SMOOTH_PX = 2.0
#: the local background is a Gaussian of this many px (several object sizes): objects are what
#: stands out of it
BACKGROUND_PX = 40.0
#: the local background is computed exactly at nodes this share of its sigma apart and interpolated
#: between them (:func:`local_mean`; the Gaussian of 40 px is smooth over 8 px)
BACKGROUND_STEP = 0.2
#: below this sigma (px) the local mean is filtered directly (few pixels per node to save)
COARSE_SIGMA = 10.0
#: threshold on the local contrast, in robust standard deviations of the contrast
THRESHOLD = 0.0
#: smallest and largest section (px) kept: below, the centroid is noise; above, not compact
AREA_PX = (30.0, 4000.0)
#: a section is matched with the next slice's within this share of its major semi-axis
#: (a rod section moves ``2 sin(tilt) * slice / radius`` of its semi-axis per slice: < 0.5)
SEARCH_SHARE = 0.6
#: neighbour sections are the same object when their areas differ by less than this factor
AREA_STEP = 1.2
#: a section is compact (filled, not a ring or a branching network) when its area is at least this
#: share of the area of the ellipse with its second moments (``4 pi sqrt(det)``)
COMPACT = 0.6
#: pixel aspects (row height over column width) tried when calibrating the rods' geometry: from
#: tilt-corrected images (1) to a face imaged at 36 deg without correction (1.7), and the reverse
ASPECTS = np.round(np.arange(0.6, 1.81, 0.025), 3)
#: a track moves like one rod when its speed along its axis is within this share of the speed its
#: section's elongation predicts (``kappa sqrt((a/b)^2 - 1)``, kappa = slice / pixel, calibrated)
KAPPA_TOL = 0.25
#: ... and its velocity is within this angle (sine) of the section's major axis
MISMATCH = 0.3
#: angle error (rad) of a rod's axis from its section's moments: its across velocity is uncertain
#: by this times its speed
ANGLE_SIGMA = 0.05
#: shortest track (slices) whose straight-line motion says something
MIN_TRACK = 5
#: fewest rods the refinement runs on. Their across-axis rows fix the steady rate of ``D`` (two
#: unknowns) and their group's sigma is estimated from what is left over (the rows minus the
#: rate and their share of the tracks' velocities): below five the rate rests on one or two rods
#: and the sigma on nothing, and the consensus is returned unchanged (``info["reason"]``)
MIN_RODS = 5
#: a section keeps its area (prism) when every area of the track is within this factor of the median
PRISM_AREA = 1.12
#: a section is elongated enough to have an axis when its moments' axis ratio is at least this
ELONGATED = 1.15
#: no group's sigma falls below this share of its start. The starting sigmas are the physical
#: orders (a centroid of a 30+ px section with a ~1 px soft edge; an axis angle from a section's
#: moments times the speed; the finite-sample mean motion the consensus follows); a group whose
#: estimate drops a decade below is one whose residuals its own unknowns absorb (a fit with few
#: rods, a rod exactly along its axis in a synthetic stack, a consensus without error), not a
#: measured precision: followed, its rows become hard constraints and the solve singular
FLOOR_SHARE = 0.1
#: the variance components stop when no group's sigma changes by more than this share
TOLERANCE = 1e-3
#: the rows' leverages go through the drift block's Schur complement this many rows at a time
#: (each row holds a dense row of ``2 Z`` values while it is summed)
ROW_CHUNK = 4096


@dataclass(frozen=True)
class Sections:
    """The compact objects of one slice.

    Attributes
    ----------
    centroid : ndarray, shape (N, 2)
        Contrast-weighted centroid ``(y, x)`` in px of the slice region.
    area : ndarray, shape (N,)
        Pixels above the threshold.
    moments : ndarray, shape (N, 3)
        Second central moments ``(yy, xx, xy)`` in px².
    polarity : ndarray, shape (N,)
        ``+1`` brighter than its surroundings, ``-1`` darker.
    """

    centroid: np.ndarray
    area: np.ndarray
    moments: np.ndarray
    polarity: np.ndarray

    def __len__(self) -> int:
        return int(self.area.size)


@dataclass(frozen=True)
class Track:
    """One object followed over consecutive slices (registered by the consensus).

    Attributes
    ----------
    z : ndarray of int, shape (L,)
        Slices.
    position : ndarray, shape (L, 2)
        Centroid ``(y, x)`` in the consensus' registered frame.
    area : ndarray, shape (L,)
    moments : ndarray, shape (L, 3)
    """

    z: np.ndarray
    position: np.ndarray
    area: np.ndarray
    moments: np.ndarray

    def prism_axis(self, aspect: float = 1.0) -> np.ndarray | None:
        """Normal ``(ny, nx)`` (in image px) across the section's major axis, or None when the
        section changes area (not a prism) or is too round to have an axis.

        ``aspect``: the physical height of a row over the width of a column (a face imaged at
        52 deg without tilt correction: 1 / sin 52 deg); the axis is taken in physical space,
        where a rod's section moves along it.
        """
        med = float(np.median(self.area))
        if np.any(self.area > PRISM_AREA * med) or np.any(self.area * PRISM_AREA < med):
            return None
        yy, xx, xy = np.median(self.moments, axis=0)
        cov = np.array([[yy * aspect**2, xy * aspect], [xy * aspect, xx]])
        values, vectors = np.linalg.eigh(cov)
        if values[0] <= 0 or math.sqrt(values[1] / values[0]) < ELONGATED:
            return None
        normal = vectors[:, 0] * np.array([aspect, 1.0])  # across the major axis, per image px
        return normal / np.hypot(*normal)


def find_sections(region: np.ndarray, *, background_px: float | None = None,
                  threshold: float | None = None, area_px: tuple[float, float] | None = None) -> Sections:
    """Segment the compact bright and dark objects of one slice.

    Parameters
    ----------
    region : ndarray, shape (Y, X)
        The slice (or its structure region).
    background_px : float, optional
        Sigma of the Gaussian local background (default ``BACKGROUND_PX``), computed by
        :func:`local_mean`.
    threshold : float, optional
        Contrast threshold in robust standard deviations of the local contrast (``THRESHOLD``,
        not negative: a pixel is bright or dark, not both).
    area_px : (float, float), optional
        Smallest and largest section kept (``AREA_PX``).

    Returns
    -------
    Sections
        Objects not touching the region's border, each with its centroid, area and moments: the
        bright ones first, then the dark ones.
    """
    background_px = BACKGROUND_PX if background_px is None else background_px
    threshold = THRESHOLD if threshold is None else threshold
    area_px = AREA_PX if area_px is None else area_px
    if threshold < 0:
        raise ParameterError(f"threshold={threshold!r}: give a threshold >= 0 (in noise sigmas; a pixel cannot be "
                             "both bright and dark)")
    img = np.asarray(region, dtype=np.float32)
    contrast = ndimage.gaussian_filter(img, SMOOTH_PX) - local_mean(img, background_px)
    spread = 1.4826 * float(np.median(np.abs(contrast - np.median(contrast)))) or 1.0
    return _objects(contrast / np.float32(spread), threshold, area_px)


def local_mean(img: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian local mean (``scipy.ndimage.gaussian_filter``, mode ``'reflect'``) of a slice,
    evaluated on a coarse grid and interpolated back.

    The mean over ``sigma`` px is smooth on that scale, so it is computed exactly (the same
    truncated, normalised and reflected kernel) only at nodes ``BACKGROUND_STEP * sigma`` px
    apart that span the slice, and interpolated between them by cubic convolution (error of
    order ``BACKGROUND_STEP ** 3`` of the field's variation; ``tests/correct``). Per axis the
    two steps are one small sparse matrix each, so the whole is four matrix products through
    ``Y / (BACKGROUND_STEP * sigma)`` nodes: about 0.015 CPU-s at 1024 px and ``sigma`` 40,
    against about 0.36 for the direct filter. Below ``COARSE_SIGMA``, or on a slice less than four
    node spacings across, the filter is direct.

    Parameters
    ----------
    img : ndarray, shape (Y, X)
    sigma : float
        Gaussian sigma (px).

    Returns
    -------
    ndarray, shape (Y, X), float32
    """
    img = np.asarray(img, dtype=np.float32)
    # a slice only a few node spacings across: the direct filter is cheap there (and one pixel has no grid)
    if sigma < COARSE_SIGMA or min(img.shape) < 4 * BACKGROUND_STEP * sigma:
        return ndimage.gaussian_filter(img, sigma)
    # one build per slice size: the drift's worker threads all ask for it on their first slice
    with _OPERATOR_LOCK:
        rows, cols = (_coarse_operator(n, float(sigma)) for n in img.shape)
    coarse = (cols[0] @ (rows[0] @ img).T).T  # the exact local mean at the nodes
    return rows[1] @ (cols[1] @ coarse.T).T


_OPERATOR_LOCK = threading.Lock()


@functools.lru_cache(maxsize=8)
def _coarse_operator(n: int, sigma: float) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Per axis of length ``n``: the Gaussian's rows at the coarse nodes (nodes x n) and the
    interpolation from the nodes back to every pixel (n x nodes); float32 and sparse (the
    truncated kernel, four taps): the products run in one thread, where a BLAS call on dense
    matrices starts its own threads and, beside the drift's worker threads, spends more CPU
    waiting than computing (0.36 against 0.22 CPU-s per 1024 px slice of ``estimate_drift``)."""
    nodes = max(int(math.ceil((n - 1) / (BACKGROUND_STEP * sigma))) + 1, 4)
    return _gaussian_rows(n, np.linspace(0.0, n - 1.0, nodes), sigma), _cubic_interpolation(n, nodes)


def _float32_csr(rows: np.ndarray, cols: np.ndarray, values: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    """CSR float32 matrix of the summed ``(rows, cols, values)`` triplets (summed in float64),
    zeros dropped and indices sorted: built without a dense ``shape`` array."""
    out = sp.coo_matrix((values, (rows, cols)), shape=shape).tocsr()
    out.sum_duplicates()
    out = out.astype(np.float32)
    out.eliminate_zeros()
    out.sort_indices()
    return out


def _gaussian_rows(n: int, centre: np.ndarray, sigma: float) -> sp.csr_matrix:
    """``gaussian_filter``'s kernel (truncated at 4 sigma, normalised) centred at each of
    ``centre`` (px, fractional) over ``n`` pixels, reflected at both ends as its mode
    ``'reflect'`` does (``d c b a | a b c d | d c b a``, repeatedly where the kernel is wider);
    only each kernel's own window is evaluated (memory grows with the nodes, not nodes x n)."""
    radius = int(4.0 * sigma + 0.5)
    width = 2 * radius + 2
    x = np.ceil(centre - radius).astype(np.int64)[:, None] + np.arange(width)[None, :]
    offset = centre[:, None] - x
    kernel = np.where(np.abs(offset) <= radius, np.exp(-0.5 * (offset / sigma) ** 2), 0.0)
    kernel /= kernel.sum(axis=1, keepdims=True)
    period = np.mod(x, 2 * n)
    source = np.where(period < n, period, 2 * n - 1 - period)
    return _float32_csr(np.repeat(np.arange(centre.size), width), source.ravel(), kernel.ravel(), (centre.size, n))


def _cubic_interpolation(n: int, nodes: int) -> sp.csr_matrix:
    """Weights (n x nodes) of Keys' cubic convolution from ``nodes`` evenly spaced nodes that
    span ``n`` pixels, with Keys' boundary node past either end (``f(-1) = 3 f(0) - 3 f(1) +
    f(2)``, mirrored at the far end)."""
    position = np.arange(n) / ((n - 1.0) / (nodes - 1))
    base = np.clip(np.floor(position).astype(int), 0, nodes - 2)
    pixel = np.arange(n)
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    values: list[np.ndarray] = []
    for tap, weight in zip((-1, 0, 1, 2), _keys_weights(position - base)):
        node = base + tap
        inside = (node >= 0) & (node < nodes)
        rows.append(pixel[inside])
        cols.append(node[inside])
        values.append(weight[inside])
        for end, first, step in ((node < 0, 0, 1), (node >= nodes, nodes - 1, -1)):
            for share, k in ((3.0, 0), (-3.0, 1), (1.0, 2)):
                rows.append(pixel[end])
                cols.append(np.full(int(end.sum()), first + step * k))
                values.append(share * weight[end])
    return _float32_csr(np.concatenate(rows), np.concatenate(cols), np.concatenate(values), (n, nodes))


def _keys_weights(t: np.ndarray) -> tuple[np.ndarray, ...]:
    """Weights of the nodes ``-1, 0, 1, 2`` around a point ``t`` in [0, 1] past node 0 (Keys'
    cubic convolution, a = -1/2: interpolating, exact for quadratics)."""
    return (((-0.5 * t + 1.0) * t - 0.5) * t, (1.5 * t - 2.5) * t * t + 1.0,
            ((-1.5 * t + 2.0) * t + 0.5) * t, (0.5 * t - 0.5) * t * t)


def _objects(score: np.ndarray, threshold: float, area_px: tuple[float, float]) -> Sections:
    """Centroid, area, moments and polarity of the connected regions where ``score > threshold``
    (bright, polarity +1) and ``score < -threshold`` (dark, -1), labelled into one map."""
    bright, n_bright = ndimage.label(score > threshold)
    dark, n_dark = ndimage.label(score < -threshold)
    n = n_bright + n_dark
    if n == 0:
        return Sections(np.zeros((0, 2)), np.zeros(0), np.zeros((0, 3)), np.zeros(0, dtype=np.int8))
    labels = np.where(dark > 0, dark + n_bright, bright)
    flat = labels.ravel()
    count = np.bincount(flat, minlength=n + 1)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    keep = (count >= area_px[0]) & (count <= area_px[1])
    keep[border] = False
    keep[0] = False
    # moments of the candidates' pixels only (the background network, most of the slice, is not one)
    pixel = np.flatnonzero(keep[flat])
    owner = flat[pixel]
    # soft membership: 1 inside, a ramp over the edge (sub-pixel outline, interior noise ignored)
    w = np.clip(np.abs(score.ravel()[pixel]).astype(np.float64) - threshold, 0.0, 1.0)
    yy, xx = np.divmod(pixel, labels.shape[1])
    wy, wx = w * yy, w * xx
    sums = [np.bincount(owner, weights=v, minlength=n + 1) for v in (w, wy, wx, wy * yy, wx * xx, wy * xx)]
    sw = np.maximum(sums[0], 1e-12)
    cy, cx = sums[1] / sw, sums[2] / sw
    moments = np.stack([sums[3] / sw - cy**2, sums[4] / sw - cx**2, sums[5] / sw - cy * cx], axis=1)
    det = np.maximum(moments[:, 0] * moments[:, 1] - moments[:, 2] ** 2, 0.0)
    keep &= count >= COMPACT * 4 * np.pi * np.sqrt(det)
    # a ring (the halo around another object) or a crescent does not hold its own centroid
    iy = np.clip(np.rint(cy).astype(int), 0, labels.shape[0] - 1)
    ix = np.clip(np.rint(cx).astype(int), 0, labels.shape[1] - 1)
    keep &= labels[iy, ix] == np.arange(n + 1)
    polarity = np.where(np.arange(n + 1) > n_bright, -1, 1).astype(np.int8)
    return Sections(np.stack([cy, cx], axis=1)[keep], count[keep].astype(float), moments[keep], polarity[keep])


def link_tracks(sections: list[Sections | None], shifts: np.ndarray) -> list[Track]:
    """Follow each object from slice to slice (one-to-one, nearest in position and area).

    Parameters
    ----------
    sections : list of Sections or None
        Per slice (None: blank slice, breaks every track).
    shifts : ndarray, shape (Z, 2)
        The consensus' drift table: ``position + shifts[z]`` is the registered position.

    Returns
    -------
    list of Track
        Tracks of at least ``MIN_TRACK`` slices, split where the area jumps by more than
        ``AREA_STEP``.
    """
    open_tracks: dict[int, list[tuple[int, int]]] = {}  # index in slice z -> [(z, index), ...]
    done: list[list[tuple[int, int]]] = []
    for z in range(len(sections) - 1):
        a, b = sections[z], sections[z + 1]
        following: dict[int, list[tuple[int, int]]] = {}
        if a is not None and b is not None and len(a) and len(b):
            for i, j in _match(a, b, shifts[z], shifts[z + 1]):
                chain = open_tracks.pop(i, [(z, i)])
                chain.append((z + 1, j))
                following[j] = chain
        done.extend(open_tracks.values())
        open_tracks = following
    done.extend(open_tracks.values())
    return [t for chain in done if len(chain) >= MIN_TRACK for t in _build(chain, sections, shifts)]


def _match(a: Sections, b: Sections, sa: np.ndarray, sb: np.ndarray) -> list[tuple[int, int]]:
    """Mutually best pairs of sections of two neighbour slices."""
    pa, pb = a.centroid + sa, b.centroid + sb
    reach = SEARCH_SHARE * 2.0 * np.sqrt(np.maximum(_major(a.moments), 1.0))
    tree = cKDTree(pb)
    pairs: list[tuple[float, int, int]] = []
    for i, near in enumerate(tree.query_ball_point(pa, reach)):
        for j in near:
            ratio = b.area[j] / a.area[i]
            if b.polarity[j] != a.polarity[i] or not 1.0 / AREA_STEP <= ratio <= AREA_STEP:
                continue
            cost = float(np.sum((pb[j] - pa[i]) ** 2)) / reach[i] ** 2 + math.log(ratio) ** 2 / math.log(AREA_STEP) ** 2
            pairs.append((cost, i, j))
    pairs.sort()
    used_a, used_b, out = set(), set(), []
    for _, i, j in pairs:
        if i not in used_a and j not in used_b:
            used_a.add(i)
            used_b.add(j)
            out.append((i, j))
    return out


def _major(moments: np.ndarray) -> np.ndarray:
    """Larger eigenvalue of each ``(yy, xx, xy)`` moment triple."""
    mean = 0.5 * (moments[:, 0] + moments[:, 1])
    half = np.hypot(0.5 * (moments[:, 0] - moments[:, 1]), moments[:, 2])
    return mean + half


def _build(chain: list[tuple[int, int]], sections: list[Sections | None], shifts: np.ndarray) -> list[Track]:
    z = np.array([c[0] for c in chain])
    pos = np.array([sections[zz].centroid[i] + shifts[zz] for zz, i in chain])
    area = np.array([sections[zz].area[i] for zz, i in chain])
    mom = np.array([sections[zz].moments[i] for zz, i in chain])
    return [Track(z, pos, area, mom)]


def _fit_lines(tracks: list[Track]) -> np.ndarray:
    """Straight-line velocity ``(vy, vx)`` in px per slice of each track (least squares)."""
    out = np.zeros((len(tracks), 2))
    for j, t in enumerate(tracks):
        dz = t.z - t.z.mean()
        out[j] = (dz @ (t.position - t.position.mean(axis=0))) / float(dz @ dz)
    return out


def _rod_geometry(moments: np.ndarray, velocity: np.ndarray, aspect: float) -> tuple[np.ndarray, ...]:
    """Per track, in physical px (rows scaled by ``aspect``): major-axis unit vector, axis ratio
    ``a / b``, speed, and the sine of the angle between velocity and major axis."""
    yy, xx, xy = moments[:, 0] * aspect**2, moments[:, 1], moments[:, 2] * aspect
    mean, half = 0.5 * (yy + xx), np.hypot(0.5 * (yy - xx), xy)
    ratio = np.sqrt((mean + half) / np.maximum(mean - half, 1e-9))
    angle = 0.5 * np.arctan2(2 * xy, yy - xx)  # major axis angle from the y axis
    major = np.stack([np.cos(angle), np.sin(angle)], axis=1)
    v = velocity * np.array([aspect, 1.0])
    speed = np.hypot(v[:, 0], v[:, 1])
    sine = np.abs(major[:, 0] * v[:, 1] - major[:, 1] * v[:, 0]) / np.maximum(speed, 1e-9)
    return major, ratio, speed, sine


def rod_normals(tracks: list[Track]) -> tuple[list[np.ndarray | None], dict]:
    """Across-axis normals (image px) of the tracks that move like one straight rod, else None.

    A rod of radius ``r`` tilted ``theta`` from the slice normal has an elliptical section with
    ``a / b = 1 / cos(theta)`` that moves ``kappa tan(theta) = kappa sqrt((a/b)^2 - 1)`` px per
    slice along its major axis (``kappa`` = slice thickness over pixel size), in physical space.
    The pixel aspect (rows may be foreshortened) and ``kappa`` are calibrated on the data: the
    aspect that best aligns velocities with major axes, the median ``kappa``. Sections that
    change area, are round, move off their axis or at another speed (two rods fused, a blob)
    are not rods. Calibration and counts are returned.
    """
    prism = np.array([t.prism_axis() is not None for t in tracks], dtype=bool)
    if prism.sum() < 3:
        return [None] * len(tracks), {"rods": 0}
    moments = np.array([np.median(t.moments, axis=0) for t in tracks])
    velocity = _fit_lines(tracks)
    scores = [float(np.median(_rod_geometry(moments[prism], velocity[prism], a)[3])) for a in ASPECTS]
    aspect = float(ASPECTS[int(np.argmin(scores))])
    major, ratio, speed, sine = _rod_geometry(moments, velocity, aspect)
    kappa_j = speed / np.sqrt(np.maximum(ratio**2 - 1.0, 1e-9))
    kappa = float(np.median(kappa_j[prism]))
    rod = prism & (sine < MISMATCH) & (np.abs(kappa_j / kappa - 1.0) < KAPPA_TOL)
    normals: list[np.ndarray | None] = []
    for j in range(len(tracks)):
        if not rod[j]:
            normals.append(None)
            continue
        nrm = np.array([-major[j, 1] * aspect, major[j, 0]])  # across the axis, per image px
        normals.append(nrm / np.hypot(*nrm))
    return normals, {"rods": int(rod.sum()), "prisms": int(prism.sum()), "aspect": aspect, "kappa": kappa}


def solve_correction(
    tracks: list[Track],
    n: int,
    *,
    step_sigma: float,
    point_sigma: float = 0.15,
    across_sigma: float = 0.03,
    iterations: int = 100,
    components: bool = True,
    tolerance: float = TOLERANCE,
) -> tuple[np.ndarray, dict]:
    """The consensus' drift error ``D(z)`` from straight-line object motion.

    Unknowns: ``D(z)`` (both axes) and per track an offset and a velocity. Rows (groups):

    0. every tracked centroid across its rod's axis, ``u_j . (q_j + v_j (z - z_j) + D(z)) = u_j .
       p_j(z)`` (``u_j`` the rod's across-axis normal), sigma ``point_sigma``;
    1. the same along the axis (a section's ends, where neighbours touch, move its centroid
       along the axis about twice as much as across it);
    2. per rod ``u_j . v_j = 0`` (sigma ``across_sigma`` px per slice plus ``ANGLE_SIGMA``
       times its speed);
    3. per step ``D(z + 1) - D(z) = 0`` (sigma ``step_sigma``: the consensus' own step error);
    4. the y and x rows of tracks without an axis (sigma ``point_sigma``), apart from the along
       rows, whose estimate they would mix.

    With ``components`` the sigma of each group is re-estimated from the data (variance
    components: the group's weighted residual sum of squares over its redundancy, the rows
    minus their leverages, :func:`_components`), so the consensus and the objects are weighed
    by the uncertainty they show on this stack; the given sigmas start the iteration. Each
    update is damped (the geometric mean of the old sigma and the estimate) and floored at
    ``FLOOR_SHARE`` of the start (see there: a group whose estimate collapses would turn its
    rows into hard constraints); the iteration stops when no sigma changes by more than
    ``tolerance`` (relative), at most ``iterations`` updates. Cauchy re-weighting per track
    (how straight it moves) and per across row, at twice their robust scales. ``D`` is
    returned with zero mean.

    Returns
    -------
    correction : ndarray, shape (n, 2)
        ``D``: subtract it from the consensus' shifts.
    info : dict
        Numbers of tracks and rods used, calibration, robust scales, the group sigmas, the
        updates made and whether they converged.
    """
    if not tracks:
        return np.zeros((n, 2)), {"tracks": 0, "rods": 0}
    normals, calibration = rod_normals(tracks)
    rods = [i for i, nrm in enumerate(normals) if nrm is not None]
    matrix, b, point_track, group = _rows(tracks, normals, n)
    n_points = point_track.size
    # a fast rod's across velocity carries its axis' angle error times its speed
    speed = np.hypot(*_fit_lines([tracks[j] for j in rods]).T) if rods else np.zeros(0)
    shape = np.r_[np.ones(n_points), np.hypot(across_sigma, ANGLE_SIGMA * speed), np.ones(2 * (n - 1))]
    group = np.r_[group, np.full(len(rods), 2), np.full(2 * (n - 1), 3)]
    matrix = sp.vstack([matrix, _step_rows(n, matrix.shape[1])]).tocsr()
    b = np.r_[b, np.zeros(2 * (n - 1))]
    gauge = _gauge(n, matrix.shape[1])
    # group 2 is a factor on ``shape``; group 4, tracks without an axis, starts as a centroid
    start = np.array([point_sigma, point_sigma, 1.0, step_sigma, point_sigma])
    sigmas = start.copy()
    robust = np.ones(matrix.shape[0])
    scales = (1.0, 1.0)
    updates, converged = 0, False
    for _ in range(iterations + 1):
        sigma = shape * sigmas[group]
        normal = (matrix.T @ sp.diags(robust / sigma**2) @ matrix + gauge).tocsc()
        factor = spla.splu(normal)
        x = factor.solve(matrix.T @ (robust * b / sigma**2))
        raw = matrix @ x - b
        if components and not converged and updates < iterations:
            leverage = _leverage(matrix, normal, 2 * n) * robust / sigma**2
            estimate = _components(raw, robust / sigma**2, leverage, group, sigmas)
            updated = np.maximum(np.sqrt(sigmas * estimate), FLOOR_SHARE * start)
            converged = float(np.max(np.abs(updated / sigmas - 1.0))) < tolerance
            sigmas, updates = updated, updates + 1
        res = raw / (shape * sigmas[group])
        # per track: the RMS of its points' normalised residuals; per rod row: its own
        track_rms = np.sqrt(np.bincount(point_track, weights=res[:n_points] ** 2, minlength=len(tracks))
                            / np.maximum(np.bincount(point_track, minlength=len(tracks)), 1))
        across = np.abs(res[n_points : n_points + len(rods)])
        scales = (max(1.4826 * float(np.median(track_rms)), 1e-6),
                  max(1.4826 * float(np.median(across)), 1e-6) if across.size else 1.0)
        robust[:n_points] = _cauchy(track_rms[point_track], scales[0])
        robust[n_points : n_points + len(rods)] = _cauchy(across, scales[1])
        if converged:
            break
    correction = np.stack([x[:n], x[n : 2 * n]], axis=1)
    correction -= correction.mean(axis=0)
    return correction, {**calibration, "tracks": len(tracks), "points": n_points // 2,
                        "point_scale": scales[0] * float(sigmas[0]),
                        "across_scale": scales[1] * across_sigma * float(sigmas[2]),
                        "sigma_across_px": float(sigmas[0]), "sigma_along_px": float(sigmas[1]),
                        "sigma_free_px": float(sigmas[4]), "across_factor": float(sigmas[2]),
                        "sigma_step_px": float(sigmas[3]), "updates": updates, "converged": bool(converged)}


def _cauchy(normalised: np.ndarray, scale: float) -> np.ndarray:
    return 1.0 / (1.0 + (normalised / (2.0 * scale)) ** 2)


def _components(residual: np.ndarray, weight: np.ndarray, leverage: np.ndarray, group: np.ndarray,
                sigmas: np.ndarray) -> np.ndarray:
    """Each group's sigma from its residuals: ``sigma_g^2 sum_g(weight r^2) / redundancy_g``.

    ``weight``: the rows' current weights (robust / sigma^2, sigma = the row's fixed shape times
    its group's sigma); ``leverage``: each row's share of the fit (``w_i a_i N^-1 a_i^T``), so a
    group's redundancy is its rows minus their leverages. A group without redundancy keeps its
    sigma.
    """
    out = sigmas.copy()
    for g in range(len(sigmas)):
        sel = group == g
        redundancy = float(np.sum(1.0 - leverage[sel]))
        if redundancy > 1.0:
            out[g] = sigmas[g] * math.sqrt(float(np.sum(weight[sel] * residual[sel] ** 2)) / redundancy)
    return out


def _leverage(matrix: sp.csr_matrix, normal: sp.csc_matrix, n_drift: int) -> np.ndarray:
    """``a_i N^-1 a_i^T`` of every row ``a_i`` (times its weight: the row's share of the fit).

    ``N`` is ``[[A, B], [B^T, C]]``: ``A`` the drift's ``n_drift`` unknowns, ``C`` block-diagonal
    (each track's four unknowns meet only the drift). With ``S = A - B C^-1 B^T`` and a row split
    into its drift and track parts, ``a N^-1 a^T = a_t C^-1 a_t^T + g S^-1 g^T``, ``g = a_d - a_t
    C^-1 B^T``: one dense inverse of the drift's size and 4 x 4 blocks, whatever the tracks.
    """
    tail = normal[n_drift:, n_drift:]
    c_inv = _block_inverse(tail.tocoo(), 4)
    b = normal[:n_drift, n_drift:].tocsr()
    schur_inv = np.linalg.inv(normal[:n_drift, :n_drift].toarray() - (b @ c_inv @ b.T).toarray())
    m_t = matrix[:, n_drift:].tocsr()
    g = (matrix[:, :n_drift] - m_t @ (c_inv @ b.T)).tocsr()
    out = np.asarray(m_t.multiply(m_t @ c_inv).sum(axis=1)).ravel()
    for start in range(0, g.shape[0], ROW_CHUNK):
        part = g[start : start + ROW_CHUNK]
        out[start : start + ROW_CHUNK] += np.asarray(part.multiply(part @ schur_inv).sum(axis=1)).ravel()
    return out


def _block_inverse(blocks: sp.coo_matrix, size: int) -> sp.csr_matrix:
    """Inverse of a block-diagonal sparse matrix of ``size`` x ``size`` blocks."""
    count = blocks.shape[0] // size
    dense = np.zeros((count, size, size))
    np.add.at(dense, (blocks.row // size, blocks.row % size, blocks.col % size), blocks.data)
    inverse = np.linalg.inv(dense)
    block, i, j = np.indices((count, size, size)).reshape(3, -1)
    return sp.csr_matrix((inverse.ravel(), (block * size + i, block * size + j)), shape=blocks.shape)


def _rows(
    tracks: list[Track], normals: list[np.ndarray | None], n: int
) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray, np.ndarray]:
    """Design matrix and right-hand side: per track its point rows (across then along its rod's
    axis; y then x when it has none), then one across-velocity row per rod; the track of each
    point row and the group of each point row (0 across, 1 along, 4 y and x without an axis).
    Unknowns: ``D_y``, ``D_x`` (``n`` each), then per track ``(qy, qx, vy, vx)``."""
    rows, cols, vals, rhs, owner, group = [], [], [], [], [], []
    r = 0
    for j, (t, nrm) in enumerate(zip(tracks, normals)):
        dz = t.z - t.z.mean()
        base, m = 2 * n + 4 * j, t.z.size
        frame = [(0, np.asarray(nrm, float)), (1, np.array([-nrm[1], nrm[0]]))] if nrm is not None else \
            [(4, np.array([1.0, 0.0])), (4, np.array([0.0, 1.0]))]
        for g, e in frame:
            idx = np.arange(r, r + m)
            for axis in (0, 1):
                rows += [idx, idx, idx]
                cols += [axis * n + t.z, np.full(m, base + axis), np.full(m, base + 2 + axis)]
                vals += [np.full(m, e[axis]), np.full(m, e[axis]), e[axis] * dz]
            rhs.append(t.position @ e)
            owner.append(np.full(m, j))
            group.append(np.full(m, g))
            r += m
    for j, nrm in enumerate(normals):
        if nrm is not None:
            rows.append(np.array([r, r]))
            cols.append(np.array([2 * n + 4 * j + 2, 2 * n + 4 * j + 3]))
            vals.append(np.asarray(nrm, dtype=float))
            rhs.append(np.zeros(1))
            r += 1
    shape = (r, 2 * n + 4 * len(tracks))
    matrix = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=shape)
    return matrix, np.concatenate(rhs), np.concatenate(owner), np.concatenate(group)


def _step_rows(n: int, n_unknown: int) -> sp.csr_matrix:
    """The consensus' steps as observations: ``D(z + 1) - D(z) = 0`` for ``D_y`` then ``D_x``."""
    diff = sp.diags([-np.ones(n - 1), np.ones(n - 1)], [0, 1], shape=(n - 1, n))
    zero = sp.csr_matrix((n - 1, n))
    rest = sp.csr_matrix((n - 1, n_unknown - 2 * n))
    return sp.bmat([[diff, zero, rest], [zero, diff, rest]]).tocsr()


def _gauge(n: int, n_unknown: int) -> sp.csr_matrix:
    """Normal-matrix terms holding ``D_y(0)`` and ``D_x(0)`` at 0, plus a tiny ridge.

    The rows fix ``D`` only up to a constant (the tracks' offsets take it up); one sparse term
    per axis, not the dense ``(sum D)^2`` block, whose n x n entries would grow with the stack;
    :func:`solve_correction` removes the mean afterwards.
    """
    hold = sp.csr_matrix(([1.0, 1.0], ([0, n], [0, n])), shape=(n_unknown, n_unknown))
    return hold + sp.identity(n_unknown, format="csr") * 1e-9


def refine_shifts(shifts: np.ndarray, sections: list[Sections | None], *,
                  step_sigma: float | None = None) -> tuple[np.ndarray, dict]:
    """The consensus' drift table corrected by the straight-line motion of tracked objects.

    Parameters
    ----------
    shifts : ndarray, shape (Z, 2)
        The consensus' drift table (``scipy.ndimage.shift`` sense).
    sections : list of Sections or None
        :func:`find_sections` of each slice's structure region (None: blank slice).
    step_sigma : float, optional
        Sigma (px) of one step of the consensus' error, where the estimate of it from the data
        (:func:`solve_correction`'s variance components) starts. Default: the finite-sample
        mean motion the consensus follows, the spread of the tracked objects' velocities (per
        axis) over the square root of the sections per slice.

    Returns
    -------
    shifts : ndarray, shape (Z, 2)
        Refined table; the input unchanged (``info["ran"]`` False, ``info["reason"]`` why) with
        fewer than ``MIN_RODS`` rods tracked over ``MIN_TRACK`` slices or more.
    info : dict
        ``ran``, ``reason`` (None when it ran), tracks, rods and the calibration used (JSON-safe).
    """
    shifts = np.asarray(shifts, dtype=float)
    tracks = [t for t in link_tracks(sections, shifts) if t.prism_axis() is not None]
    # only what moves like one straight rod: a blob may keep its area for a few slices while
    # its centre wanders (binder, voids), which the straight-line rows would take for drift
    tracks = [t for t, nrm in zip(tracks, rod_normals(tracks)[0]) if nrm is not None]
    if len(tracks) < MIN_RODS:
        reason = f"{len(tracks)} rod(s) tracked over {MIN_TRACK}+ slices, fewer than {MIN_RODS}: the consensus stands"
        return shifts.copy(), {"ran": False, "reason": reason, "rods": len(tracks)}
    if step_sigma is None:
        per_slice = np.mean([len(s) for s in sections if s is not None])
        step_sigma = float(np.mean(np.std(_fit_lines(tracks), axis=0))) / math.sqrt(max(per_slice, 1.0))
    elif not step_sigma > 0:
        raise ParameterError(f"step_sigma={step_sigma!r}: give a positive sigma (px) or None to estimate it")
    # a spread of exactly 0 (identical rod velocities: noise-free input) would weigh the steps infinitely
    step_sigma = step_sigma or 1.0
    correction, info = solve_correction(tracks, len(sections), step_sigma=step_sigma)
    info["step_sigma"] = step_sigma
    info = {"ran": True, "reason": None, **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in info.items()}}
    info["correction_rms_px"] = round(float(np.sqrt(np.mean(np.sum(correction**2, axis=1)))), 4)
    return shifts - correction, info
