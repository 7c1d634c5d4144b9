"""VTK export read back with VTK: spacing, bounds and surface area against analytic shapes."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from volrecon.io.vtk_export import phase_surface, surface_area_nm2, write_phase_surfaces, write_vti

vtk = pytest.importorskip("vtk")


def test_vti_roundtrip_spacing_and_order(tmp_path: Path) -> None:
    from vtkmodules.util import numpy_support

    vol = np.arange(4 * 5 * 6, dtype=np.uint16).reshape(4, 5, 6)
    path = write_vti(vol, tmp_path / "v.vti", voxel_size_nm=(20.0, 12.5, 10.0))
    reader = vtk.vtkXMLImageDataReader()
    reader.SetFileName(str(path))
    reader.Update()
    img = reader.GetOutput()
    assert img.GetDimensions() == (6, 5, 4)
    assert img.GetSpacing() == pytest.approx((10.0, 12.5, 20.0))
    back = numpy_support.vtk_to_numpy(img.GetPointData().GetScalars()).reshape(4, 5, 6)
    np.testing.assert_array_equal(back, vol)
    # voxel (z=1, y=2, x=3) sits at x=30, y=25, z=20 nm
    pid = img.FindPoint(30.0, 25.0, 20.0)
    assert img.GetPointData().GetScalars().GetTuple1(pid) == vol[1, 2, 3]


def test_box_surface_area_and_bounds(tmp_path: Path) -> None:
    labels = np.zeros((12, 14, 16), np.uint8)
    labels[2:8, 3:10, 4:14] = 3  # a 6 x 7 x 10 voxel box
    vox = (20.0, 10.0, 5.0)
    infos = write_phase_surfaces(labels, tmp_path, phase_names={"active": 3, "void": 1}, voxel_size_nm=vox)
    assert [i.phase for i in infos] == ["active"]
    reader = vtk.vtkXMLPolyDataReader()
    reader.SetFileName(str(infos[0].path))
    reader.Update()
    poly = reader.GetOutput()
    dz, dy, dx = 6 * 20.0, 7 * 10.0, 10 * 5.0
    exact = 2 * (dz * dy + dz * dx + dy * dx)
    # discrete flying edges cuts the box corners at half-voxel: area within a few % of the exact box
    assert surface_area_nm2(poly) == pytest.approx(exact, rel=0.08)
    xmin, xmax, ymin, ymax, zmin, zmax = poly.GetBounds()
    assert (xmax - xmin) == pytest.approx(dx, abs=5.0)
    assert (zmax - zmin) == pytest.approx(dz, abs=20.0)
    assert xmin == pytest.approx(4 * 5.0 - 2.5, abs=2.6)


def test_sphere_area_converges_to_analytic() -> None:
    r = 14.0
    z, y, x = np.mgrid[:40, :40, :40]
    ball = ((z - 19.5) ** 2 + (y - 19.5) ** 2 + (x - 19.5) ** 2 <= r * r).astype(np.uint8)
    raw = surface_area_nm2(phase_surface(ball, 1, voxel_size_nm=(1, 1, 1)))
    smooth = surface_area_nm2(phase_surface(ball, 1, voxel_size_nm=(1, 1, 1), smooth_iterations=20))
    exact = 4 * math.pi * r * r
    assert abs(smooth - exact) / exact < 0.03
    assert abs(raw - exact) / exact < 0.12
    decimated = phase_surface(ball, 1, voxel_size_nm=(1, 1, 1), smooth_iterations=20, decimate=0.8)
    assert surface_area_nm2(decimated) == pytest.approx(smooth, rel=0.03)


def test_phases_side_by_side_give_the_same_surfaces(tmp_path: Path) -> None:
    z, y, x = np.mgrid[:24, :32, :32]
    labels = np.where((z - 11.5) ** 2 + (y - 15.5) ** 2 + (x - 15.5) ** 2 <= 81, 1, 2).astype(np.uint8)
    labels[:, :, 28:] = 3
    names = {"void": 1, "electrolyte": 2, "active": 3, "sei": 4}
    one = write_phase_surfaces(labels, tmp_path / "a", phase_names=names, voxel_size_nm=(2, 1, 1), smooth_iterations=5, workers=1)
    two = write_phase_surfaces(labels, tmp_path / "b", phase_names=names, voxel_size_nm=(2, 1, 1), smooth_iterations=5, workers=2)
    assert [i.phase for i in two] == ["void", "electrolyte", "active"]  # phase_names order, absent phase skipped
    for a, b in zip(one, two):
        assert (a.phase, a.triangles, a.bounds_nm) == (b.phase, b.triangles, b.bounds_nm)
        assert a.area_nm2 == pytest.approx(b.area_nm2, rel=1e-12)
    # the ball is a prolate spheroid in nm (semi-axes 18 along z, 9, 9)
    a, b = 18.0, 9.0
    e = math.sqrt(1 - b * b / (a * a))
    exact = 2 * math.pi * b * b * (1 + a / (b * e) * math.asin(e))
    assert one[0].area_nm2 == pytest.approx(exact, rel=0.12)


def _porous_labels() -> np.ndarray:
    rng = np.random.default_rng(4)
    from scipy import ndimage

    field = ndimage.gaussian_filter(rng.random((40, 36, 44)), 2.5)
    return np.digitize(field, np.quantile(field, [0.35, 0.7])).astype(np.uint8) + 1  # phases 1, 2, 3


@pytest.mark.parametrize("smooth, decimate", [(0, 0.0), (6, 0.0), (6, 0.5)])
def test_surface_by_slabs_equals_whole_volume(smooth: int, decimate: float) -> None:
    from volrecon.io.vtk_export import _area, surface_pieces

    labels = _porous_labels()
    vox = (20.0, 10.0, 10.0)
    whole_poly = phase_surface(labels, 2, voxel_size_nm=vox, smooth_iterations=smooth, decimate=decimate)
    kw = dict(voxel_size_nm=vox, smooth_iterations=smooth, decimate=decimate)
    pieces = list(surface_pieces(labels, 2, slab_voxels=1, **kw))
    assert len(pieces) >= 2
    whole = list(surface_pieces(labels, 2, slab_voxels=10**9, **kw))
    assert len(whole) == 1
    assert whole_poly.GetNumberOfCells() == len(whole[0][1])
    assert _area(*whole[0]) == pytest.approx(surface_area_nm2(whole_poly), rel=1e-9)
    # the slabs' triangles together are the whole surface's (no seam dropped or doubled)
    assert sum(len(t) for _, t in pieces) == len(whole[0][1])
    assert sum(_area(p, t) for p, t in pieces) == pytest.approx(_area(*whole[0]), rel=1e-6)


def test_streamed_writers_read_back_as_the_whole_volume(tmp_path: Path) -> None:
    import dask.array as da
    from vtkmodules.util import numpy_support

    labels = _porous_labels()
    lazy = da.from_array(labels, chunks=(7, 36, 44))
    path = write_vti(lazy, tmp_path / "p.vti", voxel_size_nm=(20.0, 10.0, 10.0), name="phases", slab_voxels=1)
    reader = vtk.vtkXMLImageDataReader()
    reader.SetFileName(str(path))
    reader.Update()
    back = numpy_support.vtk_to_numpy(reader.GetOutput().GetPointData().GetArray("phases")).reshape(labels.shape)
    np.testing.assert_array_equal(back, labels)
    names = {"void": 1, "electrolyte": 2, "active": 3}
    infos = write_phase_surfaces(lazy, tmp_path / "s", phase_names=names, voxel_size_nm=(20, 10, 10), slab_voxels=1)
    for info in infos:
        poly_reader = vtk.vtkXMLPolyDataReader()
        poly_reader.SetFileName(str(info.path))
        poly_reader.Update()
        poly = poly_reader.GetOutput()
        assert poly.GetNumberOfCells() == info.triangles
        assert surface_area_nm2(poly) == pytest.approx(info.area_nm2, rel=1e-6)
        assert poly.GetBounds() == pytest.approx(info.bounds_nm, abs=1e-3)
        whole = phase_surface(labels, names[info.phase], voxel_size_nm=(20, 10, 10))
        assert info.triangles == whole.GetNumberOfCells()
        assert info.area_nm2 == pytest.approx(surface_area_nm2(whole), rel=1e-6)


def test_vti_big_endian_volume_reads_back_equal(tmp_path: Path) -> None:
    from vtkmodules.util import numpy_support

    vol = (np.arange(3 * 4 * 5, dtype=np.uint16).reshape(3, 4, 5) * 1001).astype(">u2")  # bytes differ from native
    path = write_vti(vol, tmp_path / "be.vti", voxel_size_nm=(10.0, 10.0, 10.0), slab_voxels=20)  # one slice per slab
    reader = vtk.vtkXMLImageDataReader()
    reader.SetFileName(str(path))
    reader.Update()
    back = numpy_support.vtk_to_numpy(reader.GetOutput().GetPointData().GetScalars()).reshape(3, 4, 5)
    np.testing.assert_array_equal(back, vol)
    assert back.dtype == np.uint16


def test_unwritable_folder_is_an_output_error(tmp_path: Path) -> None:
    import os

    from volrecon.errors import OutputError

    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):  # root ignores the mode: make the folder a file instead
            locked.chmod(0o700)
            locked.rmdir()
            locked.write_text("")
        with pytest.raises(OutputError):
            write_vti(np.zeros((2, 3, 4), np.uint8), locked / "v.vti", voxel_size_nm=(1.0, 1.0, 1.0))
    finally:
        if locked.is_dir():
            locked.chmod(0o700)
