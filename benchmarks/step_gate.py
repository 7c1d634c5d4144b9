"""The forward refinement's step gate on full-artefact phantoms whose step reads under the old fixed gate (issue 7).

    PYTHONPATH=. python benchmarks/step_gate.py [--slices 24 --size 192 --seeds 0,1] [--cases photons30,...]

``segment_volume(method="auto")`` refines the cathode's electrolyte | binder boundaries only where the step
between the two levels reads at least :func:`volrecon.segment.forward_refine.min_step_snr` noise sd (about
0.74 at 10 nm pixels and an 8 nm probe); before it, a fixed 1.35.  On the benchmark phantoms
(``segmentation.py``) the step reads 1.5-2.3, so both gates let the refinement run there and the labels are
the same.  Here the phantoms carry every artefact of the benchmark's (drift, shading, brightness, curtains,
noise, rims, shine-through, the face's frame) and one acquisition setting that lowers the step: fewer
electrons, 20 nm pixels, or no drift (a registration that interpolates nothing leaves the noise white).
Each is corrected by the real correction stage and by the oracle, and segmented with the refinement off and
on: the step, both gates, and the cathode's pore, active and binder Dice, void Dice and the binder and void
fractions, off -> on.  Where the step lies between the two gates, "off" is what the fixed gate gave and
"on" what the derived gate gives; elsewhere both gates decide alike.

Writes results/step_gate.json and .md (``VOLRECON_BENCH_RESULTS`` sends them elsewhere).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from volrecon.phases import PHASES, REGIONS
from volrecon.sample import Artefacts, make_phantom
from volrecon.sample.oracle import oracle_correct
from volrecon.segment import segment_volume

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, phantom_args, save  # noqa: E402
from segmentation import cathode_fractions, phase_dice, real_correct  # noqa: E402

OLD_GATE = 1.35
"""The fixed step gate before session 23, noise sd."""

CASES: dict[str, dict[str, Any]] = {
    "photons30": {"artefacts": {"noise_photons": 30.0}},
    "photons20": {"artefacts": {"noise_photons": 20.0}},
    "pixel20": {"voxel_size_nm": (20.0, 20.0, 20.0)},
    "nodrift": {"artefacts": {"drift": False}},
}
"""Case -> what differs from the benchmark's phantom: ``artefacts`` fields of ``Artefacts.all()``, or the
voxel size (z, y, x) nm."""


def _cathode_dice(phases: np.ndarray, names: dict[str, int], truth: Any, which: tuple[str, ...]) -> float:
    cat = truth.regions == REGIONS["cathode"]
    pred = np.isin(phases, [names[n] for n in which if n in names]) & cat
    true = np.isin(truth.labels, [PHASES[n] for n in which]) & cat
    return float(2 * (pred & true).sum() / max(int(pred.sum() + true.sum()), 1))


def _scores(res: Any, truth: Any) -> dict[str, float]:
    """Cathode pore / active / binder / void Dice, specimen pore Dice and the cathode's fractions."""
    phases, names = np.asarray(res.phases), dict(res.phase_names)
    frac = cathode_fractions(phases, names, truth)
    return {"pore": phase_dice(phases, names, truth)["pore"],
            "cathode pore": _cathode_dice(phases, names, truth, ("void", "electrolyte")),
            "active": _cathode_dice(phases, names, truth, ("active",)),
            "binder": _cathode_dice(phases, names, truth, ("binder",)),
            "void": _cathode_dice(phases, names, truth, ("void",)),
            "binder fraction": frac["binder"][0], "void fraction": frac["void_fraction"][0],
            "binder truth": frac["binder"][1], "void truth": frac["void_fraction"][1]}


def measure(preset: str, seed: int, name: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Refinement off and on for one case's phantom, real- and oracle-corrected."""
    case = CASES[name]
    arte = Artefacts.all(**case.get("artefacts", {}))
    kw = {"voxel_size_nm": case["voxel_size_nm"]} if "voxel_size_nm" in case else {}
    ph = make_phantom(preset, slices=args.slices, shape=(args.size, args.size), seed=seed, artefacts=arte,
                      frame=True, **kw)
    real, cropped, _ = real_correct(ph)
    rows = []
    for stage, img, truth in (("corrected", real, cropped), ("oracle", oracle_correct(ph), ph)):
        on = segment_volume(img, voxel_size_nm=ph.voxel_size_nm, method="auto")
        off = segment_volume(img, voxel_size_nm=ph.voxel_size_nm, method="auto", forward_refine=False)
        p = on.parameters.get("forward_refine", {})
        row = {"preset": preset, "seed": seed, "case": name, "stage": stage, "step_snr": p.get("step_snr"),
               "min_step_snr": p.get("min_step_snr"), "ran": "skipped" not in p,
               "off": _scores(off, truth), "on": _scores(on, truth)}
        print(row, flush=True)
        rows.append(row)
    return rows


COLUMNS = ("pore", "cathode pore", "active", "binder", "void", "binder fraction", "void fraction")


def table(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    """The markdown table of the rows: each score off -> on, and which gate lets the refinement run."""
    lines = [
        "# The forward refinement's step gate on full-artefact phantoms",
        "",
        f"Command: `PYTHONPATH=. python benchmarks/step_gate.py --slices {args.slices} --size {args.size} "
        f"--seeds {args.seeds} --cases {args.cases}`",
        "",
        f"Phantoms {args.slices}x{args.size}x{args.size}, every artefact and the face's frame, one setting changed "
        "(case). `auto` with the refinement off -> on. Step and gate in noise sd; old: the fixed gate "
        f"{OLD_GATE}, new: `min_step_snr`. Where only the new gate runs, off -> on is old -> new. Pore: specimen "
        "Dice as in `segmentation.py`; the other Dice and the fractions over the true cathode (truth in brackets).",
        "",
        "| preset | seed | case | stage | step | gate | old runs | new runs | " + " | ".join(COLUMNS) + " |",
        "|---" * (8 + len(COLUMNS)) + "|",
    ]
    for r in rows:
        old_runs = r["step_snr"] is not None and r["step_snr"] >= OLD_GATE
        cells = []
        for c in COLUMNS:
            cell = f"{r['off'][c]:.4f} -> {r['on'][c]:.4f}"
            truth = {"binder fraction": "binder truth", "void fraction": "void truth"}.get(c)
            cells.append(cell + (f" ({r['on'][truth]:.4f})" if truth else ""))
        lines.append(f"| {r['preset']} | {r['seed']} | {r['case']} | {r['stage']} | {r['step_snr']:.2f} | "
                     f"{r['min_step_snr']:.2f} | {'yes' if old_runs else 'no'} | {'yes' if r['ran'] else 'no'} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = phantom_args(__doc__.splitlines()[0])
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--name", default="step_gate")
    args = ap.parse_args()
    rows = [r for c in args.cases.split(",") for s in args.seeds.split(",") for p in args.presets.split(",")
            for r in measure(p, int(s), c, args)]
    save(args.name, {"machine": machine(), "args": vars(args), "rows": rows}, table(rows, args))


if __name__ == "__main__":
    main()
