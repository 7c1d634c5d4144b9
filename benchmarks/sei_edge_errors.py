"""How the SEI's outer surface (``sei|separator``) is measured per column, and how far off (issue 7).

    PYTHONPATH=. python benchmarks/sei_edge_errors.py [--slices 24 --size 192] [--seeds 0,1]
        [--presets diglyme,carbonate] [--stages corrected,oracle-corrected] [--name sei_edge_errors]

:func:`volrecon.segment.regional.sei_outer_surface` takes a column's film thickness from the film's
outer edge: the fall where a pore follows the film, the faint rise where a fibre lies on it, or
(neither seen) the columns around.  For ``segment_volume(..., method="auto")`` on the benchmark's
stacks (:func:`separator_errors.stacks`), the found ``sei|separator`` and ``sodium|sei`` surfaces
against the phantom's truth, over the columns that are specimen from the cap down, grouped by what
lies just beyond the true film (its pore, a fibre) and by which edge the column was measured on:
the mean (signed, rows; negative: towards the anode, SEI voxels given to the separator) and mean
absolute error of the final surface and of the located edge itself (before the thickness map's
regularisation), with the edge-rim shift the sodium edge's fit gave (``edge``) and the SEI voxels
labelled separator and the fibre voxels labelled SEI.  For a thick film (its rises read) the rise's
located edge is its first estimate (the steepest step moved by the sodium edge's rims), and the
columns :func:`volrecon.segment.regional._rises_refitted` refitted (the film's own rims, fitted on
its falls, ``sei.rise_fit``) are shown as well, with that fit's shift and rim ratio.

The located edges are read from the one ``_outer_edge`` call of the final
:func:`sei_outer_surface` run (the reading is made in one slab here: the result does not depend
on the slab size).  The stacking axis is the image rows (the phantom's, anode on top).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from volrecon.phases import PHASES
from volrecon.segment import api, regional, segment_volume

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import phantom_args, results_header, save  # noqa: E402
from segmentation import truth_heights  # noqa: E402
from separator_errors import stacks  # noqa: E402

BEYOND = {"pore": "electrolyte", "fibre": "separator"}
"""Column groups by the true phase just beyond the film."""


class _Recorder:
    """Wraps ``regional._outer_edge``, ``regional._rises_refitted`` and ``api.sei_outer_surface`` to keep
    each run's located edges (the falls, the rises' first estimates, their refits: NaN where none)."""

    def __init__(self) -> None:
        self.runs: list[tuple[np.ndarray, ...]] = []
        self._edges: list[tuple[np.ndarray, np.ndarray]] = []
        self._refits: list[np.ndarray] = []
        self._orig = (regional._outer_edge, regional._rises_refitted, api.sei_outer_surface)

    def __enter__(self) -> "_Recorder":
        edge, refit, surface = self._orig

        def outer_edge(*a: Any, **k: Any) -> tuple[np.ndarray, np.ndarray]:
            fall, rise = edge(*a, **k)
            self._edges.append((fall.copy(), rise.copy()))
            return fall, rise

        def rises_refitted(rise: np.ndarray, *a: Any, **k: Any) -> tuple[np.ndarray, dict[str, Any]]:
            out, info = refit(rise, *a, **k)
            self._refits.append(np.where(out != rise, out, np.nan))
            return out, info

        def sei_surface(*a: Any, **k: Any) -> Any:
            self._edges.clear()
            self._refits.clear()
            lay, info = surface(*a, **{**k, "slab_voxels": 10**12})
            if len(self._edges) == 1:
                fall, rise = self._edges[0]
                refitted = self._refits[0] if self._refits else np.full(rise.shape, np.nan)
                self.runs.append((lay.heights["sei|separator"].copy(), fall, rise, refitted))
            return lay, info

        regional._outer_edge, regional._rises_refitted, api.sei_outer_surface = outer_edge, rises_refitted, sei_surface
        return self

    def __exit__(self, *exc: Any) -> None:
        regional._outer_edge, regional._rises_refitted, api.sei_outer_surface = self._orig


def _err(e: np.ndarray) -> list[float]:
    return [float(e.mean()), float(np.abs(e).mean())] if e.size else [float("nan")] * 2


def sei_edge_errors(image: np.ndarray, truth: Any, voxel_size_nm: Any) -> dict[str, Any]:
    """The per-column errors of the auto segmentation's film surfaces (see the module docstring)."""
    with _Recorder() as rec:
        seg = segment_volume(image, voxel_size_nm=voxel_size_nm, method="auto")
    vy = float(voxel_size_nm[1])
    h = np.asarray(seg.interfaces["heights_nm"]["sei|separator"]) / vy
    hn = np.asarray(seg.interfaces["heights_nm"]["sodium|sei"]) / vy
    run = min(rec.runs, key=lambda r: float(np.nanmean(np.abs(r[0] - h))))
    fall, rise, refit = run[1], run[2], run[3]
    th, valid = truth_heights(truth)
    lab = truth.labels
    zz, xx = np.indices(valid.shape)
    beyond = lab[zz, np.clip(th["sei|separator"], 0, lab.shape[1] - 1), xx]
    e, e_na = h - th["sei|separator"], hn - th["sodium|sei"]
    kinds = {"fall": np.isfinite(fall), "rise only": ~np.isfinite(fall) & np.isfinite(rise),
             "rise refitted": ~np.isfinite(fall) & np.isfinite(refit), "neither": ~np.isfinite(fall) & ~np.isfinite(rise)}
    rows = []
    for group, phase in BEYOND.items():
        for kind, km in kinds.items():
            m = valid & (beyond == PHASES[phase]) & km
            located = {"fall": fall, "rise only": rise, "rise refitted": refit}.get(kind)
            rows.append({"beyond": group, "edge": kind, "columns": int(m.sum()), "surface": _err(e[m]),
                         "located": _err((hn + located - th["sei|separator"])[m]) if located is not None else None})
    ph = np.asarray(seg.phases)
    edge = seg.parameters.get("sei", {}).get("edge", {})
    own = seg.parameters.get("sei", {}).get("rise_fit", {})
    return {"rows": rows, "sodium|sei": _err(e_na[valid]), "sei|separator": _err(e[valid]),
            "shift_vox": float(edge.get("shift_vox", float("nan"))), "rim_ratio": float(edge.get("rim_ratio", float("nan"))),
            "own_shift_vox": float(own.get("shift_vox", float("nan"))), "own_rim_ratio": float(own.get("rim_ratio", float("nan"))),
            "sei labelled separator": int(((lab == PHASES["sei"]) & (ph == seg.phase_names["separator"])).sum()),
            "separator labelled sei": int(((lab == PHASES["separator"]) & (ph == seg.phase_names["sei"])).sum())}


