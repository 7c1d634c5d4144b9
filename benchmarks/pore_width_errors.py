"""The pore's wrong voxels by class, place and the width of the pore they lie in, per unit of pore surface (issue 7).

    PYTHONPATH=. python benchmarks/pore_width_errors.py [--seeds 0,1,3] [--presets diglyme,carbonate]
        [--stages corrected,oracle] [--methods auto] [--cache DIR] [--name pore_width_errors]

A pore (void + electrolyte) Dice is ``1 - errors / (2 pore)`` near 1: with the same error per voxel of
pore surface, a draw with less pore or narrower pores scores lower.  This diagnostic tells the two
apart: is a low pore Dice the same boundary read on more surface per pore voxel, or a class of error
the other draws do not have?

For each case (seed, preset, correction stage ``corrected`` / ``oracle`` as in :mod:`pore_seeds`,
whose cache it shares) the specimen's wrong pore voxels (true regions anode, separator, cathode) are
counted

- by direction and partner: a missed pore voxel by its true phase (void, electrolyte) and the phase
  read; a false pore voxel by its true phase;
- by place: the anode and separator regions, and the cathode's rows beside the separator, its bulk,
  and the rows beside the collector foil (:func:`pore_seeds.cathode_rows`);
- by in-plane distance to the true pore's boundary (1, 2, 3+ pixels);
- by the width of the pore there (:func:`pore_width`: the diameter of the widest in-plane disc of
  true pore covering the voxel; a false pore voxel takes the width of the nearest true pore voxel in
  its slice), in classes :data:`WIDTH_EDGES_NM`.

Each count is divided by the true pore's surface (pore voxels with an in-plane 4-neighbour of
another phase, in the specimen): the surface of all widths for the kinds, the surface of the same
width class for the width rows.  A rate that stays flat from seed to seed is the same boundary read
on another amount of surface; a rate that grows is an error class of that draw.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from scipy import ndimage as ndi

from volrecon.phases import PHASES, REGIONS
from volrecon.sample.phantom import plan_phantom

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import phantom_args, results_header, save  # noqa: E402
from pore_seeds import _PORE, _boundary, _in, _in_plane_distance, cathode_rows, segmented  # noqa: E402

WIDTH_EDGES_NM = (40.0, 80.0, 160.0)
"""Upper edges of the pore width classes (nm); the last class is everything wider."""

SPECIMEN = ("anode", "separator", "cathode")


def pore_width(pore: np.ndarray, pixel_nm: tuple[float, float]) -> np.ndarray:
    """In-plane local width (nm) of ``pore`` at every voxel, slice by slice.

    A pore voxel's width is the diameter of the widest disc of pore covering it: ``2 r`` less one
    pixel, ``r`` the in-plane distance from the disc's centre voxel to the nearest voxel outside the
    pore (a band ``n`` pixels wide reads ``n`` pixels); any other voxel takes the width of the nearest pore voxel in
    its slice (``inf`` in a slice with none).

    Parameters
    ----------
    pore : ndarray of bool (z, y, x)
        The pore.
    pixel_nm : 2 floats
        The in-plane pixel size (y, x) in nm.

    Returns
    -------
    ndarray of float (z, y, x)
    """
    out = np.full(pore.shape, np.inf)
    step = float(min(pixel_nm))
    for z, m in enumerate(pore):
        if not m.any():
            continue
        d = ndi.distance_transform_edt(m, sampling=pixel_nm)
        width = np.zeros(m.shape)
        for r in np.arange(step, float(d.max()) + step, step):
            centres = d >= r
            if not centres.any():
                break
            # voxels within r of a centre lie in a disc of radius r inside the pore
            reach = ndi.distance_transform_edt(~centres, sampling=pixel_nm) < r
            width[reach & m] = 2 * r - step
        _, (iy, ix) = ndi.distance_transform_edt(~m, sampling=pixel_nm, return_indices=True)
        out[z] = np.where(m, width, width[iy, ix])
    return out


def places(regions: np.ndarray) -> dict[str, np.ndarray]:
    """The specimen's places: the anode and separator regions and :func:`pore_seeds.cathode_rows`."""
    rows = cathode_rows(regions)
    return {"anode": regions == REGIONS["anode"], "separator": regions == REGIONS["separator"],
            "cathode sep rows": rows["separator rows"], "cathode bulk": rows["bulk"],
            "cathode foil rows": rows["foil row 1"] | rows["foil rows 2+"]}


