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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", default="512x512")
    parser.add_argument("--slices", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--accuracy-slices", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    shape = tuple(int(v) for v in args.shape.lower().split("x"))

    speed = []
    for n in args.slices:
        src = make_phantom("diglyme", n, shape, seed=0)  # type: ignore[arg-type]
        runs = []
        for r in range(args.repeats):
            out = WORK / f"pipeline_out_{n}_{r}"
            shutil.rmtree(out, ignore_errors=True)
            runs.append(run_child(RUN.format(src=str(src), out=str(out))))
        wall = median_of(runs, "wall_s")
        speed.append({"slices": n, "shape": list(shape), "wall_s": wall, "slices_per_s": n / wall, "peak_rss_mb": median_of(runs, "peak_rss_mb")})

    accuracy = []
    for preset in ("diglyme", "carbonate"):
        src = make_phantom(preset, args.accuracy_slices, shape, seed=1)  # type: ignore[arg-type]
        out = WORK / f"pipeline_acc_{preset}"
        shutil.rmtree(out, ignore_errors=True)
        run_child(RUN.format(src=str(src), out=str(out)))
        metrics = json.loads((out / "metrics.json").read_text())
        truth = json.loads((src / "truth" / "truth.json").read_text())
        for key in KEYS:
            accuracy.append({"preset": preset, "metric": key, "measured": _get(metrics, key), "truth": _get(truth, key)})

    lines = [
        "# End-to-end pipeline (volrecon run on phantom slices, frame on, all artefacts)",
        "",
        f"Machine: {machine()} — shared 2-core machine, timings noisy.",
        "",
        "| slices | slice shape | wall (s) | slices/s | peak RSS (MB) |",
        "|---:|---|---:|---:|---:|",
    ]
    lines += [f"| {s['slices']} | {s['shape'][0]}×{s['shape'][1]} | {s['wall_s']:.1f} | {s['slices_per_s']:.2f} | {s['peak_rss_mb']:.0f} |" for s in speed]
    lines += ["", f"## Metrics vs truth ({args.accuracy_slices} slices, {shape[0]}×{shape[1]})", "", "| preset | metric | measured | truth |", "|---|---|---:|---:|"]
    fmt = lambda v: "—" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))  # noqa: E731
    lines += [f"| {a['preset']} | {a['metric']} | {fmt(a['measured'])} | {fmt(a['truth'])} |" for a in accuracy]
    save("pipeline", {"machine": machine(), "speed": speed, "accuracy": accuracy}, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
