"""Connected clusters of a phase: sizes, percolation, through / dead-end / isolated shares.

Labelling is available whole-array (:func:`label_clusters`, scipy) and chunk by chunk
(:func:`label_clusters_chunked`, dask): every chunk is labelled on its own, then clusters that
touch across chunk borders (face, edge and corner neighbours as the connectivity allows) are
merged with a union-find over the border planes, so the result is the same partition as the
whole-array labelling.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import dask.array as da
import numpy as np
import scipy.ndimage as ndi
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from volrecon.analyze._common import AXIS_NAMES, as_numpy, check_volume, json_float
from volrecon.errors import InputError, ParameterError

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


def _face_pairs(lo: np.ndarray, hi: np.ndarray, connectivity: int) -> tuple[np.ndarray, np.ndarray]:
    """Label pairs that touch across a plane: ``lo`` the last plane before it, ``hi`` the first
    after it (face, edge and corner neighbours as the connectivity allows)."""
    shifts = [(a, b) for a in (-1, 0, 1) for b in (-1, 0, 1)
              if (abs(a) + abs(b) + 1) <= {6: 1, 18: 2, 26: 3}[int(connectivity)]]
    n1, n2 = lo.shape
    out_a, out_b = [np.zeros(0, lo.dtype)], [np.zeros(0, hi.dtype)]
    for d1, d2 in shifts:
        a = lo[max(0, -d1): n1 - max(0, d1), max(0, -d2): n2 - max(0, d2)]
        b = hi[max(0, d1): n1 + min(0, d1), max(0, d2): n2 + min(0, d2)]
        both = (a > 0) & (b > 0)
        out_a.append(a[both])
        out_b.append(b[both])
    return _unique_pairs(np.concatenate(out_a), np.concatenate(out_b))


def _unique_pairs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct ``(a[i], b[i])`` pairs.

    A face holds one pair per touching voxel but only as many distinct pairs as clusters cross
    it: keeping the distinct ones bounds the merge's memory by the clusters, not by the face area
    times the number of slabs.
    """
    if a.size < 2:
        return a, b
    top = int(b.max()) + 1
    if int(a.max()) < np.iinfo(np.int64).max // top:  # labels are >= 0: the key fits int64
        key = np.unique(a.astype(np.int64) * top + b.astype(np.int64))
        return (key // top).astype(a.dtype), (key % top).astype(b.dtype)
    pairs = np.unique(np.stack([a, b], axis=1), axis=0)
    return pairs[:, 0].copy(), pairs[:, 1].copy()


def _merge(pairs_a: list[np.ndarray], pairs_b: list[np.ndarray], total: int) -> np.ndarray:
    """Component of every provisional label ``0..total`` given the pairs that touch."""
    pa = np.concatenate(pairs_a) if pairs_a else np.zeros(0, np.int64)
    pb = np.concatenate(pairs_b) if pairs_b else np.zeros(0, np.int64)
    if not pa.size:
        return np.arange(total + 1)
    graph = coo_matrix((np.ones(pa.size, np.int8), (pa, pb)), shape=(total + 1, total + 1))
    return np.asarray(connected_components(graph, directed=False)[1])


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
    for axis in range(3):
        bounds = np.cumsum(glob.chunks[axis])[:-1]
        for bnd in bounds:
            lo = np.asarray(da.take(glob, [bnd - 1], axis=axis).compute()).squeeze(axis)
            hi = np.asarray(da.take(glob, [bnd], axis=axis).compute()).squeeze(axis)
            a, b = _face_pairs(lo, hi, connectivity)
            pairs_a.append(a)
            pairs_b.append(b)
    comp = _merge(pairs_a, pairs_b, total)
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
        Axis name -> whether one cluster joins the two ends of the domain along it.
    through_fraction, dead_end_fraction, isolated_fraction : dict
        Axis name -> share of the phase's voxels in clusters touching both ends / one end /
        neither end along that axis.  The ends are where each line of the domain stops, unless
        ``end_beyond`` (:func:`cluster_connectivity`) says what must lie beyond: the cathode's
        analysis (:func:`volrecon.analyze.analyze_volume`) counts, along the stacking axis, the
        other layers and the frame's cap but not a trench wall, and across it the frame or the
        volume's face but not a rough layer interface (since session 20; before, every stop of a
        line counted, and a void reaching a trench wall read as through the cell).
    reason : str or None
    resolvable_volume_nm3 : float
        Smallest cluster volume counted as resolved (0: every cluster).  ``count`` and the mean
        volume cover every cluster, down to single voxels; pieces smaller than what the imaging
        and the segmentation can keep dominate them (a phase thresholded at voxel scale holds
        many one-voxel pieces that no measurement recovers), so :meth:`to_dict` also gives the
        figures of the clusters at or above this volume under ``resolved``.
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
    resolvable_volume_nm3: float = 0.0

    def resolved(self) -> dict[str, Any]:
        """Figures of the clusters of at least :attr:`resolvable_volume_nm3` (JSON-safe).

        ``count`` and ``mean_volume_nm3`` of those clusters; ``below_count`` and
        ``below_fraction``: the clusters under that volume and their share of the phase's voxels.
        """
        sizes = np.asarray(self.sizes_voxels, dtype=np.float64) * self.voxel_volume_nm3
        # a relative tolerance: a cluster of exactly the stated volume counts as resolved
        big = sizes >= self.resolvable_volume_nm3 * (1 - 1e-9)
        total = float(sizes.sum())
        return {
            "min_volume_nm3": json_float(self.resolvable_volume_nm3),
            "count": int(big.sum()),
            "mean_volume_nm3": json_float(sizes[big].mean()) if big.any() else None,
            "below_count": int((~big).sum()),
            "below_fraction": json_float(sizes[~big].sum() / total) if total else None,
        }

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
            "resolved": self.resolved(),
            "units": {"largest_volume_nm3": "nm^3", "mean_volume_nm3": "nm^3",
                      "fractions": "1 (share of the phase's voxels)",
                      "resolved": "clusters of at least min_volume_nm3 (nm^3); count and mean_volume_nm3 "
                                  "above it cover every cluster",
                      "ends": "percolating and the through/dead-end/isolated shares: the ends along the stacking "
                              "axis are the other layers and the frame's cap (not a trench wall), across it the "
                              "frame or the volume face (not a layer interface); along z the first and last slice"},
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
    slab_voxels: int = 4_000_000,
    resolvable_volume_nm3: float = 0.0,
    end_beyond: Mapping[int, Any] | None = None,
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
    slab_voxels : int
        Without ``labels``, ``mask`` and ``domain`` (numpy or dask) are labelled in slabs of
        about this many voxels along z and merged across slab faces: the same clusters as
        whole-array labelling, with memory bounded by the slab instead of the volume.
    resolvable_volume_nm3 : float
        Smallest cluster volume counted under ``resolved`` (see :class:`ConnectivityResult`);
        0 counts every cluster there too.
    end_beyond : mapping of int to array_like of bool, optional
        Image-plane axis (1 or 2) -> what an end along it leads to (same shape as ``mask``): a
        line's first / last ``domain`` voxel is an end only where the voxel just before / after
        it lies in this mask or the line meets the volume face.  A domain is bounded by several
        things at once: a cathode along the stacking axis by the separator and the collector,
        where the electrode's ends are, but also, on the lines that run into a trench wall, by
        the frame; across the layer, by the trench walls (its sides), but also by the rough
        layer interfaces a line crosses.  Axes left out: every domain end counts.

    Returns
    -------
    ConnectivityResult

    Examples
    --------
    One 27-voxel cluster and two single voxels: three clusters, one of them resolved at 8 voxels.

    >>> m = np.zeros((9, 9, 9), bool)
    >>> m[1:4, 1:4, 1:4] = True
    >>> m[6, 6, 6] = m[6, 1, 6] = True
    >>> r = cluster_connectivity(m, resolvable_volume_nm3=8.0)
    >>> r.count, r.resolved()["count"], r.resolved()["mean_volume_nm3"]
    (3, 1, 27.0)
    """
    if not (math.isfinite(float(resolvable_volume_nm3)) and float(resolvable_volume_nm3) >= 0):
        raise ParameterError(f"resolvable_volume_nm3={resolvable_volume_nm3!r}: give a volume >= 0 (nm^3)")
    beyond = {int(a): b for a, b in (end_beyond or {}).items() if int(a) not in face_axes}
    if (domain is None and beyond) or not set(beyond) <= {1, 2}:
        raise ParameterError(f"end_beyond axes {sorted(beyond)}: give image-plane axes (1, 2) with a domain "
                             "(the milling axis's ends are the first and last slice: put 0 in face_axes)")
    from volrecon.analyze._common import voxel_triplet

    vs = voxel_triplet(voxel_size_nm)
    vvol = float(np.prod(vs))
    if labels is not None:
        lab = as_numpy(labels)
        n = int(lab.max(initial=0))
        sizes = np.bincount(lab.ravel(), minlength=n + 1)
        ends = {}
        for axis in range(3):
            dom = None if (domain is None or axis in face_axes) else np.asarray(as_numpy(domain), bool)
            out = None if axis not in beyond else np.asarray(as_numpy(beyond[axis]), bool)
            f, l_ = _ends(lab, dom, axis, out)
            ends[axis] = (np.unique(f), np.unique(l_))
        flags = {a: (np.zeros(n + 1, bool), np.zeros(n + 1, bool)) for a in range(3)}
        for a, (f, l_) in ends.items():
            flags[a][0][f] = True
            flags[a][1][l_] = True
        return _summarise(connectivity, vvol, sizes, flags, float(resolvable_volume_nm3))
    if not hasattr(mask, "shape"):
        mask = np.asarray(mask)
    if len(mask.shape) != 3:
        raise InputError(f"mask has {len(mask.shape)} dimension(s) {mask.shape}; pass a 3-D (z, y, x) volume")
    structure(connectivity)
    sizes, flags = _streamed_clusters(mask, connectivity, domain, face_axes, slab_voxels, beyond)
    return _summarise(connectivity, vvol, sizes, flags, float(resolvable_volume_nm3))


def _ends(lab: np.ndarray, dom: np.ndarray | None, axis: int,
          beyond: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Labels at the first and last voxel of every line along ``axis``: the array's faces, or the
    first / last ``dom`` voxel of each line that holds one (with ``beyond``: only where the voxel
    before / after it is in ``beyond`` or the line meets the array's face)."""
    if dom is None:
        return np.take(lab, 0, axis=axis).ravel(), np.take(lab, -1, axis=axis).ravel()
    n = dom.shape[axis]
    has = dom.any(axis=axis)
    i0 = np.argmax(dom, axis=axis)
    i1 = n - 1 - np.argmax(np.flip(dom, axis=axis), axis=axis)
    out = []
    for idx, step in ((i0, -1), (i1, 1)):
        keep = has
        if beyond is not None:
            nxt = idx + step
            inside = (nxt >= 0) & (nxt < n)
            leads = np.take_along_axis(beyond, np.expand_dims(np.clip(nxt, 0, n - 1), axis), axis).squeeze(axis)
            keep = has & (~inside | leads)
        out.append(np.take_along_axis(lab, np.expand_dims(idx, axis), axis).squeeze(axis)[keep])
    return out[0], out[1]


