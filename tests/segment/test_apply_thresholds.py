"""Grey values to classes (volrecon.segment.thresholds.apply_thresholds): the class np.digitize gives
every value, thresholds hit exactly, NaN and infinities included, for each grey type."""

import numpy as np
import pytest

from volrecon.segment.thresholds import apply_thresholds


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint16, np.int8])
def test_classes_are_digitizes(dtype):
    rng = np.random.default_rng(3)
    t = np.array([0.2, 1.0 / 3.0, 0.5, 0.7]) * (100 if np.dtype(dtype).kind != "f" else 1)
    block = rng.random((4, 30, 20)) * (1.2 * t[-1]) - 0.1 * t[-1]
    block.flat[:40] = t[rng.integers(0, t.size, 40)]
    if np.dtype(dtype).kind == "f":
        block.flat[40:50] = np.nan
        block.flat[50:52] = (np.inf, -np.inf)
    elif dtype == np.uint16:
        block = np.abs(block)
    block = block.astype(dtype)
    values = [3, 1, 4, 2, 9]
    got = apply_thresholds(block, t, values)
    np.testing.assert_array_equal(got, np.asarray(values, np.uint8)[np.digitize(block, t)])
    assert got.dtype == np.uint8 and got.shape == block.shape
