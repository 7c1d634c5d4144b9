"""Content motion shared by the whole face: misclosure of long pairs, correlated across the halves."""

import math

import numpy as np
import pytest

from volrecon.correct import estimate_drift
from volrecon.correct._registration_shared import misclosures, shared_motion_error
from volrecon.correct._registration_solve import Observations
from volrecon.correct._registration_synthetic import make_stack


def _halves(n: int, left_bias, right_bias, baselines=(1, 2, 4, 8), seed: int = 0):
    """Two halves whose neighbour pairs say 0.3 px/slice and whose pair k slices apart says
    ``0.3 * k + bias(k)`` plus 0.02 px of independent noise."""
    rng = np.random.default_rng(seed)
    halves = (Observations(n), Observations(n))
    for obs, bias in zip(halves, (left_bias, right_bias)):
        for k in baselines:
            for a in range(n - k):
                d = np.array([0.3 * k, -0.1 * k]) + (bias(a, k) if k > 1 else 0.0) + rng.normal(0, 0.02, 2)
                obs.add_pair(a, a + k, d, 0.1)
    return halves


def test_misclosure_is_the_long_pair_minus_the_chain():
    obs = Observations(4)
    for a, d in enumerate(([1.0, 0.0], [0.5, 0.5], [0.0, 1.0])):
        obs.add_pair(a, a + 1, np.array(d), 0.1)
    obs.add_pair(0, 3, np.array([2.0, 2.0]), 0.1)
    obs.add_pair(1, 3, np.array([0.5, 1.5]), 0.1)
    out = misclosures(obs)
    np.testing.assert_allclose(out[(0, 3)], [0.5, 0.5])
    np.testing.assert_allclose(out[(1, 3)], [0.0, 0.0])


def test_shared_misclosure_sets_a_steady_walk_over_the_stack():
    n = 60

    def lean(a, k):  # the long pairs lag 0.05 px/slice per axis, alike in both halves
        return np.array([-0.05 * k, 0.05 * k])

    out = shared_motion_error(_halves(n, lean, lean))
    assert all(v["correlation"] > v["threshold"] for k, v in out["per_baseline"].items() if int(k) >= 4)
    assert out["shared_px"] == pytest.approx(0.05 * n / math.sqrt(12), rel=0.1)


def test_independent_misclosures_are_not_shared():
    # each half's long pairs are off by its own local content motion, varying along the stack
    rng = np.random.default_rng(5)
    left_walk, right_walk = rng.normal(0, 0.3, (60, 2)), rng.normal(0, 0.3, (60, 2))
    out = shared_motion_error(_halves(60, lambda a, k: left_walk[a] * k, lambda a, k: right_walk[a] * k))
    assert out["shared_px"] == 0.0


def _measured(inclined: float, seed: int):
    st = make_stack(32, (256, 512), drift=np.zeros((32, 2)), inclined=inclined, noise=3.0, seed=seed)
    table = estimate_drift(st.acquired, anchor="none", workers=1)
    err = table.shifts - st.drift
    err -= err.mean(axis=0)
    return table, float(np.sqrt(np.mean(err**2)))  # per axis, like the table's figure


@pytest.mark.parametrize("inclined", [0.35, 0.6])
def test_expected_residual_bounds_inclined_content_shared_by_the_face(inclined):
    # texture layers sliding across the whole face: both halves err alike (they disagree by
    # ~0.05 px while the trajectory is 0.8-1.2 px wrong); the expected residual must not
    # understate it by more than 1.5x, and the slices' quality must say so
    table, measured = _measured(inclined, seed=2)
    assert measured > 0.5
    assert table.metadata["structure_errors"]["halves_px"] < measured / 5
    assert table.expected_residual_rms_px >= measured / 1.5
    assert np.mean(table.quality) < 0.5


def test_still_content_adds_no_shared_error():
    table, measured = _measured(0.0, seed=2)
    assert table.metadata["structure_errors"]["shared_motion"]["shared_px"] == 0.0
    assert table.expected_residual_rms_px < 0.1 and measured < 0.05
