"""The compiled Sobel pair (volrecon.segment._sobel.sobel_pair) against scipy, bit for bit: the forward
model's edge map (volrecon.segment.forward_refine.edge_map) and so the refined labels must not move."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from volrecon.segment import forward_refine as fr
from volrecon.segment._sobel import sobel_pair


def _images(shape: tuple[int, int]) -> list[np.ndarray]:
    rng = np.random.default_rng(sum(shape))
    levels = np.array([0.1, 0.35, 0.5, 0.8, -0.2], np.float32)
    return [rng.normal(size=shape).astype(np.float32),  # noise
            levels[rng.integers(0, levels.size, shape)],  # an ideal image: a few levels, signs mixed
            (rng.normal(size=shape) * 1e6).astype(np.float32) + np.float32(3e-4)]  # far apart exponents


@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (9, 1), (2, 2), (3, 5), (64, 47)])
def test_both_derivatives_are_scipys(shape):
    for img in _images(shape):
        d0, d1 = sobel_pair(img)
        assert d0.dtype == d1.dtype == np.float32
        np.testing.assert_array_equal(d0, ndi.sobel(img, 0, mode="nearest"))
        np.testing.assert_array_equal(d1, ndi.sobel(img, 1, mode="nearest"))


def test_the_edge_map_is_scipys_bit_for_bit():
    """The edge map the forward model adds (the magnitude, where a zero's sign no longer shows)."""
    for img in _images((40, 33)):
        want = np.hypot(ndi.sobel(img, 0, mode="nearest"), ndi.sobel(img, 1, mode="nearest")) / np.float32(4.0)
        assert fr.edge_map(img).tobytes() == want.tobytes()


def test_other_arrays_go_to_scipy():
    img = np.arange(24, dtype=np.float64).reshape(4, 6) ** 2
    d0, d1 = sobel_pair(img)
    assert d0.dtype == np.float64
    np.testing.assert_array_equal(d0, ndi.sobel(img, 0, mode="nearest"))
    np.testing.assert_array_equal(d1, ndi.sobel(img, 1, mode="nearest"))
