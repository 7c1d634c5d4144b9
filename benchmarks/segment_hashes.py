"""Hashes of segment_volume's outputs on the benchmark phantoms, to show a speed change leaves them alone.

    PYTHONPATH=. python benchmarks/segment_hashes.py [--seeds 0,1] [--methods auto,classifier] [--dask]
        [--compare OTHER.json]

For each seed, preset (diglyme, carbonate), correction (the real correction stage as in
``benchmarks/segmentation.py``, and the oracle correction) and method, the SHA-256 of the phases,
the regions and the JSON of ``parameters`` (every fitted level, threshold and length) of the
24 x 192 x 192 phantom (``--slices``, ``--size``).  ``--dask``: the input as a dask array of one
slice per chunk (the lazy path, with its scratch folder, as ingest delivers a stack).  ``--compare``:
every row that differs from an earlier run's file is listed (a change meant to cost less must list
none).  The phantoms and their corrections are made once and kept in ``benchmarks/_work``.

Writes results/segment_hashes[_dask].json (``VOLRECON_BENCH_RESULTS`` sends it elsewhere).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, WORK  # noqa: E402


def _inputs(preset: str, seed: int, slices: int, size: int) -> dict[str, np.ndarray]:
    """The corrected and oracle-corrected stacks of a phantom and their scribbles (cached)."""
    cache = WORK / f"segment_hashes_{preset}_{seed}_{slices}x{size}.npz"
    if not cache.exists():
        from segmentation import real_correct

        from volrecon.sample import make_phantom
        from volrecon.sample.oracle import oracle_correct
        from volrecon.segment.scribbles import synthetic_scribbles

        ph = make_phantom(preset, slices=slices, shape=(size, size), seed=seed, artefacts="all", frame=True)
        real, truth, _ = real_correct(ph)
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, real=real, oracle=oracle_correct(ph), vox=np.asarray(ph.voxel_size_nm),
                 scr_real=synthetic_scribbles(truth.labels, seed=1), scr_oracle=synthetic_scribbles(ph.labels, seed=1))
    with np.load(cache) as d:
        return {k: d[k] for k in d.files}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _array_sha(a: np.ndarray) -> str:
    a = np.asarray(a)
    return _sha(a.tobytes() + repr((a.dtype.str, a.shape)).encode())


def hashes(args: argparse.Namespace) -> dict[str, dict[str, str]]:
    """``"preset sSEED stage method"`` -> the hashes of its phases, regions and parameters."""
    import dask.array as da

    from volrecon.phases import PHASES
    from volrecon.segment import segment_volume, train_classifier

    out = {}
    for seed in (int(s) for s in args.seeds.split(",")):
        for preset in ("diglyme", "carbonate"):
            d = _inputs(preset, seed, args.slices, args.size)
            vox = tuple(float(v) for v in d["vox"])
            for stage in ("real", "oracle"):
                img = d[stage]
                image = da.from_array(img, chunks=(1, *img.shape[1:])) if args.dask else img
                for method in args.methods.split(","):
                    kw = {}
                    if method == "classifier":
                        kw["classifier"] = train_classifier(img, d[f"scr_{stage}"], voxel_size_nm=vox, phase_names=PHASES)
                    res = segment_volume(image, voxel_size_nm=vox, method=method, **kw)
                    phases, regions = da.compute(res.phases, res.regions) if args.dask else (res.phases, res.regions)
                    key = f"{preset} s{seed} {stage} {method}"
                    out[key] = {"phases": _array_sha(phases), "regions": _array_sha(regions),
                                "parameters": _sha(json.dumps(res.parameters, sort_keys=True, default=_whole).encode())}
                    print(key, out[key], flush=True)
    return out


def _whole(value: object) -> object:
    """JSON form of what ``json`` cannot write: an array in full (``str`` elides the middle of a long
    one, and a change there would go unseen), anything else as its ``str``."""
    if isinstance(value, np.ndarray):
        return {"dtype": str(value.dtype), "shape": list(value.shape), "sha": _array_sha(value)}
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--methods", default="auto,classifier")
    ap.add_argument("--slices", type=int, default=24)
    ap.add_argument("--size", type=int, default=192)
    ap.add_argument("--dask", action="store_true", help="dask input, one slice per chunk")
    ap.add_argument("--compare", default="", help="an earlier run's json: list the rows that differ")
    args = ap.parse_args()
    got = hashes(args)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"segment_hashes{'_dask' if args.dask else ''}.json").write_text(json.dumps(got, indent=1))
    if args.compare:
        before = json.loads(Path(args.compare).read_text())
        diff = [f"{k} {f}" for k in got if k in before for f in got[k] if got[k][f] != before[k].get(f)]
        print("differences:", "; ".join(diff) if diff else f"none ({sum(k in before for k in got)} rows compared)")


if __name__ == "__main__":
    main()
