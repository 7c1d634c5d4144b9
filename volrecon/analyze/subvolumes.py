"""Per-sub-volume figures: the samples a cohort comparison bootstraps over within one run.

The volume is cut into ``splits`` blocks across the two in-plane axes (the stacking axis is kept
whole, so each block is a full cross-section of the cell) and the cheap, additive figures are
measured in each block.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from volrecon.analyze._common import chunk_rows, lazy_volume, phase_map, read, region_map, release_rows, z_slabs


def _ratio(num: int, den: int) -> float:
    return float(num) / den if den else float("nan")


def subvolume_table(
    labels: np.ndarray,
    regions: np.ndarray,
    *,
    through_plane_axis: int,
    phase_names: Mapping[str, int] | None = None,
    region_names: Mapping[str, int] | None = None,
    sei_map: np.ndarray | None = None,
    splits: tuple[int, int] = (2, 2),
    slab_voxels: int = 4_000_000,
) -> list[dict[str, Any]]:
    """Cathode porosity, void fraction, void share of pore and SEI mean thickness per block.

    Parameters
    ----------
    labels, regions : ndarray or dask array (z, y, x)
        Phase and region labels (read slab by slab along z).
    through_plane_axis : int
        Stacking axis (kept whole in every block).
    phase_names, region_names : mapping, optional
        Name -> label value (default vocabulary when omitted).
    sei_map : ndarray, optional
        SEI thickness map (nm, NaN where not measured) over the two in-plane axes, as
        :func:`volrecon.analyze.sei_thickness` returns it.
    splits : (int, int)
        Number of blocks along each in-plane axis, in axis order.
    slab_voxels : int
        Voxels read at once.

    Returns
    -------
    list of dict
        One row per block with ``block`` and the dotted ``metrics.json`` keys it measures.
    """
    phases = phase_map(phase_names)
    regs = region_map(region_names)
    lab = lazy_volume(labels, "labels")
    reg = lazy_volume(regions, "regions")
    lab, reg = (chunk_rows(v, slab_voxels) for v in (lab, reg))  # each z chunk read once
    inplane = [a for a in range(3) if a != through_plane_axis]
    edges = [np.linspace(0, lab.shape[a], n + 1).astype(int) for a, n in zip(inplane, splits)]
    # voxel counts (cathode, void in it, electrolyte in it) per block, summed slab by slab along z
    counts = np.zeros((splits[0], splits[1], 3), np.int64)
    cath_v, void_v, elec_v = regs.get("cathode", -1), phases.get("void", -1), phases.get("electrolyte", -1)
    for z0, z1 in z_slabs(lab, slab_voxels):
        cathode = read(reg, np.s_[z0:z1]) == cath_v
        lab_s = read(lab, np.s_[z0:z1])
        masks = (cathode, (lab_s == void_v) & cathode, (lab_s == elec_v) & cathode)
        del lab_s
        for i in range(splits[0]):
            for j in range(splits[1]):
                index: list[slice] = [slice(None)] * 3
                index[inplane[0]] = _local(edges[0][i], edges[0][i + 1], inplane[0], z0, z1)
                index[inplane[1]] = _local(edges[1][j], edges[1][j + 1], inplane[1], z0, z1)
                counts[i, j] += [int(np.count_nonzero(m[tuple(index)])) for m in masks]
    release_rows(lab, reg)
    rows = []
    for i in range(splits[0]):
        for j in range(splits[1]):
            n_cat, n_void, n_elec = (int(c) for c in counts[i, j])
            n_pore = n_void + n_elec
            row: dict[str, Any] = {
                "block": f"{i},{j}",
                "regions.cathode.porosity": _ratio(n_pore, n_cat),
                "regions.cathode.void_fraction": _ratio(n_void, n_cat),
                "regions.cathode.void_share_of_pore": _ratio(n_void, n_pore),
            }
            if sei_map is not None and sei_map.size:
                part = np.asarray(sei_map)[edges[0][i]: edges[0][i + 1], edges[1][j]: edges[1][j + 1]]
                finite = part[np.isfinite(part)]
                row["regions.anode.sei_thickness_nm.mean"] = float(finite.mean()) if finite.size else float("nan")
            rows.append(row)
    return rows


def _local(a: int, b: int, axis: int, z0: int, z1: int) -> slice:
    """Block range ``[a, b)`` along ``axis`` within the slab ``[z0, z1)`` (slab coordinates along z)."""
    if axis != 0:
        return slice(a, b)
    return slice(min(max(a - z0, 0), z1 - z0), min(max(b - z0, 0), z1 - z0))
