"""The destriper's gate on framed and frameless phantoms, with and without curtains (issue 5's curtains, issue 7).

    PYTHONPATH=. python benchmarks/curtain_gate.py [--slices 24 --size 192 --seeds 0,1] [--name curtain_gate]
        [--voxel-nm Z,Y,X] [--force] [--before FILE.json]

``--force``: the destriper runs whatever the gate says (``min_significance=0``), to see where it helps and where
it harms, the gate's significance still reported.

``--before``: the json of an earlier run (e.g. of an older commit, ``VOLRECON_BENCH_RESULTS`` sending it
elsewhere), shown as ``before -> now`` in the significance, enabled and left columns.

For each phantom (preset, seed, curtains off / the default / strong (amplitude 0.3, density 8), face frame on or
off, every other artefact on) the real correction stage (``correct_volume``, every step) is run and its curtain
gate reported (significance, enabled, the block it was measured on).  The same phantom drawn without curtains
(same seed: same specimen, drift, shading, brightness and noise draws) is corrected with the first run's drift,
shading and brightness estimates and no destriping: the difference of the two corrected stacks on the specimen
(truth: not the frame) is what curtains are left after the correction, against the curtains there were (the
curtained stack corrected without destriping, minus the same reference).  ``left / there`` below 1: the
destriper helped; above 1: it added more than it removed.  With the curtains off, ``left`` is what the
destriper changed in a stripe-free stack (grey levels of the 8-bit stack).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

from volrecon.correct import correct_volume
from volrecon.phases import PHASES
from volrecon.sample import make_phantom
from volrecon.sample.artefacts import resolve_artefacts

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, save  # noqa: E402

CURTAINS = {"off": {"curtains": False}, "default": {}, "strong": {"curtain_amplitude": 0.3, "curtain_density": 8}}


def _corrected(stack: np.ndarray, vox, **kw) -> tuple[np.ndarray, object]:
    res = correct_volume(stack, voxel_size_nm=vox, **kw)
    return np.asarray(res.image, np.float32), res


def one_case(preset: str, seed: int, curtains: str, frame: bool, slices: int, size: int,
             voxel_nm: tuple[float, float, float] | None = None, force: bool = False) -> dict:
    """Gate and curtains left of one phantom (see the module docstring)."""
    art = resolve_artefacts("all")
    draw = dict(slices=slices, shape=(size, size), seed=seed, frame=frame, workers=2)
    if voxel_nm is not None:
        draw["voxel_size_nm"] = voxel_nm
    ph = make_phantom(preset, artefacts=dataclasses.replace(art, **CURTAINS[curtains]), **draw)
    ref = make_phantom(preset, artefacts=dataclasses.replace(art, curtains=False), **draw)
    h, vox = ph.labels.shape[1], ph.voxel_size_nm
    out, res = _corrected(ph.acquired[:, :h], vox, options={"curtains": {"min_significance": 0.0}} if force else None)
    given = {"drift": res.drift, "shading": res.shading, "brightness": res.brightness}
    steps = ("drift", "shading", "brightness")
    kept, _ = _corrected(ph.acquired[:, :h], vox, steps=steps, estimates=given)
    base, _ = _corrected(ref.acquired[:, :h], vox, steps=steps, estimates=given)
    r0, r1, c0, c1 = res.drift.valid_region(ph.labels.shape[1:])
    specimen = ph.labels[:, r0:r1, c0:c1] != PHASES["frame"]
    rms = lambda a: float(np.sqrt(np.mean(a[specimen] ** 2)))  # noqa: E731
    left, there = rms(out - base), rms(kept - base)
    c = res.curtains
    return {"preset": preset, "seed": seed, "curtains": curtains, "frame": frame, "significance": c.significance,
            "enabled": c.enabled, "measured_region": getattr(c, "measured_region", None),
            "left_grey": left, "there_grey": there, "left_over_there": left / there if there > 0 else None}


def _cell(now: dict, before: dict | None, key: str, fmt: str) -> str:
    show = lambda r: "–" if r[key] is None else format(r[key], fmt)  # noqa: E731
    return show(now) if before is None else f"{show(before)} → {show(now)}"


def table(rows: list[dict], before: list[dict] | None = None) -> str:
    """Markdown table of the cases (with ``before``: the same cases of an earlier run, ``before → now``)."""
    lines = ["| preset | seed | curtains | frame | significance | enabled | measured on (rows, cols) | curtains there | left | left / there |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for i, r in enumerate(rows):
        b = before[i] if before else None
        reg = "whole slice" if r["measured_region"] is None else "{}-{}, {}-{}".format(*r["measured_region"])
        lines.append(f"| {r['preset']} | {r['seed']} | {r['curtains']} | {'on' if r['frame'] else 'off'} | "
                     f"{_cell(r, b, 'significance', '.1f')} | {_cell(r, b, 'enabled', '')} | {reg} | {r['there_grey']:.2f} | "
                     f"{_cell(r, b, 'left_grey', '.2f')} | {_cell(r, b, 'left_over_there', '.2f')} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slices", type=int, default=24)
    ap.add_argument("--size", type=int, default=192)
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--presets", default="diglyme,carbonate")
    ap.add_argument("--name", default="curtain_gate")
    ap.add_argument("--voxel-nm", default="", help="z,y,x voxel size of the phantoms in nm (default: the presets')")
    ap.add_argument("--force", action="store_true", help="run the destriper whatever the gate says")
    ap.add_argument("--before", default="", help="json of an earlier run of the same cases, shown as before -> now")
    args = ap.parse_args()
    voxel = tuple(float(v) for v in args.voxel_nm.split(",")) if args.voxel_nm else None
    rows = []
    for preset in args.presets.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            for curtains in CURTAINS:
                for frame in (True, False):
                    rows.append(one_case(preset, seed, curtains, frame, args.slices, args.size, voxel, args.force))
                    print(table(rows[-1:]).splitlines()[-1], flush=True)
    cmd = f"PYTHONPATH=. python benchmarks/curtain_gate.py --slices {args.slices} --size {args.size} --seeds {args.seeds} --presets {args.presets} --name {args.name}" + (f" --voxel-nm {args.voxel_nm}" if args.voxel_nm else "") + (" --force" if args.force else "")
    before = None
    if args.before:
        before = json.loads(Path(args.before).read_text())["rows"]
        cmd += f" --before {args.before}"
        if [(r["preset"], r["seed"], r["curtains"], r["frame"]) for r in before] != [(r["preset"], r["seed"], r["curtains"], r["frame"]) for r in rows]:
            raise SystemExit(f"{args.before}: not the same cases as this run")
    md = f"# Curtain gate\n\nCommand: `{cmd}`\n\n{__doc__.split(chr(10) + chr(10), 1)[1].strip()}\n\nGrey levels: RMS on the specimen (frame excluded) of the 8-bit corrected stack.\n\n{table(rows, before)}\n"
    save(args.name, {"machine": machine(), "command": cmd, "rows": rows, "before": before}, md)


if __name__ == "__main__":
    main()
