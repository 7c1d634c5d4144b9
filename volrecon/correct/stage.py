"""The ``correct`` stage: estimate every enabled correction, then apply them lazily in one chain.

Estimation follows ``steps``; application follows the physics of the acquisition, inverted:
shading and brightness live in the detector frame, so they are removed from the raw slices;
then drift is undone; curtains (milled into the face) are removed in the specimen frame; the
optional denoising comes last.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import dask.array as da
import numpy as np

from volrecon.correct._intensity import affine_slice, check_mask, check_volume, map_slices, restore_dtype
from volrecon.correct.brightness import BrightnessTable, brightness_terms, estimate_brightness
from volrecon.correct.curtains import CurtainSettings, apply_curtains, estimate_curtains
from volrecon.correct.denoise import denoise as _denoise
from volrecon.correct.shading import ShadingField, estimate_shading, shading_terms
from volrecon.errors import ParameterError, VolreconError
from volrecon.segment.frame import FrameMask, find_frame

STEPS = ("drift", "shading", "brightness", "curtains")
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class CorrectionResult:
    """What the ``correct`` stage estimated, and the lazily corrected image.

    Attributes
    ----------
    image : dask.array.Array
        Corrected stack (lazy), dtype of the input.
    steps : tuple of str
        Corrections applied, in estimation order.
    drift, shading, brightness, curtains : estimate or None
        The estimates (``DriftTable``, :class:`ShadingField`, :class:`BrightnessTable`,
        :class:`CurtainSettings`).
    denoise : dict or None
        Denoising method and options.
    voxel_size_nm : (float, float, float)
        Voxel size of the corrected image.
    warnings : list of str
        Problems that did not stop the stage (record them in ``run.toml``).
    """

    image: Any
    steps: tuple[str, ...]
    drift: Any = None
    shading: ShadingField | None = None
    brightness: BrightnessTable | None = None
    curtains: CurtainSettings | None = None
    denoise: dict[str, Any] | None = None
    voxel_size_nm: tuple[float, float, float] = (1.0, 1.0, 1.0)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON/TOML-safe summary of every estimate."""
        out: dict[str, Any] = {"steps": list(self.steps), "warnings": list(self.warnings), "voxel_size_nm": list(self.voxel_size_nm)}
        for name in ("drift", "shading", "brightness", "curtains"):
            est = getattr(self, name)
            if est is not None and hasattr(est, "to_dict"):
                out[name] = est.to_dict()
        if self.denoise:
            out["denoise"] = dict(self.denoise)
        return out


def _chain(
    image: Any, *, shading: ShadingField | None = None, brightness: BrightnessTable | None = None,
    dtype: Any = np.float32,
) -> Any:
    """Apply shading and brightness in one pass per slice (one ``map_blocks`` for dask).

    Each is a multiply-add in float32, all in one pass per pixel (:func:`affine_slice`); the
    result is cast once to ``dtype`` (float32 keeps intermediate stages unrounded; the input
    dtype at the end).
    """
    sh = shading_terms(shading) if shading is not None else None
    bt = brightness_terms(brightness) if brightness is not None else None
    out_dtype = np.dtype(dtype)

    def one(plane: np.ndarray, z: int) -> np.ndarray:
        if bt is None:
            return affine_slice(plane, out_dtype, field=sh)
        return affine_slice(plane, out_dtype, field=sh, gain=bt[0][z], offset=bt[1][z])

    return map_slices(image, one, dtype=out_dtype)


def _specimen_only(before: Any, after: Any, dtype: Any, frame: FrameMask) -> Any:
    """``after`` on the specimen, ``before`` (cast to ``dtype``) on the face's ``frame``, if one was found.

    Curtains are milled into the face; the trench walls' bright rims are thin, straight lines along
    the stripe direction that any stripe filter removes with them, and the segment stage finds the
    frame again by those rims.
    """
    if not frame.found:
        return after
    mask, out_dtype = frame.mask, np.dtype(dtype)

    def restore(b: np.ndarray, a: np.ndarray) -> np.ndarray:
        out = np.array(a, copy=True)
        out[:, mask] = restore_dtype(b[:, mask], out_dtype)
        return out

    return da.map_blocks(restore, before, after.rechunk(before.chunks), dtype=out_dtype)


def _stripe_mask(frame: FrameMask, mask: Any, shape: tuple[int, int, int]) -> np.ndarray | None:
    """Specimen pixels to measure stripes on: not the frame nor its rims' lit shell, and in the user's ``mask``."""
    user = check_mask(mask, shape)
    if user is not None and user.ndim == 3:
        user = user.all(axis=0)
    if not frame.found:
        return user
    spec = ~frame.mask if frame.shell is None else ~(frame.mask | frame.shell)
    return spec if user is None else spec & user


