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
conductances between blocks).  The coarse correction is over-weighted to compensate for the
piecewise-constant interpolation.  The smoother is red-black Gauss-Seidel, applied in reverse
colour order after the coarse correction so that the preconditioner stays symmetric.

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

_JIT = dict(nopython=True, cache=True, nogil=True, fastmath=False)

# ---------------------------------------------------------------------------------------------
# finest level: cluster mask + constant conductances (g0, g1, g2), Dirichlet on axis-0 faces
# ---------------------------------------------------------------------------------------------


@nb.njit(**_JIT)
def _fine_diag(m, i, j, k, g0, g1, g2):
    n0, n1, n2 = m.shape
    d = 0.0
    if i > 0 and m[i - 1, j, k]:
        d += g0
    if i < n0 - 1 and m[i + 1, j, k]:
        d += g0
    if i == 0:
        d += 2.0 * g0
    if i == n0 - 1:
        d += 2.0 * g0
    if j > 0 and m[i, j - 1, k]:
        d += g1
    if j < n1 - 1 and m[i, j + 1, k]:
        d += g1
    if k > 0 and m[i, j, k - 1]:
        d += g2
    if k < n2 - 1 and m[i, j, k + 1]:
        d += g2
    return d


@nb.njit(**_JIT)
def _fine_offdiag_sum(m, x, i, j, k, g0, g1, g2):
    """Sum of g * x over cluster neighbours (x is zero outside the cluster)."""
    n0, n1, n2 = m.shape
    s = 0.0
    if i > 0:
        s += g0 * x[i - 1, j, k]
    if i < n0 - 1:
        s += g0 * x[i + 1, j, k]
    if j > 0:
        s += g1 * x[i, j - 1, k]
    if j < n1 - 1:
        s += g1 * x[i, j + 1, k]
    if k > 0:
        s += g2 * x[i, j, k - 1]
    if k < n2 - 1:
        s += g2 * x[i, j, k + 1]
    return s


@nb.njit(**_JIT)
def _fine_matvec_dot(m, x, out, g0, g1, g2):
    """out = A x on the cluster; returns x . A x (float64)."""
    n0, n1, n2 = m.shape
    acc = 0.0
    for i in range(n0):
        for j in range(n1):
            for k in range(n2):
                if m[i, j, k]:
                    v = _fine_diag(m, i, j, k, g0, g1, g2) * x[i, j, k] - _fine_offdiag_sum(
                        m, x, i, j, k, g0, g1, g2
                    )
                    out[i, j, k] = v
                    acc += v * x[i, j, k]
                else:
                    out[i, j, k] = 0.0
    return acc


@nb.njit(**_JIT)
def _fine_gs(m, x, b, colour, g0, g1, g2):
    """One colour of red-black Gauss-Seidel (x zero outside the cluster)."""
    n0, n1, n2 = m.shape
    for i in range(n0):
        for j in range(n1):
            start = (i + j + colour) % 2
            for k in range(start, n2, 2):
                if m[i, j, k]:
                    d = _fine_diag(m, i, j, k, g0, g1, g2)
                    x[i, j, k] = (b[i, j, k] + _fine_offdiag_sum(m, x, i, j, k, g0, g1, g2)) / d


@nb.njit(**_JIT)
def _fine_gs_first(m, x, b, colour, g0, g1, g2):
    """First half-sweep from a zero guess: x = b / diag on one colour, 0 elsewhere."""
    n0, n1, n2 = m.shape
    for i in range(n0):
        for j in range(n1):
            for k in range(n2):
                if m[i, j, k] and (i + j + k + colour) % 2 == 0:
                    x[i, j, k] = b[i, j, k] / _fine_diag(m, i, j, k, g0, g1, g2)
                else:
                    x[i, j, k] = 0.0


