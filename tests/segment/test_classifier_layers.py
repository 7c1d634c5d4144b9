"""What the classifier's layers are found on: its own phases by default, the grey-value guess of method
'layers' when asked for (issue 7: separator|cathode within 2 voxels), its own phases whenever its phase
set does not name the layers."""

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
def grey(diglyme, clf):
    ph, img = diglyme
    return segment_volume(img, voxel_size_nm=ph.voxel_size_nm, method="classifier", classifier=clf, layers_from="grey")


def _truth_heights(ph):
    """True interface heights (rows) per (z, x) column of the phantom (no frame, anode first along y)."""
    r, lab = ph.regions, ph.labels
    return {
        "sodium|sei": (lab == PHASES["sodium"]).sum(axis=1),
        "sei|separator": (r == REGIONS["anode"]).sum(axis=1),
        "separator|cathode": ((r == REGIONS["anode"]) | (r == REGIONS["separator"])).sum(axis=1),
        "cathode|collector": (r != REGIONS["collector"]).sum(axis=1),
    }


def test_classifier_layers_from_the_grey_guess(diglyme, grey):
    """Asked for, a classifier of the cell's phases finds its layers on the unsupervised method's
    grey guess: the same layer heights as ``method='auto'`` on the same image."""
    ph, img = diglyme
    assert grey.parameters["layers_from"]["source"] == "grey"
    assert grey.parameters["layer_guess"]["classes"] == ["electrolyte", "sodium", "separator", "active", "collector"]
    auto = segment_volume(img, voxel_size_nm=ph.voxel_size_nm, method="auto")
    for name, h in auto.interfaces["heights_nm"].items():
        if h is not None:
            np.testing.assert_allclose(grey.interfaces["heights_nm"][name], h, atol=1e-6, err_msg=name)


def test_classifier_interfaces_within_two_voxels(diglyme, clf, grey):
    """On the grey guess every interface is within 2 voxels of the truth (mean over the columns);
    on this phantom the classifier's own phases (the default) place separator|cathode further off,
    too early (binder and active taken in the separator's last rows: 2.2 voxels, 1.9 since those
    of fibre grey count as fibres, tests/segment/test_classifier_fibre_evidence.py)."""
    ph, img = diglyme
    vy = ph.voxel_size_nm[1]
    own = segment_volume(img, voxel_size_nm=ph.voxel_size_nm, method="classifier", classifier=clf)
    assert own.parameters["layers_from"]["source"] == "phases" and "layer_guess" not in own.parameters
    for name, truth in _truth_heights(ph).items():
        dist = float(np.abs(grey.interfaces["heights_nm"][name] / vy - truth).mean())
        assert dist < 2.0, (name, dist)
    sep = "separator|cathode"
    truth = _truth_heights(ph)[sep]
    dist = {k: float(np.abs(r.interfaces["heights_nm"][sep] / vy - truth).mean()) for k, r in (("grey", grey), ("own", own))}
    assert dist["grey"] < dist["own"], dist


def test_classifier_without_the_layer_phases_uses_its_own(diglyme):
    """A classifier whose phase set does not name the layers (here the separator is called
    'membrane') finds them on its own phases even when the grey guess is asked for, and says why
    (reason and warning); no grey guess is computed."""
    ph, img = diglyme
    names = {("membrane" if k == "separator" else k): v for k, v in PHASES.items()}
    sub = (slice(None, 8), slice(None), slice(None, 96))
    clf = train_classifier(img[sub], synthetic_scribbles(ph.labels[sub], seed=1), voxel_size_nm=ph.voxel_size_nm,
                           phase_names=names)
    assert "separator" not in clf.phase_names and set(LAYER_PHASES) - {"separator"} <= set(clf.phase_names)
    res = segment_volume(img[sub], voxel_size_nm=ph.voxel_size_nm, method="classifier", classifier=clf,
                         layers_from="grey")
    src = res.parameters["layers_from"]
    assert src["source"] == "phases" and "separator" in src["reason"]
    assert "layer_guess" not in res.parameters
    assert src["reason"] in res.warnings


def test_lazy_grey_layers_equal_and_leave_no_guess(diglyme, clf, grey, tmp_path):
    """A dask input's guess is kept in the scratch folder while the layers are found, then removed;
    the layers equal those of the numpy input."""
    ph, img = diglyme
    res = segment_volume(da.from_array(img, chunks=(8, 64, 96)), chunks=(8, 64, 96), voxel_size_nm=ph.voxel_size_nm,
                         method="classifier", classifier=clf, layers_from="grey", scratch=tmp_path / "s")
    assert not (tmp_path / "s" / "layer_guess.zarr").exists()
    assert "phases.zarr" in {p.name for p in (tmp_path / "s").iterdir()}
    for name, h in grey.interfaces["heights_nm"].items():
        if h is not None:
            np.testing.assert_allclose(res.interfaces["heights_nm"][name], h, atol=1e-6, err_msg=name)
    np.testing.assert_array_equal(np.asarray(res.regions), grey.regions)


def test_layers_from_checked(diglyme):
    ph, img = diglyme
    with pytest.raises(ParameterError, match="layers_from"):
        segment_volume(img, voxel_size_nm=ph.voxel_size_nm, method="classifier", layers_from="truth")
    with pytest.raises(ParameterError, match="layers_from='phases'"):
        segment_volume(img, voxel_size_nm=ph.voxel_size_nm, method="layers", layers_from="phases")
    with pytest.raises(ParameterError, match="needs layers=True"):
        segment_volume(img, voxel_size_nm=ph.voxel_size_nm, method="otsu", layers=False, layers_from="grey")


def test_otsu_on_grey_layers_keeps_the_film_between_its_surfaces(diglyme):
    """Grey layers move the sodium surface without an upper bound; the SEI's outer surface must then
    follow for every method, or the film's two surfaces cross (review rev13: otsu, 133 of 768 columns)."""
    ph, img = diglyme
    res = segment_volume(img, voxel_size_nm=ph.voxel_size_nm, method="otsu", layers_from="grey", refine_anode=True)
    h = res.interfaces["heights_nm"]
    assert "sei" in res.parameters
    assert (np.asarray(h["sei|separator"]) - np.asarray(h["sodium|sei"]) >= 0).all()
