"""Where the particle-edge rule's image model settles, and the particles' recut length, by pixel size (issue 7).

    PYTHONPATH=. python benchmarks/rim_refit.py [--slices 24 --size 192] [--seeds 0] [--presets diglyme,carbonate]
        [--voxels "20,10,10;40,20,20"]

The unsupervised method fits an image model on the cathode's labels re-decided at a rim length and
reads its length back (``segment.api._auto_particle_edge_rule``, refitted at its own length up to
three times).  On the shipped samples (40 nm slices, 20 nm pixels) the refits climbed 15.5 -> 23.8 nm.
For each phantom (oracle-corrected, ``make_phantom(voxel_size_nm=...)``: slice, recorded pixel height
and width) this gives:

- ``map``: the model's length (``particle_edge_rim_length``) read on labels re-decided at 0, 10, 20,
  30 and 40 nm: the refits move along it (slope about a half) towards its fixed point;
- ``truth``: the length of a model fitted on the true labels (same slices and window), with its probe
  blur and edge gain: where a settled refit should be;
- ``reads`` / ``length``: the lengths the segmentation read at, and the one it kept;
- ``reliability`` / ``recut``: the share of the solids' gradient power that is the image's, not the
  noise's (``segment.api._recut_length``), and the length the particles are cut on.

Writes ``results/rim_refit.json`` and ``.md`` (``VOLRECON_BENCH_RESULTS`` sends them elsewhere).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

from volrecon.phases import PHASES, REGIONS
from volrecon.sample import make_phantom
from volrecon.sample.oracle import oracle_correct
from volrecon.segment import api, segment_volume
from volrecon.segment import forward_refine as fr
from volrecon.segment.cathode_rims import particle_edge_rim_length
from volrecon.segment.regional import smoothing_sigma

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, phantom_args, results_header, save  # noqa: E402

MAP_NM = (0.0, 10.0, 20.0, 30.0, 40.0)
"""Lengths the labels are re-decided at for the refit's map."""


def run_case(preset: str, seed: int, voxels: tuple[float, float, float], args: Any) -> dict[str, Any]:
    ph = make_phantom(preset, slices=args.slices, shape=(args.size, args.size), seed=seed, artefacts="all",
                      frame=True, voxel_size_nm=voxels)
    vox, seen = ph.voxel_size_nm, {}
    read, rule = api._dark_rim_length, api._auto_particle_edge_rule

    def spy_read(*a: Any, **k: Any) -> Any:
        seen.setdefault("read", (a, k))
        return read(*a, **k)

    def spy_rule(*a: Any, **k: Any) -> Any:
        seen["samples"] = a[4], a[5]
        return rule(*a, **k)

    api._dark_rim_length, api._auto_particle_edge_rule = spy_read, spy_rule
    try:
        res = segment_volume(oracle_correct(ph), voxel_size_nm=vox, method="auto", void_split=False, forward_refine=False)
    finally:
        api._dark_rim_length, api._auto_particle_edge_rule = read, rule
    edges = res.parameters["cathode_rims"].get("particle_edges", {})
    row = {"preset": preset, "seed": seed, "voxel_nm": list(vox), "reads": edges.get("read_at_nm"),
           "length": edges.get("rim_length_nm"), "reliability": edges.get("gradient_reliability"),
           "recut": edges.get("recut_length_nm")}
    if "read" not in seen:
        return row
    (src, smoothed, reg, out), kw = seen["read"][0][:4], seen["read"][1]
    vals, dvals = seen["samples"]
    phases = [PHASES["electrolyte"], PHASES["binder"], PHASES["active"]]
    sigma = smoothing_sigma(kw["smooth_nm"], vox)
    row["map"] = {}
    for length in MAP_NM:
        levels = api._rim_levels(vals - length * dvals, phases)
        model = None if levels is None else read(src, smoothed, reg, out, **{**kw, "rule": (length, levels), "info": {}})
        row["map"][str(length)] = None if model is None else particle_edge_rim_length(model[1], vox, smooth_sigma_vox=sigma)
    zs = fr.sample_slices(int(out.shape[0]), 0)
    win = fr.fit_window(np.asarray(reg[zs].compute()) == REGIONS["cathode"], api.DARK_FIT_WINDOW_PX)
    model = fr.fit_image_model(np.asarray(src[(zs, *win)], np.float32), ph.labels[(zs, *win)],
                               ph.regions[(zs, *win)] == REGIONS["cathode"], None, pixel_nm=vox[1:], slice_nm=vox[0],
                               values=phases)
    row["truth"] = {"length": particle_edge_rim_length(model, vox, smooth_sigma_vox=sigma),
                    "psf_sigma_nm": model.psf_sigma_nm, "edge_gain": model.edge_gain}
    return row


def _f(v: Any) -> str:
    return "-" if v is None else f"{v:.1f}"


def table(rows: list[dict[str, Any]], command: str) -> str:
    lines = results_header("Image-model rim length by pixel size", command, __doc__)
    lines += ["| preset | seed | voxel (z, y, x) nm | map: " + " / ".join(f"{v:g}" for v in MAP_NM)
              + " nm | truth (blur, gain) | reads | length | reliability | recut |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        t = r.get("truth", {})
        lines.append(f"| {r['preset']} | {r['seed']} | {', '.join(f'{v:.1f}' for v in r['voxel_nm'])} | "
                     + " / ".join(_f(v) for v in r.get("map", {}).values()) + " | "
                     + (f"{t['length']:.1f} ({t['psf_sigma_nm']:.1f} nm, {t['edge_gain']:.2f})" if t else "-") + " | "
                     + ", ".join(_f(v) for v in r["reads"] or []) + f" | {_f(r['length'])} | "
                     + ("-" if r["reliability"] is None else f"{r['reliability']:.2f}") + f" | {_f(r['recut'])} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = phantom_args(__doc__.splitlines()[0], seeds="0")
    ap.add_argument("--voxels", default="20,10,10;40,20,20", help="';'-separated slice,pixel height,pixel width (nm)")
    args = ap.parse_args()
    grids = [tuple(float(v) for v in g.split(",")) for g in args.voxels.split(";")]
    rows = [run_case(p, int(s), g, args) for g in grids for s in args.seeds.split(",") for p in args.presets.split(",")]
    command = "PYTHONPATH=. python benchmarks/rim_refit.py " + " ".join(sys.argv[1:])
    save("rim_refit", {"machine": machine(), "args": vars(args), "rows": rows}, table(rows, command))


if __name__ == "__main__":
    main()
