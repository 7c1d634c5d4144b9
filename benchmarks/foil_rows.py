"""The cathode's rows beside the collector foil (issue 7): the foil's spill fitted against the truth's,
and how those rows are labelled.

The foil's blur and edge rim lift the cathode's first rows beside it (``volrecon.segment.foil_spill``).
Per phantom (both presets, ``--seeds``), correction (the real correction stage, and the oracle's) and
method (``auto``, ``classifier``), at each distance ``d`` = 1..4 voxels from the TRUE foil along the
stacking axis:

- the truth's spill share ``w`` per phase: ``(median_d - median_bulk) / (F - median_bulk)`` of the grey
  denoised as the segmentation denoises it, over the true voxels of that phase (electrolyte, binder,
  active), ``F`` the true collector's median, the bulk the true cathode beyond the reach.  A blur of
  the foil's level lifts every phase by the same share, so the three agree where the model holds;
- the row's true pore share (void + electrolyte) against the bulk's;
- the fitted share (``1 - gain`` of ``parameters["foil_spill"]``, on the found layers), and the fit
  redone on the grey denoised as above (over the whole face: the segmentation's own leaves the
  frame and the walls' rims out, so the refits differ from the fitted share by up to 0.02) and the
  found layers with each statistic of
  ``volrecon.segment.foil_spill.fit_spill`` (``--matches``), and with ``levels``: the bulk's three
  phase levels lifted by one share, the row's weights free (:func:`lifted_share`, this script's);
- active recall and pore Dice of the labels at that distance.

The benchmark's figures of ``benchmarks/segmentation.py`` (``_row``) are computed on the same
segmentations, so one run gives both.  ``--force-match M`` makes both methods fit the spill with
statistic ``M`` (a diagnostic switch, not a setting of the library).

Writes ``foil_rows.json`` and ``foil_rows.md`` under ``VOLRECON_BENCH_RESULTS`` (``--name``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, phantom_args, save  # noqa: E402
from segmentation import _row, dice, real_correct  # noqa: E402

from volrecon.phases import PHASES, REGIONS  # noqa: E402
from volrecon.sample import make_phantom  # noqa: E402
from volrecon.sample.oracle import oracle_correct  # noqa: E402
from volrecon.segment import api, segment_volume, train_classifier  # noqa: E402
from volrecon.segment.foil_spill import (  # noqa: E402
    FOIL_SAMPLE_SLICES, MAX_REACH, MIN_SAMPLES, MIN_SHARE, _fit_foil_spill, foil_distance,
)
from volrecon.segment.regional import smooth  # noqa: E402
from volrecon.segment.scribbles import synthetic_scribbles  # noqa: E402
from volrecon.segment.thresholds import multi_otsu  # noqa: E402
from volrecon._spread import spread_indices  # noqa: E402

STACK_AXIS = 1
"""The phantoms' layers stack along y."""

PORE = (PHASES["void"], PHASES["electrolyte"])


def _forced_fit(match: str | None):
    """``foil_spill._fit_foil_spill`` with its statistic forced to ``match`` (None: the library's own)."""
    original = _forced_fit.original

    def fit(*args: Any, **kwargs: Any):
        if match is not None:
            kwargs["match"] = match
        return original(*args, **kwargs)

    return fit


_forced_fit.original = _fit_foil_spill


def true_shares(grey: np.ndarray, labels: np.ndarray, dist: np.ndarray, foil: float) -> dict[str, list[float]]:
    """Per distance 1..MAX_REACH, the truth's spill share of each phase (NaN under 50 voxels)."""
    out: dict[str, list[float]] = {}
    for name in ("electrolyte", "binder", "active"):
        ph = labels == PHASES[name]
        bulk = grey[ph & (dist == 0)]
        mb = float(np.median(bulk)) if bulk.size >= 50 else float("nan")
        row = []
        for d in range(1, MAX_REACH + 1):
            v = grey[ph & (dist == d)]
            row.append((float(np.median(v)) - mb) / (foil - mb) if v.size >= 50 else float("nan"))
        out[name] = row
    return out


