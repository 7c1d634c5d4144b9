"""Where the separator errors of the unsupervised segmentation lie (issue 7).

    PYTHONPATH=. python benchmarks/separator_errors.py [--slices 24 --size 192] [--seeds 0,1]
        [--presets diglyme,carbonate] [--stages corrected,oracle-corrected]

The separator phase (its fibres; its pores are electrolyte) of ``segment_volume(..., method="auto")``
against the phantom's truth, on the benchmark's corrected stack (:func:`segmentation.real_correct`)
and on the oracle-corrected one:

- the missed separator voxels by the label they got and the false ones by their true phase, each
  by place: within two voxels (along the stacking axis) of the true anode region (beside the SEI),
  of the true cathode region (beside the cathode), or inside the separator;
- the columns grouped by what lies just beyond the true SEI (a pore, a fibre, a particle: the
  SEI grown through the separator onto the cathode) and by the true separator thickness: the mean
  (signed) and mean absolute error of the ``sei|separator`` and ``separator|cathode`` surfaces
  there, and the separator voxels missed and false in those columns;
- the separator Dice each class would give were it right (the truth put in its place), and with
  the true ``sei|separator`` / ``separator|cathode`` surfaces put in place of the found ones (the
  segmentation run again with those heights): which cause is worth fixing first.

The stacking axis is the image rows (the phantom's, anode on top).
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
from scipy import ndimage as ndi

from volrecon.phases import PHASES, REGIONS
from volrecon.sample import make_phantom
from volrecon.sample.oracle import oracle_correct
from volrecon.segment import api, segment_volume

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import phantom_args, save  # noqa: E402
from segmentation import real_correct, truth_heights  # noqa: E402

THICKNESS_CLASSES = ((0, 3), (3, 5), (5, 8), (8, 10_000))
"""True separator thickness classes (rows) of the column table."""

NEAR = 2.0
"""Rows from the true anode / cathode region within which an error counts as beside it."""


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    s = int(a.sum() + b.sum())
    return float(2 * (a & b).sum() / s) if s else float("nan")


def _places(regions: np.ndarray) -> dict[str, np.ndarray]:
    """Beside the SEI (true anode region), beside the cathode, inside the separator."""
    near_a = ndi.distance_transform_edt(regions != REGIONS["anode"]) <= NEAR
    near_c = ndi.distance_transform_edt(regions != REGIONS["cathode"]) <= NEAR
    return {"beside the SEI": near_a, "beside the cathode": near_c & ~near_a, "inside": ~near_a & ~near_c}


def _by_place(mask: np.ndarray, places: Mapping[str, np.ndarray]) -> dict[str, int]:
    return {k: int((mask & p).sum()) for k, p in places.items()}


def with_true_surfaces(truth, names: tuple[str, ...]) -> Callable[[], Any]:
    """A context-free patch: :func:`segment_volume`'s layers get the true ``names`` surfaces in
    the columns that are specimen from the cap down; returns the function that undoes it."""
    heights, valid = truth_heights(truth)
    det, sei = api.detect_layers, api.sei_outer_surface

    def put(lay):
        h = dict(lay.heights)
        for k in names:
            if h.get(k) is not None:
                h[k] = np.where(valid, heights[k].astype(float), h[k])
        return replace(lay, heights=h)

    api.detect_layers = lambda *a, **k: put(det(*a, **k))

    def sei_patched(*a, **k):
        lay, info = sei(*a, **k)
        return put(lay), info

    api.sei_outer_surface = sei_patched

    def undo() -> None:
        api.detect_layers, api.sei_outer_surface = det, sei
    return undo


def separator_errors(image: np.ndarray, truth, voxel_size_nm) -> dict[str, Any]:
    """The separator errors of the unsupervised segmentation of ``image`` against ``truth``
    (``labels``, ``regions`` of the phantom, cut as the image); see the module docstring."""
    seg = segment_volume(image, voxel_size_nm=voxel_size_nm, method="auto")
    ph, nm = np.asarray(seg.phases), seg.phase_names
    inv, tinv = {v: k for k, v in nm.items()}, {v: k for k, v in PHASES.items()}
    lab, reg = truth.labels, truth.regions
    spec = reg != REGIONS["frame"]
    ts, ps = (lab == PHASES["separator"]) & spec, (ph == nm["separator"]) & spec
    missed, false = ts & ~ps, ps & ~ts
    places = _places(reg)
    n_t, n_p, n_tp = int(ts.sum()), int(ps.sum()), int((ts & ps).sum())
    out: dict[str, Any] = {"dice": _dice(ts, ps), "missed": {}, "false": {}, "dice_if_fixed": {}}
    for v in np.unique(ph[missed]):
        m = missed & (ph == v)
        out["missed"][inv.get(int(v), str(v))] = _by_place(m, places)
        out["dice_if_fixed"][f"separator labelled {inv.get(int(v), str(v))}"] = 2 * (n_tp + int(m.sum())) / (n_t + n_p + int(m.sum()))
    for v in np.unique(lab[false]):
        m = false & (lab == v)
        out["false"][tinv.get(int(v), str(v))] = _by_place(m, places)
        out["dice_if_fixed"][f"{tinv.get(int(v), str(v))} labelled separator"] = 2 * n_tp / (n_t + n_p - int(m.sum()))
    # columns: what lies beyond the true SEI, and the true separator's thickness
    th, valid = truth_heights(truth)
    vy = float(voxel_size_nm[1])
    found = {k: np.asarray(seg.interfaces["heights_nm"][k]) / vy for k in ("sei|separator", "separator|cathode")}
    zz, xx = np.indices(th["sei|separator"].shape)
    beyond = lab[zz, np.clip(th["sei|separator"], 0, lab.shape[1] - 1), xx]
    thick = th["separator|cathode"] - th["sei|separator"]
    miss_c, false_c = missed.sum(axis=1), false.sum(axis=1)
    rows = []
    for v in np.unique(beyond[valid]):
        for lo, hi in THICKNESS_CLASSES:
            m = valid & (beyond == v) & (thick >= lo) & (thick < hi)
            if m.sum() < 20:
                continue
            row = {"beyond the SEI": tinv.get(int(v), str(v)), "thickness": [lo, hi], "columns": int(m.sum()),
                   "true separator": int(ts.sum(axis=1)[m].sum()), "missed": int(miss_c[m].sum()), "false": int(false_c[m].sum())}
            for k, h in found.items():
                e = (h - th[k])[m]
                row[k] = [float(e.mean()), float(np.abs(e).mean())]
            rows.append(row)
    out["columns"] = rows
    return out


def true_surface_dice(image: np.ndarray, truth, voxel_size_nm) -> dict[str, float]:
    """Separator Dice with the true ``sei|separator``, ``separator|cathode`` or both put in place."""
    out = {}
    spec = truth.regions != REGIONS["frame"]
    for names in (("sei|separator",), ("separator|cathode",), ("sei|separator", "separator|cathode")):
        undo = with_true_surfaces(truth, names)
        try:
            seg = segment_volume(image, voxel_size_nm=voxel_size_nm, method="auto")
        finally:
            undo()
        ph = np.asarray(seg.phases)
        out[" and ".join(names)] = _dice((ph == seg.phase_names["separator"]) & spec, (truth.labels == PHASES["separator"]) & spec)
    return out


def markdown(results: Mapping[str, Mapping[str, Any]], command: str) -> str:
    """The results as a markdown page."""
    lines = ["# Separator errors of the unsupervised segmentation", "", f"Command: `{command}`", "",
             "Separator phase (fibres) of `segment_volume(method='auto')` against the phantom's truth. Missed: true "
             "separator given another label; false: labelled separator where the truth is another phase; by place "
             f"(within {NEAR:g} rows of the true anode region, of the true cathode region, inside).", ""]
    for tag, r in results.items():
        lines += [f"## {tag}: separator Dice {r['dice']:.4f}", "", "| error | beside the SEI | beside the cathode | inside | Dice were it right |",
                  "|---|---|---|---|---|"]
        for kind, key in (("missed", "separator labelled {}"), ("false", "{} labelled separator")):
            for phase, by in sorted(r[kind].items(), key=lambda kv: -sum(kv[1].values())):
                lines.append(f"| {key.format(phase)} | {by['beside the SEI']} | {by['beside the cathode']} | {by['inside']} | "
                             f"{r['dice_if_fixed'][key.format(phase)]:.4f} |")
        lines += ["", "| beyond the true SEI | separator rows | columns | true separator voxels | missed | false | "
                  "sei\\|separator error (mean, mean abs, rows) | separator\\|cathode error |", "|---|---|---|---|---|---|---|---|"]
        for c in r["columns"]:
            lo, hi = c["thickness"]
            rng = f"{lo}-{hi}" if hi < 10_000 else f"{lo}+"
            lines.append(f"| {c['beyond the SEI']} | {rng} | {c['columns']} | {c['true separator']} | {c['missed']} | {c['false']} | "
                         f"{c['sei|separator'][0]:+.2f}, {c['sei|separator'][1]:.2f} | {c['separator|cathode'][0]:+.2f}, {c['separator|cathode'][1]:.2f} |")
        if "true_surfaces" in r:
            lines += ["", "Separator Dice with the true surfaces put in place: " +
                      "; ".join(f"{k} {v:.4f}" for k, v in r["true_surfaces"].items())]
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = phantom_args()
    ap.add_argument("--stages", default="corrected,oracle-corrected")
    ap.add_argument("--no-true-surfaces", action="store_true", help="skip the runs with the true surfaces put in place")
    args = ap.parse_args()
    results = {}
    for seed in (int(s) for s in args.seeds.split(",")):
        for preset in args.presets.split(","):
            ph = make_phantom(preset, slices=args.slices, shape=(args.size, args.size), seed=seed, artefacts="all", frame=True)
            for stage in args.stages.split(","):
                img, truth = (real_correct(ph)[:2]) if stage == "corrected" else (oracle_correct(ph), ph)
                tag = f"{preset} {args.slices}x{args.size} seed {seed}, {stage}"
                results[tag] = separator_errors(img, truth, ph.voxel_size_nm)
                if not args.no_true_surfaces:
                    results[tag]["true_surfaces"] = true_surface_dice(img, truth, ph.voxel_size_nm)
                print(tag, f"separator Dice {results[tag]['dice']:.4f}", flush=True)
    command = "PYTHONPATH=. python benchmarks/separator_errors.py " + " ".join(sys.argv[1:])
    save("separator_errors", {"args": vars(args), "results": results}, markdown(results, command.strip()))


if __name__ == "__main__":
    main()
