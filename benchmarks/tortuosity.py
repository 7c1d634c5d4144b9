"""Tortuosity solvers side by side: volrecon, porespy ``tortuosity_fd`` and TauFactor (CPU).

Every measurement runs in a fresh interpreter on one core (``NUMBA_NUM_THREADS=1``,
``OMP_NUM_THREADS=1``, ``torch.set_num_threads(1)``) on the same pore masks:

- the TauFactor NMC electrode (256³, pore = label 0), axis 0;
- that electrode tiled periodically and cut to n³ (n = 100 … 300; the seams are not continuous).

Time is the wall time of the solve alone (imports, loading and volrecon's numba compilation are
done before the clock starts); memory is the growth of the peak RSS during the solve, per voxel.
The D_eff/D_bulk of every solver is compared with a tightly converged float64 volrecon solve
(rtol 1e-11) of the same mask.  The cost exponent k (time ∝ voxels^k) is fitted to the
volrecon medians over 100³–300³.

porespy's solver needs openpnm and TauFactor needs torch; neither is a volrecon dependency, so
each runs under the interpreter given by ``--porespy-python`` / ``--taufactor-python``, e.g.
``python -m venv --system-site-packages /tmp/psenv && /tmp/psenv/bin/pip install openpnm`` and
``python -m venv /tmp/tfenv && /tmp/tfenv/bin/pip install torch==2.13.0 taufactor numpy tifffile``.

Usage::

    python benchmarks/tortuosity.py --sizes 100 150 200 250 300 --repeat 3 \\
        --porespy-python /tmp/psenv/bin/python --taufactor-python /tmp/tfenv/bin/python

Writes benchmarks/results/tortuosity.json and tortuosity.md (``--name`` for another stem).  The machine is shared: medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, WORK, machine  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "taufactor_nmc_electrode" / "electrode.tiff"

_PRELUDE = """
import json, os, resource, sys, time
import numpy as np
def _rss(): return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
m = np.load(sys.argv[1])
"""

_OURS = _PRELUDE + """
from volrecon.analyze import tortuosity
tortuosity(np.ones((8, 8, 8), bool), axis=0)  # numba compilation
r0 = _rss(); t = time.perf_counter(); c = time.process_time()
r = tortuosity(m, axis=0)
dt = time.perf_counter() - t; cpu = time.process_time() - c
print(json.dumps({"seconds": dt, "cpu_seconds": cpu, "rss_growth": _rss() - r0, "tau": r.tortuosity_factor,
                  "deff": r.effective_diffusivity, "iterations": r.iterations}))
"""

_REFERENCE = _PRELUDE + """
from volrecon.analyze._multigrid import solve_conductance
from volrecon.analyze.tortuosity import percolating_cluster
c, _ = percolating_cluster(m, 0)
_, st = solve_conductance(c.view(np.uint8), (1, 1, 1), rtol=1e-11, dtype=np.float64, max_iter=400)
print(json.dumps({"deff": st.dissipation * m.shape[0] / (m.shape[1] * m.shape[2])}))
"""

_PORESPY = _PRELUDE + """
import porespy as ps
import openpnm  # noqa: F401  (tortuosity_fd needs it)
r0 = _rss(); t = time.perf_counter(); c = time.process_time()
r = ps.simulations.tortuosity_fd(m, axis=0)
dt = time.perf_counter() - t; cpu = time.process_time() - c
print(json.dumps({"seconds": dt, "cpu_seconds": cpu, "rss_growth": _rss() - r0, "tau": float(r.tortuosity),
                  "deff": 1.0 / float(r.formation_factor), "iterations": None}))
"""

_TAUFACTOR = _PRELUDE + """
import torch, taufactor as tf
torch.set_num_threads(1)
r0 = _rss(); t = time.perf_counter(); c = time.process_time()
s = tf.Solver(m.astype(np.uint8), device="cpu")
tau = s.solve(verbose=False)
dt = time.perf_counter() - t; cpu = time.process_time() - c
print(json.dumps({"seconds": dt, "cpu_seconds": cpu, "rss_growth": _rss() - r0, "tau": float(np.ravel(tau)[0]),
                  "deff": float(np.ravel(s.D_eff)[0]), "iterations": int(s.iter)}))
