"""Size of the analysis box from the structure's own length scale (a representative volume).

The tortuosity solves, pore sizes and surface areas measure one box inside the cathode.  A box
stands for the electrode when it spans many times the length over which the structure
decorrelates; beyond that size a larger box changes the result by less than the spread between
boxes, and only costs memory.  That length is measured on the labels: the mean chord length of
the pore (void + electrolyte) and of the solid along each axis (stereology: the length of the
lines through a phase over half the number of phase boundaries they cross).  The box keeps the
stacking axis whole (transport across the whole layer) and spans ``rev_chords`` times the longer
of the two chords along each other axis, so anisotropic structures (rods lying in the plane) get
a box that is longer where their features are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from volrecon.analyze._common import AXIS_NAMES

REV_CHORDS = 10.0
"""Box side in mean chord lengths (the longer of pore and solid) along each axis but the stacking
axis.  For spheres the mean chord is two thirds of the diameter, so this is about 7 particle
diameters, above the 5 grain diameters found for the porosity and permeability of granular media
(Zhang et al., Geophys. Res. Lett. 27 (2000) 1195): a tortuosity factor needs more.  Measured on
the diglyme phantom's truth labels (200x1024x1024 voxels of 20x10x10 nm, solid chords 330-350 nm,
pore 220-230 nm), the through-plane pore tortuosity of boxes spanning the whole cathode thickness
and s x s in the plane, against a 4 x 4 um box (2.55): s = 1 um (3 chords) scatters by 33 % (CV
over 16 disjoint boxes), 1.5 um by 18 %, 2 um (6 chords) by 9 % (16 % at most from the large box),
3 um (9 chords) is 6 % from it.  The electrolyte of a void-rich cathode, near its percolation
threshold, needs more than any box that size (13 % off at 3 um)."""


@dataclass(frozen=True)
class ChordLengths:
    """Mean chord lengths (nm) of the pore and the solid along z, y, x (nan: not measured,
    inf: no boundary crossed along that axis)."""

    pore_nm: tuple[float, float, float]
    solid_nm: tuple[float, float, float]

    def scale_nm(self, axis: int) -> float:
        """The structure's length along ``axis``: the longer of the two chords."""
        return max(self.pore_nm[axis], self.solid_nm[axis])

    def to_dict(self) -> dict[str, Any]:
        fin = lambda v: round(v, 1) if math.isfinite(v) else None
        return {"pore": {a: fin(v) for a, v in zip(AXIS_NAMES, self.pore_nm)},
                "solid": {a: fin(v) for a, v in zip(AXIS_NAMES, self.solid_nm)}}


class ChordCounter:
    """Pore voxels, voxels and pore | solid boundaries along each axis, per plane along the
    stacking axis, gathered from consecutive z slabs of a box (the boundaries between slabs are
    counted too), so that the chords of any range of planes along that axis can be had after.

    Parameters
    ----------
    n_planes : int
        Planes of the box along ``axis``.
    axis : int
        Stacking axis (0, 1, 2).
    """

    def __init__(self, n_planes: int, axis: int) -> None:
        self.axis = axis
        self.pore = np.zeros(n_planes, np.int64)
        self.voxels = np.zeros(n_planes, np.int64)
        self.crossings = np.zeros((3, n_planes), np.int64)
        self._z = 0
        self._last: np.ndarray | None = None

    def _planes(self, a: np.ndarray, z0: int) -> np.ndarray:
        """Sum of ``a`` (a z slab from plane ``z0``) over all axes but the stacking axis."""
        if self.axis == 0:
            out = np.zeros(self.pore.size, np.int64)
            out[z0: z0 + a.shape[0]] = a.reshape(a.shape[0], -1).sum(axis=1)
            return out
        out = a.sum(axis=tuple(i for i in range(3) if i != self.axis))
        # boundaries along the stacking axis itself: the one between planes i-1 and i counts to i
        return out if out.size == self.pore.size else np.concatenate([[0], out])

    def add(self, pore: np.ndarray) -> None:
        """Count the next z slab (bool, the box's y and x extent)."""
        z0, nz = self._z, pore.shape[0]
        self.pore += self._planes(pore, z0)
        if self.axis == 0:
            self.voxels[z0: z0 + nz] += pore.shape[1] * pore.shape[2]
        else:
            self.voxels += nz * pore.shape[3 - self.axis]
        for ax in (1, 2):
            lo, hi = [slice(None)] * 3, [slice(None)] * 3
            lo[ax], hi[ax] = slice(None, -1), slice(1, None)
            self.crossings[ax] += self._planes(pore[tuple(lo)] != pore[tuple(hi)], z0)
        self.crossings[0] += self._planes(pore[1:] != pore[:-1], z0 + 1)
        if self._last is not None:
            self.crossings[0] += self._planes(self._last != pore[:1], z0)
        self._last = pore[-1:].copy()
        self._z += nz

    def chords(self, vs: tuple[float, float, float], planes: slice = slice(None)) -> ChordLengths:
        """Mean chord lengths (nm) over ``planes`` along the stacking axis."""
        n_pore, n_all = float(self.pore[planes].sum()), float(self.voxels[planes].sum())
        pore, solid = [], []
        for ax in range(3):
            t = float(self.crossings[ax][planes].sum())
            pore.append(2.0 * n_pore * vs[ax] / t if t else math.inf)
            solid.append(2.0 * (n_all - n_pore) * vs[ax] / t if t else math.inf)
        return ChordLengths(tuple(pore), tuple(solid))  # type: ignore[arg-type]


