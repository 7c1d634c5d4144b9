"""Where a curtain starts, at row resolution: the step of a stripe profile placed inside its block.

The destriper (:mod:`volrecon.correct.curtains`) estimates the stripe profile at block rows
(medians of ``block`` rows) and interpolates linearly between block centres.  A curtain,
however, starts abruptly below a feature (and a second curtain in the same column adds a step
of its own), so between the two block centres around a start the linear ramp puts half the
stripe where there is none and misses half of it where it has begun.  :func:`find_onsets`
places such a step at the row where it is: between the two block centres, the residual of the
original slice (its value minus the median of the same across-stripe taps as the block
filter, on the slice less the interpolated stripes, in bins of a few rows) is split into the
part nearer the upper node and the part nearer the lower one by least squares.
:func:`with_stripes` then puts that step in place of the ramp.  Only intervals whose nodes jump
(by more than a share of the larger one) are refined, so a slowly fading stripe keeps its
interpolation.
"""

from __future__ import annotations

from typing import Any

import numba as nb
import numpy as np

from volrecon.correct._intensity import UNCAST, kernel_input, restore_dtype, restore_kind, restore_row

_JIT = dict(cache=True, nogil=True, error_model="numpy", boundscheck=False)

JUMP = 0.3  # an interval is a step when its nodes differ by more than this share of the larger one
NOISE_JUMPS = 2.0  # ... and by more than this many times the noise of a bin's mean (smaller steps: the ramp is as good)


@nb.njit(**_JIT)
def _mirror(j, n):
    """Column ``j`` reflected into ``0 .. n-1`` (numpy's ``reflect``: the edge column not repeated)."""
    if n == 1:
        return 0
    period = 2 * (n - 1)
    j = abs(j) % period
    return period - j if j >= n else j


@nb.njit(**_JIT)
def _node(nodes, k, x, r, centres, block):
    """The linearly interpolated stripe of column ``x`` at row ``r`` between node ``k - 1`` and ``k``."""
    f = (r - centres[k - 1]) / block
    f = min(max(f, 0.0), 1.0)
    return nodes[k - 1, x] * (1.0 - f) + nodes[k, x] * f


