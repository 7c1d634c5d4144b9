"""End-to-end benchmark: raw phantom slices -> ``volrecon run`` -> metrics vs truth.

Two measurements:
- throughput and memory: ``volrecon run`` on phantom stacks of several slice counts at one
  slice size, each in a fresh process (slices/s over the whole run, peak RSS);
- accuracy: every number of ``metrics.json`` for both presets against the same analysis of the
  phantom's true labels (cut to the box the drift-corrected run shows) and, where
  ``truth.json`` has the key, the generator's own figure; grouped by family with relative errors.

Run: ``python benchmarks/pipeline.py --shape 1536x2048 --slices 100 400`` (heavy) or the defaults
(small, minutes).  Results: ``benchmarks/results/pipeline.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from _common import WORK, machine, median_of, run_child, save

RUN = """
from volrecon.pipeline import run
t = time.perf_counter()
run({src!r}, {out!r})
_res = {{'wall_s': time.perf_counter() - t}}
"""

STAGES = ("assemble", "correct", "segment", "analyze", "report", "export")

STAGED = """
import os, threading
from volrecon import pipeline
from volrecon._memory import bound_heap

bound_heap()  # as `volrecon run` does first thing (volrecon.cli.main)

_page = os.sysconf('SC_PAGE_SIZE')

def _rss(pid='self'):
    try:
        with open(f'/proc/{{pid}}/statm') as f:
            return int(f.read().split()[1]) * _page / 2**20
    except OSError:  # gone meanwhile
        return 0.0

def _descendants(pid):
    out = []
    try:
        tasks = os.listdir(f'/proc/{{pid}}/task')
    except OSError:
        return out
    for tid in tasks:
        try:
            with open(f'/proc/{{pid}}/task/{{tid}}/children') as f:
                kids = [int(k) for k in f.read().split()]
        except OSError:
            continue
        for k in kids:
            out += [k] + _descendants(k)
    return out

def _tree_rss():  # this process and its children (the pore sizes' spawned process) together
    return _rss() + sum(_rss(k) for k in _descendants(os.getpid()))

def _child_cpu():  # the analysis runs its pore sizes in a spawned process
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime

class _Peak:
    def __init__(self):
        self.peak, self.tree, self._stop = _rss(), _tree_rss(), threading.Event()
        self._t = threading.Thread(target=self._poll, daemon=True)
        self._t.start()
    def _poll(self):
        n = 0
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, _rss())
            n += 1
            if n % 5 == 0:  # the process tree every 0.1 s (reading /proc of every thread costs)
                self.tree = max(self.tree, _tree_rss())
    def stop(self):
        self._stop.set(); self._t.join()
        return max(self.peak, _rss()), max(self.tree, self.peak)

calls = {{
    'assemble': lambda: pipeline.assemble({src!r}, {out!r}),
    'correct': lambda: pipeline.correct({out!r}),
    'segment': lambda: pipeline.segment({out!r}),
    'analyze': lambda: pipeline.analyze({out!r}),
    'report': lambda: pipeline.report({out!r}),
    'export': lambda: pipeline.export({out!r}),
}}
_res = {{'start_rss_mb': _rss(), 'stages': {{}}}}
t0 = time.perf_counter()
for name in {stages!r}:
    rss0, peak = _rss(), _Peak()
    w, c = time.perf_counter(), time.process_time() + _child_cpu()
    calls[name]()
    wall, cpu = time.perf_counter() - w, time.process_time() + _child_cpu() - c
    top, tree = peak.stop()
    _res['stages'][name] = {{'wall_s': wall, 'cpu_s': cpu, 'rss_before_mb': rss0, 'peak_rss_mb': top, 'tree_peak_rss_mb': tree}}
