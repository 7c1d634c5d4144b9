"""Where the cathode's true binder is read as active, and which step of the unsupervised method put it there (issue 7).

    PYTHONPATH=. python benchmarks/binder_active.py [--slices 24 --size 192] [--seeds 0,1]
        [--presets diglyme,carbonate] [--stages corrected,oracle]

On the diglyme phantoms the cathode's binder reads short mostly by true binder read as active
(``binder_errors.md``: b->a 4 400-6 400 voxels against a->b 140-460; carbonate balanced).  For each
phantom (``corrected``: :func:`segmentation.real_correct`; ``oracle``: the oracle-corrected stack) the
stack is segmented by ``auto`` with the labels kept after each step of ``segment.api._regional_phases``
that can move a cathode voxel between binder and active, and, in the true cathode region, counted:

- ``b->a`` and ``a->b`` (true binder read as active, true active read as binder) in the final labels;
- ``b->a`` by in-plane distance to the nearest true particle (1 / 2 / 3 / 4+ px; 1: the particle's
  edge voxel's neighbour, where the probe blur and the edge brightening lift the binder);
- ``b->a`` by depth along the milling axis to the nearest true particle voxel of the same column,
  deeper in the stack (1 / 2 / 3+ slices, or none within :data:`DEPTH_MAX`): binder in front of a particle;
- ``b->a`` and ``a->b`` by the step that last changed the voxel: ``threshold`` (never changed after
  the regional thresholds, :func:`volrecon.segment.regional.classify_regions` on the rim-corrected
  grey), ``particle edges`` (:func:`volrecon.segment.particle_edges._particle_edges`),
  ``contacts/voids`` (the separator contacts and the void split), ``refine``
  (:func:`volrecon.segment.api._forward_refined`), ``cleanup`` (the small pieces' cleanup and what
  follows it);
- the labels' and the grey's medians: the threshold step's binder | active cut and, on the rim-corrected
  grey the cathode is cut on, the true binder's median at in-plane distance 1 / 2 / 3+ from a particle
  and the true active's median, with the share of each read over the cut (``b over``).

Writes ``results/binder_active.json`` and ``.md`` (``VOLRECON_BENCH_RESULTS`` sends them elsewhere).
"""

from __future__ import annotations

import argparse
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import dask.array as da
import numpy as np

from volrecon.phases import PHASES, REGIONS
from volrecon.sample import make_phantom
from volrecon.sample.oracle import oracle_correct
from volrecon.segment import api, segment_volume

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import results_header, stage_grid_main  # noqa: E402
from binder_errors import _in_plane_distance  # noqa: E402
from segmentation import real_correct  # noqa: E402

DEPTH_MAX = 3
"""Slices deeper in the stack searched for a particle in front of which a binder voxel lies."""
STEPS = ("threshold", "particle edges", "contacts/voids", "refine", "cleanup")
"""The steps a voxel's last change is attributed to, in their order."""


def _np(a: Any) -> np.ndarray:
    return np.asarray(a.compute() if isinstance(a, da.Array) else a)