def markdown(results: Mapping[str, Mapping[str, Any]], command: str) -> str:
    """The results page."""
    lines = results_header("SEI outer-surface errors by how each column was measured", command, __doc__)
    lines += ["| stack | sodium\\|sei (mean, abs) | sei\\|separator | rim shift / ratio | the film's own (falls) | "
              "SEI as separator | separator as SEI |", "|---|---|---|---|---|---|---|"]
    for tag, r in results.items():
        lines.append(f"| {tag} | {r['sodium|sei'][0]:+.2f}, {r['sodium|sei'][1]:.2f} | {r['sei|separator'][0]:+.2f}, "
                     f"{r['sei|separator'][1]:.2f} | {r['shift_vox']:.2f} / {r['rim_ratio']:.2f} | "
                     f"{r.get('own_shift_vox', float('nan')):.2f} / {r.get('own_rim_ratio', float('nan')):.2f} | "
                     f"{r['sei labelled separator']} | {r['separator labelled sei']} |")
    lines += ["", "| stack | beyond the film | edge | columns | surface (mean, abs) | located edge (mean, abs) |",
              "|---|---|---|---|---|---|"]
    for tag, r in results.items():
        for row in r["rows"]:
            loc = row["located"]
            lines.append(f"| {tag} | {row['beyond']} | {row['edge']} | {row['columns']} | {row['surface'][0]:+.2f}, "
                         f"{row['surface'][1]:.2f} | " + (f"{loc[0]:+.2f}, {loc[1]:.2f}" if loc else "") + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = phantom_args(__doc__.splitlines()[0])
    ap.add_argument("--stages", default="corrected,oracle-corrected")
    ap.add_argument("--name", default="sei_edge_errors")
    args = ap.parse_args()
    results = {}
    for tag, img, truth, ph in stacks(args):
        results[tag] = sei_edge_errors(img, truth, ph.voxel_size_nm)
        print(tag, results[tag]["sei|separator"], flush=True)
    command = "PYTHONPATH=. python benchmarks/sei_edge_errors.py " + " ".join(sys.argv[1:])
    save(args.name, {"args": vars(args), "results": results}, markdown(results, command.strip()))


if __name__ == "__main__":
    main()
