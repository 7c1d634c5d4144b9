"""The compiled linear shift equals scipy.ndimage.shift(order=1, mode="nearest") to the bit."""

import numpy as np
import pytest
from scipy import ndimage

from volrecon.correct._shift_linear import shift_linear_nearest


@pytest.mark.parametrize("seed", range(6))
def test_bit_identical_to_scipy_whole_and_windowed(seed):
    rng = np.random.default_rng(seed)
    for _ in range(40):
        ny, nx = (int(n) for n in rng.integers(8, 70, 2))
        plane = (rng.random((ny, nx)) * rng.choice([1.0, 255.0, 65535.0])).astype(np.float32)
        shift = rng.uniform(-1, 1, 2) * rng.choice([0.5, 4.0, 100.0])  # sub-pixel to far beyond the edges
        if rng.random() < 0.2:
            shift = np.round(shift * 2) / 2  # whole and half pixels
        ref = ndimage.shift(plane, shift, order=1, mode="nearest")
        got = shift_linear_nearest(plane, tuple(shift))
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got.view(np.uint32), ref.view(np.uint32))
        y0, x0 = int(rng.integers(0, ny // 2)), int(rng.integers(0, nx // 2))
        window = (slice(y0, ny - int(rng.integers(0, ny // 3))), slice(x0, nx - int(rng.integers(0, nx // 3))))
        np.testing.assert_array_equal(shift_linear_nearest(plane, tuple(shift), window=window).view(np.uint32),
                                      ref[window].view(np.uint32))


def test_non_finite_values_propagate_as_in_scipy():
    plane = np.arange(64, dtype=np.float32).reshape(8, 8)
    plane[3, 4] = np.nan
    plane[6, 1] = np.inf
    ref = ndimage.shift(plane, (0.3, -1.6), order=1, mode="nearest")
    got = shift_linear_nearest(plane, (0.3, -1.6))
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    np.testing.assert_array_equal(got[np.isfinite(ref)], ref[np.isfinite(ref)])
