"""Where the trained classifier's pore and separator errors lie (issue 7).

    PYTHONPATH=. python benchmarks/classifier_errors.py [--slices 24 --size 192] [--seeds 0]
        [--presets diglyme,carbonate] [--stages corrected,oracle] [--out FILE.json]

The benchmark's classifier rows (:mod:`segmentation`: a forest trained from
:func:`volrecon.segment.scribbles.synthetic_scribbles`, then ``segment_volume(method="classifier")``)
are broken down against the phantom's truth:

- the confusion of the true phases by the true region (cathode, separator), as shares of the true
  phase's voxels (which phase the true pore and the true separator fibres were read as, and which
  phases were read as pore / separator);
- the pore errors of :func:`pore_errors.pore_errors` (partner phase, distance to the true boundary,
  the pore Dice were each class of error right);
- the separator|cathode cut: signed mean offset (voxels, + towards the collector) and mean distance,
  and the separator Dice were the detected regions the true ones;
- the same confusion for the forest's own vote before cleanup and layer rules (``raw``: every class
  it knows, ``frame``, ``sodium`` … included, where ``segment_volume`` excludes the frame class once
  the frame is found and replaces the phases a layer cannot hold), so that what the forest gets
  wrong is told apart from what the steps after it do.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from volrecon.phases import PHASES, REGIONS
from volrecon.sample import make_phantom
from volrecon.sample.oracle import oracle_correct
from volrecon.segment import segment_volume, train_classifier
from volrecon.segment.classifier import normalise
from volrecon.segment.scribbles import synthetic_scribbles

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pore_errors import pore_errors, report  # noqa: E402
from segmentation import iface_distance, phase_dice, real_correct, truth_heights  # noqa: E402

_SHOWN = ("void", "electrolyte", "active", "binder", "separator", "sei")


def confusion(phases: np.ndarray, names: Mapping[str, int], labels: np.ndarray, regions: np.ndarray,
              region: str) -> dict[str, dict[str, float]]:
    """Share of each true phase's voxels in ``region`` given each label (true phase -> label -> share)."""
    inv = {v: k for k, v in names.items()}
    r = regions == REGIONS[region]
    out = {}
    for p in _SHOWN:
        m = r & (labels == PHASES[p])
        n = int(m.sum())
        if n == 0:
            continue
        vals, counts = np.unique(phases[m], return_counts=True)
        out[p] = {"voxels": n, **{inv.get(int(v), str(v)): round(c / n, 4) for v, c in zip(vals, counts)}}
    return out


def separator_cut(res: Any, tr: Any) -> dict[str, float]:
    """Signed and absolute mean offset (voxels) of the detected separator|cathode surface."""
    th, valid = truth_heights(tr)
    h = res.interfaces.get("heights_nm", {}).get("separator|cathode")
    if h is None:
        return {"bias": float("nan"), "distance": float("nan")}
    d = (h / tr.voxel_size_nm[1] - th["separator|cathode"])[valid]
    return {"bias": float(d.mean()), "distance": float(np.abs(d).mean()), "p95": float(np.percentile(np.abs(d), 95))}


def raw_vote(clf: Any, img: np.ndarray, vox: tuple[float, float, float]) -> np.ndarray:
    """The forest's own most probable phase of every voxel (no cleanup, no layer rules)."""
    return clf.predict_block(normalise(img, clf.normalisation), voxel_size_nm=vox)


def _print_confusion(title: str, conf: Mapping[str, Mapping[str, float]]) -> None:
    print(f"  {title}")
    for p, row in conf.items():
        parts = ", ".join(f"{k} {v:.3f}" for k, v in sorted(row.items(), key=lambda kv: -kv[1] if kv[0] != "voxels" else 0)
                          if k != "voxels" and v >= 0.003)
        print(f"    true {p:11s} ({row['voxels']:7d}): {parts}")


def analyse(preset: str, seed: int, slices: int, size: int, stages: list[str]) -> dict[str, Any]:
    ph = make_phantom(preset, slices=slices, shape=(size, size), seed=seed, artefacts="all", frame=True)
    vox = ph.voxel_size_nm
    real, truth, _ = real_correct(ph)
    out = {}
    for stage, img, tr in (("corrected", real, truth), ("oracle", oracle_correct(ph), ph)):
        if stage not in stages:
            continue
        clf = train_classifier(img, synthetic_scribbles(tr.labels, seed=1), voxel_size_nm=vox, phase_names=PHASES)
        res = segment_volume(img, voxel_size_nm=vox, method="classifier", classifier=clf)
        phases = np.asarray(res.phases)
        raw = raw_vote(clf, img, tuple(vox))
        tag = f"{preset} {slices}x{size} seed {seed} {stage}"
        d = phase_dice(phases, res.phase_names, tr)
        entry = {
            "dice": d,
            "interfaces": iface_distance(res, tr),
            "separator_cut": separator_cut(res, tr),
            "confusion": {r: confusion(phases, res.phase_names, tr.labels, tr.regions, r) for r in ("cathode", "separator")},
            "raw_confusion": {r: confusion(raw, res.phase_names, tr.labels, tr.regions, r) for r in ("cathode", "separator")},
            "raw_dice": phase_dice(raw, res.phase_names, tr),
            "pore": pore_errors(phases, res.phase_names, tr.labels, tr.regions, tuple(vox)),
            "forward_refine": res.parameters.get("forward_refine"),
        }
        out[tag] = entry
        print(f"{tag}: " + ", ".join(f"{k} {d[k]:.3f}" for k in ("pore", "separator", "active", "binder", "electrolyte", "void")),
              flush=True)
        print(f"  raw vote: " + ", ".join(f"{k} {entry['raw_dice'][k]:.3f}" for k in ("pore", "separator", "active", "binder")))
        print(f"  separator|cathode cut: {entry['separator_cut']}")
        for r in ("cathode", "separator"):
            _print_confusion(f"{r} region, final", entry["confusion"][r])
            _print_confusion(f"{r} region, raw vote", entry["raw_confusion"][r])
        print(report("  pore", entry["pore"]), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--slices", type=int, default=24)
    ap.add_argument("--size", type=int, default=192)
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--presets", default="diglyme,carbonate")
    ap.add_argument("--stages", default="corrected,oracle")
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    results = {}
    for seed in (int(s) for s in args.seeds.split(",")):
        for preset in args.presets.split(","):
            results.update(analyse(preset, seed, args.slices, args.size, args.stages.split(",")))
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1, default=float))


if __name__ == "__main__":
    main()
