"""Where the separator errors of the unsupervised segmentation (and of the classifier) lie (issue 7).

    PYTHONPATH=. python benchmarks/separator_errors.py [--slices 24 --size 192] [--seeds 0,1]
        [--presets diglyme,carbonate] [--stages corrected,oracle-corrected] [--methods auto,classifier]

The separator phase (its fibres; its pores are electrolyte) of ``segment_volume(..., method="auto")``
(and, with ``--methods``, of the benchmark's classifier: a forest trained from
:func:`volrecon.segment.scribbles.synthetic_scribbles` of the truth, as in :mod:`segmentation`)
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
  segmentation run again with those heights): which cause is worth fixing first;
- the missed and false voxels by the region the layers put them in (a true fibre outside the found
  separator region is a layer-cut error, one inside it labelled otherwise a phase error within the
  right region);
- the true fibres by depth in the mat: rows after the true ``sei|separator`` and rows before the
  true ``separator|cathode``, and the share missed at each;
- the layer guess at the cut: the shares of the first guess's classes (its grey, denoised as
  ``parameters["layer_guess"]`` says, cut at its final thresholds) and of the true fibres and
  particles on the rows around the true ``separator|cathode``, with the guess's thresholds on a
  common grey scale (the separator's pore and the cathode's particles of ``separator_contacts``
  mapped to 0.22 and 0.66, the phantom's levels): whether a stack's cut differs from another's
  through a different guess (``auto`` only);
- with two methods, the one against the other on the same stack: how far apart their
  ``sei|separator`` and ``separator|cathode`` surfaces are (mean absolute difference, share of
  columns on the same row), and the true fibres one method gets and the other misses (and the
  false fibres one adds and the other does not), by the label and the region the losing method gave
  them: whether they differ by the layer cut or by the phase decision within the same region.

The stacking axis is the image rows (the phantom's, anode on top).
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np
from scipy import ndimage as ndi

from volrecon.phases import PHASES, REGIONS
from volrecon.sample import make_phantom
from volrecon.sample.oracle import oracle_correct
from volrecon.segment import api, segment_volume, train_classifier
from volrecon.segment.regional import smooth
from volrecon.segment.scribbles import synthetic_scribbles

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import phantom_args, save  # noqa: E402
from segmentation import real_correct, truth_heights  # noqa: E402

THICKNESS_CLASSES = ((0, 3), (3, 5), (5, 8), (8, 10_000))
"""True separator thickness classes (rows) of the column table."""

NEAR = 2.0
"""Rows from the true anode / cathode region within which an error counts as beside it."""

DEPTH_ROWS = 8
"""Rows of the mat's depth table counted from each of its true surfaces (the last one gathers the rest)."""

GUESS_OFFSETS = tuple(range(-4, 3))
"""Rows from the true ``separator|cathode`` (negative: the separator's side) of the layer-guess table."""

GUESS_CLASSES = ("electrolyte", "sodium", "separator", "active", "collector")
"""The layer guess's classes, dark to bright (``api.OTSU_ORDER``)."""

COMMON_SCALE = (0.22, 0.66)
"""The phantom's electrolyte and active levels, onto which a stack's separator pore and particle levels
(``parameters["separator_contacts"]``) map its grey for the guess's thresholds."""


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


def _by_region(mask: np.ndarray, labels: np.ndarray, regions: np.ndarray, names: Mapping[int, str]) -> dict[str, int]:
    """Voxels of ``mask`` per ``label in region`` pair (``names``: label value -> phase name)."""
    rinv = {v: k for k, v in REGIONS.items()}
    pairs = labels[mask].astype(np.int64) * 256 + regions[mask]
    vals, counts = np.unique(pairs, return_counts=True)
    return {f"{names.get(int(v) // 256, str(int(v) // 256))} in {rinv.get(int(v) % 256, str(int(v) % 256))}": int(c)
            for v, c in sorted(zip(vals, counts), key=lambda vc: -vc[1])}


