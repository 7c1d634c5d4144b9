"""A 3D picture of the phases, rendered offscreen with VTK (EGL/OSMesa; no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from volrecon.io.vtk_export import phase_surface
from volrecon.phases import PHASE_COLOURS


def _rgb(hexcode: str) -> tuple[float, float, float]:
    return tuple(int(hexcode[i : i + 2], 16) / 255 for i in (1, 3, 5))  # type: ignore[return-value]


def render_grid(shape: Sequence[int], max_voxels: int) -> tuple[np.ndarray, ...]:
    """Indices along each axis of a nearest-neighbour subsample of ``shape`` to about ``max_voxels``.

    Every axis is scaled by the same factor (not a whole stride), so any volume larger than
    ``max_voxels`` is drawn from about ``max_voxels`` voxels: the rendering's memory is the
    same for 100 or 1000 slices.  A smaller volume is kept whole.
    """
    f = min(1.0, (max_voxels / max(float(np.prod(shape)), 1.0)) ** (1 / 3))
    out = []
    for n in shape:
        m = max(1, int(round(n * f)))
        out.append(np.minimum(((np.arange(m) + 0.5) * (n / m)).astype(np.int64), n - 1))
    return tuple(out)


def _subsample(labels: Any, grid: tuple[np.ndarray, ...]) -> np.ndarray:
    """``labels`` at the grid points, read one grid plane at a time (a dask or zarr volume never whole)."""
    zs, ys, xs = grid
    out = np.empty((zs.size, ys.size, xs.size), dtype=labels.dtype)
    for i, z in enumerate(zs):
        plane = labels[int(z)]
        plane = np.asarray(plane.compute() if hasattr(plane, "compute") else plane)
        out[i] = plane[np.ix_(ys, xs)]
    return out


def render_phases(
    labels: Any,
    path: str | Path,
    *,
    phase_names: Mapping[str, int],
    voxel_size_nm: Sequence[float],
    phases: Sequence[str] | None = None,
    colours: Mapping[str, str] | None = None,
    size: tuple[int, int] = (900, 700),
    max_voxels: int = 1_000_000,
) -> Path:
    """Render the surfaces of ``phases`` (all but ``frame`` by default) to a PNG.

    ``labels`` is a numpy or dask array ``(z, y, x)``.  Volumes larger than ``max_voxels`` are
    subsampled to about ``max_voxels`` (:func:`render_grid`; the same number of voxels for any
    larger volume, so the rendering's memory does not grow with the slice count) while a dask
    array is read: the picture is for looking, the numbers come from the analysis.  The
    renderer holds every phase's surface at once, several hundred bytes per voxel drawn.
    """
    import os

    if not os.environ.get("DISPLAY"):
        # no X server: ask VTK for its EGL window instead of failing over from GLX with a warning
        os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
    import vtk

    vtk.vtkObject.GlobalWarningDisplayOff()
    grid = render_grid(labels.shape, max_voxels)
    lab = _subsample(labels, grid)
    # the grid points are evenly spread: each voxel of the subsample stands for n / m of them
    vox = [float(v) * n / g.size for v, n, g in zip(voxel_size_nm, labels.shape, grid)]
    colours = {**PHASE_COLOURS, **(colours or {})}
    wanted = [p for p in (phases or phase_names) if p != "frame" and p in phase_names]
    renderer = vtk.vtkRenderer()
    renderer.SetBackground(1.0, 1.0, 1.0)
    present = set(np.unique(lab).tolist())
    for name in wanted:
        value = int(phase_names[name])
        if value not in present:
            continue
        # half the triangles (quadric clustering, cheap): the picture looks the same and the
        # renderer, which holds every phase's surface at once, needs ~1/4 less memory
        surface = phase_surface(lab, value, voxel_size_nm=vox, smooth_iterations=10, decimate=0.5)
        mapper = vtk.vtkPolyDataMapper()
        mapper.SetInputData(surface)
        mapper.ScalarVisibilityOff()
        actor = vtk.vtkActor()
        actor.SetMapper(mapper)
        actor.GetProperty().SetColor(*_rgb(colours.get(name, "#999999")))
        if name in ("electrolyte", "separator"):
            actor.GetProperty().SetOpacity(0.35)
        renderer.AddActor(actor)
    window = vtk.vtkRenderWindow()
    window.SetOffScreenRendering(1)
    window.AddRenderer(renderer)
    window.SetSize(*size)
    camera = renderer.GetActiveCamera()
    camera.Azimuth(35)
    camera.Elevation(25)
    renderer.ResetCamera()
    window.Render()
    grab = vtk.vtkWindowToImageFilter()
    grab.SetInput(window)
    grab.Update()
    writer = vtk.vtkPNGWriter()
    writer.SetFileName(str(path))
    writer.SetInputConnection(grab.GetOutputPort())
    writer.Write()
    window.Finalize()
    return Path(path)
