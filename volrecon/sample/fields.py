"""Smooth Gaussian random fields that can be evaluated one slice (or one line) at a time.

A field is stored as white noise smoothed on a *coarse* node grid (spacing about a third of the
correlation length) and evaluated anywhere by separable Keys cubic convolution.  A slice of a 3D
field therefore costs two small matrix products, independent of the other slices, which is what
lets the phantom be generated slice by slice, in any order, with bounded memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi
from scipy import sparse

_MARGIN = 4  # coarse nodes beyond the requested extent on each side


def keys_weights(t: np.ndarray) -> np.ndarray:
    """Keys (a = -0.5) cubic convolution weights for fractional offsets ``t`` in [0, 1).

    Returns an array of shape ``t.shape + (4,)`` for the nodes at offsets -1, 0, 1, 2.
    """
    t = np.asarray(t, dtype=np.float64)
    t2, t3 = t * t, t * t * t
    return np.stack(
        [
            (-t3 + 2 * t2 - t) / 2,
            (3 * t3 - 5 * t2 + 2) / 2,
            (-3 * t3 + 4 * t2 + t) / 2,
            (t3 - t2) / 2,
        ],
        axis=-1,
    )


def interpolation_matrix(coords: np.ndarray, n_nodes: int) -> sparse.csr_matrix:
    """Sparse matrix ``W`` with ``W @ node_values`` = cubic interpolation at ``coords``.

    Parameters
    ----------
    coords : ndarray
        Positions in node units (0 = first node).
    n_nodes : int
        Number of nodes; positions are clipped so that all four taps exist.
    """
    coords = np.clip(np.asarray(coords, dtype=np.float64), 1.0, n_nodes - 2.000001)
    base = np.floor(coords).astype(np.intp)
    w = keys_weights(coords - base)
    rows = np.repeat(np.arange(coords.size), 4)
    cols = (base[:, None] + np.arange(-1, 3)[None, :]).ravel()
    return sparse.csr_matrix((w.ravel(), (rows, cols)), shape=(coords.size, n_nodes))


@dataclass
class SmoothField:
    """Zero-mean, unit-variance smooth random field over a box in nm (2D or 3D).

    Parameters
    ----------
    lo_nm, hi_nm : sequence of float
        Corners of the box the field must cover (axis order as used by the caller,
        ``(z, y, x)`` for volumes, ``(z, x)`` for surfaces).
    corr_nm : float
        Correlation length (about the size of a blob).
    rng : numpy.random.Generator
        Source of the white noise.
    """

    lo_nm: tuple[float, ...]
    hi_nm: tuple[float, ...]
    corr_nm: float
    rng: np.random.Generator
    nodes: np.ndarray = field(init=False, repr=False)
    spacing: float = field(init=False)
    _cache: dict = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.spacing = float(self.corr_nm) / 3.0
        shape = tuple(
            int(np.ceil((h - l) / self.spacing)) + 1 + 2 * _MARGIN for l, h in zip(self.lo_nm, self.hi_nm)
        )
        noise = self.rng.standard_normal(shape)
        smooth = ndi.gaussian_filter(noise, sigma=1.2, mode="wrap")
        smooth -= smooth.mean()
        smooth /= smooth.std() + 1e-12
        self.nodes = smooth  # float64: results must not depend on the evaluated block's shape

    def _node_coords(self, axis: int, positions_nm: np.ndarray) -> np.ndarray:
        return (np.asarray(positions_nm, dtype=np.float64) - self.lo_nm[axis]) / self.spacing + _MARGIN

    def _matrix(self, axis: int, positions_nm: np.ndarray) -> sparse.csr_matrix:
        positions_nm = np.asarray(positions_nm, dtype=np.float64)
        key = (axis, positions_nm.size, float(positions_nm[0]), float(positions_nm[-1]))
        mat = self._cache.get(key)
        if mat is None:
            mat = interpolation_matrix(self._node_coords(axis, positions_nm), self.nodes.shape[axis])
            if len(self._cache) > 16:
                self._cache.clear()
            self._cache[key] = mat
        return mat

    def _first_axis_at(self, first_nm: float) -> np.ndarray:
        c = float(np.clip(self._node_coords(0, np.array([first_nm]))[0], 1.0, self.nodes.shape[0] - 2.000001))
        i = int(np.floor(c))
        w = keys_weights(np.array([c - i]))[0]
        return np.tensordot(w, self.nodes[i - 1 : i + 3], axes=(0, 0))

    def plane(self, z_nm: float, ys_nm: np.ndarray, xs_nm: np.ndarray) -> np.ndarray:
        """Values of a 3D field on the grid ``ys_nm x xs_nm`` at depth ``z_nm`` (float32)."""
        coarse = self._first_axis_at(z_nm)
        tmp = self._matrix(1, ys_nm) @ coarse  # (ny, nodes_x), sparse @ dense
        return np.ascontiguousarray((self._matrix(2, xs_nm) @ tmp.T).T, dtype=np.float32)

    def line(self, z_nm: float, xs_nm: np.ndarray) -> np.ndarray:
        """Values of a 2D field along ``xs_nm`` at ``z_nm`` (float64)."""
        coarse = self._first_axis_at(z_nm)
        return (self._matrix(1, xs_nm) @ coarse).astype(np.float64)