def mat_depth(fibres: np.ndarray, found: np.ndarray, top: np.ndarray, bottom: np.ndarray) -> dict[str, list[list[int]]]:
    """True fibre voxels (``fibres``, stacking axis 1) and those missed (not in ``found``) by row after
    the true ``top`` surface and by row before the true ``bottom`` one (``(z, x)`` heights), the
    last of :data:`DEPTH_ROWS` rows gathering the rest: ``{"from the SEI": [[n, missed], ...],
    "from the cathode": ...}``."""
    zz, yy, xx = np.nonzero(fibres)
    ok = found[zz, yy, xx]
    out = {}
    for key, d in (("from the SEI", yy - top[zz, xx]), ("from the cathode", bottom[zz, xx] - 1 - yy)):
        d = np.clip(d, 0, DEPTH_ROWS - 1)
        out[key] = [[int((d == k).sum()), int(((d == k) & ~ok).sum())] for k in range(DEPTH_ROWS)]
    return out


def guess_at_cut(image: np.ndarray, truth, seg, voxel_size_nm) -> dict[str, Any]:
    """The layer guess on the rows around the true ``separator|cathode`` (:data:`GUESS_OFFSETS`) over the
    columns that are specimen from the cap down: its class shares, the true fibre and particle shares,
    and its thresholds on the common grey scale (:data:`COMMON_SCALE`).  The guess's grey is the stack
    denoised as ``parameters["layer_guess"]["smooth_nm"]`` says, in one piece (the pipeline's is chunked
    with overlap: the same values up to rounding), cut at the thresholds it was last cut at."""
    lg = seg.parameters["layer_guess"]
    t = np.asarray(lg.get("below_sei", lg["thresholds"]), float)
    grey = smooth(np.asarray(image, np.float32), float(lg["smooth_nm"]), voxel_size_nm)
    heights, valid = truth_heights(truth)
    h = heights["separator|cathode"]
    zz, xx = np.nonzero(valid)
    rows = {}
    for off in GUESS_OFFSETS:
        yy = np.clip(h[zz, xx] + off, 0, grey.shape[1] - 1)
        cls = np.digitize(grey[zz, yy, xx], t)
        lab = truth.labels[zz, yy, xx]
        rows[f"{off:+d}"] = {**{c: float((cls == i).mean()) for i, c in enumerate(GUESS_CLASSES)},
                             "true fibres": float((lab == PHASES["separator"]).mean()),
                             "true particles": float((lab == PHASES["active"]).mean())}
    out: dict[str, Any] = {"rows": rows, "thresholds": [float(v) for v in t]}
    c = seg.parameters.get("separator_contacts")
    if c:
        lo, hi = COMMON_SCALE
        out["thresholds_common"] = [lo + (v - c["pore_level"]) / (c["active_level"] - c["pore_level"]) * (hi - lo) for v in t]
    vy = float(voxel_size_nm[1])
    e = (np.asarray(seg.interfaces["heights_nm"]["separator|cathode"]) / vy - h)[valid]
    out["cut_error"] = [float(e.mean()), float(np.abs(e).mean())]
    return out


METHODS = ("auto", "classifier")
"""The methods this script segments with."""


def segment(image: np.ndarray, truth, voxel_size_nm, method: str) -> Any:
    """``segment_volume`` of ``image`` by ``method``: ``auto``, or ``classifier`` trained as the
    benchmark trains it (synthetic scribbles of ``truth.labels``, seed 1)."""
    if method == "auto":
        return segment_volume(image, voxel_size_nm=voxel_size_nm, method="auto")
    if method != "classifier":
        raise ValueError(f"method {method!r}: use one of {METHODS}")
    clf = train_classifier(image, synthetic_scribbles(truth.labels, seed=1), voxel_size_nm=voxel_size_nm,
                           phase_names=PHASES)
    return segment_volume(image, voxel_size_nm=voxel_size_nm, method="classifier", classifier=clf)


def separator_errors(image: np.ndarray, truth, voxel_size_nm, seg: Any = None) -> dict[str, Any]:
    """The separator errors of the segmentation ``seg`` of ``image`` (default: the unsupervised
    one) against ``truth`` (``labels``, ``regions`` of the phantom, cut as the image); see the
    module docstring."""
    if seg is None:
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
    reg_found = np.asarray(seg.regions)
    out["missed_by_region"] = _by_region(missed, ph, reg_found, inv)
    out["false_by_region"] = _by_region(false, lab, reg_found, tinv)
    out["depth"] = mat_depth(ts & valid[:, None, :], ps, th["sei|separator"], th["separator|cathode"])
    if "layer_guess" in seg.parameters:
        out["guess"] = guess_at_cut(image, truth, seg, voxel_size_nm)
    return out