@dataclass(frozen=True)
class RepresentativeBox:
    """The box :func:`representative_box` chose and why.

    Attributes
    ----------
    chords : ChordLengths
        Measured on the porous box.
    rev_chords : float
        Box side in chords.
    target_nm : dict
        Axis name -> wanted side (nm) for every axis but the stacking axis.
    reached : bool
        Every such axis of the box spans its wanted side (False: the volume is smaller than a
        representative one along some axis, and the box is kept whole).
    """

    chords: ChordLengths
    rev_chords: float
    target_nm: dict[str, float]
    reached: bool

    def to_dict(self) -> dict[str, Any]:
        return {"chord_length_nm": self.chords.to_dict(), "rev_chords": self.rev_chords,
                "target_side_nm": {k: round(v, 1) if math.isfinite(v) else None for k, v in self.target_nm.items()},
                "reached": self.reached}


def representative_box(box: tuple[slice, ...], tp: int, vs: tuple[float, float, float], chords: ChordLengths,
                       rev_chords: float = REV_CHORDS) -> tuple[tuple[slice, ...], RepresentativeBox]:
    """The centre of ``box`` spanning ``rev_chords`` chord lengths along each axis but ``tp``
    (where the box spans that much along all of them).

    Parameters
    ----------
    box : tuple of slice
        The (porous) box inside the cathode.
    tp : int
        Stacking axis, kept whole.
    vs : 3 floats
        Voxel size (nm).
    chords : ChordLengths
        Mean chord lengths of the structure in ``box``.
    rev_chords : float
        Side in chord lengths (:data:`REV_CHORDS`).

    Returns
    -------
    (box, RepresentativeBox)
        A box shorter than its wanted side along some axis (or whose chord there is not finite: no
        boundary crossed) is not representative and is kept whole along every axis: the error of a
        box average falls with the box's volume, so what it lacks along one axis is partly made up
        along the others.
    """
    free = [a for a in range(3) if a != tp]
    want = {a: rev_chords * chords.scale_nm(a) for a in free}
    target = {AXIS_NAMES[a]: w for a, w in want.items()}
    reached = all(math.isfinite(w) and w <= (box[a].stop - box[a].start) * vs[a] for a, w in want.items())
    if not reached:
        return box, RepresentativeBox(chords, float(rev_chords), target, False)
    out = list(box)
    for a, w in want.items():
        n, m = box[a].stop - box[a].start, max(1, math.ceil(w / vs[a]))
        start = box[a].start + (n - m) // 2
        out[a] = slice(start, start + m)
    return tuple(out), RepresentativeBox(chords, float(rev_chords), target, True)
