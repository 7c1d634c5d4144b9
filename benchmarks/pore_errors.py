"""Where the pore (void + electrolyte) errors of the unsupervised segmentation lie (issue 7).

    PYTHONPATH=. python benchmarks/pore_errors.py [--slices 24 --size 192] [--seeds 0] [--presets diglyme,carbonate]
        [--out FILE.json]

On the benchmark's ``corrected`` path (:func:`segmentation.real_correct`, then ``segment_volume(...,
method="auto")``) the pore voxels of the specimen that are wrong are counted

- by the true region (anode, separator, cathode) and the phase they were confused with (missed
  pore: the label given; false pore: the true phase),
- by their distance to the nearest true pore boundary (in-plane pixels, the voxel size respected:
  1, 2, 3, 4+),
- by slice,

and each class of error is sized by the pore Dice the stack would have were that class right
(the truth put in its place): which cause is worth fixing first.  A pore boundary placed off by a
constant fraction of a voxel shows up as missed and false pore of the same partner at distance 1
in very unequal numbers; wrongly labelled whole regions (voids read as binder, say) as errors
beyond distance 2.  ``void labelled binder`` is the part of ``void labelled solid`` read as
binder: mostly voids whose face shows a particle behind them through shine-through (lit voids).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from scipy import ndimage as ndi

from volrecon.phases import PHASES, REGIONS
from volrecon.sample import make_phantom
from volrecon.segment import segment_volume

sys.path.insert(0, str(Path(__file__).resolve().parent))
from segmentation import real_correct  # noqa: E402

DISTANCE_BINS = (1.5, 2.5, 3.5)
"""Upper edges (in-plane pixels) of the distance classes 1, 2, 3; beyond: 4+."""

_PORE = ("void", "electrolyte")


def _pore(labels: np.ndarray, names: Mapping[str, int]) -> np.ndarray:
    return np.isin(labels, [names[p] for p in _PORE if p in names])


def _dice(truth: np.ndarray, pred: np.ndarray) -> float:
    s = int(truth.sum() + pred.sum())
    return float(2 * (truth & pred).sum() / s) if s else float("nan")


def pore_errors(phases: np.ndarray, names: Mapping[str, int], labels: np.ndarray, regions: np.ndarray,
                voxel_size_nm: tuple[float, float, float]) -> dict[str, Any]:
    """The pore errors of ``phases`` (label values ``names``) against the truth ``labels``/``regions``.

    Parameters
    ----------
    phases : ndarray (z, y, x)
        Segmented phases.
    names : mapping
        Phase name -> label value of ``phases``.
    labels, regions : ndarray (z, y, x)
        True phases (:data:`volrecon.phases.PHASES`) and regions (:data:`REGIONS`).
    voxel_size_nm : 3 floats
        ``(z, y, x)``; distances are in units of the finer in-plane pixel.

    Returns
    -------
    dict
        ``dice``; ``by_region[region]["missed"|"false"][partner]``: counts per distance class;
        ``by_slice``: missed and false pore per slice; ``dice_if_fixed[class]``: the pore Dice with
        that class of error right.
    """
    inv = {v: k for k, v in names.items()}
    tinv = {v: k for k, v in PHASES.items()}
    spec = regions != REGIONS["frame"]
    tp, pp = _pore(labels, PHASES) & spec, _pore(phases, names) & spec
    missed, false = tp & ~pp, pp & ~tp
    scale = np.asarray(voxel_size_nm, float) / min(voxel_size_nm[1:])
    d_in = ndi.distance_transform_edt(tp, sampling=scale)
    d_out = ndi.distance_transform_edt(~tp, sampling=scale)
    out: dict[str, Any] = {"dice": _dice(tp, pp), "truth_voxels": int(tp.sum()), "by_region": {}, "dice_if_fixed": {}}
    for region in ("anode", "separator", "cathode"):
        r = regions == REGIONS[region]
        entry: dict[str, dict[str, list[int]]] = {"missed": {}, "false": {}}
        for kind, mask, partner, dist, lut in (("missed", missed & r, phases, d_in, inv), ("false", false & r, labels, d_out, tinv)):
            for value in np.unique(partner[mask]):
                m = mask & (partner == value)
                entry[kind][lut.get(int(value), str(value))] = np.bincount(np.digitize(dist[m], DISTANCE_BINS), minlength=4).tolist()
        out["by_region"][region] = entry
    out["by_slice"] = {"missed": missed.sum(axis=(1, 2)).tolist(), "false": false.sum(axis=(1, 2)).tolist()}
    cat = regions == REGIONS["cathode"]
    lab = {k: labels == v for k, v in PHASES.items()}
    got = {k: phases == names[k] for k in ("active", "binder") if k in names}
    none = np.zeros_like(tp)
    classes = {
        "cathode: void labelled solid": (missed & cat & lab["void"], none),
        "cathode: void labelled binder": (missed & cat & lab["void"] & got.get("binder", none), none),
        "cathode: electrolyte labelled binder": (missed & cat & lab["electrolyte"] & got.get("binder", none), none),
        "cathode: binder labelled pore": (none, false & cat & lab["binder"]),
        "cathode: pore | active (both ways)": (missed & cat & got.get("active", none), false & cat & lab["active"]),
        "separator region (both ways)": (missed & (regions == REGIONS["separator"]), false & (regions == REGIONS["separator"])),
        "anode region (both ways)": (missed & (regions == REGIONS["anode"]), false & (regions == REGIONS["anode"])),
    }
    n_t, n_p, n_tp = int(tp.sum()), int(pp.sum()), int((tp & pp).sum())
    for key, (fix_missed, fix_false) in classes.items():
        a, b = int(fix_missed.sum()), int(fix_false.sum())
        out["dice_if_fixed"][key] = {"voxels": a + b, "dice": 2 * (n_tp + a) / (n_t + n_p + a - b)}
    return out


def report(tag: str, res: Mapping[str, Any]) -> str:
    """Plain-text summary of :func:`pore_errors`."""
    lines = [f"{tag}: pore Dice {res['dice']:.4f}, true pore {res['truth_voxels']} voxels"]
    for region, entry in res["by_region"].items():
        for kind, partners in entry.items():
            for partner, counts in sorted(partners.items(), key=lambda kv: -sum(kv[1])):
                arrow = f"pore -> {partner}" if kind == "missed" else f"{partner} -> pore"
                lines.append(f"  {region:9s} {arrow:22s} {sum(counts):7d}  at distance 1/2/3/4+: " + "/".join(map(str, counts)))
    lines.append("  per slice missed: " + " ".join(map(str, res["by_slice"]["missed"])))
    lines.append("  per slice false:  " + " ".join(map(str, res["by_slice"]["false"])))
    for key, v in res["dice_if_fixed"].items():
        lines.append(f"  with {key:40s} right ({v['voxels']:6d} voxels): pore Dice {v['dice']:.4f}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--slices", type=int, default=24)
    ap.add_argument("--size", type=int, default=192)
    ap.add_argument("--seeds", default="0", help="comma-separated phantom seeds")
    ap.add_argument("--presets", default="diglyme,carbonate")
    ap.add_argument("--out", default="", help="write the full results as JSON here")
    args = ap.parse_args()
    results = {}
    for seed in (int(s) for s in args.seeds.split(",")):
        for preset in args.presets.split(","):
            ph = make_phantom(preset, slices=args.slices, shape=(args.size, args.size), seed=seed, artefacts="all", frame=True)
            img, truth, _ = real_correct(ph)
            seg = segment_volume(img, voxel_size_nm=truth.voxel_size_nm, method="auto")
            tag = f"{preset} {args.slices}x{args.size} seed {seed}"
            results[tag] = pore_errors(np.asarray(seg.phases), seg.phase_names, truth.labels, truth.regions,
                                       tuple(truth.voxel_size_nm))
            print(report(tag, results[tag]), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