def methods_compared(segs: Mapping[str, Any], truth, voxel_size_nm) -> dict[str, Any]:
    """Two segmentations of one stack (``method -> result``) against each other: the distance
    between their separator's surfaces over the columns that are specimen from the cap down, and the
    true (false) fibres one gets right and the other wrong, by the label (true phase) and the
    region the loser gave them."""
    (ma, a), (mb, b) = segs.items()
    _, valid = truth_heights(truth)
    vy = float(voxel_size_nm[1])
    out: dict[str, Any] = {"methods": [ma, mb], "surfaces": {}}
    for k in ("sei|separator", "separator|cathode"):
        ha, hb = (np.asarray(s.interfaces["heights_nm"][k]) / vy for s in (a, b))
        d = (ha - hb)[valid]
        out["surfaces"][k] = {"mean": float(d.mean()), "mean_abs": float(np.abs(d).mean()),
                              "same_row": float((np.abs(d) < 0.5).mean())}
    spec = truth.regions != REGIONS["frame"]
    ts = (truth.labels == PHASES["separator"]) & spec
    tinv = {v: k for k, v in PHASES.items()}
    for (m1, s1), (m2, s2) in (((ma, a), (mb, b)), ((mb, b), (ma, a))):
        p1, p2 = (np.asarray(s.phases) == s.phase_names["separator"] for s in (s1, s2))
        ph1, inv1 = np.asarray(s1.phases), {v: k for k, v in s1.phase_names.items()}
        reg1 = np.asarray(s1.regions)
        out[f"{m1} misses, {m2} gets"] = _by_region(ts & ~p1 & p2, ph1, reg1, inv1)
        out[f"{m1} adds, {m2} does not"] = _by_region(p1 & ~ts & ~p2 & spec, truth.labels, reg1, tinv)
    return out


def true_surface_dice(image: np.ndarray, truth, voxel_size_nm, method: str = "auto") -> dict[str, float]:
    """Separator Dice with the true ``sei|separator``, ``separator|cathode`` or both put in place."""
    out = {}
    spec = truth.regions != REGIONS["frame"]
    for names in (("sei|separator",), ("separator|cathode",), ("sei|separator", "separator|cathode")):
        undo = with_true_surfaces(truth, names)
        try:
            seg = segment(image, truth, voxel_size_nm, method)
        finally:
            undo()
        ph = np.asarray(seg.phases)
        out[" and ".join(names)] = _dice((ph == seg.phase_names["separator"]) & spec, (truth.labels == PHASES["separator"]) & spec)
    return out


def compared_markdown(c: Mapping[str, Any]) -> list[str]:
    """The lines of :func:`methods_compared`'s result."""
    ma, mb = c["methods"]
    lines = [f"{ma} against {mb}: " + "; ".join(
        f"{k} {v['mean']:+.2f} rows mean, {v['mean_abs']:.2f} mean abs, {v['same_row']:.2f} of the columns on the same row"
        for k, v in c["surfaces"].items()), ""]
    for key in (f"{ma} misses, {mb} gets", f"{mb} misses, {ma} gets", f"{ma} adds, {mb} does not", f"{mb} adds, {ma} does not"):
        by = c[key]
        lines.append(f"- {key} ({sum(by.values())}): " + ("; ".join(f"{k} {v}" for k, v in by.items()) or "none"))
    return lines + [""]


