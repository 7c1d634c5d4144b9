"""The forward-model refinement on phantoms whose image is not of its model's form (issue 7, review rev19 M1).

    PYTHONPATH=. python benchmarks/forward_refine_mismatch.py [--slices 16 --size 160 --seeds 0]
        [--presets diglyme,carbonate] [--cases own,rim30,...] [--gate GATE] [--name forward_refine_mismatch]

:mod:`volrecon.segment.forward_refine` models the face image as phase levels, a Gaussian probe blur, a Sobel
edge rim on the pixel each side of a boundary, one shine-through depth and white Poisson-Gaussian noise.  Each
case renders the phantom with one of those assumptions broken (the renderer's own parameters, or the acquired
stack processed afterwards) and runs ``segment_volume(method="auto")`` with the refinement on and off:
cathode pore (void + electrolyte) and binder Dice against the truth, and what the refinement fitted and
decided (step SNR, skipped or not, the evidence inflation of the noise's correlation, blur, edge gain).

Phantoms: every artefact off except noise, edge brightening and shine-through (no drift, shading, brightness
or curtains: no correction runs, so the noise is as the detector made it), unquantised.  ``--gate`` replaces
``forward_refine.min_step_snr`` by a fixed step (0: the refinement always runs; 1.35: the gate before
session 20) to see what the gate's skips cost.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from volrecon.phases import PHASES, REGIONS
from volrecon.sample import Artefacts, make_phantom, render
from volrecon.segment import forward_refine as fr
from volrecon.segment import segment_volume

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, save  # noqa: E402

CASES: dict[str, dict[str, Any]] = {
    "own": {},
    "rim30": {"edge_rim_nm": 30.0},
    "psf20": {"psf_nm": 20.0},
    "psf3": {"psf_nm": 3.0},
    "shine200": {"shine_depth_nm": 200.0, "shine_blur_nm": 40.0},
    "scanline": {"post": "scanline"},
    "denoised": {"post": "denoised"},
    "median": {"post": "median"},
    "photons30": {"noise_photons": 30.0},
    "photons20": {"noise_photons": 20.0},
    "photons15": {"noise_photons": 15.0},
    "photons8": {"noise_photons": 8.0},
}
"""Case -> what differs from the model's form: ``psf_nm`` the probe blur (render.PSF_SIGMA_NM, nm),
``post`` a processing of the acquired stack (``scanline``: one offset per row, sd 3 % of full scale;
``denoised``: a 1 px Gaussian; ``median``: a 3x3 median), anything else an ``Artefacts`` field."""

DESCRIPTION = {
    "own": "the model's own form (8 nm probe, 1 px rims, 80 nm shine-through, 60 photons)",
    "rim30": "edge rims 30 nm wide (3 px) each side",
    "psf20": "probe blur 20 nm (2 px)",
    "psf3": "probe blur 3 nm (0.3 px)",
    "shine200": "shine-through from 200 nm behind, 40 nm blur (the fit tries up to 160 nm)",
    "scanline": "scan-line noise: one offset per row, sd 3 % of full scale",
    "denoised": "stack denoised by a 1 px Gaussian (correlated noise, blurred signal)",
    "median": "stack denoised by a 3x3 median",
    "photons30": "half the electrons (noisier)",
    "photons20": "a third of the electrons",
    "photons15": "a quarter of the electrons",
    "photons8": "an eighth of the electrons",
}


def _cathode_dice(truth: Any, phases: np.ndarray, names: dict[str, int], which: tuple[str, ...]) -> float:
    cat = truth.regions == REGIONS["cathode"]
    pred = np.isin(phases, [names[n] for n in which]) & cat
    true = np.isin(truth.labels, [PHASES[n] for n in which]) & cat
    return float(2 * (pred & true).sum() / max(pred.sum() + true.sum(), 1))


def _stack(preset: str, seed: int, args: argparse.Namespace, case: dict[str, Any]) -> tuple[Any, np.ndarray]:
    """The phantom of ``case`` and its acquired (post-processed) stack."""
    art = {k: v for k, v in case.items() if k not in ("psf_nm", "post")}
    arte = dataclasses.replace(Artefacts.none(), noise=True, edge_brightening=True, shine_through=True,
                               quantise=False, **art)
    psf = render.PSF_SIGMA_NM
    render.PSF_SIGMA_NM = float(case.get("psf_nm", psf))  # read when the plan is drawn; one worker: this process
    try:
        ph = make_phantom(preset, slices=args.slices, shape=(args.size, args.size), seed=seed, artefacts=arte, workers=1)
    finally:
        render.PSF_SIGMA_NM = psf
    img = np.asarray(ph.acquired, np.float32)
    post = case.get("post")
    if post == "scanline":
        rng = np.random.default_rng([seed, 77])
        img = img + rng.normal(scale=0.03 * 255, size=img.shape[:2] + (1,)).astype(np.float32)
    elif post == "denoised":
        img = ndi.gaussian_filter(img, (0, 1.0, 1.0))
    elif post == "median":
        img = ndi.median_filter(img, size=(1, 3, 3)).astype(np.float32)
    return ph, img


def measure(preset: str, seed: int, name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Refinement on vs off on one case's phantom."""
    ph, img = _stack(preset, seed, args, CASES[name])
    on = segment_volume(img, voxel_size_nm=ph.voxel_size_nm, method="auto", frame="none")
    off = segment_volume(img, voxel_size_nm=ph.voxel_size_nm, method="auto", frame="none", forward_refine=False)
    p = on.parameters.get("forward_refine", {})
    model = p.get("model", {})
    row: dict[str, Any] = {"preset": preset, "seed": seed, "case": name, "step_snr": p.get("step_snr"),
                           "min_step_snr": p.get("min_step_snr"), "skipped": p.get("skipped"), "evidence_inflation": p.get("evidence_inflation"),
                           "window_vox": p.get("window_vox"), "psf_sigma_nm": model.get("psf_sigma_nm"),
                           "edge_gain": model.get("edge_gain")}
    for phase_set, key in ((("void", "electrolyte"), "pore"), (("binder",), "binder")):
        row[key] = [_cathode_dice(ph, np.asarray(r.phases), dict(r.phase_names), phase_set) for r in (off, on)]
    print(row, flush=True)
    return row


