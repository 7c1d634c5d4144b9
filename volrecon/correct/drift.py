"""Drift registration of slice-and-view stacks: estimate a drift table, apply it lazily.

``estimate_drift`` streams the stack slice by slice once and gathers three kinds of evidence:

* **frame** (default when found): the protective cap's lower edge (→ dy) and the trench walls
  (→ dx) of the milled face, measured in every slice sub-pixel against one common reference —
  absolute, so errors never accumulate (see "Registration physics" in DESIGN.md);
* **roi**: a user-marked rectangle holding a fiducial, correlated absolutely with the same
  rectangle of the first slice on its edges (gradient magnitude, unwhitened, no curtain notch),
  followed from slice to slice within ``search`` px;
* **structure**: sub-pixel, curtain-suppressed phase correlation of slice pairs over several
  baselines (1, 2, 4, 8, 16 slices apart), each pair's shift the consensus of ~7 x 7 local
  tiles (inclined features move each their own way; the drift is what they share), each tile
  weighted by the inverse of its 2 x 2 wander covariance from the consensus over the whole
  stack, so that what it says along its content's own motion is dropped and what it says
  across it kept (:mod:`volrecon.correct._registration_persist`). Which
  baselines are used is decided by the data: the shortest set on whose trajectories the left
  and right halves of the face (independent content, common drift) agree best
  (:mod:`volrecon.correct._registration_split`). Where the tiles show that the consensus'
  error is persistent content motion, a pair longer than one slice is the consensus of the
  tiles whose content stays alike and still over its baseline (the frame, a fiducial), or,
  without such tiles, only bridges gaps (``metadata["structure_errors"]``): over decorrelating
  content it carries the same persistent error plus a content bias of its own.

Where no frame is found and no fiducial box is given, the structure's trajectory is then
refined by the straight-line motion of compact objects tracked from slice to slice (rods'
sections stand still across their own axis; :mod:`volrecon.correct._registration_objects`), by
default; with too few rods it keeps the consensus and ``metadata["objects"]`` says why.  The choice
is made before the slices are read: a frame found whose edges then all fail their checks, or a
fiducial never locked, leaves the consensus unrefined (the reason says so).

Without the frame's walls or a fiducial, dx is then anchored on the curtain stripes, fixed in the
specimen and persisting over tens to hundreds of slices while the content decorrelates: the slow
part of dx comes from the shift of slices' stripe profiles far apart, its short-range shape stays
the structure's (:mod:`volrecon.correct._registration_curtains`, ``metadata["curtains"]``; rows
``"structure+curtains"``). Skipped with its reason where the stripes are not significant or the
stack is too short for baselines beyond the content's decorrelation.

Everything is combined by one robust weighted least-squares solve
(:mod:`volrecon.correct._registration_solve`), each measurement weighted by its uncertainty;
outlier pairs are rejected, consistent jumps kept, blank slices interpolated. The table records
per slice what anchored it and the expected residual.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from volrecon._spread import spread_indices
from volrecon.correct._registration_input import (
    blank_reason,
    check_box,
    check_slice,
    check_stack,
    is_dask,
    ordered_map,
    slice_reader,
    static_rows,
)
from volrecon.correct._registration_phase import (
    FiducialTracker,
    PhaseCorrelator,
    SpectrumGeometry,
    TileCorrelator,
    coherence_sigma,
)
from volrecon.correct._registration_curtains import anchor_dx, stripe_band, stripe_profile
from volrecon.correct._registration_objects import MIN_TRACK, Sections, find_sections, refine_shifts
from volrecon.correct._registration_persist import chain_errors, wander_information
from volrecon.correct._registration_shared import shared_motion_error
from volrecon.correct._registration_solve import Observations, Solution, screen_series, solve_trajectory
from volrecon.correct._registration_split import HalfSplit, choose_baselines
from volrecon.correct._registration_table import DriftTable
from volrecon.correct._shift_linear import shift_linear_nearest
from volrecon.correct._stripe_width import DEFAULT_SLICES, StripeWidth, stripe_width
from volrecon.correct.frame import FrameInfo, FrameTracker, detect_frame
from volrecon.errors import InputError, ParameterError

__all__ = ["DriftTable", "estimate_drift", "apply_drift", "plot_drift"]

METHODS = ("auto", "phase", "sitk", "none")
ANCHOR_MODES = ("auto", "frame", "none")
#: per-pair floor (px) on the structure uncertainty: features inclined to the milling direction
#: move like drift, so no correlation is better than this however sharp its peak
STRUCTURE_FLOOR_PX = 0.35
#: sigma factor of a pair longer than one slice when the tile consensus' error is mostly
#: persistent content motion (:func:`volrecon.correct._registration_persist.chain_errors`) and
#: fewer than three tiles stay alike and still over its baseline: at 1/900 of a neighbour
#: pair's weight it only decides where no neighbour pair connects
BRIDGE_FACTOR = 30.0
#: a tile "stays alike" over a baseline when its median coherence there is at least this share
#: of its neighbour pairs' (rod-cathode phantom: 0.58-0.88 at two slices; the cap of the face's
#: frame 0.96-0.99; static noisy content 0.96); with a wander no larger than the median tile's
#: it is still content (frame, fiducial) that a long pair can lock onto
SAME_CONTENT = 0.8
#: rounds of (tile weights from their wanders, consensus with those weights) after the first
#: unweighted consensus (rod-cathode phantom: the estimate settles within ~5)
INFORMATION_ROUNDS = 5


@dataclass
class _Prepared:
    """What the streaming pass keeps of one slice (small)."""

    reason: str
    spectrum: Any = None
    roi: Any = None
    halves: Any = None
    sections: Sections | None = None
    profile: np.ndarray | None = None


def estimate_drift(
    image: Any,
    *,
    method: str = "auto",
    baselines: Sequence[int] = (1, 2, 4, 8, 16),
    anchor: str | Sequence[int] = "auto",
    mask: np.ndarray | None = None,
    window: tuple[int, int] | None = None,
    curtain_suppression: bool | int = True,
    bin: int | str = "auto",
    decimate: int = 2,
    frame: FrameInfo | None = None,
    reference: int | None = None,
    search: int = 64,
    structure_floor_px: float = STRUCTURE_FLOOR_PX,
    consistency_px: float = 25.0,
    tiles: int = 4,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    objects: bool = True,
    curtains: bool = True,
) -> DriftTable:
    """Estimate the per-slice translation that registers a slice-and-view stack.

    Parameters
    ----------
    image : array, shape (Z, Y, X)
        numpy or dask stack; a dask stack is read one slice at a time, never whole.
    method : {"auto", "phase", "sitk", "none"}
        Pairwise estimator for the structure evidence: curtain-robust phase correlation
        (``"auto"``), SimpleITK translation with Mattes mutual information (slow; for intensity
        changes between slices), or ``"none"`` (anchors only).
    baselines : sequence of int
        Slice distances of the compared pairs. Longer baselines stop independent pairwise
        errors from adding up like a random walk, but add error where the content decorrelates
        or moves; when the structure drives the trajectory (no frame anchoring both axes) and
        the region is at least 512 px wide, the shortest 2, 3 ... of them are tried and the set
        on which the two halves of the face agree best is used (``metadata["baseline_choice"]``).
        With the tile consensus, where the error is persistent content motion, pairs longer
        than one slice use only the tiles whose content stays alike and still, or are
        down-weighted to bridges (``metadata["structure_errors"]``: the expected persistent and
        random trajectory errors in px, and per long baseline what it used).
    anchor : {"auto", "frame", "none"} or (y0, y1, x0, x1)
        ``"auto"``: detect the milled face's frame and anchor on it if found; ``"frame"``: the
        same but an error if no frame is found; ``"none"``: structure only; a rectangle: a
        user-marked, depth-independent feature (fiducial, trench edge) used as an absolute
        reference. It must be larger than the drift it has to follow.
    mask : ndarray of bool, shape (Y, X) or (Z, Y, X), optional
        True where the image shows the cross-section; other pixels are ignored by the
        structure estimate. Rows identical in every slice (a data bar) are excluded
        automatically, and so is the frame when one is found.
    window : (int, int), optional
        Height and width of the central region used for the structure estimate
        (default: all of the specimen region).
    curtain_suppression : bool or int
        Zero the spectral rows ``|k_y| <= n`` where vertical curtain stripes live (``True``: 3).
    bin : int or "auto"
        Block-average factor before the FFT (``"auto"``: regions up to ~1024 px stay at full
        resolution; half that with the frame anchoring both axes).
    decimate : int
        Fourier-domain decimation of the correlation surface (speed; sub-pixel accuracy is kept
        by the Gaussian peak fit).
    frame : FrameInfo, optional
        A frame detected beforehand (skips detection).
    reference : int, optional
        Slice to detect the frame on (default: the middle slice).
    search : int
        Largest displacement (px) of a frame edge, or of the fiducial in an anchor box, from its
        reference position.
    structure_floor_px : float
        Per-pair uncertainty floor of the structure estimate (see ``STRUCTURE_FLOOR_PX``).
    tiles : int
        Structure estimate by phase correlation of local tiles, a ``1/tiles`` of the region's
        shorter side wide and half-overlapping, each pair's shift being the consensus (mode) of
        the tiles: features inclined to the milling direction move each their own way, the
        drift is what everything shares. ``0``: one global correlation of the whole region.
        When the frame anchors both axes (cap and a wall found) the structure is only a weak
        smoother and one global correlation (at twice the ``"auto"`` binning) is used.
    consistency_px : float
        Rigid-frame check: a frame edge whose per-slice series departs from the structure-only
        trajectory by more than this (95th percentile, after removing the median offset) is not
        part of the frame (a feature of the specimen that looks like an edge) and is dropped;
        not applied to two walls that agree with each other. Edges must also be found at the same place on probe slices at 1/4 and 3/4 of the stack,
        be measured in at least 80 % of the slices, and the two walls must agree on dx. Dropped
        edges and why are listed in ``metadata["frame_rejected"]``; with none left, ``"auto"``
        falls back to structure only (``metadata["anchor_fallback"]``).
    workers : int, optional
        Threads (default: the number of CPUs, at most 4).
    progress : callable, optional
        Called as ``progress(done, total)`` after each slice.
    objects : bool
        Where the structure alone drives the trajectory (no frame found, no ROI): refine it by
        the straight-line motion of compact objects tracked from slice to slice, rods' sections
        standing still across their own axis (:mod:`volrecon.correct._registration_objects`).
        On by default; ``False`` keeps the tile consensus. ``metadata["objects"]`` says whether
        it ran (``"ran"``) and, when not, why (``"reason"``: off, anchored by a frame or a ROI,
        too few slices, or fewer than ``MIN_RODS`` rods tracked, in which case the consensus
        stands). Measured in benchmarks/results/registration.md: better than the consensus on
        the 1024² electrode phantoms and at 2048x1536, worse on one of eight 512² rows. It
        segments every slice (~2x the consensus' CPU per slice); a steady drift along a lean
        shared by most rods (rods all leaning one way) is not observable by it; the table's
        per-slice uncertainties stay the consensus'.
    curtains : bool
        Where neither the frame's walls nor a ROI anchor dx: take the slow part of dx from the
        curtain stripes (fixed in the specimen), the shift of each slice's band-passed column
        profile against slices beyond the content's decorrelation length
        (:mod:`volrecon.correct._registration_curtains`); the profiles' band (``band_px``) is
        the one where the stripes measured on a few slices before the pass stand out most
        from the content (``stripe_width``, :mod:`volrecon.correct._stripe_width`; the
        reference band where none are found). On by default; ``False`` keeps the
        structure's dx. ``metadata["curtains"]``: ``ran``, the ``reason`` when not (off, walls
        or ROI, too few long pairs, no significant stripes, stripes fixed in the detector), the
        decorrelation, ``baselines``, ``pairs``, ``pairs_rejected``, ``significance``, the
        measured step and pair sigmas. Rows it anchored read ``"structure+curtains"``; their dx
        share of the expected residual is scaled by the share of the error the solve leaves.
        One profile (``X`` floats) per slice, kept from the single streaming pass (~0.035 CPU-s
        per 1024² slice; the banded solve ~1 s per 500 slices). Measured on the frameless
        phantoms of issue #10 (2D RMS px, ``curtains=False`` -> default): 1024² x 200 seeds 0/1
        zero drift 0.698 -> 0.669, 0.504 -> 0.291, random walk 0.901 -> 0.518, 0.865 -> 0.306;
        2048x1536 random walk 0.891 -> 0.684; 512² x 96: seed 3 random walk 2.731 -> 0.928,
        seed 5 zero drift 0.649 -> 0.586, the other six unchanged (stripes not significant over
        their ~10-16 independent units), worse on none (``benchmarks/results/registration.md``).

    Returns
    -------
    DriftTable
        ``shifts[z]`` applied with :func:`scipy.ndimage.shift` to slice ``z`` registers it.
        ``expected_residual_px`` (per axis): on anchored slices the posterior of the solve; on
        structure-only slices the larger of two measured errors
        (``metadata["structure_errors"]["expected_px"]``): one half of the face's, from how far
        the left and right halves' trajectories disagree (``halves_px``; 1024 px phantoms:
        0.8-1.0 px per axis against 0.4-0.7 measured), and the content motion shared by the
        whole face (features all leaning one way), from the long pairs' misclosure against the
        chained neighbour pairs where it is the same in both halves (``shared_motion``, see
        :mod:`volrecon.correct._registration_shared`; inclined ``make_stack``: 0.3-4.6 px
        against 0.6-3.0 measured). Both can understate: the halves' figure on 512 px electrode
        phantoms by up to 2.7x, the shared one where the long pairs blend the moving content
        too (64 x 512 x 512, inclined 0.15-0.35: 2.2-3.4x); motion shared at one velocity
        everywhere (a sheared volume, a smooth warp) is not seen at all.

    Raises
    ------
    InputError
        Fewer than 2 slices, slices smaller than 32 px, NaN pixels.
    ParameterError
        Unknown method/anchor, ROI outside the image, window larger than the image, no frame
        found with ``anchor="frame"``.

    Examples
    --------
    >>> from volrecon.correct._registration_synthetic import make_stack
    >>> stack = make_stack(12, (128, 128), inclined=0.0)
    >>> table = estimate_drift(stack.acquired, anchor="none")
    >>> err = (table.shifts - table.shifts[0]) - (stack.drift - stack.drift[0])
    >>> bool(abs(err).max() < 0.5)
    True
    """
    started = time.perf_counter()
    nz, ny, nx = check_stack(image)
    floating = np.issubdtype(np.dtype(image.dtype), np.floating)
    method = _check_choice("method", method, METHODS)
    method = "phase" if method == "auto" else method
    baselines = _check_baselines(baselines, nz)
    workers = _check_workers(workers)
    read = slice_reader(image)
    mask2d, mask3d = _check_mask(mask, (nz, ny, nx))

    roi: tuple[int, int, int, int] | None = None
    if isinstance(anchor, str):
        anchor_mode = _check_choice("anchor", anchor, ANCHOR_MODES)
    else:
        roi = check_box(anchor, (ny, nx), "anchor")
        anchor_mode = "roi"

    # cheap look at a few slices: blank ones, burned-in overlay rows
    probe: list[int] = []
    for z in range(min(nz, 12)):
        if len(probe) < 3 and not blank_reason(read(z), np.dtype(image.dtype)):
            probe.append(z)
    overlay = static_rows(read, probe)
    bottom = int(np.flatnonzero(overlay)[0]) if overlay.size and overlay[ny // 2 :].any() else None
    if bottom is not None:
        bottom = ny // 2 + int(np.flatnonzero(overlay[ny // 2 :])[0])
    info, rejected = _find_frame(image, frame, anchor_mode, reference, bottom, ny, nx, search)
    box = _structure_box(info, overlay, mask2d, (ny, nx), window)

    # with the frame anchoring both axes the structure is only a weak smoother: one coarser
    # global correlation is enough there, several times cheaper than the tile consensus
    anchored = info is not None and info.cap_edge is not None and bool(info.walls)
    solver = None
    split: HalfSplit | bool | None = None
    if method != "none":
        geometry = SpectrumGeometry(
            box, _auto_bin(bin, box, coarse=anchored), int(decimate), _curtain_rows(curtain_suppression), sigma=1.0
        )
        if method == "phase":
            solver = _phase_solver(geometry, 0 if anchored else tiles)
            # the structure drives the trajectory: choose its baselines by split-half agreement
            # (a tile consensus splits its own tiles; a global correlation gets two half ones)
            if not anchored and len(baselines) > 1 and HalfSplit.possible(geometry):
                split = True if isinstance(solver, TileCorrelator) else HalfSplit(geometry)
        else:
            from volrecon.correct._registration_sitk import SitkRegistrar

            solver = SitkRegistrar(geometry)
    roi_corr = None
    if roi is not None:
        roi_corr = FiducialTracker((roi[1] - roi[0], roi[3] - roi[2]))
        y0, y1, x0, x1 = roi
        roi_crop = (max(0, y0 - search), min(ny, y1 + search), max(0, x0 - search), min(nx, x1 + search))
    tracker = None
    if info is not None and info.found:
        tracker = FrameTracker(info, search=search, reference_image=read(info.reference_slice))
    dtype = np.dtype(image.dtype)
    objects_skipped = _objects_skipped(objects, solver, roi, tracker, nz)
    curtains_skipped = _curtains_skipped(curtains, solver, roi, info)

    def region_of(data: np.ndarray, z: int) -> np.ndarray:
        region = data[box[0] : box[1], box[2] : box[3]]
        m = mask3d[z] if mask3d is not None else mask2d
        if m is not None:
            region = _fill_masked(region, m[box[0] : box[1], box[2] : box[3]])
        return region

    # the stripes, measured on a few slices before the pass, choose the profiles' band
    stripes = _stripe_width(read, region_of, nz, dtype) if curtains_skipped is None else None
    band = stripe_band(stripes)

    def prepare(z: int) -> _Prepared:
        data = read(z)
        check_slice(z, data, floating=floating)
        reason = blank_reason(data, dtype)
        if reason:
            return _Prepared(reason)
        if tracker is not None:
            tracker.collect(z, data)
        spectrum = roi_spec = halves = found = profile = None
        if solver is not None:
            region = region_of(data, z)
            spectrum = solver.prepare(region)
            halves = split.prepare(region) if isinstance(split, HalfSplit) else None
            found = find_sections(region) if objects_skipped is None else None
            profile = stripe_profile(region, band) if curtains_skipped is None else None
        if roi_corr is not None:
            roi_spec = roi_corr.edges(data[roi_crop[0] : roi_crop[1], roi_crop[2] : roi_crop[3]]).astype(np.float32)
        return _Prepared("", spectrum, roi_spec, halves, found, profile)

    obs = Observations(nz)
    half_obs = (Observations(nz), Observations(nz))
    reasons = [""] * nz
    sections: list[Sections | None] = [None] * nz
    profiles: list[np.ndarray | None] = [None] * nz
    recent: dict[int, _Prepared] = {}
    roi_ref = None
    roi_at = np.zeros(2, dtype=int)  # whole-pixel displacement of the fiducial (previous slice)
    coherences: list[float] = []
    tile_pairs: list[tuple[int, int, np.ndarray, np.ndarray]] = []
    keep_back = max(baselines)
    for z, prep in ordered_map(prepare, list(range(nz)), workers):
        reasons[z] = prep.reason
        sections[z], prep.sections = prep.sections, None
        profiles[z], prep.profile = prep.profile, None
        if not prep.reason:
            if solver is not None:
                for k in baselines:
                    a = z - k
                    if a in recent and isinstance(solver, TileCorrelator):
                        # tile shifts kept: their consensus is weighted once the stack is seen
                        tile_pairs.append((a, z, *solver.tile_shifts(recent[a].spectrum, prep.spectrum)))
                        coherences.append(float(np.median(tile_pairs[-1][3])))
                    elif a in recent:
                        (shift, measured, q), parts = _measure_pair(solver, split, recent[a], prep)
                        coherences.append(q)
                        for target, (s, m) in zip((obs, *half_obs), ((shift, measured), *parts)):
                            if math.isfinite(m):
                                target.add_pair(a, z, s, _pair_sigma(m, k, structure_floor_px))
                recent[z] = prep
                for old in [a for a in recent if a < z - keep_back]:
                    del recent[old]
            if prep.roi is not None:
                origin = (roi[0] - roi_crop[0], roi[2] - roi_crop[2])
                if roi_ref is None:
                    roi_ref = roi_corr.template(_take(prep.roi, origin, roi_corr.shape))
                m = roi_corr.margin
                corner = (origin[0] + roi_at[0] - m, origin[1] + roi_at[1] - m)
                offset, q = roi_corr.locate(roi_ref, _take(prep.roi, corner, roi_corr.area_shape))
                prep.roi = None  # the edge crop is large; only this pass needs it
                if q > 0.02:
                    moved = roi_at + offset
                    roi_at = np.round(moved).astype(int)
                    sigma = 0.02 + 0.05 / math.sqrt(q)
                    obs.add_absolute(z, 0, -moved[0], sigma, "roi")
                    obs.add_absolute(z, 1, -moved[1], sigma, "roi")
        if progress is not None:
            progress(z + 1, nz)

    regime = None
    if tile_pairs:
        regime = _add_tile_pairs(solver, tile_pairs, (obs, *half_obs) if split else (obs,), structure_floor_px)
    choice = shared = None
    if split:
        choice = choose_baselines(half_obs, baselines)
        shared = shared_motion_error(half_obs)
        obs = obs.only_baselines(choice.used)
    good = [z for z in range(nz) if not reasons[z]]
    if len(good) < 2:
        raise InputError(f"only {len(good)} of {nz} slices have usable content (the rest are blank or saturated)")
    edges = tracker.measure(good) if tracker is not None else {}
    if edges:
        structure = solve_trajectory(obs, posterior=False).shifts if obs.pair_a else None
        kept, notes = _check_edges(edges, good, structure, consistency_px)
        dropped = [{"cap": "cap", "wall_left": "left", "wall_right": "right"}[n] for n in edges if n not in kept]
        if dropped and anchor_mode == "auto":
            # the rejected edges cropped the structure region: measure again without them
            again = estimate_drift(
                image, method=method, baselines=baselines, anchor="auto", mask=mask, window=window,
                curtain_suppression=curtain_suppression, bin=bin, decimate=decimate,
                frame=info.without(*dropped), search=search, structure_floor_px=structure_floor_px,
                consistency_px=consistency_px, tiles=tiles, workers=workers, progress=progress,
                objects=objects, curtains=curtains,
            )  # fmt: skip
            again.metadata["frame_rejected"] = rejected + notes + again.metadata["frame_rejected"]
            if not any(a in again.anchor for a in ("frame", "cap", "walls")):
                again.metadata["anchor_fallback"] = "structure: no frame edge passed the rigid-frame checks"
            return again
        edges = kept
        rejected.extend(notes)
    if anchor_mode == "frame" and not any(edges.values()):
        raise ParameterError(
            "anchor='frame': the frame edges could not be measured or failed the rigid-frame checks "
            f"({'; '.join(rejected) or 'no measurement'}); use anchor='auto' or 'none'"
        )

    slopes = tracker.slopes if tracker is not None else {}
    solution = solve_trajectory(_with_edges(obs, edges, slopes, None), posterior=not edges)
    if edges:
        solution = solve_trajectory(_with_edges(obs, edges, slopes, solution.shifts))
    if objects_skipped is None:
        shifts, refined = refine_shifts(solution.shifts, sections)
        solution = dataclasses.replace(solution, shifts=shifts)
        if refined["ran"]:
            refined["uncertainties"] = "consensus"  # sigma / expected residual are not re-derived
    else:
        unmeasured = tracker is not None and not any(edges.values())
        unrefined = "; but none of its edges was measured, so the tile consensus stands unrefined"
        refined = {"ran": False, "reason": objects_skipped + (unrefined if unmeasured else "")}
    halves_px = _content_error(choice)
    content = max(halves_px, shared["shared_px"]) if halves_px is not None and shared else halves_px
    correction = None
    if curtains_skipped is None:
        expected = content if content is not None else float(np.sqrt(np.mean(solution.sigma[good, 1] ** 2)))
        correction, curtain_info = anchor_dx(profiles, solution.shifts[:, 1], expected)
        curtain_info["stripe_width"] = stripes.to_dict()
        curtain_info["band_px"] = list(band)
    else:
        walls_unmeasured = tracker is not None and not any(edges.get(k) for k in ("wall_left", "wall_right"))
        unanchored = "; but none of them was measured, so dx stands on the structure estimate unanchored"
        walls_found = curtains_skipped == _WALLS_FOUND
        curtain_info = {"ran": False, "reason": curtains_skipped + (unanchored if walls_found and walls_unmeasured else "")}
    if correction is not None:
        shifts = solution.shifts.copy()
        shifts[:, 1] += correction.correction
        solution = dataclasses.replace(solution, shifts=shifts)
    elapsed = time.perf_counter() - started
    table = _build_table(solution, obs, reasons, method, info, edges, box, baselines, coherences, elapsed, roi, content)
    if correction is not None:
        table = _with_curtains(table, correction.remaining)
    table.metadata["curtains"] = curtain_info
    table.metadata["frame_rejected"] = rejected
    table.metadata["objects"] = refined
    table.metadata["baseline_choice"] = choice.to_dict() if choice is not None else None
    if content is not None:
        regime = dict(regime or {}, expected_px=content, halves_px=halves_px, shared_motion=shared)
    table.metadata["structure_errors"] = regime
    if rejected and not any(edges.values()):
        table.metadata["anchor_fallback"] = "structure: no frame edge passed the rigid-frame checks"
    return table


# --------------------------------------------------------------------------------------------
# helpers of estimate_drift


def _objects_skipped(objects: bool, solver: Any, roi: Any, tracker: Any, nz: int) -> str | None:
    """Why the object refinement does not run on this stack (None: it runs, and every slice's
    compact objects are segmented in the streaming pass)."""
    if not objects:
        return "off (objects=False)"
    if solver is None:
        return "no structure estimate (method='none')"
    if roi is not None:
        return "a fiducial (anchor box) anchors the drift"
    if tracker is not None:
        return "the milled face's frame was found: its edges anchor the drift"
    if nz < MIN_TRACK:
        return f"{nz} slices: fewer than the {MIN_TRACK} a rod track needs"
    return None


def _curtains_skipped(curtains: bool, solver: Any, roi: Any, info: FrameInfo | None) -> str | None:
    """Why the curtain anchor of dx does not run (None: every slice's stripe profile is kept in
    the streaming pass). Walls dropped by the rigid-frame checks are dropped before a second
    pass without them, where it runs."""
    if not curtains:
        return "off (curtains=False)"
    if solver is None:
        return "no structure estimate (method='none')"
    if roi is not None:
        return "a fiducial (anchor box) anchors the drift"
    if info is not None and (info.left_wall is not None or info.right_wall is not None):
        return _WALLS_FOUND
    return None


_WALLS_FOUND = "the milled face's walls were found: they anchor dx"


def _stripe_width(
    read: Callable[[int], np.ndarray], region_of: Callable[[np.ndarray, int], np.ndarray], nz: int, dtype: np.dtype
) -> StripeWidth:
    """The curtain stripes' width (:func:`volrecon.correct._stripe_width.stripe_width`) on the
    structure regions of a few non-blank slices spread through the stack."""

    def regions() -> Iterator[np.ndarray]:
        for z in spread_indices(nz, DEFAULT_SLICES):
            data = read(z)
            if not blank_reason(data, dtype):
                yield region_of(data, z)

    return stripe_width(regions())


#: expected residual (px) at which a row's quality has fallen to 1/e
QUALITY_SCALE_PX = 0.5


def _quality(residual: np.ndarray) -> np.ndarray:
    """Per-row quality in (0, 1] from the expected residual (px)."""
    return np.exp(-np.asarray(residual) / QUALITY_SCALE_PX)


def _with_curtains(table: DriftTable, remaining: np.ndarray) -> DriftTable:
    """Structure rows relabelled ``"structure+curtains"``, their dx share of the expected
    residual scaled by the share of the error the curtain solve leaves (its posterior over its
    prior sd; the dy share, and everything where the pairs add nothing, stays)."""
    anchors = tuple("structure+curtains" if a == "structure" else a for a in table.anchor)
    old = np.asarray(table.expected_residual_px)
    rows = np.array([a == "structure+curtains" for a in anchors])
    new = old * np.sqrt((1.0 + remaining**2) / 2.0)
    residual = np.where(rows, new, old)
    quality = np.where(rows, _quality(residual), table.quality)
    return dataclasses.replace(table, anchor=anchors, expected_residual_px=residual, quality=quality)


def _take(array: np.ndarray, corner: tuple[int, int], shape: tuple[int, int]) -> np.ndarray:
    """``shape`` block of ``array`` from ``corner``, edge-padded where it runs outside."""
    y0, x0 = int(corner[0]), int(corner[1])
    y1, x1 = y0 + shape[0], x0 + shape[1]
    ny, nx = array.shape
    inner = array[max(0, y0) : max(0, min(ny, y1)), max(0, x0) : max(0, min(nx, x1))]
    if inner.shape == tuple(shape):
        return inner
    if inner.size == 0:
        return np.zeros(shape, dtype=array.dtype)
    top, left = max(0, -y0), max(0, -x0)
    pad = ((top, shape[0] - inner.shape[0] - top), (left, shape[1] - inner.shape[1] - left))
    return np.pad(inner, pad, mode="edge")


def _check_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ParameterError(f"{name}={value!r}: choose one of {', '.join(choices)}")
    return value


def _check_baselines(baselines: Sequence[int], nz: int) -> tuple[int, ...]:
    try:
        values = sorted({int(b) for b in baselines})
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"baselines={baselines!r}: give positive integers such as (1, 2, 4, 8)") from exc
    if not values or values[0] < 1:
        raise ParameterError(f"baselines={baselines!r}: give positive integers such as (1, 2, 4, 8)")
    usable = tuple(b for b in values if b < nz)
    return usable or (1,)


def _check_workers(workers: int | None) -> int:
    if workers is None:
        return max(1, min(4, os.cpu_count() or 1))
    if int(workers) < 1:
        raise ParameterError(f"workers={workers}: give 1 or more")
    return int(workers)


def _check_mask(mask: Any, shape: tuple[int, int, int]) -> tuple[np.ndarray | None, np.ndarray | None]:
    if mask is None:
        return None, None
    arr = np.asarray(mask).astype(bool)
    if arr.shape == shape[1:]:
        if not arr.any():
            raise ParameterError("mask excludes every pixel; True must mark the cross-section to use")
        return arr, None
    if arr.shape == shape:
        return None, arr
    raise ParameterError(f"mask shape {arr.shape} matches neither a slice {shape[1:]} nor the stack {shape}")


def _curtain_rows(setting: bool | int) -> int:
    if setting is True:
        return 3
    if setting is False or setting is None:
        return 0
    value = int(setting)
    if value < 0:
        raise ParameterError(f"curtain_suppression={setting}: give True/False or a number of rows >= 0")
    return value


def _auto_bin(setting: int | str, box: tuple[int, int, int, int], *, coarse: bool = False) -> int:
    side = max(box[1] - box[0], box[3] - box[2])
    if setting == "auto":
        return max(1, math.ceil(side / (550 if coarse else 1100)))
    value = int(setting)
    if value < 1:
        raise ParameterError(f"bin={setting}: give an integer >= 1 or 'auto'")
    return value


def _pair_sigma(measured: float, baseline: int, floor: float) -> float:
    """Uncertainty (px) of one pairwise structure estimate."""
    # features inclined to the milling direction add an error that grows with the baseline
    return math.sqrt(measured**2 + floor**2 * baseline)


def _measure_pair(
    solver: Any, split: HalfSplit | bool | None, a: _Prepared, b: _Prepared
) -> tuple[tuple[np.ndarray, float, float], list[tuple[np.ndarray, float]]]:
    """``(shift, measured sigma, coherence)`` of a pair by one global correlation (or SimpleITK),
    and ``(shift, sigma)`` of its two halves. Tile pairs go through :func:`_add_tile_pairs`."""
    shift, q = solver.pair_shift(a.spectrum, b.spectrum)
    parts = split.pair_shifts(a.halves, b.halves) if isinstance(split, HalfSplit) else []
    return (shift, coherence_sigma(q) if q > 0.01 else math.nan, q), parts


def _add_tile_pairs(
    solver: TileCorrelator,
    pairs: list[tuple[int, int, np.ndarray, np.ndarray]],
    targets: tuple[Observations, ...],
    floor: float,
) -> dict[str, Any] | None:
    """Consensus of each pair's tiles, weighted by how persistently each tile's content moves.

    Each tile's weight is a 2 x 2 matrix, the inverse of its wander covariance from the
    consensus (:func:`volrecon.correct._registration_persist.wander_information`), refined over
    ``INFORMATION_ROUNDS`` rounds. Measured without a frame (RMS px, structure only): 512 x 512
    x 96 rod-cathode stacks, seeds 2-6 zero / random walk, 4.51/3.44, 3.63/3.11, 3.46/3.60,
    1.13/1.24, 1.80/1.95 with scalar weights -> 2.74/3.10, 3.00/2.73, 3.15/3.42, 0.61/0.78,
    1.50/1.63; 1024 x 1024 x 200 seeds 0/1 0.87/1.17, 0.97/1.18 -> 0.87/0.96, 0.59/0.90.

    ``targets``: the whole region's observations, then (optionally) the left and right halves'.
    Where the consensus' error is mostly persistent content motion, a pair ``k`` slices apart
    is the consensus of the tiles whose content stays alike over ``k`` slices (median coherence
    at least ``SAME_CONTENT`` of the neighbour pairs') and wanders no more than the median tile's
    (static content such as the face's frame or a fiducial), or, with fewer than three such tiles,
    only a bridge (sigma times ``BRIDGE_FACTOR``). Returns what was found (None with too few
    neighbour pairs to tell). See :mod:`volrecon.correct._registration_persist`.
    """
    steps = sorted((p for p in pairs if p[1] - p[0] == 1), key=lambda p: p[0])
    weights = regime = None
    per_baseline: dict[int, tuple[np.ndarray | None, float]] = {}
    if len(steps) >= 8:
        shifts = np.stack([p[2] for p in steps])
        q = np.stack([p[3] for p in steps])
        votes = q >= solver.min_coherence
        consensus = np.array([solver.split_consensus(s, c)[0][0] for s, c in zip(shifts, q)])
        for _ in range(INFORMATION_ROUNDS):
            # each round measures the wanders from a consensus less dragged by moving content
            weights = wander_information(shifts, votes, consensus)
            consensus = np.array([solver.split_consensus(s, c, weights)[0][0] for s, c in zip(shifts, q)])
        scalar = np.trace(weights, axis1=1, axis2=2) / 2.0
        persistent, random = chain_errors(shifts, votes, consensus, scalar)
        regime = {"persistent_px": persistent, "random_px": random, "long_pairs": {}}
        if persistent > random:
            # still in every direction: a tile over one straight edge is still only across it
            least = np.linalg.eigvalsh(weights)[:, 0]
            steady = least >= np.median(least)
            for k, alike in _alike_tiles(pairs).items():
                alike = alike & steady
                enough = alike.sum() >= 3
                per_baseline[k] = (weights * alike[:, None, None], 1.0) if enough else (weights, BRIDGE_FACTOR)
                regime["long_pairs"][k] = f"{int(alike.sum())} alike tiles" if enough else "bridge only"
    for a, b, shifts, q in pairs:
        w, factor = per_baseline.get(b - a, (weights, 1.0))
        for target, (shift, measured, _) in zip(targets, solver.split_consensus(shifts, q, w)):
            if math.isfinite(measured):
                target.add_pair(a, b, shift, _pair_sigma(measured, b - a, floor) * factor)
    return regime


def _alike_tiles(pairs: list[tuple[int, int, np.ndarray, np.ndarray]]) -> dict[int, np.ndarray]:
    """Per baseline > 1: the tiles whose median coherence is ``SAME_CONTENT`` of the neighbour pairs' or more."""
    coherence: dict[int, list[np.ndarray]] = {}
    for a, b, _, q in pairs:
        coherence.setdefault(b - a, []).append(q)
    if 1 not in coherence:
        return {}
    near = np.maximum(np.median(np.stack(coherence[1]), axis=0), 1e-12)
    return {k: np.median(np.stack(qs), axis=0) >= SAME_CONTENT * near for k, qs in coherence.items() if k > 1}


def _phase_solver(geometry: SpectrumGeometry, tiles: int) -> PhaseCorrelator | TileCorrelator:
    """Tile consensus when the region holds tiles of at least 64 px, else one global correlation."""
    if int(tiles) < 0:
        raise ParameterError(f"tiles={tiles}: give 0 (one global correlation) or a number of tiles >= 2")
    if int(tiles) >= 2 and min(geometry.binned_shape) // int(tiles) >= 64:
        return TileCorrelator(geometry, tiles=int(tiles))
    return PhaseCorrelator(geometry, workers=1)


def _find_frame(
    image: Any,
    frame: FrameInfo | None,
    mode: str,
    reference: int | None,
    bottom: int | None,
    ny: int,
    nx: int,
    search: int,
) -> tuple[FrameInfo | None, list[str]]:
    """Detect (or check) the frame; returns it and the notes on edges rejected as not rigid."""
    rejected: list[str] = []
    if mode in ("none", "roi") and frame is None:
        return None, rejected
    if frame is None:
        frame = detect_frame(image, reference=reference, bottom=bottom)
        if frame.found:
            frame, rejected = _confirm_on_probes(image, frame, bottom, search)
    elif tuple(frame.shape) != (ny, nx):
        raise ParameterError(f"frame was detected on {frame.shape} slices, the stack has {ny}x{nx}")
    if mode == "frame" and not frame.found:
        why = f" ({'; '.join(rejected)})" if rejected else ""
        raise ParameterError(f"anchor='frame': no cap edge or trench wall found{why}; use anchor='auto' or 'none'")
    return frame, rejected


def _confirm_on_probes(
    image: Any, info: FrameInfo, bottom: int | None, search: int
) -> tuple[FrameInfo, list[str]]:
    """Keep only edges found again, at the same place, on slices a quarter of the stack away.

    The frame does not change with depth: its edges sit at the same place in every slice up to
    the drift (at most ``search`` px). An edge of the specimen (a layer boundary, a large
    particle) that happened to pass the single-slice tests is gone or elsewhere further in.
    """
    nz = image.shape[0]
    probes = sorted({nz // 4, (3 * nz) // 4} - {info.reference_slice}) if nz >= 8 else []
    positions = {"cap": info.cap_edge, "left": info.left_wall, "right": info.right_wall}
    drop: dict[str, str] = {}
    missing = {name: 0 for name in positions}
    for z in probes:
        try:
            other = detect_frame(image, reference=z, bottom=bottom)
        except InputError:
            continue  # a blank or NaN probe slice says nothing about the frame
        seen = {"cap": other.cap_edge, "left": other.left_wall, "right": other.right_wall}
        for name, pos in positions.items():
            if pos is None or name in drop:
                continue
            if seen[name] is None:
                missing[name] += 1  # a faint wall may be missed on one slice; an absent one on all
            elif abs(seen[name] - pos) > search:
                drop[name] = f"{name}: at {seen[name]:.0f} px on slice {z}, {pos:.0f} px on slice {info.reference_slice}"
    for name, count in missing.items():
        if probes and count == len(probes) and name not in drop:
            drop[name] = f"{name}: not found on probe slices {probes}"
    if not drop:
        return info, []
    return info.without(*drop), list(drop.values())


def _check_edges(
    edges: dict[str, dict[int, Any]], good: list[int], structure: np.ndarray | None, tolerance: float
) -> tuple[dict[str, dict[int, Any]], list[str]]:
    """Drop edges that do not move like one rigid frame (see ``consistency_px``)."""
    notes: list[str] = []
    kept = dict(edges)
    for name, found in edges.items():
        if len(found) < 0.8 * len(good):
            notes.append(f"{name}: measured in only {len(found)} of {len(good)} slices")
            del kept[name]
    deviation: dict[str, float] = {}
    walls_agree = False
    if "wall_left" in kept and "wall_right" in kept:
        left, right = kept["wall_left"], kept["wall_right"]
        zs = sorted(set(left) & set(right))
        if len(zs) >= 3:
            d = np.array([left[z].shift - right[z].shift for z in zs])
            spread = _robust_std(d)
            own = float(np.median([math.hypot(left[z].sigma, right[z].sigma) for z in zs]))
            walls_agree = spread <= 5.0 * own + 0.3
            if not walls_agree:
                notes.append(f"walls disagree on dx (spread {spread:.2f} px vs {own:.2f} px expected)")
    if structure is not None:
        for name in list(kept):
            if walls_agree and name != "cap":
                continue  # two independent edges moving as one: the frame, whatever the structure says
            zs = np.array(sorted(kept[name]))
            axis = 0 if name == "cap" else 1
            d = np.array([-kept[name][z].shift for z in zs]) - structure[zs, axis]
            deviation[name] = float(np.percentile(np.abs(d - np.median(d)), 95))
            if deviation[name] > tolerance:
                notes.append(f"{name}: departs {deviation[name]:.1f} px from the structure trajectory")
                del kept[name]
    if "wall_left" in kept and "wall_right" in kept and not walls_agree and deviation:
        worse = max(("wall_left", "wall_right"), key=lambda n: deviation.get(n, 0.0))
        notes.append(f"{worse}: dropped, the wall further from the structure trajectory")
        del kept[worse]
    return kept, notes


def _robust_std(values: np.ndarray) -> float:
    return float(1.4826 * np.median(np.abs(values - np.median(values))))


def _structure_box(
    info: FrameInfo | None,
    overlay: np.ndarray,
    mask: np.ndarray | None,
    shape: tuple[int, int],
    window: tuple[int, int] | None,
) -> tuple[int, int, int, int]:
    ny, nx = shape
    y0, y1, x0, x1 = info.specimen if info is not None and info.found else (0, ny, 0, nx)
    if overlay.size and overlay.any():
        # keep the longest run of non-overlay rows inside the box
        free = ~overlay[y0:y1]
        best, start = (y0, y1), None
        best_len = 0
        for i, ok in enumerate(np.r_[free, False]):
            if ok and start is None:
                start = i
            elif not ok and start is not None:
                if i - start > best_len:
                    best, best_len = (y0 + start, y0 + i), i - start
                start = None
        y0, y1 = best
    if mask is not None:
        rows = np.flatnonzero(mask.any(axis=1))
        cols = np.flatnonzero(mask.any(axis=0))
        y0, y1 = max(y0, int(rows[0])), min(y1, int(rows[-1]) + 1)
        x0, x1 = max(x0, int(cols[0])), min(x1, int(cols[-1]) + 1)
    if window is not None:
        try:
            wh, ww = (int(v) for v in window)
        except (TypeError, ValueError) as exc:
            raise ParameterError(f"window={window!r}: give (height, width) in pixels") from exc
        if wh < 32 or ww < 32:
            raise ParameterError(f"window={window!r}: give at least 32x32 px")
        if wh > y1 - y0 or ww > x1 - x0:
            raise ParameterError(
                f"window={window!r} is larger than the {y1 - y0}x{x1 - x0} px registration region; "
                "use a smaller window"
            )
        cy, cx = (y0 + y1) // 2, (x0 + x1) // 2
        y0, x0 = cy - wh // 2, cx - ww // 2
        y1, x1 = y0 + wh, x0 + ww
    if y1 - y0 < 32 or x1 - x0 < 32:
        raise InputError(f"the registration region {(y0, y1, x0, x1)} is smaller than 32x32 px; check mask/frame")
    return (y0, y1, x0, x1)


def _fill_masked(region: np.ndarray, valid: np.ndarray) -> np.ndarray:
    if valid.all():
        return region
    out = np.array(region, dtype=np.float32, copy=True)
    fill = float(out[valid].mean()) if valid.any() else 0.0
    out[~valid] = fill
    return out


def _with_edges(
    obs: Observations,
    edges: dict[str, dict[int, Any]],
    slopes: dict[str, float],
    current: np.ndarray | None,
) -> Observations:
    """Pairs/ROI observations plus the frame edges as absolute observations.

    Edge shift ``s`` means the slice content moved by ``+s``, so the registering shift is
    ``-s``; a tilted edge also moves when content moves along it, corrected with the current
    estimate of the other axis (``current``).
    """
    out = Observations(
        obs.n,
        list(obs.pair_a),
        list(obs.pair_b),
        list(obs.pair_d),
        list(obs.pair_sigma),
        list(obs.abs_z),
        list(obs.abs_axis),
        list(obs.abs_value),
        list(obs.abs_sigma),
        list(obs.abs_source),
    )
    for name, found in edges.items():
        axis = 0 if name == "cap" else 1
        slope = slopes.get(name, 0.0) if current is not None else 0.0
        zs = np.array(sorted(found))
        if zs.size == 0:
            continue
        values = np.array([-found[z].shift + (slope * current[z, 1 - axis] if current is not None else 0.0) for z in zs])
        keep = screen_series(zs, values)
        for z, value, ok in zip(zs, values, keep):
            if ok:
                out.add_absolute(int(z), axis, float(value), found[z].sigma, name)
    return out


def _content_error(choice: Any) -> float | None:
    """Expected per-axis error (px RMS) of a structure-only trajectory, from the two halves of the face.

    The left and right halves hold independent content and the same drift, so their trajectories
    differ by the content-motion errors alone: ``D`` (RMS length of the difference) is ``2**0.5``
    times one half's error. The whole face's error lies between ``D / (2 * 2**0.5)`` per axis
    (halves independent, their errors averaging out) and ``D / 2`` (content motion shared by
    the halves' errors, e.g. a rough layer interface spanning the face); the larger is returned.
    None without a split.

    Content motion shared by *both* halves alike (features all inclined the same way) moves the
    drift estimate and this measure does not see it (registering the phantoms' noise-free
    rendering gives the same residual as their noisy acquisition,
    ``benchmarks/results/registration.md``); :mod:`volrecon.correct._registration_shared`
    measures it where the content moves at more than one velocity.
    """
    if choice is None or tuple(choice.used) not in choice.disagreement:
        return None
    return float(choice.disagreement[tuple(choice.used)]) / 2.0


def _build_table(
    solution: Solution,
    obs: Observations,
    reasons: list[str],
    method: str,
    info: FrameInfo | None,
    edges: dict[str, dict[int, Any]],
    box: tuple[int, int, int, int],
    baselines: tuple[int, ...],
    coherences: list[float],
    elapsed: float,
    roi: tuple[int, int, int, int] | None,
    content_px: float | None = None,
) -> DriftTable:
    nz = obs.n
    good = [z for z in range(nz) if not reasons[z]]
    shifts = solution.shifts - solution.shifts[good[0]]
    has_y = np.zeros(nz, bool)
    has_x = np.zeros(nz, bool)
    for name, found in edges.items():
        for z in found:
            (has_y if name == "cap" else has_x)[z] = True
    sigma = solution.sigma  # pair sigmas already carry the pairs' robust scale
    residual = np.sqrt(np.mean(sigma**2, axis=1))
    has_roi = np.zeros(nz, bool)
    for z, src in zip(obs.abs_z, obs.abs_source):
        if src == "roi":
            has_roi[z] = True
    rejected_per_slice = np.zeros(nz, int)
    for a, b, bad in zip(obs.pair_a, obs.pair_b, solution.pair_rejected):
        if bad:
            rejected_per_slice[a] += 1
            rejected_per_slice[b] += 1
    anchors, flags = [], []
    for z in range(nz):
        if reasons[z]:
            anchors.append("interpolated")
        elif has_y[z] and has_x[z]:
            anchors.append("frame")
        elif has_y[z]:
            anchors.append("cap")
        elif has_x[z]:
            anchors.append("walls")
        elif has_roi[z]:
            anchors.append("roi")
        else:
            anchors.append("structure")
        notes = [reasons[z], "interpolated"] if reasons[z] else []
        if rejected_per_slice[z]:
            notes.append(f"outlier-pairs:{rejected_per_slice[z]}")
        flags.append(";".join(notes))
    if content_px is not None:
        residual = _scaled_to_content(residual, anchors, content_px)
    quality = _quality(residual)
    quality[[bool(r) for r in reasons]] = 0.0
    metadata = {
        "parameters": {
            "baselines": list(baselines),
            "structure_box": list(box),
            "roi": list(roi) if roi else None,
        },
        "frame": info.to_dict() if info is not None else None,
        "pairs": len(obs.pair_a),
        "pairs_rejected": int(solution.pair_rejected.sum()),
        "frame_measurements": {name: len(found) for name, found in edges.items()},
        "median_pair_coherence": float(np.median(coherences)) if coherences else None,
        "robust_scale": solution.scale,
        "seconds": elapsed,
        "slices_per_second": nz / elapsed if elapsed > 0 else None,
    }
    return DriftTable(shifts, quality, tuple(anchors), residual, tuple(flags), method, metadata)


def _scaled_to_content(residual: np.ndarray, anchors: list[str], content_px: float) -> np.ndarray:
    """Structure-only rows' expected residual at the level the split halves measure.

    The posterior of the solve follows the pairs' model (a fixed per-pair floor, a random walk),
    whose level is a guess: 2.0 px against 0.6-3.4 px measured on 96-slice 512 px phantoms,
    2.9 px against 0.6-1.0 px on 200-slice 1024 px ones. Its shape along the stack (larger at
    the ends and across gaps, where fewer pairs hold a slice) is kept and its RMS over those
    rows set to ``content_px``, measured on the data.
    """
    rows = np.array([a in ("structure", "interpolated") for a in anchors])
    if not rows.any():
        return residual
    level = float(np.sqrt(np.mean(residual[rows] ** 2)))
    shape = residual / level if level > 0 else np.ones_like(residual)
    return np.where(rows, content_px * shape, residual)


# --------------------------------------------------------------------------------------------
# application


def output_geometry(table: DriftTable, shape: tuple[int, int], mode: str = "crop") -> dict[str, Any]:
    """Output slice shape, where input pixel (0, 0) lands, and the box valid in every slice.

    Parameters
    ----------
    table : DriftTable
        The drift to apply.
    shape : tuple of int
        ``(rows, columns)`` of one input slice.
    mode : {"crop", "pad", "same"}
        ``"crop"``: keep only the box valid in every slice; ``"pad"``: grow the canvas so no
        pixel is lost (fill 0); ``"same"``: keep the input shape.

    Returns
    -------
    dict
        ``shape`` (output rows, columns), ``origin`` (offset added to every shift),
        ``valid`` (``(y0, y1, x0, x1)`` valid in every output slice).
    """
    mode = _check_choice("mode", mode, ("crop", "pad", "same"))
    rows, cols = int(shape[0]), int(shape[1])
    if mode == "crop":
        y0, y1, x0, x1 = table.valid_region((rows, cols))
        return {"mode": mode, "shape": (y1 - y0, x1 - x0), "origin": (-y0, -x0), "valid": (0, y1 - y0, 0, x1 - x0)}
    if mode == "same":
        return {"mode": mode, "shape": (rows, cols), "origin": (0, 0), "valid": table.valid_region((rows, cols))}
    dy, dx = table.shifts[:, 0], table.shifts[:, 1]
    oy, ox = max(0, math.ceil(-float(dy.min()) - 1e-6)), max(0, math.ceil(-float(dx.min()) - 1e-6))
    ey, ex = max(0, math.ceil(float(dy.max()) - 1e-6)), max(0, math.ceil(float(dx.max()) - 1e-6))
    y0, y1, x0, x1 = table.valid_region((rows, cols))
    return {
        "mode": mode,
        "shape": (rows + oy + ey, cols + ox + ex),
        "origin": (oy, ox),
        "valid": (y0 + oy, y1 + oy, x0 + ox, x1 + ox),
    }


def _shift_slice(data: np.ndarray, shift: np.ndarray, geom: dict[str, Any], order: int, out_dtype) -> np.ndarray:
    rows, cols = geom["shape"]
    oy, ox = geom["origin"]
    data = np.asarray(data, dtype=np.float32)
    if geom["mode"] == "pad":
        canvas = np.zeros((rows, cols), dtype=np.float32)
        canvas[oy : oy + data.shape[0], ox : ox + data.shape[1]] = data
        moved = ndimage.shift(canvas, shift, order=order, mode="constant", cval=0.0)
    elif geom["mode"] == "crop" and order == 1:
        moved = shift_linear_nearest(data, shift, window=(slice(-oy, -oy + rows), slice(-ox, -ox + cols)))
    elif geom["mode"] == "crop":
        moved = ndimage.shift(data, shift, order=order, mode="nearest")[-oy : -oy + rows, -ox : -ox + cols]
    else:
        moved = ndimage.shift(data, shift, order=order, mode="constant", cval=0.0)
    if np.issubdtype(out_dtype, np.integer):
        info = np.iinfo(out_dtype)
        moved = np.clip(np.rint(moved), info.min, info.max)
    return moved.astype(out_dtype, copy=False)


def apply_drift(image: Any, table: DriftTable, *, mode: str = "crop", order: int = 1) -> Any:
    """Shift every slice by its drift-table row (``scipy.ndimage.shift``), lazily for dask.

    Parameters
    ----------
    image : array, shape (Z, Y, X)
        numpy or dask stack; numpy in gives numpy out, dask in gives a lazy dask array
        (one task per slice).
    table : DriftTable
        From :func:`estimate_drift` (or :meth:`DriftTable.from_csv`), one row per slice.
    mode : {"crop", "pad", "same"}
        ``"crop"`` keeps the box valid in every slice (``table.valid_region``); ``"pad"`` grows
        the canvas so no data is lost (fill 0); ``"same"`` keeps the input shape (fill 0).
        :func:`output_geometry` gives the resulting shape and valid box.
    order : int
        Spline interpolation order (0–5).

    Returns
    -------
    array
        The registered stack, same dtype as the input.

    Examples
    --------
    >>> import numpy as np
    >>> stack = np.random.default_rng(0).random((3, 64, 64)).astype(np.float32)
    >>> table = DriftTable(np.array([[0, 0], [1.5, -2], [3, 1]]), np.ones(3), ("structure",) * 3,
    ...                    np.zeros(3), ("",) * 3)
    >>> apply_drift(stack, table).shape
    (3, 61, 61)
    """
    nz = check_stack(image)[0]
    if len(table) != nz:
        raise ParameterError(f"the drift table has {len(table)} rows, the stack {nz} slices; use the matching table")
    if not 0 <= int(order) <= 5:
        raise ParameterError(f"order={order}: give a spline order 0..5")
    geom = output_geometry(table, image.shape[1:], mode)
    out_dtype = np.dtype(image.dtype)
    shifts = np.asarray(table.shifts)
    if is_dask(image):
        import dask.array as da

        stack = image.rechunk({0: 1, 1: -1, 2: -1})

        def block(chunk: np.ndarray, block_info=None) -> np.ndarray:
            z = block_info[0]["array-location"][0][0]
            return _shift_slice(chunk[0], shifts[z], geom, order, out_dtype)[None]

        return da.map_blocks(
            block, stack, dtype=out_dtype, chunks=((1,) * nz, (geom["shape"][0],), (geom["shape"][1],))
        )
    arr = np.asarray(image)
    out = np.empty((nz, *geom["shape"]), dtype=out_dtype)
    for z in range(nz):
        out[z] = _shift_slice(arr[z], shifts[z], geom, order, out_dtype)
    return out


# --------------------------------------------------------------------------------------------
# figure


def plot_drift(table: DriftTable, path: str | Path, *, truth: np.ndarray | None = None) -> Path:
    """Save a PNG of the drift trajectory (dy, dx per slice, coloured by anchor) and its residual.

    Parameters
    ----------
    table : DriftTable
        The estimate.
    path : str or Path
        Output PNG.
    truth : ndarray, shape (Z, 2), optional
        Known drift (phantoms), drawn dashed after removing the mean offset.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    z = np.arange(len(table))
    fig, axes = plt.subplots(3, 1, figsize=(8, 7), sharex=True, constrained_layout=True)
    colours = {
        "frame": "C2", "cap": "C1", "walls": "C4", "roi": "C5", "structure": "C0", "structure+curtains": "C6",
        "interpolated": "C3",
    }  # fmt: skip
    for ax, col, name in ((axes[0], 0, "dy"), (axes[1], 1, "dx")):
        ax.plot(z, table.shifts[:, col], color="0.6", lw=0.8)
        for label, colour in colours.items():
            sel = np.array([a == label for a in table.anchor])
            if sel.any():
                ax.plot(z[sel], table.shifts[sel, col], ".", ms=3, color=colour, label=label)
        if truth is not None:
            t = np.asarray(truth, float)[:, col]
            ax.plot(z, t - t.mean() + table.shifts[:, col].mean(), "k--", lw=0.8, label="truth")
        ax.set_ylabel(f"{name} (px)")
    axes[0].legend(loc="best", fontsize=7, ncol=3)
    axes[2].semilogy(z, np.maximum(table.expected_residual_px, 1e-3), color="C3")
    axes[2].set_ylabel("expected residual (px)")
    axes[2].set_xlabel("slice")
    fig.suptitle(f"drift ({table.method}); expected residual RMS {table.expected_residual_rms_px:.3f} px")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