def row_scores(phases: np.ndarray, names: dict[str, int], labels: np.ndarray, dist: np.ndarray) -> dict[str, list[float]]:
    """Per distance 1..MAX_REACH: active recall, pore Dice, labelled and true pore share."""
    pred_pore = np.isin(phases, [names[p] for p in ("void", "electrolyte") if p in names])
    true_pore = np.isin(labels, PORE)
    pred_act, true_act = phases == names["active"], labels == PHASES["active"]
    out: dict[str, list[float]] = {"active_recall": [], "pore_dice": [], "pore_labelled": [], "pore_true": []}
    for d in range(1, MAX_REACH + 1):
        at = dist == d
        out["active_recall"].append(float((pred_act & true_act & at).sum() / max((true_act & at).sum(), 1)))
        out["pore_dice"].append(dice(pred_pore & at, true_pore & at))
        out["pore_labelled"].append(float(pred_pore[at].mean()))
        out["pore_true"].append(float(true_pore[at].mean()))
    return out


LEVEL_CLASSES = 3
"""Phases whose levels :func:`lifted_share` lifts: the bulk's multi-Otsu classes (pore, binder, active)."""

SHARE_STEP = 0.005
"""Step of the shares :func:`lifted_share` tries."""

SHARE_BINS = 128
"""Histogram bins :func:`lifted_share` fits a row's grey on."""

EM_ITERATIONS = 40
"""Iterations of the phases' weights :func:`lifted_share` fits at each share."""


