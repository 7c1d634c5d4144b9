"""Brightness/contrast drift: per-slice gain and offset against stable grey-level modes.

Slice ``k`` is modelled as ``I_k = gain_k * J + offset_k`` where ``J`` is the stack's common
grey scale.  The detector's gain/offset is global per slice while the specimen changes slowly,
so without labels each slice is binned and reduced to the local means of its edge-free windows;
the modes of that histogram (one per phase) are found on the pooled stack, each slice is locked
onto them by matching its own histogram peaks (the middle slice against the stack, then outward,
each slice choosing among the peak pairings the one under which its whole histogram best fits its
locked neighbour's), the modes are then located in every slice by mean shift and the slice's
gain/offset is the robust line through them.  A mode whose level wanders over the stack (a void
whose grey changes with its size, a phase split in two sub-modes by residual shading whose
tracked mode climbs from one half to the other as their shares change) gets little weight; its
wander is measured on the line most of the slice's modes agree on, so two modes cannot certify
each other by fitting a two-point line exactly.  A final walk outward from the middle lets each
slice take its neighbour's mapping, refined on its own modes, when that fits its histogram to
the neighbour's better.  A phase's *share* never enters, so genuine depth trends stay.  When phase labels are known (``labels=``) the
classes are the reference phases themselves (block medians).

Steps (an operator touching the detector) are detected on the per-slice estimates and the
estimates are smoothed only inside step-free segments, so steps stay steps.  A guard falls back
to the identity (with a warning) when the correction would not tighten the tracked modes.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from scipy import ndimage as ndi

from volrecon.correct._intensity import (
    affine_slice, save_figure,
    bin_mean, block_factor, block_stats, check_mask, check_volume, flat_local_means, histogram_peaks, homogeneous, map_slices,
    mean_shift_1d, noise_model, pixel_noise, plane_mask, tukey_weights,
    usable_planes,
)
from volrecon.errors import InputError, ParameterError

FILE_CSV = "brightness.csv"
FILE_JSON = "brightness.json"


@dataclass(frozen=True)
class BrightnessTable:
    """Per-slice gain and offset; corrected slice ``k`` is ``(I - offset[k]) / gain[k]``.

    Attributes
    ----------
    gain, offset : ndarray (Z,)
        Smoothed (step-preserving) gain and offset (image units); median gain 1.
    raw_gain, raw_offset : ndarray (Z,)
        Per-slice estimates before smoothing (NaN for slices without usable content).
    steps : tuple of int
        Slices at which a sudden step starts.
    flagged : tuple of int
        Slices that could not be estimated (constant, saturated, masked) and were interpolated.
    classes : int
        Grey-level classes (or reference phases) used.
    smooth : int
        Running-median window (slices).
    warnings : tuple of str
        What went wrong but did not stop the estimate.
    """

    gain: np.ndarray
    offset: np.ndarray
    raw_gain: np.ndarray
    raw_offset: np.ndarray
    steps: tuple[int, ...] = ()
    flagged: tuple[int, ...] = ()
    classes: int = 0
    smooth: int = 5
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def __len__(self) -> int:
        return int(self.gain.size)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary."""
        return {
            "slices": len(self), "steps": list(self.steps), "flagged": list(self.flagged),
            "classes": int(self.classes), "smooth_slices": int(self.smooth),
            "gain_range": [float(self.gain.min()), float(self.gain.max())],
            "offset_range": [float(self.offset.min()), float(self.offset.max())],
            "offset_unit": "image grey levels", "warnings": list(self.warnings),
            "model": "corrected = (image - offset) / gain",
        }

    def to_csv(self, path: str | Path) -> Path:
        """Write ``slice, gain, offset, raw_gain, raw_offset, step, flagged``."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        with p.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["slice", "gain", "offset", "raw_gain", "raw_offset", "step", "flagged"])
            for k in range(len(self)):
                w.writerow([k, f"{self.gain[k]:.6f}", f"{self.offset[k]:.4f}", f"{self.raw_gain[k]:.6f}",
                            f"{self.raw_offset[k]:.4f}", int(k in self.steps), int(k in self.flagged)])
        return p

    def save(self, directory: str | Path) -> Path:
        """Write ``brightness.csv`` and ``brightness.json``; return the CSV."""
        d = Path(directory)
        p = self.to_csv(d / FILE_CSV)
        (d / FILE_JSON).write_text(json.dumps(self.to_dict(), indent=2))
        return p

    @classmethod
    def load(cls, directory: str | Path) -> "BrightnessTable":
        """Read what :meth:`save` wrote (a directory or the CSV itself)."""
        d = Path(directory)
        f = d if d.suffix == ".csv" else d / FILE_CSV
        try:
            rows = list(csv.DictReader(f.open()))
            cols = {k: np.array([float(r[k]) for r in rows]) for k in ("gain", "offset", "raw_gain", "raw_offset", "step", "flagged")}
        except (OSError, KeyError, ValueError) as exc:
            raise InputError(f"{f}: not a brightness table ({exc}); re-run the correct stage") from None
        meta = json.loads((f.parent / FILE_JSON).read_text()) if (f.parent / FILE_JSON).is_file() else {}
        return cls(
            gain=cols["gain"], offset=cols["offset"], raw_gain=cols["raw_gain"], raw_offset=cols["raw_offset"],
            steps=tuple(int(k) for k in np.flatnonzero(cols["step"])), flagged=tuple(int(k) for k in np.flatnonzero(cols["flagged"])),
            classes=int(meta.get("classes", 0)), smooth=int(meta.get("smooth_slices", 5)), warnings=tuple(meta.get("warnings", ())),
        )

    def plot(self, path: str | Path, *, truth: np.ndarray | None = None) -> Path:
        """PNG of gain and offset per slice (raw dots, smoothed line, steps marked)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        z = np.arange(len(self))
        fig, ax = plt.subplots(2, 1, figsize=(7, 4.5), sharex=True)
        for a, raw, sm, name in ((ax[0], self.raw_gain, self.gain, "gain"), (ax[1], self.raw_offset, self.offset, "offset (grey)")):
            a.plot(z, raw, ".", color="0.6", label="per slice")
            a.plot(z, sm, "-", color="C0", label="smoothed")
            for s in self.steps:
                a.axvline(s - 0.5, color="C3", lw=0.8, ls="--")
            a.set_ylabel(name)
        if truth is not None:
            ax[0].plot(z, truth[:, 0] / np.median(truth[:, 0]), "k:", label="truth")
        ax[0].legend(fontsize=8)
        ax[1].set_xlabel("slice")
        return save_figure(fig, path)


