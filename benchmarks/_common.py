"""Helpers shared by the benchmark scripts: peak memory of a child process, medians, result files."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import tifffile

# VOLRECON_BENCH_RESULTS sends result files elsewhere (scratch runs that must not touch the committed ones).
RESULTS = Path(os.environ.get("VOLRECON_BENCH_RESULTS") or Path(__file__).resolve().parent / "results")
WORK = Path(__file__).resolve().parent / "_work"


def phantom_args(description: str | None = None, *, seeds: str = "0,1") -> "argparse.ArgumentParser":
    """An argument parser with the phantom grid the segmentation diagnostics share: ``--slices``,
    ``--size`` (24 x 192 x 192, the benchmark's), ``--seeds`` and ``--presets`` (comma-separated)."""
    import argparse

    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--slices", type=int, default=24)
    ap.add_argument("--size", type=int, default=192)
    ap.add_argument("--seeds", default=seeds, help="comma-separated phantom seeds")
    ap.add_argument("--presets", default="diglyme,carbonate")
    return ap


def stage_grid_main(doc: str, name: str, run_case: Any, table: Any, *, seeds: str = "0,1") -> None:
    """Run a diagnostic over phantom seed x preset x correction stage and save its results.

    The command line is :func:`phantom_args`' plus ``--stages`` (``corrected,oracle``) and ``--name``
    (the results' file name, default ``name``).  ``run_case(preset, seed, stage, args)`` gives one row;
    ``table(rows, args)`` the results page.
    """
    ap = phantom_args(doc.splitlines()[0], seeds=seeds)
    ap.add_argument("--stages", default="corrected,oracle")
    ap.add_argument("--name", default=name)
    args = ap.parse_args()
    rows = [run_case(p, int(s), st, args) for s in args.seeds.split(",") for p in args.presets.split(",")
            for st in args.stages.split(",")]
    save(args.name, {"machine": machine(), "args": vars(args), "rows": rows}, table(rows, args))


def results_header(title: str, command: str, doc: str) -> list[str]:
    """The first lines of a results page: ``title``, the command, and the script's module docstring
    from its third paragraph up to the one starting "Writes" (what the figures are and how to read them)."""
    return [f"# {title}", "", f"Command: `{command}`", "", doc.split("\n\n", 2)[2].split("\n\nWrites")[0], ""]


def run_child(code: str, *, timeout: float = 1800) -> dict[str, Any]:
    """Run Python ``code`` in a fresh interpreter; it must print one JSON line last.

    The child's own peak RSS (``ru_maxrss``) is added as ``peak_rss_mb`` so that each measurement
    starts from an empty process.
    """
    wrapper = (
        "import json, resource, time\n"
        "_t0 = time.perf_counter()\n"
        f"{code}\n"
        "_res['wall_s'] = _res.get('wall_s', time.perf_counter() - _t0)\n"
        "_res['peak_rss_mb'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
        "print(json.dumps(_res))\n"
    )
    proc = subprocess.run([sys.executable, "-c", wrapper], capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark child failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def median_of(runs: Sequence[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in runs))


def machine() -> dict[str, Any]:
    import os

    return {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform(), "date": time.strftime("%Y-%m-%d")}


def save(name: str, payload: dict[str, Any], table: str) -> None:
    """Write ``results/<name>.json`` and ``results/<name>.md``."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=2))
    (RESULTS / f"{name}.md").write_text(table)
    print(table)


def synthetic_sem_stack(folder: Path, n: int, shape: tuple[int, int], *, seed: int = 0) -> Path:
    """Write ``n`` 8-bit slices that look like SEM images (smooth grains + noise).

    Slices are one base texture shifted per slice plus fresh noise, so writing 400 is fast.  The
    pixel size is given to volrecon on the command line; z comes from the file names.
    """
    from scipy import ndimage

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    base = ndimage.gaussian_filter(rng.random((shape[0] + 64, shape[1] + 64)).astype(np.float32), 6)
    base = (base - base.min()) / (np.ptp(base) + 1e-9)
    for i in range(n):
        dy, dx = (i * 7) % 64, (i * 13) % 64
        img = base[dy: dy + shape[0], dx: dx + shape[1]] * 200 + rng.normal(0, 12, shape).astype(np.float32) + 20
        tifffile.imwrite(
            folder / f"slice_{i:05d}_z={i * 0.02:.4f}um.tif",
            np.clip(img, 0, 255).astype(np.uint8),
        )
    return folder
