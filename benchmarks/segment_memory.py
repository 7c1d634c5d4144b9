"""Peak RSS of the segment stage alone, step by step, on the first N slices of a corrected image.

What issue #9 asks of the stage is a peak that does not grow with the slice count; this tells which
step's working set does.  Each listed step of :mod:`volrecon.segment.api` is wrapped (in the main
thread only: the steps nest, the chunk tasks in dask's threads are not tagged); a thread samples
``/proc/self/statm`` every 20 ms and keeps, per nesting path of steps, the RSS on entry and the
peak.  The ``store_by_rows`` graphs' sizes (tasks, output chunks) are recorded too: the graph of a
materialised chain is held whole while its rows run (~2.4 kB a task), and so are the rows along the
stacking axis each block of the fibre | particle contact step holds (``band_rows``' answers, one per
tile of columns; their union is the band one block per tile held before session 26).

Run (one process per slice count; compare the peak minus entry of each step)::

    python benchmarks/segment_memory.py RUN/image.ome.zarr/0 --slices 100 400 [--synchronous]

``--synchronous`` runs dask's tasks in the main thread: the rows' chunks in flight no longer depend
on the threads' timing, which moved the 100-slice peak by ~100 MB between identical runs.
Results: ``results/segment_memory.{json,md}`` (``VOLRECON_BENCH_RESULTS`` sends them elsewhere).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
from _common import machine, save

STEPS = ("find_frame", "_layer_guess", "_smoothed_slices", "_materialise", "detect_layers", "refine_interface",
         "sodium_surface", "sei_outer_surface", "_regional_phases", "_fit_foil_spill", "_region_samples",
         "_cathode_rim_grey", "_gradient_sample", "_cathode_voids", "_void_samples", "_slice_histograms",
         "_measured_shine_depth", "_forward_refined", "_region_samples", "_auto_particle_edge_rule", "_particle_edges",
         "contact_band", "_fibre_contacts_placed", "fibre_contact_steps", "_with_foil_level", "_fibres_with_the_separator",
         "_dark_voids", "_slice_levels", "_electrolyte_levelled", "_cut_beside_voids", "_mark_topping", "_stored",
         "topping_voids", "_sei_level", "_guess_below_sei",
         "_interior_sample", "_sodium_only", "_stripe_darkening")
"""Functions of :mod:`volrecon.segment.api` whose working set is tagged (those absent are skipped)."""

CHILD = """
import functools, json, os, sys, tempfile, threading, time
from pathlib import Path
import dask, dask.array as da, zarr
from volrecon._memory import bound_heap
bound_heap()
from volrecon.segment import api, _rows
from volrecon.pipeline import _phases_stored

path, n, sync, steps = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4].split(",")
page = os.sysconf("SC_PAGE_SIZE")

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * page / 2**20

path_now, entry, peak, graphs, done = ["-"], {}, {}, [], threading.Event()

def note(key, r):
    peak[key] = max(peak.get(key, 0.0), r)

def sample():
    while not done.is_set():
        note("/".join(path_now), rss())
        time.sleep(0.02)

def tagged(fn, name):
    @functools.wraps(fn)
    def run(*a, **k):
        inner = name == "_stored" and path_now[-1].startswith("_materialise")  # _materialise's own store
        if threading.current_thread() is not threading.main_thread() or inner:
            return fn(*a, **k)
        named = name in ("_materialise", "_stored")
        path_now.append(f"{name}[{a[2] if len(a) > 2 else k.get('name')}]" if named else name)
        key = "/".join(path_now)
        entry.setdefault(key, rss())
        try:
            return fn(*a, **k)
        finally:
            note(key, rss())
            path_now.pop()
    return run

for name in steps:
    if hasattr(api, name):
        setattr(api, name, tagged(getattr(api, name), name))

class Plan(_rows._Plan):
    def __init__(self, graph, deps, rows):
        super().__init__(graph, deps, rows)
        graphs.append({"step": "/".join(path_now), "tasks": len(graph), "chunks": sum(len(r) for r in rows)})

_rows._Plan = Plan
bands = []
if hasattr(api, "band_rows"):  # the contact step's rows per tile (whole field: their union)
    band_rows = api.band_rows

    def banded(*a, **k):
        b = band_rows(*a, **k)
        if b is not None:
            bands.append([b.start, b.stop])
        return b

    api.band_rows = banded
