"""Public entry point: :func:`make_phantom` and the :class:`Phantom` it returns."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from volrecon import __version__
from volrecon.errors import ParameterError
from volrecon.io.calibration import Calibration, Value
from volrecon.sample.artefacts import Artefacts, resolve_artefacts
from volrecon.sample.params import REFERENCE_CYCLES, SpecimenParams, specimen_params
from volrecon.sample.render import PSF_SIGMA_NM, Plan, SliceOut, iter_slices
from volrecon.sample.truth import TruthAccumulator


@dataclass
class Phantom:
    """A synthetic slice-and-view acquisition with its ground truth.

    Attributes
    ----------
    labels : ndarray (Z, Y, X) uint8
        Phase of every voxel (values of :data:`volrecon.phases.PHASES`; frame = 9).
    regions : ndarray (Z, Y, X) uint8
        Cell layer of every voxel (:data:`volrecon.phases.REGIONS`; frame = 5).
    clean : ndarray (Z, Y, X) float32
        Ideal image of the face (phase contrast, shine-through and edge brightening when those
        are switched on, probe blur), 0-1, in the undrifted (specimen) frame.
    acquired : ndarray (Z, Y + databar, X) uint8 (float32 when quantisation is off)
        What the microscope records.
    drift : ndarray (Z, 2) float64
        ``(dy, dx)`` px per slice: ``scipy.ndimage.shift(acquired[z], drift[z])`` registers slice z.
    shading : ndarray (Y, X) float32
        Multiplicative shading field (detector frame).
    brightness : ndarray (Z, 2) float64
        ``(gain, offset)`` per slice: recorded = gain * shading * image + offset (full scale 1).
    truth : dict
        Content of ``truth.json``.
    calibration : Calibration
        What a reader of the metadata should find (pixel size as recorded, tilt flag).
    """

    labels: Any
    regions: Any
    clean: Any
    acquired: Any
    drift: np.ndarray
    shading: np.ndarray
    brightness: np.ndarray
    truth: dict[str, Any]
    calibration: Calibration
    artefacts: Artefacts
    params: SpecimenParams
    curtains: dict[str, Any] = field(default_factory=dict)

    @property
    def voxel_size_nm(self) -> tuple[float, float, float]:
        """Physical voxel size ``(z, y, x)`` of ``labels`` in nm."""
        v = self.truth["calibration"]["voxel_size_nm"]
        return (v["z"], v["y"], v["x"])

    @property
    def databar_rows(self) -> int:
        """Rows of data bar at the bottom of ``acquired`` (0 without)."""
        return int(self.truth["acquisition"]["databar_rows"])


def plan_phantom(
    preset: str, *, slices: int = 64, shape: tuple[int, int] = (512, 512), seed: int = 0,
    voxel_size_nm: tuple[float, float, float] = (20.0, 10.0, 10.0), cycles: float | None = None,
    frame: bool = False, artefacts: Artefacts | str | None = None, **specimen: Any,
) -> Plan:
    """Draw a phantom (specimen and artefact parameters) without rendering it; see :func:`make_phantom`."""
    if int(slices) < 1:
        raise ParameterError(f"slices={slices}: give at least 1 slice")
    shape = _shape(shape)
    if len(voxel_size_nm) != 3 or any(not (v > 0) for v in voxel_size_nm):
        raise ParameterError(f"voxel_size_nm={voxel_size_nm}: give three positive lengths (z, y, x) in nm")
    params = specimen_params(preset, cycles=cycles, **specimen)
    art = resolve_artefacts(artefacts)
    plan = Plan(params, art, slices=int(slices), shape=shape, voxel_size_nm=tuple(voxel_size_nm), frame=frame, seed=seed)
    plan.preset = preset  # type: ignore[attr-defined]
    plan.cycles = REFERENCE_CYCLES if cycles is None else cycles  # type: ignore[attr-defined]
    plan.has_frame = frame  # type: ignore[attr-defined]
    return plan


def _shape(shape: Any) -> tuple[int, int]:
    if isinstance(shape, str):
        try:
            h, w = (int(v) for v in shape.lower().split("x"))
        except ValueError:
            raise ParameterError(f"shape={shape!r}: write it as HEIGHTxWIDTH, e.g. 512x512") from None
        shape = (h, w)
    if len(shape) != 2 or min(shape) < 32:
        raise ParameterError(f"shape={shape}: give (height, width) of at least 32 px each")
    return int(shape[0]), int(shape[1])


def make_phantom(
    preset: str, *, slices: int = 64, shape: tuple[int, int] | str = (512, 512), seed: int = 0,
    voxel_size_nm: tuple[float, float, float] = (20.0, 10.0, 10.0), cycles: float | None = None,
    frame: bool = False, artefacts: Artefacts | str | None = None, workers: int | None = None,
    progress: Callable[[int, int], None] | None = None, **specimen: Any,
) -> Phantom:
    """Synthetic cryo-FIB slice-and-view stack of a sodium-metal full cell, with ground truth.

    Parameters
    ----------
    preset : {"carbonate", "diglyme"}
        Electrolyte: ``carbonate`` grows a thick uneven SEI (hundreds of nm) and few cathode
        voids; ``diglyme`` a thin SEI (tens of nm) and many voids, denser near the separator.
    slices : int
        Number of milled slices ``Z``.
    shape : (int, int) or "HxW"
        Image size in pixels (rows = stacking direction y, columns x).
    seed : int
        Random seed; everything (specimen, artefacts, noise) is a function of it.
    voxel_size_nm : (float, float, float)
        Slice thickness, recorded pixel height and pixel width in nm.  With foreshortening on,
        one image row covers ``pixel height / sin(tilt)`` of the face, so the labels' physical
        y voxel is larger (``Phantom.voxel_size_nm``, ``truth["calibration"]``).
    cycles : float, optional
        Number of cycles; degradation scales linearly and matches the preset at 100.
    frame : bool
        Show the milled face's frame: protective cap above the face and trench walls left and
        right with bright rims, all moving with the specimen; labelled ``frame``.
    artefacts : Artefacts or {"all", "none", "default"} or str
        Acquisition artefacts (see :class:`Artefacts`); default ``Artefacts()``, everything but
        the data bar.  A comma list (``"drift,noise"``) switches on only those.
    workers : int, optional
        Worker processes (default: available CPUs).
    progress : callable, optional
        ``progress(done, total)`` after each slice.
    **specimen
        Fields of :class:`~volrecon.sample.params.SpecimenParams` (layer fractions, order,
        void share, rod size ...).

    Returns
    -------
    Phantom

    Notes
    -----
    The SEI is the set of points outside the sodium within normal distance ``t`` of the sodium
    surface, ``t`` a smooth log-normal random field; ``truth["regions"]["anode"]
    ["sei_thickness_nm"]`` are statistics of ``t`` at each (slice, column) of the imaged
    surface.  See :mod:`volrecon.sample.truth` for every other definition.

    Examples
    --------
    >>> ph = make_phantom("diglyme", slices=8, shape=(96, 96), seed=1, workers=1)
    >>> ph.labels.shape, ph.acquired.dtype.name
    ((8, 96, 96), 'uint8')
    >>> 0 < ph.truth["regions"]["cathode"]["void_share_of_pore"] < 1
    True
    """
    plan = plan_phantom(
        preset, slices=slices, shape=shape, seed=seed, voxel_size_nm=voxel_size_nm, cycles=cycles,
        frame=frame, artefacts=artefacts, **specimen,
    )
    z, (h, w) = plan.slices, plan.shape
    labels = np.empty((z, h, w), np.uint8)
    regions = np.empty((z, h, w), np.uint8)
    clean = np.empty((z, h, w), np.float32)
    acq_dtype = np.uint8 if plan.art.quantise else np.float32
    acquired = np.empty((z, h + plan.databar_rows, w), acq_dtype)
    acc = TruthAccumulator(z, plan.voxel_nm)
    for s in iter_slices(plan, workers=workers, progress=progress):
        labels[s.index], regions[s.index], clean[s.index], acquired[s.index] = s.labels, s.regions, s.clean, s.acquired
        accumulate(acc, plan, s)
    return finish(plan, acc, labels=labels, regions=regions, clean=clean, acquired=acquired)


def accumulate(acc: TruthAccumulator, plan: Plan, s: SliceOut) -> None:
    """Feed one slice into the truth accumulator (SEI samples only on the imaged surface)."""
    sp = plan.specimen
    vy = plan.voxel_nm[1]
    y_s = sp.y_of_u(s.sodium_u)
    rows = np.floor(y_s / vy).astype(int)
    valid = (rows >= 0) & (rows < plan.shape[0])
    if plan.frame_mask_image is not None:
        cols = np.arange(plan.shape[1])
        r = np.clip(rows, 0, plan.shape[0] - 1)
        valid &= ~plan.frame_mask_image[r, cols]
    surf_y = {
        "sodium_surface": y_s,
        "sei_outer_surface": sp.y_of_u(s.surfaces["sei_top"]),
        "separator_cathode": sp.y_of_u(s.surfaces["separator_cathode"]),
        "cathode_collector": sp.y_of_u(s.surfaces["cathode_collector"]),
    }
    acc.add(s.labels, s.regions, k=s.index, sei_t=s.sei_t, sei_valid=valid, surfaces_y_nm=surf_y)


def calibration_of(plan: Plan) -> Calibration:
    """The calibration a correct reader derives from the phantom's metadata."""
    art = plan.art
    vy_rec, vx = plan.recorded_pixel_nm
    return Calibration(
        pixel_size_x_nm=Value(vx, "metadata:phantom"),
        pixel_size_y_nm=Value(vy_rec, "metadata:phantom"),
        slice_thickness_nm=Value(plan.voxel_nm[0], "phantom"),
        tilt_deg=Value(art.tilt_deg, "metadata:phantom"),
        tilt_corrected_by_instrument=Value(0.0 if art.foreshortening else 1.0, "metadata:phantom"),
        apply_foreshortening=bool(art.foreshortening),
        instrument="volrecon phantom",
        detector="TLD (BSE)",
    )


