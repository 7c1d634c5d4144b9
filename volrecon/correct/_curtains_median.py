"""Element-wise medians of a few shifted copies of an image: the destriper's small median filters.

The curtain filter (:mod:`volrecon.correct.curtains`) takes medians of 11 taps across the
stripe and of up to 9 blocks along it, on every block of every slice, several times per
slice.  :func:`shift_median` runs a pruned sorting network of element-wise min/max
(:func:`median_network`) one image row at a time in compiled code: each compare-exchange
writes into free row buffers rather than in place, so that its loop over the row is
vectorised, and nothing larger than a few rows is written until the median row itself.  The
result equals the median of the shifted copies exactly (a selection, no arithmetic, for an odd
count; NaN propagates as with ``np.minimum``/``np.maximum``).
"""

from __future__ import annotations

from functools import lru_cache

import numba as nb
import numpy as np

_JIT = dict(cache=True, nogil=True, error_model="numpy", boundscheck=False)


@lru_cache(maxsize=None)
def median_network(n: int) -> tuple[tuple[int, int, bool, bool], ...]:
    """Compare-exchanges of an odd-even transposition sort of ``n`` that the middle output(s) need.

    Each entry ``(a, b, lo, hi)``: put ``min`` into ``a`` if ``lo``, ``max`` into ``b`` if
    ``hi``.  Walking the full network backwards from the middle wire(s) drops the exchanges
    whose results the median never reads (45 of 55 for 11 inputs).
    """
    comps = [(j, j + 1) for sweep in range(n) for j in range(sweep % 2, n - 1, 2)]
    needed = {n // 2} if n % 2 else {n // 2 - 1, n // 2}
    kept = []
    for a, b in reversed(comps):
        lo, hi = a in needed, b in needed
        if lo or hi:
            kept.append((a, b, lo, hi))
            needed |= {a, b}
    return tuple(reversed(kept))


@nb.njit(**_JIT)
def _exchange(u, v, lo, hi, want_lo, want_hi):
    """``lo = min(u, v)``, ``hi = max(u, v)`` element-wise (as wanted), NaN propagating."""
    for x in range(u.shape[0]):
        a = u[x]
        b = v[x]
        if want_lo:
            lo[x] = a if (a < b or np.isnan(a)) else b
        if want_hi:
            hi[x] = a if (a > b or np.isnan(a)) else b


@nb.njit(**_JIT)
def _shift_median(pad, rows, cols, net, out):
    n_rows, nx = out.shape
    n = rows.shape[0]
    buf = np.empty((n + 2, nx), pad.dtype)
    wire = np.empty(n, np.int64)  # the buffer row holding each wire of the network
    free = np.empty(2, np.int64)
    for r in range(n_rows):
        for i in range(n):
            buf[i, :] = pad[r + rows[i], cols[i] : cols[i] + nx]
            wire[i] = i
        free[0] = n
        free[1] = n + 1
        for c in range(net.shape[0]):
            a = net[c, 0]
            b = net[c, 1]
            want_lo = net[c, 2] != 0
            want_hi = net[c, 3] != 0
            fa = free[0]
            fb = free[1] if want_lo else free[0]
            _exchange(buf[wire[a]], buf[wire[b]], buf[fa], buf[fb], want_lo, want_hi)
            # the written buffers take the wires' places; the replaced ones are free again
            if want_lo and want_hi:
                free[0], free[1] = wire[a], wire[b]
                wire[a], wire[b] = fa, fb
            elif want_lo:
                free[0] = wire[a]
                wire[a] = fa
            else:
                free[0] = wire[b]
                wire[b] = fb
        m = n // 2
        if n % 2:
            out[r, :] = buf[wire[m]]
        else:
            for x in range(nx):
                out[r, x] = (buf[wire[m - 1], x] + buf[wire[m], x]) * np.float32(0.5)


def shift_median(pad: np.ndarray, rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Element-wise median of the windows ``pad[rows[i]:rows[i] + Y, cols[i]:cols[i] + X]``.

    Parameters
    ----------
    pad : ndarray (Y', X')
        The padded image (large enough for every window).
    rows, cols : sequence of int
        Top-left corner of each window in ``pad`` (one pair per input of the median).
    shape : (Y, X)
        Window (and output) shape.

    Returns
    -------
    ndarray (Y, X) of ``pad``'s dtype
        The median of the windows (mean of the middle two for an even count).

    Examples
    --------
    >>> row = np.array([[5.0, 1.0, 4.0, 2.0, 3.0]], np.float32)
    >>> shift_median(row, [0, 0, 0], [0, 1, 2], (1, 3)).tolist()  # taps x, x+1, x+2
    [[4.0, 2.0, 3.0]]
    """
    r = np.asarray(rows, np.int64)
    c = np.asarray(cols, np.int64)
    ny, nx = (int(s) for s in shape)
    if r.size != c.size or r.size == 0:
        raise ValueError("give one row and one column offset per window")
    if r.min() < 0 or c.min() < 0 or r.max() + ny > pad.shape[0] or c.max() + nx > pad.shape[1]:
        raise ValueError(f"windows of {ny}x{nx} at the given offsets do not fit in the padded image {pad.shape}")
    net = np.array(median_network(r.size), np.int64).reshape(-1, 4)
    out = np.empty((ny, nx), pad.dtype)
    _shift_median(np.ascontiguousarray(pad), r, c, net, out)
    return out


__all__ = ["median_network", "shift_median"]
