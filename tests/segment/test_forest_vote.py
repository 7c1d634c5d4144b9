"""The bit-mask forest vote against scikit-learn's own tree traversal."""

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier

from volrecon.segment.classifier import _BIT_VOTE_LEAVES, _MASK_LEAVES, _WORD, FlatForest, _float32_at_most


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


def _forest(n: int, leaves: int | None, seed: int, nan: bool = False,
            min_leaf: int = 2) -> tuple[RandomForestClassifier, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] ** 2 + rng.normal(scale=0.7, size=n) > 0.3).astype(int) + (x[:, 2] > 1.0)
    if nan:
        x[rng.random(x.shape) < 0.05] = np.nan
    forest = RandomForestClassifier(n_estimators=7, max_leaf_nodes=leaves, min_samples_leaf=min_leaf, random_state=seed)
    return forest.fit(x, y), x


def _mixed(sizes: list[int | None], nan: bool, n: int = 3000, min_leaf: int = 2) -> tuple[RandomForestClassifier, np.ndarray]:
    """A forest of the trees of forests grown to each leaf limit in ``sizes`` (two trees each, one
    limit: seven trees), fitted on the same data."""
    forests = [_forest(n, leaves, seed=1, nan=nan, min_leaf=min_leaf) for leaves in sizes]
    forest, x = forests[0]
    if len(forests) > 1:
        forest.estimators_ = [e for f, _ in forests for e in f.estimators_[:2]]
    return forest, x


def _edge_test_data(forest: RandomForestClassifier) -> np.ndarray:
    """Random rows with NaN, and values exactly at the thresholds and the float32 values either side."""
    rng = np.random.default_rng(2)
    test = rng.normal(size=(2500, 5)).astype(np.float32)
    test[rng.random(test.shape) < 0.05] = np.nan
    t = np.concatenate([e.tree_.threshold[e.tree_.children_left >= 0] for e in forest.estimators_])
    t = t[np.isfinite(t)][:800]  # a split learnt on NaN alone sends every number left (threshold inf)
    on = _float32_at_most(t)
    edge = np.concatenate([on, np.nextafter(on, np.float32(np.inf)), t.astype(np.float32)])[:2500]
    test[:edge.size, 0] = edge
    test[:edge.size, 1] = edge[::-1]
    return test


@pytest.mark.parametrize("sizes,nan,limit", [
    ([30], False, None),             # one word
    ([32], True, None),              # exactly one full word
    ([40], False, None),             # two words
    ([64], True, None),              # exactly two full words
    ([128], True, None),             # exactly four full words
    ([20, 65, 128, None], True, _MASK_LEAVES),  # one to many words in one forest, all bit-voted
    ([20, 65, 128, None], False, 100),  # trees above the limit walked by scikit-learn
    ([20, 65, 128, None], True, None),  # the default limit
])
def test_vote_sums_the_leaves_scikit_learn_reaches(sizes, nan, limit):
    """Trees of one or several mask words, exactly full words, mixed sizes and trees routed to
    ``tree.apply``, with NaN going each split's own way: the summed leaf probabilities equal those
    of ``tree.apply``, on the training data and on values exactly at and beside the thresholds."""
    forest, x = _mixed(sizes, nan)
    flat = FlatForest.of(forest, limit)
    n_leaves = np.array([e.tree_.n_leaves for e in forest.estimators_])
    bound = _BIT_VOTE_LEAVES if limit is None else limit
    assert len(flat.walked) == np.sum(n_leaves > bound) and flat.starts.size - 1 == np.sum(n_leaves <= bound)
    if limit == _MASK_LEAVES:
        assert not flat.walked and np.diff(flat.leaf_start).max() > 8 * _WORD
    for size in sizes:
        if size is not None:
            assert size in n_leaves  # the tree sizes the case is about were really grown
    if None in sizes:
        assert n_leaves.max() > 4 * 64
    np.testing.assert_array_equal(np.diff(flat.leaf_start), _WORD * -(-n_leaves[n_leaves <= bound] // _WORD))
    for data in (x, _edge_test_data(forest)):
        ours = _lanes(flat.vote(np.ascontiguousarray(data.T)), len(forest.classes_))
        np.testing.assert_array_equal(ours, _reference_score(forest, data))


def test_trees_beyond_the_masks_are_walked():
    """Trees of more than :data:`_MASK_LEAVES` leaves take ``tree.apply`` whatever the limit asked."""
    forest, x = _mixed([30, None], nan=True, n=10000, min_leaf=1)
    n_leaves = np.array([e.tree_.n_leaves for e in forest.estimators_])
    assert n_leaves.max() > _MASK_LEAVES
    flat = FlatForest.of(forest, 10 * _MASK_LEAVES)
    assert len(flat.walked) == np.sum(n_leaves > _MASK_LEAVES) > 0
    data = _edge_test_data(forest)
    np.testing.assert_array_equal(_lanes(flat.vote(np.ascontiguousarray(data.T)), len(forest.classes_)),
                                  _reference_score(forest, data))


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


@pytest.mark.parametrize("sizes,limit", [([40], None), ([20, 65, 128, None], None), ([20, 65, None], 10)])
def test_choose_picks_the_argmax_of_the_summed_leaves(sizes, limit):
    """The fused vote and pick (bit-voted trees, walked trees, both, over several runs of voxels):
    each voxel's most voted class among each row of ``member`` (the first on a tie), packed."""
    from volrecon.segment.classifier import _RUN, unpack_choice

    forest, x = _mixed(sizes, nan=True, n=2 * _RUN + 77)
    flat = FlatForest.of(forest, limit)
    ref = _reference_score(forest, x)
    k = len(forest.classes_)
    labels = np.arange(1, k + 1, dtype=np.int64)
    member = np.ones((2, k), np.bool_)
    member[1, 0] = False
    out = np.empty(x.shape[0], np.uint8)
    flat.choose(np.ascontiguousarray(x.T), member, labels, 4, out)
    np.testing.assert_array_equal(unpack_choice(out, 0, 4), labels[np.argmax(ref, axis=1)])
    np.testing.assert_array_equal(unpack_choice(out, 1, 4), labels[1:][np.argmax(ref[:, 1:], axis=1)])