def _fit_slice(values: np.ndarray, level: np.ndarray, weight: np.ndarray) -> tuple[float, float]:
    """Weighted straight line ``values = g * level + o``."""
    sw = weight.sum()
    if sw <= 0 or np.ptp(level[weight > 0]) <= 0:
        return float("nan"), float("nan")
    ml, mv = np.sum(weight * level) / sw, np.sum(weight * values) / sw
    var = np.sum(weight * (level - ml) ** 2)
    g = np.sum(weight * (level - ml) * (values - mv)) / var
    return float(g), float(mv - g * ml)


FLAT_WINDOW = 3
"""Window (binned pixels) of the flat-area local means the modes are found on."""

NOISE_FLOOR = 0.003
"""Smallest noise assumed, relative to a slice's 1st-99th percentile range (quantisation, noise-free input)."""


@dataclass
class _Modes:
    """What the label-free mode tracking measured (internal)."""

    gain: np.ndarray  # (Z,) NaN for unusable slices
    offset: np.ndarray
    levels: np.ndarray  # (C,) mode levels on the common grey scale
    located: np.ndarray  # (Z, C) mode locations in each slice's own grey (NaN: not found)
    weight: np.ndarray  # (C,) reliability of each mode (inverse variance of its corrected level)


def _usable_slices(sizes: Sequence[int], minimum: int, flagged: list[int], warnings: list[str], why: str) -> list[int]:
    """Slices with at least ``minimum`` samples; the others are flagged (interpolated later) with a warning.

    Raises
    ------
    InputError
        When fewer than two slices are usable.
    """
    usable = [k for k, n in enumerate(sizes) if n >= minimum]
    for k in range(len(sizes)):
        if k not in usable and k not in flagged:
            flagged.append(k)
            warnings.append(f"slice z={k} has {why}: brightness interpolated")
    if len(usable) < 2:
        raise InputError("brightness needs at least 2 usable slices (others are constant, saturated or masked); check the stack and mask")
    return usable


def _binned_samples(image: Any, mask: np.ndarray | None, fb: int) -> tuple[list[np.ndarray], list[int], list[str], float]:
    """Flat-area grey samples of every slice, unusable slices, warnings and the samples' noise (grey).

    Each slice is binned ``fb x fb`` (the gain is global, so binning loses nothing but noise)
    and reduced to the local means of its edge-free windows (:func:`flat_local_means`).
    """
    samples: list[np.ndarray] = []
    flagged: list[int] = []
    warnings: list[str] = []
    noise: list[float] = []
    for z, plane, problem in usable_planes(image):
        if plane is None:
            flagged.append(z)
            warnings.append(f"slice z={z} is {problem}: brightness interpolated from its neighbours")
            samples.append(np.zeros(0))
            continue
        binned = bin_mean(plane, fb)
        ok = np.isfinite(binned)
        pm = plane_mask(mask, z)
        if pm is not None:
            ok &= bin_mean(pm.astype(np.float32), fb) > 1.0 - 0.5 / fb**2
        binned = np.where(ok, binned, np.nan)
        lo, hi = np.nanpercentile(binned, (1, 99))
        sd = max(pixel_noise(binned), NOISE_FLOOR * float(hi - lo), 1e-12)  # noise-free or quantised: a floor
        noise.append(sd / FLAT_WINDOW)
        samples.append(flat_local_means(binned, noise=sd, size=FLAT_WINDOW))
    sigma = float(np.nanmedian(noise)) if noise else 0.0
    return samples, flagged, warnings, sigma


def _fine_histogram(values: np.ndarray, width: float) -> tuple[np.ndarray, np.ndarray]:
    """Bin centres and counts of a histogram with bins ``width`` wide (empty bins dropped)."""
    lo = float(values.min())
    idx = np.floor((values - lo) / width).astype(np.int64)
    counts = np.bincount(idx)
    sel = counts > 0
    return lo + (np.flatnonzero(sel) + 0.5) * width, counts[sel].astype(np.float64)


