"""Find and order the slice files of a slice-and-view acquisition."""

from __future__ import annotations

import glob as _glob
import re
from dataclasses import dataclass
from pathlib import Path

from volrecon.errors import InputError

TIFF_SUFFIXES = (".tif", ".tiff")
_Z_IN_NAME = re.compile(r"z\s*=\s*([-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*(nm|um|µm|mm)", re.IGNORECASE)
_SLICE_IN_NAME = re.compile(r"(?:slice|slc|section|sec|image|img|frame)[ _\-.]?(\d+)", re.IGNORECASE)
_DIGITS = re.compile(r"(\d+)")
_Z_UNITS_NM = {"nm": 1.0, "um": 1e3, "µm": 1e3, "mm": 1e6}


@dataclass(frozen=True)
class SliceFile:
    """One slice of the stack: a file (and page, for multipage TIFFs).

    Attributes
    ----------
    path : Path
        The TIFF file.
    page : int
        Page inside the file (0 for single-page files).
    index : int or None
        Slice number from the file name (``slice_00012`` -> 12), None when the name has none.
    z_nm : float or None
        Milling position from the file name (``z=1.0894um``), None when absent.
    """

    path: Path
    page: int = 0
    index: int | None = None
    z_nm: float | None = None

    @property
    def label(self) -> str:
        """Human-readable name used in messages."""
        return f"{self.path}" + (f" (page {self.page})" if self.page else "")


def natural_key(text: str) -> list[object]:
    """Sort key that orders ``slice_2`` before ``slice_10``."""
    return [int(tok) if tok.isdigit() else tok.lower() for tok in _DIGITS.split(text)]


def parse_slice_name(name: str) -> tuple[int | None, float | None]:
    """Return ``(slice index, z in nm)`` read from a file name; None where absent.

    Examples
    --------
    >>> parse_slice_name("slice_00100_z=1.0894um.tif")
    (100, 1089.4)
    >>> parse_slice_name("img7.tif")
    (7, None)
    """
    stem = Path(name).stem
    z_nm = None
    zm = _Z_IN_NAME.search(stem)
    if zm:
        z_nm = round(float(zm.group(1)) * _Z_UNITS_NM[zm.group(2).lower()], 6)
        stem_wo_z = stem[: zm.start()] + stem[zm.end():]
    else:
        stem_wo_z = stem
    sm = _SLICE_IN_NAME.search(stem_wo_z)
    if sm:
        return int(sm.group(1)), z_nm
    digits = _DIGITS.findall(stem_wo_z)
    return (int(digits[-1]) if digits else None), z_nm


def find_slice_files(source: str | Path) -> tuple[list[Path], list[Path]]:
    """List the TIFF files of ``source`` in natural order.

    Parameters
    ----------
    source : path-like or str
        A folder of per-slice TIFFs, a single (multipage) TIFF, or a glob such as
        ``"run/*_SE2.tif"``.

    Returns
    -------
    tiffs : list of Path
        TIFF files, naturally sorted.
    others : list of Path
        Files that were skipped because they are not TIFF.

    Raises
    ------
    InputError
        If the source does not exist or holds no TIFF file.
    """
    text = str(source)
    path = Path(source)
    if any(ch in text for ch in "*?[") and not path.exists():
        matches = [Path(p) for p in _glob.glob(text)]
        if not matches:
            raise InputError(f"{text}: the pattern matches no file; check the folder and the pattern")
        candidates = [p for p in matches if p.is_file()]
    elif path.is_dir():
        candidates = [p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")]
    elif path.is_file():
        candidates = [path]
    else:
        raise InputError(f"{path}: no such file or folder; give the folder of slice TIFFs")
    tiffs = sorted((p for p in candidates if p.suffix.lower() in TIFF_SUFFIXES), key=lambda p: natural_key(p.name))
    others = sorted((p for p in candidates if p.suffix.lower() not in TIFF_SUFFIXES), key=lambda p: natural_key(p.name))
    if not tiffs:
        if not candidates:
            raise InputError(f"{path}: the folder is empty; give the folder that holds the slice TIFFs")
        shown = ", ".join(p.name for p in others[:3]) + (" …" if len(others) > 3 else "")
        raise InputError(
            f"{path}: no TIFF slices found ({len(others)} other file(s): {shown}); "
            "volrecon reads .tif/.tiff slices — export the stack as TIFF"
        )
    return tiffs, [p for p in others if p.suffix.lower() not in {".hdr", ".a3d-setup", ".txt", ".xml", ".json", ".md"}]
