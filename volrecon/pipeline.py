"""Stage order, parameters (``run.toml``) and resume.

Each stage is a function ``stage(out, ...)`` that reads what earlier stages left in the run
folder and writes its own outputs atomically through :class:`volrecon.io.runfolder.RunFolder`.

The stage functions change no process-wide setting: ``volrecon``'s command line limits glibc's
malloc arenas when it starts (:func:`volrecon._memory.bound_heap`); a program that runs the stages
itself on long stacks can do the same at its start.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
import json
import shutil
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from volrecon._memory import release_memory
from volrecon.io.omezarr import read_ome_zarr, write_ome_zarr
from volrecon.io.runfolder import RunFolder
from volrecon.io.stack import Stack, open_stack

IMAGE = "image.ome.zarr"
SEGMENTATION_TABLE = "tables/segmentation.json"  # layers found, interfaces, thresholds, warnings
DEFAULT_CORRECTIONS: tuple[str, ...] = ("drift", "shading", "brightness", "curtains")
"""Corrections applied by default.  Destriping acts only where its gate finds stripes that persist
down the face well above what it would take from noise (stripe-free phantoms are left untouched;
the stage records a warning when it stays off)."""
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


def _run_and_image(out: str | Path) -> tuple[RunFolder, Path]:
    run = RunFolder(out)
    image = run.path / IMAGE
    if not image.exists():
        from volrecon.errors import InputError

        raise InputError(f"{run.path}: no {IMAGE}; run `volrecon assemble SLICES -o {run.path}` first")
    return run, image


def _voxel(image_path: Path) -> tuple[float, float, float]:
    from volrecon.io.omezarr import read_ome_zarr

    return read_ome_zarr(image_path).voxel_size_nm[0]


def _uncorrected(image_path: Path, stack: Stack) -> Any:
    """The assembled volume: ``image.ome.zarr`` while no correction replaced it, else the raw slices."""
    image = read_ome_zarr(image_path)
    if "corrections" in image.attrs.get("volrecon", {}) or tuple(image.data.shape) != tuple(stack.data.shape):
        return stack.data
    return image.data


def correct(
    out: str | Path,
    *,
    steps: Sequence[str] = DEFAULT_CORRECTIONS,
    denoise: str | None = None,
    options: dict[str, dict[str, Any]] | None = None,
    progress: Progress | None = None,
) -> StageResult:
    """Estimate and apply registration and intensity corrections; rewrite ``OUT/image.ome.zarr``.

    The stage reads the raw slices again (the source and ingest options recorded by
    ``assemble``), so re-running it with other parameters never corrects an already corrected
    volume.  Estimates go to ``corrections/``, figures to ``figures/``.
    """
    from volrecon.correct.stage import correct_volume, correction_figures, save_corrections

    run, _ = _run_and_image(out)
    record = run.read()
    assemble_params = record.get("stages", {}).get("assemble", {}).get("params", {})
    source = assemble_params.get("source") or record.get("source", {}).get("path")
    stack = open_stack(source, **open_options_from(assemble_params))
    voxel = stack.calibration.voxel_size_nm
    params = {"steps": list(steps), "denoise": denoise or "none", "options": options or {}}
    if run.stage_done("correct", params):
        return StageResult(run.path, "correct", True, (IMAGE,), {})
    with run.stage("correct", params) as tmp:
        result = correct_volume(
            stack.data, voxel_size_nm=voxel, steps=steps, denoise={"method": denoise} if denoise else None, options=options
        )
        save_corrections(result, tmp / "corrections")
        write_ome_zarr(
            result.image, tmp / IMAGE, voxel_size_nm=voxel, name=Path(str(source)).name or "volume",
            metadata={"stack": stack.to_dict(), "corrections": result.to_dict()}, progress=progress,
        )
        # orthoslices from what was written: an xz/yz plane of the lazy chain would correct
        # every slice again (twice), one of the chunked OME-Zarr reads one row of chunks
        (tmp / "figures").mkdir()
        correction_figures(result, _uncorrected(run.path / IMAGE, stack), read_ome_zarr(tmp / IMAGE).data, tmp / "figures")
        if result.drift is not None:
            plotted = tmp / "corrections" / "drift.png"  # save_corrections drew the same figure
            if plotted.is_file():
                shutil.copyfile(plotted, tmp / "figures" / "drift_trajectory.png")
            else:
                from volrecon.correct.drift import plot_drift

                plot_drift(result.drift, tmp / "figures" / "drift_trajectory.png")
    record = {**run.read()["stages"]["correct"], "warnings": list(result.warnings)}
    if result.drift is not None:
        from collections import Counter

        record["registration"] = {
            "anchor_per_slice": dict(Counter(result.drift.anchor)),
            "expected_residual_rms_px": float(result.drift.expected_residual_rms_px),
            "method": result.drift.method,
        }
    run.update("stages", {"correct": record})
    release_memory()
    return StageResult(run.path, "correct", False, (IMAGE, "corrections"), result.to_dict())


def segment(
    out: str | Path,
    *,
    method: str = "auto",
    scribbles: str | Path | None = None,
    classifier: str | Path | None = None,
    progress: Progress | None = None,
) -> StageResult:
    """Segment ``OUT/image.ome.zarr`` into phases and layers (``labels/phases``, ``labels/regions``)."""
    from volrecon.io.omezarr import read_ome_zarr
    from volrecon.analyze._common import json_safe
    from volrecon.segment import read_scribbles, segment_volume, write_segmentation

    run, image_path = _run_and_image(out)
    params = {"method": method, "scribbles": str(scribbles or ""), "classifier": str(classifier or "")}
    labels_out = [f"{IMAGE}/labels/phases", f"{IMAGE}/labels/regions"]
    if run.stage_done("segment", params):
        return StageResult(run.path, "segment", True, tuple(labels_out), {})
    image = read_ome_zarr(image_path)
    scrib = None
    names = None
    if scribbles:
        scrib, names = read_scribbles(scribbles)
    with run.stage("segment", params, [SEGMENTATION_TABLE], in_place=labels_out) as tmp:
        result = segment_volume(
            image.data, voxel_size_nm=image.voxel_size_nm[0], method=method, classifier=classifier, scribbles=scrib,
            phase_names=names, frame="auto", scratch=tmp / "scratch", progress=progress,
        )
        write_segmentation(_phases_stored(result, tmp / "scratch"), image_path)
        summary = result.to_dict()
        (tmp / SEGMENTATION_TABLE).parent.mkdir()
        # strict JSON for other readers: a measurement that was not made (NaN) is null
        (tmp / SEGMENTATION_TABLE).write_text(json.dumps(json_safe(summary), indent=2, default=str, allow_nan=False))
        shutil.rmtree(tmp / "scratch", ignore_errors=True)
    run.update("stages", {"segment": {**run.read()["stages"]["segment"], "warnings": list(result.warnings)}})
    release_memory()
    return StageResult(run.path, "segment", False, tuple(labels_out), summary)


def _phases_stored(result: Any, scratch: Path) -> Any:
    """``result`` with its lazy phases computed into ``scratch`` one row of chunks along z at a
    time (:func:`volrecon.segment.api._materialise`): the label writer hands its input to
    ``da.store`` whole, and on the end of the segmentation's chain of overlapping steps (the void
    split, the cleanup) the scheduler then holds chunks of many rows at once.

    The heap that the segmentation's last steps freed (the void split's samples and grey values)
    is handed back first (:func:`volrecon._memory.release_memory`): glibc keeps it resident, and
    the rows' chunks fitted only partly in its holes (1024x1024 phantom, 256 slices: 1039 MB
    resident on entry, 1773 MB peak; handed back, 273 MB and 1714 MB).  The void split's labels
    are kept in scratch before the cleanup (:func:`volrecon.segment.api._regional_phases`): the
    rows here no longer split the row ahead for the cleanup's context, and hold the cleanup's own
    working set (same phantom: 272 MB on entry, 511 MB peak; 256 and 518 MB at 96 slices)."""
    import dask.array as da

    from volrecon.segment.api import Scratch, _materialise

    if not isinstance(result.phases, da.Array):
        return result
    release_memory()
    return replace(result, phases=_materialise(result.phases, Scratch(scratch), "phases_final"))


def analyze(out: str | Path, *, progress: Progress | None = None, **options: Any) -> StageResult:
    """Measure the segmented volume: ``metrics.json``, ``tables/``, ``figures/`` (see volrecon.analyze)."""
    from volrecon.analyze import analyze_volume, write_analysis
    from volrecon.io.omezarr import read_label_names, read_ome_zarr

    run, image_path = _run_and_image(out)
    phases_path = image_path / "labels" / "phases"
    regions_path = image_path / "labels" / "regions"
    if not phases_path.exists() or not regions_path.exists():
        from volrecon.errors import InputError

        raise InputError(f"{run.path}: no labels/phases and labels/regions; run `volrecon segment {run.path}` first")
    params = {k: v for k, v in options.items() if v is not None}
    if run.stage_done("analyze", params):
        return StageResult(run.path, "analyze", True, ("metrics.json",), {})
    phases = read_ome_zarr(phases_path)
    regions = read_ome_zarr(regions_path)
    phase_names = read_label_names(phases_path)
    # what the segmentation could not do qualifies the numbers: carry its warnings into metrics.json
    warnings = [f"segment: {w}" for w in run.read().get("stages", {}).get("segment", {}).get("warnings", [])]
    for needed in ("void", "electrolyte"):
        if needed not in phase_names:
            # the segmentation did not separate this phase: give it an unused value so the
            # analysis runs, and say plainly that its figures are zero by construction
            phase_names[needed] = max(phase_names.values(), default=0) + 1
            warnings.append(f"the segmentation has no {needed!r} phase: its fractions are 0 by construction, not measured")
    region_names = read_label_names(regions_path)
    with run.stage("analyze", params) as tmp:
        # the labels stay in the zarr store: the analysis reads them slab by slab and box by box
        labels, region_labels = phases.data, regions.data
        result = analyze_volume(
            labels, region_labels, voxel_size_nm=phases.voxel_size_nm[0],
            phase_names=phase_names, region_names=region_names, **params,
        )
        metrics, timings = _split_timings(result.to_dict())
        metrics.setdefault("calibration", {})["voxel_size_nm"] = dict(zip("zyx", phases.voxel_size_nm[0]))
        metrics["warnings"] = list(metrics.get("warnings", [])) + warnings
        write_analysis(result, tmp)
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2, allow_nan=False))
        (tmp / "tables" / "analysis_timings.json").write_text(json.dumps(timings, indent=2))
        if result.through_plane_axis is not None:
            from volrecon.analyze.subvolumes import subvolume_table

            rows = subvolume_table(
                labels, region_labels, through_plane_axis=result.through_plane_axis, phase_names=phase_names,
                region_names=region_names, sei_map=result.sei.thickness_map if result.sei is not None else None,
            )
            _write_rows(tmp / "tables" / "subvolumes.csv", rows)
    run.update("stages", {"analyze": {**run.read()["stages"]["analyze"], "warnings": warnings}})
    release_memory()
    return StageResult(run.path, "analyze", False, ("metrics.json",), metrics)


def _write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    import csv

    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else [])
        writer.writeheader()
        writer.writerows(rows)


def _split_timings(data: Any) -> tuple[Any, Any]:
    """Separate run times from results, so that ``metrics.json`` is reproducible byte for byte."""
    if not isinstance(data, dict):
        return data, None
    kept, times = {}, {}
    for key, value in data.items():
        if key in ("timings_s", "seconds"):
            times[key] = value
            continue
        sub, sub_times = _split_timings(value)
        kept[key] = sub
        if sub_times:
            times[key] = sub_times
    return kept, times


def export(out: str | Path, *, vtk: bool = True, smooth: int = 10, decimate: float = 0.5, level: int = 0) -> StageResult:
    """Write ``export/image.vti``, ``export/phases.vti`` and one ``export/<phase>.vtp`` per phase (nm)."""
    from volrecon.io.omezarr import read_label_names, read_ome_zarr
    from volrecon.io.vtk_export import write_phase_surfaces, write_vti

    run, image_path = _run_and_image(out)
    params = {"vtk": vtk, "smooth": smooth, "decimate": decimate, "level": level}
    image = read_ome_zarr(image_path)
    lvl = min(level, len(image.levels) - 1)
    with run.stage("export", params) as tmp:
        folder = tmp / "export"
        folder.mkdir()
        # the volumes stay in the zarr store: the writers read them slab by slab
        write_vti(image.levels[lvl], folder / "image.vti", voxel_size_nm=image.voxel_size_nm[lvl])
        surfaces = []
        phases_path = image_path / "labels" / "phases"
        if phases_path.exists():
            phases = read_ome_zarr(phases_path)
            plvl = min(lvl, len(phases.levels) - 1)
            labels = phases.levels[plvl]
            write_vti(labels, folder / "phases.vti", voxel_size_nm=phases.voxel_size_nm[plvl], name="phases")
            surfaces = write_phase_surfaces(
                labels, folder, phase_names=read_label_names(phases_path), voxel_size_nm=phases.voxel_size_nm[plvl],
                smooth_iterations=smooth, decimate=decimate,
            )
    return StageResult(run.path, "export", False, ("export",), {"surfaces": [s.to_dict() for s in surfaces]})


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
    if render_3d and phases_path.exists():
        outputs.append("figures/render3d.png")
    with run.stage("report", {"title": title or "", "render_3d": render_3d}, outputs) as tmp:
        (tmp / "figures").mkdir()
        if "figures/render3d.png" in outputs:
            from volrecon.report.render3d import render_phases

            labels = read_ome_zarr(phases_path)
            lvl = min(1, len(labels.levels) - 1)
            render_phases(labels.levels[lvl], tmp / "figures" / "render3d.png",
                          phase_names=read_label_names(phases_path), voxel_size_nm=labels.voxel_size_nm[lvl])
        (tmp / "report.html").write_text(render_report(run.path, title=title, new_figures=tmp / "figures"))
    release_memory()
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


RUN_STAGES: tuple[str, ...] = ("assemble", "correct", "segment", "analyze", "report")


@dataclass(frozen=True)
class RunResult:
    """What :func:`run` did, stage by stage."""

    out: Path
    stages: tuple[StageResult, ...]

    @property
    def report(self) -> Path:
        return self.out / "report.html"

    def to_dict(self) -> dict[str, Any]:
        return {"out": str(self.out), "stages": [s.to_dict() for s in self.stages]}


def config_from_toml(path: str | Path) -> dict[str, dict[str, Any]]:
    """Stage parameters from a ``run.toml`` (a previous run's, or written by hand).

    Returns ``{stage: params}`` for the stages of :data:`RUN_STAGES` found in ``[stages.<name>.params]``
    (or a plain ``[<name>]`` table).
    """
    import tomllib

    from volrecon.errors import InputError

    try:
        data = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"--config {path}: cannot read it as TOML ({exc})") from None
    out: dict[str, dict[str, Any]] = {}
    for name in RUN_STAGES:
        params = data.get("stages", {}).get(name, {}).get("params") or data.get(name)
        if params:
            out[name] = dict(params)
    return out


def run(
    source: str | Path,
    out: str | Path,
    *,
    config: str | Path | Mapping[str, Mapping[str, Any]] | None = None,
    from_stage: str | None = None,
    overwrite: bool = False,
    ingest: Mapping[str, Any] | None = None,
    progress_for: Callable[[str], Any] | None = None,
) -> RunResult:
    """Raw slices to answers: assemble → correct → segment → analyze → report, each resumable.

    Parameters
    ----------
    source : path-like
        Slice folder, multipage TIFF or glob.
    out : path-like
        Run folder.
    config : path or mapping, optional
        Stage parameters (``{stage: params}`` or a ``run.toml``); re-running with a run's own
        ``run.toml`` reproduces its ``metrics.json``.
    from_stage : str, optional
        Redo this stage and every later one even if complete.
    overwrite : bool
        Replace an earlier run of another source in ``out``.
    ingest : mapping, optional
        Calibration overrides and crop of :func:`volrecon.io.open_stack` (``pixel_size="5nm"`` …);
        they win over the same keys in ``config``.
    progress_for : callable, optional
        ``progress_for(stage)`` returns a ``progress(done, total)`` callback (or a context
        manager yielding one) for that stage.

    Returns
    -------
    RunResult
    """
    from contextlib import nullcontext

    from volrecon.errors import ParameterError

    cfg: dict[str, dict[str, Any]] = (
        config_from_toml(config) if isinstance(config, (str, Path)) else {k: dict(v) for k, v in (config or {}).items()}
    )
    if from_stage is not None and from_stage not in RUN_STAGES:
        raise ParameterError(f"--from {from_stage!r}: choose one of {', '.join(RUN_STAGES)}")
    assemble_params = {k: v for k, v in cfg.get("assemble", {}).items() if k not in ("source", "chunks")}
    assemble_params.update(ingest or {})
    if from_stage is not None and Path(out).joinpath("run.toml").exists():
        runfolder = RunFolder(out)
        data = runfolder.read()
        for name in RUN_STAGES[RUN_STAGES.index(from_stage):]:
            if name in data.get("stages", {}):
                data["stages"][name]["completed"] = False
        runfolder.write(data)

    def progress_ctx(stage: str) -> Any:
        if progress_for is None:
            return nullcontext(None)
        made = progress_for(stage)
        return made if hasattr(made, "__enter__") else nullcontext(made)

    results = []
    with progress_ctx("assemble") as p:
        results.append(assemble(source, out, overwrite=overwrite, progress=p, **open_options_from(assemble_params)))
    correct_cfg = cfg.get("correct", {})
    with progress_ctx("correct") as p:
        results.append(
            correct(
                out,
                steps=correct_cfg.get("steps", DEFAULT_CORRECTIONS),
                denoise=None if correct_cfg.get("denoise") in (None, "none", "") else correct_cfg["denoise"],
                options=correct_cfg.get("options") or None,
                progress=p,
            )
        )
    seg_cfg = cfg.get("segment", {})
    with progress_ctx("segment") as p:
        results.append(
            segment(out, method=seg_cfg.get("method", "auto"), scribbles=seg_cfg.get("scribbles") or None,
                    classifier=seg_cfg.get("classifier") or None, progress=p)
        )
    with progress_ctx("analyze") as p:
        results.append(analyze(out, progress=p, **cfg.get("analyze", {})))
    rep_cfg = cfg.get("report", {})
    results.append(report(out, title=rep_cfg.get("title") or None, render_3d=rep_cfg.get("render_3d", True)))
    return RunResult(Path(out), tuple(results))
