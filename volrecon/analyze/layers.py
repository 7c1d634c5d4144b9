"""Cell-layer geometry from the region image: stacking axis and the box inside a region."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from volrecon.analyze._common import AXIS_NAMES, box_slabs

__all__ = ["axis_from_profiles", "inner_box", "inner_box_bits", "porous_extent", "porous_extent_of", "through_plane_axis"]


def through_plane_axis(regions: np.ndarray, region_names: Mapping[str, int]) -> int | None:
    """The stacking axis: the axis along which the layers' centroids are spread the most.

    Returns ``None`` when fewer than two specimen regions are present.
    """
    values = [v for n, v in region_names.items() if n != "frame"]
    profiles = [[(regions == v).sum(axis=tuple(a for a in range(3) if a != axis)) for axis in range(3)]
                for v in values]
    return axis_from_profiles(profiles)


def axis_from_profiles(profiles: Sequence[Sequence[np.ndarray]]) -> int | None:
    """:func:`through_plane_axis` from the voxel counts of each region per plane along each axis.

    Parameters
    ----------
    profiles : sequence of (3 arrays)
        For every specimen region, its voxel count per plane along z, y and x.
    """
    best, best_spread = None, 0.0
    for axis in range(3):
        centroids = []
        for per_axis in profiles:
            prof = np.asarray(per_axis[axis])
            if prof.sum() > 0:
                centroids.append(float((prof * np.arange(prof.size)).sum() / prof.sum()) / prof.size)
        if len(centroids) < 2:
            return None
        spread = float(np.std(centroids))
        if spread > best_spread:
            best, best_spread = axis, spread
    return best


def inner_box(inside: np.ndarray) -> tuple[slice, slice, slice] | None:
    """A large axis-aligned box whose voxels are all ``inside`` (see :func:`inner_box_bits`)."""
    inside = np.asarray(inside, bool)
    return inner_box_bits(np.packbits(inside, axis=2), inside.shape)


def _unpacked(bits: np.ndarray, zs: slice, ys: slice, xs: slice) -> np.ndarray:
    """The boolean voxels ``[zs, ys, xs]`` of a volume packed along x by ``np.packbits``."""
    b0, b1 = xs.start // 8, -(-xs.stop // 8)
    part = np.unpackbits(bits[zs, ys, b0:b1], axis=2)
    return part[:, :, xs.start - 8 * b0: xs.stop - 8 * b0].view(bool)


def inner_box_bits(bits: np.ndarray, shape: tuple[int, int, int],
                   slab_voxels: int = 4_000_000) -> tuple[slice, slice, slice] | None:
    """A large axis-aligned box whose voxels are all inside, from the mask packed along x.

    Starts from the bounding box and repeatedly drops the end plane (of any axis) with the
    largest share of outside voxels, updating the per-plane counts incrementally.  The mask is
    held as bits (``np.packbits(inside, axis=2)``: one eighth of a boolean volume) and unpacked
    one plane or slab at a time.  Returns ``None`` when nothing is inside.

    Parameters
    ----------
    bits : ndarray of uint8, shape (z, y, ceil(x / 8))
        The inside mask packed along x.
    shape : (int, int, int)
        Shape of the unpacked mask.
    slab_voxels : int
        Voxels unpacked at once while counting.
    """
    nz, ny, nx = (int(n) for n in shape)
    if not bits.any():
        return None
    x_any = np.unpackbits(np.bitwise_or.reduce(bits, axis=(0, 1)))[:nx]
    lo, hi = [], []
    for idx in (np.flatnonzero(bits.any(axis=(1, 2))), np.flatnonzero(bits.any(axis=(0, 2))), np.flatnonzero(x_any)):
        lo.append(int(idx[0]))
        hi.append(int(idx[-1]) + 1)
    ys, xs = slice(lo[1], hi[1]), slice(lo[2], hi[2])
    prof = [np.zeros(hi[a] - lo[a], np.int64) for a in range(3)]
    for zs in box_slabs((slice(lo[0], hi[0]), ys, xs), slab_voxels):
        bad = ~_unpacked(bits, zs, ys, xs)
        prof[0][zs.start - lo[0]: zs.stop - lo[0]] = bad.sum(axis=(1, 2))
        prof[1] += bad.sum(axis=(0, 2))
        prof[2] += bad.sum(axis=(0, 1))
    a0 = [0, 0, 0]
    a1 = [hi[a] - lo[a] for a in range(3)]

    def plane_bad(ax: int, idx: int) -> np.ndarray:
        sl = [slice(lo[b] + a0[b], lo[b] + a1[b]) for b in range(3)]
        sl[ax] = slice(lo[ax] + idx, lo[ax] + idx + 1)
        return ~_unpacked(bits, *sl)

    while True:
        best, best_share = None, 0.0
        for ax in range(3):
            if a1[ax] - a0[ax] <= 1:
                continue
            plane = np.prod([a1[b] - a0[b] for b in range(3) if b != ax])
            for end, idx in ((0, a0[ax]), (1, a1[ax] - 1)):
                share = prof[ax][idx] / plane
                if share > best_share:
                    best, best_share = (ax, end, idx), share
        if best is None:
            break
        ax, end, idx = best
        removed = plane_bad(ax, idx)
        for b in range(3):
            if b == ax:
                continue
            other = tuple(c for c in range(3) if c != b)
            prof[b][a0[b]:a1[b]] -= removed.sum(axis=other)
        if end == 0:
            a0[ax] += 1
        else:
            a1[ax] -= 1
        if all(a1[b] - a0[b] <= 1 for b in range(3)):
            break
    box = tuple(slice(lo[b] + a0[b], lo[b] + a1[b]) for b in range(3))
    for zs in box_slabs(box, slab_voxels):
        if not _unpacked(bits, zs, box[1], box[2]).all():
            return None
    return box  # type: ignore[return-value]


def porous_extent(pore: np.ndarray, axis: int) -> tuple[int, int]:
    """The planes of a layer box along ``axis`` that belong to the porous layer.

    A porous electrode carries pore in every plane parallel to its faces; a run of planes at
    an end of the box holding less than half the box's median plane pore fraction is a dense
    layer against it (a current collector or another layer labelled as this one, or the
    collector side of a rough interface).  Half the bulk value is where the mean interface
    plane of a porous layer against a dense one lies for a rough interface too; the planes
    beyond it carry (almost) no through-plane flux and a face placed among them makes the
    tortuosity of the porous layer infinite.

    Parameters
    ----------
    pore : ndarray of bool
        Pore (conducting phase) mask of the box.
    axis : int
        Stacking axis.

    Returns
    -------
    (int, int)
        First and one-past-last plane index to keep; the whole axis when the median plane
        holds no pore (nothing to compare against).
    """
    other = tuple(a for a in range(pore.ndim) if a != axis)
    return porous_extent_of(pore.mean(axis=other))


def porous_extent_of(frac: np.ndarray) -> tuple[int, int]:
    """:func:`porous_extent` from the pore fraction of every plane along the axis."""
    frac = np.asarray(frac, np.float64)
    half = 0.5 * float(np.median(frac))
    keep = np.flatnonzero(frac >= half)
    if half <= 0.0 or keep.size == 0:
        return 0, frac.size
    return int(keep[0]), int(keep[-1]) + 1


def axis_name(axis: int) -> str:
    return AXIS_NAMES[axis]
