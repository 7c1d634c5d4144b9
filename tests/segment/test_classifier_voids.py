"""The classifier's cathode pore split into void and electrolyte after the layers' decision (issue 7)."""

import numpy as np
import pytest

from volrecon.phases import PHASES, REGIONS
from volrecon.segment import api, segment_volume, train_classifier
from volrecon.segment.classifier import IMPOSSIBLE_PHASES
from volrecon.segment.scribbles import synthetic_scribbles


@pytest.fixture(scope="module")
def split_input(diglyme):
    """The classifier's segmentation of the diglyme phantom (oracle-corrected, scribbles drawn from
    the truth) and the labels its void split was given."""
    ph, img = diglyme
    clf = train_classifier(img, synthetic_scribbles(ph.labels, seed=1), voxel_size_nm=ph.voxel_size_nm,
                           phase_names=PHASES)
    given: list[np.ndarray] = []
    inner = api._cathode_voids

    def kept(src, reg, out, **kw):
        given.append(np.asarray(out))
        return inner(src, reg, out, **kw)

    mp = pytest.MonkeyPatch()
    mp.setattr(api, "_cathode_voids", kept)
    try:
        res = segment_volume(img, voxel_size_nm=ph.voxel_size_nm, method="classifier", classifier=clf)
    finally:
        mp.undo()
    assert len(given) == 1
    return ph, res, given[0]


def test_void_split_reads_the_cathode_as_the_layers_decided_it(split_input):
    """The forest reads a void's dark face as sodium metal or separator as often as pore; those
    labels, impossible in the cathode, are outside the split's pore and binder.  Decided within
    the layers first, the true voids of the cathode reach the split as pore, binder or particle
    only.  The code before split first: on this phantom 7 281 voxels of the detected cathode were
    separator, SEI, sodium or collector at the split, 3.1 % of its true void among them (820 of
    25 914 voxels), all lost to the void (the layers' decision then made them electrolyte)."""
    ph, res, given = split_input
    n = res.phase_names
    cat = np.asarray(res.regions) == REGIONS["cathode"]
    true_void = cat & (ph.labels == PHASES["void"])
    reachable = np.isin(given, [n["electrolyte"], n["binder"], n["active"]])
    assert (true_void & ~reachable).sum() <= 0.002 * true_void.sum()
    assert not np.isin(given[cat], [n[p] for p in IMPOSSIBLE_PHASES["cathode"]]).any()


def test_classifier_void_against_the_truth(split_input):
    """The classifier's void in the true cathode against the phantom's: Dice and fraction.

    Measured (16x160 diglyme seed 3, oracle-corrected): void Dice 0.781 -> 0.787, void fraction
    0.113 -> 0.115 (truth 0.136) with the split after the layers' decision; a guard, not the gain
    (see the test above)."""
    ph, res, _ = split_input
    n, p = res.phase_names, np.asarray(res.phases)
    cat = ph.regions == REGIONS["cathode"]
    pred, true = (p == n["void"]) & cat, (ph.labels == PHASES["void"]) & cat
    dice = 2 * (pred & true).sum() / (pred.sum() + true.sum())
    assert dice >= 0.77
    assert abs(pred.sum() / cat.sum() - true.sum() / cat.sum()) <= 0.025
