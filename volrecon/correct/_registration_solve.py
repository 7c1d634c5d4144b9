"""Robust weighted least squares: one drift trajectory from many measurements.

Unknowns per axis: the trajectory ``t[z]`` and one offset per absolute source (each absolute
source — cap edge, a trench wall, a user ROI — has its own arbitrary zero). Observations:

* relative (pairs of slices ``a < b``, any baseline): ``t[b] - t[a] = d``  (sigma ``s``);
* absolute (one slice, one axis, one source): ``t[z] - c[source] = m``  (sigma ``s``);
* a very weak first-difference prior ``t[z+1] - t[z] = 0`` that only matters where nothing was
  measured (blank slices are interpolated linearly, disconnected pieces stay connected);
* the gauge ``sum(t) = 0``.

Iteratively reweighted (Tukey biweight on the residual normalised by its sigma and a robust
scale) so that outlier pairs lose their weight; pairs still far off at the end are rejected.
Absolute anchors keep their weight (screen them before, see ``screen_series``).
Genuine jumps are measured consistently by every pair that spans them, so they survive.
The posterior standard deviation of each ``t[z]`` is returned as the expected residual.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

PRIOR_SIGMA_PX = 50.0


@dataclass
class Observations:
    """Measurements collected during the streaming pass (both axes at once)."""

    n: int
    pair_a: list[int] = field(default_factory=list)
    pair_b: list[int] = field(default_factory=list)
    pair_d: list[tuple[float, float]] = field(default_factory=list)
    pair_sigma: list[float] = field(default_factory=list)
    abs_z: list[int] = field(default_factory=list)
    abs_axis: list[int] = field(default_factory=list)
    abs_value: list[float] = field(default_factory=list)
    abs_sigma: list[float] = field(default_factory=list)
    abs_source: list[str] = field(default_factory=list)

    def add_pair(self, a: int, b: int, shift: np.ndarray, sigma: float) -> None:
        self.pair_a.append(a)
        self.pair_b.append(b)
        self.pair_d.append((float(shift[0]), float(shift[1])))
        self.pair_sigma.append(float(sigma))

    def only_baselines(self, baselines: tuple[int, ...]) -> Observations:
        """Copy keeping the pairs whose ``b - a`` is in ``baselines`` and every absolute measurement."""
        out = Observations(self.n, abs_z=list(self.abs_z), abs_axis=list(self.abs_axis), abs_value=list(self.abs_value),
                           abs_sigma=list(self.abs_sigma), abs_source=list(self.abs_source))  # fmt: skip
        for a, b, d, s in zip(self.pair_a, self.pair_b, self.pair_d, self.pair_sigma):
            if b - a in baselines:
                out.add_pair(a, b, np.asarray(d), s)
        return out

    def add_absolute(self, z: int, axis: int, value: float, sigma: float, source: str) -> None:
        self.abs_z.append(z)
        self.abs_axis.append(axis)
        self.abs_value.append(float(value))
        self.abs_sigma.append(float(sigma))
        self.abs_source.append(source)


@dataclass(frozen=True)
class Solution:
    """Trajectory, posterior sigma per slice and axis, and which pairs were rejected."""

    shifts: np.ndarray  # (Z, 2)
    sigma: np.ndarray  # (Z, 2)
    pair_rejected: np.ndarray  # (P,) bool
    pair_residual: np.ndarray  # (P, 2)
    abs_rejected: np.ndarray  # (A,) bool
    scale: float


def _design(obs: Observations, axis: int, sources: list[str]):
    n, ns = obs.n, len(sources)
    rows, cols, vals, rhs, sig = [], [], [], [], []
    r = 0
    for a, b, d, s in zip(obs.pair_a, obs.pair_b, obs.pair_d, obs.pair_sigma):
        rows += [r, r]
        cols += [b, a]
        vals += [1.0, -1.0]
        rhs.append(d[axis])
        sig.append(s)
        r += 1
    abs_index = []
    for i, (z, ax, m, s, src) in enumerate(
        zip(obs.abs_z, obs.abs_axis, obs.abs_value, obs.abs_sigma, obs.abs_source)
    ):
        if ax != axis:
            continue
        rows += [r, r]
        cols += [z, n + sources.index(src)]
        vals += [1.0, -1.0]
        rhs.append(m)
        sig.append(s)
        abs_index.append(i)
        r += 1
    matrix = sp.csr_matrix((vals, (rows, cols)), shape=(r, n + ns))
    return matrix, np.asarray(rhs, float), np.asarray(sig, float), abs_index


def _normal_matrix(matrix: sp.csr_matrix, weights: np.ndarray, n: int, ns: int) -> sp.csr_matrix:
    normal = (matrix.T @ sp.diags(weights) @ matrix).tocsr()
    # weak first-difference prior and the gauge sum(t) = 0
    diff = sp.diags([np.ones(n - 1), -np.ones(n - 1)], [0, 1], shape=(n - 1, n + ns))
    normal = normal + (diff.T @ diff) / PRIOR_SIGMA_PX**2
    gauge = sp.csr_matrix(np.r_[np.ones(n), np.zeros(ns)][None, :])
    # a very weak pull of each source offset toward 0 keeps a source whose measurements were all
    # rejected from making the system singular
    offsets = sp.diags(np.r_[np.zeros(n), np.full(ns, 1.0 / (1e3 * PRIOR_SIGMA_PX) ** 2)])
    return (normal + gauge.T @ gauge + offsets).tocsc()


def solve_trajectory(
    obs: Observations,
    *,
    iterations: int = 6,
    reject: float = 4.0,
    tukey: float = 4.685,
    posterior: bool = True,
) -> Solution:
    """Robustly solve both axes; see the module docstring.

    Parameters
    ----------
    obs : Observations
        Relative and absolute measurements.
    iterations : int
        IRLS iterations.
    reject : float
        A measurement whose residual exceeds ``reject`` robust sigmas at the end is rejected.
    tukey : float
        Tukey biweight tuning constant (in robust sigmas).
    posterior : bool
        Compute the posterior sigma of each slice (``False``: NaN, for intermediate solves).
    """
    n = obs.n
    axis_sources = [sorted({s for s, a in zip(obs.abs_source, obs.abs_axis) if a == axis}) for axis in (0, 1)]
    designs = [_design(obs, axis, axis_sources[axis]) for axis in (0, 1)]
    n_pairs, n_abs = len(obs.pair_a), len(obs.abs_z)
    robust = [np.ones(d[0].shape[0]) for d in designs]
    solutions = [np.zeros(n + len(axis_sources[0])), np.zeros(n + len(axis_sources[1]))]
    scale = 1.0
    scales = np.ones(0)
    for it in range(iterations + 1):
        for axis in (0, 1):
            matrix, rhs, sig, _ = designs[axis]
            weights = robust[axis] / (sig * _inflation(sig.size, n_pairs, scale)) ** 2
            normal = _normal_matrix(matrix, weights, n, len(axis_sources[axis]))
            solutions[axis] = spla.spsolve(normal, matrix.T @ (weights * rhs))
        # joint normalised residual of each pair (both axes), per-axis for absolutes
        norm = []
        for axis in (0, 1):
            matrix, rhs, sig, _ = designs[axis]
            norm.append((matrix @ solutions[axis] - rhs) / sig)
        pair_norm = np.hypot(norm[0][:n_pairs], norm[1][:n_pairs]) / np.sqrt(2)
        all_norm = np.concatenate([pair_norm, np.abs(norm[0][n_pairs:]), np.abs(norm[1][n_pairs:])])
        if all_norm.size == 0:
            break
        # robust scale per kind: structure pairs and absolute anchors have different error
        # models, a disagreement between them must not make the anchors look like outliers
        n_abs_rows = all_norm.size - n_pairs
        group = np.r_[np.zeros(n_pairs), np.ones(n_abs_rows)].astype(bool)
        scales = np.ones_like(all_norm)
        for members in (~group, group):
            if members.any():
                scales[members] = max(1.4826 * float(np.median(all_norm[members])), 1.0)
        scale = float(scales[:n_pairs].max()) if n_pairs else 1.0
        if it == iterations:
            break
        u = all_norm / (tukey * scales)
        w = np.where(u < 1, (1 - u**2) ** 2, 0.0)
        w = np.maximum(w, 1e-6)
        # only pairs are reweighted: anchors are absolute and screened against their own
        # series beforehand, a biased structure estimate must not talk them down
        na0 = designs[0][0].shape[0] - n_pairs
        na1 = designs[1][0].shape[0] - n_pairs
        robust[0] = np.concatenate([w[:n_pairs], np.ones(na0)])
        robust[1] = np.concatenate([w[:n_pairs], np.ones(na1)])
    pair_rejected = pair_norm > reject * scale
    abs_rejected = np.zeros(n_abs, dtype=bool)
    # final solve without the rejected measurements; posterior covariance
    shifts = np.zeros((n, 2))
    sigma = np.zeros((n, 2))
    residual = np.zeros((n_pairs, 2))
    for axis in (0, 1):
        matrix, rhs, sig, idx = designs[axis]
        keep = np.concatenate([~pair_rejected, ~abs_rejected[idx]]) if idx else ~pair_rejected
        weights = keep / (sig * _inflation(sig.size, n_pairs, scale)) ** 2
        normal = _normal_matrix(matrix, weights, n, len(axis_sources[axis]))
        sol = spla.spsolve(normal, matrix.T @ (weights * rhs))
        shifts[:, axis] = sol[:n]
        residual[:, axis] = (matrix @ sol - rhs)[:n_pairs]
        sigma[:, axis] = _posterior_sigma(normal, n) if posterior else np.nan
    return Solution(shifts, sigma, pair_rejected, residual, abs_rejected, scale)


def _inflation(rows: int, n_pairs: int, scale: float) -> np.ndarray:
    """Per-row sigma factor: pairs carry their robust scale (their sigmas are a model)."""
    out = np.ones(rows)
    out[:n_pairs] = max(1.0, scale)
    return out


def _posterior_sigma(normal: sp.csc_matrix, n: int) -> np.ndarray:
    """Square root of the diagonal of the inverse normal matrix for the first ``n`` unknowns.

    By sparse LU, column blocks at a time: a dense inverse goes through a multithreaded BLAS
    that costs ~100x more on a busy machine, for a matrix of a few hundred unknowns.
    """
    size = normal.shape[0]
    lu = spla.splu(normal)
    out = np.empty(n)
    for start in range(0, n, 256):
        stop = min(n, start + 256)
        rhs = np.zeros((size, stop - start))
        rhs[np.arange(start, stop), np.arange(stop - start)] = 1.0
        out[start:stop] = np.sqrt(np.clip(lu.solve(rhs)[np.arange(start, stop), np.arange(stop - start)], 0, None))
    return out


def screen_series(z: np.ndarray, values: np.ndarray, *, width: int = 5, limit_px: float = 4.0) -> np.ndarray:
    """Mask of the absolute measurements that agree with their own running median.

    A median over ``width`` neighbouring measurements keeps genuine jumps; a value further than
    ``max(limit_px, 6 robust sigmas)`` from it is an outlier (e.g. an edge fit that slipped).
    """
    order = np.argsort(z)
    v = np.asarray(values, float)[order]
    if v.size < width:
        return np.ones(v.size, dtype=bool)
    half = width // 2
    padded = np.pad(v, half, mode="edge")
    med = np.median(np.lib.stride_tricks.sliding_window_view(padded, width), axis=1)
    dev = np.abs(v - med)
    limit = max(limit_px, 6 * 1.4826 * float(np.median(dev)))
    keep = np.empty(v.size, dtype=bool)
    keep[order] = dev <= limit
    return keep
