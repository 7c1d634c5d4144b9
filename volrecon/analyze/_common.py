"""Small shared helpers of the analysis package (argument checking, axis names, arrays)."""

from __future__ import annotations

import math
from typing import Any, Iterator, Mapping, Sequence

import dask.array as da
import numpy as np

from volrecon.errors import InputError, ParameterError
from volrecon.phases import PHASES, REGIONS

AXIS_NAMES: tuple[str, str, str] = ("z", "y", "x")


def as_numpy(array: Any) -> np.ndarray:
    """Return a numpy array (computing a dask array if one is given)."""
    if hasattr(array, "compute") and not isinstance(array, np.ndarray):
        array = array.compute()
    return np.asarray(array)


def check_volume(array: Any, name: str) -> np.ndarray:
    """Return ``array`` as a 3-D numpy array or raise InputError."""
    return as_numpy(lazy_volume(array, name))


def lazy_volume(array: Any, name: str) -> Any:
    """A 3-D, non-empty numpy or dask volume, checked without reading it (other array-likes become numpy)."""
    arr = array if isinstance(array, (np.ndarray, da.Array)) else np.asarray(array)
    if arr.ndim != 3:
        raise InputError(
            f"{name} has {arr.ndim} dimension(s) {arr.shape}; pass a 3-D (z, y, x) volume"
        )
    if arr.size == 0:
        raise InputError(f"{name} is empty {arr.shape}; pass a volume with at least one voxel")
    return arr


def read(array: Any, index: Any = Ellipsis) -> np.ndarray:
    """``array[index]`` as numpy (only that part of a dask / zarr-backed array is read)."""
    return as_numpy(array[index])


class ChunkRows:
    """A dask volume read one row of chunks along z at a time (a z slab reader's cache).

    The analysis reads its volumes in slabs along z sized by a voxel budget; on large slices a
    slab is fewer planes than a chunk is deep, and through dask every such read decompresses
    the whole chunks it touches (a chunk 8 planes deep, read plane by plane, 8 times).  This
    view reads the row of chunks holding a request once, within the request's y and x extent,
    and serves the requests that fall inside it from memory: the same values, each chunk
    decompressed once per pass.  Memory: one row of chunks of the requested extent, read only
    while it holds at most ``max_bytes`` bytes (larger requests go to the array directly), kept
    until the next row is read or :meth:`release`.  Not thread-safe: one reader per view.

    Parameters
    ----------
    array : dask.array.Array, shape (z, y, x)
        The volume (e.g. OME-Zarr labels).
    max_bytes : int
        Largest row of chunks held, in bytes.
    """

    def __init__(self, array: da.Array, max_bytes: int) -> None:
        self.array = array
        self.shape = tuple(int(n) for n in array.shape)
        self.dtype = array.dtype
        self.ndim = 3
        self.size = int(np.prod(self.shape))
        self.chunks = array.chunks
        self._bounds = np.cumsum((0,) + tuple(array.chunks[0]))
        self._max = int(max_bytes) // max(1, self.dtype.itemsize)
        self._key: tuple[Any, ...] | None = None
        self._row: np.ndarray | None = None

    def __getitem__(self, index: Any) -> np.ndarray:
        sl = _plain_box(index, self.shape)
        if sl is None:
            return as_numpy(self.array[index])
        (z0, z1), yx = sl[0], sl[1:]
        r = int(np.searchsorted(self._bounds, z0, side="right")) - 1
        r0, r1 = int(self._bounds[r]), int(self._bounds[min(r + 1, len(self._bounds) - 1)])
        if z1 > r1 or z1 <= z0 or (r1 - r0) * (yx[0][1] - yx[0][0]) * (yx[1][1] - yx[1][0]) > self._max:
            return as_numpy(self.array[index])
        key = (r, *yx)
        if key != self._key:
            self.release()  # the previous row goes before the next is read (and stays gone if it fails)
            self._row = self._read_row(r0, r1, yx)
            self._key = key
        return self._row[z0 - r0:z1 - r0].copy()  # type: ignore[index]

    def release(self) -> None:
        """Drop the row held (the next read reads again)."""
        self._key, self._row = None, None

    def _read_row(self, r0: int, r1: int, yx: list[tuple[int, int]]) -> np.ndarray:
        """Planes ``r0:r1`` within ``yx``, read one column of chunks along x at a time (no
        second copy of the row while dask joins its chunks)."""
        (y0, y1), (x0, x1) = yx
        row = np.empty((r1 - r0, y1 - y0, x1 - x0), self.dtype)
        edges = np.cumsum((0,) + tuple(self.chunks[2]))
        cuts = [x0] + [int(e) for e in edges if x0 < e < x1] + [x1]
        for a, b in zip(cuts[:-1], cuts[1:]):
            row[:, :, a - x0:b - x0] = as_numpy(self.array[r0:r1, y0:y1, a:b])
        return row


