"""3D morphological cleanup of label images, with the physical voxel size respected.

Small connected pieces of any phase (specks, and holes inside another phase, which are small
pieces of the enclosing phase's neighbour) are reassigned to the nearest remaining phase.  The
operation is *local*: only pieces that fit within ``reach`` voxels are touched, so a block padded
by ``reach`` cleans exactly like the whole volume (see :func:`cleanup_reach`).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def cleanup_reach(min_size_nm: float, voxel_size_nm: Sequence[float]) -> tuple[int, int, int]:
    """Largest extent (voxels per axis) a removable piece may have: the size limit plus one."""
    return tuple(int(math.ceil(min_size_nm / float(v))) + 1 for v in voxel_size_nm)  # type: ignore[return-value]


def remove_small_pieces(
    labels: np.ndarray,
    *,
    min_size_nm: float,
    voxel_size_nm: Sequence[float],
    internal_faces: Sequence[tuple[bool, bool]] = ((False, False),) * 3,
    keep: Sequence[int] = (0,),
) -> np.ndarray:
    """Reassign small connected pieces of every phase to the nearest other phase.

    A piece (face-connected component of one label value) is removed when its volume is below
    that of a ball of diameter ``min_size_nm`` and it fits in a box of ``min_size_nm`` along every
    axis (both in nm, so thick slices are accounted for).  Removed voxels take the label of the
    nearest kept voxel, found by growing the kept labels into the piece face neighbour by face
    neighbour (the physically closest neighbour first).

    Parameters
    ----------
    labels : ndarray (z, y, x) integer
        Phase labels.
    min_size_nm : float
        Diameter of the smallest piece kept (nm); 0 disables.
    voxel_size_nm : 3 floats
        ``(z, y, x)`` voxel size.
    internal_faces : 3 pairs of bool
        For a block of a larger volume: which block faces (low, high) per axis are internal
        cuts (pieces touching those are never removed: they may continue outside).
    keep : sequence of int
        Label values never removed (default 0, unassigned).

    Returns
    -------
    ndarray
        Cleaned labels (a new array).
    """
    out = np.array(labels, copy=True)
    if min_size_nm <= 0 or out.size == 0:
        return out
    from skimage.measure import label

    vox = [float(v) for v in voxel_size_nm]
    max_vox = (math.pi / 6) * min_size_nm**3 / (vox[0] * vox[1] * vox[2])
    extent = [min_size_nm / v for v in vox]
    # one labelling of every phase at once (face-connected runs of one value), not one per phase
    skip = [int(v) for v in keep]
    comp = label(out, background=skip[0] if skip else -1, connectivity=1)
    sizes = np.bincount(comp.ravel())
    small = sizes < max_vox
    small[0] = False
    if not small.any():
        return out
    # bounding boxes of the small pieces only, from their (few) voxel coordinates
    where = np.nonzero(small[comp])
    ids = comp[where]
    order = np.argsort(ids, kind="stable")
    ids = ids[order]
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    ok = ~np.isin(out[tuple(w[order[starts]] for w in where)], skip)
    for ax in range(3):
        c = where[ax][order]
        lo = np.minimum.reduceat(c, starts)
        hi = np.maximum.reduceat(c, starts) + 1
        ok &= (hi - lo) <= extent[ax]
        lo_cut, hi_cut = internal_faces[ax]
        if lo_cut:
            ok &= lo > 0
        if hi_cut:
            ok &= hi < out.shape[ax]
    drop = np.zeros(sizes.size, bool)
    drop[ids[starts[ok]]] = True
    removed = drop[comp]
    if removed.any() and not removed.all():
        _fill_from_neighbours(out, removed, vox)
    return out


def _fill_from_neighbours(labels: np.ndarray, removed: np.ndarray, voxel_size_nm: Sequence[float]) -> None:
    """Give each ``removed`` voxel the label of its nearest kept face neighbour, in place.

    Removed pieces are a few voxels across, so a front that advances one voxel per round from
    the kept voxels fills them in a few rounds; within a round the physically closest neighbour
    (smallest voxel size along its axis) wins.  Only the coordinates of removed voxels are
    touched, so the cost is independent of the block size.
    """
    todo = np.array(np.nonzero(removed))
    shape = np.array(labels.shape)[:, None]
    axes = np.argsort(np.asarray(voxel_size_nm, dtype=float), kind="stable")
    while todo.shape[1]:
        got = np.zeros(todo.shape[1], bool)
        value = np.zeros(todo.shape[1], labels.dtype)
        for ax in axes:
            for step in (-1, 1):
                nb = todo.copy()
                nb[ax] += step
                inside = (nb[ax] >= 0) & (nb[ax] < shape[ax, 0])
                cand = inside & ~got
                idx = tuple(nb[:, cand])
                usable = ~removed[idx]
                sel = np.flatnonzero(cand)[usable]
                value[sel] = labels[idx][usable]
                got[sel] = True
        if not got.any():
            break
        done = tuple(todo[:, got])
        labels[done] = value[got]
        removed[done] = False
        todo = todo[:, ~got]
