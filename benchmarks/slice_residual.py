"""Per-slice intensity residual of the correction stage, per phase, and the brightness table's own share.

    PYTHONPATH=. python benchmarks/slice_residual.py [--slices 24,48 --size 192] [--seeds 0,1]
        [--presets diglyme,carbonate]

The corrected stack (:func:`segmentation.real_correct`: drift, shading, brightness, curtains
estimated from the stack) minus the oracle-corrected one mapped onto its grey scale by one
straight line over the specimen; per slice and phase, the median of that difference over the
phase's voxels, less its median over slices (what a single grey scale cannot absorb).  "Worst"
is the larger of the electrolyte's and the binder's (the cathode's close dark pair) in each
slice: the ends (first and last slice) against the middle (all but two slices at each end).
The brightness table's own share: the true detector response ``255 * (G_k * J + O_k)`` passed
through the estimated ``(I - o_k) / g_k``, at ``J`` = 0.3 and 0.6 of full scale, less its median
over slices (0 for a perfect table, whatever the shading).

Writes ``slice_residual.{json,md}`` to the results folder (``VOLRECON_BENCH_RESULTS``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

from volrecon.phases import PHASES, REGIONS
from volrecon.sample import make_phantom
from volrecon.sample.oracle import oracle_correct

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import results_header, save  # noqa: E402
from segmentation import Cropped  # noqa: E402

SHOWN = ("electrolyte", "binder", "active", "separator", "sodium", "sei")
TABLE_LEVELS = (0.3, 0.6)
"""Full-scale grey levels at which the brightness table is checked against the truth."""


def phase_residuals(img: np.ndarray, oracle: np.ndarray, labels: np.ndarray, spec: np.ndarray) -> dict[str, list[float]]:
    """Per phase, per slice: median of ``img - (a * oracle + b)`` over the phase, less its median over slices."""
    a, b = np.polyfit(oracle[spec].astype(np.float64), img[spec].astype(np.float64), 1)
    d = img - (a * oracle + b)
    out: dict[str, list[float]] = {}
    for name in SHOWN:
        per = np.array([np.median(d[k][m]) if (m := spec[k] & (labels[k] == PHASES[name])).sum() > 50 else np.nan
                        for k in range(img.shape[0])])
        if np.isfinite(per).sum() > img.shape[0] // 2:
            out[name] = [float(v) for v in per - np.nanmedian(per)]
    return out


def table_residual(table: Any, brightness: np.ndarray) -> dict[str, list[float]]:
    """The estimated brightness correction applied to the true detector response, less its median (grey)."""
    gain, offset = brightness[:, 0], brightness[:, 1]
    out = {}
    for level in TABLE_LEVELS:
        grey = (255 * (gain * level + offset) - table.offset) / table.gain
        out[f"{level:g}"] = [float(v) for v in grey - np.median(grey)]
    return out


def one_stack(preset: str, seed: int, slices: int, size: int) -> dict[str, Any]:
    """Residuals of one phantom."""
    from volrecon.correct import correct_volume

    ph = make_phantom(preset, slices=slices, shape=(size, size), seed=seed, artefacts="all", frame=True)
    h = ph.labels.shape[1]
    res = correct_volume(ph.acquired[:, :h], voxel_size_nm=ph.voxel_size_nm)
    box = res.drift.valid_region(ph.labels.shape[1:]) if res.drift is not None else (0, h, 0, ph.labels.shape[2])
    truth = Cropped(ph, box)
    y0, y1, x0, x1 = box
    spec = truth.regions != REGIONS["frame"]
    phases = phase_residuals(np.asarray(res.image, np.float32), oracle_correct(ph)[:, y0:y1, x0:x1], truth.labels, spec)
    worst = np.nanmax(np.abs([phases["electrolyte"], phases["binder"]]), axis=0)
    return {"phases": phases, "worst": [float(v) for v in worst], "table": table_residual(res.brightness, ph.brightness),
            "steps": list(res.brightness.steps), "true_step": ph.truth["acquisition"]["brightness"].get("step_slice"),
            "ends": float(max(worst[0], worst[-1])), "middle_median": float(np.median(worst[2:-2])),
            "middle_max": float(worst[2:-2].max())}


def markdown(results: dict[str, dict[str, Any]], command: str) -> str:
    """The results as a markdown page."""
    lines = results_header("Per-slice residual of the correction stage", command, __doc__)
    lines += ["| stack | ends | middle median | middle max | table max (0.3, 0.6) | steps (true) |", "|---|---|---|---|---|---|"]
    for tag, r in results.items():
        tmax = ", ".join(f"{np.max(np.abs(v)):.2f}" for v in r["table"].values())
        lines.append(f"| {tag} | {r['ends']:.2f} | {r['middle_median']:.2f} | {r['middle_max']:.2f} | {tmax} | "
                     f"{', '.join(map(str, r['steps'])) or '-'} ({r['true_step']}) |")
    lines += ["", "Worst of electrolyte | binder per slice (grey):", ""]
    for tag, r in results.items():
        lines.append(f"* {tag}: " + " ".join(f"{v:.1f}" for v in r["worst"]))
    return "\n".join(lines) + "\n"


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description="Per-slice residual of the correction stage")
    ap.add_argument("--slices", default="24,48", help="comma-separated slice counts")
    ap.add_argument("--size", type=int, default=192)
    ap.add_argument("--seeds", default="0,1", help="comma-separated phantom seeds")
    ap.add_argument("--presets", default="diglyme,carbonate")
    args = ap.parse_args()
    results = {}
    for slices in (int(s) for s in args.slices.split(",")):
        for seed in (int(s) for s in args.seeds.split(",")):
            for preset in args.presets.split(","):
                tag = f"{preset} {slices}x{args.size} seed {seed}"
                results[tag] = one_stack(preset, seed, slices, args.size)
                print(tag, f"ends {results[tag]['ends']:.2f} middle max {results[tag]['middle_max']:.2f}", flush=True)
    command = "PYTHONPATH=. python benchmarks/slice_residual.py " + " ".join(sys.argv[1:])
    save("slice_residual", {"args": vars(args), "results": results}, markdown(results, command.strip()))


if __name__ == "__main__":
    main()
