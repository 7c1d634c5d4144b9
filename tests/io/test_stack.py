"""Ingest: ordering, names, calibration, foreshortening, data bar, laziness."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import tifffile

from tests.conftest import shared_file, thermo_ini, write_tiff
from volrecon.io.slices import natural_key, parse_slice_name
from volrecon.io.stack import detect_databar, open_stack


def test_natural_order_and_z_from_names(tmp_path: Path) -> None:
    folder = tmp_path / "s"
    folder.mkdir()
    for i in (2, 10, 1):
        write_tiff(folder / f"slice_{i}_z={i * 0.03:.3f}um.tif", np.full((8, 8), i, np.uint8), thermo_ini())
    stack = open_stack(folder)
    assert [s.index for s in stack.slices] == [1, 2, 10]
    assert stack.data[:, 0, 0].compute().tolist() == [1, 2, 10]
    assert stack.gaps == tuple(range(3, 10))
    assert any("missing" in w for w in stack.warnings)
    # z positions 30, 60, 300 nm: median step of the recorded positions
    assert stack.calibration.slice_thickness_nm.source.startswith("filename")


def test_parse_slice_name_variants() -> None:
    assert parse_slice_name("slice_00100_z=1.0894um.tif") == (100, 1089.4)
    assert parse_slice_name("SEM Image - SliceImage - 012.tif")[0] == 12
    assert parse_slice_name("run3_img0007.tif")[0] == 7
    assert sorted(["a10", "a2", "a1"], key=natural_key) == ["a1", "a2", "a10"]


def test_thermo_calibration_and_foreshortening(make_stack) -> None:
    folder = make_stack(4, step_nm=30.0, pixel_m=5e-9)
    stack = open_stack(folder)
    cal = stack.calibration
    assert cal.pixel_size_x_nm.value == pytest.approx(5.0)
    assert cal.slice_thickness_nm.value == pytest.approx(30.0)
    assert not bool(cal.tilt_corrected_by_instrument.value)
    z, y, x = cal.voxel_size_nm
    assert y == pytest.approx(5.0 / math.sin(math.radians(52.0)))
    assert x == pytest.approx(5.0)
    assert cal.to_dict()["foreshortening_applied_by_volrecon"] is True


def test_instrument_tilt_correction_is_respected(make_stack) -> None:
    stack = open_stack(make_stack(3, tilt_corrected=True))
    assert stack.calibration.voxel_size_nm[1] == pytest.approx(5.0)
    assert stack.calibration.tilt_corrected_by_instrument.source == "metadata:[EBeam] TiltCorrectionIsOn"


def test_user_overrides_with_units(make_stack) -> None:
    stack = open_stack(make_stack(3), pixel_size="0.004um", slice_thickness="2e-8m", tilt="36deg", tilt_corrected=False)
    cal = stack.calibration
    assert cal.pixel_size_x_nm.value == pytest.approx(4.0) and cal.pixel_size_x_nm.source == "user"
    assert cal.slice_thickness_nm.value == pytest.approx(20.0)
    assert cal.voxel_size_nm[1] == pytest.approx(4.0 / math.sin(math.radians(36.0)))


def test_stack_is_lazy_one_chunk_per_slice(make_stack, monkeypatch) -> None:
    folder = make_stack(5)
    calls: list[str] = []
    real = tifffile.imread

    def counting(path, *a, **k):
        calls.append(str(path))
        return real(path, *a, **k)

    stack = open_stack(folder)
    monkeypatch.setattr(tifffile, "imread", counting)
    assert stack.data.chunks[0] == (1,) * 5
    assert calls == []  # opening read headers only
    expected = real(sorted(folder.glob("*.tif"))[3])
    np.testing.assert_array_equal(stack.data[3].compute(), expected)
    assert len(calls) == 1


def test_multipage_tiff_and_crop() -> None:
    path = shared_file("zeiss_auriga_fibsem_2slices", "ZEISS_SEM_multipage.tif")
    stack = open_stack(path, crop="100:600,200:900")
    assert stack.shape == (2, 500, 700)
    raw = tifffile.imread(path, key=1)
    np.testing.assert_array_equal(stack.data[1].compute(), raw[100:600, 200:900])
    assert stack.calibration.voxel_size_nm == pytest.approx((60.0, 12.33, 12.33))


def test_databar_removed_from_real_thermo_and_zeiss_images() -> None:
    helios = open_stack(shared_file("rsciio_sem_tiff_metadata", "FEI-Helios-Ebeam-8bits.tif"), min_slices=1, slice_thickness="10nm")
    assert helios.databar_rows == 29 and helios.shape[1] == 442
    quanta = open_stack(shared_file("nexuslims_fibsem_tiff_metadata", "quanta_image.tif"), min_slices=1, slice_thickness="10nm")
    assert quanta.shape[1] == 884
    # Zeiss has no bar height in its metadata: found from the image content
    zeiss = tifffile.imread(shared_file("rsciio_sem_tiff_metadata", "test_tiff_Zeiss_SEM_512pix.tif"))
    bar = detect_databar(zeiss)
    assert 30 <= bar <= 36  # the SmartSEM bar starts at row 350 of 384 (by inspection)
    assert detect_databar(zeiss[: zeiss.shape[0] - bar]) == 0  # nothing left after removing it


def test_detect_databar_synthetic() -> None:
    rng = np.random.default_rng(1)
    img = rng.integers(40, 200, size=(200, 300), dtype=np.uint8)
    assert detect_databar(img) == 0
    img[-24:] = 0
    img[-18:-10, 20:120:3] = 255  # "text"
    assert detect_databar(img) == 24
