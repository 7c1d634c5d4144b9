"""What a thin SEI's thickness error is made of (issue 7): its two surfaces' errors split by what lies beyond
the film, and what a steepest-step locator can see of a film thinner than the blur.

    PYTHONPATH=. python benchmarks/sei_thin_film.py [--thickness 30] [--voxel 40x20x20] [--seeds 0]
        [--stages oracle,corrected] [--slices 24 --size 192]

Per phantom (diglyme preset, ``SpecimenParams.sei_mean_nm`` set, all artefacts and the frame) and stage
(oracle-corrected or the real correction), the ``auto`` segmentation's ``sodium|sei`` and ``sei|separator``
heights against the true labels' (voxels along the stacking axis, + = towards the separator; the
columns the segmentation benchmark compares), split by the true phase right beyond the film:
electrolyte (a pore: the film's outer edge is a fall) or separator (a fibre: a rise, or a staircase).
``far``: the share of the columns whose sodium surface is more than 3 voxels off (left out of the means).

Then the model: a film of ``b`` voxels between the measured sodium, film and pore levels, blurred by
the thick edge's fitted blur (the first run's ``parameters["sei"]["edge"]``), each point brighter by the fitted rim ratio times the ideal contrast
across the rim's half-width (on a thick edge the rim model the fit measures), smoothed and located
as the surface finders do (steepest rise, steepest fall beyond the sodium surface); the located chord
against ``b``.  Writes ``results/sei_thin_film.json`` and ``.md`` (``VOLRECON_BENCH_RESULTS`` moves them).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from scipy import ndimage as ndi

from volrecon.phases import PHASES
from volrecon.sample import make_phantom
from volrecon.sample.oracle import oracle_correct
from volrecon.segment import segment_volume
from volrecon.segment.layers import STEP_SMOOTH_VOX, steepest_step

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save  # noqa: E402
from segmentation import real_correct, truth_heights  # noqa: E402

BEYOND = {"pore": PHASES["electrolyte"], "fibre": PHASES["separator"]}
FAR_VOX = 3.0


def split_errors(res: Any, truth: Any) -> dict[str, Any]:
    """The segmentation's two SEI surfaces' signed mean errors (voxels) by what lies beyond the true film."""
    th, valid = truth_heights(truth)
    vy = truth.voxel_size_nm[1]
    h = {k: res.interfaces["heights_nm"][k] / vy for k in ("sodium|sei", "sei|separator")}
    lab = np.asarray(truth.labels)
    out_t = th["sei|separator"]
    beyond = np.take_along_axis(lab, np.clip(out_t, 0, lab.shape[1] - 1)[:, None, :], axis=1)[:, 0, :]
    err_na, err_out = h["sodium|sei"] - th["sodium|sei"], h["sei|separator"] - out_t
    far = valid & (np.abs(err_na) > FAR_VOX)
    row: dict[str, Any] = {"far_share": float(far[valid].mean())}
    for name, phase in BEYOND.items():
        m = valid & ~far & (beyond == phase)
        row[name] = {"columns": int(m.sum()), "true_chord": float((out_t - th["sodium|sei"])[m].mean()),
                     "sodium": float(err_na[m].mean()), "outer": float(err_out[m].mean()),
                     "chord": float((err_out - err_na)[m].mean())}
    return row


def film_profiles(a: np.ndarray, b: float, n: int, levels: Sequence[float], sigma: float, rim: float,
                  w: float, step: float = 0.05) -> np.ndarray:
    """Grey values at the voxel centres of films from ``a`` to ``a + b`` (one row per ``a``):
    ``levels = (sodium, film, pore)``, each point brighter by ``rim`` times the ideal contrast
    across ``+- w``, blurred by ``sigma`` (voxels)."""
    x = np.arange(-4.0 * w, n + 4.0 * w, step)
    p, f, q = levels

    def ideal(u: np.ndarray) -> np.ndarray:
        return np.where(u < a[:, None], p, np.where(u < a[:, None] + b, f, q))

    g = ndi.gaussian_filter1d(ideal(x) + rim * np.abs(ideal(x + w) - ideal(x - w)), sigma / step, axis=-1)
    return g[:, np.searchsorted(x, np.arange(n) + 0.5 - 0.5 * step)]


def located_chord(b: float, levels: Sequence[float], sigma: float, rim: float, w: float,
                  phases: int = 8) -> tuple[float, float]:
    """Mean offsets (voxels) of the steepest rise from the sodium edge and of the steepest fall
    beyond it from the outer edge, over ``phases`` sub-voxel positions of the film."""
    n = int(np.ceil(b + 24.0))
    a = 10.0 + np.arange(phases) / phases
    g = ndi.gaussian_filter1d(film_profiles(a, b, n, levels, sigma, rim, w), STEP_SMOOTH_VOX, axis=-1, mode="nearest")
    d = np.diff(g, axis=-1)
    bnd = np.arange(1, n)
    rise = steepest_step(np.where(np.abs(bnd - a[:, None]) < 4.0, d, -np.inf), d)[0]
    fall = steepest_step(np.where(bnd > a[:, None] + 0.5, -d, -np.inf), -d)[0]
    return float(np.mean(rise - a)), float(np.mean(fall - a - b))


def model_rows(levels: Sequence[float], sigma: float, rim: float, w: float) -> list[dict[str, float]]:
    """The located chord against the film's thickness, both offsets relative to a thick film's."""
    r0, f0 = located_chord(40.0, levels, sigma, rim, w)
    rows = []
    for b in (0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0):
        r, f = located_chord(b, levels, sigma, rim, w)
        rows.append({"b": b, "rise": r - r0, "fall": f - f0, "chord": b + (f - f0) - (r - r0)})
    return rows


def measure(seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """One phantom: the split surface errors of each stage."""
    vox = tuple(float(v) for v in args.voxel.split("x"))
    ph = make_phantom("diglyme", slices=args.slices, shape=(args.size, args.size), seed=seed, artefacts="all",
                      frame=True, voxel_size_nm=vox, sei_mean_nm=float(args.thickness))
    row: dict[str, Any] = {"seed": seed, "voxel_nm": list(ph.voxel_size_nm), "stages": {}}
    for stage in args.stages.split(","):
        img, truth = (oracle_correct(ph), ph) if stage == "oracle" else real_correct(ph)[:2]
        res = segment_volume(img, voxel_size_nm=ph.voxel_size_nm, method="auto")
        sei = res.parameters.get("sei", {})
        row["stages"][stage] = {**split_errors(res, truth), "edge": sei.get("edge", {}),
                                "sei": {k: v for k, v in sei.items() if isinstance(v, (int, float, str, bool))}}
    print(json.dumps(row, default=float), flush=True)
    return row


def markdown(rows: list[dict[str, Any]], model: list[dict[str, float]], args: argparse.Namespace,
             params: dict[str, float]) -> str:
    lines = ["# A thin SEI's surfaces: errors by what lies beyond the film", "",
             f"Command: `PYTHONPATH=. python benchmarks/sei_thin_film.py {' '.join(sys.argv[1:])}`", "",
             f"Diglyme phantom, SEI {args.thickness} nm, recorded voxel {args.voxel} nm, {args.slices}x{args.size}^2. "
             "Signed mean errors (voxels along y, + = towards the separator) of the `auto` segmentation's surfaces "
             "against the true labels, by the true phase right beyond the film; `far`: columns whose sodium surface "
             f"is over {FAR_VOX:g} voxels off (left out).", "",
             "| stage | seed | far | beyond | columns | true chord | sodium|sei | sei|separator | chord |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        for stage, s in r["stages"].items():
            for name in BEYOND:
                e = s[name]
                lines.append(f"| {stage} | {r['seed']} | {s['far_share']:.4f} | {name} | {e['columns']} | "
                             f"{e['true_chord']:.2f} | {e['sodium']:+.2f} | {e['outer']:+.2f} | {e['chord']:+.2f} |")
    lines += ["", f"Model (levels sodium/film/pore {params['levels']}, blur {params['sigma']:.2f} voxel, rim ratio "
              f"{params['rim']:.2f}, half-width {params['w']:.2f} voxel): offsets of the located steps beyond a thick "
              "film's, and the located chord.", "", "| b (vox) | rise | fall | located chord |", "|---|---|---|---|"]
    lines += [f"| {m['b']:g} | {m['rise']:+.2f} | {m['fall']:+.2f} | {m['chord']:.2f} |" for m in model]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--thickness", type=float, default=30.0, help="true mean SEI thickness (nm)")
    ap.add_argument("--voxel", default="40x20x20", help="recorded voxel size z x pixel height x width (nm)")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--stages", default="oracle,corrected")
    ap.add_argument("--slices", type=int, default=24)
    ap.add_argument("--size", type=int, default=192)
    args = ap.parse_args()
    rows = [measure(int(s), args) for s in args.seeds.split(",")]
    # the model's levels and edge from the first run (its thick reference edge's fit)
    first = rows[0]["stages"][args.stages.split(",")[0]]
    levels = [round(float(first["sei"].get(k, np.nan)), 3) for k in ("sodium_level", "sei_level", "pore_level")]
    edge = first["edge"]
    params = {"levels": levels, "sigma": float(edge["sigma_vox"]), "rim": float(edge["rim_ratio"]),
              "w": float(edge["rim_half_width_vox"])}
    model = model_rows(levels, params["sigma"], params["rim"], params["w"])
    save("sei_thin_film", {"args": vars(args), "rows": rows, "model": model, "model_params": params},
         markdown(rows, model, args, params))


if __name__ == "__main__":
    main()
