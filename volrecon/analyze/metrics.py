"""Full analysis of a labelled volume: the metrics.json structure, tables and figures."""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import tempfile
import time
import multiprocessing
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from volrecon._layer_ends import side_ends, stack_ends
from volrecon.analyze._common import (
    AXIS_NAMES, axis_index, box_slabs, chunk_rows, json_float, json_safe, lazy_volume, phase_map, read, region_map,
    release_rows, require_names, voxel_triplet, z_slabs,
)
from volrecon.analyze._survey import Survey, bounding_box, survey_volume
from volrecon.analyze.connectivity import ConnectivityResult, cluster_connectivity
from volrecon.analyze.fractions import region_fractions, _fractions_from_row
from volrecon.analyze.layers import axis_from_profiles, inner_box_bits, porous_extent_of, through_plane_axis
from volrecon.analyze.poresize import PoreSizeResult, pore_size_distribution
from volrecon.analyze.profiles import DepthProfile, depth_profile_slabs
from volrecon.analyze.rev import REV_CHORDS, ChordCounter, ChordLengths, RepresentativeBox, representative_box
from volrecon.analyze.surface import SurfaceResult, specific_surface_area
from volrecon.analyze.thickness import ThicknessResult, sei_thickness, sei_thickness_slabs
from volrecon.analyze.tortuosity import TortuosityResult, tortuosity
from volrecon.errors import InputError, OutputError, ParameterError

__all__ = ["AnalysisResult", "analyze_volume", "write_analysis"]


