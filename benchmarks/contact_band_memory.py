"""Peak memory of the fibre | particle contact step alone on fields of growing width, the separator |
cathode boundary tilted across them (does a block's working set follow its chunk, or the field?).

The step (``segment.api._fibre_contacts_placed``) pools each column's levels from its neighbours'
rows at their own heights, so a block must hold, along the stacking axis, the rows around the turns
of its columns and of those within the pooling's reach.  A boundary tilted by ``--tilt`` rows a
column (0.05: 2.9 degrees) rises by ``tilt x width`` rows across the field: a band cut once for the
whole field is that high in every block.  The inputs are made lazily per chunk (a column's grey: the
separator's fibre level down to its contact, the particles' level below, noise), the output computed
row by row (:func:`volrecon.segment._rows.store_by_rows`, dask's synchronous scheduler) into an array
in memory, and the peak of the heap numpy allocates while it runs is read with :mod:`tracemalloc` (the output array is
allocated before the tracing starts); one fresh process per width.

Run::

    python benchmarks/contact_band_memory.py --widths 1024 2048 4096 [--tilt 0.05]

Results: ``results/contact_band_memory.{json,md}`` (``VOLRECON_BENCH_RESULTS`` sends them elsewhere).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from typing import Any

from _common import machine, save

CHILD = """
import json, sys, tracemalloc
import dask, dask.array as da, numpy as np
from volrecon.phases import PHASES, REGIONS
from volrecon.sample.render import INTENSITY
from volrecon.segment import api, _rows

nz, ny, nx, tilt, chunk = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
chunks = (nz, chunk, chunk)

def contact(x):
    return 20.3 + tilt * x

def maker(kind):
    def block(block_info=None):
        (z0, z1), (y0, y1), (x0, x1) = block_info[None]["array-location"]
        y = np.arange(y0, y1)[None, :, None] + 0.5
        c = contact(np.arange(x0, x1))[None, None, :]
        if kind == "grey":
            g = np.where(y < c, INTENSITY["separator"], INTENSITY["active"]).astype(np.float32)
            rng = np.random.default_rng(z0 * 7919 + y0 * 31 + x0)
            return np.broadcast_to(g, (z1 - z0, y1 - y0, x1 - x0)) + rng.normal(0, 0.005, (z1 - z0, y1 - y0, x1 - x0)).astype(np.float32)
        cut = np.floor(c)
        if kind == "regions":
            r = np.where(y < cut, REGIONS["separator"], REGIONS["cathode"])
        else:
            r = np.where(y < cut, PHASES["separator"], PHASES["active"])
        return np.broadcast_to(r.astype(np.uint8), (z1 - z0, y1 - y0, x1 - x0)).copy()
    return block

grey, reg, first = (da.map_blocks(maker(k), dtype=np.float32 if k == "grey" else np.uint8, chunks=tuple(
    tuple(min(c, n - i) for i in range(0, n, c)) for c, n in zip(chunks, (nz, ny, nx)))) for k in ("grey", "regions", "phases"))
levels = {"pore": INTENSITY["electrolyte"], "fibre": INTENSITY["separator"], "binder": INTENSITY["binder"],
          "active": INTENSITY["active"]}
edge = {"sigma_vox": 0.8, "rim_ratio": 0.45, "rim_half_width_vox": 1.0, "accepted": True}
names = {k: PHASES[k] for k in ("separator", "active", "binder", "electrolyte", "sei")}
dask.config.set(scheduler="synchronous")
heights = []
steps = api.fibre_contact_steps

def recorded(g, *a, **k):
    heights.append(int(g.shape[1]))
    return steps(g, *a, **k)

api.fibre_contact_steps = recorded
out = np.empty((nz, ny, nx), np.uint8)
tracemalloc.start()
placed = api._fibre_contacts_placed(grey, reg, first, levels=levels, edge=edge, names=names, vox=(20.0, 10.0, 10.0),
                                    stack=(1, True), reach=2, params={})
_rows.store_by_rows(placed.rechunk(chunks), out)
peak = tracemalloc.get_traced_memory()[1]
moved = int((out == PHASES["active"]).sum() - np.asarray(first == PHASES["active"]).sum())
print(json.dumps({"width": nx, "rise_rows": tilt * nx, "peak_mb": peak / 2**20, "blocks": len(heights),
                  "block_rows": [min(heights), max(heights)] if heights else [], "active_moved": moved}))
"""


def measure(width: int, args: argparse.Namespace) -> dict[str, Any]:
    """One fresh process placing the contacts on a field ``width`` columns wide."""
    out = subprocess.run([sys.executable, "-c", CHILD, str(args.slices), str(args.rows), str(width), str(args.tilt),
                          str(args.chunk)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--widths", type=int, nargs="+", default=[1024, 2048, 4096])
    ap.add_argument("--tilt", type=float, default=0.05, help="the boundary's rise, rows a column")
    ap.add_argument("--slices", type=int, default=16)
    ap.add_argument("--rows", type=int, default=320, help="the stacking axis' length (image rows)")
    ap.add_argument("--chunk", type=int, default=256, help="in-plane chunk side (the slices: one chunk)")
    ap.add_argument("--name", default="contact_band_memory")
    args = ap.parse_args()
    runs = [measure(w, args) for w in args.widths]
    lines = ["| width (columns) | boundary's rise (rows) | blocks | block rows along the stacking axis | "
             "peak heap (MB) |", "|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['width']} | {r['rise_rows']:.0f} | {r['blocks']} | {r['block_rows'][0]}-{r['block_rows'][1]} | "
              f"{r['peak_mb']:.1f} |" for r in runs]
    md = (f"# The fibre | particle contact step alone: peak heap against the field's width\n\nCommand: `python "
          f"benchmarks/contact_band_memory.py --widths {' '.join(map(str, args.widths))} --tilt {args.tilt}` "
          f"({args.slices} slices x {args.rows} rows, chunks {args.slices} x {args.chunk} x {args.chunk})\n\n"
          f"Machine: {machine()}\n\n" + "\n".join(lines) + "\n")
    save(args.name, {"args": vars(args), "runs": runs}, md)


if __name__ == "__main__":
    main()
