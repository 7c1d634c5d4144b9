"""The classifier's cathode pore | binder cut read on the grey rim-corrected for the dark side of a
boundary (issue 7)."""

import numpy as np
import pytest

from volrecon.phases import PHASES, REGIONS
from volrecon.sample.artefacts import blur
from volrecon.sample.render import edge_field, psf_sigma_px
from volrecon.segment import api, segment_volume, train_classifier
from volrecon.segment.cathode_rims import dark_side_rim_length, gradient_magnitude, rim_corrected
from volrecon.segment.classifier import redecide_boundaries
from volrecon.segment.forward_refine import ImageModel
from volrecon.segment.regional import smooth, smoothing_sigma
from volrecon.segment.scribbles import synthetic_scribbles

E, B, A, V = PHASES["electrolyte"], PHASES["binder"], PHASES["active"], PHASES["void"]
VOX = (20.0, 12.69, 10.0)  # the benchmark phantoms' voxel (rows foreshortened at 52 degrees)
SMOOTH_NM = 10.0


def _phantom_step(dark: float, bright: float, axis: int, gain: float) -> np.ndarray:
    """A straight boundary imaged as the phantoms image it (their own edge rims and probe blur,
    :mod:`volrecon.sample.render`), constant along z, denoised as the classifier's grey is."""
    base = np.full((48, 48), dark, np.float32)
    if axis == 0:
        base[24:, :] = bright
    else:
        base[:, 24:] = bright
    face = blur(base + np.float32(gain) * edge_field(base, VOX[1:]), psf_sigma_px(VOX[1:]))
    return smooth(np.repeat(face[None], 9, axis=0), SMOOTH_NM, VOX)


@pytest.mark.parametrize("axis", [0, 1])
def test_dark_side_length_returns_the_pore_edge_to_its_level(axis):
    """On a boundary rendered by the phantom's renderer (8 nm probe, rims of half the step), the
    length read on the image model of that probe and rim returns the first voxel on the dark side
    to the dark phase's level, for a pore | binder and a pore | particle step alike (the length does
    not depend on the contrast); the plain grey of that voxel lies past the pore | binder midpoint
    beside a particle."""
    model = ImageModel(levels={E: 0.0}, psf_sigma_nm=8.0, edge_gain=0.5, noise=(1.0, 0.0), shine_depth_slices=0,
                       shine_sigma_nm=10.0, shine=(0.0, 0.0), pixel_nm=VOX[1:])
    length = dark_side_rim_length(model, VOX, smooth_sigma_vox=smoothing_sigma(SMOOTH_NM, VOX))
    assert 15.0 < length < 30.0
    pore, binder, active = 0.22, 0.36, 0.66
    edge = (4, 23, 24) if axis == 0 else (4, 24, 23)
    for bright in (binder, active):
        g = _phantom_step(pore, bright, axis, 0.5)
        rc = rim_corrected(g, gradient_magnitude(g, VOX), length)
        # within 8 % of the step of the pore's level (the plain grey: 35-45 % of it above; the length
        # is the mean of the two axes', and the phantom's rim along the 12.7 nm rows is 0.79 of a pixel's)
        assert abs(rc[edge] - pore) < 0.08 * (bright - pore)
    # uncorrected, the pore's edge voxel beside a particle reads past the pore | binder midpoint
    assert _phantom_step(pore, active, axis, 0.5)[edge] > 0.5 * (pore + binder)


def test_dark_side_length_grows_with_the_rims():
    """No rims: the blur's spill alone; rims of the whole step: longer (the length measures them)."""
    lengths = [dark_side_rim_length(ImageModel(levels={}, psf_sigma_nm=8.0, edge_gain=gain, noise=(1.0, 0.0),
                                               shine_depth_slices=0, shine_sigma_nm=10.0, shine=(0.0, 0.0),
                                               pixel_nm=VOX[1:]), VOX)
               for gain in (0.0, 0.5, 1.0)]
    assert 0.0 < lengths[0] < lengths[1] < lengths[2]


