"""Ground-truth figures of a phantom, accumulated slice by slice from the label volume.

Every figure in ``truth.json`` is computed here from the labels/regions the phantom writes (and,
for the SEI, from the thickness field ``t`` that defines the SEI labels), so the analysis can be
checked against numbers that describe exactly the voxels it sees.  The frame (cap, trench walls)
is excluded from every figure.

Definitions
-----------
- ``phase_fractions.<phase>``: voxels of the phase / specimen voxels (all regions, frame excluded).
- ``regions.<region>.phase_fractions.<phase>``: share of the region's voxels.
- ``regions.cathode.porosity``: (void + electrolyte) / cathode voxels.
- ``regions.cathode.void_fraction``: void / cathode voxels; ``void_share_of_pore``: void / (void + electrolyte).
- ``regions.cathode.void_clusters``: connected components of the cathode's void voxels with
  **6-connectivity** (face neighbours); ``largest_fraction`` = voxels of the largest cluster / all
  void voxels; ``percolating.<axis>``: some cluster touches both ends of the cathode along the axis
  (z: first and last slice; y: the first and last cathode voxel of an image column where the
  separator or the collector (or the image edge) lies beyond it, not a trench wall; x: the first
  and last cathode voxel of an image row where a trench wall or the image edge lies beyond it, not
  another layer at a rough interface) -- as ``volrecon.analyze`` measures them.
- ``regions.anode.sei_thickness_nm``: statistics of the normal SEI thickness ``t(z, x)`` sampled
  once per (slice, image column) where the sodium surface lies in the imaged face (not under the
  frame, inside the image).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage as ndi

from volrecon._layer_ends import side_ends, stack_ends
from volrecon.phases import PHASES, REGIONS

_S4 = ndi.generate_binary_structure(2, 1)


class _UnionFind:
    def __init__(self) -> None:
        self.parent: list[int] = [0]
        self.size: list[int] = [0]
        self.flags: list[int] = [0]

    def add(self, sizes: np.ndarray, flags: np.ndarray) -> int:
        first = len(self.parent)
        self.parent.extend(range(first, first + sizes.size))
        self.size.extend(int(s) for s in sizes)
        self.flags.extend(int(f) for f in flags)
        return first

    def find(self, a: int) -> int:
        root = a
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[a] != root:
            self.parent[a], a = root, self.parent[a]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        if self.size[ra] < self.size[rb]:
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.size[ra] += self.size[rb]
        self.flags[ra] |= self.flags[rb]


# percolation flag bits
_Z0, _Z1, _Y0, _Y1, _X0, _X1 = 1, 2, 4, 8, 16, 32


def _line_ends(inside: np.ndarray, axis: int, beyond: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Masks of the first and of the last ``inside`` pixel of every line along ``axis`` where the
    pixel before / after it is in ``beyond`` or the line meets the image edge."""
    n = inside.shape[axis]
    has = inside.any(axis=axis)
    first = np.argmax(inside, axis=axis)
    last = n - 1 - np.argmax(np.flip(inside, axis=axis), axis=axis)
    masks = []
    for index, step in ((first, -1), (last, 1)):
        nxt = index + step
        leads = np.take_along_axis(beyond, np.expand_dims(np.clip(nxt, 0, n - 1), axis), axis).squeeze(axis)
        keep = has & ((nxt < 0) | (nxt >= n) | leads)
        mask = np.zeros_like(inside)
        np.put_along_axis(mask, np.expand_dims(index, axis), np.expand_dims(keep, axis), axis=axis)
        masks.append(mask & inside)
    return masks[0], masks[1]