def _fmt(v: Any, spec: str) -> str:
    return "" if v is None else format(v, spec)


def table(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    """The markdown table of the rows."""
    gate = "min_step_snr" if args.gate is None else args.gate
    lines = [
        "# Forward-model refinement on images not of its model's form",
        "",
        f"Command: `PYTHONPATH=. python benchmarks/forward_refine_mismatch.py --slices {args.slices} --size {args.size} "
        f"--seeds {args.seeds}" + ("" if args.gate is None else f" --gate {gate}") + "`",
        "",
        f"Phantoms {args.slices}x{args.size}x{args.size}: noise, edge rims and shine-through only (no correction runs), "
        f"unquantised; step gate {gate} noise sd. Cathode Dice, `auto` with the refinement off -> on.",
        "",
        "| preset | seed | case | step SNR | gate | ran | inflation | window | blur nm | edge gain | pore | binder |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['preset']} | {r['seed']} | {DESCRIPTION[r['case']]} | {_fmt(r['step_snr'], '.2f')} | "
            f"{_fmt(r.get('min_step_snr'), '.2f')} | {'no' if r['skipped'] else 'yes'} | {_fmt(r['evidence_inflation'], '.2f')} | {r['window_vox'] or ''} | "
            f"{_fmt(r['psf_sigma_nm'], '.1f')} | {_fmt(r['edge_gain'], '.2f')} | "
            f"{r['pore'][0]:.4f} -> {r['pore'][1]:.4f} | {r['binder'][0]:.4f} -> {r['binder'][1]:.4f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slices", type=int, default=16)
    ap.add_argument("--size", type=int, default=160)
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--presets", default="diglyme,carbonate")
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--gate", type=float, default=None, help="a fixed step gate instead of forward_refine.min_step_snr")
    ap.add_argument("--name", default="forward_refine_mismatch")
    args = ap.parse_args()
    if args.gate is not None:
        fr.min_step_snr = lambda model, **_: args.gate  # what the segmentation reads
    rows = [measure(p, int(s), c, args) for p in args.presets.split(",") for s in args.seeds.split(",")
            for c in args.cases.split(",")]
    save(args.name, {"machine": machine(), "args": vars(args), "rows": rows}, table(rows, args))


if __name__ == "__main__":
    main()