def _density(values: np.ndarray, width: float) -> tuple[np.ndarray, np.ndarray]:
    """Grid and Gaussian-smoothed (``width``) probability density of ``values`` (integral 1)."""
    step = width / 8
    centres, counts = _fine_histogram(values, step)
    grid = np.arange(centres[0] - 3 * width, centres[-1] + 3 * width, step)
    hist = np.bincount(np.rint((centres - grid[0]) / step).astype(np.int64), weights=counts, minlength=grid.size)[: grid.size]
    dens = ndi.gaussian_filter1d(hist, 8.0, mode="constant")
    return grid, dens / max(float(dens.sum()) * step, 1e-300)


OUTLIER_SHARE = 0.01
"""Share of a slice's samples the agreement lets fall anywhere in the reference's grey range (new phases, noise)."""


def _agreement(values: np.ndarray, density: tuple[np.ndarray, np.ndarray]) -> Callable[[float, float], float]:
    """Log-likelihood of a slice's samples under ``density`` after a mapping ``(g, o)``.

    The specimen changes slowly, so under the right mapping the slice's grey levels fall where
    the reference's do, whatever their shares; a mapping that fits two peaks onto the wrong
    pair of modes puts the rest of the slice where the reference has nothing.  The density is
    carried into the slice's grey scale (divided by ``g``) so that squeezing or stretching the
    slice is not rewarded for itself, and a small uniform share (:data:`OUTLIER_SHARE`) keeps a
    few foreign samples from deciding alone.
    """
    grid, dens = density
    centres, counts = _fine_histogram(values, float(grid[1] - grid[0]))
    floor = OUTLIER_SHARE / float(grid[-1] - grid[0])

    def score(g: float, o: float) -> float:
        p = (1 - OUTLIER_SHARE) * np.interp((centres - o) / g, grid, dens, left=0.0, right=0.0) + floor
        return float(np.dot(np.log(p / g), counts))

    return score


