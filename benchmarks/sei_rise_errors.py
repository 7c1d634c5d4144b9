"""Where the SEI's outer surface lies against the truth, by what lies beyond the film (issue 7).

    PYTHONPATH=. python benchmarks/sei_rise_errors.py [--slices 24 --size 192] [--seeds 0,1]
        [--presets carbonate] [--stages corrected,oracle]

The unsupervised segmentation (``segment_volume(method="auto")``) of the benchmark's stacks, its
``sei|separator`` surface per column against the phantom's truth (rows; positive: too deep into the
separator), the columns grouped by what lies just beyond the true film: a pore (the film's falling
edge), a fibre (its rise onto the fibre), a particle (the film grown onto the cathode).  For a thick
film (its rises read, :func:`volrecon.segment.regional.sei_outer_surface`) the rise columns are
shown twice more: the rise's first estimate (the steepest grey step moved by the sodium edge's rim
shift) and the refit of :func:`volrecon.segment.regional._rises_refitted` (the film's own rims,
fitted on its falls) where it was kept, with the fit's blur and rims beside the sodium edge's.

Writes ``results/sei_rise_errors.{md,json}``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

from volrecon.phases import PHASES
from volrecon.sample import make_phantom
from volrecon.sample.oracle import oracle_correct
from volrecon.segment import regional, segment_volume

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import results_header, save, stage_grid_main  # noqa: E402
from segmentation import real_correct, truth_heights  # noqa: E402

BEYOND = ("electrolyte", "separator", "active")
"""The true phases just beyond the film the columns are grouped by."""


def _stats(e: np.ndarray) -> list[float]:
    """``[columns, mean, mean abs]`` of the errors ``e``."""
    return [int(e.size), float(e.mean()), float(np.abs(e).mean())] if e.size else [0, float("nan"), float("nan")]


def run_case(preset: str, seed: int, stage: str, args: Any) -> dict[str, Any]:
    """One stack's row: the surface errors by class, the rises' first estimates and refits."""
    ph = make_phantom(preset, slices=args.slices, shape=(args.size, args.size), seed=seed, artefacts="all", frame=True)
    img, truth = real_correct(ph)[:2] if stage == "corrected" else (oracle_correct(ph), ph)
    seen: dict[str, Any] = {}
    refit = regional._rises_refitted

    def spy(rise, samples, hn, hs, levels, edge):
        out, info = refit(rise, samples, hn, hs, levels, edge)
        seen.update(first=hn + rise, refit=np.where(out != rise, hn + out, np.nan), hn=hn, info=info, edge=dict(edge))
        return out, info

    regional._rises_refitted = spy
    try:
        seg = segment_volume(img, voxel_size_nm=ph.voxel_size_nm, method="auto")
    finally:
        regional._rises_refitted = refit
    th, valid = truth_heights(truth)
    vy = float(ph.voxel_size_nm[1])
    found = np.asarray(seg.interfaces["heights_nm"]["sei|separator"]) / vy
    na = np.asarray(seg.interfaces["heights_nm"]["sodium|sei"]) / vy
    lab = truth.labels
    zz, xx = np.indices(valid.shape)
    beyond = lab[zz, np.clip(th["sei|separator"], 0, lab.shape[1] - 1), xx]
    row: dict[str, Any] = {"preset": preset, "seed": seed, "stage": stage, "final": {}, "first": {}, "refit": {}}
    # the refit's band coordinates: the sodium surface less the band's first row
    lo = float(np.nanmedian(na - seen["hn"])) if seen else 0.0
    for name in BEYOND:
        m = valid & (beyond == PHASES[name])
        row["final"][name] = _stats((found - th["sei|separator"])[m])
        if seen:
            for key in ("first", "refit"):
                e = (seen[key] + lo - th["sei|separator"])[m]
                row[key][name] = _stats(e[np.isfinite(e)])
    if seen:
        row["rise_fit"] = {k: v for k, v in seen["info"].items() if isinstance(v, (int, float, str))}
        row["sodium_edge"] = {k: float(seen["edge"][k]) for k in ("shift_vox", "sigma_vox", "rim_ratio") if k in seen["edge"]}
    return row


def table(rows: list[dict[str, Any]], args: Any) -> str:
    """The results page."""
    lines = results_header("SEI outer surface against the truth", "PYTHONPATH=. python benchmarks/sei_rise_errors.py "
                           + " ".join(sys.argv[1:]), __doc__)
    lines += ["Per stack and class of column (what lies beyond the true film): columns, mean and mean absolute error "
              "(rows) of the final surface; of the rises' first estimates and of the kept refits (thick films only).", "",
              "| stack | beyond | final | rise: first estimate | rise: refit |", "|---|---|---|---|---|"]
    for r in rows:
        for name in BEYOND:
            cells = [r[k].get(name) for k in ("final", "first", "refit")]
            if not cells[0] or not cells[0][0]:
                continue
            fmt = ["" if not c or not c[0] else f"{c[0]}: {c[1]:+.2f}, {c[2]:.2f}" for c in cells]
            lines.append(f"| {r['preset']} seed {r['seed']} {r['stage']} | {name} | " + " | ".join(fmt) + " |")
    lines += ["", "| stack | sodium edge (shift, sigma, rims) | the film's falls (shift, sigma, rims) | refitted columns |",
              "|---|---|---|---|"]
    for r in rows:
        if "rise_fit" in r:
            s, f = r["sodium_edge"], r["rise_fit"]
            lines.append(f"| {r['preset']} seed {r['seed']} {r['stage']} | {s.get('shift_vox', float('nan')):.2f}, "
                         f"{s.get('sigma_vox', float('nan')):.2f}, {s.get('rim_ratio', float('nan')):.2f} | "
                         f"{f.get('shift_vox', float('nan')):.2f}, {f.get('sigma_vox', float('nan')):.2f}, "
                         f"{f.get('rim_ratio', float('nan')):.2f} | {f.get('columns', 0)} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    stage_grid_main(__doc__, "sei_rise_errors", run_case, table)
