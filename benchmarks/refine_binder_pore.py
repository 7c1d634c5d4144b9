"""Whether the forward refinement puts the cathode's binder -> pore errors where they are (issue 7).

    PYTHONPATH=. python benchmarks/refine_binder_pore.py [--slices 24 --size 192] [--seeds 2,3]
        [--presets diglyme,carbonate] [--stages corrected,oracle]

``benchmarks/pore_seeds.py`` finds most of the unsupervised pore's false voxels are true binder read as pore
one in-plane pixel from the true pore boundary.  The auto method's last step that decides electrolyte
against binder is the forward-model refinement (:mod:`volrecon.segment.forward_refine`), so each phantom is
segmented with it off and on, and counted: the binder -> pore and electrolyte -> binder errors (by in-plane
distance to the true pore boundary, 1 / 2 / 3+ pixels), and the voxels the refinement moved, by direction
(to pore, to binder) and by whether the move made the voxel right or wrong.  The true binder voxels touching the
pore in the plane are split by what the probe blurs them with: a thin strand (the binder's in-plane half-width
within :data:`NEAR_PX` pixels at most :data:`THIN_HALF_WIDTH_PX`) or not, a coat (an active voxel within
:data:`NEAR_PX` pixels) or not; the share of each read as pore.

Writes results/refine_binder_pore.json and .md (``VOLRECON_BENCH_RESULTS`` sends them elsewhere).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from volrecon.phases import PHASES, REGIONS
from volrecon.sample import make_phantom
from volrecon.sample.phantom import plan_phantom
from volrecon.sample.oracle import oracle_correct
from volrecon.segment import segment_volume
from volrecon.segment.voids import VoidCues

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import stage_grid_main  # noqa: E402
from pore_seeds import _in_plane_distance, error_kinds  # noqa: E402
from segmentation import real_correct  # noqa: E402

KINDS = ("binder -> pore", "electrolyte -> binder")
CLASSES = ("thin", "thick", "coat", "no coat")
_PORE = ("void", "electrolyte")
NEAR_PX = 2
"""In-plane reach, pixels, of the neighbourhood a boundary binder voxel is classed by."""
THIN_HALF_WIDTH_PX = 2.5
"""Largest binder half-width (in-plane distance to the nearest non-binder pixel) of a thin strand."""


def _distance_counts(mask: np.ndarray, dist_cls: np.ndarray) -> list[int]:
    return np.bincount(dist_cls[mask], minlength=3).tolist()


def moves(off: np.ndarray, on: np.ndarray, names: dict[str, int], labels: np.ndarray, cat: np.ndarray) -> dict[str, int]:
    """Cathode voxels the refinement turned to pore and to binder, each split by whether the truth agrees."""
    pore_off, pore_on = np.isin(off, [names[p] for p in _PORE]), np.isin(on, [names[p] for p in _PORE])
    true_pore = np.isin(labels, [PHASES[p] for p in _PORE])
    to_pore = cat & ~pore_off & pore_on & (off == names["binder"])
    to_binder = cat & pore_off & (on == names["binder"])
    return {"to pore, right": int((to_pore & true_pore).sum()), "to pore, wrong": int((to_pore & ~true_pore).sum()),
            "to binder, right": int((to_binder & (labels == PHASES["binder"])).sum()),
            "to binder, wrong": int((to_binder & (labels != PHASES["binder"])).sum())}


def boundary_binder(labels: np.ndarray, cat: np.ndarray) -> dict[str, np.ndarray]:
    """The cathode's true binder voxels with an in-plane 4-neighbour of pore, by thin / thick and coat / not."""
    binder = labels == PHASES["binder"]
    pore = np.isin(labels, [PHASES[p] for p in _PORE])
    plane = np.zeros((3, 3, 3), bool)
    plane[1] = ndi.generate_binary_structure(2, 1)
    at = binder & cat & ndi.binary_dilation(pore, structure=plane)
    half = np.stack([ndi.distance_transform_edt(b) for b in binder])
    size = (1, 2 * NEAR_PX + 1, 2 * NEAR_PX + 1)
    thin = ndi.maximum_filter(half, size=size) <= THIN_HALF_WIDTH_PX
    coat = ndi.maximum_filter((labels == PHASES["active"]).astype(np.uint8), size=size) > 0
    return {"thin": at & thin, "thick": at & ~thin, "coat": at & coat, "no coat": at & ~coat}