"""


def _child(python: str, code: str, mask_path: Path, timeout: float) -> dict[str, Any]:
    env = dict(os.environ, NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               OPENBLAS_NUM_THREADS="1")
    proc = subprocess.run([python, "-c", code, str(mask_path)], capture_output=True, text=True,
                          timeout=timeout, env=env)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def volumes(sizes: list[int]) -> list[tuple[str, int, Path]]:
    """Write the masks to benchmarks/_work and return (name, n, path)."""
    import tifffile

    WORK.mkdir(parents=True, exist_ok=True)
    img = tifffile.imread(DATA) == 0
    out = []
    p = WORK / "tort_nmc.npy"
    np.save(p, img)
    out.append(("TauFactor NMC electrode 256³", img.shape[0], p))
    for n in sizes:
        reps = -(-n // img.shape[0])
        tiled = np.ascontiguousarray(np.tile(img, (reps, reps, reps))[:n, :n, :n])
        p = WORK / f"tort_tiled_{n}.npy"
        np.save(p, tiled)
        out.append((f"NMC tiled {n}³", n, p))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 150, 200, 250, 300])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--porespy-python", default=None)
    ap.add_argument("--taufactor-python", default=None)
    ap.add_argument("--peer-sizes", type=int, nargs="+", default=[200, 300],
                    help="tiled sizes the peers are also run on (the NMC electrode always)")
    ap.add_argument("--peer-repeat", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=1200)
    ap.add_argument("--name", default="tortuosity", help="results file stem under benchmarks/results/")
    args = ap.parse_args()
    rows: list[dict[str, Any]] = []
    for name, n, path in volumes(args.sizes):
        ref = _child(sys.executable, _REFERENCE, path, args.timeout)["deff"]
        solvers = [("volrecon (PCG + MG, float32)", sys.executable, _OURS, args.repeat)]
        if n in args.peer_sizes or "electrode" in name:
            if args.porespy_python:
                solvers.append(("porespy tortuosity_fd", args.porespy_python, _PORESPY, args.peer_repeat))
            if args.taufactor_python:
                solvers.append(("TauFactor (CPU, torch)", args.taufactor_python, _TAUFACTOR, args.peer_repeat))
        for solver, python, code, repeat in solvers:
            runs = []
            try:
                for _ in range(repeat):
                    runs.append(_child(python, code, path, args.timeout))
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                why = (f"timed out after {args.timeout:.0f} s wall" if isinstance(exc, subprocess.TimeoutExpired)
                       else str(exc)[-400:])
                print(f"{solver} on {name} failed: {why}")
                rows.append({"volume": name, "n": n, "solver": solver, "error": why})
                continue
            row = {
                "volume": name, "n": n, "voxels": n ** 3, "solver": solver, "runs": len(runs),
                "seconds": statistics.median(r["seconds"] for r in runs),
                "seconds_all": [r["seconds"] for r in runs],
                "cpu_seconds": statistics.median(r["cpu_seconds"] for r in runs),
                "cpu_seconds_all": [r["cpu_seconds"] for r in runs],
                "bytes_per_voxel": statistics.median(r["rss_growth"] for r in runs) / n ** 3,
                "tau": runs[0]["tau"], "deff": runs[0]["deff"], "iterations": runs[0]["iterations"],
                "deff_reference": ref, "deff_rel_diff": runs[0]["deff"] / ref - 1.0,
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    ours = [r for r in rows if r["solver"].startswith("volrecon") and "tiled" in r["volume"] and "seconds" in r]
    fit = None
    if len(ours) >= 2:
        k, c = np.polyfit(np.log([r["voxels"] for r in ours]), np.log([r["seconds"] for r in ours]), 1)
        kc, c = np.polyfit(np.log([r["voxels"] for r in ours]), np.log([r["cpu_seconds"] for r in ours]), 1)
        fit = {"k": float(k), "k_cpu": float(kc), "sizes": [r["n"] for r in ours]}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps({"machine": machine(), "rows": rows, "cost_fit": fit},
                                                        indent=2))
    lines = ["# Tortuosity solvers side by side", "",
             "`" + " ".join(["python benchmarks/tortuosity.py"] + sys.argv[1:]) + "`", "",
             "One core each (NUMBA_NUM_THREADS=1, OMP/MKL threads 1, torch.set_num_threads(1)), fresh "
             "interpreter per run, 2-core machine shared with other work: wall time and process CPU time "
             "(time.process_time of the solving process) are medians of the runs listed; CPU time is the "
             "figure less disturbed by the other work. Memory = growth of peak RSS during the solve / voxels. "
             "D_eff diff = relative difference of D_eff/D_bulk from a float64 volrecon solve at rtol 1e-11 "
             "(porespy fixes the concentrations on the first and last voxel planes instead of half a voxel "
             "outside, so its difference is mostly that discretisation, not solver error). "
             "Axis 0, fixed concentrations on the two faces, no-flux side walls.", "",
             "| volume | solver | τ | D_eff/D_bulk | D_eff diff | wall (s) | CPU (s) | runs | peak B/voxel | iterations |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['volume']} | {r['solver']} | failed: {r['error'][:80]!r} | | | | | | | |")
            continue
        lines.append(f"| {r['volume']} | {r['solver']} | {r['tau']:.4f} | {r['deff']:.5f} | "
                     f"{r['deff_rel_diff'] * 100:+.4f} % | {r['seconds']:.2f} | {r['cpu_seconds']:.2f} | {r['runs']} | "
                     f"{r['bytes_per_voxel']:.1f} | {r['iterations']} |")
    if fit:
        lines += ["", f"Cost exponent (volrecon, time ∝ voxels^k over {fit['sizes']}³): **k = {fit['k']:.2f}** "
                      f"(wall), **{fit['k_cpu']:.2f}** (CPU)"]
    text = "\n".join(lines) + "\n"
    (RESULTS / f"{args.name}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
