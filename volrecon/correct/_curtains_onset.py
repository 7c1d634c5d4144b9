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
:func:`apply_onsets` then replaces the ramp by that step.  Only intervals whose nodes jump
(by more than a share of the larger one) are refined, so a slowly fading stripe keeps its
interpolation.
"""

from __future__ import annotations

import numba as nb
import numpy as np

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
def _apply(target, nodes, block, split, sign):
    n_rows = target.shape[0]
    nn, nx = nodes.shape
    centres = (np.arange(nn) + 0.5) * block - 0.5
    for k in range(1, nn):
        r0 = int(np.ceil(centres[k - 1]))
        r1 = min(int(np.floor(centres[k])) + 1, n_rows)
        for x in range(nx):
            s = split[k, x]
            if s < 0:
                continue
            for r in range(r0, r1):
                step = nodes[k - 1, x] if r < s else nodes[k, x]
                target[r, x] += sign * (step - _node(nodes, k, x, r, centres, block))


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


def apply_onsets(target: np.ndarray, nodes: np.ndarray, block: int, split: np.ndarray, *, sign: float = 1.0) -> None:
    """Turn the linear ramps of the intervals :func:`find_onsets` marked into steps, in place.

    ``target`` already holds ``sign *`` the linearly interpolated ``nodes`` (as
    ``_add_rows`` adds them); rows before the step take node ``k - 1``, from it on node ``k``.

    Parameters
    ----------
    target : ndarray (rows, columns)
        The stripe image being built, changed in place.
    nodes : ndarray (blocks, columns)
        The stripe profile at the block centres (rows ``block * k + (block - 1) / 2``).
    block : int
        Rows per block.
    split : ndarray of int (blocks, columns)
        From :func:`find_onsets`: for interval ``k`` (between node ``k - 1`` and ``k``) the first
        row that takes node ``k``'s value, or -1 where the interval keeps its ramp.
    sign : float
        The sign with which ``nodes`` were added to ``target``.

    Examples
    --------
    >>> nodes = np.array([[0.0], [8.0]], np.float32)  # centres at rows 1.5 and 5.5 (block 4)
    >>> img = np.zeros((8, 1), np.float32)
    >>> img[2:6, 0] = [1, 3, 5, 7]; img[6:, 0] = 8  # the linear ramp between the centres
    >>> apply_onsets(img, nodes, 4, np.array([[-1], [4]]))
    >>> img[:, 0].tolist()
    [0.0, 0.0, 0.0, 0.0, 8.0, 8.0, 8.0, 8.0]
    """
    nd = np.ascontiguousarray(nodes, dtype=np.float32)
    if nd.shape[0] > 1:
        _apply(target, nd, int(block), np.asarray(split, np.int64), float(sign))


__all__ = ["find_onsets", "apply_onsets"]