def run_case(preset: str, seed: int, stage: str, args: argparse.Namespace) -> dict[str, Any]:
    """Refinement off and on for one phantom and correction: the error counts and the moves."""
    ph = make_phantom(preset, slices=args.slices, shape=(args.size, args.size), seed=seed, artefacts="all", frame=True)
    img, truth = (real_correct(ph)[:2]) if stage == "corrected" else (oracle_correct(ph), ph)
    res = {k: segment_volume(img, voxel_size_nm=ph.voxel_size_nm, method="auto", forward_refine=k == "on")
           for k in ("off", "on")}
    names = dict(res["on"].phase_names)
    labels, regions = truth.labels, truth.regions
    vz = plan_phantom(preset, slices=args.slices, shape=(args.size, args.size), seed=seed).voxel_nm[0]
    shine = max(1, int(round(VoidCues().shine_depth_nm / float(vz))))
    spec = np.isin(regions, [REGIONS[r] for r in ("anode", "separator", "cathode")])
    dist_cls = np.digitize(_in_plane_distance(spec & np.isin(labels, [PHASES[p] for p in _PORE])), (1.5, 2.5))
    row: dict[str, Any] = {"preset": preset, "seed": seed, "stage": stage}
    classes = boundary_binder(labels, regions == REGIONS["cathode"])
    row["boundary binder"] = {c: int(m.sum()) for c, m in classes.items()}
    for k, r in res.items():
        kinds = error_kinds(np.asarray(r.phases), names, labels, regions, shine)
        row[k] = {kind: _distance_counts(kinds[kind], dist_cls) for kind in KINDS}
        row[k]["boundary binder read as pore"] = {c: int((m & kinds["binder -> pore"]).sum()) for c, m in classes.items()}
    row["moves"] = moves(np.asarray(res["off"].phases), np.asarray(res["on"].phases), names, labels,
                         regions == REGIONS["cathode"])
    print(row, flush=True)
    return row


def table(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    """The markdown table: errors off -> on (total and at distance 1 / 2 / 3+) and the moves."""
    lines = ["# The forward refinement and the cathode's binder -> pore errors", "",
             f"Command: `PYTHONPATH=. python benchmarks/refine_binder_pore.py --slices {args.slices} --size {args.size} "
             f"--seeds {args.seeds} --presets {args.presets} --stages {args.stages}`", "",
             "`auto`, refinement off -> on; errors in the true cathode, voxels (at in-plane distance 1 / 2 / 3+ from "
             "the true pore boundary); moves: voxels the refinement relabelled, right or wrong by the truth; the true "
             "binder voxels touching the pore in the plane, by class: the share read as pore, off -> on, of how many.", "",
             "| preset | seed | stage | " + " | ".join(KINDS) + " | to pore right / wrong | to binder right / wrong | "
             + " | ".join(f"{c} boundary binder read as pore" for c in CLASSES) + " |",
             "|---" * (5 + len(KINDS) + len(CLASSES)) + "|"]
    for r in rows:
        cells = [f"{sum(r['off'][k])} -> {sum(r['on'][k])} ({'/'.join(map(str, r['off'][k]))} -> "
                 f"{'/'.join(map(str, r['on'][k]))})" for k in KINDS]
        m = r["moves"]
        n = r["boundary binder"]
        shares = [f"{r['off']['boundary binder read as pore'][c] / max(n[c], 1):.3f} -> "
                  f"{r['on']['boundary binder read as pore'][c] / max(n[c], 1):.3f} of {n[c]}" for c in CLASSES]
        lines.append(f"| {r['preset']} | {r['seed']} | {r['stage']} | " + " | ".join(cells)
                     + f" | {m['to pore, right']} / {m['to pore, wrong']} | {m['to binder, right']} / {m['to binder, wrong']} | "
                     + " | ".join(shares) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    stage_grid_main(__doc__, "refine_binder_pore", run_case, table, seeds="2,3")


if __name__ == "__main__":
    main()
