"""The ``volrecon`` command line: thin verbs over the library.

Every verb maps its options onto a library call; no logic lives here beyond formatting.
A :class:`~volrecon.errors.VolreconError` is printed as one line and exits with code 2.
"""

from __future__ import annotations

import functools
import inspect
import sys
import time
import typing
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from volrecon._memory import bound_heap
from volrecon.errors import VolreconError

app = typer.Typer(
    name="volrecon",
    help="FIB-SEM slice-and-view stacks to calibrated 3D volumes and electrode microstructure.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)
out_console = Console()

# ---------------------------------------------------------------- shared options
Scheduler = typer.Option(
    None, "--scheduler", help="Dask scheduler: threads (default, embedded), local (a LocalCluster) or tcp://host:port."
)

# Ingest options shared by every verb that opens raw slices (info, assemble, run): declared once,
# added to each verb's signature by ``with_ingest_options`` and handed over as one dict.
_INGEST_OPTIONS: tuple[tuple[str, Any, Any], ...] = (
    ("pixel_size", Optional[str], typer.Option(None, "--pixel-size", help="Image pixel size, e.g. 5nm (overrides metadata).")),
    ("pixel_size_y", Optional[str], typer.Option(None, "--pixel-size-y", help="Pixel height if it differs from the width, e.g. 6nm.")),
    ("slice_thickness", Optional[str], typer.Option(None, "--slice-thickness", help="Milling step, e.g. 20nm or 0.02um.")),
    ("tilt", Optional[str], typer.Option(None, "--tilt", help="FIB–SEM angle for foreshortening, e.g. 52deg.")),
    ("tilt_corrected", Optional[bool], typer.Option(
        None, "--tilt-corrected/--no-tilt-correction", help="Whether the instrument already corrected y for the tilt.")),
    ("crop", Optional[str], typer.Option(None, "--crop", help="Keep only y0:y1,x0:x1 (raw-image pixels).")),
    ("databar", str, typer.Option("auto", "--databar", help="Data-bar rows to remove: auto, none or a number.")),
    ("grey", bool, typer.Option(False, "--grey", help="Convert RGB slices to grey instead of refusing them.")),
)


def with_ingest_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Give a verb the ingest options; it receives them as ``ingest={name: value}`` (unset ones left out)."""
    signature = inspect.signature(func)
    extra = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=kind)
             for name, kind, default in _INGEST_OPTIONS]
    params = [p for p in signature.parameters.values() if p.name != "ingest"] + extra

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ingest = {name: kwargs.pop(name) for name, _, _ in _INGEST_OPTIONS}
        ingest = {k: v for k, v in ingest.items() if v is not None and v is not False}
        return func(*args, ingest=ingest, **kwargs)

    hints = {p.name: p.annotation for p in params}
    wrapper.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {**typing.get_type_hints(func), **hints}
    del wrapper.__wrapped__  # typer must read the new signature, not the wrapped one
    return wrapper


@contextmanager
def progress_bar(description: str, *, unit: str = "slices") -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar as a ``progress(done, total)`` callback, with a rate in ``unit``/s.

    The bar appears on the first update, so a command that fails before doing work prints
    only its one-line error.
    """
    start = time.perf_counter()
    state: dict[str, Any] = {}

    def update(done: int, total: int) -> None:
        if "bar" not in state:
            bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=console,
            )
            bar.start()
            state["bar"] = bar
            state["task"] = bar.add_task(description, total=total, rate="")
        elapsed = max(time.perf_counter() - start, 1e-9)
        state["bar"].update(state["task"], completed=done, total=total, rate=f"{done / elapsed:.1f} {unit}/s")

    try:
        yield update
    finally:
        if "bar" in state:
            state["bar"].stop()


def _calibration_table(cal: dict[str, Any]) -> Table:
    table = Table(title="calibration", show_header=True)
    table.add_column("quantity")
    table.add_column("value")
    table.add_column("source")
    for key, label, unit in (
        ("pixel_size_x_nm", "pixel size x", "nm"),
        ("pixel_size_y_nm", "pixel size y (image)", "nm"),
        ("slice_thickness_nm", "slice thickness", "nm"),
        ("tilt_deg", "FIB–SEM angle", "deg"),
    ):
        v = cal[key]
        value = "missing" if v.get("value") is None else f"{v['value']:.6g} {unit}"
        table.add_row(label, value, v.get("source", ""))
    table.add_row(
        "tilt correction",
        "by instrument" if cal["tilt_corrected_by_instrument"] else f"by volrecon (y × {cal['foreshortening_factor']:.4f})",
        cal["tilt_corrected_source"],
    )
    if "voxel_size_nm" in cal:
        vs = cal["voxel_size_nm"]
        table.add_row("voxel size (z, y, x)", f"{vs['z']:.4g}, {vs['y']:.4g}, {vs['x']:.4g} nm", "physical, after foreshortening")
    return table


