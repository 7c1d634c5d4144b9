"""The bit-mask forest vote against scikit-learn's own tree traversal."""

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier

from volrecon.segment.classifier import _LEAF_BITS, FlatForest, _float32_at_most


def _reference_score(forest: RandomForestClassifier, x: np.ndarray) -> np.ndarray:
    """Per voxel, the 16-bit lanes of the quantised leaf probabilities summed over the trees,
    with the leaves found by ``tree.apply`` (scikit-learn's traversal)."""
    k = len(forest.classes_)
    total = np.zeros((x.shape[0], k), np.int64)
    for est in forest.estimators_:
        value = est.tree_.value[:, 0, :].astype(np.float64)
        value /= np.maximum(value.sum(axis=1, keepdims=True), 1e-12)
        total += np.rint(value * 255).astype(np.int64)[est.apply(x)]
    return total


def _lanes(score: np.ndarray, k: int) -> np.ndarray:
    return np.ascontiguousarray(score).view("<u2")[:, :k].astype(np.int64)


def _forest(n: int, leaves: int | None, seed: int, nan: bool = False) -> tuple[RandomForestClassifier, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] ** 2 + rng.normal(scale=0.7, size=n) > 0.3).astype(int) + (x[:, 2] > 1.0)
    if nan:
        x[rng.random(x.shape) < 0.05] = np.nan
    forest = RandomForestClassifier(n_estimators=7, max_leaf_nodes=leaves, min_samples_leaf=2, random_state=seed)
    return forest.fit(x, y), x


@pytest.mark.parametrize("leaves,nan", [(40, False), (64, True), (None, True)])
def test_vote_sums_the_leaves_scikit_learn_reaches(leaves, nan):
    """Small trees (bit masks), trees of exactly 64 leaves, and big trees (walked) mixed with small
    ones, with NaN going each split's own way: the summed leaf probabilities equal those of
    ``tree.apply``, on the training data and on values exactly at and beside the thresholds."""
    forest, x = _forest(3000, leaves, seed=1, nan=nan)
    if leaves is None:
        small, _ = _forest(3000, 20, seed=1, nan=nan)
        forest.estimators_ = small.estimators_[:3] + forest.estimators_
    flat = FlatForest.of(forest)
    n_leaves = [e.tree_.n_leaves for e in forest.estimators_]
    assert len(flat.walked) == sum(n > _LEAF_BITS for n in n_leaves)
    assert (len(flat.walked) > 0) == (leaves is None) and flat.starts.size - 1 >= 3
    rng = np.random.default_rng(2)
    test = rng.normal(size=(2500, 5)).astype(np.float32)
    test[rng.random(test.shape) < 0.05] = np.nan
    # values exactly at the thresholds, and the float32 values either side of them
    t = np.concatenate([e.tree_.threshold[e.tree_.children_left >= 0] for e in forest.estimators_])
    t = t[np.isfinite(t)][:500]  # a split learnt on NaN alone sends every number left (threshold inf)
    on = _float32_at_most(t)
    edge = np.concatenate([on, np.nextafter(on, np.float32(np.inf)), t.astype(np.float32)])
    test[:edge.size, 0] = edge
    test[:edge.size, 1] = edge[::-1]
    for data in (x, test):
        ours = _lanes(flat.vote(np.ascontiguousarray(data.T)), len(forest.classes_))
        np.testing.assert_array_equal(ours, _reference_score(forest, data))


def test_float32_at_most_keeps_every_comparison():
    rng = np.random.default_rng(3)
    t = np.concatenate([rng.normal(size=200), [0.0, -0.0, 1e-40, 3.5e38, 1e300, -1e300, 0.1, 1 / 3]])
    f = _float32_at_most(t)
    assert f.dtype == np.float32
    x = np.concatenate([f, np.nextafter(f, np.float32(np.inf)), np.nextafter(f, np.float32(-np.inf))])
    x = x[np.isfinite(x)]
    for ti, fi in zip(t, f):
        np.testing.assert_array_equal(x.astype(np.float64) <= ti, x <= fi)


def test_predict_table_matches_argmax_of_the_reference(monkeypatch):
    """Labels, excluded labels and packed group choices from the vote equal the argmax (first on
    a tie) of the reference sums."""
    from volrecon.segment import classifier
    from volrecon.segment.classifier import PixelClassifier, unpack_choice
    from volrecon.segment.features import FeatureSettings

    forest, x = _forest(3000, None, seed=4)
    forest.classes_ = np.array([2, 5, 7])  # label values, as a classifier trained on phases has
    clf = PixelClassifier(FeatureSettings(), {"a": 2, "b": 5, "c": 7}, (10.0, 10.0, 10.0), (0.0, 1.0), forest)
    monkeypatch.setattr(classifier, "VOTE_ROWS", 997)
    ref = _reference_score(forest, x)
    np.testing.assert_array_equal(clf.predict_table(x), forest.classes_[np.argmax(ref, axis=1)])
    no_a = clf.predict_table(x, exclude=(2,))
    np.testing.assert_array_equal(no_a, np.array([5, 7])[np.argmax(ref[:, 1:], axis=1)])
    packed = clf.predict_table(x, groups=[(2, 7)], bits=4)
    np.testing.assert_array_equal(unpack_choice(packed, 1, 4), np.array([2, 7])[np.argmax(ref[:, [0, 2]], axis=1)])
