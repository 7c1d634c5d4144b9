"""Phase volume fractions, overall and per region (cell layer).

Every figure counts specimen voxels only: voxels whose phase or region is ``frame`` are left
out of numerators and denominators alike.  Unassigned voxels (label 0) stay in the
denominators and are reported as ``unassigned``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from volrecon.analyze._common import check_volume, phase_map, region_map

__all__ = ["FractionsResult", "count_table", "phase_fractions", "region_fractions"]

_SLAB_VOXELS = 1_000_000  # an index slab of uint16 plus bincount's intp copy: ~10 MB


def count_table(labels: Any, regions: Any | None = None) -> np.ndarray:
    """Voxel counts ``table[region_value, phase_value]`` (one pass, slab by slab).

    Parameters
    ----------
    labels : array_like of integer, shape (z, y, x)
        Phase label image (values < 256).
    regions : array_like of integer, optional
        Region label image of the same shape (values < 256); all voxels are region 0 when
        omitted.

    Returns
    -------
    ndarray of int64, shape (256, 256)
    """
    lab = check_volume(labels, "labels")
    reg = None if regions is None else check_volume(regions, "regions")
    if reg is not None and reg.shape != lab.shape:
        from volrecon.errors import InputError

        raise InputError(
            f"regions shape {reg.shape} differs from labels shape {lab.shape}; pass matching volumes"
        )
    if _outside_byte(lab) or (reg is not None and _outside_byte(reg)):
        from volrecon.errors import InputError

        raise InputError("labels/regions hold values outside 0..255; relabel to 0..255")
    table = np.zeros(256 * 256, dtype=np.int64)
    step = max(1, _SLAB_VOXELS // max(1, lab.shape[1] * lab.shape[2]))
    for z0 in range(0, lab.shape[0], step):
        idx = lab[z0 : z0 + step].astype(np.uint16).ravel()
        if reg is not None:
            idx |= reg[z0 : z0 + step].astype(np.uint16).ravel() << 8
        table += np.bincount(idx, minlength=256 * 256)
    return table.reshape(256, 256)


def _outside_byte(values: np.ndarray) -> bool:
    """True when an integer label array holds a value outside 0..255 (they index a 256-wide table)."""
    return bool(values.size) and (int(values.max()) > 255 or int(values.min()) < 0)


@dataclass(frozen=True)
class FractionsResult:
    """Phase fractions of a set of specimen voxels.

    Attributes
    ----------
    voxels : int
        Number of specimen voxels counted (frame excluded).
    counts : dict
        Phase name -> voxel count (``unassigned`` for label 0 when present).
    fractions : dict
        Phase name -> volume fraction (0-1); ``nan`` when ``voxels`` is 0.
    reason : str or None
        Why fractions are NaN.
    """

    voxels: int
    counts: dict[str, int] = field(default_factory=dict)
    fractions: dict[str, float] = field(default_factory=dict)
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        from volrecon.analyze._common import json_float

        return {
            "voxels": int(self.voxels),
            "counts": {k: int(v) for k, v in self.counts.items()},
            "phase_fractions": {k: json_float(v) for k, v in self.fractions.items()},
            "units": {"phase_fractions": "1 (volume fraction)", "voxels": "voxels"},
            **({"reason": self.reason} if self.reason else {}),
        }


def _fractions_from_row(row: np.ndarray, phases: Mapping[str, int]) -> FractionsResult:
    frame = phases.get("frame")
    total = int(row.sum() - (row[frame] if frame is not None else 0))
    counts: dict[str, int] = {}
    for name, value in phases.items():
        if name == "frame":
            continue
        counts[name] = int(row[value])
    named = set(phases.values())
    if 0 not in named and row[0] > 0:
        counts["unassigned"] = int(row[0])
    if total == 0:
        return FractionsResult(0, counts, {k: float("nan") for k in counts},
                               reason="no specimen voxels (all frame or absent)")
    return FractionsResult(total, counts, {k: v / total for k, v in counts.items()})


def phase_fractions(
    labels: Any,
    *,
    phase_names: Mapping[str, int] | None = None,
    regions: Any | None = None,
    region_names: Mapping[str, int] | None = None,
) -> FractionsResult:
    """Volume fraction of every named phase over the whole specimen (frame excluded).

    Parameters
    ----------
    labels : array_like of int, shape (z, y, x)
        Phase label image.
    phase_names : mapping, optional
        Phase name -> label value (default vocabulary when omitted).
    regions, region_names : optional
        Region image and names; voxels of the ``frame`` region are excluded too.

    Examples
    --------
    >>> import numpy as np
    >>> lab = np.array([[[1, 2], [2, 9]]], dtype=np.uint8)
    >>> phase_fractions(lab).fractions["electrolyte"]
    0.6666666666666666
    """
    phases = phase_map(phase_names)
    table = count_table(labels, regions)
    if regions is not None:
        rmap = region_map(region_names)
        if "frame" in rmap:
            table = table.copy()
            table[rmap["frame"]] = 0
    return _fractions_from_row(table.sum(axis=0), phases)


def region_fractions(
    table: np.ndarray,
    *,
    phase_names: Mapping[str, int] | None = None,
    region_names: Mapping[str, int] | None = None,
) -> dict[str, FractionsResult]:
    """Phase fractions of every named region from a :func:`count_table` (frame excluded)."""
    phases = phase_map(phase_names)
    regions = region_map(region_names)
    return {
        name: _fractions_from_row(table[value], phases)
        for name, value in regions.items()
        if name != "frame"
    }
