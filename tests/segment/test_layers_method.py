"""method='layers' (= 'auto'): unsupervised, classified within the detected layers."""

import numpy as np
import pytest

from volrecon.segment import segment_volume


def _dice(a, b):
    return 2 * (a & b).sum() / max(1, a.sum() + b.sum())


@pytest.fixture(scope="module")
def layered(framed):
    ph, img = framed
    return ph, segment_volume(img, voxel_size_nm=ph.voxel_size_nm, method="auto")


def _porosity(ph, res):
    pp = np.isin(np.asarray(res.phases), [res.phase_names["void"], res.phase_names["electrolyte"]])
    pt = np.isin(ph.labels, [1, 2])
    return pp[np.asarray(res.regions) == 3].mean(), pt[ph.regions == 3].mean()


def test_layers_finds_sei_binder_and_pore(layered):
    ph, res = layered
    assert res.method == "layers"
    P, T = np.asarray(res.phases), ph.labels
    assert _dice(P == res.phase_names["sei"], T == 7) >= 0.75  # measured 0.82
    assert _dice(P == res.phase_names["binder"], T == 4) >= 0.5
    assert _dice(P == res.phase_names["sodium"], T == 6) >= 0.85
    assert "sei" not in res.interfaces["absent_layers"]
    pred, truth = _porosity(ph, res)
    assert abs(pred - truth) < 0.05
    assert not any("void not separated" in w for w in res.warnings)


def test_layers_sei_thickness_within_one_voxel(layered):
    """The SEI's outer surface is the first dense -> porous transition near the sodium surface,
    regularised laterally: its thickness median lies within 1.5 stacking-axis voxels of the truth
    (each of the film's two surfaces can sit about half a voxel off, plus the sampling of this
    8-slice phantom; measured 264 vs 278 nm, 1.1 voxels), and no column overshoots into the
    separator (p95 within 3 voxels)."""
    from volrecon.analyze import sei_thickness

    ph, res = layered
    step = float(ph.voxel_size_nm[1])  # the stacking axis of the phantom is y
    pred = sei_thickness(np.asarray(res.phases), phase_names=res.phase_names, voxel_size_nm=ph.voxel_size_nm)
    true = sei_thickness(ph.labels, voxel_size_nm=ph.voxel_size_nm)
    assert abs(pred.median - true.median) <= 1.5 * step
    assert pred.p95 <= true.p95 + 3 * step
    assert res.parameters["sei"]["found"] and res.parameters["sei"]["measured_share"] > 0.8


def test_thin_sei_edges_not_widened_by_rims(diglyme):
    """The diglyme SEI (2-3 voxels) is found at its true thickness: edge-brightening rims pull each
    film edge's steepest step about half a voxel outwards (the film looked up to a voxel thicker),
    and a fibre lying on the film hides its edge.  On this phantom: mean thickness 44.3 vs 38.4 nm
    before the rim correction, 41.0 with the rims fitted on the film's own edge (Dice 0.805), 32.0
    with the rims measured on the collector's edge (Dice 0.869; the thin film's edges pull each
    other's steepest steps, so the thick edge's shift over-corrects a 3-voxel film by up to 0.25
    voxel per edge: -0.5 voxel here, within 0.2 on the 192x192 seeds 0-5 where the film's own fit
    ranged from -1.4 to +1.2).  The film's own two-edge fit on thickness bins (within 0.15 voxel on
    those seeds) is rejected on this small phantom (misfit 0.056 of the film's step; accepted it
    would read -0.57 voxel): the collector's rims stand, and the bound stays 0.6 voxel."""
    from volrecon.analyze import sei_thickness

    ph, img = diglyme
    res = segment_volume(img, voxel_size_nm=ph.voxel_size_nm, method="auto")
    step = float(ph.voxel_size_nm[1])
    P = np.asarray(res.phases)
    assert _dice(P == res.phase_names["sei"], ph.labels == 7) >= 0.80
    pred = sei_thickness(P, phase_names=res.phase_names, voxel_size_nm=ph.voxel_size_nm)
    true = sei_thickness(ph.labels, voxel_size_nm=ph.voxel_size_nm)
    assert abs(pred.mean - true.mean) <= 0.6 * step
    assert 0.1 <= res.parameters["sei"]["edge"]["shift_vox"] <= 0.9  # the rims' pull, measured on the stack
    assert "own fit off" in res.parameters["sei"]["rim_source"]  # a thin film: its own edge fit is opt-in
