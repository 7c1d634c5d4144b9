"""Intensity corrections on the phantom: dB gains per artefact, a peer, throughput, memory.

Run: ``python benchmarks/corrections.py`` (a few minutes on 2 cores).  Writes
``benchmarks/results/corrections.{json,md}``.

* Gains: PSNR against the phantom's artefact-free image (on the acquired grey scale), with one
  artefact on at a time (plus noise, as acquired) and with all intensity artefacts on, for
  volrecon, an oracle that divides by the true field (the ceiling noise allows), and a peer:
  scikit-image's default-style flat-field (divide by a heavy Gaussian blur of the slice median).
* Layer-ratio error of the shading correction (max over layer pairs, %).
* Throughput: applying shading + brightness + curtains to 2048x1536 slices (slices/s, median of
  3 runs) and peak RSS of a fresh process for two slice counts (lazy, slice by slice).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, run_child, save  # noqa: E402

from volrecon.correct import (  # noqa: E402
    apply_brightness, apply_curtains, apply_shading, estimate_brightness, estimate_curtains, estimate_shading,
)
from volrecon.sample import Artefacts, make_phantom  # noqa: E402


def psnr(a: np.ndarray, ref: np.ndarray) -> float:
    return float(10 * np.log10(255.0**2 / np.mean((a.astype(np.float64) - ref) ** 2)))


def layer_ratio_error(img: np.ndarray, ref: np.ndarray, regions: np.ndarray) -> float:
    def ratios(x: np.ndarray) -> np.ndarray:
        m = [x[regions == r].mean() for r in (1, 2, 3, 4)]
        return np.array([m[i] / m[j] for i in range(4) for j in range(i + 1, 4)])

    return float(100 * np.abs(ratios(img) / ratios(ref) - 1).max())


def peer_flatfield(stack: np.ndarray) -> np.ndarray:
    """Peer: flat field = Gaussian blur (sigma = 1/8 of the field) of the median slice, mean 1."""
    from skimage.filters import gaussian

    flat = gaussian(np.median(stack.astype(np.float32), axis=0), sigma=min(stack.shape[1:]) / 8, preserve_range=True)
    return stack / (flat / flat.mean())


def gains(preset: str, seed: int, names: tuple[str, ...], *, noise: bool, **art) -> dict:
    on = names + (("noise",) if noise else ()) + ("quantise",)
    ph = make_phantom(preset, slices=16, shape=(256, 256), seed=seed, artefacts=Artefacts.only(*on, **art), workers=2)
    acq = ph.acquired
    g0 = float(np.median(ph.brightness[:, 0]))
    o0 = float(np.median(ph.brightness[:, 1]))
    ref = (ph.clean.astype(np.float64) * g0 + o0) * 255  # artefact-free, on the median slice's grey scale
    out = acq.astype(np.float32)
    t0 = time.perf_counter()
    if "shading" in names:
        out = apply_shading(out, estimate_shading(acq))
    if "brightness" in names:
        out = apply_brightness(out, estimate_brightness(out))
    if "curtains" in names:
        out = apply_curtains(out, estimate_curtains(out))
    t = time.perf_counter() - t0
    # brightness is relative to the median slice: put the result on the reference scale
    fit = np.polyfit(out.ravel()[::7], ref.ravel()[::7], 1)
    out_s = np.polyval(fit, out)
    acq_fit = np.polyfit(acq.astype(np.float32).ravel()[::7], ref.ravel()[::7], 1)
    acq_s = np.polyval(acq_fit, acq.astype(np.float32))
    row = {
        "preset": preset, "artefacts": "+".join(names), "noise": noise, "psnr_before_db": psnr(acq_s, ref),
        "gain_db": psnr(out_s, ref) - psnr(acq_s, ref), "seconds": t,
    }
    if "shading" in names:
        b = 255 * ph.brightness[:, 1, None, None]
        oracle = (acq - b) / ph.shading + b
        row["oracle_gain_db"] = psnr(np.polyval(np.polyfit(oracle.ravel()[::7], ref.ravel()[::7], 1), oracle), ref) - row["psnr_before_db"]
        peer = peer_flatfield(acq)
        row["peer_gain_db"] = psnr(np.polyval(np.polyfit(peer.ravel()[::7], ref.ravel()[::7], 1), peer), ref) - row["psnr_before_db"]
        row["layer_ratio_err_pct"] = layer_ratio_error(out_s, ref, ph.regions)
        row["peer_layer_ratio_err_pct"] = layer_ratio_error(peer, ref, ph.regions)
    return row


THROUGHPUT = """
import numpy as np, time
from volrecon.correct import ShadingField, BrightnessTable, CurtainSettings, apply_shading, apply_brightness, apply_curtains
nz, ny, nx = {nz}, 1536, 2048
rng = np.random.default_rng(0)
base = rng.integers(40, 200, (ny, nx), dtype=np.uint8)
import dask.array as da
stack = da.from_array(np.broadcast_to(base, (nz, ny, nx)), chunks=(1, ny, nx))
sh = ShadingField(coarse=np.ones((65, 65), np.float32) * np.linspace(0.9, 1.1, 65, dtype=np.float32)[None], shape=(ny, nx), offset=10.0)
bt = BrightnessTable(gain=np.ones(nz), offset=np.zeros(nz), raw_gain=np.ones(nz), raw_offset=np.zeros(nz))
cs = CurtainSettings()
out = apply_curtains(apply_brightness(apply_shading(stack, sh), bt), cs)
import dask
t = time.perf_counter()
total = 0
for z in range(0, nz, 4):  # write-like consumption: a few slices at a time, nothing kept
    total += int(out[z:z + 4].compute(scheduler="threads", num_workers=2).sum() % 7)