@contextmanager
def recorded_steps() -> Iterator[dict[str, np.ndarray]]:
    """``segment.api``'s steps wrapped so that the labels before and after each are kept (computed)."""
    snaps: dict[str, np.ndarray] = {}
    saved = {n: getattr(api, n) for n in ("_particle_edges", "_cathode_voids", "_forward_refined", "classify_regions",
                                          "_auto_particle_edge_rule")}

    def rule(*a: Any, **k: Any) -> Any:
        out = saved["_auto_particle_edge_rule"](*a, **k)
        snaps["threshold"] = _np(a[3])
        snaps["_rule"] = np.asarray(out is not None)
        return out

    def edges(out: Any, grey: Any, *a: Any, **k: Any) -> Any:
        res = saved["_particle_edges"](out, grey, *a, **k)
        snaps["particle edges"] = _np(res)
        snaps["_edge_grey"] = _np(grey)
        return res

    def voids(src: Any, reg: Any, out: Any, **k: Any) -> Any:
        snaps["_before voids"] = _np(out)
        res = saved["_cathode_voids"](src, reg, out, **k)
        snaps["contacts/voids"] = _np(res)
        return res

    def refined(src: Any, reg: Any, out: Any, **k: Any) -> Any:
        res = saved["_forward_refined"](src, reg, out, **k)
        snaps["refine"] = _np(res)
        return res

    def classify(g: Any, r: Any, b: Any, **k: Any) -> Any:
        if "cathode_grey" in k:
            snaps.setdefault("_cut", np.asarray(k["thresholds"]["cathode"][1]))
        return saved["classify_regions"](g, r, b, **k)

    for n, f in (("_particle_edges", edges), ("_cathode_voids", voids), ("_forward_refined", refined),
                 ("classify_regions", classify), ("_auto_particle_edge_rule", rule)):
        setattr(api, n, f)
    try:
        yield snaps
    finally:
        for n, f in saved.items():
            setattr(api, n, f)


def last_step(snaps: dict[str, np.ndarray], final: np.ndarray) -> np.ndarray:
    """Per voxel, the index in :data:`STEPS` of the last step whose output differs from its input."""
    chain = [snaps.get("threshold")]
    chain.append(snaps.get("particle edges", chain[-1]))
    chain.append(snaps.get("contacts/voids", chain[-1]))
    chain.append(snaps.get("refine", chain[-1]))
    chain.append(final)
    step = np.zeros(final.shape, np.int8)
    for i in range(1, len(chain)):
        step[chain[i] != chain[i - 1]] = i
    return step


def depth_in_front(active: np.ndarray) -> np.ndarray:
    """Slices (1..:data:`DEPTH_MAX`) to the nearest ``active`` voxel deeper in the same column; 0 where none."""
    out = np.zeros(active.shape, np.int8)
    for d in range(DEPTH_MAX, 0, -1):
        deeper = np.zeros_like(active)
        deeper[:-d] = active[d:]
        out[deeper] = d
    return out


def _counts(key: np.ndarray, mask: np.ndarray, n: int) -> list[int]:
    return [int(c) for c in np.bincount(key[mask], minlength=n)[:n]]


def binder_active(snaps: dict[str, np.ndarray], final: np.ndarray, names: dict[str, int], labels: np.ndarray,
                  regions: np.ndarray) -> dict[str, Any]:
    """The counts of the module docstring for one segmentation against its truth."""
    cat = regions == REGIONS["cathode"]
    tb, ta = cat & (labels == PHASES["binder"]), cat & (labels == PHASES["active"])
    b2a, a2b = tb & (final == names["active"]), ta & (final == names["binder"])
    dist = np.minimum(_in_plane_distance(labels == PHASES["active"]), 4).astype(np.int16)
    step = last_step(snaps, final)
    out: dict[str, Any] = {
        "b->a": int(b2a.sum()), "a->b": int(a2b.sum()),
        "b->a by distance": _counts(dist, b2a, 5)[1:],
        "binder by distance": _counts(dist, tb, 5)[1:],
        "b->a by depth": _counts(depth_in_front(labels == PHASES["active"]), b2a, DEPTH_MAX + 1),
        "b->a by step": dict(zip(STEPS, _counts(step, b2a, len(STEPS)))),
        "a->b by step": dict(zip(STEPS, _counts(step, a2b, len(STEPS)))),
        "particle edge rule": bool(snaps.get("_rule", False)),
    }
    for key in ("threshold", "particle edges"):
        if key in snaps:
            s = snaps[key]
            out[f"b->a after {key}"] = int((tb & (s == names["active"])).sum())
            out[f"a->b after {key}"] = int((ta & (s == names["binder"])).sum())
    if "_cut" in snaps and "_cat_grey" in snaps:
        g, cut = snaps["_cat_grey"], float(snaps["_cut"])
        near = [tb & (dist == 1), tb & (dist == 2), tb & (dist >= 3), ta]
        out["cut"] = cut
        out["medians"] = [float(np.median(g[m])) if m.any() else float("nan") for m in near]
        out["over cut"] = [float((g[m] > cut).mean()) if m.any() else float("nan") for m in near]
    return out