# ---------------------------------------------------------------- verbs
@app.command()
@with_ingest_options
def info(
    source: str = typer.Argument(..., help="Slice folder, multipage TIFF or glob."),
    ingest: dict[str, Any] | None = None,
) -> None:
    """Describe a stack: slices, shape, dtype, voxel size with sources, tilt handling, gaps, metadata."""
    from volrecon.pipeline import load_stack

    stack = load_stack(source, **(ingest or {}))
    summary = stack.to_dict()
    table = Table(title=f"volrecon info: {source}", show_header=False)
    table.add_column("item", style="bold")
    table.add_column("value")
    z, y, x = stack.shape
    table.add_row("slices", str(z))
    table.add_row("shape (z, y, x)", f"{z} × {y} × {x}")
    table.add_row("dtype", str(stack.data.dtype))
    table.add_row("files", f"{stack.slices[0].path.name} … {stack.slices[-1].path.name}")
    table.add_row("crop (y0, y1, x0, x1)", ", ".join(str(c) for c in stack.crop))
    table.add_row("data bar", f"{stack.databar_rows} rows removed" if stack.databar_rows else "none")
    table.add_row("gaps", "none" if not stack.gaps else f"{len(stack.gaps)} missing: {', '.join(map(str, stack.gaps[:10]))}")
    meta = summary["metadata"]
    table.add_row("metadata", f"{meta['vendor']}: {meta['text'].get('instrument', '')}".strip(": "))
    if meta["text"].get("detector"):
        table.add_row("detector", meta["text"]["detector"])
    for key, label in (("beam_energy_kv", "beam energy (kV)"), ("dwell_time_ns", "dwell time (ns)"), ("stage_tilt_deg", "stage tilt (deg)")):
        if key in meta["values"]:
            table.add_row(label, f"{meta['values'][key]['value']:.4g}")
    if meta["text"].get("timestamp"):
        table.add_row("acquired", meta["text"]["timestamp"])
    out_console.print(table)
    out_console.print(_calibration_table(summary["calibration"]))
    for w in stack.warnings:
        out_console.print(f"[yellow]warning:[/yellow] {w}")


@app.command()
@with_ingest_options
def assemble(
    source: str = typer.Argument(..., help="Slice folder, multipage TIFF or glob."),
    out: Path = typer.Option(..., "-o", "--out", help="Run folder to write (OUT/image.ome.zarr, OUT/run.toml)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an earlier run in OUT."),
    scheduler: Optional[str] = Scheduler,
    ingest: dict[str, Any] | None = None,
) -> None:
    """Write the stack as a calibrated, chunked OME-Zarr volume (streamed, resumable)."""
    from volrecon.cluster import scheduler as use_scheduler
    from volrecon.pipeline import assemble as run_assemble

    with use_scheduler(scheduler), progress_bar("assemble") as progress:
        result = run_assemble(source, out, overwrite=overwrite, progress=progress, **(ingest or {}))
    verb = "already complete (resumed, nothing to do)" if result.skipped else "written"
    out_console.print(f"{result.out / 'image.ome.zarr'}: {verb}")
    for w in result.details.get("warnings", []):
        out_console.print(f"[yellow]warning:[/yellow] {w}")


@app.command()
def sample(
    preset: str = typer.Argument(..., help="Electrolyte preset: diglyme or carbonate."),
    out: Path = typer.Option(..., "-o", "--out", help="Folder to write the slices and truth/ into."),
    slices: int = typer.Option(64, "--slices", help="Number of slices."),
    shape: str = typer.Option("512x512", "--shape", help="Slice size HxW in pixels, e.g. 512x512."),
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same stack)."),
    frame: bool = typer.Option(True, "--frame/--no-frame", help="Show the milled face's frame (cap and trench walls)."),
    artefacts: str = typer.Option("all", "--artefacts", help="all, none, or a comma list such as drift,noise."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing sample folder."),
) -> None:
    """Generate a synthetic slice-and-view stack with ground truth."""
    from volrecon.errors import ParameterError
    from volrecon.sample import generate

    try:
        h, w = (int(v) for v in shape.lower().split("x"))
    except ValueError:
        raise ParameterError(f"--shape {shape!r}: write it as HxW in pixels, e.g. 512x512") from None
    with progress_bar(f"sample {preset}") as progress:
        generate(preset, out, slices=slices, shape=(h, w), seed=seed, frame=frame, artefacts=artefacts, overwrite=overwrite, progress=progress)
    out_console.print(f"{out}: {slices} slices of {preset} written with ground truth in {out / 'truth'}")


