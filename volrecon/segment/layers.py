"""Layer detection: stacking axis, order and the rough interfaces of the cell as height maps.

A full cell reads, along its stacking axis, sodium | SEI | separator | cathode | collector.  From
a phase label volume this module

1. finds the stacking axis (the axis along which the phase composition changes most) and the
   order (which end holds the anode),
2. finds each interface as a height map ``h(a, b)`` over the two other axes: per column, the cut
   that best separates the phase(s) expected before it from those expected after it (the
   minimum of a cumulative misclassification cost, on phase shares smoothed laterally so
   particles, fibres and pores do not move the cut), then refined to sub-voxel precision by the
   integral of the share across a small window (``REFINE_NM``, a length: the cuts work the
   same at any voxel size); the collector is the dense foil at the end of the stack, found from
   the drop of the non-dense share where the first guess does not name it (coarse pixels);
   columns the frame cuts short take their neighbours' heights, and a column whose cut lies far
   off the field's robust plane (misclassified voxels, e.g. a badly shaded corner) is cut again
   near it;
3. reports layers that are absent from the field of view, and produces region labels.

Rough and tilted interfaces are handled because every column gets its own cut; the lateral
smoothing scale (``lateral_nm``) bounds the finest roughness followed.
"""

from __future__ import annotations

import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
from scipy import ndimage as ndi

from volrecon._memory import release_memory
from volrecon.analyze.connectivity import _face_pairs, _merge
from volrecon.errors import ParameterError
from volrecon.phases import REGIONS
from volrecon.segment._columns import interpolate_columns
from volrecon.segment._label_counts import axis_value_counts, group_counts
from volrecon.segment._regions import label_block
from volrecon.segment._rows import store_by_rows
from volrecon.segment._smooth import smooth_region

AXES = ("z", "y", "x")
INTERFACES: tuple[str, ...] = ("sodium|sei", "sei|separator", "separator|cathode", "cathode|collector")
"""Interface names, in stacking order from the anode."""

_GROUPS = {
    "sodium": ("sodium",),
    "sei": ("sei",),
    "separator": ("separator",),
    "cathode": ("active", "binder"),
    "collector": ("collector",),
}
REFINE_NM = 50.0
"""Half-width (nm along the stacking axis) of the sub-voxel refinement of each interface."""
OUTLIER_NM = 150.0
"""Least distance (nm) from the robust plane through an interface at which a column's cut is re-done."""
EDGE_RIM_NM = 10.0
"""Default half-width (nm in the image plane) of the edge-brightening rim on each side of a
boundary: the escape range of the secondary electrons through the side wall, a length of the
specimen and beam energy (a few nm to a few tens of nm), not a pixel.  Set it for another
instrument (``refine_interface(rim_nm=...)``), or None to fit it."""


_MIN_SHARE = {"sodium": 0.004, "sei": 0.0005, "separator": 0.004, "cathode": 0.004, "collector": 0.004}
ANODE_SLAB_SHARE = 0.9
"""Least share of each row of the anode's end slab (:func:`_end_slab`) that is one material
(:func:`_one_material`).  Measured on the layers' first guess of the phantoms: 0.97-1.0 in the
sodium's rows (0.83 in the row the cap's rim lights), at most 0.63 in the cathode's first rows and
0.84 in the separator's at 10-13 nm rows; at 20 nm a dense separator start reaches 0.91-0.98 and
passes for metal (review rev18: 4 of 16 carbonate crops)."""


@dataclass(frozen=True)
class Layers:
    """Result of :func:`detect_layers`.

    Attributes
    ----------
    axis : int
        Stacking (through-plane) axis of the volume, 0/1/2 for z/y/x.
    anode_first : bool
        True when the anode is at index 0 of the stacking axis.
    heights : dict
        Interface name -> height map over the two other axes (in their order), as the
        *boundary coordinate* in voxels from index 0 of the stacking axis: voxel ``i`` lies
        before the interface (anode side) when ``i + 0.5 < h`` (anode first) — or, with the
        anode last, when ``i + 0.5 > h``.  None for an interface not present.
    present : dict
        Layer/phase group name -> present in the field of view.
    length : int
        Number of voxels along the stacking axis.
    notes : list of str
        How each interface was found.
    edges : dict
        Interface name -> the edge-rim fit of :func:`refine_interface` (``rim=True``) on it:
        ``shift_vox`` (the correction applied, towards the bright side), ``sigma_vox`` (blur),
        ``rim_ratio``; only where the fit was accepted (no entry otherwise).
    """

    axis: int
    anode_first: bool
    heights: dict[str, np.ndarray | None]
    present: dict[str, bool]
    length: int
    notes: list[str] = field(default_factory=list)
    edges: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def absent(self) -> list[str]:
        """Layers not found in the field of view."""
        out = []
        if not self.present["sodium"]:
            out.append("anode")
        elif not self.present["sei"]:
            out.append("sei")
        if not self.present["separator"]:
            out.append("separator")
        if not self.present["cathode"]:
            out.append("cathode")
        if not self.present["collector"]:
            out.append("collector")
        return out

    def to_dict(self, voxel_size_nm: Sequence[float]) -> dict[str, Any]:
        """JSON-safe summary: interface mean/std/min/max heights in nm, absent layers."""
        step = float(voxel_size_nm[self.axis])
        faces: dict[str, Any] = {}
        for name in INTERFACES:
            h = self.heights.get(name)
            if h is None:
                faces[name] = None
                continue
            nm = h * step
            faces[name] = {"mean_nm": float(nm.mean()), "std_nm": float(nm.std()), "min_nm": float(nm.min()),
                           "max_nm": float(nm.max())}
        return {
            "through_plane": AXES[self.axis],
            "order": "anode_first" if self.anode_first else "anode_last",
            "absent_layers": self.absent,
            "interfaces": faces,
            "notes": list(self.notes),
        }

    def heights_nm(self, voxel_size_nm: Sequence[float]) -> dict[str, np.ndarray | None]:
        """Height maps in nm from the start of the stacking axis."""
        step = float(voxel_size_nm[self.axis])
        return {k: (None if v is None else v * step) for k, v in self.heights.items()}


# --------------------------------------------------------------------------- helpers
CORE_GROUPS: tuple[str, ...] = ("separator", "active")
"""Groups counted by their cores (opened in the image plane) in the separator|cathode cut."""

CORE_SHELL_NM = EDGE_RIM_NM
"""Width (nm in the image plane) of the shell of wrong first-guess class around fibres and
particles: the edge-brightening rim (:data:`EDGE_RIM_NM`).  The opening of :data:`CORE_GROUPS`
has this radius (at least one voxel)."""


def core_radius(voxel_size_nm: Sequence[float]) -> tuple[int, int]:
    """In-plane (y, x) radius in voxels of the opening of :data:`CORE_GROUPS`."""
    return (max(1, int(round(CORE_SHELL_NM / float(voxel_size_nm[1])))),
            max(1, int(round(CORE_SHELL_NM / float(voxel_size_nm[2])))))


def _core(mask: np.ndarray, radius: tuple[int, int] = (1, 1)) -> np.ndarray:
    """``mask`` opened in the image plane (y, x) by an ellipse of ``radius`` voxels (a 3x3 cross
    for one voxel), edges replicated.

    Edge brightening and the probe's blur give every boundary a shell about
    :data:`CORE_SHELL_NM` wide whose first-guess class is wrong (the pore beside an active
    particle reads as fibre grey, a fibre's rim as active grey): thin shells, which the opening
    removes while the fibres and particles, many times wider, keep their cores.
    """
    ry, rx = radius
    pad = [(0, 0), (2 * ry, 2 * ry), (2 * rx, 2 * rx)]
    padded = np.pad(mask, pad, mode="edge")
    offsets = _disc(radius)
    return _dilate(_erode(padded, offsets), offsets)[:, 2 * ry:-2 * ry, 2 * rx:-2 * rx]


def _disc(radius: tuple[int, int]) -> list[tuple[int, int]]:
    """The (y, x) offsets of an ellipse of ``radius`` voxels (a 3x3 cross for one voxel)."""
    ry, rx = radius
    dy, dx = np.mgrid[-ry:ry + 1, -rx:rx + 1]
    return [(int(oy), int(ox)) for oy, ox in zip(dy.ravel(), dx.ravel()) if (oy / ry) ** 2 + (ox / rx) ** 2 <= 1.0]


def _erode(mask: np.ndarray, offsets: Sequence[tuple[int, int]]) -> np.ndarray:
    """In-plane binary erosion by the (y, x) ``offsets`` of a symmetric structure, outside the
    array False (:func:`scipy.ndimage.binary_erosion`'s result, by shifted ANDs: far fewer
    operations for the few offsets of a small disc)."""
    ny, nx = mask.shape[1:]
    ry = max(abs(o[0]) for o in offsets)
    rx = max(abs(o[1]) for o in offsets)
    out = np.zeros_like(mask)
    if ny <= 2 * ry or nx <= 2 * rx:
        return out
    inner = out[:, ry:ny - ry, rx:nx - rx]
    inner[...] = True
    for oy, ox in offsets:
        inner &= mask[:, ry + oy:ny - ry + oy, rx + ox:nx - rx + ox]
    return out


def _dilate(mask: np.ndarray, offsets: Sequence[tuple[int, int]]) -> np.ndarray:
    """In-plane binary dilation by the (y, x) ``offsets`` of a symmetric structure, outside the
    array False (:func:`scipy.ndimage.binary_dilation`'s result, by shifted ORs)."""
    ny, nx = mask.shape[1:]
    out = np.zeros_like(mask)
    for oy, ox in offsets:
        if abs(oy) >= ny or abs(ox) >= nx:
            continue
        out[:, max(0, oy):ny + min(0, oy), max(0, ox):nx + min(0, ox)] |= \
            mask[:, max(0, -oy):ny - max(0, oy), max(0, -ox):nx - max(0, ox)]
    return out


def _member(block: np.ndarray, vals: Sequence[int]) -> np.ndarray:
    """Voxels of ``block`` whose value is one of ``vals`` (:func:`numpy.isin`'s result, by an
    equality per value: a group holds one or two phases, and ``isin`` sorts its way through the
    whole block)."""
    out = np.zeros(block.shape, bool)
    for v in np.unique(np.asarray(vals, dtype=block.dtype)):
        np.logical_or(out, block == v, out=out)
    return out


def _indicators(block: np.ndarray, values: Mapping[str, Sequence[int]], frame: int | None,
                halo: tuple[int, int] = (0, 0), cores: bool = True,
                radius: tuple[int, int] = (1, 1), specimen_core: bool = False) -> dict[str, np.ndarray]:
    """Masks of the valid voxels and of each group in ``block``; :data:`CORE_GROUPS` by their
    cores (``cores``, opening of ``radius``); with ``specimen_core``, only the specimen's core
    counts (:func:`_specimen_core`: no voxel beside the frame or unassigned voxels).  ``halo``:
    context voxels the block carries on each side along y and x (cut off)."""
    valid = block != 0
    if frame is not None:
        valid &= block != frame
    if specimen_core and not valid.all():
        valid = _specimen_core(valid, radius)
    hy, hx = halo
    crop = (slice(None), slice(hy, block.shape[1] - hy), slice(hx, block.shape[2] - hx))
    out = {"valid": valid[crop]}
    for group, vals in values.items():
        m = _member(block, vals) & valid if specimen_core else _member(block, vals)
        out[group] = (_core(m, radius) if cores and group in CORE_GROUPS else m)[crop]
    return out


def _specimen_core(valid: np.ndarray, radius: tuple[int, int] = (1, 1)) -> np.ndarray:
    """``valid`` eroded in the image plane (y, x) by an ellipse of ``radius`` voxels, the array's
    edges replicated: the specimen's voxels beside the frame or unassigned voxels left out.

    The frame's wall is placed to about a voxel, and the edge-brightening rim it lights reaches
    :data:`CORE_SHELL_NM` beyond it: the first specimen voxel beside it reads the wall's grey, which
    a pixel classifier takes for the bright phases (a line of ``active`` along a trench wall,
    through the electrolyte film between the fibre mat and the cathode, pulled the
    separator|cathode cut 10 voxels towards the anode beside it, carbonate 24x192 seed 0).
    """
    ry, rx = radius
    padded = np.pad(valid, [(0, 0), (ry, ry), (rx, rx)], mode="edge")
    return _erode(padded, _disc(radius))[:, ry:-ry, rx:-rx]


