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