_res = {{"seconds": time.perf_counter() - t, "slices": nz}}
"""


def main() -> None:
    rows = []
    for preset, seed in (("diglyme", 0), ("carbonate", 1)):
        for names in (("shading",), ("brightness",), ("curtains",), ("shading", "brightness", "curtains")):
            for noise in (False, True):
                rows.append(gains(preset, seed, names, noise=noise))
                print(rows[-1], flush=True)
    # stronger curtains (the default phantom's stripes carry little energy next to its noise)
    strong = dict(curtain_amplitude=0.3, curtain_density=8.0)
    for noise in (False, True):
        r = gains("diglyme", 0, ("curtains",), noise=noise, **strong)
        r["artefacts"] = "curtains (amplitude 0.3, density 8)"
        rows.append(r)
        print(r, flush=True)
    runs = {}
    for nz in (16, 48):
        res = [run_child(THROUGHPUT.format(nz=nz)) for _ in range(3)]
        runs[nz] = {
            "slices_per_s_median": statistics.median(r["slices"] / r["seconds"] for r in res),
            "peak_rss_mb_median": statistics.median(r["peak_rss_mb"] for r in res),
            "runs": res,
        }
        print(nz, runs[nz]["slices_per_s_median"], runs[nz]["peak_rss_mb_median"], flush=True)
    payload = {"machine": machine(), "gains": rows, "throughput_2048x1536": runs,
               "note": "timings on 2 cores shared with other jobs: noisy, medians of 3"}
    md = ["# Intensity corrections (benchmarks/corrections.py)", "",
          "PSNR gain vs the phantom's artefact-free image (16 slices, 256x256). Oracle = divide by the true "
          "field; peer = Gaussian flat field of the median slice (skimage).", "",
          "| preset | artefacts | noise | PSNR before | volrecon gain | oracle gain | peer gain | layer-ratio err volrecon / peer |",
          "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        md.append(
            f"| {r['preset']} | {r['artefacts']} | {'yes' if r['noise'] else 'no'} | {r['psnr_before_db']:.1f} dB | "
            f"{r['gain_db']:+.2f} dB | {r.get('oracle_gain_db', float('nan')):+.2f} | {r.get('peer_gain_db', float('nan')):+.2f} | "
            + (f"{r['layer_ratio_err_pct']:.2f} % / {r['peer_layer_ratio_err_pct']:.2f} % |" if "layer_ratio_err_pct" in r else "– |")
        )
    md += ["", "Applying shading + brightness + curtains at 2048x1536 (dask, 2 threads, medians of 3 fresh processes; "
           "the 2 cores are shared, so timings are noisy):", "", "| slices | slices/s | peak RSS |", "|---|---|---|"]
    for nz, r in runs.items():
        md.append(f"| {nz} | {r['slices_per_s_median']:.1f} | {r['peak_rss_mb_median']:.0f} MB |")
    save("corrections", payload, "\n".join(md) + "\n")


if __name__ == "__main__":
    main()
