"""The classifier's pore split into void and electrolyte: the cathode's after the layers' decision, the
pore its boundary re-decision returns voted as the split's own, no void of the forest's own elsewhere
(issue 7)."""

import numpy as np
import pytest

from volrecon.phases import PHASES, REGIONS
from volrecon.segment import api, segment_volume, train_classifier
from volrecon.segment.classifier import IMPOSSIBLE_PHASES
from volrecon.segment.scribbles import synthetic_scribbles
from volrecon.segment.voids import vote_joined


@pytest.fixture(scope="module")
def split_input(diglyme):
    """The diglyme phantom and its image (oracle-corrected), the classifier's segmentation of it
    (scribbles drawn from the truth), the labels its void split was given, and the classifier."""
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
    return ph, img, res, given[0], clf


def test_void_split_reads_the_cathode_as_the_layers_decided_it(split_input):
    """The forest reads a void's dark face as sodium metal or separator as often as pore; those
    labels, impossible in the cathode, are outside the split's pore and binder.  Decided within
    the layers first, the true voids of the cathode reach the split as pore, binder or particle
    only.  The code before split first: on this phantom 7 281 voxels of the detected cathode were
    separator, SEI, sodium or collector at the split, 3.1 % of its true void among them (820 of
    25 914 voxels), all lost to the void (the layers' decision then made them electrolyte)."""
    ph, _, res, given, _ = split_input
    n = res.phase_names
    cat = np.asarray(res.regions) == REGIONS["cathode"]
    true_void = cat & (ph.labels == PHASES["void"])
    reachable = np.isin(given, [n["electrolyte"], n["binder"], n["active"]])
    assert (true_void & ~reachable).sum() <= 0.002 * true_void.sum()
    assert not np.isin(given[cat], [n[p] for p in IMPOSSIBLE_PHASES["cathode"]]).any()


def test_classifier_void_against_the_truth(split_input):
    """The classifier's void in the true cathode against the phantom's: Dice and fraction.

    Measured (16x160 diglyme seed 3, oracle-corrected): void Dice 0.781 -> 0.787, void fraction
    0.113 -> 0.115 (truth 0.136) with the split after the layers' decision, 0.792 and 0.120 with
    the returned pore voted too; a guard, not the gain (see the tests above and below)."""
    ph, _, res, _, _ = split_input
    n, p = res.phase_names, np.asarray(res.phases)
    cat = ph.regions == REGIONS["cathode"]
    pred, true = (p == n["void"]) & cat, (ph.labels == PHASES["void"]) & cat
    dice = 2 * (pred & true).sum() / (pred.sum() + true.sum())
    assert dice >= 0.78
    assert abs(pred.sum() / cat.sum() - true.sum() / cat.sum()) <= 0.025


def test_forest_void_outside_the_cathode_is_electrolyte(split_input):
    """With the split on, the forest's own void class is kept nowhere: the split decides the
    cathode's pore, and the separator's (where no split runs) is electrolyte.  Kept in the detected
    separator before: 3 448 voxels on this phantom, 3 066 of them the truth's electrolyte (376 true
    void of the cathode's edge); the specimen's void Dice (the benchmark's) 0.739 -> 0.775."""
    ph, _, res, _, _ = split_input
    n, p = res.phase_names, np.asarray(res.phases)
    assert not (p[np.asarray(res.regions) == REGIONS["separator"]] == n["void"]).any()
    spec = ph.regions != REGIONS["frame"]
    pred, true = (p == n["void"]) & spec, (ph.labels == PHASES["void"]) & spec
    assert 2 * (pred & true).sum() / (pred.sum() + true.sum()) >= 0.76


def _void_figures(phases, names, ph):
    """Void Dice and void fraction of the true cathode region, and the truth's fraction."""
    cat = ph.regions == REGIONS["cathode"]
    pred, true = (np.asarray(phases) == names["void"]) & cat, (ph.labels == PHASES["void"]) & cat
    return 2 * (pred & true).sum() / (pred.sum() + true.sum()), pred.sum() / cat.sum(), true.sum() / cat.sum()


def test_returned_pore_is_voted_as_the_split_pore(split_input, monkeypatch):
    """The pore the boundary re-decision gives back beside a void (the forest read the void's edge as
    binder; the split, run on the forest's binder, could not take it) is void where the split's
    closing vote says so: on the phantom the void Dice rises and the void fraction comes nearer the
    truth; without the vote (the code before) those voxels stay electrolyte."""
    ph, img, res, _, clf = split_input
    dice, fraction, truth = _void_figures(res.phases, res.phase_names, ph)
    monkeypatch.setattr(api, "_joined_pore_voted", lambda before, after, reg, **kw: after)
    old = segment_volume(img, voxel_size_nm=ph.voxel_size_nm, method="classifier", classifier=clf)
    dice0, fraction0, _ = _void_figures(old.phases, old.phase_names, ph)
    # measured (16x160 seed 3): Dice 0.787 -> 0.792, fraction 0.115 -> 0.120 (truth 0.136)
    assert dice >= dice0 + 0.003
    assert abs(fraction - truth) <= abs(fraction0 - truth) - 0.003


def test_vote_joined_decides_only_the_joined_voxels():
    """A void block in electrolyte with a particle beside it and its edge voxels returned to the pore
    (joined, electrolyte): they become void, a joined voxel far from the void stays electrolyte;
    voxels not joined keep their label even where the vote would flip them, and nothing outside the
    cathode changes."""
    V, E, A = PHASES["void"], PHASES["electrolyte"], PHASES["active"]
    lab = np.full((12, 24, 24), E, np.uint8)
    lab[2:10, 6:14, 4:14] = V
    lab[:, 4:16, 15:20] = A  # a particle beyond the void's edge: solids neither vote nor change
    lab[2:10, 6:14, 14] = E  # the void's edge, returned to the pore
    lab[5, 10, 8] = E  # a lone electrolyte voxel inside the void, not joined
    joined = np.zeros(lab.shape, bool)
    joined[2:10, 6:14, 14] = True
    joined[6, 20, 2] = True  # far from the void
    cathode = np.ones(lab.shape, bool)
    cathode[2:4] = False  # the first slices of the edge lie in another region
    out = vote_joined(lab, cathode, joined, void=V, electrolyte=E, sigma_nm=20.0, voxel_size_nm=(20.0, 10.0, 10.0))
    assert (out[5:8, 7:13, 14] == V).all()
    assert out[6, 20, 2] == E and out[5, 10, 8] == E
    np.testing.assert_array_equal(out[~joined], lab[~joined])
    np.testing.assert_array_equal(out[2:4], lab[2:4])
    np.testing.assert_array_equal(vote_joined(lab, cathode, joined, void=V, electrolyte=E, sigma_nm=0.0,
                                              voxel_size_nm=(20.0, 10.0, 10.0)), lab)
