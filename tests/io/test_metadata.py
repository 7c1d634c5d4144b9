"""Instrument metadata against the reference values of the real files in ../shared/data."""

from __future__ import annotations

import math

import pytest

from tests.conftest import shared_file
from volrecon.io.metadata import parse_fei, read_atlas3d_setup, read_tiff_metadata, to_float


@pytest.mark.parametrize(
    ("parts", "pixel_nm"),
    [
        (("nexuslims_fibsem_tiff_metadata", "tescan-pfib_dataZeroed.tif"), 1.5625),
        (("nexuslims_fibsem_tiff_metadata", "scios_multigis_metadata_sections.tif"), 3.3724),
        (("nexuslims_fibsem_tiff_metadata", "scios_xml_metadata.tif"), 26.9792),
        (("nexuslims_fibsem_tiff_metadata", "quanta_image.tif"), 441.942),
        (("openfibsem_tfs_dualbeam_image", "test_image_2.tif"), 97.6562),
        (("rsciio_sem_tiff_metadata", "FEI-Helios-Ebeam-8bits.tif"), 3372.4),
        (("rsciio_sem_tiff_metadata", "FEI-Helios-Ebeam-16bits.tif"), 3372.4),
        (("rsciio_sem_tiff_metadata", "test_tiff_Zeiss_SEM_512pix.tif"), 5.825),
        (("rsciio_sem_tiff_metadata", "test_tiff_Zeiss_SEM_1k.tif"), 2615.0),
        (("zeiss_auriga_fibsem_2slices", "ZEISS_SEM_multipage.tif"), 12.33),
    ],
)
def test_pixel_size_matches_reference(parts: tuple[str, str], pixel_nm: float) -> None:
    meta = read_tiff_metadata(shared_file(*parts))
    assert meta.get("pixel_size_x_nm") == pytest.approx(pixel_nm, rel=1e-4)
    assert meta.get("pixel_size_y_nm") == pytest.approx(pixel_nm, rel=1e-4)
    assert meta.values["pixel_size_x_nm"].source.startswith("metadata:")


def test_zeiss_auriga_slice_height_angle_and_tilt_correction() -> None:
    meta = read_tiff_metadata(shared_file("zeiss_auriga_fibsem_2slices", "ZEISS_SEM_multipage.tif"))
    assert meta.vendor == "zeiss"
    assert meta.get("slice_thickness_nm") == pytest.approx(60.0)
    assert meta.get("tilt_deg") == pytest.approx(54.0)
    assert meta.get("tilt_corrected") == 1.0
    assert meta.get("beam_energy_kv") == pytest.approx(1.8)
    assert meta.text["detector"] == "InLens"
    second = read_tiff_metadata(shared_file("zeiss_auriga_fibsem_2slices", "ZEISS_SEM_multipage.tif"), page=1)
    assert second.get("slice_index") == 5.0


def test_thermo_fields_and_databar() -> None:
    meta = read_tiff_metadata(shared_file("rsciio_sem_tiff_metadata", "FEI-Helios-Ebeam-8bits.tif"))
    assert meta.vendor == "thermo"
    assert meta.get("beam_energy_kv") == pytest.approx(5.0)
    assert meta.get("tilt_corrected") == 0.0
    assert meta.values["tilt_deg"].source.startswith("default")
    assert meta.text["detector"].startswith("ETD")
    assert meta.databar_rows == 29
    assert meta.text["scan_rows"] == "442"


def test_malformed_floats_do_not_crash() -> None:
    meta = read_tiff_metadata(shared_file("rsciio_sem_tiff_metadata", "FEI-Helios-navcam-with-no-IRBeam-bad-floats.tif"))
    assert meta.vendor == "thermo"
    assert "beam_energy_kv" not in meta.values  # HV=notafloat is skipped, not fatal


def test_tescan_hdr_and_tag_agree() -> None:
    tif = shared_file("nexuslims_fibsem_tiff_metadata", "tescan-pfib_dataZeroed.tif")
    meta = read_tiff_metadata(tif)
    assert meta.vendor == "tescan"
    assert meta.get("beam_energy_kv") == pytest.approx(15.0)
    assert meta.text["detector"] == "E-T"
    # the binary tag 50431 alone (no sidecar) gives the same pixel size
    from volrecon.io.metadata import parse_tescan, parse_tescan_text, tescan_text_from_tag
    import tifffile

    with tifffile.TiffFile(tif) as t:
        blob = bytes(t.pages[0].tags[50431].value)
    alone = parse_tescan(parse_tescan_text(tescan_text_from_tag(blob)))
    assert alone.get("pixel_size_x_nm") == pytest.approx(1.5625)


def test_atlas3d_setup() -> None:
    meta = read_atlas3d_setup(shared_file("pystack3d_atlas3d_setup", "Atlas3D.a3d-setup"))
    assert meta.get("slice_thickness_nm") == pytest.approx(10.0)
    assert meta.get("pixel_size_x_nm") == pytest.approx(10.0, rel=1e-6)
    assert meta.get("tilt_corrected") == 1.0
    assert meta.text["channels"] == "SE2,ESB"


def test_parse_fei_from_dict_and_bad_values() -> None:
    meta = parse_fei({"Scan": {"PixelWidth": "", "PixelHeight": "notafloat"}, "EScan": {"PixelWidth": 4e-9, "PixelHeight": 4e-9}})
    assert meta.get("pixel_size_x_nm") == pytest.approx(4.0)
    assert meta.values["pixel_size_x_nm"].source == "metadata:[EScan] PixelWidth"
    neg = parse_fei({"Scan": {"PixelWidth": -1e-9, "PixelHeight": 0}})
    assert "pixel_size_x_nm" not in neg.values
    assert to_float("nan") is None and to_float("1,5") == 1.5 and math.isclose(to_float("2e-9") or 0, 2e-9)
