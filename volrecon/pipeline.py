"""Stage order, parameters (``run.toml``) and resume.

Each stage is a function ``stage(out, ...)`` that reads what earlier stages left in the run
folder and writes its own outputs atomically through :class:`volrecon.io.runfolder.RunFolder`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from volrecon.io.omezarr import write_ome_zarr
from volrecon.io.runfolder import RunFolder
from volrecon.io.stack import Stack, open_stack

IMAGE = "image.ome.zarr"
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class StageResult:
    """What a stage did.

    Attributes
    ----------
    out : Path
        The run folder.
    stage : str
        Stage name.
    skipped : bool
        True when the stage had already completed with the same parameters (resume).
    outputs : tuple of str
        Outputs relative to the run folder.
    details : dict
        Stage-specific summary (JSON-safe).
    """

    out: Path
    stage: str
    skipped: bool
    outputs: tuple[str, ...]
    details: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"out": str(self.out), "stage": self.stage, "skipped": self.skipped, "outputs": list(self.outputs), "details": self.details}


def open_options_from(params: dict[str, Any]) -> dict[str, Any]:
    """The subset of parameters that :func:`volrecon.io.open_stack` takes."""
    keys = ("pixel_size", "pixel_size_y", "slice_thickness", "tilt", "tilt_corrected", "crop", "databar", "grey", "setup_file")
    return {k: params[k] for k in keys if k in params and params[k] is not None}


def assemble(
    source: str | Path,
    out: str | Path,
    *,
    overwrite: bool = False,
    chunks: tuple[int, int, int] | None = None,
    progress: Progress | None = None,
    **open_options: Any,
) -> StageResult:
    """Ingest a slice folder and write ``OUT/image.ome.zarr`` with its calibration.

    Parameters
    ----------
    source : path-like
        Slice folder, multipage TIFF or glob (see :func:`volrecon.io.open_stack`).
    out : path-like
        Run folder.
    overwrite : bool
        Replace an earlier run in ``out``.
    chunks : 3 ints, optional
        OME-Zarr chunk shape.
    progress : callable, optional
        ``progress(slices_done, slices_total)``.
    **open_options
        Calibration overrides and crop options of :func:`volrecon.io.open_stack`.

    Returns
    -------
    StageResult
        ``details`` holds the stack summary (shape, calibration with sources, warnings).
    """
    source_text = str(source)
    stack = open_stack(source, **open_options)
    voxel = stack.calibration.voxel_size_nm  # raises a clear error when incomplete
    run = RunFolder(out, source=source_text, overwrite=overwrite, input_paths=[Path(source_text)] if Path(source_text).exists() else [])
    params = {"source": source_text, **{k: _plain(v) for k, v in open_options.items() if v is not None}, "chunks": list(chunks) if chunks else "default"}
    summary = stack.to_dict()
    if run.stage_done("assemble", params):
        return StageResult(run.path, "assemble", True, (IMAGE,), summary)
    stats = SliceStats(stack)
    with run.stage("assemble", params, [IMAGE]) as tmp:
        write_ome_zarr(
            stack.data,
            tmp / IMAGE,
            voxel_size_nm=voxel,
            chunks=chunks,
            name=Path(source_text).name or "volume",
            metadata={"stack": summary},
            progress=progress,
            on_block=stats.add,
        )
    summary["warnings"] = list(summary["warnings"]) + stats.warnings()
    summary["blank_slices"] = stats.blank
    run.update("calibration", stack.calibration.to_dict())
    run.update("stack", {k: v for k, v in summary.items() if k not in ("calibration", "metadata")})
    return StageResult(run.path, "assemble", False, (IMAGE,), summary)


class SliceStats:
    """Per-slice minimum and maximum gathered while the volume is written (no extra read)."""

    def __init__(self, stack: Stack) -> None:
        self._stack = stack
        self.blank: list[int] = []
        self.saturated: list[int] = []

    def add(self, z0: int, block: np.ndarray) -> None:
        top = np.iinfo(block.dtype).max if np.issubdtype(block.dtype, np.integer) else None
        for i, plane in enumerate(block):
            lo, hi = plane.min(), plane.max()
            if lo == hi:
                self.blank.append(z0 + i)
            elif top is not None and np.mean(plane == top) > 0.5:
                self.saturated.append(z0 + i)

    def warnings(self) -> list[str]:
        notes = []
        for name, zs in (("blank (one constant value)", self.blank), ("more than half saturated", self.saturated)):
            if zs:
                files = ", ".join(f"z={z} ({self._stack.slices[z].path.name})" for z in zs[:5])
                notes.append(f"{len(zs)} slice(s) {name}: {files}{' …' if len(zs) > 5 else ''}; corrections will interpolate them")
        return notes


def report(out: str | Path, *, title: str | None = None, render_3d: bool = True) -> StageResult:
    """Write ``OUT/report.html`` (self-contained) from what the run folder holds.

    When ``labels/phases`` exist, a 3D rendering of the phase surfaces is added as
    ``figures/render3d.png`` (VTK offscreen).
    """
    from volrecon.io.omezarr import read_label_names, read_ome_zarr
    from volrecon.report.html import render_report

    run = RunFolder(out)
    outputs = ["report.html"]
    phases_path = run.path / IMAGE / "labels" / "phases"
    with run.stage("report", {"title": title or "", "render_3d": render_3d}, outputs + (["figures/render3d.png"] if render_3d and phases_path.exists() else [])) as tmp:
        if render_3d and phases_path.exists():
            from volrecon.report.render3d import render_phases

            labels = read_ome_zarr(phases_path)
            level = labels.levels[min(1, len(labels.levels) - 1)]
            (tmp / "figures").mkdir()
            render_phases(level.compute(), tmp / "figures" / "render3d.png", phase_names=read_label_names(phases_path),
                          voxel_size_nm=labels.voxel_size_nm[min(1, len(labels.levels) - 1)])
            (run.path / "figures").mkdir(exist_ok=True)
        page = render_report(run.path, title=title)
        if (tmp / "figures" / "render3d.png").exists():
            import base64

            data = base64.b64encode((tmp / "figures" / "render3d.png").read_bytes()).decode("ascii")
            page = page.replace("</body>", f'<h2>3D</h2><figure><img alt="render3d" src="data:image/png;base64,{data}"></figure></body>')
        (tmp / "report.html").write_text(page)
    return StageResult(run.path, "report", False, tuple(outputs), {"report": str(run.path / "report.html")})


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def load_stack(source: str | Path, **options: Any) -> Stack:
    """Open a source the way :func:`assemble` does (for ``volrecon info``)."""
    return open_stack(source, min_slices=1, **options)