_res['wall_s'] = time.perf_counter() - t0
"""

NOT_MEASURED = frozenset({
    "units", "definition", "definitions", "calibration", "voxel_size_nm", "shape", "axis", "connectivity",
    "iterations", "relative_residual", "converged", "levels", "flux_imbalance", "reason", "timings_s", "seconds",
    "samples", "excluded_lines", "gap_lines", "film_lines", "sei_thickness_samples", "target_side_nm", "rev_chords", "max_voxels", "capped",
    "by_max_voxels", "reached", "fraction_of_specimen", "min_volume_nm3",
})
"""Parts of metrics.json keys that are not measurements (units, definitions, the geometry and voxel
sizes of what was measured, solver diagnostics, parameters of the analysis, counts of samples
taken): a key with any of them is not compared."""


def _repeats(parts: tuple[str, ...]) -> bool:
    """Whether the leaf at ``parts`` repeats another leaf: the 1/nm twins of the 1/m surface
    areas, the areas and box volumes behind them, the tortuosity factors that
    ``tortuosity_factor.<phase>.<axis>`` already holds."""
    last = parts[-1]
    return (last.endswith("_per_nm") or last.startswith("area_") or last == "volume_nm3"
            or (last == "tortuosity_factor" and "tortuosity" in parts[:-1]))


FAMILIES = (
    ("fractions", ()),
    ("pore network", ("void_clusters", "pore_connectivity")),
    ("transport", ("tortuosity", "tortuosity_factor", "degradation_penalty_macmullin_ratio")),
    ("sizes and surfaces", ("pore_size", "specific_surface_area", "chord_length_nm")),
    ("SEI", ("sei_thickness_nm", "sei_coverage")),
)
"""Families of the metrics, in the page's order, with the key parts that mark each."""


def family(key: str) -> str:
    """Family of the flattened metrics.json ``key``: the last of :data:`FAMILIES` whose marks
    are among its parts (SEI before sizes before transport ...), fractions when none is."""
    parts = set(key.split("."))
    return next((name for name, marks in reversed(FAMILIES) if parts & set(marks)), FAMILIES[0][0])


def flatten(data: Any) -> dict[str, float | bool | None]:
    """The measured numbers of a metrics.json tree, keyed by their dotted path
    (:func:`volrecon.report.html.flatten_metrics`, as the report lists them).

    Numbers, booleans and nulls (a measurement that gave no number: a tortuosity factor of a
    phase that does not percolate) are kept, strings and lists are not, nor leaves under a
    :data:`NOT_MEASURED` part or leaves that repeat another (:func:`_repeats`).
    """
    from volrecon.report.html import flatten_metrics

    out: dict[str, float | bool | None] = {}
    for key, value in flatten_metrics(data):
        parts = tuple(key.split("."))
        if (value is None or isinstance(value, (bool, int, float))) and not NOT_MEASURED.intersection(parts) \
                and not _repeats(parts):
            out[key] = value
    return out


def relative_error(measured: float | bool | None, truth: float | bool | None) -> float | None:
    """``(measured - truth) / |truth|``; None for booleans, nulls and a truth of 0."""
    if measured is None or truth is None or isinstance(measured, bool) or isinstance(truth, bool) or truth == 0:
        return None
    return (measured - truth) / abs(truth)