def _plain_box(index: Any, shape: tuple[int, ...]) -> list[tuple[int, int]] | None:
    """``index`` as (start, stop) per axis when it is up to three step-1 slices, else None."""
    parts = index if isinstance(index, tuple) else (index,)
    if len(parts) > 3 or not all(isinstance(p, slice) for p in parts):
        return None
    out = []
    for n, p in zip(shape, tuple(parts) + (slice(None),) * (3 - len(parts))):
        start, stop, step = p.indices(n)
        if step != 1:
            return None
        out.append((start, max(start, stop)))
    return out


ROW_CACHE_SLABS = 8
"""A row of z chunks is held for the slab passes (:class:`ChunkRows`) while it takes at most this
many slab budgets' bytes (a slab budget of ``n`` voxels: ``n`` bytes, one uint8 label each)."""


def chunk_rows(array: Any, slab_voxels: int) -> Any:
    """:class:`ChunkRows` of a dask ``array`` chunked along z, holding at most
    :data:`ROW_CACHE_SLABS` x ``slab_voxels`` bytes; any other array as it is."""
    if isinstance(array, da.Array) and array.ndim == 3 and len(array.chunks[0]) > 1:
        return ChunkRows(array, ROW_CACHE_SLABS * int(slab_voxels))
    return array


def release_rows(*arrays: Any) -> None:
    """:meth:`ChunkRows.release` of those ``arrays`` that are :class:`ChunkRows` views."""
    for a in arrays:
        if isinstance(a, ChunkRows):
            a.release()


_CHUNK_STRETCH = 4  # a slab grows to a whole dask chunk only up to this many times its size


