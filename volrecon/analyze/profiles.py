"""Depth profiles: phase fractions against distance from an interface (nm bins)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import edt
import numpy as np

from volrecon.analyze._common import json_float, voxel_triplet

__all__ = ["DepthProfile", "depth_profile"]


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
    nan = np.full(0, np.nan)
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
    off = np.float32(0.5 * min(vs))
    dmax = float(np.max(d, where=w, initial=np.float32(0.0)) - off)
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
    # binned slab by slab: only the distance map is held whole
    step = max(1, 1_000_000 // max(1, d.shape[1] * d.shape[2]))
    for z0 in range(0, d.shape[0], step):
        ws = w[z0:z0 + step]
        which = np.clip(np.digitize(d[z0:z0 + step][ws] - off, edges) - 1, 0, nb - 1)
        lab = lab_box[z0:z0 + step][ws]
        keep = lab != frame if frame is not None else np.ones(lab.shape, bool)
        voxels += np.bincount(which[keep], minlength=nb)
        for name in names:
            counts[name] += np.bincount(which[lab == phase_names[name]], minlength=nb)
    fr: dict[str, np.ndarray] = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        for name in names:
            fr[name] = np.where(voxels > 0, counts[name] / voxels, np.nan)
    del nan
    return DepthProfile(edges, voxels, fr, reference)
