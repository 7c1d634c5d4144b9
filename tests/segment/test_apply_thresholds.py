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


@pytest.mark.parametrize("t", [[0.25, 0.5], [np.float32(0.3), np.float32(1.0 / 3.0)], [0.4, 0.4, 0.6], [0.5, 0.2]])
def test_class_index_is_digitize(t):
    """Float32 thresholds, repeated ones and values hit exactly (or a float32 rounding apart) read as
    digitize reads them; decreasing thresholds go to digitize itself."""
    from volrecon.segment.thresholds import class_index

    rng = np.random.default_rng(4)
    block = rng.random(5000).astype(np.float32)
    block[:20] = np.float32(t[0])
    block[20:40] = np.nextafter(np.float32(t[-1]), np.float32(0))
    block[40:45] = np.nan
    np.testing.assert_array_equal(class_index(block, t), np.digitize(block, np.asarray(t)))