def _cat_grey_recorder(snaps: dict[str, np.ndarray]) -> Any:
    """``api._cathode_rim_grey`` wrapped to keep the rim-corrected grey the cathode is cut on."""
    saved = api._cathode_rim_grey

    def wrapped(*a: Any, **k: Any) -> Any:
        grey, thr = saved(*a, **k)
        if grey is not None:
            snaps["_cat_grey"] = _np(grey)
        return grey, thr

    return saved, wrapped


def run_case(preset: str, seed: int, stage: str, args: argparse.Namespace) -> dict[str, Any]:
    """``auto`` on one phantom and correction, its steps recorded."""
    ph = make_phantom(preset, slices=args.slices, shape=(args.size, args.size), seed=seed, artefacts="all", frame=True)
    img, truth = (real_correct(ph)[:2]) if stage == "corrected" else (oracle_correct(ph), ph)
    with recorded_steps() as snaps:
        saved, wrapped = _cat_grey_recorder(snaps)
        api._cathode_rim_grey = wrapped
        try:
            res = segment_volume(img, voxel_size_nm=ph.voxel_size_nm, method="auto")
        finally:
            api._cathode_rim_grey = saved
    row = {"preset": preset, "seed": seed, "stage": stage,
           "auto": binder_active(snaps, np.asarray(res.phases), dict(res.phase_names), truth.labels, truth.regions)}
    print(row, flush=True)
    return row


def table(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    """The results page."""
    cmd = (f"PYTHONPATH=. python benchmarks/binder_active.py --slices {args.slices} --size {args.size} "
           f"--seeds {args.seeds} --presets {args.presets} --stages {args.stages}")
    lines = results_header("Where the cathode's binder is read as active (issue 7)", cmd, __doc__)
    lines += ["Voxels of the true cathode, method auto.  By distance: b->a at in-plane distance 1 / 2 / 3 / 4+ px from a "
              "true particle (true binder there in brackets).  By depth: none / 1 / 2 / 3 slices to a particle deeper in "
              "the column.  By step: " + " / ".join(STEPS) + " (b->a; a->b).  After threshold / after particle edges: "
              "b->a, a->b.  Grey: the binder | active cut; medians of true binder at 1 / 2 / 3+ px and of active "
              "(share over the cut).", "",
              "| preset | seed | stage | b->a / a->b | by distance | by depth | by step | after threshold / edges | grey |",
              "|---" * 9 + "|"]
    for r in rows:
        m = r["auto"]
        dist = " / ".join(f"{b} ({t})" for b, t in zip(m["b->a by distance"], m["binder by distance"]))
        steps = " / ".join(f"{m['b->a by step'][s]}; {m['a->b by step'][s]}" for s in STEPS)
        after = " / ".join(f"{m.get(f'b->a after {k}', '-')}, {m.get(f'a->b after {k}', '-')}"
                           for k in ("threshold", "particle edges"))
        grey = (f"{m['cut']:.3f}: " + " / ".join(f"{v:.3f} ({100 * s:.0f} %)" for v, s in zip(m["medians"], m["over cut"]))
                if "cut" in m else "")
        lines.append(f"| {r['preset']} | {r['seed']} | {r['stage']} | {m['b->a']} / {m['a->b']} | {dist} | "
                     f"{' / '.join(map(str, m['b->a by depth']))} | {steps} | {after} | {grey} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Command line: :func:`_common.stage_grid_main`."""
    stage_grid_main(__doc__, "binder_active", run_case, table)


if __name__ == "__main__":
    main()
