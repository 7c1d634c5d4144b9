"""Open a slice-and-view acquisition as a lazy, calibrated 3D stack.

Nothing here reads pixel data eagerly: each slice is one dask chunk read from its own file when
computed.  Only TIFF headers and the first slice's metadata are read up front.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import dask.array as da
import numpy as np
import tifffile

from volrecon.errors import InputError, ParameterError
from volrecon.io.calibration import Calibration, Value
from volrecon.io.metadata import InstrumentMetadata, read_atlas3d_setup, read_tiff_metadata
from volrecon.io.slices import SliceFile, find_slice_files, parse_slice_name
from volrecon.units import parse_angle, parse_length

Crop = tuple[int, int, int, int]
"""Rectangle ``(y0, y1, x0, x1)`` in image pixels, half-open like Python slices."""


@dataclass(frozen=True)
class Stack:
    """A lazily read slice stack.

    Attributes
    ----------
    data : dask.array.Array
        ``(z, y, x)``, one chunk per slice, cropped (data bar and user ROI removed).
    calibration : Calibration
        Voxel size with the source of every value.
    slices : tuple of SliceFile
        The file (and page) behind each z index.
    crop : Crop
        The rectangle of the raw images that ``data`` holds.
    databar_rows : int
        Rows removed at the bottom as the instrument's data bar.
    gaps : tuple of int
        Slice indices missing from an otherwise regular numbering.
    warnings : tuple of str
        Things a user should know (recorded in run.toml).
    metadata : InstrumentMetadata
        Metadata of the first slice.
    source : str
        What the user pointed at.
    """

    data: da.Array
    calibration: Calibration
    slices: tuple[SliceFile, ...]
    crop: Crop
    databar_rows: int = 0
    gaps: tuple[int, ...] = ()
    warnings: tuple[str, ...] = ()
    metadata: InstrumentMetadata = field(default_factory=InstrumentMetadata)
    source: str = ""

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.data.shape)  # type: ignore[return-value]

    def to_dict(self) -> dict[str, Any]:
        """JSON/TOML-safe summary (no pixel data)."""
        return {
            "source": self.source,
            "shape": list(self.shape),
            "dtype": str(self.data.dtype),
            "crop": list(self.crop),
            "databar_rows": self.databar_rows,
            "gaps": list(self.gaps),
            "warnings": list(self.warnings),
            "first_file": str(self.slices[0].path) if self.slices else "",
            "last_file": str(self.slices[-1].path) if self.slices else "",
            "calibration": self.calibration.to_dict(),
            "metadata": self.metadata.to_dict(),
        }


@dataclass(frozen=True)
class _Header:
    shape: tuple[int, ...]
    dtype: np.dtype
    photometric: int
    pages: int


def _read_header(path: Path) -> _Header:
    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            npages = len(tif.pages)
            return _Header(tuple(page.shape), np.dtype(page.dtype), int(page.photometric), npages)
    except (tifffile.TiffFileError, ValueError, OSError, IndexError, KeyError) as exc:
        raise InputError(f"{path}: not a readable TIFF ({exc}); remove or replace the file") from None


def _is_colour(header: _Header) -> bool:
    return len(header.shape) == 3 and header.shape[-1] in (3, 4) and header.photometric == 2


def parse_crop(crop: str | Sequence[int] | None) -> Crop | None:
    """Parse a crop ``"y0:y1,x0:x1"`` (or a 4-sequence) into ``(y0, y1, x0, x1)``."""
    if crop is None or crop == "":
        return None
    if isinstance(crop, str):
        try:
            ys, xs = crop.split(",")
            y0, y1 = (int(v) for v in ys.split(":"))
            x0, x1 = (int(v) for v in xs.split(":"))
        except ValueError:
            raise ParameterError(f"--crop {crop!r}: write it as y0:y1,x0:x1 in pixels, e.g. 0:900,100:1900") from None
        return (y0, y1, x0, x1)
    values = [int(v) for v in crop]
    if len(values) != 4:
        raise ParameterError(f"crop {crop!r}: give four numbers (y0, y1, x0, x1)")
    return (values[0], values[1], values[2], values[3])


def detect_databar(image: np.ndarray, *, max_fraction: float = 0.25) -> int:
    """Return how many bottom rows hold an instrument data bar (0 when none).

    A data bar is a block of rows at the bottom made almost entirely of two levels (background
    and text), under an image whose rows are not.

    Parameters
    ----------
    image : ndarray
        One 2D slice.
    max_fraction : float
        Largest share of the height a data bar may take.
    """
    img = np.asarray(image)
    h = img.shape[0]
    if h < 16 or img.min() == img.max():
        return 0
    extreme = np.array([_two_level_share(row) for row in img])
    limit = int(h * (1 - max_fraction))
    start = h  # first row of the bar
    misses = 0
    for row in range(h - 1, limit - 1, -1):
        if extreme[row] >= 0.85:
            misses = 0
            start = row
        else:
            misses += 1
            if misses > 2:
                break
    bar = h - start
    if bar < 3:
        return 0
    above = extreme[max(0, start - 3 * bar): start]
    if above.size == 0 or np.median(above) > 0.5:
        return 0
    return bar


def _two_level_share(row: np.ndarray) -> float:
    """Share of a row's pixels taken by its two most common values (text on a flat bar: ~1)."""
    _, counts = np.unique(row, return_counts=True)
    top = np.sort(counts)[-2:]
    return float(top.sum()) / row.size