def _streamed_clusters(
    mask: Any, connectivity: int, domain: Any | None, face_axes: tuple[int, ...], slab_voxels: int,
    beyond: Mapping[int, Any],
) -> tuple[np.ndarray, dict[int, tuple[np.ndarray, np.ndarray]]]:
    """Cluster sizes and end flags without a whole-volume label image.

    Slabs along z are labelled on their own (int32, provisional labels unique over slabs), the
    labels that touch across each slab face are merged afterwards (a graph's connected
    components), and sizes and end flags are summed / or-ed per component: the same clusters as
    whole-array labelling, with memory bounded by the slab.
    """
    st = structure(connectivity)
    nz = mask.shape[0]
    step = max(1, int(slab_voxels) // max(1, int(np.prod(mask.shape[1:]))))
    z_dom = domain is not None and 0 not in face_axes
    sizes: list[np.ndarray] = [np.zeros(1, np.int64)]
    ends: dict[int, tuple[list[np.ndarray], list[np.ndarray]]] = {a: ([], []) for a in range(3)}
    pairs_a: list[np.ndarray] = []
    pairs_b: list[np.ndarray] = []
    z_first = z_last = None
    prev = None
    total = 0
    for z0 in range(0, nz, step):
        m = np.asarray(as_numpy(mask[z0:z0 + step]), bool)
        lab, n = ndi.label(m, structure=st)
        lab = lab.astype(np.int64 if total + n >= 2**31 else np.int32, copy=False)
        del m
        # count before the offset: a bincount over the offset labels would cost O(clusters so far)
        sizes.append(np.bincount(lab.ravel(), minlength=n + 1)[1:] if n else np.zeros(0, np.int64))
        if total:
            lab[lab > 0] += total
        dom = None if domain is None else np.asarray(as_numpy(domain[z0:z0 + step]), bool)
        for axis in (1, 2):
            out = None if axis not in beyond else np.asarray(as_numpy(beyond[axis][z0:z0 + step]), bool)
            f, l_ = _ends(lab, None if axis in face_axes else dom, axis, out)
            ends[axis][0].append(np.unique(f))
            ends[axis][1].append(np.unique(l_))
        if not z_dom:
            if z0 == 0:
                ends[0][0].append(np.unique(lab[0]))
            if z0 + step >= nz:
                ends[0][1].append(np.unique(lab[-1]))
        else:
            has = dom.any(axis=0)  # type: ignore[union-attr]
            f = np.take_along_axis(lab, np.argmax(dom, axis=0)[None], 0)[0]  # type: ignore[arg-type]
            l_ = np.take_along_axis(lab, (dom.shape[0] - 1 - np.argmax(dom[::-1], axis=0))[None], 0)[0]  # type: ignore[union-attr]
            if z_first is None:
                z_first, z_seen, z_last = np.zeros(has.shape, np.int64), np.zeros(has.shape, bool), np.zeros(has.shape, np.int64)
            new = has & ~z_seen
            z_first[new] = f[new]
            z_seen |= has
            z_last[has] = l_[has]
        if prev is not None:
            a, b = _face_pairs(prev, lab[0], connectivity)
            pairs_a.append(a)
            pairs_b.append(b)
        prev = lab[-1].copy()
        total += n
        del lab, dom
    if z_dom and z_first is not None:
        ends[0][0].append(np.unique(z_first[z_seen]))
        ends[0][1].append(np.unique(z_last[z_seen]))
    comp = _merge(pairs_a, pairs_b, total)
    n_comp = int(comp.max(initial=0)) + 1
    # component sizes (background, label 0, is a component of its own and counts nothing)
    size_c = np.bincount(comp, weights=np.concatenate(sizes).astype(np.float64), minlength=n_comp)
    size_c = np.rint(size_c).astype(np.int64)
    size_c[comp[0]] = 0
    flags: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for axis, (fs, ls) in ends.items():
        first, last = np.zeros(n_comp, bool), np.zeros(n_comp, bool)
        first[comp[np.concatenate(fs + [np.zeros(0, np.int64)]).astype(np.int64)]] = True
        last[comp[np.concatenate(ls + [np.zeros(0, np.int64)]).astype(np.int64)]] = True
        flags[axis] = (first, last)
    # put the background first, as label 0 of a label image
    order = np.concatenate([[comp[0]], np.delete(np.arange(n_comp), comp[0])])
    return size_c[order], {a: (f[order], l_[order]) for a, (f, l_) in flags.items()}


def _summarise(connectivity: int, vvol: float, sizes_all: np.ndarray,
               flags: dict[int, tuple[np.ndarray, np.ndarray]], resolvable_nm3: float = 0.0) -> ConnectivityResult:
    """The statistics from per-cluster sizes and end flags (index 0: the background)."""
    sizes = sizes_all[1:]
    total = int(sizes.sum())
    if total == 0:
        nan = float("nan")
        return ConnectivityResult(
            connectivity, 0, 0, nan, (), vvol,
            {a: False for a in AXIS_NAMES}, {a: nan for a in AXIS_NAMES},
            {a: nan for a in AXIS_NAMES}, {a: nan for a in AXIS_NAMES},
            reason="the phase is absent", resolvable_volume_nm3=resolvable_nm3,
        )
    order = np.sort(sizes[sizes > 0])[::-1]
    perc: dict[str, bool] = {}
    through: dict[str, float] = {}
    dead: dict[str, float] = {}
    iso: dict[str, float] = {}
    for axis, name in enumerate(AXIS_NAMES):
        first, last = flags[axis]
        both = (first & last)[1:]
        one = (first ^ last)[1:]
        perc[name] = bool(both.any())
        through[name] = float(sizes[both].sum() / total)
        dead[name] = float(sizes[one].sum() / total)
        iso[name] = float(sizes[~(both | one)].sum() / total)
    return ConnectivityResult(
        connectivity, total, int(order.size), float(order[0] / total),
        tuple(int(s) for s in order), vvol, perc, through, dead, iso, resolvable_volume_nm3=resolvable_nm3,
    )
