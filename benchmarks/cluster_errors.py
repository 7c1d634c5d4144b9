"""Where the cathode's void and pore clusters of a ``volrecon run`` differ from the truth, by size.

Reads the accuracy runs that ``benchmarks/pipeline.py`` leaves in ``benchmarks/_work``
(``pipeline_acc_<preset>`` and its phantom; run that first) and, for each preset:

- the clusters of the cathode's void and of its pore (void + electrolyte), 6-connected, of the
  run and of the true labels in the run's box, counted by size class (voxels);
- for each size class of the *true* clusters, what the run labels their voxels and how many of
  them hold a voxel of the same phase in the run (found) -- where the run misses pieces;
- for each size class of the *run's* clusters, what the truth labels their voxels -- where the
  run invents pieces.

Run: ``python benchmarks/cluster_errors.py`` (after ``benchmarks/pipeline.py --accuracy-slices 48``).
Results: ``benchmarks/results/cluster_errors.{json,md}``.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
import scipy.ndimage as ndi

from _common import WORK, machine, save

SIZE_EDGES = (1, 2, 6, 21, 101, 1001)
"""Lower bounds of the size classes (voxels); the last class is open."""

SETS = {"void": ("void",), "pore": ("void", "electrolyte")}
"""Cluster sets measured: name -> phases."""


def _classes(sizes: np.ndarray) -> np.ndarray:
    """Size class index of each size (0 = one voxel ... len(SIZE_EDGES) - 1 = the open class)."""
    return np.searchsorted(np.asarray(SIZE_EDGES), sizes, side="right") - 1


def _class_names() -> list[str]:
    ends = list(SIZE_EDGES[1:]) + [None]
    return [f"{lo}" if hi == lo + 1 else (f"{lo}-{hi - 1}" if hi else f"≥{lo}") for lo, hi in zip(SIZE_EDGES, ends)]


def cluster_table(inside: np.ndarray, other: np.ndarray, same: np.ndarray, names: dict[int, str]) -> list[dict[str, Any]]:
    """Per size class of the clusters of ``inside``: count, voxels, the other side's labels of
    their voxels (share per phase name) and how many clusters hold a voxel where ``same`` holds."""
    lab, n = ndi.label(inside)
    sizes = np.bincount(lab.ravel(), minlength=n + 1)
    cls = np.full(n + 1, -1)
    cls[1:] = _classes(sizes[1:])
    vox_cls = cls[lab]
    hit = np.bincount(lab.ravel(), weights=same.ravel().astype(np.float64), minlength=n + 1) > 0
    rows = []
    for k, name in enumerate(_class_names()):
        sel = vox_cls == k
        ids = cls == k
        labels = np.bincount(other[sel], minlength=max(names) + 1)
        total = int(labels.sum())
        rows.append({
            "size_voxels": name, "clusters": int(ids.sum()), "voxels": total,
            "found": int((hit & ids).sum()),
            "other_side": {names.get(v, str(v)): round(float(c) / total, 3) for v, c in enumerate(labels) if c and total},
        })
    return rows


def measure(preset: str) -> dict[str, Any]:
    """The tables of one preset's accuracy run."""
    from pipeline import truth_box

    from volrecon.io.omezarr import read_label_names, read_ome_zarr
    from volrecon.phases import PHASES, REGIONS
    from volrecon.sample import load_truth

    src = next(WORK.glob(f"pipeline_{preset}_*_1"))
    out = WORK / f"pipeline_acc_{preset}"
    true = load_truth(src, lazy=True)
    box, _ = truth_box(out, true["drift"], tuple(true["labels"].shape))
    t_lab, t_reg = (np.asarray(true[k][box]) for k in ("labels", "regions"))
    path = out / "image.ome.zarr" / "labels"
    r_lab, r_reg = (np.asarray(read_ome_zarr(path / k).data) for k in ("phases", "regions"))
    phases, regions = read_label_names(path / "phases"), read_label_names(path / "regions")
    run_names, true_names = ({v: k for k, v in m.items()} for m in (phases, PHASES))  # the truth: default vocabulary
    result: dict[str, Any] = {"source": src.name}
    for set_name, members in SETS.items():
        true_in = (t_reg == REGIONS["cathode"]) & np.isin(t_lab, [PHASES[m] for m in members])
        run_in = (r_reg == regions["cathode"]) & np.isin(r_lab, [phases[m] for m in members])
        result[set_name] = {
            "true_clusters_as_run_labels_them": cluster_table(true_in, r_lab, run_in, run_names),
            "run_clusters_as_truth_labels_them": cluster_table(run_in, t_lab, true_in, true_names),
        }
    return result


def _lines(results: dict[str, Any]) -> list[str]:
    lines = ["# Cathode void and pore clusters of a run against the truth, by size", "",
             "Command: `python benchmarks/cluster_errors.py` (on the accuracy runs of `benchmarks/pipeline.py`)", "",
             f"Machine: {machine()}", "",
             "6-connected clusters of the cathode's void and pore (void + electrolyte), each side in its own cathode "
             "region.  **found**: clusters holding at least one voxel of the same set on the other side.  "
             "**other side**: share of the clusters' voxels by the other side's phase.", ""]
    for preset, res in results.items():
        for set_name in SETS:
            for key, title in (("true_clusters_as_run_labels_them", "true clusters, as the run labels them"),
                               ("run_clusters_as_truth_labels_them", "run's clusters, as the truth labels them")):
                lines += [f"## {preset}: {set_name}, {title}", "",
                          "| size (voxels) | clusters | voxels | found | other side |", "|---|---:|---:|---:|---|"]
                lines += [f"| {r['size_voxels']} | {r['clusters']} | {r['voxels']} | {r['found']} | "
                          + ", ".join(f"{k} {v:.0%}" for k, v in sorted(r["other_side"].items(), key=lambda kv: -kv[1])) + " |"
                          for r in res[set_name][key]]
                lines.append("")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["diglyme", "carbonate"])
    args = parser.parse_args()
    results = {p: measure(p) for p in args.presets}
    save("cluster_errors", {"machine": machine(), "size_edges_voxels": list(SIZE_EDGES), "results": results},
         "\n".join(_lines(results)) + "\n")


if __name__ == "__main__":
    main()
