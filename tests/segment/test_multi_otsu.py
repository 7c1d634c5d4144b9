"""Multi-Otsu by dynamic programming (volrecon.segment.thresholds.multi_otsu)."""

from itertools import combinations

import numpy as np
import pytest
from skimage.exposure import histogram
from skimage.filters import threshold_multiotsu

from volrecon.segment.thresholds import multi_otsu


def _criterion(prob: np.ndarray, cuts: tuple[int, ...]) -> float:
    """Otsu's between-class criterion of classes ending at ``cuts`` (scikit-image's moments)."""
    n = prob.size
    w = np.concatenate([[0.0], np.cumsum(prob)])
    m = np.concatenate([[0.0], prob[0] + np.cumsum(np.arange(n) * prob)])
    total, start = 0.0, 0
    for end in (*cuts, n - 1):
        dw, dm = w[end + 1] - w[start], m[end + 1] - m[start]
        total += dm * dm / dw if dw > 0 else 0.0
        start = end + 1
    return total


@pytest.mark.parametrize("classes", [2, 3, 4])
def test_best_cuts_of_every_combination(classes: int) -> None:
    """The thresholds maximise the criterion over every combination of cuts (exhaustive search)."""
    rng = np.random.default_rng(classes)
    for _ in range(5):
        values = np.concatenate([rng.normal(rng.uniform(0, 10), rng.uniform(0.3, 2), rng.integers(50, 400))
                                 for _ in range(classes)])
        bins = 24
        hist, centres = histogram(values, bins, source_range="image", normalize=True)
        prob = hist.astype(np.float32).astype(np.float64)
        scores = {c: _criterion(prob, c) for c in combinations(range(bins - 1), classes - 1)}
        best = max(scores.values())
        got = tuple(int(np.flatnonzero(centres == t)[0]) for t in multi_otsu(values, classes, bins=bins))
        assert scores[got] == pytest.approx(best, rel=1e-12)


def test_separates_known_classes() -> None:
    """Three well-separated grey levels: each threshold lies between two of them, as scikit-image's."""
    rng = np.random.default_rng(0)
    levels = (20.0, 90.0, 200.0)
    values = np.concatenate([rng.normal(v, 5.0, 20_000) for v in levels])
    t = multi_otsu(values, 3)
    assert levels[0] < t[0] < levels[1] < t[1] < levels[2]
    np.testing.assert_array_equal(t, threshold_multiotsu(values, classes=3))


def test_too_few_grey_levels() -> None:
    with pytest.raises(ValueError):
        multi_otsu(np.array([1.0, 1.0, 2.0]), 3)
    # exactly as many occupied bins as classes: cut between them
    np.testing.assert_array_equal(multi_otsu(np.array([0.0, 0.0, 5.0, 10.0]), 3, bins=3),
                                  threshold_multiotsu(np.array([0.0, 0.0, 5.0, 10.0]), classes=3, nbins=3))
