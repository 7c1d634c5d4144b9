"""Dark curtain stripes in the cathode: left by the correction, and what the void split reads of them (issue 7).

    PYTHONPATH=. python benchmarks/curtain_voids.py [--seeds 0,1] [--presets carbonate,diglyme]

For the benchmark's phantoms (``segmentation.py``: all artefacts, the face's frame, 24x192x192) the
curtain left in the stack is the stack minus the phantom's clean image (its curtains, drift, shading,
brightness and noise not yet applied), averaged over the true cathode region of each column (all
slices and rows; the noise averages out to about 0.002): on the oracle-corrected stack (which keeps
the curtains by definition), on the real correction stage's output (``correct_volume``; its grey
mapped to the clean image's by a straight-line fit over the cathode) and on that stage forced to
destripe (``min_significance=0``, whatever its gate says).  The gate's significance and whether it
destriped are reported.  For each dark stripe (a column whose oracle residual is below -0.01, with
its neighbours), the darkening the void split takes off
(:func:`volrecon.segment.voids.stripe_darkening`, on the oracle-corrected stack with the true
particles) against the true residual blurred across the columns as the split's pore average blurs
it.  Grey levels: the clean image's (0-1; electrolyte about 0.27, particles 0.67).

Writes ``results/curtain_voids.json`` and ``results/curtain_voids.md`` (``VOLRECON_BENCH_RESULTS`` moves them).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import scipy.ndimage as ndi

from volrecon.correct import correct_volume
from volrecon.phases import PHASES, REGIONS
from volrecon.sample import make_phantom
from volrecon.sample.oracle import oracle_correct
from volrecon.segment.voids import VoidCues, stripe_darkening

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, phantom_args, results_header, save  # noqa: E402

DARK = -0.01  # a column this much darker than the clean image, on average over the cathode, is a dark stripe


def column_residual(stack: np.ndarray, clean: np.ndarray, cathode: np.ndarray) -> np.ndarray:
    """Per column, the mean over the cathode of ``stack`` minus ``clean``, after mapping ``stack`` onto
    ``clean`` by a straight line fitted over the cathode."""
    a = np.vstack([clean[cathode], np.ones(int(cathode.sum()))]).T
    gain, offset = np.linalg.lstsq(a, stack[cathode].astype(np.float64), rcond=None)[0]
    diff = np.where(cathode, (stack - offset) / gain - clean, 0.0)
    return diff.sum(axis=(0, 1)) / np.maximum(cathode.sum(axis=(0, 1)), 1)


def stripes_of(residual: np.ndarray) -> list[int]:
    """The darkest column of each run of columns below :data:`DARK`."""
    lab, n = ndi.label(residual < DARK)
    return [int(np.argmin(np.where(lab == i, residual, np.inf))) for i in range(1, n + 1)]


def case(preset: str, seed: int, args: Any) -> dict[str, Any]:
    ph = make_phantom(preset, slices=args.slices, shape=(args.size, args.size), seed=seed, artefacts="all", frame=True)
    h = ph.labels.shape[1]
    cat = ph.regions == REGIONS["cathode"]
    out: dict[str, Any] = {"preset": preset, "seed": seed}
    oracle = oracle_correct(ph)
    prof = {"oracle": column_residual(oracle, ph.clean, cat)}
    for name, opts in (("corrected", None), ("forced", {"curtains": {"min_significance": 0}})):
        res = correct_volume(ph.acquired[:, :h], voxel_size_nm=ph.voxel_size_nm, options=opts)
        y0, y1, x0, x1 = res.drift.valid_region(ph.labels.shape[1:]) if res.drift is not None else (0, h, 0, ph.labels.shape[2])
        full = np.full(ph.labels.shape[2], np.nan)
        full[x0:x1] = column_residual(np.asarray(res.image, np.float32), ph.clean[:, y0:y1, x0:x1], cat[:, y0:y1, x0:x1])
        prof[name] = full
        if name == "corrected":
            out["gate"] = {"significance": res.curtains.significance, "enabled": res.curtains.enabled}
    cues = VoidCues()
    dark = stripe_darkening(oracle, cat & (ph.labels == PHASES["active"]), cues=cues, voxel_size_nm=ph.voxel_size_nm)
    seen = np.where(cat, dark, 0).sum(axis=(0, 1)) / np.maximum(cat.sum(axis=(0, 1)), 1)
    blurred = ndi.gaussian_filter1d(prof["oracle"], cues.average_nm / ph.voxel_size_nm[2], mode="nearest")
    out["stripes"] = [{"column": x, **{k: float(v[x]) for k, v in prof.items()}, "blurred": float(blurred[x]),
                       "darkening": float(seen[x])} for x in stripes_of(prof["oracle"])]
    # the rest of the columns: what the split takes off where there is no dark stripe
    calm = np.ones(prof["oracle"].size, bool)
    for s in out["stripes"]:
        calm[max(0, s["column"] - 4): s["column"] + 5] = False
    out["darkening_elsewhere"] = {"mean": float(seen[calm].mean()), "min": float(seen[calm].min())}
    return out


def markdown(cases: list[dict[str, Any]], command: str) -> str:
    lines = results_header("Curtain stripes in the cathode: left by the correction, taken off by the void split (issue 7)",
                           command, __doc__)
    lines += ["| preset | seed | gate significance (destriped) | column | left: oracle | corrected | forced destriping | "
              "oracle blurred by the pore average | split's darkening | elsewhere: mean / most |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for c in cases:
        g = c["gate"]
        for s in c["stripes"] or [{"column": "none"}]:
            vals = [f"{s[k]:+.3f}" if k in s else "" for k in ("oracle", "corrected", "forced", "blurred", "darkening")]
            e = c["darkening_elsewhere"]
            lines.append(f"| {c['preset']} | {c['seed']} | {g['significance']:.1f} ({g['enabled']}) | {s['column']} | "
                         + " | ".join(vals) + f" | {e['mean']:+.4f} / {e['min']:+.3f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = phantom_args(__doc__.split("\n\n")[0])
    args = ap.parse_args()
    cases = [case(p, int(s), args) for p in args.presets.split(",") for s in args.seeds.split(",")]
    command = "PYTHONPATH=. python benchmarks/curtain_voids.py " + " ".join(sys.argv[1:])
    save("curtain_voids", {"machine": machine(), "args": vars(args), "cases": cases}, markdown(cases, command))


if __name__ == "__main__":
    main()