@dataclass(frozen=True)
class AnalysisResult:
    """Everything :func:`analyze_volume` measured; ``to_dict()`` is metrics.json."""

    voxel_size_nm: tuple[float, float, float]
    shape: tuple[int, int, int]
    through_plane_axis: int | None
    phase_fractions: dict[str, float]
    regions: dict[str, dict[str, Any]]
    cathode_box: tuple[tuple[int, int], ...] | None
    void_clusters: ConnectivityResult | None
    pore_connectivity: ConnectivityResult | None
    tortuosity: dict[str, dict[str, TortuosityResult]] = field(default_factory=dict)
    sei: ThicknessResult | None = None
    profile: DepthProfile | None = None
    pore_sizes: dict[str, PoreSizeResult] = field(default_factory=dict)
    surfaces: dict[str, SurfaceResult] = field(default_factory=dict)
    timings_s: dict[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    tortuosity_box_full: tuple[tuple[int, int], ...] | None = None
    tortuosity_max_voxels: int | None = None
    representative: RepresentativeBox | None = None
    budget_capped: bool = False

    @property
    def tortuosity_capped(self) -> bool:
        """True when the tortuosity box is smaller than the porous box (cut to a representative
        size or to ``tortuosity_max_voxels``)."""
        return self.tortuosity_box_full is not None and self.tortuosity_box_full != self.cathode_box

    def to_dict(self) -> dict[str, Any]:
        tp = self.through_plane_axis
        regions = json_safe(self.regions)
        cat = regions.setdefault("cathode", {})
        if self.void_clusters is not None:
            vc = self.void_clusters.to_dict()
            cat["void_clusters"] = vc
        if self.pore_connectivity is not None:
            cat["pore_connectivity"] = self.pore_connectivity.to_dict()
        if self.tortuosity:
            tf: dict[str, Any] = {}
            details: dict[str, Any] = {}
            for phase, per_axis in self.tortuosity.items():
                tf[phase] = {AXIS_NAMES[int(a)]: json_float(r.tortuosity_factor) for a, r in per_axis.items()}
                tf[phase]["through_plane"] = (json_float(per_axis[str(tp)].tortuosity_factor)
                                              if tp is not None and str(tp) in per_axis else None)
                details[phase] = {AXIS_NAMES[int(a)]: r.to_dict() for a, r in per_axis.items()}
            cat["tortuosity_factor"] = tf
            cat["tortuosity"] = details
            cat["tortuosity_box"] = [list(v) for v in self.cathode_box] if self.cathode_box else None
            cat["tortuosity_box_capped"] = {
                "capped": self.tortuosity_capped, "max_voxels": self.tortuosity_max_voxels,
                "full_box": [list(v) for v in self.tortuosity_box_full] if self.tortuosity_box_full else None,
                "by_max_voxels": self.budget_capped,
                "representative": self.representative.to_dict() if self.representative is not None else None,
            }
            pen = {}
            for a, r in self.tortuosity.get("pore", {}).items():
                e = self.tortuosity.get("electrolyte", {}).get(a)
                if e is not None:
                    pen[AXIS_NAMES[int(a)]] = json_float(e.macmullin / r.macmullin) if r.percolating else None
            cat["degradation_penalty_macmullin_ratio"] = pen
        if self.pore_sizes:
            cat["pore_size"] = {k: v.to_dict() for k, v in self.pore_sizes.items()}
        if self.surfaces:
            cat["specific_surface_area"] = {k: v.to_dict() for k, v in self.surfaces.items()}
        if self.sei is not None:
            anode = regions.setdefault("anode", {})
            anode["sei_thickness_nm"] = self.sei.to_dict()
            anode["sei_coverage"] = self.sei.coverage_dict()
        out = {
            "calibration": {"voxel_size_nm": dict(zip(AXIS_NAMES, self.voxel_size_nm))},
            "shape": list(self.shape),
            "through_plane_axis": AXIS_NAMES[tp] if tp is not None else None,
            "phase_fractions": {k: json_float(v) for k, v in self.phase_fractions.items()},
            "regions": regions,
            "timings_s": {k: round(v, 3) for k, v in self.timings_s.items()},
            "notes": list(self.notes),
            "units": {"fractions": "1 (0-1)", "lengths": "nm", "specific_surface_area": "1/m and 1/nm"},
        }
        if self.profile is not None:
            out["depth_profile"] = {k: v for k, v in self.profile.to_dict().items() if k in ("reference", "reason")}
        warnings = []
        if self.tortuosity and self.budget_capped:
            warnings.append(f"tortuosity, pore sizes and surface areas measured in the centre of the cathode box "
                            f"({self.tortuosity_max_voxels} voxels at most), smaller than a representative box: "
                            "raise tortuosity_max_voxels where memory allows")
        rep = self.representative
        if self.tortuosity and rep is not None and not rep.reached:
            sides = ", ".join(f"{a} {v:.0f} nm" if math.isfinite(v) else f"{a} unbounded (no boundary crossed)"
                              for a, v in rep.target_nm.items())
            warnings.append(f"the cathode is smaller than a representative volume ({rep.rev_chords:g} chord lengths: "
                            f"{sides}): its tortuosity, pore sizes and surface areas may differ from the electrode's")
        thin = _thin_film_warning(self.sei, self.voxel_size_nm)
        if thin:
            warnings.append(thin)
        if warnings:
            out["warnings"] = warnings
        return out


THIN_FILM_VOXELS = 2.0
"""A layer whose median thickness is under this many voxels along its stacking axis is measured
from edges the probe blur and the edge rims have merged: on phantoms the SEI reads +24 % to +71 %
thick at 1.0-1.4 voxels and within ~5-13 % from 2 voxels on (``benchmarks/results/sei_thickness.md``,
``sei_thin_film.md``)."""


def _thin_film_warning(sei: ThicknessResult | None, voxel_size_nm: tuple[float, float, float]) -> str | None:
    """A warning when the SEI is too thin for its voxels to measure it unbiased (else ``None``)."""
    if sei is None or not math.isfinite(sei.median):
        return None
    voxel = float(voxel_size_nm[sei.axis])
    if sei.median >= THIN_FILM_VOXELS * voxel:
        return None
    return (f"the SEI's median thickness {sei.median:.1f} nm is under {THIN_FILM_VOXELS:g} voxels along "
            f"{AXIS_NAMES[sei.axis]} ({voxel:.1f} nm): a film this thin is read from blurred edges and "
            "measures too thick (up to +70 % on phantoms); image it at finer pixels to measure it")


RESOLVABLE_NM = 30.0
"""Default diameter (nm) of the smallest resolved cluster, the segmentation's smallest kept piece
(``volrecon.segment.segment_volume``'s ``min_size_nm``).  A phase drawn at voxel scale holds many
pieces of one to a few voxels (where a threshold grazes a neighbour, where a rough surface cuts a
thin neck); the probe blur and the slice thickness hide them, the segmentation merges what is
smaller than this into the surroundings, so counts over every piece measure them, not the
microstructure.  Counted above this volume, the same rule applied to a measured and a true volume
compares what the imaging can show."""

TORTUOSITY_MAX_VOXELS = 12_000_000
"""Default cap of the tortuosity box, the memory budget applied after its cut to a representative
size (:data:`volrecon.analyze.rev.REV_CHORDS` chord lengths; a box cut further by this cap is
flagged ``by_max_voxels`` with a warning).  The box is the analysis's largest memory: ~70 bytes per
voxel while the solves run (~0.8 GB at the cap; the surface areas follow them).  Longer
stacks reach it (a 512x512-pixel cathode 2 um thick does at ~135 slices), so the stage's memory
is the same for any longer stack; 12 M voxels is a box of a few um on a side at 10 nm voxels
(e.g. 2.2 um through the layer x 2.3 um x 2.3 um) and more at coarser ones."""


def analyze_volume(
    labels: Any,
    regions: Any,
    *,
    voxel_size_nm: Any,
    phase_names: Mapping[str, int] | None = None,
    region_names: Mapping[str, int] | None = None,
    through_plane_axis: int | str | None = None,
    tortuosity_axes: tuple[int | str, ...] | None = None,
    workers: int | None = None,
    connectivity: int = 6,
    resolvable_nm: float = RESOLVABLE_NM,
    profile_bin_nm: float | None = None,
    pore_size: bool = True,
    marching_cubes: bool = True,
    chunked_above_voxels: int | None = 4 * 1024 * 1024,
    chunks: tuple[int, int, int] = (64, 256, 256),
    tortuosity_max_voxels: int | None = TORTUOSITY_MAX_VOXELS,
    rev_chords: float | None = REV_CHORDS,
    rev_cut: bool = False,
) -> AnalysisResult:
    """Measure a labelled electrode volume (fractions, profiles, clusters, tortuosity, SEI).

    Parameters
    ----------
    labels, regions : array_like of int, shape (z, y, x)
        Phase and region (cell layer) label images (numpy or dask).  A dask array (the run
        folder's OME-Zarr labels) is read slab by slab and box by box, never whole.  Memory
        still grows with the volume in one place, the cathode mask packed to one bit per voxel
        (V/8 bytes); the clusters keep per slab face only the distinct pairs of labels that
        touch across it, the depth profile's distance transform streams along z, and the
        tortuosity box is capped by ``tortuosity_max_voxels``.
    voxel_size_nm : float or (float, float, float)
        Voxel size (z, y, x) in nm.
    phase_names, region_names : mapping, optional
        Name -> label value (default vocabulary of :mod:`volrecon.phases`).
    through_plane_axis : int or str, optional
        Stacking axis; found from the regions when omitted.
    tortuosity_axes : tuple, optional
        Axes to solve along (default all three).
    workers : int, optional
        Tortuosity solves run at once (threads; default up to 2, the cores of a laptop).
    connectivity : {6, 18, 26}
        Connectivity of the void clusters.
    resolvable_nm : float
        Diameter (nm) of the smallest cluster counted as resolved: the void and pore clusters'
        ``resolved`` figures count the clusters of at least the volume of a ball of this
        diameter (:data:`RESOLVABLE_NM`, the segmentation's smallest kept piece by default);
        ``count`` and ``mean_volume_nm3`` still cover every cluster.  0 counts every cluster.
    profile_bin_nm : float, optional
        Depth-profile bin width.
    pore_size, marching_cubes : bool
        Switch off the slower pore-size and marching-cubes measurements.
    chunked_above_voxels : int, optional
        Volumes with more voxels than this label their clusters slab by slab along z (slabs of
        ``prod(chunks)`` voxels, merged across slab faces: the same clusters as whole-array
        labelling, memory bounded by the slab); ``None`` always labels the whole array.
    chunks : tuple of int
        Their product is the slab size of the slab-by-slab labelling and reading.
    tortuosity_max_voxels : int, optional
        Boxes with more voxels are cut to their centre (the stacking axis kept whole, the
        others to a common length in nm; recorded in ``notes`` and ``cathode_box``) before the
        tortuosity solves, pore sizes and surface areas; ``None`` solves the whole box.  The
        default (:data:`TORTUOSITY_MAX_VOXELS`) bounds the stage's memory.
    rev_chords : float, optional
        Size of a representative volume in mean chord lengths of the structure along each axis
        but the stacking axis (:mod:`volrecon.analyze.rev`; chords measured on the labels): the
        box is checked against it (``tortuosity_box_capped.representative``, a warning when the
        box is smaller); ``None``: no check.
    rev_cut : bool
        Also cut the box to its centre at ``rev_chords`` before the ``tortuosity_max_voxels`` cap
        (less memory and time on large volumes, at the cost of the statistics a larger box gives:
        off by default, so the box is cut only by the memory budget).

    Returns
    -------
    AnalysisResult

    Raises
    ------
    ParameterError
        A required phase or region name is missing from the mappings.
    InputError
        Shapes differ, or the cathode region is absent.
    """
    timings: dict[str, float] = {}
    notes: list[str] = []
    t0 = time.perf_counter()
    phases = phase_map(phase_names)
    regs = region_map(region_names)
    require_names(phases, ["void", "electrolyte"], "phase_names")
    require_names(regs, ["cathode"], "region_names")
    lab = lazy_volume(labels, "labels")
    reg = lazy_volume(regions, "regions")
    if lab.shape != reg.shape:
        raise InputError(f"regions shape {reg.shape} differs from labels shape {lab.shape}; pass matching volumes")
    vs = voxel_triplet(voxel_size_nm)
    if rev_chords is not None and not (math.isfinite(float(rev_chords)) and float(rev_chords) > 0):
        raise ParameterError(f"rev_chords={rev_chords}: give a positive number of chord lengths (10 is the "
                             "default) or None to skip the representative-volume check")
    if tortuosity_max_voxels is not None and not int(tortuosity_max_voxels) >= 1000:
        raise ParameterError(f"tortuosity_max_voxels={tortuosity_max_voxels}: give at least 1000 voxels (a few "
                             "million for a representative box), or None to solve the whole box")
    slab = int(np.prod(chunks))
    # every pass below reads z slabs: through these views each chunk is decompressed once per pass
    lab, reg = (chunk_rows(v, slab) for v in (lab, reg))
    specimen = [v for n, v in regs.items() if n != "frame"]
    survey = survey_volume(lab, reg, region_values=specimen, inside_region=regs["cathode"],
                           frame_phase=phases.get("frame"),
                           plane_phases=[phases[p] for p in ("sei", "sodium") if p in phases],
                           slab_voxels=slab)
    table = survey.table
    frame_r = regs.get("frame")
    t_all = table.copy()
    if frame_r is not None:
        t_all[frame_r] = 0
    overall = _fractions_from_row(t_all.sum(axis=0), phases)
    per_region = region_fractions(table, phase_names=phases, region_names=regs)
    timings["fractions"] = time.perf_counter() - t0
    if per_region["cathode"].voxels == 0:
        raise InputError("the region image has no 'cathode' voxels; check region_names or the layer detection")
    region_out: dict[str, dict[str, Any]] = {}
    for name, fr in per_region.items():
        if fr.voxels:
            region_out[name] = {"voxels": fr.voxels, "phase_fractions": fr.fractions}
    cf = per_region["cathode"]
    nv, ne = cf.counts.get("void", 0), cf.counts.get("electrolyte", 0)
    cat = region_out["cathode"]
    cat["porosity"] = (nv + ne) / cf.voxels
    cat["void_fraction"] = nv / cf.voxels
    cat["void_share_of_pore"] = nv / (nv + ne) if nv + ne else math.nan
    if nv + ne == 0:
        cat["void_share_of_pore_reason"] = "the cathode has no pore (void + electrolyte) voxels"
    tp = (axis_index(through_plane_axis) if through_plane_axis is not None
          else axis_from_profiles([survey.region_profiles[v] for v in specimen]))
    if tp is None:
        notes.append("stacking axis not found (fewer than two layers); through_plane values are null")
    # --- tortuosity in the largest box inside the cathode --------------------------------
    t_tort = time.perf_counter()
    box = inner_box_bits(survey.inside_bits, lab.shape)
    rep = None
    if box is not None and tp is not None:
        box, chords = _porous_box(lab, box, tp, phases, vs, notes, slab)
    full_box = tuple((s.start, s.stop) for s in box) if box is not None else None
    if box is not None and tp is not None and rev_chords is not None:
        cut, rep = representative_box(box, tp, vs, chords, float(rev_chords))
        box = cut if rev_cut else box
        if full_box != tuple((s.start, s.stop) for s in box):
            notes.append(f"tortuosity box {_shape(full_box)} cut to its centre {_shape(box)} voxels: "
                         f"{rep.rev_chords:g} mean chord lengths along each axis but the stacking axis")
    budget_capped = False
    if box is not None and tortuosity_max_voxels is not None:
        capped = _capped_box(box, tp, vs, int(tortuosity_max_voxels), notes)
        budget_capped, box = capped != box, capped
    tort: dict[str, dict[str, TortuosityResult]] = {}
    box_t = None
    sub = read(lab, box) if box is not None else None
    pores = ({"pore": (sub == phases["void"]) | (sub == phases["electrolyte"]), "void": sub == phases["void"]}
             if sub is not None else {})
    # the pore sizes (GIL-bound distance transforms) run in another process meanwhile
    psd_job = _start_pore_sizes(pores, vs) if pore_size and pores else None
    pool = None
    futures = {}
    masks: dict[str, np.ndarray] | None = None
    if box is None or min(s.stop - s.start for s in box) < 1:
        notes.append("no box inside the cathode region: tortuosity not computed")
    else:
        box_t = tuple((s.start, s.stop) for s in box)
        axes = (0, 1, 2) if tortuosity_axes is None else tuple(axis_index(a) for a in tortuosity_axes)
        masks = {"pore": pores["pore"], "electrolyte": sub == phases["electrolyte"]}
        # without voids the electrolyte is the pore: solve once.  The solves are independent and
        # their numba kernels release the GIL, so they run side by side on the available cores
        # while this thread measures the clusters and surfaces.
        solve_for = ["pore"] if not pores["void"].any() else ["pore", "electrolyte"]
        jobs = [(name, a) for name in solve_for for a in axes]
        if not axes:
            notes.append("tortuosity not asked for (tortuosity_axes is empty)")
        else:
            n_workers = max(1, min(len(jobs), workers or min(2, os.cpu_count() or 1)))
            pool = ThreadPoolExecutor(max_workers=n_workers)
            futures = {job: pool.submit(tortuosity, masks[job[0]], axis=job[1], voxel_size_nm=vs) for job in jobs}
    try:
        # --- clusters of the cathode's voids (ends per line of the cathode region) ---------
        t1 = time.perf_counter()
        chunked = chunked_above_voxels is not None and lab.size > chunked_above_voxels
        slab_c = (next(z_slabs(lab, slab))[1] * int(np.prod(lab.shape[1:]))) if chunked else max(lab.size, 1)
        void_c, pore_c = (_clusters(lab, reg, values, regs, tp, connectivity, vs, slab_c, resolvable_nm)
                          for values in ((phases["void"],), (phases["void"], phases["electrolyte"])))
        if chunked:
            notes.append(f"clusters labelled chunk by chunk (slabs of {slab_c} voxels along z) and merged across slab faces")
        timings["connectivity"] = time.perf_counter() - t1
        for (name, a), fut in futures.items():
            tort.setdefault(name, {})[str(a)] = fut.result()
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    # --- surfaces, once the solves have released their memory ---------------------------------
    t1 = time.perf_counter()
    surf = _surfaces(sub, pores, phases, vs, marching_cubes) if sub is not None else {}
    timings["surface_area"] = time.perf_counter() - t1
    sub = masks = None  # the tortuosity box is no longer needed
    if futures:
        notes.append("connectivity was measured while the tortuosity solves ran (their timings overlap)")
        if "electrolyte" not in tort:
            tort["electrolyte"] = dict(tort["pore"])
            notes.append("no void in the tortuosity box: electrolyte tortuosity equals the pore's")
    timings["tortuosity"] = time.perf_counter() - t_tort
    # --- SEI ------------------------------------------------------------------------------
    t1 = time.perf_counter()
    sei = None
    if "sei" in phases and "sodium" in phases:
        sei = _sei(lab, survey, phases, vs, tp, slab)
    timings["sei_thickness"] = time.perf_counter() - t1
    # --- depth profile --------------------------------------------------------------------
    t1 = time.perf_counter()
    prof = None
    if "separator" in regs:
        # the cathode's bounding box grown by one voxel: the interface lies beside it
        cbox = bounding_box([p > 0 for p in survey.region_profiles[regs["cathode"]]], grow=1)
        prof = depth_profile_slabs(lab, reg, box=cbox, within=regs["cathode"], source=regs["separator"],
                                   phase_names=phases, voxel_size_nm=vs, bin_nm=profile_bin_nm,
                                   source_outside=bool(table[regs["separator"]].sum()))
    timings["depth_profile"] = time.perf_counter() - t1
    release_rows(lab, reg)  # the last slab pass is done: no chunk row waits idle on the pore sizes
    psd: dict[str, PoreSizeResult] = {}
    if psd_job is not None:
        t1 = time.perf_counter()
        psd, timings["pore_size"] = psd_job()
        timings["pore_size_wait"] = time.perf_counter() - t1
    timings["total"] = time.perf_counter() - t0
    if prof is not None:
        region_out["cathode"]["depth_profile_reference"] = prof.reference
    return AnalysisResult(
        vs, tuple(int(n) for n in lab.shape), tp, overall.fractions, region_out, box_t,
        void_c, pore_c, tort, sei, prof, psd, surf, timings, tuple(notes),
        tortuosity_box_full=full_box if box_t is not None else None, tortuosity_max_voxels=tortuosity_max_voxels,
        representative=rep if box_t is not None else None, budget_capped=budget_capped,
    )


def _shape(box: Any) -> str:
    """``'nz x ny x nx'`` of a box given as slices or (start, stop) pairs."""
    return "x".join(str(b.stop - b.start if isinstance(b, slice) else b[1] - b[0]) for b in box)


def _porous_box(lab: Any, box: tuple[slice, ...], tp: int, phases: Mapping[str, int],
                vs: tuple[float, float, float], notes: list[str],
                slab_voxels: int) -> tuple[tuple[slice, ...], ChordLengths]:
    """The box cut along the stacking axis to the porous layer (:func:`porous_extent`), and the
    mean chord lengths of its structure (:class:`volrecon.analyze.rev.ChordCounter`).

    A dense end slab (the collector labelled as cathode, say) blocks through-plane transport
    and would make the through-plane tortuosity infinite; the cut is recorded in ``notes``.
    The pore fraction per plane is gathered slab by slab along z.
    """
    shape = [s.stop - s.start for s in box]
    n = shape[tp]
    count = ChordCounter(n, tp)
    for zs in box_slabs(box, slab_voxels, lab):
        part = read(lab, (zs, box[1], box[2]))
        count.add((part == phases["void"]) | (part == phases["electrolyte"]))
    lo, hi = porous_extent_of(count.pore / (int(np.prod(shape)) // n))
    chords = count.chords(vs, slice(lo, hi))
    if (lo, hi) == (0, n):
        return box, chords
    s = box[tp]
    cut = [f"{AXIS_NAMES[tp]} {s.start + a}-{s.start + b} ({(b - a) * vs[tp]:.0f} nm)"
           for a, b in ((0, lo), (hi, n)) if b > a]
    notes.append("tortuosity box cut to the porous layer: the planes " + " and ".join(cut) + " of the "
                 "cathode box hold less than half its median pore fraction (a dense layer: the collector "
                 "or another layer labelled as cathode, or the dense side of a rough interface)")
    out = list(box)
    out[tp] = slice(s.start + lo, s.start + hi)
    return tuple(out), chords


def _capped_box(box: tuple[slice, ...], tp: int | None, vs: tuple[float, float, float], max_voxels: int,
                notes: list[str]) -> tuple[slice, ...]:
    """The centre of ``box`` holding at most ``max_voxels`` voxels (the box itself when it does).

    The stacking axis is kept whole (transport across the whole layer); the other axes are cut
    to a common physical length, the longer first, so the sub-box is as close to square in nm
    as the budget allows.  The solves, pore sizes and surfaces then measure this
    representative sub-volume, with memory bounded by ``max_voxels`` whatever the stack's size.
    """
    shape = [s.stop - s.start for s in box]
    if int(np.prod(shape)) <= max_voxels:
        return box
    free = [a for a in range(3) if a != tp]
    budget = max_voxels / float(np.prod([shape[a] for a in range(3) if a not in free]))

    def sizes(length: float) -> list[int]:
        return [min(shape[a], max(1, int(length / vs[a]))) for a in free]

    lo, hi = 0.0, max(shape[a] * vs[a] for a in free)
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if np.prod(sizes(mid)) <= budget else (lo, mid)
    out = list(box)
    for a, n in zip(free, sizes(lo)):
        start = box[a].start + (shape[a] - n) // 2
        out[a] = slice(start, start + n)
    new = [s.stop - s.start for s in out]
    notes.append(f"tortuosity box {'x'.join(map(str, shape))} cut to its centre {'x'.join(map(str, new))} voxels "
                 f"(tortuosity_max_voxels={max_voxels}): the solves, pore sizes and surface areas measure "
                 "this sub-volume")
    return tuple(out)


def _sei(lab: Any, survey: Survey, phases: Mapping[str, int], vs: tuple[float, float, float],
         tp: int | None, slab_voxels: int) -> ThicknessResult:
    """SEI thickness read from the planes around the SEI along the stacking axis only.

    :func:`sei_thickness` crops to the layer with a margin of the layer's own extent; the same
    crop is read here (slab by slab along z when the stacking axis is y or x), so the result
    equals the whole-volume call.
    """
    if tp is None:
        return sei_thickness(read(lab), phase_names=phases, voxel_size_nm=vs, axis=tp)
    idx = np.flatnonzero(survey.phase_planes[phases["sei"]][tp])
    planes = slice(0, 1)
    if idx.size:
        margin = int(idx[-1] - idx[0]) + 3
        planes = slice(max(0, int(idx[0]) - margin), min(lab.shape[tp], int(idx[-1]) + 1 + margin))
        if survey.table[:, phases["sodium"]].sum() and not survey.phase_planes[phases["sodium"]][tp][planes].any():
            # the inner material lies beyond the crop: the whole-volume call says so
            return sei_thickness(read(lab), phase_names=phases, voxel_size_nm=vs, axis=tp)
    if tp == 0:
        return sei_thickness(read(lab, planes), phase_names=phases, voxel_size_nm=vs, axis=tp)
    return sei_thickness_slabs(lab, planes=planes, axis=tp, phase_names=phases, voxel_size_nm=vs,
                               slab_voxels=slab_voxels)


class _Slabs:
    """``make(index)`` as an array of ``shape`` that :func:`cluster_connectivity` reads slab by slab."""

    def __init__(self, shape: tuple[int, ...], make: Callable[[Any], np.ndarray]) -> None:
        self.shape = shape
        self._make = make

    def __getitem__(self, index: Any) -> np.ndarray:
        return self._make(index)


def _clusters(lab: Any, reg: Any, values: tuple[int, ...], regs: Mapping[str, int], tp: int | None,
              connectivity: int, vs: tuple[float, float, float], slab_voxels: int,
              resolvable_nm: float) -> ConnectivityResult:
    """Cluster statistics of the phases ``values`` within the cathode, labelled slab by slab (see
    :func:`cluster_connectivity`): no whole-volume label image is held.

    Ends: along z (milling) the first and last slice; along the stacking axis ``tp`` the
    cathode's interfaces with the other layers and the frame's cap (not a trench wall a line runs
    into: :func:`volrecon._layer_ends.stack_ends`); along the other image axis the block's sides,
    the frame or the volume face (not a rough layer interface a line crosses).  Without a
    stacking axis (or with it along z) every end of the cathode along y and x counts.
    """
    shape = tuple(int(n) for n in lab.shape)
    cathode = regs["cathode"]
    last: dict[str, Any] = {}

    def region(index: Any) -> np.ndarray:  # the domain and the ends read the same slab: once
        key = repr(index)
        if last.get("key") != key:
            last.update(key=key, value=read(reg, index))
        return last["value"]

    cath = _Slabs(shape, lambda index: region(index) == cathode)
    beyond: dict[int, Any] = {}
    if tp in (1, 2):
        beyond[tp] = _Slabs(shape, lambda index: stack_ends(region(index), across=3 - tp, names=regs))
        beyond[3 - tp] = _Slabs(shape, lambda index: side_ends(region(index), names=regs))

    def mask(index: Any) -> np.ndarray:
        part = read(lab, index)
        out = cath[index]
        out &= np.isin(part, values)
        return out

    return cluster_connectivity(_Slabs(shape, mask), connectivity=connectivity,
                                voxel_size_nm=vs, domain=cath, face_axes=(0,), slab_voxels=slab_voxels,
                                resolvable_volume_nm3=math.pi / 6 * float(resolvable_nm) ** 3, end_beyond=beyond)


def _surfaces(sub: np.ndarray, pores: Mapping[str, np.ndarray], phases: Mapping[str, int],
              vs: tuple[float, float, float], marching_cubes: bool) -> dict[str, SurfaceResult]:
    """Specific surface area of every phase present in the box, and of the pore."""
    surf: dict[str, SurfaceResult] = {}
    for name, value in phases.items():
        mask = sub == value
        if name == "frame" or not mask.any():
            continue
        surf[name] = specific_surface_area(mask, voxel_size_nm=vs,
                                           marching=marching_cubes and name in ("void", "electrolyte", "active"))
    surf["pore"] = specific_surface_area(pores["pore"], voxel_size_nm=vs, marching=marching_cubes)
    return surf


#: boxes with more voxels than this get their pore sizes in a separate process (tests lower it)
PORE_SIZE_PROCESS_ABOVE_VOXELS = 4_000_000


def _pore_sizes(masks: Mapping[str, np.ndarray], vs: tuple[float, float, float]) -> tuple[dict[str, PoreSizeResult], float]:
    t0 = time.perf_counter()
    return {k: pore_size_distribution(v, voxel_size_nm=vs) for k, v in masks.items()}, time.perf_counter() - t0


def _start_pore_sizes(masks: Mapping[str, np.ndarray], vs: tuple[float, float, float]) -> Callable[[], Any]:
    """Start the pore-size job; returns a callable that waits for ``(results, seconds)``.

    On big boxes the job runs in a spawned process: its distance transforms hold the GIL, which
    would stall the tortuosity threads, and on two cores it fills the core the solves leave idle.
    Where no process can be started it runs here when collected.
    """
    if sum(m.size for m in masks.values()) > PORE_SIZE_PROCESS_ABOVE_VOXELS:
        try:
            pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
            fut = pool.submit(_pore_sizes, dict(masks), vs)
        except (OSError, RuntimeError, AssertionError):  # AssertionError: a daemonic process (e.g. a dask worker) has no children
            pass
        else:
            def collect() -> Any:
                try:
                    return fut.result()
                except BrokenProcessPool:
                    return _pore_sizes(masks, vs)
                finally:
                    pool.shutdown()
            return collect
    return lambda: _pore_sizes(masks, vs)


def through_plane_axis_of(regions: np.ndarray, region_names: Mapping[str, int]) -> int | None:
    return through_plane_axis(regions, region_names)


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    if not rows:
        path.write_text("")
        return
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def write_analysis(result: AnalysisResult, out_dir: str | os.PathLike, *, figures: bool = True) -> Path:
    """Write ``metrics.json``, ``tables/*.csv`` and ``figures/*.png`` into a run folder.

    The files are written to a temporary sibling folder first and moved in place at the end,
    so an interrupted write leaves the previous results intact.
    """
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".analysis-", dir=out))
    except OSError as exc:
        raise OutputError(f"cannot write into {out}: {exc.strerror}; choose a writable folder") from None
    (tmp / "tables").mkdir()
    (tmp / "metrics.json").write_text(json.dumps(result.to_dict(), indent=2, allow_nan=False))
    if result.profile is not None and result.profile.reason is None:
        _write_csv(tmp / "tables" / "depth_profile.csv", result.profile.rows())
    if result.void_clusters is not None:
        _write_csv(tmp / "tables" / "void_cluster_sizes.csv",
                   [{"rank": i + 1, "voxels": s, "volume_nm3": s * result.void_clusters.voxel_volume_nm3}
                    for i, s in enumerate(result.void_clusters.sizes_voxels)])
    for name, p in result.pore_sizes.items():
        _write_csv(tmp / "tables" / f"pore_size_{name}.csv", p.rows())
    rows = []
    for phase, per_axis in result.tortuosity.items():
        for a, r in per_axis.items():
            rows.append({"phase": phase, "axis": r.axis_name, "tortuosity_factor": r.tortuosity_factor,
                         "porosity": r.porosity, "effective_diffusivity": r.effective_diffusivity,
                         "macmullin": r.macmullin, "percolating": r.percolating,
                         "iterations": r.iterations, "reason": r.reason or ""})
    _write_csv(tmp / "tables" / "tortuosity.csv", rows)
    if result.sei is not None and result.sei.reason is None:
        np.savetxt(tmp / "tables" / "sei_thickness_map_nm.csv", result.sei.thickness_map, delimiter=",", fmt="%.2f")
    if figures:
        from volrecon.analyze.figures import write_figures

        (tmp / "figures").mkdir()
        write_figures(result, tmp / "figures")
    for item in tmp.iterdir():
        dest = out / item.name
        if dest.is_dir():
            shutil.rmtree(dest)
        os.replace(item, dest)
    tmp.rmdir()
    return out / "metrics.json"