def phase_levels(bulk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Level (median) and spread (scaled median absolute deviation) of each of the bulk's
    :data:`LEVEL_CLASSES` multi-Otsu classes, darkest first."""
    v = np.asarray(bulk, np.float64)
    cls = np.digitize(v, multi_otsu(v, LEVEL_CLASSES, bins=256))
    floor = (float(v.max()) - float(v.min())) / SHARE_BINS
    levels = np.array([np.median(v[cls == c]) for c in range(LEVEL_CLASSES)])
    spreads = np.array([max(1.4826 * float(np.median(np.abs(v[cls == c] - m))), floor) for c, m in enumerate(levels)])
    return levels, spreads


def lifted_share(values: np.ndarray, levels: np.ndarray, spreads: np.ndarray, foil_level: float) -> float:
    """The share ``w`` whose lifted levels ``(1 - w) L + w F`` best explain a row's grey ``values`` as a
    mixture of the bulk's phases (normals of the bulk's spreads) and a flat remainder, every weight
    free: a make-up change moves the weights, the spill the levels.  The highest likelihood over a
    grid of shares (EM for the weights at each)."""
    v = np.asarray(values, np.float64)
    n, edges = np.histogram(v, bins=SHARE_BINS)
    x = 0.5 * (edges[:-1] + edges[1:])
    shares = np.arange(0.0, 0.95, SHARE_STEP)
    means = (1.0 - shares)[:, None] * levels[None, :] + shares[:, None] * float(foil_level)
    dens = np.exp(-0.5 * ((x[None, :, None] - means[:, None, :]) / spreads) ** 2) / (spreads * np.sqrt(2 * np.pi))
    flat = np.full((shares.size, x.size, 1), 1.0 / (edges[-1] - edges[0]))
    dens = np.concatenate([dens, flat], axis=2)
    weights = np.full((shares.size, dens.shape[2]), 1.0 / dens.shape[2])
    for _ in range(EM_ITERATIONS):
        mix = dens * weights[:, None, :]
        weights = (n[None, :, None] * mix / (mix.sum(axis=2, keepdims=True) + 1e-300)).sum(axis=1) / max(n.sum(), 1)
    loglik = (n[None, :] * np.log((dens * weights[:, None, :]).sum(axis=2) + 1e-300)).sum(axis=1)
    return float(shares[int(np.argmax(loglik))])


def levels_fit(grey: np.ndarray, regions: np.ndarray) -> list[float]:
    """The spill's share per distance by :func:`lifted_share` on the sample ``foil_spill._fit_foil_spill`` reads
    (its slices, the found layers), with its rules: while at least ``MIN_SHARE`` and falling."""
    cat, col = REGIONS["cathode"], REGIONS["collector"]
    zs = spread_indices(grey.shape[0], FOIL_SAMPLE_SLICES)
    g, r = grey[zs], regions[zs]
    dist = np.stack([foil_distance(r[i], axis=STACK_AXIS - 1, cathode=cat, collector=col) for i in range(len(zs))])
    keep = r == cat
    g, dist = g[keep].astype(np.float64), dist[keep]
    levels, spreads = phase_levels(g[dist == 0])
    foil = float(np.median(grey[zs][r == col]))
    out: list[float] = []
    for d in range(1, MAX_REACH + 1):
        near = g[dist == d]
        if near.size < MIN_SAMPLES:
            break
        w = lifted_share(near, levels, spreads, foil)
        if not MIN_SHARE <= w < (out[-1] if out else 0.95):
            break
        out.append(w)
    return out


def refits(grey: np.ndarray, regions: np.ndarray, matches: list[str]) -> dict[str, list[float]]:
    """The spill's share per distance fitted on ``grey`` and the found ``regions`` with each statistic
    (``levels``: :func:`levels_fit`)."""
    out = {}
    for m in matches:
        if m == "levels":
            out[m] = levels_fit(grey, regions)
            continue
        params: dict[str, Any] = {}
        spill = _forced_fit.original(da.from_array(grey, chunks=(1, *grey.shape[1:])),
                                     da.from_array(regions, chunks=(1, *grey.shape[1:])),
                                     axis=STACK_AXIS, params=params, match=m)
        out[m] = [1.0 - g for g in spill.gain]
    return out


def measure(res: Any, img: np.ndarray, tr: Any, matches: list[str]) -> dict[str, Any]:
    """The foil rows' figures of one segmentation ``res`` of ``img`` against the truth ``tr``."""
    smooth_nm = float(res.parameters.get("smooth_nm") or res.parameters.get("classifier_boundaries", {}).get("smooth_nm", 10.0))
    grey = smooth(np.asarray(img, np.float32), smooth_nm, tr.voxel_size_nm)
    dist = foil_distance(tr.regions, axis=STACK_AXIS, cathode=REGIONS["cathode"], collector=REGIONS["collector"])
    foil = float(np.median(grey[tr.regions == REGIONS["collector"]]))
    pore = np.isin(tr.labels, PORE)
    fitted = res.parameters.get("foil_spill") or {}
    return {"true_w": true_shares(grey, tr.labels, dist, foil),
            "pore_share_bulk": float(pore[(dist == 0) & (tr.regions == REGIONS["cathode"])].mean()),
            "fitted_w": [1.0 - g for g in fitted.get("gain", [])],
            "refit_w": refits(grey, np.asarray(res.regions), matches),
            "rows": row_scores(np.asarray(res.phases), res.phase_names, tr.labels, dist)}


def run(args: Any) -> list[dict[str, Any]]:
    rows = []
    matches = args.matches.split(",")
    api._fit_foil_spill = _forced_fit(args.force_match or None)
    for seed in (int(s) for s in args.seeds.split(",")):
        for preset in args.presets.split(","):
            ph = make_phantom(preset, slices=args.slices, shape=(args.size, args.size), seed=seed, artefacts="all",
                              frame=True)
            vox = ph.voxel_size_nm
            real, truth, _ = real_correct(ph)
            for stage, img, tr in (("corrected", real, truth), ("oracle", oracle_correct(ph), ph)):
                for method in args.methods.split(","):
                    if method == "classifier":
                        clf = train_classifier(img, synthetic_scribbles(tr.labels, seed=1), voxel_size_nm=vox,
                                               phase_names=PHASES)
                        res = segment_volume(img, voxel_size_nm=vox, method="classifier", classifier=clf)
                    else:
                        res = segment_volume(img, voxel_size_nm=vox, method=method)
                    row = {"seed": seed, "stage": stage, **_row(preset, method, res, tr), **measure(res, img, tr, matches)}
                    rows.append(row)
                    print(_line(row), flush=True)
    return rows


