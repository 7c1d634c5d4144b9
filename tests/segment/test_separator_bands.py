"""The separator's band measurements leave out the face's frame, and the separator's voxels on the
cathode's particles are re-decided (volrecon.segment.regional)."""

from dataclasses import replace

import numpy as np
import pytest
from scipy import ndimage as ndi

from tests.segment.test_sei_edges import _film_stack, _layers
from volrecon.phases import PHASES, REGIONS
from volrecon.sample.render import INTENSITY
from volrecon.segment.layers import refine_interface
from volrecon.segment.regional import (EDGE_LATERAL_NM, contact_cuts, rise_averaging_nm, sei_outer_surface, separator_contacts,
                                       smooth, specimen_filter)

FRAME = 9
WALL, SHELL = 12, 2
"""Columns of the trench wall at the left of the film stack, and of its rim shell beyond it."""


@pytest.mark.parametrize("t, pore_share, wall_matters", [(10, 0.5, True), (4, 0.0, True), (4, 0.5, False)])
def test_sei_outer_surface_leaves_out_the_wall(t, pore_share, wall_matters):
    """A bright trench wall (and its rim, lifting the next two columns) beside a t-voxel film, with a
    pore beyond the film in ``pore_share`` of the columns.  Given the frame (and the shell as 0),
    the film's thickness beside the wall is within 0.25 voxels, as far from it.

    Without the frame the lateral averages carry the wall's grey into the specimen's first columns
    and move what is read there by a threshold: the 10-voxel film's rises and crossings, and the
    crossings that a 4-voxel film under fibres everywhere (no pore beyond it, no falling edge: its
    crossings stand alone) is read on, so those columns read over 0.4 voxels off.  A 4-voxel film
    with pores beyond it is read on its falling edges alone (thin but resolved: no crossing is used,
    ``crossing_bias_vox`` is NaN), and a falling edge is the steepest step of the column's own
    profile, which an added lateral share of a wall uniform along the stacking axis scales and
    lifts but does not move: there the film reads within 0.25 voxels beside the wall without the
    frame too (0.66 voxels off before, with crossings)."""
    vox = (20.0, 10.0, 10.0)
    img, na, _ = _film_stack(pore_share, t=t)
    img = img.copy()
    img[:, :, :WALL] = 0.8
    img[:, :, WALL:WALL + SHELL] += 0.25
    phases = np.ones(img.shape, np.uint8)
    phases[:, :, :WALL] = FRAME
    phases[:, :, WALL:WALL + SHELL] = 0
    k = WALL + SHELL
    lay = refine_interface(img[:, :, k:], _layers(na[:, k:], t), "sodium|sei", voxel_size_nm=vox, rim=True)
    lay = replace(lay, heights={n: None if h is None else np.pad(h, ((0, 0), (k, 0)), mode="edge")
                                for n, h in lay.heights.items()})
    errs = {}
    for given in (False, True):
        out, info = sei_outer_surface(img, lay, voxel_size_nm=vox, phases=phases if given else None,
                                      frame_value=FRAME if given else None)
        assert info["found"], info.get("reason")
        assert np.isnan(info["crossing_bias_vox"]) == (t == 4 and pore_share > 0)
        errs[given] = np.abs(out.heights["sei|separator"] - na - t)
    near = slice(k, k + 16)
    assert float(errs[True][:, near].mean()) < 0.25
    assert float(errs[True][:, 60:].mean()) < 0.25
    if wall_matters:
        assert float(errs[False][:, near].mean()) > 0.4
    else:
        assert float(errs[False][:, near].mean()) < 0.25


def test_smooth_over_the_specimen_only():
    """Denoised over the valid voxels alone, the specimen beside a bright frame keeps its own level
    (a plain Gaussian lifts its first voxels); the frame itself keeps its plain average."""
    block = np.full((3, 8, 16), 0.3, np.float32)
    block[:, :, :5] = 0.8
    valid = np.ones(block.shape, bool)
    valid[:, :, :5] = False
    vox = (20.0, 10.0, 10.0)
    plain = smooth(block, 10.0, vox)
    aware = smooth(block, 10.0, vox, valid=valid)
    assert plain[:, :, 5].min() > 0.35
    assert np.allclose(aware[:, :, 5:], 0.3, atol=1e-5)
    assert np.allclose(aware[:, :, :2], plain[:, :, :2])


def _contact_stack(blur: float = 0.8):
    """Columns along y (the stacking axis, anode first), separator region up to row 10, cathode
    beyond: an active particle starting at row 8 (its first two voxels in the separator region,
    the layers' interface off by two) under a pore (columns 0-7), and a fibre (rows 3-7) lying on a
    particle starting at row 8 (columns 8-15).  Returns the blurred grey, the regions and the truth."""
    nz, ny, nx = 2, 20, 16
    truth = np.full((nz, ny, nx), PHASES["electrolyte"], np.uint8)
    truth[:, 8:, :] = PHASES["active"]
    truth[:, 3:8, 8:] = PHASES["separator"]
    level = {PHASES[p]: INTENSITY[p] for p in ("electrolyte", "active", "separator")}
    grey = np.vectorize(level.get, otypes=[np.float32])(truth)
    grey = ndi.gaussian_filter(grey, (0.0, blur, blur), mode="nearest")
    regions = np.full(truth.shape, REGIONS["separator"], np.uint8)
    regions[:, 10:] = REGIONS["cathode"]
    return grey, regions, truth


