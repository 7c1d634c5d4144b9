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

Lit voids (:func:`lit_table`): the binder-labelled voxels of the true cathode are counted by their
in-plane distance to the nearest void found in their slice (classes of the void split's outer ring
width, ``grow_nm``: within it, where the split's lit ring acts, and 1-2.5, 2.5-5 and over 5 ring
widths away), by whether a particle (``active``) lies within the shine-through depth behind them
(along +z), and apart, the last shine-through depth of slices (whose particle may lie beyond the
stack), each with its true void and pore share: the share a rule taking that class would be right
on.  ``void labelled binder`` is split the same way in ``dice_if_fixed``.
"""

from __future__ import annotations

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
from _common import phantom_args  # noqa: E402
from segmentation import real_correct  # noqa: E402

DISTANCE_BINS = (1.5, 2.5, 3.5)
"""Upper edges (in-plane pixels) of the distance classes 1, 2, 3; beyond: 4+."""

_PORE = ("void", "electrolyte")


def _pore(labels: np.ndarray, names: Mapping[str, int]) -> np.ndarray:
    return np.isin(labels, [names[p] for p in _PORE if p in names])


def _dice(truth: np.ndarray, pred: np.ndarray) -> float:
    s = int(truth.sum() + pred.sum())
    return float(2 * (truth & pred).sum() / s) if s else float("nan")


LIT_DISTANCE_RINGS = (1.0, 2.5, 5.0)
"""Upper edges of the distance classes of :func:`lit_table`, in widths of the void's outer ring."""


def _behind(mask: np.ndarray, depth: int) -> np.ndarray:
    """Voxels with a ``mask`` voxel 1 to ``depth`` slices behind them (along +z, in the array)."""
    out = np.zeros_like(mask)
    for k in range(1, min(int(depth), mask.shape[0] - 1) + 1):
        out[:-k] |= mask[k:]
    return out


def lit_classes(phases: np.ndarray, names: Mapping[str, int], regions: np.ndarray, voxel_size_nm: tuple[float, float, float],
                *, ring_nm: float, shine_slices: int) -> dict[str, np.ndarray]:
    """Binder-labelled voxels of the true cathode by place (distance to the voids found, last slices)
    and what lies behind them (a particle within ``shine_slices`` or not).

    Returns
    -------
    dict
        ``"<place>, <particle behind|nothing lit behind>"`` -> mask; places ``"last slices"``
        (the last ``shine_slices`` slices) and ``"ring <a>-<b>"`` (in-plane distance to the nearest
        void found in the slice, in ring widths ``ring_nm``, edges :data:`LIT_DISTANCE_RINGS`).
    """
    cat = regions == REGIONS["cathode"]
    binder = cat & (phases == names["binder"]) if "binder" in names else np.zeros(phases.shape, bool)
    found = phases == names["void"] if "void" in names else np.zeros(phases.shape, bool)
    lit = _behind(cat & (phases == names["active"]), shine_slices) if "active" in names else np.zeros(phases.shape, bool)
    # in-plane distance (nm) to the nearest void found in the same slice (none in the slice: infinite)
    dist = np.full(phases.shape, np.inf)
    for z in np.flatnonzero(found.any(axis=(1, 2))):
        dist[z] = ndi.distance_transform_edt(~found[z], sampling=voxel_size_nm[1:])
    last = np.zeros(phases.shape, bool)
    if shine_slices > 0:
        last[-int(shine_slices):] = True
    edges = (0.0, *LIT_DISTANCE_RINGS, np.inf)
    out = {}
    for a, b in zip(edges[:-1], edges[1:]):
        place = binder & ~last & (dist > a * ring_nm) & (dist <= b * ring_nm)
        for key, m in (("particle behind", lit), ("nothing lit behind", ~lit)):
            out[f"ring {a:g}-{b:g}, {key}"] = place & m
    for key, m in (("particle behind", lit), ("nothing lit behind", ~lit)):
        out[f"last slices, {key}"] = binder & last & m
    return out


