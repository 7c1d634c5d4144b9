"""Where the unsupervised pore (void + electrolyte) errors lie, seed against seed (issue 7).

    PYTHONPATH=. python benchmarks/pore_seeds.py [--slices 24 --size 192] [--seeds 0,1,2,3]
        [--presets diglyme,carbonate] [--stages corrected,oracle] [--methods auto,classifier] [--cache DIR]

The benchmark's phantoms are one specimen recipe (:func:`volrecon.sample.specimen_params`) drawn
with another seed: the same phase levels and artefact strengths, another arrangement of rods,
binder, voids and curtains.  A pore Dice that falls from one seed to the next is then either more
pore boundary per pore voxel (the same boundary error, more boundary) or a boundary read worse.

For each seed, preset and correction (``corrected``: :func:`segmentation.real_correct`; ``oracle``:
:func:`volrecon.sample.oracle.oracle_correct`) ``segment_volume(..., method="auto")`` is run (``--methods``:
also or instead ``classifier``, the forest trained from the truth's synthetic scribbles as
:mod:`segmentation` trains it) and the
specimen's wrong pore voxels (true region anode, separator, cathode) are counted

- by kind: pore read as binder, binder read as pore, pore read as active and active read as pore,
  void read as any solid (the void split's misses; apart, those within the shine-through depth of
  the void's bottom along the milling direction, whose face shows the material beyond it), the
  separator's and the anode's pore;
- by place in the cathode along the stacking axis: the first :data:`EDGE_ROWS` rows beside the
  separator, the row touching the collector foil and the next ones up to :data:`EDGE_ROWS`, the
  bulk between;
- by what lies beside a wrong cathode voxel: an active particle within :data:`BESIDE_PX` in-plane
  pixels (a particle's binder coat or edge) or not (binder and pore alone);
- by distance to the true pore boundary (1, 2, 3+ in-plane pixels).

The phantom's own figures sit beside them: the true cathode phase fractions, the void's lit share
(within the shine-through depth of its bottom: :class:`volrecon.segment.voids.VoidCues`' default
depth), the pore share of the foil's first row against the bulk's (the foil spill's fit,
:mod:`volrecon.segment.foil_spill`, takes the rows' make-up to be the bulk's), and the pore's
boundary voxels per pore voxel by partner (binder, active): the share of the pore a one-voxel
boundary error touches.  ``per boundary`` figures divide a kind's errors by the true pore boundary
voxels with that partner, and the cathode's wrong pore voxels are divided by all its true pore
boundary voxels (with and without the foil's first row): how well the boundary is read, whatever
its amount.

Writes ``pore_seeds.json`` and ``pore_seeds.md`` to the results folder.
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
from volrecon.sample.oracle import oracle_correct
from volrecon.sample.phantom import plan_phantom
from volrecon.segment import segment_volume, train_classifier
from volrecon.segment.scribbles import synthetic_scribbles
from volrecon.segment.voids import VoidCues

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import phantom_args, results_header, save  # noqa: E402
from segmentation import real_correct  # noqa: E402

EDGE_ROWS = 4
"""Rows of the cathode, along the stacking axis, counted as beside the separator or the foil."""

BESIDE_PX = 2
"""In-plane pixels within which a wrong voxel counts as beside an active particle."""

_PORE = ("void", "electrolyte")

_IN_PLANE = np.array([[[0, 1, 0], [1, 1, 1], [0, 1, 0]]], bool)
"""In-plane 4-neighbourhood (no neighbour along z)."""


def _in(labels: np.ndarray, names: Mapping[str, int], phases: tuple[str, ...]) -> np.ndarray:
    return np.isin(labels, [names[p] for p in phases if p in names])


def cathode_rows(regions: np.ndarray) -> dict[str, np.ndarray]:
    """The true cathode split along y (the phantoms stack their layers along image rows): its first
    :data:`EDGE_ROWS` rows from the separator, the row touching the collector foil, the next
    ``EDGE_ROWS - 1`` rows towards the bulk, and the bulk between."""
    cat = regions == REGIONS["cathode"]
    first = np.cumsum(cat, axis=1)
    last = np.cumsum(cat[:, ::-1], axis=1)[:, ::-1]
    sep_side = cat & (first <= EDGE_ROWS)
    foil_1 = cat & (last == 1) & ~sep_side
    foil_n = cat & (last > 1) & (last <= EDGE_ROWS) & ~sep_side
    return {"separator rows": sep_side, "foil row 1": foil_1, "foil rows 2+": foil_n,
            "bulk": cat & ~sep_side & ~foil_1 & ~foil_n}


def _boundary(pore: np.ndarray, partner: np.ndarray) -> np.ndarray:
    """Pore voxels with an in-plane 4-neighbour in ``partner``."""
    grown = ndi.binary_dilation(partner, structure=_IN_PLANE)
    return pore & grown


def phantom_figures(labels: np.ndarray, regions: np.ndarray, shine_slices: int) -> dict[str, float]:
    """True cathode fractions, the pore share of each place of :func:`cathode_rows`, the void's share
    within ``shine_slices`` of its bottom (:func:`lit_voids`), and the pore's in-plane boundary voxels
    per pore voxel, by partner."""
    cat = regions == REGIONS["cathode"]
    n = int(cat.sum())
    out = {f"{p} fraction": float((cat & (labels == PHASES[p])).sum() / n) for p in ("active", "binder", "electrolyte", "void")}
    pore = cat & _in(labels, PHASES, _PORE)
    out.update({f"pore share, {place}": float(pore[r].mean()) if r.any() else float("nan")
                for place, r in cathode_rows(regions).items()})
    void = cat & (labels == PHASES["void"])
    out["lit share of the void"] = float(lit_voids(void, shine_slices).sum() / max(int(void.sum()), 1))
    npore = int(pore.sum())
    for partner in ("binder", "active"):
        out[f"pore|{partner} boundary per pore voxel"] = float(_boundary(pore, labels == PHASES[partner]).sum() / npore)
    return out


def lit_voids(void: np.ndarray, shine_slices: int) -> np.ndarray:
    """Void voxels whose column of void behind them (along +z, themselves included) is at most
    ``shine_slices`` long: their face shows the material beyond the void's bottom (shine-through),
    not the dark of an empty pore."""
    run = np.zeros(void.shape[1:], np.int32)
    out = np.zeros_like(void)
    for k in range(void.shape[0] - 1, -1, -1):
        run = np.where(void[k], run + 1, 0)
        out[k] = void[k] & (run <= shine_slices)
    return out


def error_kinds(phases: np.ndarray, names: Mapping[str, int], labels: np.ndarray, regions: np.ndarray,
                shine_slices: int) -> dict[str, np.ndarray]:
    """The specimen's wrong pore voxels by kind (masks); ``shine_slices``: the shine-through depth in
    slices (:func:`lit_voids`)."""
    spec = np.isin(regions, [REGIONS[r] for r in ("anode", "separator", "cathode")])
    cat = regions == REGIONS["cathode"]
    tp, pp = spec & _in(labels, PHASES, _PORE), spec & _in(phases, names, _PORE)
    missed, false = tp & ~pp, pp & ~tp
    got = {k: phases == names[k] for k in ("active", "binder")}
    true = {k: labels == PHASES[k] for k in ("active", "binder", "void", "electrolyte")}
    lit_void = lit_voids(cat & true["void"], shine_slices)
    return {
        "electrolyte -> binder": cat & missed & true["electrolyte"] & got["binder"],
        "binder -> pore": cat & false & true["binder"],
        "electrolyte -> active": cat & missed & true["electrolyte"] & got["active"],
        "active -> pore": cat & false & true["active"],
        "void -> solid": cat & missed & true["void"],
        "  of it lit (bottom within the shine depth)": cat & missed & lit_void,
        "cathode other": cat & (missed | false) & ~true["void"] & ~(true["electrolyte"] & (got["binder"] | got["active"]))
        & ~(false & (true["binder"] | true["active"])),
        "separator region": (regions == REGIONS["separator"]) & (missed | false),
        "anode region": (regions == REGIONS["anode"]) & (missed | false),
    }


def dice_if_right(kinds: Mapping[str, np.ndarray], tp: np.ndarray, pp: np.ndarray) -> dict[str, float]:
    """The pore Dice with each kind of error right (the truth put in its place)."""
    n_t, n_p, n_tp = int(tp.sum()), int(pp.sum()), int((tp & pp).sum())
    out = {}
    for key, m in kinds.items():
        a = int((m & tp).sum())  # missed pore put right
        b = int((m & ~tp).sum())  # false pore put right
        out[key] = 2 * (n_tp + a) / (n_t + n_p + a - b)
    return out


def boundary_rate(phases: np.ndarray, names: Mapping[str, int], labels: np.ndarray, regions: np.ndarray,
                  foil_row: np.ndarray) -> dict[str, float]:
    """The cathode's pore Dice and its wrong pore voxels per true pore boundary voxel (pore voxels with
    an in-plane 4-neighbour of another phase in the cathode), over the cathode and without ``foil_row``:
    a rate that does not grow with the amount of boundary, as the Dice's loss does."""
    cat = regions == REGIONS["cathode"]
    tp, pp = cat & _in(labels, PHASES, _PORE), cat & _in(phases, names, _PORE)
    bound = _boundary(tp, cat & ~tp)
    wrong = tp ^ pp
    return {"dice": float(2 * (tp & pp).sum() / (tp.sum() + pp.sum())), "boundary per pore voxel": float(bound.sum() / tp.sum()),
            "wrong per boundary voxel": float(wrong.sum() / bound.sum()),
            "without foil row 1": float((wrong & ~foil_row).sum() / (bound & ~foil_row).sum())}