def slab_step(plane_voxels: int, slab_voxels: int, array: Any = None) -> int:
    """Slices per slab of about ``slab_voxels`` voxels, planes of ``plane_voxels``.

    With a dask ``array`` whose z chunk is at most :data:`_CHUNK_STRETCH` times that, the step
    is a whole multiple of the chunk (at least one), so that no chunk is read (and
    decompressed) twice; a larger chunk does not override ``slab_voxels`` (memory stays
    bounded; the chunk is then read once per slab it spans).

    Parameters
    ----------
    plane_voxels : int
        Voxels of one z plane.
    slab_voxels : int
        Voxels a slab should hold.
    array : dask array, optional
        The volume read; its first z chunk sets the rounding.

    Returns
    -------
    int
        Slices per slab (at least 1).
    """
    step = max(1, int(slab_voxels) // max(1, int(plane_voxels)))
    if isinstance(array, (da.Array, ChunkRows)):
        cz = int(array.chunks[0][0])
        if cz <= _CHUNK_STRETCH * step:
            step = max(cz, step // cz * cz)
    return step


def z_slabs(array: Any, slab_voxels: int) -> Iterator[tuple[int, int]]:
    """``(z0, z1)`` ranges of slabs of about ``slab_voxels`` voxels covering ``array`` along z.

    A dask array's slabs are whole multiples of its z chunk where the chunk is not much
    larger than a slab (:func:`slab_step`), so no chunk is read twice.
    """
    nz = int(array.shape[0])
    step = slab_step(int(np.prod(array.shape[1:])), slab_voxels, array)
    for z0 in range(0, nz, step):
        yield z0, min(nz, z0 + step)


def box_slabs(box: Sequence[slice], slab_voxels: int, array: Any = None) -> Iterator[slice]:
    """z ranges of slabs of about ``slab_voxels`` voxels covering the box ``(z, y, x)`` slices.

    With a dask ``array``, the slabs are whole multiples of its z chunk and end on chunk
    boundaries where the chunk is not much larger than a slab (:func:`slab_step`), so that no
    chunk is read (and decompressed) twice.
    """
    plane = (box[1].stop - box[1].start) * (box[2].stop - box[2].start)
    step = slab_step(plane, slab_voxels, array)
    z0 = box[0].start
    while z0 < box[0].stop:
        z1 = min(box[0].stop, (z0 // step + 1) * step)
        yield slice(z0, z1)
        z0 = z1


def axis_index(axis: int | str) -> int:
    """Map ``0/1/2`` or ``'z'/'y'/'x'`` to an axis index."""
    if isinstance(axis, str):
        key = axis.strip().lower()
        if key in AXIS_NAMES:
            return AXIS_NAMES.index(key)
        raise ParameterError(f"axis={axis!r} is not one of 'z', 'y', 'x' (or 0, 1, 2)")
    if isinstance(axis, (int, np.integer)) and int(axis) in (0, 1, 2):
        return int(axis)
    raise ParameterError(f"axis={axis!r} is not one of 'z', 'y', 'x' (or 0, 1, 2)")


def voxel_triplet(voxel_size_nm: Any) -> tuple[float, float, float]:
    """Validate a voxel size: one positive number or three (z, y, x), in nm."""
    if np.isscalar(voxel_size_nm):
        vals = [float(voxel_size_nm)] * 3  # type: ignore[arg-type]
    else:
        try:
            vals = [float(v) for v in voxel_size_nm]
        except (TypeError, ValueError):
            raise ParameterError(
                f"voxel_size_nm={voxel_size_nm!r}: give three positive numbers (z, y, x) in nm"
            ) from None
    if len(vals) != 3 or not all(math.isfinite(v) and v > 0 for v in vals):
        raise ParameterError(
            f"voxel_size_nm={voxel_size_nm!r}: give three positive numbers (z, y, x) in nm"
        )
    return (vals[0], vals[1], vals[2])


def name_map(names: Mapping[str, int] | None, default: Mapping[str, int], what: str) -> dict[str, int]:
    """Validate a name -> label-value mapping (``None`` means the default vocabulary)."""
    mapping = dict(default if names is None else names)
    for key, value in mapping.items():
        if not isinstance(key, str) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ParameterError(
                f"{what}: entry {key!r}: {value!r} must map a name to a label value >= 0"
            )
    return {k: int(v) for k, v in mapping.items()}


def phase_map(phase_names: Mapping[str, int] | None) -> dict[str, int]:
    return name_map(phase_names, PHASES, "phase_names")


def region_map(region_names: Mapping[str, int] | None) -> dict[str, int]:
    return name_map(region_names, REGIONS, "region_names")


def require_names(mapping: Mapping[str, int], names: Sequence[str], what: str) -> None:
    """Raise ParameterError naming the first missing entry."""
    for name in names:
        if name not in mapping:
            known = ", ".join(sorted(mapping))
            raise ParameterError(
                f"{what} has no {name!r} (it names {known}); pass {what}={{..., {name!r}: value}}"
            )


def json_float(value: float | None) -> float | None:
    """A float for JSON: NaN and infinities become ``None``."""
    if value is None:
        return None
    v = float(value)
    return v if math.isfinite(v) else None


def json_safe(value: Any) -> Any:
    """Copy of nested dicts/lists with numpy scalars made Python and NaN/inf made ``None``."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return json_float(float(value))
    return value
