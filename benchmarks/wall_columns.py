"""Where the corrected stack's extra errors lie: the trench walls' columns, the cap's rows or the bulk (issue 7).

    PYTHONPATH=. python benchmarks/wall_columns.py [--slices 24 --size 192] [--seeds 2,3] [--presets diglyme]

For each phantom, the unsupervised default (``method='auto'``) on three stacks: the real correction's
output (``correct_volume``, the truth cut to its drift crop), the oracle-corrected stack cut to the
same crop (the crop alone: fewer cap rows, the walls nearer the field's ends) and the whole
oracle-corrected stack.  The difference between the first two is what the correction's grey values
cost; between the last two what the crop costs.

Each stack is split into bands of columns (x) by the true trench walls: ``left`` / ``right``, the
columns within 8 columns of a wall's innermost true frame voxel (the walls slant: that voxel is
the wall's foot); ``bulk`` the rest.  Per band: the
SEI's Dice, the sodium voxels read as electrolyte (a sodium surface read too early beside a wall
puts the sodium under it into the separator's electrolyte), and the mean distance of the
``sei|separator`` and ``separator|cathode`` interfaces (voxels, over the columns that are specimen
from the cap down, as the segmentation benchmark counts them).  The frame's wrong voxels are split
into the cap's rows and the walls' columns (missed: frame read as specimen; extra: specimen read
as frame).

Writes results/wall_columns.json and .md.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from volrecon.phases import PHASES, REGIONS
from volrecon.sample import make_phantom
from volrecon.sample.oracle import oracle_correct
from volrecon.segment import segment_volume

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, phantom_args, results_header, save  # noqa: E402
from segmentation import Cropped, real_correct, truth_heights  # noqa: E402

WALL_BAND = 8
"""Columns beside a trench wall's innermost true frame voxel that count as the wall's band."""
KEYS = ("sei|separator", "separator|cathode")


def bands(regions: np.ndarray) -> dict[str, np.ndarray]:
    """Columns (x) of the left wall's band, the right wall's and the bulk: within ``WALL_BAND`` columns
    of each wall's innermost true frame voxel in the lower half of the rows (below the cap's rough edge)."""
    frame = (regions == REGIONS["frame"])[:, regions.shape[1] // 2:, :].any(axis=(0, 1))
    x = np.arange(frame.size)
    mid = frame.size // 2
    left = x < (x[frame & (x < mid)].max() + 1 if (frame & (x < mid)).any() else 0) + WALL_BAND
    right = x >= (x[frame & (x >= mid)].min() if (frame & (x >= mid)).any() else frame.size) - WALL_BAND
    return {"left": left, "right": right, "bulk": ~left & ~right}


def band_errors(res, truth) -> dict[str, dict[str, float]]:
    """Per band: SEI Dice, sodium read electrolyte, interface distances (voxels)."""
    ph, names = np.asarray(res.phases), res.phase_names
    spec = truth.regions != REGIONS["frame"]
    th, valid = truth_heights(truth)
    vy = truth.voxel_size_nm[1]
    out = {}
    for band, cols in bands(truth.regions).items():
        t = (truth.labels[:, :, cols] == PHASES["sei"]) & spec[:, :, cols]
        p = (ph[:, :, cols] == names["sei"]) & spec[:, :, cols]
        row = {"sei_dice": float(2 * (t & p).sum() / max(1, t.sum() + p.sum())),
               "sodium_as_electrolyte": int(((truth.labels[:, :, cols] == PHASES["sodium"]) & (ph[:, :, cols] == names["electrolyte"])).sum())}
        for k in KEYS:
            h = res.interfaces["heights_nm"].get(k)
            ok = valid[:, cols]
            row[k] = float(np.abs(h[:, cols] / vy - th[k][:, cols])[ok].mean()) if h is not None and ok.any() else float("nan")
        out[band] = row
    return out


def frame_errors(res, truth) -> dict[str, int]:
    """The frame label's missed and extra voxels in the cap's rows and in the walls' columns."""
    pred = np.asarray(res.phases) == res.phase_names["frame"]
    true = truth.regions == REGIONS["frame"]
    cap_rows = true.all(axis=(0, 2))
    # the cap's rows: down to the deepest row any column's cap reaches (its rough lower edge)
    below = np.flatnonzero(~cap_rows)
    cap = np.zeros(true.shape[1], bool)
    if below.size:
        top = below[0]
        rough = true[:, top:, :].all(axis=0)
        depth = int(np.argmin(rough, axis=0).max()) if (~rough).any() else 0
        cap[: top + depth + 1] = True
    out = {}
    for part, rows in (("cap", cap), ("walls", ~cap)):
        out[f"{part}_missed"] = int((true & ~pred)[:, rows].sum())
        out[f"{part}_extra"] = int((pred & ~true)[:, rows].sum())
    return out


def measure(args) -> list[dict]:
    rows = []
    for preset in args.presets.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            ph = make_phantom(preset, slices=args.slices, shape=(args.size, args.size), seed=seed, artefacts="all", frame=True)
            real, truth, _ = real_correct(ph)
            y0, y1, x0, x1 = truth.box
            oracle = oracle_correct(ph)
            for stack, img, tr in (("corrected", real, truth),
                                   ("oracle, cut to the correction's crop", np.ascontiguousarray(oracle[:, y0:y1, x0:x1]), truth),
                                   ("oracle", oracle, Cropped(ph, (0, ph.labels.shape[1], 0, ph.labels.shape[2])))):
                res = segment_volume(img, voxel_size_nm=ph.voxel_size_nm, method="auto")
                rows.append({"preset": preset, "seed": seed, "stack": stack, "box": list(tr.box),
                             "bands": band_errors(res, tr), "frame": frame_errors(res, tr),
                             "sei_thickness_vox": res.parameters.get("sei", {}).get("mean_thickness_vox")})
                print(rows[-1], flush=True)
    return rows


def table(rows: list[dict], command: str) -> str:
    lines = results_header("Errors by columns: trench walls, cap, bulk", command, __doc__)
    lines += ["| preset | seed | stack | SEI Dice left / bulk / right | sodium read electrolyte left / bulk / right | "
              "sei\\|separator left / bulk / right | separator\\|cathode left / bulk / right | frame missed cap / walls | "
              "frame extra cap / walls | SEI thickness (vox) |", "|" + "---|" * 10]
    for r in rows:
        b = r["bands"]
        trio = lambda k, f: " / ".join(f.format(b[s][k]) for s in ("left", "bulk", "right"))  # noqa: E731
        fr = r["frame"]
        t = r["sei_thickness_vox"]
        lines.append(f"| {r['preset']} | {r['seed']} | {r['stack']} | {trio('sei_dice', '{:.3f}')} | "
                     f"{trio('sodium_as_electrolyte', '{:d}')} | {trio('sei|separator', '{:.2f}')} | "
                     f"{trio('separator|cathode', '{:.2f}')} | {fr['cap_missed']} / {fr['walls_missed']} | "
                     f"{fr['cap_extra']} / {fr['walls_extra']} | {'' if t is None else f'{t:.2f}'} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = phantom_args(__doc__.splitlines()[0], seeds="2,3")
    args = ap.parse_args()
    command = (f"PYTHONPATH=. python benchmarks/wall_columns.py --slices {args.slices} --size {args.size} "
               f"--seeds {args.seeds} --presets {args.presets}")
    rows = measure(args)
    save("wall_columns", {"machine": machine(), "command": command, "rows": rows}, table(rows, command))


if __name__ == "__main__":
    main()