def _z_spacing(slices: Sequence[SliceFile]) -> float | None:
    z = [s.z_nm for s in slices]
    if len(z) < 2 or any(v is None for v in z):
        return None
    diffs = np.diff(np.asarray(z, dtype=float))
    diffs = diffs[diffs != 0]
    if diffs.size == 0:
        return None
    return float(np.median(np.abs(diffs)))


def _calibration_from(meta: InstrumentMetadata, slices: Sequence[SliceFile], setup: InstrumentMetadata | None) -> Calibration:
    values = dict(meta.values)
    if setup is not None:
        for key, v in setup.values.items():
            values.setdefault(key, v)
    thickness = values.get("slice_thickness_nm")
    if thickness is None:
        spacing = _z_spacing(slices)
        if spacing is not None:
            thickness = Value(spacing, "filename:z= positions (median step)")
    corrected = values.get("tilt_corrected")
    cal = Calibration(
        pixel_size_x_nm=values.get("pixel_size_x_nm", Value(None, "missing")),
        pixel_size_y_nm=values.get("pixel_size_y_nm", values.get("pixel_size_x_nm", Value(None, "missing"))),
        slice_thickness_nm=thickness or Value(None, "missing"),
        tilt_deg=values.get("tilt_deg", Value(52.0, "default (no FIB–SEM angle in metadata)")),
        tilt_corrected_by_instrument=corrected or Value(0.0, "default (no tilt-correction flag in metadata)"),
        apply_foreshortening=not bool(corrected.value) if corrected is not None else True,
        instrument=meta.text.get("instrument", "") or (setup.text.get("instrument", "") if setup else ""),
        detector=meta.text.get("detector", "") or (setup.text.get("detector", "") if setup else ""),
        extra={k: v for k, v in values.items() if k in ("beam_energy_kv", "dwell_time_ns", "stage_tilt_deg")},
    )
    return cal


def _expand_pages(files: Sequence[Path], headers: Sequence[_Header]) -> list[SliceFile]:
    slices: list[SliceFile] = []
    for path, header in zip(files, headers):
        index, z_nm = parse_slice_name(path.name)
        if header.pages > 1 and len(files) == 1:
            slices.extend(SliceFile(path, page=p, index=p) for p in range(header.pages))
        else:
            slices.append(SliceFile(path, 0, index, z_nm))
    return slices