def compare(preset: str, measured: dict[str, Any], truth: dict[str, Any], generator: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per metric that the run's and the truth's metrics.json both hold, a number on at
    least one side (a null on the other: e.g. a phase that percolates in one only).

    Parameters
    ----------
    preset : str
        Phantom preset (recorded in the rows).
    measured, truth : dict
        metrics.json of the run and the analysis of the true labels.
    generator : dict
        The phantom's truth.json (the generator's own figures; ``truth_generator`` where it has
        the key, else None).
    """
    m, t, g = flatten(measured), flatten(truth), flatten(generator)
    return [
        {"preset": preset, "family": family(key), "metric": key, "measured": m[key], "truth_analysis": t[key],
         "truth_generator": g.get(key), "rel_error": relative_error(m[key], t[key])}
        for key in m if key in t and (m[key] is not None or t[key] is not None)
    ]


def truth_box(out: Path, true_drift: np.ndarray, truth_shape: tuple[int, ...]) -> tuple[tuple[slice, ...], dict[str, Any]]:
    """The box of the phantom's true labels that the run's corrected volume shows.

    The ingest crop (``run.toml`` ``stack.crop``) and the drift correction's output geometry
    (:func:`volrecon.correct.drift.output_geometry` of ``corrections/drift.csv``) place output
    pixel ``i`` at input pixel ``i - origin - shift[z]``, and the phantom's acquired slice at
    ``true - true_drift[z]``: the box starts at ``-origin - c`` with ``c`` the median over the
    slices of ``shift - true_drift`` (rounded; constant where the registration is exact, its
    spread is the registration error).

    Parameters
    ----------
    out : Path
        The run folder.
    true_drift : ndarray, shape (Z, 2)
        The phantom's drift (``truth/drift.csv``: the shift that registers each acquired slice).
    truth_shape : tuple of int
        Shape (Z, Y, X) of the true labels.

    Returns
    -------
    tuple
        The slices (z, y, x) into the true labels and a record (offset, registration residual,
        whether the box had to be clipped to the phantom).
    """
    import tomllib

    from volrecon.correct.drift import DriftTable, output_geometry
    from volrecon.io.omezarr import read_ome_zarr

    record = tomllib.loads((out / "run.toml").read_text())
    y0, y1, x0, x1 = record["stack"]["crop"]
    shape = tuple(read_ome_zarr(out / "image.ome.zarr").data.shape)
    drift_csv = out / "corrections" / "drift.csv"
    note: dict[str, Any] = {"ingest_crop": [y0, y1, x0, x1], "run_shape": list(shape)}
    start = np.array([y0, x0], dtype=float)
    if drift_csv.is_file():
        table = DriftTable.from_csv(drift_csv)
        options = record["stages"]["correct"]["params"].get("options", {}).get("apply_drift", {})
        geom = output_geometry(table, (y1 - y0, x1 - x0), options.get("mode", "crop"))
        error = table.shifts - true_drift
        c = np.round(np.median(error, axis=0)) + 0.0  # + 0.0: no -0.0 in the record
        start += -np.asarray(geom["origin"], dtype=float) - c
        note.update(drift_mode=geom["mode"], offset_px=[float(v) for v in c],
                    registration_residual_rms_px=float(np.sqrt(np.mean((error - np.median(error, axis=0)) ** 2))))
    lo = [int(v) for v in start]
    box = [(0, shape[0])] + [(max(0, a), min(n, a + s)) for a, s, n in zip(lo, shape[1:], truth_shape[1:])]
    note["truth_box"] = [list(b) for b in box]
    note["clipped"] = [b[1] - b[0] for b in box] != list(shape)
    return tuple(slice(a, b) for a, b in box), note


def analyse_truth(src: Path, out: Path, measured: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """metrics.json of the phantom's true labels in the run's box, as the run's analyze stage measures.

    The phantom's true voxel size (``truth.json``), so an error of the run's calibration shows in
    the metrics it scales (the run's own is recorded beside it in the note), the same analyze
    options (``run.toml``), the default
    vocabulary (the true labels mark the frame as the run's do: phase and region ``frame``,
    excluded from every metric).  Also returns the box record of :func:`truth_box` with the share
    of voxels whose phase the run got right in that box, the specimen voxels the box leaves out
    and the tortuosity box each analysis chose.
    """
    import tomllib

    from volrecon.analyze import analyze_volume
    from volrecon.io.omezarr import read_ome_zarr
    from volrecon.sample import load_truth

    true = load_truth(src, lazy=True)
    box, note = truth_box(out, true["drift"], tuple(true["labels"].shape))
    labels, regions = (np.asarray(true[k][box]) for k in ("labels", "regions"))
    run_labels = np.asarray(read_ome_zarr(out / "image.ome.zarr" / "labels" / "phases").data)
    if run_labels.shape == labels.shape:
        note["voxels_same_phase"] = float(np.mean(run_labels == labels))
    params = tomllib.loads((out / "run.toml").read_text())["stages"]["analyze"].get("params", {})
    voxel = true["truth"]["calibration"]["voxel_size_nm"]
    note["voxel_size_nm"] = {"truth": voxel, "run": measured["calibration"]["voxel_size_nm"]}
    truth = analyze_volume(labels, regions, voxel_size_nm=tuple(voxel[a] for a in "zyx"), **params).to_dict()
    kept = sum(r.get("voxels", 0) for r in truth["regions"].values())
    note["specimen_voxels_cut"] = int(true["truth"]["voxels"]["specimen"] - kept)
    note["tortuosity_box"] = {k: m["regions"]["cathode"].get("tortuosity_box") for k, m in (("run", measured), ("truth", truth))}
    return truth, note


def make_phantom(preset: str, slices: int, shape: tuple[int, int], seed: int) -> Path:
    from volrecon.sample import generate

    folder = WORK / f"pipeline_{preset}_{slices}_{shape[0]}x{shape[1]}_{seed}"
    if not (folder / "truth" / "truth.json").exists():
        shutil.rmtree(folder, ignore_errors=True)
        generate(preset, folder, slices=slices, shape=shape, seed=seed, frame=True, name_with_z=True, write_clean=False)
    return folder


RUN_STAGES = STAGES[:-1]  # what ``volrecon run`` does; export is timed on its own


def measure(src: Path, out: Path, repeats: int, stages: tuple[str, ...] = STAGES) -> dict[str, Any]:
    """Run ``stages`` in one fresh process per repeat; median wall, CPU and peak RSS per stage."""
    runs = []
    for _ in range(repeats):
        shutil.rmtree(out, ignore_errors=True)
        runs.append(run_child(STAGED.format(src=str(src), out=str(out), stages=stages), timeout=4 * 3600))
    stages = {
        name: {key: median_of([r["stages"][name] for r in runs], key)
               for key in ("wall_s", "cpu_s", "rss_before_mb", "peak_rss_mb", "tree_peak_rss_mb")}
        for name in stages
    }
    wall = median_of([{"w": sum(r["stages"][n]["wall_s"] for n in RUN_STAGES)} for r in runs], "w")
    cpu = median_of([{"c": sum(r["stages"][n]["cpu_s"] for n in RUN_STAGES)} for r in runs], "c")
    peak = median_of([{"p": max(r["stages"][n]["peak_rss_mb"] for n in RUN_STAGES)} for r in runs], "p")
    tree = median_of([{"p": max(r["stages"][n]["tree_peak_rss_mb"] for n in RUN_STAGES)} for r in runs], "p")
    return {"wall_s": wall, "cpu_s": cpu, "peak_rss_mb": peak, "tree_peak_rss_mb": tree, "start_rss_mb": median_of(runs, "start_rss_mb"),
            "stages": stages}


def _speed_lines(speed: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| slices | slice shape | wall (s) | CPU (s) | slices/s | slices per CPU-s | peak RSS (MB) | with child processes (MB) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {s['slices']} | {s['shape'][0]}×{s['shape'][1]} | {s['wall_s']:.1f} | {s['cpu_s']:.1f} | {s['slices_per_s']:.2f} "
        f"| {s['slices'] / s['cpu_s']:.2f} | {s['peak_rss_mb']:.0f} | {s['tree_peak_rss_mb']:.0f} |"
        for s in speed
    ]
    pairs = list(zip(speed[:-1], speed[1:])) + ([(speed[0], speed[-1])] if len(speed) > 2 else [])
    for a, b in pairs:
        voxels = (b["slices"] - a["slices"]) * b["shape"][0] * b["shape"][1]
        slope = (b["peak_rss_mb"] - a["peak_rss_mb"]) * 2**20 / voxels
        ratio = b["peak_rss_mb"] / a["peak_rss_mb"] - 1
        lines += ["", f"Peak RSS growth {a['slices']} → {b['slices']} slices: {100 * ratio:+.1f} %, {slope:.2f} bytes per added voxel "
                  "(0 = independent of the slice count)."]
    lines += ["", "Per stage (wall s / CPU s incl. child processes / peak RSS MB of the main process (+ the stage's own growth: "
              "peak minus RSS on entry); stages run in order in one process, so a stage's RSS includes what earlier ones left allocated):", ""]
    first, last = speed[0], speed[-1]
    added = (last["slices"] - first["slices"]) * last["shape"][0] * last["shape"][1]
    growth = len(speed) > 1 and added > 0
    lines += ["| stage | " + " | ".join(f"{s['slices']} slices" for s in speed) + (" | peak growth (B/added voxel) |" if growth else " |"),
              "|---|" + "---:|" * (len(speed) + growth)]
    for name in [n for n in STAGES if n in last["stages"]]:
        cells = [f"{st['wall_s']:.1f} / {st['cpu_s']:.1f} / {st['peak_rss_mb']:.0f} (+{st['peak_rss_mb'] - st['rss_before_mb']:.0f})"
                 for st in (s["stages"][name] for s in speed)]
        if growth:
            delta = last["stages"][name]["peak_rss_mb"] - first["stages"][name]["peak_rss_mb"]
            cells.append(f"{delta * 2**20 / added:.2f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "Slices per second per stage, wall (per CPU-s): "
              + "; ".join(f"{s['slices']} slices " + ", ".join(f"{n} {s['slices'] / st['wall_s']:.2f} ({s['slices'] / max(st['cpu_s'], 1e-9):.2f})"
                                                            for n, st in s["stages"].items())
                          for s in speed) + "."]
    lines += ["", "Peak RSS of the main process with its children (the analysis's pore sizes run in a spawned process; "
              "sampled every 0.1 s, summed), per stage: "
              + "; ".join(f"{s['slices']} slices " + ", ".join(f"{n} {st['tree_peak_rss_mb']:.0f}" for n, st in s["stages"].items())
                          for s in speed) + " MB."]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", default="512x512")
    parser.add_argument("--slices", type=int, nargs="+", default=[32, 96])
    parser.add_argument("--accuracy-slices", type=int, default=48, help="0 skips the accuracy table")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--no-export", dest="export", action="store_false", help="skip the export stage (not part of volrecon run)")
    parser.add_argument("--name", default="pipeline", help="result file name under benchmarks/results/")
    args = parser.parse_args()
    shape = tuple(int(v) for v in args.shape.lower().split("x"))

    speed: list[dict[str, Any]] = []
    accuracy: list[dict[str, Any]] = []
    boxes: dict[str, dict[str, Any]] = {}
    for n in args.slices:
        src = make_phantom("diglyme", n, shape, seed=0)  # type: ignore[arg-type]
        m = measure(src, WORK / f"{args.name}_out_{n}", args.repeats, STAGES if args.export else RUN_STAGES)
        speed.append({"slices": n, "shape": list(shape), "slices_per_s": n / m["wall_s"], **m})
        _write(args, shape, speed, accuracy, boxes)  # what is measured so far survives an interruption

    for preset in ("diglyme", "carbonate") if args.accuracy_slices else ():
        src = make_phantom(preset, args.accuracy_slices, shape, seed=1)  # type: ignore[arg-type]
        out = WORK / f"pipeline_acc_{preset}"
        shutil.rmtree(out, ignore_errors=True)
        run_child(RUN.format(src=str(src), out=str(out)))
        metrics = json.loads((out / "metrics.json").read_text())
        truth, boxes[preset] = analyse_truth(src, out, metrics)
        accuracy += compare(preset, metrics, truth, json.loads((src / "truth" / "truth.json").read_text()))
    _write(args, shape, speed, accuracy, boxes)


def _fmt(value: float | bool | None) -> str:
    """A table cell: 4 significant digits, — for null."""
    if value is None:
        return "—"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _error_cell(row: dict[str, Any]) -> str:
    """Relative error in %, the absolute difference where the truth is 0, = / ≠ for booleans,
    or a flag where one side is null."""
    m, t = row["measured"], row["truth_analysis"]
    if m is None or t is None:
        return "**null on one side**"
    if isinstance(m, bool) or isinstance(t, bool):
        return "=" if m == t else "**≠**"
    if row["rel_error"] is None:
        return "=" if m == t else f"abs {m - t:+.3g}"
    err = 100 * row["rel_error"]
    return f"**{err:+.1f} %**" if abs(err) > 20 else f"{err:+.1f} %"


BANDS = (0.05, 0.20)
"""Bounds of the headline's bands of |relative error| (within 5 %, 5-20 %, beyond 20 %)."""


def _headline_lines(accuracy: list[dict[str, Any]], presets: list[str]) -> list[str]:
    """Per family and preset: metrics compared, median |error|, and how many fall in each band of :data:`BANDS`."""
    lines = ["| family | " + " | ".join(f"{p}: n / median error / ≤{BANDS[0]:.0%} / {BANDS[0]:.0%}-{BANDS[1]:.0%} / >{BANDS[1]:.0%}"
                                          for p in presets) + " |",
             "|---|" + "---:|" * len(presets)]
    for name, _ in FAMILIES:
        cells = []
        for preset in presets:
            errs = np.abs([r["rel_error"] for r in accuracy
                           if r["preset"] == preset and r["family"] == name and r["rel_error"] is not None])
            cells.append(f"{errs.size} / {100 * np.median(errs):.1f} % / {np.sum(errs <= BANDS[0])} / "
                         f"{np.sum((errs > BANDS[0]) & (errs <= BANDS[1]))} / {np.sum(errs > BANDS[1])}" if errs.size else "—")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


INTRO = (
    "Every number of the run's `metrics.json` (units, definitions, voxel sizes, shapes, solver diagnostics, sample "
    "counts and 1/nm or area twins of other numbers left out) against **truth (analysis)**: the same analysis "
    "(`analyze_volume`, the phantom's true voxel size (an error of the run's calibration shows) and the run's analyze options) of the phantom's true labels and regions, cut to "
    "the box the run's volume shows (the drift correction crops each slice to the part valid in every slice; the "
    "box is placed by the run's drift table against the phantom's true drift, rounded to whole pixels).  The "
    "analysis chooses its tortuosity box (where the tortuosity, pore sizes and surface areas are measured) on each "
    "volume's own regions: the two boxes are listed below.  **generator** is the phantom's own figure "
    "(`truth.json`) where it has the key: it covers the whole uncropped phantom and measures in its own way (e.g. "
    "SEI thickness along the surface normal, on the continuous surface).  Error = (measured − truth) / truth of "
    "the analysis; bold beyond 20 %."
)


def _box_lines(boxes: dict[str, dict[str, Any]], presets: list[str]) -> list[str]:
    """One line per preset: where the run's volume lies in the true labels, how well it is registered."""
    lines = []
    for preset in presets:
        b = boxes.get(preset, {})
        same = f"; the run's phase is the true one in {100 * b['voxels_same_phase']:.1f} % of the voxels" if "voxels_same_phase" in b else ""
        lines.append(
            f"- {preset}: run volume {b.get('run_shape')} = true labels [z, y, x] {b.get('truth_box')}"
            + (" (**clipped to the phantom**)" if b.get("clipped") else "")
            + f"; the crop leaves out {b.get('specimen_voxels_cut')} specimen voxels (the rest it leaves out is frame); drift "
            f"offset {b.get('offset_px')} px, registration error rms {b.get('registration_residual_rms_px', float('nan')):.2f} px{same}; "
            f"tortuosity box run {b.get('tortuosity_box', {}).get('run')}, truth {b.get('tortuosity_box', {}).get('truth')}."
        )
    return lines


def _both_zero(row: dict[str, Any] | None) -> bool:
    """Whether ``row`` is missing or measures 0 where the truth is 0 (a phase absent from a region)."""
    return row is None or all(type(row[k]) in (int, float) and row[k] == 0 for k in ("measured", "truth_analysis"))


def _accuracy_lines(accuracy: list[dict[str, Any]], boxes: dict[str, dict[str, Any]], title: str) -> list[str]:
    """The accuracy section: how the truth was made, the headline, one table per family."""
    presets = list(dict.fromkeys(r["preset"] for r in accuracy))
    rows = {(r["preset"], r["metric"]): r for r in accuracy}
    metrics = list(dict.fromkeys(r["metric"] for r in accuracy))
    zero = [m for m in metrics if all(_both_zero(rows.get((p, m))) for p in presets)]
    lines = ["", f"## Metrics vs truth ({title})", "", INTRO, "", *_box_lines(boxes, presets)]
    differ = [f"{r['preset']} {r['metric']} ({_fmt(r['measured'])} vs {_fmt(r['truth_analysis'])})" for r in accuracy
              if r["rel_error"] is None and r["measured"] != r["truth_analysis"]
              and (isinstance(r["measured"], bool) or r["measured"] is None or r["truth_analysis"] is None)]
    lines += ["", "Headline: metrics per family with |error| within 5 %, 5-20 % and beyond 20 % (booleans, nulls and "
              "truths of 0 not counted).", "", *_headline_lines(accuracy, presets), "",
              "Flags and nulls that differ (measured vs truth; null = no number, e.g. a phase that does not percolate): "
              + ("; ".join(differ) if differ else "none") + "."]
    head = "| metric | " + " | ".join(f"{p} measured | truth (analysis) | error | generator" for p in presets) + " |"
    for name, _ in FAMILIES:
        keys = [m for m in metrics if m not in zero and any(rows.get((p, m), {}).get("family") == name for p in presets)]
        if not keys:
            continue
        lines += ["", f"### {name}", "", head, "|---|" + "---:|---:|---:|---:|" * len(presets)]
        for m in keys:
            cells = []
            for p in presets:
                r = rows.get((p, m))
                cells += ([_fmt(r["measured"]), _fmt(r["truth_analysis"]), _error_cell(r), _fmt(r["truth_generator"])]
                          if r else ["—"] * 4)
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
    if zero:
        lines += ["", f"{len(zero)} metrics are 0 in the run and the truth of every preset (phases absent from a "
                  "region): left out of this page, kept in the json."]
    return lines


def _write(args: argparse.Namespace, shape: tuple[int, ...], speed: list[dict[str, Any]],
           accuracy: list[dict[str, Any]], boxes: dict[str, dict[str, Any]]) -> None:
    command = "python benchmarks/pipeline.py " + " ".join(__import__("sys").argv[1:])
    lines = [
        "# End-to-end pipeline (volrecon run on phantom slices, frame on, all artefacts)",
        "",
        f"Command: `{command.strip()}`",
        "",
        f"Machine: {machine()} — shared 2-core machine, timings noisy. Wall/slices/s/peak RSS cover "
        "`volrecon run` (assemble → report); export is timed on its own.",
        "",
        *_speed_lines(speed),
    ]
    if accuracy:
        lines += _accuracy_lines(accuracy, boxes, f"{args.accuracy_slices} slices, {shape[0]}×{shape[1]}")
    save(args.name, {"command": command.strip(), "machine": machine(), "speed": speed, "accuracy": accuracy,
                     "accuracy_boxes": boxes}, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