def width_class(width: np.ndarray) -> np.ndarray:
    """Index of each voxel's width class (:data:`WIDTH_EDGES_NM`)."""
    return np.digitize(width, WIDTH_EDGES_NM)


def width_labels() -> list[str]:
    """Names of the width classes."""
    edges = (0.0, *WIDTH_EDGES_NM)
    return [f"<{b:g}" if a == 0 else f"{a:g}-{b:g}" for a, b in zip(edges[:-1], edges[1:])] + [f">={WIDTH_EDGES_NM[-1]:g}"]


def case_errors(phases: np.ndarray, names: Mapping[str, int], labels: np.ndarray, regions: np.ndarray,
                pixel_nm: tuple[float, float]) -> dict[str, Any]:
    """The wrong pore voxels of one case by kind, place, distance and width, and their rates per
    voxel of true pore surface (see the module docstring)."""
    spec = np.isin(regions, [REGIONS[r] for r in SPECIMEN])
    tp, pp = spec & _in(labels, PHASES, _PORE), spec & _in(phases, names, _PORE)
    missed, false = tp & ~pp, pp & ~tp
    surface = _boundary(tp, spec & ~tp)
    n_surf = int(surface.sum())
    wcls = width_class(pore_width(tp, pixel_nm))
    dcls = np.digitize(_in_plane_distance(tp), (1.5, 2.5))
    inv = {v: k for k, v in names.items()}
    tinv = {v: k for k, v in PHASES.items()}
    where = places(regions)
    nw = len(WIDTH_EDGES_NM) + 1
    out: dict[str, Any] = {
        "dice": float(2 * (tp & pp).sum() / (tp.sum() + pp.sum())), "true pore": int(tp.sum()), "surface": n_surf,
        "missed": int(missed.sum()), "false": int(false.sum()),
        "width": {"pore": np.bincount(wcls[tp], minlength=nw).tolist(), "surface": np.bincount(wcls[surface], minlength=nw).tolist(),
                  "missed": np.bincount(wcls[missed], minlength=nw).tolist(), "false": np.bincount(wcls[false], minlength=nw).tolist()},
        "kinds": {},
    }
    for direction, mask in (("missed", missed), ("false", false)):
        for tv in np.unique(labels[mask]):
            for rv in np.unique(phases[mask & (labels == tv)]):
                m = mask & (labels == tv) & (phases == rv)
                key = f"{tinv.get(int(tv), str(tv))} -> {inv.get(int(rv), str(rv)) if direction == 'missed' else 'pore'}"
                e = out["kinds"].setdefault(key, {"voxels": 0, "places": {p: 0 for p in where}, "distance 1/2/3+": [0, 0, 0],
                                                  "width": [0] * nw})
                e["voxels"] += int(m.sum())
                for p, pm in where.items():
                    e["places"][p] += int((m & pm).sum())
                e["distance 1/2/3+"] = (np.asarray(e["distance 1/2/3+"]) + np.bincount(dcls[m], minlength=3)).tolist()
                e["width"] = (np.asarray(e["width"]) + np.bincount(wcls[m], minlength=nw)).tolist()
    return out


