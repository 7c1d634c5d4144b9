"""Where along its column the cathode's void split misses the true void, and which stage added its false void (issue 7).

    PYTHONPATH=. python benchmarks/void_columns.py [--seeds 0,1] [--presets diglyme,carbonate] [--stages corrected,oracle]

For the benchmark's phantoms (``segmentation.py``: all artefacts, the face's frame, 24x192x192), on the
real correction stage's output and on the oracle-corrected acquisition, ``segment_volume(method="auto")``
is run with the split's stages recorded (:func:`volrecon.segment.voids.split_voids` wrapped: the dark
cores, :func:`~volrecon.segment.voids.dark_cores`; the cores' tails and the outer ring's continuation,
the two calls of :func:`~volrecon.segment.voids.continue_down`; the ceiling,
:func:`~volrecon.segment.voids.void_ceiling`; the lit ring; the voids before and after the closing
vote; what the growth added besides is the far-wall rim).  Each true void voxel of the true cathode
lies in a *column run*: the void voxels contiguous with it along z, the milling direction (the slices
past the last one rendered from the specimen).  Its *depth* is its distance below the run's first
face slice (runs cut by the stack's first slice are counted apart), its *height* its distance above
the run's last void slice (the floor), both in nm; a face shows the material ``D`` behind it (``D``
the phantom's shine-through depth), so only the voxels at least ``D`` above the floor are dark
(:func:`void_bound.core_and_tail`'s core), and a run no longer than ``D`` is never dark.

Each missed true void voxel is put in one class:

- *not in the split's space*: labelled active (or another solid) before the split, or outside the
  cathode found;
- *dark core above in its run*: its run holds a dark core at most ``D`` slices above it (a tail cut
  short), or more (a tail too short);
- *no dark core in its run*: within 30 nm in-plane of a void found in its slice, 30-60 nm, or farther;
- *removed by the vote*: grown, not void after the closing vote.

The tables give the missed voxels by class and by depth and height, the share missed by depth and
height in runs that do hold a dark core (the void's first and last slices there: its ceiling and
its floor), and the false void by the stage that first added it and by its true phase.

Writes ``results/void_columns.json`` and ``results/void_columns.md`` (``VOLRECON_BENCH_RESULTS`` moves them).
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
from void_bound import render_void  # noqa: E402

CLASSES = ("not in space", "core above, within D", "core above, farther", "no core, <=30 nm", "no core, 30-60 nm",
           "no core, >60 nm", "removed by the vote")
ADDED = ("seeds", "tails", "ring", "ceiling", "rim", "lit ring", "vote")
STEPS = 6  # depth / height rows: 0 .. STEPS - 1 slices, then the rest


def record_split() -> dict[str, Any]:
    """Wrap the split's stages so one call's intermediates are kept (the returned dict, refilled per call)."""
    rec: dict[str, Any] = {}
    # (void_ceiling: absent before the ceiling was added; its voids are then none)
    inner = {k: getattr(voids, k) for k in ("dark_cores", "continue_down", "void_ceiling", "lit_ring", "_cathode_vote")
             if hasattr(voids, k)}
    split = seg_api.split_voids

    def split_(smoothed: np.ndarray, phases: np.ndarray, cathode: np.ndarray, **kw: Any) -> np.ndarray:
        rec.update(space=None, downs=[], ceiling=None, lit=None, calls=rec.get("calls", 0) + 1)
        return split(smoothed, phases, cathode, **kw)

    def cores(dark: np.ndarray, space: np.ndarray, **kw: Any) -> np.ndarray:
        seeds = inner["dark_cores"](dark, space, **kw)
        rec.update(space=np.array(space, bool), seeds=np.array(seeds, bool))
        return seeds

    def down(mask: np.ndarray, space: np.ndarray, steps: int) -> np.ndarray:
        out = inner["continue_down"](mask, space, steps)
        rec["downs"].append(np.array(out, bool))
        return out

    def ceiling(*args: Any, **kw: Any) -> np.ndarray:
        out = inner["void_ceiling"](*args, **kw)
        rec["ceiling"] = np.array(out, bool)
        return out

    def lit(*args: Any, **kw: Any) -> np.ndarray:
        out = inner["lit_ring"](*args, **kw)
        rec["lit"] = np.array(out, bool)
        return out

    def vote(labels: np.ndarray, *args: Any, **kw: Any) -> np.ndarray:
        voted = inner["_cathode_vote"](labels, *args, **kw)
        rec.update(grown=labels == kw["void"], voted=voted == kw["void"])
        return voted

    seg_api.split_voids = split_
    for name, fn in (("dark_cores", cores), ("continue_down", down), ("void_ceiling", ceiling), ("lit_ring", lit),
                     ("_cathode_vote", vote)):
        if name in inner:
            setattr(voids, name, fn)
    return rec


def column_runs(void: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per voxel of ``void`` (z, y, x; the slices past the stack appended): slices below its run's first
    slice, slices above its run's last slice, and the run's label (0 outside ``void``); the depth is -1
    where the run starts in the first slice (its first face slice not seen)."""
    nz = void.shape[0]
    depth = np.full(void.shape, -1, np.int32)
    height = np.full(void.shape, -1, np.int32)
    run = np.zeros(void.shape, np.int64)
    count = np.zeros(void.shape[1:], np.int32)
    cut = np.zeros(void.shape[1:], bool)
    label = np.zeros(void.shape[1:], np.int64)
    nxt = 1
    for z in range(nz):
        v = void[z]
        start = v & (count == 0)
        label[start] = np.arange(nxt, nxt + int(start.sum()))
        nxt += int(start.sum())
        cut = np.where(start, z == 0, cut)
        count = np.where(v, count + 1, 0)
        depth[z] = np.where(v & ~cut, count - 1, -1)
        run[z] = np.where(v, label, 0)
    above = np.zeros(void.shape[1:], np.int32)
    for z in range(nz - 1, -1, -1):
        above = np.where(void[z], above + 1, 0)
        height[z] = above - 1
    return depth, height, run


