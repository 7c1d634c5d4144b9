"""Exact anisotropic Euclidean distance transform, computed slab by slab along z.

The squared Euclidean distance transform is separable (Saito & Toriwaki 1994; Felzenszwalb &
Huttenlocher 2012): a pass along z gives, per voxel, the squared distance to the nearest source
voxel of its own (y, x) column; passes along y and x within each plane then take the lower
envelope of parabolas.  The z pass only needs, per column, the nearest source below and above a
plane, so the volume is read in slabs: a first pass from the top records for every slab the first
source beyond its upper end (one plane of integers per slab, kept in a scratch file), and a second
pass from the bottom carries the last source below.  Memory is a few slabs, whatever the depth.
"""

from __future__ import annotations

import tempfile
from typing import Callable, Iterator, Sequence

import numba as nb
import numpy as np

from volrecon.errors import ParameterError

NONE = np.int64(-(2 ** 40))  # "no source" in the column states (far beyond any volume)


@nb.njit(cache=True, nogil=True)
def _envelope(f: np.ndarray, w2: float, out: np.ndarray, v: np.ndarray, z: np.ndarray) -> None:
    """``out[p] = min_q f[q] + w2 (p - q)^2`` over the finite ``f[q]`` (lower envelope of parabolas)."""
    n = f.shape[0]
    k = -1
    for q in range(n):
        fq = f[q]
        if not np.isfinite(fq):
            continue
        s = -np.inf
        while k >= 0:
            p = v[k]
            s = ((fq + w2 * q * q) - (f[p] + w2 * p * p)) / (2.0 * w2 * (q - p))
            if s <= z[k]:
                k -= 1
                s = -np.inf
            else:
                break
        k += 1
        v[k] = q
        z[k] = s
        z[k + 1] = np.inf
    if k < 0:
        out[:] = np.inf
        return
    k = 0
    for p in range(n):
        while z[k + 1] < p:
            k += 1
        q = v[k]
        out[p] = f[q] + w2 * (p - q) * (p - q)


@nb.njit(cache=True, nogil=True)
def _envelope_lines(a: np.ndarray, w2: float, col: np.ndarray, res: np.ndarray, v: np.ndarray, z: np.ndarray) -> None:
    """:func:`_envelope` along axis 1 of every line ``a[j, :]`` of a 2-D (view of a) plane, in place."""
    n = a.shape[1]
    for j in range(a.shape[0]):
        for p in range(n):
            col[p] = a[j, p]
        _envelope(col[:n], w2, res[:n], v, z)
        for p in range(n):
            a[j, p] = res[p]


@nb.njit(cache=True, nogil=True)
def _slab_sq_distance(src: np.ndarray, z0: int, below: np.ndarray, above: np.ndarray,
                      vz2: float, vy2: float, vx2: float) -> np.ndarray:
    """Squared distances (float64) of a slab; ``below`` is updated to the last source in it."""
    n, ny, nx = src.shape
    g = np.empty((n, ny, nx), np.float64)
    for y in range(ny):
        for x in range(nx):
            nxt = above[y, x]
            for i in range(n - 1, -1, -1):
                if src[i, y, x]:
                    nxt = z0 + i
                g[i, y, x] = np.inf if nxt == NONE else vz2 * float(nxt - z0 - i) ** 2
            last = below[y, x]
            for i in range(n):
                if src[i, y, x]:
                    last = z0 + i
                if last != NONE:
                    d = vz2 * float(z0 + i - last) ** 2
                    if d < g[i, y, x]:
                        g[i, y, x] = d
            below[y, x] = last
    m = max(ny, nx)
    col = np.empty(m, np.float64)
    res = np.empty(m, np.float64)
    v = np.empty(m, np.int64)
    zz = np.empty(m + 1, np.float64)
    for i in range(n):
        _envelope_lines(g[i].T, vy2, col, res, v, zz)  # along y: the plane's columns
        _envelope_lines(g[i], vx2, col, res, v, zz)  # along x: its rows
    return g


def edt_slabs(source: Callable[[int, int], np.ndarray], nz: int, plane: Sequence[int],
              slabs: Sequence[tuple[int, int]], voxel_size_nm: Sequence[float]
              ) -> Iterator[tuple[int, int, np.ndarray]]:
    """Distances (nm, float32) to the nearest source voxel, slab by slab from z = 0.

    Parameters
    ----------
    source : callable
        ``source(z0, z1)`` returns the boolean source mask of planes ``z0:z1``, shape
        ``(z1 - z0,) + plane``; it is called twice per slab (once per pass).
    nz : int
        Number of planes.
    plane : (int, int)
        Plane shape (y, x).
    slabs : sequence of (int, int)
        Consecutive ``(z0, z1)`` ranges covering ``0:nz`` in order.
    voxel_size_nm : 3 floats
        Voxel size (z, y, x).

    Yields
    ------
    (z0, z1, ndarray of float32)
        The distances of planes ``z0:z1`` (``inf`` everywhere when there is no source at all);
        equal to ``edt.edt(~source, anisotropy=voxel_size_nm, black_border=False)`` of the whole
        volume (computed in float64 and rounded once).

    Raises
    ------
    ParameterError
        ``slabs`` are not consecutive ranges covering ``0:nz`` (at the first slab read).
    """
    vz, vy, vx = (float(v) for v in voxel_size_nm)
    shape = tuple(int(n) for n in plane)
    slabs = [(int(a), int(b)) for a, b in slabs]
    ends = [0] + [b for _, b in slabs]
    if not slabs or any(a != e or b <= a for (a, b), e in zip(slabs, ends)) or ends[-1] != nz:
        raise ParameterError(f"slabs={slabs}: give consecutive (z0, z1) ranges covering 0:{nz} in order")
    state = np.full(shape, NONE, np.int64)
    with tempfile.TemporaryFile(prefix="volrecon-edt-") as scratch:
        # pass 1, from the top: the first source at or beyond each slab's upper end
        for k in range(len(slabs) - 1, -1, -1):
            z0, z1 = slabs[k]
            scratch.seek(k * state.nbytes)
            scratch.write(state.tobytes())
            src = np.asarray(source(z0, z1), bool)
            hit = src.any(axis=0)
            state = np.where(hit, z0 + src.argmax(axis=0), state)
        below = np.full(shape, NONE, np.int64)
        for k, (z0, z1) in enumerate(slabs):
            scratch.seek(k * state.nbytes)
            above = np.frombuffer(scratch.read(state.nbytes), np.int64).reshape(shape)
            src = np.ascontiguousarray(source(z0, z1), bool)
            g = _slab_sq_distance(src, z0, below, above, vz * vz, vy * vy, vx * vx)
            yield z0, z1, np.sqrt(g, out=g).astype(np.float32)