@nb.njit(**_JIT)
def _fine_residual_restrict(m, x, b, rc, g0, g1, g2):
    """rc[I] = sum over block I of (b - A x) (fused residual and restriction)."""
    n0, n1, n2 = m.shape
    rc[:] = 0.0
    for i in range(n0):
        for j in range(n1):
            for k in range(n2):
                if m[i, j, k]:
                    r = b[i, j, k] - (
                        _fine_diag(m, i, j, k, g0, g1, g2) * x[i, j, k]
                        - _fine_offdiag_sum(m, x, i, j, k, g0, g1, g2)
                    )
                    rc[i // 2, j // 2, k // 2] += r


@nb.njit(**_JIT)
def _fine_prolong(m, x, ec, alpha):
    n0, n1, n2 = m.shape
    for i in range(n0):
        for j in range(n1):
            for k in range(n2):
                if m[i, j, k]:
                    x[i, j, k] += alpha * ec[i // 2, j // 2, k // 2]


@nb.njit(**_JIT)
def _fine_coarsen(m, g0, g1, g2, G0, G1, G2, D):
    """Galerkin (aggregation) operator of the first coarse level."""
    n0, n1, n2 = m.shape
    G0[:] = 0.0
    G1[:] = 0.0
    G2[:] = 0.0
    D[:] = 0.0
    for i in range(n0):
        for j in range(n1):
            for k in range(n2):
                if not m[i, j, k]:
                    continue
                I, J, K = i // 2, j // 2, k // 2
                # external conductances of the block add to the coarse diagonal; internal
                # ones cancel (P^T A P).  Dirichlet terms add to the diagonal.
                if i == 0:
                    D[I, J, K] += 2.0 * g0
                if i == n0 - 1:
                    D[I, J, K] += 2.0 * g0
                if i < n0 - 1 and m[i + 1, j, k] and (i + 1) // 2 != I:
                    G0[I, J, K] += g0
                    D[I, J, K] += g0
                    D[I + 1, J, K] += g0
                if j < n1 - 1 and m[i, j + 1, k] and (j + 1) // 2 != J:
                    G1[I, J, K] += g1
                    D[I, J, K] += g1
                    D[I, J + 1, K] += g1
                if k < n2 - 1 and m[i, j, k + 1] and (k + 1) // 2 != K:
                    G2[I, J, K] += g2
                    D[I, J, K] += g2
                    D[I, J, K + 1] += g2


# ---------------------------------------------------------------------------------------------
# coarse levels: arrays G0, G1, G2 (conductance to the +1 neighbour) and diagonal D
# ---------------------------------------------------------------------------------------------


@nb.njit(**_JIT)
def _c_offdiag_sum(G0, G1, G2, x, i, j, k):
    n0, n1, n2 = x.shape
    s = 0.0
    if i > 0:
        s += G0[i - 1, j, k] * x[i - 1, j, k]
    if i < n0 - 1:
        s += G0[i, j, k] * x[i + 1, j, k]
    if j > 0:
        s += G1[i, j - 1, k] * x[i, j - 1, k]
    if j < n1 - 1:
        s += G1[i, j, k] * x[i, j + 1, k]
    if k > 0:
        s += G2[i, j, k - 1] * x[i, j, k - 1]
    if k < n2 - 1:
        s += G2[i, j, k] * x[i, j, k + 1]
    return s


@nb.njit(**_JIT)
def _c_gs(G0, G1, G2, D, x, b, colour, first):
    n0, n1, n2 = x.shape
    for i in range(n0):
        for j in range(n1):
            start = (i + j + colour) % 2
            for k in range(start, n2, 2):
                d = D[i, j, k]
                if d > 0.0:
                    if first:
                        x[i, j, k] = b[i, j, k] / d
                    else:
                        x[i, j, k] = (b[i, j, k] + _c_offdiag_sum(G0, G1, G2, x, i, j, k)) / d


@nb.njit(**_JIT)
def _c_residual_restrict(G0, G1, G2, D, x, b, rc):
    n0, n1, n2 = x.shape
    rc[:] = 0.0
    for i in range(n0):
        for j in range(n1):
            for k in range(n2):
                d = D[i, j, k]
                if d > 0.0:
                    r = b[i, j, k] - (d * x[i, j, k] - _c_offdiag_sum(G0, G1, G2, x, i, j, k))
                    rc[i // 2, j // 2, k // 2] += r


@nb.njit(**_JIT)
def _c_prolong(D, x, ec, alpha):
    n0, n1, n2 = x.shape
    for i in range(n0):
        for j in range(n1):
            for k in range(n2):
                if D[i, j, k] > 0.0:
                    x[i, j, k] += alpha * ec[i // 2, j // 2, k // 2]


@nb.njit(**_JIT)
def _c_coarsen(G0, G1, G2, D, H0, H1, H2, E):
    n0, n1, n2 = D.shape
    H0[:] = 0.0
    H1[:] = 0.0
    H2[:] = 0.0
    E[:] = 0.0
    for i in range(n0):
        for j in range(n1):
            for k in range(n2):
                if D[i, j, k] <= 0.0:
                    continue
                I, J, K = i // 2, j // 2, k // 2
                # the fine diagonal minus twice the internal conductances
                E[I, J, K] += D[i, j, k]
                if i < n0 - 1:
                    g = G0[i, j, k]
                    if (i + 1) // 2 != I:
                        H0[I, J, K] += g
                    else:
                        E[I, J, K] -= 2.0 * g
                if j < n1 - 1:
                    g = G1[i, j, k]
                    if (j + 1) // 2 != J:
                        H1[I, J, K] += g
                    else:
                        E[I, J, K] -= 2.0 * g
                if k < n2 - 1:
                    g = G2[i, j, k]
                    if (k + 1) // 2 != K:
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
    acc = 0.0
    for n in range(fx.size):
        fx[n] += alpha * fp[n]
        v = fr[n] - alpha * fq[n]
        fr[n] = v
        acc += v * v
    return acc


@nb.njit(**_JIT)
def _update_p(p, z, beta):
    fp = p.ravel()
    fz = z.ravel()
    for n in range(fp.size):
        fp[n] = fz[n] + beta * fp[n]


@nb.njit(**_JIT)
def _inlet_rhs(m, b, g0):
    n0, n1, n2 = m.shape
    b[:] = 0.0
    for j in range(n1):
        for k in range(n2):
            if m[0, j, k]:
                b[0, j, k] = 2.0 * g0


@nb.njit(**_JIT)
def _face_fluxes(m, x, g0):
    """Flux entering through the inlet face and leaving through the outlet face."""
    n0, n1, n2 = m.shape
    fin = 0.0
    fout = 0.0
    for j in range(n1):
        for k in range(n2):
            if m[0, j, k]:
                fin += 2.0 * g0 * (1.0 - x[0, j, k])
            if m[n0 - 1, j, k]:
                fout += 2.0 * g0 * x[n0 - 1, j, k]
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
    rc: np.ndarray | None = None  # restricted residual for the next level


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
    residual_history: tuple[float, ...] = field(default_factory=tuple)


def _coarse_shape(shape: tuple[int, ...]) -> tuple[int, int, int]:
    return tuple((n + 1) // 2 for n in shape)  # type: ignore[return-value]


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
        coarsest_cells: int = 1500,
        alpha: float = 1.9,
    ) -> None:
        self.mask = mask
        self.g = tuple(float(v) for v in g)
        self.dtype = dtype
        self.alpha = float(alpha)
        self.levels: list[_Level] = []
        shape = _coarse_shape(mask.shape)
        arrays = [np.empty(shape, dtype) for _ in range(4)]
        _fine_coarsen(mask, *self.g, *arrays)
        self.levels.append(_Level(*arrays, x=np.zeros(shape, dtype), b=np.zeros(shape, dtype)))
        self.fine_rc = np.zeros(shape, dtype)
        while True:
            lv = self.levels[-1]
            n_active = int(np.count_nonzero(lv.D > 0))
            if n_active <= coarsest_cells or max(lv.D.shape) <= 2:
                break
            shape = _coarse_shape(lv.D.shape)
            arrays = [np.empty(shape, dtype) for _ in range(4)]
            _c_coarsen(lv.G0, lv.G1, lv.G2, lv.D, *arrays)
            lv.rc = np.zeros(shape, dtype)
            self.levels.append(
                _Level(*arrays, x=np.zeros(shape, dtype), b=np.zeros(shape, dtype))
            )
        A, active = _dense_operator(self.levels[-1])
        self.direct = _Direct(active, scipy.linalg.cho_factor(A), self.levels[-1].D.shape)

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
        lv.x[:] = 0.0
        _c_gs(lv.G0, lv.G1, lv.G2, lv.D, lv.x, lv.b, 0, True)
        _c_gs(lv.G0, lv.G1, lv.G2, lv.D, lv.x, lv.b, 1, False)
        nxt = self.levels[depth + 1]
        _c_residual_restrict(lv.G0, lv.G1, lv.G2, lv.D, lv.x, lv.b, nxt.b)
        self._cycle(depth + 1)
        _c_prolong(lv.D, lv.x, nxt.x, self.alpha)
        _c_gs(lv.G0, lv.G1, lv.G2, lv.D, lv.x, lv.b, 1, False)
        _c_gs(lv.G0, lv.G1, lv.G2, lv.D, lv.x, lv.b, 0, False)

    def apply(self, r: np.ndarray, z: np.ndarray) -> None:
        """z = M^-1 r (one symmetric V-cycle)."""
        m = self.mask
        g0, g1, g2 = self.g
        _fine_gs_first(m, z, r, 0, g0, g1, g2)
        _fine_gs(m, z, r, 1, g0, g1, g2)
        first = self.levels[0]
        _fine_residual_restrict(m, z, r, first.b, g0, g1, g2)
        self._cycle(0)
        _fine_prolong(m, z, first.x, self.alpha)
        _fine_gs(m, z, r, 1, g0, g1, g2)
        _fine_gs(m, z, r, 0, g0, g1, g2)


def solve_conductance(
    mask: np.ndarray,
    conductances: tuple[float, float, float],
    *,
    rtol: float = 1e-5,
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
    m = np.ascontiguousarray(mask, dtype=np.uint8)
    g0, g1, g2 = (float(v) for v in conductances)
    shape = m.shape
    hier = _Hierarchy(m, (g0, g1, g2), dtype, alpha=alpha)
    x = np.zeros(shape, dtype)
    r = np.empty(shape, dtype)
    _inlet_rhs(m, r, g0)  # r = b - A*0 = b
    bnorm = math.sqrt(_dot(r, r))
    history: list[float] = []
    if bnorm == 0.0:
        stats = SolveStats(0, 0.0, True, hier.n_levels, 0.0, 0.0, ())
        return x, stats
    z = np.empty(shape, dtype)
    p = np.empty(shape, dtype)
    q = np.empty(shape, dtype)
    hier.apply(r, z)
    p[:] = z
    rz = _dot(r, z)
    rel = 1.0
    it = 0
    converged = False
    while it < max_iter:
        pq = _fine_matvec_dot(m, p, q, g0, g1, g2)
        if pq <= 0.0:
            break
        a = rz / pq
        rr = _update_xr(x, r, p, q, a)
        it += 1
        rel = math.sqrt(rr) / bnorm
        history.append(rel)
        if rel <= rtol:
            converged = True
            break
        hier.apply(r, z)
        rz_new = _dot(r, z)
        _update_p(p, z, rz_new / rz)
        rz = rz_new
    fin, fout = _face_fluxes(m, x, g0)
    stats = SolveStats(it, rel, converged, hier.n_levels, fin, fout, tuple(history))
    return x, stats