def core_above(void: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """Per voxel of ``void``: slices below the last dark core (``seeds``) above it in its column run (-1: none)."""
    above = np.full(void.shape, -1, np.int32)
    last = np.full(void.shape[1:], -1, np.int32)
    for z in range(void.shape[0]):
        last = np.where(void[z], np.where(seeds[z], 0, np.where(last >= 0, last + 1, -1)), -1)
        above[z] = last
    return above


def in_plane_distance(mask: np.ndarray, vox: tuple[float, float, float]) -> np.ndarray:
    """Distance (nm) of each voxel to ``mask`` in its own slice (inf in a slice without it)."""
    return np.stack([ndi.distance_transform_edt(~m, sampling=vox[1:]) if m.any() else np.full(m.shape, np.inf)
                     for m in mask])


def missed_class(miss: np.ndarray, space: np.ndarray, voted_out: np.ndarray, above: np.ndarray, near: np.ndarray,
                 depth_slices: int) -> np.ndarray:
    """Index into :data:`CLASSES` of each missed voxel (-1 elsewhere)."""
    cls = np.full(miss.shape, -1)
    cls[miss & ~space] = 0
    rest = miss & space & ~voted_out
    cls[rest & (above >= 0) & (above <= depth_slices)] = 1
    cls[rest & (above > depth_slices)] = 2
    free = rest & (above < 0)
    cls[free & (near <= 30)] = 3
    cls[free & (near > 30) & (near <= 60)] = 4
    cls[free & (near > 60)] = 5
    cls[miss & space & voted_out] = 6
    return cls


def case(img: np.ndarray, truth: Any, beyond: np.ndarray, depth_slices: int, vox: tuple[float, float, float],
         rec: dict[str, Any]) -> dict[str, Any]:
    """One image: the missed true void by class, depth and height; the false void by stage and phase."""
    rec.clear()
    res = segment_volume(img, voxel_size_nm=vox, method="auto")
    if rec.get("calls") != 1 or "grown" not in rec or len(rec["downs"]) < 1:
        raise RuntimeError("expected one split call with seeds, tails and a vote (one chunk)")
    nz = truth.labels.shape[0]
    cat = truth.regions == REGIONS["cathode"]
    void = (truth.labels == PHASES["void"]) & (truth.regions != REGIONS["frame"])
    true = void & cat
    final = (np.asarray(res.phases) == res.phase_names["void"]) & cat
    depth, height, run = (a[:nz] for a in column_runs(np.concatenate([void, beyond])))
    seeds, space = rec["seeds"], rec["space"]
    tails = rec["downs"][0]
    ring = rec["downs"][1] if len(rec["downs"]) > 1 else np.zeros_like(tails)
    ceiling = rec["ceiling"] if rec["ceiling"] is not None else np.zeros_like(tails)
    lit = rec["lit"] if rec["lit"] is not None else np.zeros_like(tails)
    above = core_above(void, seeds)
    cored = np.zeros(int(run.max()) + 1, bool)
    cored[run[seeds & void]] = True
    cored[0] = False
    run_cored = cored[run]
    miss = true & ~final
    cls = missed_class(miss, space, rec["grown"] & ~rec["voted"], above, in_plane_distance(final, vox), depth_slices)

    def by(values: np.ndarray, mask: np.ndarray) -> list[int]:
        v = values[mask]
        return [int((v == k).sum()) for k in range(STEPS)] + [int((v >= STEPS).sum())]

    missed = {c: {"voxels": int((cls == k).sum()), "depth": by(depth, cls == k), "cut": int(((cls == k) & (depth < 0)).sum()),
                  "height": by(height, cls == k)} for k, c in enumerate(CLASSES)}
    in_cored = true & run_cored
    share = {"depth": [[int(((depth == k) & in_cored).sum()), int(((depth == k) & in_cored & miss).sum())] for k in range(STEPS)],
             "height": [[int(((height == k) & in_cored).sum()), int(((height == k) & in_cored & miss).sum())] for k in range(STEPS)]}
    stage = np.full(true.shape, -1)
    grown_pre = rec["grown"]
    for k, m in enumerate((seeds, tails, ring, ceiling, grown_pre & ~(seeds | tails | ring | ceiling | lit), lit)):
        stage[(stage < 0) & m] = k
    stage[(stage < 0) & final] = len(ADDED) - 1
    false = final & ~true
    added = {a: {"voxels": int((false & (stage == k)).sum()),
                 "truth": {p: int((false & (stage == k) & (truth.labels == PHASES[p])).sum()) for p in ("electrolyte", "binder", "active")},
                 "taken": int((final & (stage == k)).sum())} for k, a in enumerate(ADDED)}
    ncat = int(cat.sum())
    return {"voxel_nm": list(vox), "shine_slices": depth_slices, "true_voxels": int(true.sum()), "found": int((final & true).sum()),
            "false": int(false.sum()), "cathode_voxels": ncat, "void_fraction": [float(final.sum() / ncat), float(true.sum() / ncat)],
            "missed": missed, "cored_runs": share, "false_by_stage": added}


def markdown(out: list[dict[str, Any]], command: str) -> str:
    lines = results_header("Void split: where along its column the true void is missed (issue 7)", command, __doc__)
    for r in out:
        vz = r["voxel_nm"][0]
        steps = [f"{k * vz:.0f}" for k in range(STEPS)] + [f">={STEPS * vz:.0f}"]
        nt, vf = r["true_voxels"], r["void_fraction"]
        lines += [f"## {r['preset']} seed {r['seed']}, {r['stage']}", "",
                  f"void fraction {vf[0]:.4f} / truth {vf[1]:.4f}; true void {nt}, found {r['found']}, missed {nt - r['found']}, "
                  f"false {r['false']} ({r['false'] / r['cathode_voxels']:.4f} of the cathode); shine-through {r['shine_slices']} slices "
                  f"({r['shine_slices'] * vz:.0f} nm)", "",
                  "Missed true void by class, by depth below the run's first face slice (nm; runs cut by the stack's first slice "
                  "apart) and by height above its floor (nm):", "",
                  "| class | voxels | share of true void | depth " + " / ".join(steps) + " / cut | height " + " / ".join(steps) + " |",
                  "|---|---|---|---|---|"]
        for c in CLASSES:
            m = r["missed"][c]
            lines.append(f"| {c} | {m['voxels']} | {m['voxels'] / nt:.3f} | " + " / ".join(map(str, m["depth"])) + f" / {m['cut']} | "
                         + " / ".join(map(str, m["height"])) + " |")
        sh = r["cored_runs"]
        lines += ["", "Runs holding a dark core: share of their voxels missed by depth (the ceiling first) and by height "
                  "(the floor first):", "", "| nm | " + " | ".join(steps[:-1]) + " |", "|---|" + "---|" * STEPS]
        for key in ("depth", "height"):
            lines.append(f"| {key} | " + " | ".join(f"{m / max(n, 1):.2f} ({n})" for n, m in sh[key]) + " |")
        lines += ["", "False void by the stage that first added it (and what the split took at that stage):", "",
                  "| stage | taken | false | truly electrolyte / binder / active |", "|---|---|---|---|"]
        for a in ADDED:
            f = r["false_by_stage"][a]
            t = f["truth"]
            lines.append(f"| {a} | {f['taken']} | {f['voxels']} | {t['electrolyte']} / {t['binder']} / {t['active']} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = phantom_args(__doc__.splitlines()[0], seeds="0,1")
    ap.add_argument("--stages", default="corrected,oracle")
    args = ap.parse_args()
    rec = record_split()
    out = []
    for preset in args.presets.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            ph = make_phantom(preset, slices=args.slices, shape=(args.size, args.size), seed=seed, artefacts="all",
                              frame=True)
            plan = plan_phantom(preset, slices=args.slices, shape=(args.size, args.size), seed=seed, artefacts="all",
                                frame=True)
            beyond = render_void(plan, range(args.slices, args.slices + 2 * plan.shine_slices), (0.0, 0.0, 0.0))
            for stage in args.stages.split(","):
                if stage == "corrected":
                    img, tr, _ = real_correct(ph)
                    y0, y1, x0, x1 = tr.box
                    bey = beyond[:, y0:y1, x0:x1]
                else:
                    img, tr, bey = oracle_correct(ph), ph, beyond
                r = case(img, tr, bey, plan.shine_slices, ph.voxel_size_nm, rec)
                out.append({"preset": preset, "seed": seed, "stage": stage, **r})
                print(preset, seed, stage, r["void_fraction"], {c: r["missed"][c]["voxels"] for c in CLASSES}, flush=True)
    command = "PYTHONPATH=. python benchmarks/void_columns.py " + " ".join(sys.argv[1:])
    save("void_columns", {"machine": machine(), "command": command, "cases": out}, markdown(out, command))


if __name__ == "__main__":
    main()