def _check_indices(slices: list[SliceFile]) -> tuple[list[SliceFile], tuple[int, ...], list[str]]:
    notes: list[str] = []
    indices = [s.index for s in slices]
    if any(i is None for i in indices):
        return slices, (), notes
    seen: dict[int, SliceFile] = {}
    for s in slices:
        assert s.index is not None
        if s.index in seen:
            raise InputError(
                f"{s.path}: slice index {s.index} appears twice (also {seen[s.index].path.name}); "
                "remove the duplicate or point volrecon at one channel (e.g. a glob like '*_SE2.tif')"
            )
        seen[s.index] = s
    ordered = sorted(slices, key=lambda s: s.index)  # type: ignore[arg-type, return-value]
    idx = np.array([s.index for s in ordered])
    steps = np.diff(idx)
    gaps: list[int] = []
    if steps.size:
        step = int(np.min(steps)) or 1
        for a, b in zip(idx[:-1], idx[1:]):
            gaps.extend(range(int(a) + step, int(b), step))
    if gaps:
        shown = ", ".join(str(g) for g in gaps[:10]) + (" …" if len(gaps) > 10 else "")
        notes.append(f"{len(gaps)} slice(s) missing from the numbering: {shown}; z spacing is not uniform there")
    return ordered, tuple(gaps), notes


def _read_slice(path: str, page: int, crop: Crop, grey: bool) -> np.ndarray:
    try:
        img = tifffile.imread(path, key=page)
    except Exception as exc:  # noqa: BLE001 - any decode failure is the file's fault
        raise InputError(f"{path}: cannot read pixel data ({exc}); replace the file") from None
    if img.ndim == 3 and grey:
        img = img[..., :3].mean(axis=-1).astype(img.dtype) if img.shape[-1] in (3, 4) else img[..., 0]
    y0, y1, x0, x1 = crop
    return np.ascontiguousarray(img[y0:y1, x0:x1])