def test_dark_cut_decides_among_the_dark_phases_only():
    """A boundary voxel whose nearest level is a dark phase takes the dark phase nearest on the
    dark grey; one whose nearest level is the particle's stays with it, whatever the dark grey."""
    lab = np.full((1, 3, 6), E, np.uint8)
    lab[0, :, 3:] = A
    lab[0, :, 2] = B  # the forest's binder shell on the pore's edge
    grey = np.array([0.2, 0.2, 0.3, 0.6, 0.66, 0.66], np.float32)[None, None].repeat(3, axis=1)
    dark_grey = grey - np.array([0, 0.02, 0.09, 0.3, 0.05, 0], np.float32)  # corrected for the dark side
    levels = {E: 0.2, B: 0.35, A: 0.66}
    plain = redecide_boundaries(lab, grey, np.ones(lab.shape, bool), levels)
    assert (plain[0, :, 2] == B).all()  # 0.30 is nearer the binder's 0.35 than the pore's 0.20
    out = redecide_boundaries(lab, grey, np.ones(lab.shape, bool), levels, dark=(dark_grey, {E: 0.2, B: 0.35}))
    assert (out[0, :, 2] == E).all()
    assert (out[0, :, 3] == A).all()  # picked active on the grey: the dark grey (0.30) is not read
    np.testing.assert_array_equal(out[0, :, :2], E)


def test_classifier_pore_and_binder_fraction(diglyme, monkeypatch):
    """On a phantom (oracle-corrected, scribbles drawn from the truth) the dark-side cut raises the
    cathode's pore Dice and brings its binder fraction towards the truth; without it (the code
    before: one rim length, fitted by separability, for all the cathode's cuts) the pore's edge
    voxels beside the particles stay binder."""
    ph, img = diglyme
    clf = train_classifier(img, synthetic_scribbles(ph.labels, seed=1), voxel_size_nm=ph.voxel_size_nm,
                           phase_names=PHASES)
    cat = ph.regions == REGIONS["cathode"]
    truth_binder = float((ph.labels[cat] == B).mean())

    def figures(res):
        p = np.asarray(res.phases)
        pore_p, pore_t = np.isin(p, [V, E]) & cat, np.isin(ph.labels, [V, E]) & cat
        bind_p, bind_t = (p == B) & cat, (ph.labels == B) & cat
        d = lambda a, b: 2 * (a & b).sum() / (a.sum() + b.sum())  # noqa: E731
        return d(pore_p, pore_t), d(bind_p, bind_t), float((p[cat] == B).mean())

    res = segment_volume(img, voxel_size_nm=ph.voxel_size_nm, method="classifier", classifier=clf, frame="none")
    info = res.parameters["classifier_boundaries"]["cathode"]
    assert info["rim_length_nm"] < info["dark_rim_length_nm"] < 40.0
    assert 0.3 < info["image_model"]["edge_gain"] < 0.7  # the phantom's rims: half the step
    pore, binder, fraction = figures(res)
    monkeypatch.setattr(api, "CLASSIFIER_DARK_PHASES", {})
    pore0, binder0, fraction0 = figures(segment_volume(img, voxel_size_nm=ph.voxel_size_nm, method="classifier",
                                                       classifier=clf, frame="none"))
    # measured: pore 0.906 -> 0.919, binder Dice 0.729 -> 0.738, binder fraction 0.170 -> 0.152 (truth 0.126)
    assert pore >= pore0 + 0.008
    assert binder >= binder0 - 0.002
    assert abs(fraction - truth_binder) <= abs(fraction0 - truth_binder) - 0.01


def test_dark_levels_out_of_order_are_not_used():
    """The dark-side levels are used only when they keep the plain levels' order with at least half
    their gap: inverted levels (a small crop's, measured by review) would swap pore and binder."""
    from volrecon.segment.api import levels_keep_order

    plain = {2: 0.210, 4: 0.227, 3: 0.60}
    assert not levels_keep_order(plain, {2: 0.203, 4: 0.190})  # inverted
    assert not levels_keep_order(plain, {2: 0.203, 4: 0.206})  # a third of the gap left
    assert levels_keep_order(plain, {2: 0.180, 4: 0.215})  # wider than the plain gap
    assert levels_keep_order(plain, {2: 0.200, 4: 0.209, 3: 0.55})