def _lateral_sums(phases: Any, axis: int, factor: int, values: Mapping[str, Sequence[int]], frame: int | None,
                  radius: tuple[int, int] = (1, 1), folder: Path | None = None,
                  specimen_core: bool = False) -> dict[str, Any]:
    """Counts of each group in lateral blocks of ``factor``², full resolution along ``axis``
    (:data:`CORE_GROUPS` by their cores, opened with ``radius``; with ``specimen_core``, within
    the specimen's core, :func:`_specimen_core`).

    Works on numpy or dask input; dask input is reduced block by block with the in-plane context
    of the core opening (bounded memory, the same counts as the whole array).  With ``folder``,
    the counts of a dask input are written there as zarr arrays (one per group, returned open)
    instead of being gathered in memory.
    """
    lat = [a for a in range(3) if a != axis]
    # the context of the opening (erosion then dilation), after the specimen's erosion
    k = 3 if specimen_core else 2
    reach = (k * radius[0], k * radius[1])
    if hasattr(phases, "map_blocks"):
        import dask.array as da

        names = ["valid", *values]

        def reduce(block: np.ndarray, block_info: dict | None = None) -> np.ndarray:
            ind = _indicators(block, values, frame, halo=reach, radius=radius, specimen_core=specimen_core)
            return np.stack([_block_sum(ind[g], lat, factor) for g in names], axis=1)

        least = (0, *reach)
        chunks = tuple(_sum_chunks(phases.chunks[a], factor if a in lat else 1, least[a]) for a in range(3))
        if any(sum(chunks[a]) < least[a] for a in (1, 2)):
            # thinner than the opening's context: small enough to reduce whole
            return _lateral_sums(np.asarray(phases), axis, factor, values, frame, radius, specimen_core=specimen_core)
        phases = phases.rechunk(chunks)
        chunks = list(phases.chunks)
        out_chunks = tuple(
            tuple(-(-c // factor) for c in chunks[a]) if a in lat else chunks[a] for a in range(3)
        )
        # all groups from one pass over the labels (groups on axis 1, the volume's z rows first);
        # array edges replicated as in _core
        # no silent rechunk by map_overlap: it would break the blocks' alignment on the factor
        stacked = da.map_overlap(reduce, phases, depth={0: 0, 1: reach[0], 2: reach[1]}, boundary="nearest", trim=False,
                                 dtype=np.float32, new_axis=1, chunks=(out_chunks[0], (len(names),), *out_chunks[1:]),
                                 allow_rechunk=False)
        if folder is None:
            computed = np.asarray(stacked.compute())
            return {g: np.ascontiguousarray(computed[:, i]) for i, g in enumerate(names)}
        import zarr

        # zarr chunks on the blocks' grid (all blocks but the last of one size): each is written by one task
        grid = tuple(c[0] for a, c in enumerate(stacked.chunks) if a != 1)
        shape = tuple(n for a, n in enumerate(stacked.shape) if a != 1)
        stores = [zarr.open_array(str(folder / f"{name}.zarr"), mode="w", shape=shape, chunks=grid, dtype=np.float32)
                  for name in names]
        # one row of blocks along z at a time, the context slices copied, each block's sums written to
        # every group's store by the task that stores it: a whole-graph store held the label chunks
        # whole behind the thin context views they lend their neighbours, a growth in proportion to the
        # slice count (benchmarks/results/pipeline_2048x1536.md, session 17)
        store_by_rows(stacked, _GroupStores(stores))
        return dict(zip(names, stores))
    arr = np.asarray(phases)
    if specimen_core:
        # the array's edges replicated as deep as the blockwise reduction's context (its boundary
        # "nearest"), which the specimen's core erodes from: the same counts either way
        padded = np.pad(arr, [(0, 0), (reach[0], reach[0]), (reach[1], reach[1])], mode="edge")
        ind = _indicators(padded, values, frame, halo=reach, radius=radius, specimen_core=True)
    else:
        ind = _indicators(arr, values, frame, radius=radius)
    return {k: _block_sum(v, lat, factor) for k, v in ind.items()}


class _GroupStores:
    """The per-group stores of :func:`_lateral_sums`, written as one array whose axis 1 holds the
    groups: ``self[region] = block`` writes ``block[:, i]`` into store ``i`` (the volume's axes).

    Parameters
    ----------
    stores : sequence
        One writable array per group (zarr), of the volume's coarse shape.
    """

    def __init__(self, stores: Sequence[Any]) -> None:
        self.stores = list(stores)

    def __setitem__(self, region: tuple[slice, ...], block: np.ndarray) -> None:
        """Write ``block[:, i]`` into store ``i`` at ``region`` less its group axis (axis 1)."""
        at = (region[0], *region[2:])
        for i, store in enumerate(self.stores):
            store[at] = block[:, i]


def _sum_chunks(chunks: Sequence[int], factor: int, least: int) -> tuple[int, ...]:
    """Chunks of one axis for the blockwise lateral sums: every chunk but the last a multiple of
    ``factor`` (the coarse cells never straddle two blocks), none thinner than ``least`` (the
    overlap's depth) unless the axis itself is; a short tail is merged into the chunk before it."""
    size = int(sum(chunks))
    step = max(factor, (max(chunks) // factor) * factor, -(-least // factor) * factor)
    out = [step] * (size // step)
    tail = size - step * len(out)
    if tail and out and tail < least:
        out[-1] += tail
    elif tail or not out:
        out.append(tail)
    return tuple(out)


def _block_sum(mask: np.ndarray, lat: Sequence[int], factor: int) -> np.ndarray:
    """Counts (float32) of ``mask`` in blocks of ``factor`` along the axes ``lat`` (zero-padded
    at the end), by adding the ``factor`` strided views per axis in small integers (exact)."""
    if factor == 1:
        return mask.astype(np.float32)
    pad = [(0, 0)] * 3
    for a in lat:
        pad[a] = (0, (-mask.shape[a]) % factor)
    acc = np.pad(mask, pad).view(np.uint8) if any(p[1] for p in pad) else mask.view(np.uint8)
    kind = np.uint8 if factor * factor <= np.iinfo(np.uint8).max else np.int32
    for a in lat:
        part = [slice(None)] * 3
        total = None
        for j in range(factor):
            part[a] = slice(j, None, factor)
            if total is None:
                total = acc[tuple(part)].astype(kind)
            else:
                total += acc[tuple(part)]
        acc = total
    return acc.astype(np.float32)


BLOCK_CELLS = 1 << 21
"""Cells (columns × stacking length) of the share maps :func:`detect_layers` derives at a time,
plus the lateral smoothing's context: the maps of a long stack are worked through in blocks of
rows, so their memory does not grow with the number of slices."""
SPILL_BYTES = 64 << 20
"""Coarse counts of a dask input larger than this (all groups together) are kept in a scratch
folder on disk, not in memory."""
SHARE_CACHE_BYTES = 128 << 20
"""Most memory :class:`_CoarseMaps` keeps its smoothed counts in, for the next interface that
reads them (smoothed once instead of once per interface; beyond it, smoothed again)."""
SPARSE_SMOOTHING = 3.0
"""Lateral sigma of the sparse groups' shares (fibres, particles: the separator|cathode cut) in
units of the other shares' sigma (``lateral_nm``).  Wide enough to bridge the pore between sparse
fibres and particles; the wider, the less of the interface's curvature the cut follows."""

_NARROW = ("sodium", "sei", "cathode", "collector")
_WIDE = ("separator", "active", "cathode")


def gaussian_reach(sigma: float) -> int:
    """Reach in cells (voxels) of :func:`scipy.ndimage.gaussian_filter` of ``sigma`` with
    ``truncate=3`` (scipy's kernel radius), as every smoothing of the layer detection and the
    regional classification is cut."""
    return int(3.0 * float(sigma) + 0.5) if sigma > 0 else 0


class _CoarseMaps:
    """The coarse counts of :func:`detect_layers` and the share maps derived from them, a block of
    rows at a time.

    Every map is in ``(a, b, stacking)`` order, reversed along the stacking axis once :attr:`flip`
    is set (anode first).  :attr:`blocks` splits the first lateral axis ``a``; a block's shares are
    smoothed with the rows of lateral context they need, so they equal those of the whole map.

    Parameters
    ----------
    sums : mapping
        Group name -> counts from :func:`_lateral_sums` (numpy or zarr arrays, the volume's axis order).
    axis : int
        Stacking axis of the volume.
    sigma : 2 floats
        Lateral smoothing (Gaussian sigma, coarse cells) of the shares along ``a`` and ``b``; the
        wide shares (sparse fibres and particles) use :data:`SPARSE_SMOOTHING` times this.
    """

    def __init__(self, sums: Mapping[str, Any], axis: int, sigma: Sequence[float]) -> None:
        self._sums = sums
        self._axis = axis
        self._row_axis = 1 if axis == 0 else 0  # axis a in the volume's order
        full = tuple(int(v) for v in next(iter(sums.values())).shape)
        lat = [ax for ax in range(3) if ax != axis]
        self.shape = (full[lat[0]], full[lat[1]], full[axis])
        self.flip = False
        self.sigma = [float(sigma[0]), float(sigma[1]), 0.0]
        self.wide = [SPARSE_SMOOTHING * float(sigma[0]), SPARSE_SMOOTHING * float(sigma[1]), 0.0]
        # blocks at least as deep as the wide smoothing's context: smoothing a block along a reads at most 3x its rows
        rows = max(1, BLOCK_CELLS // max(1, self.shape[1] * self.shape[2]), gaussian_reach(self.wide[0]))
        self.blocks = [(a, min(a + rows, self.shape[0])) for a in range(0, self.shape[0], rows)]
        # smoothed counts already computed: every interface reads some of the same groups
        self._smoothed: dict[tuple[Any, ...], np.ndarray] = {}
        self._kept = 0
        # per column, the whole voxels each profile is moved by along the stacking axis before it is
        # smoothed, and the rows of the moved profiles read (:meth:`levelled`); None: as measured
        self.level: np.ndarray | None = None
        self.band = (0, self.shape[2])
        self._level_id = 0

    def counts(self, keys: Sequence[str], a0: int, a1: int) -> dict[str, np.ndarray]:
        """Counts of the groups ``keys`` in rows ``a0:a1`` (float32)."""
        index = [slice(None)] * 3
        index[self._row_axis] = slice(a0, a1)
        out = {}
        for k in keys:
            v = np.moveaxis(np.asarray(self._sums[k][tuple(index)]), self._axis, -1).astype(np.float32, copy=False)
            v = v[..., ::-1] if self.flip else v
            if self.level is not None:
                at = np.arange(*self.band) + self.level[a0:a1, :, None]
                inside = (at >= 0) & (at < v.shape[-1])
                v = np.where(inside, np.take_along_axis(v, np.clip(at, 0, v.shape[-1] - 1), axis=-1), np.float32(0))
            out[k] = v
        return out

    @contextmanager
    def levelled(self, shift: np.ndarray, band: tuple[int, int] | None = None) -> Iterator[None]:
        """Within the block, column ``(a, b)``'s counts read ``shift[a, b]`` voxels further along
        the stacking axis (beyond the ends: no voxels), so an interface at ``h`` reads at ``h - shift``;
        only the rows ``band`` (start, stop) of the moved columns are read (all by default), so the
        maps hold ``stop - start`` rows and a row ``i`` of them is row ``start + i`` of the moved column."""
        self.level = np.asarray(shift, np.int64)
        self.band = (0, self.shape[2]) if band is None else (int(band[0]), int(band[1]))
        self._level_id += 1
        try:
            yield
        finally:
            self.level = None
            self.band = (0, self.shape[2])
            self._level_id += 1

    def shares(self, keys: Sequence[str], a0: int, a1: int) -> dict[str, np.ndarray]:
        """Share maps of rows ``a0:a1``: ``sodium``, ``sei``, ``cathode``, ``collector`` (shares of
        the valid voxels, smoothed by ``sigma``); ``wide_separator``, ``wide_active``,
        ``wide_cathode``, ``valid_wide`` (the smoothed valid count) and ``dense`` (active plus
        collector), smoothed by the wide sigma; ``particles``: ``wide_active`` plus, where they
        are counted (``detect_layers(cathode_voids=True)``), the cathode's voids' share smoothed
        by ``sigma``."""
        narrow = [k for k in keys if k in _NARROW]
        wide = [k for k in keys if k not in _NARROW]
        halo = gaussian_reach(max(self.sigma[0] if narrow else 0.0, self.wide[0] if wide else 0.0))
        b0, b1 = max(0, a0 - halo), min(self.shape[0], a1 + halo)
        core = slice(a0 - b0, a1 - b0)

        def smoothed(key: str, sigma: Sequence[float]) -> np.ndarray:
            memo = (key, tuple(sigma), a0, a1, self.flip, self._level_id if self.level is not None else 0)
            if memo in self._smoothed:
                return self._smoothed[memo]
            # ndi.gaussian_filter's passes along a, then b (bit for bit, smooth_region), computed for
            # the block's own rows only: the rows of context are read, not smoothed
            cnt = self.counts([key], b0, b1)[key]
            whole = tuple(slice(0, n) for n in cnt.shape)
            out = smooth_region(cnt, [sigma[0], sigma[1], 0.0], whole, (core, whole[1], whole[2]), truncate=3.0,
                                mode="nearest")
            if self._kept + out.nbytes <= SHARE_CACHE_BYTES:
                out.setflags(write=False)
                self._smoothed[memo] = out
                self._kept += out.nbytes
            return out

        out: dict[str, np.ndarray] = {}
        if narrow:
            valid = np.maximum(smoothed("valid", self.sigma), 1e-6)
            out.update({k: smoothed(k, self.sigma) / valid for k in narrow})
        if wide:
            out["valid_wide"] = smoothed("valid", self.wide)
            wvalid = np.maximum(out["valid_wide"], 1e-6)
            for g in _WIDE:
                if f"wide_{g}" in wide or (g == "active" and "dense" in wide):
                    out[f"wide_{g}"] = smoothed(g, self.wide) / wvalid
            if "dense" in wide:
                out["dense"] = out["wide_active"] + smoothed("collector", self.wide) / wvalid
            if "particles" in wide:
                out["particles"] = smoothed("active", self.wide) / wvalid
                if "void" in self._sums:
                    # a void fills the columns it tops: no sparse gaps to bridge (the wide sigma's reason),
                    # and at the wide sigma it weighs on columns 3 sigmas away that it does not top
                    out["particles"] = out["particles"] + smoothed("void", self.sigma) / np.maximum(
                        smoothed("valid", self.sigma), 1e-6)
        return {k: out[k] for k in keys}


_CUT_CELLS = 1 << 20
"""Cells of the share maps :func:`_cut` works on at a time (its temporaries are several times that)."""


def _cut(before: np.ndarray, after: np.ndarray, lo: np.ndarray, hi: np.ndarray, window: int) -> np.ndarray:
    """Per column (last axis = stacking), the boundary that best puts ``before`` first, ``after`` last.

    ``before``/``after`` are non-negative weights (shares) per voxel; the cut ``h`` in
    ``[lo, hi]`` minimises ``sum(after[:h]) + sum(before[h:])``, then is refined to
    ``h0 + sum(r)`` over a ``±window`` neighbourhood, ``r = before / (before + after)``.
    Columns are independent: the maps are cut a block of rows at a time (bounded temporaries).
    """
    rows = max(1, _CUT_CELLS // max(1, before[0].size))
    if before.shape[0] <= rows:
        return _cut_block(before, after, lo, hi, window)
    return np.concatenate([_cut_block(before[a:a + rows], after[a:a + rows], lo[a:a + rows], hi[a:a + rows], window)
                           for a in range(0, before.shape[0], rows)])


def _cut_block(before: np.ndarray, after: np.ndarray, lo: np.ndarray, hi: np.ndarray, window: int) -> np.ndarray:
    """:func:`_cut` on one block of rows."""
    n = before.shape[-1]
    idx = np.arange(n + 1)
    ca = np.concatenate([np.zeros(before.shape[:-1] + (1,)), np.cumsum(after, axis=-1)], axis=-1)
    cb = np.concatenate([np.zeros(before.shape[:-1] + (1,)), np.cumsum(before, axis=-1)], axis=-1)
    cost = ca + (cb[..., -1:] - cb)
    outside = (idx < lo[..., None]) | (idx > hi[..., None])
    cost = np.where(outside, np.inf, cost)
    first = np.argmin(cost, axis=-1)
    last = n - np.argmin(cost[..., ::-1], axis=-1)
    # a flat minimum (a run of neutral voxels between the two sides) is split in the middle
    h0 = (first + last) // 2
    # sub-voxel refinement: integral of the "before" share across the window
    w0 = np.clip(h0 - window, lo, hi)
    w1 = np.clip(h0 + window, lo, hi)
    r = _share_ratio(before, after)
    # rows without evidence take the value the integer cut implies
    implied = (np.arange(n) < h0[..., None]).astype(np.float64)
    r = np.where(np.isnan(r), implied, r)
    inside = (np.arange(n) >= w0[..., None]) & (np.arange(n) < w1[..., None])
    return w0 + np.sum(np.where(inside, r, 0.0), axis=-1)


def _plane_outliers(h: np.ndarray, ok: np.ndarray, floor: float, k: float = 4.0) -> tuple[np.ndarray, np.ndarray, float]:
    """A robust plane through a height map (tilt), and the columns far off it.

    Interfaces are rough but continuous: a column whose cut lies more than ``max(k * sigma,
    floor)`` from the plane (``sigma`` the robust spread of the residuals over the columns ``ok``)
    was pulled off by misclassified voxels.  Returns ``(plane, far, tolerance)``.
    """
    a, b = np.meshgrid(np.arange(h.shape[0], dtype=float), np.arange(h.shape[1], dtype=float), indexing="ij")
    design = np.stack([np.ones_like(a), a, b], axis=-1)
    if not ok.any():
        return h, np.zeros(h.shape, bool), np.inf
    # start level, then tilt, from the columns near the median: a least-squares plane through all
    # columns would lean towards a block of bad ones
    plane = np.full(h.shape, float(np.median(h[ok])))
    for _ in range(4):
        res = h - plane
        tol = max(k * 1.4826 * float(np.median(np.abs(res[ok] - np.median(res[ok])))), floor)
        use = ok & (np.abs(res) <= tol)
        if use.sum() < 3:
            break
        plane = design @ np.linalg.lstsq(design[use], h[use], rcond=None)[0]
    res = h - plane
    tol = max(k * 1.4826 * float(np.median(np.abs(res[ok] - np.median(res[ok])))), floor)
    return plane, ok & (np.abs(res) > tol), tol


Pair = Callable[[int, int], tuple[np.ndarray, np.ndarray]]
"""``pair(a0, a1)``: the ``(before, after)`` share maps of rows ``a0:a1`` (first lateral axis)."""


def _regular_cut(pair: Pair, blocks: Sequence[tuple[int, int]], lo: np.ndarray, hi: np.ndarray, window: int,
                 ok: np.ndarray, floor: float) -> np.ndarray:
    """:func:`_cut`, then columns far off the field's plane cut again within its tolerance band;
    where that cut is pinned to the band's edge too (no evidence left in the column), the plane.

    The maps come from ``pair`` a block of rows (``blocks``) at a time: columns are cut on their
    own, only the plane needs every column, and only blocks holding a far column are cut again.
    """
    h = np.concatenate([_cut(*pair(a0, a1), lo[a0:a1], hi[a0:a1], window) for a0, a1 in blocks])
    plane, far, tol = _plane_outliers(h, ok, floor)
    if not far.any():
        return h
    lo2 = np.clip(np.floor(plane - tol).astype(np.int64), lo, hi)
    hi2 = np.clip(np.ceil(plane + tol).astype(np.int64), lo2, hi)
    again = h.copy()
    for a0, a1 in blocks:
        if far[a0:a1].any():
            again[a0:a1] = _cut(*pair(a0, a1), lo2[a0:a1], hi2[a0:a1], window)
    pinned = np.abs(again - plane) >= tol - 1.0
    return np.where(far, np.where(pinned, plane, again), h)


def _share_ratio(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """``before / (before + after)``; NaN where neither has a share."""
    tot = before + after
    return np.where(tot > 1e-6, before / np.maximum(tot, 1e-6), np.nan)


SOLIDS_CONTRAST = 0.1
"""Least rise of the cathode's solid share (active + binder, smoothed) across a levelled
separator|cathode interface for :func:`_solids_pair` to cut on it; below it the cut falls back on
the separator fibres' fall."""
FILM_EVIDENCE = 0.5
"""Least sum of the fibre and solid shares, each in units of its own layer's level, of a row that
:func:`_solids_pair` cuts on the fibre : particle ratio as well; a row below it is an electrolyte
film (or a pore-topped cathode), where that ratio says nothing."""
LEVEL_SNAP = 0.25
"""Part of the way between its two levels within which :func:`_solids_pair`'s scaled share counts
as the level itself: the layers' own gradients (the cathode's top more porous than its bulk, a
fibre mat thinning towards its edge) are not the step.  Must lie in [0, 0.5)."""


def _side_levels(share: np.ndarray, at: float, margin: int, depth: int) -> tuple[np.ndarray, np.ndarray]:
    """Per column (last axis = stacking), the mean of ``share`` over the ``depth`` rows that end
    ``margin`` rows before row ``at`` and over the ``depth`` rows that start ``margin`` rows after
    it (shape ``(..., 1)``; a side without rows: 0).

    A side without rows happens on a field that begins (or ends) within ``margin + depth`` rows of
    the interface.  Its level 0 reads as full contrast; NaN (no level, the share ratio's fallback)
    was measured worse there (review rev15: 12x160x160 phantoms cropped to begin 2-8 rows above
    the separator|cathode interface, the classifier's separator thickness off by 2.13 -> 2.69 and
    1.41 -> 1.64 rows on diglyme, 0.52 -> 0.58 on carbonate; the auto path 1.91 -> 2.02 on one)."""
    rows = np.arange(share.shape[-1])
    before = (rows < at - margin) & (rows >= at - margin - depth)
    after = (rows > at + margin) & (rows <= at + margin + depth)
    return tuple(share[..., m].mean(axis=-1, keepdims=True) if m.any() else np.zeros(share.shape[:-1] + (1,))
                 for m in (before, after))


def _mat_standing(share: np.ndarray, after: np.ndarray, at: float, depth: int) -> np.ndarray:
    """Rows (last axis = stacking) where the fibre ``share`` still stands at least halfway between
    its level ``after`` the interface and its peak over the ``depth`` rows up to row ``at`` (the
    mat's last rows, whatever its level further back: a mat may thicken or thin towards the
    cathode)."""
    rows = np.arange(share.shape[-1])
    peak = np.where((rows >= at - depth) & (rows <= at), share, 0.0).max(axis=-1, keepdims=True)
    return share - after >= 0.5 * (peak - after)


def _solids_pair(maps: "_CoarseMaps", at: float, window: int, *, fibres: str = "wide_separator",
                 solids: str = "wide_cathode", particles: str = "wide_active") -> Pair:
    """``(before, after)`` maps of a levelled separator|cathode interface near row ``at``: where
    the cathode's solids begin, each column scaled between its own levels.

    The cathode is a packing of solids (active particles and carbon-binder domain) with pores; the
    separator a sparse fibre mat in electrolyte.  The mat need not reach the cathode: a film of
    electrolyte between them is the separator's.  On the 24x192 phantoms the fibres stop rows
    short of the cathode over much of the field (no fibre at all in the last 5 rows of whole
    stretches), and a cut between the fibres' fall and the particles' rise split that film in
    the middle: the separator|cathode cut ran 1 to 4 voxels shallow, most beside the walls.

    So each column (the shares smoothed along the levelled interface) is cut where its solid
    share ``solids`` is halfway between its levels just before the interface and in the
    cathode's first rows (``window`` rows off the interface, ``2 * window`` deep: the level of
    the cathode's top, not of its bulk; per column, since the top's solid share ranges from a few
    percent to most of the voxels over one field).  Where a row also holds fibres or solids
    (:data:`FILM_EVIDENCE`), the fibre : particle ratio ``fibres / (fibres + particles)`` (the
    evidence of the unlevelled cut) is averaged in: it is sharper where the levelling is still
    off (beside a wall), and it ignores binder, which a pixel classifier labels in the
    separator's last rows next to particles.  Where the fibres still stand (:func:`_mat_standing`)
    the row is the mat's and the larger of the two says so: solids there are the mat's fibres taken
    for particles or binder (a grey first guess labels about a seventh of the mat's last rows
    active on the carbonate 24x192 seed 0 phantom), and against a cathode whose top is mostly pore
    they are half its solids' rise, which cut 2-3 voxels into the mat over a whole stretch of the
    field (the fibres' last rows then labelled in the cathode).  A column whose solids rise by less than
    :data:`SOLIDS_CONTRAST` (a cathode whose top is pore) is cut where its fibre share, scaled
    between its levels (``2 * window`` rows off and deep), is halfway; a column with neither on
    ``fibres / (fibres + solids)``.  The scaled share ``y`` ("before", 1 in the separator) snaps
    to its levels within :data:`LEVEL_SNAP`; the weights are ``y`` and ``1 - y``.
    """

    def pair(a0: int, a1: int) -> tuple[np.ndarray, np.ndarray]:
        m = maps.shares(list(dict.fromkeys([fibres, solids, particles])), a0, a1)
        s, c = m[fibres], m[solids]
        s_before, s_after = _side_levels(s, at, 2 * window, 2 * window)
        c_before, c_after = _side_levels(c, at, window, 2 * window)
        rise_s, rise_c = np.clip(s_before - s_after, 0.0, None), np.clip(c_after - c_before, 0.0, None)
        fibred, solid = rise_s > 1e-3, rise_c > SOLIDS_CONTRAST
        y_s = np.clip((s - s_after) / np.maximum(rise_s, 1e-6), 0.0, 1.0)
        y_c = np.clip((c_after - c) / np.maximum(rise_c, 1e-6), 0.0, 1.0)
        plain = _share_ratio(s, c)
        ratio = _share_ratio(s, m[particles])
        held = s / np.maximum(s_before, 1e-6) + c / np.maximum(c_after, 1e-6) >= FILM_EVIDENCE
        standing = _mat_standing(s, s_after, at, 2 * window)
        mixed = np.where(standing, np.maximum(y_c, np.nan_to_num(ratio)), 0.5 * (y_c + np.nan_to_num(ratio)))
        y = np.where(solid & fibred & held & np.isfinite(ratio), mixed, y_c)
        y = np.where(solid, y, np.where(fibred, y_s, np.where(np.isfinite(plain), plain, 0.5)))
        y = np.clip((y - LEVEL_SNAP) / (1.0 - 2.0 * LEVEL_SNAP), 0.0, 1.0)
        return y, 1.0 - y
    return pair


def _change_point(profile: np.ndarray) -> tuple[int, float, float]:
    """Best split ``j`` of a 1D profile into two constant levels (least squares), and the levels.

    Returns ``(j, mean before, mean after)``; ``j = len(profile)`` (no split) for fewer than 2 values.
    """
    m = profile.size
    if m < 2:
        level = float(profile.mean()) if m else 0.0
        return m, level, level
    c1 = np.concatenate([[0.0], np.cumsum(profile)])
    c2 = np.concatenate([[0.0], np.cumsum(profile**2)])
    j = np.arange(1, m)
    sse = (c2[j] - c1[j] ** 2 / j) + ((c2[m] - c2[j]) - (c1[m] - c1[j]) ** 2 / (m - j))
    best = int(j[np.argmin(sse)])
    return best, float(c1[best] / best), float((c1[m] - c1[best]) / (m - best))


def _collector_cut(
    maps: _CoarseMaps, profiles: Mapping[str, np.ndarray], lo: np.ndarray, hi: np.ndarray, start: int, window: int,
    ok: np.ndarray, floor: float,
) -> tuple[np.ndarray | None, str]:
    """The cathode|collector surface: where the stack turns into the dense foil at its end.

    The collector is a dense metal foil at the end of the stack, the cathode a porous composite:
    the share of valid voxels that are *not* dense (``1 - dense``: pore, binder, anything but
    active or collector) drops from the cathode's level to near zero in the foil.  The two levels
    come from a two-segment fit of the whole field's profile beyond ``start``; no drop, no foil.
    When the first guess labels the foil ``collector`` (its share, weighed by the valid voxels,
    is at least half in the foil's rows) each column is cut on that share: it also tells a
    particle lying on the foil from the foil.  When it does not (the foil's grey level can equal
    that of the edge-brightened active particles, all the more at coarse pixels where their
    bright rims fill the particles), each column is cut on its porous share scaled between the
    two levels.  ``profiles``: per row along the stacking axis, summed over the columns, the
    wide valid share (``weight``) and its products with the porous share (``porous``) and with
    the collector share (``foil``), see :func:`_collector_profiles`.  Returns ``(heights or None, note)``.
    """
    weight = profiles["weight"]
    prof = profiles["porous"] / np.maximum(weight, 1e-6)
    rows = np.nonzero(weight > 0.05 * weight.max(initial=0.0))[0]
    rows = rows[rows >= start]
    if rows.size < 2:
        return None, "no collector: too few rows beyond the separator|cathode interface"
    j, cathode_level, foil_level = _change_point(prof[rows])
    if not foil_level < 0.5 * cathode_level:
        return None, (f"no collector: no dense foil at the end of the stack (non-dense share {foil_level:.2f} "
                      f"vs {cathode_level:.2f} in the cathode)")
    lo_c = np.minimum(np.maximum(lo, start), hi)
    foil_rows = rows[j:]
    labelled = float(profiles["foil"][foil_rows].sum() / max(weight[foil_rows].sum(), 1e-6))
    note = (f"cathode|collector: non-dense share {cathode_level:.2f} in the cathode vs {foil_level:.2f} in the foil "
            f"(field profile split at row {int(rows[j])}), {labelled:.0%} of the foil labelled collector")

    def on_label(a0: int, a1: int) -> tuple[np.ndarray, np.ndarray]:
        foil = maps.shares(["collector"], a0, a1)["collector"]
        return 1.0 - foil, foil

    def on_porous(a0: int, a1: int) -> tuple[np.ndarray, np.ndarray]:
        porous = np.clip(1.0 - maps.shares(["dense"], a0, a1)["dense"], 0.0, 1.0)
        r = np.clip((porous - foil_level) / (cathode_level - foil_level), 0.0, 1.0)
        return r, 1.0 - r

    if labelled >= 0.5:
        return _regular_cut(on_label, maps.blocks, lo_c, hi, window, ok, floor), note + ": cut on the collector label"
    return _regular_cut(on_porous, maps.blocks, lo_c, hi, window, ok, floor), note + ": cut on the non-dense share"


def _collector_profiles(maps: _CoarseMaps) -> dict[str, np.ndarray]:
    """Per row along the stacking axis, summed over all columns: the wide valid share
    (``weight``) and its products with the porous share ``clip(1 - dense)`` (``porous``) and with
    the collector share (``foil``), as :func:`_collector_cut` reads them."""
    out = {k: np.zeros(maps.shape[2]) for k in ("weight", "porous", "foil")}
    for a0, a1 in maps.blocks:
        m = maps.shares(["valid_wide", "dense", "collector"], a0, a1)
        valid = m["valid_wide"]
        out["weight"] += valid.sum(axis=(0, 1), dtype=np.float64)
        out["porous"] += (np.clip(1.0 - m["dense"], 0.0, 1.0) * valid).sum(axis=(0, 1), dtype=np.float64)
        out["foil"] += (m["collector"] * valid).sum(axis=(0, 1), dtype=np.float64)
    return out


def _fill_columns(h: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Columns without specimen (frame walls) take the height of the nearest column with specimen."""
    if ok.all() or not ok.any():
        return h
    idx = ndi.distance_transform_edt(~ok, return_distances=False, return_indices=True)
    return h[tuple(idx)]


def find_stacking_axis(phases: Any, *, phase_names: Mapping[str, int], frame_value: int | None = None) -> tuple[int, dict[str, float]]:
    """Axis along which the phase composition varies most, and the score of each axis.

    The score is the summed variance, along the axis, of each layer-phase group's share of the
    slab (frame and unassigned voxels excluded).
    """
    values = _group_values(phase_names)
    profiles = _profiles(phases, values, frame_value)
    scores = {}
    for axis in range(3):
        sums = {k: v[axis] for k, v in profiles.items()}
        valid = np.maximum(sums.pop("valid"), 1)
        scores[AXES[axis]] = float(sum(np.var(v / valid) for v in sums.values()))
    best = max(range(3), key=lambda a: scores[AXES[a]])
    return best, scores


def _block_profiles(block: np.ndarray, values: Mapping[str, Sequence[int]], frame: int | None) -> dict[str, list[np.ndarray]]:
    """Per group, the voxel counts of a block along each of its three axes."""
    counts = axis_value_counts(block)
    if counts is not None:
        # one pass over the block; a group's counts are its values' columns summed
        valid = [v for v in range(counts[0].shape[1]) if v != 0 and v != frame]
        return {k: [group_counts(c, vals) for c in counts] for k, vals in [("valid", valid), *values.items()]}
    out = {}
    for k, m in _indicators(np.asarray(block), values, frame, cores=False).items():
        out[k] = [m.sum(axis=(1, 2)), m.sum(axis=(0, 2)), m.sum(axis=(0, 1))]
    return out


def _profiles(phases: Any, values: Mapping[str, Sequence[int]], frame: int | None) -> dict[str, list[np.ndarray]]:
    """Per group (and ``valid``), its voxel count in each slab along z, y and x: one pass."""
    if not hasattr(phases, "to_delayed"):
        return {k: [p.astype(np.float64) for p in v] for k, v in _block_profiles(phases, values, frame).items()}
    import dask

    starts = [np.r_[0, np.cumsum(c)[:-1]] for c in phases.chunks]
    blocks = phases.to_delayed()
    index = list(np.ndindex(blocks.shape))
    parts = dask.compute(*[dask.delayed(_block_profiles)(blocks[i], values, frame) for i in index])
    out = {k: [np.zeros(n, np.float64) for n in phases.shape] for k in ["valid", *values]}
    for i, part in zip(index, parts):
        for k, profs in part.items():
            for ax in range(3):
                s0 = starts[ax][i[ax]]
                out[k][ax][s0:s0 + profs[ax].size] += profs[ax]
    return out


def topping_voids(labels: np.ndarray, *, void: int, passable: Sequence[int], not_solid: Sequence[int], axis: int,
                  anode_first: bool, reach: int) -> np.ndarray:
    """The ``void`` voxels of ``labels`` that top the cathode: the voids (face-connected in 3D) part of
    whose floor lies on a solid.

    An empty pore of the cathode is bounded by its solids: where a void tops the cathode, its far
    wall (its floor, along the stacking axis towards the cathode) is the cathode's first solid.  A
    dark patch of the separator's electrolyte film (the layer guess marks the film's darkest
    stretch, far from the fibres' blur, as void: 430 voxels 6-20 rows before the cathode on the
    24x192 carbonate seed 2 phantom, 3-8 electrolyte spreads dark) floats in the electrolyte: pore
    lies between it and any solid.  A floor voxel (a void voxel whose next voxel towards the cathode
    is not void) lies on a solid when, within ``reach`` voxels on, a solid is met through the
    ``passable`` labels (the pore) alone; a whole void counts where one of its floor voxels does
    (its lit rows and shine-through read as pore, so most of its floor is not marked void).

    Parameters
    ----------
    labels : ndarray (z, y, x)
        Phase labels.
    void : int
        Label value of the voids.
    passable : sequence of int
        Labels a floor's path to the solid may cross (the pore's: void, electrolyte).
    not_solid : sequence of int
        Labels that are no solid of the cathode besides ``passable`` (unassigned, frame, and the
        separator's fibres: a void lying on a fibre is the separator's pore).
    axis : int
        Stacking axis.
    anode_first : bool
        Whether the cathode lies towards higher indices along ``axis``.
    reach : int
        Voxels beyond the floor within which the solid is met (the blur between a void's marked
        core and its wall's solid class; at least 1).

    Returns
    -------
    ndarray of bool
        ``labels``' shape.
    """
    lab = np.asarray(labels)
    across = 0 if axis != 0 else 1
    out = np.zeros(lab.shape, bool)
    for s, tops in topping_voids_slabs(lambda s: lab[_along(across, s)], [slice(0, lab.shape[across])], across=across,
                                       void=void, passable=passable, not_solid=not_solid, axis=axis,
                                       anode_first=anode_first, reach=reach):
        out[_along(across, s)] = tops
    return out


def _along(axis: int, at: slice) -> tuple[slice, ...]:
    """The index of the slab ``at`` along ``axis`` of a 3-D array."""
    index = [slice(None)] * 3
    index[axis] = at
    return tuple(index)


def topping_voids_slabs(read: Callable[[slice], np.ndarray], slabs: Sequence[slice], *, across: int, void: int,
                        passable: Sequence[int], not_solid: Sequence[int], axis: int, anode_first: bool,
                        reach: int) -> Iterator[tuple[slice, np.ndarray]]:
    """:func:`topping_voids` of a labels array read one slab at a time across the stacking axis.

    ``read(slab)`` gives the labels of the slab ``slab`` along the axis ``across`` (not ``axis``); the
    ``slabs`` tile that axis in order.  A void's floor and the solid beyond it lie along ``axis``,
    within the slab; its voxels are labelled (face-connected) slab by slab, the labels that touch
    across a slab face merged afterwards (a graph's connected components,
    :func:`volrecon.analyze.connectivity._merge`): the same voids as one labelling of the whole array,
    with memory bounded by a slab's labels (a whole band's int32 labels were four times its labels'
    bytes, held at once).  Every slab is read twice (labelled, then its voids marked), the last one once.

    Yields
    ------
    slab : slice
        One of ``slabs`` (the last first).
    tops : ndarray of bool
        Its topping voids (``read(slab)``'s shape).
    """
    flags: list[np.ndarray] = [np.zeros(1, bool)]
    offsets: list[int] = []
    pairs_a: list[np.ndarray] = []
    pairs_b: list[np.ndarray] = []
    prev: np.ndarray | None = None
    comps, total = np.zeros(0, np.int64), 0
    for s in slabs:
        comps, seeded = _floor_components(read(s), void=void, passable=passable, not_solid=not_solid, axis=axis,
                                          anode_first=anode_first, reach=reach, offset=total)
        offsets.append(total)
        flags.append(seeded)
        total += seeded.size
        if prev is not None:
            a, b = _face_pairs(prev, np.take(comps, 0, axis=across), 6)
            pairs_a.append(a)
            pairs_b.append(b)
        prev = np.take(comps, -1, axis=across).copy()
    comp = _merge(pairs_a, pairs_b, total)
    # a void tops the cathode where one of its slabs' parts has a floor voxel on a solid
    hit = np.bincount(comp, weights=np.concatenate(flags), minlength=int(comp.max(initial=0)) + 1) > 0
    topping = hit[comp]
    topping[0] = False
    for i in reversed(range(len(slabs))):
        if i < len(slabs) - 1:  # the last slab's labels are still in hand
            comps, _ = _floor_components(read(slabs[i]), void=void, passable=passable, not_solid=not_solid, axis=axis,
                                         anode_first=anode_first, reach=reach, offset=offsets[i])
        yield slabs[i], topping[comps]


def _floor_components(labels: np.ndarray, *, void: int, passable: Sequence[int], not_solid: Sequence[int], axis: int,
                      anode_first: bool, reach: int, offset: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``void`` voxels of ``labels`` labelled (face-connected, ``offset`` + 1 on; 0 elsewhere) and, per
    label from ``offset`` + 1 on, whether one of its floor voxels lies on a solid (:func:`topping_voids`)."""
    lab = np.moveaxis(np.asarray(labels), axis, -1)
    if not anode_first:
        lab = lab[..., ::-1]
    voids = lab == void
    pore = np.isin(lab, list(passable))
    solid = ~pore & ~np.isin(lab, list(not_solid))
    n = lab.shape[-1]
    on_solid = np.zeros_like(voids)
    through = np.ones_like(voids)  # voxels 1..d-1 beyond are pore
    for d in range(1, max(1, int(reach)) + 1):
        on_solid[..., :n - d] |= through[..., :n - d] & solid[..., d:]
        through[..., :n - d] &= pore[..., d:]
        through[..., n - d:] = False
    del pore, solid, through
    floor = voids.copy()
    floor[..., :-1] &= ~voids[..., 1:]
    floor &= on_solid
    del on_solid
    if not anode_first:
        voids, floor = voids[..., ::-1], floor[..., ::-1]
    voids, floor = np.moveaxis(voids, -1, axis), np.moveaxis(floor, -1, axis)
    comps, count = ndi.label(voids, structure=ndi.generate_binary_structure(3, 1))
    seeded = np.zeros(count + 1, bool)
    seeded[np.unique(comps[floor])] = True
    if offset:
        comps = comps.astype(np.int64 if offset + count >= 2**31 else comps.dtype, copy=False)
        comps[comps > 0] += offset
    return comps, seeded[1:]


def _group_values(phase_names: Mapping[str, int]) -> dict[str, list[int]]:
    return {g: [int(phase_names[p]) for p in members if p in phase_names] for g, members in _GROUPS.items()}


def detect_layers(
    phases: Any,
    *,
    phase_names: Mapping[str, int],
    voxel_size_nm: Sequence[float],
    axis: int | str | None = None,
    lateral_nm: float = 120.0,
    frame_value: int | None = None,
    scratch: str | Path | None = None,
    level_passes: int = 2,
    specimen_core: bool = False,
    cathode_voids: bool = False,
    topping: int | None = None,
) -> Layers:
    """Find the cell's layers and their interfaces in a phase label volume.

    Parameters
    ----------
    phases : ndarray or dask array (z, y, x)
        Phase labels (0 = unassigned).
    phase_names : mapping
        Phase name -> label value; uses ``sodium``, ``sei``, ``separator``, ``active``,
        ``binder`` and ``collector`` where present.
    voxel_size_nm : 3 floats
        ``(z, y, x)`` voxel size in nm.
    axis : int or {"z", "y", "x"}, optional
        Stacking axis; found from the data when omitted.
    lateral_nm : float
        Lateral smoothing scale (Gaussian sigma, nm) of the phase shares; roughness finer than
        this is not followed.
    frame_value : int, optional
        Label value of frame voxels (excluded).
    scratch : path, optional
        Folder under which the coarse counts of a large dask input are kept while the interfaces
        are found (:data:`SPILL_BYTES`; a temporary folder by default); removed when done.
    level_passes : int
        Times the ``separator|cathode`` cut is done again on the sparse groups' shares smoothed
        along the interface last found (each column's profile moved by its height, in whole
        voxels), not across it: smoothing a tilted or curved interface's shares over
        :data:`SPARSE_SMOOTHING` x ``lateral_nm`` pulls the cut towards the field's mean height
        where the window is one-sided (frame walls, the field's ends) and flattens its bumps.
        Each pass reads, smooths and cuts only a band of rows around the levelled interface (its
        median height +- :data:`OUTLIER_NM` + 2 :data:`REFINE_NM`), not whole columns.
        2 (default); 0: not done.  Measured (benchmarks/segmentation.py phantoms, both presets):
        the mean separator|cathode distance over twelve 48x256 stacks per method 2.21 -> 1.91 voxels
        (unsupervised) and 2.25 -> 1.86 (classifier), every stack better; on 24x192 seeds 0-2
        2.04 -> 1.63 and 2.98 -> 2.46, the worst stack 2.00 -> 2.11 (classifier, carbonate seed 0).
        Void Dice moves by -0.019...+0.025: the losses are separator voxels the unlevelled cut had
        put in the cathode, where the void split had overruled the classifier's false voids in the
        separator's electrolyte (void is split from electrolyte in the cathode only), and the
        unsupervised cut going deeper under voids at the cathode's top.  The passes cost ~2 CPU-s at
        200x1024x1024 (a band of rows is read, not whole columns).  The passes cut where the
        cathode's solids begin (:func:`_solids_pair`), each column scaled between its own levels,
        with the fibre : particle ratio averaged in where a row holds either: the fibre mat stops
        short of the cathode over much of the phantoms' fields, and a cut between the fibres'
        fall and the particles' rise split the electrolyte film between them (the cut ran 1 to 4
        voxels shallow, most beside the walls).  Measured against the ratio rescaled between
        field-wide levels it replaced (benchmarks/segmentation.py, separator|cathode mean distance,
        both presets, classifier and unsupervised, corrected and oracle-corrected; 24x192 seeds 0-2,
        48x256 seeds 0-1: 40 rows): mean 1.79 -> 1.32 voxels (classifier 1.93 -> 1.34,
        unsupervised 1.65 -> 1.31), rows over 2 voxels 12 -> 1 (carbonate 24x192 seed 0
        classifier corrected, 2.11 -> 2.11: false binder where the mat meets the electrolyte film
        beside the wall); diglyme 24x192 seed 0 classifier 2.41 / 2.25 -> 1.77 / 1.71 (corrected
        / oracle), unsupervised 1.69 / 2.01 -> 1.22 / 1.37.  Worse on 8 rows: unsupervised
        carbonate 24x192 seed 0 0.71 / 0.86 -> 1.41 / 1.16 (its separator Dice 0.946 / 0.947 ->
        0.938 / 0.916), carbonate 48x256 seed 0 1.55 / 1.56 -> 1.77 / 1.80, diglyme 48x256 seed 1
        1.05 / 0.94 -> 1.67 / 1.41; classifier corrected carbonate 24x192 seed 1 0.95 -> 1.02,
        48x256 seed 1 1.17 -> 1.24.  Void Dice moves by -0.013...+0.016, the other Dice by at most
        0.01 (but that separator row); ~0.13 CPU-s per 48x256 detection either way.  Where the mat
        still stands (:func:`_mat_standing`) the fibre : particle ratio overrides the solids' scaled
        share when larger: the grey first guess of carbonate 24x192 seed 0 labels a seventh of the
        mat's last rows active over a stretch whose cathode top is mostly pore, and each pass cut
        further into the mat (-3 voxels beside the wall after two).  Measured (benchmarks/segmentation.py,
        24x192 seeds 0-2, 24 rows): separator|cathode mean 1.341 -> 1.325, unsupervised carbonate
        seed 0 oracle-corrected 1.16 -> 0.85 (separator Dice 0.916 -> 0.956); 6 rows worse by at most
        0.05 (carbonate seed 2 unsupervised oracle-corrected 1.56 -> 1.61); on 48x256 seed 0's cached
        detections 1.382 -> 1.391 (diglyme classifier oracle-corrected 1.20 -> 1.27).

    specimen_core : bool
        Leave out the specimen's voxels beside the frame or unassigned voxels (the frame's rim
        shell), within :data:`CORE_SHELL_NM` in the image plane (:func:`_specimen_core`): the
        frame's wall is placed to about a voxel and its rim lights the first specimen voxel beside
        it, which a pixel classifier labels as a bright phase (a line of ``active`` along the trench
        wall through the separator's electrolyte film pulled the classifier's separator|cathode
        cut 10 voxels towards the anode beside the wall: 2.08 -> 0.69 voxels on the real-corrected
        carbonate 24x192 seed 0 phantom).  False by default (the unsupervised grey guess: measured
        worse with it, carbonate 24x192 seed 2 separator|cathode 1.44 -> 1.67 voxels, its
        wall-side column labelled as fibre there had pulled the cut the right way).
    cathode_voids : bool
        Count ``void`` voxels with the cathode's solids (the ``separator|cathode`` cut's
        cathode side).  An empty pore is the cathode's: the electrolyte the cell lost leaves voids
        in the cathode, while the separator's pores stay filled; where a void tops the cathode, its
        solids begin rows beyond the interface and a cut on them alone reads the void as the
        separator's pore.  The void counts on the cathode's side wherever the cut weighs it: with
        its solids (the levelling passes' rise) and with its particles (the first cut and the
        passes' fibre : particle ratio).  Counted with the solids alone, a void run under the mat
        was neither side's in the first cut (whose flat minimum's middle then lay half the void's
        depth into the cathode) nor in the ratio (the guess's few fibre-class voxels in the void's
        lit rows against no particle: all separator).  On the particles' side the void's share is
        smoothed by ``lateral_nm``, not the sparse groups' wide sigma: a void fills the columns
        it tops, and widely smoothed it weighed on columns it does not top.  Measured
        (``benchmarks/segmentation.py --methods auto``, 24x192 seeds 0-3, both presets, corrected
        / oracle-corrected), against the void on the solids' side alone: separator|cathode mean
        over the 16 rows 1.15 -> 0.99 voxels, diglyme seed 1 1.57 / 1.49 -> 0.75 / 0.86, seed 3
        1.25 / 0.89 -> 0.86 / 0.78, seed 0 1.22 / 1.13 -> 0.90 / 0.87, carbonate seed 0
        1.15 / 0.82 -> 0.93 / 0.76; void Dice up on the diglyme rows (seed 1 0.774 / 0.787 ->
        0.802 / 0.808).  Worse: carbonate seed 2 1.54 / 1.60 -> 1.79 / 1.63 (its first cut 3
        voxels shallow either way, 0.3-0.4 more now where hardly a void is marked: not explained),
        carbonate seed 1 / 3 oracle-corrected +0.02 / +0.01; diglyme seed 1 corrected active
        0.960 -> 0.953, binder 0.792 -> 0.782 (the cathode's rim-length fit, whose peak is flat,
        read 2.5 nm on the old cathode region, 0 on the new).  For phases whose ``void`` means an
        empty pore (the grey guess's pore too dark to hold electrolyte, ``segment_volume``;
        measured there: ``api._cut_beside_voids``); False by default (a pixel classifier's
        ``void`` is also found in the separator's electrolyte).  The figures above count every
        marked void with the particles; since session 26 only those that top the cathode do
        (``topping``): a void in the separator's electrolyte film pulled the cut towards the anode
        (carbonate seed 2 1.54 -> 1.79).
    topping : int, optional
        With ``cathode_voids``, the label value the caller gave the voids that top the cathode
        (:func:`topping_voids`): they count with the cathode's particles as well as its solids, the
        other ``void`` voxels with its solids alone (main's rule before session 25).  None: every
        ``void`` voxel counts on both sides.  Counted with the particles, a dark patch the layer
        guess marks void in the separator's electrolyte film (electrolyte in the truth: 430 voxels
        6-20 rows before the cathode, with no fibre between it and the cathode in its columns, so
        a rule on the fibres beyond a void does not tell it) pulled the first cut towards the
        anode.  Measured (``benchmarks/segmentation.py --methods classifier,auto``, 24x192 seeds
        0-3, both presets, unsupervised, corrected / oracle-corrected; against main, whose voids
        count with the solids alone): separator|cathode diglyme seed 0 1.22 / 1.13 -> 0.89 / 0.84,
        seed 1 1.57 / 1.49 -> 0.74 / 0.84, seed 2 0.98 / 0.96 -> 0.90 / 0.90, seed 3 1.25 / 0.89
        -> 0.87 / 0.76; carbonate seed 2 1.54 / 1.60 -> 1.55 / 1.61 (1.79 / 1.63 with every void on
        the particles' side), seed 0 1.15 / 0.82 -> 1.17 / 0.83 (its voids under the cut float over
        a deep pore: 0.93 / 0.76 with every void counted), seeds 1 and 3 unchanged; void Dice up on
        every diglyme row (seed 1 0.774 / 0.787 -> 0.802 / 0.809, seed 3 0.716 -> 0.739).  Worse:
        diglyme seed 1 corrected active 0.959 -> 0.953 and pore 0.957 -> 0.955 (the cathode's
        rim-length fit, read on the new cathode region), carbonate seed 0 corrected void 0.282 ->
        0.279.  The classifier's rows do not move (its layers are not re-cut).

    Returns
    -------
    Layers
    """
    if isinstance(level_passes, bool) or not isinstance(level_passes, (int, np.integer)) or level_passes < 0:
        raise ParameterError(f"level_passes={level_passes!r}: give a whole number of passes >= 0 (2, the default, "
                             "re-cuts the separator|cathode interface twice; 0 keeps the first cut)")
    vox = [float(v) for v in voxel_size_nm]
    values = _group_values(phase_names)
    if cathode_voids and "void" in phase_names:
        values["cathode"] = [*values["cathode"], int(phase_names["void"]), *([] if topping is None else [int(topping)])]
    notes: list[str] = []
    # the separator|cathode cut weighs the cathode by its active particles (and, with cathode_voids,
    # its empty pores), not its binder: the carbon-binder domain is mid-grey and porous, and binder
    # mislabelled in the separator's pores (a common classifier error) would pull the cut towards the anode
    active = [int(phase_names["active"])] if "active" in phase_names else []
    if axis is None:
        axis_i, scores = find_stacking_axis(phases, phase_names=phase_names, frame_value=frame_value)
        notes.append("stacking axis found from the data: " + ", ".join(f"{k}={v:.3g}" for k, v in scores.items()))
    else:
        axis_i = AXES.index(axis) if isinstance(axis, str) else int(axis)
    lat = [a for a in range(3) if a != axis_i]
    lat_vox = min(vox[a] for a in lat)
    factor = int(max(1, min(4, round(lateral_nm / lat_vox / 2))))
    groups = {**values, "active": active}
    if cathode_voids and "void" in phase_names:
        # the cathode's side of the cut's particle evidence (:meth:`_CoarseMaps.shares` ``particles``)
        groups["void"] = [int(phase_names["void"] if topping is None else topping)]
    # the coarse counts of a long dask stack wait on disk: memory holds one block of rows at a time
    coarse = [-(-int(phases.shape[a]) // factor) for a in lat]
    spill = hasattr(phases, "map_blocks") and 4 * (len(groups) + 1) * coarse[0] * coarse[1] * int(phases.shape[axis_i]) > SPILL_BYTES
    with tempfile.TemporaryDirectory(prefix="volrecon-layers-", dir=scratch) if spill else _no_folder() as folder:
        sums = _lateral_sums(phases, axis_i, factor, groups, frame_value, core_radius(vox),
                             folder=Path(folder) if folder else None, specimen_core=specimen_core)
        maps = _CoarseMaps(sums, axis_i, [lateral_nm / (vox[a] * factor) for a in lat])
        heights, present, anode_first, n = _interfaces(maps, vox[axis_i], notes, level_passes)
    # upsample the coarse maps to the full lateral grid (linear, cell centres)
    full_shape = [int(np.asarray(phases.shape)[a]) for a in lat]
    for k, v in list(heights.items()):
        if v is not None and factor > 1:
            coords = np.meshgrid(*[(np.arange(s) + 0.5) / factor - 0.5 for s in full_shape], indexing="ij")
            heights[k] = ndi.map_coordinates(v, coords, order=1, mode="nearest")
    return Layers(axis=axis_i, anode_first=anode_first, heights=heights, present=present, length=n, notes=notes)


@contextmanager
def _no_folder() -> Iterator[None]:
    yield None


def _one_material(profiles: Mapping[str, np.ndarray]) -> np.ndarray:
    """Per row along the stacking axis, the share of the specimen (``profiles["valid"]``) that is
    one material as the anode's metal would be: the larger of the share of its largest class and
    the share outside the porous layers' solids, the SEI and the foil.

    The first guess's classes run dark to bright over the materials the field shows, so the metal
    falls in the electrolyte's class, the next one (which also takes the cathode's binder and
    blurred fibre edges: a field that begins in the separator or the cathode has several percent
    of "sodium" spread through it) or, in a field without the bright foil, the fibres'; at coarse
    pixels its noise splits it between the first two.  What a porous layer's rows cannot be is
    either: a third or more of them is fibres or particles, or pore.  The foil (the other dense end
    layer, the brightest class) is not counted; a thick SEI, one class, counts as the anode's (it is).
    """
    valid = np.maximum(profiles["valid"], 1e-12)
    named = sum(profiles[g] for g in ("sodium", "sei", "separator", "cathode", "collector"))
    pore = np.clip(profiles["valid"] - named, 0, None)
    binder = np.clip(profiles["cathode"] - profiles["active"], 0, None)
    largest = np.max(np.stack([profiles["sodium"], profiles["sei"], profiles["separator"], profiles["active"], binder]),
                     axis=0)  # the pore alone is never more than sodium + pore
    return np.maximum(largest, profiles["sodium"] + pore) / valid


def _end_slab(share: np.ndarray, valid: np.ndarray, min_rows: int) -> tuple[int, int] | None:
    """The anode's slab at an end of the field.

    The anode is the cell's end layer, a slab of dense metal: where it is in the field, the rows at
    that end of the specimen are one material (``share``, :func:`_one_material`, at least
    :data:`ANODE_SLAB_SHARE`) for at least ``min_rows``, from within ``2 * min_rows`` of the
    specimen's end (rows with at least half the median row's specimen: rows the frame cuts short
    are left out).  Decided on the field's rows, not column by column: per column the separator's
    first rows or an electrolyte film are often one material for a few rows, summed over the field
    they are not.  The price: the metal must fill its rows, so an anode thinner in the field than
    its surface's roughness and tilt plus ``min_rows`` (a sliver of metal at the field's edge, a
    field end cut obliquely through it) is not found (``benchmarks/results/segmentation_fields.md``).

    Returns
    -------
    (int, int) or None
        ``(first row, rows)`` of the slab (``first row`` counted from index 0 of the axis; ``rows``
        counted within the ``4 * min_rows`` rows searched), or None when neither end is one.
    """
    # rows cut short by the frame (the cap's rough edge, its rim) are no evidence either way
    rows = np.flatnonzero(valid >= 0.5 * np.median(valid[valid > 0])) if (valid > 0).any() else np.zeros(0, int)
    for end in (rows[: 4 * min_rows], rows[::-1][: 4 * min_rows]):
        full = np.concatenate([[False], share[end] >= ANODE_SLAB_SHARE, [False]])
        edges = np.flatnonzero(np.diff(full.astype(np.int8)))
        # runs of full rows (start, stop); the slab begins at the specimen's end, give or take the
        # rows a cap's or a wall's rim lights (a row or two at coarse pixels)
        for a, b in zip(edges[::2], edges[1::2]):
            if a < 2 * min_rows and b - a >= min_rows:
                return int(min(end[a], end[b - 1])), int(b - a)
    return None


def _interfaces(maps: _CoarseMaps, step: float, notes: list[str],
                level_passes: int = 0) -> tuple[dict[str, np.ndarray | None], dict[str, bool], bool, int]:
    """Order and interfaces of :func:`detect_layers` on its coarse maps (``step``: voxel size along
    the stacking axis, nm); notes appended to ``notes``; ``level_passes``: see :func:`detect_layers`.

    Returns ``(heights on the coarse grid, present, anode_first, length)``.
    """
    n = maps.shape[2]
    totals = {k: 0.0 for k in ("valid", *_GROUPS, "active")}
    profiles = {k: np.zeros(n) for k in totals}
    for a0, a1 in maps.blocks:  # counts are whole numbers: the block sums add up exactly
        for k, v in maps.counts(list(totals), a0, a1).items():
            totals[k] += float(v.sum(dtype=np.float64))
            profiles[k] += v.sum(axis=(0, 1), dtype=np.float64)
    present = {g: bool(totals["valid"] > 0 and totals[g] / totals["valid"] >= _MIN_SHARE[g]) for g in _GROUPS}
    # the thinnest end layer told from a film: the interfaces' refinement half-width
    min_rows = max(2, int(np.ceil(REFINE_NM / step)))
    if present["sodium"]:
        one = _one_material(profiles)
        if _end_slab(one, profiles["valid"], min_rows) is None:
            present["sodium"] = False
            rows = np.flatnonzero(profiles["valid"] > 0)
            ends = (float(one[rows[:min_rows]].mean()), float(one[rows[::-1][:min_rows]].mean()))
            notes.append(f"no anode: {totals['sodium'] / totals['valid']:.1%} of the specimen is labelled sodium, but "
                         f"neither end of the field is {min_rows} rows of one material (its first rows: "
                         f"{ends[0]:.2f} / {ends[1]:.2f} one material, {ANODE_SLAB_SHARE} needed)")
    # order: centroid of each present group along the axis vs its expected rank
    pos = np.arange(n) + 0.5
    cents, ranks = [], []
    for rank, g in enumerate(_GROUPS):
        if present[g]:
            cents.append(float((profiles[g] * pos).sum() / profiles[g].sum()))
            ranks.append(rank)
    anode_first = True
    if len(cents) >= 2:
        anode_first = bool(np.corrcoef(ranks, cents)[0, 1] >= 0)
    maps.flip = not anode_first
    has_active = totals["active"] > 0

    # interfaces lie within the specimen part of each column (frame/unassigned ends excluded)
    ends = []
    for a0, a1 in maps.blocks:
        has = maps.counts(["valid"], a0, a1)["valid"] > 0
        some = has.any(axis=-1)
        ends.append((some, np.where(some, np.argmax(has, axis=-1), 0), np.where(some, n - np.argmax(has[..., ::-1], axis=-1), n)))
    some, lo, hi = (np.concatenate([e[i] for e in ends]) for i in range(3))
    lo, hi = lo.astype(np.int64), hi.astype(np.int64)
    # columns cut short by the frame (a trench wall slanting across them) miss the far interfaces:
    # they take their neighbours' heights
    span = np.where(some, hi - lo, 0)
    cols = span >= 0.9 * np.median(span[span > 0]) if (span > 0).any() else span > 0
    # sub-voxel refinement over a physical length, whatever the voxel size
    window = max(1, int(round(REFINE_NM / step)))
    # a column's cut further than this from the field's plane (and than 4 robust sigmas of the
    # interface's roughness) was pulled off by misclassified voxels
    floor = OUTLIER_NM / step
    heights: dict[str, np.ndarray | None] = {k: None for k in INTERFACES}
    after = "particles" if has_active else "wide_cathode"

    def separator_pair(a0: int, a1: int) -> tuple[np.ndarray, np.ndarray]:
        m = maps.shares(["wide_separator", after], a0, a1)
        return m["wide_separator"], m[after]

    h_coll = np.full(lo.shape, float(n))
    if present["collector"] or present["cathode"]:
        # where the cathode starts, to take the cathode's porous level from the rows after it
        start = 0
        if present["separator"] and present["cathode"]:
            first = np.concatenate([_cut(*separator_pair(a0, a1), lo[a0:a1], hi[a0:a1], window) for a0, a1 in maps.blocks])
            start = int(np.floor(np.median(first[cols])))
        found, note = _collector_cut(maps, _collector_profiles(maps), lo, hi, start, window, cols, floor)
        present["collector"] = found is not None
        notes.append(note)
        if found is not None:
            heights["cathode|collector"] = h_coll = found
    hi_c = np.floor(h_coll).astype(np.int64)
    if present["sodium"]:
        def anode_pair(with_sei: bool) -> Pair:
            # cathode phases cannot lie between the sodium and the separator: they count as neither side
            def pair(a0: int, a1: int) -> tuple[np.ndarray, np.ndarray]:
                m = maps.shares(["sodium", "sei", "cathode", "collector"] if with_sei else ["sodium", "cathode", "collector"], a0, a1)
                neutral = m["cathode"] + m["collector"]
                side = m["sodium"] + m["sei"] if with_sei else m["sodium"]
                return side, np.clip(1.0 - side - neutral, 0, None)
            return pair

        h_na = _regular_cut(anode_pair(False), maps.blocks, lo, hi_c, window, cols, floor)
        heights["sodium|sei"] = h_na
        lo_s = np.ceil(h_na).astype(np.int64)
        h_sei = (_regular_cut(anode_pair(True), maps.blocks, np.minimum(lo_s, hi_c), hi_c, window, cols, floor)
                 if present["sei"] else h_na.copy())
        heights["sei|separator"] = h_sei
    else:
        h_sei = np.zeros(lo.shape)
    lo_p = np.minimum(np.ceil(h_sei).astype(np.int64), hi_c)
    if present["separator"] and present["cathode"]:
        h_sc = _regular_cut(separator_pair, maps.blocks, lo_p, hi_c, window, cols, floor)
        # the wide smoothing of a tilted or curved interface's shares pulls the cut towards the
        # field's mean height where the window is one-sided (frame walls, the field's ends) and
        # flattens its bumps: cut again on shares smoothed along the interface found
        # (levelled, the interface lies near the median height in every column: only a band of
        # rows around it is read, smoothed and cut)
        reach = int(np.ceil(floor)) + 2 * window
        for _ in range(level_passes if cols.any() else 0):
            mid = float(np.median(h_sc[cols]))
            shift = np.round(_fill_columns(h_sc, cols) - mid).astype(np.int64)
            if np.abs(shift).max() < 1:
                break
            r0, r1 = max(0, int(mid) - reach), min(n, int(mid) + reach + 1)
            lo2 = np.clip(lo_p - shift, r0, r1) - r0
            hi2 = np.clip(hi_c - shift, lo2 + r0, r1) - r0
            with maps.levelled(shift, (r0, r1)):
                pair = _solids_pair(maps, mid - r0, window, particles=after)
                h_sc = _regular_cut(pair, maps.blocks, lo2, hi2, window, cols, floor) + shift + r0
        heights["separator|cathode"] = h_sc
        if not present["sodium"] and cols.any() and float(np.median((h_sc - lo)[cols])) < 1.0:
            # a field that begins in the cathode: the cut sits on the specimen's first row (the first
            # guess's fibre class takes a tenth of the cathode: blurred particle edges).  Not the
            # anode's least slab: a sliver of separator a few rows thick is still there (measured:
            # 2.8 rows, found by the classifier with Dice 0.81)
            present["separator"] = False
            heights["separator|cathode"] = None
            notes.append("no separator: the separator|cathode cut lies on the field's first row (the field begins in "
                         "the cathode)")
    elif present["separator"]:
        heights["separator|cathode"] = None
        notes.append("no cathode found: the separator reaches the collector or the end of the field")
    # columns without specimen (frame walls) follow their neighbours
    heights = {k: (None if v is None else _fill_columns(v, cols)) for k, v in heights.items()}
    # back to original orientation: boundary coordinates measured from index 0
    if not anode_first:
        heights = {k: (None if v is None else n - v) for k, v in heights.items()}
    return heights, present, anode_first, n


def region_block(layers: Layers, block_slices: tuple[slice, slice, slice], shape: tuple[int, ...],
                 phases: np.ndarray | None = None, frame_value: int | None = None,
                 region_values: Mapping[str, int] = REGIONS) -> np.ndarray:
    """Region labels of one block of the volume from the layer height maps.

    Parameters
    ----------
    layers : Layers
        Detected layers.
    block_slices : tuple of slices
        Position of the block in the volume.
    shape : tuple of int
        The block's shape.
    phases : ndarray, optional
        The block's phases: frame voxels become region ``frame``, unassigned stay 0.
    frame_value : int, optional
        Label value of the frame phase.
    """
    ax = layers.axis
    lat = [a for a in range(3) if a != ax]
    # voxel i of the block lies before an interface at h when its centre s = i + 0.5 is below h
    # (anode first) or above it: per column, how many of the block's centres do
    s = np.arange(block_slices[ax].start, block_slices[ax].start + shape[ax]) + 0.5

    def hmap(name: str) -> np.ndarray | None:
        h = layers.heights.get(name)
        if h is None:
            return None
        return h[block_slices[lat[0]].start: block_slices[lat[0]].start + shape[lat[0]],
                 block_slices[lat[1]].start: block_slices[lat[1]].start + shape[lat[1]]]

    ends = [("anode", "sei|separator", "sodium"), ("separator", "separator|cathode", "separator"),
            ("cathode", "cathode|collector", "cathode"), ("collector", None, "collector")]
    present = [(r, i) for r, i, g in ends if layers.present[g]]
    # a region ends at its own interface, or at the next one found when that is missing (None:
    # it takes the rest); a voxel's region is the first whose end it lies before, so the
    # regions' voxels are those past the ends before theirs: count them per voxel
    bounds: list[np.ndarray] = []
    for k in range(len(present)):
        h = next((hm for hm in (hmap(i) if i is not None else None for _, i in present[k:]) if hm is not None), None)
        if h is None:
            break
        if layers.anode_first:
            # voxels from this index on are past h (a NaN height: none before it)
            at = np.where(np.isnan(h), 0, np.searchsorted(s, h, side="left"))
            bounds.append(at if not bounds else np.maximum(bounds[-1], at))
        else:
            at = np.searchsorted(s, h, side="right")
            bounds.append(at if not bounds else np.minimum(bounds[-1], at))
    lut = np.zeros(len(present) + 1, dtype=np.uint8)
    lut[:len(present)] = [region_values[r] for r, _ in present]
    # one compiled pass over the block: the lookup of the bounds passed, then the phases' masks
    return label_block(bounds, tuple(int(v) for v in shape), ax, layers.anode_first, lut, phases=phases,
                       frame_value=frame_value, frame_region=region_values.get("frame", 0))


RIM_OFFSETS = np.arange(-3.0, 3.01, 0.25)
"""Offsets (voxels, dark side negative) of the edge profile the rim model is fitted to, at least."""

RIM_REACH_NM = 30.0
"""Half-width (nm) of the edge profile the rim model is fitted to (at least :data:`RIM_OFFSETS`):
the rims and the blur are lengths of the specimen and the probe, so at fine pixels the profile
spans more voxels."""

RIM_HALF_WIDTH_VOX = (0.3, 3.0)
"""Bounds of the fitted rim half-width (voxels)."""


RIM_MAX_RMS = 0.05
"""Largest rms misfit (share of the step) of an accepted rim fit."""


def rim_offsets(step_nm: float) -> np.ndarray:
    """Offsets (voxels) of the edge profile for a voxel of ``step_nm`` along the stacking axis."""
    reach = max(float(RIM_OFFSETS[-1]), RIM_REACH_NM / float(step_nm))
    return np.arange(-reach, reach + 0.01, 0.25)


def rim_half_width_vox(rim_nm: float, step_nm: float) -> float:
    """The rim's half-width in voxels: ``rim_nm / step_nm``, but at least one voxel (a pixel
    integrates a narrower rim into the voxel beside the boundary, at a lower height)."""
    return max(1.0, float(rim_nm) / float(step_nm))


def step_and_rims(x: np.ndarray, sigma: float, half_width: float) -> tuple[np.ndarray, np.ndarray]:
    """The two shapes of a blurred edge with bright rims, at ``x`` voxels from the boundary
    (bright side positive): the unit step ``Φ(x / σ)`` and the rims of unit height and half-width
    ``w`` on each side of it, ``Φ((x + w) / σ) - Φ((x - w) / σ)`` (the model :func:`edge_rim_shift`
    fits; an edge from ``P`` to ``F`` with rims ``ρ (F - P)`` reads ``P + (F - P) (step + ρ rims)``).
    """
    from scipy.special import ndtr

    x = np.asarray(x, float)
    return ndtr(x / sigma), ndtr((x + half_width) / sigma) - ndtr((x - half_width) / sigma)


def edge_rim_shift(offsets: np.ndarray, profile: np.ndarray,
                   half_width: float | None = 1.0) -> tuple[float, dict[str, float]]:
    """Where the boundary lies relative to the gradient maximum of an edge with bright rims.

    Edge brightening adds a bright rim on *both* sides of a boundary (secondary electrons escape
    through the nearby side wall).  Blurred by the probe, the rim on the dark side merges with
    the step, so the steepest grey step lies on the dark side of the boundary, by up to about
    the rim's width.  The median profile across the edge (``profile`` at ``offsets`` from the
    gradient maxima, dark side first) is fitted by a blurred step from ``P`` to ``F`` at ``c``
    plus a rim of height ``r`` and half-width ``w`` on each side of it, ``P + (F - P) Φ((x -
    c)/σ) + r [Φ((x - c + w)/σ) - Φ((x - c - w)/σ)]``; ``c`` is the shift from the gradient
    maximum to the boundary (towards the bright side when positive).  ``w`` is ``half_width``
    (voxels; :func:`rim_half_width_vox` of a length), or fitted within
    :data:`RIM_HALF_WIDTH_VOX` when None: the rim's width and the blur trade off, and a thin
    layer on the bright side (a film a few voxels thick) is taken for a wide rim, so a known
    length is the safer choice.  Returns ``(c, fit)``; ``fit["accepted"]`` is False and ``c = 0``
    when the fit finds no step, fits poorly or pins the shift (or a fitted width) to its bounds
    (the other entries are then not measurements and must not be used).
    """
    from scipy.optimize import least_squares

    x = np.asarray(offsets, float)
    y = np.asarray(profile, float)
    if y.size < 8 or not np.all(np.isfinite(y)):
        return 0.0, {"accepted": False}
    scale = float(np.ptp(y)) or 1.0
    yn = (y - y[0]) / scale
    w_hi = RIM_HALF_WIDTH_VOX[1] if half_width is None else float(half_width)
    c_lo, c_hi = -1.0, 1.5 + w_hi / 2

    def model(p: np.ndarray) -> np.ndarray:
        lo, hi, r, s, c = p[:5]
        w = p[5] if half_width is None else float(half_width)
        step, rims = step_and_rims(x - c, s, w)
        return lo + (hi - lo) * step + r * rims

    lower, upper = [-1, 0, 0, 0.3, c_lo], [1, 3, 3, 3.0, c_hi]
    # the far level starts at the profile's end, within its bounds (a profile that ends below its
    # start, no step up, would put the start outside them: least_squares refuses such a start)
    far = float(np.clip(yn[-1], lower[1], upper[1]))
    starts = [[0.0, far, 0.1, 1.0, 0.5 * min(w_hi, 2.0)]]
    if half_width is None:
        lower, upper = lower + [RIM_HALF_WIDTH_VOX[0]], upper + [RIM_HALF_WIDTH_VOX[1]]
        starts = [[0.0, far, 0.1, 1.0, 0.5 * w0, w0] for w0 in (1.0, 2.0)]
    best = min((least_squares(lambda p: model(p) - yn, np.array(p0), bounds=(lower, upper)) for p0 in starts),
               key=lambda f: f.cost)
    lo, hi, r, s, c = best.x[:5]
    w = float(best.x[5]) if half_width is None else float(half_width)
    info = {"rim_ratio": float(r / max(hi - lo, 1e-9)), "sigma_vox": float(s), "rim_half_width_vox": w,
            "shift_vox": float(c), "rms": float(np.sqrt(np.mean(best.fun ** 2)))}
    # a shift or fitted rim width at its bound is no fitted value; the median profile of many
    # columns is smooth, so a misfit of 5 % of the step means the model does not describe the edge
    pinned = c <= c_lo + 1e-3 or c >= c_hi - 1e-3 or (half_width is None and w >= RIM_HALF_WIDTH_VOX[1] - 1e-3)
    info["accepted"] = bool(best.success and hi - lo > 0.2 and info["rms"] < RIM_MAX_RMS and not pinned)
    if not info["accepted"]:
        return 0.0, info
    return float(c), info


def refine_interface(
    image: Any, layers: Layers, name: str, *, voxel_size_nm: Sequence[float], window_nm: float = 100.0,
    lateral_nm: float = 20.0, upper: str | None = None, slab: int = 16, rim: bool = False,
    rim_nm: float | None = EDGE_RIM_NM,
) -> Layers:
    """Move one interface onto the grey-value edge between its two layers.

    Per-voxel classes are least reliable right at a boundary (edge brightening makes the first
    voxels of a dark layer look like a brighter phase), so the class-based cut can sit a few
    voxels off.  The intensity itself is not biased there: the boundary is where the grey value,
    smoothed a little laterally, changes fastest along the stacking axis.  This function looks
    for that steepest step within ``±window_nm`` of the current height (and before the
    ``upper`` interface), with the step's sign taken from the data (the median over all
    columns), refines it to sub-voxel precision and keeps the old height where no clear step is
    found.  With ``rim``, the steepest step is then moved by the shift
    :func:`edge_rim_shift` measures on the median edge profile (the bright rims of edge
    brightening pull the steepest step towards the dark side).

    Parameters
    ----------
    image : ndarray or dask array (z, y, x)
        The (corrected) grey values the layers were found in.
    layers : Layers
        From :func:`detect_layers`.
    name : str
        Interface to refine (one of :data:`INTERFACES`).
    voxel_size_nm : 3 floats
        ``(z, y, x)`` voxel size.
    window_nm : float
        Search half-width around the current height.
    lateral_nm : float
        Lateral Gaussian smoothing of the grey values before the search.
    upper : str, optional
        An interface the refined one must stay before (e.g. ``"sei|separator"``).
    slab : int
        Rows of the first lateral axis read at a time: memory is bounded by the slab, whatever
        the number of rows (only per-column results are kept).
    rim : bool
        Correct the steepest step for edge-brightening rims (the shift is in the notes and in
        ``Layers.notes``).
    rim_nm : float or None
        The rims' half-width (nm, :data:`EDGE_RIM_NM`); None: fitted (see :func:`edge_rim_shift`).

    Returns
    -------
    Layers
        A copy with ``heights[name]`` refined (unchanged when the interface is absent).
    """
    h_old = layers.heights.get(name)
    if h_old is None:
        return layers
    ax = layers.axis
    lat = [a for a in range(3) if a != ax]
    vox = [float(v) for v in voxel_size_nm]
    n = layers.length
    w = max(2, int(round(window_nm / vox[ax])))
    sig_lat = [lateral_nm / vox[a] for a in lat] + [0.0]
    pad = int(np.ceil(3 * sig_lat[0])) + 1
    # heights in "anode first" coordinates
    h = h_old if layers.anode_first else n - h_old
    hu = layers.heights.get(upper) if upper else None
    if hu is not None and not layers.anode_first:
        hu = n - hu
    # per column and per step sign (+1 rising, -1 falling towards the cathode): the steepest
    # step's sub-voxel position and strength; the sign is decided once all slabs are seen
    pos = {s: np.array(h, dtype=np.float64) for s in (1, -1)}
    strength = {s: np.zeros(h.shape) for s in (1, -1)}
    cand = {s: (np.zeros(h.shape + (STEP_CANDIDATES,)), np.full(h.shape + (STEP_CANDIDATES,), -np.inf))
            for s in (1, -1)}
    prof: dict[int, list[np.ndarray]] = {1: [], -1: []}
    sign_votes: list[np.ndarray] = []
    noise: list[np.ndarray] = []
    n0 = h.shape[0]
    every = max(1, int(np.ceil(h.size / 20000)))  # columns sampled for the rim profile
    offsets = rim_offsets(vox[ax])
    radius = gaussian_reach(STEP_SMOOTH_VOX)
    # the steps sampled along whole columns for the typical (noise) step, and the grey values
    # their smoothing reads (index clipping = the filter's "nearest" edges)
    noise_at = np.arange(0, n - 1, max(1, (n - 1) // 16))
    noise_seg = np.clip(noise_at[:, None] + np.arange(-radius, radius + 2), 0, n - 1)
    # grey values read beyond the searched steps: the smoothing's reach, the rim profile's
    ext = max(radius, int(np.ceil(np.abs(offsets).max())) + 1) if rim else radius
    for a0, a1, p0, p1 in released_slabs(slab_rows(n0, pad, slab)):
        hc = h[a0:a1]
        lo = np.clip(np.floor(hc).astype(int) - w, 0, n - 2)
        hi = np.clip(np.ceil(hc).astype(int) + w, 1, n - 1)
        if hu is not None:
            hi = np.clip(np.minimum(hi, np.ceil(hu[a0:a1]).astype(int) + 1), lo + 1, n - 1)
        mid = np.clip(np.round(hc).astype(int) - 1, 0, n - 2)
        # only the steps k0..k1 of the slab's windows are searched (a step beyond on each side,
        # outside every window): the grey values c0..c1 around them are all that is smoothed
        k0 = max(0, int(min(lo.min(), mid.min())) - 1)
        k1 = min(n - 1, int(max(hi.max(), mid.max() + 1)) + 1)
        c0, c1 = max(0, k0 - ext), min(n, k1 + 1 + ext)
        need = np.union1d(np.arange(c0, c1), noise_seg)
        sl = [slice(None)] * 3
        sl[lat[0]] = slice(p0, p1)
        block = image[tuple(sl)]
        block = np.asarray(block.compute() if hasattr(block, "compute") else block, dtype=np.float32)
        block = np.moveaxis(block, ax, -1)
        # the smoothing is lateral only: each position along the stacking axis on its own
        block = block[..., need if layers.anode_first else n - 1 - need]
        gl_all = ndi.gaussian_filter(block, sig_lat, mode="nearest", truncate=3.0)[a0 - p0: a1 - p0]
        del block
        at_c = np.searchsorted(need, c0)
        gl = gl_all[..., at_c: at_c + c1 - c0]
        g = ndi.gaussian_filter1d(gl, STEP_SMOOTH_VOX, axis=-1, mode="nearest", truncate=3.0)
        d = g[..., k0 - c0 + 1: k1 - c0 + 1] - g[..., k0 - c0: k1 - c0]  # d[..., i]: step across boundary k0 + i + 1
        del g
        seg = ndi.gaussian_filter1d(gl_all[..., np.searchsorted(need, noise_seg)], STEP_SMOOTH_VOX, axis=-1,
                                    mode="nearest", truncate=3.0)
        del gl_all
        idx = np.arange(k0, k1)
        inside = (idx >= lo[..., None]) & (idx < hi[..., None])
        sign_votes.append(np.take_along_axis(d, (mid - k0)[..., None], axis=-1)[..., 0].ravel())
        noise.append(np.abs(seg[..., radius + 1] - seg[..., radius]).ravel())
        del seg
        for s in (1, -1):
            sd = np.where(inside, s * d, -np.inf)
            p_, b_ = steepest_step(sd, origin=k0)
            pos[s][a0:a1], strength[s][a0:a1] = p_, b_
            cand[s][0][a0:a1], cand[s][1][a0:a1] = step_candidates(sd, origin=k0)
            del sd
            if rim:
                flat = np.arange(a0 * h.shape[1], a1 * h.shape[1])
                take = (flat % every) == 0
                at = p_.ravel()[take][:, None] + s * offsets
                prof[s].append(sample_columns(gl.reshape(-1, c1 - c0)[take], at - c0).astype(np.float32))
        del d, gl
    sign = 1 if np.median(np.concatenate(sign_votes)) >= 0 else -1
    # keep the class-based height where the step is not clearly above the typical step
    typical = float(np.median(np.concatenate(noise))) + 1e-12
    ok = strength[sign] > 3 * typical
    new = pos[sign]
    note, shift, fit = "", 0.0, {}
    if rim and ok.any():
        ok_s = ok.ravel()[(np.arange(h.size) % every) == 0]
        samples = np.concatenate(prof[sign])[ok_s]
        if samples.shape[0] >= 10:
            half = None if rim_nm is None else rim_half_width_vox(rim_nm, vox[ax])
            shift, fit = edge_rim_shift(offsets, np.median(samples, axis=0), half)
        new = new + sign * shift
        note = (f", moved {shift:+.2f} voxels towards the bright side for the edge rims (fit {fit})"
                if fit.get("accepted") else f", no edge-rim correction (rim fit rejected: {fit or 'too few columns'})")
    edge_reach = (float(fit["rim_half_width_vox"]) + 3.0 * float(fit["sigma_vox"])) if fit.get("accepted") else 4.0
    new, ok, far = _nearest_edge(new, ok, h, cand[sign], edge_reach, 3 * typical, sign * shift)
    if far:
        note += f", {far:.1%} of columns kept off a steeper edge further away"
    new = np.where(ok, new, h)
    new = ndi.median_filter(new, size=3, mode="nearest")
    if hu is not None:
        new = np.minimum(new, hu)
    heights = dict(layers.heights)
    heights[name] = new if layers.anode_first else n - new
    notes = list(layers.notes) + [f"{name} refined on the grey-value edge ({ok.mean():.0%} of columns){note}"]
    # only an accepted fit is a measurement: callers read the rims and the blur from it
    edges = ({**layers.edges, name: {**fit, "shift_vox": shift, "step_sign": float(sign)}} if fit.get("accepted")
             else layers.edges)
    return replace(layers, heights=heights, notes=notes, edges=edges)


REFERENCE_EDGES: tuple[str, ...] = ("cathode|collector", "separator|cathode")
"""Interfaces whose layers are thick on both sides, in order of preference, for
:func:`reference_rim_fit`: the collector is a dense uniform foil, so its edge is the cleanest."""


def reference_rim_fit(image: Any, layers: Layers, *, voxel_size_nm: Sequence[float], rim_nm: float | None = EDGE_RIM_NM,
                      names: Sequence[str] = REFERENCE_EDGES) -> tuple[str | None, dict[str, float]]:
    """The edge-rim model measured on an edge of the stack that is thick on both sides.

    The rim fit of :func:`edge_rim_shift` assumes one step within the profile's reach
    (:func:`rim_offsets`).  The edge of a film thinner than that (a thin SEI on the sodium) also
    holds the film's far edge, falling to a pore or rising to a fibre beyond it, and the single
    step absorbs it: the fitted shift then follows the share of columns with a pore beyond the
    film instead of the rims.  The blur (the probe) is the instrument's, the same on every edge;
    the rims (an escape length of the secondary electrons) depend on the materials on each side as
    well, so a thick edge's rims are only a first pass for a thin film (see
    :func:`volrecon.segment.regional.sei_outer_surface`, ``own_edges``).  The shift is taken from an
    edge with a thick layer on each side: the first of ``names`` present whose fit is accepted
    (:func:`refine_interface` with ``rim=True``).

    Parameters
    ----------
    image : ndarray or dask array (z, y, x)
        The corrected grey values.
    layers : Layers
        The layers found so far (their heights locate the edges).
    voxel_size_nm : 3 floats
        Voxel size (z, y, x) in nm.
    rim_nm : float or None
        Half-width of the edge-brightening rim (:data:`EDGE_RIM_NM`); None: no rim model.
    names : sequence of str
        Candidate edges, in order of preference.

    Returns
    -------
    (str or None, dict)
        The edge whose fit was used and its fit (``shift_vox``, ``sigma_vox``, ...), or
        ``(None, {})`` when no such edge gives an accepted fit.
    """
    for name in names:
        if layers.heights.get(name) is None:
            continue
        fit = refine_interface(image, layers, name, voxel_size_nm=voxel_size_nm, rim=True, rim_nm=rim_nm).edges.get(name)
        if fit and fit.get("accepted"):
            return name, dict(fit)
    return None, {}


def move_interface(layers: Layers, name: str, by_vox: float, sign: float = 1.0) -> Layers:
    """A copy of ``layers`` with interface ``name`` moved by ``by_vox`` voxels towards the side a
    step of ``sign`` (+1 rising towards the cathode, as ``Layers.edges[name]["step_sign"]``)
    makes bright.

    Parameters
    ----------
    layers : Layers
        The layers (unchanged).
    name : str
        Interface, e.g. ``"sodium|sei"``; an absent interface or ``by_vox == 0`` returns ``layers``.
    by_vox : float
        Distance in voxels along the stacking axis.
    sign : float
        Sign of the step across the interface.

    Returns
    -------
    Layers
    """
    h = layers.heights.get(name)
    if h is None or by_vox == 0:
        return layers
    d = float(sign) * float(by_vox) * (1.0 if layers.anode_first else -1.0)
    return replace(layers, heights={**layers.heights, name: np.asarray(h, dtype=np.float64) + d})


def _nearest_edge(new: np.ndarray, ok: np.ndarray, h: np.ndarray, cand: tuple[np.ndarray, np.ndarray],
                  reach: float, least: float, shift: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Columns whose steepest step is another edge: the step within the band of the others.

    The steepest step of the right sign within the search window may belong to another boundary
    (behind a thin film, a pore -> fibre rise is steeper than the sodium -> film step).  The
    columns' offsets from their first heights ``h`` share one typical value (the first heights'
    bias) with a spread from the first heights' noise; a column further than ``max(reach,
    4 * spread)`` from it (``reach``: how far a blurred, rimmed edge's steepest step can lie from
    the boundary) takes its strongest candidate step (``cand``, from :func:`step_candidates`, at
    least ``least``) within that band, moved by ``shift`` as the rest, or is not refined.
    Returns ``(new, ok, share of the columns moved)``.
    """
    if ok.sum() < 10:
        return new, ok, 0.0
    off = new - h
    typ = float(np.median(off[ok]))
    band = max(reach, 4.0 * 1.4826 * float(np.median(np.abs(off[ok] - typ))))
    far = ok & (np.abs(off - typ) > band)
    if not far.any():
        return new, ok, 0.0
    cp, cs = cand
    cp = cp + shift
    near = (np.abs(cp - h[..., None] - typ) <= band) & (cs > least)
    j = np.argmax(np.where(near, cs, -np.inf), axis=-1)
    alt = np.take_along_axis(cp, j[..., None], axis=-1)[..., 0]
    has = near.any(axis=-1)
    new = np.where(far & has, alt, new)
    return new, ok & ~(far & ~has), float(far.mean())


def slab_rows(rows: int, pad: int, step: int) -> list[tuple[int, int, int, int]]:
    """``(a0, a1, p0, p1)`` per slab of ``step`` rows: core rows ``[a0, a1)`` and the rows
    ``[p0, p1)`` read for them (``pad`` rows of context each side, cut at the ends)."""
    step = max(1, int(step))
    return [(a0, min(rows, a0 + step), max(0, a0 - pad), min(rows, a0 + step + pad)) for a0 in range(0, rows, step)]


def released_slabs(slabs: Iterable[tuple[int, int, int, int]]) -> Iterator[tuple[int, int, int, int]]:
    """``slabs`` (:func:`slab_rows`), one after the other, the heap handed back to the system
    after each (:func:`volrecon._memory.release_memory`; the loop's body drops its slab's arrays
    first).

    A slab's arrays under glibc's mmap threshold (its masks and label slices, the chunks dask
    reads it from) come from the heap, and the heap keeps its high-water mark resident: the holes
    that slabs left, in other places than the next slab's, added up over the slabs and stayed
    resident for the steps after the surface finders, growing with the slice count although the
    slabs are the same size.  Once per slab: its arrays are tens to hundreds of MB, and the
    pages handed back are faulted in again by the next slab (well under a second in all).
    """
    for slab in slabs:
        yield slab
        release_memory()


def steepest_step(sd: np.ndarray, steps: np.ndarray | None = None, *, origin: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Per column (last axis), the sub-voxel boundary coordinate of the largest step of ``sd``
    (``sd[..., i]`` across boundary ``origin + i + 1``; -inf outside the search window) and its size.

    ``steps``: the unwindowed steps the sub-voxel position is fitted on (a window ending at the
    step still sees its neighbours); ``sd`` itself when None.  ``origin``: where ``sd`` starts
    along the column (a cut-out of the steps)."""
    i = np.argmax(sd, axis=-1)
    return _step_at(sd if steps is None else steps, i, origin)


STEP_SMOOTH_VOX = 0.7
"""Gaussian sigma (voxels) of the smoothing along the stacking axis before the steps are taken."""

STEP_CANDIDATES = 3
"""Strongest local steps per column kept by :func:`refine_interface` (the steepest may belong to
another edge of the same sign within the search window)."""


def step_candidates(sd: np.ndarray, k: int = STEP_CANDIDATES, *, origin: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Per column (last axis), the ``k`` largest local maxima of ``sd`` (as :func:`steepest_step`).

    Parameters
    ----------
    sd : ndarray (..., n)
        Signed step sizes along each column (larger = steeper in the wanted direction).
    k : int
        How many candidates per column.
    origin : int
        Where ``sd`` starts along the column (a cut-out of the steps, as :func:`steepest_step`).

    Returns
    -------
    (ndarray, ndarray)
        Sub-voxel boundary coordinates and step sizes, shape ``(..., k)``, strongest first (size
        -inf where a column has fewer maxima).
    """
    left = np.concatenate([np.full(sd.shape[:-1] + (1,), -np.inf), sd[..., :-1]], axis=-1)
    right = np.concatenate([sd[..., 1:], np.full(sd.shape[:-1] + (1,), -np.inf)], axis=-1)
    peaks = np.where((sd >= left) & (sd > right) & np.isfinite(sd), sd, -np.inf)
    top = np.argsort(-peaks, axis=-1, kind="stable")[..., :k]
    pos, size = zip(*(_step_at(sd, top[..., j], origin) for j in range(top.shape[-1])))
    pos = np.stack(pos, axis=-1)
    size = np.where(np.take_along_axis(peaks, top, axis=-1) > -np.inf, np.stack(size, axis=-1), -np.inf)
    if top.shape[-1] < k:
        # a window of fewer steps than candidates (an interface near the field's edge): the missing
        # candidates have no size, at the strongest one's place
        pad = k - top.shape[-1]
        pos = np.concatenate([pos, np.repeat(pos[..., :1], pad, axis=-1)], axis=-1)
        size = np.concatenate([size, np.full(size.shape[:-1] + (pad,), -np.inf)], axis=-1)
    return pos, size


def _step_at(sd: np.ndarray, i: np.ndarray, origin: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Sub-voxel boundary coordinate (parabola through the neighbours) and size of the step ``i``
    of each column of ``sd`` (which starts at step ``origin`` of the column)."""
    best = np.take_along_axis(sd, i[..., None], axis=-1)[..., 0]
    left = np.take_along_axis(sd, np.maximum(i - 1, 0)[..., None], axis=-1)[..., 0]
    right = np.take_along_axis(sd, np.minimum(i + 1, sd.shape[-1] - 1)[..., None], axis=-1)[..., 0]
    seen = np.isfinite(best)  # a column with an empty window keeps its first boundary, size -inf
    left = np.where(np.isfinite(left) & seen, left, 0.0)
    right = np.where(np.isfinite(right) & seen, right, 0.0)
    mid = np.where(seen, best, 0.0)
    left = np.where(np.isfinite(np.take_along_axis(sd, np.maximum(i - 1, 0)[..., None], axis=-1)[..., 0]), left, mid)
    right = np.where(np.isfinite(np.take_along_axis(sd, np.minimum(i + 1, sd.shape[-1] - 1)[..., None], axis=-1)[..., 0]),
                     right, mid)
    den = left - 2 * mid + right
    delta = np.where(den < 0, np.clip(0.5 * (left - right) / np.where(den < 0, den, -1), -0.5, 0.5), 0.0)
    return (i + (origin + 1)) + delta, best


def sample_columns(vol: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Linear interpolation of ``vol`` (stacking axis last, voxel centres at ``i + 0.5``) at the
    boundary coordinates ``pos`` (shape ``(*vol.shape[:-1], m)``) of each column."""
    fast = interpolate_columns(vol, pos)  # compiled, the same float64 steps
    if fast is not None:
        return fast
    n = vol.shape[-1]
    x = np.clip(pos - 0.5, 0, n - 1)
    i0 = np.floor(x).astype(np.int64)
    i1 = np.minimum(i0 + 1, n - 1)
    f = x - i0
    return (1 - f) * np.take_along_axis(vol, i0, axis=-1) + f * np.take_along_axis(vol, i1, axis=-1)
