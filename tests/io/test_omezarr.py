"""OME-Zarr write/read, checked with independent readers (ome-zarr-py, ome-zarr-models, zarr)."""

from __future__ import annotations

import json
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import zarr

from volrecon.errors import InputError, ParameterError
from volrecon.io.omezarr import pyramid_factors, read_label_names, read_ome_zarr, write_label_image, write_ome_zarr


@pytest.fixture
def volume() -> np.ndarray:
    rng = np.random.default_rng(3)
    return rng.integers(0, 256, size=(12, 300, 260), dtype=np.uint8)


def test_roundtrip_and_scale_with_ome_zarr_py(tmp_path: Path, volume: np.ndarray) -> None:
    path = write_ome_zarr(da.from_array(volume, chunks=(1, -1, -1)), tmp_path / "image.ome.zarr", voxel_size_nm=(20.0, 12.69, 10.0))
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Multiscales, Reader

    node = next(n for n in Reader(parse_url(str(path)))() if any(isinstance(s, Multiscales) for s in n.specs))
    np.testing.assert_array_equal(np.asarray(node.data[0]), volume)
    axes = node.metadata["axes"]
    assert [a["name"] for a in axes] == ["z", "y", "x"]
    assert all(a["unit"] == "nanometer" and a["type"] == "space" for a in axes)
    scale0 = node.metadata["coordinateTransformations"][0][0]["scale"]
    assert scale0 == pytest.approx([20.0, 12.69, 10.0])
    # level 1 halves y and x (z is coarser already) and is the mean of 2x2 blocks
    assert node.data[1].shape == (12, 150, 130)
    block = volume[3, 10:12, 20:22].astype(float).mean()
    assert abs(float(np.asarray(node.data[1])[3, 5, 10]) - block) <= 0.5


def test_validates_as_ngff_05(tmp_path: Path, volume: np.ndarray) -> None:
    from ome_zarr_models.v05.image import Image
    from ome_zarr_models.v05.image_label import ImageLabel

    path = write_ome_zarr(volume, tmp_path / "image.ome.zarr", voxel_size_nm=(20, 10, 10))
    Image.from_zarr(zarr.open_group(str(path), mode="r"))
    labels = (volume > 128).astype(np.uint8) + 1
    write_label_image(labels, path, "phases", names={"void": 1, "active": 2}, colours={"void": "#000000", "active": "#d98c2b"})
    label = ImageLabel.from_zarr(zarr.open_group(str(path / "labels" / "phases"), mode="r"))
    props = {p.label_value: p.name for p in label.attributes.ome.image_label.properties}
    assert props == {1: "void", 2: "active"}
    assert read_label_names(path / "labels" / "phases") == {"void": 1, "active": 2}
    np.testing.assert_array_equal(read_ome_zarr(path / "labels" / "phases").data.compute(), labels)
    assert json.loads((path / "labels" / "zarr.json").read_text())["attributes"]["ome"]["labels"] == ["phases"]


def test_reads_ngff_04_written_by_ome_zarr_py(tmp_path: Path, volume: np.ndarray) -> None:
    from ome_zarr.format import FormatV04
    from ome_zarr.writer import write_image

    group = zarr.open_group(str(tmp_path / "v04.zarr"), mode="w", zarr_format=2)
    write_image(volume, group, axes="zyx", fmt=FormatV04(), scale_factors=[2],
                scale={"z": 0.02, "y": 0.01, "x": 0.01}, axes_units={a: "micrometer" for a in "zyx"})
    img = read_ome_zarr(tmp_path / "v04.zarr")
    assert img.version == "0.4"
    assert img.voxel_size_nm[0] == pytest.approx((20.0, 10.0, 10.0))
    np.testing.assert_array_equal(img.data.compute(), volume)


def test_streaming_writes_one_slab_at_a_time(tmp_path: Path, volume: np.ndarray) -> None:
    seen: list[int] = []
    lazy = da.from_array(volume, chunks=(1, -1, -1))
    write_ome_zarr(lazy, tmp_path / "a.ome.zarr", voxel_size_nm=(20, 10, 10), chunks=(4, 128, 128),
                   on_block=lambda z0, block: seen.append(block.shape[0]))
    assert seen == [4, 4, 4]  # never more than one slab (chunk depth) in memory


def test_pyramid_factors_make_voxels_more_isotropic() -> None:
    assert pyramid_factors((20.0, 12.7, 10.0), (400, 1536, 2048))[:3] == [(1, 2, 2), (2, 2, 2), (2, 2, 2)]
    assert pyramid_factors((10, 10, 10), (10, 100, 100)) == []


def test_bad_inputs(tmp_path: Path, volume: np.ndarray) -> None:
    with pytest.raises(ParameterError, match="voxel_size_nm"):
        write_ome_zarr(volume, tmp_path / "x.ome.zarr", voxel_size_nm=(20, -1, 10))
    path = write_ome_zarr(volume, tmp_path / "y.ome.zarr", voxel_size_nm=(20, 10, 10))
    with pytest.raises(ParameterError, match="already exists"):
        write_ome_zarr(volume, path, voxel_size_nm=(20, 10, 10))
    with pytest.raises(ParameterError, match="labels shape"):
        write_label_image(np.zeros((2, 2, 2), np.uint8), path, "phases", names={"void": 1})
    (tmp_path / "plain").mkdir()
    zarr.open_group(str(tmp_path / "plain"), mode="w")
    with pytest.raises(InputError, match="not an OME-NGFF"):
        read_ome_zarr(tmp_path / "plain")
    with pytest.raises(InputError, match="no such"):
        read_ome_zarr(tmp_path / "missing.ome.zarr")


@pytest.mark.parametrize("z_chunks", [(6, 6), (5, 7), (12,)])
def test_deep_or_straddling_chunks_are_computed_once(tmp_path: Path, volume: np.ndarray, z_chunks: tuple[int, ...]) -> None:
    calls: list[int] = []

    def counted(block: np.ndarray, block_info: dict | None = None) -> np.ndarray:
        calls.append(block_info[None]["chunk-location"][0] if block_info else -1)
        return block

    lazy = da.from_array(volume, chunks=(z_chunks, 150, 130)).map_blocks(counted, dtype=volume.dtype)
    done: list[tuple[int, int]] = []
    a = write_ome_zarr(lazy, tmp_path / "a.ome.zarr", voxel_size_nm=(10, 10, 10), chunks=(4, 128, 128),
                       progress=lambda d, t: done.append((d, t)))
    b = write_ome_zarr(volume, tmp_path / "b.ome.zarr", voxel_size_nm=(10, 10, 10), chunks=(4, 128, 128))
    assert len([c for c in calls if c >= 0]) == len(z_chunks) * 2 * 2  # every dask chunk once, never per slab
    la, lb = read_ome_zarr(a).levels, read_ome_zarr(b).levels
    assert len(la) == len(lb) > 1
    for x, y in zip(la, lb):
        np.testing.assert_array_equal(x.compute(), y.compute())
    assert done[-1] == (12, 12)