def _drift_api() -> tuple[Callable[..., Any], Callable[..., Any]] | None:
    try:
        from volrecon.correct.drift import apply_drift, estimate_drift
    except ImportError:  # pragma: no cover - registration not installed
        return None
    return estimate_drift, apply_drift


def correct_volume(
    image: Any,
    *,
    voxel_size_nm: Sequence[float],
    steps: Sequence[str] = STEPS,
    denoise: dict[str, Any] | None = None,
    mask: Any = None,
    options: dict[str, dict[str, Any]] | None = None,
    progress: Progress | None = None,
    estimates: dict[str, Any] | None = None,
) -> CorrectionResult:
    """Estimate the enabled corrections of a stack and chain their lazy application.

    Parameters
    ----------
    image : dask.array.Array or ndarray (Z, Y, X)
        The assembled stack (``OUT/image.ome.zarr`` level 0).
    voxel_size_nm : (z, y, x)
        Voxel size in nm (unchanged by the corrections; kept with the result).
    steps : sequence of {"drift", "shading", "brightness", "curtains"}
        Corrections to estimate and apply.
    denoise : dict, optional
        ``{"method": "gaussian"|"median"|"bilateral"|"nl_means", **options}``; none by default.
    mask : ndarray of bool (Y, X) or (Z, Y, X), optional
        True on specimen pixels to use for estimation (exclude frame, data bar).
    options : dict, optional
        Per-step keyword options, e.g. ``{"shading": {"degree": 3}, "drift": {"anchor": "none"},
        "apply_drift": {"mode": "pad"}, "curtains": {"orientation": "horizontal"}}``.
    progress : callable, optional
        ``progress(done, total)`` after each estimate.
    estimates : dict, optional
        Estimates to re-apply instead of estimating, by step name, e.g. ``{"shading":
        ShadingField.load(d), "brightness": BrightnessTable.load(d)}`` (a saved run applied to
        another channel, or a resumed run).

    Returns
    -------
    CorrectionResult
        Lazy corrected image and all estimates; problems that did not stop the stage are in
        ``warnings``.

    Raises
    ------
    ParameterError
        Unknown step, bad options.
    VolreconError
        From an estimator when the input cannot be corrected (e.g. a 1-slice shading estimate).
    """
    nz, ny, nx = check_volume(image)
    steps = tuple(steps)
    unknown = [s for s in steps if s not in STEPS]
    if unknown:
        raise ParameterError(f"steps={list(steps)}: unknown {', '.join(unknown)}; use {', '.join(STEPS)}")
    opts = {k: dict(v) for k, v in (options or {}).items()}
    bad = set(opts) - set(STEPS) - {"apply_drift"}
    if bad:
        raise ParameterError(f"options for {', '.join(sorted(bad))}: give options only for {', '.join(STEPS)} or apply_drift")
    given = dict(estimates or {})
    if set(given) - set(steps):
        raise ParameterError(f"estimates for {', '.join(sorted(set(given) - set(steps)))}: give estimates only for the steps run ({', '.join(steps)})")
    arr = image if isinstance(image, da.Array) else da.from_array(np.asarray(image), chunks=(1, ny, nx))
    warnings: list[str] = []
    total = len(steps)
    done = 0
    drift = shading = brightness = curtains = None

    def tick() -> None:
        nonlocal done
        done += 1
        if progress:
            progress(done, total)

    # detector frame first: shading, then brightness on the shading-corrected slices; every
    # intermediate is a lazy float32 chain of the raw slices (no rounding between corrections)
    if "shading" in steps:
        if nz < 2:
            warnings.append("shading skipped: one slice cannot separate shading from structure")
        else:
            shading = given["shading"] if "shading" in given else estimate_shading(arr, mask=mask, **opts.get("shading", {}))
            warnings += [f"shading: {w}" for w in shading.warnings]
        tick()
    if "brightness" in steps:
        if nz < 2:
            warnings.append("brightness skipped: a single slice has no slice-to-slice drift")
        else:
            brightness = given["brightness"] if "brightness" in given else estimate_brightness(_chain(arr, shading=shading), mask=mask, **opts.get("brightness", {}))
            warnings += [f"brightness: {w}" for w in brightness.warnings]
        tick()
    detector = _chain(arr, shading=shading, brightness=brightness)
    registered = None
    if "drift" in steps:
        api = _drift_api()
        if api is None:
            warnings.append("drift skipped: volrecon.correct.drift is not available")
        elif nz < 2:
            warnings.append("drift skipped: a single slice has nothing to register")
        else:
            estimate_drift, apply_drift = api
            drift_opts = opts.get("drift", {})
            if mask is not None and "mask" not in drift_opts:
                drift_opts["mask"] = mask
            drift = given["drift"] if "drift" in given else estimate_drift(arr, **drift_opts)
            registered = apply_drift(detector, drift, **opts.get("apply_drift", {}))
        tick()
    # detector-frame corrections (fused into the shift's blocks when registered), then curtains
    # through apply_curtains, which pools neighbouring slices (settings.z_reach) as estimated
    src, terms = (arr, {"shading": shading, "brightness": brightness}) if registered is None else (registered, {})
    frame = None
    if "curtains" in steps:
        base = _chain(src, **terms)
        frame = find_frame(base, max_slices=8)  # static once registered: a few slices suffice
        if "curtains" in given:
            curtains = given["curtains"]
        else:
            curtain_opts = dict(opts.get("curtains", {}))
            # the user's mask is in the detector frame: it marks the registered slices' pixels only without a shift
            curtain_opts.setdefault("mask", _stripe_mask(frame, mask if registered is None else None, (nz, ny, nx)))
            curtains = estimate_curtains(base, **curtain_opts)
        if not curtains.enabled:
            warnings.append(f"curtains: no significant stripes (significance {curtains.significance:.1f}); destriping left off")
        tick()
    if curtains is not None and curtains.enabled and frame is not None:
        hidden = frame.mask if frame.shell is None else frame.mask | frame.shell
        out = _specimen_only(base, apply_curtains(base, curtains, dtype=arr.dtype, hidden=hidden), arr.dtype, frame)
    else:
        out = _chain(src, **terms, dtype=arr.dtype)
    den = None
    if denoise:
        den = dict(denoise)
        method = den.pop("method", "gaussian")
        out = _denoise(out, method=method, **den)
        den = {"method": method, **den}
    return CorrectionResult(
        image=out, steps=steps, drift=drift, shading=shading, brightness=brightness, curtains=curtains,
        denoise=den, voxel_size_nm=tuple(float(v) for v in voxel_size_nm), warnings=warnings,  # type: ignore[arg-type]
    )


