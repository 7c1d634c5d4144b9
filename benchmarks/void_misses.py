"""Which true voids the cathode's void split misses and what its false voids are (issue 7).

    PYTHONPATH=. python benchmarks/void_misses.py [--seeds 0,1] [--presets carbonate,diglyme] [--methods auto]

For the benchmark's phantoms (``segmentation.py``: all artefacts, the face's frame, 24x192x192), on the
real correction stage's output and on the oracle-corrected acquisition, ``segment_volume`` is run and
the grey the split reads is recorded (:func:`volrecon.segment.voids.split_voids` is wrapped to keep its
input).  Per case: the true void (true cathode region) by the material the phantom renders through it
(the label one shine-through depth behind; ``beyond`` where that lies past the last slice), with the
share found, and the median depth below the electrolyte level in the split's spreads of its voxels
at least two pixels inside the void (positive: darker than the electrolyte); and the false void
pieces (6-connected) by size, with the truth under them, whether they touch the true void (within 2
voxels) and their median depth below the level.  A void's face in the phantom is the attenuated
material behind it: only void over void or over electrolyte reads darker than the electrolyte.

Writes ``results/void_misses.json`` and ``results/void_misses.md`` (``VOLRECON_BENCH_RESULTS`` moves them).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import scipy.ndimage as ndi

from volrecon.phases import PHASES, REGIONS
from volrecon.sample import make_phantom
from volrecon.sample.oracle import oracle_correct
from volrecon.segment import segment_volume
import volrecon.segment.api as seg_api

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, phantom_args, results_header, save  # noqa: E402
from segmentation import real_correct  # noqa: E402

BEHIND = ("beyond", "void", "electrolyte", "binder", "active")


def _recorded_split() -> list[np.ndarray]:
    """Wrap the api's split so each call's grey input is kept (returned list, filled per call)."""
    kept: list[np.ndarray] = []
    inner = seg_api.split_voids

    def split(smoothed: np.ndarray, *args: Any, **kw: Any) -> np.ndarray:
        kept.append(np.array(smoothed))
        return inner(smoothed, *args, **kw)

    seg_api.split_voids = split
    return kept


def case(img: np.ndarray, truth: Any, vox: tuple[float, float, float], method: str, shine_slices: int,
         kept: list[np.ndarray]) -> dict[str, Any]:
    """One image: the true void by material behind (share found, inner depth) and the false pieces."""
    kept.clear()
    res = segment_volume(img, voxel_size_nm=vox, method=method)
    if len(kept) != 1:
        raise RuntimeError(f"expected one split call (one chunk), got {len(kept)}")
    vs = res.parameters["void_split"]
    dark = (vs["electrolyte_level"] - kept[0]) / vs["electrolyte_spread"]
    cat = truth.regions == REGIONS["cathode"]
    true = (truth.labels == PHASES["void"]) & cat
    found = (np.asarray(res.phases) == res.phase_names["void"]) & cat
    behind = np.full(true.shape, -1)
    behind[:-shine_slices] = truth.labels[shine_slices:]
    inner = np.stack([ndi.binary_erosion(t, iterations=2) for t in true])
    rows = []
    for name in BEHIND:
        sel = true & (behind == (-1 if name == "beyond" else PHASES[name]))
        if sel.any():
            ins = sel & inner
            rows.append({"behind": name, "voxels": int(sel.sum()), "found": float((sel & found).sum() / sel.sum()),
                         "inner_voxels": int(ins.sum()),
                         "inner_depth_spreads": float(np.median(dark[ins])) if ins.any() else float("nan")})
    lab, n = ndi.label(found & ~true)
    near = ndi.binary_dilation(true, iterations=2)
    pieces = []
    for i, sl in enumerate(ndi.find_objects(lab), start=1):
        m = lab[sl] == i
        t = truth.labels[sl][m]
        pieces.append({"voxels": int(m.sum()), "touches_true_void": bool(near[sl][m].any()),
                       "truth": {k: int((t == PHASES[k]).sum()) for k in ("electrolyte", "binder", "active")},
                       "depth_spreads": float(np.median(dark[sl][m]))})
    pieces.sort(key=lambda p: -p["voxels"])
    return {"true_voxels": int(true.sum()), "found_true": int((found & true).sum()), "false": int((found & ~true).sum()),
            "void_fraction": [float(found[cat].mean()), float(true[cat].mean())], "behind": rows, "false_pieces": pieces[:6]}


def markdown(out: list[dict[str, Any]], command: str) -> str:
    lines = results_header("Void split: what it misses and what it invents (issue 7)", command, __doc__)
    for r in out:
        vf = r["void_fraction"]
        lines += [f"## {r['preset']} seed {r['seed']}, {r['method']}, {r['stage']}", "",
                  f"void fraction {vf[0]:.4f} / truth {vf[1]:.4f}; true void {r['true_voxels']}, found {r['found_true']}, "
                  f"false {r['false']}", "",
                  "| material behind | voxels | found | inner voxels | inner depth below level (spreads) |", "|---|---|---|---|---|"]
        lines += [f"| {b['behind']} | {b['voxels']} | {b['found']:.2f} | {b['inner_voxels']} | {b['inner_depth_spreads']:.1f} |"
                  for b in r["behind"]]
        lines += ["", "| false piece voxels | touches true void | truth electrolyte / binder / active | depth below level (spreads) |",
                  "|---|---|---|---|"]
        lines += [f"| {p['voxels']} | {p['touches_true_void']} | {p['truth']['electrolyte']} / {p['truth']['binder']} / "
                  f"{p['truth']['active']} | {p['depth_spreads']:.1f} |" for p in r["false_pieces"]]
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = phantom_args(__doc__.splitlines()[0], seeds="0,1")
    ap.set_defaults(presets="carbonate,diglyme")
    ap.add_argument("--methods", default="auto", help="comma-separated: auto, classifier needs scribbles (not here)")
    args = ap.parse_args()
    kept = _recorded_split()
    out = []
    for preset in args.presets.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            ph = make_phantom(preset, slices=args.slices, shape=(args.size, args.size), seed=seed, artefacts="all",
                              frame=True)
            shine = max(1, int(round(ph.artefacts.shine_depth_nm / ph.voxel_size_nm[0])))
            real, truth, _ = real_correct(ph)
            for stage, img, tr in (("corrected", real, truth), ("oracle-corrected", oracle_correct(ph), ph)):
                for method in args.methods.split(","):
                    r = case(img, tr, ph.voxel_size_nm, method, shine, kept)
                    out.append({"preset": preset, "seed": seed, "stage": stage, "method": method, **r})
                    print(preset, seed, stage, method, r["void_fraction"], r["found_true"], r["false"], flush=True)
    command = "PYTHONPATH=. python benchmarks/void_misses.py " + " ".join(sys.argv[1:])
    save("void_misses", {"machine": machine(), "command": command, "cases": out}, markdown(out, command))


if __name__ == "__main__":
    main()
