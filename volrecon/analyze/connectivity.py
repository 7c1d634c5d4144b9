"""Connected clusters of a phase: sizes, percolation, through / dead-end / isolated shares.

Labelling is available whole-array (:func:`label_clusters`, scipy) and chunk by chunk
(:func:`label_clusters_chunked`, dask): every chunk is labelled on its own, then clusters that
touch across chunk borders (face, edge and corner neighbours as the connectivity allows) are
merged with a union-find over the border planes, so the result is the same partition as the
whole-array labelling.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import dask.array as da
import numpy as np
import scipy.ndimage as ndi
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from volrecon.analyze._common import AXIS_NAMES, as_numpy, check_volume, json_float
from volrecon.errors import ParameterError

__all__ = [
    "ConnectivityResult",
    "cluster_connectivity",
    "label_clusters",
    "label_clusters_chunked",
    "structure",
]


def structure(connectivity: int) -> np.ndarray:
    """3x3x3 structuring element for 6-, 18- or 26-connectivity."""
    rank = {6: 1, 18: 2, 26: 3}.get(int(connectivity))
    if rank is None:
        raise ParameterError(f"connectivity={connectivity!r} must be 6, 18 or 26")
    return ndi.generate_binary_structure(3, rank)


def label_clusters(mask: Any, *, connectivity: int = 6) -> tuple[np.ndarray, int]:
    """Label connected clusters of ``mask`` (whole array, int32 labels 1..n)."""
    arr = check_volume(mask, "mask").astype(bool, copy=False)
    lab, n = ndi.label(arr, structure=structure(connectivity))
    return lab.astype(np.int32, copy=False), int(n)


def _label_block(block: np.ndarray, st: np.ndarray) -> np.ndarray:
    lab, _ = ndi.label(block, structure=st)
    return lab.astype(np.int64)


def label_clusters_chunked(
    mask: Any, *, connectivity: int = 6, chunks: Any = (64, 256, 256)
) -> tuple[da.Array, int]:
    """Label clusters chunk by chunk and merge across chunk borders.

    Parameters
    ----------
    mask : numpy or dask array of bool, shape (z, y, x)
    connectivity : {6, 18, 26}
    chunks : dask chunk specification used when ``mask`` is a numpy array (a dask array keeps
        its own chunks).

    Returns
    -------
    labels : dask array of int64
        Labels 1..n (0 = background), the same partition as :func:`label_clusters`; label
        numbers may differ.
    n : int
        Number of clusters.
    """
    st = structure(connectivity)
    arr = mask if isinstance(mask, da.Array) else da.from_array(np.asarray(mask), chunks=chunks)
    if arr.ndim != 3:
        raise ParameterError(f"mask has {arr.ndim} dimensions; pass a 3-D (z, y, x) volume")
    arr = arr.astype(bool)
    local = arr.map_blocks(_label_block, st, dtype=np.int64)
    # offsets: make labels unique over blocks
    maxima = local.map_blocks(lambda b: np.array([[[b.max(initial=0)]]]), chunks=(1, 1, 1),
                              dtype=np.int64).compute()
    flat = maxima.ravel()
    offsets = np.concatenate([[0], np.cumsum(flat)[:-1]]).reshape(maxima.shape)
    total = int(flat.sum())

    def _shift(block: np.ndarray, block_info: Any = None) -> np.ndarray:
        loc = block_info[0]["chunk-location"]
        return np.where(block > 0, block + offsets[loc], 0)

    glob = local.map_blocks(_shift, dtype=np.int64)
    glob = glob.persist()
    # equivalences across every chunk border plane
    pairs_a: list[np.ndarray] = []
    pairs_b: list[np.ndarray] = []
    shifts = [(a, b) for a in (-1, 0, 1) for b in (-1, 0, 1)
              if (abs(a) + abs(b) + 1) <= {6: 1, 18: 2, 26: 3}[int(connectivity)]]
    for axis in range(3):
        bounds = np.cumsum(glob.chunks[axis])[:-1]
        for bnd in bounds:
            lo = np.asarray(da.take(glob, [bnd - 1], axis=axis).compute()).squeeze(axis)
            hi = np.asarray(da.take(glob, [bnd], axis=axis).compute()).squeeze(axis)
            n1, n2 = lo.shape
            for d1, d2 in shifts:
                a = lo[max(0, -d1): n1 - max(0, d1), max(0, -d2): n2 - max(0, d2)]
                b = hi[max(0, d1): n1 + min(0, d1), max(0, d2): n2 + min(0, d2)]
                both = (a > 0) & (b > 0)
                if both.any():
                    pairs_a.append(a[both])
                    pairs_b.append(b[both])
    if pairs_a:
        pa = np.concatenate(pairs_a)
        pb = np.concatenate(pairs_b)
        graph = coo_matrix((np.ones(pa.size, np.int8), (pa, pb)), shape=(total + 1, total + 1))
        n_comp, comp = connected_components(graph, directed=False)
    else:
        comp = np.arange(total + 1)
    # compact: background 0, clusters 1..n in order of first appearance of their component
    comp = np.asarray(comp)
    root = comp[1:]
    _, first_idx, inverse = np.unique(root, return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first_idx))
    lut = np.zeros(total + 1, dtype=np.int64)
    lut[1:] = order[inverse] + 1
    n = int(first_idx.size)
    return glob.map_blocks(lambda b: lut[b], dtype=np.int64), n


@dataclass(frozen=True)
class ConnectivityResult:
    """Connected clusters of one phase.

    Attributes
    ----------
    connectivity : int
        6, 18 or 26.
    voxels : int
        Voxels of the phase.
    count : int
        Number of clusters.
    largest_fraction : float
        Share of the phase's voxels in the largest cluster (nan when absent).
    sizes_voxels : tuple of int
        Cluster sizes, largest first.
    voxel_volume_nm3 : float
        Volume of one voxel.
    percolating : dict
        Axis name -> whether one cluster joins the two faces normal to it.
    through_fraction, dead_end_fraction, isolated_fraction : dict
        Axis name -> share of the phase's voxels in clusters touching both faces / one face /
        neither face normal to that axis.
    reason : str or None
    """

    connectivity: int
    voxels: int
    count: int
    largest_fraction: float
    sizes_voxels: tuple[int, ...]
    voxel_volume_nm3: float
    percolating: dict[str, bool] = field(default_factory=dict)
    through_fraction: dict[str, float] = field(default_factory=dict)
    dead_end_fraction: dict[str, float] = field(default_factory=dict)
    isolated_fraction: dict[str, float] = field(default_factory=dict)
    reason: str | None = None

    def to_dict(self, *, max_sizes: int = 0) -> dict[str, Any]:
        sizes = np.asarray(self.sizes_voxels, dtype=np.float64)
        out: dict[str, Any] = {
            "connectivity": self.connectivity,
            "voxels": self.voxels,
            "count": self.count,
            "largest_fraction": json_float(self.largest_fraction),
            "largest_volume_nm3": json_float(sizes[0] * self.voxel_volume_nm3) if sizes.size else 0.0,
            "mean_volume_nm3": json_float(sizes.mean() * self.voxel_volume_nm3) if sizes.size else None,
            "percolating": dict(self.percolating),
            "through_fraction": {k: json_float(v) for k, v in self.through_fraction.items()},
            "dead_end_fraction": {k: json_float(v) for k, v in self.dead_end_fraction.items()},
            "isolated_fraction": {k: json_float(v) for k, v in self.isolated_fraction.items()},
            "units": {"largest_volume_nm3": "nm^3", "mean_volume_nm3": "nm^3",
                      "fractions": "1 (share of the phase's voxels)"},
        }
        if max_sizes:
            out["sizes_voxels"] = [int(s) for s in self.sizes_voxels[:max_sizes]]
        if self.reason:
            out["reason"] = self.reason
        return out


def cluster_connectivity(
    mask: Any,
    *,
    connectivity: int = 6,
    voxel_size_nm: Any = (1.0, 1.0, 1.0),
    labels: np.ndarray | None = None,
    domain: Any | None = None,
    face_axes: tuple[int, ...] = (),
) -> ConnectivityResult:
    """Cluster statistics of a phase mask.

    Parameters
    ----------
    mask : array_like of bool, shape (z, y, x)
    connectivity : {6, 18, 26}
    voxel_size_nm : float or (float, float, float)
    labels : ndarray, optional
        Precomputed cluster labels of ``mask`` (e.g. from :func:`label_clusters_chunked`).
    domain : array_like of bool, optional
        The region analysed (e.g. the cathode).  A cluster touches an end along an axis when it
        holds the first / last domain voxel of some line along that axis; without ``domain``
        the ends are the volume faces.
    face_axes : tuple of int
        Axes whose ends are the volume faces even when ``domain`` is given (e.g. the milling
        axis z of a slice-and-view stack, where the first and last slice bound the block and a
        rough layer interface crossing a line along z is not an end).

    Returns
    -------
    ConnectivityResult
    """
    from volrecon.analyze._common import voxel_triplet

    vs = voxel_triplet(voxel_size_nm)
    vvol = float(np.prod(vs))
    if labels is None:
        lab, n = label_clusters(mask, connectivity=connectivity)
    else:
        lab = as_numpy(labels)
        n = int(lab.max(initial=0))
    sizes = np.bincount(lab.ravel(), minlength=n + 1)[1:]
    total = int(sizes.sum())
    if total == 0:
        nan = float("nan")
        return ConnectivityResult(
            connectivity, 0, 0, nan, (), vvol,
            {a: False for a in AXIS_NAMES}, {a: nan for a in AXIS_NAMES},
            {a: nan for a in AXIS_NAMES}, {a: nan for a in AXIS_NAMES},
            reason="the phase is absent",
        )
    order = np.sort(sizes[sizes > 0])[::-1]
    perc: dict[str, bool] = {}
    through: dict[str, float] = {}
    dead: dict[str, float] = {}
    iso: dict[str, float] = {}
    for axis, name in enumerate(AXIS_NAMES):
        first = np.zeros(n + 1, bool)
        last = np.zeros(n + 1, bool)
        if domain is None or axis in face_axes:
            first[np.unique(np.take(lab, 0, axis=axis))] = True
            last[np.unique(np.take(lab, -1, axis=axis))] = True
        else:
            dom = np.asarray(domain, bool)
            has = dom.any(axis=axis)
            i0 = np.expand_dims(np.argmax(dom, axis=axis), axis)
            i1 = np.expand_dims(dom.shape[axis] - 1 - np.argmax(np.flip(dom, axis=axis), axis=axis), axis)
            first[np.unique(np.take_along_axis(lab, i0, axis).squeeze(axis)[has])] = True
            last[np.unique(np.take_along_axis(lab, i1, axis).squeeze(axis)[has])] = True
        first[0] = last[0] = False
        both = (first & last)[1:]
        one = (first ^ last)[1:]
        perc[name] = bool(both.any())
        through[name] = float(sizes[both].sum() / total)
        dead[name] = float(sizes[one].sum() / total)
        iso[name] = float(sizes[~(both | one)].sum() / total)
    return ConnectivityResult(
        connectivity, total, int(order.size), float(order[0] / total),
        tuple(int(s) for s in order), vvol, perc, through, dead, iso,
    )
