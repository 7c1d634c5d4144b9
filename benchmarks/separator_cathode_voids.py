"""Where the unsupervised separator|cathode cut errs, by what tops the cathode (issue 7).

    PYTHONPATH=. python benchmarks/separator_cathode_voids.py [--slices 24 --size 192] [--seeds 3]
        [--presets diglyme,carbonate] [--stages corrected,oracle-corrected]

``segment_volume(..., method="auto")`` against the phantom's truth, the found ``separator|cathode``
surface's error (found minus true row; positive: towards the cathode) per column that is specimen
from the cap down, grouped by what the true cathode's first three rows mostly hold (``void``: more
void than solid, ``solid``: particles or binder the larger share, ``electrolyte``: the rest).  Each
stack is segmented twice: as the pipeline does it, and with the layer guess's dark pore not counted
with the cathode (``segment.api._cut_beside_voids`` left out: the cut on the cathode's solids
alone), so the two columns of the table say what the void evidence moved, and where.  The columns'
mean signed error by the field's lateral position (eight bins along the image columns) shows a
tilt read flatter (the edges' errors of opposite signs).

The stacking axis is the image rows (the phantom's, anode on top).

Writes ``results/separator_cathode_voids.{md,json}``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from volrecon.phases import PHASES
from volrecon.segment import api, segment_volume

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import phantom_args, results_header, save  # noqa: E402
from segmentation import truth_heights  # noqa: E402
from separator_errors import stacks  # noqa: E402

TOP_ROWS = 3
"""Rows of the true cathode whose phases class a column (:func:`top_class`)."""
X_BINS = 8
"""Bins along the image columns of the lateral error profile."""


def top_class(labels: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Per ``(z, x)`` column, what the true cathode's first :data:`TOP_ROWS` rows (from row ``h``)
    mostly hold: ``"void"``, ``"solid"`` (active + binder) or ``"electrolyte"``."""
    rows = np.clip(h[:, None, :] + np.arange(TOP_ROWS)[None, :, None], 0, labels.shape[1] - 1)
    top = np.take_along_axis(labels, rows, axis=1)
    void = (top == PHASES["void"]).mean(axis=1)
    solid = np.isin(top, (PHASES["active"], PHASES["binder"])).mean(axis=1)
    return np.where(void > solid, "void", np.where(solid >= 0.5, "solid", "electrolyte"))


def _without_void_evidence() -> Callable[[], None]:
    """``segment_volume`` with the separator|cathode cut on the cathode's solids alone; returns the undo."""
    keep = api._cut_beside_voids
    api._cut_beside_voids = lambda guess, grey, lay, **kw: lay
    return lambda: setattr(api, "_cut_beside_voids", keep)


def cut_errors(image: np.ndarray, truth, voxel_size_nm) -> dict[str, Any]:
    """The found separator|cathode error by the cathode top's class and by lateral bin, with and
    without the void evidence."""
    th, valid = truth_heights(truth)
    h_true = th["separator|cathode"]
    cls = top_class(np.asarray(truth.labels), h_true)
    out: dict[str, Any] = {"columns": {k: int((valid & (cls == k)).sum()) for k in ("void", "solid", "electrolyte")}}
    for variant in ("with void evidence", "solids alone"):
        undo = _without_void_evidence() if variant == "solids alone" else (lambda: None)
        try:
            seg = segment_volume(image, voxel_size_nm=voxel_size_nm, method="auto")
        finally:
            undo()
        e = np.asarray(seg.interfaces["heights_nm"]["separator|cathode"]) / float(voxel_size_nm[1]) - h_true
        by = {k: [float(e[valid & (cls == k)].mean()), float(np.abs(e[valid & (cls == k)]).mean())]
              for k in out["columns"] if (valid & (cls == k)).any()}
        edges = np.linspace(0, e.shape[1], X_BINS + 1).astype(int)
        lateral = [float(e[:, a:b][valid[:, a:b]].mean()) if valid[:, a:b].any() else float("nan")
                   for a, b in zip(edges[:-1], edges[1:])]
        out[variant] = {"all": [float(e[valid].mean()), float(np.abs(e[valid]).mean())], "by_top": by, "lateral": lateral,
                        "dark_voids": seg.parameters.get("layer_guess", {}).get("dark_voids")}
    return out


def markdown(results: Mapping[str, Mapping[str, Any]], command: str) -> str:
    """The results as a markdown page."""
    lines = results_header("separator|cathode cut by what tops the cathode", command, __doc__)
    lines += ["| stack | cathode top | columns | with void evidence (mean, mean abs rows) | solids alone |",
              "|---|---|---|---|---|"]
    for tag, r in results.items():
        a, b = r["with void evidence"], r["solids alone"]
        lines.append(f"| {tag} | all | {sum(r['columns'].values())} | {a['all'][0]:+.2f}, {a['all'][1]:.2f} | "
                     f"{b['all'][0]:+.2f}, {b['all'][1]:.2f} |")
        for k, n in r["columns"].items():
            if k in a["by_top"]:
                lines.append(f"| | {k} | {n} | {a['by_top'][k][0]:+.2f}, {a['by_top'][k][1]:.2f} | "
                             f"{b['by_top'][k][0]:+.2f}, {b['by_top'][k][1]:.2f} |")
    lines += ["", f"Mean signed error by lateral position ({X_BINS} bins along the image columns, left to right):", "",
              "| stack | variant | " + " | ".join(str(i) for i in range(X_BINS)) + " |", "|---|---|" + "---|" * X_BINS]
    for tag, r in results.items():
        for variant in ("with void evidence", "solids alone"):
            lines.append(f"| {tag} | {variant} | " + " | ".join(f"{v:+.1f}" for v in r[variant]["lateral"]) + " |")
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = phantom_args(seeds="3")
    ap.add_argument("--stages", default="corrected,oracle-corrected")
    args = ap.parse_args()
    results = {}
    for tag, img, truth, ph in stacks(args):
        results[tag] = cut_errors(img, truth, ph.voxel_size_nm)
        print(tag, results[tag]["with void evidence"]["all"], results[tag]["solids alone"]["all"], flush=True)
    command = "PYTHONPATH=. python benchmarks/separator_cathode_voids.py " + " ".join(sys.argv[1:])
    save("separator_cathode_voids", {"args": vars(args), "results": results}, markdown(results, command.strip()))


if __name__ == "__main__":
    main()