RunDir = typer.Argument(..., help="Run folder (made by `volrecon assemble` or `volrecon run`).")


def _done(result: Any, what: str) -> None:
    state = "already complete (resumed, nothing to do)" if result.skipped else "done"
    out_console.print(f"{what}: {state} in {result.out}")


@app.command()
def correct(
    out: Path = RunDir,
    steps: Optional[str] = typer.Option(
        None, "--steps", help="Corrections to apply, in a comma list (default: all of drift,shading,brightness,curtains; destriping acts only where stripes are significant)."
    ),
    denoise: Optional[str] = typer.Option(None, "--denoise", help="gaussian, median, bilateral or nl_means (none by default)."),
    scheduler: Optional[str] = Scheduler,
) -> None:
    """Register the slices and remove shading, brightness drift and curtains; rewrite the volume."""
    from volrecon.cluster import scheduler as use_scheduler
    from volrecon.pipeline import correct as run_correct

    with use_scheduler(scheduler), progress_bar("correct") as progress:
        chosen = {} if steps is None else {"steps": [s.strip() for s in steps.split(",") if s.strip()]}
        result = run_correct(out, denoise=denoise, progress=progress, **chosen)
    _done(result, "correct")


@app.command()
def segment(
    out: Path = RunDir,
    method: str = typer.Option("auto", "--method", help="auto (per-layer thresholds), otsu (plain baseline) or classifier."),
    scribbles: Optional[Path] = typer.Option(None, "--scribbles", help="Scribble labels (NGFF labels, .npy/.tif + .json names)."),
    classifier: Optional[Path] = typer.Option(None, "--classifier", help="A classifier file made by `volrecon train`."),
    scheduler: Optional[str] = Scheduler,
) -> None:
    """Segment the volume into named phases and the cell's layers (NGFF labels)."""
    from volrecon.cluster import scheduler as use_scheduler
    from volrecon.pipeline import segment as run_segment

    with use_scheduler(scheduler), progress_bar("segment", unit="chunks") as progress:
        result = run_segment(out, method=method, scribbles=scribbles, classifier=classifier, progress=progress)
    _done(result, "segment")


@app.command()
def train(
    out: Path = RunDir,
    scribbles: Path = typer.Option(..., "--scribbles", help="Scribble labels on the image grid (NGFF labels, .npy/.tif + .json)."),
    model: Path = typer.Option(..., "-m", "--model", help="Classifier file to write."),
) -> None:
    """Train a pixel classifier from scribbles on the run's volume and save it."""
    from volrecon.io.omezarr import read_ome_zarr
    from volrecon.segment import read_scribbles, train_classifier

    image = read_ome_zarr(Path(out) / "image.ome.zarr")
    labels, names = read_scribbles(scribbles)
    clf = train_classifier(image.data, labels, voxel_size_nm=image.voxel_size_nm[0], phase_names=names)
    out_console.print(f"{clf.save(model)}: classifier saved")


@app.command()
def analyze(
    out: Path = RunDir,
    connectivity: int = typer.Option(6, "--connectivity", help="Void-cluster connectivity: 6, 18 or 26."),
) -> None:
    """Fractions, profiles, connectivity, tortuosity, pore sizes and SEI thickness → metrics.json."""
    from volrecon.pipeline import analyze as run_analyze

    result = run_analyze(out, connectivity=connectivity)
    _done(result, "analyze")
    out_console.print(f"metrics: {Path(out) / 'metrics.json'}")


@app.command()
def report(out: Path = RunDir, title: Optional[str] = typer.Option(None, "--title")) -> None:
    """Write the self-contained report.html of a run."""
    from volrecon.pipeline import report as run_report

    result = run_report(out, title=title)
    out_console.print(f"report: {result.details['report']}")