def _in_plane_distance(mask: np.ndarray) -> np.ndarray:
    """Pixels (in the slice) from each voxel to the boundary of ``mask``: inside to the nearest voxel
    outside, outside to the nearest voxel inside."""
    inside = np.stack([ndi.distance_transform_edt(m) for m in mask])
    outside = np.stack([ndi.distance_transform_edt(~m) for m in mask])
    return np.where(mask, inside, outside)


def seed_errors(phases: np.ndarray, names: Mapping[str, int], labels: np.ndarray, regions: np.ndarray,
                shine_slices: int) -> dict[str, Any]:
    """:func:`error_kinds` counted by place, neighbour and distance, with :func:`phantom_figures`
    (``shine_slices``: the shine-through depth in slices)."""
    spec = np.isin(regions, [REGIONS[r] for r in ("anode", "separator", "cathode")])
    tp, pp = spec & _in(labels, PHASES, _PORE), spec & _in(phases, names, _PORE)
    kinds = error_kinds(phases, names, labels, regions, shine_slices)
    rows = cathode_rows(regions)
    beside = ndi.binary_dilation(labels == PHASES["active"], iterations=BESIDE_PX, structure=_IN_PLANE)
    dist_cls = np.digitize(_in_plane_distance(tp), (1.5, 2.5))
    cat_pore = tp & (regions == REGIONS["cathode"])
    bounds = {p: _boundary(cat_pore, labels == PHASES[p]) for p in ("binder", "active")}
    out: dict[str, Any] = {"dice": float(2 * (tp & pp).sum() / (tp.sum() + pp.sum())), "true_pore": int(tp.sum()),
                           "phantom": phantom_figures(labels, regions, shine_slices), "dice_if_right": dice_if_right(kinds, tp, pp),
                           "kinds": {}}
    out["cathode"] = boundary_rate(phases, names, labels, regions, rows["foil row 1"])
    for key, m in kinds.items():
        e: dict[str, Any] = {"voxels": int(m.sum())}
        e.update({place: int((m & r).sum()) for place, r in rows.items()})
        e["beside particle"] = int((m & beside).sum())
        e["distance 1/2/3+"] = np.bincount(dist_cls[m], minlength=3).tolist()
        partner = "binder" if "binder" in key else "active" if "active" in key else None
        if partner:
            e["per boundary"] = float(m.sum() / max(int(bounds[partner].sum()), 1))
        out["kinds"][key] = e
    return out


