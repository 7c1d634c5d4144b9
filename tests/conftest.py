"""Shared fixtures: where the real reference data lives, and small TIFF stacks with metadata."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import tifffile

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO / ".." / "shared" / "data").resolve()


def shared_file(*parts: str) -> Path:
    """Path to a file in ../shared/data, skipping the test when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"reference data {path} not present")
    return path


def thermo_ini(pixel_m: float = 5e-9, tilt_corrected: bool = False, rows: int | None = None, databar: int = 0) -> str:
    """A Thermo/FEI INI block as xT writes it into TIFF tag 34682."""
    lines = [
        "[User]", "Date=11/25/2026", "Time=10:00:00 AM",
        "[System]", "Type=DualBeam", "SystemType=Helios 5 CX",
        "[Beam]", "HV=2000", "Beam=EBeam", "Scan=EScan",
        "[EBeam]", "HV=2000", f"TiltCorrectionIsOn={'yes' if tilt_corrected else 'no'}",
        "[Scan]", "Dwelltime=3e-06", f"PixelWidth={pixel_m:g}", f"PixelHeight={pixel_m:g}",
        "[Stage]", "StageT=0.907571",
        "[Detectors]", "Name=TLD", "Mode=BSE",
    ]
    if rows is not None:
        lines += ["[Image]", f"ResolutionY={rows}"]
    lines += ["[PrivateFei]", f"DatabarHeight={databar}"]
    return "\r\n".join(lines) + "\r\n"


def write_tiff(path: Path, image: np.ndarray, ini: str | None = None) -> None:
    """Write one slice, with a Thermo INI tag when given."""
    extratags = [(34682, "s", 0, ini, True)] if ini else []
    tifffile.imwrite(path, image, extratags=extratags)


@pytest.fixture
def make_stack(tmp_path: Path) -> Callable[..., Path]:
    """Factory writing a small slice folder ``slice_00000_z=…um.tif`` … with Thermo metadata."""

    def make(
        n: int = 6,
        shape: tuple[int, int] = (40, 50),
        *,
        dtype: str = "uint8",
        name: str = "slices",
        pixel_m: float = 5e-9,
        step_nm: float | None = 20.0,
        tilt_corrected: bool = False,
        seed: int = 0,
    ) -> Path:
        folder = tmp_path / name
        folder.mkdir()
        rng = np.random.default_rng(seed)
        info = np.iinfo(dtype)
        for i in range(n):
            img = rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype)
            z = f"_z={i * step_nm / 1000:.4f}um" if step_nm else ""
            write_tiff(folder / f"slice_{i:05d}{z}.tif", img, thermo_ini(pixel_m, tilt_corrected))
        return folder

    return make


def tree_digest(folder: Path) -> str:
    """Hash of every file's name and bytes under ``folder`` (to prove inputs were not touched)."""
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(folder)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()
