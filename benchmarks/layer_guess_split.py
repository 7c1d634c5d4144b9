"""How the separator|cathode cut follows the layers' first guess's fibre | particle threshold (issue 7).

    PYTHONPATH=. python benchmarks/layer_guess_split.py [--slices 24 --size 192] [--seeds 0,1]
        [--presets diglyme,carbonate] [--shares 0.1,0.2,0.3,0.45] [--lower-shares -0.5,0,0.3,0.6]

The layers are found on a first guess: a global 5-class multi-Otsu of the grey values denoised at
twice the regional scale, mapped dark to bright onto electrolyte, sodium, separator, active,
collector (``parameters["layer_guess"]``).  Its third threshold splits the separator's fibres from
the cathode's particles; the separator|cathode cut reads the shares of the two classes.  A cell
shows about seven grey levels (electrolyte, sodium, binder, SEI, fibres, particles, foil) for five
classes, so the multi-Otsu has near-equal optima, and a slow grey residual moves that threshold
from near the fibres' level to midway to the particles' (carbonate 24x192 seed 0: corrected
against oracle-corrected, ``correction_residual.md``).

Here, on each stack (the benchmark's real correction and the oracle's), that threshold is put at
a fixed share of the way from the fibres' level to the particles' (the medians of the denoised grey
over the truth's fibre and particle voxels: a measuring device, not something the pipeline could
know), the other thresholds kept as the stack's own multi-Otsu, and ``segment_volume(method="auto")``
run again: separator and active Dice, and the separator|cathode cut's error against the truth
(voxels, mean signed: positive into the cathode; mean absolute).  The same for the second
threshold (the class below the separator's | the separator's), at shares of the way from the SEI's
denoised level to the fibres' (negative: below the SEI's level), the others the stack's own.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from volrecon.phases import PHASES, REGIONS
from volrecon.sample import make_phantom
from volrecon.sample.oracle import oracle_correct
from volrecon.segment import api, segment_volume

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import phantom_args, save  # noqa: E402
from segmentation import phase_dice, real_correct, truth_heights  # noqa: E402

CUT = "separator|cathode"


def _run(img: np.ndarray, truth: Any, vox: Sequence[float], thresholds: np.ndarray | None = None) -> tuple[Any, dict[str, Any]]:
    """``segment_volume(img, method="auto")`` (the layer guess's thresholds replaced when given),
    the denoised grey its guess was cut on, and the scores against ``truth``."""
    own = api.multi_otsu_thresholds
    seen: dict[str, Any] = {}

    def guess(values: Any, classes: int, **kw: Any) -> np.ndarray:
        seen["grey"] = np.asarray(values)
        return own(values, classes, **kw) if thresholds is None else np.asarray(thresholds, float)

    api.multi_otsu_thresholds = guess
    try:
        seg = segment_volume(img, voxel_size_nm=vox, method="auto")
    finally:
        api.multi_otsu_thresholds = own
    d = phase_dice(np.asarray(seg.phases), seg.phase_names, truth)
    th, valid = truth_heights(truth)
    h = seg.interfaces.get("heights_nm", {}).get(CUT)
    err = np.full(int(valid.sum()), np.nan) if h is None else (h / truth.voxel_size_nm[1] - th[CUT])[valid]
    scores = {"separator": d["separator"], "active": d["active"], "cut_signed": float(np.mean(err)),
              "cut_abs": float(np.mean(np.abs(err))),
              "thresholds": [float(v) for v in seg.parameters["layer_guess"]["thresholds"]]}
    return seen["grey"], scores


def one_stack(img: np.ndarray, truth: Any, vox: Sequence[float], shares: Sequence[float],
              lower_shares: Sequence[float]) -> dict[str, Any]:
    """The stack's own guess and the sweeps of its SEI | fibre (``lower``) and fibre | particle
    (``upper``) thresholds."""
    grey, own = _run(img, truth, vox)
    spec = truth.regions != REGIONS["frame"]
    level = {p: float(np.median(grey[spec & (truth.labels == PHASES[p])])) for p in ("sei", "separator", "active")}
    t = np.asarray(own["thresholds"])
    out: dict[str, Any] = {"levels": level, "own": own}
    for key, index, (lo, hi), sweep in (("upper", 2, ("separator", "active"), shares),
                                        ("lower", 1, ("sei", "separator"), lower_shares)):
        out[f"{key}_own_share"] = float((t[index] - level[lo]) / (level[hi] - level[lo]))
        out[key] = {}
        for s in sweep:
            t_s = t.copy()
            t_s[index] = level[lo] + s * (level[hi] - level[lo])
            out[key][f"{s:.2f}"] = _run(img, truth, vox, t_s)[1]
    return out


def _cell(s: dict[str, Any]) -> str:
    return f"{s['separator']:.4f} / {s['cut_signed']:+.2f} / {s['cut_abs']:.2f}"


def markdown(results: dict[str, Any], command: str) -> str:
    """The results as a markdown page: one table per threshold swept, one row per stack."""
    lines = ["# The separator|cathode cut against the layer guess's thresholds round the fibres", "",
             f"Command: `{command}`", "",
             "The layer guess's third threshold (fibres | particles; `upper`) and second (the class below | fibres; "
             "`lower`) at the stack's own multi-Otsu (`own`, its share of the way between the two levels in brackets) "
             "and at fixed shares of that way (upper: from the fibres' denoised level to the particles'; lower: from the "
             "SEI's to the fibres'), the other thresholds the stack's own. Levels: medians of the denoised grey the "
             "guess is cut on, over the truth's voxels of each phase. Each cell: separator Dice / separator|cathode cut "
             "error in voxels, mean signed (+: into the cathode) / mean absolute.", ""]
    for key, title in (("upper", "Fibre | particle threshold (fibres 0, particles 1)"),
                       ("lower", "The threshold below the fibres (SEI 0, fibres 1)")):
        cols = list(next(iter(results.values()))[key])
        lines += [f"## {title}", "", "| stack | own | " + " | ".join(cols) + " |", "|---|" + "---|" * (len(cols) + 1)]
        for tag, r in results.items():
            lines.append(f"| {tag} | {_cell(r['own'])} ({r[f'{key}_own_share']:.2f}) | "
                         + " | ".join(_cell(r[key][c]) for c in cols) + " |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = phantom_args()
    ap.add_argument("--shares", default="0.1,0.2,0.3,0.45", help="shares of the fibre -> particle way (upper threshold)")
    ap.add_argument("--lower-shares", default="-0.5,0,0.3,0.6", help="shares of the SEI -> fibre way (lower threshold)")
    args = ap.parse_args()
    shares = [float(v) for v in args.shares.split(",")]
    lower = [float(v) for v in args.lower_shares.split(",")]
    results = {}
    for seed in (int(s) for s in args.seeds.split(",")):
        for preset in args.presets.split(","):
            ph = make_phantom(preset, slices=args.slices, shape=(args.size, args.size), seed=seed, artefacts="all", frame=True)
            img, truth, _ = real_correct(ph)
            for stage, stack, tr in (("corrected", img, truth), ("oracle-corrected", oracle_correct(ph), ph)):
                tag = f"{preset} {args.slices}x{args.size} seed {seed} {stage}"
                results[tag] = r = one_stack(stack, tr, ph.voxel_size_nm, shares, lower)
                print(tag, round(r["own"]["separator"], 4), {k: {s: round(v["separator"], 4) for s, v in r[k].items()}
                                                             for k in ("upper", "lower")}, flush=True)
    command = "PYTHONPATH=. python benchmarks/layer_guess_split.py " + " ".join(sys.argv[1:])
    save("layer_guess_split", {"args": vars(args), "results": results}, markdown(results, command.strip()))


if __name__ == "__main__":
    main()
