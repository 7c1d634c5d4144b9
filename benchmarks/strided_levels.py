"""The classifier's interior levels and Dice on a row-strided sample against the whole sample (review rev20 L6).

    PYTHONPATH=. python benchmarks/strided_levels.py [--seeds 0] [--presets diglyme,carbonate] [--stride 8]
        [--stages oracle,corrected]

On the 24 x 192 x 192 benchmark phantom the grey sample (``volrecon.segment.api._sample_index``) is
whole (stride 1); a big stack's is every few rows.  Here the sample is forced to ``--stride`` by its
voxel budget, and the levels of ``parameters["classifier_boundaries"]`` and
``parameters["layer_fibre_evidence"]``, the pore and active Dice and the cathode's binder fraction are
printed next to those at stride 1.  Prints only; writes nothing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from volrecon.phases import PHASES
from volrecon.sample import make_phantom
from volrecon.sample.oracle import oracle_correct
from volrecon.segment import api, segment_volume, train_classifier
from volrecon.segment.scribbles import synthetic_scribbles

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import phantom_args  # noqa: E402
from segmentation import cathode_fractions, phase_dice, real_correct  # noqa: E402


def levels_of(params: dict) -> dict:
    """The interior levels and cuts the classifier's re-decision and fibre evidence used."""
    cb = params.get("classifier_boundaries", {})
    out = {}
    for region in ("cathode", "separator"):
        r = cb.get(region, {})
        out[region] = {k: r[k] for k in ("levels", "dark_levels") if k in r}
        if "particle_edges" in r:
            out[region]["edge_cut"] = r["particle_edges"]["cut"]
    out["fibre"] = params.get("layer_fibre_evidence", {}).get("levels", {})
    return out


def run(img: np.ndarray, tr, vox, stride: int) -> dict:
    """Segment ``img`` with the grey sample forced to ``stride``; levels, Dice and binder fraction."""
    per = int(np.prod(img.shape[1:])) * min(img.shape[0], 64)
    defaults = api._sample_index.__defaults__
    api._sample_index.__defaults__ = (64, per // stride)
    try:
        clf = train_classifier(img, synthetic_scribbles(tr.labels, seed=1), voxel_size_nm=vox, phase_names=PHASES)
        res = segment_volume(img, voxel_size_nm=vox, method="classifier", classifier=clf)
    finally:
        api._sample_index.__defaults__ = defaults
    ph = np.asarray(res.phases)
    d = phase_dice(ph, res.phase_names, tr)
    return {"levels": levels_of(res.parameters), "pore": round(d["pore"], 4), "active": round(d["active"], 4),
            "binder_dice": round(d["binder"], 4),
            "binder_fraction": [round(v, 4) for v in cathode_fractions(ph, res.phase_names, tr)["binder"]]}


def main() -> None:
    ap = phantom_args(__doc__, seeds="0")
    ap.add_argument("--stride", type=int, default=8)
    ap.add_argument("--stages", default="oracle,corrected")
    args = ap.parse_args()
    for seed in [int(s) for s in args.seeds.split(",")]:
        for preset in args.presets.split(","):
            ph = make_phantom(preset, slices=args.slices, shape=(args.size, args.size), seed=seed, artefacts="all",
                              frame=True)
            for stage in args.stages.split(","):
                img, tr = (oracle_correct(ph), ph) if stage == "oracle" else real_correct(ph)[:2]
                for stride in (1, args.stride):
                    print(json.dumps({"seed": seed, "preset": preset, "stage": stage, "stride": stride,
                                      **run(img, tr, ph.voxel_size_nm, stride)}, default=float), flush=True)


if __name__ == "__main__":
    main()
