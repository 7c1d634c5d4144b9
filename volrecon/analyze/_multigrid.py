"""Matrix-free preconditioned conjugate gradients for steady diffusion on a voxel phase.

The discrete problem is the finite-volume conductance network of a binary phase on a
(possibly anisotropic) voxel grid, with transport along axis 0:

* every voxel of the conducting cluster is a node holding a concentration;
* neighbouring nodes along axis ``a`` are joined by a conductance ``g[a]``;
* the two faces normal to axis 0 hold fixed concentrations 1 (inlet) and 0 (outlet), half a
  voxel outside the first and last planes (boundary conductance ``2 * g[0]``);
* every other face is a no-flux wall.

The system is solved with conjugate gradients preconditioned by one multigrid V-cycle.  The
coarse levels come from aggregating 2x2x2 blocks (Galerkin product with piecewise-constant
prolongation, which for this stencil is again a 7-point conductance network: the summed face
conductances between blocks); on anisotropic voxels only the strongly coupled (short-spacing)
axes are merged until the aggregates are near-isotropic (semi-coarsening).  The coarse
correction is over-weighted to compensate for the piecewise-constant interpolation.  The
smoother is lexicographic Gauss-Seidel, forward before the coarse correction and backward after
it, so that the preconditioner stays symmetric.  The iteration starts from the straight-channel
field (linear along axis 0).

All kernels are written with numba; vectors are float32 with float64 accumulation in the
reductions.  The finest level stores only the uint8 cluster mask (conductances are constants),
coarse levels store three face-conductance arrays and a diagonal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numba as nb
import numpy as np
import scipy.linalg

__all__ = ["SolveStats", "solve_conductance"]

_JIT = dict(cache=True, nogil=True, error_model="numpy", boundscheck=False,
            fastmath={"reassoc", "contract", "nsz"})

# Every array carries a one-cell halo of zeros (shape n + 2 along each axis) so that the
# kernels have no bounds tests; loops run over the interior 1..n.  Kernels are branch-free on
# the (random) phase pattern: inactive cells are masked arithmetically.

# ---------------------------------------------------------------------------------------------
# finest level: cluster mask + constant conductances (g0, g1, g2), Dirichlet on axis-0 faces
# ---------------------------------------------------------------------------------------------


@nb.njit(**_JIT)
def _fine_matvec_dot(m, x, out, g0, g1, g2):
    """out = A x on the cluster; returns x . A x (float64)."""
    n0, n1, n2 = m.shape
    acc = 0.0
    for i in range(1, n0 - 1):
        bd = 2.0 * g0 * ((i == 1) + (i == n0 - 2))
        for j in range(1, n1 - 1):
            for k in range(1, n2 - 1):
                mc = m[i, j, k]
                d = (
                    g0 * (m[i - 1, j, k] + m[i + 1, j, k])
                    + g1 * (m[i, j - 1, k] + m[i, j + 1, k])
                    + g2 * (m[i, j, k - 1] + m[i, j, k + 1])
                    + bd
                )
                s = (
                    g0 * (x[i - 1, j, k] + x[i + 1, j, k])
                    + g1 * (x[i, j - 1, k] + x[i, j + 1, k])
                    + g2 * (x[i, j, k - 1] + x[i, j, k + 1])
                )
                v = mc * (d * x[i, j, k] - s)
                out[i, j, k] = v
                acc += v * x[i, j, k]
    return acc


@nb.njit(**_JIT)
def _fine_inverse_diagonal(m, invd, g0, g1, g2):
    """invd = 1 / diag(A) on the cluster, 0 elsewhere (halo included)."""
    n0, n1, n2 = m.shape
    invd[:] = 0.0
    for i in range(1, n0 - 1):
        bd = 2.0 * g0 * ((i == 1) + (i == n0 - 2))
        for j in range(1, n1 - 1):
            for k in range(1, n2 - 1):
                if m[i, j, k]:
                    d = (
                        g0 * (m[i - 1, j, k] + m[i + 1, j, k])
                        + g1 * (m[i, j - 1, k] + m[i, j + 1, k])
                        + g2 * (m[i, j, k - 1] + m[i, j, k + 1])
                        + bd
                    )
                    invd[i, j, k] = 1.0 / d


@nb.njit(**_JIT)
def _fine_forward_restrict(invd, x, b, rc, row, g0, g1, g2, s0, s1, s2):
    """Forward Gauss-Seidel sweep from x = 0, fused with the restricted residual.

    After a forward sweep from zero, the residual ``b - A x`` at a cluster voxel equals the sum
    of ``g * x`` over its three *later* neighbours (i+1, j+1, k+1).  Row (i-1, j) has all of
    them once row (i, j) is swept, so its residual is summed into the coarse blocks right then,
    while both rows are in cache (``row`` is scratch of length n2).
    """
    n0, n1, n2 = invd.shape
    x[:] = 0.0
    rc[:] = 0.0
    row[:] = 0.0
    for i in range(1, n0 - 1):
        for j in range(1, n1 - 1):
            v = x[i, j, 0]
            for k in range(1, n2 - 1):
                w = invd[i, j, k]
                a = w * (b[i, j, k] + g0 * x[i - 1, j, k] + g1 * x[i, j - 1, k])
                v = a + (w * g2) * v
                x[i, j, k] = v
            if i > 1:
                _restrict_row(invd, x, rc, row, i - 1, j, g0, g1, g2, s0, s1, s2)
    for j in range(1, n1 - 1):
        _restrict_row(invd, x, rc, row, n0 - 2, j, g0, g1, g2, s0, s1, s2)


@nb.njit(**_JIT)
def _restrict_row(invd, x, rc, row, i, j, g0, g1, g2, s0, s1, s2):
    """Add the residual ``g0 x[i+1] + g1 x[j+1] + g2 x[k+1]`` of cluster row (i, j) to ``rc``."""
    n2 = invd.shape[2]
    for k in range(1, n2 - 1):
        row[k] = (invd[i, j, k] > 0) * (g0 * x[i + 1, j, k] + g1 * x[i, j + 1, k] + g2 * x[i, j, k + 1])
    ci = (i + s0) >> s0
    cj = (j + s1) >> s1
    if s2:
        for kc in range(1, rc.shape[2] - 1):
            rc[ci, cj, kc] += row[2 * kc - 1] + row[2 * kc]
    else:
        for k in range(1, n2 - 1):
            rc[ci, cj, k] += row[k]


@nb.njit(**_JIT)
def _fine_backward(m, invd, x, b, ec, alpha, g0, g1, g2, s0, s1, s2):
    """Coarse correction ``x += alpha P ec`` fused with a backward Gauss-Seidel sweep.

    Plane i-1 is corrected just before plane i is swept (the sweep reads it), so each plane is
    loaded once for both.  Returns b . x after the sweep (float64).
    """
    n0, n1, n2 = invd.shape
    acc = 0.0
    _prolong_plane(m, x, ec, alpha, n0 - 2, s0, s1, s2)
    for i in range(n0 - 2, 0, -1):
        if i > 1:
            _prolong_plane(m, x, ec, alpha, i - 1, s0, s1, s2)
        for j in range(n1 - 2, 0, -1):
            v = x[i, j, n2 - 1]
            for k in range(n2 - 2, 0, -1):
                w = invd[i, j, k]
                a = w * (
                    b[i, j, k]
                    + g0 * (x[i - 1, j, k] + x[i + 1, j, k])
                    + g1 * (x[i, j - 1, k] + x[i, j + 1, k])
                    + g2 * x[i, j, k - 1]
                )
                v = a + (w * g2) * v
                x[i, j, k] = v
                acc += v * b[i, j, k]
    return acc


@nb.njit(**_JIT)
def _prolong_plane(m, x, ec, alpha, i, s0, s1, s2):
    """x[i] += alpha * (piecewise-constant prolongation of ec) on the cluster."""
    n1, n2 = m.shape[1], m.shape[2]
    ci = (i + s0) >> s0
    for j in range(1, n1 - 1):
        cj = (j + s1) >> s1
        for k in range(1, n2 - 1):
            x[i, j, k] += m[i, j, k] * alpha * ec[ci, cj, (k + s2) >> s2]


@nb.njit(**_JIT)
def _fine_coarsen(m, g0, g1, g2, G0, G1, G2, D, s0, s1, s2):
    """Galerkin (aggregation) operator of the first coarse level."""
    n0, n1, n2 = m.shape
    G0[:] = 0.0
    G1[:] = 0.0
    G2[:] = 0.0
    D[:] = 0.0
    for i in range(1, n0 - 1):
        I = (i + s0) >> s0
        for j in range(1, n1 - 1):
            J = (j + s1) >> s1
            for k in range(1, n2 - 1):
                if not m[i, j, k]:
                    continue
                K = (k + s2) >> s2
                # external conductances of a block add to its coarse diagonal; internal ones
                # cancel in P^T A P.  Dirichlet terms add to the diagonal.
                if i == 1:
                    D[I, J, K] += 2.0 * g0
                if i == n0 - 2:
                    D[I, J, K] += 2.0 * g0
                if m[i + 1, j, k] and (i + 1 + s0) >> s0 != I:
                    G0[I, J, K] += g0
                    D[I, J, K] += g0
                    D[I + 1, J, K] += g0
                if m[i, j + 1, k] and (j + 1 + s1) >> s1 != J:
                    G1[I, J, K] += g1
                    D[I, J, K] += g1
                    D[I, J + 1, K] += g1
                if m[i, j, k + 1] and (k + 1 + s2) >> s2 != K:
                    G2[I, J, K] += g2
                    D[I, J, K] += g2
                    D[I, J, K + 1] += g2


# ---------------------------------------------------------------------------------------------
# coarse levels: arrays G0, G1, G2 (conductance to the +1 neighbour) and diagonal D
# ---------------------------------------------------------------------------------------------


@nb.njit(**_JIT)
def _c_sgs(G0, G1, G2, D, x, b, forward, zero_start):
    """Lexicographic Gauss-Seidel sweep on a coarse level (the k-recurrence is one FMA)."""
    n0, n1, n2 = x.shape
    if zero_start:
        x[:] = 0.0
    for ii in range(1, n0 - 1):
        i = ii if forward else n0 - 1 - ii
        for jj in range(1, n1 - 1):
            j = jj if forward else n1 - 1 - jj
            if forward:
                v = x[i, j, 0]
                for k in range(1, n2 - 1):
                    d = D[i, j, k]
                    w = 1.0 / (d + (d == 0.0))
                    a = w * (
                        b[i, j, k]
                        + G0[i - 1, j, k] * x[i - 1, j, k]
                        + G0[i, j, k] * x[i + 1, j, k]
                        + G1[i, j - 1, k] * x[i, j - 1, k]
                        + G1[i, j, k] * x[i, j + 1, k]
                        + G2[i, j, k] * x[i, j, k + 1]
                    )
                    v = a + (w * G2[i, j, k - 1]) * v
                    x[i, j, k] = v
            else:
                v = x[i, j, n2 - 1]
                for k in range(n2 - 2, 0, -1):
                    d = D[i, j, k]
                    w = 1.0 / (d + (d == 0.0))
                    a = w * (
                        b[i, j, k]
                        + G0[i - 1, j, k] * x[i - 1, j, k]
                        + G0[i, j, k] * x[i + 1, j, k]
                        + G1[i, j - 1, k] * x[i, j - 1, k]
                        + G1[i, j, k] * x[i, j + 1, k]
                        + G2[i, j, k - 1] * x[i, j, k - 1]
                    )
                    v = a + (w * G2[i, j, k]) * v
                    x[i, j, k] = v


@nb.njit(**_JIT)
def _c_residual_restrict(G0, G1, G2, D, x, b, rc, s0, s1, s2):
    n0, n1, n2 = x.shape
    rc[:] = 0.0
    for i in range(1, n0 - 1):
        ci = (i + s0) >> s0
        for j in range(1, n1 - 1):
            cj = (j + s1) >> s1
            for k in range(1, n2 - 1):
                s = (
                    G0[i - 1, j, k] * x[i - 1, j, k]
                    + G0[i, j, k] * x[i + 1, j, k]
                    + G1[i, j - 1, k] * x[i, j - 1, k]
                    + G1[i, j, k] * x[i, j + 1, k]
                    + G2[i, j, k - 1] * x[i, j, k - 1]
                    + G2[i, j, k] * x[i, j, k + 1]
                )
                rc[ci, cj, (k + s2) >> s2] += b[i, j, k] - D[i, j, k] * x[i, j, k] + s


@nb.njit(**_JIT)
def _c_prolong(D, x, ec, alpha, s0, s1, s2):
    n0, n1, n2 = x.shape
    for i in range(1, n0 - 1):
        ci = (i + s0) >> s0
        for j in range(1, n1 - 1):
            cj = (j + s1) >> s1
            for k in range(1, n2 - 1):
                x[i, j, k] += (D[i, j, k] > 0.0) * alpha * ec[ci, cj, (k + s2) >> s2]


@nb.njit(**_JIT)
def _c_coarsen(G0, G1, G2, D, H0, H1, H2, E, s0, s1, s2):
    n0, n1, n2 = D.shape
    H0[:] = 0.0
    H1[:] = 0.0
    H2[:] = 0.0
    E[:] = 0.0
    for i in range(1, n0 - 1):
        I = (i + s0) >> s0
        for j in range(1, n1 - 1):
            J = (j + s1) >> s1
            for k in range(1, n2 - 1):
                if D[i, j, k] <= 0.0:
                    continue
                K = (k + s2) >> s2
                # the fine diagonal minus twice the internal conductances
                E[I, J, K] += D[i, j, k]
                g = G0[i, j, k]
                if (i + 1 + s0) >> s0 != I:
                    H0[I, J, K] += g
                else:
                    E[I, J, K] -= 2.0 * g
                g = G1[i, j, k]
                if (j + 1 + s1) >> s1 != J:
                    H1[I, J, K] += g
                else:
                    E[I, J, K] -= 2.0 * g
                g = G2[i, j, k]
                if (k + 1 + s2) >> s2 != K:
                    H2[I, J, K] += g
                else:
                    E[I, J, K] -= 2.0 * g


# ---------------------------------------------------------------------------------------------
# Krylov vector kernels (fused, float64 accumulation)
# ---------------------------------------------------------------------------------------------


@nb.njit(**_JIT)
def _dot(a, b):
    fa = a.ravel()
    fb = b.ravel()
    acc = 0.0
    for n in range(fa.size):
        acc += fa[n] * fb[n]
    return acc


@nb.njit(**_JIT)
def _update_xr(x, r, p, q, alpha):
    """x += alpha p ; r -= alpha q ; returns r . r."""
    fx = x.ravel()
    fr = r.ravel()
    fp = p.ravel()
    fq = q.ravel()
    a = fx.dtype.type(alpha)
    acc = 0.0
    for n in range(fx.size):
        fx[n] += a * fp[n]
        v = fr[n] - a * fq[n]
        fr[n] = v
        acc += v * v
    return acc


@nb.njit(**_JIT)
def _axpy_norm(y, x, a):
    """y += a x; returns y . y (float64)."""
    fy = y.ravel()
    fx = x.ravel()
    av = fy.dtype.type(a)
    acc = 0.0
    for n in range(fy.size):
        v = fy[n] + av * fx[n]
        fy[n] = v
        acc += v * v
    return acc


@nb.njit(**_JIT)
def _update_p(p, z, beta):
    fp = p.ravel()
    fz = z.ravel()
    bt = fp.dtype.type(beta)
    for n in range(fp.size):
        fp[n] = fz[n] + bt * fp[n]


@nb.njit(**_JIT)
def _inlet_rhs(m, b, g0):
    n0, n1, n2 = m.shape
    b[:] = 0.0
    for j in range(1, n1 - 1):
        for k in range(1, n2 - 1):
            b[1, j, k] = 2.0 * g0 * m[1, j, k]


@nb.njit(**_JIT)
def _linear_guess(m, x):
    """x = 1 - (i - 1/2) / n on the cluster: the exact field of a straight channel."""
    n0, n1, n2 = m.shape
    n = n0 - 2
    for i in range(1, n0 - 1):
        c = 1.0 - (i - 0.5) / n
        for j in range(1, n1 - 1):
            for k in range(1, n2 - 1):
                x[i, j, k] = m[i, j, k] * c


@nb.njit(**_JIT)
def _dissipation(m, x, g0, g1, g2):
    """Dissipation sum g (dc)^2 over all cluster links, boundary links included (float64).

    For the exact solution it equals the flux through the box (unit concentration drop); for an
    approximate one it exceeds it by the squared energy norm of the error, so it converges
    quadratically in the error and is a strict upper bound.
    """
    n0, n1, n2 = m.shape
    acc = 0.0
    for i in range(1, n0 - 1):
        for j in range(1, n1 - 1):
            for k in range(1, n2 - 1):
                if m[i, j, k]:
                    c = np.float64(x[i, j, k])
                    if m[i + 1, j, k]:
                        acc += g0 * (c - x[i + 1, j, k]) ** 2
                    if m[i, j + 1, k]:
                        acc += g1 * (c - x[i, j + 1, k]) ** 2
                    if m[i, j, k + 1]:
                        acc += g2 * (c - x[i, j, k + 1]) ** 2
                    if i == 1:
                        acc += 2.0 * g0 * (1.0 - c) ** 2
                    if i == n0 - 2:
                        acc += 2.0 * g0 * c * c
    return acc


@nb.njit(**_JIT)
def _face_fluxes(m, x, g0):
    """Flux entering through the inlet face and leaving through the outlet face."""
    n0, n1, n2 = m.shape
    fin = 0.0
    fout = 0.0
    for j in range(1, n1 - 1):
        for k in range(1, n2 - 1):
            fin += 2.0 * g0 * m[1, j, k] * (1.0 - x[1, j, k])
            fout += 2.0 * g0 * m[n0 - 2, j, k] * x[n0 - 2, j, k]
    return fin, fout


# ---------------------------------------------------------------------------------------------
# hierarchy and driver
# ---------------------------------------------------------------------------------------------


@dataclass
class _Level:
    G0: np.ndarray
    G1: np.ndarray
    G2: np.ndarray
    D: np.ndarray
    x: np.ndarray
    b: np.ndarray
    shifts: tuple[int, int, int]  # per axis 1 = pairs of the finer level's cells merged, 0 = kept


@dataclass
class _Direct:
    index: np.ndarray  # flat indices of active cells
    factor: tuple
    shape: tuple[int, int, int]


@dataclass(frozen=True)
class SolveStats:
    """Convergence record of one solve."""

    iterations: int
    relative_residual: float
    converged: bool
    levels: int
    flux_in: float
    flux_out: float
    dissipation: float = 0.0
    residual_history: tuple[float, ...] = field(default_factory=tuple)


def _coarse_shape(padded: tuple[int, ...], shifts: tuple[int, ...]) -> tuple[int, int, int]:
    """Padded shape of the next level (interior n -> ceil(n / 2) along merged axes)."""
    return tuple(((n - 2 + s) >> s) + 2 for n, s in zip(padded, shifts))  # type: ignore[return-value]


def _merge_axes(padded: tuple[int, ...], spacing: list[float]) -> tuple[int, int, int] | None:
    """Axes to merge in pairs at the next level (semi-coarsening on anisotropic grids).

    Aggregating across a weakly coupled direction (a long cell spacing, small conductance)
    gives a poor coarse correction, so an axis is merged only while its cell spacing is within
    a factor sqrt(2) of the shortest one; e.g. 20 x 10 x 10 nm voxels merge y and x first
    (20 x 20 x 20 nm), then all three.  ``None`` when no axis can be merged.
    """
    live = [a for a in range(3) if padded[a] - 2 > 1]
    if not live:
        return None
    h_min = min(spacing[a] for a in live)
    return tuple(int(a in live and spacing[a] <= math.sqrt(2.0) * h_min) for a in range(3))  # type: ignore[return-value]


def _dense_operator(lv: _Level) -> tuple[np.ndarray, np.ndarray]:
    """Dense matrix of the active cells of a (small) coarse level."""
    D = lv.D.astype(np.float64)
    active = np.flatnonzero(D.ravel() > 0)
    n = active.size
    pos = -np.ones(D.size, dtype=np.int64)
    pos[active] = np.arange(n)
    A = np.zeros((n, n))
    A[np.arange(n), np.arange(n)] = D.ravel()[active]
    shape = D.shape
    for axis, G in enumerate((lv.G0, lv.G1, lv.G2)):
        stride = int(np.prod(shape[axis + 1 :]))
        idx = np.argwhere(G > 0)
        if idx.size == 0:
            continue
        a = np.ravel_multi_index(idx.T, shape)
        b = a + stride
        ga = G[tuple(idx.T)].astype(np.float64)
        pa, pb = pos[a], pos[b]
        ok = (pa >= 0) & (pb >= 0)
        A[pa[ok], pb[ok]] -= ga[ok]
        A[pb[ok], pa[ok]] -= ga[ok]
    return A, active


class _Hierarchy:
    """Aggregation multigrid hierarchy for a cluster mask (transport along axis 0)."""

    def __init__(
        self,
        mask: np.ndarray,
        g: tuple[float, float, float],
        dtype: type,
        *,
        coarsest_cells: int = 800,
        alpha: float = 1.9,
    ) -> None:
        self.mask = mask
        self.g = tuple(dtype(v) for v in g)
        self.invd = np.zeros(mask.shape, dtype)
        _fine_inverse_diagonal(mask, self.invd, *self.g)
        self.row = np.zeros(mask.shape[2] + 1, dtype)
        self.dtype = dtype
        self.alpha = float(alpha)
        self.levels: list[_Level] = []
        spacing = [1.0 / math.sqrt(float(v)) for v in g]  # conductance g ~ 1 / h^2
        shifts = _merge_axes(mask.shape, spacing) or (1, 1, 1)
        self.levels.append(self._new_level(mask.shape, shifts, spacing))
        _fine_coarsen(mask, *self.g, *self._operator(self.levels[0]), *shifts)
        while True:
            lv = self.levels[-1]
            n_active = int(np.count_nonzero(lv.D > 0))
            shifts = _merge_axes(lv.D.shape, spacing)
            if n_active <= coarsest_cells or max(lv.D.shape) <= 4 or shifts is None:
                break
            self.levels.append(self._new_level(lv.D.shape, shifts, spacing))
            _c_coarsen(*self._operator(lv), *self._operator(self.levels[-1]), *shifts)
        A, active = _dense_operator(self.levels[-1])
        self.direct = _Direct(active, scipy.linalg.cho_factor(A), self.levels[-1].D.shape)

    def _new_level(self, finer: tuple[int, ...], shifts: tuple[int, int, int], spacing: list[float]) -> _Level:
        shape = _coarse_shape(finer, shifts)
        for a in range(3):
            spacing[a] *= 1 << shifts[a]
        arrays = [np.zeros(shape, self.dtype) for _ in range(4)]
        return _Level(*arrays, x=np.zeros(shape, self.dtype), b=np.zeros(shape, self.dtype), shifts=shifts)

    @staticmethod
    def _operator(lv: _Level) -> tuple[np.ndarray, ...]:
        return lv.G0, lv.G1, lv.G2, lv.D

    @property
    def n_levels(self) -> int:
        return len(self.levels) + 1

    def _solve_coarsest(self, lv: _Level) -> None:
        rhs = lv.b.ravel()[self.direct.index].astype(np.float64)
        sol = scipy.linalg.cho_solve(self.direct.factor, rhs)
        lv.x[:] = 0.0
        lv.x.ravel()[self.direct.index] = sol

    def _cycle(self, depth: int) -> None:
        lv = self.levels[depth]
        if depth == len(self.levels) - 1:
            self._solve_coarsest(lv)
            return
        _c_sgs(lv.G0, lv.G1, lv.G2, lv.D, lv.x, lv.b, True, True)
        nxt = self.levels[depth + 1]
        _c_residual_restrict(lv.G0, lv.G1, lv.G2, lv.D, lv.x, lv.b, nxt.b, *nxt.shifts)
        self._cycle(depth + 1)
        _c_prolong(lv.D, lv.x, nxt.x, self.alpha, *nxt.shifts)
        _c_sgs(lv.G0, lv.G1, lv.G2, lv.D, lv.x, lv.b, False, False)

    def apply(self, r: np.ndarray, z: np.ndarray) -> float:
        """z = M^-1 r (one symmetric V-cycle); returns r . z."""
        m = self.mask
        g0, g1, g2 = self.g
        first = self.levels[0]
        _fine_forward_restrict(self.invd, z, r, first.b, self.row, g0, g1, g2, *first.shifts)
        self._cycle(0)
        return _fine_backward(m, self.invd, z, r, first.x, self.alpha, g0, g1, g2, *first.shifts)


def solve_conductance(
    mask: np.ndarray,
    conductances: tuple[float, float, float],
    *,
    rtol: float = 1e-5,
    etol: float = 0.0,
    max_iter: int = 500,
    dtype: type = np.float32,
    alpha: float = 1.9,
) -> tuple[np.ndarray, SolveStats]:
    """Solve the fixed-concentration diffusion problem on a conducting cluster.

    Parameters
    ----------
    mask : ndarray of uint8, shape (n0, n1, n2)
        1 on the cluster that connects both faces normal to axis 0, 0 elsewhere.  Every
        nonzero voxel must be connected (6-connectivity) to a face; otherwise the system is
        singular.
    conductances : (g0, g1, g2)
        Conductance between face neighbours along each axis (any common scale).
    rtol : float
        Stop when ``||r|| <= rtol * ||b||``.
    etol : float
        Also stop when the last CG step lowered the Dirichlet energy (= the flux, at the
        solution) by less than ``etol`` times its value; 0 disables this test.  The reported
        dissipation then overestimates the exact flux by about ``etol`` (relative) at most.
    max_iter : int
        Iteration limit.
    dtype : numpy dtype
        Vector precision (float32 by default; float64 for references).
    alpha : float
        Over-correction weight of the aggregated coarse-grid correction.

    Returns
    -------
    concentration : ndarray of dtype
        Concentration field (1 at the inlet face, 0 at the outlet face), 0 outside the mask.
    stats : SolveStats
        Iterations, final residual, inlet and outlet fluxes.
    """
    m = np.zeros(tuple(n + 2 for n in mask.shape), dtype=np.uint8)
    m[1:-1, 1:-1, 1:-1] = mask
    shape = m.shape
    hier = _Hierarchy(m, tuple(conductances), dtype, alpha=alpha)
    g0, g1, g2 = hier.g
    x = np.zeros(shape, dtype)
    r = np.zeros(shape, dtype)
    _inlet_rhs(m, r, g0)
    bnorm = math.sqrt(_dot(r, r))
    history: list[float] = []
    if bnorm == 0.0:
        stats = SolveStats(0, 0.0, True, hier.n_levels, 0.0, 0.0, 0.0, ())
        return x[1:-1, 1:-1, 1:-1], stats
    p = np.zeros(shape, dtype)
    q = np.zeros(shape, dtype)  # holds A p, then the preconditioned residual z
    # Start from the straight-channel field: its energy error is O(1) of the flux instead of
    # O(n) for x = 0, which saves the first two or three iterations.
    _linear_guess(m, x)
    _fine_matvec_dot(m, x, q, g0, g1, g2)
    rel = math.sqrt(_axpy_norm(r, q, -1.0)) / bnorm  # r = b - A x0
    it = 0
    converged = rel <= rtol
    rz = hier.apply(r, q) if not converged else 0.0
    p[:] = q
    # Dirichlet energy of the iterate, E_k = E(x0) - sum_j alpha_j r_j.z_j (CG minimises it
    # monotonically; E_k - E_exact is the squared energy norm of the error).
    energy = _dissipation(m, x, float(g0), float(g1), float(g2))
    while not converged and it < max_iter:
        pq = _fine_matvec_dot(m, p, q, g0, g1, g2)
        if not pq > 0.0:
            break
        step = rz / pq
        rr = _update_xr(x, r, p, q, step)
        it += 1
        decrement = step * rz
        energy -= decrement
        rel = math.sqrt(rr) / bnorm
        history.append(rel)
        if rel <= rtol or (etol > 0 and decrement <= etol * energy):
            converged = True
            break
        rz_new = hier.apply(r, q)
        if not rz_new > 0.0:
            break
        _update_p(p, q, rz_new / rz)
        rz = rz_new
    del p, q, r
    fin, fout = _face_fluxes(m, x, g0)
    diss = _dissipation(m, x, float(g0), float(g1), float(g2))
    stats = SolveStats(it, rel, converged, hier.n_levels, fin, fout, diss, tuple(history))
    return x[1:-1, 1:-1, 1:-1], stats
