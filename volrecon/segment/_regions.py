"""Compiled kernel of :func:`volrecon.segment.layers.region_block`: region labels from per-column bounds.

A block's region labels are a lookup of how many interfaces each voxel lies past along the
stacking axis.  Counted with whole-block NumPy comparisons (one uint8 pass per interface, then the
lookup and the phases' masks) that is about ten passes over the block; this kernel makes one,
with the same integer logic, so its labels are identical (tests/segment/test_speed_kernels.py).
"""

from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(cache=True, nogil=True)
def _label_columns(bounds: np.ndarray, anode_first: bool, lut: np.ndarray, phases: np.ndarray, has_phases: bool,
                   frame_value: int, frame_region: int, out: np.ndarray) -> None:
    """Fill ``out`` ``(a, m, b)`` (stacking axis in the middle) with ``lut[count]``, ``count`` the
    bounds ``bounds[k, i, l]`` voxel ``j`` lies past (``j >= bound`` anode first, else ``j < bound``);
    where ``has_phases``, voxels whose phase is ``frame_value`` (>= 0) take ``frame_region`` and
    the other unassigned ones (phase 0) take 0.  The bounds are cumulative (a voxel past bound
    ``k`` is past every earlier one), so the count is one more than the last bound passed."""
    na, nm, nb_ = out.shape
    nk = bounds.shape[0]
    first = lut[0]
    fr = np.uint8(frame_region)
    zero = np.uint8(0)
    for i in range(na):
        for j in range(nm):
            o = out[i, j]
            for l in range(nb_):
                o[l] = first
            for k in range(nk):
                row = bounds[k, i]
                v = lut[k + 1]
                if anode_first:
                    for l in range(nb_):
                        o[l] = v if j >= row[l] else o[l]
                else:
                    for l in range(nb_):
                        o[l] = v if j < row[l] else o[l]
            if has_phases:
                p = phases[i, j]
                if frame_value >= 0:
                    for l in range(nb_):
                        o[l] = fr if p[l] == frame_value else (zero if p[l] == 0 else o[l])
                else:
                    for l in range(nb_):
                        o[l] = zero if p[l] == 0 else o[l]


def label_block(bounds: list[np.ndarray], shape: tuple[int, ...], axis: int, anode_first: bool, lut: np.ndarray,
                phases: np.ndarray | None = None, frame_value: int | None = None, frame_region: int = 0) -> np.ndarray:
    """Region labels of a block from the cumulative bounds of its interfaces.

    Parameters
    ----------
    bounds : list of ndarray of int
        Per interface, in order, the index along ``axis`` (block coordinates) of each column's
        bound: arrays over the two lateral axes, in their order.  Anode first they must not
        decrease from one interface to the next, else not increase (cumulative max / min).
    shape : tuple of int
        The block's shape.
    axis : int
        Stacking axis.
    anode_first : bool
        Voxel ``j`` is past a bound ``b`` when ``j >= b`` (True) or ``j < b`` (False).
    lut : ndarray of uint8
        Label per number of bounds passed (``len(bounds) + 1`` entries at least).
    phases : ndarray, optional
        The block's phases: unassigned voxels (0) get 0, ``frame_value`` voxels ``frame_region``.
    frame_value : int, optional
        Phase value of the frame (must be >= 0).
    frame_region : int
        Region label of the frame's voxels.

    Returns
    -------
    ndarray of uint8
        The block's region labels.

    Raises
    ------
    ValueError
        ``shape`` not 3D, ``axis`` outside it, ``phases`` of another shape, a bound map that does
        not broadcast to the lateral shape, ``lut`` shorter than ``len(bounds) + 1`` or
        ``frame_value`` negative (the kernel does not check its bounds).
    """
    shape = tuple(int(n) for n in shape)
    if len(shape) != 3 or axis not in (0, 1, 2):
        raise ValueError(f"label_block: needs a 3D shape and an axis within it, got {shape} and {axis}")
    lat = [a for a in range(3) if a != axis]
    b = np.zeros((len(bounds), shape[lat[0]], shape[lat[1]]), dtype=np.int64)
    for k, v in enumerate(bounds):
        b[k] = v  # NumPy raises for a map that does not broadcast to the lateral shape
    lut8 = np.ascontiguousarray(lut, dtype=np.uint8)
    if lut8.ndim != 1 or lut8.size < len(bounds) + 1:
        raise ValueError(f"label_block: lut needs {len(bounds) + 1} entries, got shape {lut8.shape}")
    if phases is not None and np.shape(phases) != shape:
        raise ValueError(f"label_block: phases has shape {np.shape(phases)}, the block {shape}")
    if frame_value is not None and int(frame_value) < 0:
        raise ValueError(f"label_block: frame_value must be >= 0, got {frame_value}")
    out = np.empty(shape, dtype=np.uint8)
    ph = np.zeros((1, 1, 1), np.uint8) if phases is None else np.moveaxis(np.asarray(phases), axis, 1)
    _label_columns(b, bool(anode_first), lut8, ph, phases is not None,
                   -1 if frame_value is None else int(frame_value), int(frame_region), np.moveaxis(out, axis, 1))
    return out
