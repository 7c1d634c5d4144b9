"""End-to-end benchmark: raw phantom slices -> ``volrecon run`` -> metrics vs truth.

Two measurements:
- throughput and memory: ``volrecon run`` on phantom stacks of several slice counts at one
  slice size, each in a fresh process (slices/s over the whole run, peak RSS);
- accuracy: every metric of ``metrics.json`` that the phantom's ``truth.json`` also holds, for
  both presets, in one table.

Run: ``python benchmarks/pipeline.py --shape 1536x2048 --slices 100 400`` (heavy) or the defaults
(small, minutes).  Results: ``benchmarks/results/pipeline.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

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

KEYS = (
    "regions.cathode.porosity",
    "regions.cathode.void_fraction",
    "regions.cathode.void_share_of_pore",
    "regions.cathode.void_clusters.count",
    "regions.cathode.void_clusters.largest_fraction",
    "regions.cathode.phase_fractions.active",
    "regions.cathode.phase_fractions.binder",
    "regions.separator.phase_fractions.separator",
    "regions.anode.phase_fractions.sodium",
    "regions.anode.sei_thickness_nm.mean",
    "regions.anode.sei_thickness_nm.median",
    "regions.anode.sei_thickness_nm.p05",
    "regions.anode.sei_thickness_nm.p95",
    "phase_fractions.active",
    "phase_fractions.collector",
)


def _get(data: dict[str, Any], key: str) -> Any:
    for part in key.split("."):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


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
    for n in args.slices:
        src = make_phantom("diglyme", n, shape, seed=0)  # type: ignore[arg-type]
        m = measure(src, WORK / f"{args.name}_out_{n}", args.repeats, STAGES if args.export else RUN_STAGES)
        speed.append({"slices": n, "shape": list(shape), "slices_per_s": n / m["wall_s"], **m})
        _write(args, shape, speed, accuracy)  # what is measured so far survives an interruption

    for preset in ("diglyme", "carbonate") if args.accuracy_slices else ():
        src = make_phantom(preset, args.accuracy_slices, shape, seed=1)  # type: ignore[arg-type]
        out = WORK / f"pipeline_acc_{preset}"
        shutil.rmtree(out, ignore_errors=True)
        run_child(RUN.format(src=str(src), out=str(out)))
        metrics = json.loads((out / "metrics.json").read_text())
        truth = json.loads((src / "truth" / "truth.json").read_text())
        for key in KEYS:
            accuracy.append({"preset": preset, "metric": key, "measured": _get(metrics, key), "truth": _get(truth, key)})
    _write(args, shape, speed, accuracy)


def _write(args: argparse.Namespace, shape: tuple[int, ...], speed: list[dict[str, Any]],
           accuracy: list[dict[str, Any]]) -> None:
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
        lines += ["", f"## Metrics vs truth ({args.accuracy_slices} slices, {shape[0]}×{shape[1]})", "", "| preset | metric | measured | truth |", "|---|---|---:|---:|"]
        fmt = lambda v: "—" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))  # noqa: E731
        lines += [f"| {a['preset']} | {a['metric']} | {fmt(a['measured'])} | {fmt(a['truth'])} |" for a in accuracy]
    save(args.name, {"command": command.strip(), "machine": machine(), "speed": speed, "accuracy": accuracy}, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