def segmented(preset: str, seed: int, stage: str, args: argparse.Namespace,
              method: str = "auto") -> tuple[np.ndarray, dict[str, int], np.ndarray, np.ndarray]:
    """Segment one phantom (``stage``: ``corrected`` or ``oracle``) with ``method``: its phases, their
    names, the true labels and regions; cached in ``args.cache`` (when given, an npz per case) so that
    the counting can be re-run alone."""
    tag = "" if method == "auto" else f"_{method}"
    cache = Path(args.cache) / f"{preset}_s{seed}_{stage}_{args.slices}x{args.size}{tag}.npz" if args.cache else None
    if cache is not None and cache.exists():
        z = np.load(cache, allow_pickle=False)
        return z["phases"], json.loads(str(z["names"])), z["labels"], z["regions"]
    ph = make_phantom(preset, slices=args.slices, shape=(args.size, args.size), seed=seed, artefacts="all", frame=True)
    if stage == "corrected":
        img, truth, _ = real_correct(ph)
    else:
        img, truth = oracle_correct(ph), ph
    kw: dict[str, Any] = {}
    if method == "classifier":
        kw["classifier"] = train_classifier(img, synthetic_scribbles(truth.labels, seed=1), voxel_size_nm=truth.voxel_size_nm,
                                            phase_names=PHASES)
    seg = segment_volume(img, voxel_size_nm=truth.voxel_size_nm, method=method, **kw)
    phases, labels, regions, names = np.asarray(seg.phases), truth.labels, truth.regions, dict(seg.phase_names)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(cache, phases=phases, labels=labels, regions=regions, names=json.dumps(names),
                            parameters=json.dumps(seg.parameters, default=str))
    return phases, names, labels, regions