def markdown(rows: Mapping[str, Mapping[str, Any]], command: str, *, min_share: float = 0.02) -> str:
    """The results page: a row per case, a row per case and width class, a row per case and kind
    holding at least ``min_share`` of the case's wrong voxels."""
    wl = width_labels()
    lines = results_header("Pore errors by class and pore width, per unit of pore surface", command, __doc__)
    lines += ["| case | pore Dice | true pore | surface / pore | missed | false | missed / surface | false / surface | (missed + false) / surface |",
              "|---|---|---|---|---|---|---|---|---|"]
    for tag, r in rows.items():
        s = r["surface"]
        lines.append(f"| {tag} | {r['dice']:.4f} | {r['true pore']} | {s / r['true pore']:.3f} | {r['missed']} | {r['false']} | "
                     f"{r['missed'] / s:.3f} | {r['false'] / s:.3f} | {(r['missed'] + r['false']) / s:.3f} |")
    lines += ["", "By the width of the pore (nm): the class's share of the true pore and of its surface, and its missed / false "
              "voxels per surface voxel of that class.", "",
              "| case | " + " | ".join(f"{w}: pore, surface, missed, false" for w in wl) + " |", "|---|" + "---|" * len(wl)]
    for tag, r in rows.items():
        w = r["width"]
        cells = [f"{w['pore'][i] / r['true pore']:.3f}, {w['surface'][i] / r['surface']:.3f}, "
                 f"{w['missed'][i] / max(w['surface'][i], 1):.3f}, {w['false'][i] / max(w['surface'][i], 1):.3f}" for i in range(len(wl))]
        lines.append(f"| {tag} | " + " | ".join(cells) + " |")
    first = next(iter(rows.values()))
    pl = list(next(iter(first["kinds"].values()))["places"]) if first["kinds"] else []
    lines += ["", f"Kinds (true phase -> read phase) holding at least {min_share:.0%} of a case's wrong voxels: voxels, per pore "
              "surface voxel; by place; by distance to the true pore boundary (pixels); by pore width (nm, "
              + " / ".join(wl) + ").", "",
              "| case | kind | voxels | per surface | " + " | ".join(pl) + " | dist 1/2/3+ | width |",
              "|---|---|---|---|" + "---|" * len(pl) + "---|---|"]
    for tag, r in rows.items():
        total = r["missed"] + r["false"]
        for key, e in sorted(r["kinds"].items(), key=lambda kv: -kv[1]["voxels"]):
            if e["voxels"] < min_share * total:
                continue
            lines.append(f"| {tag} | {key} | {e['voxels']} | {e['voxels'] / r['surface']:.4f} | "
                         + " | ".join(str(e["places"][p]) for p in pl) + f" | {'/'.join(map(str, e['distance 1/2/3+']))} | "
                         f"{'/'.join(map(str, e['width']))} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = phantom_args(seeds="0,1,3")
    ap.add_argument("--stages", default="corrected,oracle")
    ap.add_argument("--methods", default="auto", help="auto, classifier or both (comma-separated)")
    ap.add_argument("--cache", default="", help="keep each case's phases here (npz, shared with pore_seeds.py) and reuse them")
    ap.add_argument("--name", default="pore_width_errors")
    args = ap.parse_args()
    rows: dict[str, Any] = {}
    for seed in (int(s) for s in args.seeds.split(",")):
        for preset in args.presets.split(","):
            pixel = tuple(float(v) for v in plan_phantom(preset, slices=args.slices, shape=(args.size, args.size), seed=seed).voxel_nm[1:])
            for stage in args.stages.split(","):
                for method in args.methods.split(","):
                    tag = f"{preset} s{seed} {stage} {method}"
                    phases, names, labels, regions = segmented(preset, seed, stage, args, method)
                    rows[tag] = case_errors(phases, names, labels, regions, pixel)
                    print(tag, f"{rows[tag]['dice']:.4f}", flush=True)
    command = "PYTHONPATH=. python benchmarks/pore_width_errors.py " + " ".join(sys.argv[1:])
    save(args.name, {"args": vars(args), "rows": rows}, markdown(rows, command))


if __name__ == "__main__":
    main()