def open_stack(
    source: str | Path,
    *,
    pixel_size: str | float | None = None,
    pixel_size_y: str | float | None = None,
    slice_thickness: str | float | None = None,
    tilt: str | float | None = None,
    tilt_corrected: bool | None = None,
    crop: str | Sequence[int] | None = None,
    databar: str | int | bool = "auto",
    grey: bool = False,
    setup_file: str | Path | None = None,
    min_slices: int = 2,
) -> Stack:
    """Open a folder of slice TIFFs, a multipage TIFF or a glob as a lazy calibrated stack.

    Parameters
    ----------
    source : path-like or str
        Folder of per-slice TIFFs (natural order; indices and ``z=`` positions read from names),
        a multipage TIFF (one page per slice) or a glob pattern.
    pixel_size, pixel_size_y : str or float, optional
        Override the image pixel size (``"5nm"``); a bare number is in nm.
    slice_thickness : str or float, optional
        Override the milling step (``"0.02um"``).
    tilt : str or float, optional
        FIB–SEM geometry angle for cross-section foreshortening (``"52deg"``).
    tilt_corrected : bool, optional
        Say whether the instrument already stretched y (overrides metadata).
    crop : str or 4 ints, optional
        Region to keep, ``"y0:y1,x0:x1"`` in raw-image pixels.
    databar : "auto", int or False
        Rows of instrument data bar to remove at the bottom: found from metadata or content with
        ``"auto"``, a number of rows, or ``False``/``"none"`` to keep all rows.
    grey : bool
        Convert RGB slices to grey instead of refusing them.
    setup_file : path-like, optional
        A Zeiss/Fibics Atlas 3 ``.a3d-setup`` job file; found automatically in the folder.
    min_slices : int
        Fewest slices accepted (2: a volume).

    Returns
    -------
    Stack

    Raises
    ------
    InputError
        Empty folder, no TIFF, unreadable file, mixed shapes or dtypes, duplicate indices, colour
        slices, too few slices.
    ParameterError
        Bad override values or a crop outside the image.

    Examples
    --------
    >>> stack = open_stack("sample_volumes/diglyme")          # doctest: +SKIP
    >>> stack.data.shape, stack.calibration.voxel_size_nm      # doctest: +SKIP
    """
    files, skipped = find_slice_files(source)
    headers = [_read_header(p) for p in files]
    notes: list[str] = []
    if skipped:
        notes.append(f"ignored {len(skipped)} non-TIFF file(s) such as {skipped[0].name}")

    shapes: dict[tuple[int, ...], int] = {}
    for h in headers:
        shapes[h.shape] = shapes.get(h.shape, 0) + 1
    common_shape = max(shapes, key=lambda s: shapes[s])
    for path, h in zip(files, headers):
        if h.shape != common_shape:
            raise InputError(
                f"{path}: slice is {_fmt_shape(h.shape)} but the stack is {_fmt_shape(common_shape)}; "
                "crop or re-export the slices to one size"
            )
    dtypes = {h.dtype for h in headers}
    if len(dtypes) > 1:
        majority = max(dtypes, key=lambda d: sum(h.dtype == d for h in headers))
        odd = next(p for p, h in zip(files, headers) if h.dtype != majority)
        raise InputError(
            f"{odd}: pixel type {headers[files.index(odd)].dtype} differs from the stack's {majority}; "
            "export every slice with the same bit depth"
        )
    head = headers[0]
    if len(common_shape) == 3 and common_shape[-1] in (3, 4):
        if not grey:
            raise InputError(
                f"{files[0]}: slices are colour ({common_shape[-1]} channels); FIB-SEM slices are grey — "
                "re-export as greyscale or pass --grey to convert"
            )
    elif len(common_shape) != 2:
        if not (len(files) == 1 and head.pages > 1):
            raise InputError(f"{files[0]}: expected 2D slices, found shape {_fmt_shape(common_shape)}")
    if head.dtype.kind not in "uif" or head.dtype.itemsize > 4 and head.dtype.kind != "f":
        raise InputError(f"{files[0]}: pixel type {head.dtype} is not supported; use 8/16/32-bit grey TIFFs")

    slices = _expand_pages(files, headers)
    slices, gaps, index_notes = _check_indices(slices)
    notes.extend(index_notes)
    if len(slices) < min_slices:
        raise InputError(
            f"{source}: found {len(slices)} slice(s); a volume needs at least {min_slices} — "
            "point volrecon at the folder with every slice"
        )

    meta = read_tiff_metadata(slices[0].path, page=slices[0].page)
    setup = None
    setup_path = Path(setup_file) if setup_file else None
    if setup_path is None:
        folder = Path(source) if Path(source).is_dir() else slices[0].path.parent
        found = sorted(folder.glob("*.a3d-setup"))
        setup_path = found[0] if found else None
    if setup_path is not None:
        if not setup_path.is_file():
            raise InputError(f"{setup_path}: no such Atlas 3 setup file")
        setup = read_atlas3d_setup(setup_path)

    height, width = common_shape[0], common_shape[1]
    if len(common_shape) == 3 and head.pages > 1 and len(files) == 1 and common_shape[-1] not in (3, 4):
        height, width = common_shape[-2], common_shape[-1]
    bar = _databar_rows(databar, meta, slices[0], height)
    region = parse_crop(crop) or (0, height - bar, 0, width)
    y0, y1, x0, x1 = region
    if not (0 <= y0 < y1 <= height - bar and 0 <= x0 < x1 <= width):
        raise ParameterError(
            f"--crop {y0}:{y1},{x0}:{x1} lies outside the image ({height - bar}×{width} px after the data bar); "
            "give y0<y1 and x0<x1 inside it"
        )
    if bar:
        notes.append(f"removed {bar} data-bar rows at the bottom of each slice")

    cal = _calibration_from(meta, slices, setup)
    cal = cal.with_overrides(
        pixel_size_nm=None if pixel_size is None else parse_length(pixel_size, name="--pixel-size"),
        pixel_size_y_nm=None if pixel_size_y is None else parse_length(pixel_size_y, name="--pixel-size-y"),
        slice_thickness_nm=None if slice_thickness is None else parse_length(slice_thickness, name="--slice-thickness"),
        tilt_deg=None if tilt is None else _check_tilt(parse_angle(tilt, name="--tilt")),
        tilt_corrected=tilt_corrected,
    )
    if cal.tilt_corrected_by_instrument.source.startswith("default") and cal.apply_foreshortening:
        notes.append(
            f"no tilt-correction flag in the metadata: y is stretched by 1/sin({cal.tilt_deg.value:g}°); "
            "pass --tilt-corrected if the instrument already did it"
        )

    dtype = head.dtype
    paths = [str(s.path) for s in slices]
    pages = [s.page for s in slices]
    out_h, out_w = y1 - y0, x1 - x0

    def read_block(block_info: dict | None = None) -> np.ndarray:
        z = block_info[None]["chunk-location"][0]  # type: ignore[index]
        return _read_slice(paths[z], pages[z], region, grey)[None]

    data = da.map_blocks(
        read_block,
        chunks=((1,) * len(slices), (out_h,), (out_w,)),
        dtype=dtype,
        meta=np.empty((0, 0, 0), dtype=dtype),
        name=f"volrecon-slices-{_token(paths, region, grey)}",
    )
    return Stack(
        data=data,
        calibration=cal,
        slices=tuple(slices),
        crop=region,
        databar_rows=bar,
        gaps=gaps,
        warnings=tuple(notes),
        metadata=meta,
        source=str(source),
    )