def markdown(results: Mapping[str, Mapping[str, Any]], command: str) -> str:
    """The results as a markdown page."""
    lines = ["# Separator errors of the unsupervised segmentation", "", f"Command: `{command}`", "",
             "Separator phase (fibres) of `segment_volume(method='auto')` (and of the classifier where the heading "
             "says so) against the phantom's truth. Missed: true "
             "separator given another label; false: labelled separator where the truth is another phase; by place "
             f"(within {NEAR:g} rows of the true anode region, of the true cathode region, inside).", ""]
    for tag, r in results.items():
        if "methods" in r:
            lines += [f"## {tag}", "", *compared_markdown(r)]
            continue
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
        if "missed_by_region" in r:
            lines += ["", "By the region the layers put them in (a fibre outside the found separator region: the layer cut; "
                      "inside it: the phase decision):", "",
                      "- missed (given label in found region): " + "; ".join(f"{k} {v}" for k, v in r["missed_by_region"].items()),
                      "- false (true phase in found region): " + "; ".join(f"{k} {v}" for k, v in r["false_by_region"].items())]
        if "depth" in r:
            lines += ["", "| true fibres by row of the mat | " + " | ".join(str(k) if k < DEPTH_ROWS - 1 else f"{k}+"
                                                                        for k in range(DEPTH_ROWS)) + " |",
                      "|---|" + "---|" * DEPTH_ROWS]
            for key, cells in r["depth"].items():
                lines.append(f"| {key}: fibres / missed | " + " | ".join(f"{n} / {m}" for n, m in cells) + " |")
        if "guess" in r:
            g = r["guess"]
            common = g.get("thresholds_common")
            lines += ["", f"Layer guess at the true separator|cathode (thresholds {', '.join(f'{v:.4g}' for v in g['thresholds'])}"
                      + (f"; common scale {', '.join(f'{v:.3f}' for v in common)}" if common else "")
                      + f"; found cut error mean {g['cut_error'][0]:+.2f}, mean abs {g['cut_error'][1]:.2f} rows):", "",
                      "| row from the cut | " + " | ".join(GUESS_CLASSES) + " | true fibres | true particles |",
                      "|---|" + "---|" * (len(GUESS_CLASSES) + 2)]
            for off, v in g["rows"].items():
                lines.append(f"| {off} | " + " | ".join(f"{v[c]:.2f}" for c in (*GUESS_CLASSES, "true fibres", "true particles")) + " |")
        if "true_surfaces" in r:
            lines += ["", "Separator Dice with the true surfaces put in place: " +
                      "; ".join(f"{k} {v:.4f}" for k, v in r["true_surfaces"].items())]
        lines.append("")
    return "\n".join(lines)


def stacks(args: Any) -> Iterator[tuple[str, Any, Any, Any]]:
    """``(tag, image, truth, phantom)`` per seed, preset and stage (``corrected``: the real correction
    stage, whose crop the truth follows; otherwise the oracle-corrected acquisition)."""
    for seed in (int(s) for s in args.seeds.split(",")):
        for preset in args.presets.split(","):
            ph = make_phantom(preset, slices=args.slices, shape=(args.size, args.size), seed=seed, artefacts="all", frame=True)
            for stage in args.stages.split(","):
                img, truth = (real_correct(ph)[:2]) if stage == "corrected" else (oracle_correct(ph), ph)
                yield f"{preset} {args.slices}x{args.size} seed {seed}, {stage}", img, truth, ph


def main() -> None:
    ap = phantom_args()
    ap.add_argument("--stages", default="corrected,oracle-corrected")
    ap.add_argument("--methods", default="auto", help="comma-separated: auto, classifier")
    ap.add_argument("--no-true-surfaces", action="store_true", help="skip the runs with the true surfaces put in place")
    ap.add_argument("--name", default="separator_errors", help="the results files' name")
    args = ap.parse_args()
    methods = args.methods.split(",")
    results = {}
    for tag, img, truth, ph in stacks(args):
        segs = {}
        for method in methods:
            key = tag if method == "auto" else f"{tag}, {method}"
            segs[method] = seg = segment(img, truth, ph.voxel_size_nm, method)
            results[key] = separator_errors(img, truth, ph.voxel_size_nm, seg)
            if not args.no_true_surfaces:
                results[key]["true_surfaces"] = true_surface_dice(img, truth, ph.voxel_size_nm, method)
            print(key, f"separator Dice {results[key]['dice']:.4f}", flush=True)
        if len(segs) == 2:
            results[f"{tag}: {' against '.join(segs)}"] = methods_compared(segs, truth, ph.voxel_size_nm)
    command = "PYTHONPATH=. python benchmarks/separator_errors.py " + " ".join(sys.argv[1:])
    save(args.name, {"args": vars(args), "results": results}, markdown(results, command.strip()))


if __name__ == "__main__":
    main()
