"""Depth profiles: phase fractions against distance from an interface (nm bins)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import edt
import numpy as np

from volrecon.analyze._common import box_slabs, json_float, read, voxel_triplet
from volrecon.analyze._edt_slabs import edt_slabs

__all__ = ["DepthProfile", "depth_profile", "depth_profile_slabs"]


@dataclass(frozen=True)
class DepthProfile:
    """Phase fractions per distance bin.

    Attributes
    ----------
    bin_edges_nm : ndarray
        Distance bin edges (nm) from the reference interface.
    voxels : ndarray
        Specimen voxels per bin.
    fractions : dict
        Phase name -> fraction per bin (nan for empty bins).
    reference : str
        What the distance is measured from.
    reason : str or None
    """

    bin_edges_nm: np.ndarray
    voxels: np.ndarray
    fractions: dict[str, np.ndarray]
    reference: str
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "bin_edges_nm": [float(v) for v in self.bin_edges_nm],
            "voxels": [int(v) for v in self.voxels],
            "phase_fractions": {k: [json_float(x) for x in v] for k, v in self.fractions.items()},
            "units": {"bin_edges_nm": "nm", "phase_fractions": "1"},
            **({"reason": self.reason} if self.reason else {}),
        }

    def rows(self) -> list[dict[str, Any]]:
        """Table rows (one per bin) for CSV output."""
        out = []
        for i in range(len(self.voxels)):
            row: dict[str, Any] = {"distance_from_nm": float(self.bin_edges_nm[i]),
                                   "distance_to_nm": float(self.bin_edges_nm[i + 1]),
                                   "voxels": int(self.voxels[i])}
            row.update({k: float(v[i]) for k, v in self.fractions.items()})
            out.append(row)
        return out


def depth_profile(
    labels: np.ndarray,
    within: np.ndarray,
    source: np.ndarray,
    *,
    phase_names: Mapping[str, int],
    voxel_size_nm: Any,
    bin_nm: float | None = None,
    reference: str = "separator|cathode interface",
    source_outside: bool = False,
) -> DepthProfile:
    """Phase fractions of ``within`` voxels against their distance from ``source`` voxels.

    The distance is the anisotropic Euclidean distance (nm) from each voxel centre to the
    nearest ``source`` voxel centre, minus half a voxel along the mean so that the first bin
    starts at the interface.  Bins default to ~40 over the depth (at least one voxel wide).

    ``source_outside`` says that the arrays are a crop of a volume whose ``source`` voxels lie
    outside it (the crop then reports that the source does not touch the profiled region).
    """
    vs = voxel_triplet(voxel_size_nm)
    if not source.any() and not source_outside:
        return DepthProfile(np.zeros(1), np.zeros(0, int), {}, reference,
                            reason=f"no voxels to measure from ({reference} absent)")
    if not within.any():
        return DepthProfile(np.zeros(1), np.zeros(0, int), {}, reference, reason="no voxels to profile")
    # crop to the region's bounding box grown by one voxel (the interface lies beside it)
    sl = []
    for a in range(3):
        other = tuple(b for b in range(3) if b != a)
        idx = np.flatnonzero(within.any(axis=other))
        sl.append(slice(max(0, idx[0] - 1), min(within.shape[a], idx[-1] + 2)))
    sl_t = tuple(sl)
    src = source[sl_t]
    if not src.any():
        return DepthProfile(np.zeros(1), np.zeros(0, int), {}, reference,
                            reason=f"the {reference} does not touch the profiled region")
    d = edt.edt(~src, anisotropy=vs, black_border=False, parallel=1).astype(np.float32, copy=False)
    del src
    w = within[sl_t]
    lab_box = labels[sl_t]
    counts = _DistanceCounts(phase_names)
    step = max(1, 1_000_000 // max(1, d.shape[1] * d.shape[2]))
    for z0 in range(0, d.shape[0], step):
        ws = w[z0:z0 + step]
        counts.add(d[z0:z0 + step][ws], lab_box[z0:z0 + step][ws])
    return counts.profile(vs, bin_nm, reference)


def depth_profile_slabs(
    labels: Any,
    regions: Any,
    *,
    box: tuple[slice, slice, slice],
    within: int,
    source: int,
    phase_names: Mapping[str, int],
    voxel_size_nm: Any,
    bin_nm: float | None = None,
    reference: str = "separator|cathode interface",
    source_outside: bool = False,
    slab_voxels: int = 1_000_000,
) -> DepthProfile:
    """:func:`depth_profile` of ``regions == within`` from ``regions == source`` in ``box``, read slab by slab.

    Equal to ``depth_profile(labels[box], regions[box] == within, regions[box] == source, ...)``
    when ``box`` is the bounding box of the ``within`` voxels grown by one voxel (what
    :func:`depth_profile` crops to), but only a few slabs along z are held: the distances come
    from an exact separable transform streamed along z (:mod:`volrecon.analyze._edt_slabs`) and
    the voxels are counted per distinct distance before they are binned.

    Parameters
    ----------
    labels, regions : numpy or dask array of int, shape (z, y, x)
        Phase and region images (a dask array is read only slab by slab inside ``box``).
    box : 3 slices
        The crop (z, y, x).
    within, source : int
        Region values profiled and measured from.
    slab_voxels : int
        Voxels read at once (the transform and the counting hold about 50 bytes per slab voxel).

    Other parameters are those of :func:`depth_profile`.
    """
    vs = voxel_triplet(voxel_size_nm)
    z_lo = box[0].start
    slabs = [(s.start - z_lo, s.stop - z_lo) for s in box_slabs(box, slab_voxels)]
    held: dict[str, np.ndarray] = {}

    def source_of(z0: int, z1: int) -> np.ndarray:
        held["regions"] = read(regions, (slice(z_lo + z0, z_lo + z1), box[1], box[2]))
        return held["regions"] == source

    counts = _DistanceCounts(phase_names)
    plane = (box[1].stop - box[1].start, box[2].stop - box[2].start)
    touched = seen = False
    for z0, z1, d in edt_slabs(source_of, box[0].stop - z_lo, plane, slabs, vs):
        touched = touched or bool(np.isfinite(d[0, 0, 0]))  # one source anywhere makes every distance finite
        ws = held["regions"] == within
        seen = seen or bool(ws.any())
        if touched and ws.any():
            counts.add(d[ws], read(labels, (slice(z_lo + z0, z_lo + z1), box[1], box[2]))[ws])
    if not touched and not source_outside:
        return DepthProfile(np.zeros(1), np.zeros(0, int), {}, reference,
                            reason=f"no voxels to measure from ({reference} absent)")
    if not seen:
        return DepthProfile(np.zeros(1), np.zeros(0, int), {}, reference, reason="no voxels to profile")
    if not touched:
        return DepthProfile(np.zeros(1), np.zeros(0, int), {}, reference,
                            reason=f"the {reference} does not touch the profiled region")
    return counts.profile(vs, bin_nm, reference)


class _DistanceCounts:
    """Voxel counts per distinct distance and phase, binned once the largest distance is known.

    Distances on a voxel grid take few distinct values (sums of squared multiples of the voxel
    size), so the counts stay small whatever the number of voxels, and binning them at the end
    gives exactly what binning every voxel would.
    """

    def __init__(self, phase_names: Mapping[str, int]) -> None:
        self._frame = phase_names.get("frame")
        self._names = [name for name in phase_names if name != "frame"]
        self._values = [phase_names[name] for name in self._names]
        self.keys = np.zeros(0, np.float32)
        self.counts = np.zeros((0, 1 + len(self._names)), np.int64)  # kept (not frame), then one per phase

    def add(self, d: np.ndarray, lab: np.ndarray) -> None:
        """Count the voxels of distances ``d`` (float32) and labels ``lab`` (1-D, same length)."""
        if d.size == 0:
            return
        u, inv = np.unique(d, return_inverse=True)
        inv = inv.ravel()
        kept = inv[lab != self._frame] if self._frame is not None else inv
        cols = [np.bincount(kept, minlength=u.size)] + [np.bincount(inv[lab == v], minlength=u.size) for v in self._values]
        keys = np.union1d(self.keys, u)
        merged = np.zeros((keys.size, self.counts.shape[1]), np.int64)
        merged[np.searchsorted(keys, self.keys)] += self.counts
        merged[np.searchsorted(keys, u)] += np.stack(cols, axis=1)
        self.keys, self.counts = keys, merged

    def profile(self, vs: tuple[float, float, float], bin_nm: float | None, reference: str) -> DepthProfile:
        """Bins of ``bin_nm`` (default ~40 over the depth, at least one voxel) from the interface."""
        off = np.float32(0.5 * min(vs))
        dmax = float(np.max(self.keys, initial=np.float32(0.0)) - off)
        if bin_nm is None:
            bin_nm = max(max(vs), dmax / 40.0)
        edges = np.arange(0.0, dmax + bin_nm, bin_nm)
        if edges.size < 2:
            edges = np.array([0.0, bin_nm])
        nb = edges.size - 1
        which = np.clip(np.digitize(self.keys - off, edges) - 1, 0, nb - 1)
        binned = np.zeros((nb, self.counts.shape[1]), np.int64)
        np.add.at(binned, which, self.counts)
        voxels = binned[:, 0]
        fr: dict[str, np.ndarray] = {}
        with np.errstate(invalid="ignore", divide="ignore"):
            for i, name in enumerate(self._names):
                fr[name] = np.where(voxels > 0, binned[:, 1 + i] / voxels, np.nan)
        return DepthProfile(edges, voxels, fr, reference)
