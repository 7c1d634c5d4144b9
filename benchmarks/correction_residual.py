"""What the correction stage's intensity residual costs the segmentation (issue 7).

    PYTHONPATH=. python benchmarks/correction_residual.py [--slices 24 --size 192] [--seeds 0,1]
        [--presets diglyme,carbonate]

The benchmark's corrected stack (:func:`segmentation.real_correct`: drift, shading, brightness,
curtains estimated from the stack) differs from the oracle-corrected one (the phantom's own gain,
offset, shading and drift undone) by the estimates' errors.  Here that difference is measured on
the specimen, after the one linear map that takes the oracle's grey scale onto the corrected one
(the segmentation does not depend on it), and split into slowly varying parts: the whole smooth
field (Gaussian, :data:`FIELD_SIGMA` voxels), its profile along the image rows (the stacking axis:
the part a shading estimate misses across the layers), along the columns, and per slice (what a
brightness estimate misses).  Each part is given in units of the separator's fibre | pore contrast
(peak to peak of the profile, over the specimen), and is taken out of the corrected stack (the
other parts and the noise left in) before ``segment_volume(method="auto")`` runs again: the Dice
gained says what that part of the residual costs.

Then the layers' first guess (a global multi-Otsu of the grey over the cell's phase order,
``parameters["layer_guess"]``): its thresholds on each stack, mapped onto the oracle's grey scale
by the same linear map, and each stack segmented again with the other's thresholds put in place
(mapped back): how much of the difference comes through the first guess.
"""

from __future__ import annotations

import sys
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
from segmentation import iface_distance, phase_dice, real_correct  # noqa: E402

FIELD_SIGMA = (2.0, 6.0, 6.0)
"""Gaussian sigma (slices, rows, columns) of the residual's smooth field: far wider than the noise's
grain and the phases' edges, far narrower than a shading field's or a brightness drift's scale."""

PROFILE_SIGMA = 3.0
"""Gaussian sigma (voxels) of the residual's row and column profiles."""

PHASES_SHOWN = ("separator", "sei", "sodium", "pore", "active")
IFACES_SHOWN = ("sei|separator", "separator|cathode")


