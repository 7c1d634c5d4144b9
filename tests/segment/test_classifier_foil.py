"""The classifier's boundary re-decision beside the collector foil and the trench walls (issue 7)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from volrecon.phases import PHASES, REGIONS
from volrecon.segment import api, segment_volume
from volrecon.segment.cathode_rims import gradient_magnitude, rim_corrected
from volrecon.segment.foil_spill import FoilSpill, _foil_filled, _foil_spill_grey, _spill_read
from volrecon.segment.scribbles import synthetic_scribbles


VOX = (20.0, 12.7, 10.0)


def _pore(a: np.ndarray) -> np.ndarray:
    return np.isin(a, (PHASES["void"], PHASES["electrolyte"]))


def test_foil_filled_takes_the_nearest_row_outside_the_foil():
    g = np.broadcast_to(np.arange(10, dtype=np.float32)[None, :, None], (1, 10, 2)).copy()
    foil = np.zeros(g.shape, bool)
    foil[:, 7:] = True
    np.testing.assert_array_equal(_foil_filled(g, foil, 1, 4)[0, :, 0], [0, 1, 2, 3, 4, 5, 6, 6, 6, 6])
    foil[:] = False
    foil[:, :3] = True  # a foil before the cathode; only ``reach`` voxels into it are filled
    np.testing.assert_array_equal(_foil_filled(g, foil, 1, 2)[0, :, 0], [0, 3, 3, 3, 4, 5, 6, 7, 8, 9])


def test_spill_rows_read_the_cathodes_own_level():
    """A flat pore (0.2) whose two rows beside a foil (0.9) mix in its grey (shares 0.5, 0.2): read
    on the unmixed grey, with no gradient from the foil's step, the rows are the pore's level
    whatever the rim length; the plain rim-corrected grey (the code before) read the foil's step as
    a rim, its first row anywhere from above the pore to far below it as the length goes."""
    reg = np.full((2, 12, 6), REGIONS["cathode"], np.uint8)
    reg[:, 8:] = REGIONS["collector"]
    grey = np.full(reg.shape, 0.2, np.float32)
    grey[:, 8:] = 0.9
    grey[:, 7] = 0.5 * 0.2 + 0.5 * 0.9
    grey[:, 6] = 0.8 * 0.2 + 0.2 * 0.9
    spill = FoilSpill(offset=(0.45, 0.18), gain=(0.5, 0.8), samples=(12, 12))
    grad = gradient_magnitude(grey, VOX)
    rows = _foil_spill_grey(grey, reg, spill, axis=1, vox=VOX)
    old = []
    for length in (8.0, 16.0, 24.0):
        read = _spill_read(grey, grad, length, rows)
        np.testing.assert_allclose(read[:, 6:8], 0.2, atol=1e-5)
        # beyond the spill's reach, as before
        np.testing.assert_array_equal(read[:, :6], rim_corrected(grey, grad, length)[:, :6])
        old.append(float(rim_corrected(grey, grad, length)[0, 7, 0]))
    assert max(old) - min(old) > 0.15 and max(abs(v - 0.2) for v in old) > 0.1


def test_classifier_rows_beside_the_foil(diglyme, monkeypatch):
    """On a phantom (oracle-corrected, scribbles from the truth), the share of the cathode's last two
    rows before the foil labelled pore: measured 0.223 / 0.633 before (the first row's pore read as
    binder under the foil's blur and rim; the second darkened by the foil's step read as a rim),
    0.560 / 0.613 now, true 0.575 / 0.595."""
    ph, img = diglyme
    scr = synthetic_scribbles(ph.labels, seed=1)
    col = ph.regions == REGIONS["collector"]
    first = col.argmax(axis=1)
    z, x = np.nonzero(col.any(axis=1) & (first >= 2))
    y = first[z, x] - 1
    truth = [_pore(ph.labels[z, y - k, x]).mean() for k in (0, 1)]

    def shares() -> list[float]:
        res = segment_volume(img, voxel_size_nm=ph.voxel_size_nm, method="classifier", scribbles=scr, frame="none")
        return [float(_pore(np.asarray(res.phases)[z, y - k, x]).mean()) for k in (0, 1)]

    new = shares()
    monkeypatch.setattr(api, "_fit_foil_spill", lambda *a, **k: FoilSpill())
    old = shares()
    assert new[0] >= old[0] + 0.2
    assert abs(new[0] - truth[0]) <= 0.05
    assert abs(new[1] - truth[1]) <= abs(old[1] - truth[1])


def test_classifier_pore_beside_the_walls(framed, monkeypatch):
    """The trench walls' glow, spread by the denoising, read the pore beside them as binder: the
    share of the true cathode pore within two columns of a wall labelled pore, measured 0.56 with
    the walls in the average (the code before), 0.84 without."""
    ph, img = framed
    scr = synthetic_scribbles(ph.labels, seed=1)
    wall = ndi.distance_transform_edt(ph.regions != REGIONS["frame"], sampling=(1e9, 1, 1)) <= 2
    near = wall & (ph.regions == REGIONS["cathode"]) & _pore(ph.labels)
    assert near.sum() > 300

    def share() -> float:
        res = segment_volume(img, voxel_size_nm=ph.voxel_size_nm, method="classifier", scribbles=scr)
        return float(_pore(np.asarray(res.phases)[near]).mean())

    new = share()
    monkeypatch.setattr(api, "_specimen_voxels", lambda *a, **k: None)
    old = share()
    assert new >= old + 0.15
    assert new >= 0.7


def test_classifier_rows_beside_a_pore_poor_foil(pore_poor_foil_phantom):
    """Rows beside the foil with fewer pores than the bulk (0.23 / 0.20 against 0.41): the darker
    half's peak there was the binder's or the particles' lifted level, read as the pore's the
    spill's shares came out 0.867 / 0.762 / 0.728 (true 0.674 / 0.291 / 0.080), the rows were
    over-unmixed and labelled pore 0.621 / 0.659 (true 0.232 / 0.195), their particles' recall
    0.234 / 0.238.  The pore's level read below that peak: shares 0.653 / 0.296, pore 0.238 / 0.226,
    recall 0.759 / 0.912."""
    from volrecon.segment.foil_spill import foil_distance

    ph, img = pore_poor_foil_phantom
    res = segment_volume(img, voxel_size_nm=ph.voxel_size_nm, method="classifier",
                         scribbles=synthetic_scribbles(ph.labels, seed=1), frame="none")
    dist = foil_distance(ph.regions, axis=1, cathode=REGIONS["cathode"], collector=REGIONS["collector"])
    phases = np.asarray(res.phases)
    for d in (1, 2):
        at = dist == d
        assert abs(_pore(phases[at]).mean() - _pore(ph.labels[at]).mean()) < 0.05, d
        active = ph.labels[at] == PHASES["active"]
        assert (phases[at][active] == PHASES["active"]).mean() > 0.7, d
