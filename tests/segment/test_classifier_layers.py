"""What the classifier's layers are found on: the grey-value guess by default, its own phases when its
phase set does not name the layers (issue 7: separator|cathode within 2 voxels)."""

import dask.array as da
import numpy as np
import pytest

from volrecon.errors import ParameterError
from volrecon.phases import PHASES, REGIONS
from volrecon.segment import segment_volume, train_classifier
from volrecon.segment.api import LAYER_PHASES
from volrecon.segment.scribbles import synthetic_scribbles


@pytest.fixture(scope="module")
def clf(diglyme):
    ph, img = diglyme
    return train_classifier(img, synthetic_scribbles(ph.labels, seed=1), voxel_size_nm=ph.voxel_size_nm, phase_names=PHASES)


@pytest.fixture(scope="module")
def default(diglyme, clf):
    ph, img = diglyme
    return segment_volume(img, voxel_size_nm=ph.voxel_size_nm, method="classifier", classifier=clf)


def _truth_heights(ph):
    """True interface heights (rows) per (z, x) column of the phantom (no frame, anode first along y)."""
    r, lab = ph.regions, ph.labels
    return {
        "sodium|sei": (lab == PHASES["sodium"]).sum(axis=1),
        "sei|separator": (r == REGIONS["anode"]).sum(axis=1),
        "separator|cathode": ((r == REGIONS["anode"]) | (r == REGIONS["separator"])).sum(axis=1),
        "cathode|collector": (r != REGIONS["collector"]).sum(axis=1),
    }


def test_classifier_layers_from_the_grey_guess_by_default(diglyme, default):
    """A classifier of the cell's phases finds its layers on the unsupervised method's grey guess:
    the same layer heights as ``method='auto'`` on the same image."""
    ph, img = diglyme
    assert default.parameters["layers_from"]["source"] == "grey"
    assert default.parameters["layer_guess"]["classes"] == ["electrolyte", "sodium", "separator", "active", "collector"]
    auto = segment_volume(img, voxel_size_nm=ph.voxel_size_nm, method="auto")
    for name, h in auto.interfaces["heights_nm"].items():
        if h is not None:
            np.testing.assert_allclose(default.interfaces["heights_nm"][name], h, atol=1e-6, err_msg=name)


def test_classifier_interfaces_within_two_voxels(diglyme, default):
    """Every interface within 2 voxels of the truth (mean over the columns); the separator|cathode
    cut is the one the classifier's own phases placed too early (binder and active taken in the
    separator's last rows)."""
    ph, _ = diglyme
    vy = ph.voxel_size_nm[1]
    for name, truth in _truth_heights(ph).items():
        dist = float(np.abs(default.interfaces["heights_nm"][name] / vy - truth).mean())
        assert dist < 2.0, (name, dist)


def test_classifier_without_the_layer_phases_uses_its_own(diglyme):
    """A classifier whose phase set does not name the layers (here the separator is called
    'membrane') finds them on its own phases, and says why; no grey guess is computed."""
    ph, img = diglyme
    names = {("membrane" if k == "separator" else k): v for k, v in PHASES.items()}
    sub = (slice(None, 8), slice(None), slice(None, 96))
    clf = train_classifier(img[sub], synthetic_scribbles(ph.labels[sub], seed=1), voxel_size_nm=ph.voxel_size_nm,
                           phase_names=names)
    assert "separator" not in clf.phase_names and set(LAYER_PHASES) - {"separator"} <= set(clf.phase_names)
    res = segment_volume(img[sub], voxel_size_nm=ph.voxel_size_nm, method="classifier", classifier=clf)
    src = res.parameters["layers_from"]
    assert src["source"] == "phases" and "separator" in src["reason"]
    assert "layer_guess" not in res.parameters
    # asked for, the grey guess is used all the same
    forced = segment_volume(img[sub], voxel_size_nm=ph.voxel_size_nm, method="classifier", classifier=clf,
                            layers_from="grey")
    assert forced.parameters["layers_from"]["source"] == "grey" and "layer_guess" in forced.parameters


def test_lazy_grey_layers_equal_and_leave_no_guess(diglyme, clf, default, tmp_path):
    """A dask input's guess is kept in the scratch folder while the layers are found, then removed;
    the layers equal those of the numpy input."""
    ph, img = diglyme
    res = segment_volume(da.from_array(img, chunks=(8, 64, 96)), chunks=(8, 64, 96), voxel_size_nm=ph.voxel_size_nm,
                         method="classifier", classifier=clf, scratch=tmp_path / "s")
    assert not (tmp_path / "s" / "layer_guess.zarr").exists()
    for name, h in default.interfaces["heights_nm"].items():
        if h is not None:
            np.testing.assert_allclose(res.interfaces["heights_nm"][name], h, atol=1e-6, err_msg=name)
    np.testing.assert_array_equal(np.asarray(res.regions), default.regions)


def test_layers_from_checked(diglyme):
    ph, img = diglyme
    with pytest.raises(ParameterError, match="layers_from"):
        segment_volume(img, voxel_size_nm=ph.voxel_size_nm, method="classifier", layers_from="truth")
    with pytest.raises(ParameterError, match="layers_from='phases'"):
        segment_volume(img, voxel_size_nm=ph.voxel_size_nm, method="layers", layers_from="phases")
