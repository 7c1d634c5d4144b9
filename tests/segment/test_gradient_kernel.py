"""The rim correction's in-plane gradient (volrecon.segment.cathode_rims.gradient_magnitude) by the
compiled passes of volrecon.segment._gradient: scipy's Gaussian derivatives, bit for bit."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from volrecon.segment.cathode_rims import _TRUNCATE, gradient_magnitude


def _scipys(grey: np.ndarray, vox, sigma_nm: float) -> np.ndarray:
    g = np.asarray(grey, np.float32)
    sig = [0.0, sigma_nm / vox[1], sigma_nm / vox[2]]
    dy = ndi.gaussian_filter(g, sig, order=(0, 1, 0), mode="nearest", truncate=_TRUNCATE) / np.float32(vox[1])
    dx = ndi.gaussian_filter(g, sig, order=(0, 0, 1), mode="nearest", truncate=_TRUNCATE) / np.float32(vox[2])
    return np.hypot(dy, dx)


@pytest.mark.parametrize("shape", [(1, 1, 1), (2, 1, 9), (3, 9, 1), (2, 5, 4), (3, 40, 33)])
@pytest.mark.parametrize("vox,sigma_nm", [((20.0, 12.69018215, 10.0), 10.0), ((10.0, 5.0, 7.3), 10.0),
                                          ((20.0, 30.0, 40.0), 10.0), ((10.0, 10.0, 10.0), 0.1)])
def test_gradient_is_scipys_bit_for_bit(shape, vox, sigma_nm):
    """Noise and a few flat levels (steps), narrow and wide kernels against the block's size (the
    lines continued by their edge value), and a kernel of radius 0 (left to scipy)."""
    rng = np.random.default_rng(sum(shape))
    for grey in (rng.normal(0.4, 0.1, shape), np.linspace(0.1, 0.9, 7)[rng.integers(0, 7, shape)]):
        got = gradient_magnitude(grey.astype(np.float32), vox, sigma_nm)
        assert got.dtype == np.float32
        assert got.tobytes() == _scipys(grey, vox, sigma_nm).tobytes()


@pytest.mark.parametrize("shape", [(2, 1, 9), (3, 40, 33)])
@pytest.mark.parametrize("vox,sigma_nm", [((20.0, 12.69018215, 10.0), 10.0), ((10.0, 10.0, 10.0), 0.1)])
def test_gradient_of_chosen_rows_is_scipys_bit_for_bit(shape, vox, sigma_nm):
    """Only some rows (the first and last among them, in any order, one twice): scipy's whole-slice
    gradient at those rows, bit for bit, with the kernel and without it (radius 0)."""
    rng = np.random.default_rng(7)
    grey = rng.normal(0.4, 0.1, shape).astype(np.float32)
    rows = np.array([shape[1] - 1, 0, shape[1] // 2, 0])
    got = gradient_magnitude(grey, vox, sigma_nm, rows=rows)
    assert got.shape == (shape[0], rows.size, shape[2]) and got.dtype == np.float32
    assert got.tobytes() == np.ascontiguousarray(_scipys(grey, vox, sigma_nm)[:, rows]).tobytes()
