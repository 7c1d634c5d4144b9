"""What the cathode's thin binder strands read as pore look like in the image (issue 7).

    PYTHONPATH=. python benchmarks/strand_ridges.py [--slices 24 --size 192] [--seeds 0]
        [--presets diglyme,carbonate] [--stages corrected,oracle]

Diagnostic.  ``refine_binder_pore.py`` found 41-50 % of the true thin binder strands touching the pore
read as pore by the unsupervised (``auto``) method.  The guess was that the probe blur mixes a 1-2 px
strand with the pore on both sides until its peak falls under the electrolyte | binder cut.  For each
phantom: the true binder voxels touching the pore in the plane (thin / thick as in
``refine_binder_pore.py``) by the label they got, and the true electrolyte read electrolyte (beside a
voxel read binder or not).  For each pool the script gives the median raw grey, the grey smoothed by the
fitted probe blur, and the share on an in-plane ridge (the smaller Hessian eigenvalue negative), in
fitted electrolyte | binder contrasts above the electrolyte level.  Beside them: what the fitted image
model gives at the centre of a strand 1-3 px wide, and how often the pore's own noise reaches that
high.  Then two rules that would turn voxels read electrolyte into binder, with the truth of what they
turn: (1) a ridge beside read binder whose smoothed grey is ``f`` contrasts above the electrolyte;
(2) the class grey corrected for the dark side's rim
(:func:`volrecon.segment.cathode_rims.dark_side_rim_length`) above the cut.

Found (24x192, seeds 0-1, both presets, corrected and oracle-corrected; results/strand_ridges.md):

- the grey does not lose the strands.  The thin binder read electrolyte reads 1.30-1.44 contrasts raw
  (1.27-1.40 smoothed), about what the thin binder read right reads (1.32-1.55).  That is above the
  model's strand centres (0.31-0.38 / 0.54-0.62 / 0.76-0.86 for 1 / 2 / 3 px) because the edge
  brightening adds to them.  34-47 % of them touch a voxel read active, where the particle's blur
  and rim lift them further.
- the pore beside binder is lifted too (0.45-0.72 contrasts smoothed, against 0.01-0.13 for the rest
  of the electrolyte), and it outnumbers the strands several times over.  A ridge is no help: about 70 %
  of every pool's voxels are on one, pore included.  Rule (1) turns as much true pore as binder at
  f = 0.7 and gains at most a few hundred voxels net at f = 0.9-1.1.  Rule (2) gains on carbonate
  (binder 838-1245 for pore 628-772) and loses on diglyme (binder 924-1331 for pore 1472-2019,
  electrolyte and shine-through void): no rule here separates them on both presets.
- what does turn them to pore is the void split's edge-rim rule (:func:`volrecon.segment.voids.split_voids`,
  step 1).  It returns every binder piece thinner than its opening box that touches the pore to the
  pore, and a strand is such a piece.  ``rim_box_z.py`` measures the part of the box along z.

Writes results/strand_ridges.json and .md (``VOLRECON_BENCH_RESULTS`` sends them elsewhere).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi
from scipy.stats import norm

from volrecon.phases import PHASES, REGIONS
from volrecon.sample import make_phantom
from volrecon.sample.oracle import oracle_correct
from volrecon.segment import forward_refine as fr
from volrecon.segment import segment_volume
from volrecon.segment.cathode_rims import dark_side_rim_length, gradient_magnitude
from volrecon.segment.regional import smooth as denoise
from volrecon.segment.regional import smoothing_sigma

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import stage_grid_main  # noqa: E402
from refine_binder_pore import boundary_binder  # noqa: E402
from segmentation import real_correct  # noqa: E402

_PORE = ("void", "electrolyte")


def hessian_min(grey: np.ndarray, sigma: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Per slice: the grey smoothed by ``sigma`` (y, x pixels) and the smaller eigenvalue of its in-plane Hessian."""
    s = (0.0, *sigma)
    g = ndi.gaussian_filter(grey, s)
    hyy = ndi.gaussian_filter(grey, s, order=(0, 2, 0))
    hxx = ndi.gaussian_filter(grey, s, order=(0, 0, 2))
    hxy = ndi.gaussian_filter(grey, s, order=(0, 1, 1))
    lam = 0.5 * (hyy + hxx) - np.sqrt(0.25 * (hyy - hxx) ** 2 + hxy ** 2)
    return g, lam


