"""One slab-by-slab pass over a labelled volume: what the analysis needs before it reads boxes.

The phase and region images may be dask arrays backed by the run folder's OME-Zarr labels;
nothing here holds more than one slab of them, plus results that are small (tables, per-plane
profiles) or packed (the box-search mask, one bit per voxel).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from volrecon.analyze._common import read, z_slabs
from volrecon.analyze.fractions import count_table

__all__ = ["Survey", "survey_volume", "bounding_box"]


@dataclass(frozen=True)
class Survey:
    """What one pass over the volume measured.

    Attributes
    ----------
    table : ndarray of int64, shape (256, 256)
        Voxel counts ``[region_value, phase_value]`` (:func:`count_table`).
    region_profiles : dict
        Region value -> its voxel count per plane along z, y and x (three arrays).
    phase_planes : dict
        Phase value -> whether each plane along z, y and x holds the phase (three arrays).
    inside_bits : ndarray of uint8
        ``region == inside_region and phase != frame`` packed along x (``np.packbits(axis=2)``).
    """

    table: np.ndarray
    region_profiles: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]
    phase_planes: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]
    inside_bits: np.ndarray


def survey_volume(labels: Any, regions: Any, *, region_values: Sequence[int], inside_region: int,
                  frame_phase: int | None, plane_phases: Sequence[int] = (),
                  slab_voxels: int = 4_000_000) -> Survey:
    """Count table, region profiles, phase planes and the packed inside mask in one pass.

    Parameters
    ----------
    labels, regions : numpy or dask array of int, shape (z, y, x)
        Phase and region images (same shape; values 0..255).
    region_values : sequence of int
        Regions whose per-plane profiles are wanted.
    inside_region : int
        Region of the inside mask (the cathode).
    frame_phase : int, optional
        Phase left out of the inside mask.
    plane_phases : sequence of int
        Phases whose plane occupancy is wanted.
    slab_voxels : int
        Voxels read at once.
    """
    nz, ny, nx = (int(n) for n in labels.shape)
    table = np.zeros((256, 256), np.int64)
    prof = {v: (np.zeros(nz, np.int64), np.zeros(ny, np.int64), np.zeros(nx, np.int64)) for v in region_values}
    planes = {v: (np.zeros(nz, bool), np.zeros(ny, bool), np.zeros(nx, bool)) for v in plane_phases}
    bits = np.zeros((nz, ny, -(-nx // 8)), np.uint8)
    for z0, z1 in z_slabs(labels, slab_voxels):
        lab = read(labels, np.s_[z0:z1])
        reg = read(regions, np.s_[z0:z1])
        table += count_table(lab, reg)
        for v, (pz, py, px) in prof.items():
            m = reg == v
            pz[z0:z1] = m.sum(axis=(1, 2))
            py += m.sum(axis=(0, 2))
            px += m.sum(axis=(0, 1))
        for v, (qz, qy, qx) in planes.items():
            m = lab == v
            qz[z0:z1] = m.any(axis=(1, 2))
            qy |= m.any(axis=(0, 2))
            qx |= m.any(axis=(0, 1))
        inside = reg == inside_region
        if frame_phase is not None:
            inside &= lab != frame_phase
        bits[z0:z1] = np.packbits(inside, axis=2)
    return Survey(table, prof, planes, bits)


def bounding_box(occupied: Sequence[np.ndarray], grow: int = 0) -> tuple[slice, ...] | None:
    """Box of the planes marked along each axis (``None`` when none is), grown by ``grow`` planes."""
    out = []
    for occ in occupied:
        idx = np.flatnonzero(occ)
        if not idx.size:
            return None
        out.append(slice(max(0, int(idx[0]) - grow), min(len(occ), int(idx[-1]) + 1 + grow)))
    return tuple(out)