if sync:
    dask.config.set(scheduler="synchronous")
threading.Thread(target=sample, daemon=True).start()
t = time.perf_counter()
with tempfile.TemporaryDirectory(prefix="segmem-") as work:
    image = da.from_zarr(zarr.open(path, mode="r"))[:n]
    res = api.segment_volume(image, voxel_size_nm=tuple(json.loads(sys.argv[5])), scratch=Path(work) / "scratch")
    path_now.append("labels_stored")
    _phases_stored(res, Path(work) / "scratch2")
    path_now.pop()
done.set()
print(json.dumps({"slices": n, "wall_s": time.perf_counter() - t, "peak_mb": max(peak.values()), "graphs": graphs, "bands": bands,
                  "steps": {k: [entry.get(k, 0.0), v] for k, v in peak.items()}}))
"""


def measure(image: str, slices: int, synchronous: bool, voxel_nm: list[float]) -> dict[str, Any]:
    """One fresh process segmenting the first ``slices`` slices of ``image``; its per-step RSS."""
    out = subprocess.run([sys.executable, "-c", CHILD, image, str(slices), "1" if synchronous else "0", ",".join(STEPS),
                          json.dumps(voxel_nm)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def table(runs: list[dict[str, Any]], voxels_per_slice: int) -> str:
    """Markdown: per step, RSS on entry / peak at each slice count, and the peak's growth per added voxel."""
    counts = [r["slices"] for r in runs]
    lines = ["| step | " + " | ".join(f"{n} slices: entry / peak (MB)" for n in counts) + " | peak growth (B/added voxel) |",
             "|---|" + "---:|" * (len(counts) + 1)]
    first, last = runs[0], runs[-1]
    added = (last["slices"] - first["slices"]) * voxels_per_slice
    for step in last["steps"]:
        cells = [" / ".join(f"{v:.0f}" for v in r["steps"].get(step, [float("nan")] * 2)) for r in runs]
        grow = (last["steps"][step][1] - first["steps"].get(step, [0.0, float("nan")])[1]) * 2**20 / added if added else 0.0
        lines.append(f"| {step} | " + " | ".join(cells) + f" | {grow:.2f} |")
    lines.append("| **stage peak** | " + " | ".join(f"{r['peak_mb']:.0f}" for r in runs) + " | "
                 f"{(last['peak_mb'] - first['peak_mb']) * 2**20 / max(added, 1):.2f} |")
    out = "\n".join(lines) + "\n"
    for r in runs:
        if r.get("bands"):
            b = np.array(r["bands"])
            out += (f"\n{r['slices']} slices: the fibre | particle contact's blocks hold {len(b)} bands of "
                    f"{(b[:, 1] - b[:, 0]).min()}-{(b[:, 1] - b[:, 0]).max()} rows along the stacking axis (the whole "
                    f"field's: {b[:, 1].max() - b[:, 0].min()} rows)")
    return out + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("image", help="a corrected image's zarr array (RUN/image.ome.zarr/0)")
    ap.add_argument("--slices", type=int, nargs="+", default=[100, 400])
    ap.add_argument("--voxel-nm", type=float, nargs=3, default=[20.0, 10.0, 10.0])
    ap.add_argument("--synchronous", action="store_true", help="dask's tasks in the main thread (repeatable peaks)")
    ap.add_argument("--name", default="segment_memory")
    args = ap.parse_args()
    import zarr

    shape = zarr.open(args.image, mode="r").shape
    runs = [measure(args.image, n, args.synchronous, list(args.voxel_nm)) for n in args.slices]
    md = (f"# Segment stage alone, peak RSS per step\n\nCommand: `python benchmarks/segment_memory.py {args.image} --slices "
          f"{' '.join(map(str, args.slices))}{' --synchronous' if args.synchronous else ''}` (slices {shape[1]}x{shape[2]})\n\n"
          f"Machine: {machine()}\n\n" + table(runs, int(shape[1]) * int(shape[2])))
    save(args.name, {"image": args.image, "shape": list(shape), "synchronous": args.synchronous, "runs": runs}, md)


if __name__ == "__main__":
    main()
