"""The void split's cathode void fraction across voxel sizes (issue 7).

    PYTHONPATH=. python benchmarks/void_voxel.py [--grids 20x10,40x10,20x20,40x20] [--seeds 0] [--presets diglyme,carbonate]

The shipped sample stacks (``sample_volumes/``) have 40 nm slices and 20 nm pixels (25.4 nm rows after
foreshortening), the benchmark's phantoms (``segmentation.py``) 20 nm slices and 10 nm pixels.  Each grid
``SLICExPIXEL`` (nm) renders a phantom of one seed (all artefacts, the face's frame) over the same physical
extent, ``--depth-nm`` deep and ``--width-nm`` wide and high (the recorded pixel; rows cover ``pixel / sin 52°``
of the face), and ``segment_volume(method="auto")`` segments its oracle-corrected acquisition.  The generator
draws the specimen's voids anew for each grid (the true void fractions differ from grid to grid), so each row
is read against its own truth.  Per grid: the cathode's void fraction (true cathode region) against the truth's
on that grid, its relative error, the void Dice and the false void (share of the cathode labelled void where
the truth is not).

Writes ``results/void_voxel.json`` and ``results/void_voxel.md`` (``VOLRECON_BENCH_RESULTS`` moves them).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from volrecon.phases import PHASES, REGIONS
from volrecon.sample import make_phantom
from volrecon.sample.oracle import oracle_correct
from volrecon.segment import segment_volume

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import results_header, save  # noqa: E402


def parse_grid(text: str) -> tuple[float, float]:
    """``"40x20"`` -> (slice thickness, pixel) in nm."""
    z, p = text.lower().split("x")
    return float(z), float(p)


def measure(preset: str, seed: int, grid: tuple[float, float], args: argparse.Namespace) -> dict[str, Any]:
    """One grid: the split's cathode void fraction and Dice against the truth on that grid."""
    vz, px = grid
    slices, size = int(round(args.depth_nm / vz)), int(round(args.width_nm / px))
    t0 = time.perf_counter()
    ph = make_phantom(preset, slices=slices, shape=(size, size), seed=seed, artefacts="all", frame=True,
                      voxel_size_nm=(vz, px, px))
    res = segment_volume(oracle_correct(ph), voxel_size_nm=ph.voxel_size_nm, method="auto")
    phases = np.asarray(res.phases)
    cat = ph.regions == REGIONS["cathode"]
    pred = (phases == res.phase_names["void"]) & cat
    true = (ph.labels == PHASES["void"]) & cat
    n = max(int(cat.sum()), 1)
    measured, truth = float(pred.sum()) / n, float(true.sum()) / n
    row = {"preset": preset, "seed": seed, "slice_nm": vz, "pixel_nm": px, "voxel_size_nm": list(ph.voxel_size_nm),
           "shape": list(phases.shape), "void_fraction": measured, "truth": truth,
           "relative_error": (measured - truth) / truth if truth > 0 else float("nan"),
           "void_dice": float(2 * (pred & true).sum() / max(int(pred.sum() + true.sum()), 1)),
           "false_void": float((pred & ~true).sum()) / n, "wall_s": time.perf_counter() - t0}
    print(preset, seed, grid, {k: round(v, 4) for k, v in row.items() if isinstance(v, float)}, flush=True)
    return row


def markdown(rows: list[dict[str, Any]], command: str) -> str:
    """The results table."""
    lines = results_header("The cathode void fraction across voxel sizes (issue 7)", command, __doc__) + [
             "| preset | seed | slice (nm) | pixel (nm) | voxel (z, y, x) nm | shape | void fraction / truth | error | void Dice | false void |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        vox = ", ".join(f"{v:.1f}" for v in r["voxel_size_nm"])
        lines.append(f"| {r['preset']} | {r['seed']} | {r['slice_nm']:.0f} | {r['pixel_nm']:.0f} | {vox} | "
                     f"{'x'.join(str(s) for s in r['shape'])} | {r['void_fraction']:.4f} / {r['truth']:.4f} | "
                     f"{100 * r['relative_error']:+.0f} % | {r['void_dice']:.3f} | {r['false_void']:.4f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--grids", default="20x10,40x10,20x20,40x20")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--presets", default="diglyme,carbonate")
    ap.add_argument("--depth-nm", type=float, default=960.0)
    ap.add_argument("--width-nm", type=float, default=1920.0)
    args = ap.parse_args()
    rows = [measure(p, int(s), parse_grid(g), args) for s in args.seeds.split(",") for p in args.presets.split(",")
            for g in args.grids.split(",")]
    command = "PYTHONPATH=. python benchmarks/void_voxel.py " + " ".join(sys.argv[1:])
    doc = {"platform": platform.platform(), "args": vars(args), "command": command, "rows": rows}
    save("void_voxel", json.loads(json.dumps(doc, default=float)), markdown(rows, command))


if __name__ == "__main__":
    main()