def _masked_mean(values: np.ndarray, mask: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    n = mask.sum(axis=axes)
    return np.where(n > 0, np.where(mask, values, 0.0).sum(axis=axes) / np.maximum(n, 1), 0.0)


def residual_parts(image: np.ndarray, oracle: np.ndarray, spec: np.ndarray) -> tuple[dict[str, np.ndarray], float]:
    """The corrected ``image`` minus the oracle mapped onto its grey scale, split into slowly
    varying parts (each broadcastable to the stack); and the map's gain (oracle -> image units)."""
    a, b = np.polyfit(oracle[spec].astype(np.float64), image[spec].astype(np.float64), 1)
    d = np.where(spec, image - (a * oracle + b), 0.0)
    w = spec.astype(np.float64)
    field = ndi.gaussian_filter(d, FIELD_SIGMA) / np.maximum(ndi.gaussian_filter(w, FIELD_SIGMA), 1e-6)
    rows = ndi.gaussian_filter1d(_masked_mean(d, spec, (0, 2)), PROFILE_SIGMA)
    cols = ndi.gaussian_filter1d(_masked_mean(d, spec, (0, 1)), PROFILE_SIGMA)
    slices = _masked_mean(d, spec, (1, 2))
    return {"smooth field": np.where(spec, field, 0.0), "rows": rows[None, :, None], "columns": cols[None, None, :],
            "slices": slices[:, None, None]}, float(a)


def _contrast(oracle: np.ndarray, labels: np.ndarray, regions: np.ndarray) -> float:
    """The separator's fibre | pore contrast on the oracle's grey scale (medians)."""
    sep = regions == REGIONS["separator"]
    return float(np.median(oracle[sep & (labels == PHASES["separator"])]) - np.median(oracle[sep & (labels == PHASES["electrolyte"])]))


def _scores(img: np.ndarray, truth, vox, guess: np.ndarray | None = None) -> dict[str, Any]:
    """Dice and interface distances of ``segment_volume(img, method="auto")``; ``guess``: the layer
    guess's thresholds put in place of its own multi-Otsu."""
    own = api.multi_otsu_thresholds
    if guess is not None:
        api.multi_otsu_thresholds = lambda *a, **k: np.asarray(guess, float)
    try:
        seg = segment_volume(img, voxel_size_nm=vox, method="auto")
    finally:
        api.multi_otsu_thresholds = own
    d = phase_dice(np.asarray(seg.phases), seg.phase_names, truth)
    dist = iface_distance(seg, truth)
    return {"dice": {k: d[k] for k in PHASES_SHOWN}, "interfaces": {k: dist[k] for k in IFACES_SHOWN},
            "guess": [float(v) for v in seg.parameters["layer_guess"]["thresholds"]]}


def one_stack(ph) -> dict[str, Any]:
    """The residual's parts and the segmentation's scores with each taken out, for one phantom."""
    img, truth, _ = real_correct(ph)
    y0, y1, x0, x1 = truth.box
    orac_full = oracle_correct(ph)
    orac = orac_full[:, y0:y1, x0:x1]
    spec = truth.regions != REGIONS["frame"]
    parts, gain = residual_parts(img, orac, spec)
    unit = gain * _contrast(orac, truth.labels, truth.regions)
    out: dict[str, Any] = {"size": {}, "runs": {}}
    for name, p in parts.items():
        full = np.broadcast_to(p, img.shape)
        out["size"][name] = float(np.ptp(full[spec]) / unit)
    runs: dict[str, Callable[[], np.ndarray]] = {"corrected": lambda: img}
    for name, p in parts.items():
        runs[f"corrected, {name} taken out"] = lambda p=p: (img - p).astype(np.float32)
    for tag, make in runs.items():
        out["runs"][tag] = _scores(make(), truth, ph.voxel_size_nm)
    out["runs"]["oracle-corrected"] = _scores(orac_full, ph, ph.voxel_size_nm)
    # the first guess's thresholds on the oracle's grey scale (image = gain * oracle + offset on the specimen)
    a, b = np.polyfit(orac[spec].astype(np.float64), img[spec].astype(np.float64), 1)
    t_corr, t_orac = np.asarray(out["runs"]["corrected"]["guess"]), np.asarray(out["runs"]["oracle-corrected"]["guess"])
    out["guess_oracle_units"] = {"corrected": [float(v) for v in (t_corr - b) / a], "oracle-corrected": [float(v) for v in t_orac]}
    out["runs"]["corrected, the oracle's layer guess"] = _scores(img, truth, ph.voxel_size_nm, guess=a * t_orac + b)
    out["runs"]["oracle-corrected, the corrected stack's layer guess"] = _scores(orac_full, ph, ph.voxel_size_nm, guess=(t_corr - b) / a)
    return out


def markdown(results: Mapping[str, Mapping[str, Any]], command: str) -> str:
    """The results as a markdown page."""
    lines = ["# What the correction residual costs the segmentation", "", f"Command: `{command}`", "",
             "The corrected stack minus the oracle-corrected one (after one linear grey map), over the specimen, split into "
             f"slowly varying parts: the smooth field (Gaussian sigma {FIELD_SIGMA} slices, rows, columns), its profile "
             f"along the rows (the stacking axis; sigma {PROFILE_SIGMA:g}), along the columns, and per slice. Size: peak to "
             "peak over the specimen, in units of the separator's fibre | pore contrast. Each part is taken out of the "
             "corrected stack and `segment_volume(method='auto')` run again (Dice; interfaces: mean distance in voxels). Last two rows: "
             "each stack with the other's layer-guess thresholds (mapped by the same linear grey map) in place of its own.", ""]
    for tag, r in results.items():
        lines += [f"## {tag}", "", "Residual parts (peak to peak / fibre-pore contrast): " +
                  ", ".join(f"{k} {v:.3f}" for k, v in r["size"].items()), "",
                  "Layer guess thresholds (oracle grey scale): " +
                  "; ".join(f"{k} {', '.join(f'{v:.3f}' for v in t)}" for k, t in r["guess_oracle_units"].items()), "",
                  "| stack | " + " | ".join(PHASES_SHOWN) + " | " + " | ".join(k.replace("|", "\\|") for k in IFACES_SHOWN) + " |",
                  "|---|" + "---|" * (len(PHASES_SHOWN) + len(IFACES_SHOWN))]
        for run, s in r["runs"].items():
            lines.append(f"| {run} | " + " | ".join(f"{s['dice'][k]:.4f}" for k in PHASES_SHOWN) + " | " +
                         " | ".join(f"{s['interfaces'][k]:.2f}" for k in IFACES_SHOWN) + " |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = phantom_args()
    args = ap.parse_args()
    results = {}
    for seed in (int(s) for s in args.seeds.split(",")):
        for preset in args.presets.split(","):
            ph = make_phantom(preset, slices=args.slices, shape=(args.size, args.size), seed=seed, artefacts="all", frame=True)
            tag = f"{preset} {args.slices}x{args.size} seed {seed}"
            results[tag] = one_stack(ph)
            print(tag, {k: round(v["dice"]["separator"], 4) for k, v in results[tag]["runs"].items()}, flush=True)
    command = "PYTHONPATH=. python benchmarks/correction_residual.py " + " ".join(sys.argv[1:])
    save("correction_residual", {"args": vars(args), "results": results}, markdown(results, command.strip()))


if __name__ == "__main__":
    main()
