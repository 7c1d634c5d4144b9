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
from scipy import ndimage as ndi

_FACE = ndi.generate_binary_structure(3, 1)


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
    nearest kept voxel (Euclidean distance in nm).

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
    vox = [float(v) for v in voxel_size_nm]
    max_vox = (math.pi / 6) * min_size_nm**3 / (vox[0] * vox[1] * vox[2])
    extent = [min_size_nm / v for v in vox]
    removed = np.zeros(out.shape, dtype=bool)
    for value in np.unique(out):
        if value in keep:
            continue
        comp, n = ndi.label(out == value, structure=_FACE)
        if n == 0:
            continue
        sizes = np.bincount(comp.ravel(), minlength=n + 1)
        for i, sl in enumerate(ndi.find_objects(comp), start=1):
            if sl is None or sizes[i] >= max_vox:
                continue
            ok = True
            for ax, s in enumerate(sl):
                if s.stop - s.start > extent[ax]:
                    ok = False
                    break
                lo_cut, hi_cut = internal_faces[ax]
                if (lo_cut and s.start == 0) or (hi_cut and s.stop == out.shape[ax]):
                    ok = False
                    break
            if ok:
                region = comp[sl] == i
                removed[sl] |= region
    if removed.any() and not removed.all():
        idx = ndi.distance_transform_edt(removed, sampling=vox, return_distances=False, return_indices=True)
        out[removed] = out[tuple(i[removed] for i in idx)]
    return out
