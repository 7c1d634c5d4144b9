"""A 3D picture of the phases, rendered offscreen with VTK (EGL/OSMesa; no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from volrecon.io.vtk_export import phase_surface
from volrecon.phases import PHASE_COLOURS


def _rgb(hexcode: str) -> tuple[float, float, float]:
    return tuple(int(hexcode[i : i + 2], 16) / 255 for i in (1, 3, 5))  # type: ignore[return-value]


def render_stride(shape: Sequence[int], max_voxels: int) -> int:
    """The stride along every axis that brings a volume of ``shape`` under about ``max_voxels``."""
    return max(1, int(np.ceil((float(np.prod(shape)) / max_voxels) ** (1 / 3))))


def render_phases(
    labels: Any,
    path: str | Path,
    *,
    phase_names: Mapping[str, int],
    voxel_size_nm: Sequence[float],
    phases: Sequence[str] | None = None,
    colours: Mapping[str, str] | None = None,
    size: tuple[int, int] = (900, 700),
    max_voxels: int = 4_000_000,
) -> Path:
    """Render the surfaces of ``phases`` (all but ``frame`` by default) to a PNG.

    ``labels`` is a numpy or dask array ``(z, y, x)``.  Large volumes are subsampled (stride) to
    about ``max_voxels`` first, before a dask array is read: the picture is for looking, the
    numbers come from the analysis.
    """
    import os

    if not os.environ.get("DISPLAY"):
        # no X server: ask VTK for its EGL window instead of failing over from GLX with a warning
        os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
    import vtk

    vtk.vtkObject.GlobalWarningDisplayOff()
    vox = [float(v) for v in voxel_size_nm]
    stride = render_stride(labels.shape, max_voxels)
    lab = labels[::stride, ::stride, ::stride] if stride > 1 else labels
    # a dask array is read here, already subsampled: memory stays at the picture's size
    lab = np.asarray(lab.compute() if hasattr(lab, "compute") else lab)
    vox = [v * stride for v in vox]
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
