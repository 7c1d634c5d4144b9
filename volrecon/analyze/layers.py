"""Cell-layer geometry from the region image: stacking axis and the box inside a region."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from volrecon.analyze._common import AXIS_NAMES

__all__ = ["through_plane_axis", "inner_box", "porous_extent"]


def through_plane_axis(regions: np.ndarray, region_names: Mapping[str, int]) -> int | None:
    """The stacking axis: the axis along which the layers' centroids are spread the most.

    Returns ``None`` when fewer than two specimen regions are present.
    """
    best, best_spread = None, 0.0
    values = [v for n, v in region_names.items() if n != "frame"]
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        centroids = []
        for v in values:
            prof = (regions == v).sum(axis=other)
            if prof.sum() > 0:
                centroids.append(float((prof * np.arange(prof.size)).sum() / prof.sum()) / prof.size)
        if len(centroids) < 2:
            return None
        spread = float(np.std(centroids))
        if spread > best_spread:
            best, best_spread = axis, spread
    return best


def inner_box(inside: np.ndarray) -> tuple[slice, slice, slice] | None:
    """A large axis-aligned box whose voxels are all ``inside``.

    Starts from the bounding box and repeatedly drops the end plane (of any axis) with the
    largest share of outside voxels, updating the per-plane counts incrementally.
    Returns ``None`` when ``inside`` is empty.
    """
    if not inside.any():
        return None
    lo, hi = [], []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        idx = np.flatnonzero(inside.any(axis=other))
        lo.append(int(idx[0]))
        hi.append(int(idx[-1]) + 1)
    box = inside[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    bad = ~box
    prof = [bad.sum(axis=tuple(a for a in range(3) if a != ax)).astype(np.int64) for ax in range(3)]
    a0 = [0, 0, 0]
    a1 = list(box.shape)
    while True:
        best, best_share = None, 0.0
        for ax in range(3):
            if a1[ax] - a0[ax] <= 1:
                continue
            plane = np.prod([a1[b] - a0[b] for b in range(3) if b != ax])
            for end, idx in ((0, a0[ax]), (1, a1[ax] - 1)):
                share = prof[ax][idx] / plane
                if share > best_share:
                    best, best_share = (ax, end, idx), share
        if best is None:
            break
        ax, end, idx = best
        sl = [slice(a0[b], a1[b]) for b in range(3)]
        sl[ax] = slice(idx, idx + 1)
        plane_bad = bad[tuple(sl)]
        for b in range(3):
            if b == ax:
                continue
            other = tuple(c for c in range(3) if c != b)
            prof[b][a0[b]:a1[b]] -= plane_bad.sum(axis=other)
        if end == 0:
            a0[ax] += 1
        else:
            a1[ax] -= 1
        if all(a1[b] - a0[b] <= 1 for b in range(3)):
            break
    sub = box[a0[0]:a1[0], a0[1]:a1[1], a0[2]:a1[2]]
    if not sub.all():
        return None
    return tuple(slice(lo[b] + a0[b], lo[b] + a1[b]) for b in range(3))  # type: ignore[return-value]


def porous_extent(pore: np.ndarray, axis: int) -> tuple[int, int]:
    """The planes of a layer box along ``axis`` that belong to the porous layer.

    A porous electrode carries pore in every plane parallel to its faces; a run of planes at
    an end of the box holding less than half the box's median plane pore fraction is a dense
    layer against it (a current collector or another layer labelled as this one, or the
    collector side of a rough interface).  Half the bulk value is where the mean interface
    plane of a porous layer against a dense one lies for a rough interface too; the planes
    beyond it carry (almost) no through-plane flux and a face placed among them makes the
    tortuosity of the porous layer infinite.

    Parameters
    ----------
    pore : ndarray of bool
        Pore (conducting phase) mask of the box.
    axis : int
        Stacking axis.

    Returns
    -------
    (int, int)
        First and one-past-last plane index to keep; the whole axis when the median plane
        holds no pore (nothing to compare against).
    """
    other = tuple(a for a in range(pore.ndim) if a != axis)
    frac = pore.mean(axis=other)
    half = 0.5 * float(np.median(frac))
    keep = np.flatnonzero(frac >= half)
    if half <= 0.0 or keep.size == 0:
        return 0, pore.shape[axis]
    return int(keep[0]), int(keep[-1]) + 1


def axis_name(axis: int) -> str:
    return AXIS_NAMES[axis]