def strand_peak(width_px: int, probe_px: float, smooth_px: float, contrast: float) -> float:
    """Centre grey above the pore of a binder strand ``width_px`` wide blurred by the probe, then smoothed."""
    x = np.zeros(64)
    x[32 - width_px // 2: 32 - width_px // 2 + width_px] = contrast
    return float(ndi.gaussian_filter1d(x, float(np.hypot(probe_px, smooth_px))).max())


def smoothed_noise_sd(var: float, sigma: tuple[float, float]) -> float:
    """Noise sd after the in-plane Gaussian ``sigma`` (pixels), white noise of variance ``var`` before."""
    out = var
    for s in sigma:
        r = int(4 * s) + 2
        delta = np.zeros(2 * r + 1)
        delta[r] = 1.0
        out *= float((ndi.gaussian_filter1d(delta, s) ** 2).sum())
    return float(np.sqrt(out))


def pools(phases: np.ndarray, names: dict[str, int], labels: np.ndarray, cat: np.ndarray) -> dict[str, np.ndarray]:
    """The voxel pools compared: boundary binder by class and label, and the true electrolyte read as such."""
    classes = boundary_binder(labels, cat)
    plane4 = np.zeros((3, 3, 3), bool)
    plane4[1] = ndi.generate_binary_structure(2, 1)
    beside = ndi.binary_dilation(phases == names["binder"], structure=plane4)
    elec = cat & (labels == PHASES["electrolyte"]) & (phases == names["electrolyte"])
    touching = ndi.binary_dilation(phases == names["active"], structure=np.ones((1, 3, 3), bool))
    out = {f"{c} binder read {k}": classes[c] & (phases == names[k]) for c in ("thin", "thick")
           for k in ("electrolyte", "void", "binder")}
    out["thin binder read electrolyte touching read active"] = out["thin binder read electrolyte"] & touching
    out["electrolyte read electrolyte beside read binder"] = elec & beside
    out["electrolyte read electrolyte elsewhere"] = elec & ~beside
    return out


def rule_sweep(phases: np.ndarray, names: dict[str, int], labels: np.ndarray, cat: np.ndarray, smooth: np.ndarray,
               lam: np.ndarray, e: float, contrast: float, sigma: tuple[float, float]) -> list[dict[str, Any]]:
    """Voxels read electrolyte, beside read binder in the plane, beyond the probe's reach of read active, on a
    ridge (eigenvalue < 0) whose smoothed grey is ``f`` contrasts above the electrolyte: how many of each truth."""
    plane = np.zeros((3, 3, 3), bool)
    plane[1] = True
    plane4 = np.zeros((3, 3, 3), bool)
    plane4[1] = ndi.generate_binary_structure(2, 1)
    reach = int(np.ceil(2 * max(sigma)))
    base = (cat & (phases == names["electrolyte"]) & ndi.binary_dilation(phases == names["binder"], structure=plane4)
            & ~ndi.binary_dilation(phases == names["active"], structure=plane, iterations=reach) & (lam < 0))
    out = []
    for f in (0.5, 0.7, 0.9, 1.1):
        on = base & (smooth - e > f * contrast)
        out.append({"f": f, **{t: int((on & np.isin(labels, [PHASES[q] for q in qs])).sum())
                               for t, qs in (("binder", ("binder",)), ("pore", _PORE), ("active", ("active",)))}})
    return out


def dark_side_sweep(grey: np.ndarray, phases: np.ndarray, names: dict[str, int], labels: np.ndarray, cat: np.ndarray,
                    params: dict[str, Any], vox: tuple[float, float, float]) -> list[dict[str, Any]]:
    """Voxels read electrolyte beyond ``d`` pixels of read active whose class grey, corrected for the dark side's
    rim (:func:`volrecon.segment.cathode_rims.dark_side_rim_length` on the fitted model: the length that returns
    the pore beside a straight step to its level; a strand's centre has no gradient to lose), is above the
    electrolyte | binder cut: how many of each truth."""
    m = dict(params["forward_refine"]["model"])
    m["levels"] = {int(k): v for k, v in m["levels"].items()}
    model = fr.ImageModel(**{k: tuple(v) if isinstance(v, list) else v for k, v in m.items()})
    smooth_nm = float(params["smooth_nm"])
    length = dark_side_rim_length(model, vox, smooth_sigma_vox=smoothing_sigma(smooth_nm, vox))
    g = denoise(grey, smooth_nm, vox)
    corrected = g - np.float32(length) * gradient_magnitude(g, vox)
    cut = float(params["cathode_pore_cut"]["filled_pore"])
    dist = np.stack([ndi.distance_transform_edt(s != names["active"]) for s in phases])
    out = []
    for reach in (1.5, 3.5):
        on = cat & (phases == names["electrolyte"]) & (dist > reach) & (corrected > cut)
        out.append({"beyond active px": reach, "length_nm": length,
                    **{t: int((on & np.isin(labels, [PHASES[q] for q in qs])).sum())
                       for t, qs in (("binder", ("binder",)), ("electrolyte", ("electrolyte",)), ("void", ("void",)),
                                     ("active", ("active",)))}})
    return out


def run_case(preset: str, seed: int, stage: str, args: argparse.Namespace) -> dict[str, Any]:
    """One phantom and correction: the pools' medians, the model's strands and the rule's sweep."""
    ph = make_phantom(preset, slices=args.slices, shape=(args.size, args.size), seed=seed, artefacts="all", frame=True)
    img, truth = (real_correct(ph)[:2]) if stage == "corrected" else (oracle_correct(ph), ph)
    r = segment_volume(img, voxel_size_nm=ph.voxel_size_nm, method="auto")
    names = dict(r.phase_names)
    m = r.parameters["forward_refine"]["model"]
    lv = {int(k): v for k, v in m["levels"].items()}
    e, b = lv[names["electrolyte"]], lv[names["binder"]]
    contrast = b - e
    sig = tuple(m["psf_sigma_nm"] / p for p in m["pixel_nm"])
    grey = np.asarray(img, np.float32)
    smooth, lam = hessian_min(grey, sig)
    phases = np.asarray(r.phases)
    cat = truth.regions == REGIONS["cathode"]
    sd = smoothed_noise_sd(m["noise"][0] + m["noise"][1] * e, sig)
    row: dict[str, Any] = {"preset": preset, "seed": seed, "stage": stage, "electrolyte": e, "binder": b,
                           "sigma_px": list(sig), "noise": m["noise"], "smoothed_sd": sd, "strand": {}}
    for w in (1, 2, 3):
        peak = strand_peak(w, float(np.mean(sig)), float(np.mean(sig)), contrast)
        row["strand"][w] = {"peak": peak / contrast, "z": peak / sd, "noise_rate": float(norm.sf(peak / sd))}
    for k, mask in pools(phases, names, truth.labels, cat).items():
        row[k] = {"n": int(mask.sum()), "grey": float(np.median((grey[mask] - e) / contrast)) if mask.any() else float("nan"),
                  "smoothed": float(np.median((smooth[mask] - e) / contrast)) if mask.any() else float("nan"),
                  "ridge": float((lam[mask] < 0).mean()) if mask.any() else float("nan")}
    row["sweep"] = rule_sweep(phases, names, truth.labels, cat, smooth, lam, e, contrast, sig)
    row["dark side"] = dark_side_sweep(grey, phases, names, truth.labels, cat, r.parameters, tuple(ph.voxel_size_nm))
    print(row, flush=True)
    return row


def table(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    """The markdown tables: the pools' medians and the model's strands; the rule's sweep."""
    names = [k for k in rows[0] if isinstance(rows[0][k], dict) and "ridge" in rows[0][k]]
    lines = ["# Thin binder strands read as pore: grey and ridge", "",
             f"Command: `PYTHONPATH=. python benchmarks/strand_ridges.py --slices {args.slices} --size {args.size} "
             f"--seeds {args.seeds} --presets {args.presets} --stages {args.stages}`", "",
             "`auto` labels.  Pools: the true cathode binder touching the true pore in the plane (thin: half-width "
             "<= 2.5 px, as `refine_binder_pore.py`) by the label it got; the true electrolyte read electrolyte, beside "
             "a voxel read binder in the plane or not.  Cells: median raw grey / median grey smoothed by the fitted "
             "probe blur (in the fitted electrolyte | binder contrasts above the electrolyte level) / share on a ridge "
             "(smaller in-plane Hessian eigenvalue < 0) / voxels.  Model strand: the centre of a strand 1 / 2 / 3 px "
             "wide blurred by the probe and smoothed alike, in contrasts, its z against the smoothed pore noise, and "
             "the share of pure pore voxels the noise lifts that high.", "",
             "| preset | seed | stage | model strand 1 / 2 / 3 px: peak (z, noise rate) | " + " | ".join(names) + " |",
             "|---" * (4 + len(names)) + "|"]
    for r in rows:
        st = " / ".join(f"{r['strand'][w]['peak']:.2f} ({r['strand'][w]['z']:.1f}, {r['strand'][w]['noise_rate']:.3f})"
                        for w in (1, 2, 3))
        cells = [f"{r[p]['grey']:.2f} / {r[p]['smoothed']:.2f} / {r[p]['ridge']:.2f} / {r[p]['n']}" for p in names]
        lines.append(f"| {r['preset']} | {r['seed']} | {r['stage']} | {st} | " + " | ".join(cells) + " |")
    lines += ["", "The rule tried: voxels read electrolyte, beside read binder in the plane, beyond 2 probe sigmas of "
              "read active, on a ridge, smoothed grey above the electrolyte by f contrasts, turned binder: of them "
              "true binder / true pore / true active.", "",
              "| preset | seed | stage | " + " | ".join(f"f = {s['f']}" for s in rows[0]["sweep"]) + " |",
              "|---" * (3 + len(rows[0]["sweep"])) + "|"]
    for r in rows:
        lines.append(f"| {r['preset']} | {r['seed']} | {r['stage']} | "
                     + " | ".join(f"{s['binder']} / {s['pore']} / {s['active']}" for s in r["sweep"]) + " |")
    lines += ["", "The rule tried second: voxels read electrolyte, beyond 1.5 / 3.5 px of read active, whose class grey "
              "(denoised as the classes were) less the dark-side rim length times its gradient is above the "
              "electrolyte | binder cut: of them true binder / electrolyte / void / active.", "",
              "| preset | seed | stage | dark-side length nm | beyond 1.5 px | beyond 3.5 px |", "|---" * 6 + "|"]
    for r in rows:
        ds = r["dark side"]
        lines.append(f"| {r['preset']} | {r['seed']} | {r['stage']} | {ds[0]['length_nm']:.1f} | "
                     + " | ".join(f"{x['binder']} / {x['electrolyte']} / {x['void']} / {x['active']}" for x in ds) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    stage_grid_main(__doc__, "strand_ridges", run_case, table, seeds="0")


if __name__ == "__main__":
    main()
