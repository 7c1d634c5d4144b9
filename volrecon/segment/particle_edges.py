"""The cathode's particle edges in the segmentation stage: the rule that gives a particle back the
voxels of its edge beside the pore, and the chunked in-plane gradient the rim corrections read.

Where a particle meets the pore the probe blurs the step, so that the particle's own edge voxel
reads under the binder | active cut and is labelled binder; the rule
(:func:`volrecon.segment.cathode_rims.particle_edges`) gives such binder voxels back to the particle
where their rim-corrected grey reads at least a cut at (or above) the half-way level of pore and particle.

Here is what :func:`volrecon.segment.api.segment_volume` hands it: the rule's settings
(:class:`ParticleEdgeRule`; for the classifier's cathode :func:`_classifier_particle_edges`, for the
thresholded one its cut :func:`_particle_edge_cut`, the rest fitted in ``segment.api``), the rule run
chunk by chunk (:func:`_particle_edges`), the rim lengths the flat edges' fits give
(:func:`_edge_rims`), and the chunked gradient (:func:`_gradient`) that the boundary re-decision, the
rim-length fits and the cathode's rim-corrected grey read, with the rows beside the collector foil
read as :mod:`volrecon.segment.foil_spill` asks.  The rule runs on the cathode's labels once the
layers are found: in the unsupervised method after its thresholds and before the void split
(``segment.api._regional_phases``, its rule fitted by ``segment.api._auto_particle_edge_rule``), for
the classifier inside the boundary re-decision (``segment.api._boundaries_redecided``).
"""

from __future__ import annotations

from typing import Any, Mapping, NamedTuple, Sequence

import dask.array as da
import numpy as np

from volrecon.phases import REGIONS
from volrecon.segment import forward_refine as fr
from volrecon.segment.cathode_rims import (
    RIM_LENGTH_MAX_NM, edge_rim_length, gradient_magnitude, gradient_reach, particle_edge_rim_length, particle_edges,
    rim_corrected, rim_share, step_reads,
)
from volrecon.segment.chunking import _overlap
from volrecon.segment.classifier import interior_levels
from volrecon.segment.foil_spill import FoilSpill, _beside_foil_gradient, foil_distance
from volrecon.segment.regional import smoothing_sigma


class ParticleEdgeRule(NamedTuple):
    """What :func:`volrecon.segment.cathode_rims.particle_edges` is given for the classifier's cathode
    (:func:`_classifier_particle_edges`) and the thresholded one (:func:`~volrecon.segment.api._auto_particle_edge_rule`)."""

    length_nm: float
    """Rim length (nm) of the grey the step's two voxels are read on."""
    cut: float
    """Half-way level between the pore and the particles on that grey."""
    reach_px: tuple[int, int]
    """In-plane reach (y, x) in pixels: the edge artefact's."""
    sides: tuple[bool, bool]
    """Whether the particle's side is given back across y and across x."""


def _classifier_particle_edges(cathode: dict[str, Any], model: fr.ImageModel, grey: np.ndarray, gradient: np.ndarray,
                               labels: np.ndarray, where: np.ndarray, *, names: Mapping[str, int],
                               vox: tuple[float, float, float], smooth_nm: float,
                               edge_nm: float, interior: np.ndarray | None = None) -> ParticleEdgeRule | None:
    """The rim length, cut, in-plane reach and sides of :func:`volrecon.segment.cathode_rims.particle_edges`
    for the classifier's cathode.

    The rule reads the two voxels of a pore | particle step against the half-way level of the pore
    and the particles, on the grey corrected by the length the image ``model`` (fitted for the
    dark side, :func:`~volrecon.segment.api._dark_rim_length`) gives it
    (:func:`volrecon.segment.cathode_rims.particle_edge_rim_length`): a property of the probe, the
    rims and the denoising, not of the cathode's histogram.  On the separability's length
    (``cathode["rim_length_nm"]``), whose peak is flat, the rule followed the fit: 24x192 diglyme
    seed 1, corrected, fitted 7.3 nm, pore read as active 1 100 -> 3 600 voxels, active Dice -0.010.
    The cut is half-way between the medians of the classifier's interior pore and particle voxels on
    that grey (:func:`volrecon.segment.classifier.interior_levels`); the reach is ``edge_nm``, the
    edge artefact's, in pixels.

    The particle's side is given back only where the model says the re-decision takes it from the
    particle: across the in-plane axes where a straight step's bright voxel reads under
    the binder | active midpoint on the re-decision's own grey and levels (``cathode["rim_length_nm"]``,
    ``cathode["levels"]``; :func:`volrecon.segment.cathode_rims.step_reads`).  Where the blur is
    narrow against the pixels it reads above it across both (20 nm pixels: 0.62 for a midpoint of
    0.51), and a binder voxel on a particle beside the pore is the binder's coat, not the step's
    (24x160 at 20 nm, seed 0, oracle-corrected: with that side, active Dice 0.9605 -> 0.9470 /
    0.9592 -> 0.9465, diglyme / carbonate).  The benchmark's rows (12.7 nm, the tilted face's) read
    above it, its columns (10 nm) under (carbonate seed 0, corrected: 143 and 130 for 135).
    ``grey``, ``gradient``, ``labels``, ``where``: the sampled denoised grey, its gradient, the
    classifier's labels and the cathode's voxels; ``interior``: the labels' in-plane interior where
    they are a sample of every few rows (:func:`~volrecon.segment.api._rows_beside`).  None without a reach, a length in
    range or the levels; what was used is recorded in ``cathode["particle_edges"]``.
    """
    pore, binder, particle = (names.get(p) for p in ("electrolyte", "binder", "active"))
    plain = cathode.get("levels", {})
    if edge_nm <= 0 or pore is None or binder is None or particle is None or not {
            "electrolyte", "binder", "active"} <= set(plain):
        return None
    sigma = smoothing_sigma(smooth_nm, vox)
    length = particle_edge_rim_length(model, vox, smooth_sigma_vox=sigma)
    if not 0.0 < length <= RIM_LENGTH_MAX_NM:
        return None
    levels = interior_levels(rim_corrected(grey, gradient, length), labels, where, [pore, particle], interior=interior)
    if len(levels) < 2:
        return None
    cut = 0.5 * (levels[pore] + levels[particle])
    bright = [b for _, b in step_reads(model, vox, length_nm=float(cathode["rim_length_nm"]),
                                       levels=(plain["electrolyte"], plain["active"]), smooth_sigma_vox=sigma)]
    side = tuple(bool(b < 0.5 * (plain["binder"] + plain["active"])) for b in bright)
    cathode["particle_edges"] = {"rim_length_nm": length, "cut": cut, "step_particle_reads": bright,
                                 "particle_side": list(side)}
    return ParticleEdgeRule(length, cut, tuple(max(1, int(np.ceil(float(edge_nm) / float(v)))) for v in vox[1:]), side)