@nb.njit(**_JIT)
def _find(plane, nodes, block, offsets, rows_per_bin, jump, min_jump, split):
    n_rows, nx = plane.shape
    nn = nodes.shape[0]
    nt = offsets.shape[0]
    centres = (np.arange(nn) + 0.5) * block - 0.5
    taps = np.empty(nt)
    means = np.empty(block // rows_per_bin + 2)
    for k in range(1, nn):
        r0 = int(np.ceil(centres[k - 1]))
        r1 = min(int(np.floor(centres[k])) + 1, n_rows)
        n_bins = (r1 - r0) // rows_per_bin
        if n_bins < 2:
            continue
        for x in range(nx):
            a = nodes[k - 1, x]
            b = nodes[k, x]
            step = abs(b - a)
            if step <= min_jump or step <= jump * max(abs(a), abs(b)):
                continue
            for i in range(n_bins):
                # residual of the bin: its mean minus the median of the taps' means, stripes removed
                for t in range(nt):
                    c = _mirror(x + offsets[t], nx)
                    s = 0.0
                    for r in range(r0 + i * rows_per_bin, r0 + (i + 1) * rows_per_bin):
                        s += plane[r, c] - _node(nodes, k, c, r, centres, block)
                    taps[t] = s / rows_per_bin
                own = 0.0
                for r in range(r0 + i * rows_per_bin, r0 + (i + 1) * rows_per_bin):
                    own += plane[r, x]
                means[i] = own / rows_per_bin - np.median(taps)
            # split: bins before it nearer a, after it nearer b (least squares over the split point)
            cost = 0.0
            for i in range(n_bins):
                cost += (means[i] - b) ** 2
            best = cost
            best_t = 0
            for i in range(n_bins):
                cost += (means[i] - a) ** 2 - (means[i] - b) ** 2
                if cost < best:
                    best = cost
                    best_t = i + 1
            split[k, x] = r0 + best_t * rows_per_bin


@nb.njit(**_JIT)
def _onset_rows(centres, block, k, n_rows):
    """Rows ``r0 .. r1 - 1`` between the centres of node ``k - 1`` and node ``k``."""
    return int(np.ceil(centres[k - 1])), min(int(np.floor(centres[k])) + 1, n_rows)


@nb.njit(**_JIT)
def _with_stripes(plane, nodes, block, split, sign, kind, lo, hi, out):
    n_rows, nx = plane.shape
    nn = nodes.shape[0]
    centres = (np.arange(nn) + 0.5) * block - 0.5
    s32 = np.float32(sign)
    row = np.empty(nx, np.float32)
    for r in range(n_rows):
        # the linear interpolation between the block centres (the nearest node past the ends)
        pos = min(max((r - (block - 1) / 2) / block, 0.0), nn - 1.0)
        base = min(max(int(np.floor(pos)), 0), max(nn - 2, 0))
        frac = np.float32(pos - base)
        if nn == 1:
            for x in range(nx):
                row[x] = np.float32(plane[r, x]) + s32 * nodes[0, x]
        else:
            for x in range(nx):
                a = s32 * nodes[base, x]
                row[x] = (np.float32(plane[r, x]) + a) + frac * (s32 * nodes[base + 1, x] - a)
        # the steps of the (at most two) node intervals whose onset rows hold r, in order
        for k in range(max(base, 1), min(base + 3, split.shape[0])):
            r0, r1 = _onset_rows(centres, block, k, n_rows)
            if r0 <= r < r1:
                for x in range(nx):
                    at = split[k, x]
                    if at >= 0:
                        step = nodes[k - 1, x] if r < at else nodes[k, x]
                        row[x] = np.float32(row[x] + sign * (step - _node(nodes, k, x, r, centres, block)))
        restore_row(row, kind, lo, hi, out[r])


def find_onsets(plane: np.ndarray, nodes: np.ndarray, block: int, offsets: np.ndarray, *, rows_per_bin: int = 4) -> np.ndarray:
    """Row of the step in each node interval whose stripe jumps (-1 elsewhere).

    Parameters
    ----------
    plane : ndarray (Y, X)
        The slice with its stripes (along axis 0), before they are removed.
    nodes : ndarray (blocks, X)
        Stripe profile at the block rows (node ``k`` at the centre of rows ``k * block`` to
        ``(k + 1) * block - 1``).
    block : int
        Rows per block.
    offsets : ndarray of int
        Column offsets of the across-stripe median (the block filter's taps, including 0).
    rows_per_bin : int
        Rows averaged before the split is searched (the resolution of the onset).

    Returns
    -------
    ndarray (blocks, X) int64
        For interval ``k`` (between node ``k - 1`` and ``k``): the first row that takes node
        ``k``'s value, or -1 where the interval keeps its linear interpolation.
    """
    p = np.asarray(plane, dtype=np.float32)
    nd = np.ascontiguousarray(nodes, dtype=np.float32)
    split = np.full(nd.shape, -1, np.int64)
    if nd.shape[0] > 1 and block >= 2 * rows_per_bin:
        min_jump = NOISE_JUMPS * _row_noise(p) / np.sqrt(rows_per_bin)
        _find(p, nd, int(block), np.asarray(offsets, np.int64), int(rows_per_bin), float(JUMP), float(min_jump), split)
    return split


def _row_noise(plane: np.ndarray, samples: int = 32) -> float:
    """Pixel noise from differences of neighbouring rows (robust spread) at ``samples`` places.

    Along the stripe the stripes cancel; the structure's edges across it are few and the
    median ignores them.  A quick estimate: it only decides which steps are worth placing.
    """
    if plane.shape[0] < 2:
        return 0.0
    rows = np.unique(np.linspace(0, plane.shape[0] - 2, min(samples, plane.shape[0] - 1)).astype(np.intp))
    diff = plane[rows + 1] - plane[rows]
    return 1.4826 * float(np.median(np.abs(diff))) / np.sqrt(2.0)


def with_stripes(plane: np.ndarray, nodes: np.ndarray, block: int, split: np.ndarray | None, *, sign: float = 1.0, dtype: Any = np.float32) -> np.ndarray:
    """``plane + sign *`` the stripe image of ``nodes``, cast to ``dtype`` (one pass, no temporaries).

    The stripe image is linear between block centres (the nearest node before the first and
    after the last one), except in the intervals :func:`find_onsets` marked: there rows before
    the step take node ``k - 1`` and from it on node ``k``.  Cast as
    :func:`~volrecon.correct._intensity.restore_dtype` casts (integers rounded and clipped,
    never NaN).

    Parameters
    ----------
    plane : ndarray (rows, columns)
        The slice (stripes along axis 0; any real dtype, taken as float32).
    nodes : ndarray (blocks, columns)
        The stripe profile at the block centres (rows ``block * k + (block - 1) / 2``).
    block : int
        Rows per block.
    split : ndarray of int (blocks, columns) or None
        From :func:`find_onsets`: for interval ``k`` (between node ``k - 1`` and ``k``) the first
        row that takes node ``k``'s value, or -1 where the interval keeps its ramp; None: ramps only.
    sign : float
        +1 adds the stripes, -1 removes them.
    dtype : numpy dtype
        Output dtype.

    Returns
    -------
    ndarray (rows, columns) of ``dtype``

    Examples
    --------
    >>> nodes = np.array([[0.0], [8.0]], np.float32)  # centres at rows 1.5 and 5.5 (block 4)
    >>> zero = np.zeros((8, 1), np.float32)
    >>> with_stripes(zero, nodes, 4, None)[:, 0].tolist()
    [0.0, 0.0, 1.0, 3.0, 5.0, 7.0, 8.0, 8.0]
    >>> with_stripes(zero, nodes, 4, np.array([[-1], [4]]))[:, 0].tolist()
    [0.0, 0.0, 0.0, 0.0, 8.0, 8.0, 8.0, 8.0]
    """
    dtype = np.dtype(dtype)
    cast = restore_kind(dtype)
    nd = np.ascontiguousarray(nodes, dtype=np.float32)
    out = np.empty(plane.shape, dtype=dtype if cast is not None else np.float32)
    on = np.zeros((0, nd.shape[1]), np.int64) if split is None or nd.shape[0] < 2 else np.asarray(split, np.int64)
    _with_stripes(kernel_input(plane), nd, int(block), on, float(sign), *(cast or UNCAST), out)
    return out if cast is not None else restore_dtype(out, dtype, overwrite=True)


__all__ = ["find_onsets", "with_stripes"]
