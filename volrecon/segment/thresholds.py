"""Grey-value thresholds: multi-Otsu or user thresholds, and hysteresis."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
from scipy import ndimage as ndi

from volrecon.errors import InputError, ParameterError


def sample_values(image: Any, *, max_values: int = 4_000_000, seed: int = 0,
                  read: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """A random sample of grey values (whole slices read for dask input).

    ``read(zs)``, when given, returns the slices ``zs`` of ``image`` (e.g. computed for those
    slices alone, where the slices of a lazy chain cost the chunks they lie in).
    """
    n = int(np.prod(image.shape))
    nz = int(image.shape[0])
    if n > max_values:
        k = max(1, min(nz, max_values // max(1, n // nz)))
        zs = np.unique(np.linspace(0, nz - 1, k).round().astype(int))
    else:
        zs = np.arange(nz)
    if read is not None:
        vals = np.asarray(read(zs), dtype=np.float64).ravel()
    elif hasattr(image, "chunks"):
        # one chunk along z at a time: a lazy chain (a smoothing with overlap) evaluated for all the
        # sampled slices at once holds every chunk it touches until the sample is assembled
        bounds = np.cumsum(image.chunks[0])
        groups = np.split(zs, np.searchsorted(zs, bounds[:-1]))
        vals = np.concatenate([np.asarray(image[g].compute(), dtype=np.float64).ravel() for g in groups if g.size])
    else:
        vals = np.asarray(image[zs] if n > max_values else image, dtype=np.float64).ravel()
    vals = vals[np.isfinite(vals)]
    if vals.size > max_values:
        vals = np.random.default_rng(seed).choice(vals, max_values, replace=False)
    return vals


def multi_otsu_thresholds(image: Any, classes: int, *, mask: np.ndarray | None = None, bins: int = 256,
                          read: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """Thresholds that split the grey values into ``classes`` classes (multi-Otsu).

    Parameters
    ----------
    image : ndarray or dask array
        The volume (a sample of it is used).
    classes : int
        Number of classes (2–6).
    mask : ndarray of bool, optional
        Only these voxels (same shape as a numpy ``image``).
    bins : int
        Histogram bins.
    read : callable, optional
        How the sampled slices are read (:func:`sample_values`).

    Raises
    ------
    ParameterError
        ``classes`` out of range.
    InputError
        The image has fewer distinct grey values than classes.
    """
    if not 2 <= int(classes) <= 6:
        raise ParameterError(f"classes={classes}: multi-Otsu takes 2 to 6 classes; give user thresholds for more")
    vals = np.asarray(image)[mask] if mask is not None else sample_values(image, read=read)
    if np.unique(vals[: 1_000_000]).size < classes:
        raise InputError(f"the image has fewer than {classes} distinct grey values; it is empty or saturated")
    return multi_otsu(vals, int(classes), bins=bins)


def multi_otsu(values: np.ndarray, classes: int, *, bins: int = 256) -> np.ndarray:
    """Multi-Otsu thresholds of ``values`` (the thresholds of
    :func:`skimage.filters.threshold_multiotsu`, found by dynamic programming).

    Otsu's criterion, the sum over the classes of ``S_k**2 / P_k`` (``P_k`` the class's share of
    the histogram, ``S_k`` its first moment), adds up over contiguous classes, so the best cuts of
    the bins from ``i`` on into ``c`` classes follow from those into ``c - 1`` classes: a table of
    ``classes * bins**2`` sums instead of scikit-image's search over every combination of
    thresholds (``bins**(classes - 1)``; seconds for 5 classes of 256 bins).  Ties go to the
    lowest thresholds and the sums are in float64 (scikit-image: float32), so the thresholds
    differ from scikit-image's where two cuts score within float32 rounding of each other (often
    on large samples of many grey levels; the cut taken here scores higher) and on exact ties
    that put the first cut in an empty first bin (scikit-image never cuts there); the labels
    they give differ by a few voxels in ten thousand at most.

    Parameters
    ----------
    values : ndarray
        Grey values (any shape).
    classes : int
        Number of classes (at least 2).
    bins : int
        Histogram bins (of a float input; an integer input spanning at most ``bins`` values is
        binned per value, as :func:`skimage.exposure.histogram` does, a wider one is taken as
        float: the tables grow with the square of the bins).

    Returns
    -------
    ndarray (classes - 1,) float64
        Increasing thresholds (bin centres).

    Raises
    ------
    ValueError
        Fewer occupied bins than classes.
    """
    from skimage.exposure import histogram

    vals = np.asarray(values).reshape(-1)
    if vals.dtype.kind in "ui" and vals.size and int(vals.max()) - int(vals.min()) >= bins:
        vals = vals.astype(np.float64)
    hist, centres = histogram(vals, bins, source_range="image", normalize=True)
    prob = hist.astype(np.float32).astype(np.float64)
    occupied = np.flatnonzero(prob)
    if occupied.size < classes:
        raise ValueError(f"only {occupied.size} occupied histogram bins: cannot cut {classes} classes")
    if occupied.size == classes:
        return np.asarray(centres[occupied[:-1]], dtype=np.float64)
    return np.asarray(centres[_otsu_cuts(prob, classes)], dtype=np.float64)


def _otsu_cuts(prob: np.ndarray, classes: int) -> np.ndarray:
    """Indices of the last bin of every class but the last, maximising Otsu's criterion."""
    n = prob.size
    w = np.concatenate([[0.0], np.cumsum(prob)])
    # scikit-image's first moment starts at prob[0] (bin 0 weighted 1, not 0); kept for equal cuts
    m = np.concatenate([[0.0], prob[0] + np.cumsum(np.arange(n) * prob)])
    # score[i, e]: class of the bins i..e
    dw = w[None, 1:] - w[:n, None]
    dm = m[None, 1:] - m[:n, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        score = np.where(dw > 0, dm * dm / np.where(dw > 0, dw, 1.0), 0.0)
    start, end = np.arange(n)[:, None], np.arange(n)[None, :]
    # best[c][i]: the bins i..n-1 cut into c + 1 classes; pick[c][i]: the end of the first of them
    best = score[:, n - 1].copy()
    picks = []
    for c in range(1, classes):
        # the first class ends at e, leaving at least one bin to each of the other c classes
        total = np.where((end >= start) & (end <= n - 1 - c), score + np.append(best, -np.inf)[None, 1:], -np.inf)
        pick = np.argmax(total, axis=1)  # first maximum: the lowest cut on a tie
        best = np.take_along_axis(total, pick[:, None], axis=1)[:, 0]
        picks.append(pick)
    cuts, i = [], 0
    for pick in reversed(picks):
        e = int(pick[i])
        cuts.append(e)
        i = e + 1
    return np.asarray(cuts, dtype=np.intp)


def apply_thresholds(block: np.ndarray, thresholds: Sequence[float], values: Sequence[int]) -> np.ndarray:
    """Class value of each voxel: ``values[i]`` for grey values between thresholds ``i-1`` and ``i``."""
    t = np.asarray(thresholds, dtype=np.float64)
    if len(values) != t.size + 1:
        raise ParameterError(f"{t.size} thresholds make {t.size + 1} classes but {len(values)} phase names were given")
    if t.size and np.any(np.diff(t) <= 0):
        raise ParameterError(f"thresholds {t.tolist()} must increase")
    lut = np.asarray(values, dtype=np.uint16 if max(values) > 255 else np.uint8)
    return lut[class_index(np.asarray(block), t)]


def class_index(block: np.ndarray, thresholds: Sequence[float] | np.ndarray) -> np.ndarray:
    """``np.digitize(block, thresholds)`` for non-decreasing thresholds, by one comparison per threshold.

    How many thresholds lie at or below each value (NaN above them all), without digitize's binary
    search per voxel.  The comparisons are in float64, as digitize makes them for float64 thresholds
    (float32 thresholds widen exactly, so they compare alike).

    Parameters
    ----------
    block : ndarray
        Values of any shape.
    thresholds : sequence of float
        The cuts; decreasing ones (or more than 255, or a non-numeric ``block``) go to digitize.

    Returns
    -------
    ndarray
        ``block``'s shape, uint8 (intp from digitize): digitize's index, value for value.
    """
    t = np.asarray(thresholds, dtype=np.float64)
    if t.size > np.iinfo(np.uint8).max or block.dtype.kind not in "fiub" or np.any(np.diff(t) < 0):
        return np.digitize(block, t)
    idx = np.zeros(block.shape, np.uint8)
    for v in t:
        idx += block >= v
    if block.dtype.kind == "f":
        idx[np.isnan(block)] = t.size
    return idx


def hysteresis(block: np.ndarray, low: float, high: float, *, structure: np.ndarray | None = None) -> np.ndarray:
    """Voxels above ``low`` that are connected to a voxel above ``high`` (3D, face-connected).

    Useful for a phase whose grey values overlap its neighbours' at its rim: seeds are the
    confident voxels, the rim is grown from them.
    """
    if not low <= high:
        raise ParameterError(f"hysteresis low={low} must not exceed high={high}")
    weak = block > low
    strong = block > high
    lab, n = ndi.label(weak, structure=structure if structure is not None else ndi.generate_binary_structure(3, 1))
    if n == 0:
        return np.zeros(block.shape, dtype=bool)
    keep = np.zeros(n + 1, dtype=bool)
    keep[np.unique(lab[strong])] = True
    keep[0] = False
    return keep[lab]
