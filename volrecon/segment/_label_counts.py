"""Compiled counts of label values along each axis of a block (one pass over the block).

:func:`volrecon.segment.layers.find_stacking_axis` needs, per group of phases, its voxel count in
every slice along z, y and x.  Counted with NumPy, each group is a mask and each mask is summed
three times (a pass over the block per group and axis); here every voxel is read once and counted
in its value's column of three small tables, from which any group's counts are column sums.  The
counts are integers either way: identical results (tests/segment/test_speed_kernels.py).
"""

from __future__ import annotations

from typing import Sequence

import numba as nb
import numpy as np

TABLE_VALUES = 4096
"""Most values :func:`axis_value_counts` sizes its tables for (a block whose largest value is
``TABLE_VALUES`` or more is counted the NumPy way): the tables hold a column per value up to the
largest, so a few large labels (e.g. object ids) would make them larger than the block."""


@nb.njit(cache=True, nogil=True)
def _count(block: np.ndarray, values: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per axis, ``counts[i, v]``: voxels of value ``v`` (< ``values``) in slice ``i`` along that axis."""
    nz, ny, nx = block.shape
    cz = np.zeros((nz, values), np.int64)
    cy = np.zeros((ny, values), np.int64)
    cx = np.zeros((nx, values), np.int64)
    for z in range(nz):
        for y in range(ny):
            row = block[z, y]
            for x in range(nx):
                v = row[x]
                cz[z, v] += 1
                cy[y, v] += 1
                cx[x, v] += 1
    return cz, cy, cx


def axis_value_counts(block: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Per axis of a 3D integer ``block``, the count of each value in each slice along it.

    Parameters
    ----------
    block : ndarray of int (z, y, x)
        Label values.

    Returns
    -------
    (cz, cy, cx) : ndarrays of int64, or None
        ``c[i, v]``: voxels of value ``v`` in slice ``i`` (``v`` up to the block's largest value);
        None when the block is not a non-negative integer array or holds a value of
        :data:`TABLE_VALUES` or more (the caller counts otherwise).
    """
    a = np.asarray(block)
    if a.ndim != 3 or a.dtype.kind not in "ui" or a.size == 0 or a.dtype.itemsize > 4:
        return None
    if a.dtype.kind == "i" and int(a.min()) < 0:
        return None
    top = int(a.max())
    if top >= TABLE_VALUES:
        return None
    return _count(a, top + 1)


def group_counts(counts: np.ndarray, values: Sequence[int]) -> np.ndarray:
    """Counts of the voxels whose value is any of ``values``, per slice (sum of their columns;
    values absent from the table count none).

    Parameters
    ----------
    counts : ndarray of int64 (slices, values)
        One table of :func:`axis_value_counts`.
    values : sequence of int
        The group's values (repeats count once).

    Returns
    -------
    ndarray of int64 (slices,)
        The group's voxels per slice.
    """
    cols = sorted({int(v) for v in values if 0 <= int(v) < counts.shape[1]})
    return counts[:, cols].sum(axis=1) if cols else np.zeros(counts.shape[0], np.int64)
