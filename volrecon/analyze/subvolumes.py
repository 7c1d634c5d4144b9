"""Per-sub-volume figures: the samples a cohort comparison bootstraps over within one run.

The volume is cut into ``splits`` blocks across the two in-plane axes (the stacking axis is kept
whole, so each block is a full cross-section of the cell) and the cheap, additive figures are
measured in each block.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from volrecon.analyze._common import phase_map, region_map


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
) -> list[dict[str, Any]]:
    """Cathode porosity, void fraction, void share of pore and SEI mean thickness per block.

    Parameters
    ----------
    labels, regions : ndarray (z, y, x)
        Phase and region labels.
    through_plane_axis : int
        Stacking axis (kept whole in every block).
    phase_names, region_names : mapping, optional
        Name -> label value (default vocabulary when omitted).
    sei_map : ndarray, optional
        SEI thickness map (nm, NaN where not measured) over the two in-plane axes, as
        :func:`volrecon.analyze.sei_thickness` returns it.
    splits : (int, int)
        Number of blocks along each in-plane axis, in axis order.

    Returns
    -------
    list of dict
        One row per block with ``block`` and the dotted ``metrics.json`` keys it measures.
    """
    phases = phase_map(phase_names)
    regs = region_map(region_names)
    lab = np.asarray(labels)
    reg = np.asarray(regions)
    inplane = [a for a in range(3) if a != through_plane_axis]
    edges = [np.linspace(0, lab.shape[a], n + 1).astype(int) for a, n in zip(inplane, splits)]
    cathode = reg == regs.get("cathode", -1)
    void = lab == phases.get("void", -1)
    electrolyte = lab == phases.get("electrolyte", -1)
    rows = []
    for i in range(splits[0]):
        for j in range(splits[1]):
            index: list[slice] = [slice(None)] * 3
            index[inplane[0]] = slice(edges[0][i], edges[0][i + 1])
            index[inplane[1]] = slice(edges[1][j], edges[1][j + 1])
            block = tuple(index)
            cat = cathode[block]
            n_cat = int(cat.sum())
            n_void = int((void[block] & cat).sum())
            n_pore = n_void + int((electrolyte[block] & cat).sum())
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
