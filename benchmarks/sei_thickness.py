"""SEI thickness measured vs true over a sweep of film thicknesses and two voxel sizes (issue 7).

    PYTHONPATH=. python benchmarks/sei_thickness.py [--thickness 15,30,60,120,250] [--seeds 0]
        [--voxels 20x10x10,40x20x20] [--slices 24 --size 192] [--preset diglyme] [--stages oracle,corrected]

For each true mean thickness (``SpecimenParams.sei_mean_nm``; the preset's spread ``sei_cv`` kept) a
phantom is rendered at each recorded voxel size (z, pixel height, pixel width; foreshortened at 52°,
so the label rows are pixel height / sin 52°: 12.7 nm for the segmentation benchmark's 20x10x10, 25.4
nm for the shipped samples' 40x20x20), all artefacts and the face's frame.  Three numbers per row,
all ``regions.anode.sei_thickness_nm.mean`` in nm:

- **truth**: the generator's figure (``truth.json``: the normal thickness ``t`` of the continuous
  surface, one sample per slice and image column);
- **on true labels**: :func:`volrecon.analyze.sei_thickness` on the phantom's own labels (cut to
  the box the correction keeps for the ``corrected`` stage): the measurement's own error (voxel
  counting, the normal correction);
- **segmented**: the same measurement on ``segment_volume(method="auto")`` of the
  oracle-corrected stack (known gain/offset, shading, drift undone) and of the stack the real
  correction stage returns (``corrected``): the segmentation's error on top.

Besides, the segmentation's mean sub-voxel chord along the stacking axis (its ``sei|separator``
minus ``sodium|sei`` heights) against the true labels' chord (voxels, on the same columns, as the
segmentation benchmark compares heights), split into the two surfaces' signed errors, and the SEI
surface finder's reference thickness ``t0`` and branch (``resolved``: ``t0`` at least
``regional.RESOLVED_VOX``).

Writes ``results/sei_thickness.json`` and ``.md`` (``VOLRECON_BENCH_RESULTS`` moves them).
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

from volrecon.analyze import sei_thickness
from volrecon.sample import make_phantom
from volrecon.sample.oracle import oracle_correct
from volrecon.segment import segment_volume

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save  # noqa: E402
from segmentation import real_correct, truth_heights  # noqa: E402

SURFACES = ("sodium|sei", "sei|separator")


def _surface_errors(res: Any, truth: Any) -> dict[str, float]:
    """Signed mean errors (voxels along y) of the segmentation's two SEI surfaces and of its chord."""
    th, valid = truth_heights(truth)
    vy = truth.voxel_size_nm[1]
    heights = res.interfaces.get("heights_nm", {})
    if any(heights.get(k) is None for k in SURFACES):
        return {k: float("nan") for k in (*SURFACES, "chord", "true_chord")}
    err = {k: float((heights[k] / vy - th[k])[valid].mean()) for k in SURFACES}
    err["chord"] = err["sei|separator"] - err["sodium|sei"]
    err["true_chord"] = float((th["sei|separator"] - th["sodium|sei"])[valid].mean())
    return err


def _segmented(img: np.ndarray, truth: Any, vox: tuple[float, float, float]) -> dict[str, Any]:
    """The auto segmentation's SEI thickness and surface errors against ``truth`` (labels cut alike)."""
    t0 = time.perf_counter()
    res = segment_volume(img, voxel_size_nm=vox, method="auto")
    th = sei_thickness(np.asarray(res.phases), phase_names=res.phase_names, voxel_size_nm=vox, axis="y")
    on_true = sei_thickness(np.asarray(truth.labels), voxel_size_nm=vox, axis="y")
    sei = res.parameters.get("sei", {})
    return {"segmented_nm": th.mean, "on_true_labels_nm": on_true.mean, "surface_error_vox": _surface_errors(res, truth),
            "t0_vox": sei.get("reference_thickness_vox"), "resolved": sei.get("resolved"),
            "rim_source": sei.get("rim_source"), "found": sei.get("found"), "reason": sei.get("reason"),
            "segment_s": time.perf_counter() - t0}


