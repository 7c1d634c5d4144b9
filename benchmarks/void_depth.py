"""The void split on phantoms rendered at other shine-through depths (issue 7).

    PYTHONPATH=. python benchmarks/void_depth.py [--depths 40,80,120] [--seeds 0] [--presets diglyme,carbonate]

The benchmark's phantoms (``segmentation.py``: all artefacts, the face's frame, 24x192x192) render a
void's face from the material 80 nm behind it; on a real stack that depth depends on the beam energy
and the material.  For phantoms rendered at each depth of ``--depths``, the void Dice of
``segment_volume(method="auto")`` on the clean image with the detector's noise (``void_bound.py``'s
rung) and on the oracle-corrected acquisition, with the depth the split measures on the stack
(:func:`volrecon.segment.voids.measure_shine_depth`, ``VoidCues(shine_from_stack=True)``), with the assumed 100 nm (the default)
(``VoidCues(shine_from_stack=False)``) and with the true depth given; and the depth it measured.

Writes ``results/void_depth.json`` and ``results/void_depth.md`` (``VOLRECON_BENCH_RESULTS`` moves them).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
from pathlib import Path
from typing import Any

import numpy as np

from volrecon.phases import PHASES, REGIONS
from volrecon.sample import make_phantom
from volrecon.sample.artefacts import Artefacts
from volrecon.sample.oracle import oracle_correct
from volrecon.segment import segment_volume
from volrecon.segment.voids import VoidCues

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import results_header, save  # noqa: E402
from void_bound import _noisy, dice  # noqa: E402


def measure(preset: str, seed: int, depth_nm: float, args: argparse.Namespace) -> dict[str, Any]:
    """One phantom: the void Dice of each depth setting on both images, and the measured depth."""
    art = dataclasses.replace(Artefacts.all(), shine_depth_nm=float(depth_nm))
    ph = make_phantom(preset, slices=args.slices, shape=(args.size, args.size), seed=seed, artefacts=art, frame=True)
    truth = (ph.labels == PHASES["void"]) & (ph.regions != REGIONS["frame"])
    images = {"clean + noise (8-bit)": _noisy(np.asarray(ph.clean, np.float32), ph.artefacts, seed),
              "oracle-corrected": oracle_correct(ph)}
    settings = {"measured": VoidCues(shine_from_stack=True), "assumed 100 nm": VoidCues(shine_from_stack=False),
                "true depth given": VoidCues(shine_depth_nm=float(depth_nm), shine_from_stack=False)}
    row: dict[str, Any] = {"preset": preset, "seed": seed, "depth_nm": float(depth_nm), "images": {}}
    for name, img in images.items():
        out: dict[str, Any] = {}
        for setting, cues in settings.items():
            res = segment_volume(img, voxel_size_nm=ph.voxel_size_nm, method="auto", void_cues=cues)
            pred = (np.asarray(res.phases) == res.phase_names["void"]) & (ph.regions != REGIONS["frame"])
            vs = res.parameters["void_split"]
            out[setting] = {"void_dice": dice(pred, truth), "shine_depth_nm": vs["shine_depth_nm"],
                            "source": vs["shine_depth_source"]}
        row["images"][name] = out
        print(preset, seed, depth_nm, name, {k: round(v["void_dice"], 3) for k, v in out.items()},
              out["measured"]["shine_depth_nm"], flush=True)
    return row


def markdown(rows: list[dict[str, Any]], command: str) -> str:
    """The results table."""
    lines = results_header("The void split at other shine-through depths (issue 7)", command, __doc__) + [
             "| preset | seed | rendered depth (nm) | image | depth used (nm) | void Dice, measured | assumed 100 nm | true depth given |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        for name, out in r["images"].items():
            m = out["measured"]
            used = f"{m['shine_depth_nm']:.0f} ({m['source']})"
            lines.append(f"| {r['preset']} | {r['seed']} | {r['depth_nm']:.0f} | {name} | {used} | {m['void_dice']:.3f} | "
                         f"{out['assumed 100 nm']['void_dice']:.3f} | {out['true depth given']['void_dice']:.3f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--slices", type=int, default=24)
    ap.add_argument("--size", type=int, default=192)
    ap.add_argument("--depths", default="40,80,120")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--presets", default="diglyme,carbonate")
    args = ap.parse_args()
    rows = [measure(p, int(s), float(d), args) for s in args.seeds.split(",") for p in args.presets.split(",")
            for d in args.depths.split(",")]
    command = "PYTHONPATH=. python benchmarks/void_depth.py " + " ".join(sys.argv[1:])
    doc = {"platform": platform.platform(), "args": vars(args), "command": command, "rows": rows}
    save("void_depth", json.loads(json.dumps(doc, default=float)), markdown(rows, command))


if __name__ == "__main__":
    main()
