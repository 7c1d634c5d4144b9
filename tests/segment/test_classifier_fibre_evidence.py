"""The classifier's layers read its cathode solids whose grey is the separator fibres' as fibres
(issue 7: separator|cathode within 2 voxels): the forest labels the fibre mat's last rows binder
beside the cathode's bright particles."""

import dask.array as da
import numpy as np
import pytest

from volrecon.phases import PHASES, REGIONS
from volrecon.segment import segment_volume, train_classifier
from volrecon.segment.classifier import fibre_evidence, fibre_evidence_levels, nearest_level
from volrecon.segment.scribbles import synthetic_scribbles

LEVELS = {"electrolyte": 70.0, "binder": 110.0, "separator": 140.0, "active": 175.0}


def _scene(fibre_grey: float, noise: float = 4.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels, truth and grey of a separator (fibres 4 voxels wide in electrolyte, rows 0-19) over a
    cathode (active, binder, electrolyte, rows 20-39); the fibres' last 4 rows labelled binder, as the
    forest does beside the cathode.  Fibres read ``fibre_grey``."""
    rng = np.random.default_rng(seed)
    truth = np.full((6, 40, 48), PHASES["electrolyte"], np.uint8)
    truth[:, :20, (np.arange(48) % 8) < 4] = PHASES["separator"]
    # the cathode's phases in blocks of 4x4 voxels (every phase has interior voxels)
    cat = rng.choice([PHASES["active"], PHASES["binder"], PHASES["electrolyte"]], p=[0.5, 0.2, 0.3], size=(6, 5, 12))
    truth[:, 20:] = np.repeat(np.repeat(cat, 4, axis=1), 4, axis=2)
    grey = np.zeros(truth.shape, np.float32)
    for p, g in LEVELS.items():
        grey[truth == PHASES[p]] = g
    grey[truth == PHASES["separator"]] = fibre_grey
    grey += rng.normal(0.0, noise, grey.shape).astype(np.float32)
    labels = truth.copy()
    labels[:, 16:20][labels[:, 16:20] == PHASES["separator"]] = PHASES["binder"]
    return labels, truth, grey


def test_nearest_level_cuts_halfway():
    levels = {1: 10.0, 2: 20.0, 3: 40.0}
    np.testing.assert_array_equal(nearest_level(np.array([0.0, 14.9, 15.1, 29.9, 30.1, 99.0]), levels), [1, 1, 2, 2, 3, 3])


def test_fibres_labelled_binder_read_as_fibres():
    """Against the scene's truth: every fibre voxel the forest took for binder is fibre evidence
    again, the cathode's binder and active keep their labels (but a noise tail of a few per mille)."""
    labels, truth, grey = _scene(fibre_grey=LEVELS["separator"])
    levels, agreement = fibre_evidence_levels(grey, labels, labels != 0, PHASES)
    assert levels is not None and agreement > 0.95
    out = fibre_evidence(labels, grey, levels, PHASES)
    fibres = truth == PHASES["separator"]
    assert (labels[fibres] == PHASES["binder"]).sum() > 100
    assert (out[fibres] == PHASES["separator"]).all()
    solids = np.isin(truth, [PHASES["binder"], PHASES["active"]])
    assert (out[solids] == PHASES["separator"]).mean() < 0.005
    assert (out[~fibres & ~solids] == labels[~fibres & ~solids]).all()


def test_fibres_as_dark_as_the_binder_are_not_trusted():
    """Fibres whose grey is the binder's: the grey cannot tell them apart, so no level is given
    (the phases stay as the forest labelled them)."""
    labels, _, grey = _scene(fibre_grey=LEVELS["binder"] + 2.0)
    levels, agreement = fibre_evidence_levels(grey, labels, labels != 0, PHASES)
    assert levels is None and agreement < 0.75


@pytest.fixture(scope="module")
def own(diglyme):
    ph, img = diglyme
    clf = train_classifier(img, synthetic_scribbles(ph.labels, seed=1), voxel_size_nm=ph.voxel_size_nm, phase_names=PHASES)
    return segment_volume(img, voxel_size_nm=ph.voxel_size_nm, method="classifier", classifier=clf)


def test_classifier_separator_cathode_within_two_voxels(diglyme, own):
    """On its own phases the classifier places separator|cathode within 2 voxels of the truth (mean
    over the columns; measured 1.88, and 2.21 when the mat's last fibres counted as binder) and
    less biased towards the anode (measured -0.96 voxels; -1.81 before)."""
    ph, _ = diglyme
    assert own.parameters["layer_fibre_evidence"]["used"]
    truth = np.isin(ph.regions, [REGIONS["anode"], REGIONS["separator"]]).sum(axis=1)
    err = own.interfaces["heights_nm"]["separator|cathode"] / ph.voxel_size_nm[1] - truth
    assert float(np.abs(err).mean()) < 2.0
    assert float(err.mean()) > -1.4


def test_lazy_input_finds_the_same_layers(diglyme, own, tmp_path):
    """A dask input's fibre evidence is computed chunk by chunk: the same levels and layers as the
    numpy input's."""
    ph, img = diglyme
    clf = train_classifier(img, synthetic_scribbles(ph.labels, seed=1), voxel_size_nm=ph.voxel_size_nm, phase_names=PHASES)
    res = segment_volume(da.from_array(img, chunks=(8, 64, 96)), chunks=(8, 64, 96), voxel_size_nm=ph.voxel_size_nm,
                         method="classifier", classifier=clf, scratch=tmp_path / "s")
    assert res.parameters["layer_fibre_evidence"] == own.parameters["layer_fibre_evidence"]
    for name, h in own.interfaces["heights_nm"].items():
        if h is not None:
            np.testing.assert_allclose(res.interfaces["heights_nm"][name], h, atol=1e-6, err_msg=name)