def measure(preset: str, seed: int, thickness_nm: float, voxel: tuple[float, float, float],
            args: argparse.Namespace) -> dict[str, Any]:
    """One phantom: truth, the measurement on the true labels and on the segmentations."""
    ph = make_phantom(preset, slices=args.slices, shape=(args.size, args.size), seed=seed, artefacts="all",
                      frame=True, voxel_size_nm=voxel, sei_mean_nm=float(thickness_nm))
    vox = ph.voxel_size_nm
    row: dict[str, Any] = {"preset": preset, "seed": seed, "sei_mean_nm": float(thickness_nm),
                           "recorded_voxel_nm": list(voxel), "voxel_nm": list(vox),
                           "truth_nm": ph.truth["regions"]["anode"]["sei_thickness_nm"]["mean"], "stages": {}}
    stages = args.stages.split(",")
    if "oracle" in stages:
        row["stages"]["oracle"] = _segmented(oracle_correct(ph), ph, vox)
    if "corrected" in stages:
        img, cropped, _ = real_correct(ph)
        row["stages"]["corrected"] = _segmented(img, cropped, vox)
    print(json.dumps(row, default=float), flush=True)
    return row


def _pct(a: float, b: float) -> str:
    return f"{100.0 * (a - b) / b:+.1f} %" if np.isfinite(a) and b else "n/a"


def _t0(stage: dict[str, Any]) -> str:
    """The SEI finder's reference thickness and branch, or why it found no film."""
    if stage.get("t0_vox") is None:
        return f"not found: {stage.get('reason') or '?'}"
    return f"{stage['t0_vox']:g}{' R' if stage['resolved'] else ''}"


def markdown(rows: list[dict[str, Any]], command: str) -> str:
    lines = ["# SEI thickness: measured vs true", "", f"Command: `{command}`", "",
             "Mean SEI thickness (nm): **truth** the generator's normal thickness of the continuous surface; "
             "**on true labels** `volrecon.analyze.sei_thickness` on the phantom's labels (the measurement's own "
             "error); **segmented** the same on the `auto` segmentation (oracle-corrected or corrected stack). "
             "Surface errors: the segmentation's signed mean error (voxels along y, + = towards the separator) "
             "of its sodium surface and its SEI outer surface against the true labels, and of their chord; "
             "`t0`: the SEI finder's reference thickness (voxels), R = the `resolved` branch.", "",
             "| rows (nm) | true t (nm) | true chord (vox) | stage | truth | on true labels | segmented | error | "
             "sodium|sei | sei|separator | chord | t0 |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        for stage, s in r["stages"].items():
            e = s["surface_error_vox"]
            lines.append(
                f"| {r['voxel_nm'][1]:.1f} | {r['sei_mean_nm']:g} | {e['true_chord']:.2f} | {stage} (seed {r['seed']}) | "
                f"{r['truth_nm']:.1f} | {s['on_true_labels_nm']:.1f} | {s['segmented_nm']:.1f} | "
                f"{_pct(s['segmented_nm'], r['truth_nm'])} | {e['sodium|sei']:+.2f} | {e['sei|separator']:+.2f} | "
                f"{e['chord']:+.2f} | {_t0(s)} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--thickness", default="15,30,60,120,250", help="true mean SEI thicknesses (nm)")
    ap.add_argument("--voxels", default="20x10x10,40x20x20", help="recorded voxel sizes z x pixel height x width (nm)")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--preset", default="diglyme")
    ap.add_argument("--stages", default="oracle,corrected")
    ap.add_argument("--slices", type=int, default=24)
    ap.add_argument("--size", type=int, default=192)
    ap.add_argument("--name", default="sei_thickness", help="results file name")
    args = ap.parse_args()
    rows = [measure(args.preset, int(seed), float(t), tuple(float(v) for v in vx.split("x")), args)
            for vx in args.voxels.split(",") for seed in args.seeds.split(",") for t in args.thickness.split(",")]
    command = "PYTHONPATH=. python benchmarks/sei_thickness.py " + " ".join(sys.argv[1:])
    save(args.name, {"platform": platform.platform(), "args": vars(args), "command": command, "rows": rows},
         markdown(rows, command))


if __name__ == "__main__":
    main()