class TruthAccumulator:
    """Streaming computation of the truth figures (feed slices in order)."""

    def __init__(self, n_slices: int, voxel_nm: tuple[float, float, float]) -> None:
        self.n = n_slices
        self.voxel_nm = voxel_nm
        self.counts = np.zeros((16, 16), dtype=np.int64)  # region x phase
        self.uf = _UnionFind()
        self._prev: np.ndarray | None = None
        self._prev_base = 0
        self.sei: list[np.ndarray] = []
        self.interfaces: dict[str, list[np.ndarray]] = {}
        self.seen = 0

    def add(self, labels: np.ndarray, regions: np.ndarray, *, k: int, sei_t: np.ndarray,
            sei_valid: np.ndarray, surfaces_y_nm: dict[str, np.ndarray]) -> None:
        """Account for slice ``k`` (image frame)."""
        self.seen += 1
        code = regions.astype(np.int64) * 16 + labels
        self.counts += np.bincount(code.ravel(), minlength=256).reshape(16, 16)
        self.sei.append(np.asarray(sei_t, dtype=np.float64)[sei_valid])
        for name, arr in surfaces_y_nm.items():
            self.interfaces.setdefault(name, []).append(np.asarray(arr, dtype=np.float64)[sei_valid])
        self._clusters(labels, regions, k)

    def _clusters(self, labels: np.ndarray, regions: np.ndarray, k: int) -> None:
        cath = regions == REGIONS["cathode"]
        void = cath & (labels == PHASES["void"])
        lab, n = ndi.label(void, structure=_S4)
        if n == 0:
            self._prev = None
            return
        sizes = np.bincount(lab.ravel(), minlength=n + 1)[1:]
        flags = np.zeros(n + 1, dtype=np.int64)
        if k == 0:
            flags[1:] |= _Z0
        if k == self.n - 1:
            flags[1:] |= _Z1
        # ends of the cathode along y and x: the first and last cathode voxel of each line (a break
        # of the cathode inside a line, at a rough interface, is not an end), along y where another
        # layer or the frame's cap lies beyond (not a trench wall), along x where the frame does (not
        # a layer): as the analysis counts them
        for axis, bits, beyond in ((0, (_Y0, _Y1), stack_ends(regions, across=1)), (1, (_X0, _X1), side_ends(regions))):
            for bit, end in zip(bits, _line_ends(cath, axis, beyond)):
                ids = np.unique(lab[void & end])
                flags[ids[ids > 0]] |= bit
        base = self.uf.add(sizes, flags[1:]) - 1  # global id = base + local id
        if self._prev is not None:
            both = (self._prev > 0) & (lab > 0)
            if both.any():
                pairs = np.unique(np.stack([self._prev[both], lab[both]], axis=1), axis=0)
                for a, b in pairs:
                    self.uf.union(self._prev_base + int(a), base + int(b))
        self._prev, self._prev_base = lab, base

    # ------------------------------------------------------------------ results
    def result(self) -> dict[str, Any]:
        """The truth figures (see module docstring)."""
        if self.seen != self.n:
            raise RuntimeError(f"truth accumulated {self.seen} of {self.n} slices")
        phases = {name: v for name, v in PHASES.items() if name != "frame"}
        regions = {name: v for name, v in REGIONS.items() if name != "frame"}
        spec = self.counts[[v for v in regions.values()]][:, [v for v in phases.values()]]
        total = int(spec.sum())
        out: dict[str, Any] = {
            "specimen_voxels": total,
            "frame_voxels": int(self.counts[REGIONS["frame"]].sum()),
            "phase_fractions": {p: _frac(spec[:, i].sum(), total) for i, p in enumerate(phases)},
            "regions": {},
        }
        for i, (rname, rv) in enumerate(regions.items()):
            row = spec[i]
            n = int(row.sum())
            out["regions"][rname] = {
                "voxels": n,
                "fraction_of_specimen": _frac(n, total),
                "phase_fractions": {p: _frac(row[j], n) for j, p in enumerate(phases)},
            }
        cat = out["regions"]["cathode"]
        pf = cat["phase_fractions"]
        cvox = cat["voxels"]
        nvoid = int(self.counts[REGIONS["cathode"], PHASES["void"]])
        nel = int(self.counts[REGIONS["cathode"], PHASES["electrolyte"]])
        cat["porosity"] = pf["void"] + pf["electrolyte"]
        cat["void_fraction"] = pf["void"]
        cat["void_share_of_pore"] = _frac(nvoid, nvoid + nel)
        cat["void_clusters"] = self._cluster_result(nvoid)
        del cvox
        t = np.concatenate(self.sei) if self.sei else np.zeros(0)
        out["regions"]["anode"]["sei_thickness_nm"] = _stats(t)
        out["regions"]["anode"]["sei_thickness_samples"] = int(t.size)
        out["interfaces"] = {
            name: {**_stats(np.concatenate(v)), "row_mean": float(np.concatenate(v).mean() / self.voxel_nm[1])}
            for name, v in self.interfaces.items()
        }
        return out

    def _cluster_result(self, nvoid: int) -> dict[str, Any]:
        uf = self.uf
        roots = {uf.find(i) for i in range(1, len(uf.parent))}
        sizes = np.array([uf.size[r] for r in roots], dtype=np.int64)
        flags = [uf.flags[r] for r in roots]
        perc = {
            "z": any(f & _Z0 and f & _Z1 for f in flags),
            "y": any(f & _Y0 and f & _Y1 for f in flags),
            "x": any(f & _X0 and f & _X1 for f in flags),
        }
        return {
            "connectivity": 6,
            "count": int(sizes.size),
            "largest_voxels": int(sizes.max()) if sizes.size else 0,
            "largest_fraction": _frac(sizes.max() if sizes.size else 0, nvoid),
            "percolating": perc,
        }


def _frac(a: float, b: float) -> float:
    return float(a) / float(b) if b else 0.0


def _stats(v: np.ndarray) -> dict[str, float]:
    if v.size == 0:
        return {k: float("nan") for k in ("mean", "median", "std", "p05", "p95", "min", "max")}
    return {
        "mean": float(v.mean()),
        "median": float(np.median(v)),
        "std": float(v.std()),
        "p05": float(np.percentile(v, 5)),
        "p95": float(np.percentile(v, 95)),
        "min": float(v.min()),
        "max": float(v.max()),
    }
