"""The classifier's sodium surface (issue 7): read on the grey values from the anode end, as method
'layers' reads it, not left where the forest's labels cut the sodium from a film one or two voxels
thick."""

import numpy as np
import pytest

from volrecon.phases import PHASES
from volrecon.sample import make_phantom
from volrecon.sample.oracle import oracle_correct
from volrecon.segment import segment_volume, train_classifier
from volrecon.segment.scribbles import synthetic_scribbles


@pytest.fixture(scope="module")
def framed_diglyme():
    """A small diglyme phantom with the face's frame, oracle-corrected, and the classifier's result."""
    ph = make_phantom("diglyme", slices=8, shape=(128, 128), seed=2, artefacts="all", frame=True, workers=2)
    img = oracle_correct(ph)
    clf = train_classifier(img, synthetic_scribbles(ph.labels, seed=1), voxel_size_nm=ph.voxel_size_nm,
                           phase_names=PHASES)
    return ph, segment_volume(img, voxel_size_nm=ph.voxel_size_nm, method="classifier", classifier=clf)


def _true_sodium_surface(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per (z, x) column one past the last sodium row (anode on top), and the columns holding both
    sodium and SEI (the frame's walls and cap excluded)."""
    na = labels == PHASES["sodium"]
    last = labels.shape[1] - np.argmax(na[:, ::-1, :], axis=1)
    return last, na.any(axis=1) & (labels == PHASES["sei"]).any(axis=1)


def test_classifier_sodium_surface_on_the_grey(framed_diglyme):
    """Every column's sodium surface lies within 2 rows of the truth (at most 2 % of them beyond),
    0.6 row on average.  Before, the rim-corrected refinement started from the forest's cut and
    looked for the steepest rise up to the forest's film surface; where that lay rows beyond the
    film (4.1 rows late on average in those columns) the window held the film's rise onto the
    separator's fibres, often steeper than the sodium's onto the film, and took it: 165 of the 928
    columns more than 2 rows off, 3.9 rows late on average there (mean error 1.16 rows; 0.39 and 3
    columns now)."""
    ph, res = framed_diglyme
    h = np.asarray(res.interfaces["heights_nm"]["sodium|sei"]) / ph.voxel_size_nm[1]
    truth, cols = _true_sodium_surface(ph.labels)
    err = np.abs(h - truth)[cols]
    assert cols.sum() > 500
    assert float((err > 2.0).mean()) < 0.02, (int((err > 2.0).sum()), err.size)
    assert float(err.mean()) < 0.6, float(err.mean())
    assert res.parameters["sodium"]["found"]