@app.command()
def export(
    out: Path = RunDir,
    vtk: bool = typer.Option(True, "--vtk/--no-vtk", help="Write VTK files (.vti volumes, .vtp phase surfaces)."),
    smooth: int = typer.Option(10, "--smooth", help="Surface smoothing iterations (0 keeps voxel steps)."),
    decimate: float = typer.Option(0.5, "--decimate", help="Fraction of surface triangles to remove (0–0.95)."),
) -> None:
    """Export the volume and phase surfaces for ParaView (physical units, nm)."""
    from volrecon.pipeline import export as run_export

    run_export(out, vtk=vtk, smooth=smooth, decimate=decimate)
    out_console.print(f"exported to {Path(out) / 'export'}")


@app.command()
@with_ingest_options
def run(
    source: str = typer.Argument(..., help="Slice folder, multipage TIFF or glob."),
    out: Path = typer.Option(..., "-o", "--out", help="Run folder."),
    config: Optional[Path] = typer.Option(None, "--config", help="run.toml with stage parameters (e.g. a previous run's)."),
    from_stage: Optional[str] = typer.Option(None, "--from", help="Redo this stage and the later ones."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an earlier run in OUT."),
    scheduler: Optional[str] = Scheduler,
    ingest: dict[str, Any] | None = None,
) -> None:
    """Raw slices to answers: assemble, correct, segment, analyze, report (each resumable)."""
    from volrecon.cluster import scheduler as use_scheduler
    from volrecon.pipeline import run as run_pipeline

    start = time.perf_counter()
    with use_scheduler(scheduler):
        result = run_pipeline(source, out, config=config, from_stage=from_stage, overwrite=overwrite, ingest=ingest,
                              progress_for=lambda stage: progress_bar(stage, unit="chunks" if stage == "segment" else "slices"))
    for stage in result.stages:
        out_console.print(f"  {stage.stage:<9} {'resumed' if stage.skipped else 'done'}")
    out_console.print(f"finished in {time.perf_counter() - start:.0f} s — report: {result.report}")


@app.command()
def compare(
    group: list[str] = typer.Option(..., "--group", help="NAME=OUT1,OUT2 (repeat for each group)."),
    out: Path = typer.Option(..., "-o", "--out", help="Folder for the comparison table, figures and page."),
    metric: Optional[list[str]] = typer.Option(None, "--metric", help="metrics.json key to compare (repeatable)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an earlier comparison in OUT."),
) -> None:
    """Compare runs across groups with bootstrap uncertainty (table, figures, compare.html)."""
    from volrecon.errors import ParameterError
    from volrecon.report.compare import DEFAULT_METRICS, compare_runs, write_comparison

    groups: dict[str, list[str]] = {}
    for item in group:
        name, sep, runs = item.partition("=")
        if not sep or not name or not runs:
            raise ParameterError(f"--group {item!r}: write it as NAME=OUT1,OUT2")
        groups[name] = [r for r in runs.split(",") if r]
    result = compare_runs(groups, metrics=metric or DEFAULT_METRICS)
    page = write_comparison(result, out, overwrite=overwrite)
    for d in result.differences:
        if d.testable:
            mark = "significant" if d.significant else "not significant"
            interval = rf"\[{d.ci_low:.4g}, {d.ci_high:.4g}] "
        else:
            mark, interval = "one value per group: no interval", ""
        out_console.print(f"{d.metric}: {d.group_b} − {d.group_a} = {d.difference:.4g} {interval}({mark})")
    out_console.print(f"comparison: {page}")


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning user-fixable errors into one line and exit code 2.

    glibc's malloc arenas are limited first (:func:`volrecon._memory.bound_heap`), before any
    thread (the progress bars', dask's workers) allocates: what a worker frees is then reused by
    the other threads instead of staying in an arena of its own."""
    bound_heap()
    try:
        app(args=argv, standalone_mode=False)
    except VolreconError as exc:
        console.print(f"[red]volrecon: error:[/red] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        console.print("volrecon: aborted")
        sys.exit(130)
    except Exception as exc:  # click usage errors carry their own exit code
        if isinstance(exc, _usage_error_types()):
            exc.show()
            sys.exit(exc.exit_code)
        raise


def _usage_error_types() -> tuple[type[Exception], ...]:
    """Click's usage-error class, and typer's vendored copy of it (typer >= 0.20 ships its own click)."""
    import importlib

    found = []
    for module in ("click.exceptions", "typer._click.exceptions"):
        try:
            found.append(importlib.import_module(module).ClickException)
        except (ImportError, AttributeError):
            continue
    return tuple(found)


if __name__ == "__main__":
    main()