def run_case(preset: str, seed: int, stage: str, args: argparse.Namespace, method: str = "auto") -> dict[str, Any]:
    """Count the errors of one case of :func:`segmented`."""
    phases, names, labels, regions = segmented(preset, seed, stage, args, method)
    vz = plan_phantom(preset, slices=args.slices, shape=(args.size, args.size), seed=seed).voxel_nm[0]
    shine = max(1, int(round(VoidCues().shine_depth_nm / float(vz))))
    return seed_errors(phases, names, labels, regions, shine)


def markdown(results: Mapping[str, Mapping[str, Any]], command: str, methods: str = "auto") -> str:
    """The results page: one row per case and kind."""
    lines = results_header(f"Pore errors by seed ({methods})", command, __doc__)
    lines += ["| case | pore Dice | wrong / true pore | true pore | cathode pore Dice | cathode wrong / boundary (w/o foil row 1) | "
              "active | binder | electrolyte | void | lit share of the void | pore share foil row 1 / bulk | pore|binder bnd / pore | "
              "pore|active bnd / pore |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for tag, r in results.items():
        p = r["phantom"]
        wrong = sum(e["voxels"] for k, e in r["kinds"].items() if not k.startswith(" "))  # "  of it": a part of the kind above
        c = r["cathode"]
        lines.append(f"| {tag} | {r['dice']:.4f} | {wrong / r['true_pore']:.4f} | {r['true_pore']} | {c['dice']:.4f} | "
                     f"{c['wrong per boundary voxel']:.3f} ({c['without foil row 1']:.3f}) | {p['active fraction']:.3f} | "
                     f"{p['binder fraction']:.3f} | {p['electrolyte fraction']:.3f} | {p['void fraction']:.3f} | {p['lit share of the void']:.3f} | "
                     f"{p['pore share, foil row 1']:.3f} / {p['pore share, bulk']:.3f} | "
                     f"{p['pore|binder boundary per pore voxel']:.3f} | {p['pore|active boundary per pore voxel']:.3f} |")
    lines += ["", "Errors per kind: voxels; Dice with that kind right; per true pore boundary voxel of its partner; "
              "in the separator rows / bulk / foil rows 2+ / foil row 1; beside a particle; at distance 1/2/3+.", "",
              "| case | kind | voxels | Dice if right | per boundary | sep rows | bulk | foil rows 2+ | foil row 1 | beside particle | dist 1/2/3+ |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for tag, r in results.items():
        for key, e in r["kinds"].items():
            pb = f"{e['per boundary']:.3f}" if "per boundary" in e else ""
            lines.append(f"| {tag} | {key} | {e['voxels']} | {r['dice_if_right'][key]:.4f} | {pb} | {e['separator rows']} | "
                         f"{e['bulk']} | {e['foil rows 2+']} | {e['foil row 1']} | {e['beside particle']} | {'/'.join(map(str, e['distance 1/2/3+']))} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = phantom_args(seeds="0,1,2,3")
    ap.add_argument("--stages", default="corrected,oracle")
    ap.add_argument("--methods", default="auto", help="auto, classifier or both (comma-separated)")
    ap.add_argument("--cache", default="", help="keep each case's phases here (npz) and reuse them")
    args = ap.parse_args()
    methods = args.methods.split(",")
    results = {}
    for seed in (int(s) for s in args.seeds.split(",")):
        for preset in args.presets.split(","):
            for stage in args.stages.split(","):
                for method in methods:
                    tag = f"{preset} s{seed} {stage}" + ("" if methods == ["auto"] else f" {method}")
                    results[tag] = run_case(preset, seed, stage, args, method)
                    print(tag, f"{results[tag]['dice']:.4f}", flush=True)
    command = "PYTHONPATH=. python benchmarks/pore_seeds.py " + " ".join(sys.argv[1:])
    save("pore_seeds" if methods == ["auto"] else "pore_seeds_" + "_".join(methods), results,
         markdown(results, command, args.methods))


if __name__ == "__main__":
    main()
