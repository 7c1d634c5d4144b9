"""Ingest benchmark: streamed assemble vs the eager way, on 2048×1536 8-bit stacks.

Measures, each in a fresh process (median of ``--repeats`` runs):
- streamed: ``volrecon.pipeline.assemble`` (lazy dask stack -> OME-Zarr, slab by slab);
- eager: ``tifffile.imread`` of every slice into one array, then the same OME-Zarr writer.

Reports slices/s, MB/s of raw pixels and peak RSS; the goal is peak RSS(400) <= 1.2 × peak
RSS(100) for the streamed path and >= 150 MB/s.

Run: ``python benchmarks/ingest.py [--sizes 100 400] [--repeats 3]``
"""

from __future__ import annotations

import argparse
import shutil

from _common import WORK, machine, median_of, run_child, save, synthetic_sem_stack

SHAPE = (1536, 2048)

STREAMED = """
from volrecon.pipeline import assemble
t = time.perf_counter()
assemble({src!r}, {out!r}, pixel_size="5nm")
_res = {{'wall_s': time.perf_counter() - t}}
"""

EAGER = """
import glob, tifffile
from volrecon.io.omezarr import write_ome_zarr
t = time.perf_counter()
files = sorted(glob.glob({src!r} + '/*.tif'))
volume = tifffile.imread(files)
write_ome_zarr(volume, {out!r} + '/image.ome.zarr', voxel_size_nm=(20.0, 6.345, 5.0))
_res = {{'wall_s': time.perf_counter() - t}}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 400])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    rows = []
    for n in args.sizes:
        src = WORK / f"ingest_{n}"
        if not src.exists() or len(list(src.glob("*.tif"))) != n:
            shutil.rmtree(src, ignore_errors=True)
            synthetic_sem_stack(src, n, SHAPE)
        mb = n * SHAPE[0] * SHAPE[1] / 1e6
        for method, template in (("streamed (volrecon assemble)", STREAMED), ("eager (tifffile.imread + write)", EAGER)):
            runs = []
            for r in range(args.repeats):
                out = WORK / f"out_{n}_{r}"
                shutil.rmtree(out, ignore_errors=True)
                out.mkdir(parents=True) if "eager" in method else None
                runs.append(run_child(template.format(src=str(src), out=str(out))))
                shutil.rmtree(out, ignore_errors=True)
            wall = median_of(runs, "wall_s")
            rows.append(
                {
                    "slices": n,
                    "method": method,
                    "wall_s": wall,
                    "slices_per_s": n / wall,
                    "mb_per_s": mb / wall,
                    "peak_rss_mb": median_of(runs, "peak_rss_mb"),
                    "runs": runs,
                }
            )
    streamed = {r["slices"]: r for r in rows if r["method"].startswith("streamed")}
    ratio = None
    if 100 in streamed and 400 in streamed:
        ratio = streamed[400]["peak_rss_mb"] / streamed[100]["peak_rss_mb"]
    lines = [
        "# Ingest benchmark (2048×1536 uint8 slices; medians of %d runs, fresh process each)" % args.repeats,
        "",
        f"Machine: {machine()}",
        "",
        "| slices | method | wall (s) | slices/s | MB/s | peak RSS (MB) |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['slices']} | {r['method']} | {r['wall_s']:.1f} | {r['slices_per_s']:.1f} | {r['mb_per_s']:.0f} | {r['peak_rss_mb']:.0f} |")
    if ratio is not None:
        lines += ["", f"Streamed peak RSS 400/100 slices: **{ratio:.2f}×** (goal ≤ 1.2×)."]
    save("ingest", {"machine": machine(), "rows": rows, "rss_ratio_400_100": ratio}, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
