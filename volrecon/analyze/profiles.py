"""Depth profiles: phase fractions against distance from an interface (nm bins)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

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
    w, lab_box = within[sl_t], labels[sl_t]
    step = max(1, 1_000_000 // max(1, src.shape[1] * src.shape[2]))
    slabs = [(z0, min(src.shape[0], z0 + step)) for z0 in range(0, src.shape[0], step)]
    return _binned(lambda z0, z1: (src[z0:z1], w[z0:z1], lab_box[z0:z1]), src.shape, slabs, phase_names, vs, bin_nm,
                   reference)


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
    from an exact separable transform streamed along z (:mod:`volrecon.analyze._edt_slabs`),
    once for the largest distance (which sets the bins) and once more to count the voxels.

    Parameters
    ----------
    labels, regions : numpy or dask array of int, shape (z, y, x)
        Phase and region images (a dask array is read only slab by slab inside ``box``).
    box : 3 slices
        The crop (z, y, x).
    within, source : int
        Region values profiled and measured from.
    slab_voxels : int
        Voxels read at once (the transform holds about 20 bytes per slab voxel), rounded to
        whole z chunks of a dask ``regions``.

    Other parameters are those of :func:`depth_profile`.
    """
    vs = voxel_triplet(voxel_size_nm)
    z_lo = box[0].start
    shape = tuple(s.stop - s.start for s in box)
    slabs = [(s.start - z_lo, s.stop - z_lo) for s in box_slabs(box, slab_voxels, regions)]
    seen = touched = False
    for z0, z1 in slabs:
        reg = read(regions, (slice(z_lo + z0, z_lo + z1), box[1], box[2]))
        seen, touched = seen or bool((reg == within).any()), touched or bool((reg == source).any())
    if not touched and not source_outside:
        return DepthProfile(np.zeros(1), np.zeros(0, int), {}, reference,
                            reason=f"no voxels to measure from ({reference} absent)")
    if not seen:
        return DepthProfile(np.zeros(1), np.zeros(0, int), {}, reference, reason="no voxels to profile")
    if not touched:
        return DepthProfile(np.zeros(1), np.zeros(0, int), {}, reference,
                            reason=f"the {reference} does not touch the profiled region")

    def slab(z0: int, z1: int) -> tuple[np.ndarray, np.ndarray, Any]:
        index = (slice(z_lo + z0, z_lo + z1), box[1], box[2])
        reg = read(regions, index)
        return reg == source, reg == within, lambda: read(labels, index)

    return _binned(slab, shape, slabs, phase_names, vs, bin_nm, reference)


def _binned(slab: Any, shape: tuple[int, ...], slabs: list[tuple[int, int]], phase_names: Mapping[str, int],
            vs: tuple[float, float, float], bin_nm: float | None, reference: str) -> DepthProfile:
    """The profile from ``slab(z0, z1) -> (source, within, labels)`` (labels may be a callable reading them).

    Two passes of the distance transform: the first finds the largest distance of a ``within``
    voxel (it sets the bins), the second counts the voxels per bin and phase.
    """
    held: dict[str, Any] = {}

    def distances() -> Any:
        def source(z0: int, z1: int) -> np.ndarray:
            held["src"], held["within"], held["labels"] = slab(z0, z1)
            return held["src"]

        for z0, z1, d in edt_slabs(source, shape[0], shape[1:], slabs, vs):
            yield d, held["within"], held["labels"]

    off = np.float32(0.5 * min(vs))
    top = np.float32(0.0)
    for d, w, _ in distances():
        top = max(top, np.max(d, where=w, initial=np.float32(0.0)))
    dmax = float(top - off)
    if bin_nm is None:
        bin_nm = max(max(vs), dmax / 40.0)
    edges = np.arange(0.0, dmax + bin_nm, bin_nm)
    if edges.size < 2:
        edges = np.array([0.0, bin_nm])
    nb = edges.size - 1
    frame = phase_names.get("frame")
    names = [name for name in phase_names if name != "frame"]
    voxels = np.zeros(nb, np.int64)
    counts = {name: np.zeros(nb, np.int64) for name in names}
    for d, w, lab in distances():
        if not w.any():
            continue
        which = np.clip(np.digitize(d[w] - off, edges) - 1, 0, nb - 1)
        lab = (lab() if callable(lab) else lab)[w]
        voxels += np.bincount(which[lab != frame] if frame is not None else which, minlength=nb)
        for name in names:
            counts[name] += np.bincount(which[lab == phase_names[name]], minlength=nb)
    with np.errstate(invalid="ignore", divide="ignore"):
        fr = {name: np.where(voxels > 0, counts[name] / voxels, np.nan) for name in names}
    return DepthProfile(edges, voxels, fr, reference)
