"""Export volumes and phase surfaces to VTK files that ParaView opens, in physical units (nm).

- ``.vti``: the image (or labels) as vtkImageData with spacing = voxel size; VTK's x/y/z are
  volrecon's x/y/z (the array is written in VTK's x-fastest order).
- ``.vtp``: one closed surface per phase, extracted with discrete flying edges on the label
  image (optionally smoothed with a windowed-sinc filter and decimated).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from volrecon.errors import ParameterError


@dataclass(frozen=True)
class SurfaceInfo:
    """A written phase surface.

    Attributes
    ----------
    phase : str
        Phase name.
    path : Path
        The ``.vtp`` file.
    area_nm2 : float
        Surface area in nm².
    triangles : int
        Number of triangles.
    bounds_nm : tuple of 6 floats
        ``(xmin, xmax, ymin, ymax, zmin, zmax)`` in nm.
    """

    phase: str
    path: Path
    area_nm2: float
    triangles: int
    bounds_nm: tuple[float, float, float, float, float, float]

    def to_dict(self) -> dict[str, object]:
        return {
            "phase": self.phase,
            "path": str(self.path),
            "area_nm2": self.area_nm2,
            "triangles": self.triangles,
            "bounds_nm": list(self.bounds_nm),
        }


def _image_data(volume: np.ndarray, voxel_size_nm: Sequence[float], name: str):  # type: ignore[no-untyped-def]
    import vtk
    from vtkmodules.util import numpy_support

    vol = np.ascontiguousarray(volume)
    if vol.ndim != 3:
        raise ParameterError(f"VTK export needs a (z, y, x) volume, got {vol.ndim} dimensions")
    vz, vy, vx = (float(v) for v in voxel_size_nm)
    image = vtk.vtkImageData()
    image.SetDimensions(vol.shape[2], vol.shape[1], vol.shape[0])
    image.SetSpacing(vx, vy, vz)
    image.SetOrigin(0.0, 0.0, 0.0)
    # no copy: the VTK array keeps a reference to the numpy buffer (a volume's worth less memory)
    scalars = numpy_support.numpy_to_vtk(vol.ravel(order="C"), deep=False)
    scalars.SetName(name)
    image.GetPointData().SetScalars(scalars)
    return image


def write_vti(volume: np.ndarray, path: str | Path, *, voxel_size_nm: Sequence[float], name: str = "image") -> Path:
    """Write a ``(z, y, x)`` array as a compressed ``.vti`` with physical spacing in nm."""
    import vtk

    path = Path(path)
    writer = vtk.vtkXMLImageDataWriter()
    writer.SetFileName(str(path))
    writer.SetInputData(_image_data(volume, voxel_size_nm, name))
    writer.SetCompressorTypeToZLib()
    writer.SetDataModeToAppended()
    writer.EncodeAppendedDataOff()
    if not writer.Write():
        raise ParameterError(f"{path}: VTK could not write the file; check the folder is writable")
    return path


def phase_surface(
    labels: np.ndarray,
    value: int,
    *,
    voxel_size_nm: Sequence[float],
    smooth_iterations: int = 0,
    decimate: float = 0.0,
):  # type: ignore[no-untyped-def]
    """The boundary surface of ``labels == value`` as vtkPolyData (nm), closed at the volume edge.

    Parameters
    ----------
    labels : ndarray
        Integer labels ``(z, y, x)``.
    value : int
        Label value of the phase.
    voxel_size_nm : 3 floats
        ``(z, y, x)`` voxel size.
    smooth_iterations : int
        Windowed-sinc smoothing iterations (0: none; the voxel staircase is kept).
    decimate : float
        Fraction of triangles to remove (0–0.95) with topology preserved.
    """
    import vtk

    if not 0.0 <= decimate < 0.96:
        raise ParameterError(f"decimate={decimate}: give a fraction between 0 and 0.95")
    # pad with background so the surface closes where the phase touches the volume's faces
    labels = np.asarray(labels)
    mask = np.zeros(tuple(n + 2 for n in labels.shape), np.uint8)
    np.equal(labels, value, out=mask[1:-1, 1:-1, 1:-1].view(np.bool_))
    image = _image_data(mask, voxel_size_nm, "mask")
    vz, vy, vx = (float(v) for v in voxel_size_nm)
    image.SetOrigin(-vx, -vy, -vz)
    fe = vtk.vtkDiscreteFlyingEdges3D()
    fe.SetInputData(image)
    fe.SetValue(0, 1)
    fe.ComputeNormalsOff()
    fe.ComputeGradientsOff()
    fe.Update()
    surface = fe.GetOutput()
    if smooth_iterations > 0 and surface.GetNumberOfCells():
        sm = vtk.vtkWindowedSincPolyDataFilter()
        sm.SetInputData(surface)
        sm.SetNumberOfIterations(smooth_iterations)
        sm.BoundarySmoothingOff()
        sm.NonManifoldSmoothingOn()
        sm.NormalizeCoordinatesOn()
        sm.SetPassBand(0.1)
        sm.Update()
        surface = sm.GetOutput()
    if decimate > 0 and surface.GetNumberOfCells():
        dec = vtk.vtkDecimatePro()
        dec.SetInputData(surface)
        dec.SetTargetReduction(decimate)
        dec.PreserveTopologyOn()
        dec.Update()
        surface = dec.GetOutput()
    return surface


def surface_area_nm2(surface) -> float:  # type: ignore[no-untyped-def]
    """Total area of a triangulated vtkPolyData."""
    import vtk

    if surface.GetNumberOfCells() == 0:
        return 0.0
    mass = vtk.vtkMassProperties()
    tri = vtk.vtkTriangleFilter()
    tri.SetInputData(surface)
    tri.Update()
    mass.SetInputData(tri.GetOutput())
    mass.Update()
    return float(mass.GetSurfaceArea())


def _write_surface(surface, path: Path) -> None:  # type: ignore[no-untyped-def]
    import vtk

    writer = vtk.vtkXMLPolyDataWriter()
    writer.SetFileName(str(path))
    writer.SetInputData(surface)
    writer.SetCompressorTypeToZLib()
    if not writer.Write():
        raise ParameterError(f"{path}: VTK could not write the file; check the folder is writable")


def write_phase_surfaces(
    labels: np.ndarray,
    folder: str | Path,
    *,
    phase_names: Mapping[str, int],
    voxel_size_nm: Sequence[float],
    smooth_iterations: int = 0,
    decimate: float = 0.0,
    skip: Sequence[str] = ("frame",),
    workers: int | None = None,
) -> list[SurfaceInfo]:
    """Write one ``<phase>.vtp`` per phase present in ``labels``.

    Parameters
    ----------
    labels : ndarray
        Integer labels ``(z, y, x)``.
    folder : path-like
        Where the ``.vtp`` files go.
    phase_names : mapping
        Phase name -> label value.
    voxel_size_nm : 3 floats
        ``(z, y, x)`` voxel size.
    smooth_iterations, decimate
        As in :func:`phase_surface`.
    skip : sequence of str
        Phases not written.
    workers : int, optional
        Phases extracted side by side (VTK's filters release the GIL); default 2, at most the
        number of CPUs.  Each worker holds one phase mask and its surface.

    Returns
    -------
    list of SurfaceInfo
        Area (nm²), triangle count and bounds of each written surface, in ``phase_names`` order.
    """
    import os
    from concurrent.futures import ThreadPoolExecutor

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    labels = np.asarray(labels)
    present = set(np.unique(labels).tolist())
    wanted = [(name, int(v)) for name, v in phase_names.items() if name not in skip and int(v) in present]

    def one(name: str, value: int) -> SurfaceInfo:
        surface = phase_surface(labels, value, voxel_size_nm=voxel_size_nm, smooth_iterations=smooth_iterations, decimate=decimate)
        path = folder / f"{name}.vtp"
        _write_surface(surface, path)
        return SurfaceInfo(name, path, surface_area_nm2(surface), int(surface.GetNumberOfCells()), tuple(float(b) for b in surface.GetBounds()))  # type: ignore[arg-type]

    n = max(1, min(len(wanted), workers or min(2, os.cpu_count() or 1)))
    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(lambda job: one(*job), wanted))
