"""Tortuosity solver side by side: volrecon vs porespy.simulations.tortuosity_fd.

Usage: python benchmarks/tortuosity.py [--sizes 100 200 300] [--no-porespy]
Writes benchmarks/results/tortuosity.md and .json.  Time = wall time of one call after a
warm-up (numba compiled), peak memory = tracemalloc peak of numpy allocations / voxels.
The machine is shared: run several times and quote medians.
"""

from __future__ import annotations

import argparse
import json
import time
import tracemalloc
from pathlib import Path

import numpy as np

from volrecon.analyze import tortuosity
from volrecon.analyze._multigrid import solve_conductance
from volrecon.analyze.tortuosity import percolating_cluster

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "taufactor_nmc_electrode" / "electrode.tiff"
OUT = Path(__file__).resolve().parent / "results"


def volume(n: int) -> tuple[np.ndarray, str]:
    if DATA.exists():
        import tifffile

        img = tifffile.imread(DATA) == 0
        reps = -(-n // img.shape[0])
        tiled = np.tile(img, (reps, reps, reps))  # periodic tiling (seams are not continuous)
        return tiled[:n, :n, :n], "TauFactor NMC pore (tiled)"
    import porespy as ps

    return ps.generators.blobs([n] * 3, porosity=0.45, blobiness=1.5, seed=0), "porespy blobs 0.45"


def run_ours(m: np.ndarray) -> dict:
    tracemalloc.start()
    t = time.perf_counter()
    r = tortuosity(m, axis=0)
    dt = time.perf_counter() - t
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {"tau": r.tortuosity_factor, "seconds": dt, "bytes_per_voxel": peak / m.size, "iterations": r.iterations,
            "deff": r.effective_diffusivity}


def run_porespy(m: np.ndarray) -> dict:
    import porespy as ps

    tracemalloc.start()
    t = time.perf_counter()
    r = ps.simulations.tortuosity_fd(m, axis=0)
    dt = time.perf_counter() - t
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {"tau": float(r.tortuosity), "seconds": dt, "bytes_per_voxel": peak / m.size, "iterations": None}


def reference(m: np.ndarray) -> float:
    c, _ = percolating_cluster(m, 0)
    _, st = solve_conductance(c.view(np.uint8), (1, 1, 1), rtol=1e-11, dtype=np.float64, max_iter=400)
    return st.dissipation * m.shape[0] / (m.shape[1] * m.shape[2])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 200, 300])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-porespy", action="store_true")
    ap.add_argument("--porespy-max", type=int, default=200)
    args = ap.parse_args()
    tortuosity(np.ones((8, 8, 8), bool), axis=0)  # compile
    rows = []
    for n in args.sizes:
        m, what = volume(n)
        runs = [run_ours(m) for _ in range(args.repeat)]
        ours = dict(runs[0], seconds=float(np.median([r["seconds"] for r in runs])))
        ref = reference(m) if n <= 200 else None
        rows.append({"n": n, "volume": what, "solver": "volrecon (PCG + aggregation MG, float32)", **ours,
                     "deff_error_vs_float64_reference": (ours["deff"] / ref - 1) if ref else None})
        if not args.no_porespy and n <= args.porespy_max:
            try:
                rows.append({"n": n, "volume": what, "solver": "porespy tortuosity_fd", **run_porespy(m)})
            except ImportError as exc:  # porespy's solver needs openpnm
                print(f"porespy tortuosity_fd unavailable: {exc}")
                args.no_porespy = True
        print(rows[-2:] if len(rows) > 1 else rows)
    OUT.mkdir(exist_ok=True)
    (OUT / "tortuosity.json").write_text(json.dumps(rows, indent=2))
    lines = ["| n³ | solver | τ | time (s, median) | peak B/voxel | iterations | D_eff err vs ref |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        err = r.get("deff_error_vs_float64_reference")
        lines.append(f"| {r['n']} | {r['solver']} | {r['tau']:.4f} | {r['seconds']:.2f} | {r['bytes_per_voxel']:.1f} | "
                     f"{r['iterations']} | {'' if err is None else f'{err*100:.4f} %'} |")
    (OUT / "tortuosity.md").write_text("# Tortuosity benchmark\n\n" + "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