def _check_tilt(deg: float) -> float:
    if not 0 < deg < 180:
        raise ParameterError(f"--tilt {deg:g} deg: the FIB–SEM angle must lie between 0 and 180 deg (52 on Thermo)")
    return deg


def _databar_rows(databar: str | int | bool, meta: InstrumentMetadata, first: SliceFile, height: int) -> int:
    if databar is False or (isinstance(databar, str) and databar.lower() in {"none", "no", "off", "0"}):
        return 0
    if isinstance(databar, int) and not isinstance(databar, bool):
        if not 0 <= databar < height:
            raise ParameterError(f"--databar {databar}: must be between 0 and the image height {height}")
        return databar
    if isinstance(databar, str) and databar.lower() not in {"auto", "yes", "true"}:
        try:
            return _databar_rows(int(databar), meta, first, height)
        except ValueError:
            raise ParameterError(f"--databar {databar!r}: use 'auto', 'none' or a number of rows") from None
    rows = meta.text.get("scan_rows")
    if rows and 0 < int(rows) < height:
        return height - int(rows)
    if meta.databar_rows and meta.databar_rows < height // 2:
        return meta.databar_rows
    img = tifffile.imread(first.path, key=first.page)
    if img.ndim == 3:
        img = img[..., 0]
    return detect_databar(img)


def _fmt_shape(shape: tuple[int, ...]) -> str:
    return "×".join(str(s) for s in shape)


def _token(*parts: object) -> str:
    from dask.base import tokenize

    return tokenize(*parts)


def describe_gaps(stack: Stack) -> str:
    """One line about missing slices ("none" when the numbering is complete)."""
    if not stack.gaps:
        return "none"
    return f"{len(stack.gaps)} missing: " + ", ".join(str(g) for g in stack.gaps[:8]) + (" …" if len(stack.gaps) > 8 else "")


def physical_extent_nm(stack: Stack) -> tuple[float, float, float]:
    """Physical size ``(z, y, x)`` of the stack in nm."""
    vz, vy, vx = stack.calibration.voxel_size_nm
    z, y, x = stack.shape
    return (z * vz, y * vy, x * vx)


def with_calibration(stack: Stack, calibration: Calibration) -> Stack:
    """Return the stack with another calibration (pixel data untouched)."""
    return replace(stack, calibration=calibration)


__all__ = ["Stack", "open_stack", "detect_databar", "parse_crop", "describe_gaps", "physical_extent_nm", "with_calibration", "Crop"]
