"""OME-NGFF (OME-Zarr) images and label images: write streamed from dask, read lazily.

Arrays are written slab by slab (a few chunks deep in z), so peak memory is bounded by the slab,
not the stack.  The multiscale metadata is written with ome-zarr-py; NGFF 0.5 on zarr v3 is
written, and 0.4 (zarr v2) is read as well.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import dask
import dask.array as da
import numpy as np
import zarr
from ome_zarr.format import FormatV05
from ome_zarr.writer import write_label_metadata, write_multiscales_metadata
from zarr.codecs import BloscCodec, BloscShuffle

from volrecon.errors import InputError, ParameterError

AXES = ("z", "y", "x")
_UNIT_TO_NM = {
    "nanometer": 1.0,
    "micrometer": 1e3,
    "millimeter": 1e6,
    "meter": 1e9,
    "angstrom": 0.1,
    "picometer": 1e-3,
    "nm": 1.0,
    "um": 1e3,
    "µm": 1e3,
}

Progress = Callable[[int, int], None]
"""``progress(done, total)`` called after each slab is written."""


@dataclass(frozen=True)
class OmeZarrImage:
    """An OME-Zarr image opened lazily.

    Attributes
    ----------
    levels : tuple of dask.array.Array
        Resolution levels, full resolution first, axes ``(z, y, x)``.
    voxel_size_nm : tuple of tuples
        ``(z, y, x)`` voxel size of each level in nm.
    path : Path
        The image group.
    attrs : dict
        The group's attributes (``ome`` block for NGFF 0.5).
    version : str
        NGFF version found (``"0.5"`` or ``"0.4"``).
    """

    levels: tuple[da.Array, ...]
    voxel_size_nm: tuple[tuple[float, float, float], ...]
    path: Path
    attrs: dict[str, Any]
    version: str

    @property
    def data(self) -> da.Array:
        """Full-resolution level."""
        return self.levels[0]


def pyramid_factors(voxel_size_nm: Sequence[float], shape: Sequence[int], *, min_size: int = 64) -> list[tuple[int, int, int]]:
    """Per-level downsampling factors that make voxels more isotropic at each step.

    At each level an axis is halved when its current voxel is within 1.5× of the finest current
    voxel and it still has more than ``min_size`` pixels.  Levels stop when no axis can be halved
    or the in-plane size falls under ``min_size``.
    """
    vox = [float(v) for v in voxel_size_nm]
    size = [int(s) for s in shape]
    factors: list[tuple[int, int, int]] = []
    while max(size[1], size[2]) > 2 * min_size and len(factors) < 8:
        finest = min(vox)
        f = tuple(2 if (vox[i] <= 1.5 * finest and size[i] >= 2 * min_size) or (i > 0 and size[i] >= 2 * min_size and vox[i] <= 1.5 * finest) else 1 for i in range(3))
        if f == (1, 1, 1):
            break
        factors.append(f)  # type: ignore[arg-type]
        vox = [v * fi for v, fi in zip(vox, f)]
        size = [s // fi for s, fi in zip(size, f)]
    return factors


def _downsample_block(block: np.ndarray, factor: tuple[int, int, int], *, labels: bool) -> np.ndarray:
    """Downsample a numpy block by integer factors (mean for images, nearest for labels).

    The mean adds strided views in a wider type instead of reducing a reshaped array, which is
    several times faster for the small factors a pyramid uses.
    """
    fz, fy, fx = factor
    nz, ny, nx = (block.shape[0] // fz) * fz, (block.shape[1] // fy) * fy, (block.shape[2] // fx) * fx
    if labels:
        return np.ascontiguousarray(block[:nz:fz, :ny:fy, :nx:fx])
    count = fz * fy * fx
    integer = np.issubdtype(block.dtype, np.integer)
    if integer and block.dtype.kind == "u" and block.dtype.itemsize == 1 and count <= 256:
        acc_type = np.uint16  # 8-bit data: sums of up to 256 values fit, half the memory traffic of uint32
    elif integer and block.dtype.kind == "u" and block.dtype.itemsize <= 2:
        acc_type = np.uint32
    else:
        acc_type = np.float64
    acc = np.zeros((nz // fz, ny // fy, nx // fx), dtype=acc_type)
    for dz in range(fz):
        for dy in range(fy):
            for dx in range(fx):
                np.add(acc, block[dz:nz:fz, dy:ny:fy, dx:nx:fx], out=acc, casting="unsafe")
    if acc_type in (np.uint16, np.uint32):
        return ((acc + count // 2) // count).astype(block.dtype)
    mean = acc / count
    if integer:
        info = np.iinfo(block.dtype)
        mean = np.clip(np.rint(mean), info.min, info.max)
    return mean.astype(block.dtype)


def _fit_depth(factors: Sequence[tuple[int, int, int]], depth: int) -> list[tuple[int, int, int]]:
    """Keep only the levels whose z-halvings a slab of ``depth`` slices can make on its own."""
    out = []
    remaining = depth
    for f in factors:
        if f[0] > 1 and (remaining < f[0] or remaining % f[0]):
            break
        out.append(f)
        remaining //= f[0]
    return out


def default_chunks(shape: Sequence[int]) -> tuple[int, int, int]:
    """Chunking that serves slice-wise and 3D access: 8 slices deep, 256² in plane."""
    return (min(8, int(shape[0])), min(256, int(shape[1])), min(256, int(shape[2])))


def _write_levels(
    group: zarr.Group,
    data: da.Array | np.ndarray,
    chunks: tuple[int, int, int],
    factors: Sequence[tuple[int, int, int]],
    *,
    labels: bool,
    progress: Progress | None = None,
    on_block: Callable[[int, np.ndarray], None] | None = None,
) -> None:
    """Write level 0 and every pyramid level in one pass over slabs of ``chunks[0]`` slices.

    Each slab is computed once; its downsampled versions are made in memory and written to the
    coarser arrays, so memory stays at one slab and the source is read once.
    """
    depth = chunks[0]
    total = int(data.shape[0])
    arrays = []
    shape = tuple(int(s) for s in data.shape)
    level_depth = depth
    level_chunks = chunks
    for level in range(len(factors) + 1):
        if level:
            f = factors[level - 1]
            shape = tuple(s // fi for s, fi in zip(shape, f))
            level_depth = max(1, level_depth // f[0])
            level_chunks = (level_depth, min(chunks[1], shape[1]), min(chunks[2], shape[2]))
        arrays.append(_create_array(group, str(level), shape, level_chunks, np.dtype(data.dtype)))
    def write_pyramid(z0: int, block: np.ndarray) -> None:
        start = z0
        for level, f in enumerate(factors, start=1):
            block = _downsample_block(block, f, labels=labels)
            start //= f[0]
            stop = min(arrays[level].shape[0], start + block.shape[0])
            if stop > start:
                arrays[level][start:stop] = block[: stop - start]

    if isinstance(data, da.Array) and not _slabs_fit_chunks(data.chunks[0], depth):
        # slabs would cut the dask chunks (a segmentation computed 64 slices deep with overlap):
        # each slab would recompute whole chunks and their neighbours, so let dask compute every
        # chunk once into level 0, then build the pyramid from what was written
        _store_level0(data, arrays[0], progress=progress)
        data = arrays[0]
        compute_slab = lambda z0: np.asarray(data[z0: min(total, z0 + depth)])  # noqa: E731
        write = write_pyramid
        progress = None
    else:
        def compute_slab(z0: int) -> np.ndarray:
            block = data[z0: min(total, z0 + depth)]
            return np.asarray(block.compute() if isinstance(block, da.Array) else block)

        def write(z0: int, block: np.ndarray) -> None:
            arrays[0][z0: z0 + block.shape[0]] = block
            write_pyramid(z0, block)

    # three stages overlap: reading slab i+1, writing (compress + pyramid) slab i in another
    # thread; at most three slabs are in memory at once
    with ThreadPoolExecutor(max_workers=1) as reader, ThreadPoolExecutor(max_workers=1) as writer:
        pending = reader.submit(compute_slab, 0)
        written = None
        for z0 in range(0, total, depth):
            block = pending.result()
            if z0 + depth < total:
                pending = reader.submit(compute_slab, z0 + depth)
            if on_block is not None:
                on_block(z0, block)
            if written is not None:
                written.result()
                if progress is not None:
                    progress(z0, total)
            written = writer.submit(write, z0, block)
        if written is not None:
            written.result()
        if progress is not None:
            progress(total, total)


def _slabs_fit_chunks(z_chunks: Sequence[int], depth: int) -> bool:
    """True when no dask chunk straddles a slab boundary (every multiple of ``depth`` is a chunk edge)."""
    edges = set(np.cumsum(z_chunks).tolist())
    return all(z in edges for z in range(depth, int(sum(z_chunks)), depth))


class _CountingTarget:
    """A zarr array as a ``da.store`` target that reports progress in slices' worth of voxels."""

    def __init__(self, array: zarr.Array, progress: Progress | None) -> None:
        self._array = array
        self._progress = progress
        self._voxels = 0
        self._lock = threading.Lock()
        self.shape, self.dtype = array.shape, array.dtype

    def __setitem__(self, key: Any, value: np.ndarray) -> None:
        self._array[key] = value
        if self._progress is not None:
            with self._lock:
                self._voxels += int(value.size)
                self._progress(self._voxels // int(np.prod(self.shape[1:])), int(self.shape[0]))


def _store_level0(data: da.Array, target: zarr.Array, *, progress: Progress | None) -> None:
    """Compute ``data`` once, chunk by chunk, into ``target`` (lock only where chunks straddle)."""
    aligned = all(
        all(b % c == 0 for b in np.cumsum(dc)[:-1]) for dc, c in zip(data.chunks, target.chunks)
    )
    da.store(data, _CountingTarget(target, progress), lock=not aligned)


def _create_array(group: zarr.Group, name: str, shape: tuple[int, ...], chunks: tuple[int, int, int], dtype: np.dtype) -> zarr.Array:
    # lz4 at level 1 keeps writing near disk speed on 2 cores; bit-shuffle helps 16/32-bit data
    shuffle = BloscShuffle.bitshuffle if dtype.itemsize > 1 else BloscShuffle.noshuffle
    return group.create_array(
        name,
        shape=shape,
        chunks=tuple(min(c, max(1, s)) for c, s in zip(chunks, shape)),
        dtype=dtype,
        compressors=[BloscCodec(cname="lz4", clevel=1, shuffle=shuffle)],
        dimension_names=list(AXES),
        fill_value=0,
    )


def _axes_meta() -> list[dict[str, str]]:
    return [{"name": a, "type": "space", "unit": "nanometer"} for a in AXES]


def _datasets(voxel_size_nm: Sequence[float], factors: Sequence[tuple[int, int, int]]) -> list[dict[str, Any]]:
    datasets = []
    vox = [float(v) for v in voxel_size_nm]
    offset = [0.0, 0.0, 0.0]
    for level in range(len(factors) + 1):
        transforms: list[dict[str, Any]] = [{"type": "scale", "scale": list(vox)}]
        if any(offset):
            transforms.append({"type": "translation", "translation": list(offset)})
        datasets.append({"path": str(level), "coordinateTransformations": transforms})
        if level < len(factors):
            f = factors[level]
            # the centre of a mean-pooled voxel sits half a (coarse-minus-fine) voxel further on
            offset = [o + (fi - 1) * v / 2 for o, fi, v in zip(offset, f, vox)]
            vox = [v * fi for v, fi in zip(vox, f)]
    return datasets


def _check_voxel(voxel_size_nm: Sequence[float]) -> tuple[float, float, float]:
    if len(voxel_size_nm) != 3 or not all(np.isfinite(v) and v > 0 for v in voxel_size_nm):
        raise ParameterError(f"voxel_size_nm={tuple(voxel_size_nm)!r}: give three positive sizes (z, y, x) in nm")
    return (float(voxel_size_nm[0]), float(voxel_size_nm[1]), float(voxel_size_nm[2]))


def write_ome_zarr(
    image: da.Array | np.ndarray,
    path: str | Path,
    *,
    voxel_size_nm: Sequence[float],
    chunks: tuple[int, int, int] | None = None,
    levels: int | None = None,
    name: str = "image",
    metadata: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
    on_block: Callable[[int, np.ndarray], None] | None = None,
) -> Path:
    """Write a ``(z, y, x)`` volume as an OME-NGFF 0.5 multiscale image (zarr v3).

    Parameters
    ----------
    image : dask or numpy array
        The volume; dask arrays are computed one slab (``chunks[0]`` slices) at a time.
    path : path-like
        The ``*.ome.zarr`` folder to create; must not exist.
    voxel_size_nm : 3 floats
        Physical voxel size ``(z, y, x)`` in nm, stored as the level-0 scale.
    chunks : 3 ints, optional
        Chunk shape; :func:`default_chunks` when omitted.
    levels : int, optional
        Number of extra pyramid levels; chosen from the shape when omitted.
    name : str
        Multiscale name.
    metadata : mapping, optional
        Extra JSON-safe attributes stored under ``volrecon`` in the group.
    progress : callable, optional
        ``progress(slices_done, slices_total)`` for level 0.
    on_block : callable, optional
        ``on_block(z0, block)`` with each computed level-0 slab (for statistics in the same pass).

    Returns
    -------
    Path
        The written image group.
    """
    path = Path(path)
    if path.exists():
        raise ParameterError(f"{path}: already exists; write to a new path (the CLI's --overwrite replaces runs)")
    vox = _check_voxel(voxel_size_nm)
    if image.ndim != 3:
        raise ParameterError(f"image has {image.ndim} dimensions; an OME-Zarr volume here is (z, y, x)")
    data = image if isinstance(image, da.Array) else da.from_array(np.asarray(image), chunks=(8, -1, -1))
    chunks = chunks or default_chunks(data.shape)
    factors = pyramid_factors(vox, data.shape)
    if levels is not None:
        factors = factors[:levels]
    group = zarr.open_group(str(path), mode="w-", zarr_format=3)
    factors = _fit_depth(factors, chunks[0])
    _write_levels(group, data, chunks, factors, labels=False, progress=progress, on_block=on_block)
    write_multiscales_metadata(group, _datasets(vox, factors), fmt=FormatV05(), axes=_axes_meta(), name=name)
    if metadata:
        group.attrs["volrecon"] = json.loads(json.dumps(dict(metadata)))
    return path


def write_label_image(
    labels: da.Array | np.ndarray,
    image_path: str | Path,
    name: str,
    *,
    names: Mapping[str, int],
    colours: Mapping[str, str] | None = None,
    voxel_size_nm: Sequence[float] | None = None,
    chunks: tuple[int, int, int] | None = None,
    progress: Progress | None = None,
) -> Path:
    """Write an NGFF label image ``image.ome.zarr/labels/<name>`` with names and colours.

    Parameters
    ----------
    labels : dask or numpy array
        Integer labels ``(z, y, x)`` on the image's grid; 0 is unassigned.
    image_path : path-like
        The parent OME-Zarr image.
    name : str
        Label image name (``"phases"``, ``"regions"``, ``"voids"``).
    names : mapping
        Name -> label value, stored as NGFF ``properties`` (``label-value``, ``name``).
    colours : mapping, optional
        Name -> ``"#rrggbb"``, stored as NGFF ``colors``.
    voxel_size_nm : 3 floats, optional
        Defaults to the parent image's level-0 voxel size.
    """
    image_path = Path(image_path)
    parent = read_ome_zarr(image_path)
    if tuple(labels.shape) != tuple(parent.data.shape):
        raise ParameterError(
            f"labels shape {tuple(labels.shape)} differs from the image {tuple(parent.data.shape)} in {image_path}"
        )
    if not np.issubdtype(np.dtype(labels.dtype), np.integer):
        raise ParameterError(f"labels dtype {labels.dtype}: label images hold integers")
    vox = _check_voxel(voxel_size_nm or parent.voxel_size_nm[0])
    root = zarr.open_group(str(image_path), mode="a")
    labels_group = root.require_group("labels")
    # written under a hidden name, then renamed: an interrupted write never looks like a label image
    tmp_name = f".tmp-{name}-{os.getpid()}"
    if tmp_name in labels_group:
        shutil.rmtree(image_path / "labels" / tmp_name)
    group = labels_group.create_group(tmp_name)
    data = labels if isinstance(labels, da.Array) else da.from_array(np.asarray(labels), chunks=(8, -1, -1))
    chunks = chunks or default_chunks(data.shape)
    factors = _fit_depth(pyramid_factors(vox, data.shape), chunks[0])[: len(parent.levels) - 1]
    _write_levels(group, data, chunks, factors, labels=True, progress=progress)
    # nearest-neighbour pyramid: the coarse voxel keeps the label of its first fine voxel, no offset
    datasets = []
    vox_l = list(vox)
    for level in range(len(factors) + 1):
        datasets.append({"path": str(level), "coordinateTransformations": [{"type": "scale", "scale": list(vox_l)}]})
        if level < len(factors):
            vox_l = [v * fi for v, fi in zip(vox_l, factors[level])]
    write_multiscales_metadata(group, datasets, fmt=FormatV05(), axes=_axes_meta(), name=name)
    colour_list = []
    for phase, value in names.items():
        hexcode = (colours or {}).get(phase)
        if hexcode:
            rgb = [int(hexcode[i : i + 2], 16) for i in (1, 3, 5)]
            colour_list.append({"label-value": int(value), "rgba": rgb + [255]})
    properties = [{"label-value": int(v), "name": n} for n, v in names.items()]
    write_label_metadata(
        labels_group, tmp_name, colors=colour_list or None, properties=properties, fmt=FormatV05(), source={"image": "../../"}
    )
    final = image_path / "labels" / name
    if final.exists():
        old = image_path / "labels" / f".tmp-old-{name}-{os.getpid()}"
        os.replace(final, old)
        os.replace(image_path / "labels" / tmp_name, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(image_path / "labels" / tmp_name, final)
    register_labels(image_path)
    return final


def register_labels(image_path: str | Path) -> list[str]:
    """Rebuild the ``labels`` list of ``image.ome.zarr/labels`` from the label images present.

    Hidden (``.tmp-*``) leftovers of an interrupted write are removed.
    """
    labels_dir = Path(image_path) / "labels"
    if not labels_dir.is_dir():
        return []
    names = []
    for child in sorted(labels_dir.iterdir()):
        if child.name.startswith(".tmp-"):
            shutil.rmtree(child, ignore_errors=True)
        elif child.is_dir() and (child / "zarr.json").is_file():
            names.append(child.name)
    group = zarr.open_group(str(labels_dir), mode="a")
    group.attrs["ome"] = {"version": "0.5", "labels": names}
    return names


def _group_ome(attrs: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    if "ome" in attrs:
        ome = dict(attrs["ome"])
        return ome, str(ome.get("version", "0.5"))
    if "multiscales" in attrs:
        return dict(attrs), str(attrs["multiscales"][0].get("version", "0.4"))
    raise InputError("not an OME-NGFF multiscale image (no 'multiscales' in the group attributes)")


def read_ome_zarr(path: str | Path) -> OmeZarrImage:
    """Open an OME-Zarr image (NGFF 0.4 or 0.5) lazily.

    Parameters
    ----------
    path : path-like
        The image group (``…/image.ome.zarr`` or a label image inside it).

    Returns
    -------
    OmeZarrImage
        Levels as dask arrays (``(z, y, x)``; a leading ``t``/``c`` of size 1 is dropped) with
        their voxel sizes converted to nm.

    Raises
    ------
    InputError
        If the path is not an OME-Zarr multiscale image or holds no spatial 3D data.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such OME-Zarr image")
    try:
        group = zarr.open_group(str(path), mode="r")
    except Exception as exc:  # noqa: BLE001 - zarr raises several kinds here
        raise InputError(f"{path}: not a zarr group ({exc})") from None
    try:
        ome, version = _group_ome(group.attrs.asdict())
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None
    ms = ome["multiscales"][0]
    axes = ms.get("axes") or [{"name": a} for a in ("t", "c", "z", "y", "x")][-len(group[ms["datasets"][0]["path"]].shape):]
    axis_names = [a["name"] if isinstance(a, dict) else str(a) for a in axes]
    units = [(a.get("unit") if isinstance(a, dict) else None) for a in axes]
    spatial = [i for i, a in enumerate(axes) if (a.get("type") if isinstance(a, dict) else None) == "space" or axis_names[i] in AXES]
    if len(spatial) != 3:
        raise InputError(f"{path}: expected 3 spatial axes (z, y, x), found {axis_names}")
    global_scale = [1.0] * len(axes)
    for t in ms.get("coordinateTransformations", []) or []:
        if t.get("type") == "scale":
            global_scale = [float(s) for s in t["scale"]]
    levels = []
    voxels = []
    for ds in ms["datasets"]:
        arr = da.from_zarr(group[ds["path"]])
        scale = [1.0] * len(axes)
        for t in ds.get("coordinateTransformations", []):
            if t.get("type") == "scale":
                scale = [float(s) for s in t["scale"]]
        index: list[Any] = [slice(None) if i in spatial else 0 for i in range(arr.ndim)]
        for i in range(arr.ndim):
            if i not in spatial and arr.shape[i] != 1:
                raise InputError(f"{path}: axis {axis_names[i]} has {arr.shape[i]} entries; volrecon reads one channel and time point")
        levels.append(arr[tuple(index)])
        vox = []
        for i in spatial:
            factor = _UNIT_TO_NM.get((units[i] or "nanometer").lower())
            if factor is None:
                raise InputError(f"{path}: unknown unit {units[i]!r} on axis {axis_names[i]}")
            vox.append(scale[i] * global_scale[i] * factor)
        voxels.append(tuple(vox))
    return OmeZarrImage(tuple(levels), tuple(voxels), path, group.attrs.asdict(), version)


def read_label_names(path: str | Path) -> dict[str, int]:
    """Return name -> value from an NGFF label image's ``image-label.properties``."""
    group = zarr.open_group(str(path), mode="r")
    ome, _ = _group_ome(group.attrs.asdict())
    props = (ome.get("image-label") or {}).get("properties") or []
    return {str(p["name"]): int(p["label-value"]) for p in props if "name" in p}


def compute_with_scheduler(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` under the threaded scheduler unless a distributed client is active."""
    try:
        from distributed import get_client

        get_client()
        return fn()
    except (ImportError, ValueError):
        with dask.config.set(scheduler="threads"):
            return fn()