def _line_fit(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """Weighted least squares ``y = g * x + o``; offset only (gain 1) when ``x`` has one value."""
    sel = (w > 0) & np.isfinite(y)
    if not sel.any():
        return float("nan"), float("nan")
    x, y, w = x[sel], y[sel], w[sel]
    if np.unique(x).size < 2:
        return float("nan"), float("nan")
    return _fit_slice(y, x, w)


def _robust_line_fit(x: np.ndarray, y: np.ndarray, w: np.ndarray, scale: float, *, passes: int = 3) -> tuple[float, float]:
    """:func:`_line_fit` with Tukey reweighting: points off the line by more than ``scale`` drop out.

    A mode that climbed to a neighbour's level in one slice is many ``scale`` off; the located
    modes are precise to a small fraction of it.
    """
    gk, ok = _line_fit(x, y, w)
    for _ in range(passes):
        if not (np.isfinite(gk) and gk > 0):
            break
        u = np.nan_to_num((y - (gk * x + ok)) / scale, nan=np.inf)
        g2, o2 = _line_fit(x, y, w * np.where(np.abs(u) < 1, (1 - u**2) ** 2, 0.0))
        if not (np.isfinite(g2) and g2 > 0):
            break
        gk, ok = g2, o2
    return gk, ok


def _match_modes(
    peaks: np.ndarray, levels: np.ndarray, tol: float, *, gain_range: tuple[float, float] = (0.6, 1.7),
    agreement: Callable[[float, float], float] | None = None, by_hits: bool = True,
) -> tuple[float, float] | None:
    """Gain/offset mapping a slice's own histogram peaks onto the stack's mode levels.

    Every pairing of two slice peaks with two levels is a candidate ``peaks = g * levels + o``.
    With ``by_hits`` the candidate under which most peaks land within ``tol`` (in level units)
    of a level wins.  Two peaks always fit two levels exactly, so a slice showing only two of
    the modes has several equally good pairings (its two peaks on modes 1-2 or on modes 2-3);
    ``agreement(g, o)`` — how well the *whole* slice then matches a reference — decides among
    those (without it: the smallest residual).  ``by_hits=False`` ranks every candidate by
    ``agreement`` alone: against a neighbouring slice, which shows nearly the same specimen,
    that is sharper evidence than hits on the stack's modes, whose levels blend phases whose
    shares change with depth.
    """
    cands: list[tuple[int, float, float, float]] = []
    for i in range(peaks.size):
        for j in range(i + 1, peaks.size):
            for a in range(levels.size):
                for b in range(a + 1, levels.size):
                    g = (peaks[j] - peaks[i]) / (levels[b] - levels[a])
                    if not gain_range[0] <= g <= gain_range[1]:
                        continue
                    o = peaks[i] - g * levels[a]
                    d = np.abs(((peaks - o) / g)[:, None] - levels[None, :]).min(axis=1)
                    hit = d < tol
                    cands.append((int(hit.sum()), -float(np.sum(d[hit] ** 2)), float(g), float(o)))
    if not cands:
        return None
    if by_hits:
        most = max(c[0] for c in cands)
        cands = [c for c in cands if c[0] == most]
    if agreement is None:
        if not by_hits:
            raise ValueError("by_hits=False needs an agreement score")
        best = max(cands, key=lambda c: c[1])
    else:
        best = max(cands, key=lambda c: agreement(c[2], c[3]))
    return best[2], best[3]


def _walk(usable: Sequence[int]) -> tuple[int, list[tuple[int, int]]]:
    """The middle usable slice and ``(slice, neighbour)`` pairs walking outward from it to both ends."""
    mid = len(usable) // 2
    up = [(usable[i], usable[i - 1]) for i in range(mid + 1, len(usable))]
    down = [(usable[i], usable[i + 1]) for i in range(mid - 1, -1, -1)]
    return usable[mid], up + down


def _track_modes(samples: Sequence[np.ndarray], usable: Sequence[int], sigma: float, *, classes: int, iters: int) -> _Modes:
    """Per-slice gain/offset from grey-level modes tracked over the stack.

    The detector's gain/offset acts on the whole slice while the specimen changes slowly, so the
    grey level of a phase (a mode of the binned histogram) moves from slice to slice only by the
    slice's gain/offset, whatever its share of the slice.  Modes are found on the pooled
    histogram of the corrected stack, located in each slice by mean shift from where the current
    estimate predicts them, and each slice's gain/offset is the weighted line through its
    located modes; modes whose corrected level wanders over the stack (a void whose grey
    changes with its size) get little weight.
    """
    nz = len(samples)
    g, o = np.full(nz, np.nan), np.full(nz, np.nan)
    # start: match the 10th/90th percentiles to the median slice's
    q = np.array([np.quantile(samples[k], (0.1, 0.9)) for k in usable])
    ref = np.median(q, axis=0)
    for k, (a, b) in zip(usable, q):
        g[k] = (b - a) / (ref[1] - ref[0]) if ref[1] > ref[0] and b > a else 1.0
        o[k] = a - g[k] * ref[0]
    h = max(sigma, 1e-6 * max(abs(float(ref[1])), 1.0))
    pooled = np.concatenate([(samples[k] - o[k]) / g[k] for k in usable])
    levels = histogram_peaks(pooled, sigma=h, max_peaks=classes)
    # the agreement only has to tell which modes a slice's mass sits on: a quarter of the
    # closest modes' gap resolves that and does not hinge on noise-free (quantised) samples
    gaps = np.diff(levels)
    width = max(2.0 * h, 0.25 * float(gaps.min())) if gaps.size else 2.0 * h
    # lock every slice onto the modes by its own peaks: the middle slice against the whole
    # stack, then outward, each slice against its locked neighbour (a step is one of the
    # candidates; a mode that blends phases whose shares change cannot flip the lock)
    first, walk = _walk(usable)
    for k, j in [(first, None), *walk]:
        peaks = histogram_peaks(samples[k], sigma=h * g[k], max_peaks=classes)
        ref = pooled if j is None else (samples[j] - o[j]) / g[j]
        match = _match_modes(peaks, levels, 2.0 * h, agreement=_agreement(samples[k], _density(ref, width)), by_hits=j is None)
        if match is not None:
            g[k], o[k] = match
    weight = np.ones(levels.size)
    located = np.full((nz, levels.size), np.nan)
    hists = {k: _fine_histogram(samples[k], h / 8) for k in usable}
    for it in range(int(iters)):
        if levels.size == 0:
            break
        located = np.full((nz, levels.size), np.nan)
        for k in usable:
            # wider first: the start may be off.  Starting a locked slice narrow as well (it can climb to
            # a neighbouring sub-mode from a wide start) lost unseen stacks: 24x192 diglyme seed 2's
            # residual 1.0 -> 13.8 grey (benchmarks/slice_residual.py); the re-lock below mends the climb
            located[k] = _locate(hists[k], levels, g[k], o[k], (2.0 if it == 0 else 1.0) * h * g[k])
        for k in usable:
            g[k], o[k] = _fit_located(levels, located[k], weight, g[k], o[k], h)
        gm, om = np.nanmedian(g), np.nanmedian(o)
        g, o = g / gm, (o - om) / gm
        corrected = (located - o[:, None]) / g[:, None]
        seen = np.isfinite(corrected).sum(axis=0)
        levels = np.array([np.nanmedian(c) if n else np.nan for c, n in zip(corrected.T, seen)])
        # reliability: how steady each mode's level is over the stack
        weight = _mode_weights(levels, located, usable, h)
        # merge modes that climbed to the same place; drop lost ones
        keep = np.isfinite(levels)
        order = np.argsort(np.where(keep, levels, np.inf))
        for a, b in zip(order[:-1], order[1:]):
            if keep[a] and keep[b] and abs(levels[b] - levels[a]) < h:
                keep[a if weight[a] < weight[b] else b] = False
        levels, weight, located = levels[keep], weight[keep], located[:, keep]
    modes = _Modes(gain=g, offset=o, levels=levels, located=located, weight=weight)
    if levels.size:
        _relock(samples, usable, hists, modes, h, width, int(iters))
    return modes


def _consensus_line(levels: np.ndarray, row: np.ndarray, tol: float) -> tuple[float, float]:
    """The line ``row = g * levels + o`` most of a slice's located modes agree on.

    Every pair of located modes fixes a line; the one that puts most of the other modes within
    ``tol`` (level units) of their levels wins, and the line is refitted (equal weights) through
    those modes.  A mode that climbed to another sub-mode is then off a line the steady modes
    share, rather than tilting it and passing its error on to them.  Where no third mode agrees
    with any pair the modes cannot outvote one another and all of them count.

    Parameters
    ----------
    levels : ndarray (C,)
        The modes' levels on the common grey scale (NaN: lost).
    row : ndarray (C,)
        Where the slice's modes lie in its own grey (NaN: not found).
    tol : float
        Largest distance (level units) of a mode that agrees with a line.

    Returns
    -------
    (float, float)
        Gain and offset (NaN where fewer than two modes are located).
    """
    sel = np.flatnonzero(np.isfinite(row) & np.isfinite(levels))
    best: tuple[tuple[int, float], np.ndarray] | None = None
    for n, a in enumerate(sel):
        for b in sel[n + 1 :]:
            if levels[b] == levels[a]:
                continue
            g = (row[b] - row[a]) / (levels[b] - levels[a])
            if not g > 0:
                continue
            d = np.abs((row[sel] - row[a]) / g + levels[a] - levels[sel])
            agree = d < tol
            key = (int(agree.sum()), -float(np.sum(d[agree] ** 2)))
            if best is None or key > best[0]:
                best = (key, sel[agree])
    if best is None:
        return float("nan"), float("nan")
    inliers = best[1] if best[1].size >= 3 else sel
    return _fit_slice(row[inliers], levels[inliers], np.ones(inliers.size))


CONSENSUS_TOL = 0.5
"""Tolerance of :func:`_consensus_line` in units of the samples' noise ``h``: a mean-shift kernel ``h`` wide
cannot tell sub-modes closer than about ``h`` apart, so a mode that climbed did so by ``h`` or more, while
a located mode is precise to a small fraction of ``h``."""


def _mode_weights(levels: np.ndarray, located: np.ndarray, usable: Sequence[int], h: float) -> np.ndarray:
    """Reliability of each mode: inverse variance of its level over the stack, judged against the other modes.

    Each slice's gain/offset is refitted through the modes that agree on one line
    (:func:`_consensus_line`), and a mode's variance is the spread and the trend over slices of
    its level under those fits.  Judged under the slices' weighted fits instead, the two modes
    that carry the weight fit them exactly: they show no spread by construction, keep the weight
    whatever they do (a level whose sub-modes' shares change with depth climbs from one to the
    other), and every other mode looks as wrong as that line is, so it never wins its weight back.

    Parameters
    ----------
    levels : ndarray (C,)
        The modes' levels on the common grey scale (NaN: lost).
    located : ndarray (Z, C)
        Where each slice's modes lie in its own grey (NaN: not found).
    usable : sequence of int
        Slices with content; a mode seen in fewer than half of them gets no weight.
    h : float
        Noise of the samples (grey on the common scale): the consensus tolerance's unit and the
        variance floor's.

    Returns
    -------
    ndarray (C,)
        Inverse variances (0: unreliable or rarely seen).
    """
    nz, nc = located.shape
    framed = np.full((nz, nc), np.nan)
    for k in usable:
        gk, ok = _consensus_line(levels, located[k], CONSENSUS_TOL * h)
        if np.isfinite(gk) and gk > 0:
            framed[k] = (located[k] - ok) / gk
    var = np.full(nc, np.inf)
    zs = np.arange(nz)
    judged = np.isfinite(framed).any()
    for c in range(nc):
        if not judged:
            # no slice had a line to judge against (a single located mode): every mode seen counts alike
            if np.isfinite(located[:, c]).sum() >= max(3, len(usable) // 2):
                var[c] = (0.05 * h) ** 2
            continue
        sel = np.isfinite(framed[:, c])
        if sel.sum() >= max(3, len(usable) // 2):
            r = framed[sel, c] - np.median(framed[sel, c])
            mad = 1.4826 * np.median(np.abs(r - np.median(r)))
            trend = np.polyfit(zs[sel], r, 1)[0] * (nz - 1)
            var[c] = mad**2 + (trend / 2) ** 2 + (0.05 * h) ** 2
    return np.where(np.isfinite(var), 1.0 / var, 0.0)


def _locate(hist: tuple[np.ndarray, np.ndarray], levels: np.ndarray, g: float, o: float, bandwidth: float) -> np.ndarray:
    """Where the modes ``levels`` lie in one slice (its own grey) by mean shift from ``g * levels + o``; NaN: not found."""
    start = g * levels + o
    m, mass = mean_shift_1d(hist[0], start, bandwidth, weights=hist[1])
    return np.where((np.abs(m - start) < 2.0 * bandwidth) & (mass > 0.005), m, np.nan)


MIN_WEIGHT_SHARE = 0.02
"""A mode weighted under this share of the steadiest mode's weight counts as unweighted: through two
located modes a line passes exactly whatever their weights, so a near-zero weight must not make a
wandering mode one of the two."""


def _weighted(weight: np.ndarray) -> np.ndarray:
    """``weight`` with the modes under :data:`MIN_WEIGHT_SHARE` of the largest set to 0."""
    top = float(weight.max()) if weight.size else 0.0
    return np.where(weight >= MIN_WEIGHT_SHARE * top, weight, 0.0)


def _fit_located(levels: np.ndarray, located: np.ndarray, weight: np.ndarray, g: float, o: float, h: float) -> tuple[float, float]:
    """One slice's gain/offset through its located modes; with fewer than two modes an offset only (gain ``g`` kept)."""
    weight = _weighted(weight)
    gk, ok = _robust_line_fit(levels, located, weight, 2.0 * h * g)
    if np.isfinite(gk) and gk > 0:
        return gk, ok
    sel = np.isfinite(located) & (weight > 0)
    if sel.any():
        return g, float(np.average(located[sel] - g * levels[sel], weights=weight[sel]))
    return g, o


def _relock(
    samples: Sequence[np.ndarray], usable: Sequence[int], hists: dict[int, tuple[np.ndarray, np.ndarray]], modes: _Modes,
    h: float, width: float, iters: int,
) -> None:
    """Undo a slice's hop to a neighbouring sub-mode, in place on ``modes`` (gain, offset, located).

    The mode tracking keeps a slice on whichever density peak its modes sit on; when a phase is
    split in two (residual shading across the field, a blend whose shares change) a slice can end
    on the wrong half and its line follows it exactly, the more easily the fewer modes carry the
    weight.  The gain/offset drift slowly, so the locked neighbour's mapping, refined on the
    slice's own modes, is a second candidate; walking out from the middle slice, each slice keeps
    whichever candidate puts its whole histogram where the neighbour's lies (:func:`_agreement`,
    the lock's criterion; ``width``: its density's).  A genuine step keeps the slice's own
    mapping: the neighbour's one refined across a step fits the histogram worse.  The candidate
    counts only where at least two weighted modes are located under it: with one, its gain is the
    neighbour's, not refined, and the agreement, whose density is only as fine as telling modes
    apart needs, cannot judge a gain a few per cent off (its 1/g factor then decides: a stack whose
    gain rises 3 % a slice kept the middle slice's gain on one side).
    """
    g, o, levels, weight = modes.gain, modes.offset, modes.levels, modes.weight
    for k, j in _walk(usable)[1]:
        alt, row = (g[j], o[j]), modes.located[k]
        for _ in range(iters):  # refined as far as the tracking refined the slice's own mapping
            row = _locate(hists[k], levels, alt[0], alt[1], h * alt[0])
            alt = _fit_located(levels, row, weight, alt[0], alt[1], h)
        if int((np.isfinite(row) & (_weighted(weight) > 0)).sum()) < 2:
            continue
        agree = _agreement(samples[k], _density((samples[j] - o[j]) / g[j], width))
        if np.isfinite(alt).all() and alt[0] > 0 and agree(*alt) > agree(g[k], o[k]):
            (g[k], o[k]), modes.located[k] = alt, row


def _mode_spread(located: np.ndarray, gain: np.ndarray, offset: np.ndarray) -> float:
    """Median over modes of the standard deviation over slices of their level after ``(I - offset) / gain``.

    Every mode seen in at least half of the slices counts alike (the fit's own weights would
    favour the correction it made).
    """
    lev = (located - offset[:, None]) / gain[:, None]
    seen = np.isfinite(lev).sum(axis=0)
    sd = np.array([np.nanstd(c) for c, n in zip(lev.T, seen) if n >= max(2, lev.shape[0] // 2)])
    return float(np.median(sd)) if sd.size else float("nan")


def detect_steps(series: np.ndarray, *, window: int = 4, threshold: float = 6.0, min_relative: float = 0.01) -> list[int]:
    """Slices where ``series`` jumps: difference of medians before/after beyond noise.

    Parameters
    ----------
    series : ndarray (Z,)
        Per-slice values (no NaN).
    window : int
        Slices on each side compared.
    threshold : float
        Jump size in robust noise units (MAD of first differences).
    min_relative : float
        Smallest jump relative to the series' median magnitude.
    """
    n = series.size
    if n < 2 * 2 + 1:
        return []
    diffs = np.diff(series)
    noise = 1.4826 * np.median(np.abs(diffs - np.median(diffs))) + 1e-12
    floor = min_relative * max(abs(float(np.median(series))), 1e-12)
    score = np.zeros(n)
    for k in range(1, n):
        before = series[max(0, k - window) : k]
        after = series[k : k + window]
        # a lasting change (medians differ) located where the one-slice jump is largest
        lasting = abs(np.median(after) - np.median(before))
        score[k] = min(lasting, abs(series[k] - series[k - 1])) if lasting > max(threshold * noise, floor) else 0.0
    cand = [k for k in range(1, n) if score[k] > 0 and score[k] >= score[max(0, k - window) : k + window + 1].max()]
    return cand


def _smooth_segments(series: np.ndarray, steps: Sequence[int], size: int) -> np.ndarray:
    """Running median of ``size`` inside each segment between steps."""
    out = series.copy()
    bounds = [0, *sorted(steps), series.size]
    for a, b in zip(bounds[:-1], bounds[1:]):
        if b - a >= 2 and size > 1:
            out[a:b] = ndi.median_filter(series[a:b], size=min(size, b - a), mode="nearest")
    return out


def estimate_brightness(
    image: Any,
    *,
    mask: Any = None,
    labels: Any = None,
    reference_phases: Sequence[int] | None = None,
    classes: int = 10,
    smooth: int = 1,
    iters: int = 10,
    step_threshold: float = 6.0,
    binning: int | None = None,
    guard: bool = True,
) -> BrightnessTable:
    """Estimate per-slice gain and offset of a stack.

    Parameters
    ----------
    image : array (Z, Y, X)
        numpy or dask stack (shading already removed for best results).
    mask : ndarray of bool (Y, X) or (Z, Y, X), optional
        True where pixels are specimen to use (exclude frame, data bar).
    labels : array (Z, Y, X) of int, optional
        Phase labels: when given, the classes are these phases (``reference_phases`` only).
    reference_phases : sequence of int, optional
        Label values of phases that do not change with depth (e.g. collector, separator,
        active); default every non-zero label.
    classes : int
        Most grey-level modes tracked when no labels are given.
    smooth : int
        Running-median window in slices inside step-free segments (1: no smoothing — the
        per-slice estimates are precise to a few 0.1 %, and a window removes genuine fast wiggles).
    iters : int
        Mode-location/fit iterations.
    step_threshold : float
        Step detection threshold in robust noise units.
    binning : int, optional
        Pixels per side averaged into one first.  Without labels the default leaves about 64
        binned pixels on the short side (at most 16); with labels, as many as leave blocks of
        at least 8x8 binned pixels.  The gain is global, so binning loses only noise.
    guard : bool
        Without labels: fall back to the identity (with a warning) when the correction would
        not reduce the spread over slices of the tracked grey-level modes.

    Returns
    -------
    BrightnessTable

    Raises
    ------
    InputError
        Fewer than 2 usable slices.
    ParameterError
        Bad mask, labels shape or window.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> base = rng.choice([40.0, 120.0, 200.0], size=(1, 64, 64)).repeat(8, 0)
    >>> gain = np.linspace(0.9, 1.1, 8)[:, None, None]
    >>> table = estimate_brightness(base * gain, smooth=1)
    >>> bool(np.allclose(table.gain / table.gain[0], gain.ravel() / gain[0, 0, 0], atol=1e-3))
    True
    """
    nz, ny, nx = check_volume(image)
    if int(smooth) < 1:
        raise ParameterError(f"smooth={smooth}: give a window of at least 1 slice")
    m = check_mask(mask, (nz, ny, nx))
    if labels is None:
        fb = min(16, max(1, min(ny, nx) // 64)) if binning is None else int(binning)
        if fb < 1 or fb > min(ny, nx) // 4:
            raise ParameterError(f"brightness binning={binning}: give 1..{min(ny, nx) // 4} for {ny}x{nx} px slices")
        samples, flagged, warnings, sigma = _binned_samples(image, m, fb)
        usable = _usable_slices([x.size for x in samples], 16, flagged, warnings, "too few usable pixels")
        modes = _track_modes(samples, usable, sigma, classes=int(classes), iters=int(iters))
        raw_g, raw_o, n_cls = modes.gain, modes.offset, int(modes.levels.size)
        if n_cls < 2:
            warnings.append(f"only {n_cls} grey-level mode(s) found: brightness fitted as an offset only")
        mid = float(np.median(np.concatenate([samples[k] for k in usable])))
    else:
        raw_g, raw_o, flagged, warnings, n_cls, mid = _fit_labelled(
            image, m, labels, reference_phases, binning=binning, iters=iters)
        modes = None
    zs = np.arange(nz)
    good = np.isfinite(raw_g) & np.isfinite(raw_o)
    g = np.interp(zs, zs[good], raw_g[good])
    o = np.interp(zs, zs[good], raw_o[good])
    effect = g * mid + o  # where mid grey moves: steps in gain or offset both show here
    # a lasting jump of at least 3 % of mid grey: drift wobbles of a few per cent are not steps
    steps = detect_steps(effect, window=max(2, (int(smooth) + 1) // 2), threshold=step_threshold, min_relative=0.03)
    gs = _smooth_segments(g, steps, int(smooth))
    os_ = _smooth_segments(o, steps, int(smooth))
    if modes is not None and guard:
        before = _mode_spread(modes.located, np.ones(nz), np.zeros(nz))
        after = _mode_spread(modes.located, gs, os_)
        if not after < before:
            warnings.append(
                f"brightness correction would not tighten the grey-level modes (spread {before:.3g} -> {after:.3g} grey):"
                " identity used")
            gs, os_, steps = np.ones(nz), np.zeros(nz), []
    return BrightnessTable(
        gain=gs, offset=os_, raw_gain=raw_g, raw_offset=raw_o, steps=tuple(steps), flagged=tuple(sorted(flagged)),
        classes=int(n_cls), smooth=int(smooth), warnings=tuple(warnings),
    )


def _fit_labelled(
    image: Any, m: np.ndarray | None, labels: Any, reference_phases: Sequence[int] | None, *, binning: int | None, iters: int,
) -> tuple[np.ndarray, np.ndarray, list[int], list[str], int, float]:
    """Per-slice gain/offset against the grey level of known reference phases (block medians)."""
    nz, ny, nx = image.shape
    lab = np.asarray(labels)
    if lab.shape != (nz, ny, nx):
        raise ParameterError(f"labels have shape {lab.shape}; give the stack's shape {(nz, ny, nx)}")
    f = block_factor((ny, nx))
    fb = max(1, f // 8) if binning is None else int(binning)
    if fb < 1 or f // fb < 1:
        raise ParameterError(f"brightness binning={binning}: give 1..{f} for {ny}x{nx} px slices")
    fs = f // fb  # block size in binned pixels
    ref = sorted(set(int(v) for v in (reference_phases or np.unique(lab)) if int(v) != 0))
    warnings: list[str] = []
    per_slice: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    flagged: list[int] = []
    for z, plane, problem in usable_planes(image):
        if plane is None:
            flagged.append(z)
            warnings.append(f"slice z={z} is {problem}: brightness interpolated from its neighbours")
            per_slice.append((np.zeros(0), np.zeros(0), np.zeros(0, dtype=int)))
            continue
        pm = plane_mask(m, z)
        binned_mask = None if pm is None else bin_mean(pm.astype(np.float32), fb) > 1.0 - 0.5 / fb**2
        mean, var, valid = block_stats(bin_mean(plane, fb), fs, binned_mask)
        lm, lv, _ = block_stats(lab[z].astype(np.float32), fs * fb)
        valid &= lv == 0
        cls = np.rint(lm).astype(int)
        valid &= np.isin(cls, ref)
        per_slice.append((mean[valid], var[valid], cls[valid]))
    usable = _usable_slices([p[0].size for p in per_slice], 8, flagged, warnings, "too few homogeneous areas")
    allm = np.concatenate([per_slice[k][0] for k in usable])
    allv = np.concatenate([per_slice[k][1] for k in usable])
    model = noise_model(allm, allv)
    for k in usable:
        mu, va, cl = per_slice[k]
        keep = homogeneous(mu, va, np.ones(mu.size, bool), model=model)
        per_slice[k] = (mu[keep], va[keep], cl[keep])
    # initial gain/offset: match the 10th/90th percentiles to the median slice's
    q = np.array([np.quantile(per_slice[k][0], (0.1, 0.9)) if per_slice[k][0].size else (np.nan, np.nan) for k in range(nz)])
    ref_q = np.nanmedian(q, axis=0)
    g = np.full(nz, np.nan)
    o = np.full(nz, np.nan)
    for k in usable:
        span = q[k, 1] - q[k, 0]
        g[k] = span / (ref_q[1] - ref_q[0]) if ref_q[1] > ref_q[0] and span > 0 else 1.0
        o[k] = q[k, 0] - g[k] * ref_q[0]
    weights = {k: np.ones(per_slice[k][0].size) for k in usable}
    codes = np.concatenate([per_slice[k][2] for k in usable])
    uniq, cls_all = np.unique(codes, return_inverse=True)
    for _ in range(int(iters)):
        levels_all = np.concatenate([(per_slice[k][0] - o[k]) / g[k] for k in usable])
        w_all = np.concatenate([weights[k] for k in usable])
        centres = np.array([np.average(levels_all[cls_all == c], weights=w_all[cls_all == c] + 1e-12) for c in range(uniq.size)])
        start = 0
        for k in usable:
            n = per_slice[k][0].size
            lev = centres[cls_all[start : start + n]]
            start += n
            gk, ok = _fit_slice(per_slice[k][0], lev, weights[k])
            if np.isfinite(gk) and gk > 0:
                g[k], o[k] = gk, ok
            weights[k] = tukey_weights(per_slice[k][0] - (g[k] * lev + o[k]))
        # re-anchor the common scale to the median slice so it cannot wander
        gm, om = np.nanmedian(g), np.nanmedian(o)
        g, o = g / gm, (o - om) / gm
    mid = float(np.median(np.concatenate([per_slice[k][0] for k in usable])))
    return g, o, flagged, warnings, int(uniq.size), mid


def apply_brightness(image: Any, table: BrightnessTable) -> Any:
    """Remove per-slice gain and offset, slice by slice (lazy for dask).

    Returns the same kind, shape and dtype; integer output is rounded and clipped, never NaN.
    """
    nz = check_volume(image)[0]
    if len(table) != nz:
        raise ParameterError(f"the brightness table has {len(table)} rows, the stack {nz} slices; use the matching table")
    dtype = np.dtype(image.dtype)
    scale, add = brightness_terms(table)

    def one(plane: np.ndarray, z: int) -> np.ndarray:
        return affine_slice(plane, dtype, gain=scale[z], offset=add[z])

    return map_slices(image, one)


def brightness_terms(table: BrightnessTable) -> tuple[np.ndarray, np.ndarray]:
    """The correction of slice ``k`` as ``corrected = image * scale[k] + add[k]`` (float32, (Z,)).

    ``scale = 1 / gain`` and ``add = -offset / gain``; a non-finite or non-positive gain counts
    as 1 and a non-finite offset as 0, so the output is never NaN.
    """
    gain = np.where(np.isfinite(table.gain) & (table.gain > 0), table.gain, 1.0)
    offset = np.nan_to_num(np.asarray(table.offset, dtype=np.float64))
    return (1.0 / gain).astype(np.float32), (-offset / gain).astype(np.float32)
