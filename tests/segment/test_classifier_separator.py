"""The classifier's separator region decided as method 'layers' decides it (issue 7): the cathode's
solids the forest puts in the mat's last rows are the separator's fibres or pore by their grey, and
the particles keep their caps (volrecon.segment.api._classifier_separator_contacts)."""

import dask.array as da
import numpy as np
from scipy import ndimage as ndi

from volrecon.phases import PHASES, REGIONS
from volrecon.sample.render import INTENSITY
from volrecon.segment import api

E, S, A, B, I = (PHASES[p] for p in ("electrolyte", "separator", "active", "binder", "sei"))
NAMES = {p: PHASES[p] for p in ("electrolyte", "separator", "active", "binder", "sei", "void")}
CUT = 18
"""The separator|cathode row of :func:`_mat_on_particles` (anode first, stacking axis y)."""
CAP = (slice(16, CUT), slice(12, 16))
"""Rows and columns of the particle's cap beyond the cut."""


def _mat_on_particles():
    """SEI rows 0-5, the separator region rows 6-17 (fibres running to the cathode in every other
    block of four columns, pore between them), the cathode's particles from row 18 with a cap two
    rows into the separator region in a pore's columns (:data:`CAP`); the grey blurred in-plane.
    Returns the grey, the regions and the truth."""
    nz, ny, nx = 4, 28, 40
    truth = np.full((nz, ny, nx), I, np.uint8)
    fibre_cols = (np.arange(nx) // 4) % 2 == 0
    truth[:, 6:CUT] = np.where(fibre_cols, S, E)
    truth[:, CUT:] = A
    truth[(slice(None), *CAP)] = A
    level = {v: INTENSITY[p] for p, v in NAMES.items()}
    grey = ndi.gaussian_filter(np.vectorize(level.get, otypes=[np.float32])(truth), (0.0, 0.8, 0.8), mode="nearest")
    regions = np.full(truth.shape, REGIONS["anode"], np.uint8)
    regions[:, 6:CUT] = REGIONS["separator"]
    regions[:, CUT:] = REGIONS["cathode"]
    return grey, regions, truth


def _forest(truth: np.ndarray) -> np.ndarray:
    """The forest's labels on the mat's last two rows, as on the benchmark's carbonate phantom: the
    fibres lying towards the particles read active (row 16) and binder (row 17), the pore beside
    the particles binder (row 17); the cap active, as it is."""
    out = truth.copy()
    for row, fibre, pore in ((16, A, E), (17, B, B)):
        out[:, row] = np.where(truth[:, row] == S, fibre, np.where(truth[:, row] == E, pore, truth[:, row]))
    return out


def _run(grey, regions, labels, params, anode_first: bool = True):
    d = lambda a: da.from_array(a, chunks=a.shape)  # noqa: E731
    out = api._classifier_separator_contacts(d(grey), d(regions), d(labels), d(labels), names=NAMES, vox=(10.0, 10.0, 10.0),
                                             smooth_nm=10.0, params=params, edge=None, stack=(1, anode_first))
    return np.asarray(out)


def test_solids_in_the_mat_are_fibres_pore_and_caps():
    """The fibres the forest read as binder or active become fibres again, the lit pore it read as
    binder pore, and the particle's cap stays active: the separator region then holds the truth
    (before: 224 voxels of the two rows wrong, a fifth of the region's fibres)."""
    grey, regions, truth = _mat_on_particles()
    forest = _forest(truth)
    sep = regions == REGIONS["separator"]
    params: dict = {}
    out = _run(grey, regions, forest, params)
    info = params["classifier_separator_contacts"]
    assert INTENSITY["electrolyte"] < info["fibre"] < INTENSITY["separator"]
    # the forest's errors: the fibres of both rows (20 columns) and the pore of the last (16 beside the cap)
    assert (forest != truth)[sep].sum() == 4 * (20 + 20 + 16)
    np.testing.assert_array_equal(out[sep], truth[sep])
    # nothing outside the separator region moves
    np.testing.assert_array_equal(out[~sep], forest[~sep])
    # the cathode first: the same voxels, the contacts looked for the other way along the axis
    flip = lambda a: a[:, ::-1].copy()  # noqa: E731
    np.testing.assert_array_equal(_run(flip(grey), flip(regions), flip(forest), {}, anode_first=False), flip(out))


def test_a_cap_read_as_binder_is_given_back_to_its_particle():
    """A particle's cap the forest read as binder (its dark side lit by the pore beside it) reads
    as bright as a fibre lying on the particle or brighter: it is a fibre by the first cut, and the
    particle takes it back along the stacking axis (separator_contacts); the fibres beside it stay
    fibres."""
    grey, regions, truth = _mat_on_particles()
    forest = truth.copy()
    forest[(slice(None), *CAP)] = B
    out = _run(grey, regions, forest, {})
    sep = regions == REGIONS["separator"]
    np.testing.assert_array_equal(out[sep], truth[sep])


def test_the_forests_own_fibres_on_a_particle_keep_their_label():
    """A fibre lying on a particle that reads dimmer than the cut between the lit pore and the lit
    fibre (noise, at coarse pixels): the forest's fibre keeps its label, and only a voxel the forest
    read as a cathode solid is re-read as the lit pore (before the lit rule was kept to those, the
    forest's fibres on the particles of 20 nm phantoms were turned to pore by noise)."""
    grey, regions, truth = _mat_on_particles()
    params: dict = {}
    _run(grey, regions, truth, params)
    info = params["classifier_separator_contacts"]
    # above the solids' fibre cut, under the lit rule's cut and under the particle's first-voxel cut
    dim = 0.5 * (info["fibre"] + min(info["pore_on_active"], info["pore_active"]))
    assert info["fibre"] < dim < info["pore_on_active"]
    grey[:, CUT - 1, :4] = dim
    out = _run(grey, regions, truth, {})
    np.testing.assert_array_equal(out[:, CUT - 1, :4], S)
    forest = truth.copy()
    forest[:, CUT - 1, :4] = B
    out = _run(grey, regions, forest, {})
    np.testing.assert_array_equal(out[:, CUT - 1, :4], E)


def test_without_levels_nothing_changes():
    """A separator region without the forest's pore in it (no pore level): the labels are left
    alone and the reason recorded."""
    grey, regions, truth = _mat_on_particles()
    forest = _forest(truth)
    forest[forest == E] = S
    params: dict = {}
    out = _run(grey, regions, forest, params)
    np.testing.assert_array_equal(out, forest)
    assert "skipped" in params["classifier_separator_contacts"]


def test_classifier_separator_on_a_thin_carbonate_mat(pore_poor_foil_phantom, monkeypatch):
    """On a carbonate phantom (oracle-corrected, scribbles drawn from the truth) the classifier's
    separator Dice rises with the separator region decided by grey and contacts, and its active
    and binder Dice do not fall; without it (the code before) the forest's binder and active on the
    fibres and the lit pore of the mat's last rows stay."""
    from volrecon.segment import segment_volume
    from volrecon.segment.scribbles import synthetic_scribbles

    ph, img = pore_poor_foil_phantom
    scr = synthetic_scribbles(ph.labels, seed=1)

    def dices(res):
        p = np.asarray(res.phases)
        d = lambda a, b: 2 * (a & b).sum() / (a.sum() + b.sum())  # noqa: E731
        return [d(p == v, ph.labels == v) for v in (S, A, B)]

    sep, act, binder = dices(segment_volume(img, voxel_size_nm=ph.voxel_size_nm, method="classifier", scribbles=scr,
                                            frame="none"))
    monkeypatch.setattr(api, "_classifier_separator_contacts", lambda smoothed, reg, out, forest, **kw: out)
    sep0, act0, binder0 = dices(segment_volume(img, voxel_size_nm=ph.voxel_size_nm, method="classifier", scribbles=scr,
                                               frame="none"))
    # measured: separator 0.9489 -> 0.9590, active 0.9703 -> 0.9722, binder 0.7846 -> 0.7921
    assert sep >= sep0 + 0.005 and sep >= 0.95
    assert act >= act0 - 0.001
    assert binder >= binder0
