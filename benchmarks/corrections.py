"""Intensity corrections on the phantom: dB gains per artefact, a peer, throughput, memory.

Run: ``python benchmarks/corrections.py`` (a few minutes on 2 cores).  Writes
``benchmarks/results/corrections.{json,md}``.  ``python benchmarks/corrections.py brightness``
re-runs only the brightness-constancy part and updates it in those files, ``throughput`` only the
timings, ``curtains`` only the rows with curtains on (``--help``); ``curtains --size 256,512,1024
--slices 16,8,4`` only the strong-curtain cases at those slice sizes (fewer slices on the larger ones); ``curtains
--ceiling`` only the background comparison (the default destriper against the same with the true background of each
pass).  The PyStack3D columns need ``pip install --no-deps pystack3d statsmodels
patsy tomlkit`` (empty otherwise); the timed children should run without them on the path.

* Gains: PSNR against the phantom's artefact-free image (on the acquired grey scale), with one
  artefact on at a time (plus noise, as acquired) and with all intensity artefacts on, for
  volrecon, an oracle that divides by the true field (the ceiling noise allows), and a peer:
  scikit-image's default-style flat-field (divide by a heavy Gaussian blur of the slice median).
* Layer-ratio error of the shading correction (max over layer pairs, %), on the corrected grey
  scale itself (no fit to the reference: a least-squares fit of a noisy image regresses towards
  the mean and would compress every ratio).
* Curtains: the oracle subtracts the true stripe image (the ceiling noise allows: removing the
  stripes perfectly gains ``10 log10(1 + E_stripes / E_noise)``), edge contrast across phase
  boundaries after/before (mean step across label boundaries along x, signed by the true
  contrast, so noise averages out), the wavelet-FFT filter (Münch et al. 2009, the method of
  pystripe-style destripers) as the peer, and the filter on stripe-free stacks (RMS change).
* Brightness constancy on a noisy phantom whose cathode loses electrolyte with depth: per-phase
  mean grey over slices (goal: within 1 %) and the void-fraction depth trend kept.
* Throughput: applying shading + brightness + curtains to 2048x1536 slices (slices/s and slices
  per CPU-second, medians of 3 fresh processes) and peak RSS for 48, 144 and 288 slices (lazy,
  slice by slice: it must not grow with the slice count); estimation and application timed
  separately on a 24-slice 2048x1536 phantom.  ``throughput --baseline COMMIT`` also times the
  volrecon of an earlier commit (``git archive`` into ``benchmarks/_work``) on the 48-slice
  stack, alternating with the current one, so that both see the same load.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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


def pystack3d_peers():
    """PyStack3D's background removal and wavelet destriper (per slice, its defaults), or None.

    ``pip install --no-deps pystack3d statsmodels patsy tomlkit``; its package imports pyvsnr
    (GPU VSNR destriping, not used here) at module level, so a stand-in module is registered
    when pyvsnr is absent.
    """
    import types

    try:
        import pyvsnr  # noqa: F401
    except ImportError:
        sys.modules.setdefault("pyvsnr", types.ModuleType("pyvsnr")).vsnr2d = None  # type: ignore[attr-defined]
    try:
        from pystack3d.bkg_removal import bkg_eval
        from pystack3d.destriping import destriping_from_wavelets
    except ImportError:
        return None
    # PyStack3D's 2D background: 1 + x + y + x^2 + xy + y^2 + x^3 ... (order 3 with cross terms), Huber M-estimator
    powers = [[i, j] for i in range(4) for j in range(4) if i + j <= 3]

    def background(stack: np.ndarray) -> np.ndarray:
        return np.stack([bkg_eval(plane.astype(np.float64), powers)[0] for plane in stack])

    def destripe(stack: np.ndarray) -> np.ndarray:
        return np.stack([destriping_from_wavelets(plane.astype(np.float64))[: plane.shape[0], : plane.shape[1]] for plane in stack])

    return background, destripe


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
        row["layer_ratio_err_pct"] = layer_ratio_error(out, ref, ph.regions)
        row["peer_layer_ratio_err_pct"] = layer_ratio_error(peer, ref, ph.regions)
        row["oracle_layer_ratio_err_pct"] = layer_ratio_error(oracle, ref, ph.regions)
        peers = pystack3d_peers()
        if peers is not None:
            ps = peers[0](acq)
            row["pystack3d_gain_db"] = psnr(np.polyval(np.polyfit(ps.ravel()[::7], ref.ravel()[::7], 1), ps), ref) - row["psnr_before_db"]
            row["pystack3d_layer_ratio_err_pct"] = layer_ratio_error(ps, ref, ph.regions)
    if names == ("curtains",):
        row.update(curtain_extras(preset, seed, acq, out, ref, ph.labels, noise=noise, **art))
    return row


def edge_contrast(img: np.ndarray, labels: np.ndarray, ref: np.ndarray) -> float:
    """Mean step across phase boundaries along x, signed by the true contrast (noise averages out)."""
    d_ref = np.diff(ref.astype(np.float64), axis=2)
    sel = (np.diff(labels.astype(np.int16), axis=2) != 0) & (np.abs(d_ref) > 10)
    return float(np.mean(np.sign(d_ref[sel]) * np.diff(img.astype(np.float64), axis=2)[sel]))


def curtain_extras(preset: str, seed: int, acq: np.ndarray, out: np.ndarray, ref: np.ndarray, labels: np.ndarray, *, noise: bool, **art) -> dict:
    """Oracle (true stripe image subtracted), edge contrast kept, wavelet-FFT peer for a curtains-only row."""
    kw = dict(slices=16, shape=(256, 256), seed=seed, workers=2)
    striped = make_phantom(preset, artefacts=Artefacts.only("curtains", **art), **kw).acquired.astype(np.float64)
    plain = make_phantom(preset, artefacts=Artefacts.none(), **kw).acquired.astype(np.float64)
    oracle = acq.astype(np.float64) - (striped - plain)
    peer = apply_curtains(acq.astype(np.float32), estimate_curtains(acq, method="wavelet-fft", min_significance=0))
    before = psnr(acq, ref)
    edge0 = edge_contrast(acq, labels, ref)
    extra = {}
    peers = pystack3d_peers()
    if peers is not None:
        ps = peers[1](acq)
        extra = {"pystack3d_gain_db": psnr(ps, ref) - before, "pystack3d_edge_ratio": edge_contrast(ps, labels, ref) / edge0}
    window = apply_curtains(acq.astype(np.float32), estimate_curtains(acq, **WINDOW))
    truth = striped - plain
    return extra | {
        "psnr_before_direct_db": before,
        "gain_direct_db": psnr(out, ref) - before,
        # the previous default: a running median of a fixed window along the stripe instead of the change-point fit
        "gain_window_db": psnr(window, ref) - before,
        "edge_ratio_window": edge_contrast(window, labels, ref) / edge0,
        "captured": captured(acq, out, truth),
        "captured_window": captured(acq, window, truth),
        # the opt-in pooling along z (2 slices each side)
        "gain_pooled_db": psnr(apply_curtains(acq.astype(np.float32), estimate_curtains(acq, z_reach=2)), ref) - before,
        "oracle_gain_db": psnr(oracle, ref) - before,
        "peer_gain_db": psnr(peer, ref) - before,
        "edge_ratio": edge_contrast(out, labels, ref) / edge0,
        "peer_edge_ratio": edge_contrast(peer, labels, ref) / edge0,
    }


# the previous default along the stripe, with its own tuned threshold and gate
WINDOW = dict(along="window", threshold=3.0, min_significance=10.0)


def captured(acq: np.ndarray, out: np.ndarray, truth: np.ndarray) -> float:
    """Share of the true stripe energy the filter removed: ``1 - |found - truth|^2 / |truth|^2``."""
    found = acq.astype(np.float64) - out
    return float(1 - np.sum((found - truth) ** 2) / np.sum(truth**2))


ALONG_CASES = (("diglyme", 0), ("diglyme", 3), ("diglyme", 5), ("carbonate", 1), ("carbonate", 2))
# the destripers compared on them: default, the previous default (linear ramp at onsets), z pooling,
# the fixed window, and a variational destriper (unidirectional TV)
ALONG_VARIANTS = {"steps": {}, "ramp": dict(onsets=False), "pooled": dict(z_reach=2), "window": WINDOW}


def utv_destripe(stack: np.ndarray, *, alpha: float = 0.7, beta: float = 0.1, iters: int = 3000, block: int = 16) -> np.ndarray:
    """Variational destriper, for comparison: unidirectional total variation on the block image.

    Per slice, on the medians of ``block`` rows ``B``: the stripe image ``S`` minimises
    ``|d/dx (B - S)|_1 + alpha |d/dy S|_1 + beta |S|_1`` (the clean image varies little across
    the stripes except at edges; the stripes are piecewise constant along them, starting from 0
    above the top row, and sparse), solved by Chambolle-Pock (primal-dual, ``iters`` steps);
    ``S`` is interpolated linearly between block centres and subtracted.
    """
    out = np.array(stack, dtype=np.float64)
    tau = sig = 1 / np.sqrt(8.0)
    for k in range(out.shape[0]):
        nb = out.shape[1] // block
        b = np.median(out[k, : nb * block].reshape(nb, block, -1), axis=1)
        s = np.zeros_like(b)
        s_bar = s.copy()
        p = np.zeros((nb, b.shape[1] - 1))
        q = np.zeros_like(b)
        c = np.diff(b, axis=1)
        for _ in range(iters):
            p = np.clip(p + sig * (np.diff(s_bar, axis=1) - c), -1, 1)
            q = np.clip(q + sig * np.diff(s_bar, axis=0, prepend=0), -alpha, alpha)
            kt = np.pad(p, ((0, 0), (1, 0))) - np.pad(p, ((0, 0), (0, 1))) + q - np.pad(q[1:], ((0, 1), (0, 0)))
            v = s - tau * kt
            s_new = np.sign(v) * np.maximum(np.abs(v) - tau * beta, 0)
            s_bar, s = 2 * s_new - s, s_new
        rows = np.arange(out.shape[1])
        centres = (np.arange(nb) + 0.5) * block - 0.5
        out[k] -= np.stack([np.interp(rows, centres, s[:, j]) for j in range(s.shape[1])], axis=1)
    return out


STRONG = dict(curtain_amplitude=0.3, curtain_density=8.0)


def strong_stacks(preset: str, seed: int, *, slices: int, shape: tuple[int, int]) -> tuple[Any, Any, dict[bool, np.ndarray]]:
    """The strong-curtain phantom of one case: artefact-free, curtains only (no noise), and acquired by noise (False, True).

    The acquired stacks carry the curtains, quantisation and, under True, the noise.
    """
    kw = dict(slices=slices, shape=shape, seed=seed, workers=2)
    plain = make_phantom(preset, artefacts=Artefacts.none(), **kw)
    striped = make_phantom(preset, artefacts=Artefacts.only("curtains", **STRONG), **kw)
    acquired = {noise: make_phantom(preset, artefacts=Artefacts.only("curtains", *(("noise",) if noise else ()), "quantise", **STRONG), **kw).acquired
                for noise in (False, True)}
    return plain, striped, acquired


def destripe_cell(acq: np.ndarray, out: np.ndarray, ref: np.ndarray, truth: np.ndarray, labels: np.ndarray) -> dict:
    """Gain (dB, direct), share of the stripe energy captured and edge ratio of one destriped stack ``out`` of ``acq``."""
    return {"gain_db": psnr(out, ref) - psnr(acq, ref), "captured": captured(acq, out, truth),
            "edge_ratio": edge_contrast(out, labels, ref) / edge_contrast(acq, labels, ref)}


def along_case(preset: str, seed: int, *, slices: int = 16, shape: tuple[int, int] = (256, 256),
               variants: dict[str, dict] = ALONG_VARIANTS, utv: bool = True) -> tuple[list[dict], dict]:
    """One strong-curtain phantom, noise-free and noisy: gain / captured / edge of each destriper.

    Returns the two rows (oracle gain = the true stripe image subtracted) and the drawn stripe
    geometry of the phantom (:func:`stripe_geometry`).
    """
    plain, striped, acquired = strong_stacks(preset, seed, slices=slices, shape=shape)
    truth = striped.acquired.astype(np.float64) - plain.acquired
    ref = plain.acquired.astype(np.float64)
    rows = []
    for noise, acq in acquired.items():
        row = {"preset": preset, "seed": seed, "noise": noise, "oracle_gain_db": psnr(acq - truth, ref) - psnr(acq, ref)}
        outs = {name: apply_curtains(acq.astype(np.float32), estimate_curtains(acq, **opts)) for name, opts in variants.items()}
        if utv:
            outs["utv"] = utv_destripe(acq)
        for name, out in outs.items():
            row[name] = destripe_cell(acq, out, ref, truth, plain.labels)
        rows.append(row)
        print(row, flush=True)
    return rows, stripe_geometry(striped.curtains["stripes"], shape)


def stripe_geometry(stripes: list[dict], shape: tuple[int, int]) -> dict:
    """Width, count and length of the phantom's stripes in pixels.

    Length = rows from the stripe's start to where its amplitude falls to 1/e or to the bottom
    of the image, whichever comes first (stripes starting below the image are left out).
    """
    inside = [s for s in stripes if 0 <= s["col"] < shape[1] and s["row_start"] < shape[0]]
    length = [min(s["decay_px"], shape[0] - max(s["row_start"], 0.0)) for s in inside]
    return {"count": len(inside), "per_100_columns": 100 * len(inside) / shape[1],
            "width_px": [min(s["width_px"] for s in inside), max(s["width_px"] for s in inside)],
            "decay_px_median": float(np.median([s["decay_px"] for s in inside])),
            "length_px_median": float(np.median(length)), "length_px_quartiles": [float(q) for q in np.percentile(length, (25, 75))]}


def along_comparison() -> list[dict]:
    """The destripers on more strong-curtain phantoms (seeds and both presets, noisy and noise-free).

    ``steps`` (default: piecewise-constant fit, each value the mean of its run, onsets placed at
    row resolution) against ``ramp`` (the previous default: linear between block centres at
    onsets), ``pooled`` (2 slices each side), ``window`` (running median of a fixed window) and
    ``utv`` (:func:`utv_destripe`): PSNR gain (direct), share of the stripe energy captured,
    edge ratio; the CPU time of one 2048x1536 slice each (not for the variational one).
    """
    from volrecon.correct.curtains import CurtainSettings

    rows = []
    for preset, seed in ALONG_CASES:
        rows += along_case(preset, seed)[0]
    big = strong_slice((1536, 2048))
    cpu = {name: slice_time(big, CurtainSettings(**opts))["cpu_s"]
           for name, opts in (("steps", {}), ("ramp", dict(onsets=False)), ("window", dict(along="window", threshold=WINDOW["threshold"])))}
    return [{"cpu_s_per_2048x1536_slice": cpu}] + rows


def strong_slice(shape: tuple[int, int]) -> np.ndarray:
    """One noisy slice of ``shape`` with strong curtains (diglyme, seed 0): what the per-slice timings run on."""
    return make_phantom("diglyme", slices=1, shape=shape, seed=0, artefacts=Artefacts.only("curtains", "noise", "quantise", **STRONG), workers=2).acquired[0]


def slice_time(plane: np.ndarray, settings, repeats: int = 5) -> dict:
    """CPU and wall seconds of removing the stripes from one slice (medians of ``repeats``, after a warm-up run)."""
    from volrecon.correct.curtains import remove_stripes

    remove_stripes(plane, settings)  # warm (JIT cache, allocator)
    cpu, wall = [], []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        remove_stripes(plane, settings)
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - t0)
    return {"cpu_s": statistics.median(cpu), "wall_s": statistics.median(wall)}


SIZE_VARIANTS = {name: ALONG_VARIANTS[name] for name in ("steps", "pooled", "window")}


# more seeds for the size comparison (``--cases``): the five cases above first
SIZE_CASES = ALONG_CASES + (("diglyme", 1), ("carbonate", 3), ("diglyme", 2), ("carbonate", 4), ("diglyme", 4))


def parse_size(token: str) -> tuple[int, int]:
    """Slice shape ``(rows, columns)`` of a size token: ``"512"`` (square) or ``"2048x1536"`` (width x height)."""
    w, _, h = token.lower().partition("x")
    return (int(h or w), int(w))


def size_label(shape: tuple[int, int]) -> str:
    """``"width x height"`` of a slice shape ``(rows, columns)``."""
    return f"{shape[1]}x{shape[0]}"


def size_comparison(shapes: tuple[tuple[int, int], ...], slices: tuple[int, ...], cases: int = len(ALONG_CASES)) -> list[dict]:
    """The cases of :func:`along_comparison` on larger slices (fewer slices, to keep CPU down).

    Same recipe (strong curtains, noise, oracle, metrics) on the first ``cases`` of
    :data:`SIZE_CASES`; the variational destriper and the ramp are left out.  One entry per
    shape ``(rows, columns)`` with the rows, the stripes drawn and the default's time to
    remove the stripes from one slice of that shape (:func:`slice_time`).
    """
    from volrecon.correct.curtains import CurtainSettings

    out = []
    for shape, nz in zip(shapes, slices, strict=True):
        c0 = time.process_time()
        rows, geometry = [], []
        for preset, seed in SIZE_CASES[:cases]:
            r, g = along_case(preset, seed, slices=nz, shape=shape, variants=SIZE_VARIANTS, utv=False)
            rows += r
            geometry.append({"preset": preset, "seed": seed} | g)
        out.append({"size": size_label(shape), "shape": list(shape), "slices": nz, "rows": rows, "stripes": geometry,
                    "cpu_s": time.process_time() - c0, "apply_per_slice": slice_time(strong_slice(shape), CurtainSettings())})
    return out


# the background each pass of the destriper takes in the ``curtains --ceiling`` part
CEILING_NAMES = {
    "default": "11-tap median of the blocks minus the stripes found so far (default)",
    "true": "true background (the artefact-free slice; the ceiling)",
    "phases": "each phase at its mean grey in the slice (true labels)",
    "taps_minus_true": "11-tap median of the blocks minus the true stripes",
}
# (slices, (rows, columns)) of the ceiling runs
CEILING_SIZES = ((8, (256, 256)), (8, (512, 512)), (16, (256, 256)))


@contextmanager
def pass_background(background: Callable[[np.ndarray], np.ndarray] | None) -> Iterator[None]:
    """Within: each pass of volrecon's destriper takes ``background(offsets)`` as its background.

    A monkeypatch (this benchmark's, volrecon unchanged) of
    ``volrecon.correct.curtains._across_median``, which the passes of ``_stack_nodes`` call
    with the block medians minus the stripes found so far and the pass's tap offsets; the
    patched one ignores the blocks and returns ``background(offsets)``, a block image
    ``(blocks, X)``.  The onset placement keeps its own taps.  ``None``: unchanged.  Restored
    on exit.
    """
    import volrecon.correct.curtains as cur

    original = cur._across_median
    if background is not None:
        cur._across_median = lambda blocks, offsets: background(offsets)
    try:
        yield
    finally:
        cur._across_median = original


def slice_backgrounds(acq: np.ndarray, ref: np.ndarray, truth: np.ndarray, labels: np.ndarray, settings) -> dict[str, Callable[[np.ndarray], np.ndarray] | None]:
    """The background variants of :data:`CEILING_NAMES` for one slice (``acq``, its artefact-free ``ref``, stripes ``truth``, ``labels``)."""
    from volrecon.correct.curtains import _across_median, _blocks

    def blocks(image: np.ndarray) -> np.ndarray:
        return _blocks(np.asarray(image, dtype=np.float32), settings)[0]

    ids = labels.ravel().astype(np.intp)
    phase_mean = np.bincount(ids, ref.ravel()) / np.maximum(np.bincount(ids), 1)
    true_bg, phase_bg = blocks(ref), blocks(phase_mean[ids].reshape(ref.shape))
    cleaned = blocks(acq) - blocks(truth)
    return {"default": None, "true": lambda offsets: true_bg, "phases": lambda offsets: phase_bg,
            "taps_minus_true": lambda offsets: _across_median(cleaned, offsets)}


def ceiling_case(preset: str, seed: int, *, slices: int, shape: tuple[int, int]) -> list[dict]:
    """One strong-curtain case, noise-free and noisy: the default destriper with each background of :data:`CEILING_NAMES`.

    Settings of ``estimate_curtains`` on the acquired stack (enabled on these stripes), slice
    by slice (``remove_stripes``, as ``apply_curtains`` without z pooling); only the background
    of each pass changes (:func:`pass_background`).  Cells: gain / captured / edge as in
    :func:`along_case`; ``default_matches_apply``: the default equals ``apply_curtains``.
    """
    from volrecon.correct.curtains import remove_stripes

    plain, striped, acquired = strong_stacks(preset, seed, slices=slices, shape=shape)
    truth = striped.acquired.astype(np.float64) - plain.acquired
    ref = plain.acquired.astype(np.float64)
    rows = []
    for noise, acq in acquired.items():
        settings = estimate_curtains(acq)
        outs = {name: np.empty(acq.shape, np.float32) for name in CEILING_NAMES}
        for z in range(acq.shape[0]):
            for name, background in slice_backgrounds(acq[z], ref[z], truth[z], plain.labels[z], settings).items():
                with pass_background(background):
                    outs[name][z] = remove_stripes(acq[z], settings)
        row = {"preset": preset, "seed": seed, "noise": noise, "enabled": settings.enabled, "oracle_gain_db": psnr(acq - truth, ref) - psnr(acq, ref),
               "default_matches_apply": bool(np.array_equal(outs["default"], apply_curtains(acq.astype(np.float32), settings)))}
        for name, out in outs.items():
            row[name] = destripe_cell(acq, out, ref, truth, plain.labels)
        rows.append(row)
        print(slices, shape, {k: (v if not isinstance(v, dict) else round(v["gain_db"], 3)) for k, v in row.items()}, flush=True)
    return rows


def ceiling_comparison(sizes: tuple[tuple[int, tuple[int, int]], ...] = CEILING_SIZES) -> list[dict]:
    """The five cases of :func:`along_comparison` at each ``(slices, shape)``: what a better background could gain at most."""
    out = []
    for nz, shape in sizes:
        c0 = time.process_time()
        rows = [r for preset, seed in ALONG_CASES for r in ceiling_case(preset, seed, slices=nz, shape=shape)]
        out.append({"size": size_label(shape), "slices": nz, "rows": rows, "cpu_s": time.process_time() - c0})
    return out


def stripe_free() -> list[dict]:
    """The destriper on stripe-free stacks: it must leave them alone (RMS change, gate)."""
    rows = []
    for preset, seed in (("diglyme", 0), ("carbonate", 1)):
        for noise in (False, True):
            on = (("noise",) if noise else ()) + ("quantise",)
            acq = make_phantom(preset, slices=16, shape=(256, 256), seed=seed, artefacts=Artefacts.only(*on), workers=2).acquired
            settings = estimate_curtains(acq)
            out = apply_curtains(acq.astype(np.float32), settings)
            rows.append({"preset": preset, "noise": noise, "enabled": bool(settings.enabled), "significance": settings.significance,
                         "rms_change": float(np.sqrt(np.mean((out - acq.astype(np.float32)) ** 2))),
                         "rms_change_forced": float(np.sqrt(np.mean((apply_curtains(acq.astype(np.float32), estimate_curtains(acq, min_significance=0)) - acq.astype(np.float32)) ** 2)))})
    return rows


def void_depth_phantom(slices: int = 24, shape: tuple[int, int] = (256, 256), seed: int = 0, share: tuple[float, float] = (0.1, 0.7)):
    """Noisy phantom with a brightness drift + step whose cathode loses electrolyte with depth.

    The phantom's own specimen has no void trend along z, so one is imposed on its clean face:
    in slice ``k`` the cathode electrolyte below a ``share[0] -> share[1]`` (linear in ``k``)
    quantile of one fixed smooth random field becomes void (void grey level, void label).  The
    face then goes through the phantom's own detector model (gain/offset with a step, Poisson-
    Gaussian noise, 8-bit).  Returns acquired, labels, true void fraction per slice, the cathode
    mask, the step slice and the true (gain, offset) per slice (full scale 1).
    """
    from scipy import ndimage as ndi

    from volrecon.phases import PHASES, REGIONS
    from volrecon.sample.artefacts import detector

    art = Artefacts.only("brightness", "noise", "quantise")
    ph = make_phantom("diglyme", slices=slices, shape=shape, seed=seed, artefacts=art, workers=2)
    rng = np.random.default_rng(seed + 100)
    fieldr = ndi.gaussian_filter(rng.standard_normal(shape), 4.0)
    void, elyte = PHASES["void"], PHASES["electrolyte"]
    cathode = ph.regions == REGIONS["cathode"]
    face = ph.clean.astype(np.float32).copy()
    labels = ph.labels.copy()
    void_grey = float(np.median(face[labels == void]))
    acquired = np.empty(face.shape, np.uint8)
    for k in range(slices):
        pore = cathode[k] & (labels[k] == elyte)
        q = share[0] + (share[1] - share[0]) * k / max(slices - 1, 1)
        lose = pore & (fieldr < np.quantile(fieldr[pore], q))
        face[k][lose] = void_grey
        labels[k][lose] = void
        acquired[k] = detector(face[k], np.ones(shape, np.float32), ph.brightness[k, 0], ph.brightness[k, 1], art, rng)
    truth = np.array([(labels[k][cathode[k]] == void).mean() for k in range(slices)])
    return acquired, labels, truth, cathode, ph.truth["acquisition"]["brightness"]["step_slice"], ph.brightness


def brightness_constancy() -> dict:
    """Per-phase mean grey over slices after brightness correction, and the void trend kept.

    Phases whose amount does not change with depth must keep their mean grey within 1 %
    (max over slices of ``|mean_k / median - 1|``), and the void fraction measured with one
    global threshold must still follow the imposed depth trend.  Compared with the raw stack
    and a peer that normalises each slice to its own 1st/99th percentiles (which erases trends).
    The oracle divides out the true gain/offset: its deviations are the floor the phantom itself
    sets (a phase's mean grey also moves with its shape and neighbours through blur and noise).
    Label-free estimation is timed as the median of 3 runs.
    """
    from volrecon.phases import PHASES

    acq, labels, truth, cathode, step, gain_offset = void_depth_phantom()
    times = []
    for _ in range(3):
        t0, c0 = time.perf_counter(), time.process_time()
        table = estimate_brightness(acq)
        times.append((time.perf_counter() - t0, time.process_time() - c0))
    seconds, cpu = statistics.median(t for t, _ in times), statistics.median(c for _, c in times)
    corrected = apply_brightness(acq.astype(np.float32), table)
    g, o = gain_offset[:, 0, None, None], gain_offset[:, 1, None, None]
    oracle = ((acq / 255.0 - o) / g * np.median(g) + np.median(o)) * 255
    reference = [PHASES[n] for n in ("active", "collector", "separator")]
    with_labels = apply_brightness(acq.astype(np.float32), estimate_brightness(acq, labels=labels, reference_phases=reference))
    lo, hi = np.percentile(acq, (1, 99), axis=(1, 2))
    peer = (acq - lo[:, None, None]) / (hi - lo)[:, None, None]
    out: dict = {"step_slice": step, "steps_found": list(table.steps), "seconds": seconds, "cpu_s": cpu,
                 "modes": table.classes, "warnings": list(table.warnings),
                 "gain_error_pct_max": float(100 * np.abs(table.gain / np.median(table.gain) - gain_offset[:, 0] / np.median(gain_offset[:, 0])).max()),
                 "phases": {}}
    names = {v: k for k, v in PHASES.items()}
    variants = (("raw", acq.astype(np.float32)), ("volrecon", corrected), ("volrecon_labels", with_labels),
                ("peer_percentile", peer), ("oracle", oracle))
    stable = [v for v in np.unique(labels) if names.get(int(v)) not in ("void", "electrolyte")  # change with depth by design
              and min((labels[k] == v).sum() for k in range(acq.shape[0])) >= 500]

    def phase_means(img: np.ndarray) -> dict[str, np.ndarray]:
        return {names.get(int(v), str(v)): np.array([img[k][labels[k] == v].mean() for k in range(acq.shape[0])]) for v in stable}

    # the floor of the measure itself: noise of a slice's phase mean (standard error) and the
    # oracle's own deviation (shape/neighbour changes through blur); the correction error proper
    # is the deviation of the per-slice phase means from the oracle's (same pixels, so noise and
    # structure cancel)
    out["phase_mean_standard_error_pct"] = {
        names.get(int(v), str(v)): float(np.median([100 * acq[k][labels[k] == v].std() / np.sqrt((labels[k] == v).sum()) / acq[k][labels[k] == v].mean()
                                                   for k in range(acq.shape[0])])) for v in stable}
    means_oracle = phase_means(oracle)
    for name, img in variants:
        means = phase_means(img)
        dev = {n: float(100 * np.abs(m / np.median(m) - 1).max()) for n, m in means.items()}
        vs_oracle = {n: float(100 * np.abs((m / means_oracle[n]) / np.median(m / means_oracle[n]) - 1).max()) for n, m in means.items()}
        # void fraction with one global threshold midway between the stack's void and electrolyte greys
        gv = np.median(img[labels == PHASES["void"]])
        ge = np.median(img[labels == PHASES["electrolyte"]])
        cut = (gv + ge) / 2
        pore = (labels == PHASES["void"]) | (labels == PHASES["electrolyte"])
        measured = np.array([(img[k][cathode[k] & pore[k]] < cut).sum() / cathode[k].sum() for k in range(acq.shape[0])])
        slope_true = np.polyfit(np.arange(truth.size), truth, 1)[0]
        slope = np.polyfit(np.arange(truth.size), measured, 1)[0]
        out["phases"][name] = {
            "max_phase_deviation_pct": max(dev.values()), "per_phase_pct": dev,
            "max_deviation_vs_oracle_pct": max(vs_oracle.values()), "per_phase_vs_oracle_pct": vs_oracle,
            "void_slope_ratio": float(slope / slope_true), "void_corr": float(np.corrcoef(truth, measured)[0, 1]),
            "void_rmse": float(np.sqrt(np.mean((measured - truth) ** 2))),
        }
    out["void_fraction_true"] = [float(truth[0]), float(truth[-1])]
    return out


THROUGHPUT = """
import numpy as np, time
import dask.array as da
from volrecon.correct import ShadingField, BrightnessTable, CurtainSettings, correct_volume
nz, ny, nx = {nz}, 1536, 2048
rng = np.random.default_rng(0)
base = rng.integers(40, 200, (ny, nx), dtype=np.uint8)
# a lazy source that makes each slice when asked, like reading a file (da.from_array would copy
# every slice of a numpy input into the graph, so memory would grow with the stack)
stack = da.map_blocks(lambda block_info=None: base[None].copy(), dtype=np.uint8, chunks=((1,) * nz, (ny,), (nx,)))
sh = ShadingField(coarse=np.ones((65, 65), np.float32) * np.linspace(0.9, 1.1, 65, dtype=np.float32)[None], shape=(ny, nx), offset=10.0)
bt = BrightnessTable(gain=np.linspace(0.9, 1.1, nz), offset=np.zeros(nz), raw_gain=np.ones(nz), raw_offset=np.zeros(nz))
est = dict(shading=sh, brightness=bt, curtains=CurtainSettings({curtains}))
res = correct_volume(stack, voxel_size_nm=(20, 10, 10), steps=("shading", "brightness", "curtains"), estimates=est)
out = res.image
t, c = time.perf_counter(), time.process_time()
total = 0
for z in range(0, nz, 8):  # as the OME-Zarr writer consumes it: slabs of 8 slices (its z chunk), nothing kept
    total += int(out[z:z + 8].compute(scheduler="threads", num_workers=2).sum() % 7)
_res = {{"seconds": time.perf_counter() - t, "cpu_s": time.process_time() - c, "slices": nz}}
"""

POOLED = """
import numpy as np, time
import dask.array as da
from volrecon.correct import CurtainSettings, apply_curtains
nz, ny, nx = {nz}, 1536, 2048
rng = np.random.default_rng(0)
base = rng.integers(40, 200, (ny, nx), dtype=np.uint8)
stack = da.map_blocks(lambda block_info=None: base[None].copy(), dtype=np.uint8, chunks=((1,) * nz, (ny,), (nx,)))
out = apply_curtains(stack, CurtainSettings(z_reach={reach}))
t, c = time.perf_counter(), time.process_time()
total = 0
for z in range(0, nz, 8):
    total += int(out[z:z + 8].compute(scheduler="threads", num_workers=2).sum() % 7)
_res = {{"seconds": time.perf_counter() - t, "cpu_s": time.process_time() - c, "slices": nz}}
"""

ESTIMATE = """
import numpy as np, time
import dask.array as da
from volrecon.correct import correct_volume
acq = np.load({path!r}, mmap_mode="r")
stack = da.from_array(acq, chunks=(1,) + acq.shape[1:])
t, c = time.perf_counter(), time.process_time()
res = correct_volume(stack, voxel_size_nm=(20, 10, 10), steps=("shading", "brightness", "curtains"))
est_s, est_cpu = time.perf_counter() - t, time.process_time() - c
t, c = time.perf_counter(), time.process_time()
for z in range(0, acq.shape[0], 8):
    res.image[z:z + 8].compute(scheduler="threads", num_workers=2)
_res = {{"estimate_s": est_s, "estimate_cpu_s": est_cpu, "apply_s": time.perf_counter() - t,
        "apply_cpu_s": time.process_time() - c, "slices": int(acq.shape[0])}}
"""


def phantom_2048(slices: int = 24) -> Path:
    """A 2048x1536 diglyme phantom (no drift, all intensity artefacts), cached under benchmarks/_work."""
    from _common import WORK

    path = WORK / f"corrections_phantom_{slices}x1536x2048.npy"
    if not path.is_file():
        WORK.mkdir(parents=True, exist_ok=True)
        ph = make_phantom("diglyme", slices=slices, shape=(1536, 2048), seed=0,
                          artefacts=Artefacts(drift=False, foreshortening=False), workers=2)
        np.save(path, ph.acquired)
    return path


# the rows timed alternately with the row 48 (older results name the window's)
ALTERNATE_ROWS = {"48_curtains_window": "48, curtains along the previous window (alternating with the row 48)",
                  "48_curtains_ramp": "48, curtains with a linear ramp at the onsets (the default before; alternating with the row 48)",
                  "48_baseline": "48, volrecon at {commit} (before the compiled apply path; alternating with the row 48)"}
THROUGHPUT_SLICES = (48, 144, 288)


def baseline_tree(commit: str) -> Path:
    """The ``volrecon`` package of ``commit`` (``git archive``), unpacked under benchmarks/_work."""
    import subprocess
    import tarfile
    from io import BytesIO

    from _common import WORK

    root = Path(__file__).resolve().parent.parent
    sha = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", commit], capture_output=True, text=True, check=True).stdout.strip()
    dest = WORK / f"volrecon_{sha}"
    if not (dest / "volrecon" / "__init__.py").is_file():
        tar = subprocess.run(["git", "-C", str(root), "archive", sha, "volrecon"], capture_output=True, check=True).stdout
        dest.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=BytesIO(tar)) as tf:
            tf.extractall(dest, filter="data")
    return dest


def run_with_path(code: str, path: Path | None) -> dict:
    """:func:`run_child` with ``path`` first on the child's ``sys.path`` (None: the installed volrecon).

    Put in the child's code, not in ``PYTHONPATH``: the child's working folder comes before
    ``PYTHONPATH``, and from the repository root that is the current volrecon.
    """
    if path is None:
        return run_child(code)
    where = str(path)
    head = (f"import sys\nsys.path.insert(0, {where!r})\nimport volrecon\n"
            f"assert volrecon.__file__.startswith({where!r}), volrecon.__file__\n")
    return run_child(head + code)


def _summary(res: list[dict]) -> dict:
    return {
        "slices_per_s_median": statistics.median(r["slices"] / r["seconds"] for r in res),
        "slices_per_cpu_s_median": statistics.median(r["slices"] / r["cpu_s"] for r in res),
        "peak_rss_mb_median": statistics.median(r["peak_rss_mb"] for r in res),
        "runs": res,
    }


def throughput(baseline: str | None = None) -> tuple[dict, dict]:
    """Apply throughput at 2048x1536 (:data:`THROUGHPUT_SLICES`) and estimate/apply timing on the 24-slice phantom.

    With ``baseline`` (a git commit), its volrecon is timed on the 48-slice stack too, alternating.
    """
    runs: dict = {}
    base = baseline_tree(baseline) if baseline else None
    # 48 slices with the default curtains, with the previous default (linear ramp at the onsets)
    # and with the baseline commit, alternating so that the load of the shared cores weighs on all alike
    rows: dict[str, list[dict]] = {"48": [], "48_curtains_ramp": []} | ({"48_baseline": []} if base else {})
    for _ in range(5 if base else 3):  # more pairs with a baseline: its numpy passes are sensitive to the other jobs' memory traffic
        rows["48"].append(run_child(THROUGHPUT.format(nz=48, curtains="")))
        rows["48_curtains_ramp"].append(run_child(THROUGHPUT.format(nz=48, curtains="onsets=False")))
        if base:
            rows["48_baseline"].append(run_with_path(THROUGHPUT.format(nz=48, curtains=""), base))
    runs[48] = _summary(rows.pop("48"))
    runs.update({k: _summary(v) for k, v in rows.items()})
    for nz in THROUGHPUT_SLICES[1:]:
        runs[nz] = _summary([run_child(THROUGHPUT.format(nz=nz, curtains="")) for _ in range(3)])
    print(runs, flush=True)
    # destriping alone through apply_curtains: slice by slice and pooled over z (the stage pools, as estimated)
    for reach in (0, 2):
        runs[f"apply_curtains_z_reach_{reach}"] = _summary([run_child(POOLED.format(nz=48, reach=reach)) for _ in range(3)])
        print(reach, runs[f"apply_curtains_z_reach_{reach}"], flush=True)
    path = phantom_2048()
    est_runs = [run_child(ESTIMATE.format(path=str(path))) for _ in range(3)]
    estimate = {k: statistics.median(r[k] for r in est_runs) for k in ("estimate_s", "estimate_cpu_s", "apply_s", "apply_cpu_s", "peak_rss_mb")}
    estimate["slices"] = est_runs[0]["slices"]
    estimate["runs"] = est_runs
    print(estimate, flush=True)
    return runs, estimate


ARTEFACT_SETS = (("shading",), ("brightness",), ("curtains",), ("shading", "brightness", "curtains"))


def all_gains(sets: tuple[tuple[str, ...], ...] = ARTEFACT_SETS) -> list[dict]:
    """The gains rows of ``sets`` on both presets, then the strong-curtain rows."""
    rows = []
    for preset, seed in (("diglyme", 0), ("carbonate", 1)):
        for names in sets:
            for noise in (False, True):
                rows.append(gains(preset, seed, names, noise=noise))
                print(rows[-1], flush=True)
    # stronger curtains (the default phantom's stripes carry little energy next to its noise)
    for noise in (False, True):
        r = gains("diglyme", 0, ("curtains",), noise=noise, **STRONG)
        r["artefacts"] = "curtains (amplitude 0.3, density 8)"
        rows.append(r)
        print(r, flush=True)
    return rows


def curtain_gains() -> list[dict]:
    """The gains rows with curtains on (alone and all on)."""
    return all_gains(tuple(names for names in ARTEFACT_SETS if "curtains" in names))


def main() -> None:
    rows = all_gains()
    free = stripe_free()
    print(free, flush=True)
    along = along_comparison()
    bright = brightness_constancy()
    print(bright, flush=True)
    runs, estimate = throughput()
    load = list(os.getloadavg())
    command = "PYTHONPATH=<folder with pystack3d> python benchmarks/corrections.py"
    try:
        from importlib.metadata import version

        peer_version = f"pystack3d {version('pystack3d')}"
    except Exception:  # noqa: BLE001 - not installed: keep the previous run's PyStack3D figures
        peer_version = carry_pystack3d(rows)
        command = "python benchmarks/corrections.py (PyStack3D not installed: its columns carried over from the previous run)"
    payload = {"command": command, "machine": machine(), "peers": peer_version, "gains": rows, "stripe_free": free, "curtains_along": along,
               "brightness_constancy": bright, "throughput_2048x1536": runs,
               "phantom_2048x1536": estimate, "throughput_load_avg": load,
               "note": "timings on 2 cores shared with other jobs: noisy, medians of 3"}
    save("corrections", payload, render(payload))


def carry_pystack3d(rows: list[dict]) -> str:
    """Copy the PyStack3D figures of the committed results into ``rows`` (same preset, artefacts, noise).

    Its figures depend only on the phantom and on PyStack3D, so a run without the package keeps
    them rather than leaving the columns empty; returns the peer note for the payload.
    """
    import json

    from _common import RESULTS

    path = RESULTS / "corrections.json"
    old = json.loads(path.read_text()) if path.is_file() else {}
    if not str(old.get("peers", "")).startswith("pystack3d 2"):
        return "pystack3d not installed"
    previous = {(r["preset"], r["artefacts"], r["noise"]): r for r in old.get("gains", [])}
    for r in rows:
        for key, value in previous.get((r["preset"], r["artefacts"], r["noise"]), {}).items():
            if key.startswith("pystack3d_"):
                r[key] = value
    return f"{old['peers'].split(' (')[0]} (figures from the previous run; not installed for this one)"


def render(payload: dict) -> str:
    """The markdown table of a results payload."""
    md = ["# Intensity corrections (benchmarks/corrections.py)", "",
          f"Command: `{payload.get('command', 'python benchmarks/corrections.py')}`", "",
          "PSNR gain vs the phantom's artefact-free image (16 slices, 256x256). Oracle = divide by the true "
          "field (shading) or subtract the true stripe image (curtains): the ceiling the noise allows. Peer = "
          "Gaussian flat field of the median slice (skimage) for shading, the wavelet-FFT destriper (Münch et al. "
          "2009, as in pystripe-style tools; our implementation) for curtains. Layer-ratio error = worst ratio of "
          "mean grey between two layers vs the truth, on the corrected grey scale (no fit). Edge = contrast across "
          "phase boundaries after/before (goal >= 0.95). Shading/brightness/all-on PSNRs use a linear fit to the "
          "reference (brightness is relative to the median slice); curtains-only PSNRs are direct.", "",
          "PyStack3D = its per-slice polynomial background removal (order 3, Huber) for shading and its wavelet "
          "destriper (coif3, 4 levels, sigma 4) for curtains, with its defaults (pip package, run unchanged; "
          f"{payload.get('peers', '?')}).", "",
          "Curtains: volrecon's default removes stripes slice by slice; in brackets the opt-in pooling of each "
          "slice's stripe residual with 2 slices on each side (`estimate_curtains(z_reach=2)`: curtains stay at "
          "the same x from slice to slice, each slice keeps its own amplitude; about 3x the apply time), and "
          "the previous default along the stripe (a running median of a fixed window, `along=\"window\"`).", "",
          "| preset | artefacts | noise | PSNR before | volrecon gain | oracle gain | peer gain | PyStack3D gain | layer-ratio err volrecon / oracle / peer / PyStack3D | edge volrecon / peer / PyStack3D |",
          "|---|---|---|---|---|---|---|---|---|---|"]
    nan = float("nan")
    for r in payload["gains"]:
        before, gain = r.get("psnr_before_direct_db", r["psnr_before_db"]), r.get("gain_direct_db", r["gain_db"])
        ratio = (f"{r['layer_ratio_err_pct']:.2f} / {r.get('oracle_layer_ratio_err_pct', nan):.2f} / {r['peer_layer_ratio_err_pct']:.2f} / "
                 f"{r.get('pystack3d_layer_ratio_err_pct', nan):.2f} %" if "layer_ratio_err_pct" in r else "–")
        pooled = f" ({r['gain_pooled_db']:+.2f} pooled)" if "gain_pooled_db" in r else ""
        if "gain_window_db" in r:
            pooled = f" ({r['gain_window_db']:+.2f} window, {r['gain_pooled_db']:+.2f} pooled)"
        edge = f"{r['edge_ratio']:.3f} / {r['peer_edge_ratio']:.3f} / {r.get('pystack3d_edge_ratio', nan):.3f}" if "edge_ratio" in r else "–"
        md.append(
            f"| {r['preset']} | {r['artefacts']} | {'yes' if r['noise'] else 'no'} | {before:.1f} dB | {gain:+.2f} dB{pooled} | "
            f"{r.get('oracle_gain_db', nan):+.2f} | {r.get('peer_gain_db', nan):+.2f} | {r.get('pystack3d_gain_db', nan):+.2f} | {ratio} | {edge} |"
        )
    if payload.get("stripe_free"):
        md += ["", "The destriper on stripe-free phantoms (16 slices, 256x256): the gate compares what the filter removes "
               "with what it removes from Gaussian noise of the slice's pixel noise (significance about 1 on pure noise, "
               "5-8 with a stripe-free specimen's structure, 80-220 with strong curtains; enabled from 25). RMS change in "
               "grey levels (8-bit), with the gate and with the filter forced on:", "",
               "| preset | noise | enabled | significance | RMS change | forced on |", "|---|---|---|---|---|---|"]
        for r in payload["stripe_free"]:
            md.append(f"| {r['preset']} | {'yes' if r['noise'] else 'no'} | {r['enabled']} | {r['significance']:.1f} | "
                      f"{r['rms_change']:.3f} | {r['rms_change_forced']:.3f} |")
    if payload.get("curtains_along"):
        md += along_table(payload["curtains_along"])
    if payload.get("curtains_ceiling"):
        md += ceiling_table(payload["curtains_ceiling"])
    if payload.get("curtains_sizes"):
        md += size_table(payload["curtains_sizes"])
    b = payload["brightness_constancy"]
    md += ["", "Brightness on a noisy phantom (24 slices, 256x256, brightness drift + step, Poisson-Gaussian noise) "
           "whose cathode loses electrolyte with depth (void fraction of the cathode "
           f"{b['void_fraction_true'][0]:.3f} -> {b['void_fraction_true'][1]:.3f}). Goal: every phase whose amount "
           "does not change keeps its mean grey within 1 % over slices; the void trend (one global threshold) kept "
           "(slope ratio measured/true near 1, correlation near 1). volrecon_labels = reference phases "
           "active, collector, separator from the truth labels; peer = per-slice 1st/99th-percentile normalisation; "
           "oracle = the true gain/offset divided out. volrecon = no labels (grey-level modes of flat areas tracked over the stack).",
           f"Step at slice {b['step_slice']}, found {b['steps_found']}; {b.get('modes', '?')} modes tracked; worst gain error "
           f"{b.get('gain_error_pct_max', float('nan')):.2f} %; estimate {b['seconds']:.2f} s wall / {b['cpu_s']:.2f} s CPU "
           "(median of 3).", ""]
    if "phase_mean_standard_error_pct" in b:
        se = ", ".join(f"{k} {v:.2f}" for k, v in b["phase_mean_standard_error_pct"].items())
        md += ["The measure has a floor of its own: a slice's phase mean carries noise (standard error of one slice's "
               f"phase mean, median over slices, %: {se}) and moves with the phase's shape and neighbours through blur — "
               "the oracle, with the true gain/offset, does not reach 1 % either. The correction error proper is the "
               "deviation of the per-slice phase means from the oracle's on the same pixels (noise and structure cancel): "
               "column 'vs oracle'.", ""]
    md += ["| image | max phase deviation | per phase | max vs oracle | void slope ratio | void corr | void RMSE |",
           "|---|---|---|---|---|---|---|"]
    for name, r in b["phases"].items():
        per = ", ".join(f"{k} {v:.1f}" for k, v in r["per_phase_pct"].items())
        md.append(f"| {name} | {r['max_phase_deviation_pct']:.2f} % | {per} | {r.get('max_deviation_vs_oracle_pct', nan):.2f} % | "
                  f"{r['void_slope_ratio']:.2f} | {r['void_corr']:.3f} | {r['void_rmse']:.3f} |")
    md += ["", "Applying shading + brightness + curtains at 2048x1536 with given estimates (`correct_volume(..., estimates=...)`, "
           "shading and brightness in one compiled float32 pass per slice, the destriper's medians and the stripe image "
           "(subtracted and cast in one pass) compiled too, bit-identical to the numpy code before; dask threads, 2 workers, "
           "computed in slabs of 8 slices as the OME-Zarr writer does, medians of 3 fresh processes, of 5 for the alternating "
           "rows of 48; random uint8 slices, so the stripe filter runs in full but finds little). The 2 cores are shared "
           "with other jobs, so wall figures are noisy; slices per CPU-second x 2 is what two free cores would give"
           + (f" (load average 1/5/15 min at the end of the timings: {' / '.join(f'{x:.1f}' for x in payload['throughput_load_avg'])}: "
              "CPU seconds are inflated too, compare rows of the same run)" if payload.get("throughput_load_avg") else "") + ":", "",
           "| slices | slices/s (wall) | slices per CPU-s x 2 | peak RSS |", "|---|---|---|---|"]
    for nz, r in payload["throughput_2048x1536"].items():
        name = (f"{nz}" if str(nz).isdigit() else ALTERNATE_ROWS[nz].format(commit=payload.get("throughput_baseline", "?"))
                if nz in ALTERNATE_ROWS else f"48, {nz.replace('_', ' ')} (curtains only)")
        md.append(f"| {name} | {r['slices_per_s_median']:.1f} | {2 * r['slices_per_cpu_s_median']:.1f} | {r['peak_rss_mb_median']:.0f} MB |")
    md += [""] + THROUGHPUT_NOTES
    e = payload["phantom_2048x1536"]
    md += ["", f"Estimating and applying on a {e['slices']}-slice 2048x1536 diglyme phantom (shading, brightness, curtains; "
           "medians of 3 fresh processes):", "", "| step | wall | process CPU | per slice (CPU) |", "|---|---|---|---|",
           f"| estimate | {e['estimate_s']:.1f} s | {e['estimate_cpu_s']:.1f} s | {1000 * e['estimate_cpu_s'] / e['slices']:.0f} ms |",
           f"| apply | {e['apply_s']:.1f} s | {e['apply_cpu_s']:.1f} s | {1000 * e['apply_cpu_s'] / e['slices']:.0f} ms |",
           "", f"Peak RSS of that process: {e['peak_rss_mb']:.0f} MB."]
    return "\n".join(md) + "\n"


THROUGHPUT_NOTES = [
    "Where the time went (cProfile and per-phase CPU timers on 2048x1536 slices, 98100db): ~100 ms CPU per slice, of which "
    "the float32 chain of shading and brightness ~25 ms (six numpy passes and a NaN-scrubbing copy), the stripe profile "
    "~67 ms (the across-stripe median of 11 taps and the running medians as pruned min/max networks: ~70 numpy passes "
    "per median over the block image, half of it), the stripe image and the cast to uint8 ~12 ms, the onset placement 2 ms. "
    "Now: the chain is one compiled pass (2 ms), the medians run row by row in compiled, vectorised code (3-4x faster), the "
    "stripe image is subtracted and cast in one pass (3-4 ms); what is left is mostly the change-point fit (numba already, "
    "3-6 ms per pass on the phantom, 4 passes) and the medians. The outputs are bit-identical to 98100db on phantoms "
    "(default, ramp, window, horizontal, other widths, z pooled) and random slices; tests/correct/test_apply_fast.py checks "
    "each kernel against a plain numpy implementation.",
    "",
    "The previous run of this table (98100db on a quieter machine, load 1.3) gave 14.5 / 12.7 slices/s wall at 48 / 144 "
    "slices and 17.6 / 19.1 slices per CPU-s x 2: the 144-slice run cost no more CPU per slice, and here 48 / 144 / 288 "
    "slices give the same CPU rate and the same wall rate within the noise, so the lower wall figure at 144 was the load "
    "of the shared machine, not the graph (dask's optimisation per slab of 8 stays ~10 ms whatever the slice count). Peak "
    "RSS does not grow with the slice count (most of it is the imported libraries). A same-run A/B on a loaded machine "
    "(load 9-17, `--baseline 98100db`, alternating fresh processes) gave 24.1 slices per CPU-s x 2 for 98100db against "
    "35.4 for the compiled path (1.47x).",
]


ALONG_NAMES = {"steps": "steps (default)", "ramp": "steps, ramp at onsets (before)", "pooled": "steps, z pooled",
               "window": "window", "utv": "variational (UTV)"}


def along_table(rows: list[dict]) -> list[str]:
    """Markdown of :func:`along_comparison`."""
    cpu = rows[0]["cpu_s_per_2048x1536_slice"]
    names = [n for n in ALONG_NAMES if n in rows[1]]
    md = ["", "Along the stripe: the change-point fit (`along=\"steps\"`, default: each column of the across-stripe "
          "residual fitted by a piecewise-constant profile with few change points, binary segmentation with a penalty of "
          "4 log(blocks) noise variances per change point, so each value is the mean of its whole run; garrote at 1.5x the "
          "noise of that mean; where the profile jumps between two block centres, the step is placed at the row where the "
          "slice's residual changes, `onsets=True`, default) against the same with the linear ramp between block centres "
          "(`onsets=False`, the default before), pooled over z (`z_reach=2`), the previous smoother (`along=\"window\"`: "
          "running median of 7 blocks of 16 rows, garrote at 3x its noise), and a variational destriper (unidirectional TV "
          "on the block medians: |d/dx(B - S)|_1 + 0.7 |d/dy S|_1 + 0.1 |S|_1, Chambolle-Pock, 3000 steps; "
          "`utv_destripe` in this script, not in volrecon); all but the ramp column place the onsets. Strong curtains (amplitude 0.3, density 8), 16 slices 256x256; "
          "captured = share of the true stripe energy removed (1 - |found - true|^2 / |true|^2); perfect removal gives the "
          "oracle gain. Each cell: gain / captured / edge. CPU per 2048x1536 slice (curtains only, median of 5): "
          + ", ".join(f"{ALONG_NAMES[n]} {1000 * cpu[n]:.0f} ms" for n in cpu) + ".", "",
          "| preset | seed | noise | oracle gain | " + " | ".join(ALONG_NAMES[n] for n in names) + " |",
          "|---|---|---|---|" + "---|" * len(names)]
    for r in rows[1:]:
        cells = [f"{r[n]['gain_db']:+.2f} / {r[n]['captured']:.3f} / {r[n]['edge_ratio']:.3f}" for n in names]
        md.append(f"| {r['preset']} | {r['seed']} | {'yes' if r['noise'] else 'no'} | {r['oracle_gain_db']:+.2f} | " + " | ".join(cells) + " |")
    for noise in (True, False):
        sel = [r for r in rows[1:] if r["noise"] == noise]
        cells = [f"{np.mean([r[n]['gain_db'] for r in sel]):+.2f} / {np.mean([r[n]['captured'] for r in sel]):.3f} / "
                 f"{min(r[n]['edge_ratio'] for r in sel):.3f} (min)" for n in names]
        md.append(f"| mean | | {'yes' if noise else 'no'} | {np.mean([r['oracle_gain_db'] for r in sel]):+.2f} | " + " | ".join(cells) + " |")
    return md + ["", *CURTAIN_NOTES]


def ceiling_table(entries: list[dict]) -> list[str]:
    """Markdown of :func:`ceiling_comparison`: one row per background, means over the cases per size and noise."""
    heads = [f"{e['size']}, {e['slices']} slices" for e in entries]
    md = ["", "The background of each pass (`python benchmarks/corrections.py curtains --ceiling`: the five cases of the steps/window "
          "table above, strong curtains; the default's settings and passes, only the background each pass subtracts replaced, "
          "by a monkeypatch of the destriper's across-stripe median in this script, `pass_background`; the default column "
          + ("equals `apply_curtains` bit for bit in every case" if all(r["default_matches_apply"] for e in entries for r in e["rows"])
             else "DIFFERS from `apply_curtains` in some cases") + "). Each cell: mean gain / mean captured (noisy: cases with a "
          "gain >= 0.6 dB); edge = the minimum over all cells of the row.", "",
          "| background of each pass | " + " | ".join(f"{h} noisy" for h in heads) + " | "
          + " | ".join(f"{h} noise-free" for h in heads) + " | edge (min) |",
          "|---|" + "---|" * (2 * len(entries) + 1)]
    for name, title in CEILING_NAMES.items():
        cells = []
        for noise in (True, False):
            for e in entries:
                sel = [r[name] for r in e["rows"] if r["noise"] == noise]
                met = f" ({sum(c['gain_db'] >= 0.6 for c in sel)}/{len(sel)})" if noise else ""
                cells.append(f"{np.mean([c['gain_db'] for c in sel]):+.{3 if noise else 2}f} / {np.mean([c['captured'] for c in sel]):.3f}{met}")
        edge = min(r[name]["edge_ratio"] for e in entries for r in e["rows"])
        md.append(f"| {title} | " + " | ".join(cells) + f" | {edge:.3f} |")
    oracle = []
    for noise in (True, False):
        for e in entries:
            sel = [r["oracle_gain_db"] for r in e["rows"] if r["noise"] == noise]
            oracle.append(f"{np.mean(sel):+.{3 if noise else 2}f}" + (f" ({sum(g >= 0.6 for g in sel)}/{len(sel)})" if noise else ""))
    return md + ["| oracle (true stripe image subtracted) | " + " | ".join(oracle) + " | |", "", *CEILING_NOTES]


def size_table(entries: list[dict]) -> list[str]:
    """Markdown of :func:`size_comparison`: the stripes drawn, then the gains per size."""
    names = list(SIZE_VARIANTS)
    label = {id(e): e["size"] if isinstance(e["size"], str) else f"{e['size']}x{e['size']}" for e in entries}
    ncases = sorted({len(e["stripes"]) for e in entries})
    md = ["", "Slice size (strong curtains, same recipe, oracle and metrics as the table above; "
          + "/".join(map(str, ncases)) + " (preset, seed) cases per size (`SIZE_CASES`; the first five are those of the table above); fewer slices at the "
          "larger sizes to keep CPU down: " + ", ".join(f"{e['slices']} slices of {label[id(e)]}" for e in entries)
          + "). The phantom keeps 10 nm pixels, so a larger image is a larger field of view with the same specimen features "
          "in pixels. Its stripes (`draw_curtains`): width a Gaussian sigma of 0.8-3 px and a count per image column that do "
          "not change with the size; each starts below a dense feature (or the cap) and decays as exp(-rows / decay) with "
          "decay 0.3-1.5x the canvas height, so the stripes get longer in pixels in proportion to the image height; their "
          "amplitude over slices is an AR(1) series whose lifetime is a share of the slice count. The filter's windows are "
          "fixed in pixels (blocks of 16 rows, persistence over 24 blocks in the wide pass), so at 256 rows a slice is "
          "16 blocks and most stripes are shorter than the persistence window; at 1024 rows the same stripes are 4x longer. "
          "Stripes inside the image (width as a Gaussian sigma: full width at half maximum 1.9-7 px; median over the cases; "
          "length = rows from the start to 1/e or to the bottom, median and quartiles); the default's time to remove the "
          "stripes from one slice of that size (`remove_stripes`, CPU and wall, median of 5, on a machine shared with other "
          "jobs):", "",
          "| size (width x height) | slices | stripes per 100 columns | width sigma (px) | decay (px) | length (px) | "
          "length (16-row blocks) | CPU of the cases | default per slice (CPU / wall) |",
          "|---|---|---|---|---|---|---|---|---|"]
    for e in entries:
        g = e["stripes"]
        med = {key: float(np.median([x[key] for x in g])) for key in ("per_100_columns", "decay_px_median", "length_px_median")}
        q = np.median([x["length_px_quartiles"] for x in g], axis=0)
        t = e.get("apply_per_slice")
        md.append(f"| {label[id(e)]} | {e['slices']} | {med['per_100_columns']:.1f} | "
                  f"{min(x['width_px'][0] for x in g):.1f}-{max(x['width_px'][1] for x in g):.1f} | {med['decay_px_median']:.0f} | "
                  f"{med['length_px_median']:.0f} ({q[0]:.0f}-{q[1]:.0f}) | {med['length_px_median'] / 16:.1f} | {e['cpu_s']:.0f} s | "
                  + (f"{1000 * t['cpu_s']:.0f} / {1000 * t['wall_s']:.0f} ms |" if t else "– |"))
    md += ["", "Each cell: gain / captured / edge (noisy and noise-free; means over the cases, edge the minimum; "
           "goal met = cases with a noisy gain >= 0.6 dB).", "",
           "| size | slices | preset | seed | noise | oracle gain | " + " | ".join(ALONG_NAMES[n] for n in names) + " |",
           "|---|---|---|---|---|---|" + "---|" * len(names)]
    for e in entries:
        for r in e["rows"]:
            cells = [f"{r[n]['gain_db']:+.2f} / {r[n]['captured']:.3f} / {r[n]['edge_ratio']:.3f}" for n in names]
            md.append(f"| {label[id(e)]} | {e['slices']} | {r['preset']} | {r['seed']} | {'yes' if r['noise'] else 'no'} | "
                      f"{r['oracle_gain_db']:+.2f} | " + " | ".join(cells) + " |")
    for noise in (True, False):
        for e in entries:
            sel = [r for r in e["rows"] if r["noise"] == noise]
            met = {n: f", met {sum(r[n]['gain_db'] >= 0.6 for r in sel)}/{len(sel)}" if noise else "" for n in names}
            cells = [f"{np.mean([r[n]['gain_db'] for r in sel]):+.2f} / {np.mean([r[n]['captured'] for r in sel]):.3f} / "
                     f"{min(r[n]['edge_ratio'] for r in sel):.3f} (min{met[n]})" for n in names]
            md.append(f"| **{label[id(e)]}** | {e['slices']} | mean of {len(sel)} | | {'yes' if noise else 'no'} | "
                      f"{np.mean([r['oracle_gain_db'] for r in sel]):+.2f} | " + " | ".join(cells) + " |")
    return md + ["", *SIZE_NOTES]


# what the background comparison shows (written from its results; re-check when they change)
CEILING_NOTES = [
    "What the backgrounds show (5 cases per size; about 1 min on the 2 shared cores): under noise the true background raises "
    "the default's mean gain from +0.534 to +0.638 dB at 256x256 with 8 slices, from +0.523 to +0.610 at 512x512 and from "
    "+0.487 to +0.578 at 256x256 with 16 slices (+0.09-0.10 dB each; captured 0.70-0.79 -> 0.84-0.92), and the cases at "
    ">= 0.6 dB from 1 of 5 to 3, 3 and 2 of 5. The oracle itself averages +0.70 / +0.64 / +0.66 dB there and stays under "
    "0.6 dB in 1, 2 and 2 of the 5 cases: at these field sizes the stripes hold little more energy than the goal asks for. "
    "So at 256-512 px even the exact background takes the filter only to about the goal on average (+0.64 and +0.61 "
    "with 8 slices, +0.58 with 16) and leaves it short in 2-3 of 5 cases; at the field sizes of real acquisitions the default alone meets it (1024x1024 on "
    "average, 2048x1536 in 10 of 10 cases: the size table below). Noise-free, the background is most of what is lost "
    "(+7.8-9.4 dB for the default against +11.9-15.5 with the true background, oracle +28.6-29.2).",
]


# what the size comparison shows (written from its results; re-check when they change)
SIZE_NOTES = [
    "What the sizes show (10 cases per size; run on the 2 shared cores at load 7-11): the noisy gain and the share of the "
    "stripe energy captured grow with the field, noisy +0.52 dB / 0.689 (256x256, 16 slices) -> +0.52 / 0.778 (512) -> "
    "+0.67 / 0.850 (1024) -> +0.72 / 0.867 (2048x1536), noise-free captured 0.807 -> 0.880 -> 0.921 -> 0.926, edges >= 0.981 "
    "everywhere (goal >= 0.95); the noisy gain is 0.71 / 0.80 / 0.86 / 0.88 of the oracle's (+0.73, +0.65, +0.78, +0.82). "
    "The >= 0.6 dB goal, case by case: met at 2048x1536 in 10 of 10 cases (mean +0.72, lowest +0.63, diglyme seed 0 of an "
    "oracle +0.74), at 1024x1024 on average (+0.67) and in 8 of 10 (the two below, +0.58 and +0.56, have oracles of +0.66 and "
    "+0.67), at 512x512 in 2 of 10 (+0.52) and at 256x256 in 4 of 10 (+0.52; with 4 slices +0.60 on average and 5 of 10, "
    "because that slice count draws stronger stripe series: oracle +0.85). So: met at the field sizes of real acquisitions "
    "(1024 px and up), not at 256-512 px. With 16 slices of 256x256 even the true background would give +0.58 (the "
    "background table above, `curtains --ceiling`): the short stripes of a small field (6 blocks of 16 rows at 256, 41 at 2048x1536) leave too "
    "few rows to average the noise along them. The default removes the stripes from one 2048x1536 slice in 55 ms CPU "
    "(141 ms wall on the loaded machine); the apply path is unchanged, so the throughput rows below stand. This is the "
    "phantom's stripe model (length proportional to the image height, width and count per column fixed in pixels); how real "
    "curtains scale with the field of view is not measured here. z pooling falls behind the default at 1024 and 2048x1536 "
    "(captured 0.829 and 0.845 against 0.850 and 0.867) with only 4 slices to pool.",
]


# what the comparison above rests on (one-off experiments on the strong-curtain diglyme phantom,
# seed 0, 16 slices 256x256, noisy unless said; not re-run by this script, except the third round's figures: the
# ``curtains --ceiling`` table, rendered after these notes)
CURTAIN_NOTES = [
    "Where the stripe energy goes (noisy, strong curtains, diglyme seed 0): the +0.6 dB goal needs about 97 % of it captured. "
    "Given the true background (the specimen known), the change-point fit captures 0.87-0.88 of it slice by slice (the noise "
    "of a run's mean is the floor: 22 grey levels per pixel), a fixed 3-7-block window 0.71-0.78; with the background estimated "
    "from the 11 taps the filter captures 0.61 (window 0.50), and 0.75 even without noise: wide bands of neighbouring curtains "
    "bias the background, and a curtain overlapped below by one of opposite sign fails the persistence test. Tried and not kept:",
    "",
    "- the exact optimum of the same penalised fit (dynamic programming with PELT pruning): same gains, 4x the fitting time (the "
    "pruning does not act on columns without change points);",
    "- keeping every long run of non-zero segments instead of the persistence test: in noise-free stacks the specimen's residual "
    "forms long runs too (diglyme default curtains -7.6 dB);",
    "- refitting the detected stripes with their unshrunk run means and cleaning the background taps with them: noise-free strong "
    "+6.0 -> +3.3 dB (structure leaks in);",
    "- change points shared with the two neighbouring columns (a stripe is 2-6 px wide): captured +0.02-0.03, dB unchanged;",
    "- 15 instead of 11 taps across: -0.1 to +0.1 dB, +25 ms per 2048x1536 slice;",
    "- z pooling with each slice's amplitude fitted per run on its raw residual: noise-free carbonate pooled +6.0 -> +4.3 dB "
    "(kept: the slice's along-stripe median regressed on the pooled one per run).",
    "",
    "Second round (the five cases of the table, mean captured noisy / noise-free; default with onsets 0.700 / 0.825, before "
    "them 0.688 / 0.805). What is lost is stripe energy left in (0.09-0.32 of it), not structure taken out (0.01-0.06): wide "
    "curtains (Gaussian width up to 3 px) over heterogeneous structure, where the narrow taps lie inside the stripe and the "
    "wide pass (taps twice as far, persistence over 24 blocks) reaches past the end of a 16-block slice; the first 24 rows "
    "of each curtain held 0.05-0.08 of the energy with the linear ramp (hence the onsets). Tried and not kept:",
    "",
    "- the variational destriper of the table (unidirectional TV, Chambolle-Pock): noise-free it captures 0.66-0.77 (the "
    "filter 0.76-0.91; scratch runs on diglyme seed 0: 0.78 without the sparsity term, 0.69 with an along-stripe weight of 1, "
    "0.52 after 300 steps instead of 3000); under noise it takes column noise and structure instead of the stripes (captured "
    "0.09-0.42, edges 0.958-0.961; its gains come near the filter's only because part of what it removes is noise), and it "
    "needs ~0.3 s per 256x256 slice (thousands of steps): far from 15 slices/s at 2048x1536;",
    "- z pooling in all four passes (the backgrounds too), 1 or 2 slices each side: 0.733 / 0.822 and 0.733 / 0.811, no "
    "better than pooling the last two (0.736 / 0.813) at more cost;",
    "- blocks of 8 rows (7 along): 0.730 / 0.864 before the onsets, but 169 instead of 70 ms per 2048x1536 slice (the "
    "throughput goal); a shorter window at 16 rows (3-5 blocks): +0.02-0.03 captured, edges down to 0.976;",
    "- persistence up or down the stripe (a curtain that ends or meets one of opposite sign below): 0.704 / 0.832, within the "
    "spread of the seeds, and the structure's long runs are what failed before;",
    "- the wide pass with the narrow pass's persistence: 0.691 / 0.814; a third, wider pass (spreads 1, 2, 3, 1, 1): 0.703 / "
    "0.827 (both before the onsets), one pass more.",
    "",
    "Third round: the background under a stripe (the five cases of the table with 8 slices of 256x256 and of 512x512, and "
    "16 of 256x256; the default's passes with only the background of each pass changed; `curtains --ceiling`, the table "
    "below). The ceiling first: with the true background (the specimen known) the filter gains about 0.1 dB more than the "
    "default under noise, only to about the goal at these sizes; what is left is the noise of the along-stripe fit of "
    "short stripes. The specimen is piecewise constant enough for it (each phase at its mean grey comes within 0.01 dB of "
    "the true background under noise), and the 11-tap median is a good background once the stripes are out (the median "
    "of the blocks minus the true stripes, as close): what it misses is the stripes not yet found when it is taken. A "
    "stripe wider than the taps' gaps, or a band of neighbouring ones, covers most taps and lifts its own background; the "
    "later passes subtract only what the earlier ones found, so the estimate stops where the wide pass left it. "
    "Neighbouring slices do not separate the two: the specimen persists over a few slices at the same (x, y) as the "
    "curtains do, so the slices around carry the same mix (only the change of a curtain's amplitude is separable, and z "
    "pooling already averages the residual's noise). Tried in scratch, not kept, no figure (none is in this script; the "
    "default is unchanged):",
    "",
    "- edge-aware taps: split into the two sides of a material step (side medians more than 3 block-noise sigmas apart), "
    "the side nearer the centre's value kept, taps on stripes found so far left out;",
    "- taps moved out past the band of stripes found so far, on each side;",
    "- the tap median snapped to the nearest phase grey (the true phase greys given);",
    "- more passes: 6 (spreads 1, 2, 1, 2, 1, 1; about 1.5x the profile's time), spreads 1, 2, 2, 1, 1 and 1, 2, 3, 1, 1;",
    "- wider taps (width_px 3 and 3.5 instead of 2.5);",
    "- robust along the stripe first: each tap's difference to the column, its running median over 3 or 7 blocks along "
    "the stripe, then the median over the taps (edges crossing a tap column pair on a minority of rows drop out);",
    "- subtracting 1.2x the stripes found so far before the median (an over-relaxation of the same fixed point; a factor "
    "fitted to the phantom);",
    "- the true background with z pooling (`z_reach` 1 and 2) at 16 slices of 256x256.",
]


def part_only(part: str, sizes: tuple[str, ...] = (), slices: tuple[int, ...] = (), baseline: str | None = None, cases: int = len(ALONG_CASES),
              ceiling: bool = False) -> None:
    """Re-run only the brightness-constancy, throughput or curtain part and update the committed results.

    With ``sizes`` (curtains only; tokens of :func:`parse_size`), re-run only the slice-size
    comparison (``slices`` per size, the first ``cases`` of :data:`SIZE_CASES`); with
    ``ceiling`` (curtains only), only the background comparison (:func:`ceiling_comparison`).
    """
    import json

    from _common import RESULTS

    path = RESULTS / "corrections.json"
    payload = json.loads(path.read_text()) if path.is_file() else {}
    tail = f"python benchmarks/corrections.py {part}"
    if sizes:
        tail += f" --size {','.join(sizes)} --slices {','.join(map(str, slices))}" + (f" --cases {cases}" if cases != len(ALONG_CASES) else "")
    if baseline:
        tail += f" --baseline {baseline}"
    if ceiling:
        tail += " --ceiling"
    # a size comparison replaces the previous one, so its command replaces the previous one's
    steps = [c for c in payload.get("command", "python benchmarks/corrections.py").split("; then ")
             if not (sizes and " --size " in c) and not (part == "throughput" and c.startswith("python benchmarks/corrections.py throughput"))]
    payload["command"] = "; then ".join(steps if tail in steps else steps + [tail])
    if part == "throughput":
        payload["throughput_2048x1536"], payload["phantom_2048x1536"] = throughput(baseline)
        payload["throughput_machine"] = machine()
        payload.pop("throughput_baseline", None)
        if baseline:
            payload["throughput_baseline"] = baseline
        payload["throughput_load_avg"] = list(os.getloadavg())
    elif part == "curtains" and ceiling:
        payload["curtains_ceiling"] = ceiling_comparison()
        payload["curtains_ceiling_machine"] = machine()
    elif part == "curtains" and sizes:
        payload["curtains_sizes"] = size_comparison(tuple(parse_size(t) for t in sizes), slices, cases)
        payload["curtains_sizes_machine"] = machine()
    elif part == "curtains":
        fresh = {(r["preset"], r["artefacts"], r["noise"]): r for r in curtain_gains()}
        # the PyStack3D figures depend only on the phantom and PyStack3D: kept where it is not installed
        payload["gains"] = [{k: v for k, v in r.items() if k.startswith("pystack3d_")} | fresh.get((r["preset"], r["artefacts"], r["noise"]), r)
                            for r in payload.get("gains", [])]
        payload["stripe_free"] = stripe_free()
        payload["curtains_along"] = along_comparison()
        payload["curtains_machine"] = machine()
    else:
        payload["brightness_constancy"] = brightness_constancy()
        payload["brightness_constancy_machine"] = machine()
    if "gains" in payload:
        save("corrections", payload, render(payload))
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Intensity corrections on the phantom; writes benchmarks/results/corrections.{json,md}.")
    parser.add_argument("part", nargs="?", choices=("all", "brightness", "throughput", "curtains"), default="all",
                        help="all (default, several minutes), or re-run only the brightness-constancy, the throughput or the "
                             "curtain part (every gains row with curtains on, the stripe-free rows and the steps/window comparison)")
    parser.add_argument("--size", default="", help="curtains only: comma list of slice sizes, square (e.g. 256,512,1024) or "
                        "width x height (2048x1536); re-runs only the slice-size comparison of the strong-curtain cases")
    parser.add_argument("--slices", default="", help="slices per size, comma list (default 16 at 256, fewer above: 4096 // width)")
    parser.add_argument("--cases", type=int, default=len(ALONG_CASES), help=f"with --size: strong-curtain cases per size, the "
                        f"first of {len(SIZE_CASES)} (preset, seed) pairs (default {len(ALONG_CASES)}: those of the steps/window comparison)")
    parser.add_argument("--ceiling", action="store_true", help="curtains only: re-run only the background comparison (the default "
                        "destriper against the same with the true background of each pass, and two more backgrounds; 8 slices of "
                        "256x256 and 512x512, 16 of 256x256, the five cases of the steps/window comparison)")
    parser.add_argument("--baseline", default="", help="throughput only: also time the volrecon of this git commit on the "
                        "48-slice stack (alternating with the current one)")
    args = parser.parse_args()
    sizes = tuple(x.strip() for x in args.size.split(",") if x.strip())
    slices = tuple(int(x) for x in args.slices.split(",") if x) or tuple(max(2, 4096 // parse_size(t)[1]) for t in sizes)
    if sizes and (args.part != "curtains" or len(slices) != len(sizes)):
        parser.error("--size goes with the curtains part, and --slices needs one count per size")
    if args.ceiling and (args.part != "curtains" or sizes):
        parser.error("--ceiling goes with the curtains part, without --size")
    if not 1 <= args.cases <= len(SIZE_CASES):
        parser.error(f"--cases: give 1 to {len(SIZE_CASES)}")
    if args.part == "all":
        main()
    else:
        if args.baseline and args.part != "throughput":
            parser.error("--baseline goes with the throughput part")
        part_only(args.part, sizes, slices, args.baseline or None, args.cases, args.ceiling)