def save_corrections(result: CorrectionResult, corrections_dir: str | Path) -> list[Path]:
    """Write every estimate under ``corrections_dir`` and return the files written.

    ``drift.csv``, ``brightness.csv`` (+ ``.json``), ``shading.npz`` (+ ``.json``),
    ``curtains.json``, ``corrections.json`` (summary and warnings), and a PNG per estimate.
    """
    import json

    d = Path(corrections_dir)
    d.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    if result.drift is not None:
        files.append(result.drift.to_csv(d / "drift.csv"))
        try:
            from volrecon.correct.drift import plot_drift

            files.append(Path(plot_drift(result.drift, d / "drift.png")))
        except (ImportError, VolreconError):  # pragma: no cover
            pass
    if result.shading is not None:
        files.append(result.shading.save(d))
        files.append(result.shading.plot(d / "shading.png"))
    if result.brightness is not None:
        files.append(result.brightness.save(d))
        files.append(result.brightness.plot(d / "brightness.png"))
    if result.curtains is not None:
        files.append(result.curtains.save(d))
    summary = d / "corrections.json"
    summary.write_text(json.dumps(result.to_dict(), indent=2, default=str))
    files.append(summary)
    return files


def _ortho(vol: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    z, y, x = (s // 2 for s in vol.shape)
    return vol[z], vol[:, y, :], vol[:, :, x]


def correction_figures(result: CorrectionResult, before: Any, after: Any, figures_dir: str | Path, *, max_slices: int = 256) -> list[Path]:
    """Before/after orthoslices (xy, xz, yz) at true aspect ratio, one PNG per plane.

    ``before``/``after`` are stacks (numpy or dask); only the three central planes are read
    (z limited to ``max_slices`` around the middle).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    vz, vy, vx = result.voxel_size_nm
    figs = Path(figures_dir)
    figs.mkdir(parents=True, exist_ok=True)
    planes = {}
    for name, vol in (("before", before), ("after", after)):
        nz = vol.shape[0]
        z0 = max(0, nz // 2 - max_slices // 2)
        sub = vol[z0 : z0 + max_slices]
        zc, yc, xc = sub.shape[0] // 2, sub.shape[1] // 2, sub.shape[2] // 2
        get = (lambda a: np.asarray(a.compute())) if hasattr(sub, "compute") else np.asarray
        planes[name] = (get(sub[zc]), get(sub[:, yc, :]), get(sub[:, :, xc]))
    out = []
    for i, (plane, aspect) in enumerate((("xy", vy / vx), ("xz", vz / vx), ("yz", vz / vy))):
        fig, ax = plt.subplots(1, 2, figsize=(10, 4.8))
        for a, name in zip(ax, ("before", "after")):
            img = planes[name][i]
            lo, hi = np.percentile(img, (0.5, 99.5))
            a.imshow(img, cmap="gray", vmin=lo, vmax=hi, aspect=aspect, interpolation="nearest")
            a.set_title(f"{name} — {plane}")
            a.set_axis_off()
        fig.tight_layout()
        p = figs / f"correct_{plane}.png"
        fig.savefig(p, dpi=100)
        plt.close(fig)
        out.append(p)
    return out