def _f(v: float) -> str:
    return "nan" if v != v else f"{v:.3f}"


def _line(r: dict[str, Any]) -> str:
    c, dc = r["cathode"], r["dice"]
    return (f"{r['preset']} s{r['seed']} {r['stage']} {r['method']}: active {_f(dc['active'])} pore {_f(dc['pore'])} "
            f"collector {_f(dc['collector'])} c|c {_f(r['interface_mean_distance_vox']['cathode|collector'])} "
            f"binder {_f(c['binder'][0])}/{_f(c['binder'][1])} porosity {_f(c['porosity'][0])}/{_f(c['porosity'][1])} | "
            f"recall {' '.join(map(_f, r['rows']['active_recall']))} pore {' '.join(map(_f, r['rows']['pore_dice']))} | "
            f"w fit {' '.join(map(_f, r['fitted_w']))} true(el) {' '.join(map(_f, r['true_w']['electrolyte']))}")


def markdown(rows: list[dict[str, Any]], command: str) -> str:
    lines = ["# Foil rows", "", f"Command: `{command}`", "", __doc__.split("\n\n", 2)[1], "",
             "| preset | seed | stage | method | active | pore | collector | cathode\\|collector | binder | porosity |"
             " active recall d=1..4 | pore Dice d=1..4 | pore share labelled / true d=1..4 (bulk) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        c, dc, rw = r["cathode"], r["dice"], r["rows"]
        share = " ".join(f"{_f(a)}/{_f(b)}" for a, b in zip(rw["pore_labelled"], rw["pore_true"]))
        lines.append(f"| {r['preset']} | {r['seed']} | {r['stage']} | {r['method']} | {_f(dc['active'])} | {_f(dc['pore'])} "
                     f"| {_f(dc['collector'])} | {_f(r['interface_mean_distance_vox']['cathode|collector'])} "
                     f"| {_f(c['binder'][0])} / {_f(c['binder'][1])} | {_f(c['porosity'][0])} / {_f(c['porosity'][1])} "
                     f"| {' '.join(map(_f, rw['active_recall']))} | {' '.join(map(_f, rw['pore_dice']))} "
                     f"| {share} ({_f(r['pore_share_bulk'])}) |")
    lines += ["", "Spill share w per distance: fitted (used), refitted with each statistic, truth per phase.", "",
              "| preset | seed | stage | method | fitted | " + " | ".join(f"refit {m}" for m in rows[0]["refit_w"])
              + " | true electrolyte | true binder | true active |",
              "|---|---|---|---|---|" + "---|" * len(rows[0]["refit_w"]) + "---|---|---|"]
    for r in rows:
        tw = r["true_w"]
        lines.append(f"| {r['preset']} | {r['seed']} | {r['stage']} | {r['method']} | {' '.join(map(_f, r['fitted_w']))} | "
                     + " | ".join(" ".join(map(_f, v)) for v in r["refit_w"].values())
                     + f" | {' '.join(map(_f, tw['electrolyte']))} | {' '.join(map(_f, tw['binder']))} "
                     f"| {' '.join(map(_f, tw['active']))} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = phantom_args(__doc__.split("\n\n")[0])
    ap.add_argument("--methods", default="auto,classifier")
    ap.add_argument("--matches", default="quartile,mode,levels", help="statistics of fit_spill to refit with")
    ap.add_argument("--force-match", default="", help="make both methods fit the spill with this statistic")
    ap.add_argument("--name", default="foil_rows")
    args = ap.parse_args()
    rows = run(args)
    command = "PYTHONPATH=. python benchmarks/foil_rows.py " + " ".join(sys.argv[1:])
    save(args.name, {"machine": machine(), "args": vars(args), "command": command, "rows": rows},
         markdown(rows, command))


if __name__ == "__main__":
    main()