def lit_table(classes: Mapping[str, np.ndarray], labels: np.ndarray) -> dict[str, dict[str, float]]:
    """Voxels and true void / pore share of each class of :func:`lit_classes`."""
    void, pore = labels == PHASES["void"], _pore(labels, PHASES)
    return {k: {"voxels": int(m.sum()), "void": float(void[m].mean()) if m.any() else float("nan"),
                "pore": float(pore[m].mean()) if m.any() else float("nan")} for k, m in classes.items()}


def pore_errors(phases: np.ndarray, names: Mapping[str, int], labels: np.ndarray, regions: np.ndarray,
                voxel_size_nm: tuple[float, float, float], *, ring_nm: float = 20.0, shine_slices: int = 0) -> dict[str, Any]:
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
    ring_nm, shine_slices : float, int
        The void split's outer ring width and shine-through depth in slices (:func:`lit_classes`).

    Returns
    -------
    dict
        ``dice``; ``by_region[region]["missed"|"false"][partner]``: counts per distance class;
        ``by_slice``: missed and false pore per slice; ``dice_if_fixed[class]``: the pore Dice with
        that class of error right; ``lit``: :func:`lit_table`.
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
    lit = lit_classes(phases, names, regions, voxel_size_nm, ring_nm=ring_nm, shine_slices=shine_slices)
    out["lit"] = lit_table(lit, labels)
    got = {k: phases == names[k] for k in ("active", "binder") if k in names}
    none = np.zeros_like(tp)
    classes = {
        "cathode: void labelled solid": (missed & cat & lab["void"], none),
        "cathode: void labelled binder": (missed & cat & lab["void"] & got.get("binder", none), none),
        **{f"  of it {where}": (missed & lab["void"] & m, none) for where, m in _lit_places(lit).items()},
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


def _lit_places(classes: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The classes of :func:`lit_classes` merged into: within the ring of a void found, farther, last slices."""
    none = np.zeros_like(next(iter(classes.values())))
    places = {"beside a void found (ring)": none, "far from the voids found": none, "in the last slices": none}
    for key, m in classes.items():
        where = ("in the last slices" if key.startswith("last") else
                 "beside a void found (ring)" if key.startswith(f"ring 0-{LIT_DISTANCE_RINGS[0]:g},") else "far from the voids found")
        places[where] = places[where] | m
    return places


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
    lines.append("  binder-labelled cathode voxels (distance to the voids found in ring widths; particle within the shine-through depth behind):")
    for key, v in res["lit"].items():
        lines.append(f"    {key:40s} {v['voxels']:7d} voxels, true void {v['void']:.2f}, true pore {v['pore']:.2f}")
    return "\n".join(lines)


def main() -> None:
    ap = phantom_args(seeds="0")
    ap.add_argument("--out", default="", help="write the full results as JSON here")
    args = ap.parse_args()
    results = {}
    for seed in (int(s) for s in args.seeds.split(",")):
        for preset in args.presets.split(","):
            ph = make_phantom(preset, slices=args.slices, shape=(args.size, args.size), seed=seed, artefacts="all", frame=True)
            img, truth, _ = real_correct(ph)
            seg = segment_volume(img, voxel_size_nm=truth.voxel_size_nm, method="auto")
            tag = f"{preset} {args.slices}x{args.size} seed {seed}"
            split = seg.parameters.get("void_split") or {}
            shine = int(round(float(split.get("shine_depth_nm", 0.0)) / float(truth.voxel_size_nm[0])))
            results[tag] = pore_errors(np.asarray(seg.phases), seg.phase_names, truth.labels, truth.regions,
                                       tuple(truth.voxel_size_nm), ring_nm=float(split.get("grow_nm", 20.0)), shine_slices=shine)
            print(report(tag, results[tag]), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