def _edge_rims(edges: Sequence[Mapping[str, float]], stack: tuple[int, bool] | None, smooth_nm: float,
               vox: tuple[float, float, float]) -> list[float]:
    """The rim lengths (nm) the accepted rim fits of ``edges`` give
    (:func:`volrecon.segment.cathode_rims.edge_rim_length`); none without a known stacking axis
    (the fits' voxels lie along it)."""
    if stack is None:
        return []
    ax, out = stack[0], []
    for edge in edges:
        if not edge.get("accepted", True) or "rim_ratio" not in edge:
            continue
        blur = float(np.hypot(float(edge["sigma_vox"]), smoothing_sigma(smooth_nm, vox)[ax]))
        share = rim_share(float(edge["rim_ratio"]), float(edge.get("rim_half_width_vox", 1.0)), blur)
        out.append(edge_rim_length(share, blur, float(vox[ax])))
    return out


def _particle_edges(out: da.Array, grey: da.Array, reg: da.Array, rule: ParticleEdgeRule, *,
                    names: Mapping[str, int]) -> da.Array:
    """:func:`volrecon.segment.cathode_rims.particle_edges` by ``rule`` on ``grey`` (rim-corrected by
    ``rule.length_nm``), chunked (in-plane context of its reach)."""
    reach, cut, sides = rule.reach_px, rule.cut, rule.sides
    cat_v = REGIONS["cathode"]

    def fix(o_: np.ndarray, g_: np.ndarray, r_: np.ndarray, core: tuple[slice, ...], faces: Any) -> np.ndarray:
        return np.ascontiguousarray(particle_edges(o_, g_, r_ == cat_v, electrolyte=names["electrolyte"],
                                                   binder=names["binder"], active=names["active"], cut=cut,
                                                   reach_px=reach, particle_side=sides)[core])

    return _overlap(fix, out, (0, reach[0] + 1, reach[1] + 1), np.uint8, extra=(grey, reg)).rechunk(out.chunks)


def _particle_edge_cut(pore_level: float, binder: np.ndarray, particles: np.ndarray) -> float | None:
    """The grey from which a binder voxel on a particle's edge beside the pore is the particle's
    (:func:`volrecon.segment.cathode_rims.particle_edges`): the half-way level of pore and particles,
    raised to one spread above the binder's own level (its coat on a particle must not pass: the half-way
    cut alone took 479 true binder and 852 true pore voxels for 848 particle edge voxels on a diglyme
    phantom, review rev21); None (the rule off) when the binder's level is not under the half-way level."""
    if binder.size < 100 or particles.size < 100:
        return None
    half = 0.5 * (pore_level + float(np.median(particles)))
    b_level = float(np.median(binder))
    if b_level >= half:
        return None
    spread = 1.4826 * float(np.median(np.abs(binder - b_level)))
    return max(half, b_level + spread)


def _gradient(grey: da.Array, vox: tuple[float, float, float], *,
              foil: tuple[da.Array, FoilSpill, int] | None = None) -> da.Array:
    """:func:`volrecon.segment.cathode_rims.gradient_magnitude` of ``grey``, chunked (chunk-exact).

    ``foil``: the regions, the collector foil's fitted spill and the stacking axis; in the cathode's
    rows within the spill the gradient is then taken with the foil's own voxels read as the row beside
    them (:func:`~volrecon.segment.foil_spill._beside_foil_gradient`, as the classifier reads those rows): there ``grey`` is the
    unmixed grey, whose step into the foil is not a rim of the cathode's own.
    """
    if foil is None or foil[1].reach == 0:
        return _overlap(lambda b, core, faces: np.ascontiguousarray(gradient_magnitude(b, vox)[core]), grey,
                        gradient_reach(vox), np.float32).rechunk(grey.chunks)
    reg, spill, axis = foil
    depth = list(gradient_reach(vox))
    # a filled foil voxel takes the grey of a voxel up to the gradient's reach beyond it
    depth[axis] = max(2 * depth[axis], spill.reach)

    def grad(b: np.ndarray, r: np.ndarray, core: tuple[slice, ...], faces: Any) -> np.ndarray:
        rows = foil_distance(r, axis=axis, cathode=REGIONS["cathode"], collector=REGIONS["collector"],
                             reach=spill.reach) > 0
        out = np.where(rows, _beside_foil_gradient(b, r, rows, axis=axis, vox=vox), gradient_magnitude(b, vox))
        return np.ascontiguousarray(out[core])

    return _overlap(grad, grey, depth, np.float32, extra=(reg,)).rechunk(grey.chunks)
