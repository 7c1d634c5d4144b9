"""Per true void piece, where the cathode's void split loses it against the ideal core and tail (issue 7).

    PYTHONPATH=. python benchmarks/void_pieces.py [--seeds 0,1] [--presets carbonate] [--stages corrected,oracle]

For the benchmark's phantoms (``segmentation.py``: all artefacts, the face's frame, 24x192x192), on the
real correction stage's output and on the oracle-corrected acquisition, ``segment_volume(method="auto")``
is run with the split's stages recorded (:func:`volrecon.segment.voids.split_voids` is wrapped: the dark
test's input and its seeds, :func:`~volrecon.segment.voids.dark_cores`; the voids before and after the
closing vote).  The true void of the true cathode is cut into face-connected pieces; each piece's *ideal*
voxels are the void a split growing from the dark cores along the milling direction could reach (the dark
core ``V(z) & V(z + D)`` continued along +z through the void by ``D`` slices, ``D`` the shine-through depth,
the slices beyond the stack rendered from the specimen: ``void_bound.py``'s core + tail).  Each missed
ideal voxel is put in the first stage that lost it:

- *not in the split's space*: labelled active (or another solid) before the split; it can never be void;
- *no seed, not dark*: its piece has no voxel of the split's space darker than ``dark_k`` (the dark test,
  counted in the electrolyte spread times the pore average's noise factor);
- *no seed, too shallow*: dark voxels but none ``core_k`` below the level: no core seeds it;
- *seeded piece, not grown*: the piece has seeds, but the growth (tail, outer ring, rim, lit ring) did not
  reach the voxel;
- *removed by the vote*: grown, not void after the closing vote;
- *removed later*: void after the split, not in the final phases (refinement, cleanup).

The piece table lists the pieces with ideal voxels (largest first): their size, ideal voxels, the widest
in-plane width of their dark core (nm; the phantoms' shine-through blur is a Gaussian of 20 nm, so a core
much narrower than about 60 nm between particles shows their blurred grey, not the empty space), the
deepest dark test value among the piece's space voxels (in spreads below the electrolyte level),
seeds, voxels after growth, vote, final.

Writes ``results/void_pieces.json`` and ``results/void_pieces.md`` (``VOLRECON_BENCH_RESULTS`` moves them).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import scipy.ndimage as ndi

import volrecon.segment.api as seg_api
import volrecon.segment.voids as voids
from volrecon.phases import PHASES, REGIONS
from volrecon.sample import make_phantom
from volrecon.sample.oracle import oracle_correct
from volrecon.sample.phantom import plan_phantom
from volrecon.segment import segment_volume

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, phantom_args, results_header, save  # noqa: E402
from segmentation import real_correct  # noqa: E402
from void_bound import core_and_tail, render_void  # noqa: E402

STAGES = ("not in space", "no seed, not dark", "no seed, too shallow", "seeded piece, not grown",
          "removed by the vote", "removed later")


def record_split() -> dict[str, Any]:
    """Wrap the split's stages so one call's intermediates are kept (the returned dict, refilled per call)."""
    rec: dict[str, Any] = {}
    inner_split, inner_cores, inner_vote = seg_api.split_voids, voids.dark_cores, voids._cathode_vote

    def split(smoothed: np.ndarray, phases: np.ndarray, cathode: np.ndarray, **kw: Any) -> np.ndarray:
        rec.update(grey=np.array(smoothed), phases=np.array(phases), cathode=np.array(cathode, bool), kw=kw,
                   cues=kw["cues"], calls=rec.get("calls", 0) + 1)
        return inner_split(smoothed, phases, cathode, **kw)

    def cores(dark: np.ndarray, space: np.ndarray, **kw: Any) -> np.ndarray:
        seeds = inner_cores(dark, space, **kw)
        rec.update(dark=np.array(dark), space=np.array(space, bool), seeds=np.array(seeds, bool))
        return seeds

    def vote(labels: np.ndarray, *args: Any, **kw: Any) -> np.ndarray:
        voted = inner_vote(labels, *args, **kw)
        rec.update(grown=labels == kw["void"], voted=voted == kw["void"])
        return voted

    seg_api.split_voids, voids.dark_cores, voids._cathode_vote = split, cores, vote
    return rec


def ideal_void(preset: str, seed: int, args: Any, ph: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """The phantom's true void (full frame), its dark core and ideal core + tail, and the shine-through
    depth in slices; the core and the void one depth deeper read with the slices beyond the stack."""
    plan = plan_phantom(preset, slices=args.slices, shape=(args.size, args.size), seed=seed, artefacts="all", frame=True)
    void = (ph.labels == PHASES["void"]) & (ph.regions != REGIONS["frame"])
    beyond = render_void(plan, range(void.shape[0], void.shape[0] + plan.shine_slices), (0.0, 0.0, 0.0))
    core, tail = core_and_tail(void, beyond, plan.shine_slices)
    return core, tail, np.concatenate([void, beyond])[plan.shine_slices:], plan.shine_slices


def widest(core: np.ndarray, pixel_nm: tuple[float, float]) -> float:
    """Largest in-plane width (nm) of ``core``: twice its largest distance to the nearest voxel outside."""
    if not core.any():
        return 0.0
    return float(2.0 * max(ndi.distance_transform_edt(c, sampling=pixel_nm).max() for c in core if c.any()))


def case(img: np.ndarray, truth: Any, ideal: tuple[np.ndarray, np.ndarray, np.ndarray], vox: tuple[float, float, float],
         rec: dict[str, Any]) -> dict[str, Any]:
    """One image: the missed ideal voxels by the stage that lost them, and the piece table."""
    rec.clear()
    res = segment_volume(img, voxel_size_nm=vox, method="auto")
    if rec.get("calls") != 1 or "grown" not in rec:
        raise RuntimeError("expected one split call with seeds and a vote (one chunk)")
    cues = rec["cues"]
    cat = truth.regions == REGIONS["cathode"]
    true = (truth.labels == PHASES["void"]) & cat
    final = (np.asarray(res.phases) == res.phase_names["void"]) & cat
    core, ideal, deeper = ideal[0] & true, ideal[1] & true, ideal[2]
    seeds_all = rec["seeds"] & cat
    lab, n = ndi.label(true)
    stage = np.full(true.shape, -1)
    dark, space = rec["dark"], rec["space"]
    pieces = []
    for i, sl in enumerate(ndi.find_objects(lab), start=1):
        m = lab[sl] == i
        sp = m & space[sl]
        deepest = float(dark[sl][sp].max()) if sp.any() else float("nan")
        seeds = int((rec["seeds"][sl] & m).sum())
        piece_stage = np.full(m.shape, -1)
        miss = m & ideal[sl] & ~final[sl]
        piece_stage[miss & ~space[sl]] = 0
        rest = miss & space[sl]
        if seeds == 0:
            piece_stage[rest] = 1 if not (deepest > cues.dark_k) else 2
        else:
            piece_stage[rest & ~rec["grown"][sl]] = 3
            piece_stage[rest & rec["grown"][sl] & ~rec["voted"][sl]] = 4
            piece_stage[rest & rec["voted"][sl]] = 5
        stage[sl][m] = piece_stage[m]
        pieces.append({"voxels": int(m.sum()), "ideal": int((m & ideal[sl]).sum()),
                       "core_width_nm": widest(m & core[sl], tuple(vox[1:])), "deepest_spreads": deepest,
                       "in_space": int(sp.sum()), "seeds": seeds, "grown": int((rec["grown"][sl] & m).sum()),
                       "voted": int((rec["voted"][sl] & m).sum()), "final": int((final[sl] & m).sum())})
    pieces = sorted((p for p in pieces if p["ideal"]), key=lambda p: -p["ideal"])
    return {"true_voxels": int(true.sum()), "ideal_voxels": int(ideal.sum()), "found_true": int((final & true).sum()),
            "found_ideal": int((final & ideal).sum()), "false": int((final & ~true).sum()),
            "void_fraction": [float(final[cat].mean()), float(true[cat].mean())],
            "missed_ideal_by_stage": {s: int((stage == k).sum()) for k, s in enumerate(STAGES)},
            "seeds": {"voxels": int(seeds_all.sum()), "void": int((seeds_all & true).sum()),
                      "void_a_depth_deeper": int((seeds_all & true & deeper).sum())},
            "dark_k": cues.dark_k, "core_k": cues.core_k, "pieces": pieces}


def keep(path: Path, rec: dict[str, Any], truth: Any, ideal: np.ndarray) -> None:
    """Save one case's split inputs (grey, phases, cathode, level, spread, voxel size) and its truth."""
    path.parent.mkdir(parents=True, exist_ok=True)
    kw = rec["kw"]
    np.savez_compressed(path, grey=rec["grey"], phases=rec["phases"], cathode=rec["cathode"], level=kw["level"],
                        spread=kw["spread"], voxel=np.asarray(kw["voxel_size_nm"]), labels=truth.labels,
                        regions=truth.regions, ideal=ideal, wall_shift_nm=kw["cues"].wall_shift_nm or 0.0,
                        vote_nm=kw["cues"].vote_nm, class_smooth_nm=kw["cues"].class_smooth_nm)