def test_separator_contacts_give_particles_back_to_the_cathode():
    """Two-class fibre thresholds call a particle's first voxels (left in the separator region by
    the interface) fibre, and the pore voxel lit by the particle below it too; re-decided with the
    levels and the blur, the particle's voxels are active, the pore's electrolyte, and a fibre
    lying on a particle stays a fibre."""
    grey, regions, truth = _contact_stack()
    p, f, a = INTENSITY["electrolyte"], INTENSITY["separator"], INTENSITY["active"]
    rng = np.random.default_rng(0)
    sep_vals = np.concatenate([rng.normal(p, 0.01, 500), rng.normal(f, 0.01, 500)])
    cat_vals = rng.normal(a, 0.01, 500)
    cuts = contact_cuts(sep_vals, 0.5 * (p + f), cat_vals, 0.5 * (f + a), {"sigma_vox": 0.8}, [0.0, 0.0, 0.0])
    assert cuts is not None and f < cuts["active"] < a and p < cuts["pore_active"] < a
    names = {k: PHASES[k] for k in ("electrolyte", "separator", "active")}
    sep = regions == REGIONS["separator"]
    first = np.where(sep, np.where(grey >= 0.5 * (p + f), names["separator"], names["electrolyte"]), truth)
    assert (first[sep & (truth == names["active"])] == names["separator"]).all()
    out = separator_contacts(grey, regions, first, axis=1, towards_cathode=1, cuts=cuts, names=names)
    assert (out == truth).all()
    assert (first != truth).sum() >= 2 * 16 * 2  # two particle rows (and the lit pore) were wrong


def test_contact_cuts_need_particles_brighter_than_fibres():
    """No cuts when the active particles are not brighter than the fibres (or a level is missing)."""
    rng = np.random.default_rng(1)
    sep_vals = np.concatenate([rng.normal(0.2, 0.01, 500), rng.normal(0.6, 0.01, 500)])
    assert contact_cuts(sep_vals, 0.4, rng.normal(0.5, 0.01, 500), 0.45, {}, [1.0]) is None
    assert contact_cuts(sep_vals, 0.4, rng.normal(0.8, 0.01, 50), 0.7, {}, [1.0]) is None


def test_specimen_filter_keeps_the_frame_plain_deep_inside():
    """One normalised convolution for the 3D denoising and the lateral band averages: a voxel deep
    in the frame (under 1 % valid weight) keeps its plain average, one near the specimen reads the
    specimen's level."""
    vals = np.full((1, 1, 40), 0.3, np.float32)
    vals[..., :20] = 0.8
    valid = np.zeros(vals.shape, bool)
    valid[..., 20:] = True
    out = specimen_filter(vals, valid, [0.0, 0.0, 3.0])
    assert np.allclose(out[..., :5], 0.8, atol=1e-4)
    assert np.allclose(out[..., 17:], 0.3, atol=1e-5)
    assert np.array_equal(smooth(vals, 30.0, (10.0, 10.0, 10.0), valid=valid), out)


def test_rise_averaging_follows_the_steps_contrast():
    """A rise as tall as the fall needs no more averaging than the fall's edge; a smaller rise needs
    more (sqrt(r^2 - 1) times EDGE_LATERAL_NM), kept within reg_nm / 3; missing levels: the cap."""
    ref = {"sei_level": 0.47, "pore_level": 0.22, "fibre_level": 0.72}
    assert rise_averaging_nm(ref, 100.0) == pytest.approx(0.0)
    ref["fibre_level"] = 0.47 + 0.25 / 1.25
    assert rise_averaging_nm(ref, 100.0) == pytest.approx(EDGE_LATERAL_NM * 0.75)
    ref["fibre_level"] = 0.54
    assert rise_averaging_nm(ref, 100.0) == pytest.approx(100.0 / 3)
    assert rise_averaging_nm({"sei_level": 0.47}, 60.0) == pytest.approx(20.0)


def test_contact_reach_is_physical():
    """The particle's reach into the separator region is one voxel plus the smoothing sigma: in nm
    it stays about the same whatever the voxel, in voxels it grows as the voxel shrinks."""
    from volrecon.segment.regional import contact_reach

    assert contact_reach(10.0, (20.0, 12.7, 10.0), 1) == 2
    assert contact_reach(10.0, (20.0, 5.0, 5.0), 1) == 3
    assert contact_reach(10.0, (40.0, 40.0, 40.0), 1) == 1
    assert contact_reach(0.0, (20.0, 5.0, 5.0), 1) == 1
