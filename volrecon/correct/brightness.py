"""Brightness/contrast drift: per-slice gain and offset against stable grey-level classes.

Slice ``k`` is modelled as ``I_k = gain_k * J + offset_k`` where ``J`` is the stack's common
grey scale.  Homogeneous blocks of every slice are grouped into grey-level classes (1D k-means
on the corrected levels, re-assigned each iteration); a slice's gain and offset are fitted so
that *its* blocks of each class sit at that class's level.  A class whose share changes with
depth (a cathode that loses electrolyte and gains voids) does not move the fit — each pixel is
compared with its own class, never with a slice-wide statistic — so genuine depth trends stay.
When phase labels are known (``labels=``) the classes are the reference phases themselves.

The per-slice estimates are smoothed by a running median inside segments separated by detected
steps (an operator touching the detector), so steps stay steps.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from scipy import ndimage as ndi

from volrecon.correct._intensity import (
    bin_mean, block_factor, block_stats, check_mask, check_volume, homogeneous, kmeans_1d, map_slices, noise_model,
    plane_mask, plane_problems, read_slices, restore_dtype, tukey_weights,
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
        fig.tight_layout()
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(p, dpi=110)
        plt.close(fig)
        return p


def _fit_slice(values: np.ndarray, level: np.ndarray, weight: np.ndarray) -> tuple[float, float]:
    """Weighted straight line ``values = g * level + o``."""
    sw = weight.sum()
    if sw <= 0 or np.ptp(level[weight > 0]) <= 0:
        return float("nan"), float("nan")
    ml, mv = np.sum(weight * level) / sw, np.sum(weight * values) / sw
    var = np.sum(weight * (level - ml) ** 2)
    g = np.sum(weight * (level - ml) * (values - mv)) / var
    return float(g), float(mv - g * ml)


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
        Grey-level classes when no labels are given.
    smooth : int
        Running-median window in slices inside step-free segments (1: no smoothing — the
        per-slice estimates are precise to a few 0.1 %, and a window removes genuine fast wiggles).
    iters : int
        Class/fit iterations.
    step_threshold : float
        Step detection threshold in robust noise units.
    binning : int, optional
        Pixels per side averaged into one before the block statistics (default: as many as
        leave blocks of at least 8x8 binned pixels; 1 on small slices).  Binning keeps the
        precision of the block levels (the mean is linear) and divides the work by
        ``binning**2``.

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
    lab = None
    if labels is not None:
        lab = np.asarray(labels)
        if lab.shape != (nz, ny, nx):
            raise ParameterError(f"labels have shape {lab.shape}; give the stack's shape {(nz, ny, nx)}")
    f = block_factor((ny, nx))
    fb = max(1, f // 8) if binning is None else int(binning)
    if fb < 1 or f // fb < 1:
        raise ParameterError(f"brightness binning={binning}: give 1..{f} for {ny}x{nx} px slices")
    fs = f // fb  # block size in binned pixels
    warnings: list[str] = []
    per_slice: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    flagged: list[int] = []
    for z0 in range(0, nz, 4):
        chunk = read_slices(image, range(z0, min(nz, z0 + 4)))
        for i, plane in enumerate(chunk):
            z = z0 + i
            problem = plane_problems(plane, image.dtype)
            if problem:
                flagged.append(z)
                warnings.append(f"slice z={z} is {problem}: brightness interpolated from its neighbours")
                per_slice.append((np.zeros(0), np.zeros(0), np.zeros(0, dtype=int)))
                continue
            pm = plane_mask(m, z)
            binned_mask = None if pm is None else bin_mean(pm.astype(np.float32), fb) > 1.0 - 0.5 / fb**2
            mean, var, valid = block_stats(bin_mean(plane, fb), fs, binned_mask)
            if lab is not None:
                lm, lv, _ = block_stats(lab[z].astype(np.float32), fs * fb)
                valid &= lv == 0
                cls = np.rint(lm).astype(int)
                ref = set(int(v) for v in (reference_phases or np.unique(lab)) if int(v) != 0)
                valid &= np.isin(cls, list(ref))
            else:
                cls = np.zeros(mean.shape, dtype=int)
            per_slice.append((mean[valid], var[valid], cls[valid]))
    usable = [k for k in range(nz) if per_slice[k][0].size >= 8]
    for k in range(nz):
        if k not in usable and k not in flagged:
            flagged.append(k)
            warnings.append(f"slice z={k} has too few homogeneous areas: brightness interpolated")
    if len(usable) < 2:
        raise InputError("brightness needs at least 2 usable slices (others are constant, saturated or masked); check the stack and mask")
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
    centres = None
    weights = {k: np.ones(per_slice[k][0].size) for k in usable}
    n_cls = 0
    for _ in range(int(iters)):
        levels_all = np.concatenate([(per_slice[k][0] - o[k]) / g[k] for k in usable])
        if lab is None:
            centres, cls_all = kmeans_1d(levels_all, int(classes), centres=centres)
        else:
            codes = np.concatenate([per_slice[k][2] for k in usable])
            uniq, cls_all = np.unique(codes, return_inverse=True)
            w_all = np.concatenate([weights[k] for k in usable])
            centres = np.array([np.average(levels_all[cls_all == c], weights=w_all[cls_all == c] + 1e-12) for c in range(uniq.size)])
        n_cls = centres.size
        start = 0
        for k in usable:
            n = per_slice[k][0].size
            cls = cls_all[start : start + n]
            start += n
            lev = centres[cls]
            gk, ok = _fit_slice(per_slice[k][0], lev, weights[k])
            if np.isfinite(gk) and gk > 0:
                g[k], o[k] = gk, ok
            weights[k] = tukey_weights(per_slice[k][0] - (g[k] * lev + o[k]))
        # re-anchor the common scale to the median slice so it cannot wander
        gm, om = np.nanmedian(g), np.nanmedian(o)
        g, o = g / gm, (o - om) / gm
        if lab is not None or centres is not None:
            centres = (centres - om) / gm if lab is None else centres
    raw_g, raw_o = g.copy(), o.copy()
    zs = np.arange(nz)
    good = np.isfinite(raw_g)
    g = np.interp(zs, zs[good], raw_g[good])
    o = np.interp(zs, zs[good], raw_o[good])
    mid = float(np.median(np.concatenate([per_slice[k][0] for k in usable])))
    effect = g * mid + o  # where mid grey moves: steps in gain or offset both show here
    steps = detect_steps(effect, window=max(2, (int(smooth) + 1) // 2), threshold=step_threshold)
    gs = _smooth_segments(g, steps, int(smooth))
    os_ = _smooth_segments(o, steps, int(smooth))
    return BrightnessTable(
        gain=gs, offset=os_, raw_gain=raw_g, raw_offset=raw_o, steps=tuple(steps), flagged=tuple(sorted(flagged)),
        classes=int(n_cls), smooth=int(smooth), warnings=tuple(warnings),
    )


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
        out = plane.astype(np.float32)
        out *= scale[z]
        out += add[z]
        return restore_dtype(out, dtype, overwrite=True)

    return map_slices(image, one)


def brightness_terms(table: BrightnessTable) -> tuple[np.ndarray, np.ndarray]:
    """The correction of slice ``k`` as ``corrected = image * scale[k] + add[k]`` (float32, (Z,)).

    ``scale = 1 / gain`` and ``add = -offset / gain``; a non-finite or non-positive gain counts
    as 1 and a non-finite offset as 0, so the output is never NaN.
    """
    gain = np.where(np.isfinite(table.gain) & (table.gain > 0), table.gain, 1.0)
    offset = np.nan_to_num(np.asarray(table.offset, dtype=np.float64))
    return (1.0 / gain).astype(np.float32), (-offset / gain).astype(np.float32)
