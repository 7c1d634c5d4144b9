"""Segmentation benchmark (issue 7): Dice and interface distances vs phantom truth, and speed.

    python benchmarks/segmentation.py [--slices 24 --size 192] [--speed 50x1024x1024] [--repeats 3]

Correction stage: ``volrecon.correct.correct_volume`` is not available yet, so the stack is
corrected with the phantom's *known* gain/offset, shading and drift ("oracle correction");
curtains and noise remain.  Baseline: plain multi-Otsu on the raw (uncorrected) stack.
Quality phantoms show the face's frame (cap, trench walls), found automatically
(``frame="auto"``); Dice of the specimen phases is over specimen voxels, the ``frame`` column
is the Dice of the frame label.
Writes benchmarks/results/segmentation.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from volrecon.phases import PHASES, REGIONS
from volrecon.sample import make_phantom
from volrecon.segment import segment_volume, train_classifier
from volrecon.segment.scribbles import synthetic_scribbles

OUT = Path(__file__).parent / "results"
TARGETS = {"frame": 0.95, "active": 0.95, "pore": 0.95, "separator": 0.95, "sodium": 0.95, "collector": 0.95, "void": 0.90, "sei": 0.85}
IFACES = ("sodium|sei", "sei|separator", "separator|cathode", "cathode|collector")


def oracle_correct(ph) -> np.ndarray:
    h = ph.labels.shape[1]
    out = np.empty(ph.labels.shape, np.float32)
    for z in range(out.shape[0]):
        a = ph.acquired[z, :h].astype(np.float32) / 255
        g, o = ph.brightness[z]
        out[z] = ndi.shift((a - o) / (g * ph.shading), ph.drift[z], order=3, mode="nearest")
    return out


def dice(a: np.ndarray, b: np.ndarray) -> float:
    s = a.sum() + b.sum()
    return float(2 * (a & b).sum() / s) if s else float("nan")


def phase_dice(phases, names, ph) -> dict[str, float]:
    spec = ph.regions != REGIONS["frame"]
    out = {}
    for p in ("active", "separator", "sodium", "collector", "void", "sei", "electrolyte", "binder"):
        out[p] = dice((phases == names.get(p, -1)) & spec, (ph.labels == PHASES[p]) & spec) if p in names else float("nan")
    out["frame"] = dice(phases == names.get("frame", -1), ~spec)
    pore = lambda a, n: (a == n.get("void", -1)) | (a == n.get("electrolyte", -1))  # noqa: E731
    out["pore"] = dice(pore(phases, names) & spec, pore(ph.labels, PHASES) & spec)
    return out


def truth_heights(ph) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """True interface heights per (z, x) column, and which columns are specimen from the cap down."""
    r, lab = ph.regions, ph.labels
    spec = r != REGIONS["frame"]
    top = np.argmax(spec, axis=1)
    # a column counts when it is specimen from its first specimen row to the bottom (not a wall)
    valid = spec.any(axis=1) & (spec.sum(axis=1) == spec.shape[1] - top)
    heights = {
        "sodium|sei": (lab == PHASES["sodium"]).sum(1) + top,
        "sei|separator": (r == REGIONS["anode"]).sum(1) + top,
        "separator|cathode": ((r == REGIONS["anode"]) | (r == REGIONS["separator"])).sum(1) + top,
        "cathode|collector": ((r != REGIONS["collector"]) & spec).sum(1) + top,
    }
    return heights, valid


def iface_distance(res, ph) -> dict[str, float]:
    th, valid = truth_heights(ph)
    vy = ph.voxel_size_nm[1]
    out = {}
    for k in IFACES:
        h = res.interfaces.get("heights_nm", {}).get(k)
        out[k] = float("nan") if h is None else float(np.abs(h / vy - th[k])[valid].mean())
    return out


def quality(args) -> list[dict]:
    rows = []
    for preset in ("diglyme", "carbonate"):
        ph = make_phantom(preset, slices=args.slices, shape=(args.size, args.size), seed=0, artefacts="all",
                          frame=True)
        vox = ph.voxel_size_nm
        img = oracle_correct(ph)
        scr = synthetic_scribbles(ph.labels, seed=1)
        t0 = time.perf_counter()
        clf = train_classifier(img, scr, voxel_size_nm=vox, phase_names=PHASES)
        t1 = time.perf_counter()
        res = segment_volume(img, voxel_size_nm=vox, method="classifier", classifier=clf)
        t2 = time.perf_counter()
        raw = ph.acquired[:, : ph.labels.shape[1]]
        base = segment_volume(raw, voxel_size_nm=vox, method="otsu")
        rows.append({
            "preset": preset, "method": "classifier (oracle-corrected)", "dice": phase_dice(res.phases, res.phase_names, ph),
            "interface_mean_distance_vox": iface_distance(res, ph), "absent": res.interfaces["absent_layers"],
            "train_s": t1 - t0, "segment_s": t2 - t1, "scribbled_fraction": float((scr > 0).mean()),
            "oob_accuracy": clf.info["out_of_bag_accuracy"],
        })
        rows.append({
            "preset": preset, "method": "multi-Otsu (raw stack)", "dice": phase_dice(base.phases, base.phase_names, ph),
            "interface_mean_distance_vox": iface_distance(base, ph), "absent": base.interfaces["absent_layers"],
        })
    return rows


def speed(args) -> dict:
    import dask
    import dask.array as da

    z, y, x = (int(v) for v in args.speed.split("x"))
    ph = make_phantom("diglyme", slices=24, shape=(256, 256), seed=0, artefacts="all")
    img = oracle_correct(ph)
    clf = train_classifier(img, synthetic_scribbles(ph.labels, seed=1), voxel_size_nm=ph.voxel_size_nm, phase_names=PHASES)
    reps = (-(-z // img.shape[0]), -(-y // img.shape[1]), -(-x // img.shape[2]))
    tile = da.from_array(img, chunks=img.shape)
    big = da.tile(tile, reps)[:z, :y, :x].rechunk((32, 256, 256))
    times, cpu = [], []
    for _ in range(args.repeats):
        with dask.config.set(scheduler="threads", num_workers=2):
            t, c = time.perf_counter(), time.process_time()
            res = segment_volume(big, voxel_size_nm=ph.voxel_size_nm, method="classifier", classifier=clf)
            np.asarray(res.regions.sum().compute())
            times.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
    voxels = z * y * x
    med = statistics.median(times)
    return {"shape": [z, y, x], "chunks": [32, 256, 256], "workers": 2, "times_s": times, "median_s": med,
            "cpu_s": cpu,
            "voxels_per_s": voxels / med, "extrapolated_200x1024x1024_s": med * (200 * 1024 * 1024) / voxels,
            "cpus_visible": os.cpu_count(), "note": "2 cores shared with other jobs: timings noisy; median quoted"}


def markdown(rows: list[dict], sp: dict | None) -> str:
    cols = ["active", "pore", "separator", "sodium", "collector", "void", "sei", "frame"]
    lines = ["# Segmentation benchmark", "",
             "Phantoms with all artefacts and the face's frame (cap + trench walls, found automatically). Classifier: random forest trained from synthetic scribbles on the "
             "oracle-corrected stack (known gain/offset, shading and drift undone; curtains and noise left in). "
             "Baseline: plain multi-Otsu on the raw stack.", "",
             "| preset | method | " + " | ".join(cols) + " | " + " | ".join(IFACES) + " |",
             "|---|---|" + "---|" * (len(cols) + len(IFACES))]
    lines.append("| target | | " + " | ".join(f"≥{TARGETS[c]:.2f}" for c in cols) + " | " + " | ".join("≤2 vox" for _ in IFACES) + " |")
    for r in rows:
        d = r["dice"]
        f = r["interface_mean_distance_vox"]
        lines.append(f"| {r['preset']} | {r['method']} | " + " | ".join(f"{d[c]:.3f}" for c in cols) + " | "
                     + " | ".join(f"{f[k]:.2f}" for k in IFACES) + " |")
    if sp:
        lines += ["", f"Speed: {sp['shape']} classifier segmentation (features + forest + cleanup + layers), "
                  f"2 dask threads, chunks {sp['chunks']}: median {sp['median_s']:.1f} s over {len(sp['times_s'])} runs "
                  f"({sp['voxels_per_s'] / 1e6:.2f} Mvox/s) → 200×1024×1024 ≈ {sp['extrapolated_200x1024x1024_s']:.0f} s; "
                  f"process CPU time median {statistics.median(sp['cpu_s']):.1f} s. "
                  f"{sp['note']}."]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--slices", type=int, default=24)
    ap.add_argument("--size", type=int, default=192)
    ap.add_argument("--speed", default="")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    rows = quality(args)
    sp = speed(args) if args.speed else None
    OUT.mkdir(parents=True, exist_ok=True)
    doc = {"platform": platform.platform(), "args": vars(args), "rows": rows, "speed": sp}
    (OUT / "segmentation.json").write_text(json.dumps(doc, indent=2, default=float))
    md = markdown(rows, sp)
    (OUT / "segmentation.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