def finish(plan: Plan, acc: TruthAccumulator, **arrays: Any) -> Phantom:
    """Assemble the :class:`Phantom` once every slice went through ``acc``."""
    truth = truth_document(plan, acc)
    return Phantom(
        drift=plan.drift.copy(), shading=plan.shading.copy(),
        brightness=np.stack([plan.gain, plan.offset], axis=1), truth=truth,
        calibration=calibration_of(plan), artefacts=plan.art, params=plan.params,
        curtains={"stripes": truth["acquisition"]["curtains"]["stripes"], "amplitude": plan.curtain_amp.copy()},
        **arrays,
    )


def truth_document(plan: Plan, acc: TruthAccumulator) -> dict[str, Any]:
    """The full ``truth.json`` content."""
    art = plan.art
    vz, vy, vx = plan.voxel_nm
    figures = acc.result()
    sp = plan.specimen
    frame: dict[str, Any] = {"present": sp.frame is not None}
    if sp.frame is not None:
        f = sp.frame
        frame.update(
            cap_edge_nm=f.cap_edge_nm, cap_edge_row=f.cap_edge_nm / vy, cap_roughness_nm=f.cap_rough_nm,
            wall_left_nm=f.wall_left_nm, wall_left_col=f.wall_left_nm / vx,
            wall_right_nm=f.wall_right_nm, wall_right_col=f.wall_right_nm / vx,
            wall_slope=f.wall_slope, rim_nm=f.rim_nm,
            fraction_of_image=figures["frame_voxels"] / float(plan.slices * plan.shape[0] * plan.shape[1]),
            note="frame = cap, trench walls and everything outside the specimen; fixed to the specimen "
            "(moves with drift); excluded from every figure",
        )
    drift = plan.drift
    steps = np.diff(drift, axis=0)
    doc: dict[str, Any] = {
        "generator": {
            "name": "volrecon.sample", "version": __version__, "preset": getattr(plan, "preset", None),
            "cycles": getattr(plan, "cycles", None), "seed": plan.seed, "slices": plan.slices,
            "shape": list(plan.shape), "frame": sp.frame is not None, "order": plan.params.order,
        },
        "calibration": {
            "voxel_size_nm": {"z": vz, "y": vy, "x": vx},
            "recorded_pixel_size_nm": {"y": plan.recorded_pixel_nm[0], "x": plan.recorded_pixel_nm[1]},
            "slice_thickness_nm": vz,
            "tilt_deg": art.tilt_deg,
            "foreshortened_in_image": bool(art.foreshortening),
            "tilt_corrected_by_instrument": not art.foreshortening,
            "through_plane_axis": "y",
        },
        "phase_fractions": figures["phase_fractions"],
        "regions": figures["regions"],
        "interfaces_nm": figures["interfaces"],
        "frame": frame,
        "voxels": {"specimen": figures["specimen_voxels"], "frame": figures["frame_voxels"]},
        "acquisition": {
            "artefacts": art.to_dict(),
            "drift": {
                "file": "drift.csv", "sign": "scipy.ndimage.shift(acquired[z], (dy, dx)) registers slice z",
                "reference_slice": 0, "jump_slices": plan.jumps,
                "step_rms_px": float(np.sqrt((steps**2).mean())) if steps.size else 0.0,
                "max_abs_px": float(np.abs(drift).max()) if drift.size else 0.0,
            },
            "brightness": {"file": "brightness.csv", "step_slice": plan.step_slice,
                           "model": "recorded = gain * shading * image + offset (full scale 1)"},
            "shading": {"file": "shading.npy", "frame": "detector"},
            "curtains": {
                "file": "curtains.csv",
                "stripes": [
                    {"col": c.col - plan.pad, "row_start": c.row_start - plan.pad, "width_px": c.width,
                     "decay_px": c.decay, "sign": c.sign}
                    for c in plan.curtains
                ],
                "frame": "specimen (undrifted image coordinates)",
            },
            "shine_through_slices": plan.shine_slices,
            "psf_sigma_nm": PSF_SIGMA_NM,
            "psf_sigma_px": list(plan.psf_sigma_px),
            "shine_blur_px": list(plan.shine_sigma_px),
            "databar_rows": plan.databar_rows,
        },
        "specimen": plan.params.to_dict(),
        "definitions": {
            "sei_thickness_nm": "normal distance t from the sodium surface defining the SEI; statistics of t "
            "sampled at each (slice, image column) where the sodium surface is in the imaged face",
            "void_clusters": "6-connected components of cathode void voxels; largest_fraction = largest / all void voxels; "
            "percolating: a cluster reaches both ends, along y the other layers or the frame's cap (not a trench wall), "
            "along x the frame or the field's side (not a layer interface), along z the first and last slice",
            "porosity": "(void + electrolyte) / cathode voxels",
            "fractions": "frame voxels excluded from every denominator",
        },
    }
    if not math.isfinite(doc["regions"]["anode"]["sei_thickness_nm"]["mean"]):
        doc["regions"]["anode"]["sei_thickness_nm"] = None
    return doc