def markdown(out: list[dict[str, Any]], command: str) -> str:
    lines = results_header("Void split: where each true void piece is lost (issue 7)", command, __doc__)
    lines += ["Missed ideal voxels by the stage that lost them; seeds: the dark test's seeds in the true cathode, "
              "how many are void, and how many of those are void one shine-through depth deeper too (the rest: "
              "voids over a filled pore, dark for that).", "",
              "| preset | seed | stage | void fraction / truth | true | ideal | found ideal | false | seeds / void / void a depth deeper | "
              + " | ".join(STAGES) + " |", "|---|---|---|---|---|---|---|---|---|" + "---|" * len(STAGES)]
    for r in out:
        vf, st, sd = r["void_fraction"], r["missed_ideal_by_stage"], r["seeds"]
        lines.append(f"| {r['preset']} | {r['seed']} | {r['stage']} | {vf[0]:.4f} / {vf[1]:.4f} | {r['true_voxels']} | "
                     f"{r['ideal_voxels']} | {r['found_ideal']} | {r['false']} | {sd['voxels']} / {sd['void']} / "
                     f"{sd['void_a_depth_deeper']} | " + " | ".join(str(st[s]) for s in STAGES) + " |")
    for r in out:
        lines += ["", f"## {r['preset']} seed {r['seed']}, {r['stage']} (dark_k {r['dark_k']}, core_k {r['core_k']})", "",
                  "| piece voxels | ideal | widest dark core (nm) | in space | deepest (spreads) | seeds | grown | voted | final |",
                  "|---|---|---|---|---|---|---|---|---|"]
        lines += [f"| {p['voxels']} | {p['ideal']} | {p['core_width_nm']:.0f} | {p['in_space']} | {p['deepest_spreads']:.1f} | {p['seeds']} | "
                  f"{p['grown']} | {p['voted']} | {p['final']} |" for p in r["pieces"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = phantom_args(__doc__.splitlines()[0], seeds="0,1")
    ap.set_defaults(presets="carbonate")
    ap.add_argument("--stages", default="corrected,oracle")
    ap.add_argument("--keep", default="", help="folder: save each case's split inputs and truth (.npz, for offline checks)")
    args = ap.parse_args()
    rec = record_split()
    out = []
    for preset in args.presets.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            ph = make_phantom(preset, slices=args.slices, shape=(args.size, args.size), seed=seed, artefacts="all",
                              frame=True)
            ideal = ideal_void(preset, seed, args, ph)[:3]
            for stage in args.stages.split(","):
                if stage == "corrected":
                    img, tr, _ = real_correct(ph)
                    y0, y1, x0, x1 = tr.box
                    idl = tuple(a[:, y0:y1, x0:x1] for a in ideal)
                else:
                    img, tr, idl = oracle_correct(ph), ph, ideal
                r = case(img, tr, idl, ph.voxel_size_nm, rec)
                if args.keep:
                    keep(Path(args.keep) / f"{preset}_{seed}_{stage}.npz", rec, tr, idl[1])
                out.append({"preset": preset, "seed": seed, "stage": stage, **r})
                print(preset, seed, stage, r["void_fraction"], r["missed_ideal_by_stage"], flush=True)
    command = "PYTHONPATH=. python benchmarks/void_pieces.py " + " ".join(sys.argv[1:])
    save("void_pieces", {"machine": machine(), "command": command, "cases": out}, markdown(out, command))


if __name__ == "__main__":
    main()
