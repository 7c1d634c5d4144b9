"""Piecewise-constant fits along the stripe: the change-point model of a curtain.

A curtain starts abruptly below a feature (or the cap edge) and then runs on down the face at a
nearly constant amplitude; a second curtain in the same column adds a step of its own.  Along
the stripe, a column's stripe profile is therefore piecewise constant with few change points.
:func:`fit_steps` fits that model to every column of a block image: least squares with a
penalty per change point, found by binary segmentation (split where the sum of squared
residuals drops most, while the drop exceeds the penalty), so each estimate is the mean over
the whole run between two change points rather than over a fixed window.  (The exact
optimum of the same cost, by dynamic programming with PELT pruning, gave the same gains on
the phantoms at 4x the time: the pruning does not act on columns without change points.)
"""

from __future__ import annotations

import numba as nb
import numpy as np

_JIT = dict(cache=True, nogil=True, error_model="numpy", boundscheck=False)


@nb.njit(**_JIT)
def _fit_column(y, penalty, fit, runs, starts, cs, lo_stack, hi_stack):
    """Fit one column ``y`` in place into ``fit`` (segment means), ``runs`` (segment lengths) and ``starts`` (segment first rows).

    Binary segmentation: a segment is split where the split lowers its sum of squared
    residuals most (the between-part sum of squares, from prefix sums), if that lowers it by
    more than ``penalty``, and the parts are treated alike; O(n log n) per column.
    """
    n = y.shape[0]
    cs[0] = 0.0
    for i in range(n):
        cs[i + 1] = cs[i] + np.float64(y[i])
    lo_stack[0] = 0
    hi_stack[0] = n
    top = 1
    while top > 0:
        top -= 1
        lo = lo_stack[top]
        hi = hi_stack[top]
        total = cs[hi] - cs[lo]
        size = hi - lo
        base = total * total / size
        gain = 0.0
        split = -1
        for k in range(lo + 1, hi):
            s1 = cs[k] - cs[lo]
            s2 = total - s1
            g = s1 * s1 / (k - lo) + s2 * s2 / (hi - k) - base
            if g > gain:
                gain = g
                split = k
        if split > 0 and gain > penalty:
            lo_stack[top] = lo
            hi_stack[top] = split
            lo_stack[top + 1] = split
            hi_stack[top + 1] = hi
            top += 2
        else:
            m = total / size
            for i in range(lo, hi):
                fit[i] = m
                runs[i] = size
                starts[i] = lo


@nb.njit(**_JIT)
def _fit_rows(data, penalty, fit, runs, starts):
    """:func:`_fit_column` on every row of ``data`` (the columns of the image, transposed)."""
    n = data.shape[1]
    cs = np.empty(n + 1)
    lo_stack = np.empty(n + 1, np.int64)
    hi_stack = np.empty(n + 1, np.int64)
    for j in range(data.shape[0]):
        _fit_column(data[j], penalty, fit[j], runs[j], starts[j], cs, lo_stack, hi_stack)


@nb.njit(**_JIT)
def _run_means_rows(segments, values, out):
    for j in range(segments.shape[0]):
        i = 0
        n = segments.shape[1]
        while i < n:
            k = i + 1
            while k < n and segments[j, k] == segments[j, i]:
                k += 1
            total = 0.0
            for q in range(i, k):
                total += values[j, q]
            m = total / (k - i)
            for q in range(i, k):
                out[j, q] = m
            i = k


def run_means(segments: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Mean of ``values`` over each run of a :func:`fit_steps` fit.

    Parameters
    ----------
    segments : ndarray (n, X)
        Segment labels along axis 0: the ``starts`` of :func:`fit_steps` (a run is a stretch
        of equal labels).  Pass those, not the fitted values: two neighbouring segments may
        have equal means and would be taken for one run.
    values : ndarray (n, X)
        What to average over its runs.

    Returns
    -------
    ndarray (n, X) float32
        Each element's run mean of ``values``.

    Examples
    --------
    >>> starts = np.array([[0], [0], [2]], np.int32)
    >>> run_means(starts, np.array([[2.0], [4.0], [9.0]], np.float32))[:, 0].tolist()
    [3.0, 3.0, 9.0]
    """
    seg = np.asarray(segments)
    f = np.ascontiguousarray((seg if np.issubdtype(seg.dtype, np.integer) else seg.astype(np.float32)).T)
    v = np.ascontiguousarray(np.asarray(values, dtype=np.float32).T)
    out = np.empty(f.shape, np.float32)
    if f.size:
        _run_means_rows(f, v, out)
    return np.ascontiguousarray(out.T)


def fit_steps(data: np.ndarray, penalty: float, *, starts: bool = False) -> tuple[np.ndarray, ...]:
    """Piecewise-constant least-squares fit of every column of ``data`` (along axis 0).

    Parameters
    ----------
    data : ndarray (n, X)
        Columns to fit (the across-stripe residual at the block rows).
    penalty : float
        Cost of one change point, in squared data units: a step is kept where it lowers the
        sum of squared residuals by more than this.
    starts : bool
        Also return each element's segment label (the labels for :func:`run_means`).

    Returns
    -------
    fit, runs : ndarray (n, X) float32
        Each element's segment mean, and the number of elements in its segment.
    first : ndarray (n, X) int32
        Only with ``starts``: the first row of each element's segment (unique per segment,
        so neighbouring segments stay apart even when their means are equal).

    Examples
    --------
    >>> col = np.array([0, 0, 0, 5, 5, 5, 5], np.float32)[:, None]
    >>> fit, runs = fit_steps(col + np.float32([0.1, -0.1, 0, 0.1, -0.1, 0, 0])[:, None], 1.0)
    >>> fit[:, 0].round(2).tolist(), runs[:, 0].tolist()
    ([0.0, 0.0, 0.0, 5.0, 5.0, 5.0, 5.0], [3.0, 3.0, 3.0, 4.0, 4.0, 4.0, 4.0])
    """
    a = np.ascontiguousarray(np.asarray(data, dtype=np.float32).T)  # one column per row: contiguous runs
    fit = np.empty(a.shape, np.float32)
    runs = np.empty(a.shape, np.float32)
    first = np.empty(a.shape, np.int32)
    if a.size:
        _fit_rows(a, float(penalty), fit, runs, first)
    out = (np.ascontiguousarray(fit.T), np.ascontiguousarray(runs.T))
    return out + (np.ascontiguousarray(first.T),) if starts else out


__all__ = ["fit_steps", "run_means"]
